//! [`ConfigError`]: the one error type of the crate. It always names the key path
//! (`services[0].servers[1].weight`) and, when the profile came from text, the line.
//!
//! serde_yaml reports its own errors as a single string "`path`: message at line L column C";
//! [`ConfigError::from_yaml`] takes that apart so the path and line are fields, and points
//! "unknown field" and "missing field" errors at the key itself rather than at its mapping.

use std::fmt;

use crate::locate::LineMap;

/// A profile that could not be read, parsed or validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Where the profile came from (the file name), as given to `parse`/`load`.
    pub origin: String,
    /// 1-based line of the offending key, when known.
    pub line: Option<usize>,
    /// Key path, e.g. `services[0].servers[1].weight`; empty for the whole document.
    pub path: String,
    /// What is wrong, naming the value.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A validation failure before a line is attached: the key path and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) path: String,
    pub(crate) message: String,
}

impl Invalid {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Attaches the origin and, from `lines`, the line of the path (or of its nearest
    /// existing parent).
    pub(crate) fn locate(self, origin: &str, lines: Option<&LineMap>) -> ConfigError {
        ConfigError {
            origin: origin.to_owned(),
            line: lines.and_then(|l| l.line(&self.path)),
            path: self.path,
            message: self.message,
        }
    }
}

impl ConfigError {
    /// An error about the file itself (cannot be read).
    pub(crate) fn io(origin: &str, err: &std::io::Error) -> Self {
        ConfigError {
            origin: origin.to_owned(),
            line: None,
            path: String::new(),
            message: format!("cannot read the profile: {err}"),
        }
    }

    /// Converts a serde_yaml error, splitting its "path: message at line L column C" text.
    pub(crate) fn from_yaml(
        origin: &str,
        err: &serde_yaml::Error,
        lines: Option<&LineMap>,
    ) -> Self {
        let mut text = err.to_string();
        let mut line = err.location().map(|l| l.line());
        // Strip the location suffix; the line is kept as a field.
        if let Some(loc) = err.location() {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(stripped) = text.strip_suffix(&suffix) {
                text = stripped.to_owned();
            }
        }
        // Split a leading "path: " (serde_yaml writes it for anything below the root).
        let (mut path, mut message) = match text.split_once(": ") {
            Some((p, m)) if looks_like_path(p) => (p.to_owned(), m.to_owned()),
            _ => (String::new(), text),
        };
        if path == "." {
            path.clear();
        }
        // "unknown field `x`" and "missing field `x`" are about the key `x` of that mapping.
        for (prefix, kind) in [
            ("unknown field `", Key::Unknown),
            ("missing field `", Key::Missing),
            ("duplicate field `", Key::Repeated),
        ] {
            if let Some(rest) = message.strip_prefix(prefix)
                && let Some((key, _)) = rest.split_once('`')
            {
                let key = key.to_owned();
                let parent = path.clone();
                path = join(&parent, &key);
                let found = match kind {
                    // An unknown key exists in the text: point at it.
                    Key::Unknown => lines.and_then(|l| l.exact(&path)),
                    // A missing key has no line; point at the mapping that lacks it.
                    Key::Missing => lines.and_then(|l| l.exact(&parent)),
                    // A repeated key: point at its second occurrence.
                    Key::Repeated => lines.and_then(|l| l.repeated(&path)),
                };
                if found.is_some() {
                    line = found;
                }
                match kind {
                    Key::Missing => message = format!("required key `{key}` is missing"),
                    Key::Repeated => message = format!("key `{key}` is given twice"),
                    Key::Unknown => {}
                }
            }
        }
        if message == "EOF while parsing a value" {
            message = "the profile is empty".to_owned();
        }
        ConfigError {
            origin: origin.to_owned(),
            line,
            path,
            message,
        }
    }
}

/// What a serde_yaml message says about a key of a mapping.
#[derive(Clone, Copy)]
enum Key {
    Unknown,
    Missing,
    Repeated,
}

/// `a` + `b` as a key path (`a.b`, or `b` at the root).
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Whether serde_yaml's message prefix is a key path rather than part of the message
/// ("invalid type: ..." must not be mistaken for a path).
fn looks_like_path(p: &str) -> bool {
    p == "."
        || (!p.is_empty()
            && !p.contains(' ')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.[]?".contains(c)))
}

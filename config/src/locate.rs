//! [`LineMap`]: key path → line of the profile text, so a validation error found on the typed
//! model can still say where in the file the offending key is.
//!
//! serde's typed model forgets positions, so the text is walked a second time with
//! yaml-rust2's marked event parser. Paths use serde_yaml's spelling (`services[0].port`), so
//! a path produced by serde_yaml and one produced by the validator look up the same way. A
//! mapping entry is recorded at the line of its key; a sequence item at the line of the item.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::error::join;

/// Lines (1-based) of every key path present in a YAML text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineMap {
    lines: HashMap<String, usize>,
    /// Line of the second occurrence of a key written twice in one mapping.
    repeated: HashMap<String, usize>,
}

impl LineMap {
    /// Walks `text`. On a syntax error the map holds what was read before it (serde_yaml
    /// reports the syntax error itself).
    pub fn build(text: &str) -> LineMap {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(text);
        // Errors are serde_yaml's to report; a partial map is still useful.
        let _ = parser.load(&mut walker, false);
        LineMap {
            lines: walker.lines,
            repeated: walker.repeated,
        }
    }

    /// The line of exactly `path`, if the text has that key.
    pub fn exact(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }

    /// The line where a key written twice in one mapping appears the second time.
    pub fn repeated(&self, path: &str) -> Option<usize> {
        self.repeated.get(path).copied()
    }

    /// The line of `path`, or of its nearest parent present in the text (a defaulted key has
    /// no line of its own; its mapping does).
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(l) = self.exact(p) {
                return Some(l);
            }
            if p.is_empty() {
                return None;
            }
            p = parent(p);
        }
    }

    /// Number of paths recorded.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no path was recorded.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``.
fn parent(path: &str) -> &str {
    if path.ends_with(']')
        && let Some(i) = path.rfind('[')
    {
        return &path[..i];
    }
    match path.rfind('.') {
        Some(i) => &path[..i],
        None => "",
    }
}

#[derive(Debug)]
enum Frame {
    Map {
        path: String,
        /// The key whose value comes next, or `None` when a key comes next.
        key: Option<String>,
    },
    Seq {
        path: String,
        index: usize,
    },
}

#[derive(Debug, Default)]
struct Walker {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
    repeated: HashMap<String, usize>,
}

/// Path prefix for nodes under a non-scalar mapping key; such paths never match a real one.
const COMPLEX_KEY: &str = "\u{0}complex-key";

impl Walker {
    /// Works out the path of the node that starts now, recording its line.
    fn node_path(&mut self, mark: Marker, scalar: Option<&str>) -> String {
        let line = mark.line();
        match self.stack.last_mut() {
            None => {
                self.lines.entry(String::new()).or_insert(line);
                String::new()
            }
            Some(Frame::Seq { path, index }) => {
                let p = format!("{path}[{index}]");
                *index += 1;
                self.lines.entry(p.clone()).or_insert(line);
                p
            }
            Some(Frame::Map { path, key }) => match key.take() {
                // This node is a value: its line was recorded with its key.
                Some(k) => join(path, &k),
                // This node is a key.
                None => {
                    let k = scalar.unwrap_or(COMPLEX_KEY).to_owned();
                    let p = join(path, &k);
                    match self.lines.entry(p) {
                        Entry::Occupied(e) => {
                            self.repeated.entry(e.key().clone()).or_insert(line);
                        }
                        Entry::Vacant(e) => {
                            e.insert(line);
                        }
                    }
                    *key = Some(k);
                    COMPLEX_KEY.to_owned()
                }
            },
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                self.node_path(mark, Some(&value));
            }
            Event::Alias(_) => {
                self.node_path(mark, None);
            }
            Event::SequenceStart(..) => {
                let path = self.node_path(mark, None);
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingStart(..) => {
                let path = self.node_path(mark, None);
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.stack.pop();
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
dataplane:
  main_lcore: 0
  workers: [1, 2]
ports:
  - name: dp0
    addresses:
      - 10.0.0.10/24
services:
  - vip: 10.0.0.100
    servers:
      - { address: 10.0.0.11, weight: 3 }
      -
        address: 10.0.0.12
        weight: 1
";

    #[test]
    fn keys_and_items() {
        let m = LineMap::build(TEXT);
        assert_eq!(m.exact(""), Some(1));
        assert_eq!(m.exact("dataplane"), Some(1));
        assert_eq!(m.exact("dataplane.main_lcore"), Some(2));
        assert_eq!(m.exact("dataplane.workers"), Some(3));
        assert_eq!(m.exact("dataplane.workers[1]"), Some(3));
        assert_eq!(m.exact("ports[0]"), Some(5));
        assert_eq!(m.exact("ports[0].name"), Some(5));
        assert_eq!(m.exact("ports[0].addresses"), Some(6));
        assert_eq!(m.exact("ports[0].addresses[0]"), Some(7));
        assert_eq!(m.exact("services[0].servers[0].weight"), Some(11));
        assert_eq!(m.exact("services[0].servers[1].address"), Some(13));
        assert_eq!(m.exact("services[0].servers[1].weight"), Some(14));
    }

    #[test]
    fn falls_back_to_parent() {
        let m = LineMap::build(TEXT);
        assert_eq!(m.line("services[0].servers[0].forward"), Some(11));
        assert_eq!(m.line("services[0].port"), Some(9));
        assert_eq!(m.line("control.shm"), Some(1));
        assert_eq!(m.exact("control.shm"), None);
    }

    #[test]
    fn repeated_keys() {
        let m = LineMap::build("a:\n  b: 1\n  c: 2\n  b: 3\n");
        assert_eq!(m.exact("a.b"), Some(2));
        assert_eq!(m.repeated("a.b"), Some(4));
        assert_eq!(m.repeated("a.c"), None);
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent("a.b[2].c"), "a.b[2]");
        assert_eq!(parent("a.b[2]"), "a.b");
        assert_eq!(parent("a.b"), "a");
        assert_eq!(parent("a"), "");
    }

    #[test]
    fn broken_text_keeps_what_was_read() {
        let m = LineMap::build("dataplane:\n  main_lcore: 0\n  workers: [1\n");
        assert_eq!(m.exact("dataplane.main_lcore"), Some(2));
    }
}

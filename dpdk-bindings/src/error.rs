//! DPDK return codes turned into a typed error that names the failed call.

use std::ffi::CStr;

use crate::sys;

/// A failed DPDK call: which call, its (positive) errno, and DPDK's own text for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{call} failed: {message} (errno {errno})")]
pub struct Error {
    /// The DPDK function (and its main argument) that failed.
    pub call: String,
    /// Positive errno value.
    pub errno: i32,
    /// `rte_strerror(errno)`.
    pub message: String,
}

/// Result of a DPDK call.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Builds an error from a return code (negative errno, as ethdev returns) or, when the code
    /// carries none, from `rte_errno`.
    pub fn from_code(call: impl Into<String>, code: i32) -> Self {
        let errno = if code < 0 { -code } else { rte_errno() };
        Self::with_errno(call, errno)
    }

    /// Builds an error from `rte_errno` (for calls that return NULL or -1).
    pub fn last(call: impl Into<String>) -> Self {
        Self::with_errno(call, rte_errno())
    }

    pub(crate) fn with_errno(call: impl Into<String>, errno: i32) -> Self {
        Self {
            call: call.into(),
            errno,
            message: strerror(errno),
        }
    }
}

/// Returns `rte_errno` of the calling thread.
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local integer; no preconditions.
    unsafe { sys::rvs_errno() }
}

fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string,
    // valid at least until the next call on this thread; it is copied at once.
    let p = unsafe { sys::rte_strerror(errno) };
    if p.is_null() {
        return format!("errno {errno}");
    }
    // SAFETY: p is non-null and NUL-terminated (see above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Turns an ethdev-style return code (0 or positive = success, negative errno = failure).
pub(crate) fn check(call: impl FnOnce() -> String, code: i32) -> Result<i32> {
    if code < 0 {
        Err(Error::from_code(call(), code))
    } else {
        Ok(code)
    }
}

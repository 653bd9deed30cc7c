//! Errors returned by the engine. Every error carries a readable message;
//! the Perl glue prefixes it with the class name and croaks.

use std::fmt;

/// An engine error: a message meant for the user, and whether it is the
/// file system refusing space (the glue turns that into `false` for the
/// operations that may fail to store, and into a croak for the others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String, pub(crate) bool);

/// Result alias used throughout the engine.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into(), false)
    }

    /// The file system refused space for `path` (ENOSPC, EDQUOT, EFBIG);
    /// `what` is the system call, the reason is the last OS error.
    pub fn no_space(what: &str, path: &str) -> Self {
        let e = std::io::Error::last_os_error();
        Self::no_space_errno(what, path, e.raw_os_error().unwrap_or(libc::ENOSPC))
    }

    /// As [`Error::no_space`], for an error number returned directly.
    pub fn no_space_errno(what: &str, path: &str, errno: i32) -> Self {
        let e = std::io::Error::from_raw_os_error(errno);
        Error(
            format!(
                "no space left on the device for {path} ({what}: {}); \
                 every entry stored before is intact, and writes resume once space is freed",
                strip_os_suffix(&e)
            ),
            true,
        )
    }

    /// True if the file system refused space (see [`Error::no_space`]).
    pub fn is_no_space(&self) -> bool {
        self.1
    }

    /// A wait on a live process that saw no progress for `limit` (the
    /// handle's `wait_timeout`): `what` names what it waited for and who
    /// holds it (`sync::lock::Stalled::describe`).
    pub fn stalled(path: &str, what: &str, limit: std::time::Duration) -> Self {
        Self::new(format!(
            "{path}: timed out after {} s waiting for {what} (alive but making no progress; \
             see wait_timeout)",
            limit.as_secs_f64(),
        ))
    }

    /// `what(PATH): strerror(errno)` for the last OS error.
    pub fn os(what: &str, path: &str) -> Self {
        let e = std::io::Error::last_os_error();
        Error(format!("{what}({path}): {}", strip_os_suffix(&e)), false)
    }
}

/// `std::io::Error`'s Display appends " (os error N)"; users want the text only.
fn strip_os_suffix(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

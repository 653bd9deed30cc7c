//! Errors returned by the engine. Every error carries a readable message;
//! the Perl glue prefixes it with the class name and croaks.

use std::fmt;

/// An engine error: a message meant for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

/// Result alias used throughout the engine.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }

    /// A wait on a live process that saw no progress for `limit` (the
    /// handle's `wait_timeout`): names what it waited for and who holds it.
    pub fn stalled(path: &str, s: &crate::lock::Stalled, limit: std::time::Duration) -> Self {
        Error(format!(
            "{path}: timed out after {} s waiting for {} (alive but making no progress; \
             see wait_timeout)",
            limit.as_secs_f64(),
            s.describe()
        ))
    }

    /// `what(PATH): strerror(errno)` for the last OS error.
    pub fn os(what: &str, path: &str) -> Self {
        let e = std::io::Error::last_os_error();
        Error(format!("{what}({path}): {}", strip_os_suffix(&e)))
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

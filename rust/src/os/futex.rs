//! Shared (inter-process) futex calls on a 32-bit word inside the mapping.
//!
//! Never `FUTEX_PRIVATE_FLAG`: private futexes are keyed by the address in
//! one process and would not wake a waiter in another.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleep while `*word == expected`, at most `timeout`. Returns on wake-up,
/// timeout, signal or a changed value; the caller re-checks the word.
/// True if that was progress: a wake-up (`FUTEX_WAKE`) or a word that no
/// longer held `expected`; false after a timeout or a signal.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned 32-bit word for the duration of the
    // call; FUTEX_WAIT only reads it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        )
    };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
}

/// Wake up to `n` waiters on `word`.
pub fn wake(word: &AtomicU32, n: i32) {
    // SAFETY: as in `wait`; FUTEX_WAKE does not access the word's memory.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n);
    }
}

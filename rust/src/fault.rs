//! Fault injection for crash tests (cargo feature `fault-injection`; compiled
//! out otherwise). Every mutation calls [`point`] between the stores it makes
//! to the map; a test arms a countdown in a forked child, which then dies
//! with `_exit(77)` at exactly the N-th point — holding the writer lock,
//! in the middle of the mutation — so that the parent can recover the map
//! and check that every other entry is intact and the interrupted operation
//! happened entirely or not at all.

#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

#[cfg(feature = "fault-injection")]
static LEFT: AtomicI64 = AtomicI64::new(0);

/// A point between two stores of a mutation.
#[inline(always)]
pub fn point() {
    #[cfg(feature = "fault-injection")]
    if LEFT.load(Relaxed) > 0 && LEFT.fetch_sub(1, Relaxed) == 1 {
        // SAFETY: _exit ends the process at once, as SIGKILL would.
        unsafe { libc::_exit(77) };
    }
}

/// Die at the `n`-th fault point from now (n >= 1).
#[cfg(feature = "fault-injection")]
pub fn arm(n: i64) {
    LEFT.store(n, Relaxed);
}

/// Stop counting.
#[cfg(feature = "fault-injection")]
pub fn disarm() {
    LEFT.store(0, Relaxed);
}

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

/// The armed point panics instead of ending the process.
#[cfg(feature = "fault-injection")]
static PANIC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A point between two stores of a mutation.
#[inline(always)]
pub fn point() {
    #[cfg(feature = "fault-injection")]
    if LEFT.load(Relaxed) > 0 && LEFT.fetch_sub(1, Relaxed) == 1 {
        if PANIC.swap(false, Relaxed) {
            panic!("fault injection: a panic in the middle of a mutation");
        }
        // SAFETY: _exit ends the process at once, as SIGKILL would.
        unsafe { libc::_exit(77) };
    }
}

/// Panic at the `n`-th fault point from now (n >= 1): an engine bug, as
/// the C ABI's callers would meet it.
#[cfg(feature = "fault-injection")]
pub fn arm_panic(n: i64) {
    PANIC.store(true, Relaxed);
    LEFT.store(n, Relaxed);
}

/// Die at the `n`-th fault point from now (n >= 1).
#[cfg(feature = "fault-injection")]
pub fn arm(n: i64) {
    LEFT.store(n, Relaxed);
}

/// Stop counting.
#[cfg(feature = "fault-injection")]
pub fn disarm() {
    PANIC.store(false, Relaxed);
    LEFT.store(0, Relaxed);
}

/// How many walks of the whole table or arena a repair ran in this
/// process (`raw::recover`): a crash test checks that a change that keeps
/// a record is repaired without one.
#[cfg(feature = "fault-injection")]
static WALKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Count a walk of a repair.
#[inline(always)]
pub fn walked() {
    #[cfg(feature = "fault-injection")]
    WALKS.fetch_add(1, Relaxed);
}

/// How many resizes or compactions an insert started in this process
/// (`Core::make_room`): a test checks that they stay rare.
#[cfg(feature = "fault-injection")]
static RESIZES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Count a resize an insert started.
#[inline(always)]
pub fn resized() {
    #[cfg(feature = "fault-injection")]
    RESIZES.fetch_add(1, Relaxed);
}

/// The resizes counted so far by [`resized`].
#[cfg(feature = "fault-injection")]
pub fn resizes() -> u64 {
    RESIZES.load(Relaxed)
}

/// The walks counted so far by [`walked`].
#[cfg(feature = "fault-injection")]
pub fn walks() -> u64 {
    WALKS.load(Relaxed)
}

/// What a test runs at a named moment of a mutation ([`at`]): what
/// another process could do there while the writer holds the lock (a
/// lock-free read that marks an entry used, for one).
#[cfg(feature = "fault-injection")]
type Action = (&'static str, Box<dyn FnMut()>);

#[cfg(feature = "fault-injection")]
thread_local! {
    static AT: std::cell::RefCell<Option<Action>> = const { std::cell::RefCell::new(None) };
}

/// A named moment of a mutation: runs the action a test set for it.
#[inline(always)]
pub fn at(_name: &'static str) {
    #[cfg(feature = "fault-injection")]
    AT.with(|a| {
        if let Some((n, f)) = &mut *a.borrow_mut() {
            if *n == _name {
                f();
            }
        }
    });
}

/// Run `f` at the moment [`at`] names `name`, in this thread, until
/// [`clear_at`].
#[cfg(feature = "fault-injection")]
pub fn set_at(name: &'static str, f: impl FnMut() + 'static) {
    AT.with(|a| *a.borrow_mut() = Some((name, Box::new(f))));
}

/// Forget the action of [`set_at`].
#[cfg(feature = "fault-injection")]
pub fn clear_at() {
    AT.with(|a| *a.borrow_mut() = None);
}

//! The writer lock, process slots and counter indicators.
//!
//! **Process slots.** Every handle claims a numbered slot in the file and
//! holds a kernel OFD lock on byte `SLOT_LOCK_BASE + slot` for as long as it
//! lives. The kernel drops that lock when the process dies, whatever PID
//! namespace it is in, so "is the holder of slot *s* alive?" is answered by
//! `F_OFD_GETLK`, never by comparing PIDs. Each claim increments the slot's
//! generation, and the lock word records it: a reused slot cannot pass for
//! the dead owner.
//!
//! **Writer lock word** (`Header::lock`, 64 bits): low half is the futex
//! word — bits 0..16 hold `slot + 1` (0 = free), bit 31 says someone may be
//! sleeping; the high half is the owner's slot generation. Waiters spin
//! briefly, then sleep on the *shared* futex with a timeout; after each
//! timeout they check the owner's liveness and take the lock over from a
//! dead owner (the caller then runs recovery).
//!
//! **Counter indicators.** Counter operations on an existing key do not take
//! the writer lock: they set their slot's `active` flag, check that no writer
//! holds the lock (Dekker-style, both sides `SeqCst`), and update the value
//! word atomically. A writer, once it holds the lock, waits for every other
//! slot's flag to drop (clearing the flags of dead processes).

use crate::futex;
use crate::layout::{Header, ProcSlot, NSLOTS, SLOT_LOCK_BASE};
use crate::region::{ofd_held_by_other, ofd_lock};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Once;
use std::time::Duration;

/// Bit 31 of the futex word: a waiter may be sleeping.
const WAITERS: u64 = 1 << 31;
/// Mask of the owner part (`slot + 1`) of the lock word.
const OWNER_MASK: u64 = 0xffff;
/// How long a waiter sleeps before checking the owner's liveness.
const WAIT_SLICE: Duration = Duration::from_millis(10);
/// Spins before sleeping.
const SPINS: u32 = 200;

/// True if the lock word says the lock is held.
#[inline(always)]
pub fn is_locked(word: u64) -> bool {
    word & OWNER_MASK != 0
}

/// True if the lock word says a waiter may be asleep.
#[inline(always)]
fn has_waiters(word: u64) -> bool {
    word & WAITERS != 0
}

/// The slot a lock word names (None if free).
#[inline(always)]
fn owner_slot(word: u64) -> Option<u32> {
    let s = word & OWNER_MASK;
    (s != 0).then(|| (s - 1) as u32)
}

/// The generation a lock word names.
#[inline(always)]
fn owner_gen(word: u64) -> u32 {
    (word >> 32) as u32
}

static FORK_GEN: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

/// The lock descriptors of the open maps, so that a forked child can stop
/// sharing their open file descriptions (and so the parent's slot locks) at
/// once, even if it never uses the maps again. (The mapping has a
/// description of its own: a mapping keeps its description alive, so a
/// child's inherited mapping would otherwise keep the parent's locks.) -1 marks a free entry; handles
/// beyond the table's size are re-opened lazily at their next lock.
static OPEN_FDS: [AtomicI32; 1024] = [const { AtomicI32::new(-1) }; 1024];

/// Remember `fd` for the fork hook.
pub fn register_fd(fd: RawFd) {
    for e in &OPEN_FDS {
        if e.compare_exchange(-1, fd, AcqRel, Relaxed).is_ok() {
            return;
        }
    }
}

/// Forget `fd` (before it is closed).
pub fn unregister_fd(fd: RawFd) {
    for e in &OPEN_FDS {
        if e.compare_exchange(fd, -1, AcqRel, Relaxed).is_ok() {
            return;
        }
    }
}

/// In the child after `fork`: give every registered descriptor a fresh open
/// file description (`/proc/self/fd/N` reopened and `dup3`ed over N), so
/// that the parent's OFD locks are no longer held through the child. Only
/// async-signal-safe calls; no allocation.
extern "C" fn on_fork_child() {
    FORK_GEN.fetch_add(1, Relaxed);
    for e in &OPEN_FDS {
        let fd = e.load(Relaxed);
        if fd < 0 {
            continue;
        }
        let mut path = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0\0";
        let mut digits = [0u8; 10];
        let (mut n, mut k) = (fd as u32, 0);
        loop {
            digits[k] = b'0' + (n % 10) as u8;
            k += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for (j, d) in digits[..k].iter().rev().enumerate() {
            path[14 + j] = *d;
        }
        // SAFETY: path is NUL-terminated (the buffer's tail is zero).
        let nfd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDWR | libc::O_CLOEXEC) };
        if nfd >= 0 {
            // SAFETY: both descriptors are ours.
            unsafe {
                libc::dup3(nfd, fd, libc::O_CLOEXEC);
                libc::close(nfd);
            }
        }
    }
}

/// Install the fork hook once per process. After `fork`, every handle sees
/// a new fork generation and claims a new slot before it next locks, so
/// parent and child are told apart by the kernel.
pub fn install_fork_hook() {
    ATFORK.call_once(|| {
        // SAFETY: registering a handler that only makes async-signal-safe calls.
        unsafe { libc::pthread_atfork(None, None, Some(on_fork_child)) };
    });
}

/// The current fork generation of this process.
#[inline(always)]
pub fn fork_gen() -> u64 {
    FORK_GEN.load(Relaxed)
}

/// The process slot table inside a mapping.
#[derive(Clone, Copy)]
pub struct Slots(*const ProcSlot);

impl Slots {
    /// # Safety
    /// `p` points at `NSLOTS` process slots that stay mapped while this
    /// value (or a copy) is used.
    pub unsafe fn new(p: *const ProcSlot) -> Slots {
        Slots(p)
    }

    /// Slot `i` (`i < NSLOTS`, else panics).
    #[inline(always)]
    pub fn get(&self, i: u32) -> &ProcSlot {
        assert!((i as usize) < NSLOTS);
        // SAFETY: in bounds; mapped per `new`'s contract; all atomics.
        unsafe { &*self.0.add(i as usize) }
    }
}

/// Which slot this handle owns.
#[derive(Debug, Clone, Copy)]
pub struct Me {
    /// Slot number.
    pub slot: u32,
    /// Generation at claim time.
    pub gen: u32,
    /// Fork generation at claim time.
    pub fork_gen: u64,
}

impl Me {
    /// The lock word naming this owner.
    #[inline(always)]
    pub fn word(&self) -> u64 {
        ((self.gen as u64) << 32) | (self.slot as u64 + 1)
    }
}

/// Claim a free process slot: lock its byte, bump its generation.
pub fn claim(fd: RawFd, hdr: &Header, slots: Slots) -> Option<Me> {
    // Lowest free slot first: writers scan slots up to the high-water mark,
    // so keeping it low keeps every lock acquisition cheap.
    for s in 0..NSLOTS {
        if let Ok(true) = ofd_lock(fd, SLOT_LOCK_BASE + s as i64, libc::F_WRLCK as i16, false) {
            let ps = slots.get(s as u32);
            let mut gen = ps.gen.fetch_add(1, AcqRel).wrapping_add(1);
            if gen == 0 {
                gen = ps.gen.fetch_add(1, AcqRel).wrapping_add(1);
            }
            ps.active.store(0, SeqCst);
            hdr.slot_hwm.fetch_max(s as u64 + 1, AcqRel);
            return Some(Me {
                slot: s as u32,
                gen,
                fork_gen: fork_gen(),
            });
        }
    }
    None
}

/// Release a claimed slot (before closing the handle).
pub fn release_slot(fd: RawFd, slots: Slots, me: &Me) {
    let ps = slots.get(me.slot);
    ps.active.store(0, SeqCst);
    let _ = ofd_lock(
        fd,
        SLOT_LOCK_BASE + me.slot as i64,
        libc::F_UNLCK as i16,
        false,
    );
}

/// Is the owner of `slot` with generation `gen` alive? Never says "dead"
/// for a live process: an inconclusive check answers "alive".
pub fn is_alive(fd: RawFd, slots: Slots, me: &Me, slot: u32, gen: u32) -> bool {
    if slot as usize >= NSLOTS {
        return false; // a lock word that names no slot is garbage
    }
    if slot == me.slot && gen == me.gen {
        // A lock word naming the process that asks: it never holds the lock
        // while it waits for it, so the word is stale or forged (a damaged
        // file): treat its owner as dead, or we would wait on ourselves.
        return false;
    }
    let ps = slots.get(slot);
    if ps.gen.load(Acquire) != gen {
        return false; // reclaimed since: the owner we knew is gone
    }
    ofd_held_by_other(fd, SLOT_LOCK_BASE + slot as i64)
}

#[inline(always)]
fn futex_word(lock: &AtomicU64) -> &AtomicU32 {
    // SAFETY: the low half of an aligned little-endian u64 is an aligned u32
    // at the same address; the kernel and we only access it atomically.
    unsafe { &*(lock as *const AtomicU64 as *const AtomicU32) }
}

/// Outcome of acquiring the writer lock.
#[derive(Debug, PartialEq, Eq)]
pub enum Acquired {
    /// Taken normally.
    Clean,
    /// Taken over from a dead owner: the caller must run recovery.
    FromDead,
}

/// Acquire the writer lock for `me`, then wait for counter indicators.
#[inline]
pub fn lock(fd: RawFd, hdr: &Header, slots: Slots, me: &Me) -> Acquired {
    let how = if hdr
        .lock
        .compare_exchange(0, me.word(), Acquire, Relaxed)
        .is_ok()
    {
        Acquired::Clean
    } else {
        lock_slow(fd, hdr, slots, me)
    };
    drain_indicators(fd, hdr, slots, me);
    how
}

#[cold]
fn lock_slow(fd: RawFd, hdr: &Header, slots: Slots, me: &Me) -> Acquired {
    for _ in 0..SPINS {
        let cur = hdr.lock.load(Relaxed);
        if !is_locked(cur)
            && hdr
                .lock
                .compare_exchange(cur, me.word(), Acquire, Relaxed)
                .is_ok()
        {
            return Acquired::Clean;
        }
        std::hint::spin_loop();
    }
    loop {
        let cur = hdr.lock.load(Relaxed);
        if !is_locked(cur) {
            // Others may still sleep: keep the flag so our unlock wakes one.
            if hdr
                .lock
                .compare_exchange(cur, me.word() | WAITERS, Acquire, Relaxed)
                .is_ok()
            {
                return Acquired::Clean;
            }
            continue;
        }
        let want = cur | WAITERS;
        if cur != want
            && hdr
                .lock
                .compare_exchange(cur, want, Relaxed, Relaxed)
                .is_err()
        {
            continue;
        }
        futex::wait(futex_word(&hdr.lock), want as u32, WAIT_SLICE);
        if hdr.lock.load(Relaxed) == want {
            // Still the same owner after a whole slice: is it alive?
            let slot = owner_slot(want).unwrap_or(u32::MAX);
            if !is_alive(fd, slots, me, slot, owner_gen(want))
                && hdr
                    .lock
                    .compare_exchange(want, me.word() | WAITERS, Acquire, Relaxed)
                    .is_ok()
            {
                return Acquired::FromDead;
            }
        }
    }
}

/// Release the writer lock.
#[inline]
pub fn unlock(hdr: &Header) {
    let old = hdr.lock.swap(0, Release);
    if has_waiters(old) {
        futex::wake(futex_word(&hdr.lock), 1);
    }
}

/// Wait until no other slot is inside a counter operation.
#[inline]
fn drain_indicators(fd: RawFd, hdr: &Header, slots: Slots, me: &Me) {
    let hwm = (hdr.slot_hwm.load(Acquire) as usize).min(NSLOTS);
    for s in 0..hwm {
        let ps = slots.get(s as u32);
        if ps.active.load(SeqCst) != 0 && s as u32 != me.slot {
            wait_indicator(fd, slots, me, s as u32, ps);
        }
    }
}

#[cold]
fn wait_indicator(fd: RawFd, slots: Slots, me: &Me, s: u32, ps: &ProcSlot) {
    let mut spins: u64 = 0;
    while ps.active.load(SeqCst) != 0 {
        spins += 1;
        if spins < 1000 {
            std::hint::spin_loop();
            continue;
        }
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
        if spins % 256 == 0 {
            let seen = ps.active.load(SeqCst);
            if !is_alive(fd, slots, me, s, ps.gen.load(Acquire)) {
                // The owner died inside a counter operation (its single
                // atomic update either happened or not), or the word is
                // garbage from a damaged file: clear it for them.
                let _ = ps.active.compare_exchange(seen, 0, SeqCst, Relaxed);
            }
        }
    }
}

/// Enter a lock-free counter operation. Returns false if a writer holds the
/// lock (the caller then uses the writer path instead).
#[inline(always)]
pub fn enter_counter(hdr: &Header, slots: Slots, me: &Me) -> bool {
    let ps = slots.get(me.slot);
    ps.active.store(1, SeqCst);
    if is_locked(hdr.lock.load(SeqCst)) {
        ps.active.store(0, Release);
        return false;
    }
    true
}

/// Leave a counter operation.
#[inline(always)]
pub fn leave_counter(slots: Slots, me: &Me) {
    let ps = slots.get(me.slot);
    ps.active.store(0, Release);
}

/// Is the writer lock held by an owner that is dead? Used by readers that
/// see the seqlock stuck odd.
pub fn holder_is_dead(fd: RawFd, hdr: &Header, slots: Slots, me: &Me) -> bool {
    let w = hdr.lock.load(Acquire);
    match owner_slot(w) {
        None => false,
        Some(s) => !is_alive(fd, slots, me, s, owner_gen(w)),
    }
}

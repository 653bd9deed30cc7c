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
//! dead owner (the caller then runs recovery). A word that no live process
//! can have written — it names a slot beyond the table, or a generation the
//! slot does not have — is taken over at once, without sleeping.
//!
//! **Counter indicators.** Counter operations on an existing key do not take
//! the writer lock: they set their slot's `active` flag to their slot
//! generation, check that no writer holds the lock (Dekker-style, both sides
//! `SeqCst`), and update the value word atomically. A writer, once it holds
//! the lock, waits for every other slot's flag to drop. A flag that is not
//! its slot's current generation was not written by the slot's owner
//! (garbage from a damaged file, or a claimant long gone): it is cleared at
//! once; so is the flag of a dead owner. Each clear counts in
//! `stat_recoveries`.
//!
//! **Every wait ends.** After a short spin every wait sleeps: on the futex
//! for the lock, with a backoff from [`BACKOFF_MIN`] to [`BACKOFF_MAX`] for a
//! counter flag (and, in `map.rs`, for a sequence left odd). A wait on a live
//! process that sees no progress for the handle's wait timeout
//! ([`DEFAULT_WAIT_TIMEOUT`] unless set) gives up with [`Stalled`]; a wait
//! that gives up while holding the writer lock lets it go first, having
//! changed nothing. Progress is: for the lock, another owner, a futex
//! wake-up (an unlock) or the sequence moving; for a counter flag, another
//! value or generation; for an odd sequence, the sequence or the lock word
//! changing.

use crate::format::layout::{Header, ProcSlot, NSLOTS, SLOT_LOCK_BASE};
use crate::os::futex;
use crate::os::region::{ofd_held_by_other, ofd_lock};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Bit 31 of the futex word: a waiter may be sleeping.
const WAITERS: u64 = 1 << 31;
/// Mask of the owner part (`slot + 1`) of the lock word.
const OWNER_MASK: u64 = 0xffff;
/// How long a waiter sleeps before checking the owner's liveness.
const WAIT_SLICE: Duration = Duration::from_millis(10);
/// Spins before sleeping.
const SPINS: u32 = 200;
/// Spins on a counter flag before sleeping (a counter operation lasts
/// well under a microsecond).
const FLAG_SPINS: u32 = 1000;
pub use crate::os::region::DEFAULT_WAIT_TIMEOUT;
/// First sleep of a backoff wait.
pub const BACKOFF_MIN: Duration = Duration::from_micros(50);
/// Longest sleep of a backoff wait.
pub const BACKOFF_MAX: Duration = Duration::from_millis(2);

/// What a wait that gave up waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// The writer lock.
    WriterLock,
    /// Another process's counter operation (its counter flag).
    CounterFlag,
    /// The end of a change in progress (the sequence stayed odd).
    Change,
}

/// A wait on a live process that saw no progress for the whole timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled {
    /// What was waited for.
    pub what: WaitFor,
    /// The process slot that holds it.
    pub slot: u32,
}

impl Stalled {
    /// What was waited for, in words, naming the slot.
    pub fn describe(&self) -> String {
        let s = self.slot;
        match self.what {
            WaitFor::WriterLock => format!("the writer lock held by process slot {s}"),
            WaitFor::CounterFlag => {
                format!("the counter operation of process slot {s} to finish")
            }
            WaitFor::Change => format!(
                "the change in progress by process slot {s} (the writer lock holder) to finish"
            ),
        }
    }
}

/// Sleeps of a wait that has no futex to sleep on: [`BACKOFF_MIN`],
/// doubling up to [`BACKOFF_MAX`].
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(BACKOFF_MIN)
    }
}

impl Backoff {
    /// Sleep once, then lengthen the next sleep.
    pub fn sleep(&mut self) {
        std::thread::sleep(self.0);
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
    }
}

/// Tracks progress of a wait: the last state seen and since when.
pub struct Watch<T: PartialEq> {
    seen: T,
    since: Instant,
}

impl<T: PartialEq> Watch<T> {
    /// Start watching `state` now.
    pub fn new(state: T) -> Self {
        Watch {
            seen: state,
            since: Instant::now(),
        }
    }

    /// Note progress of another kind (a wake-up): the clock restarts.
    pub fn progress(&mut self) {
        self.since = Instant::now();
    }

    /// Note the state now seen. True once it has been the same for
    /// `limit`; a changed state restarts the clock.
    pub fn stalled(&mut self, state: T, limit: Duration) -> bool {
        if state != self.seen {
            self.seen = state;
            self.progress();
            return false;
        }
        self.since.elapsed() >= limit
    }
}

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

/// Claim a free process slot below `limit` (the slots whose file blocks
/// the caller has allocated): lock its byte, bump its generation.
pub fn claim(fd: RawFd, hdr: &Header, slots: Slots, limit: usize) -> Option<Me> {
    // Lowest free slot first: writers scan slots up to the high-water mark,
    // so keeping it low keeps every lock acquisition cheap.
    for s in 0..limit.min(NSLOTS) {
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
    /// Taken over from a dead owner, or from a word no live process can
    /// have written: the caller must run recovery.
    FromDead,
}

/// Is `word` (a held lock word) one that no live process can have written?
/// It names a slot beyond the table, generation 0 (never claimed), a
/// generation the slot does not have now, or the asking process itself.
/// Reads memory only (no system call). A live owner's word carries the
/// generation its claim stored before the owner ever locked (a claim
/// happens when a handle opens or first locks after `fork`, and the
/// claiming `fetch_add` is ordered before its later stores on x86 and by
/// the open's many system calls elsewhere), so a mismatch means garbage.
fn is_garbage(slots: Slots, me: &Me, word: u64) -> bool {
    let (slot, gen) = (owner_slot(word).unwrap_or(u32::MAX), owner_gen(word));
    slot as usize >= NSLOTS
        || gen == 0
        || (slot == me.slot && gen == me.gen)
        || slots.get(slot).gen.load(Acquire) != gen
}

/// Acquire the writer lock for `me`, then wait for counter indicators.
/// Gives up with [`Stalled`] after `limit` without progress on a live
/// holder; then it does not hold the lock, and nothing has changed.
#[inline]
pub fn lock(
    fd: RawFd,
    hdr: &Header,
    slots: Slots,
    me: &Me,
    limit: Duration,
) -> Result<Acquired, Stalled> {
    let (how, prev) = if hdr
        .lock
        .compare_exchange(0, me.word(), Acquire, Relaxed)
        .is_ok()
    {
        (Acquired::Clean, 0)
    } else {
        lock_slow(fd, hdr, slots, me, limit)?
    };
    if let Err(e) = drain_indicators(fd, hdr, slots, me, limit) {
        give_back(hdr, how, prev);
        return Err(e);
    }
    Ok(how)
}

/// Take the writer lock if it is free or its holder is dead, without
/// waiting for a live holder: `None` if a live process holds it. Then
/// waits for counter indicators like [`lock`] (giving up with [`Stalled`]
/// after `limit`, holding nothing).
pub fn try_lock(
    fd: RawFd,
    hdr: &Header,
    slots: Slots,
    me: &Me,
    limit: Duration,
) -> Result<Option<Acquired>, Stalled> {
    let cur = hdr.lock.load(Relaxed);
    let how = if !is_locked(cur) {
        Acquired::Clean
    } else if is_garbage(slots, me, cur)
        || !is_alive(
            fd,
            slots,
            me,
            owner_slot(cur).unwrap_or(u32::MAX),
            owner_gen(cur),
        )
    {
        Acquired::FromDead
    } else {
        return Ok(None);
    };
    // (keep the waiters flag: others may sleep on the word)
    if hdr
        .lock
        .compare_exchange(cur, me.word() | WAITERS, Acquire, Relaxed)
        .is_err()
    {
        return Ok(None);
    }
    if let Err(e) = drain_indicators(fd, hdr, slots, me, limit) {
        give_back(hdr, how, cur);
        return Err(e);
    }
    Ok(Some(how))
}

/// Let go of a lock whose waits for counter flags gave up, before anything
/// changed: a clean lock is released; one taken from a dead holder gets the
/// dead holder's word back, so that the next taker still runs recovery.
#[cold]
fn give_back(hdr: &Header, how: Acquired, prev: u64) {
    match how {
        Acquired::Clean => unlock(hdr),
        Acquired::FromDead => {
            hdr.lock.store(prev | WAITERS, Release);
            futex::wake(futex_word(&hdr.lock), 1);
        }
    }
}

/// The contended path: spin, then sleep on the futex. Returns how the lock
/// was taken and the word it replaced.
#[cold]
fn lock_slow(
    fd: RawFd,
    hdr: &Header,
    slots: Slots,
    me: &Me,
    limit: Duration,
) -> Result<(Acquired, u64), Stalled> {
    for _ in 0..SPINS {
        let cur = hdr.lock.load(Relaxed);
        if !is_locked(cur)
            && hdr
                .lock
                .compare_exchange(cur, me.word(), Acquire, Relaxed)
                .is_ok()
        {
            return Ok((Acquired::Clean, cur));
        }
        std::hint::spin_loop();
    }
    // Progress: another owner, a wake-up, or the holder's changes moving
    // the sequence.
    let state = || (hdr.lock.load(Relaxed) & !WAITERS, hdr.seq.load(Relaxed));
    let mut watch = Watch::new(state());
    loop {
        let cur = hdr.lock.load(Relaxed);
        if !is_locked(cur) {
            // Others may still sleep: keep the flag so our unlock wakes one.
            if hdr
                .lock
                .compare_exchange(cur, me.word() | WAITERS, Acquire, Relaxed)
                .is_ok()
            {
                return Ok((Acquired::Clean, cur));
            }
            continue;
        }
        if is_garbage(slots, me, cur)
            && hdr
                .lock
                .compare_exchange(cur, me.word() | WAITERS, Acquire, Relaxed)
                .is_ok()
        {
            return Ok((Acquired::FromDead, cur));
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
        if futex::wait(futex_word(&hdr.lock), want as u32, WAIT_SLICE) {
            watch.progress(); // woken by an unlock, or the word moved
        }
        if hdr.lock.load(Relaxed) == want {
            // Still the same owner after a whole slice: is it alive?
            let slot = owner_slot(want).unwrap_or(u32::MAX);
            if !is_alive(fd, slots, me, slot, owner_gen(want)) {
                if hdr
                    .lock
                    .compare_exchange(want, me.word() | WAITERS, Acquire, Relaxed)
                    .is_ok()
                {
                    return Ok((Acquired::FromDead, want));
                }
            } else if watch.stalled(state(), limit) {
                return Err(Stalled {
                    what: WaitFor::WriterLock,
                    slot,
                });
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
fn drain_indicators(
    fd: RawFd,
    hdr: &Header,
    slots: Slots,
    me: &Me,
    limit: Duration,
) -> Result<(), Stalled> {
    let hwm = (hdr.slot_hwm.load(Acquire) as usize).min(NSLOTS);
    for s in 0..hwm {
        let ps = slots.get(s as u32);
        if ps.active.load(SeqCst) != 0 && s as u32 != me.slot {
            wait_indicator(fd, hdr, slots, me, s as u32, limit)?;
        }
    }
    Ok(())
}

/// Clear slot `s`'s counter flag `seen` if no live owner can have set it:
/// it is not the slot's generation (only the owner writes its generation
/// there), or the owner is dead (it died inside a counter operation, whose
/// single atomic update happened or not). Counts a clear in
/// `stat_recoveries`. True if the flag is (now) cleared.
fn clear_if_orphan(fd: RawFd, hdr: &Header, slots: Slots, me: &Me, s: u32, seen: u32) -> bool {
    let ps = slots.get(s);
    let gen = ps.gen.load(Acquire);
    if seen == gen && is_alive(fd, slots, me, s, gen) {
        return false;
    }
    if ps.active.compare_exchange(seen, 0, SeqCst, Relaxed).is_ok() {
        hdr.stat_recoveries.fetch_add(1, Relaxed);
    }
    true
}

#[cold]
fn wait_indicator(
    fd: RawFd,
    hdr: &Header,
    slots: Slots,
    me: &Me,
    s: u32,
    limit: Duration,
) -> Result<(), Stalled> {
    let ps = slots.get(s);
    let first = ps.active.load(SeqCst);
    if first != 0 && first != ps.gen.load(Acquire) {
        // Not written by the slot's owner: garbage, cleared at once.
        clear_if_orphan(fd, hdr, slots, me, s, first);
    }
    for _ in 0..FLAG_SPINS {
        if ps.active.load(SeqCst) == 0 {
            return Ok(());
        }
        std::hint::spin_loop();
    }
    let mut watch = Watch::new((ps.active.load(SeqCst), ps.gen.load(Acquire)));
    let mut backoff = Backoff::default();
    loop {
        let seen = ps.active.load(SeqCst);
        if seen == 0 {
            return Ok(());
        }
        if clear_if_orphan(fd, hdr, slots, me, s, seen) {
            continue;
        }
        if watch.stalled((seen, ps.gen.load(Acquire)), limit) {
            return Err(Stalled {
                what: WaitFor::CounterFlag,
                slot: s,
            });
        }
        backoff.sleep();
    }
}

/// Enter a lock-free counter operation. Returns false if a writer holds the
/// lock (the caller then uses the writer path instead).
#[inline(always)]
pub fn enter_counter(hdr: &Header, slots: Slots, me: &Me) -> bool {
    let ps = slots.get(me.slot);
    ps.active.store(me.gen, SeqCst);
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

/// Who holds the writer lock, for a reader that sees the sequence stuck
/// odd: `None` if the lock is free, or its word names no live process
/// (a dead owner, or garbage); `Some((word, slot))` if a live process holds
/// it.
pub fn live_holder(fd: RawFd, hdr: &Header, slots: Slots, me: &Me) -> Option<(u64, u32)> {
    let w = hdr.lock.load(Acquire);
    let s = owner_slot(w)?;
    (!is_garbage(slots, me, w) && is_alive(fd, slots, me, s, owner_gen(w)))
        .then_some((w & !WAITERS, s))
}

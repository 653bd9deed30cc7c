//! The entry points of the writer protocol: an optimistic read that
//! validates against the sequence (`read`), and the writer lock as a guard
//! (`WriteGuard`). A holder that finds a dead predecessor's change repairs
//! it before anything else (`recover`).

use crate::error::{Error, Result};
use crate::raw::core::Core;
use crate::sync::lock::{self, Acquired};
use crate::sync::seqlock::{read_begin, read_valid};
use std::sync::atomic::Ordering::*;

/// Reader spins on an odd sequence before it sleeps (`reader_stuck`).
const READ_SPINS: u32 = 20_000;

/// Holds the writer lock; releases it when dropped (also on early return).
pub struct WriteGuard<'a> {
    pub(crate) core: &'a mut Core,
    locked: bool,
}

impl<'a> WriteGuard<'a> {
    /// Take the writer lock (recovering from a dead holder) and return a
    /// guard that releases it.
    #[inline]
    pub(crate) fn lock(core: &'a mut Core) -> Result<WriteGuard<'a>> {
        core.writable()?;
        core.ensure_me()?;
        let (fd, limit) = (core.region.lock_fd(), core.wait_timeout);
        let how = lock::lock(fd, core.hdr(), core.slots(), &core.me, limit)
            .map_err(|e| Error::stalled(core.path(), &e.describe(), limit))?;
        Self::acquired(core, how, true)
    }

    /// The writer lock if it is free or its holder is dead (then repaired
    /// first), or `None` at once if a live process holds it.
    pub(crate) fn try_lock(core: &'a mut Core) -> Result<Option<WriteGuard<'a>>> {
        core.writable()?;
        core.ensure_me()?;
        let (fd, limit) = (core.region.lock_fd(), core.wait_timeout);
        match lock::try_lock(fd, core.hdr(), core.slots(), &core.me, limit)
            .map_err(|e| Error::stalled(core.path(), &e.describe(), limit))?
        {
            Some(how) => Self::acquired(core, how, false).map(Some),
            None => Ok(None),
        }
    }

    /// The lock was just taken (`how`): map what other writers stored,
    /// repair a dead holder's change (with `full`, all of it: a writer's
    /// lock; a reader that only unblocks itself runs the part readers need
    /// and leaves the rest to the next writer), and refuse a frozen map.
    #[inline(always)]
    fn acquired(core: &'a mut Core, how: Acquired, full: bool) -> Result<WriteGuard<'a>> {
        // Strings that other writers stored may lie past this handle's
        // mapping: map them before reading anything (recovery included).
        if let Err(e) = core.cover_arena() {
            lock::unlock(core.hdr());
            return Err(e);
        }
        // A dead holder (or a lock word no live process wrote), or a change
        // left half-done with the lock free (a damaged file, or a panic that
        // unwound through the guard): either way the next holder repairs,
        // and counts a recovery.
        if how == Acquired::FromDead || core.hdr().seq.load(Relaxed) & 1 == 1 {
            crate::raw::recover::recover(core);
        }
        if full && core.hdr().repair.load(Acquire) != 0 {
            crate::raw::recover::repair_rest(core);
        }
        if core.frozen() {
            // frozen while we waited: this lock must not change anything
            lock::unlock(core.hdr());
            return Err(core.frozen_error());
        }
        // An LRU insert whose writer died between its entry and its
        // eviction left one entry over `max_size` (`Core::evict_excess`),
        // evicted by the next lock whose counts are true (a writer's, after
        // its repair; a reader's that had none to leave to the writers).
        if core.lru_on
            && core.hdr().size.load(Relaxed) > core.max_size
            && core.hdr().repair.load(Acquire) == 0
        {
            core.evict_excess();
        }
        // No change in flight has a record until it starts one
        // (`Core::undo_begin`): a death in any other needs the walks.
        core.hdr()
            .undo_state
            .store(crate::format::layout::UNDO_WALK, Relaxed);
        // a migration in progress moves one step per writer's lock; between
        // migrations, the inactive region is made ready a chunk at a time
        core.between_changes();
        Ok(WriteGuard { core, locked: true })
    }

    /// A consistent view for a whole-map read (keys, get_multi, verify):
    /// the writer lock, or nothing on a frozen map, which cannot change.
    pub(crate) fn view(core: &'a mut Core) -> Result<WriteGuard<'a>> {
        if core.frozen() {
            core.cover_arena()?;
            return Ok(WriteGuard {
                core,
                locked: false,
            });
        }
        let g = WriteGuard::lock(core)?;
        // a whole-map view sees the active table only
        g.core.settle();
        Ok(g)
    }

    /// [`WriteGuard::view`] for a caller that looks keys up in both tables
    /// of a migration in progress (`get_multi`): it is not finished first.
    pub(crate) fn view_both(core: &'a mut Core) -> Result<WriteGuard<'a>> {
        if core.frozen() {
            return WriteGuard::view(core);
        }
        WriteGuard::lock(core)
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if self.locked {
            lock::unlock(self.core.hdr());
        }
    }
}

/// Run an optimistic read until it validates.
#[inline(always)]
pub(crate) fn read<R>(core: &mut Core, mut f: impl FnMut(&Core) -> R) -> Result<R> {
    let mut spins = 0u32;
    loop {
        core.cover_arena()?;
        if let Some(s) = read_begin(&core.hdr().seq) {
            let r = f(core);
            if read_valid(&core.hdr().seq, s) {
                return Ok(r);
            }
        }
        spins += 1;
        if spins % READ_SPINS == 0 {
            reader_stuck(core)?;
        } else {
            std::hint::spin_loop();
        }
    }
}

/// A reader found the sequence odd for a long time: wait (sleeping)
/// until it moves; if nobody live is changing the map (the writer died,
/// or the lock word is garbage), take the lock, which recovers, and let
/// go. Gives up after `wait_timeout` without progress.
#[cold]
fn reader_stuck(core: &mut Core) -> Result<()> {
    if core.frozen() {
        // nobody may write a frozen map: an odd sequence is damage
        return Err(Error::new(format!(
            "{}: corrupt map: a frozen map is marked as being changed",
            core.path()
        )));
    }
    core.ensure_me()?;
    let seq = core.hdr().seq.load(Acquire);
    let mut watch = None;
    let mut backoff = lock::Backoff::default();
    while core.hdr().seq.load(Acquire) == seq && seq & 1 == 1 {
        let fd = core.region.lock_fd();
        let Some((word, slot)) = lock::live_holder(fd, core.hdr(), core.slots(), &core.me) else {
            // Taking the lock repairs a change that nobody is finishing;
            // if another live process took it first (to repair it, or to
            // write), wait for the sequence as for any writer: it moves as
            // soon as the table is whole again, before the repair's slower
            // part (see `recover`).
            if WriteGuard::try_lock(core)?.is_some() {
                break;
            }
            backoff.sleep();
            continue;
        };
        let w = watch.get_or_insert_with(|| lock::Watch::new(word));
        if w.stalled(word, core.wait_timeout) {
            let e = lock::Stalled {
                what: lock::WaitFor::Change,
                slot,
            };
            return Err(Error::stalled(
                core.path(),
                &e.describe(),
                core.wait_timeout,
            ));
        }
        backoff.sleep();
    }
    Ok(())
}

/// Take the writer lock and never release it (optionally with the
/// sequence left odd, as if in the middle of a change): lets tests
/// simulate a writer that dies holding the lock.
#[doc(hidden)]
pub fn debug_hold_lock(core: &mut Core, mid_write: bool) -> Result<()> {
    let g = WriteGuard::lock(core)?;
    if mid_write {
        g.core.seq_begin();
    }
    std::mem::forget(g);
    Ok(())
}

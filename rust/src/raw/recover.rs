//! Recovery: the next holder of the writer lock after a writer died (or a
//! change was left half-done) repairs the map before it does anything else.

use crate::format::layout::{desc_region, EMPTY, FULL, REPAIR_ARENA, REPAIR_COUNTS, TOMB};
use crate::format::words::is_inline;
use crate::raw::core::Core;
use crate::sync::seqlock::write_end;
use std::sync::atomic::{AtomicU64, Ordering::*};

/// The part of the repair after a writer's death that readers need: the
/// table's primary state is always whole (every change publishes with one
/// store), so only a committed batch is finished (on a recounted table: it
/// needs the counts); then the sequence is made even and readers go on.
/// The counts, the LRU order and the arena are flagged in `Header::repair`
/// for [`repair_rest`], which the next writer runs before it changes
/// anything. O(1) unless a committed batch is pending.
#[cold]
pub(crate) fn recover(core: &mut Core) {
    let hdr = core.hdr();
    hdr.stat_recoveries.fetch_add(1, Relaxed);
    crate::fault::point();
    let pending_batch = hdr.batch_log.load(Relaxed) != 0;
    if !pending_batch && hdr.seq.load(Relaxed) & 1 == 0 {
        // The holder died between changes: every multi-store change runs
        // with the sequence odd, so there is nothing to repair.
        return;
    }
    if core.active().is_none() {
        // Nothing sane to keep: start from an empty table, and leave every
        // string block to the arena's repair (none is referenced now).
        core.hdr().repair.fetch_or(REPAIR_ARENA, Release);
        core.hdr().batch_log.store(0, Relaxed);
        // On a full disk the damage stays; the next holder tries again.
        let _ = core.publish_empty();
        write_end(&core.hdr().seq);
        return;
    }
    // Flagged before anything else: a death from here on leaves them to do.
    core.hdr()
        .repair
        .fetch_or(REPAIR_COUNTS | REPAIR_ARENA, Release);
    crate::fault::point();
    if pending_batch {
        // A committed batch: finish it (the record is idempotent), on a
        // table whose counts and LRU order are repaired first.
        repair_counts(core);
        core.seq_begin();
        crate::raw::batch::apply(core);
    }
    if core.hdr().seq.load(Relaxed) & 1 == 1 {
        core.seq_end();
    }
}

/// The rest of the repair (see [`recover`]), by a writer before it changes
/// anything (writer lock held): whatever `Header::repair` still names.
/// Readers are not held up: the sequence stays even, the counts and LRU
/// links are not read by readers, and the arena walk writes only to blocks
/// no slot references. Each part can run any number of times.
#[cold]
pub(crate) fn repair_rest(core: &mut Core) {
    let flags = core.hdr().repair.load(Acquire);
    if flags & REPAIR_COUNTS != 0 {
        repair_counts(core);
    }
    if flags & REPAIR_ARENA != 0 {
        repair_arena(core);
    }
}

/// Recount `size` and `tombstones` from the table (a slot state that is
/// none of the three becomes a tombstone), return the inactive region a
/// dead resize may have half built, rebuild the LRU order.
fn repair_counts(core: &mut Core) {
    let Some(t) = core.active() else { return };
    let hdr = core.hdr();
    let d = hdr.table.load(Relaxed);
    let other = 1 - desc_region(d);
    core.region
        .punch(core.geo.region_off[other], core.geo.region_bytes());
    let (mut size, mut tombs) = (0u64, 0u64);
    for i in 0..t.cap() {
        match t.state(i) {
            FULL => size += 1,
            TOMB => tombs += 1,
            EMPTY => {}
            _ => {
                t.set_state(i, TOMB);
                crate::fault::point();
                tombs += 1;
            }
        }
    }
    hdr.size.store(size, Relaxed);
    crate::fault::point();
    hdr.tombstones.store(tombs, Relaxed);
    crate::fault::point();
    if core.lru_on {
        core.lru().rebuild(&t);
    }
    core.hdr().repair.fetch_and(!REPAIR_COUNTS, Release);
    crate::fault::point();
}

/// The largest arena whose referenced blocks `repair_arena` marks in a
/// bitmap (4 GiB: a 64 MiB bitmap); larger ones use a sorted list. A
/// variable only so that the crate's tests can take the other path.
pub(crate) static BITMAP_ARENA_MAX: AtomicU64 = AtomicU64::new(4 << 30);

/// The second half of a repair (see [`recover`]): the free lists and
/// `arena_used` rebuilt from a walk of the arena and the set of blocks the
/// table references. Writer lock held. Readers are not held up: the walk
/// writes only to blocks no slot references (a reader that follows a slot
/// never meets them) and to header words readers do not use.
fn repair_arena(core: &mut Core) {
    // The blocks the table references now; every other block is free.
    let Some(t) = core.active() else { return };
    // The referenced blocks as a bitmap over the arena (one bit per 8
    // bytes: 2 MiB for 128 MiB of strings), or, for a larger arena than
    // BITMAP_ARENA_MAX, a sorted list; both answer the walk's questions in
    // the order it asks. (A hash set of a million blocks cost 8 times as
    // much: the writer's wait after a kill at 1,000,000 SS entries was
    // ~470 ms, ~65 ms with the bitmap.)
    let (kb, vb) = (core.kb, core.vb);
    let base = core.arena_off;
    let span = core.hdr().arena_top.load(Relaxed).saturating_sub(base);
    let each_live = |f: &mut dyn FnMut(u64)| {
        for i in 0..t.cap() {
            if t.is_full(i) {
                for (is_str, w) in [(kb, t.key(i)), (vb, t.val(i))] {
                    if is_str && !is_inline(w) {
                        f(w);
                    }
                }
            }
        }
    };
    if span <= BITMAP_ARENA_MAX.load(Relaxed) {
        let words = (span / 8).div_ceil(64) as usize + 1;
        let mut bits = vec![0u64; words];
        each_live(&mut |w| {
            // (a reference outside the arena marks nothing: the walk never
            // asks for it)
            if let Some(k) = w.checked_sub(base).map(|d| (d / 8) as usize) {
                if k / 64 < words {
                    bits[k / 64] |= 1 << (k % 64);
                }
            }
        });
        core.arena().rebuild(|off| {
            let k = ((off - base) / 8) as usize;
            k / 64 < words && bits[k / 64] & (1 << (k % 64)) != 0
        });
    } else {
        let mut live = Vec::with_capacity(core.hdr().size.load(Relaxed) as usize);
        each_live(&mut |w| live.push(w));
        live.sort_unstable();
        let mut next = 0;
        core.arena().rebuild(|off| {
            while next < live.len() && live[next] < off {
                next += 1;
            }
            live.get(next) == Some(&off)
        });
    }
    core.hdr().repair.fetch_and(!REPAIR_ARENA, Release);
    crate::fault::point();
}

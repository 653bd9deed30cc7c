//! Recovery: the next holder of the writer lock after a writer died (or a
//! change was left half-done) repairs the map before it does anything else.

use crate::format::layout::{desc_region, EMPTY, FULL, TOMB};
use crate::format::words::is_inline;
use crate::raw::core::Core;
use crate::sync::seqlock::write_end;
use std::collections::HashSet;
use std::sync::atomic::Ordering::*;

/// Repair the map after its lock holder died: finish or roll back what it
/// was doing. Every mutation publishes with one atomic store, so the
/// primary state (table descriptor, slots, block headers) is always
/// consistent; the derived state is rebuilt here.
/// Make the table whole again after its writer died: counts, garbage
/// slot states, LRU order, a committed batch finished; then the sequence is
/// made even, so readers go on, and the arena is left to [`repair_arena`]
/// (flagged in the header). O(table), not O(arena).
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
    let Some(t) = core.active() else {
        // Nothing sane to keep: start from an empty table.
        core.hdr().batch_log.store(0, Relaxed);
        // On a full disk the damage stays; the next holder tries again.
        let _ = core.publish_empty();
        write_end(&core.hdr().seq);
        return;
    };
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
    if pending_batch {
        // A committed batch: finish it (the record is idempotent), on a
        // table whose counts and LRU order are already repaired.
        core.seq_begin();
        crate::raw::batch::apply(core);
    }
    // The table is whole again (every slot, the counts, a committed batch):
    // readers may go on. The arena's free lists and usage are rebuilt by
    // `repair_arena`, by the next writer before it changes anything (the
    // flag survives a crash; the rebuild can run any number of times).
    core.hdr().arena_repair.store(1, Release);
    crate::fault::point();
    if core.hdr().seq.load(Relaxed) & 1 == 1 {
        core.seq_end();
    }
}

/// The second half of a repair (see [`recover`]): the free lists and
/// `arena_used` rebuilt from a walk of the arena and the set of blocks the
/// table references. Writer lock held. Readers are not held up: the walk
/// writes only to blocks no slot references (a reader that follows a slot
/// never meets them) and to header words readers do not use.
pub(crate) fn repair_arena(core: &mut Core) {
    // The blocks the table references now; every other block is free.
    let Some(t) = core.active() else { return };
    let mut live = HashSet::new();
    let (kb, vb) = (core.kb, core.vb);
    for i in 0..t.cap() {
        if t.is_full(i) {
            for (is_str, w) in [(kb, t.key(i)), (vb, t.val(i))] {
                if is_str && !is_inline(w) {
                    live.insert(w);
                }
            }
        }
    }
    core.arena().rebuild(&live);
    core.hdr().arena_repair.store(0, Release);
    crate::fault::point();
}

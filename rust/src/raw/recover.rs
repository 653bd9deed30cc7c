//! Recovery: the next holder of the writer lock after a writer died (or a
//! change was left half-done) repairs the map before it does anything else.

use crate::format::layout::{
    desc_region, EMPTY, FULL, REPAIR_ARENA, REPAIR_COUNTS, TOMB, UNDO_BATCH, UNDO_BATCH_FINISH,
    UNDO_BATCH_PREP, UNDO_BATCH_UNPREP, UNDO_CLEAN, UNDO_CLEAR, UNDO_INPLACE, UNDO_INSERT,
    UNDO_LRU, UNDO_MAX_ALLOC, UNDO_MIGRATE, UNDO_OVERWRITE, UNDO_RECOVERING, UNDO_REMOVE,
    UNDO_RESIZE, UNDO_SINGLE,
};
use crate::format::words::class_size;
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
    // a move of a migration in flight is finished or forgotten first
    core.recover_migration();
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
    // an LRU relink in flight is rolled back: the list is whole again
    core.lru_rollback();
    if core.hdr().undo_state.load(Acquire) == UNDO_RESIZE {
        // finished or taken back from its record; then the change around
        // it (its state is back in `undo_state`)
        core.recover_resize();
    }
    if !pending_batch {
        match core.hdr().undo_state.load(Acquire) {
            // a migration step on its own: its move (above) was all of it;
            // or a change that had made all its stores
            UNDO_MIGRATE | UNDO_CLEAN | UNDO_LRU => {
                core.seq_end();
                return;
            }
            UNDO_CLEAR if core.clear_redo() => {
                core.seq_end();
                return;
            }
            UNDO_INPLACE => {
                core.inplace_redo();
                core.seq_end();
                return;
            }
            _ => {}
        }
    }
    if let Some(done) = batch_from_record(core, pending_batch) {
        if done {
            if core.hdr().seq.load(Relaxed) & 1 == 1 {
                core.seq_end();
            }
            return;
        }
    } else if !pending_batch && undo_single(core) {
        // the change in flight kept a record: finished or undone from it,
        // with no walk (see `Core::undo_begin`)
        if core.hdr().seq.load(Relaxed) & 1 == 1 {
            core.seq_end();
        }
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

/// A batch the dead writer was in, repaired from its record (see
/// `raw::batch`) in time that grows with the batch, not the map: `None`
/// if the state is not a batch's; `Some(true)` once repaired; `Some(false)`
/// if the walks must do it (a damaged record).
fn batch_from_record(core: &mut Core, pending: bool) -> Option<bool> {
    let state = core.hdr().undo_state.load(Acquire);
    match state {
        UNDO_BATCH_FINISH => crate::raw::batch::finish(core),
        UNDO_BATCH_PREP | UNDO_BATCH_UNPREP if !pending => crate::raw::batch::unprepare(core),
        UNDO_BATCH_PREP | UNDO_BATCH | UNDO_SINGLE | UNDO_RECOVERING if pending => {
            // a committed batch: the entry in flight, if it kept a record,
            // is finished or undone first; then the record is applied again
            let single = state == UNDO_SINGLE || state == UNDO_RECOVERING;
            if single && !undo_single(core) {
                return Some(false);
            }
            core.seq_begin();
            crate::raw::batch::apply(core);
        }
        _ => return None,
    }
    Some(true)
}

/// Finish or undo the single change a dead writer was making, from its
/// record (`Header::undo_*`, written by `Core::undo_begin` and
/// `Core::undo_commit`, and by the arena as it allocates and frees), in
/// constant time: whether the change was published is read from its slot;
/// then the counts and `arena_used` are set from the record, and the
/// blocks that nothing references any more (those the change allocated,
/// if it was not published; those it was freeing, if it was) are put back
/// on their free lists, from the first free that had not finished. Sets
/// `UNDO_RECOVERING` with the list of those blocks (in words of its own:
/// the record is not changed, so this first part can run again) before it
/// pushes any, and counts its pushes, so that a death during this repair
/// resumes it without pushing a block twice. False if there is no record
/// (the walks are needed).
fn undo_single(core: &mut Core) -> bool {
    let h = core.hdr();
    let state = h.undo_state.load(Acquire);
    if state != UNDO_SINGLE && state != UNDO_RECOVERING {
        return false;
    }
    let arena = core.arena();
    if state == UNDO_SINGLE {
        let slot = h.undo_slot.load(Acquire);
        let known = slot != u64::MAX;
        // the table the slot is in (during a migration, either)
        let t = if known {
            core.table_of(h.undo_desc.load(Relaxed))
        } else {
            core.active()
        };
        let Some(t) = t else {
            return false;
        };
        if known && slot >= t.cap() as u64 {
            return false; // a damaged record
        }
        let i = slot as usize;
        let kind = h.undo_kind.load(Relaxed);
        let committed = known
            && match kind {
                UNDO_INSERT => t.is_full(i) && t.key(i) == h.undo_key.load(Relaxed),
                UNDO_OVERWRITE => t.is_full(i) && t.val(i) == h.undo_val.load(Relaxed),
                UNDO_REMOVE => !t.is_full(i),
                _ => return false,
            };
        // an LRU map: the relink the change makes after it is published
        core.lru_redo(&t, kind, i, committed);
        let freed = h.undo_freed.load(Relaxed) as usize;
        let nalloc = (h.undo_nalloc.load(Relaxed) as usize).min(UNDO_MAX_ALLOC);
        let allocs: Vec<u64> = (0..nalloc).map(|j| h.undo_alloc[j].load(Relaxed)).collect();
        let class_bytes = |w: u64| arena.block_class(w).map_or(0, class_size);
        let mut used = h.undo_used.load(Relaxed);
        let mut list = Vec::with_capacity(UNDO_MAX_ALLOC);
        let side = if committed {
            // the blocks the change frees, in the order it frees them
            let (kw, vw, old) = (
                h.undo_key.load(Relaxed),
                h.undo_val.load(Relaxed),
                h.undo_old.load(Relaxed),
            );
            let frees: Vec<u64> = match kind {
                UNDO_OVERWRITE => vec![old],
                UNDO_REMOVE => [(core.kb_flag(), kw), (core.vb_flag(), vw)]
                    .into_iter()
                    .filter_map(|(is_str, w)| is_str.then_some(w))
                    .collect(),
                _ => vec![],
            };
            let frees: Vec<u64> = frees
                .into_iter()
                .filter(|&w| arena.block_class(w).is_some())
                .collect();
            used = (used + allocs.iter().map(|&w| class_bytes(w)).sum::<u64>())
                .saturating_sub(frees.iter().map(|&w| class_bytes(w)).sum::<u64>());
            if kind == UNDO_REMOVE && t.state(i) == EMPTY {
                let plan = h.undo_old.load(Relaxed);
                if plan != u64::MAX {
                    t.finish_vacate(i, plan.min(t.cap() as u64));
                }
            }
            frees
        } else {
            // the blocks it allocated (each noted before it was taken)
            allocs
        };
        for (j, &w) in side.iter().enumerate() {
            // a free that finished, or a block never taken (still its
            // list's head, or not below the top), needs nothing
            if j < freed {
                continue;
            }
            match arena.block_class(w) {
                Some(class) if !arena.is_head(w, class) => list.push(w),
                _ => {}
            }
        }
        // the counts after the change if it was published, else before it
        let at = committed as usize;
        h.size.store(h.undo_size[at].load(Relaxed), Relaxed);
        crate::fault::point();
        h.tombstones.store(h.undo_tombs[at].load(Relaxed), Relaxed);
        crate::fault::point();
        // (the record's own words stay as they are: this part can run again)
        for (j, &w) in list.iter().enumerate() {
            h.undo_list[j].store(w, Relaxed);
            crate::fault::point();
        }
        h.undo_nlist.store(list.len() as u64, Relaxed);
        crate::fault::point();
        h.undo_used_after.store(used, Relaxed);
        crate::fault::point();
        h.undo_pushed.store(0, Relaxed);
        crate::fault::point();
        h.undo_state.store(UNDO_RECOVERING, Release);
        crate::fault::point();
    }
    let n = (h.undo_nlist.load(Relaxed) as usize).min(UNDO_MAX_ALLOC);
    for j in (h.undo_pushed.load(Relaxed) as usize)..n {
        let w = h.undo_list[j].load(Relaxed);
        if let Some(class) = arena.block_class(w) {
            if !arena.is_head(w, class) {
                arena.push_back(w, class);
            }
        }
        h.undo_pushed.store(j as u64 + 1, Relaxed);
        crate::fault::point();
    }
    h.arena_used.store(h.undo_used_after.load(Relaxed), Relaxed);
    crate::fault::point();
    // The state stays `UNDO_RECOVERING`, all pushed: running this again
    // only sets `arena_used` again, so a death before the window closes
    // needs no walk (the next lock sets `UNDO_WALK`).
    true
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
    // the walks see the active table only (a migration's moves are whole:
    // `migrate::recover` ran first)
    core.settle();
    let Some(t) = core.active() else { return };
    crate::fault::walked();
    let hdr = core.hdr();
    let d = hdr.table.load(Relaxed);
    let other = 1 - desc_region(d);
    hdr.spare_dirty.store(0, Relaxed);
    hdr.spare_alloc.store(0, Relaxed);
    hdr.spare_links.store(0, Relaxed);
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
        core.lru().rebuild(core.lru_tables());
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
    core.settle();
    let Some(t) = core.active() else { return };
    crate::fault::walked();
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

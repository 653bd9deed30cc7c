//! Incremental resize: a grow, shrink or compaction of a large table moves
//! its entries into the new table a few at a time, one step per write,
//! while both tables serve (DESIGN.md section 6, "Migration").
//!
//! A migration is published with the new table's descriptor in
//! `Header::table` and the old one's in `Header::mig_old`; the frontier
//! `Header::mig_front` is an old-table slot: every entry whose home there
//! is below it has moved. Entries never are in both tables at once for a
//! reader: a move fills the new slot (its state store publishes it), then
//! marks the old slot a tombstone; between the two, lookups of homes at or
//! above the frontier find the old copy first. Inserts go to the new
//! table; overwrites, counters and removals change an entry where it is.
//! A lookup whose old home is below the frontier probes the new table
//! only; else the old one, then the new one. A walk in hash order takes
//! the smaller next entry of the two tables, so `each` and cursors keep
//! their exactly-once guarantee across a migration by any process.
//!
//! Crash safety: moves run with the sequence odd, and each is recorded
//! (old slot, new slot: `Header::mig_move_*`) before its first store;
//! every recovery first finishes a move whose new slot holds the entry (it
//! marks the old slot) and otherwise forgets it (nothing visible
//! happened), in constant time. Moves change no count (`size` counts both
//! tables, `tombstones` only the new one, and a move takes an empty slot
//! and leaves a tombstone in the old table), so a step inside another
//! change leaves that change's record true. A step on its own (one per
//! writer's lock) runs in state `UNDO_MIGRATE`: its repair is that move
//! alone. The start of a migration keeps the record of a resize
//! (`Core::resize_begin`): a death in it is finished or taken back from
//! that, in constant time.
//!
//! On an LRU map the list runs through both tables (its links name their
//! region: `raw::lru`), and a move takes the entry's place in it: the new
//! slot's link is a copy of the old one's before the store that
//! publishes the slot, and the neighbours name the new slot after it
//! ([`crate::raw::lru::Lru::copy_link`], [`crate::raw::lru::Lru::take_place`]);
//! a recovery that finishes the move makes that second half again. LRU
//! maps too large for the region bit keep the stop-the-world resize, as
//! do tables smaller than [`MIGRATE_MIN`] slots (a quarter of it on an
//! LRU map). The few operations that walk the whole map
//! anyway (a full flush, `verify`, `freeze`) call `Core::settle` first,
//! which finishes a migration in progress; `reserve` grows by a migration
//! like an insert (one in progress is finished first only if the table it
//! fills is too small).
//!
//! This module has the moves and the walk across both tables, on tables
//! and the header alone; `raw::core` decides when a migration starts,
//! steps and ends (`Core::resize_stepwise`, `Core::between_changes`,
//! `Core::settle`) and makes the inactive region ready
//! (`Core::tend_spare`).

use crate::format::layout::{Header, EMPTY, FULL, TOMB};
use crate::raw::lru::Lru;
use crate::raw::table::Table;
use std::sync::atomic::{AtomicU64, Ordering::*};

/// Tables of fewer slots than this resize at once (a rebuild of 65,536
/// slots takes about a millisecond), an LRU map's of fewer than a quarter
/// of it (its rebuild also sorts the list's stamps). A variable only so
/// that the crate's tests can make small tables migrate.
pub static MIGRATE_MIN: AtomicU64 = AtomicU64::new(crate::testing::MIGRATE_MIN_DEFAULT);

/// Old-table home slots one step moves the entries of (each write does
/// one step): 64 homes, ~48 entries at the load a grow starts from. A
/// table of `c` slots migrates in `c / 64` writes, long before the new
/// table (at least 1.5 times as large, at a load of 1/2) fills. A
/// variable only for the crate's tests (small steps make migrations of
/// small tables last).
pub static STEP_HOMES: AtomicU64 = AtomicU64::new(64);

/// Bytes of the inactive region punched or allocated per writer's lock
/// (about half a millisecond on tmpfs).
pub(crate) const SPARE_CHUNK: u64 = 2 << 20;

/// Regions smaller than this are allocated when their migration starts
/// (about two milliseconds on tmpfs), not ahead.
pub(crate) const SPARE_MIN: u64 = 4 * SPARE_CHUNK;

/// Move the entries of `old` whose home is in `[front, end)` to `new`,
/// then store the frontier `end` (writer lock held, sequence odd). They
/// lie between `front` and the first empty slot at or after `end`
/// (wrapping at the end of the table): no empty slot separates an entry
/// from its home. `lru`: an LRU map's list (unlogged), which each move
/// relinks.
pub(crate) fn step(
    h: &Header,
    old: &Table,
    new: &Table,
    front: usize,
    end: usize,
    lru: Option<&Lru>,
) {
    let cap = old.cap();
    for j in front..front + cap {
        let s = j % cap;
        let st = old.state(s);
        if st == EMPTY && j >= end {
            break;
        }
        if st == FULL {
            let m = old.meta(s);
            let home = old.home(m);
            if home >= front && home < end {
                move_entry(h, old, new, s, m, lru);
            }
        }
    }
    h.mig_front.store(end as u64, Release);
    crate::fault::point();
}

/// Move the entry in old slot `s` (meta `m`) to the new table: record the
/// move, fill the new slot (its state store publishes it), mark the old
/// one a tombstone, clear the record; on an LRU map the new slot takes
/// the old one's place in the list around the publishing store.
fn move_entry(h: &Header, old: &Table, new: &Table, s: usize, m: u64, lru: Option<&Lru>) {
    let Some(j) = new.first_empty(m) else {
        return; // no room (a damaged count): it stays where it is
    };
    let ext = if old.has_ext() {
        old.ext(s).load(Relaxed)
    } else {
        0
    };
    h.mig_move_to.store(j as u64, Relaxed);
    h.mig_move_from.store(s as u64 + 1, Release);
    crate::fault::point();
    if lru.is_some() {
        Lru::copy_link(old, s, new, j);
    }
    new.fill(j, m, old.key(s), old.val(s), ext);
    if let Some(l) = lru {
        l.take_place(old, s, new, j);
    }
    old.set_state(s, TOMB);
    crate::fault::point();
    h.mig_move_from.store(0, Release);
    crate::fault::point();
}

/// Recovery of the move in flight, if any, in constant time: finished if
/// its new slot holds the entry (on an LRU map its neighbours are pointed
/// at it again, then the old slot becomes a tombstone), forgotten if not
/// (nothing visible happened, and nothing names the new slot). `tables`:
/// the old and the new table of the migration in progress.
pub(crate) fn finish_move(h: &Header, tables: Option<(Table, Table)>, lru: Option<&Lru>) {
    let from = h.mig_move_from.load(Acquire);
    if from == 0 {
        return;
    }
    if let Some((old, new)) = tables {
        let (s, j) = (from as usize - 1, h.mig_move_to.load(Relaxed) as usize);
        if s < old.cap()
            && j < new.cap()
            && old.is_full(s)
            && new.is_full(j)
            && new.key(j) == old.key(s)
            && new.meta(j) == old.meta(s)
        {
            if let Some(l) = lru {
                l.take_place(&old, s, &new, j);
            }
            old.set_state(s, TOMB);
            crate::fault::point();
        }
    }
    h.mig_move_from.store(0, Relaxed);
    crate::fault::point();
}

/// The next entry of a walk in hash order after `after`, across the new
/// table and, during a migration, the old one with its frontier: the
/// table and the slot.
pub(crate) fn next_after(
    new: Table,
    old: Option<(Table, usize)>,
    after: Option<u64>,
) -> Option<(Table, usize)> {
    let a = new.next_after(after).map(|i| (new, i));
    let Some((old, front)) = old else {
        return a;
    };
    // (no entry of the old table has a home below the frontier)
    let b = old.next_after_from(after, front).map(|i| (old, i));
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.0.meta(y.1) & !3 < x.0.meta(x.1) & !3 {
            y
        } else {
            x
        }),
        (x, None) => x,
        (None, y) => y,
    }
}

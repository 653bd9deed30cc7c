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
//! alone. The start of a migration keeps no record, like a stop-the-world
//! resize: a death in it needs the walks, which settle the migration
//! first.
//!
//! Maps with LRU keep the stop-the-world resize (their list links slots of
//! one table), as do tables smaller than [`MIGRATE_MIN`] slots, a resize
//! for a batch or `reserve`, and every operation that is not
//! migration-aware: they call [`Core::settle`] first, which finishes a
//! migration in progress.

use crate::error::Result;
use crate::format::layout::{desc_region, table_desc, EMPTY, FULL, TOMB, UNDO_MIGRATE, UNDO_WALK};
use crate::raw::core::Core;
use crate::raw::table::{Probe, Shape, Table};
use std::sync::atomic::{AtomicU64, Ordering::*};

/// Tables of fewer slots than this resize at once (a rebuild of 65,536
/// slots takes about a millisecond). A variable only so that the crate's
/// tests can make small tables migrate.
pub static MIGRATE_MIN: AtomicU64 = AtomicU64::new(crate::testing::MIGRATE_MIN_DEFAULT);

/// Old-table home slots one step moves the entries of (each write does
/// one step): 64 homes, ~48 entries at the load a grow starts from. A
/// table of `c` slots migrates in `c / 64` writes, long before the new
/// table (at least 1.5 times as large, at a load of 1/2) fills. A
/// variable only for the crate's tests (small steps make migrations of
/// small tables last).
pub static STEP_HOMES: AtomicU64 = AtomicU64::new(64);

impl Core {
    /// The old table and the frontier, while a migration is in progress.
    #[inline(always)]
    pub(crate) fn migrating_as<S: Shape>(&self) -> Option<(Table<S>, usize)> {
        let h = self.hdr();
        let old = h.mig_old.load(Acquire);
        if old == 0 {
            return None;
        }
        self.migrating_slow::<S>(old)
    }

    #[inline(never)]
    fn migrating_slow<S: Shape>(&self, old: u64) -> Option<(Table<S>, usize)> {
        let h = self.hdr();
        if desc_region(old) == desc_region(h.table.load(Acquire)) {
            return None; // a start that never published
        }
        let t = self.table_as::<S>(old)?;
        let front = (h.mig_front.load(Acquire) as usize).min(t.cap());
        Some((t, front))
    }

    /// True while a migration is in progress.
    #[inline(always)]
    pub fn is_migrating(&self) -> bool {
        self.migrating_as::<crate::raw::table::Dyn>().is_some()
    }

    /// Find the key with `hash` (`eq` compares a key word) in the table
    /// that holds it: the new table, then during a migration the old one,
    /// if the key's home there is at or above the frontier (a key is in
    /// one table only, so the order is free: this one costs a lookup that
    /// finds its key nothing). Not found: the new table's probe (its
    /// vacant slot is where an insert goes).
    #[inline(always)]
    pub(crate) fn find_as<S: Shape>(
        &self,
        new: Table<S>,
        hash: u64,
        mut eq: impl FnMut(u64) -> bool,
    ) -> (Table<S>, Probe) {
        match new.probe(hash, &mut eq) {
            Probe::Found(i) => (new, Probe::Found(i)),
            p if self.hdr().mig_old.load(Acquire) == 0 => (new, p),
            p => match self.find_in_old::<S>(hash, &mut eq) {
                Some((old, i)) => (old, Probe::Found(i)),
                None => (new, p),
            },
        }
    }

    /// The old table's part of [`Core::find_as`], out of the hot path.
    #[cold]
    #[inline(never)]
    fn find_in_old<S: Shape>(
        &self,
        hash: u64,
        eq: &mut impl FnMut(u64) -> bool,
    ) -> Option<(Table<S>, usize)> {
        let (old, front) = self.migrating_as::<S>()?;
        if old.home(hash) < front {
            return None;
        }
        match old.probe(hash, eq) {
            Probe::Found(i) => Some((old, i)),
            _ => None,
        }
    }

    /// [`Core::find_as`] for a read: the table, the slot and its value
    /// word.
    #[inline(always)]
    pub(crate) fn find_read_as<S: Shape>(
        &self,
        new: Table<S>,
        hash: u64,
        mut eq: impl FnMut(u64) -> bool,
    ) -> Option<(Table<S>, usize, u64)> {
        match new.probe_read(hash, &mut eq) {
            Some((i, w)) => Some((new, i, w)),
            None if self.hdr().mig_old.load(Acquire) == 0 => None,
            None => self.find_read_in_old::<S>(hash, &mut eq),
        }
    }

    /// The old table's part of [`Core::find_read_as`].
    #[cold]
    #[inline(never)]
    fn find_read_in_old<S: Shape>(
        &self,
        hash: u64,
        eq: &mut impl FnMut(u64) -> bool,
    ) -> Option<(Table<S>, usize, u64)> {
        let (old, front) = self.migrating_as::<S>()?;
        if old.home(hash) < front {
            return None;
        }
        old.probe_read(hash, eq).map(|(i, w)| (old, i, w))
    }

    /// Resize to `cap` slots step by step if the map allows it (see the
    /// module), else at once. Writer lock held, sequence odd.
    pub(crate) fn resize_stepwise<S: Shape>(&mut self, cap: u64) -> Result<()> {
        let Some(old) = self.active() else {
            return Err(self.damaged());
        };
        if self.lru_on || !self.migrate_ok || (old.cap() as u64) < MIGRATE_MIN.load(Relaxed) {
            return self.resize_as::<S>(cap);
        }
        self.settle_nested();
        let h = self.hdr();
        let d = h.table.load(Relaxed);
        let other = 1 - desc_region(d);
        let (off, rb) = (self.geo.region_off[other], self.geo.region_bytes());
        // like a resize, the start keeps no record: a death in it needs
        // the walks (which punch the inactive region)
        h.undo_state.store(UNDO_WALK, Relaxed);
        // The region must be zero: what a retired table left that the
        // writes since did not punch is punched now; past what they
        // allocated ahead (zero), it is punched again, which costs
        // nothing where it is a hole.
        let dirty = h.spare_dirty.load(Relaxed).min(rb);
        let spare = if dirty > 0 {
            0
        } else {
            h.spare_alloc.load(Relaxed).min(rb)
        };
        h.spare_dirty.store(0, Relaxed);
        h.spare_alloc.store(0, Relaxed);
        crate::fault::point();
        self.region.punch(off + spare, rb - spare);
        crate::fault::point();
        let need = self.geo.lay.bytes(cap);
        if need > spare {
            if let Err(e) = self.region.allocate(off + spare, need - spare) {
                // Return whatever part of it was allocated: the disk is full.
                self.region.punch(off, rb);
                return Err(e);
            }
        }
        let h = self.hdr();
        h.mig_front.store(0, Relaxed);
        h.mig_old.store(d, Relaxed);
        crate::fault::point();
        // the publishing store: from here the new table takes inserts
        h.table.store(table_desc(other as u64, cap), Release);
        crate::fault::point();
        h.tombstones.store(0, Relaxed);
        crate::fault::point();
        Ok(())
    }

    /// One step of the migration in progress, if any, on its own (writer
    /// lock held, no change in flight): the entries of the next
    /// [`STEP_HOMES`] old home slots move, in a window of their own.
    fn migrate_step(&mut self) {
        if self.is_migrating() {
            self.migrate_alone(STEP_HOMES.load(Relaxed).max(1));
        }
    }

    /// A writer's lock (no change in flight): a step of the migration in
    /// progress, or between migrations a chunk of work on the inactive
    /// region ([`Core::tend_spare`]). One test on the common path.
    #[inline(always)]
    pub(crate) fn between_changes(&mut self) {
        let h = self.hdr();
        // (no slot is larger than 32 bytes: a table of fewer slots than
        // this has a region of fewer than `SPARE_MIN` bytes)
        let cap = crate::format::layout::desc_cap(h.table.load(Relaxed));
        if (h.mig_old.load(Relaxed) | h.spare_dirty.load(Relaxed)) != 0 || cap >= SPARE_MIN / 32 {
            self.between_changes_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn between_changes_slow(&mut self) {
        self.migrate_step();
        self.tend_spare();
    }

    /// Finish the migration in progress, if any (writer lock held, no
    /// change in flight): the operations that see only the active table
    /// call this first.
    pub(crate) fn settle(&mut self) {
        while self.is_migrating() {
            self.migrate_alone(1 << 16);
        }
    }

    /// [`Core::settle`] inside a change (sequence odd): the change's own
    /// record stays true (moves change no count).
    pub(crate) fn settle_nested(&mut self) {
        while self.is_migrating() {
            self.migrate_homes(1 << 16);
        }
    }

    /// Steps on their own: in a window, in state `UNDO_MIGRATE` (a death
    /// is repaired by finishing the move in flight), then `UNDO_WALK`.
    fn migrate_alone(&mut self, homes: u64) {
        let h = self.hdr();
        h.undo_state.store(UNDO_MIGRATE, Release);
        self.seq_begin();
        crate::fault::point();
        self.migrate_homes(homes);
        self.seq_end();
        self.hdr().undo_state.store(UNDO_WALK, Relaxed);
    }

    /// Move the entries of the next `homes` old home slots, then advance
    /// the frontier; at the end, retire the old table. Sequence odd.
    fn migrate_homes(&mut self, homes: u64) {
        let Some((old, front)) = self.migrating_as::<crate::raw::table::Dyn>() else {
            return;
        };
        let Some(new) = self.active() else { return };
        let cap = old.cap();
        let end = (front as u64 + homes).min(cap as u64) as usize;
        // The entries with a home in [front, end) lie between `front` and
        // the first empty slot at or after `end` (wrapping at the end of
        // the table): no empty slot separates an entry from its home.
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
                    move_entry(self, &old, &new, s, m);
                }
            }
        }
        let h = self.hdr();
        h.mig_front.store(end as u64, Release);
        crate::fault::point();
        if end == cap {
            // Every entry has moved: the old table is retired. Its region
            // is punched a chunk per writer's lock from here on
            // (`tend_spare`), marked dirty before the store that ends the
            // migration, so that it is never taken for zero.
            h.spare_alloc.store(0, Relaxed);
            h.spare_dirty.store(self.geo.region_bytes(), Relaxed);
            crate::fault::point();
            h.mig_old.store(0, Release);
            crate::fault::point();
            if self.geo.lay.bytes(cap as u64) <= SPARE_CHUNK {
                // a small table: punched at once (what it held would
                // otherwise stay resident until the next writes)
                let off = self.geo.region_off[desc_region(old.desc())];
                self.region.punch(off, self.geo.region_bytes());
                h.spare_dirty.store(0, Relaxed);
                crate::fault::point();
            }
        }
    }

    /// A table that migrates, whose region is at least [`SPARE_MIN`] bytes
    /// (a smaller one is allocated at once when its migration starts), at
    /// a load of 0.65 or more.
    fn spare_wanted(&self) -> bool {
        let h = self.hdr();
        let cap = crate::format::layout::desc_cap(h.table.load(Relaxed));
        !self.lru_on
            && cap >= MIGRATE_MIN.load(Relaxed)
            && self.geo.lay.bytes(cap) >= SPARE_MIN
            && (h.size.load(Relaxed) + h.tombstones.load(Relaxed)) * 20 >= cap * 13
    }

    /// Between migrations, one chunk of work on the inactive table region
    /// per writer's lock (no change in flight): punch what a retired table
    /// left, then, once a large table nears its growth, allocate the
    /// region of the table it will grow to, so that neither a whole
    /// region's punch nor its allocation falls on one write. A failed
    /// allocation (a full disk) leaves it to the migration's start, which
    /// reports it.
    fn tend_spare(&mut self) {
        let h = self.hdr();
        let dirty = h.spare_dirty.load(Relaxed);
        if (dirty == 0 && !self.spare_wanted()) || self.is_migrating() {
            return; // nothing to do, or both regions are in use
        }

        let h = self.hdr();
        let other = 1 - desc_region(h.table.load(Relaxed));
        let off = self.geo.region_off[other];
        if dirty > 0 {
            let from = dirty.saturating_sub(SPARE_CHUNK);
            self.region.punch(off + from, dirty - from);
            h.spare_dirty.store(from, Relaxed);
            crate::fault::point();
            return;
        }
        let Some(t) = self.active() else { return };
        let size = h.size.load(Relaxed);
        let want = self.geo.lay.bytes(self.grown(t.cap() as u64, size));
        let have = h.spare_alloc.load(Relaxed);
        if have >= want.min(self.geo.region_bytes()) {
            return;
        }
        let len = SPARE_CHUNK.min(want - have);
        if self.region.allocate(off + have, len).is_ok() {
            h.spare_alloc.store(have + len, Relaxed);
            crate::fault::point();
        }
    }
}

/// Bytes of the inactive region punched or allocated per writer's lock
/// (about half a millisecond on tmpfs).
const SPARE_CHUNK: u64 = 2 << 20;

/// Regions smaller than this are allocated when their migration starts
/// (about two milliseconds on tmpfs), not ahead.
const SPARE_MIN: u64 = 4 * SPARE_CHUNK;

/// Move the entry in old slot `s` (meta `m`) to the new table: record the
/// move, fill the new slot (its state store publishes it), mark the old
/// one a tombstone, clear the record.
fn move_entry(core: &Core, old: &Table, new: &Table, s: usize, m: u64) {
    let Some(j) = new.first_empty(m) else {
        return; // no room (a damaged count): it stays where it is
    };
    let h = core.hdr();
    let ext = if old.has_ext() {
        old.ext(s).load(Relaxed)
    } else {
        0
    };
    h.mig_move_to.store(j as u64, Relaxed);
    h.mig_move_from.store(s as u64 + 1, Release);
    crate::fault::point();
    new.fill(j, m, old.key(s), old.val(s), ext);
    old.set_state(s, TOMB);
    crate::fault::point();
    h.mig_move_from.store(0, Release);
    crate::fault::point();
}

/// The first part of every recovery, in constant time: a move in flight
/// whose new slot holds the entry is finished (the old slot becomes a
/// tombstone); one that did not publish is forgotten; an old-table
/// descriptor left by a start that never published is cleared.
pub(crate) fn recover(core: &mut Core) {
    let h = core.hdr();
    let from = h.mig_move_from.load(Acquire);
    if from != 0 {
        if let (Some((old, _)), Some(new)) =
            (core.migrating_as::<crate::raw::table::Dyn>(), core.active())
        {
            let (s, j) = (from as usize - 1, h.mig_move_to.load(Relaxed) as usize);
            if s < old.cap()
                && j < new.cap()
                && old.is_full(s)
                && new.is_full(j)
                && new.key(j) == old.key(s)
                && new.meta(j) == old.meta(s)
            {
                old.set_state(s, TOMB);
                crate::fault::point();
            }
        }
        h.mig_move_from.store(0, Relaxed);
        crate::fault::point();
    }
    if h.mig_old.load(Relaxed) != 0 && !core.is_migrating() {
        h.mig_old.store(0, Relaxed);
        crate::fault::point();
    }
}

/// The next entry of a walk in hash order after `after` across both
/// tables of a migration (or the one table): the table and slot.
pub(crate) fn next_after(core: &Core, new: Table, after: Option<u64>) -> Option<(Table, usize)> {
    let a = new.next_after(after).map(|i| (new, i));
    let Some((old, front)) = core.migrating_as::<crate::raw::table::Dyn>() else {
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

//! The open-addressing table: linear probing from a home slot that is
//! monotone in the hash (`hash * cap >> 64`, so any capacity keeps hash
//! order), tombstones for removals, and two regions so
//! that a resize builds the new table beside the old one and publishes it
//! with one atomic store of the table descriptor.

use crate::layout::{full_meta, Link, Slot, EMPTY, TOMB};
use crate::map::Core;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::*;

/// A view of one table: where its slots are and how many.
#[derive(Clone, Copy)]
pub struct Table {
    pub(crate) slots: *const u8,
    /// Number of slots (any number from `MIN_CAP` to the map's `max_cap`).
    pub(crate) cap: usize,
    /// Bytes per slot (24, or 32 with the extension word).
    pub(crate) stride: usize,
    /// The LRU link array (null without LRU).
    pub(crate) links: *const Link,
}

/// Result of probing for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The key is in this slot.
    Found(usize),
    /// The key is absent; it would go into this slot (first tombstone or
    /// the empty slot that ended the probe).
    Vacant(usize),
    /// The key is absent and the table has no free slot (damaged table).
    NoRoom,
}

impl Table {
    /// Number of slots.
    #[inline(always)]
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The home slot of `hash`: `hash * cap / 2^64`, monotone in the hash
    /// for any capacity, so hash order is the same in every table.
    #[inline(always)]
    pub fn home(&self, hash: u64) -> usize {
        // Only the 62 bits a slot's meta keeps: a hash and its meta word
        // must have the same home (a carry from the low bits could move it).
        (((hash & !3) as u128 * self.cap as u128) >> 64) as usize
    }

    /// The slot after `i`, wrapping at the end.
    #[inline(always)]
    pub fn next(&self, i: usize) -> usize {
        if i + 1 == self.cap {
            0
        } else {
            i + 1
        }
    }

    /// The slot before `i`, wrapping at the start.
    #[inline(always)]
    fn prev(&self, i: usize) -> usize {
        if i == 0 {
            self.cap - 1
        } else {
            i - 1
        }
    }

    /// Slot `i` (`i < cap`).
    #[inline(always)]
    pub fn slot(&self, i: usize) -> &Slot {
        debug_assert!(i < self.cap());
        // SAFETY: `slots` points at `cap` slots of `stride` bytes inside the
        // mapping (checked when the Table was made); Slot is all atomics.
        unsafe { &*(self.slots.add(i * self.stride) as *const Slot) }
    }

    /// The extension word of slot `i` (maps with LRU or TTL only).
    #[inline(always)]
    pub fn ext(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < self.cap() && self.stride > 24);
        // SAFETY: as in `slot`; the word follows the 24-byte slot.
        unsafe { &*(self.slots.add(i * self.stride + 24) as *const AtomicU64) }
    }

    /// The LRU link of slot `i` (LRU maps only).
    #[inline(always)]
    pub fn link(&self, i: usize) -> &Link {
        debug_assert!(i < self.cap() && !self.links.is_null());
        // SAFETY: `links` points at `cap` links inside the mapping.
        unsafe { &*self.links.add(i) }
    }

    /// True if the slots carry extension words.
    #[inline(always)]
    pub fn has_ext(&self) -> bool {
        self.stride > 24
    }

    /// Probe for a key with `hash`; `eq` compares a key word. Visits each
    /// slot at most once, so it ends on any table, even a damaged one.
    #[inline(always)]
    pub fn probe(&self, hash: u64, mut eq: impl FnMut(u64) -> bool) -> Probe {
        let want = full_meta(hash);
        let mut i = self.home(hash);
        let mut vacant = usize::MAX;
        for _ in 0..self.cap() {
            let s = self.slot(i);
            let m = s.meta.load(Acquire);
            if m == EMPTY {
                return Probe::Vacant(if vacant == usize::MAX { i } else { vacant });
            }
            if m == want {
                if eq(s.key.load(Relaxed)) {
                    return Probe::Found(i);
                }
            } else if m == TOMB && vacant == usize::MAX {
                vacant = i;
            }
            i = self.next(i);
        }
        if vacant == usize::MAX {
            Probe::NoRoom
        } else {
            Probe::Vacant(vacant)
        }
    }

    /// The slot of the entry with the smallest hash greater than `after`
    /// (or the smallest of all for `None`): the next step of a walk in hash
    /// order. Because the home slot is the high bits of the hash, hash order
    /// is the same in a table of any size, so a walk that remembers only the
    /// last hash it returned resumes correctly after the table was grown,
    /// shrunk or compacted: every entry present throughout is returned
    /// exactly once (entries are told apart by the 62 hash bits kept in
    /// `meta`; two keys sharing all of them would be returned as one step).
    ///
    /// The entries whose home is bucket `b` all lie in the run of full or
    /// tombstone slots that starts at `b`, so each bucket is one short scan.
    pub fn next_after(&self, after: Option<u64>) -> Option<usize> {
        let first = after.map_or(0, |h| self.home(h));
        for b in first..self.cap() {
            let mut best: Option<(u64, usize)> = None;
            let mut i = b;
            for _ in 0..self.cap() {
                let m = self.slot(i).meta.load(Acquire);
                if m == EMPTY {
                    break;
                }
                let h = m & !3;
                if crate::layout::is_full(m)
                    && self.home(m) == b
                    && after.is_none_or(|a| h > a)
                    && best.is_none_or(|(bh, _)| h < bh)
                {
                    best = Some((h, i));
                }
                i = self.next(i);
            }
            if let Some((_, i)) = best {
                return Some(i);
            }
        }
        None
    }

    /// Put a full slot's words into a fresh table (no tombstones, key known
    /// to be absent); `ext` is the extension word (ignored without one).
    /// Returns the slot, or None if there is no empty slot.
    pub fn place(&self, meta: u64, key: u64, val: u64, ext: u64) -> Option<usize> {
        let mut i = self.home(meta);
        for _ in 0..self.cap() {
            let s = self.slot(i);
            if s.meta.load(Relaxed) == EMPTY {
                s.key.store(key, Relaxed);
                crate::fault::point();
                s.val.store(val, Relaxed);
                crate::fault::point();
                if self.has_ext() {
                    self.ext(i).store(ext, Relaxed);
                    crate::fault::point();
                }
                s.meta.store(meta, Release);
                crate::fault::point();
                return Some(i);
            }
            i = self.next(i);
        }
        None
    }

    /// Mark slot `i` removed. If the next slot is empty, no probe can pass
    /// through `i`, so it and the tombstones before it become empty again.
    /// Each step keeps every remaining key reachable. Returns the change in
    /// the tombstone count.
    pub fn vacate(&self, i: usize) -> i64 {
        let next = self.slot(self.next(i)).meta.load(Relaxed);
        if next != EMPTY {
            self.slot(i).meta.store(TOMB, Release);
            crate::fault::point();
            return 1;
        }
        self.slot(i).meta.store(EMPTY, Release);
        crate::fault::point();
        let mut freed = 0;
        let mut j = self.prev(i);
        while j != i && self.slot(j).meta.load(Relaxed) == TOMB {
            self.slot(j).meta.store(EMPTY, Release);
            crate::fault::point();
            freed += 1;
            j = self.prev(j);
        }
        -freed
    }
}

impl Core {
    /// The table a descriptor names, or None if the descriptor is invalid.
    #[inline(always)]
    pub(crate) fn table_of(&self, desc: u64) -> Option<Table> {
        if self.geo.stride == crate::layout::SLOT_SIZE {
            self.table_as::<false>(desc)
        } else {
            self.table_as::<true>(desc)
        }
    }

    /// As [`Core::table_of`], for a map known to have extension words
    /// (`EXT`) or not: the stride becomes a constant, which the hot read
    /// paths need (a runtime stride in the probe loop cost plain-map
    /// lookups a third of their time).
    #[inline(always)]
    pub(crate) fn table_as<const EXT: bool>(&self, desc: u64) -> Option<Table> {
        let cap = crate::layout::desc_cap(desc);
        if !(crate::layout::MIN_CAP..=self.geo.max_cap).contains(&cap) {
            return None;
        }
        let off = self.geo.region_off[crate::layout::desc_region(desc)];
        Some(Table {
            slots: self.ptr_at(off),
            cap: cap as usize,
            stride: if EXT {
                crate::layout::SLOT_SIZE + 8
            } else {
                crate::layout::SLOT_SIZE
            },
            links: if EXT && self.geo.lru {
                self.ptr_at(off + self.geo.links_off()) as *const Link
            } else {
                std::ptr::null()
            },
        })
    }
}

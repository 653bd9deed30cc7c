//! LRU order: a doubly linked list over slot indexes, most recent at the
//! head, plus a "used" mark in each slot's extension word.
//!
//! Reads never touch the list: a lock-free `get` only sets the used mark.
//! Writers promote the entries they update (thinned by `lru_skip`), and
//! eviction takes the tail, giving a marked tail a second chance (mark
//! cleared, moved to the head) before it takes an unmarked one.
//!
//! The list is derived state. Each link carries the LRU clock value of the
//! entry's last promotion (`stamp`); a resize rebuilds the links by sorting
//! the entries on their stamps.
//!
//! **Crash safety without a walk.** Every store a relink makes (links, list
//! ends, clock, the used mark) is logged first in the header
//! (`Header::lru_log`: the word and its old value), and the log is emptied
//! at the end of each relink, so a recovery rolls a relink a writer died
//! in back ([`crate::raw::core::Core::lru_rollback`]): the list is then
//! whole, as it was before that relink. A single change on an LRU map
//! keeps the record of a plain map's (`Core::undo_begin`) and makes its
//! relink after the store that publishes it (a removal unlinks after it
//! vacates the slot, an insert links after it fills it), ending with
//! [`LRU_LOG_DONE`]; a recovery that finds the change published but its
//! relink not done makes the relink again. A promotion on its own runs in
//! state `UNDO_LRU`: rolled back, it is simply lost.

use crate::format::layout::Header;
use crate::format::layout::{EXT_USED, LRU_LOG_DONE, LRU_LOG_MAX, NIL};
use crate::raw::table::{Shape, Table};
use crate::raw::ttl::Ttl;
use std::sync::atomic::Ordering::*;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// The LRU list of a map: a view of its header words with the map's
/// `lru_skip` and expiry settings (`Core::lru`).
pub struct Lru<'a> {
    /// The map's header (list ends and clock).
    pub hdr: &'a Header,
    /// Percentage of promotions to skip (`lru_skip`).
    pub skip: u64,
    /// The map's expiry settings (expired entries are evicted first).
    pub ttl: Ttl,
    /// Log each store in `Header::lru_log` (all but a rebuild, whose
    /// stores are in a table no reader sees yet, or undone by its record).
    pub log: bool,
}

impl Lru<'_> {
    /// Log the old value of the word at `p` (`wide`: 64 bits), before the
    /// store that changes it.
    fn note(&self, p: *const u8, wide: bool, old: u64) {
        if !self.log {
            return;
        }
        let h = self.hdr;
        // (done, or a count no relink reaches: a damaged file's, whose log
        // is garbage: it starts again)
        let n = h.lru_log_n.load(Relaxed);
        let n = if n >= LRU_LOG_MAX as u64 {
            0
        } else {
            n as usize
        };
        let off = p as usize - (h as *const Header as usize);
        h.lru_log[n][0].store(((off as u64) << 1) | wide as u64, Relaxed);
        h.lru_log[n][1].store(old, Relaxed);
        h.lru_log_n.store(n as u64 + 1, Release);
    }

    fn set32(&self, w: &AtomicU32, v: u32) {
        self.note(
            w as *const AtomicU32 as *const u8,
            false,
            w.load(Relaxed) as u64,
        );
        w.store(v, Relaxed);
        crate::fault::point();
    }

    fn set64(&self, w: &AtomicU64, v: u64) {
        self.note(w as *const AtomicU64 as *const u8, true, w.load(Relaxed));
        w.store(v, Relaxed);
        crate::fault::point();
    }

    /// The end of a relink: the list is whole (`done`: and the LRU part of
    /// the change in flight is done).
    pub(crate) fn end(&self, done: bool) {
        if self.log {
            let n = if done { LRU_LOG_DONE } else { 0 };
            self.hdr.lru_log_n.store(n, Release);
            crate::fault::point();
        }
    }

    /// Remove slot `i` from the list.
    pub(crate) fn unlink<S: Shape>(&self, t: &Table<S>, i: usize) {
        let h = self.hdr;
        let l = t.link(i);
        let (p, n) = (l.prev.load(Relaxed), l.next.load(Relaxed));
        let cap = t.cap() as u32;
        if p != NIL && p < cap {
            self.set32(&t.link(p as usize).next, n);
        } else {
            self.set64(&h.lru_head, n as u64);
        }
        if n != NIL && n < cap {
            self.set32(&t.link(n as usize).prev, p);
        } else {
            self.set64(&h.lru_tail, p as u64);
        }
        self.set32(&l.prev, NIL);
        self.set32(&l.next, NIL);
    }

    /// Put slot `i` (not in the list) at the head with a fresh stamp.
    pub(crate) fn push_head<S: Shape>(&self, t: &Table<S>, i: usize) {
        let h = self.hdr;
        let stamp = h.lru_clock.load(Relaxed);
        self.set64(&h.lru_clock, stamp + 1);
        self.link_head(t, i, stamp);
    }

    fn link_head<S: Shape>(&self, t: &Table<S>, i: usize, stamp: u64) {
        let h = self.hdr;
        let l = t.link(i);
        self.set64(&l.stamp, stamp);
        let old = h.lru_head.load(Relaxed) as u32;
        self.set32(&l.prev, NIL);
        self.set32(&l.next, old);
        if old != NIL && (old as usize) < t.cap() {
            self.set32(&t.link(old as usize).prev, i as u32);
        } else {
            self.set64(&h.lru_tail, i as u64);
        }
        self.set64(&h.lru_head, i as u64);
    }

    /// An update used slot `i`: move it to the head, unless `lru_skip`
    /// thins this promotion out (it then skips `lru_skip`% of promotions,
    /// chosen by the LRU clock, and marks the entry used instead). One
    /// relink: ends the log.
    pub(crate) fn promote<S: Shape>(&self, t: &Table<S>, i: usize) {
        self.promote_unended(t, i);
        self.end(true);
    }

    fn promote_unended<S: Shape>(&self, t: &Table<S>, i: usize) {
        if self.skip > 0 {
            let c = self.hdr.lru_clock.load(Relaxed);
            if (c.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100 < self.skip {
                self.set64(&self.hdr.lru_clock, c + 1);
                let e = t.ext(i);
                self.set64(e, e.load(Relaxed) | EXT_USED);
                return;
            }
        }
        if self.hdr.lru_head.load(Relaxed) as usize == i {
            return;
        }
        self.unlink(t, i);
        self.push_head(t, i);
    }

    /// The slot eviction should take: walks from the tail, moving marked
    /// entries to the head with their mark cleared (second chance), each
    /// move a relink of its own. Expired entries go first whatever their
    /// mark. Bounded: after one pass every mark is clear. Slot `keep` (an
    /// insert's own entry) is never taken: at the tail, it goes back to
    /// the head.
    pub(crate) fn victim<S: Shape>(
        &self,
        t: &Table<S>,
        now: u32,
        keep: Option<usize>,
    ) -> Option<usize> {
        let h = self.hdr;
        let size = h.size.load(Relaxed) as usize;
        for _ in 0..=size {
            let i = h.lru_tail.load(Relaxed) as u32;
            if i == NIL || i as usize >= t.cap() {
                return None;
            }
            let i = i as usize;
            if keep == Some(i) {
                // (not to be evicted: back to the head, its mark as it is)
                self.unlink(t, i);
                self.push_head(t, i);
                self.end(false);
                continue;
            }
            let e = t.ext(i).load(Relaxed);
            if e & EXT_USED == 0 || self.ttl.expired(e, now) {
                return Some(i);
            }
            self.set64(t.ext(i), e & !EXT_USED);
            self.unlink(t, i);
            self.push_head(t, i);
            self.end(false);
        }
        // (reads marked entries as fast as they were given their chance)
        let i = h.lru_tail.load(Relaxed) as usize;
        (i < t.cap() && keep != Some(i)).then_some(i)
    }

    /// Rebuild the list of `t` from the stamps of its full slots (after a
    /// resize or in recovery).
    pub(crate) fn rebuild<S: Shape>(&self, t: &Table<S>) {
        let h = self.hdr;
        let quiet = Lru {
            hdr: h,
            skip: self.skip,
            ttl: self.ttl,
            log: false,
        };
        let mut order: Vec<(u64, usize)> = (0..t.cap())
            .filter(|&i| t.is_full(i))
            .map(|i| (t.link(i).stamp.load(Relaxed), i))
            .collect();
        order.sort_unstable();
        h.lru_head.store(NIL as u64, Relaxed);
        h.lru_tail.store(NIL as u64, Relaxed);
        let mut clock = h.lru_clock.load(Relaxed);
        for &(stamp, i) in &order {
            quiet.link_head(t, i, stamp);
            clock = clock.max(stamp + 1);
        }
        h.lru_clock.store(clock, Relaxed);
    }

    /// Walk the list from the head; returns the slots in order, or a
    /// description of the first inconsistency.
    pub(crate) fn walk<S: Shape>(&self, t: &Table<S>) -> Result<Vec<usize>, String> {
        let h = self.hdr;
        let mut out = Vec::new();
        let mut prev = NIL;
        let mut i = h.lru_head.load(Relaxed) as u32;
        while i != NIL {
            if i as usize >= t.cap() || out.len() > t.cap() {
                return Err(format!("LRU link {i} out of range"));
            }
            let l = t.link(i as usize);
            if l.prev.load(Relaxed) != prev {
                return Err(format!("LRU slot {i}: prev link does not match"));
            }
            out.push(i as usize);
            prev = i;
            i = l.next.load(Relaxed);
        }
        if h.lru_tail.load(Relaxed) as u32 != prev {
            return Err("LRU tail does not match the list".into());
        }
        Ok(out)
    }
}

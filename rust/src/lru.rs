//! LRU order: a doubly linked list over slot indexes, most recent at the
//! head, plus a "used" mark in each slot's extension word.
//!
//! Reads never touch the list: a lock-free `get` only sets the used mark.
//! Writers promote the entries they update (thinned by `lru_skip`), and
//! eviction takes the tail, giving a marked tail a second chance (mark
//! cleared, moved to the head) before it takes an unmarked one.
//!
//! The list is derived state. Each link carries the LRU clock value of the
//! entry's last promotion (`stamp`); a resize and recovery rebuild the links
//! by sorting the entries on their stamps, so a writer that dies in the
//! middle of relinking loses nothing.

use crate::layout::{EXT_USED, NIL};
use crate::map::Core;
use crate::table::{Shape, Table};
use std::sync::atomic::Ordering::*;

impl Core {
    /// Remove slot `i` from the list.
    pub(crate) fn lru_unlink<S: Shape>(&self, t: &Table<S>, i: usize) {
        let h = self.hdr();
        let l = t.link(i);
        let (p, n) = (l.prev.load(Relaxed), l.next.load(Relaxed));
        let cap = t.cap() as u32;
        if p != NIL && p < cap {
            t.link(p as usize).next.store(n, Relaxed);
            crate::fault::point();
        } else {
            h.lru_head.store(n as u64, Relaxed);
            crate::fault::point();
        }
        if n != NIL && n < cap {
            t.link(n as usize).prev.store(p, Relaxed);
            crate::fault::point();
        } else {
            h.lru_tail.store(p as u64, Relaxed);
            crate::fault::point();
        }
        l.prev.store(NIL, Relaxed);
        crate::fault::point();
        l.next.store(NIL, Relaxed);
        crate::fault::point();
    }

    /// Put slot `i` (not in the list) at the head with a fresh stamp.
    pub(crate) fn lru_push_head<S: Shape>(&self, t: &Table<S>, i: usize) {
        let h = self.hdr();
        let stamp = h.lru_clock.fetch_add(1, Relaxed);
        crate::fault::point();
        self.lru_link_head(t, i, stamp);
    }

    fn lru_link_head<S: Shape>(&self, t: &Table<S>, i: usize, stamp: u64) {
        let h = self.hdr();
        let l = t.link(i);
        l.stamp.store(stamp, Relaxed);
        crate::fault::point();
        let old = h.lru_head.load(Relaxed) as u32;
        l.prev.store(NIL, Relaxed);
        crate::fault::point();
        l.next.store(old, Relaxed);
        crate::fault::point();
        if old != NIL && (old as usize) < t.cap() {
            t.link(old as usize).prev.store(i as u32, Relaxed);
            crate::fault::point();
        } else {
            h.lru_tail.store(i as u64, Relaxed);
            crate::fault::point();
        }
        h.lru_head.store(i as u64, Relaxed);
        crate::fault::point();
    }

    /// An update used slot `i`: move it to the head, unless `lru_skip`
    /// thins this promotion out (it then skips `lru_skip`% of promotions,
    /// chosen by the LRU clock, and marks the entry used instead).
    pub(crate) fn lru_promote<S: Shape>(&self, t: &Table<S>, i: usize) {
        if self.lru_skip > 0 {
            let c = self.hdr().lru_clock.load(Relaxed);
            if (c.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100 < self.lru_skip {
                self.hdr().lru_clock.fetch_add(1, Relaxed);
                crate::fault::point();
                t.ext(i).fetch_or(EXT_USED, Relaxed);
                return;
            }
        }
        if self.hdr().lru_head.load(Relaxed) as usize == i {
            return;
        }
        self.lru_unlink(t, i);
        self.lru_push_head(t, i);
    }

    /// The slot eviction should take: walks from the tail, moving marked
    /// entries to the head with their mark cleared (second chance). Expired
    /// entries go first whatever their mark. Bounded: after one pass every
    /// mark is clear.
    pub(crate) fn lru_victim<S: Shape>(&self, t: &Table<S>, now: u32) -> Option<usize> {
        let h = self.hdr();
        let size = h.size.load(Relaxed) as usize;
        for _ in 0..=size {
            let i = h.lru_tail.load(Relaxed) as u32;
            if i == NIL || i as usize >= t.cap() {
                return None;
            }
            let i = i as usize;
            let e = t.ext(i).load(Relaxed);
            if e & EXT_USED == 0 || self.expired(e, now) {
                return Some(i);
            }
            t.ext(i).fetch_and(!EXT_USED, Relaxed);
            crate::fault::point();
            self.lru_unlink(t, i);
            self.lru_push_head(t, i);
        }
        let i = h.lru_tail.load(Relaxed) as usize;
        (i < t.cap()).then_some(i)
    }

    /// Evict one entry to make room (writer lock held, seq odd). An expired
    /// victim counts in `stat_expired`, any other in `stat_evictions`.
    pub(crate) fn evict_one<S: Shape>(&mut self, t: &Table<S>, now: u32) {
        if let Some(i) = self.lru_victim(t, now) {
            if !t.is_full(i) {
                // a damaged list (a hostile file): derive it again
                self.lru_rebuild(t);
                return;
            }
            let expired = self.expired(t.ext(i).load(Relaxed), now);
            self.remove_slot(t, i);
            let h = self.hdr();
            let counter = if expired {
                &h.stat_expired
            } else {
                &h.stat_evictions
            };
            counter.fetch_add(1, Relaxed);
            crate::fault::point();
        }
    }

    /// Rebuild the list of `t` from the stamps of its full slots (after a
    /// resize or in recovery).
    pub(crate) fn lru_rebuild<S: Shape>(&self, t: &Table<S>) {
        let h = self.hdr();
        let mut order: Vec<(u64, usize)> = (0..t.cap())
            .filter(|&i| t.is_full(i))
            .map(|i| (t.link(i).stamp.load(Relaxed), i))
            .collect();
        order.sort_unstable();
        h.lru_head.store(NIL as u64, Relaxed);
        h.lru_tail.store(NIL as u64, Relaxed);
        let mut clock = h.lru_clock.load(Relaxed);
        for &(stamp, i) in &order {
            self.lru_link_head(t, i, stamp);
            clock = clock.max(stamp + 1);
        }
        h.lru_clock.store(clock, Relaxed);
    }

    /// Check the LRU list against the table: every full slot exactly once,
    /// links consistent both ways. Returns the list length.
    pub fn check_lru(&self) -> Result<usize, String> {
        let Some(t) = self.table_of(self.hdr().table.load(Acquire)) else {
            return Err("table descriptor is invalid".into());
        };
        if !self.lru_on {
            return Ok(0);
        }
        let order = self.lru_walk(&t)?;
        let full = (0..t.cap()).filter(|&i| t.is_full(i)).count();
        let mut seen = vec![false; t.cap()];
        for &i in &order {
            if seen[i] || !t.is_full(i) {
                return Err(format!("LRU slot {i} is listed twice or is not full"));
            }
            seen[i] = true;
        }
        if order.len() != full {
            return Err(format!(
                "LRU list has {} entries, the table {full}",
                order.len()
            ));
        }
        Ok(order.len())
    }

    /// Walk the list from the head; returns the slots in order, or a
    /// description of the first inconsistency.
    pub(crate) fn lru_walk<S: Shape>(&self, t: &Table<S>) -> Result<Vec<usize>, String> {
        let h = self.hdr();
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

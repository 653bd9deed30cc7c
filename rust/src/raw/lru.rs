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

use crate::format::layout::Header;
use crate::format::layout::{EXT_USED, NIL};
use crate::raw::table::{Shape, Table};
use crate::raw::ttl::Ttl;
use std::sync::atomic::Ordering::*;

/// The LRU list of a map: a view of its header words with the map's
/// `lru_skip` and expiry settings (`Core::lru`).
pub struct Lru<'a> {
    /// The map's header (list ends and clock).
    pub hdr: &'a Header,
    /// Percentage of promotions to skip (`lru_skip`).
    pub skip: u64,
    /// The map's expiry settings (expired entries are evicted first).
    pub ttl: Ttl,
}

impl Lru<'_> {
    /// Remove slot `i` from the list.
    pub(crate) fn unlink<S: Shape>(&self, t: &Table<S>, i: usize) {
        let h = self.hdr;
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
    pub(crate) fn push_head<S: Shape>(&self, t: &Table<S>, i: usize) {
        let h = self.hdr;
        let stamp = h.lru_clock.fetch_add(1, Relaxed);
        crate::fault::point();
        self.link_head(t, i, stamp);
    }

    fn link_head<S: Shape>(&self, t: &Table<S>, i: usize, stamp: u64) {
        let h = self.hdr;
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
    pub(crate) fn promote<S: Shape>(&self, t: &Table<S>, i: usize) {
        if self.skip > 0 {
            let c = self.hdr.lru_clock.load(Relaxed);
            if (c.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100 < self.skip {
                self.hdr.lru_clock.fetch_add(1, Relaxed);
                crate::fault::point();
                t.ext(i).fetch_or(EXT_USED, Relaxed);
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
    /// entries to the head with their mark cleared (second chance). Expired
    /// entries go first whatever their mark. Bounded: after one pass every
    /// mark is clear.
    pub(crate) fn victim<S: Shape>(&self, t: &Table<S>, now: u32) -> Option<usize> {
        let h = self.hdr;
        let size = h.size.load(Relaxed) as usize;
        for _ in 0..=size {
            let i = h.lru_tail.load(Relaxed) as u32;
            if i == NIL || i as usize >= t.cap() {
                return None;
            }
            let i = i as usize;
            let e = t.ext(i).load(Relaxed);
            if e & EXT_USED == 0 || self.ttl.expired(e, now) {
                return Some(i);
            }
            t.ext(i).fetch_and(!EXT_USED, Relaxed);
            crate::fault::point();
            self.unlink(t, i);
            self.push_head(t, i);
        }
        let i = h.lru_tail.load(Relaxed) as usize;
        (i < t.cap()).then_some(i)
    }

    /// Rebuild the list of `t` from the stamps of its full slots (after a
    /// resize or in recovery).
    pub(crate) fn rebuild<S: Shape>(&self, t: &Table<S>) {
        let h = self.hdr;
        let mut order: Vec<(u64, usize)> = (0..t.cap())
            .filter(|&i| t.is_full(i))
            .map(|i| (t.link(i).stamp.load(Relaxed), i))
            .collect();
        order.sort_unstable();
        h.lru_head.store(NIL as u64, Relaxed);
        h.lru_tail.store(NIL as u64, Relaxed);
        let mut clock = h.lru_clock.load(Relaxed);
        for &(stamp, i) in &order {
            self.link_head(t, i, stamp);
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

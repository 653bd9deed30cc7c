//! LRU order: a doubly linked list over node ids (slots, with their
//! table's region: below), most recent at the head, plus a "used" mark in each slot's extension word.
//!
//! Reads never touch the list: a lock-free `get` only sets the used mark.
//! Writers promote the entries they update (thinned by `lru_skip`), and
//! eviction takes the tail, giving a marked tail a second chance (mark
//! cleared, moved to the head) before it takes an unmarked one.
//!
//! The list is derived state. Each link carries the LRU clock value of the
//! entry's last promotion (`stamp`); a resize at once rebuilds the links by
//! sorting the entries on their stamps.
//!
//! **Links name their table.** A link, `lru_head` and `lru_tail` hold a
//! node id: the slot, with the table region it is in as bit 31
//! ([`Lru::id`]). An entry's region never changes while it is in one, so
//! a migration's start and end retag nothing, and while two tables serve
//! the list runs through both: a migration's move copies the entry's link
//! to its new slot and points its neighbours there
//! ([`Lru::move_links`]). Maps whose largest table has `2^31 - 1` slots
//! or more keep plain slot numbers and resize at once.
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

use crate::format::layout::{desc_region, Header, Link};
use crate::format::layout::{EXT_USED, LRU_LOG_DONE, LRU_LOG_MAX, NIL};
use crate::raw::table::{Shape, Table};
use crate::raw::ttl::Ttl;
use std::sync::atomic::Ordering::*;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// The region bit of a node id.
const REGION: u32 = 1 << 31;

/// The node id of slot `i` of `t`: with the region bit if `tagged`.
#[inline]
pub(crate) fn node_id<S: Shape>(tagged: bool, t: &Table<S>, i: usize) -> u32 {
    if tagged {
        i as u32 | (desc_region(t.desc()) as u32) << 31
    } else {
        i as u32
    }
}

/// What the list needs of one table: where its links and extension words
/// are, and how many slots it has (0: no table in that region).
#[derive(Clone, Copy)]
pub(crate) struct Nodes {
    links: *const Link,
    /// The first slot's extension word, `stride` bytes from the next's.
    ext: *const u8,
    stride: usize,
    cap: usize,
}

impl Nodes {
    /// No table.
    pub(crate) const NONE: Nodes = Nodes {
        links: std::ptr::null(),
        ext: std::ptr::null(),
        stride: 0,
        cap: 0,
    };

    /// The nodes of `t`, a table with links and extension words.
    #[inline(always)]
    pub(crate) fn of<S: Shape>(t: &Table<S>) -> Nodes {
        Nodes {
            links: t.links(),
            ext: t.ext(0) as *const AtomicU64 as *const u8,
            stride: t.stride(),
            cap: t.cap(),
        }
    }
}

/// The LRU list of a map: a view of its header words and of the tables
/// its entries are in, with the map's `lru_skip` and expiry settings
/// (`Core::lru`).
pub struct Lru<'a> {
    /// The map's header (list ends and clock).
    pub hdr: &'a Header,
    /// Percentage of promotions to skip (`lru_skip`).
    pub skip: u64,
    /// The map's expiry settings (expired entries are evicted first).
    pub ttl: Ttl,
    /// Log each store in `Header::lru_log` (all but a rebuild's and a
    /// move's, whose stores are in a table no reader sees yet, or undone
    /// or finished again by their records).
    pub log: bool,
    /// The tables the list runs through, by region: the active one and,
    /// during a migration, the old one.
    nodes: [Nodes; 2],
    /// Node ids carry the region bit; if not (a map too large for it,
    /// which never migrates), a node is a slot of the table in region
    /// `plain`.
    tagged: bool,
    plain: usize,
}

impl<'a> Lru<'a> {
    /// The list of `hdr` over the tables `nodes` (by region; `plain`: the
    /// region of the only one, for ids without the region bit).
    #[inline(always)]
    pub(crate) fn new(
        hdr: &'a Header,
        skip: u64,
        ttl: Ttl,
        nodes: [Nodes; 2],
        tagged: bool,
        plain: usize,
    ) -> Lru<'a> {
        Lru {
            hdr,
            skip,
            ttl,
            log: true,
            nodes,
            tagged,
            plain,
        }
    }

    /// The node id of slot `i` of `t`.
    #[inline]
    pub(crate) fn id<S: Shape>(&self, t: &Table<S>, i: usize) -> u32 {
        node_id(self.tagged, t, i)
    }

    /// The region and slot of node `id`, if it names a slot of one of
    /// the list's tables (not `NIL`, not out of range).
    #[inline(always)]
    pub(crate) fn node(&self, id: u32) -> Option<(usize, usize)> {
        let (r, i) = if self.tagged {
            // (NIL: region 1, slot 2^31 - 1, past any table's end)
            ((id >> 31) as usize, (id & !REGION) as usize)
        } else {
            (self.plain, if id == NIL { usize::MAX } else { id as usize })
        };
        (i < self.nodes[r].cap).then_some((r, i))
    }

    /// The link of node `id`, as [`Lru::node`].
    #[inline(always)]
    fn link(&self, id: u32) -> Option<&Link> {
        let (r, i) = self.node(id)?;
        // SAFETY: `links` points at the `cap` links of a table of the map.
        Some(unsafe { &*self.nodes[r].links.add(i) })
    }

    /// The extension word of node `id`, as [`Lru::node`].
    #[inline(always)]
    fn ext(&self, id: u32) -> Option<&AtomicU64> {
        let (r, i) = self.node(id)?;
        let n = &self.nodes[r];
        // SAFETY: slot `i` of a table of the map, which has extension words.
        Some(unsafe { &*(n.ext.add(i * n.stride) as *const AtomicU64) })
    }

    /// The same view, its stores unlogged, over `tables` (a rebuild's).
    fn quiet(&self, tables: [Option<Table>; 2]) -> Lru<'a> {
        let plain = tables.iter().position(Option::is_some).unwrap_or(0);
        let nodes = tables.map(|t| t.map_or(Nodes::NONE, |t| Nodes::of(&t)));
        Lru::new(self.hdr, self.skip, self.ttl, nodes, self.tagged, plain).unlogged()
    }

    /// The same view, its stores unlogged.
    pub(crate) fn unlogged(mut self) -> Lru<'a> {
        self.log = false;
        self
    }

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

    /// The neighbours of a node, `p` before it and `n` after it, name
    /// other nodes: `p` (or the list's head) names `next` as its next, `n`
    /// (or the tail) `prev` as its prev.
    #[inline(always)]
    fn point_neighbours(&self, (p, n): (u32, u32), next: u32, prev: u32) {
        let h = self.hdr;
        match self.link(p) {
            Some(pl) => self.set32(&pl.next, next),
            None => self.set64(&h.lru_head, next as u64),
        }
        match self.link(n) {
            Some(nl) => self.set32(&nl.prev, prev),
            None => self.set64(&h.lru_tail, prev as u64),
        }
    }

    /// Remove slot `i` of `t` from the list.
    pub(crate) fn unlink<S: Shape>(&self, t: &Table<S>, i: usize) {
        self.unlink_id(self.id(t, i));
    }

    fn unlink_id(&self, id: u32) {
        let Some(l) = self.link(id) else { return };
        let (p, n) = (l.prev.load(Relaxed), l.next.load(Relaxed));
        self.point_neighbours((p, n), n, p);
        self.set32(&l.prev, NIL);
        self.set32(&l.next, NIL);
    }

    /// Put slot `i` of `t` (not in the list) at the head with a fresh
    /// stamp.
    pub(crate) fn push_head<S: Shape>(&self, t: &Table<S>, i: usize) {
        self.push_head_id(self.id(t, i));
    }

    fn push_head_id(&self, id: u32) {
        let h = self.hdr;
        let stamp = h.lru_clock.load(Relaxed);
        self.set64(&h.lru_clock, stamp + 1);
        self.link_head(id, stamp);
    }

    fn link_head(&self, id: u32, stamp: u64) {
        let h = self.hdr;
        let Some(l) = self.link(id) else { return };
        self.set64(&l.stamp, stamp);
        let old = h.lru_head.load(Relaxed) as u32;
        self.set32(&l.prev, NIL);
        self.set32(&l.next, old);
        match self.link(old) {
            Some(ol) => self.set32(&ol.prev, id),
            None => self.set64(&h.lru_tail, id as u64),
        }
        self.set64(&h.lru_head, id as u64);
    }

    /// An update used slot `i` of `t`: move it to the head, unless
    /// `lru_skip` thins this promotion out (it then skips `lru_skip`% of
    /// promotions, chosen by the LRU clock, and marks the entry used
    /// instead). One relink: ends the log.
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
        let id = self.id(t, i);
        if self.hdr.lru_head.load(Relaxed) as u32 == id {
            return;
        }
        self.unlink_id(id);
        self.push_head_id(id);
    }

    /// The node eviction should take: walks from the tail, moving marked
    /// entries to the head with their mark cleared (second chance), each
    /// move a relink of its own. Expired entries go first whatever their
    /// mark. Bounded: after one pass every mark is clear. Node `keep` (an
    /// insert's own entry) is never taken: at the tail, it goes back to
    /// the head.
    pub(crate) fn victim(&self, now: u32, keep: Option<u32>) -> Option<u32> {
        let h = self.hdr;
        let size = h.size.load(Relaxed) as usize;
        for _ in 0..=size {
            let id = h.lru_tail.load(Relaxed) as u32;
            let ext = self.ext(id)?;
            if keep == Some(id) {
                // (not to be evicted: back to the head, its mark as it is)
                self.unlink_id(id);
                self.push_head_id(id);
                self.end(false);
                continue;
            }
            let e = ext.load(Relaxed);
            if e & EXT_USED == 0 || self.ttl.expired(e, now) {
                return Some(id);
            }
            self.set64(ext, e & !EXT_USED);
            self.unlink_id(id);
            self.push_head_id(id);
            self.end(false);
        }
        // (reads marked entries as fast as they were given their chance)
        let id = h.lru_tail.load(Relaxed) as u32;
        self.node(id).and(Some(id)).filter(|_| keep != Some(id))
    }

    /// A migration's move of an entry from slot `s` of `old` to slot `j`
    /// of `new` ([`crate::raw::migrate`]) relinks in two halves around the
    /// store that publishes the new slot. This is the first: the new
    /// slot's link becomes a copy of the old one's.
    pub(crate) fn copy_link(old: &Table, s: usize, new: &Table, j: usize) {
        let (from, to) = (old.link(s), new.link(j));
        to.stamp.store(from.stamp.load(Relaxed), Relaxed);
        to.prev.store(from.prev.load(Relaxed), Relaxed);
        to.next.store(from.next.load(Relaxed), Relaxed);
        crate::fault::point();
    }

    /// The second half of a move's relink (see [`Lru::copy_link`]): the
    /// neighbours and list ends that named the old node name the new one.
    /// Every store is idempotent (the old link is left as it was), so a
    /// recovery that finds the new slot full makes it again.
    pub(crate) fn take_place(&self, old: &Table, s: usize, new: &Table, j: usize) {
        let (to, l) = (self.id(new, j), old.link(s));
        self.point_neighbours((l.prev.load(Relaxed), l.next.load(Relaxed)), to, to);
    }

    /// Rebuild the list of the entries of `tables` (by region) from the
    /// stamps of their full slots (after a resize at once, in recovery, or
    /// of a damaged list).
    pub(crate) fn rebuild(&self, tables: [Option<Table>; 2]) {
        let h = self.hdr;
        let quiet = self.quiet(tables);
        let mut order: Vec<(u64, u32)> = Vec::new();
        for t in tables.iter().flatten() {
            order.extend(
                (0..t.cap())
                    .filter(|&i| t.is_full(i))
                    .map(|i| (t.link(i).stamp.load(Relaxed), quiet.id(t, i))),
            );
        }
        order.sort_unstable();
        h.lru_head.store(NIL as u64, Relaxed);
        h.lru_tail.store(NIL as u64, Relaxed);
        let mut clock = h.lru_clock.load(Relaxed);
        for &(stamp, id) in &order {
            quiet.link_head(id, stamp);
            clock = clock.max(stamp + 1);
        }
        h.lru_clock.store(clock, Relaxed);
    }

    /// Walk the list from the head; returns the nodes in order, or a
    /// description of the first inconsistency.
    pub(crate) fn walk(&self) -> Result<Vec<u32>, String> {
        let h = self.hdr;
        let slots: usize = self.nodes.iter().map(|n| n.cap).sum();
        let mut out = Vec::new();
        let mut prev = NIL;
        let mut id = h.lru_head.load(Relaxed) as u32;
        while id != NIL {
            let Some(l) = self.link(id).filter(|_| out.len() <= slots) else {
                return Err(format!("LRU link {id:#x} out of range"));
            };
            if l.prev.load(Relaxed) != prev {
                return Err(format!("LRU node {id:#x}: prev link does not match"));
            }
            out.push(id);
            prev = id;
            id = l.next.load(Relaxed);
        }
        if h.lru_tail.load(Relaxed) as u32 != prev {
            return Err("LRU tail does not match the list".into());
        }
        Ok(out)
    }
}

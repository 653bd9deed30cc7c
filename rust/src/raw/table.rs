//! The open-addressing table: linear probing from a home slot that is
//! monotone in the hash (`hash * cap >> 64`, so any capacity keeps hash
//! order), tombstones for removals, and two regions so
//! that a resize builds the new table beside the old one and publishes it
//! with one atomic store of the table descriptor.

use crate::format::layout::{full_meta, Layout, Link, Slot, BAD, EMPTY, FULL, TOMB};
use crate::raw::codec::Codec;
use std::marker::PhantomData;
use std::sync::atomic::Ordering::*;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8};

/// Where a table's [`Layout`] comes from: a constant of the type (the hot
/// paths of a variant, which know it at compile time, so that every
/// accessor below compiles to fixed offsets without a branch), or the
/// `lay` field ([`Dyn`]: code shared by all variants).
pub trait Shape: Copy + 'static {
    /// The layout, or None to read the table's `lay` field.
    const LAY: Option<Layout>;
}

/// The layout is the table's `lay` field.
#[derive(Clone, Copy)]
pub struct Dyn;
impl Shape for Dyn {
    const LAY: Option<Layout> = None;
}

/// Wide slots with extension words: every map with LRU or TTL.
#[derive(Clone, Copy)]
pub struct Ext;
impl Shape for Ext {
    const LAY: Option<Layout> = Some(Layout::wide(true));
}

/// The layout of a plain map (no LRU, no TTL) of keys `K` and values `V`.
pub struct Plain<K, V>(PhantomData<fn() -> (K, V)>);
impl<K, V> Clone for Plain<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Plain<K, V> {}
impl<K: Codec, V: Codec> Shape for Plain<K, V> {
    const LAY: Option<Layout> = Some(Layout::of(
        if K::BYTES { 0 } else { K::BITS as usize / 8 },
        if V::BYTES { 0 } else { V::BITS as usize / 8 },
        false,
    ));
}

/// A view of one table: where its slots are, how many, and their layout.
/// Every access to a slot goes through it, so the two slot shapes of
/// [`Layout`] (wide and packed) look the same to the rest of the engine:
/// a state, a 64-bit key word and a 64-bit value word (integers narrower
/// than 64 bits are widened with their sign).
pub struct Table<S: Shape = Dyn> {
    slots: *const u8,
    /// Number of slots (any number from `MIN_CAP` to the map's `max_cap`).
    cap: usize,
    /// How the slots are laid out (read only with the [`Dyn`] shape).
    lay: Layout,
    /// The map's hash seed: packed slots recompute a key's hash.
    seed: u64,
    /// The LRU link array (null without LRU).
    links: *const Link,
    /// The descriptor that names this table (`Header::table` or, during a
    /// migration, `Header::mig_old`).
    desc: u64,
    shape: PhantomData<S>,
}

impl<S: Shape> Table<S> {
    /// The table of `cap` slots laid out as `lay` at `slots` (LRU links at
    /// `links`, or null).
    ///
    /// # Safety
    /// `slots` points at a table of `cap` such slots (and `links` at `cap`
    /// links, if not null) inside a mapping that outlives the table; `S`
    /// gives `lay` if it gives a layout.
    #[inline(always)]
    pub(crate) unsafe fn new(
        slots: *const u8,
        cap: usize,
        lay: Layout,
        seed: u64,
        links: *const Link,
        desc: u64,
    ) -> Table<S> {
        Table {
            slots,
            cap,
            lay,
            seed,
            links,
            desc,
            shape: PhantomData,
        }
    }
}

impl<S: Shape> Clone for Table<S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S: Shape> Copy for Table<S> {}

/// Load a `w`-byte integer at `p`, widened with its sign (8: the raw word).
///
/// # Safety
/// `p` is aligned to `w` and points at `w` bytes inside the mapping.
#[inline(always)]
unsafe fn load_w(p: *const u8, w: usize, o: std::sync::atomic::Ordering) -> u64 {
    // SAFETY: the caller's contract.
    unsafe {
        match w {
            2 => (*(p as *const AtomicU16)).load(o) as i16 as i64 as u64,
            4 => (*(p as *const AtomicU32)).load(o) as i32 as i64 as u64,
            _ => (*(p as *const AtomicU64)).load(o),
        }
    }
}

/// Store the low `w` bytes of `x` at `p`.
///
/// # Safety
/// As [`load_w`].
#[inline(always)]
unsafe fn store_w(p: *const u8, w: usize, x: u64, o: std::sync::atomic::Ordering) {
    // SAFETY: the caller's contract.
    unsafe {
        match w {
            2 => (*(p as *const AtomicU16)).store(x as u16, o),
            4 => (*(p as *const AtomicU32)).store(x as u32, o),
            _ => (*(p as *const AtomicU64)).store(x, o),
        }
    }
}

/// Marks the branch that calls it as unlikely (the compiler lays it out
/// as a jump rather than computing it on every path).
#[cold]
#[inline(always)]
fn unlikely() {}

/// A packed slot: its number, its group and its place in the group.
#[derive(Clone, Copy)]
struct Pos {
    i: usize,
    g: *const u8,
    j: usize,
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

impl<S: Shape> Table<S> {
    /// The layout: the shape's constant, or the field.
    #[inline(always)]
    fn l(&self) -> Layout {
        match S::LAY {
            Some(l) => l,
            None => self.lay,
        }
    }

    /// The same table seen through the [`Dyn`] shape.
    #[inline(always)]
    pub fn erase(&self) -> Table {
        Table {
            slots: self.slots,
            cap: self.cap,
            lay: self.lay,
            seed: self.seed,
            links: self.links,
            desc: self.desc,
            shape: PhantomData,
        }
    }

    /// Bytes from one slot to the next (wide slots).
    #[inline(always)]
    pub fn stride(&self) -> usize {
        self.l().stride
    }

    /// The LRU link array (null without LRU).
    #[inline(always)]
    pub fn links(&self) -> *const Link {
        self.links
    }

    /// The descriptor that names this table.
    #[inline(always)]
    pub fn desc(&self) -> u64 {
        self.desc
    }

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

    /// Wide slot `i` (`i < cap`).
    #[inline(always)]
    fn slot(&self, i: usize) -> &Slot {
        debug_assert!(i < self.cap() && !self.l().is_packed());
        // SAFETY: `slots` points at `cap` slots of `stride` bytes inside the
        // mapping (checked when the Table was made); Slot is all atomics.
        unsafe { &*(self.slots.add(i * self.l().stride) as *const Slot) }
    }

    /// Packed slot `i`: its group and its place in the group.
    #[inline(always)]
    fn group(&self, i: usize) -> (*const u8, usize) {
        debug_assert!(i < self.cap() && self.l().is_packed());
        let g = ((i as u128 * self.l().div_m as u128) >> 64) as usize;
        // SAFETY: `slots` points at `cap.div_ceil(per_group)` groups inside
        // the mapping (checked when the Table was made).
        let p = unsafe { self.slots.add(g * self.l().group_bytes) };
        (p, i - g * self.l().per_group)
    }

    /// Packed slot `i`'s control byte.
    #[inline(always)]
    fn ctrl(&self, i: usize) -> &AtomicU8 {
        let (g, j) = self.group(i);
        // SAFETY: the control bytes open the group.
        unsafe { &*(g.add(j) as *const AtomicU8) }
    }

    /// Packed slot `i`'s pair.
    #[inline(always)]
    fn pair(&self, i: usize) -> *const u8 {
        let (g, j) = self.group(i);
        // SAFETY: pair `j` of the group, aligned to its widths.
        unsafe { g.add(self.l().pairs_off + j * self.l().stride) }
    }

    /// Packed slot `i` as a position (`i`, its group, its place), for
    /// walks that step from slot to slot without finding each group anew.
    #[inline(always)]
    fn pos(&self, i: usize) -> Pos {
        let (g, j) = self.group(i);
        Pos { i, g, j }
    }

    /// The packed slot after `p`, wrapping at the end. Most steps stay in
    /// their group: they pay two compares and one branch, which is marked
    /// unlikely (else the compiler computes both other cases with
    /// conditional moves on every step).
    #[inline(always)]
    fn step(&self, p: &mut Pos) {
        p.i += 1;
        p.j += 1;
        if p.j == self.l().per_group || p.i == self.cap {
            unlikely();
            if p.i == self.cap {
                *p = Pos {
                    i: 0,
                    g: self.slots,
                    j: 0,
                };
            } else {
                p.j = 0;
                // SAFETY: slot p.i < cap starts this group, inside the table.
                p.g = unsafe { p.g.add(self.l().group_bytes) };
            }
        }
    }

    /// The control byte at `p`.
    #[inline(always)]
    fn ctrl_at(&self, p: Pos) -> &AtomicU8 {
        // SAFETY: the control bytes open the group.
        unsafe { &*(p.g.add(p.j) as *const AtomicU8) }
    }

    /// The pair at `p`.
    #[inline(always)]
    fn pair_at(&self, p: Pos) -> *const u8 {
        // SAFETY: pair `j` of the group, aligned to its widths.
        unsafe { p.g.add(self.l().pairs_off + p.j * self.l().stride) }
    }

    /// Fill packed slot `p` (see [`Table::fill`]; the hash is recomputed
    /// from the key when it is needed).
    #[inline(always)]
    fn fill_at(&self, p: Pos, key: u64, val: u64) {
        let kp = self.pair_at(p);
        // SAFETY: the pair's key and value, aligned to their widths.
        unsafe { store_w(kp, self.l().kw, key, Relaxed) };
        crate::fault::point();
        // SAFETY: as above.
        unsafe { store_w(kp.add(self.l().val_off), self.l().vw, val, Relaxed) };
        crate::fault::point();
        self.ctrl_at(p).store(FULL as u8, Release);
        crate::fault::point();
    }

    /// Every full slot in order, with its meta word (state and 62 hash
    /// bits), key and value words: `f(i, meta, key, val)`.
    #[inline(always)]
    pub fn for_each_full(&self, mut f: impl FnMut(usize, u64, u64, u64)) {
        if !self.l().is_packed() {
            for i in 0..self.cap {
                let m = self.meta(i);
                if crate::format::layout::is_full(m) {
                    f(i, m, self.key(i), self.val(i));
                }
            }
            return;
        }
        let l = self.l();
        let mut p = self.pos(0);
        for _ in 0..self.cap {
            if self.ctrl_at(p).load(Acquire) as u64 == FULL {
                let kp = self.pair_at(p);
                // SAFETY: the pair's key and value, aligned to their widths.
                let (k, v) = unsafe {
                    (
                        load_w(kp, l.kw, Relaxed),
                        load_w(kp.add(l.val_off), l.vw, Acquire),
                    )
                };
                f(
                    p.i,
                    full_meta(crate::format::hash::hash_int(self.seed, k as i64)),
                    k,
                    v,
                );
            }
            self.step(&mut p);
        }
    }

    /// The state of slot `i`: [`EMPTY`], [`TOMB`], [`FULL`] or [`BAD`].
    #[inline(always)]
    pub fn state(&self, i: usize) -> u64 {
        if self.l().is_packed() {
            match self.ctrl(i).load(Acquire) as u64 {
                c @ (EMPTY | TOMB | FULL) => c,
                _ => BAD,
            }
        } else {
            match self.slot(i).meta.load(Acquire) {
                m @ (EMPTY | TOMB) => m,
                m if m & 3 == FULL => FULL,
                _ => BAD,
            }
        }
    }

    /// True if slot `i` holds an entry.
    #[inline(always)]
    pub fn is_full(&self, i: usize) -> bool {
        self.state(i) == FULL
    }

    /// True if slot `i` holds an entry whose home is at or above `min`
    /// (0: any; a migration's old table holds its frontier's and above).
    #[inline(always)]
    pub fn holds(&self, i: usize, min: usize) -> bool {
        self.is_full(i) && (min == 0 || self.home(self.meta(i)) >= min)
    }

    /// The meta word of slot `i`: its state, and for a full slot the 62
    /// hash bits of its key (recomputed from a packed slot's key).
    #[inline(always)]
    pub fn meta(&self, i: usize) -> u64 {
        if self.l().is_packed() {
            match self.state(i) {
                FULL => full_meta(crate::format::hash::hash_int(self.seed, self.key(i) as i64)),
                s => s,
            }
        } else {
            self.slot(i).meta.load(Acquire)
        }
    }

    /// The key word of slot `i`.
    #[inline(always)]
    pub fn key(&self, i: usize) -> u64 {
        if self.l().is_packed() {
            // SAFETY: the pair's key, aligned to its width.
            unsafe { load_w(self.pair(i), self.l().kw, Relaxed) }
        } else {
            self.slot(i).key.load(Relaxed)
        }
    }

    /// The value word of slot `i`.
    #[inline(always)]
    pub fn val(&self, i: usize) -> u64 {
        if self.l().is_packed() {
            // SAFETY: the pair's value, aligned to its width.
            unsafe { load_w(self.pair(i).add(self.l().val_off), self.l().vw, Acquire) }
        } else {
            self.slot(i).val.load(Acquire)
        }
    }

    /// Overwrite the value word of slot `i`.
    #[inline(always)]
    pub fn set_val(&self, i: usize, w: u64) {
        if self.l().is_packed() {
            // SAFETY: as in `val`.
            unsafe { store_w(self.pair(i).add(self.l().val_off), self.l().vw, w, Release) }
        } else {
            self.slot(i).val.store(w, Release)
        }
    }

    /// Replace the value word of slot `i`, returning the old one.
    #[inline(always)]
    pub fn swap_val(&self, i: usize, w: u64) -> u64 {
        if !self.l().is_packed() {
            return self.slot(i).val.swap(w, AcqRel);
        }
        let p = self.pair(i).wrapping_add(self.l().val_off);
        // SAFETY: as in `val`.
        unsafe {
            match self.l().vw {
                2 => (*(p as *const AtomicU16)).swap(w as u16, AcqRel) as i16 as i64 as u64,
                4 => (*(p as *const AtomicU32)).swap(w as u32, AcqRel) as i32 as i64 as u64,
                _ => (*(p as *const AtomicU64)).swap(w, AcqRel),
            }
        }
    }

    /// Compare-and-swap the value word of slot `i` (`cur` and `new` fit the
    /// value's width): `Err` carries the word found instead of `cur`.
    #[inline(always)]
    pub fn cas_val(&self, i: usize, cur: u64, new: u64) -> Result<u64, u64> {
        if !self.l().is_packed() {
            return self
                .slot(i)
                .val
                .compare_exchange_weak(cur, new, AcqRel, Relaxed);
        }
        let p = self.pair(i).wrapping_add(self.l().val_off);
        // SAFETY: as in `val`.
        unsafe {
            match self.l().vw {
                2 => (*(p as *const AtomicU16))
                    .compare_exchange_weak(cur as u16, new as u16, AcqRel, Relaxed)
                    .map(|x| x as i16 as i64 as u64)
                    .map_err(|x| x as i16 as i64 as u64),
                4 => (*(p as *const AtomicU32))
                    .compare_exchange_weak(cur as u32, new as u32, AcqRel, Relaxed)
                    .map(|x| x as i32 as i64 as u64)
                    .map_err(|x| x as i32 as i64 as u64),
                _ => (*(p as *const AtomicU64)).compare_exchange_weak(cur, new, AcqRel, Relaxed),
            }
        }
    }

    /// Mark slot `i` [`EMPTY`] or [`TOMB`].
    #[inline(always)]
    pub fn set_state(&self, i: usize, s: u64) {
        if self.l().is_packed() {
            self.ctrl(i).store(s as u8, Release)
        } else {
            self.slot(i).meta.store(s, Release)
        }
    }

    /// Fill slot `i` with an entry: key, value and extension word first,
    /// then the state (with the hash) that publishes them.
    #[inline(always)]
    pub fn fill(&self, i: usize, hash: u64, key: u64, val: u64, ext: u64) {
        if self.l().is_packed() {
            return self.fill_at(self.pos(i), key, val);
        }
        let s = self.slot(i);
        s.key.store(key, Relaxed);
        crate::fault::point();
        s.val.store(val, Relaxed);
        crate::fault::point();
        if self.has_ext() {
            self.ext(i).store(ext, Relaxed);
            crate::fault::point();
        }
        s.meta.store(full_meta(hash), Release);
        crate::fault::point();
    }

    /// The extension word of slot `i` (maps with LRU or TTL only).
    #[inline(always)]
    pub fn ext(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < self.cap() && self.has_ext());
        // SAFETY: as in `slot`; the word follows the 24-byte slot.
        unsafe { &*(self.slots.add(i * self.l().stride + 24) as *const AtomicU64) }
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
        self.l().has_ext()
    }

    /// Probe for a key with `hash`; `eq` compares a key word. Visits each
    /// slot at most once, so it ends on any table, even a damaged one.
    #[inline(always)]
    pub fn probe(&self, hash: u64, mut eq: impl FnMut(u64) -> bool) -> Probe {
        if self.l().is_packed() {
            return self.probe_packed(hash, eq, |_| {});
        }
        // A wide slot's meta filters on 62 hash bits before the key is
        // compared.
        let want = full_meta(hash);
        let mut i = self.home(hash);
        let mut vacant = usize::MAX;
        for _ in 0..self.cap() {
            let m = self.slot(i).meta.load(Acquire);
            if m == EMPTY {
                return Probe::Vacant(if vacant == usize::MAX { i } else { vacant });
            }
            if m == want {
                if eq(self.slot(i).key.load(Relaxed)) {
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

    /// [`Table::probe`] for a read: the slot holding the key and its value
    /// word, or None. A packed slot's value is read from the place the
    /// probe found, without finding its group again.
    #[inline(always)]
    pub fn probe_read(&self, hash: u64, eq: impl FnMut(u64) -> bool) -> Option<(usize, u64)> {
        if self.l().is_packed() {
            let mut val = 0;
            match self.probe_packed(hash, eq, |p| val = p) {
                Probe::Found(i) => Some((i, val)),
                _ => None,
            }
        } else {
            match self.probe(hash, eq) {
                Probe::Found(i) => Some((i, self.slot(i).val.load(Acquire))),
                _ => None,
            }
        }
    }

    /// [`Table::probe`] on packed slots: a full slot's (integer) key is
    /// compared at once. The walk keeps its place in the group, so only
    /// the home slot pays for finding its group. `found` gets the value
    /// word of the slot found.
    #[inline(always)]
    fn probe_packed(
        &self,
        hash: u64,
        mut eq: impl FnMut(u64) -> bool,
        found: impl FnOnce(u64),
    ) -> Probe {
        let l = self.l();
        let mut p = self.pos(self.home(hash));
        let mut vacant = usize::MAX;
        for _ in 0..self.cap() {
            let (c, key, i) = (self.ctrl_at(p).load(Acquire) as u64, self.pair_at(p), p.i);
            if c == EMPTY {
                return Probe::Vacant(if vacant == usize::MAX { i } else { vacant });
            }
            if c == FULL {
                // SAFETY: the pair's key, aligned to its width.
                if eq(unsafe { load_w(key, l.kw, Relaxed) }) {
                    // SAFETY: the pair's value, aligned to its width.
                    found(unsafe { load_w(key.add(l.val_off), l.vw, Acquire) });
                    return Probe::Found(i);
                }
            } else if c == TOMB && vacant == usize::MAX {
                vacant = i;
            }
            self.step(&mut p);
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
    /// exactly once (entries are told apart by the 62 hash bits of their
    /// meta; two keys sharing all of them would be returned as one step).
    ///
    /// The entries whose home is bucket `b` all lie in the run of full or
    /// tombstone slots that starts at `b`, so each bucket is one short scan.
    pub fn next_after(&self, after: Option<u64>) -> Option<usize> {
        self.next_after_from(after, 0)
    }

    /// [`Table::next_after`] among the entries whose home is at or above
    /// bucket `min` (an old table during a migration holds no other).
    pub fn next_after_from(&self, after: Option<u64>, min: usize) -> Option<usize> {
        let first = after.map_or(0, |h| self.home(h)).max(min);
        for b in first..self.cap() {
            let mut best: Option<(u64, usize)> = None;
            let mut i = b;
            for _ in 0..self.cap() {
                let m = self.meta(i);
                if m == EMPTY {
                    break;
                }
                let h = m & !3;
                if crate::format::layout::is_full(m)
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

    /// Put an entry into a fresh table (no tombstones, key known to be
    /// absent); `ext` is the extension word (ignored without one). Returns
    /// the slot, or None if there is no empty slot.
    pub fn place(&self, meta: u64, key: u64, val: u64, ext: u64) -> Option<usize> {
        if self.l().is_packed() {
            let mut p = self.pos(self.home(meta));
            for _ in 0..self.cap() {
                if self.ctrl_at(p).load(Relaxed) as u64 == EMPTY {
                    self.fill_at(p, key, val);
                    return Some(p.i);
                }
                self.step(&mut p);
            }
            return None;
        }
        let mut i = self.home(meta);
        for _ in 0..self.cap() {
            if self.state(i) == EMPTY {
                self.fill(i, meta, key, val, ext);
                return Some(i);
            }
            i = self.next(i);
        }
        None
    }

    /// The first empty slot from the home of `hash` on: where
    /// [`Table::place`] would put it (None if there is none).
    pub fn first_empty(&self, hash: u64) -> Option<usize> {
        let mut i = self.home(hash);
        for _ in 0..self.cap() {
            if self.state(i) == EMPTY {
                return Some(i);
            }
            i = self.next(i);
        }
        None
    }

    /// What [`Table::vacate`] of slot `i` will do, before it does it:
    /// `None` if it leaves a tombstone, else `Some(n)`: the slot and the
    /// `n` tombstones before it become empty.
    pub fn vacate_plan(&self, i: usize) -> Option<u64> {
        if self.state(self.next(i)) != EMPTY {
            return None;
        }
        let (mut n, mut j) = (0, self.prev(i));
        while j != i && self.state(j) == TOMB {
            n += 1;
            j = self.prev(j);
        }
        Some(n)
    }

    /// Finish a [`Table::vacate`] of slot `i` whose plan was `Some(n)`,
    /// after a writer died in it (idempotent): the `n` slots before `i`
    /// become empty.
    pub fn finish_vacate(&self, i: usize, n: u64) {
        let mut j = i;
        for _ in 0..n {
            j = self.prev(j);
            self.set_state(j, EMPTY);
            crate::fault::point();
        }
    }

    /// Mark slot `i` removed. If the next slot is empty, no probe can pass
    /// through `i`, so it and the tombstones before it become empty again.
    /// Each step keeps every remaining key reachable. Returns the change in
    /// the tombstone count.
    pub fn vacate(&self, i: usize) -> i64 {
        if self.state(self.next(i)) != EMPTY {
            self.set_state(i, TOMB);
            crate::fault::point();
            return 1;
        }
        self.set_state(i, EMPTY);
        crate::fault::point();
        let mut freed = 0;
        let mut j = self.prev(i);
        while j != i && self.state(j) == TOMB {
            self.set_state(j, EMPTY);
            crate::fault::point();
            freed += 1;
            j = self.prev(j);
        }
        -freed
    }
}

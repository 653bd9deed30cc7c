//! The typed map: `Map<K, V>`, every operation of a variant, over the
//! untyped engine (`raw`).

use crate::error::{Error, Result};
use crate::format::layout;
use crate::format::layout::{UNDO_CLEAN, UNDO_INSERT, UNDO_OVERWRITE, UNDO_REMOVE, UNDO_WALK};
use crate::format::words::{inline_same_bytes, inline_word, is_inline};
use crate::os::region::{Kind, Source};
use crate::raw::arena::StoreError;
use crate::raw::batch::Prep;
use crate::raw::codec::Codec;
use crate::raw::core::{flush_tag, Core, Vacancy, FLUSH_SLOT_BITS};
use crate::raw::guard::WriteGuard;
use crate::raw::table::{Ext, Plain, Probe, Shape, Table};
use crate::raw::types::{Entry, Item, Out, Params, Status, Variant};
use crate::sync::lock;
use crate::sync::seqlock::{read_begin, read_valid};
use std::ffi::CStr;
use std::marker::PhantomData;
use std::sync::atomic::Ordering::*;

/// Slots of the flush pass an insert into a full TTL map scans for expired
/// entries before it is refused (`Map::reclaim_expired`).
const RECLAIM_SLOTS: u64 = 256;

/// A map with keys of kind `K` and values of kind `V`.
pub struct Map<K: Codec, V: Codec> {
    core: Core,
    _kinds: PhantomData<(K, V)>,
}

/// What a keyword's quick attempt found ([`Map::get_quick`], [`Map::put_quick`],
/// [`Map::incr_quick`]).
pub(crate) enum Quick {
    /// The key, with this value.
    Hit(i64),
    /// No such key.
    Miss,
    /// Not decided here: the full operation must run.
    Slow,
}

/// What [`Map::find_slot_as`] found of a key: its live slot (`Ok`), or
/// where an insert of it would go (`Err(Some(slot))`; `Err(None)`: unknown).
type SlotOrRoom = std::result::Result<usize, Option<usize>>;

/// A key prepared for probing: its hash and how to compare slot words.
pub(crate) struct Key<'a> {
    pub(crate) hash: u64,
    num: i64,
    bytes: &'a [u8],
    inline: Option<u64>,
}

impl<K: Codec, V: Codec> Map<K, V> {
    /// The active table.
    #[inline(always)]
    pub(crate) fn active(core: &Core) -> Option<Table> {
        core.table_of(core.hdr().table.load(Acquire))
    }

    /// The active table seen through shape `S` ([`Plain<K, V>`] on a plain
    /// map, [`Ext`] on one with LRU or TTL): its layout is a constant, so
    /// slot accesses compile to fixed offsets (see [`Core::table_as`]).
    #[inline(always)]
    pub(crate) fn active_as<S: Shape>(core: &Core) -> Option<Table<S>> {
        core.table_as::<S>(core.hdr().table.load(Acquire))
    }

    /// The variant `Map<K, V>` is.
    pub fn variant() -> Variant {
        use Variant::*;
        match (K::BYTES, K::BITS, V::BYTES, V::BITS) {
            (false, 16, false, _) => I16,
            (false, 32, false, _) => I32,
            (false, _, false, _) => II,
            (false, 16, true, _) => I16S,
            (false, 32, true, _) => I32S,
            (false, _, true, _) => IS,
            (true, _, false, 16) => SI16,
            (true, _, false, 32) => SI32,
            (true, _, false, _) => SI,
            (true, _, true, _) => SS,
        }
    }

    /// Create or attach the map at `path`.
    pub fn open(path: &CStr, p: &Params) -> Result<Self> {
        Self::open_source(&Source::Path(path), p)
    }

    /// Create or attach a map from any [`Source`] (path, memfd, anonymous,
    /// descriptor, read-only).
    pub fn open_source(src: &Source<'_>, p: &Params) -> Result<Self> {
        Ok(Map {
            core: Core::open_source(src, Self::variant(), p)?,
            _kinds: PhantomData,
        })
    }

    /// The codec-independent part.
    pub fn core(&mut self) -> &mut Core {
        &mut self.core
    }

    /// The codec-independent part (shared).
    pub fn core_ref(&self) -> &Core {
        &self.core
    }

    #[inline(always)]
    fn check_key(&self, k: &Item) -> Result<()> {
        if !K::BYTES && !K::fits(k.num) {
            return Err(Error::new(format!("{} does not fit {}", k.num, K::NAME)));
        }
        Ok(())
    }

    pub(crate) fn check_val(&self, v: &Item) -> Result<()> {
        if !V::BYTES && !V::fits(v.num) {
            return Err(Error::new(format!("{} does not fit {}", v.num, V::NAME)));
        }
        if V::BYTES && v.bytes.len() > crate::format::words::MAX_STRING {
            return Err(Error::new(format!(
                "value of {} bytes is longer than the limit of {} bytes",
                v.bytes.len(),
                crate::format::words::MAX_STRING
            )));
        }
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn key<'a>(&self, k: &Item<'a>) -> Result<Key<'a>> {
        self.check_key(k)?;
        if K::BYTES {
            if k.bytes.len() > crate::format::words::MAX_STRING {
                return Err(Error::new(format!(
                    "key of {} bytes is longer than the limit of {} bytes",
                    k.bytes.len(),
                    crate::format::words::MAX_STRING
                )));
            }
            let bytes = k.bytes;
            Ok(Key {
                hash: crate::format::hash::hash_bytes(self.core.seed, bytes),
                num: 0,
                bytes,
                inline: inline_word(bytes, false),
            })
        } else {
            Ok(self.int_key(k.num))
        }
    }

    /// An integer key prepared for probing (its range checked already).
    #[inline(always)]
    fn int_key(&self, n: i64) -> Key<'static> {
        Key {
            hash: crate::format::hash::hash_int(self.core.seed, n),
            num: n,
            bytes: &[],
            inline: None,
        }
    }

    #[inline(always)]
    pub(crate) fn key_eq(core: &Core, key: &Key<'_>, w: u64) -> bool {
        if !K::BYTES {
            w as i64 == key.num
        } else if let Some(iw) = key.inline {
            inline_same_bytes(w, iw)
        } else {
            !is_inline(w) && core.arena().eq(w, key.bytes)
        }
    }

    /// Write a stored value word into `out`. `Status::Small` if it does not
    /// fit; `None` if the word is not a valid reference (racy or damaged).
    #[inline(always)]
    pub(crate) fn emit(core: &Core, is_bytes: bool, w: u64, out: &mut Out) -> Option<Status> {
        if !is_bytes {
            out.num = w as i64;
            return Some(Status::Ok);
        }
        let v = core.arena().view(w)?;
        out.len = v.len();
        out.utf8 = v.utf8 as u32;
        let Some(dst) = out.buf_mut().get_mut(..v.len()) else {
            return Some(Status::Small);
        };
        core.arena().copy(&v, dst);
        out.set_written(v.len());
        Some(Status::Ok)
    }

    pub(crate) fn corrupt_ref(&self) -> Error {
        Error::new(format!(
            "{}: corrupt map: a string reference points outside the arena",
            self.core.path()
        ))
    }

    /// Store an item as a slot word (allocating for strings).
    pub(crate) fn store_word(
        core: &mut Core,
        is_bytes: bool,
        it: &Item,
    ) -> std::result::Result<u64, StoreError> {
        if !is_bytes {
            return Ok(it.num as u64);
        }
        core.str_store(it.bytes, it.utf8 != 0)
    }

    // ---- reads (lock-free) -------------------------------------------

    /// Look `k` up; its value goes into `out` and, if `ttl` is given, its
    /// seconds left (0 = permanent; -1 on a map without TTL) into `ttl`.
    /// `EXT`: the map has extension words (LRU or TTL); a plain map's
    /// reads are compiled without any of their cost.
    #[inline(always)]
    fn read_entry<S: Shape>(
        &mut self,
        k: &Item,
        out: &mut Out,
        mut ttl: Option<&mut i64>,
    ) -> Result<Status> {
        let key = self.key(k)?;
        let now = if Self::ext::<S>() { self.core.now() } else { 0 };
        // The closure is inlined into `read` (a call cost ~50 instructions).
        let r = crate::raw::guard::read(
            &mut self.core,
            #[inline(always)]
            |core| Self::lookup::<S>(core, &key, now, out, ttl.as_deref_mut()),
        )?;
        match r {
            None => Err(self.core.damaged()),
            Some(None) => Err(self.corrupt_ref()),
            Some(Some(s)) => Ok(s),
        }
    }

    /// True if shape `S` has extension words (LRU or TTL).
    #[inline(always)]
    fn ext<S: Shape>() -> bool {
        S::LAY.is_some_and(|l| l.has_ext())
    }

    /// One attempt of [`Map::read_entry`] (inside an optimistic read).
    #[inline(always)]
    fn lookup<S: Shape>(
        core: &Core,
        key: &Key<'_>,
        now: u32,
        out: &mut Out,
        ttl: Option<&mut i64>,
    ) -> Option<Option<Status>> {
        let ext = Self::ext::<S>();
        let t = Self::active_as::<S>(core)?;
        match core.find_read_as(t, key.hash, |w| Self::key_eq(core, key, w)) {
            Some((t, i, w)) if !ext || core.live(&t, i, now) => {
                if ext {
                    core.mark_used(&t, i);
                }
                if let Some(ttl) = ttl {
                    *ttl = if ext && core.ttl_on {
                        crate::raw::ttl::remaining(t.ext(i).load(Relaxed), now) as i64
                    } else {
                        -1
                    };
                }
                Some(Self::emit(core, V::BYTES, w, out))
            }
            _ => Some(Some(Status::False)),
        }
    }

    /// Look `k` up; its value goes into `out`.
    #[inline(always)]
    pub fn get(&mut self, k: &Item, out: &mut Out) -> Result<Status> {
        if self.core.plain() {
            self.read_entry::<Plain<K, V>>(k, out, None)
        } else {
            self.read_entry::<Ext>(k, out, None)
        }
    }

    /// `get` with an integer key and an integer value (the keywords'
    /// direct path): `None` if missing. An error for a variant with string
    /// keys or values. [`Map::get_quick`] first decides the common case.
    pub fn get_num(&mut self, key: i64) -> Result<Option<i64>> {
        if K::BYTES || V::BYTES {
            return Err(Error::new("get_num needs integer keys and values"));
        }
        let k = Item::int(key);
        let mut out = Out::uninit(&mut []);
        Ok(match self.get(&k, &mut out)? {
            Status::Ok => Some(out.num),
            _ => None,
        })
    }

    /// One optimistic lookup of an integer key in a map without extension
    /// words, when nothing is in the way: the sequence even and unchanged,
    /// the table's descriptor valid, no migration to look in, the key in
    /// range, the file not truncated. Otherwise `Slow`, and `get` decides.
    /// One attempt without `Result`s, for the keywords (the common case
    /// of [`Map::get_num`]).
    #[inline(always)]
    pub(crate) fn get_quick(&self, key: i64) -> Quick {
        let core = &self.core;
        if K::BYTES || V::BYTES || !core.plain() || !K::fits(key) {
            return Quick::Slow;
        }
        let key = self.int_key(key);
        let hdr = core.hdr();
        let Some(s) = read_begin(&hdr.seq) else {
            return Quick::Slow;
        };
        let Some(t) = Self::active_as::<Plain<K, V>>(core) else {
            return Quick::Slow;
        };
        let r = match t.probe_read(key.hash, |w| Self::key_eq(core, &key, w)) {
            Some((_, w)) => Quick::Hit(w as i64),
            None if hdr.mig_old.load(Acquire) == 0 => Quick::Miss,
            None => return Quick::Slow,
        };
        if !read_valid(&hdr.seq, s) || core.truncated() {
            return Quick::Slow;
        }
        r
    }

    /// `incr_by` with an integer key (the keywords' direct path): the new
    /// value. [`Map::incr_quick`] first decides the common case.
    /// A quick attempt that found the key missing left where it goes: if
    /// nothing changed since, the insert takes that slot (no probe).
    pub fn incr_num(&mut self, key: i64, delta: i64) -> Result<(Status, i64)> {
        let at = self.core.take_vacancy(key);
        let mut result = 0;
        let f = |cur: i64| cur.checked_add(delta);
        let s = self.counter_at(&Item::int(key), &mut result, delta, f, at)?;
        Ok((s, result))
    }

    /// `put` with an integer key and an integer value (the keywords'
    /// direct path). [`Map::put_quick`] first decides the common case.
    /// As [`Map::incr_num`], an insert takes the slot a quick attempt found.
    pub fn put_num(&mut self, key: i64, val: i64) -> Result<Status> {
        let at = self.core.take_vacancy(key);
        self.put_with(&Item::int(key), &Item::int(val), None, at)
    }

    /// The quick `incr_by` of an integer key: see [`Map::counter_quick`].
    #[inline(always)]
    pub(crate) fn incr_quick(&self, key: i64, delta: i64) -> Quick {
        self.counter_quick(key, |cur| cur.checked_add(delta))
    }

    /// The quick `put` of an integer value over an existing integer key:
    /// in a map without extension words that is one store of the value
    /// word, which the counters' lock-free path makes as well (under the
    /// writer lock, `put` makes the same single store, with no record).
    #[inline(always)]
    pub(crate) fn put_quick(&self, key: i64, val: i64) -> Quick {
        self.counter_quick(key, |_| Some(val))
    }

    /// The lock-free part of [`Map::counter`] for an integer key and an
    /// integer value in a map without extension words, without `Result`s:
    /// `Hit(new value)` once an existing key's value became `f(current)`.
    /// Anything else is `Slow` and changed nothing, and the full operation
    /// decides: a new key, a value out of range, a frozen or read-only
    /// map, a fork not yet seen, a writer holding the lock. A file found
    /// truncated after the change is also `Slow`: the full operation then
    /// reports it (the data is lost either way). For a missing key, the
    /// handle keeps where the full operation's insert goes if nothing
    /// changes first ([`Vacancy`], [`Core::take_vacancy`]): kept out of
    /// the `Quick`, whose two words return in registers.
    #[inline(always)]
    fn counter_quick(&self, key: i64, f: impl Fn(i64) -> Option<i64>) -> Quick {
        let core = &self.core;
        if K::BYTES
            || V::BYTES
            || !core.plain()
            || core.lru_on
            || !K::fits(key)
            || core.frozen()
            || core.me.fork_gen != lock::fork_gen()
        {
            return Quick::Slow;
        }
        let key = self.int_key(key);
        let slots = core.slots();
        if !lock::enter_counter(core.hdr(), slots, &core.me) {
            return Quick::Slow;
        }
        let mut result = 0;
        let q = match Self::counter_probe::<Plain<K, V>>(core, &key, 0, &f, &mut result) {
            Ok(Status::Ok) => Quick::Hit(result),
            Err(Some(slot)) => {
                Self::note_vacancy(core, key.num, slot);
                Quick::Slow
            }
            _ => Quick::Slow,
        };
        lock::leave_counter(slots, &core.me);
        match q {
            Quick::Hit(_) if core.truncated() => Quick::Slow,
            q => q,
        }
    }

    /// A quick attempt found integer key `key` missing, its probe ending
    /// on `slot` of the active table (no writer active, before
    /// leave_counter): keep that for the full operation. Out of line: the
    /// attempt's hits pay nothing for it.
    #[cold]
    #[inline(never)]
    fn note_vacancy(core: &Core, key: i64, slot: usize) {
        // the sequence and the table are the ones the probe saw; the
        // sequence is odd only if a writer died in a change
        let h = core.hdr();
        let (seq, desc) = (h.seq.load(Acquire), h.table.load(Acquire));
        if seq & 1 == 0 {
            core.vacancy.set(Some(Vacancy {
                key,
                seq,
                desc,
                slot,
            }));
        }
    }

    /// As `get`, and the entry's seconds left (0 = permanent, -1 = the map
    /// has no TTL) in `ttl`.
    pub fn get_with_ttl(&mut self, k: &Item, out: &mut Out, ttl: &mut i64) -> Result<Status> {
        if self.core.plain() {
            self.read_entry::<Plain<K, V>>(k, out, Some(ttl))
        } else {
            self.read_entry::<Ext>(k, out, Some(ttl))
        }
    }

    /// True if `k` is present (and not expired).
    #[inline(always)]
    pub fn exists(&mut self, k: &Item) -> Result<bool> {
        let key = self.key(k)?;
        let now = self.core.now();
        let r = crate::raw::guard::read(&mut self.core, |core| {
            let t = Self::active(core)?;
            Some(
                match core.find_as(t, key.hash, |w| Self::key_eq(core, &key, w)) {
                    (t, Probe::Found(i)) => core.live(&t, i, now),
                    _ => false,
                },
            )
        })?;
        r.ok_or_else(|| self.core.damaged())
    }

    /// Seconds left for `k`: `Some(0)` if permanent, `None` if missing,
    /// expired, or the map has no TTL.
    pub fn ttl_remaining(&mut self, k: &Item) -> Result<Option<u64>> {
        if !self.core.ttl_on {
            return Ok(None);
        }
        let key = self.key(k)?;
        let now = self.core.now();
        let r = crate::raw::guard::read(&mut self.core, |core| {
            let t = Self::active(core)?;
            Some(
                match core.find_as(t, key.hash, |w| Self::key_eq(core, &key, w)) {
                    (t, Probe::Found(i)) if core.live(&t, i, now) => {
                        Some(crate::raw::ttl::remaining(t.ext(i).load(Relaxed), now))
                    }
                    _ => None,
                },
            )
        })?;
        r.ok_or_else(|| self.core.damaged())
    }

    // ---- writes --------------------------------------------------------

    /// Insert or overwrite (with the map's default TTL, if it has one).
    #[inline(always)]
    pub fn put(&mut self, k: &Item, v: &Item) -> Result<Status> {
        self.put_with(k, v, None, None)
    }

    /// Insert or overwrite with this entry's own lifetime (0 = permanent).
    pub fn put_ttl(&mut self, k: &Item, v: &Item, secs: u64) -> Result<Status> {
        self.need_ttl("put_ttl")?;
        self.put_with(k, v, Some(secs), None)
    }

    pub(crate) fn need_ttl(&self, op: &str) -> Result<()> {
        if self.core.ttl_on {
            Ok(())
        } else {
            Err(Error::new(format!(
                "{op} needs a map created with a TTL (the 4th argument of new, in seconds); \
                 this map has none: use put, or create the map with a default TTL to make it \
                 TTL-enabled"
            )))
        }
    }

    /// `at`: what a quick attempt found of the key (see [`Vacancy`]).
    #[inline(always)]
    fn put_with(
        &mut self,
        k: &Item,
        v: &Item,
        ttl: Option<u64>,
        at: Option<Vacancy>,
    ) -> Result<Status> {
        let key = self.key(k)?;
        self.check_val(v)?;
        let g = WriteGuard::lock(&mut self.core)?;
        let now = g.core.now();
        if let Some(at) = at.filter(|&at| g.core.unchanged_since(at)) {
            let expiry = crate::raw::ttl::expiry_after(now, ttl.unwrap_or(g.core.ttl_default));
            let vacant = Some(at.slot);
            return Self::insert_as::<Plain<K, V>>(g.core, &key, k, v, expiry, now, vacant);
        }
        if g.core.plain() {
            Self::put_locked::<Plain<K, V>>(g.core, &key, k, v, ttl, now)
        } else {
            Self::put_locked::<Ext>(g.core, &key, k, v, ttl, now)
        }
    }

    #[inline(always)]
    fn put_locked<S: Shape>(
        core: &mut Core,
        key: &Key<'_>,
        k: &Item,
        v: &Item,
        ttl: Option<u64>,
        now: u32,
    ) -> Result<Status> {
        match Self::find_slot_as::<S>(core, key, now)? {
            (t, Ok(i)) => {
                let expiry = core.ttl().expiry_on_write(&t, i, now, ttl);
                Self::overwrite(core, &t, i, v, expiry)
            }
            (_, Err(vacant)) => {
                let expiry = crate::raw::ttl::expiry_after(now, ttl.unwrap_or(core.ttl_default));
                Self::insert_as::<S>(core, key, k, v, expiry, now, vacant)
            }
        }
    }

    /// Under the writer lock: the live slot of `key` in the active table (and
    /// that table), removing an expired entry met on the way.
    // Inlined: returned through memory, its 48-byte result was reloaded
    // with wider loads than it was stored with (a store-forwarding stall
    // that cost puts ~15%).
    #[inline(always)]
    pub(crate) fn find_live(
        core: &mut Core,
        key: &Key<'_>,
        now: u32,
    ) -> Result<(Table, Option<usize>)> {
        Self::find_slot(core, key, now).map(|(t, r)| (t, r.ok()))
    }

    /// [`Map::find_slot_as`] on any map.
    #[inline(always)]
    pub(crate) fn find_slot(
        core: &mut Core,
        key: &Key<'_>,
        now: u32,
    ) -> Result<(Table, SlotOrRoom)> {
        if core.plain() {
            Self::find_slot_as::<Plain<K, V>>(core, key, now).map(|(t, r)| (t.erase(), r))
        } else {
            Self::find_slot_as::<Ext>(core, key, now).map(|(t, r)| (t.erase(), r))
        }
    }

    /// [`Map::find_live`] on a map known to have extension words or not.
    #[inline(always)]
    pub(crate) fn find_live_as<S: Shape>(
        core: &mut Core,
        key: &Key<'_>,
        now: u32,
    ) -> Result<(Table<S>, Option<usize>)> {
        Self::find_slot_as::<S>(core, key, now).map(|(t, r)| (t, r.ok()))
    }

    /// [`Map::find_live_as`] that also tells where an insert of the key
    /// would go: `Err(Some(slot))`, the active table's slot that the
    /// unsuccessful probe ended on, for [`Core::place_new_open_as`] (`None` if
    /// the probe met an expired entry of the key, which it removed).
    #[inline(always)]
    pub(crate) fn find_slot_as<S: Shape>(
        core: &mut Core,
        key: &Key<'_>,
        now: u32,
    ) -> Result<(Table<S>, SlotOrRoom)> {
        let t = Self::active_as::<S>(core).ok_or_else(|| core.damaged())?;
        match core.find_as(t, key.hash, |w| Self::key_eq(core, key, w)) {
            (t, Probe::Found(i)) if core.live(&t, i, now) => Ok((t, Ok(i))),
            (old, Probe::Found(i)) => {
                core.seq_begin();
                core.remove_expired(&old, i);
                core.seq_end();
                Ok((t, Err(None)))
            }
            (_, Probe::Vacant(i)) => Ok((t, Err(Some(i)))),
            _ => Ok((t, Err(None))),
        }
    }

    /// Store `v` as the value of the live slot `i` (writer lock held), with
    /// a new expiry if given, and promote it. (Inlined: an integer value is
    /// one store, which a call around it would double; with the in-place
    /// string path the compiler stopped inlining it, +14 instructions on II
    /// put.)
    #[inline(always)]
    pub(crate) fn overwrite<S: Shape>(
        core: &mut Core,
        t: &Table<S>,
        i: usize,
        v: &Item,
        expiry: Option<u64>,
    ) -> Result<Status> {
        if V::BYTES && core.overwrite_in_place(t.val(i), v.bytes, v.utf8 != 0) {
            // the new bytes fitted the old block (no allocation)
        } else if V::BYTES {
            // The allocation is part of the change: inside the window, so
            // that a writer dying here leaves the sequence odd for recovery.
            core.undo_begin(UNDO_OVERWRITE);
            core.seq_begin();
            let nw = match Self::store_word(core, true, v) {
                Ok(w) => w,
                Err(e) => {
                    core.seq_end();
                    return e.into_status();
                }
            };
            if core.hdr().recording() {
                let tombs = core.hdr().tombstones.load(Relaxed);
                core.undo_commit(t.desc(), i, 0, nw, t.val(i), tombs, 0);
            }
            let old = t.swap_val(i, nw);
            crate::fault::point();
            core.arena().free(old);
            core.seq_end();
        } else {
            t.set_val(i, v.num as u64);
            crate::fault::point();
        }
        Self::updated(core, t, i, expiry);
        Ok(Status::Ok)
    }

    /// Bookkeeping after an update of slot `i`: a new expiry (if given, on a
    /// TTL map) and an LRU promotion.
    #[inline(always)]
    pub(crate) fn updated<S: Shape>(core: &Core, t: &Table<S>, i: usize, expiry: Option<u64>) {
        if let (true, Some(e)) = (core.ttl_on, expiry) {
            t.ext(i).store(e, Release);
            crate::fault::point();
        }
        if core.lru_on {
            Self::promote(core, t, i);
        }
    }

    /// LRU promotion after an update: relinking is several stores, so it
    /// gets a window of its own. Out of line: plain maps never come here.
    #[cold]
    #[inline(never)]
    fn promote<S: Shape>(core: &Core, t: &Table<S>, i: usize) {
        core.lru_begin();
        core.seq_begin();
        core.lru_of(t).promote(t, i);
        core.seq_end();
    }

    /// Insert a key known to be absent, with the extension word `expiry`
    /// (writer lock held). On an LRU map at `max_size`, evicts one entry
    /// first. `vacant`: the slot a probe just found for the key, if any
    /// (see [`Core::place_new_open_as`]).
    pub(crate) fn insert_at(
        core: &mut Core,
        key: &Key<'_>,
        k: &Item,
        v: &Item,
        expiry: u64,
        now: u32,
        vacant: Option<usize>,
    ) -> Result<Status> {
        if core.plain() {
            Self::insert_as::<Plain<K, V>>(core, key, k, v, expiry, now, vacant)
        } else {
            Self::insert_as::<Ext>(core, key, k, v, expiry, now, vacant)
        }
    }

    /// [`Map::insert_at`] on a map known to have extension words or not.
    #[inline(always)]
    fn insert_as<S: Shape>(
        core: &mut Core,
        key: &Key<'_>,
        k: &Item,
        v: &Item,
        expiry: u64,
        now: u32,
        mut vacant: Option<usize>,
    ) -> Result<Status> {
        if !core.lru_on && core.hdr().size.load(Relaxed) >= core.max_entries {
            if !Self::reclaim_expired(core, now) {
                return Ok(Status::Full);
            }
            vacant = None; // (removals changed the table)
        }
        // Everything from the first allocation on is one change: a writer
        // dying anywhere in it leaves the sequence odd for recovery.
        let evict_after = core.lru_on && core.hdr().size.load(Relaxed) >= core.max_size;
        if evict_after {
            // An LRU map at max_size: the insert, then its eviction, in one
            // window (`Core::evict_after_insert`), so that a put that fails
            // evicts nothing and a death leaves all of it or none. Not
            // started unless the strings can be stored.
            let lens = [
                if K::BYTES { k.bytes.len() } else { 0 },
                if V::BYTES { v.bytes.len() } else { 0 },
            ];
            if let Err(e) = core.arena().room_for(&lens) {
                return e.into_status();
            }
            core.ready_victim(now);
            core.undo_begin_in(UNDO_INSERT, UNDO_CLEAN);
        } else {
            core.undo_begin(UNDO_INSERT);
            core.seq_begin();
        }
        let kw = match Self::store_word(core, K::BYTES, k) {
            Ok(w) => w,
            Err(e) => {
                core.seq_end();
                return e.into_status();
            }
        };
        let vw = match Self::store_word(core, V::BYTES, v) {
            Ok(w) => w,
            Err(e) => {
                if K::BYTES {
                    core.arena().free(kw);
                }
                core.seq_end();
                return e.into_status();
            }
        };
        let Some(i) =
            core.place_new_open_as::<S>(key.hash, kw, vw, expiry, now, vacant, evict_after)?
        else {
            return Ok(Status::Full);
        };
        if evict_after {
            core.evict_after_insert(now, i);
        }
        core.seq_end();
        Ok(Status::Ok)
    }

    /// Remove `k`; if `out` is given, the old value is copied there first.
    fn remove_impl(&mut self, k: &Item, out: Option<&mut Out>) -> Result<Status> {
        let key = self.key(k)?;
        let g = WriteGuard::lock(&mut self.core)?;
        let core = &mut *g.core;
        if core.plain() {
            Self::remove_as::<Plain<K, V>>(core, &key, out)
        } else {
            Self::remove_as::<Ext>(core, &key, out)
        }
    }

    /// [`Map::remove_impl`] under the lock, the table seen through `S`.
    #[inline(always)]
    fn remove_as<S: Shape>(
        core: &mut Core,
        key: &Key<'_>,
        out: Option<&mut Out>,
    ) -> Result<Status> {
        let now = core.now();
        let (t, Some(i)) = Self::find_live_as::<S>(core, key, now)? else {
            return Ok(Status::False);
        };
        Self::take_slot(core, &t, i, out)
    }

    /// Copy slot `i`'s value into `out` (if given), then remove the slot
    /// (writer lock held). `Status::Small` leaves the entry in place.
    pub(crate) fn take_slot<S: Shape>(
        core: &mut Core,
        t: &Table<S>,
        i: usize,
        out: Option<&mut Out>,
    ) -> Result<Status> {
        if let Some(out) = out {
            let w = t.val(i);
            match Self::emit(core, V::BYTES, w, out) {
                Some(Status::Ok) => {}
                Some(s) => return Ok(s),
                None => return Err(Error::new("corrupt map: bad value reference")),
            }
        }
        core.undo_begin(UNDO_REMOVE);
        core.seq_begin();
        core.remove_slot(t, i);
        core.maybe_shrink_as::<S>();
        core.seq_end();
        Ok(Status::Ok)
    }

    /// Remove `k`: `Status::Ok` if it was there.
    pub fn remove(&mut self, k: &Item) -> Result<Status> {
        self.remove_impl(k, None)
    }

    /// Remove `k` and return its value in `out`.
    pub fn take(&mut self, k: &Item, out: &mut Out) -> Result<Status> {
        self.remove_impl(k, Some(out))
    }

    /// The value of `k`, or store `dflt` and return it.
    pub fn get_or_set(&mut self, k: &Item, dflt: &Item, out: &mut Out) -> Result<Status> {
        let key = self.key(k)?;
        self.check_val(dflt)?;
        let g = WriteGuard::lock(&mut self.core)?;
        let core = &mut *g.core;
        let now = core.now();
        if let (t, Some(i)) = Self::find_live(core, &key, now)? {
            let w = t.val(i);
            let st = Self::emit(core, V::BYTES, w, out)
                .ok_or_else(|| Error::new("corrupt map: bad value reference"))?;
            if st == Status::Ok {
                Self::updated(core, &t, i, None);
            }
            return Ok(st);
        }
        if V::BYTES && dflt.bytes.len() > out.cap() {
            out.len = dflt.bytes.len();
            return Ok(Status::Small);
        }
        let expiry = crate::raw::ttl::expiry_after(now, core.ttl_default);
        match Self::insert_at(core, &key, k, dflt, expiry, now, None)? {
            Status::Ok => {}
            s => return Ok(s),
        }
        out.num = dflt.num;
        if V::BYTES {
            out.write(dflt.bytes, dflt.utf8 != 0);
            crate::fault::point();
        }
        Ok(Status::Ok)
    }

    /// Add `delta` to the integer value of `k` (a missing key starts at 0).
    #[inline(always)]
    pub fn incr_by(&mut self, k: &Item, delta: i64, result: &mut i64) -> Result<Status> {
        self.counter(k, result, delta, |cur| cur.checked_add(delta))
    }

    /// A counter operation: the value of `k` becomes `f(current)` (checked
    /// against the value type: `None` or out of range is `Status::Range` and
    /// changes nothing), or `init` for a missing key. On an existing key it
    /// runs lock-free: an atomic CAS loop under this process's counter
    /// indicator, so counters in many processes do not serialize.
    pub(crate) fn counter(
        &mut self,
        k: &Item,
        result: &mut i64,
        init: i64,
        f: impl Fn(i64) -> Option<i64>,
    ) -> Result<Status> {
        self.counter_at(k, result, init, f, None)
    }

    /// [`Map::counter`]; `at`: what a quick attempt found of the key (see
    /// [`Vacancy`]): it was missing, so the lock-free attempt is skipped.
    #[inline(always)]
    fn counter_at(
        &mut self,
        k: &Item,
        result: &mut i64,
        init: i64,
        f: impl Fn(i64) -> Option<i64>,
        at: Option<Vacancy>,
    ) -> Result<Status> {
        if V::BYTES {
            return Err(Error::new(
                "counters need integer values: use a variant with integer values (II, SI, ...)",
            ));
        }
        let key = self.key(k)?;
        self.core.writable()?;
        self.core.ensure_me()?;
        let now = self.core.now();
        let slots = self.core.slots();
        // Fast path: an existing live key, updated atomically without the
        // lock. Not on an LRU map: there every update moves the entry to the
        // recent end of the shared list, which takes the writer lock.
        if at.is_none()
            && !self.core.lru_on
            && lock::enter_counter(self.core.hdr(), slots, &self.core.me)
        {
            let core = &self.core;
            let r = if core.plain() {
                Self::counter_probe::<Plain<K, V>>(core, &key, now, &f, result).ok()
            } else {
                Self::counter_probe::<Ext>(core, &key, now, &f, result).ok()
            };
            lock::leave_counter(slots, &self.core.me);
            if let Some(s) = r {
                return Ok(s);
            }
        }
        let g = WriteGuard::lock(&mut self.core)?;
        let core = &mut *g.core;
        let vacant = match at {
            Some(at) if core.unchanged_since(at) => Some(at.slot),
            _ => match Self::find_slot(core, &key, now)? {
                (t, Ok(i)) => {
                    let s = Self::apply_in_place(&t, i, &f, result);
                    if s == Status::Ok {
                        core.ttl().refresh_expiry(&t, i, now);
                        Self::updated(core, &t, i, None);
                    }
                    return Ok(s);
                }
                (_, Err(vacant)) => vacant,
            },
        };
        if !V::fits(init) {
            return Ok(Status::Range);
        }
        let expiry = crate::raw::ttl::expiry_after(now, core.ttl_default);
        let s = Self::insert_at(core, &key, k, &Item::int(init), expiry, now, vacant)?;
        if s == Status::Ok {
            *result = init;
        }
        Ok(s)
    }

    /// The lock-free part of [`Map::counter`]: `Ok` once the live entry of
    /// `key` was changed (or `Status::Range`); for a missing key `Err` with
    /// the active table's slot its probe ended on (`Probe::Vacant`), or
    /// `Err(None)` (an expired entry, a damaged table).
    #[inline(always)]
    fn counter_probe<S: Shape>(
        core: &Core,
        key: &Key<'_>,
        now: u32,
        f: &impl Fn(i64) -> Option<i64>,
        result: &mut i64,
    ) -> std::result::Result<Status, Option<usize>> {
        let t = Self::active_as::<S>(core).ok_or(None)?;
        match core.find_as(t, key.hash, |w| Self::key_eq(core, key, w)) {
            (t, Probe::Found(i)) if core.live(&t, i, now) => {
                let s = Self::apply_in_place(&t, i, f, result);
                if s == Status::Ok {
                    core.ttl().refresh_expiry(&t, i, now);
                }
                Ok(s)
            }
            (_, Probe::Vacant(i)) => Err(Some(i)),
            _ => Err(None),
        }
    }

    /// CAS loop: the word becomes `f(current)` if that fits the value type.
    #[inline(always)]
    pub(crate) fn apply_in_place<S: Shape>(
        t: &Table<S>,
        i: usize,
        f: &impl Fn(i64) -> Option<i64>,
        result: &mut i64,
    ) -> Status {
        let mut cur = t.val(i);
        loop {
            let Some(new) = f(cur as i64).filter(|&n| V::fits(n)) else {
                return Status::Range;
            };
            if new as u64 == cur {
                *result = new;
                return Status::Ok;
            }
            match t.cas_val(i, cur, new as u64) {
                Ok(_) => {
                    *result = new;
                    return Status::Ok;
                }
                Err(w) => cur = w,
            }
        }
    }

    // ---- expiry and recency ----------------------------------------------

    /// Run `f` on the live slot of `k` under the writer lock; an expired
    /// entry met on the way is removed. `Ok(false)` if `k` is missing.
    fn with_live(&mut self, k: &Item, f: impl FnOnce(&Core, &Table, usize, u32)) -> Result<bool> {
        let key = self.key(k)?;
        let g = WriteGuard::lock(&mut self.core)?;
        let core = &mut *g.core;
        let now = core.now();
        let (t, Some(i)) = Self::find_live(core, &key, now)? else {
            return Ok(false);
        };
        f(core, &t, i, now);
        Ok(true)
    }

    /// Reset `k`'s lifetime to the default (a permanent entry stays
    /// permanent) and mark it recently used. False if `k` is missing or the
    /// map has neither LRU nor TTL.
    pub fn touch(&mut self, k: &Item) -> Result<bool> {
        self.core.writable()?;
        if !self.core.lru_on && !self.core.ttl_on {
            return Ok(false);
        }
        self.with_live(k, |core, t, i, now| {
            core.ttl().refresh_expiry(t, i, now);
            if core.lru_on {
                Self::promote(core, t, i);
            }
        })
    }

    /// Give `k` a lifetime of `secs` from now (0 = permanent). False if `k`
    /// is missing or the map has no TTL.
    pub fn set_ttl(&mut self, k: &Item, secs: u64) -> Result<bool> {
        self.core.writable()?;
        if !self.core.ttl_on {
            return Ok(false);
        }
        self.with_live(k, |_, t, i, now| {
            let e = t.ext(i).load(Relaxed);
            let ne = crate::raw::ttl::expiry_after(now, secs);
            t.ext(i).store((e & !layout::EXT_EXPIRY) | ne, Release);
            crate::fault::point();
        })
    }

    /// Make `k` permanent. False if `k` is missing or the map has no TTL.
    pub fn persist(&mut self, k: &Item) -> Result<bool> {
        self.set_ttl(k, 0)
    }

    /// Remove every expired entry; returns how many.
    pub fn flush_expired(&mut self) -> Result<u64> {
        Ok(self.flush(u64::MAX)?.0)
    }

    /// Scan up to `limit` slots from where the last call (from any process)
    /// stopped, removing expired entries: `(removed, done)`, `done` once a
    /// full pass has ended (the next call starts a new one).
    pub fn flush_expired_partial(&mut self, limit: u64) -> Result<(u64, bool)> {
        self.flush(limit)
    }

    fn flush(&mut self, limit: u64) -> Result<(u64, bool)> {
        self.core.writable()?;
        if !self.core.ttl_on {
            return Ok((0, true));
        }
        let g = WriteGuard::lock(&mut self.core)?;
        let core = &mut *g.core;
        // A pass scans the active table only: a migration in progress is
        // finished first, by a full flush (a walk of the map anyway) at
        // once, by a partial one `limit` old homes per call.
        if limit == u64::MAX {
            core.settle();
        } else if core.is_migrating() && core.migrate_some(limit) {
            return Ok((0, false));
        }
        let now = core.now();
        let t = Self::active(core).ok_or_else(|| core.damaged())?;
        let mut open = false;
        let (removed, done) = Self::scan_expired(core, &t, limit, now, &mut open);
        if done {
            // every removal above is whole: a death in the shrink needs its
            // record only
            Self::open_clean(core, &mut open);
            core.maybe_shrink();
        }
        if open {
            core.seq_end();
        }
        Ok((removed, done))
    }

    /// Open a window for changes that each keep a record of their own, if
    /// not open yet: "clean" first, so that a death before the first of
    /// them needs no repair (a window opened in the lock's state, "walk",
    /// would be repaired by the walks).
    fn open_clean(core: &mut Core, open: &mut bool) {
        if !*open {
            core.undo_clean();
            core.seq_begin();
            *open = true;
        }
    }

    /// Remove the entry in slot `i` of `t` if it has expired, a change of
    /// its own in the window [`Map::open_clean`] opens if need be: true if
    /// it did.
    fn remove_if_expired(core: &mut Core, t: &Table, i: usize, now: u32, open: &mut bool) -> bool {
        if !t.is_full(i) || core.live(t, i, now) {
            return false;
        }
        Self::open_clean(core, open);
        core.remove_expired(t, i);
        true
    }

    /// The next `limit` slots of the flush pass (shared by every process,
    /// `Header::flush_pos`; from the start when `limit` is `u64::MAX`),
    /// their expired entries removed, each a change of its own (writer
    /// lock held, active table `t`, no migration), in a window opened at
    /// the first ([`Map::open_clean`]: readers retry only if something
    /// goes): `(removed, done)`, `done` when the pass reached the end.
    fn scan_expired(
        core: &mut Core,
        t: &Table,
        limit: u64,
        now: u32,
        open: &mut bool,
    ) -> (u64, bool) {
        let d = t.desc();
        let pos = core.hdr().flush_pos.load(Relaxed);
        let mut i = if limit == u64::MAX || pos >> FLUSH_SLOT_BITS != flush_tag(d) {
            0
        } else {
            (pos & ((1 << FLUSH_SLOT_BITS) - 1)) as usize
        };
        let end = (i as u64).saturating_add(limit).min(t.cap() as u64) as usize;
        let mut removed = 0;
        while i < end {
            removed += Self::remove_if_expired(core, t, i, now, open) as u64;
            i += 1;
        }
        let done = i >= t.cap();
        core.hdr().flush_pos.store(
            (flush_tag(d) << FLUSH_SLOT_BITS) | if done { 0 } else { i as u64 },
            Relaxed,
        );
        (removed, done)
    }

    /// A TTL map at `max_entries` (writer lock held, no change in flight):
    /// before an insert is refused, the next [`RECLAIM_SLOTS`] slots of the
    /// flush pass give up their expired entries, as
    /// `flush_expired_partial` would (a map whose entries have all expired
    /// takes new ones without a flush first). During a migration (the
    /// compaction of a table at its largest size, most often), first the
    /// old table's slots from the frontier on: those the next steps move,
    /// where the entries that have not moved yet are; then, if that freed
    /// nothing, the new table's slots of the pass. True if that made room.
    #[cold]
    #[inline(never)]
    fn reclaim_expired(core: &mut Core, now: u32) -> bool {
        if !core.ttl_on {
            return false;
        }
        let mut open = false;
        if let Some((old, front)) = core.migrating_as::<crate::raw::table::Dyn>() {
            let end = front.saturating_add(RECLAIM_SLOTS as usize).min(old.cap());
            for i in front..end {
                Self::remove_if_expired(core, &old, i, now, &mut open);
            }
        }
        // (during a migration too, if the old table's slots freed nothing:
        // its entries may all have moved, the expired ones with them)
        if core.hdr().size.load(Relaxed) >= core.max_entries {
            if let Some(t) = Self::active(core) {
                Self::scan_expired(core, &t, RECLAIM_SLOTS, now, &mut open);
            }
        }
        if open {
            core.undo_clean();
            core.seq_end();
        }
        core.hdr().undo_state.store(UNDO_WALK, Relaxed);
        core.hdr().size.load(Relaxed) < core.max_entries
    }

    /// Before a batch of `keys` on a TTL map without LRU whose new keys
    /// do not fit (writer lock held, no change in flight): expired entries
    /// go first, as for a single insert ([`Map::reclaim_expired`]), up to
    /// a scan of about four slots of the flush pass per new key, until
    /// they fit.
    /// Each removal is a change of its own, made before the batch's
    /// record starts.
    fn reclaim_for(core: &mut Core, keys: &[Key<'_>]) {
        if core.lru_on || !core.ttl_on {
            return;
        }
        let room = |core: &Core| {
            core.max_entries
                .saturating_sub(core.hdr().size.load(Relaxed))
        };
        if keys.len() as u64 <= room(core) {
            return;
        }
        let Some(t) = Self::active(core) else { return };
        let new = keys
            .iter()
            .filter(|key| {
                let (_, p) = core.find_as(t, key.hash, |w| Self::key_eq(core, key, w));
                !matches!(p, Probe::Found(_))
            })
            .count() as u64;
        let now = core.now();
        for _ in 0..1 + new / (RECLAIM_SLOTS / 4) {
            if new <= room(core) {
                break;
            }
            Self::reclaim_expired(core, now);
        }
    }

    // ---- iteration -----------------------------------------------------

    // ---- whole-map operations -------------------------------------------

    /// Seal the map: after this every mutator on every handle fails with
    /// "map is frozen". Durable: the map and the flag are synced to disk.
    /// File-backed maps only.
    pub fn freeze(&mut self) -> Result<()> {
        if self.core.frozen() {
            return Ok(());
        }
        if self.core.region.kind() != Kind::File {
            return Err(Error::new(format!(
                "{}: freeze needs a map in a file (new_readonly attaches frozen maps by path)",
                self.core.path()
            )));
        }
        let g = WriteGuard::lock(&mut self.core)?;
        // a frozen map is read without a lock, and never migrates again;
        // nor does it take the lock that would return a retired table's
        // region a chunk at a time
        g.core.settle();
        g.core.punch_spare();
        g.core.region.sync()?;
        g.core.hdr().frozen.store(1, Release);
        g.core.region.sync()?;
        g.core.region.fsync()?;
        Ok(())
    }

    /// Pre-size the table for `n` entries; false if `n > max_entries`.
    /// A mutator like any other: on a frozen map it fails with "map is
    /// frozen" before anything else is checked.
    pub fn reserve(&mut self, n: u64) -> Result<bool> {
        self.core.writable()?;
        if n > self.core.max_entries {
            return Ok(false);
        }
        let g = WriteGuard::lock(&mut self.core)?;
        // (during a migration, the new table: the old one's entries are
        // moving into it)
        let t = g.core.active().ok_or_else(|| g.core.damaged())?;
        let (cap, tombs) = (t.cap() as u64, g.core.hdr().tombstones.load(Relaxed));
        let want = g.core.cap_for(n + tombs);
        if want > cap {
            // nothing else in flight: a death in the resize needs only its
            // record (marked clean before the window opens)
            g.core.undo_clean();
            g.core.seq_begin();
            let r = g.core.grow_to(cap, want);
            g.core.seq_end();
            r?;
        }
        Ok(true)
    }

    /// Remove every entry (stat counters survive).
    pub fn clear(&mut self) -> Result<()> {
        let g = WriteGuard::lock(&mut self.core)?;
        let core = &mut *g.core;
        core.seq_begin();
        let r = core.clear_all();
        core.seq_end();
        r
    }

    /// Record (or check) that this file is shard `i` of `n`.
    pub(crate) fn claim_shard(&mut self, n: u32, i: u32) -> Result<()> {
        let want = ((n as u64) << 32) | i as u64;
        let mismatch = |path: &str, have: u64| {
            Err(Error::new(format!(
                "{path}: shard count mismatch: this file is shard {} of {}, opened as shard {i} \
                 of {n} (num_shards must be the count the files were created with)",
                have & 0xffff_ffff,
                have >> 32
            )))
        };
        let have = self
            .core
            .hdr()
            .shard
            .load(std::sync::atomic::Ordering::Acquire);
        if have == want {
            return Ok(());
        }
        if have != 0 {
            return mismatch(self.core.path(), have);
        }
        let g = WriteGuard::lock(&mut self.core)?;
        let h = g.core.hdr();
        match h.shard.compare_exchange(
            0,
            want,
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
        ) {
            Ok(_) => Ok(()),
            Err(now) if now == want => Ok(()),
            Err(now) => mismatch(g.core.path(), now),
        }
    }

    /// Check every invariant of the map (see [`crate::raw::verify::verify`]).
    pub fn verify(&mut self) -> Result<()> {
        crate::raw::verify::verify::<K, V>(&mut self.core)
    }

    /// The next entry of this handle's walk, or `Status::False` at the end
    /// (the walk then starts over).
    pub fn each(&mut self, kout: &mut Out, vout: &mut Out) -> Result<Status> {
        let mut pos = self.core.iter;
        let st = self.walk(&mut pos, kout, vout)?;
        // At the end the walk starts over.
        self.core.iter = if st == Status::False { None } else { pos };
        Ok(st)
    }

    /// One step of a walk in hash order from `pos` (the hash of the last
    /// entry returned; None at the start), lock-free: `Status::Ok` with the
    /// entry in the outs and `pos` advanced, `Status::False` at the end,
    /// `Status::Small` with `pos` kept. Every entry present for the whole
    /// walk comes exactly once, whatever happens to the table meanwhile.
    pub fn walk(
        &mut self,
        pos: &mut Option<u64>,
        kout: &mut Out,
        vout: &mut Out,
    ) -> Result<Status> {
        let after = *pos;
        let now = self.core.now();
        let r = crate::raw::guard::read(&mut self.core, |core| {
            let new = Self::active(core)?;
            let mut from = after;
            // (across both tables of a migration in progress)
            let (t, i) = loop {
                let Some((t, i)) = core.walk_next(new, from) else {
                    return Some((after, Status::False));
                };
                if core.live(&t, i, now) {
                    break (t, i);
                }
                from = Some(t.meta(i) & !3);
            };
            let m = t.meta(i);
            let (kw, vw) = (t.key(i), t.val(i));
            let a = Self::emit(core, K::BYTES, kw, kout);
            let b = Self::emit(core, V::BYTES, vw, vout);
            Some(match (a, b) {
                (Some(Status::Ok), Some(Status::Ok)) => (Some(m & !3), Status::Ok),
                (Some(_), Some(_)) => (after, Status::Small),
                _ => (after, Status::Range), // a bad reference that validated
            })
        })?;
        let Some((last, st)) = r else {
            return Err(self.core.damaged());
        };
        if st == Status::Range {
            return Err(self.corrupt_ref());
        }
        *pos = last;
        Ok(st)
    }

    /// Every live entry, copied under the writer lock: `(key, value)`.
    pub fn snapshot(&mut self) -> Result<Vec<(Entry, Entry)>> {
        // (a migration in progress is not finished first: its old table's
        // entries that have not moved are read where they are)
        let g = WriteGuard::view_both(&mut self.core)?;
        let core = &*g.core;
        let now = core.now();
        let t = Self::active(core).ok_or_else(|| core.damaged())?;
        let mut v = Vec::with_capacity(core.hdr().size.load(Relaxed) as usize);
        for (t, min) in core.entry_tables(t.erase()) {
            for i in 0..t.cap() {
                if t.holds(i, min) && core.live(&t, i, now) {
                    let k = Self::entry(core, K::BYTES, t.key(i));
                    let val = Self::entry(core, V::BYTES, t.val(i));
                    match (k, val) {
                        (Some(k), Some(val)) => v.push((k, val)),
                        _ => return Err(Error::new("corrupt map: bad string reference")),
                    }
                }
            }
        }
        Ok(v)
    }

    pub(crate) fn entry(core: &Core, is_bytes: bool, w: u64) -> Option<Entry> {
        if !is_bytes {
            return Some(Entry::Int(w as i64));
        }
        let v = core.arena().view(w)?;
        let mut b = Vec::with_capacity(v.len());
        core.arena()
            .copy(&v, &mut b.spare_capacity_mut()[..v.len()]);
        // SAFETY: str_copy initialized these v.len() bytes.
        unsafe { b.set_len(v.len()) };
        Some(Entry::Bytes(b, v.utf8))
    }
}

// ---- the rest of the operation set (SPEC section 5): conditional and
// atomic writes, batches, removal from the ends, cursor positioning ------

/// Which end `take_ends` removes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `pop`: the least recently used end (LRU maps); the table's last
    /// entry otherwise.
    Oldest,
    /// `shift`: the most recently used end (LRU maps); the table's first
    /// entry otherwise.
    Newest,
}

impl<K: Codec, V: Codec> Map<K, V> {
    /// Insert only if absent (own lifetime `ttl` if given): `Status::Ok`
    /// if stored, `False` if present, `Full`.
    pub fn add(&mut self, k: &Item, v: &Item, ttl: Option<u64>) -> Result<Status> {
        self.conditional(k, v, ttl, false)
    }

    /// Overwrite only if present (own lifetime `ttl` if given).
    pub fn update(&mut self, k: &Item, v: &Item, ttl: Option<u64>) -> Result<Status> {
        self.conditional(k, v, ttl, true)
    }

    fn conditional(
        &mut self,
        k: &Item,
        v: &Item,
        ttl: Option<u64>,
        present: bool,
    ) -> Result<Status> {
        if ttl.is_some() {
            self.need_ttl(if present { "update_ttl" } else { "add_ttl" })?;
        }
        let key = self.key(k)?;
        self.check_val(v)?;
        let g = WriteGuard::lock(self.core())?;
        let core = &mut *g.core;
        let now = core.now();
        match (Self::find_live(core, &key, now)?, present) {
            ((t, Some(i)), true) => {
                let expiry = core.ttl().expiry_on_write(&t, i, now, ttl);
                Self::overwrite(core, &t, i, v, expiry)
            }
            ((_, None), false) => {
                let expiry = crate::raw::ttl::expiry_after(now, ttl.unwrap_or(core.ttl_default));
                Self::insert_at(core, &key, k, v, expiry, now, None)
            }
            _ => Ok(Status::False),
        }
    }

    /// Store `v`; the previous value goes into `out` (`Status::Ok`), or
    /// `Status::False` for a fresh insert; `Full` if it cannot store.
    pub fn swap(&mut self, k: &Item, v: &Item, out: &mut Out) -> Result<Status> {
        let key = self.key(k)?;
        self.check_val(v)?;
        let g = WriteGuard::lock(self.core())?;
        let core = &mut *g.core;
        let now = core.now();
        match Self::find_live(core, &key, now)? {
            (t, Some(i)) => {
                let w = t.val(i);
                match Self::emit(core, V::BYTES, w, out) {
                    Some(Status::Ok) => {}
                    Some(s) => return Ok(s),
                    None => return Err(Error::new("corrupt map: bad value reference")),
                }
                let expiry = core.ttl().expiry_on_write(&t, i, now, None);
                match Self::overwrite(core, &t, i, v, expiry)? {
                    Status::Ok => Ok(Status::Ok),
                    s => Ok(s),
                }
            }
            (_, None) => {
                let expiry = crate::raw::ttl::expiry_after(now, core.ttl_default);
                match Self::insert_at(core, &key, k, v, expiry, now, None)? {
                    Status::Ok => Ok(Status::False),
                    s => Ok(s),
                }
            }
        }
    }

    /// Does the value word `w` equal `want` (numbers for integer values,
    /// bytes for strings)? Writer lock held.
    fn value_is(core: &Core, w: u64, want: &Item) -> bool {
        if !V::BYTES {
            return w as i64 == want.num;
        }
        let b = want.as_bytes();
        match crate::format::words::inline_word(b, false) {
            Some(iw) => crate::format::words::inline_same_bytes(w, iw),
            None => !crate::format::words::is_inline(w) && core.arena().eq(w, b),
        }
    }

    /// Replace the value of `k` with `desired` if it equals `expected`.
    pub fn cas(&mut self, k: &Item, expected: &Item, desired: &Item) -> Result<Status> {
        let key = self.key(k)?;
        self.check_val(desired)?;
        let g = WriteGuard::lock(self.core())?;
        let core = &mut *g.core;
        let now = core.now();
        match Self::find_live(core, &key, now)? {
            (t, Some(i)) if Self::value_is(core, t.val(i), expected) => {
                let expiry = core.ttl().expiry_on_write(&t, i, now, None);
                Self::overwrite(core, &t, i, desired, expiry)
            }
            _ => Ok(Status::False),
        }
    }

    /// Remove `k` and return its value in `out` if it equals `expected`.
    pub fn cas_take(&mut self, k: &Item, expected: &Item, out: &mut Out) -> Result<Status> {
        let key = self.key(k)?;
        let g = WriteGuard::lock(self.core())?;
        let core = &mut *g.core;
        let now = core.now();
        let (t, Some(i)) = Self::find_live(core, &key, now)? else {
            return Ok(Status::False);
        };
        if !Self::value_is(core, t.val(i), expected) {
            return Ok(Status::False);
        }
        Self::take_slot(core, &t, i, Some(out))
    }

    /// Store max(current, d) (a missing key takes d); the result in `result`.
    pub fn max(&mut self, k: &Item, d: i64, result: &mut i64) -> Result<Status> {
        self.counter(k, result, d, |c| Some(c.max(d)))
    }

    /// Store min(current, d) (a missing key takes d); the result in `result`.
    pub fn min(&mut self, k: &Item, d: i64, result: &mut i64) -> Result<Status> {
        self.counter(k, result, d, |c| Some(c.min(d)))
    }

    // ---- batches ---------------------------------------------------------

    /// Store every pair under one lock: how many were stored. All or
    /// nothing under a crash (a redo record, see `batch.rs`). A new key is
    /// not stored once the map is full.
    pub fn set_multi(&mut self, pairs: &[(Item, Item)]) -> Result<u64> {
        let mut keys = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            keys.push(self.key(k)?);
            self.check_val(v)?;
        }
        let g = WriteGuard::lock(self.core())?;
        let core = &mut *g.core;
        Self::reclaim_for(core, &keys);
        crate::raw::batch::start(core);
        core.seq_begin();
        if let Err(e) = core.room_for(pairs.len() as u64) {
            core.seq_end();
            return Err(e);
        }
        let t = Self::active(core)
            .ok_or_else(|| Error::new("corrupt map: the table descriptor is invalid"))?;
        let size = core.hdr().size.load(Relaxed);
        let mut room = if core.lru_on {
            u64::MAX
        } else {
            core.info(crate::raw::types::Info::MaxEntries)
                .saturating_sub(size)
        };
        let mut prep = match Prep::begin(core, pairs.len() as u64) {
            Ok(p) => p,
            Err(e) => return Self::give_up(core, e),
        };
        for (key, (k, v)) in keys.iter().zip(pairs) {
            let present = matches!(
                core.find_as(t, key.hash, |w| Self::key_eq(core, key, w)),
                (_, Probe::Found(_))
            );
            if !present {
                if room == 0 {
                    continue;
                }
                room -= 1;
            }
            prep.expect(core, 1);
            let kw = match Self::store_word(core, K::BYTES, k) {
                Ok(w) => w,
                Err(e) => return Self::abandon(core, prep, e),
            };
            prep.expect(core, 2);
            let vw = match Self::store_word(core, V::BYTES, v) {
                Ok(w) => w,
                Err(e) => return Self::abandon(core, prep, e),
            };
            prep.push(core, key.hash, kw, vw);
        }
        Self::run_batch(core, crate::raw::batch::SET, prep)
    }

    /// Commit and apply a prepared batch (sequence odd; ends the window).
    fn run_batch(core: &mut Core, kind: u64, prep: Prep) -> Result<u64> {
        if prep.is_empty() {
            prep.abandon(core);
            core.seq_end();
            return Ok(0);
        }
        let n = prep.commit(core, kind);
        core.seq_end();
        Ok(n)
    }

    /// A batch that could not be prepared: give back what it took, end the
    /// window. Nothing of it took effect.
    fn abandon(core: &mut Core, prep: Prep, e: StoreError) -> Result<u64> {
        prep.abandon(core);
        Self::give_up(core, e)
    }

    /// End the window of a batch that changed nothing, for `e`.
    fn give_up(core: &mut Core, e: StoreError) -> Result<u64> {
        core.seq_end();
        match e {
            StoreError::Full | StoreError::Remap(_) => Ok(0),
            StoreError::Sys(e) => Err(e),
        }
    }

    /// The values of `keys` (None where missing), read under one lock.
    pub fn get_multi(&mut self, keys: &[Item]) -> Result<Vec<Option<Entry>>> {
        let mut prepared = Vec::with_capacity(keys.len());
        for k in keys {
            prepared.push(self.key(k)?);
        }
        let g = WriteGuard::view_both(self.core())?;
        let core = &*g.core;
        let now = core.now();
        let t = Self::active(core).ok_or_else(|| Error::new("corrupt map"))?;
        let mut out = Vec::with_capacity(keys.len());
        for key in &prepared {
            let v = match core.find_as(t, key.hash, |w| Self::key_eq(core, key, w)) {
                (t, Probe::Found(i)) if core.live(&t, i, now) => {
                    core.mark_used(&t, i);
                    Some(Self::entry(core, V::BYTES, t.val(i)).ok_or_else(self_corrupt)?)
                }
                _ => None,
            };
            out.push(v);
        }
        Ok(out)
    }

    /// Remove every key under one lock: how many were removed. All or
    /// nothing under a crash (a redo record, see `batch.rs`).
    pub fn remove_multi(&mut self, keys: &[Item]) -> Result<u64> {
        let mut prepared = Vec::with_capacity(keys.len());
        for k in keys {
            prepared.push(self.key(k)?);
        }
        let g = WriteGuard::lock(self.core())?;
        let core = &mut *g.core;
        let now = core.now();
        let t = Self::active(core)
            .ok_or_else(|| Error::new("corrupt map: the table descriptor is invalid"))?;
        crate::raw::batch::start(core);
        core.seq_begin();
        let mut prep = match Prep::begin(core, keys.len() as u64) {
            Ok(p) => p,
            Err(e) => return Self::give_up(core, e),
        };
        for (key, k) in prepared.iter().zip(keys) {
            match core.find_as(t, key.hash, |w| Self::key_eq(core, key, w)) {
                (t, Probe::Found(i)) if core.live(&t, i, now) => {}
                _ => continue,
            }
            prep.expect(core, 1);
            match Self::store_word(core, K::BYTES, k) {
                Ok(kw) => prep.push(core, key.hash, kw, 0),
                Err(e) => return Self::abandon(core, prep, e),
            }
        }
        Self::run_batch(core, crate::raw::batch::REMOVE, prep)
    }

    // ---- removing from the ends --------------------------------------------

    /// Remove up to `n` entries from one end under one lock and return
    /// them (`pop`, `shift`, `drain`). Never reserves more than the map holds.
    pub fn take_ends(&mut self, n: u64, end: End) -> Result<Vec<(Entry, Entry)>> {
        let g = WriteGuard::lock(self.core())?;
        let core = &mut *g.core;
        let now = core.now();
        let size = core.hdr().size.load(Relaxed);
        let mut out = Vec::with_capacity(n.min(size) as usize);
        let t = Self::active(core).ok_or_else(|| Error::new("corrupt map"))?;
        // Without LRU: walk the tables from one end, once each: during a
        // migration first the old table's entries that have not moved
        // (those whose home is at or above the frontier), then the new
        // table ("any entry", SPEC: no migration is finished first).
        let mut tables: Vec<(Table, usize)> = core.entry_tables(t.erase()).collect();
        let mut scan = None;
        core.seq_begin();
        while (out.len() as u64) < n {
            let (t, i) = if core.lru_on {
                let h = core.hdr();
                let w = match end {
                    End::Oldest => h.lru_tail.load(Relaxed),
                    End::Newest => h.lru_head.load(Relaxed),
                } as u32;
                // (during a migration, in either table)
                let Some((lt, li)) = core.lru_node(w) else {
                    break;
                };
                if !lt.is_full(li) {
                    core.seq_end();
                    return Err(Error::new(format!(
                        "{}: corrupt map: the LRU list names an empty slot (verify tells more)",
                        core.path()
                    )));
                }
                (lt, li)
            } else {
                let Some(&(t, min)) = tables.first() else {
                    break;
                };
                let from = scan.unwrap_or(match end {
                    End::Oldest => t.cap(),
                    End::Newest => 0,
                });
                let mine = |i: &usize| t.holds(*i, min);
                let found = match end {
                    End::Oldest => (0..from).rev().find(mine),
                    End::Newest => (from..t.cap()).find(mine),
                };
                let Some(i) = found else {
                    tables.remove(0);
                    scan = None;
                    continue;
                };
                scan = Some(if end == End::Oldest { i } else { i + 1 });
                (t, i)
            };
            if !core.live(&t, i, now) {
                core.remove_expired(&t, i);
                continue;
            }
            let k = Self::entry(core, K::BYTES, t.key(i));
            let v = Self::entry(core, V::BYTES, t.val(i));
            let (Some(k), Some(v)) = (k, v) else {
                core.seq_end();
                return Err(self_corrupt());
            };
            out.push((k, v));
            // each removal is a single change with its record (the ones
            // before it in this window are whole)
            core.undo_begin_in(UNDO_REMOVE, UNDO_CLEAN);
            core.remove_slot(&t, i);
        }
        // every removal above is whole (see `flush`)
        core.undo_clean();
        core.maybe_shrink();
        core.seq_end();
        Ok(out)
    }

    // ---- cursors -----------------------------------------------------------

    /// The walk position from which the next step returns `k`, or None if
    /// `k` is missing (see [`Map::walk`]).
    pub fn seek(&mut self, k: &Item) -> Result<Option<Option<u64>>> {
        let key = self.key(k)?;
        if !self.exists(k)? {
            return Ok(None);
        }
        let h = crate::format::layout::full_meta(key.hash) & !3;
        Ok(Some(h.checked_sub(1)))
    }
}

fn self_corrupt() -> Error {
    Error::new("corrupt map: bad string reference")
}

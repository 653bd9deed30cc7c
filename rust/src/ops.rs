//! The rest of the operation set (SPEC section 5): conditional and atomic
//! writes, batches, removal from the ends, and cursor positioning. Each is
//! built from the primitives of `map.rs` under one writer lock (or, for
//! `max`/`min`, on the lock-free counter path).

use crate::raw::arena::StoreError;
use crate::raw::codec::Codec;
use crate::error::{Error, Result};
use crate::format::layout::NIL;
use crate::raw::core::Core;
use crate::raw::types::{Entry, Item, Out, Status};
use crate::map::Map;
use crate::raw::table::Probe;
use std::sync::atomic::Ordering::*;

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
        let g = self.core().write_lock()?;
        let core = &mut *g.core;
        let now = core.now();
        match (Self::find_live(core, &key, now)?, present) {
            ((t, Some(i)), true) => {
                let expiry = core.ttl().expiry_on_write(&t, i, now, ttl);
                Self::overwrite(core, &t, i, v, expiry)
            }
            ((_, None), false) => {
                let expiry = crate::raw::ttl::expiry_after(now, ttl.unwrap_or(core.ttl_default));
                Self::insert_locked(core, &key, k, v, expiry, now)
            }
            _ => Ok(Status::False),
        }
    }

    /// Store `v`; the previous value goes into `out` (`Status::Ok`), or
    /// `Status::False` for a fresh insert; `Full` if it cannot store.
    pub fn swap(&mut self, k: &Item, v: &Item, out: &mut Out) -> Result<Status> {
        let key = self.key(k)?;
        self.check_val(v)?;
        let g = self.core().write_lock()?;
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
                match Self::insert_locked(core, &key, k, v, expiry, now)? {
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
            None => !crate::format::words::is_inline(w) && core.str_eq(w, b),
        }
    }

    /// Replace the value of `k` with `desired` if it equals `expected`.
    pub fn cas(&mut self, k: &Item, expected: &Item, desired: &Item) -> Result<Status> {
        let key = self.key(k)?;
        self.check_val(desired)?;
        let g = self.core().write_lock()?;
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
        let g = self.core().write_lock()?;
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
        let g = self.core().write_lock()?;
        let core = &mut *g.core;
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
            core.info(crate::raw::types::Info::MaxEntries).saturating_sub(size)
        };
        let mut entries = Vec::with_capacity(pairs.len());
        for (key, (k, v)) in keys.iter().zip(pairs) {
            let present = matches!(
                t.probe(key.hash, |w| Self::key_eq(core, key, w)),
                Probe::Found(_)
            );
            if !present {
                if room == 0 {
                    continue;
                }
                room -= 1;
            }
            let kw = match Self::store_word(core, K::BYTES, k) {
                Ok(w) => w,
                Err(e) => return Self::abandon(core, &entries, e),
            };
            let vw = match Self::store_word(core, V::BYTES, v) {
                Ok(w) => w,
                Err(e) => {
                    entries.push((key.hash, kw, 0));
                    return Self::abandon(core, &entries, e);
                }
            };
            entries.push((key.hash, kw, vw));
        }
        Self::run_batch(core, crate::raw::batch::SET, &entries)
    }

    /// Commit and apply a prepared batch (sequence odd; ends the window).
    fn run_batch(core: &mut Core, kind: u64, entries: &[(u64, u64, u64)]) -> Result<u64> {
        if entries.is_empty() {
            core.seq_end();
            return Ok(0);
        }
        if let Err(e) = core.batch_commit(kind, entries) {
            return Self::abandon(core, entries, e);
        }
        let n = core.batch_apply();
        core.seq_end();
        Ok(n)
    }

    /// A batch that could not be prepared: free what it stored, end the
    /// window. Nothing of it took effect.
    fn abandon(core: &mut Core, entries: &[(u64, u64, u64)], e: StoreError) -> Result<u64> {
        for &(_, kw, vw) in entries {
            if K::BYTES {
                core.str_free(kw);
            }
            if V::BYTES && vw != 0 {
                core.str_free(vw);
            }
        }
        core.seq_end();
        match e {
            StoreError::Full => Ok(0),
            StoreError::Sys(e) => Err(e),
        }
    }

    /// The values of `keys` (None where missing), read under one lock.
    pub fn get_multi(&mut self, keys: &[Item]) -> Result<Vec<Option<Entry>>> {
        let mut prepared = Vec::with_capacity(keys.len());
        for k in keys {
            prepared.push(self.key(k)?);
        }
        let g = self.core().view_lock()?;
        let core = &*g.core;
        let now = core.now();
        let t = Self::active(core).ok_or_else(|| Error::new("corrupt map"))?;
        let mut out = Vec::with_capacity(keys.len());
        for key in &prepared {
            let v = match t.probe(key.hash, |w| Self::key_eq(core, key, w)) {
                Probe::Found(i) if core.live(&t, i, now) => {
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
        let g = self.core().write_lock()?;
        let core = &mut *g.core;
        let now = core.now();
        let t = Self::active(core)
            .ok_or_else(|| Error::new("corrupt map: the table descriptor is invalid"))?;
        core.seq_begin();
        let mut entries = Vec::new();
        for (key, k) in prepared.iter().zip(keys) {
            match t.probe(key.hash, |w| Self::key_eq(core, key, w)) {
                Probe::Found(i) if core.live(&t, i, now) => {}
                _ => continue,
            }
            match Self::store_word(core, K::BYTES, k) {
                Ok(kw) => entries.push((key.hash, kw, 0)),
                Err(e) => return Self::abandon(core, &entries, e),
            }
        }
        Self::run_batch(core, crate::raw::batch::REMOVE, &entries)
    }

    // ---- removing from the ends --------------------------------------------

    /// Remove up to `n` entries from one end under one lock and return
    /// them (`pop`, `shift`, `drain`). Never reserves more than the map holds.
    pub fn take_ends(&mut self, n: u64, end: End) -> Result<Vec<(Entry, Entry)>> {
        let g = self.core().write_lock()?;
        let core = &mut *g.core;
        let now = core.now();
        let size = core.hdr().size.load(Relaxed);
        let mut out = Vec::with_capacity(n.min(size) as usize);
        let t = Self::active(core).ok_or_else(|| Error::new("corrupt map"))?;
        // Without LRU: walk the table from one end, once.
        let mut scan = match end {
            End::Oldest => t.cap(),
            End::Newest => 0,
        };
        core.seq_begin();
        while (out.len() as u64) < n {
            let i = if core.lru_on {
                let h = core.hdr();
                let w = match end {
                    End::Oldest => h.lru_tail.load(Relaxed),
                    End::Newest => h.lru_head.load(Relaxed),
                } as u32;
                if w == NIL || w as usize >= t.cap() {
                    break;
                }
                if !t.is_full(w as usize) {
                    core.seq_end();
                    return Err(Error::new(format!(
                        "{}: corrupt map: the LRU list names an empty slot (verify tells more)",
                        core.path()
                    )));
                }
                w as usize
            } else {
                let found = match end {
                    End::Oldest => (0..scan).rev().find(|&i| t.is_full(i)),
                    End::Newest => (scan..t.cap()).find(|&i| t.is_full(i)),
                };
                let Some(i) = found else { break };
                scan = if end == End::Oldest { i } else { i + 1 };
                i
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
            core.remove_slot(&t, i);
        }
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

//! `AnyMap`: the operations of a map whatever its codecs, as a trait object
//! (what a C handle, a sharded map's shards and the Redis backend are
//! used through), and its implementation for the typed `Map<K, V>`.

use crate::error::{Error, Result};
use crate::map::{End, Map};
use crate::os::region::Source;
use crate::raw::codec::{Bytes, Codec, I16, I32, I64};
use crate::raw::types::{Entry, Info, Item, Out, Params, Status, Variant};

/// The operations of a map whatever its codecs: what a handle dispatches to.
pub trait AnyMap: Send {
    /// See [`Map::put`].
    fn put(&mut self, k: &Item, v: &Item) -> Result<Status>;
    /// See [`Map::get`].
    fn get(&mut self, k: &Item, out: &mut Out) -> Result<Status>;
    /// See [`Map::exists`].
    fn exists(&mut self, k: &Item) -> Result<bool>;
    /// See [`Map::remove`].
    fn remove(&mut self, k: &Item) -> Result<Status>;
    /// See [`Map::take`].
    fn take(&mut self, k: &Item, out: &mut Out) -> Result<Status>;
    /// See [`Map::get_or_set`].
    fn get_or_set(&mut self, k: &Item, d: &Item, out: &mut Out) -> Result<Status>;
    /// See [`Map::incr_by`].
    fn incr_by(&mut self, k: &Item, delta: i64, result: &mut i64) -> Result<Status>;
    /// See [`Map::each`].
    fn each(&mut self, k: &mut Out, v: &mut Out) -> Result<Status>;
    /// See [`Map::put_ttl`].
    fn put_ttl(&mut self, k: &Item, v: &Item, secs: u64) -> Result<Status>;
    /// See [`Map::get_with_ttl`].
    fn get_with_ttl(&mut self, k: &Item, out: &mut Out, ttl: &mut i64) -> Result<Status>;
    /// See [`Map::ttl_remaining`].
    fn ttl_remaining(&mut self, k: &Item) -> Result<Option<u64>>;
    /// See [`Map::touch`].
    fn touch(&mut self, k: &Item) -> Result<bool>;
    /// See [`Map::set_ttl`].
    fn set_ttl(&mut self, k: &Item, secs: u64) -> Result<bool>;
    /// See [`Map::persist`].
    fn persist(&mut self, k: &Item) -> Result<bool>;
    /// See [`Map::flush_expired_partial`] (`u64::MAX`: a whole pass).
    fn flush_expired_partial(&mut self, limit: u64) -> Result<(u64, bool)>;
    /// See [`Map::add`] / [`Map::update`] (`present`: update).
    fn conditional(
        &mut self,
        k: &Item,
        v: &Item,
        ttl: Option<u64>,
        present: bool,
    ) -> Result<Status>;
    /// See [`Map::swap`].
    fn swap(&mut self, k: &Item, v: &Item, out: &mut Out) -> Result<Status>;
    /// See [`Map::cas`].
    fn cas(&mut self, k: &Item, expected: &Item, desired: &Item) -> Result<Status>;
    /// See [`Map::cas_take`].
    fn cas_take(&mut self, k: &Item, expected: &Item, out: &mut Out) -> Result<Status>;
    /// See [`Map::max`] / [`Map::min`] (`want_max`: max).
    fn extreme(&mut self, k: &Item, d: i64, want_max: bool, result: &mut i64) -> Result<Status>;
    /// See [`Map::set_multi`].
    fn set_multi(&mut self, pairs: &[(Item, Item)]) -> Result<u64>;
    /// See [`Map::get_multi`].
    fn get_multi(&mut self, keys: &[Item]) -> Result<Vec<Option<Entry>>>;
    /// See [`Map::remove_multi`].
    fn remove_multi(&mut self, keys: &[Item]) -> Result<u64>;
    /// See [`Map::take_ends`].
    fn take_ends(&mut self, n: u64, end: End) -> Result<Vec<(Entry, Entry)>>;
    /// One cursor step (see [`Map::walk`]); `pos.shard` picks the shard
    /// of a sharded map (0 otherwise).
    fn walk(&mut self, pos: &mut CursorPos, k: &mut Out, v: &mut Out) -> Result<Status>;
    /// The position from which the next step returns `k` (see [`Map::seek`]).
    fn seek(&mut self, k: &Item) -> Result<Option<CursorPos>>;

    // ---- whole-map operations: a local map asks its `crate::raw::core::Core`; a sharded
    // map aggregates or fans out; a remote map asks its server ----

    /// A diagnostic value (what the handle knows without a round trip).
    fn info(&self, which: Info) -> u64;
    /// A diagnostic value, asking the server if need be.
    fn info_try(&mut self, which: Info) -> Result<u64> {
        Ok(self.info(which))
    }
    /// See [`crate::raw::core::Core::reserve`].
    fn reserve(&mut self, n: u64) -> Result<bool>;
    /// See [`crate::raw::core::Core::clear`].
    fn clear(&mut self) -> Result<()>;
    /// Restart `each`.
    fn iter_reset(&mut self);
    /// See [`crate::raw::core::Core::truncated`].
    fn truncated(&self) -> bool;
    /// See [`crate::raw::core::Core::freeze`].
    fn freeze(&mut self) -> Result<()>;
    /// See [`crate::raw::core::Core::sync`].
    fn sync(&self) -> Result<()>;
    /// See [`crate::raw::core::Core::memfd`].
    fn memfd(&self) -> i32;
    /// See [`crate::raw::core::Core::frozen`].
    fn frozen(&self) -> bool;
    /// See [`crate::raw::core::Core::readonly`].
    fn readonly(&self) -> bool;
    /// The file path or location (None for anonymous and memfd maps).
    fn file_path(&self) -> Option<String>;
    /// The name used in messages (a location with its password masked).
    fn display_path(&self) -> String;
    /// Remove the map's file (or its keys on the server): true if removed.
    fn unlink_map(&mut self) -> bool {
        self.file_path()
            .is_some_and(|p| std::fs::remove_file(p).is_ok())
    }
    /// Record (or check) that this map is shard `i` of `n`.
    fn claim_shard(&mut self, n: u32, i: u32) -> Result<()>;
    /// The codec-independent part of a local map (None on a server; a
    /// sharded map gives its first shard's).
    fn local_core(&self) -> Option<&crate::raw::core::Core> {
        None
    }
    /// The same, mutable.
    fn local_core_mut(&mut self) -> Option<&mut crate::raw::core::Core> {
        None
    }
    /// The map as `Any`, if it is a `Map` in a file (so that a handle can
    /// find its codecs once: `crate::ffi`'s entry points per codec). Only
    /// `Map<K, V>` overrides it, returning `self`: `crate::ffi` relies on
    /// that when it casts the trait object's data pointer to the `Map`
    /// that `is` found.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
    /// The same, mutable (for this crate's tests).
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }
    /// See [`crate::raw::core::Core::wait_timeout`]; a map on a server waits on
    /// no other process (its timeouts are in its location): the default.
    fn wait_timeout(&self) -> std::time::Duration {
        self.local_core()
            .map_or(crate::sync::lock::DEFAULT_WAIT_TIMEOUT, |c| {
                c.wait_timeout()
            })
    }
    /// See [`crate::raw::core::Core::set_wait_timeout`].
    fn set_wait_timeout(&mut self, d: std::time::Duration) -> Result<()> {
        match self.local_core_mut() {
            Some(c) => c.set_wait_timeout(d),
            None => Err(Error::new(format!(
                "{}: wait_timeout is for maps in files; a map on a server takes its \
                 timeouts from its location (?connect_timeout=S&timeout=S)",
                self.display_path()
            ))),
        }
    }
    /// Forget the state of a cursor position (remote walks keep their
    /// de-duplication set in the handle).
    fn cursor_release(&mut self, _pos: CursorPos) {}
    /// See [`Map::verify`].
    fn verify(&mut self) -> Result<()>;
    /// See [`Map::snapshot`].
    fn snapshot(&mut self) -> Result<Vec<(Entry, Entry)>>;
}

/// Run an operation that may store strings; if a store found this
/// handle's mapping too small (the operation then answered "full" and
/// changed nothing), grow the mapping and run it again.
#[inline(always)]
pub(crate) fn again<K: Codec, V: Codec, R>(
    m: &mut Map<K, V>,
    mut op: impl FnMut(&mut Map<K, V>) -> Result<R>,
) -> Result<R> {
    loop {
        let r = op(m);
        if !Map::core(m).remap_pending()? {
            return r;
        }
    }
}

impl<'a> dyn AnyMap + 'a {
    /// The codec-independent part of a local map, for tests and tools that
    /// look inside. Panics for a map on a server, which has none.
    pub fn core_ref(&self) -> &crate::raw::core::Core {
        self.local_core()
            .expect("core_ref: this map is not a local map (it has no Core)")
    }
    /// The same, mutable.
    pub fn core(&mut self) -> &mut crate::raw::core::Core {
        self.local_core_mut()
            .expect("core: this map is not a local map (it has no Core)")
    }
}

impl<K: Codec, V: Codec> AnyMap for Map<K, V> {
    fn local_core(&self) -> Option<&crate::raw::core::Core> {
        Some(self.core_ref())
    }
    fn local_core_mut(&mut self) -> Option<&mut crate::raw::core::Core> {
        Some(self.core())
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }
    fn info(&self, which: Info) -> u64 {
        self.core_ref().info(which)
    }
    fn info_try(&mut self, which: Info) -> Result<u64> {
        match which {
            // validated like a get: no change in flight is seen half done
            // (an LRU insert at max_size is one entry over until its
            // eviction, in the same window)
            Info::Size => crate::raw::guard::read(self.core(), |c| c.info(Info::Size)),
            _ => Ok(self.info(which)),
        }
    }
    fn reserve(&mut self, n: u64) -> Result<bool> {
        Map::reserve(self, n)
    }
    fn clear(&mut self) -> Result<()> {
        Map::clear(self)
    }
    fn iter_reset(&mut self) {
        self.core().iter_reset()
    }
    fn truncated(&self) -> bool {
        self.core_ref().truncated()
    }
    fn freeze(&mut self) -> Result<()> {
        Map::freeze(self)
    }
    fn sync(&self) -> Result<()> {
        self.core_ref().sync()
    }
    fn memfd(&self) -> i32 {
        self.core_ref().memfd()
    }
    fn frozen(&self) -> bool {
        self.core_ref().frozen()
    }
    fn readonly(&self) -> bool {
        self.core_ref().readonly()
    }
    fn file_path(&self) -> Option<String> {
        self.core_ref().file_path().map(String::from)
    }
    fn display_path(&self) -> String {
        self.core_ref().path().to_string()
    }
    fn claim_shard(&mut self, n: u32, i: u32) -> Result<()> {
        Map::claim_shard(self, n, i)
    }
    #[inline(always)]
    fn put(&mut self, k: &Item, v: &Item) -> Result<Status> {
        again(self, |m| Map::put(m, k, v))
    }
    fn get(&mut self, k: &Item, out: &mut Out) -> Result<Status> {
        Map::get(self, k, out)
    }
    fn exists(&mut self, k: &Item) -> Result<bool> {
        Map::exists(self, k)
    }
    fn remove(&mut self, k: &Item) -> Result<Status> {
        Map::remove(self, k)
    }
    fn take(&mut self, k: &Item, out: &mut Out) -> Result<Status> {
        Map::take(self, k, out)
    }
    fn get_or_set(&mut self, k: &Item, d: &Item, out: &mut Out) -> Result<Status> {
        again(self, |m| Map::get_or_set(m, k, d, out))
    }
    #[inline(always)]
    fn incr_by(&mut self, k: &Item, delta: i64, result: &mut i64) -> Result<Status> {
        again(self, |m| Map::incr_by(m, k, delta, result))
    }
    fn each(&mut self, k: &mut Out, v: &mut Out) -> Result<Status> {
        Map::each(self, k, v)
    }
    fn snapshot(&mut self) -> Result<Vec<(Entry, Entry)>> {
        Map::snapshot(self)
    }
    fn put_ttl(&mut self, k: &Item, v: &Item, secs: u64) -> Result<Status> {
        again(self, |m| Map::put_ttl(m, k, v, secs))
    }
    fn get_with_ttl(&mut self, k: &Item, out: &mut Out, ttl: &mut i64) -> Result<Status> {
        Map::get_with_ttl(self, k, out, ttl)
    }
    fn ttl_remaining(&mut self, k: &Item) -> Result<Option<u64>> {
        Map::ttl_remaining(self, k)
    }
    fn touch(&mut self, k: &Item) -> Result<bool> {
        Map::touch(self, k)
    }
    fn set_ttl(&mut self, k: &Item, secs: u64) -> Result<bool> {
        Map::set_ttl(self, k, secs)
    }
    fn persist(&mut self, k: &Item) -> Result<bool> {
        Map::persist(self, k)
    }
    fn flush_expired_partial(&mut self, limit: u64) -> Result<(u64, bool)> {
        if limit == u64::MAX {
            Map::flush_expired(self).map(|n| (n, true))
        } else {
            Map::flush_expired_partial(self, limit)
        }
    }
    fn conditional(
        &mut self,
        k: &Item,
        v: &Item,
        ttl: Option<u64>,
        present: bool,
    ) -> Result<Status> {
        again(self, |m| {
            if present {
                Map::update(m, k, v, ttl)
            } else {
                Map::add(m, k, v, ttl)
            }
        })
    }
    fn swap(&mut self, k: &Item, v: &Item, out: &mut Out) -> Result<Status> {
        again(self, |m| Map::swap(m, k, v, out))
    }
    fn cas(&mut self, k: &Item, expected: &Item, desired: &Item) -> Result<Status> {
        again(self, |m| Map::cas(m, k, expected, desired))
    }
    fn cas_take(&mut self, k: &Item, expected: &Item, out: &mut Out) -> Result<Status> {
        Map::cas_take(self, k, expected, out)
    }
    fn extreme(&mut self, k: &Item, d: i64, want_max: bool, result: &mut i64) -> Result<Status> {
        again(self, |m| {
            if want_max {
                Map::max(m, k, d, result)
            } else {
                Map::min(m, k, d, result)
            }
        })
    }
    fn set_multi(&mut self, pairs: &[(Item, Item)]) -> Result<u64> {
        again(self, |m| Map::set_multi(m, pairs))
    }
    fn get_multi(&mut self, keys: &[Item]) -> Result<Vec<Option<Entry>>> {
        Map::get_multi(self, keys)
    }
    fn remove_multi(&mut self, keys: &[Item]) -> Result<u64> {
        again(self, |m| Map::remove_multi(m, keys))
    }
    fn take_ends(&mut self, n: u64, end: End) -> Result<Vec<(Entry, Entry)>> {
        Map::take_ends(self, n, end)
    }
    fn walk(&mut self, pos: &mut CursorPos, k: &mut Out, v: &mut Out) -> Result<Status> {
        Map::walk(self, &mut pos.after, k, v)
    }
    fn seek(&mut self, k: &Item) -> Result<Option<CursorPos>> {
        Ok(Map::seek(self, k)?.map(|after| CursorPos { shard: 0, after }))
    }
    fn verify(&mut self) -> Result<()> {
        Map::verify(self)
    }
}

/// A cursor's position: the shard (sharded maps) and the hash of the last
/// entry returned in it (None: at the shard's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CursorPos {
    /// Shard index (0 for an ordinary map).
    pub shard: u32,
    /// Hash of the last entry returned in that shard.
    pub after: Option<u64>,
}

/// Open a local map (a file, memfd or anonymous mapping) from `src` as
/// `variant`, boxed behind [`AnyMap`].
pub fn open_local(src: &Source<'_>, variant: Variant, p: &Params) -> Result<Box<dyn AnyMap>> {
    fn boxed<K: Codec, V: Codec>(src: &Source<'_>, p: &Params) -> Result<Box<dyn AnyMap>> {
        Ok(Box::new(Map::<K, V>::open_source(src, p)?))
    }
    match variant {
        Variant::I16 => boxed::<I16, I16>(src, p),
        Variant::I32 => boxed::<I32, I32>(src, p),
        Variant::II => boxed::<I64, I64>(src, p),
        Variant::I16S => boxed::<I16, Bytes>(src, p),
        Variant::I32S => boxed::<I32, Bytes>(src, p),
        Variant::IS => boxed::<I64, Bytes>(src, p),
        Variant::SI16 => boxed::<Bytes, I16>(src, p),
        Variant::SI32 => boxed::<Bytes, I32>(src, p),
        Variant::SI => boxed::<Bytes, I64>(src, p),
        Variant::SS => boxed::<Bytes, Bytes>(src, p),
    }
}

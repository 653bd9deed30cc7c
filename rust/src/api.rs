//! The typed Rust API: [`Map<K, V>`](Map), a map shared live by every
//! process that opens the same file — Perl programs using
//! `Data::HashMap::Shared` included.
//!
//! Keys and values are natural Rust types: `i16`, `i32`, `i64` for the
//! integer kinds ([`I16`], [`I32`], [`I64`]), `&[u8]` in and `Vec<u8>` out
//! for [`Bytes`]. The variant is the pair of kinds: `Map<I64, I64>` is the
//! Perl `II` map, `Map<Bytes, Bytes>` the `SS` map, `Map<Bytes, I32>` the
//! `SI32` map, and so on. Everything here is safe code over the engine;
//! the only raw pointers of the crate are in its C ABI (`xs/dhms.h`).
//!
//! ```no_run
//! use hashmap_shared::{Bytes, Map, Params, I64};
//!
//! let mut hits = Map::<Bytes, I64>::open("/dev/shm/hits", &Params::new(100_000))?;
//! hits.incr_by(b"home", 1)?;
//! assert!(hits.get(b"home")?.unwrap_or(0) >= 1);
//! # Ok::<(), hashmap_shared::Error>(())
//! ```

use crate::dynmap::{AnyMap, CursorPos};
use crate::error::{Error, Result};
use crate::open::open_source;
use crate::os::region::Source;
use crate::raw::codec::{Bytes, Codec, Int};
use crate::raw::types::{Info, Out, Params, Status, Variant};
use std::ffi::CString;
use std::marker::PhantomData;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A map with keys of kind `K` and values of kind `V` (see the [crate
/// documentation](crate)). A handle belongs to one thread at a time (it is
/// `Send`, not `Sync`); open one handle per thread or process — they all
/// see one map.
pub struct Map<K: Codec, V: Codec> {
    map: Box<dyn AnyMap>,
    /// Room for string results, grown on demand and reused.
    buf: Vec<u8>,
    _kinds: PhantomData<(K, V)>,
}

impl<K: Codec, V: Codec> std::fmt::Debug for Map<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("variant", &Self::variant().name())
            .field("path", &self.map.display_path())
            .finish()
    }
}

/// The path as the engine takes it (a NUL-terminated byte string).
fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        Error::new(format!(
            "{}: a map path must not contain a NUL byte",
            path.display()
        ))
    })
}

impl<K: Codec, V: Codec> Map<K, V> {
    /// The variant this map is (`Map<Bytes, I64>` is `SI`).
    pub fn variant() -> Variant {
        crate::map::Map::<K, V>::variant()
    }

    fn wrap(map: Box<dyn AnyMap>) -> Self {
        Map {
            map,
            buf: vec![0; 64],
            _kinds: PhantomData,
        }
    }

    /// Create the map at `path`, or attach the one there (whose variant
    /// must be `K`, `V`; `p` is then ignored). A location such as
    /// `redis://host#NAME` opens a map on a Redis or Valkey server instead
    /// (when built with the `redis` feature).
    pub fn open(path: impl AsRef<Path>, p: &Params) -> Result<Self> {
        let path = c_path(path.as_ref())?;
        Ok(Self::wrap(open_source(
            &Source::Path(&path),
            Self::variant(),
            p,
        )?))
    }

    /// Attach a frozen map file read-only (see `freeze`).
    pub fn open_readonly(path: impl AsRef<Path>) -> Result<Self> {
        let path = c_path(path.as_ref())?;
        Ok(Self::wrap(open_source(
            &Source::ReadOnly(&path),
            Self::variant(),
            &Params::new(1),
        )?))
    }

    /// A map split over `shards` files `PREFIX.0` .. `PREFIX.(shards-1)`,
    /// each with its own writer lock; `p` is for the whole map.
    pub fn open_sharded(prefix: impl AsRef<Path>, shards: u32, p: &Params) -> Result<Self> {
        let prefix = prefix.as_ref().to_string_lossy();
        Ok(Self::wrap(Box::new(crate::sharded::Sharded::open(
            &prefix,
            shards,
            Self::variant(),
            p,
        )?)))
    }

    /// An anonymous map: shared with the children this process forks
    /// after creating it, and with nobody else.
    pub fn anonymous(p: &Params) -> Result<Self> {
        Ok(Self::wrap(open_source(
            &Source::Anonymous,
            Self::variant(),
            p,
        )?))
    }

    /// Run a reading operation into `self.buf`, growing it until the
    /// string result fits; `f` gets the map, and an output.
    fn read<R>(
        &mut self,
        mut f: impl FnMut(&mut dyn AnyMap, &mut Out<'_>) -> Result<Status>,
        mut done: impl FnMut(Status, &Out<'_>) -> Result<R>,
    ) -> Result<R> {
        loop {
            let mut o = Out::new(&mut self.buf);
            let s = f(&mut *self.map, &mut o)?;
            if s == Status::Small {
                let need = o.len;
                self.buf.resize(need.max(self.buf.len() * 2), 0);
                continue;
            }
            return done(s, &o);
        }
    }

    /// The value of `k`, or `None` if it is missing (or expired).
    /// Lock-free.
    pub fn get(&mut self, k: K::Arg<'_>) -> Result<Option<V::Owned>> {
        let key = K::item(k);
        self.read(
            |m, o| m.get(&key, o),
            |s, o| Ok((s == Status::Ok).then(|| V::owned(o))),
        )
    }

    /// True if `k` is present. Lock-free.
    pub fn exists(&mut self, k: K::Arg<'_>) -> Result<bool> {
        self.map.exists(&K::item(k))
    }

    /// Store `v` under `k`: true if stored, false if `k` is new and the map
    /// is full (`max_entries` reached on a map without LRU, or `arena_cap`).
    pub fn put(&mut self, k: K::Arg<'_>, v: V::Arg<'_>) -> Result<bool> {
        stored(self.map.put(&K::item(k), &V::item(v))?)
    }

    /// As `put`, with this entry's own lifetime in seconds (0: permanent);
    /// the map must have been created with a `ttl`.
    pub fn put_ttl(&mut self, k: K::Arg<'_>, v: V::Arg<'_>, secs: u64) -> Result<bool> {
        stored(self.map.put_ttl(&K::item(k), &V::item(v), secs)?)
    }

    /// Store `v` under `k` only if `k` is absent: true if stored.
    pub fn add(&mut self, k: K::Arg<'_>, v: V::Arg<'_>) -> Result<bool> {
        stored(
            self.map
                .conditional(&K::item(k), &V::item(v), None, false)?,
        )
    }

    /// Overwrite the value of `k` only if `k` is present: true if stored.
    pub fn update(&mut self, k: K::Arg<'_>, v: V::Arg<'_>) -> Result<bool> {
        stored(self.map.conditional(&K::item(k), &V::item(v), None, true)?)
    }

    /// Replace the value of `k` with `desired` if it is `expected`: true
    /// if replaced.
    pub fn cas(
        &mut self,
        k: K::Arg<'_>,
        expected: V::Arg<'_>,
        desired: V::Arg<'_>,
    ) -> Result<bool> {
        stored(
            self.map
                .cas(&K::item(k), &V::item(expected), &V::item(desired))?,
        )
    }

    /// Remove `k`: true if it was present.
    pub fn remove(&mut self, k: K::Arg<'_>) -> Result<bool> {
        Ok(self.map.remove(&K::item(k))? == Status::Ok)
    }

    /// Remove `k` and return its value (`None` if it was missing).
    pub fn take(&mut self, k: K::Arg<'_>) -> Result<Option<V::Owned>> {
        let key = K::item(k);
        self.read(
            |m, o| m.take(&key, o),
            |s, o| Ok((s == Status::Ok).then(|| V::owned(o))),
        )
    }

    /// Seconds left for `k` (`Some(0)`: permanent); `None` if it is
    /// missing, or the map has no TTL.
    pub fn ttl_remaining(&mut self, k: K::Arg<'_>) -> Result<Option<u64>> {
        self.map.ttl_remaining(&K::item(k))
    }

    /// Remove every expired entry now; returns how many.
    pub fn flush_expired(&mut self) -> Result<u64> {
        Ok(self.map.flush_expired_partial(u64::MAX)?.0)
    }

    /// How many entries the map holds (expired ones not yet removed
    /// included).
    pub fn len(&mut self) -> Result<u64> {
        self.map.info_try(Info::Size)
    }

    /// True if the map holds no entry.
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The map's entry limit (`Params::max_entries`).
    pub fn max_entries(&self) -> u64 {
        self.map.info(Info::MaxEntries)
    }

    /// Statistics kept in the map: entries evicted by LRU, entries
    /// removed because they expired, and recoveries after a writer died.
    pub fn stats(&mut self) -> Result<Stats> {
        Ok(Stats {
            evictions: self.map.info_try(Info::StatEvictions)?,
            expired: self.map.info_try(Info::StatExpired)?,
            recoveries: self.map.info_try(Info::StatRecoveries)?,
        })
    }

    /// Remove every entry (the statistics survive).
    pub fn clear(&mut self) -> Result<()> {
        self.map.clear()
    }

    /// Make room for `n` entries now: false if `n > max_entries`.
    pub fn reserve(&mut self, n: u64) -> Result<bool> {
        self.map.reserve(n)
    }

    /// Write the map to its file now (msync).
    pub fn sync(&self) -> Result<()> {
        self.map.sync()
    }

    /// Seal the map for good: from now on every write, by any process,
    /// fails. Synced to disk before it returns.
    pub fn freeze(&mut self) -> Result<()> {
        self.map.freeze()
    }

    /// Check every invariant of the map; the error names the first
    /// problem.
    pub fn verify(&mut self) -> Result<()> {
        self.map.verify()
    }

    /// Every live entry, copied under the writer lock: one consistent
    /// picture of the map.
    pub fn entries(&mut self) -> Result<Vec<(K::Owned, V::Owned)>> {
        Ok(self
            .map
            .snapshot()?
            .into_iter()
            .map(|(k, v)| (K::from_entry(k), V::from_entry(v)))
            .collect())
    }

    /// Walk the map without locking it: every entry present for the whole
    /// walk comes exactly once, whatever other processes do meanwhile.
    pub fn iter(&mut self) -> Iter<'_, K, V> {
        Iter {
            map: self,
            pos: Some(CursorPos::default()),
            kbuf: vec![0; 64],
        }
    }
}

impl<K: Codec> Map<K, Bytes> {
    /// As [`Map::get`], into `out` (replacing its contents; its capacity
    /// is reused, so a loop of reads allocates only to grow): true if
    /// found, false (and `out` empty) if missing.
    pub fn get_into(&mut self, k: K::Arg<'_>, out: &mut Vec<u8>) -> Result<bool> {
        let key = K::item(k);
        loop {
            let room = out.capacity().max(64);
            out.clear();
            out.resize(room, 0);
            let mut o = Out::new(out);
            match self.map.get(&key, &mut o)? {
                Status::Ok => {
                    let n = o.len;
                    out.truncate(n);
                    return Ok(true);
                }
                Status::Small => {
                    let n = o.len;
                    out.clear();
                    out.reserve(n);
                }
                _ => {
                    out.clear();
                    return Ok(false);
                }
            }
        }
    }
}

impl<K: Codec, V: Int> Map<K, V> {
    /// Add `delta` to the counter `k` (a missing key starts at 0) and
    /// return the new value. Lock-free on an existing key. An error if
    /// the result does not fit `V` (nothing is changed) or if `k` is new
    /// and the map is full.
    pub fn incr_by(&mut self, k: K::Arg<'_>, delta: i64) -> Result<V::Owned> {
        let key = K::item(k);
        let mut n = 0;
        let s = self.map.incr_by(&key, delta, &mut n)?;
        counted::<V>(s, n, &*self.map)
    }

    /// `incr_by(k, 1)`.
    pub fn incr(&mut self, k: K::Arg<'_>) -> Result<V::Owned> {
        self.incr_by(k, 1)
    }

    /// `incr_by(k, -1)`.
    pub fn decr(&mut self, k: K::Arg<'_>) -> Result<V::Owned> {
        self.incr_by(k, -1)
    }

    /// Store the larger of the value of `k` and `n` (a missing key takes
    /// `n`); returns the value now stored.
    pub fn max(&mut self, k: K::Arg<'_>, n: V::Arg<'_>) -> Result<V::Owned> {
        self.extreme(k, n, true)
    }

    /// Store the smaller of the value of `k` and `n`; as [`Map::max`].
    pub fn min(&mut self, k: K::Arg<'_>, n: V::Arg<'_>) -> Result<V::Owned> {
        self.extreme(k, n, false)
    }

    fn extreme(&mut self, k: K::Arg<'_>, n: V::Arg<'_>, want_max: bool) -> Result<V::Owned> {
        let d = V::item(n).num;
        let mut r = 0;
        let s = self.map.extreme(&K::item(k), d, want_max, &mut r)?;
        counted::<V>(s, r, &*self.map)
    }
}

/// A counter's status as a result.
fn counted<V: Int>(s: Status, n: i64, m: &dyn AnyMap) -> Result<V::Owned> {
    match s {
        Status::Ok => Ok(V::native(n)),
        Status::Range => Err(Error::new(format!(
            "{}: the counter's result does not fit {}; it is unchanged",
            m.display_path(),
            V::NAME
        ))),
        Status::Full => Err(Error::new(format!(
            "{}: the map is full (max_entries or arena_cap reached): the new counter was not \
             stored",
            m.display_path()
        ))),
        s => Err(Error::new(format!("unexpected status {s:?}"))),
    }
}

/// Stored, or not for lack of room (`Status::False` / `Status::Full`).
fn stored(s: Status) -> Result<bool> {
    Ok(s == Status::Ok)
}

/// Statistics kept in a map (see [`Map::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Entries evicted because an LRU map was at `max_size`.
    pub evictions: u64,
    /// Entries removed because they expired.
    pub expired: u64,
    /// Times a writer that died mid-operation was recovered from.
    pub recoveries: u64,
}

/// A lock-free walk over a map (see [`Map::iter`]); each step is a
/// `Result`, since another process may, say, truncate the file.
pub struct Iter<'m, K: Codec, V: Codec> {
    map: &'m mut Map<K, V>,
    /// None once the walk has ended.
    pos: Option<CursorPos>,
    kbuf: Vec<u8>,
}

impl<K: Codec, V: Codec> Iterator for Iter<'_, K, V> {
    type Item = Result<(K::Owned, V::Owned)>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut pos = self.pos?;
        loop {
            let mut ko = Out::new(&mut self.kbuf);
            let mut vo = Out::new(&mut self.map.buf);
            let s = match self.map.map.walk(&mut pos, &mut ko, &mut vo) {
                Ok(s) => s,
                Err(e) => {
                    self.pos = None;
                    return Some(Err(e));
                }
            };
            match s {
                Status::Ok => {
                    self.pos = Some(pos);
                    return Some(Ok((K::owned(&ko), V::owned(&vo))));
                }
                Status::Small => {
                    let (kn, vn) = (ko.len, vo.len);
                    if kn > self.kbuf.len() {
                        self.kbuf.resize(kn, 0);
                    }
                    if vn > self.map.buf.len() {
                        self.map.buf.resize(vn, 0);
                    }
                }
                _ => {
                    self.pos = None;
                    return None;
                }
            }
        }
    }
}

impl<K: Codec, V: Codec> Drop for Iter<'_, K, V> {
    fn drop(&mut self) {
        if let Some(p) = self.pos {
            if p.after.is_some() {
                self.map.map.cursor_release(p);
            }
        }
    }
}

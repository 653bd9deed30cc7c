//! Engine of `Data::HashMap::Shared`, and a Rust API to the same maps:
//! typed hash maps that live in a memory-mapped file shared, live, by
//! every process that opens it — Perl and Rust programs alike.
//!
//! The public surface is small: [`Map<K, V>`](Map) over the key and value
//! kinds [`I16`], [`I32`], [`I64`] (`i16`, `i32`, `i64`) and [`Bytes`]
//! (`&[u8]` in, `Vec<u8>` out), [`Params`] for a new map, [`Variant`],
//! [`Stats`], [`Iter`] and [`Error`]. All of it is safe: no safe call can
//! reach undefined behaviour. See `examples/share.rs`.
//!
//! ```no_run
//! use hashmap_shared::{Bytes, Map, Params, I64};
//!
//! let mut m = Map::<I64, Bytes>::open("/dev/shm/names", &Params::new(1000))?;
//! m.put(7, b"seven")?;
//! assert_eq!(m.get(7)?, Some(b"seven".to_vec()));
//! # Ok::<(), hashmap_shared::Error>(())
//! ```
//!
//! Inside, the file format, the locking protocol and the crash model are
//! described in the repository's `DESIGN.md`:
//!
//! * `layout` — the on-disk header, one source of truth with byte offsets.
//! * `region` — the file and its mapping (creation, growth, hole punching).
//! * `futex`, `lock` — the writer lock, the per-process slots that make
//!   death detection work across PID namespaces, and the counter indicators.
//! * `seqlock` — the single place where racy copies out of the map live.
//! * `hash` — the keyed hash (part of the file format).
//! * `arena` — string storage with size classes and free lists.
//! * `table` — the open-addressing table.
//! * `lru`, `ttl` — eviction order and expiry.
//! * `codec` — key and value kinds (int16, int32, int64, bytes).
//! * `map` — the engine's `Map<K, V>`: the operations, generic over the
//!   codecs, on safe `Item` / `Out` values.
//! * `ops` — the rest of the operation set: conditional writes, batches,
//!   removal from the ends, cursors.
//! * `verify` — the whole-map consistency check.
//! * `remote` — maps on a Redis or Valkey server (`redis://host#MAP`).
//! * `api` — the public typed [`Map`].
//! * `ffi` — the C ABI used by the Perl glue (`xs/dhms.h`): the only
//!   place where raw pointers from outside enter; each call converts its
//!   `dhms_item` / `dhms_out` arguments into safe `Item` / `Out` once.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod api;
mod dynmap;
mod error;
#[doc(hidden)]
pub mod fault;
mod ffi;
mod format;
mod map;
mod open;
mod os;
mod raw;
mod remote;
mod sharded;
mod sync;

pub use api::{Iter, Map, Stats};
pub use error::{Error, Result};
pub use raw::codec::{Bytes, Codec, Int, I16, I32, I64};
pub use raw::types::{Params, Variant};

/// The engine's internals, for this crate's own tests and benchmarks
/// (`rust/tests/`, `rust/benches/`), which look inside: not part of the
/// API, and not stable. Everything here is safe to call (no call can
/// reach undefined behaviour): keys and values cross as the safe `Item`
/// and `Out`; the raw-pointer C ABI is not here.
#[doc(hidden)]
pub mod testing {
    pub use crate::dynmap::{AnyMap, CursorPos};
    pub use crate::format::hash::{hash_bytes, hash_int};
    pub use crate::map::End;
    pub use crate::map::Map as LocalMap;
    pub use crate::open::open_any;
    pub use crate::raw::guard::debug_hold_lock;

    /// Make the arena's repair after a writer's death use its sorted-list
    /// path (for arenas over 4 GiB) whatever the arena's size.
    pub fn repair_with_sorted_list() {
        crate::raw::recover::BITMAP_ARENA_MAX.store(0, std::sync::atomic::Ordering::Relaxed);
    }
    pub use crate::raw::types::{Entry, Info, Item, Out, Params, Status, Variant};
    pub use crate::sharded::Sharded;

    /// Make tables of at least `slots` slots resize by incremental
    /// migration (the default, 65,536, keeps small tables' resizes at
    /// once), `homes` old home slots per step (default 64), so that tests
    /// meet migrations in small maps, and long ones.
    pub fn set_migrate_min(slots: u64, homes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        crate::raw::migrate::MIGRATE_MIN.store(slots, Relaxed);
        crate::raw::migrate::STEP_HOMES.store(homes, Relaxed);
    }

    /// The default of [`set_migrate_min`].
    pub const MIGRATE_MIN_DEFAULT: u64 = 65_536;

    /// `$body` on `$m`'s map as the `Map` of integer keys and values it
    /// is (`$x`), or `None` for the other variants.
    macro_rules! on_int_map {
        ($m:expr, |$x:ident| $body:expr) => {{
            use crate::map::Map;
            use crate::raw::codec::{I16, I32, I64};
            let any = $m.as_any()?;
            if let Some($x) = any.downcast_ref::<Map<I16, I16>>() {
                $body
            } else if let Some($x) = any.downcast_ref::<Map<I32, I32>>() {
                $body
            } else {
                let $x = any.downcast_ref::<Map<I64, I64>>()?;
                $body
            }
        }};
    }

    /// What the keywords' quick `get` of an integer key decides in `m`'s
    /// map (`Map::get_quick`): `Some(Some(v))` found, `Some(None)` missing,
    /// `None` left to the full `get` (and for variants other than I16,
    /// I32 and II, which have no quick `get`).
    pub fn quick_get(m: &dyn AnyMap, key: i64) -> Option<Option<i64>> {
        match on_int_map!(m, |x| x.get_quick(key)) {
            crate::map::Quick::Hit(v) => Some(Some(v)),
            crate::map::Quick::Miss => Some(None),
            crate::map::Quick::Slow => None,
        }
    }

    /// The keywords' quick `incr_by` of an integer key in `m`'s map
    /// (`Map::incr_quick`): `Some(new value)` if it changed an existing
    /// key, `None` if it left the increment to `incr_by` (and for variants
    /// other than I16, I32 and II).
    pub fn quick_incr(m: &dyn AnyMap, key: i64, delta: i64) -> Option<i64> {
        match on_int_map!(m, |x| x.incr_quick(key, delta)) {
            crate::map::Quick::Hit(v) => Some(v),
            _ => None,
        }
    }

    /// The keywords' quick `put` of an integer value over an existing
    /// integer key in `m`'s map (`Map::put_quick`): true if it stored,
    /// false if it left the put to `put` (and for variants other than I16,
    /// I32 and II).
    pub fn quick_put(m: &dyn AnyMap, key: i64, val: i64) -> bool {
        let stored = || Some(on_int_map!(m, |x| x.put_quick(key, val)));
        matches!(stored(), Some(crate::map::Quick::Hit(_)))
    }

    /// `m`'s map as the II `Map` it is, or `None`.
    fn ii_map(m: &mut dyn AnyMap) -> Option<&mut crate::map::Map<crate::I64, crate::I64>> {
        m.as_any_mut()?.downcast_mut()
    }

    /// The keywords' `put` of an integer value at an integer key in `m`'s
    /// II map, as `shm_ii_put` runs it: the quick attempt, then, if it did
    /// not store, the full put, which takes the slot the attempt found for
    /// a missing key if nothing changed (`Core::take_vacancy`), with
    /// `between` run between the two (a change through another handle
    /// makes what the attempt found stale). `None` for other variants.
    pub fn keyword_put(
        m: &mut dyn AnyMap,
        key: i64,
        val: i64,
        between: impl FnOnce(),
    ) -> Option<Status> {
        use crate::map::Quick;
        let x = ii_map(m)?;
        if let Quick::Hit(_) = x.put_quick(key, val) {
            return Some(Status::Ok);
        }
        between();
        Some(x.put_num(key, val).unwrap())
    }

    /// The keywords' full `put` of an integer value at an integer key in
    /// `m`'s II map (`Map::put_num`), as it runs after a quick attempt that
    /// decided nothing. `None` for other variants.
    pub fn full_put_num(m: &mut dyn AnyMap, key: i64, val: i64) -> Option<Status> {
        let x = ii_map(m)?;
        Some(x.put_num(key, val).unwrap())
    }

    /// The keywords' `incr_by` of an integer key in `m`'s II map, as
    /// `shm_ii_incr_by` runs it: as [`keyword_put`], the quick attempt, then
    /// (`between` run first) the full increment given what the attempt
    /// found. The status and the new value; `None` for other variants.
    pub fn keyword_incr(
        m: &mut dyn AnyMap,
        key: i64,
        delta: i64,
        between: impl FnOnce(),
    ) -> Option<(Status, i64)> {
        use crate::map::Quick;
        let x = ii_map(m)?;
        if let Quick::Hit(v) = x.incr_quick(key, delta) {
            return Some((Status::Ok, v));
        }
        between();
        Some(x.incr_num(key, delta).unwrap())
    }

    /// The home slot of integer key `key` in the active table of `m`'s
    /// map (any variant with integer keys), and the table's capacity.
    pub fn int_home(m: &dyn AnyMap, key: i64) -> (usize, usize) {
        let c = m.core_ref();
        let t = c.active().expect("a valid table");
        (t.home(crate::format::hash::hash_int(c.seed, key)), t.cap())
    }

    /// Mark integer key `key` used in `m`'s LRU map, as a lock-free read
    /// does, without waiting for the sequence (a read that began before a
    /// writer's window may store its mark during it). False if the key is
    /// not in the active table.
    pub fn mark_used(m: &dyn AnyMap, key: i64) -> bool {
        use crate::raw::table::Probe;
        let c = m.core_ref();
        let t = c.active().expect("a valid table");
        match t.probe(crate::format::hash::hash_int(c.seed, key), |w| {
            w as i64 == key
        }) {
            Probe::Found(i) if t.has_ext() => {
                t.ext(i).fetch_or(
                    crate::format::layout::EXT_USED,
                    std::sync::atomic::Ordering::Relaxed,
                );
                true
            }
            _ => false,
        }
    }

    /// True while a migration is in progress in `m`'s map.
    pub fn migrating(m: &dyn AnyMap) -> bool {
        m.core_ref().is_migrating()
    }
    /// The SIGBUS handler (a truncated map file must not kill us).
    pub mod sigbus {
        pub use crate::os::sigbus::ensure;
    }

    /// The offsets of the header words that tools outside the engine read
    /// from the file (`bin/hashmap-shared`), by their names in
    /// `format::layout::Header`.
    pub fn header_offsets() -> Vec<(&'static str, usize)> {
        use crate::format::layout::Header;
        use std::mem::offset_of;
        vec![
            ("lock", offset_of!(Header, lock)),
            ("seq", offset_of!(Header, seq)),
            ("table", offset_of!(Header, table)),
            ("size", offset_of!(Header, size)),
            ("slot_hwm", offset_of!(Header, slot_hwm)),
            ("frozen", offset_of!(Header, frozen)),
            ("shard", offset_of!(Header, shard)),
        ]
    }

    /// Every number of the C ABI (`xs/dhms.h`) by its name there: the
    /// enums `dhms_variant`, `dhms_status`, `dhms_info_key`,
    /// `dhms_source_kind`, and `DHMS_POS_START`.
    pub fn abi_numbers() -> Vec<(String, i128)> {
        crate::ffi::abi_numbers()
    }

    /// The size of every C ABI struct and the offset of each field, as
    /// `("sizeof dhms_item", n)` and `("dhms_item.len", n)`.
    pub fn abi_layouts() -> Vec<(String, usize)> {
        crate::ffi::abi_layouts()
    }
}

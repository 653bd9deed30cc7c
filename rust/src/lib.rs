//! Engine of `Data::HashMap::Shared`: typed hash maps that live in a
//! memory-mapped file shared, live, by every process that opens it.
//!
//! The file format, the locking protocol and the crash model are described
//! in the repository's `DESIGN.md`. In short:
//!
//! * [`layout`] — the on-disk header, one source of truth with byte offsets.
//! * [`region`] — the file and its mapping (creation, growth, hole punching).
//! * [`futex`], [`lock`] — the writer lock, the per-process slots that make
//!   death detection work across PID namespaces, and the counter indicators.
//! * [`seqlock`] — the single place where racy copies out of the map live.
//! * [`hash`] — the keyed hash (part of the file format).
//! * [`arena`] — string storage with size classes and free lists.
//! * [`table`] — the open-addressing table.
//! * [`lru`], [`ttl`] — eviction order and expiry.
//! * [`codec`] — key and value kinds (int16, int32, int64, bytes).
//! * [`map`] — `Map<K, V>`: the operations, generic over the codecs.
//! * [`ops`] — the rest of the operation set: conditional writes, batches,
//!   removal from the ends, cursors.
//! * [`verify`] — the whole-map consistency check.
//! * [`remote`] — maps on a Redis or Valkey server (`redis://host#MAP`).
//! * [`ffi`] — the C ABI used by the Perl glue (`xs/dhms.h`).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod arena;
pub mod batch;
pub mod codec;
pub mod error;
pub mod fault;
pub mod ffi;
pub mod futex;
pub mod hash;
pub mod layout;
pub mod lock;
pub mod lru;
pub mod map;
pub mod ops;
pub mod region;
pub mod remote;
pub mod seqlock;
pub mod sharded;
pub mod sigbus;
pub mod table;
pub mod ttl;
pub mod verify;

pub use codec::{Bytes, Codec, I16, I32, I64};
pub use error::{Error, Result};
pub use map::{Item, Map, Params, Variant};

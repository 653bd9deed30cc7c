//! The untyped engine: an open map file as `Core` and the parts it is made
//! of (the table, the string arena, LRU order, expiry, batches, recovery,
//! verification), below the typed `Map<K, V>`.

pub mod arena;
pub mod batch;
pub mod codec;
pub mod core;
pub mod guard;
pub mod lru;
pub mod migrate;
pub mod recover;
pub mod table;
pub mod ttl;
pub mod types;
pub mod verify;

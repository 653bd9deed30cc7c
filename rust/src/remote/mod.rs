//! Maps on a Redis or Valkey server, behind the same [`AnyMap`] as local
//! and sharded maps: a location string (`redis://host#MAP`, see
//! [`location`]) where a path goes opens one. Every operation is one
//! round trip: a single command, or a Lua script that the server runs
//! atomically (`scripts/*.lua`, each prefixed with `scripts/prelude.lua`).
//! The key layout and the scripts are described in `DESIGN.md`.
//!
//! The backend is the cargo feature `redis` (on by default). Without it a
//! location is still recognised, and opening one says how to get it.

use crate::dynmap::AnyMap;
use crate::error::{Error, Result};
use crate::raw::types::{Params, Variant};

pub mod location;
#[cfg(feature = "redis")]
mod map;

pub use location::is_location;

/// Open the map at a location.
pub fn open(loc: &str, variant: Variant, p: &Params) -> Result<Box<dyn AnyMap>> {
    #[cfg(feature = "redis")]
    {
        Ok(Box::new(map::Remote::open(loc, variant, p)?))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = (variant, p);
        Err(not_built(loc))
    }
}

/// `Class->unlink(LOCATION)`: remove the map from the server. False if it
/// was not there or the server cannot be reached (unlink never dies).
pub fn unlink(loc: &str) -> bool {
    #[cfg(feature = "redis")]
    {
        map::unlink_location(loc)
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = loc;
        false
    }
}

/// The error for a location in a build without the backend.
#[cfg(not(feature = "redis"))]
fn not_built(loc: &str) -> Error {
    Error::new(format!(
        "{}: this build of Data::HashMap::Shared has no Redis/Valkey support (it was \
         configured with --no-redis); rebuild it with `perl Makefile.PL` (without \
         --no-redis) to open maps on a server",
        location::mask(loc)
    ))
}

/// A location where only a file can go (new_readonly, new_memfd …).
pub fn refuse(loc: &str, what: &str) -> Error {
    Error::new(format!("{}: {what}", location::mask(loc)))
}

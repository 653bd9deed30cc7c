//! Opening a map from a path, a location or any other source: local maps
//! (`dynmap::open_local`) or maps on a Redis/Valkey server (`remote`).

use crate::dynmap::AnyMap;
use crate::error::Result;
use crate::os::region::Source;
use crate::raw::types::{Params, Variant};
use std::ffi::CStr;

/// Open the map at `path` as `variant`, boxed behind [`AnyMap`].
pub fn open_any(path: &CStr, variant: Variant, p: &Params) -> Result<Box<dyn AnyMap>> {
    open_source(&Source::Path(path), variant, p)
}

/// Open a map from any [`Source`] as `variant`, boxed behind [`AnyMap`].
pub fn open_source(src: &Source<'_>, variant: Variant, p: &Params) -> Result<Box<dyn AnyMap>> {
    match src {
        Source::Path(path) if is_location(path) => {
            return crate::remote::open(&path.to_string_lossy(), variant, p);
        }
        Source::ReadOnly(path) if is_location(path) => {
            return Err(crate::remote::refuse(
                &path.to_string_lossy(),
                "new_readonly needs a frozen map file; a map on a server cannot be frozen \
                 (use new, and the server's ACLs to keep writers out)",
            ));
        }
        _ => {}
    }
    crate::dynmap::open_local(src, variant, p)
}

/// True if a path is a server location (`redis://…#MAP`).
pub fn is_location(p: &CStr) -> bool {
    crate::remote::is_location(&p.to_string_lossy())
}

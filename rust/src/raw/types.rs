//! The values that cross the engine's boundary: the variants, the
//! parameters of a new map, keys and values going in (`Item`) and coming
//! out (`Out`, `Entry`), what an operation did (`Status`), and the numbers
//! a map reports (`Info`).

use crate::error::{Error, Result};
use std::mem::MaybeUninit;

/// How far the arena may grow when no `arena_cap` is given (the file
/// itself grows only as strings arrive, and each process maps only what the
/// arena holds, with room to spare: see [`arena_map_len`]).
pub const DEFAULT_ARENA_RESERVE: u64 = 256 << 30;

/// Largest `arena_cap` (its address space is reserved in every process).
pub const MAX_ARENA_CAP: u64 = 1 << 44;

/// Largest `wait_timeout` (one day).
pub const MAX_WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(86_400);

/// A `wait_timeout` of `secs` seconds: above 0 (at least a nanosecond), at
/// most [`MAX_WAIT_TIMEOUT`]; fractions allowed.
pub fn wait_timeout_from_secs(secs: f64) -> Result<std::time::Duration> {
    match std::time::Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() && d <= MAX_WAIT_TIMEOUT => Ok(d),
        _ => Err(Error::new(format!(
            "wait_timeout must be a number of seconds above 0 and at most {} \
             (fractions allowed, e.g. 0.5), got {secs}",
            MAX_WAIT_TIMEOUT.as_secs()
        ))),
    }
}

/// The ten variants, numbered as in `xs/dhms.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Variant {
    /// int16 -> int16
    I16 = 0,
    /// int32 -> int32
    I32,
    /// int64 -> int64
    II,
    /// int16 -> bytes
    I16S,
    /// int32 -> bytes
    I32S,
    /// int64 -> bytes
    IS,
    /// bytes -> int16
    SI16,
    /// bytes -> int32
    SI32,
    /// bytes -> int64
    SI,
    /// bytes -> bytes
    SS,
}

impl Variant {
    /// All variants in number order.
    pub const ALL: [Variant; 10] = [
        Variant::I16,
        Variant::I32,
        Variant::II,
        Variant::I16S,
        Variant::I32S,
        Variant::IS,
        Variant::SI16,
        Variant::SI32,
        Variant::SI,
        Variant::SS,
    ];

    /// The variant with this number.
    pub fn from_u32(n: u32) -> Option<Variant> {
        Self::ALL.get(n as usize).copied()
    }

    /// Bytes of an integer key and an integer value (0 for a string).
    pub const fn widths(self) -> (usize, usize) {
        const W: [(usize, usize); 10] = [
            (2, 2),
            (4, 4),
            (8, 8),
            (2, 0),
            (4, 0),
            (8, 0),
            (0, 2),
            (0, 4),
            (0, 8),
            (0, 0),
        ];
        W[self as usize]
    }

    /// Its class suffix ("SS").
    pub fn name(self) -> &'static str {
        [
            "I16", "I32", "II", "I16S", "I32S", "IS", "SI16", "SI32", "SI", "SS",
        ][self as usize]
    }
}

/// Parameters of a new map (SPEC section 3); attaching to an existing map
/// ignores them. Start from [`Params::new`] and set the fields you need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Exact entry limit, 1 ..= 2**32-1.
    pub max_entries: u64,
    /// LRU size (0 = off), <= max_entries.
    pub max_size: u64,
    /// Default TTL in seconds (0 = off).
    pub ttl: u64,
    /// 0 ..= 99.
    pub lru_skip: u64,
    /// Arena cap in bytes (0 = grow on demand).
    pub arena_cap: u64,
    /// File mode for a new file.
    pub file_mode: u32,
}

impl Params {
    /// Parameters with defaults for everything but `max_entries`.
    pub fn new(max_entries: u64) -> Params {
        Params {
            max_entries,
            max_size: 0,
            ttl: 0,
            lru_skip: 0,
            arena_cap: 0,
            file_mode: 0o600,
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        if !(1..=u32::MAX as u64).contains(&self.max_entries) {
            return Err(Error::new(format!(
                "max_entries must be an integer from 1 to 4294967295 (got {})",
                self.max_entries
            )));
        }
        if self.max_size > self.max_entries {
            return Err(Error::new(format!(
                "max_size ({}) must not exceed max_entries ({})",
                self.max_size, self.max_entries
            )));
        }
        if self.arena_cap > MAX_ARENA_CAP {
            return Err(Error::new(format!(
                "arena_cap must be at most {MAX_ARENA_CAP} bytes (16 TiB; got {})",
                self.arena_cap
            )));
        }
        if self.lru_skip > 99 {
            return Err(Error::new(format!(
                "lru_skip must be 0..99 (got {})",
                self.lru_skip
            )));
        }
        if self.file_mode > 0o7777 {
            return Err(Error::new(format!(
                "file_mode must be 0..07777 (got {:o})",
                self.file_mode
            )));
        }
        Ok(())
    }
}

/// A key or value going into the engine: `num` for integer kinds, `bytes`
/// and `utf8` for byte strings. A safe view: the C ABI's `dhms_item` is
/// converted into one in `ffi.rs`, once per call.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// The bytes (string kinds).
    pub bytes: &'a [u8],
    /// The integer (integer kinds).
    pub num: i64,
    /// UTF-8 flag (string kinds): 1 if the bytes are text.
    pub utf8: u32,
}

impl<'a> Item<'a> {
    /// An integer item.
    pub fn int(n: i64) -> Item<'static> {
        Item {
            bytes: &[],
            num: n,
            utf8: 0,
        }
    }

    /// A byte-string item borrowing `b`.
    pub fn bytes(b: &'a [u8]) -> Item<'a> {
        Item {
            bytes: b,
            num: 0,
            utf8: 0,
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// An output key or value: integers in `num`; byte strings written into a
/// borrowed buffer, with their length in `len` — or, when they do not fit
/// (`Status::Small`), the length needed, and nothing written. The C ABI's
/// `dhms_out` is converted into one in `ffi.rs`, once per call.
#[derive(Debug)]
pub struct Out<'a> {
    /// The buffer; the engine only ever writes initialized bytes into it.
    buf: &'a mut [MaybeUninit<u8>],
    /// How many leading bytes of `buf` are known to be initialized.
    filled: usize,
    /// Bytes written, or needed on `Status::Small`.
    pub len: usize,
    /// Integer result.
    pub num: i64,
    /// UTF-8 flag.
    pub utf8: u32,
}

impl<'a> Out<'a> {
    /// An output into `buf`, which may be uninitialized (the C glue hands
    /// the spare room of a Perl string).
    #[inline(always)]
    pub fn uninit(buf: &'a mut [MaybeUninit<u8>]) -> Out<'a> {
        Out {
            buf,
            filled: 0,
            len: 0,
            num: 0,
            utf8: 0,
        }
    }

    /// An output into `buf` (its length is the capacity).
    #[inline(always)]
    pub fn new(buf: &'a mut [u8]) -> Out<'a> {
        let len = buf.len();
        // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout; the
        // buffer is private and only initialized bytes are written into it
        // (`write`, `str_copy`), so `buf` stays initialized.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), len) };
        let mut o = Out::uninit(buf);
        o.filled = len;
        o
    }

    /// An output into `v` (its current length is the capacity).
    pub fn with_vec(v: &'a mut Vec<u8>) -> Out<'a> {
        Out::new(v.as_mut_slice())
    }

    /// The buffer's size.
    #[inline(always)]
    pub fn cap(&self) -> usize {
        self.buf.len()
    }

    /// The bytes of the last string result (read it after `Status::Ok`;
    /// never more than the buffer holds initialized).
    pub fn written(&self) -> &[u8] {
        let n = self.len.min(self.filled);
        // SAFETY: the first `filled` bytes are initialized (`new`, or
        // written by `write` / `set_written`), and `n <= filled <= buf.len()`.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast(), n) }
    }

    /// Write `b` (a byte-string result): `Status::Small` with the size
    /// needed if it does not fit, and nothing written.
    #[inline(always)]
    pub fn write(&mut self, b: &[u8], utf8: bool) -> Status {
        self.len = b.len();
        self.utf8 = utf8 as u32;
        if b.len() > self.buf.len() {
            return Status::Small;
        }
        // SAFETY: `buf` has room for `b.len()` bytes (checked); the two do
        // not overlap (`buf` is borrowed mutably).
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), self.buf.as_mut_ptr().cast(), b.len()) };
        self.filled = self.filled.max(b.len());
        Status::Ok
    }

    /// The buffer, for `Core::str_copy`, which initializes the first `n`
    /// bytes of it; then `set_written(n)`.
    #[inline(always)]
    pub(crate) fn buf_mut(&mut self) -> &mut [MaybeUninit<u8>] {
        self.buf
    }

    /// `Core::str_copy` wrote `n` bytes into `buf_mut()`.
    #[inline(always)]
    pub(crate) fn set_written(&mut self, n: usize) {
        self.filled = self.filled.max(n.min(self.buf.len()));
    }
}

/// What an operation did. Numbers match `enum dhms_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    /// Yes / found / stored.
    Ok = 0,
    /// No / missing / not stored.
    False = 1,
    /// Not stored: the map or the arena is full.
    Full = 2,
    /// Counter result out of range; unchanged.
    Range = 3,
    /// Output buffer too small; unchanged.
    Small = 4,
}

/// Declares [`Info`] and the table of its values in one list.
macro_rules! info_keys {
    ($($name:ident),* $(,)?) => {
        /// Diagnostics, numbered as `enum dhms_info_key`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(i32)]
        #[allow(missing_docs)]
        pub enum Info {
            $($name),*
        }

        impl Info {
            pub(crate) const ALL: &'static [Info] = &[$(Info::$name),*];
            /// Its name in Rust (`MaxEntries`).
            pub(crate) fn rust_name(self) -> &'static str {
                [$(stringify!($name)),*][self as usize]
            }
        }
    };
}

info_keys!(
    Size,
    MaxEntries,
    MaxSize,
    Ttl,
    LruSkip,
    Capacity,
    Tombstones,
    MmapSize,
    ArenaUsed,
    ArenaCap,
    StatEvictions,
    StatExpired,
    StatRecoveries,
    Variant,
);

impl Info {
    /// Its name in `xs/dhms.h` (`DHMS_INFO_MAX_ENTRIES`).
    pub(crate) fn c_name(self) -> String {
        let mut s = String::from("DHMS_INFO");
        for c in self.rust_name().chars() {
            if c.is_ascii_uppercase() {
                s.push('_');
            }
            s.push(c.to_ascii_uppercase());
        }
        s
    }

    /// The diagnostic with this number.
    pub fn from_i32(n: i32) -> Option<Info> {
        Self::ALL.get(usize::try_from(n).ok()?).copied()
    }
}

/// A key or value copied out of the map.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Entry {
    /// An integer.
    Int(i64),
    /// A byte string and its UTF-8 flag.
    Bytes(Vec<u8>, bool),
}

//! The map: opening and validating a file, the writer protocol, recovery,
//! and the operations, generic over the key and value codecs.

use crate::arena::{inline_same_bytes, inline_word, is_inline, StoreError};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::layout::{
    self, cap_for, desc_cap, desc_region, is_full, table_desc, Geometry, Header, ProcSlot, EMPTY,
    FULL, HEADER_SIZE, MAGIC, MIN_CAP, SLOTS_OFF, TOMB, VERSION,
};
use crate::lock::{self, Acquired, Me, Slots};
use crate::region::{Kind, Opened, Region, Source};
use crate::seqlock::{read_begin, read_valid, write_begin, write_end};
use crate::table::{Ext, Plain, Probe, Shape, Table};
use std::collections::HashSet;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering::*};

/// How far the arena may grow when no `arena_cap` is given (the file
/// itself grows only as strings arrive, and each process maps only what the
/// arena holds, with room to spare: see [`arena_map_len`]).
pub const DEFAULT_ARENA_RESERVE: u64 = 256 << 30;
/// The least arena address space a handle maps: arenas below it never
/// need a remap.
const MIN_ARENA_MAP: u64 = 64 << 20;

/// Arena bytes to map for an arena of `bytes`: four times that (so that a
/// growing arena is remapped O(log n) times), at least [`MIN_ARENA_MAP`],
/// at most the arena's `limit`.
fn arena_map_len(bytes: u64, limit: u64) -> u64 {
    bytes.saturating_mul(4).max(MIN_ARENA_MAP).min(limit)
}
/// Largest `arena_cap` (its address space is reserved in every process).
pub const MAX_ARENA_CAP: u64 = 1 << 44;
/// Arena bytes allocated when a map is created.
const INITIAL_ARENA: u64 = 64 << 10;
/// Reader spins on an odd sequence before it sleeps (`reader_stuck`).
const READ_SPINS: u32 = 20_000;
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

    fn check(&self) -> Result<()> {
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

/// Everything about an open map that does not depend on the codecs.
pub struct Core {
    pub(crate) region: Region,
    base: *mut u8,
    pub(crate) geo: Geometry,
    pub(crate) arena_off: u64,
    pub(crate) arena_cap: u64,
    /// Arena bytes this handle maps now (it grows by remapping, see
    /// [`Core::cover_arena`]).
    pub(crate) arena_reserve: u64,
    /// How far the arena may grow (`arena_cap`, or the default).
    pub(crate) arena_limit: u64,
    /// An arena end that a store needed beyond the mapping: the operation
    /// answered "full" having changed nothing, and is run again once the
    /// mapping covers it (see [`Core::remap_pending`]).
    pub(crate) remap_want: u64,
    pub(crate) seed: u64,
    max_entries: u64,
    variant: Variant,
    me: Me,
    /// Keys / values are byte strings (they own arena blocks).
    kb: bool,
    vb: bool,
    /// LRU eviction is on (`max_size > 0`).
    pub(crate) lru_on: bool,
    /// Expiry is on (`ttl > 0`).
    pub(crate) ttl_on: bool,
    pub(crate) max_size: u64,
    pub(crate) ttl_default: u64,
    pub(crate) lru_skip: u64,
    /// Opened with `new_readonly`: mapped PROT_READ, never writes a byte.
    pub(crate) readonly: bool,
    /// `each`: the hash of the last entry returned (None: at the start).
    iter: Option<u64>,
    /// How long a wait on another live process may see no progress.
    wait_timeout: std::time::Duration,
}

// SAFETY: its raw pointers point into a shared mapping that every thread may
// access; a Core is Send but not Sync, so one thread at a time uses it.
unsafe impl Send for Core {}

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: b is a valid 8-byte buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, 0) };
    let mut s = u64::from_le_bytes(b);
    if n != 8 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        // SAFETY: getpid has no preconditions.
        s ^= t ^ ((unsafe { libc::getpid() } as u64) << 32);
    }
    s
}

/// Claim a process slot for a new handle (or a forked child), allocating
/// the slot table's file blocks a page at a time before any slot on them is
/// written, so that a full file system fails the open, not a later store.
/// Allocate the file blocks of a table of `cap` slots in region `r`
/// (and of its LRU links) before it is built there.
fn allocate_table(region: &Region, geo: &Geometry, r: usize, cap: u64) -> Result<()> {
    let off = geo.region_off[r];
    region.allocate(off, geo.lay.bytes(cap))?;
    if geo.lru {
        let link = std::mem::size_of::<layout::Link>() as u64;
        region.allocate(off + geo.links_off(), cap * link)?;
    }
    Ok(())
}

fn claim_slot(region: &Region, h: &Header, slots: Slots) -> Result<Me> {
    const PER_PAGE: usize = layout::PAGE as usize / layout::PROC_SLOT_SIZE;
    let hwm = (h.slot_hwm.load(Acquire) as usize).min(layout::NSLOTS);
    let mut limit = (hwm + 1).div_ceil(PER_PAGE) * PER_PAGE;
    loop {
        limit = limit.min(layout::NSLOTS);
        region.allocate(SLOTS_OFF, (limit * layout::PROC_SLOT_SIZE) as u64)?;
        if let Some(me) = lock::claim(region.lock_fd(), h, slots, limit) {
            return Ok(me);
        }
        if limit == layout::NSLOTS {
            return Err(Error::new(format!(
                "too many handles open on this map (at most {})",
                layout::NSLOTS
            )));
        }
        limit += PER_PAGE;
    }
}

impl Core {
    /// Create or attach the map at `path`.
    pub fn open(path: &CStr, variant: Variant, p: &Params) -> Result<Core> {
        Core::open_source(&Source::Path(path), variant, p)
    }

    /// Create or attach a map from any [`Source`].
    pub fn open_source(src: &Source<'_>, variant: Variant, p: &Params) -> Result<Core> {
        p.check()?;
        lock::install_fork_hook();
        let region = Region::open_source(src, p.file_mode)?;
        let shown = match &region {
            Opened::Fresh(r) | Opened::Existing(r) => r.path().to_string(),
        };
        let core = match region {
            Opened::Fresh(region) => Core::init(region, variant, p),
            Opened::Existing(region) => Core::attach(region, variant),
        }
        .map_err(|e| {
            if e.0.starts_with(&shown) || e.0.contains(&format!("({shown})")) {
                e
            } else {
                Error::new(format!("{shown}: {e}"))
            }
        })?;
        core.region.finish_open();
        Ok(core)
    }

    /// How far the arena may grow: `arena_cap`, else [`DEFAULT_ARENA_RESERVE`].
    fn reserve_for(arena_cap: u64) -> u64 {
        if arena_cap == 0 {
            DEFAULT_ARENA_RESERVE
        } else {
            arena_cap.div_ceil(4096).max(INITIAL_ARENA / 4096) * 4096
        }
    }

    fn init(mut region: Region, variant: Variant, p: &Params) -> Result<Core> {
        let geo = Geometry::new(
            p.max_entries,
            p.max_size > 0,
            p.ttl > 0,
            variant.widths().0,
            variant.widths().1,
        );
        let reserve = Self::reserve_for(p.arena_cap);
        let size = geo.arena_off + INITIAL_ARENA.min(reserve);
        region.truncate(size)?;
        // The header and the first table are written now: allocate them
        // (the slot page is allocated by the claim, the arena as it grows).
        region.allocate(0, HEADER_SIZE as u64)?;
        allocate_table(&region, &geo, 0, MIN_CAP)?;
        let limit = reserve;
        let want = geo.arena_off + arena_map_len(size - geo.arena_off, limit);
        let reserve = region.map_reserving(size, want)? - geo.arena_off;
        // SAFETY: the mapping starts with a header page inside the file.
        let h = unsafe { &*(region.base() as *const Header) };
        h.version.store(VERSION, Relaxed);
        h.variant.store(variant as u32, Relaxed);
        h.fingerprint.store(layout::fingerprint(), Relaxed);
        h.max_entries.store(p.max_entries, Relaxed);
        h.max_size.store(p.max_size, Relaxed);
        h.ttl.store(p.ttl, Relaxed);
        h.lru_skip.store(p.lru_skip, Relaxed);
        h.arena_cap.store(p.arena_cap, Relaxed);
        h.file_mode.store(p.file_mode as u64, Relaxed);
        h.seed.store(random_seed(), Relaxed);
        h.max_cap.store(geo.max_cap, Relaxed);
        h.region_off[0].store(geo.region_off[0], Relaxed);
        h.region_off[1].store(geo.region_off[1], Relaxed);
        h.arena_off.store(geo.arena_off, Relaxed);
        h.table.store(table_desc(0, MIN_CAP), Relaxed);
        h.file_size.store(size, Relaxed);
        h.arena_top.store(geo.arena_off, Relaxed);
        h.arena_alloc.store(geo.arena_off, Relaxed);
        h.lru_head.store(layout::NIL as u64, Relaxed);
        h.lru_tail.store(layout::NIL as u64, Relaxed);
        // The magic goes last: until it is there, the file is "pending".
        let pending = h.magic.load(Relaxed);
        h.magic.store(MAGIC, Relaxed);
        h.fixed_sum.store(h.fixed_sum(), Relaxed);
        h.magic.store(pending, Relaxed);
        h.magic.store(MAGIC, Release);
        Core::finish(region, variant, geo, reserve, limit)
    }

    fn attach(mut region: Region, variant: Variant) -> Result<Core> {
        let fsize = region.file_size()?;
        if fsize < HEADER_SIZE as u64 {
            let mut m = [0u8; 8];
            // A short file: ours only if it starts with our magic.
            return Err(Error::new(
                if fsize >= 8 && peek(&region, &mut m) && u64::from_le_bytes(m) == MAGIC {
                    format!("corrupt header: file is truncated ({fsize} bytes)")
                } else {
                    format!(
                        "not a Data::HashMap::Shared file (too small: {fsize} bytes, a map \
                         has at least {HEADER_SIZE})"
                    )
                },
            ));
        }
        region.map(HEADER_SIZE as u64)?;
        // SAFETY: the header page is inside the file (checked above).
        let h = unsafe { &*(region.base() as *const Header) };
        if h.magic.load(Acquire) != MAGIC {
            return Err(Error::new(
                "not a Data::HashMap::Shared file (no map magic number at its start)",
            ));
        }
        let v = h.version.load(Relaxed);
        if v != VERSION {
            return Err(Error::new(if v < VERSION {
                format!(
                    "unsupported format version {v}: the file was made by an earlier release \
                     (this build reads version {VERSION}); recreate the map: remove the file \
                     (or copy its entries out with the earlier release) and open it again"
                )
            } else {
                format!(
                    "unsupported format version {v}: the file was made by a newer release \
                     (this build reads version {VERSION}); upgrade Data::HashMap::Shared"
                )
            }));
        }
        let fv = h.variant.load(Relaxed);
        let Some(file_variant) = Variant::from_u32(fv) else {
            return Err(Error::new(format!("corrupt header: unknown variant {fv}")));
        };
        if file_variant != variant {
            return Err(Error::new(format!(
                "variant mismatch: file is {}, opened as {}",
                file_variant.name(),
                variant.name()
            )));
        }
        let corrupt = |what: String| Err(Error::new(format!("corrupt header: {what}")));
        if h.fingerprint.load(Relaxed) != layout::fingerprint() {
            return corrupt("layout fingerprint differs (written by an incompatible build)".into());
        }
        if h.fixed_sum.load(Relaxed) != h.fixed_sum() {
            return corrupt("the checksum of the fixed fields does not match".into());
        }
        let p = Params {
            max_entries: h.max_entries.load(Relaxed),
            max_size: h.max_size.load(Relaxed),
            ttl: h.ttl.load(Relaxed),
            lru_skip: h.lru_skip.load(Relaxed),
            arena_cap: h.arena_cap.load(Relaxed),
            file_mode: h.file_mode.load(Relaxed) as u32,
        };
        if let Err(e) = p.check() {
            return corrupt(e.0);
        }
        let geo = Geometry::new(
            p.max_entries,
            p.max_size > 0,
            p.ttl > 0,
            variant.widths().0,
            variant.widths().1,
        );
        if h.max_cap.load(Relaxed) != geo.max_cap
            || h.region_off[0].load(Relaxed) != geo.region_off[0]
            || h.region_off[1].load(Relaxed) != geo.region_off[1]
            || h.arena_off.load(Relaxed) != geo.arena_off
        {
            return corrupt("region offsets do not match max_entries".into());
        }
        let reserve = Self::reserve_for(p.arena_cap);
        let recorded = h.file_size.load(Relaxed);
        if recorded < geo.arena_off || recorded > geo.arena_off + reserve {
            return corrupt(format!("recorded file size {recorded} is out of range"));
        }
        if fsize < recorded {
            return corrupt(format!(
                "file is truncated ({fsize} bytes, the map needs {recorded})"
            ));
        }
        let top = h.arena_top.load(Relaxed);
        if top < geo.arena_off || top > recorded {
            return corrupt(format!("arena top {top} is out of range"));
        }
        let d = h.table.load(Relaxed);
        if !(MIN_CAP..=geo.max_cap).contains(&desc_cap(d)) {
            return corrupt(format!("table descriptor {d:#x} is invalid"));
        }
        if h.size.load(Relaxed) > p.max_entries {
            return corrupt("size exceeds max_entries".into());
        }
        if region.kind() == Kind::ReadOnly && h.frozen.load(Acquire) != 1 {
            return Err(Error::new(
                "new_readonly needs a frozen map, and this map is not frozen: freeze it first \
                 (a map that can still change cannot be read without the writer protocol)",
            ));
        }
        let limit = reserve;
        let want = geo.arena_off + arena_map_len(recorded - geo.arena_off, limit);
        let reserve = region.map_reserving(recorded, want)? - geo.arena_off;
        Core::finish(region, variant, geo, reserve, limit)
    }

    fn finish(
        mut region: Region,
        variant: Variant,
        geo: Geometry,
        reserve: u64,
        limit: u64,
    ) -> Result<Core> {
        let base = region.base();
        // SAFETY: the header page is mapped and inside the file.
        let h = unsafe { &*(base as *const Header) };
        // SAFETY: the slot table follows the header inside the file and
        // stays mapped while `region` lives.
        let slots = unsafe { Slots::new(base.add(SLOTS_OFF as usize) as *const ProcSlot) };
        let me = if region.kind() == Kind::ReadOnly {
            // A read-only handle never locks: it needs no slot.
            Me {
                slot: u32::MAX,
                gen: 0,
                fork_gen: lock::fork_gen(),
            }
        } else {
            lock::register_fd(region.lock_fd());
            claim_slot(&region, h, slots)?
        };
        let _ = &mut region;
        let readonly = region.kind() == Kind::ReadOnly;
        let kb = matches!(
            variant,
            Variant::SI16 | Variant::SI32 | Variant::SI | Variant::SS
        );
        let vb = matches!(
            variant,
            Variant::I16S | Variant::I32S | Variant::IS | Variant::SS
        );
        Ok(Core {
            kb,
            vb,
            lru_on: geo.lru,
            ttl_on: h.ttl.load(Relaxed) > 0,
            max_size: h.max_size.load(Relaxed),
            ttl_default: h.ttl.load(Relaxed),
            lru_skip: h.lru_skip.load(Relaxed),
            readonly,
            seed: h.seed.load(Relaxed),
            max_entries: h.max_entries.load(Relaxed),
            arena_off: geo.arena_off,
            arena_cap: h.arena_cap.load(Relaxed),
            arena_reserve: reserve,
            arena_limit: limit,
            remap_want: 0,
            base,
            geo,
            region,
            variant,
            me,
            iter: None,
            wait_timeout: lock::DEFAULT_WAIT_TIMEOUT,
        })
    }

    // ---- raw access ----------------------------------------------------

    /// The header.
    #[inline(always)]
    pub(crate) fn hdr(&self) -> &Header {
        // SAFETY: the header page is mapped for the life of `self`; it is all
        // atomics, so a shared reference is sound although others write it.
        unsafe { &*(self.base as *const Header) }
    }

    #[inline(always)]
    fn slots(&self) -> Slots {
        // SAFETY: the slot table is mapped for the life of `self`, and the
        // Slots value never outlives the call it is made for.
        unsafe { Slots::new(self.base.add(SLOTS_OFF as usize) as *const ProcSlot) }
    }

    /// Map the whole arena as far as its shared top, if other processes
    /// grew it past this handle's mapping (one load of a header word that
    /// the read already needs in cache). Call only where no pointer into
    /// the mapping is held: the mapping may move.
    #[inline(always)]
    pub(crate) fn cover_arena(&mut self) -> Result<()> {
        let top = self.hdr().arena_top.load(Acquire);
        if top > self.arena_off + self.arena_reserve {
            self.grow_mapping(top)?;
        }
        Ok(())
    }

    /// Remap so that the arena up to `end` is mapped (bounded by the file
    /// size and the arena's limit).
    #[cold]
    fn grow_mapping(&mut self, end: u64) -> Result<()> {
        let end = end.min(self.arena_off + self.arena_limit);
        let want = arena_map_len(end - self.arena_off, self.arena_limit).max(end - self.arena_off);
        if want <= self.arena_reserve {
            return Ok(());
        }
        self.region.remap(self.arena_off + want)?;
        self.base = self.region.base();
        self.arena_reserve = want;
        Ok(())
    }

    /// After an operation: if a store found the mapping too small (and so
    /// changed nothing), grow it and say that the operation must run again.
    pub fn remap_pending(&mut self) -> Result<bool> {
        if self.remap_want == 0 {
            return Ok(false);
        }
        let want = std::mem::take(&mut self.remap_want);
        self.grow_mapping(want)?;
        Ok(true)
    }

    /// Pointer to an absolute offset (must be inside the mapping).
    #[inline(always)]
    pub(crate) fn ptr_at(&self, off: u64) -> *mut u8 {
        debug_assert!((off as usize) < self.region.len());
        // SAFETY: callers pass offsets they bounded by the file size.
        unsafe { self.base.add(off as usize) }
    }

    /// The atomic word at an 8-aligned offset inside the file.
    #[inline(always)]
    pub(crate) fn word_at(&self, off: u64) -> &AtomicU64 {
        // SAFETY: callers pass 8-aligned offsets inside the file.
        unsafe { &*(self.ptr_at(off) as *const AtomicU64) }
    }

    /// Writer: start a structural change (readers will retry).
    #[inline(always)]
    pub(crate) fn seq_begin(&self) {
        write_begin(&self.hdr().seq);
    }

    /// Writer: publish a structural change.
    #[inline(always)]
    pub(crate) fn seq_end(&self) {
        write_end(&self.hdr().seq);
    }

    /// The active table (None if the descriptor is damaged).
    #[inline(always)]
    pub(crate) fn active(&self) -> Option<Table> {
        self.table_of(self.hdr().table.load(Acquire))
    }

    fn damaged(&self) -> Error {
        Error::new(format!(
            "{}: corrupt map: the table descriptor is invalid",
            self.region.path()
        ))
    }

    // ---- process identity and the writer protocol ------------------------

    /// After `fork`, give this handle its own file description and slot.
    #[inline(always)]
    fn ensure_me(&mut self) -> Result<()> {
        if self.me.fork_gen != lock::fork_gen() && !self.readonly {
            self.refork()?;
        }
        Ok(())
    }

    #[cold]
    fn refork(&mut self) -> Result<()> {
        self.region.reopen_private()?;
        self.me = claim_slot(&self.region, self.hdr(), self.slots())?;
        Ok(())
    }

    /// Take the writer lock (recovering from a dead holder) and return a
    /// guard that releases it.
    #[inline]
    pub(crate) fn write_lock(&mut self) -> Result<WriteGuard<'_>> {
        self.writable()?;
        self.ensure_me()?;
        let (fd, limit) = (self.region.lock_fd(), self.wait_timeout);
        let how = lock::lock(fd, self.hdr(), self.slots(), &self.me, limit)
            .map_err(|e| Error::stalled(self.path(), &e, limit))?;
        // Strings that other writers stored may lie past this handle's
        // mapping: map them before reading anything (recovery included).
        if let Err(e) = self.cover_arena() {
            lock::unlock(self.hdr());
            return Err(e);
        }
        // A dead holder (or a lock word no live process wrote), or a change
        // left half-done with the lock free (a damaged file, or a panic that
        // unwound through the guard): either way the next holder repairs,
        // and counts a recovery.
        if how == Acquired::FromDead || self.hdr().seq.load(Relaxed) & 1 == 1 {
            self.recover();
        }
        if self.frozen() {
            // frozen while we waited: this lock must not change anything
            lock::unlock(self.hdr());
            return Err(self.frozen_error());
        }
        Ok(WriteGuard {
            core: self,
            locked: true,
        })
    }

    /// A consistent view for a whole-map read (keys, get_multi, verify):
    /// the writer lock, or nothing on a frozen map, which cannot change.
    pub(crate) fn view_lock(&mut self) -> Result<WriteGuard<'_>> {
        if self.frozen() {
            self.cover_arena()?;
            return Ok(WriteGuard {
                core: self,
                locked: false,
            });
        }
        self.write_lock()
    }

    /// True once the map is frozen (always for a read-only handle).
    #[inline(always)]
    pub fn frozen(&self) -> bool {
        self.readonly || self.hdr().frozen.load(Acquire) != 0
    }

    fn frozen_error(&self) -> Error {
        Error::new(format!(
            "{}: map is frozen{}: it can be read, not changed",
            self.path(),
            if self.readonly {
                " (opened with new_readonly)"
            } else {
                ""
            }
        ))
    }

    /// Err if the map may not change (frozen, or a read-only handle).
    #[inline(always)]
    pub(crate) fn writable(&self) -> Result<()> {
        if self.frozen() {
            return Err(self.frozen_error());
        }
        Ok(())
    }

    /// Seal the map: after this every mutator on every handle fails with
    /// "map is frozen". Durable: the map and the flag are synced to disk.
    /// File-backed maps only.
    pub fn freeze(&mut self) -> Result<()> {
        if self.frozen() {
            return Ok(());
        }
        if self.region.kind() != Kind::File {
            return Err(Error::new(format!(
                "{}: freeze needs a map in a file (new_readonly attaches frozen maps by path)",
                self.path()
            )));
        }
        let g = self.write_lock()?;
        g.core.region.sync()?;
        g.core.hdr().frozen.store(1, Release);
        g.core.region.sync()?;
        g.core.region.fsync()?;
        Ok(())
    }

    /// msync the whole mapping (durability only: sharing needs nothing).
    pub fn sync(&self) -> Result<()> {
        self.region.sync()
    }

    /// The data descriptor of a memfd map, else -1.
    pub fn memfd(&self) -> i32 {
        if self.region.kind() == Kind::Memfd {
            self.region.fd()
        } else {
            -1
        }
    }

    /// True when this handle cannot change the map: a `new_readonly`
    /// handle, or any handle of a frozen map (the one that froze it too).
    pub fn readonly(&self) -> bool {
        self.frozen()
    }

    /// The file's path (None for anonymous and memfd maps).
    pub fn file_path(&self) -> Option<&str> {
        matches!(self.region.kind(), Kind::File | Kind::ReadOnly).then(|| self.region.path())
    }

    /// Repair the map after its lock holder died: finish or roll back what it
    /// was doing. Every mutation publishes with one atomic store, so the
    /// primary state (table descriptor, slots, block headers) is always
    /// consistent; the derived state is rebuilt here.
    fn recover(&mut self) {
        let hdr = self.hdr();
        hdr.stat_recoveries.fetch_add(1, Relaxed);
        crate::fault::point();
        let pending_batch = hdr.batch_log.load(Relaxed) != 0;
        if !pending_batch && hdr.seq.load(Relaxed) & 1 == 0 {
            // The holder died between changes: every multi-store change runs
            // with the sequence odd, so there is nothing to repair.
            return;
        }
        let Some(t) = self.active() else {
            // Nothing sane to keep: start from an empty table.
            self.hdr().batch_log.store(0, Relaxed);
            // On a full disk the damage stays; the next holder tries again.
            let _ = self.publish_empty();
            write_end(&self.hdr().seq);
            return;
        };
        let hdr = self.hdr();
        let d = hdr.table.load(Relaxed);
        let other = 1 - desc_region(d);
        self.region
            .punch(self.geo.region_off[other], self.geo.region_bytes());
        let (mut size, mut tombs) = (0u64, 0u64);
        for i in 0..t.cap() {
            match t.state(i) {
                FULL => size += 1,
                TOMB => tombs += 1,
                EMPTY => {}
                _ => {
                    t.set_state(i, TOMB);
                    crate::fault::point();
                    tombs += 1;
                }
            }
        }
        hdr.size.store(size, Relaxed);
        crate::fault::point();
        hdr.tombstones.store(tombs, Relaxed);
        crate::fault::point();
        if self.lru_on {
            self.lru_rebuild(&t);
        }
        if pending_batch {
            // A committed batch: finish it (the record is idempotent), on a
            // table whose counts and LRU order are already repaired.
            self.seq_begin();
            self.batch_apply();
        }
        // The blocks the table references now; every other block is free.
        let Some(t) = self.active() else { return };
        let mut live = HashSet::new();
        let (kb, vb) = (self.kb, self.vb);
        for i in 0..t.cap() {
            if t.is_full(i) {
                for (is_str, w) in [(kb, t.key(i)), (vb, t.val(i))] {
                    if is_str && !is_inline(w) {
                        live.insert(w);
                    }
                }
            }
        }
        self.arena_rebuild(&live);
        if self.hdr().seq.load(Relaxed) & 1 == 1 {
            self.seq_end();
        }
    }

    /// Publish an empty minimum-size table in the inactive region. Fails,
    /// changing nothing, when the file system has no room for its page.
    fn publish_empty(&mut self) -> Result<()> {
        let hdr = self.hdr();
        let d = hdr.table.load(Relaxed);
        let other = 1 - desc_region(d) as u64;
        let region_bytes = self.geo.region_bytes();
        self.region
            .punch(self.geo.region_off[other as usize], region_bytes);
        allocate_table(&self.region, &self.geo, other as usize, MIN_CAP)?;
        hdr.table.store(table_desc(other, MIN_CAP), Release);
        crate::fault::point();
        hdr.size.store(0, Relaxed);
        crate::fault::point();
        hdr.tombstones.store(0, Relaxed);
        crate::fault::point();
        hdr.lru_head.store(layout::NIL as u64, Relaxed);
        crate::fault::point();
        hdr.lru_tail.store(layout::NIL as u64, Relaxed);
        crate::fault::point();
        self.region
            .punch(self.geo.region_off[1 - other as usize], region_bytes);
        Ok(())
    }

    /// A reader found the sequence odd for a long time: wait (sleeping)
    /// until it moves; if nobody live is changing the map (the writer died,
    /// or the lock word is garbage), take the lock, which recovers, and let
    /// go. Gives up after `wait_timeout` without progress.
    #[cold]
    fn reader_stuck(&mut self) -> Result<()> {
        if self.frozen() {
            // nobody may write a frozen map: an odd sequence is damage
            return Err(Error::new(format!(
                "{}: corrupt map: a frozen map is marked as being changed",
                self.path()
            )));
        }
        self.ensure_me()?;
        let seq = self.hdr().seq.load(Acquire);
        let mut watch = None;
        let mut backoff = lock::Backoff::default();
        while self.hdr().seq.load(Acquire) == seq && seq & 1 == 1 {
            let fd = self.region.lock_fd();
            let Some((word, slot)) = lock::live_holder(fd, self.hdr(), self.slots(), &self.me)
            else {
                // Taking the lock repairs a change that nobody is finishing.
                drop(self.write_lock()?);
                break;
            };
            let w = watch.get_or_insert_with(|| lock::Watch::new(word));
            if w.stalled(word, self.wait_timeout) {
                let e = lock::Stalled {
                    what: lock::WaitFor::Change,
                    slot,
                };
                return Err(Error::stalled(self.path(), &e, self.wait_timeout));
            }
            backoff.sleep();
        }
        Ok(())
    }

    /// How long a wait on another live process may see no progress before
    /// it croaks (this handle only).
    pub fn wait_timeout(&self) -> std::time::Duration {
        self.wait_timeout
    }

    /// Set [`Core::wait_timeout`]: more than 0, at most [`MAX_WAIT_TIMEOUT`].
    pub fn set_wait_timeout(&mut self, d: std::time::Duration) -> Result<()> {
        self.wait_timeout = wait_timeout_from_secs(d.as_secs_f64())?;
        Ok(())
    }

    /// Run an optimistic read until it validates.
    #[inline(always)]
    fn read<R>(&mut self, mut f: impl FnMut(&Core) -> R) -> Result<R> {
        let mut spins = 0u32;
        loop {
            self.cover_arena()?;
            if let Some(s) = read_begin(&self.hdr().seq) {
                let r = f(self);
                if read_valid(&self.hdr().seq, s) {
                    return Ok(r);
                }
            }
            spins += 1;
            if spins % READ_SPINS == 0 {
                self.reader_stuck()?;
            } else {
                std::hint::spin_loop();
            }
        }
    }

    // ---- table maintenance (writer lock held) ----------------------------

    /// Rebuild the table at `cap` slots in the other region and publish it.
    /// Fails, changing nothing, when the file system has no room for it.
    fn resize(&mut self, cap: u64) -> Result<()> {
        let hdr = self.hdr();
        let d = hdr.table.load(Relaxed);
        let old = self.table_of(d).expect("validated table");
        let other = 1 - desc_region(d);
        let rb = self.geo.region_bytes();
        self.region.punch(self.geo.region_off[other], rb);
        crate::fault::point();
        if let Err(e) = allocate_table(&self.region, &self.geo, other, cap) {
            // Return whatever part of it was allocated: the disk is full.
            self.region.punch(self.geo.region_off[other], rb);
            return Err(e);
        }
        let new = self
            .table_of(table_desc(other as u64, cap))
            .expect("capacity within range");
        for i in 0..old.cap() {
            let m = old.meta(i);
            if is_full(m) {
                let ext = if old.has_ext() {
                    old.ext(i).load(Relaxed)
                } else {
                    0
                };
                let j = new.place(m, old.key(i), old.val(i), ext);
                if let (Some(j), true) = (j, self.lru_on) {
                    new.link(j)
                        .stamp
                        .store(old.link(i).stamp.load(Relaxed), Relaxed);
                }
            }
        }
        if self.lru_on {
            self.lru_rebuild(&new);
        }
        hdr.table.store(table_desc(other as u64, cap), Release);
        crate::fault::point();
        hdr.tombstones.store(0, Relaxed);
        crate::fault::point();
        self.region.punch(self.geo.region_off[1 - other], rb);
        crate::fault::point();
        Ok(())
    }

    /// Make room for one more entry (grow, or compact tombstones).
    fn make_room<S: Shape>(&mut self, t: &Table<S>) -> Result<bool> {
        let hdr = self.hdr();
        let size = hdr.size.load(Relaxed);
        let tombs = hdr.tombstones.load(Relaxed);
        let cap = t.cap() as u64;
        if (size + tombs + 1) * 4 <= cap * 3 {
            return Ok(false);
        }
        let new = if (size + 1) * 8 <= cap * 3 || cap >= self.geo.max_cap {
            cap // mostly tombstones (or at the largest size): compact in place
        } else {
            self.grown(cap, size)
        };
        self.resize(new)?;
        Ok(true)
    }

    /// Shrink or compact after removals.
    pub(crate) fn maybe_shrink(&mut self) {
        let Some(t) = self.active() else { return };
        let hdr = self.hdr();
        let size = hdr.size.load(Relaxed);
        let tombs = hdr.tombstones.load(Relaxed);
        let cap = t.cap() as u64;
        if cap > MIN_CAP && size * 4 < cap {
            // Back to a load of 1/2: far from both the shrink and the grow
            // threshold, so alternating inserts and removes cannot thrash.
            let want = (size * 2 + 2).clamp(MIN_CAP, cap - 1);
            // On a full disk the table stays as it is: removals still work.
            let _ = self.resize(want);
        } else if tombs * 4 > cap {
            let _ = self.resize(cap);
        }
    }

    /// Put prepared key and value words of a key known to be absent into
    /// the table (writer lock held, the sequence already odd; ends the
    /// window): evicts first on an LRU map at max_size, grows if needed.
    /// On `Full` the words' blocks are freed.
    pub(crate) fn place_new(
        &mut self,
        hash: u64,
        kw: u64,
        vw: u64,
        expiry: u64,
        now: u32,
    ) -> Result<Status> {
        let mut t = self.active().ok_or_else(|| self.damaged())?;
        if self.lru_on && self.hdr().size.load(Relaxed) >= self.max_size {
            self.evict_one(&t, now);
        }
        if self.hdr().size.load(Relaxed) >= self.max_entries {
            if self.kb {
                self.str_free(kw);
            }
            if self.vb {
                self.str_free(vw);
            }
            self.seq_end();
            return Ok(Status::Full);
        }
        match self.make_room(&t) {
            Ok(false) => {}
            Ok(true) => t = self.active().ok_or_else(|| self.damaged())?,
            Err(e) => {
                if self.kb {
                    self.str_free(kw);
                }
                if self.vb {
                    self.str_free(vw);
                }
                self.seq_end();
                return Err(e);
            }
        }
        let i = match t.probe(hash, |_| false) {
            Probe::Vacant(i) => i,
            _ => {
                self.seq_end();
                return Err(self.damaged());
            }
        };
        let was_tomb = t.state(i) == TOMB;
        t.fill(i, hash, kw, vw, expiry);
        let hdr = self.hdr();
        if was_tomb {
            hdr.tombstones.fetch_sub(1, Relaxed);
            crate::fault::point();
        }
        hdr.size.fetch_add(1, Relaxed);
        crate::fault::point();
        if self.lru_on {
            self.lru_push_head(&t, i);
        }
        self.seq_end();
        Ok(Status::Ok)
    }

    /// Remove slot `i` of `t` (writer lock held, seq odd): unlink it from
    /// the LRU list, mark it removed, free its strings.
    pub(crate) fn remove_slot<S: Shape>(&mut self, t: &Table<S>, i: usize) {
        if self.lru_on {
            self.lru_unlink(t, i);
        }
        let (kw, vw) = (t.key(i), t.val(i));
        let dt = t.vacate(i);
        let hdr = self.hdr();
        if dt >= 0 {
            hdr.tombstones.fetch_add(dt as u64, Relaxed);
            crate::fault::point();
        } else {
            let cur = hdr.tombstones.load(Relaxed);
            hdr.tombstones
                .store(cur.saturating_sub((-dt) as u64), Relaxed);
        }
        // saturating: a damaged file must not make the size wrap around
        hdr.size
            .store(hdr.size.load(Relaxed).saturating_sub(1), Relaxed);
        crate::fault::point();
        if self.kb {
            self.str_free(kw);
        }
        if self.vb {
            self.str_free(vw);
        }
    }

    /// Remove an entry found expired by a write (writer lock held, seq odd).
    pub(crate) fn remove_expired<S: Shape>(&mut self, t: &Table<S>, i: usize) {
        self.remove_slot(t, i);
        self.hdr().stat_expired.fetch_add(1, Relaxed);
        crate::fault::point();
    }

    /// Keys are byte strings.
    pub(crate) fn kb_flag(&self) -> bool {
        self.kb
    }

    /// Values are byte strings.
    pub(crate) fn vb_flag(&self) -> bool {
        self.vb
    }

    /// True for a map without extension words (no LRU, no TTL).
    #[inline(always)]
    pub(crate) fn plain(&self) -> bool {
        !self.geo.lay.has_ext()
    }

    /// Is slot `i` of `t` live at `now`? (Always, without TTL.)
    #[inline(always)]
    pub(crate) fn live<S: Shape>(&self, t: &Table<S>, i: usize, now: u32) -> bool {
        !self.ttl_on || !self.expired(t.ext(i).load(Relaxed), now)
    }

    /// A read used slot `i`: set its LRU mark (only if not set, so that
    /// reads of a hot key do not keep writing its cache line).
    #[inline(always)]
    pub(crate) fn mark_used<S: Shape>(&self, t: &Table<S>, i: usize) {
        if self.lru_on && !self.readonly {
            let e = t.ext(i);
            if e.load(Relaxed) & layout::EXT_USED == 0 {
                e.fetch_or(layout::EXT_USED, Relaxed);
            }
        }
    }

    /// The time for expiry checks (0, and no clock read, without TTL).
    #[inline(always)]
    pub(crate) fn now(&self) -> u32 {
        if self.ttl_on {
            crate::ttl::now()
        } else {
            0
        }
    }

    /// Grow the table now so that `n` more entries fit without a resize
    /// (writer lock held, sequence odd): a batch does this before it commits,
    /// so that applying its record never needs space the disk may not have.
    pub(crate) fn room_for(&mut self, n: u64) -> Result<()> {
        let t = self.active().ok_or_else(|| self.damaged())?;
        let hdr = self.hdr();
        let want = self.cap_for(
            (hdr.size.load(Relaxed) + hdr.tombstones.load(Relaxed))
                .saturating_add(n)
                .min(self.max_entries + hdr.tombstones.load(Relaxed)),
        );
        if want > t.cap() as u64 {
            self.resize(want)?;
        }
        Ok(())
    }

    /// The capacity for `n` entries (load at most 3/4), within the map's.
    fn cap_for(&self, n: u64) -> u64 {
        cap_for(n).min(self.geo.max_cap)
    }

    /// The capacity a full table of `cap` slots holding `size` entries grows
    /// to: twice as large while small, then half as large again, so that
    /// the load stays between 1/2 and 3/4 and memory follows the data.
    fn grown(&self, cap: u64, size: u64) -> u64 {
        let step = if cap < 4096 { cap * 2 } else { cap + cap / 2 };
        step.max(cap_for(size + 1)).min(self.geo.max_cap)
    }

    // ---- whole-map operations (codec-independent) ------------------------

    /// A diagnostic value.
    pub fn info(&self, which: Info) -> u64 {
        let h = self.hdr();
        match which {
            Info::Size => h.size.load(Relaxed),
            Info::MaxEntries => self.max_entries,
            Info::MaxSize => h.max_size.load(Relaxed),
            Info::Ttl => h.ttl.load(Relaxed),
            Info::LruSkip => h.lru_skip.load(Relaxed),
            Info::Capacity => self.active().map_or(0, |t| t.cap() as u64),
            Info::Tombstones => h.tombstones.load(Relaxed),
            Info::MmapSize => h.file_size.load(Relaxed),
            Info::ArenaUsed => h.arena_used.load(Relaxed),
            Info::ArenaCap => self.arena_cap,
            Info::StatEvictions => h.stat_evictions.load(Relaxed),
            Info::StatExpired => h.stat_expired.load(Relaxed),
            Info::StatRecoveries => h.stat_recoveries.load(Relaxed),
            Info::Variant => self.variant as u64,
        }
    }

    /// Pre-size the table for `n` entries; false if `n > max_entries`.
    /// A mutator like any other: on a frozen map it fails with "map is
    /// frozen" before anything else is checked.
    pub fn reserve(&mut self, n: u64) -> Result<bool> {
        self.writable()?;
        if n > self.max_entries {
            return Ok(false);
        }
        let g = self.write_lock()?;
        let t = g.core.active().ok_or_else(|| g.core.damaged())?;
        let tombs = g.core.hdr().tombstones.load(Relaxed);
        let want = g.core.cap_for(n + tombs);
        if want > t.cap() as u64 {
            g.core.seq_begin();
            let r = g.core.resize(want);
            g.core.seq_end();
            r?;
        }
        Ok(true)
    }

    /// Remove every entry (stat counters survive).
    pub fn clear(&mut self) -> Result<()> {
        let g = self.write_lock()?;
        let core = &mut *g.core;
        core.seq_begin();
        let r = core.publish_empty();
        if r.is_ok() {
            core.arena_reset();
        }
        core.seq_end();
        r
    }

    /// Restart `each`.
    pub fn iter_reset(&mut self) {
        self.iter = None;
    }

    /// Was the file truncated under this handle's mapping? (Then every
    /// further call reports it.)
    pub fn truncated(&self) -> bool {
        self.region.truncated()
    }

    /// The path given at open.
    pub fn path(&self) -> &str {
        self.region.path()
    }

    /// Take the writer lock and never release it (optionally with the
    /// sequence left odd, as if in the middle of a change): lets tests
    /// simulate a writer that dies holding the lock.
    #[doc(hidden)]
    pub fn debug_hold_lock(&mut self, mid_write: bool) -> Result<()> {
        let g = self.write_lock()?;
        if mid_write {
            g.core.seq_begin();
        }
        std::mem::forget(g);
        Ok(())
    }

    /// The handle's process slot (for tests).
    pub fn slot(&self) -> u32 {
        self.me.slot
    }
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

/// `flush_pos` holds a slot number in its low bits and, above them, a tag
/// of the table descriptor the pass runs over (a pass restarts when the
/// table was rebuilt since).
const FLUSH_SLOT_BITS: u32 = 35;

fn flush_tag(desc: u64) -> u64 {
    desc.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> FLUSH_SLOT_BITS
}

fn peek(r: &Region, m: &mut [u8; 8]) -> bool {
    // SAFETY: m is a valid 8-byte buffer.
    unsafe { libc::pread(r.fd(), m.as_mut_ptr().cast(), 8, 0) == 8 }
}

impl Drop for Core {
    fn drop(&mut self) {
        // A forked child that never re-claimed shares its parent's slot lock:
        // leave it alone. Closing the fd (Region's drop) releases ours.
        if self.readonly {
            return;
        }
        if self.me.fork_gen == lock::fork_gen() {
            lock::release_slot(self.region.lock_fd(), self.slots(), &self.me);
        }
        lock::unregister_fd(self.region.lock_fd());
    }
}

/// Holds the writer lock; releases it when dropped (also on early return).
pub struct WriteGuard<'a> {
    pub(crate) core: &'a mut Core,
    locked: bool,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if self.locked {
            lock::unlock(self.core.hdr());
        }
    }
}

// =========================================================================
// The typed map
// =========================================================================

/// A map with keys of kind `K` and values of kind `V`.
pub struct Map<K: Codec, V: Codec> {
    core: Core,
    _kinds: PhantomData<(K, V)>,
}

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
        if V::BYTES && v.bytes.len() > crate::arena::MAX_STRING {
            return Err(Error::new(format!(
                "value of {} bytes is longer than the limit of {} bytes",
                v.bytes.len(),
                crate::arena::MAX_STRING
            )));
        }
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn key<'a>(&self, k: &Item<'a>) -> Result<Key<'a>> {
        self.check_key(k)?;
        if K::BYTES {
            if k.bytes.len() > crate::arena::MAX_STRING {
                return Err(Error::new(format!(
                    "key of {} bytes is longer than the limit of {} bytes",
                    k.bytes.len(),
                    crate::arena::MAX_STRING
                )));
            }
            let bytes = k.bytes;
            Ok(Key {
                hash: crate::hash::hash_bytes(self.core.seed, bytes),
                num: 0,
                bytes,
                inline: inline_word(bytes, false),
            })
        } else {
            Ok(Key {
                hash: crate::hash::hash_int(self.core.seed, k.num),
                num: k.num,
                bytes: &[],
                inline: None,
            })
        }
    }

    #[inline(always)]
    pub(crate) fn key_eq(core: &Core, key: &Key<'_>, w: u64) -> bool {
        if !K::BYTES {
            w as i64 == key.num
        } else if let Some(iw) = key.inline {
            inline_same_bytes(w, iw)
        } else {
            !is_inline(w) && core.str_eq(w, key.bytes)
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
        let v = core.str_view(w)?;
        out.len = v.len();
        out.utf8 = v.utf8 as u32;
        let Some(dst) = out.buf_mut().get_mut(..v.len()) else {
            return Some(Status::Small);
        };
        core.str_copy(&v, dst);
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
        // The closure stays small, so that it is inlined into `read`.
        let r = self
            .core
            .read(|core| Self::lookup::<S>(core, &key, now, out, ttl.as_deref_mut()))?;
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
        match t.probe_read(key.hash, |w| Self::key_eq(core, key, w)) {
            Some((i, w)) if !ext || core.live(&t, i, now) => {
                if ext {
                    core.mark_used(&t, i);
                }
                if let Some(ttl) = ttl {
                    *ttl = if ext && core.ttl_on {
                        Core::remaining(t.ext(i).load(Relaxed), now) as i64
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
    pub fn get(&mut self, k: &Item, out: &mut Out) -> Result<Status> {
        if self.core.plain() {
            self.read_entry::<Plain<K, V>>(k, out, None)
        } else {
            self.read_entry::<Ext>(k, out, None)
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
    pub fn exists(&mut self, k: &Item) -> Result<bool> {
        let key = self.key(k)?;
        let now = self.core.now();
        let r = self.core.read(|core| {
            let t = Self::active(core)?;
            Some(match t.probe(key.hash, |w| Self::key_eq(core, &key, w)) {
                Probe::Found(i) => core.live(&t, i, now),
                _ => false,
            })
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
        let r = self.core.read(|core| {
            let t = Self::active(core)?;
            Some(match t.probe(key.hash, |w| Self::key_eq(core, &key, w)) {
                Probe::Found(i) if core.live(&t, i, now) => {
                    Some(Core::remaining(t.ext(i).load(Relaxed), now))
                }
                _ => None,
            })
        })?;
        r.ok_or_else(|| self.core.damaged())
    }

    // ---- writes --------------------------------------------------------

    /// Insert or overwrite (with the map's default TTL, if it has one).
    pub fn put(&mut self, k: &Item, v: &Item) -> Result<Status> {
        self.put_with(k, v, None)
    }

    /// Insert or overwrite with this entry's own lifetime (0 = permanent).
    pub fn put_ttl(&mut self, k: &Item, v: &Item, secs: u64) -> Result<Status> {
        self.need_ttl("put_ttl")?;
        self.put_with(k, v, Some(secs))
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

    fn put_with(&mut self, k: &Item, v: &Item, ttl: Option<u64>) -> Result<Status> {
        let key = self.key(k)?;
        self.check_val(v)?;
        let g = self.core.write_lock()?;
        let now = g.core.now();
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
        match Self::find_live_as::<S>(core, key, now)? {
            (t, Some(i)) => {
                let expiry = core.expiry_on_write(&t, i, now, ttl);
                Self::overwrite(core, &t, i, v, expiry)
            }
            (_, None) => {
                let expiry = crate::ttl::expiry_after(now, ttl.unwrap_or(core.ttl_default));
                Self::insert_locked(core, key, k, v, expiry, now)
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
        if core.plain() {
            Self::find_live_as::<Plain<K, V>>(core, key, now).map(|(t, i)| (t.erase(), i))
        } else {
            Self::find_live_as::<Ext>(core, key, now).map(|(t, i)| (t.erase(), i))
        }
    }

    /// [`Map::find_live`] on a map known to have extension words or not.
    #[inline(always)]
    pub(crate) fn find_live_as<S: Shape>(
        core: &mut Core,
        key: &Key<'_>,
        now: u32,
    ) -> Result<(Table<S>, Option<usize>)> {
        let t = Self::active_as::<S>(core).ok_or_else(|| core.damaged())?;
        match t.probe(key.hash, |w| Self::key_eq(core, key, w)) {
            Probe::Found(i) if core.live(&t, i, now) => Ok((t, Some(i))),
            Probe::Found(i) => {
                core.seq_begin();
                core.remove_expired(&t, i);
                core.seq_end();
                Ok((t, None))
            }
            _ => Ok((t, None)),
        }
    }

    /// Store `v` as the value of the live slot `i` (writer lock held), with
    /// a new expiry if given, and promote it.
    pub(crate) fn overwrite<S: Shape>(
        core: &mut Core,
        t: &Table<S>,
        i: usize,
        v: &Item,
        expiry: Option<u64>,
    ) -> Result<Status> {
        if V::BYTES {
            // The allocation is part of the change: inside the window, so
            // that a writer dying here leaves the sequence odd for recovery.
            core.seq_begin();
            let nw = match Self::store_word(core, true, v) {
                Ok(w) => w,
                Err(e) => {
                    core.seq_end();
                    return e.into_status();
                }
            };
            let old = t.swap_val(i, nw);
            crate::fault::point();
            core.str_free(old);
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
        core.seq_begin();
        core.lru_promote(t, i);
        core.seq_end();
    }

    /// Insert a key known to be absent, with the extension word `expiry`.
    /// On an LRU map at `max_size`, evicts one entry first.
    pub(crate) fn insert_locked(
        core: &mut Core,
        key: &Key<'_>,
        k: &Item,
        v: &Item,
        expiry: u64,
        now: u32,
    ) -> Result<Status> {
        if !core.lru_on && core.hdr().size.load(Relaxed) >= core.max_entries {
            return Ok(Status::Full);
        }
        // Everything from the first allocation on is one change: a writer
        // dying anywhere in it leaves the sequence odd for recovery.
        core.seq_begin();
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
                    core.str_free(kw);
                }
                core.seq_end();
                return e.into_status();
            }
        };
        core.place_new(key.hash, kw, vw, expiry, now)
    }

    /// Remove `k`; if `out` is given, the old value is copied there first.
    fn remove_impl(&mut self, k: &Item, out: Option<&mut Out>) -> Result<Status> {
        let key = self.key(k)?;
        let g = self.core.write_lock()?;
        let core = &mut *g.core;
        let now = core.now();
        let (t, Some(i)) = Self::find_live(core, &key, now)? else {
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
        core.seq_begin();
        core.remove_slot(t, i);
        core.maybe_shrink();
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
        let g = self.core.write_lock()?;
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
        let expiry = crate::ttl::expiry_after(now, core.ttl_default);
        match Self::insert_locked(core, &key, k, dflt, expiry, now)? {
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
        if !self.core.lru_on && lock::enter_counter(self.core.hdr(), slots, &self.core.me) {
            let core = &self.core;
            let r = if core.plain() {
                Self::counter_in_place::<Plain<K, V>>(core, &key, now, &f, result)
            } else {
                Self::counter_in_place::<Ext>(core, &key, now, &f, result)
            };
            lock::leave_counter(slots, &self.core.me);
            if let Some(s) = r {
                return Ok(s);
            }
        }
        let g = self.core.write_lock()?;
        let core = &mut *g.core;
        match Self::find_live(core, &key, now)? {
            (t, Some(i)) => {
                let s = Self::apply_in_place(&t, i, &f, result);
                if s == Status::Ok {
                    core.refresh_expiry(&t, i, now);
                    Self::updated(core, &t, i, None);
                }
                Ok(s)
            }
            (_, None) => {
                if !V::fits(init) {
                    return Ok(Status::Range);
                }
                let expiry = crate::ttl::expiry_after(now, core.ttl_default);
                let s = Self::insert_locked(core, &key, k, &Item::int(init), expiry, now)?;
                if s == Status::Ok {
                    *result = init;
                }
                Ok(s)
            }
        }
    }

    /// The lock-free part of [`Map::counter`]: `None` if `key` has no live
    /// entry.
    #[inline(always)]
    fn counter_in_place<S: Shape>(
        core: &Core,
        key: &Key<'_>,
        now: u32,
        f: &impl Fn(i64) -> Option<i64>,
        result: &mut i64,
    ) -> Option<Status> {
        let t = Self::active_as::<S>(core)?;
        match t.probe(key.hash, |w| Self::key_eq(core, key, w)) {
            Probe::Found(i) if core.live(&t, i, now) => {
                let s = Self::apply_in_place(&t, i, f, result);
                if s == Status::Ok {
                    core.refresh_expiry(&t, i, now);
                }
                Some(s)
            }
            _ => None,
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
        let g = self.core.write_lock()?;
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
            core.refresh_expiry(t, i, now);
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
            let ne = crate::ttl::expiry_after(now, secs);
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
        let g = self.core.write_lock()?;
        let core = &mut *g.core;
        let now = core.now();
        let hdr = core.hdr();
        let d = hdr.table.load(Relaxed);
        let t = Self::active(core).ok_or_else(|| core.damaged())?;
        let pos = hdr.flush_pos.load(Relaxed);
        let mut i = if limit == u64::MAX || pos >> FLUSH_SLOT_BITS != flush_tag(d) {
            0
        } else {
            (pos & ((1 << FLUSH_SLOT_BITS) - 1)) as usize
        };
        let end = (i as u64).saturating_add(limit).min(t.cap() as u64) as usize;
        let mut removed = 0;
        core.seq_begin();
        while i < end {
            if t.is_full(i) && !core.live(&t, i, now) {
                core.remove_expired(&t, i);
                removed += 1;
            }
            i += 1;
        }
        let done = i >= t.cap();
        core.hdr().flush_pos.store(
            (flush_tag(d) << FLUSH_SLOT_BITS) | if done { 0 } else { i as u64 },
            Relaxed,
        );
        if done {
            core.maybe_shrink();
        }
        core.seq_end();
        Ok((removed, done))
    }

    // ---- iteration -----------------------------------------------------

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
        let r = self.core.read(|core| {
            let t = Self::active(core)?;
            let mut from = after;
            let i = loop {
                let Some(i) = t.next_after(from) else {
                    return Some((after, Status::False));
                };
                if core.live(&t, i, now) {
                    break i;
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
        let g = self.core.view_lock()?;
        let core = &*g.core;
        let now = core.now();
        let t = Self::active(core).ok_or_else(|| core.damaged())?;
        let mut v = Vec::with_capacity(core.hdr().size.load(Relaxed) as usize);
        for i in 0..t.cap() {
            if t.is_full(i) && core.live(&t, i, now) {
                let k = Self::entry(core, K::BYTES, t.key(i));
                let val = Self::entry(core, V::BYTES, t.val(i));
                match (k, val) {
                    (Some(k), Some(val)) => v.push((k, val)),
                    _ => return Err(Error::new("corrupt map: bad string reference")),
                }
            }
        }
        Ok(v)
    }

    pub(crate) fn entry(core: &Core, is_bytes: bool, w: u64) -> Option<Entry> {
        if !is_bytes {
            return Some(Entry::Int(w as i64));
        }
        let v = core.str_view(w)?;
        let mut b = Vec::with_capacity(v.len());
        core.str_copy(&v, &mut b.spare_capacity_mut()[..v.len()]);
        // SAFETY: str_copy initialized these v.len() bytes.
        unsafe { b.set_len(v.len()) };
        Some(Entry::Bytes(b, v.utf8))
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

//! The file layout: one source of truth for every offset.
//!
//! ```text
//! 0                 Header (one 4 KiB page; fields below, offsets asserted)
//! SLOTS_OFF         process slots: NSLOTS x 64 bytes (one cache line each)
//! region_off[0]     table region A: max_cap slots (see Layout) } one is active,
//! region_off[1]     table region B: max_cap slots             } the other a hole
//! arena_off         string arena, grows at the end of the file
//! ```
//!
//! The file is sparse: regions are reserved by `ftruncate`, and only the
//! pages that hold data are ever written; each range is allocated
//! (`Region::allocate`) before the map first writes to it. All words that any process may
//! write are atomics; the engine never forms plain references into the map.

use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64};

/// "DHMSHMAP", little-endian: a finished map.
pub const MAGIC: u64 = u64::from_le_bytes(*b"DHMSHMAP");
/// "DHMS-NEW": written first by a creator; a file that still holds it was
/// left half-initialized and is re-initialized by the next opener.
pub const MAGIC_PENDING: u64 = u64::from_le_bytes(*b"DHMS-NEW");
/// On-disk format version. Bump on any incompatible change.
/// 2: `arena_alloc` (space is allocated before first use).
/// 3: LRU links name their table region (bit 31), and LRU tables migrate.
pub const VERSION: u32 = 3;

/// Size of the header page.
pub const HEADER_SIZE: usize = 4096;
/// Number of process slots (concurrently attached handles per map).
pub const NSLOTS: usize = 4096;
/// Bytes per process slot (a cache line, so counter indicators don't share).
pub const PROC_SLOT_SIZE: usize = 64;
/// Offset of the process slot table.
pub const SLOTS_OFF: u64 = HEADER_SIZE as u64;
/// Bytes of a wide slot (`Slot`: meta, key, value); 32 with the extension
/// word. Packed slots are sized by `Layout::packed`.
pub const SLOT_SIZE: usize = 24;
/// Smallest table capacity (slots).
pub const MIN_CAP: u64 = 16;
pub use crate::format::words::NCLASSES;

/// Byte offsets (far beyond any data) whose kernel file locks carry meaning:
/// `INIT_LOCK_BYTE` serializes creation; `SLOT_LOCK_BASE + i` is held by the
/// owner of process slot `i` for as long as it lives.
pub const INIT_LOCK_BYTE: i64 = 1 << 62;
/// See [`INIT_LOCK_BYTE`].
pub const SLOT_LOCK_BASE: i64 = (1 << 62) + 4096;

/// The header. Every field is an atomic because another process may write
/// it (or a hostile file may hold anything); immutable fields are written
/// once at creation and validated on every attach.
#[repr(C)]
pub struct Header {
    // ---- identity and parameters (written once) ------------------ @0
    /// [`MAGIC`], or [`MAGIC_PENDING`] during creation.
    pub magic: AtomicU64,
    /// [`VERSION`].
    pub version: AtomicU32,
    /// Variant number (0..10, `xs/dhms.h` order).
    pub variant: AtomicU32,
    /// [`fingerprint`] of the layout that wrote the file.
    pub fingerprint: AtomicU64,
    /// Exact entry limit.
    pub max_entries: AtomicU64,
    /// LRU size (0 = off).
    pub max_size: AtomicU64,
    /// Default TTL in seconds (0 = off).
    pub ttl: AtomicU64,
    /// LRU promotion skip (0..99).
    pub lru_skip: AtomicU64,
    /// Arena cap in bytes (0 = grow on demand).
    pub arena_cap: AtomicU64,
    /// File mode given at creation.
    pub file_mode: AtomicU64,
    /// Per-file hash seed.
    pub seed: AtomicU64,
    /// The largest table capacity (slots; any number, not a power of two).
    pub max_cap: AtomicU64,
    /// Offsets of the two table regions.
    pub region_off: [AtomicU64; 2],
    /// Offset of the arena.
    pub arena_off: AtomicU64,
    /// Checksum of every field above (see [`Header::fixed_sum`]).
    pub fixed_sum: AtomicU64,
    _pad0: [u64; 17],
    // ---- writer lock (own cache line) ----------------------------- @256
    /// Writer lock word, see `lock.rs`.
    pub lock: AtomicU64,
    _pad1: [u64; 7],
    // ---- seqlock (own cache line) --------------------------------- @320
    /// Sequence counter: odd while a writer changes the structure.
    pub seq: AtomicU64,
    _pad2: [u64; 7],
    // ---- what readers read (stored rarely) ------------------------- @384
    // Lock-free readers load `table` on every lookup and `arena_alloc` to
    // know that their mapping covers every string: on a line of their
    // own, which only a resize, a growing arena (in steps), a growing
    // file or freeze store to, so that an insert or a remove in another
    // process does not make every reader miss on it.
    /// Active table: `capacity << 1 | region`; one store publishes.
    pub table: AtomicU64,
    /// Arena bytes below this absolute offset have their file blocks
    /// allocated (`Region::allocate`): stores there cannot meet a full
    /// file system; every block lies below it. Only grows, except that
    /// `clear` lowers it before it punches the arena.
    pub arena_alloc: AtomicU64,
    /// Bytes of file that exist (only grows; validated against fstat).
    pub file_size: AtomicU64,
    /// 1 once `freeze` sealed the map: no mutation will ever run again.
    pub frozen: AtomicU64,
    /// For a shard of a sharded map: `shards << 32 | index`; 0 otherwise.
    pub shard: AtomicU64,
    /// While a resize migrates entries step by step (`raw::migrate`): the
    /// descriptor of the table they come from, whose entries with a home
    /// at or above `mig_front` are still there; 0 otherwise (and ignored
    /// when it names `table`'s region).
    pub mig_old: AtomicU64,
    /// The migration's frontier: every entry of the old table whose home
    /// slot is below it has moved to `table`.
    pub mig_front: AtomicU64,
    _pad3: [u64; 1],
    // ---- the writers' state (changed under the writer lock) -------- @448
    /// Live entries.
    pub size: AtomicU64,
    /// Tombstones in the active table.
    pub tombstones: AtomicU64,
    /// First unused arena byte (absolute file offset).
    pub arena_top: AtomicU64,
    /// Bytes held by live arena blocks.
    pub arena_used: AtomicU64,
    /// LRU evictions so far.
    pub stat_evictions: AtomicU64,
    /// Expired entries removed so far.
    pub stat_expired: AtomicU64,
    /// Dead lock holders recovered from so far.
    pub stat_recoveries: AtomicU64,
    /// One more than the highest process slot ever claimed.
    pub slot_hwm: AtomicU64,
    // --------------------------------------------------------------- @512
    /// LRU list: most recently used slot (`NIL` if empty).
    pub lru_head: AtomicU64,
    /// LRU list: least recently used slot (`NIL` if empty).
    pub lru_tail: AtomicU64,
    /// LRU clock: the stamp given to the next promoted entry.
    pub lru_clock: AtomicU64,
    /// Shared position of `flush_expired_partial`: `flush_tag(desc) << 35 |
    /// next slot` (`raw::core::flush_tag`).
    pub flush_pos: AtomicU64,
    /// A published batch redo record (arena block), or 0; see `batch.rs`.
    pub batch_log: AtomicU64,
    /// The parts of the repair after a writer's death that are still to
    /// run (`raw::recover`): [`REPAIR_COUNTS`] (size, tombstones, LRU
    /// order, stray slot states) and [`REPAIR_ARENA`] (free lists and
    /// usage). Readers do not need them, so they go on at once; the next
    /// writer runs them before it changes anything.
    pub repair: AtomicU64,
    // ---- the record of the single-key change in flight ----------- @560
    // (`raw::core`, "The record of a single change"; `raw::recover`)
    /// [`UNDO_WALK`] (a death needs the walks of the repair), [`UNDO_SINGLE`]
    /// (the fields below describe the change in flight) or
    /// [`UNDO_RECOVERING`] (a recovery is pushing `undo_list`).
    pub undo_state: AtomicU64,
    /// [`UNDO_INSERT`], [`UNDO_OVERWRITE`] or [`UNDO_REMOVE`].
    pub undo_kind: AtomicU64,
    /// The slot the change publishes in (`u64::MAX` until known).
    pub undo_slot: AtomicU64,
    /// Insert: the key word it publishes.
    pub undo_key: AtomicU64,
    /// Insert, overwrite: the value word it publishes.
    pub undo_val: AtomicU64,
    /// Overwrite: the old value word; remove: the tombstones `vacate`
    /// turns empty before the slot.
    pub undo_old: AtomicU64,
    /// `size` before and after the change.
    pub undo_size: [AtomicU64; 2],
    /// `tombstones` before and after the change.
    pub undo_tombs: [AtomicU64; 2],
    /// `arena_used` before the change.
    pub undo_used: AtomicU64,
    /// Blocks the change allocated (each noted before its pop or bump).
    pub undo_nalloc: AtomicU64,
    /// The blocks.
    pub undo_alloc: [AtomicU64; UNDO_MAX_ALLOC],
    /// How many of the change's frees are done.
    pub undo_freed: AtomicU64,
    /// Recovering: the blocks to put back on their free lists.
    pub undo_list: [AtomicU64; UNDO_MAX_ALLOC],
    /// Their number.
    pub undo_nlist: AtomicU64,
    /// Recovering: the `arena_used` to set at the end.
    pub undo_used_after: AtomicU64,
    /// Recovering: how many of `undo_list` are back on their lists.
    pub undo_pushed: AtomicU64,
    // ---- the record of a batch in flight (`raw::batch`) ------------ @720
    /// The batch's record block: the block the arena noted before taking
    /// it for the record ([`UNDO_BATCH_PREP`]); its payload words hold the
    /// entries, each block noted there before it is taken.
    pub batch_rec: AtomicU64,
    /// Preparing: the payload word of the record where the arena notes
    /// the next block it takes (`u64::MAX`: the record itself, in
    /// `batch_rec`).
    pub batch_note: AtomicU64,
    /// Preparing: how many entries of the record have their words
    /// written (or zeroed, before their blocks are taken).
    pub batch_covered: AtomicU64,
    /// `arena_used` before the batch took its first block.
    pub batch_used: AtomicU64,
    /// Undoing or finishing: how many of the blocks to free are back on
    /// their free lists.
    pub batch_pushed: AtomicU64,
    /// Finishing: the `arena_used` to set at the end.
    pub batch_used_after: AtomicU64,
    /// Finishing: how many key blocks the record marks to free.
    pub batch_nfree: AtomicU64,
    /// The descriptor of the table `undo_slot` is a slot of (during a
    /// migration, the old table or the new one).
    pub undo_desc: AtomicU64,
    /// The entry a migration step is moving: its old slot + 1 (0: none).
    pub mig_move_from: AtomicU64,
    /// Its new slot.
    pub mig_move_to: AtomicU64,
    /// Bytes at the start of the inactive table region that may hold data
    /// (a migration's retired table), punched a chunk per writer's lock.
    pub spare_dirty: AtomicU64,
    /// Bytes at the start of the inactive table region allocated (and
    /// zero) ahead of the next migration, a chunk per writer's lock; only
    /// once `spare_dirty` is 0.
    pub spare_alloc: AtomicU64,
    // ---- the record of a resize, a migration's start, a clear ------ @816
    /// The table descriptor a resize (or a migration's start) replaces.
    pub rs_from: AtomicU64,
    /// The descriptor it publishes: the resize took effect once `table`
    /// holds it.
    pub rs_to: AtomicU64,
    /// [`RS_AT_ONCE`] or [`RS_STEPWISE`].
    pub rs_kind: AtomicU64,
    /// The `undo_state` of the change around the resize, restored at its
    /// end (a committed single change: [`UNDO_CLEAN`]).
    pub rs_prev: AtomicU64,
    /// LRU maps: `lru_head`, `lru_tail` and `lru_clock` before the
    /// resize rebuilt the list.
    pub rs_lru: [AtomicU64; 3],
    /// A clear: the region its empty table goes in (the active table's).
    pub clear_region: AtomicU64,
    /// A clear: the end of the arena bytes to punch.
    pub clear_arena_end: AtomicU64,
    /// LRU maps: bytes at the start of the inactive region's links
    /// allocated (and zero) ahead, as `spare_alloc` for its slots.
    pub spare_links: AtomicU64,
    _pad4: [u64; 24],
    // ---- arena free lists ------------------------------------------ @1088
    /// Head of each size class's free list (absolute offset, 0 = empty).
    pub free_heads: [AtomicU64; NCLASSES],
    _pad5: [u64; 2],
    // ---- the LRU relink log (`raw::lru`) ---------------------------- @2000
    /// How many stores of the relink in flight `lru_log` holds, or
    /// [`LRU_LOG_DONE`]: the LRU part of the change in flight is whole.
    pub lru_log_n: AtomicU64,
    /// Each store of the relink in flight, logged before it is made:
    /// `[offset << 1 | wide, old value]` (wide: a 64-bit word, else 32).
    pub lru_log: [[AtomicU64; 2]; LRU_LOG_MAX],
    // ---- the record of a string overwritten in place --------------- @2200
    /// The block whose value is being rewritten (`Core::overwrite_in_place`).
    pub inplace_block: AtomicU64,
    /// Its new header word.
    pub inplace_head: AtomicU64,
    /// Its new bytes (at most [`INPLACE_MAX`]).
    pub inplace_bytes: [AtomicU64; INPLACE_MAX / 8],
    // ---- spare, zero ------------------------------------------------ @2280
    _spare: [u64; 262 - 1 - 2 * LRU_LOG_MAX - 2 - INPLACE_MAX / 8],
}

const _: () = assert!(size_of::<Header>() == HEADER_SIZE);
const _: () = assert!(offset_of!(Header, lock) == 256);
const _: () = assert!(offset_of!(Header, seq) == 320);
const _: () = assert!(offset_of!(Header, table) == 384);
const _: () = assert!(offset_of!(Header, arena_alloc) == 392);
const _: () = assert!(offset_of!(Header, size) == 448);
const _: () = assert!(offset_of!(Header, lru_head) == 512);
const _: () = assert!(offset_of!(Header, repair) == 552);
const _: () = assert!(offset_of!(Header, undo_state) == 560);
const _: () = assert!(offset_of!(Header, batch_rec) == 720);
const _: () = assert!(offset_of!(Header, mig_old) == 424);
const _: () = assert!(offset_of!(Header, rs_from) == 816);
const _: () = assert!(offset_of!(Header, lru_log_n) == 2000);
const _: () = assert!(offset_of!(Header, inplace_block) == 2200);

/// `Header::undo_state`: a death needs the walks of the repair (the
/// default, and what every change that keeps no record leaves).
pub const UNDO_WALK: u64 = 0;
/// `Header::undo_state`: the record describes the change in flight.
pub const UNDO_SINGLE: u64 = 1;
/// `Header::undo_state`: a recovery is putting `undo_list` back.
pub const UNDO_RECOVERING: u64 = 2;
/// `Header::undo_state`: a batch is preparing its record (`batch_*`
/// describe the blocks it took).
pub const UNDO_BATCH_PREP: u64 = 3;
/// `Header::undo_state`: a batch that died before its commit is being
/// undone (its blocks pushed back, counted in `batch_pushed`).
pub const UNDO_BATCH_UNPREP: u64 = 4;
/// `Header::undo_state`: a committed batch (`batch_log`) between two of
/// its entries: applying the record again finishes it.
pub const UNDO_BATCH: u64 = 5;
/// `Header::undo_state`: a batch applied to the end, freeing the blocks
/// no entry uses (marked in its record), then the record.
pub const UNDO_BATCH_FINISH: u64 = 6;
/// `Header::undo_state`: a step of a migration is the only change in
/// flight (its move, if any, is in `mig_move_from`): `raw::migrate`.
pub const UNDO_MIGRATE: u64 = 7;
/// `Header::undo_state`: a resize, or the start of a migration, is in
/// flight (`rs_*`): recovery finishes it if it was published, else returns
/// what it built, then goes on with the state in `rs_prev`.
pub const UNDO_RESIZE: u64 = 8;
/// `Header::undo_state`: a clear is in flight (`clear_*`); recovery runs
/// it again.
pub const UNDO_CLEAR: u64 = 9;
/// `Header::undo_state`: the change in flight has made all its stores;
/// recovery only ends the window.
pub const UNDO_CLEAN: u64 = 10;
/// `Header::undo_state`: an LRU promotion on its own is in flight: its
/// relink is rolled back from `lru_log`, nothing else.
pub const UNDO_LRU: u64 = 11;
/// `Header::undo_state`: a string value is being rewritten in its own
/// block (`inplace_*`); recovery writes it again.
pub const UNDO_INPLACE: u64 = 12;
/// The longest string value overwritten in place (its bytes go in the
/// record first).
pub const INPLACE_MAX: usize = 64;
/// The most stores one relink makes (a second chance: the mark, an unlink,
/// a push at the head).
pub const LRU_LOG_MAX: usize = 12;
/// `Header::lru_log_n`: the LRU part of the change in flight is done.
pub const LRU_LOG_DONE: u64 = 1 << 63;
/// `Header::rs_kind`: a resize at once (the old region is punched after).
pub const RS_AT_ONCE: u64 = 1;
/// `Header::rs_kind`: a migration's start (the old table stays, in
/// `mig_old`).
pub const RS_STEPWISE: u64 = 2;
/// `Header::undo_kind`: an insert of an absent key.
pub const UNDO_INSERT: u64 = 1;
/// `Header::undo_kind`: a string value replaced.
pub const UNDO_OVERWRITE: u64 = 2;
/// `Header::undo_kind`: an entry removed.
pub const UNDO_REMOVE: u64 = 3;
/// The most blocks a single change allocates (a key and a value).
pub const UNDO_MAX_ALLOC: usize = 2;
const _: () = assert!(offset_of!(Header, free_heads) == 1088);

impl Header {
    /// Does the record of a single change describe the change in flight
    /// (`undo_state` is [`UNDO_SINGLE`])?
    #[inline(always)]
    pub fn recording(&self) -> bool {
        self.undo_state.load(std::sync::atomic::Ordering::Relaxed) == UNDO_SINGLE
    }

    /// What is wrong with the arena's words, if anything: they must keep
    /// `arena_off <= arena_top <= arena_alloc <= file_size` (`recorded`),
    /// since readers bound every block by `arena_alloc` and map that far.
    pub fn arena_words_problem(&self, arena_off: u64, recorded: u64) -> Option<String> {
        use std::sync::atomic::Ordering::Relaxed;
        let top = self.arena_top.load(Relaxed);
        if top < arena_off || top > recorded {
            return Some(format!("arena_top {top} is out of range"));
        }
        let alloc = self.arena_alloc.load(Relaxed);
        if alloc < top || alloc > recorded {
            return Some(format!("arena_alloc {alloc} is out of range"));
        }
        None
    }

    /// Checksum of the fields written once at creation (identity,
    /// parameters, seed, geometry): catches damage that every range check
    /// would let through, such as a flipped bit in the seed.
    pub fn fixed_sum(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        let words = [
            self.magic.load(Relaxed),
            ((self.variant.load(Relaxed) as u64) << 32) | self.version.load(Relaxed) as u64,
            self.fingerprint.load(Relaxed),
            self.max_entries.load(Relaxed),
            self.max_size.load(Relaxed),
            self.ttl.load(Relaxed),
            self.lru_skip.load(Relaxed),
            self.arena_cap.load(Relaxed),
            self.file_mode.load(Relaxed),
            self.seed.load(Relaxed),
            self.max_cap.load(Relaxed),
            self.region_off[0].load(Relaxed),
            self.region_off[1].load(Relaxed),
            self.arena_off.load(Relaxed),
        ];
        let mut bytes = [0u8; 14 * 8];
        for (i, w) in words.iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        crate::format::hash::hash_bytes(0xf1ed_5a11, &bytes)
    }
}

/// A process slot: the counter indicator and the claim generation.
#[repr(C, align(64))]
pub struct ProcSlot {
    /// Incremented by every claimant; the lock word records it, so a
    /// reused slot is never mistaken for the dead owner.
    pub gen: AtomicU32,
    /// The owner's generation while it is inside a lock-free counter
    /// operation, else 0 (any other value is garbage: see `lock.rs`).
    pub active: AtomicU32,
    _pad: [u64; 7],
}
const _: () = assert!(size_of::<ProcSlot>() == PROC_SLOT_SIZE);

/// A table slot. `meta` is [`EMPTY`], [`TOMB`] or `hash & !3 | FULL`.
#[repr(C)]
pub struct Slot {
    /// State and hash.
    pub meta: AtomicU64,
    /// Integer key, or a string reference (see `arena`).
    pub key: AtomicU64,
    /// Integer value, or a string reference.
    pub val: AtomicU64,
}
const _: () = assert!(size_of::<Slot>() == SLOT_SIZE);

/// The extension word of a slot in a map with LRU or TTL (bytes 24..32):
/// bits 0..32 the expiry in wall-clock seconds (0 = never), bit 32 the LRU
/// "used since it became a candidate" mark that lock-free reads set.
pub const EXT_USED: u64 = 1 << 32;
/// Mask of the expiry in an extension word.
pub const EXT_EXPIRY: u64 = 0xffff_ffff;

/// An LRU list node, one per slot in a parallel array (LRU maps only).
/// The list is derived state: `stamp` (the LRU clock when the entry was
/// last promoted) is primary, and recovery or a resize rebuilds the links
/// by sorting on it.
#[repr(C)]
pub struct Link {
    /// Previous (more recent) slot, or `NIL`.
    pub prev: AtomicU32,
    /// Next (less recent) slot, or `NIL`.
    pub next: AtomicU32,
    /// LRU clock at the last promotion.
    pub stamp: AtomicU64,
}
const _: () = assert!(size_of::<Link>() == 16);

/// "No slot" in LRU links.
pub const NIL: u32 = u32::MAX;

/// `Header::repair`: the counts and the LRU order are still to be rebuilt.
pub const REPAIR_COUNTS: u64 = 2;
/// `Header::repair`: the arena's free lists and usage are still to be rebuilt.
pub const REPAIR_ARENA: u64 = 1;

/// Never used since the table was built (a wide slot's `meta`, a packed
/// slot's control byte).
pub const EMPTY: u64 = 0;
/// Removed; probing continues past it.
pub const TOMB: u64 = 1;
/// Low bits of a full slot's meta; a full packed slot's control byte.
pub const FULL: u64 = 2;
/// A state that is none of the three: a damaged slot (recovery makes it a
/// tombstone).
pub const BAD: u64 = 3;

/// The meta word of a full slot holding a key with this hash.
#[inline(always)]
pub fn full_meta(hash: u64) -> u64 {
    (hash & !3) | FULL
}

/// True if `meta` is a full slot.
#[inline(always)]
pub fn is_full(meta: u64) -> bool {
    meta & 3 == FULL
}

/// Table descriptor helpers: `capacity << 1 | region`.
#[inline(always)]
pub fn table_desc(region: u64, cap: u64) -> u64 {
    (cap << 1) | region
}
/// Region index of a descriptor.
#[inline(always)]
pub fn desc_region(d: u64) -> usize {
    (d & 1) as usize
}
/// Capacity (slots) of a descriptor.
#[inline(always)]
pub fn desc_cap(d: u64) -> u64 {
    d >> 1
}

/// A fingerprint of the layout: sizes and offsets that must agree between
/// the writer of a file and its reader.
pub fn fingerprint() -> u64 {
    let packed = Layout::packed(2, 2);
    let facts: [u64; 19] = [
        packed.per_group as u64,
        packed.pairs_off as u64,
        size_of::<Header>() as u64,
        offset_of!(Header, arena_alloc) as u64,
        offset_of!(Header, lock) as u64,
        offset_of!(Header, seq) as u64,
        offset_of!(Header, table) as u64,
        offset_of!(Header, size) as u64,
        offset_of!(Header, undo_state) as u64,
        offset_of!(Header, batch_rec) as u64,
        offset_of!(Header, mig_old) as u64,
        offset_of!(Header, slot_hwm) as u64,
        offset_of!(Header, free_heads) as u64,
        NSLOTS as u64,
        PROC_SLOT_SIZE as u64,
        SLOT_SIZE as u64,
        NCLASSES as u64,
        crate::format::words::class_size(NCLASSES - 1),
        crate::format::words::BLOCK_HEADER as u64,
    ];
    let mut bytes = Vec::with_capacity(facts.len() * 8);
    for f in facts {
        bytes.extend_from_slice(&f.to_le_bytes());
    }
    crate::format::hash::hash_bytes(0x5eed_f1a9, &bytes)
}

/// The table capacity that holds `n` entries at a load of at most 3/4.
pub fn cap_for(n: u64) -> u64 {
    (n + n / 3 + 2).max(MIN_CAP)
}

/// The largest table capacity of a map for `max_entries`.
pub fn max_cap(max_entries: u64) -> u64 {
    cap_for(max_entries)
}

/// How a table's slots are laid out. Two shapes (DESIGN.md section 3):
///
/// - **wide** slots (`kw == 0`): a [`Slot`] of three words (`meta` with the
///   state and 62 hash bits, `key`, `val`), then with LRU or TTL the
///   extension word: 24 or 32 bytes. Maps with string keys or with LRU/TTL.
/// - **packed** slots (`kw > 0`): plain maps with integer keys. Slots come in
///   groups of one cache line (two for 16-byte pairs): first a control byte
///   per slot ([`EMPTY`], [`TOMB`] or [`FULL`]), then the key/value pairs at
///   the variant's widths (I16 2+2, I32 4+4, II 8+8; a string value is its
///   8-byte reference word). The hash is recomputed from the key, so a
///   lookup reads one group: the same one cache line as a wide slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Packed: bytes of a key (2, 4, 8); 0 for wide slots.
    pub kw: usize,
    /// Packed: bytes of a value (2, 4, 8).
    pub vw: usize,
    /// Wide: bytes per slot (24 or 32). Packed: bytes per key/value pair.
    pub stride: usize,
    /// Packed: offset of the value in a pair.
    pub val_off: usize,
    /// Packed: slots per group (1 for wide slots).
    pub per_group: usize,
    /// Packed: bytes per group (64 or 128).
    pub group_bytes: usize,
    /// Packed: offset of the first pair in a group (after the control bytes).
    pub pairs_off: usize,
    /// Packed: `u64::MAX / per_group + 1`, so that `i / per_group` is
    /// `i * div_m >> 64` (exact for every slot number below 2^58).
    pub div_m: u64,
}

impl Layout {
    /// Wide slots, with the extension word (`ext`) or without.
    pub const fn wide(ext: bool) -> Layout {
        Layout {
            kw: 0,
            vw: 0,
            stride: if ext { SLOT_SIZE + 8 } else { SLOT_SIZE },
            val_off: 0,
            per_group: 1,
            group_bytes: 0,
            pairs_off: 0,
            div_m: 0,
        }
    }

    /// Packed slots for keys of `kw` and values of `vw` bytes (2, 4 or 8).
    pub const fn packed(kw: usize, vw: usize) -> Layout {
        // the value is aligned to its width; the pair to the wider of both
        let val_off = if kw > vw { kw } else { vw };
        let stride = val_off + vw;
        let group_bytes = if stride > 8 { 128 } else { 64 };
        // as many slots as fit beside their control bytes (rounded up to 8)
        let mut per_group = group_bytes / stride;
        while per_group.div_ceil(8) * 8 + per_group * stride > group_bytes {
            per_group -= 1;
        }
        Layout {
            kw,
            vw,
            stride,
            val_off,
            per_group,
            group_bytes,
            pairs_off: per_group.div_ceil(8) * 8,
            div_m: u64::MAX / per_group as u64 + 1,
        }
    }

    /// The layout of a variant's tables: packed for a plain map with
    /// integer keys (`key_bytes`/`val_bytes` are 0 for strings), else wide.
    pub const fn of(key_bytes: usize, val_bytes: usize, ext: bool) -> Layout {
        if ext || key_bytes == 0 {
            Layout::wide(ext)
        } else {
            Layout::packed(key_bytes, if val_bytes == 0 { 8 } else { val_bytes })
        }
    }

    /// True for packed slots.
    #[inline(always)]
    pub const fn is_packed(&self) -> bool {
        self.kw != 0
    }

    /// True if the slots carry extension words (wide slots with LRU/TTL).
    #[inline(always)]
    pub const fn has_ext(&self) -> bool {
        self.kw == 0 && self.stride > SLOT_SIZE
    }

    /// Bytes of a table of `cap` slots.
    pub const fn bytes(&self, cap: u64) -> u64 {
        if self.is_packed() {
            cap.div_ceil(self.per_group as u64) * self.group_bytes as u64
        } else {
            cap * self.stride as u64
        }
    }
}

/// Where each part of a file with these parameters lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// The largest capacity (slots).
    pub max_cap: u64,
    /// How the slots are laid out.
    pub lay: Layout,
    /// True if the regions carry an LRU link array after the slots.
    pub lru: bool,
    /// Offsets of regions A and B.
    pub region_off: [u64; 2],
    /// Offset of the arena.
    pub arena_off: u64,
}

/// The page size the layout rounds to.
pub const PAGE: u64 = 4096;

/// `x` rounded up to a whole page.
pub fn page_up(x: u64) -> u64 {
    x.div_ceil(PAGE) * PAGE
}

impl Geometry {
    /// The geometry of a map for `max_entries`, with LRU and/or TTL, whose
    /// keys and values are `key_bytes`/`val_bytes` wide (0: strings).
    /// A region holds `max_cap` slots, then (LRU) `max_cap` links.
    pub fn new(
        max_entries: u64,
        lru: bool,
        ttl: bool,
        key_bytes: usize,
        val_bytes: usize,
    ) -> Geometry {
        let l = max_cap(max_entries);
        let lay = Layout::of(key_bytes, val_bytes, lru || ttl);
        let mut g = Geometry {
            max_cap: l,
            lay,
            lru,
            region_off: [0, 0],
            arena_off: 0,
        };
        let region = page_up(lay.bytes(l) + g.links_bytes(l));
        let a = page_up(SLOTS_OFF + (NSLOTS * PROC_SLOT_SIZE) as u64);
        g.region_off = [a, a + region];
        g.arena_off = a + 2 * region;
        g
    }

    /// Bytes of the LRU links of a table of `cap` slots (0 without LRU).
    pub fn links_bytes(&self, cap: u64) -> u64 {
        if self.lru {
            size_of::<Link>() as u64 * cap
        } else {
            0
        }
    }

    /// Offset of the link array inside a region (after the slots).
    pub fn links_off(&self) -> u64 {
        self.lay.bytes(self.max_cap)
    }

    /// Bytes in one table region.
    pub fn region_bytes(&self) -> u64 {
        self.region_off[1] - self.region_off[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_groups_fill_their_cache_lines() {
        // (key, value) bytes -> slots per group, group bytes, pairs offset, pair bytes
        for (kw, vw, per, gb, off, stride) in [
            (2, 2, 12, 64, 16, 4),
            (4, 4, 7, 64, 8, 8),
            (8, 8, 7, 128, 8, 16),
            (2, 8, 7, 128, 8, 16),
            (4, 8, 7, 128, 8, 16),
        ] {
            let l = Layout::packed(kw, vw);
            assert_eq!(
                (l.per_group, l.group_bytes, l.pairs_off, l.stride),
                (per, gb, off, stride),
                "{kw}+{vw}"
            );
            assert!(l.pairs_off >= l.per_group && l.pairs_off + per * stride <= gb);
            assert_eq!(l.val_off % vw, 0, "the value is aligned");
            assert_eq!(l.bytes(per as u64 + 1), 2 * gb as u64);
        }
        assert_eq!(Layout::of(0, 8, false), Layout::wide(false));
        assert_eq!(Layout::of(8, 8, true), Layout::wide(true));
        assert_eq!(Layout::of(2, 0, false), Layout::packed(2, 8));
    }

    #[test]
    fn the_group_division_is_exact() {
        for per in [7u64, 12] {
            let m =
                Layout::packed(if per == 12 { 2 } else { 4 }, if per == 12 { 2 } else { 4 }).div_m;
            let check =
                |i: u64| assert_eq!(((i as u128 * m as u128) >> 64) as u64, i / per, "{i}/{per}");
            (0..1_000_000).for_each(check);
            for i in [u32::MAX as u64, (1 << 40) - 1, (1 << 40) + 3, (1 << 58) - 1] {
                check(i);
            }
        }
    }
}

//! An open map file, untyped: opening and validating it, the mapping, the
//! writer protocol and the sequence, and the table maintenance every
//! variant shares (placing and removing entries, resizing).

use crate::error::{Error, Result};
use crate::format::layout::{
    self, cap_for, desc_cap, desc_region, table_desc, Geometry, Header, ProcSlot, EMPTY,
    HEADER_SIZE, INPLACE_MAX, LRU_LOG_DONE, LRU_LOG_MAX, MAGIC, MIN_CAP, RS_AT_ONCE, RS_STEPWISE,
    SLOTS_OFF, TOMB, UNDO_CLEAN, UNDO_CLEAR, UNDO_INPLACE, UNDO_INSERT, UNDO_LRU, UNDO_MIGRATE,
    UNDO_REMOVE, UNDO_RESIZE, UNDO_SINGLE, UNDO_WALK, VERSION,
};
use crate::format::words::is_inline;
use crate::os::region::{Kind, Opened, Region, Source};
use crate::raw::arena::StoreError;
use crate::raw::lru::Nodes;
use crate::raw::migrate;
use crate::raw::table::{Dyn, Probe, Shape, Table};
use crate::raw::types::{
    wait_timeout_from_secs, Info, Params, Status, Variant, DEFAULT_ARENA_RESERVE,
};
use crate::sync::lock::{self, Me, Slots};
use crate::sync::seqlock::{write_begin, write_end};
use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering::*};

/// The least arena address space a handle maps: arenas below it never
/// need a remap.
const MIN_ARENA_MAP: u64 = 64 << 20;

/// Arena bytes to map for an arena of `bytes`: four times that (so that a
/// growing arena is remapped O(log n) times), at least [`MIN_ARENA_MAP`],
/// at most the arena's `limit`.
fn arena_map_len(bytes: u64, limit: u64) -> u64 {
    bytes.saturating_mul(4).max(MIN_ARENA_MAP).min(limit)
}

/// Arena bytes allocated when a map is created.
const INITIAL_ARENA: u64 = 64 << 10;

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
    pub(crate) max_entries: u64,
    variant: Variant,
    pub(crate) me: Me,
    /// Keys / values are byte strings (they own arena blocks).
    pub(crate) kb: bool,
    pub(crate) vb: bool,
    /// LRU eviction is on (`max_size > 0`).
    pub(crate) lru_on: bool,
    /// An LRU map whose tables migrate ([`Core::lru_migrates`]).
    lru_tagged: bool,
    /// The capacity from which a table's region (slots, and LRU links)
    /// may reach `migrate::SPARE_MIN` bytes: below it, a writer's lock
    /// has no spare region to tend ([`Core::between_changes`]).
    spare_gate: u64,
    /// Expiry is on (`ttl > 0`).
    pub(crate) ttl_on: bool,
    pub(crate) max_size: u64,
    pub(crate) ttl_default: u64,
    pub(crate) lru_skip: u64,
    /// Opened with `new_readonly`: mapped PROT_READ, never writes a byte.
    pub(crate) readonly: bool,
    /// `each`: the hash of the last entry returned (None: at the start).
    pub(crate) iter: Option<u64>,
    /// How long a wait on another live process may see no progress.
    pub(crate) wait_timeout: std::time::Duration,
    /// Where the last quick attempt (`Map::counter_quick`) that found its
    /// integer key missing would insert it, for the full operation that
    /// follows ([`Core::take_vacancy`]).
    pub(crate) vacancy: std::cell::Cell<Option<Vacancy>>,
}

/// Where a missing integer key goes, as a quick attempt found it with no
/// writer active: the sequence and the table it saw, and the slot its
/// unsuccessful probe ended on. Under the writer lock, the same sequence
/// and table mean that no change came in between (every change of the
/// table makes the sequence odd and even again), so the insert of that
/// key takes the slot without probing again ([`Core::unchanged_since`]).
#[derive(Clone, Copy)]
pub(crate) struct Vacancy {
    pub(crate) key: i64,
    pub(crate) seq: u64,
    pub(crate) desc: u64,
    pub(crate) slot: usize,
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

/// The LRU words a resize's rebuild changes: `lru_head`, `lru_tail`,
/// `lru_clock` (saved in `Header::rs_lru`).
fn lru_words(h: &Header) -> [&AtomicU64; 3] {
    [&h.lru_head, &h.lru_tail, &h.lru_clock]
}

/// Copy each word of `from` into the word of `to` at the same place.
fn copy_words<'a>(
    from: impl IntoIterator<Item = &'a AtomicU64>,
    to: impl IntoIterator<Item = &'a AtomicU64>,
) {
    for (f, t) in from.into_iter().zip(to) {
        t.store(f.load(Relaxed), Relaxed);
    }
}

/// Allocate the file blocks of a table of `cap` slots in region `r`
/// (and of its LRU links) before it is built there, and map the table's
/// pages into this process at once (its build touches every one).
pub(crate) fn allocate_table(region: &Region, geo: &Geometry, r: usize, cap: u64) -> Result<()> {
    let off = geo.region_off[r];
    region.allocate(off, geo.lay.bytes(cap))?;
    region.populate(off, geo.lay.bytes(cap));
    if geo.lru {
        region.allocate(off + geo.links_off(), geo.links_bytes(cap))?;
    }
    Ok(())
}

/// Claim a process slot for a new handle (or a forked child), allocating
/// the slot table's file blocks a page at a time before any slot on them is
/// written, so that a full file system fails the open, not a later store.
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
    /// The map's expiry settings.
    #[inline(always)]
    pub(crate) fn ttl(&self) -> crate::raw::ttl::Ttl {
        crate::raw::ttl::Ttl {
            on: self.ttl_on,
            default: self.ttl_default,
        }
    }

    /// The map's string arena, as this handle sees it.
    #[inline(always)]
    pub(crate) fn arena(&self) -> crate::raw::arena::Arena<'_> {
        crate::raw::arena::Arena {
            hdr: self.hdr(),
            region: &self.region,
            base: self.base,
            off: self.arena_off,
            cap: self.arena_cap,
            reserve: self.arena_reserve,
            limit: self.arena_limit,
        }
    }

    /// Store a string in the arena; returns its reference word. Writer
    /// lock held. When the arena has room beyond this handle's mapping,
    /// answers `Full` having changed nothing and records the end it needs,
    /// so the operation runs again after the remap ([`Core::remap_pending`]).
    pub(crate) fn str_store(
        &mut self,
        b: &[u8],
        utf8: bool,
    ) -> std::result::Result<u64, StoreError> {
        match self.arena().store(b, utf8) {
            Err(StoreError::Remap(end)) => {
                self.remap_want = end;
                Err(StoreError::Full)
            }
            r => r,
        }
    }

    /// The tables an LRU list runs through, by region: the active one
    /// and, during a migration, the old one.
    pub(crate) fn lru_tables(&self) -> [Option<Table>; 2] {
        let mut tables = [None, None];
        if let Some(t) = self.active() {
            tables[desc_region(t.desc())] = Some(t);
        }
        if let Some((old, _)) = self.migrating_as::<Dyn>() {
            tables[desc_region(old.desc())] = Some(old);
        }
        tables
    }

    /// The map's LRU list, over the active table and, during a
    /// migration, the old one.
    pub(crate) fn lru(&self) -> crate::raw::lru::Lru<'_> {
        self.lru_with(&self.lru_tables())
    }

    /// [`Core::lru`] over `tables` ([`Core::lru_tables`]).
    fn lru_with(&self, tables: &[Option<Table>; 2]) -> crate::raw::lru::Lru<'_> {
        let plain = desc_region(self.hdr().table.load(Relaxed));
        self.lru_over(
            tables.map(|t| t.map_or(Nodes::NONE, |t| Nodes::of(&t))),
            plain,
        )
    }

    /// [`Core::lru`] for a relink of a slot of `t`, a table of the map:
    /// outside a migration, `t` is the active table (what `Core::lru`
    /// would look up again).
    #[inline(always)]
    pub(crate) fn lru_of<S: Shape>(&self, t: &Table<S>) -> crate::raw::lru::Lru<'_> {
        if self.hdr().mig_old.load(Acquire) != 0 {
            return self.lru();
        }
        let plain = desc_region(t.desc());
        let mut nodes = [Nodes::NONE; 2];
        nodes[plain] = Nodes::of(t);
        self.lru_over(nodes, plain)
    }

    #[inline(always)]
    fn lru_over(&self, nodes: [Nodes; 2], plain: usize) -> crate::raw::lru::Lru<'_> {
        crate::raw::lru::Lru::new(
            self.hdr(),
            self.lru_skip,
            self.ttl(),
            nodes,
            self.lru_migrates(),
            plain,
        )
    }

    /// The table and slot of an LRU node id (`raw::lru`), if it names one.
    pub(crate) fn lru_node(&self, id: u32) -> Option<(Table, usize)> {
        let tables = self.lru_tables();
        self.node_in(&tables, id)
    }

    /// [`Core::lru_node`] over `tables` ([`Core::lru_tables`]).
    fn node_in(&self, tables: &[Option<Table>; 2], id: u32) -> Option<(Table, usize)> {
        let (r, i) = self.lru_with(tables).node(id)?;
        Some((tables[r]?, i))
    }

    /// An LRU map's list for a migration's moves, whose stores keep no
    /// log (a move's record is their repair): None without LRU.
    fn lru_unlogged(&self) -> Option<crate::raw::lru::Lru<'_>> {
        self.lru_on.then(|| self.lru().unlogged())
    }

    /// An LRU map whose tables migrate: its links name their region
    /// (`raw::lru`), which takes bit 31 of a node id, so its largest
    /// table must have fewer slots than that (`NIL` is all ones).
    #[inline(always)]
    pub(crate) fn lru_migrates(&self) -> bool {
        self.lru_tagged
    }

    /// Start an LRU promotion on its own (before its window): a death in
    /// it rolls its relink back, and that is all (`UNDO_LRU`).
    pub(crate) fn lru_begin(&self) {
        let h = self.hdr();
        h.lru_log_n.store(0, Relaxed);
        h.undo_state.store(UNDO_LRU, Release);
    }

    /// Roll back the relink a dead writer was making (see `raw::lru`): the
    /// logged words get their old values, last first. Only words a relink
    /// stores to are written (the list ends and clock, the table regions);
    /// anything else in the log is a damaged file's, and skipped.
    pub(crate) fn lru_rollback(&self) {
        let h = self.hdr();
        let n = h.lru_log_n.load(Acquire);
        if n == LRU_LOG_DONE || n == 0 {
            return;
        }
        let words = |w: &AtomicU64| w as *const AtomicU64 as u64 - self.base as u64;
        let ends = words(&h.lru_head)..words(&h.lru_clock) + 8;
        // (the regions of the list's tables only, the active one's and
        // during a migration the old one's: a relink stores nowhere else,
        // and a retired region's holes must not be written)
        let region = |d: u64| {
            let r = self.geo.region_off[desc_region(d)];
            r..r + self.geo.region_bytes()
        };
        let tables = region(h.table.load(Relaxed));
        let retiring = self.migrating_as::<Dyn>().map(|(t, _)| region(t.desc()));
        for j in (0..(n as usize).min(LRU_LOG_MAX)).rev() {
            let (w, old) = (h.lru_log[j][0].load(Relaxed), h.lru_log[j][1].load(Relaxed));
            let (off, wide) = (w >> 1, w & 1 == 1);
            let len = if wide { 8 } else { 4 };
            let inside =
                |r: &std::ops::Range<u64>| off >= r.start && off.saturating_add(len) <= r.end;
            if off % len != 0
                || !(inside(&ends) || inside(&tables) || retiring.as_ref().is_some_and(inside))
            {
                continue;
            }
            if wide {
                self.word_at(off).store(old, Relaxed);
            } else {
                // SAFETY: a 4-aligned offset inside a table region.
                unsafe { &*(self.ptr_at(off) as *const std::sync::atomic::AtomicU32) }
                    .store(old as u32, Relaxed);
            }
            crate::fault::point();
        }
        h.lru_log_n.store(0, Release);
        crate::fault::point();
    }

    /// After a recovery settled the record of a single change on an LRU
    /// map (`committed`: it was published in slot `i` of `t`), make the
    /// relink it had not finished: an insert links its slot at the head, a
    /// removal unlinks it. The relink it was making was rolled back first.
    pub(crate) fn lru_redo(&self, t: &Table, kind: u64, i: usize, committed: bool) {
        let h = self.hdr();
        if !self.lru_on || !committed || h.lru_log_n.load(Acquire) == LRU_LOG_DONE {
            return;
        }
        if i >= t.cap() {
            return;
        }
        let lru = self.lru_of(t);
        match kind {
            UNDO_INSERT => lru.push_head(t, i),
            UNDO_REMOVE => lru.unlink(t, i),
            _ => {}
        }
        lru.end(true);
    }

    /// On an LRU map at `max_size`, evict one entry (never slot `keep`) as
    /// a single change of its own (writer lock held, sequence odd); `idle`:
    /// the state after it.
    pub(crate) fn make_lru_room(&mut self, now: u32, idle: u64, keep: Option<usize>) {
        if !self.lru_on || self.hdr().size.load(Relaxed) < self.max_size {
            return;
        }
        let Some(t) = self.active() else { return };
        let keep = keep.map(|i| crate::raw::lru::node_id(self.lru_migrates(), &t, i));
        self.undo_begin_in(UNDO_REMOVE, idle);
        self.evict_one(now, keep);
        self.hdr().undo_state.store(idle, Release);
    }

    /// An LRU insert at `max_size`, before its record starts (writer lock
    /// held, sequence odd): the entry its eviction will take is brought to
    /// the tail first. These are the second chances of marked tails
    /// (relinks only, each logged, in state `UNDO_LRU`: a death in them
    /// loses nothing), so that the eviction after the insert takes the
    /// entry an eviction before it would have, and the list ends in the
    /// same order. Opens the window, the state set first (a death before
    /// the first relink then needs no repair at all).
    pub(crate) fn ready_victim(&mut self, now: u32) {
        self.hdr().undo_state.store(UNDO_LRU, Release);
        self.seq_begin();
        crate::fault::point();
        let _ = self.lru().victim(now, None);
    }

    /// The eviction of an LRU insert at `max_size`, once its entry is in
    /// slot `new` (sequence still odd): the insert's record is done, the
    /// eviction keeps one of its own. A put that fails before its entry is
    /// in evicts nothing; a writer that dies after it leaves one entry over
    /// `max_size`, which the next lock evicts ([`Core::evict_excess`]): the
    /// put then happened entirely. The new entry is never the victim (a
    /// read that marks every other entry meanwhile, as a lock-free one may,
    /// would otherwise bring it to the tail of a map of `max_size` 1).
    pub(crate) fn evict_after_insert(&mut self, now: u32, new: usize) {
        self.hdr().undo_state.store(UNDO_CLEAN, Release);
        crate::fault::point();
        crate::fault::at("an LRU insert's eviction");
        self.make_lru_room(now, UNDO_CLEAN, Some(new));
    }

    /// The eviction an LRU insert at `max_size` did not make because its
    /// writer died after its entry was in (see
    /// [`Core::evict_after_insert`]): with the map one entry over
    /// `max_size`, evict one, a change of its own in a window of its own
    /// (writer lock held, counts true, no change in flight). A count
    /// further over is a damaged file's, not evicted for.
    #[cold]
    #[inline(never)]
    pub(crate) fn evict_excess(&mut self) {
        if self.hdr().size.load(Relaxed) != self.max_size + 1 {
            return;
        }
        let now = self.now();
        self.seq_begin();
        self.make_lru_room(now, UNDO_CLEAN, None);
        self.seq_end();
    }

    /// Evict one entry, never node `keep` (an LRU node id), to make room
    /// (writer lock held, seq odd): during a migration, from either table.
    /// An expired victim counts in `stat_expired`, any other in
    /// `stat_evictions`.
    pub(crate) fn evict_one(&mut self, now: u32, keep: Option<u32>) {
        let tables = self.lru_tables();
        let lru = self.lru_with(&tables);
        let victim = lru.victim(now, keep);
        if let Some((t, i)) = victim.and_then(|id| self.node_in(&tables, id)) {
            if !t.is_full(i) {
                // a damaged list (a hostile file): derive it again (its
                // stores keep no log: a death in it needs the walks)
                self.hdr().undo_state.store(UNDO_WALK, Relaxed);
                lru.rebuild(tables);
                return;
            }
            let expired = self.ttl().expired(t.ext(i).load(Relaxed), now);
            self.remove_slot(&t, i);
            let h = self.hdr();
            let counter = if expired {
                &h.stat_expired
            } else {
                &h.stat_evictions
            };
            counter.fetch_add(1, Relaxed);
            crate::fault::point();
        }
    }

    /// Check the LRU list against the table: every full slot exactly once,
    /// links consistent both ways. Returns the list length.
    pub fn check_lru(&self) -> std::result::Result<usize, String> {
        if self.table_of(self.hdr().table.load(Acquire)).is_none() {
            return Err("table descriptor is invalid".into());
        }
        if !self.lru_on {
            return Ok(0);
        }
        let order = self.lru().walk()?;
        let full: usize = self
            .lru_tables()
            .iter()
            .flatten()
            .map(|t| (0..t.cap()).filter(|&i| t.is_full(i)).count())
            .sum();
        let mut seen = std::collections::HashSet::new();
        for &id in &order {
            let fine = self.lru_node(id).is_some_and(|(t, i)| t.is_full(i));
            if !seen.insert(id) || !fine {
                return Err(format!("LRU node {id:#x} is listed twice or is not full"));
            }
        }
        if order.len() != full {
            return Err(format!(
                "LRU list has {} entries, the table {full}",
                order.len()
            ));
        }
        Ok(order.len())
    }

    /// The table a descriptor names, or None if the descriptor is invalid.
    #[inline(always)]
    pub(crate) fn table_of(&self, desc: u64) -> Option<Table> {
        self.table_as::<Dyn>(desc)
    }

    /// As [`Core::table_of`], seen through a shape that a caller knows at
    /// compile time (the variant, and whether the map is plain): the layout
    /// is a constant and the slot accessors' branches and strides fold
    /// away, which the hot paths need (a runtime stride in the probe loop
    /// cost plain-map lookups a third of their time). `S` must give this
    /// map's layout.
    #[inline(always)]
    pub(crate) fn table_as<S: Shape>(&self, desc: u64) -> Option<Table<S>> {
        debug_assert!(S::LAY.is_none_or(|l| l == self.geo.lay));
        let lay = S::LAY.unwrap_or(self.geo.lay);
        let cap = layout::desc_cap(desc);
        if !(layout::MIN_CAP..=self.geo.max_cap).contains(&cap) {
            return None;
        }
        let off = self.geo.region_off[layout::desc_region(desc)];
        let links = if lay.has_ext() && self.geo.lru {
            self.ptr_at(off + self.geo.links_off()) as *const layout::Link
        } else {
            std::ptr::null()
        };
        // SAFETY: the region at `off` holds a table of `cap` slots of this
        // layout (cap is within max_cap, for which the region was sized),
        // and its links, inside the mapping.
        Some(unsafe { Table::new(self.ptr_at(off), cap as usize, lay, self.seed, links, desc) })
    }

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
        if let Some(e) = h.arena_words_problem(geo.arena_off, recorded) {
            return corrupt(e);
        }
        let d = h.table.load(Relaxed);
        if !(MIN_CAP..=geo.max_cap).contains(&desc_cap(d)) {
            return corrupt(format!("table descriptor {d:#x} is invalid"));
        }
        // (an LRU insert at max_size is one over until its eviction, in
        // the same window: another process may open the map meanwhile, or
        // after the writer died there: `Core::evict_after_insert`)
        if h.size.load(Relaxed) > p.max_entries + (p.max_size > 0) as u64 {
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
            lru_tagged: geo.lru && geo.max_cap < (1 << 31) - 1,
            // (no slot is larger than 32 bytes, nor its LRU link than 16)
            spare_gate: migrate::SPARE_MIN / if geo.lru { 48 } else { 32 },
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
            vacancy: std::cell::Cell::new(None),
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
    pub(crate) fn slots(&self) -> Slots {
        // SAFETY: the slot table is mapped for the life of `self`, and the
        // Slots value never outlives the call it is made for.
        unsafe { Slots::new(self.base.add(SLOTS_OFF as usize) as *const ProcSlot) }
    }

    /// Map the arena as far as its allocated part (`arena_alloc`: every
    /// block lies below it), if other processes grew it past this handle's
    /// mapping. One load of a word on the line with `table`, which the
    /// read needs anyway; `arena_top`, which every new block moves, is
    /// not on it. Call only where no pointer into the mapping is held: the
    /// mapping may move.
    #[inline(always)]
    pub(crate) fn cover_arena(&mut self) -> Result<()> {
        let end = self.hdr().arena_alloc.load(Acquire);
        if end > self.arena_off + self.arena_reserve {
            self.grow_mapping(end)?;
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

    pub(crate) fn damaged(&self) -> Error {
        Error::new(format!(
            "{}: corrupt map: the table descriptor is invalid",
            self.region.path()
        ))
    }

    // ---- process identity and the writer protocol ------------------------

    /// After `fork`, give this handle its own file description and slot.
    #[inline(always)]
    pub(crate) fn ensure_me(&mut self) -> Result<()> {
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

    /// True once the map is frozen (always for a read-only handle).
    #[inline(always)]
    pub fn frozen(&self) -> bool {
        self.readonly || self.hdr().frozen.load(Acquire) != 0
    }

    pub(crate) fn frozen_error(&self) -> Error {
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

    /// The vacancy a quick attempt left for integer key `key`, if it was
    /// the last one's (taken: it serves one operation).
    #[inline(always)]
    pub(crate) fn take_vacancy(&self, key: i64) -> Option<Vacancy> {
        self.vacancy.take().filter(|v| v.key == key)
    }

    /// Under the writer lock: true if the map is as `at` found it (the
    /// same sequence and table, no extension words), so that its slot is
    /// still where its key goes.
    #[inline(always)]
    pub(crate) fn unchanged_since(&self, at: Vacancy) -> bool {
        let h = self.hdr();
        self.plain() && h.seq.load(Relaxed) == at.seq && h.table.load(Relaxed) == at.desc
    }

    /// The file's path (None for anonymous and memfd maps).
    pub fn file_path(&self) -> Option<&str> {
        matches!(self.region.kind(), Kind::File | Kind::ReadOnly).then(|| self.region.path())
    }

    /// Publish an empty minimum-size table in the inactive region. Fails,
    /// changing nothing, when the file system has no room for its page.
    pub(crate) fn publish_empty(&mut self) -> Result<()> {
        let hdr = self.hdr();
        let d = hdr.table.load(Relaxed);
        let other = 1 - desc_region(d) as u64;
        let region_bytes = self.geo.region_bytes();
        hdr.spare_dirty.store(0, Relaxed);
        hdr.spare_alloc.store(0, Relaxed);
        hdr.spare_links.store(0, Relaxed);
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

    // ---- table maintenance (writer lock held) ----------------------------

    /// Rebuild the table at `cap` slots in the other region and publish it,
    /// seeing the tables through shape `S` (a constant layout where the
    /// caller knows it: the rebuild loop runs per slot). Fails, changing
    /// nothing, when the file system has no room for it.
    pub(crate) fn resize_as<S: Shape>(&mut self, cap: u64) -> Result<()> {
        let hdr = self.hdr();
        let d = hdr.table.load(Relaxed);
        let old = self.table_as::<S>(d).expect("validated table");
        let other = 1 - desc_region(d);
        self.resize_begin(d, table_desc(other as u64, cap), RS_AT_ONCE);
        let rb = self.geo.region_bytes();
        // both regions are punched whole: nothing is left to tend
        hdr.spare_dirty.store(0, Relaxed);
        hdr.spare_alloc.store(0, Relaxed);
        hdr.spare_links.store(0, Relaxed);
        self.region.punch(self.geo.region_off[other], rb);
        crate::fault::point();
        if let Err(e) = allocate_table(&self.region, &self.geo, other, cap) {
            // Return whatever part of it was allocated: the disk is full.
            self.region.punch(self.geo.region_off[other], rb);
            self.resize_end(false);
            return Err(e);
        }
        let new = self
            .table_as::<S>(table_desc(other as u64, cap))
            .expect("capacity within range");
        let lru_on = self.lru_on;
        old.for_each_full(|i, m, k, v| {
            let ext = if old.has_ext() {
                old.ext(i).load(Relaxed)
            } else {
                0
            };
            let j = new.place(m, k, v, ext);
            if let (Some(j), true) = (j, lru_on) {
                new.link(j)
                    .stamp
                    .store(old.link(i).stamp.load(Relaxed), Relaxed);
            }
        });
        if self.lru_on {
            let mut tables = [None, None];
            tables[other] = Some(new.erase());
            self.lru().rebuild(tables);
        }
        hdr.table.store(table_desc(other as u64, cap), Release);
        crate::fault::point();
        hdr.tombstones.store(0, Relaxed);
        crate::fault::point();
        self.region.punch(self.geo.region_off[1 - other], rb);
        crate::fault::point();
        self.resize_end(true);
        Ok(())
    }

    // ---- the record of a resize (`Header::rs_*`) ---------------------------
    //
    // A resize at once, or a migration's start, builds its table in the
    // inactive region and publishes it with one store of `table`; until
    // then the old table is untouched. The record names both descriptors,
    // so a recovery reads from `table` whether the resize took effect:
    // if so it finishes it (no tombstones, the old region punched), else it
    // punches what was built and puts the LRU words back. Either way in
    // constant time; then it goes on with the record of the change around
    // the resize (an insert that grows, a remove that shrinks), which the
    // resize set aside in `rs_prev`.

    /// Start the record of a resize of the active table `from` into `to`
    /// (`kind`: [`RS_AT_ONCE`] or [`RS_STEPWISE`]), before its first store.
    fn resize_begin(&self, from: u64, to: u64, kind: u64) {
        let h = self.hdr();
        let prev = match h.undo_state.load(Relaxed) {
            // a committed single change has made all its stores: a resize
            // comes before an insert's commit, after a removal's end
            UNDO_SINGLE if h.undo_slot.load(Relaxed) != u64::MAX => UNDO_CLEAN,
            UNDO_RESIZE | UNDO_CLEAR => UNDO_WALK,
            s => s,
        };
        h.rs_prev.store(prev, Relaxed);
        h.rs_from.store(from, Relaxed);
        h.rs_to.store(to, Relaxed);
        h.rs_kind.store(kind, Relaxed);
        if self.lru_on {
            copy_words(lru_words(h), &h.rs_lru);
        }
        h.undo_state.store(UNDO_RESIZE, Release);
        crate::fault::point();
    }

    /// The end of a resize, `published` or given up: back to the record of
    /// the change around it. An insert not yet committed, if undone, now
    /// leaves the new table, which has no tombstones.
    fn resize_end(&self, published: bool) {
        let h = self.hdr();
        let prev = h.rs_prev.load(Relaxed);
        if published && prev == UNDO_SINGLE {
            h.undo_tombs[0].store(0, Relaxed);
            crate::fault::point();
        }
        h.undo_state.store(prev, Release);
        crate::fault::point();
    }

    /// Repair a resize a writer died in (`UNDO_RESIZE`), from its record:
    /// see above. Writer lock held, sequence odd.
    pub(crate) fn recover_resize(&mut self) {
        let h = self.hdr();
        let (from, to, kind) = (
            h.rs_from.load(Relaxed),
            h.rs_to.load(Relaxed),
            h.rs_kind.load(Relaxed),
        );
        let active = h.table.load(Acquire);
        let published = active == to;
        let rb = self.geo.region_bytes();
        if self.is_migrating() && !(published && kind == RS_STEPWISE) {
            // a resize never starts during a migration: a garbled record,
            // which must not punch the old table's region
            h.undo_state.store(UNDO_WALK, Release);
            return;
        }
        // (a region is punched only if the active table is not in it)
        let punch = |desc: u64| {
            if desc_region(desc) != desc_region(active) {
                self.region
                    .punch(self.geo.region_off[desc_region(desc)], rb);
            }
        };
        h.spare_dirty.store(0, Relaxed);
        h.spare_alloc.store(0, Relaxed);
        h.spare_links.store(0, Relaxed);
        if published {
            h.tombstones.store(0, Relaxed);
            crate::fault::point();
            if kind == RS_AT_ONCE {
                punch(from);
                crate::fault::point();
            }
        } else {
            if kind == RS_STEPWISE {
                h.mig_old.store(0, Relaxed);
                crate::fault::point();
            }
            if self.lru_on {
                copy_words(&h.rs_lru, lru_words(h));
                crate::fault::point();
            }
            punch(to);
            crate::fault::point();
        }
        self.resize_end(published);
    }

    // ---- a string value overwritten in place (`Header::inplace_*`) ------

    /// Overwrite the string value in block `w` with `b` where it is, if `b`
    /// needs the block's own size class and is at most `INPLACE_MAX`
    /// bytes, and longer than an inline string (writer lock held, no
    /// change in flight): no block is taken or freed, no free list or
    /// count changes. The record (the block, its new header and bytes) is
    /// written before the window opens; recovery writes them again, so a
    /// death leaves the new value whole, and readers (whose window is odd
    /// meanwhile) never keep a torn one. False: not done, nothing changed.
    pub(crate) fn overwrite_in_place(&mut self, w: u64, b: &[u8], utf8: bool) -> bool {
        let Some(class) = self.inplace_class(w, b.len()) else {
            return false;
        };
        let arena = self.arena();
        let h = self.hdr();
        let head = crate::format::words::block_header(b.len(), class, utf8);
        h.inplace_block.store(w, Relaxed);
        h.inplace_head.store(head, Relaxed);
        // SAFETY: `inplace_bytes` holds INPLACE_MAX >= b.len() bytes; only
        // writers (this one holds the lock) and recovery read them.
        unsafe {
            std::ptr::copy_nonoverlapping(b.as_ptr(), h.inplace_bytes.as_ptr() as *mut u8, b.len())
        };
        h.undo_state.store(UNDO_INPLACE, Release);
        crate::fault::point();
        self.seq_begin();
        arena.rewrite(w, head, b);
        self.seq_end();
        true
    }

    /// The size class of the live block `w` if a string of `len` bytes
    /// can be rewritten in it: longer than an inline string, at most
    /// `INPLACE_MAX`, and of the block's own class.
    fn inplace_class(&self, w: u64, len: usize) -> Option<usize> {
        use crate::format::words::{class_for, BLOCK_HEADER};
        if len <= 7 || len > INPLACE_MAX || is_inline(w) {
            return None;
        }
        let class = self.arena().live_class(w)?;
        (class_for((len + BLOCK_HEADER) as u64) == Some(class)).then_some(class)
    }

    /// Write an overwrite in place again from its record (recovery; see
    /// [`Core::overwrite_in_place`]). A record that names no live block of
    /// its header's class, or too many bytes, writes nothing.
    pub(crate) fn inplace_redo(&self) {
        let h = self.hdr();
        let (w, head) = (h.inplace_block.load(Relaxed), h.inplace_head.load(Relaxed));
        let len = (head & 0xffff_ffff) as usize;
        if self.inplace_class(w, len) != Some(((head >> 32) & 0xff) as usize) {
            return;
        }
        let arena = self.arena();
        let mut bytes = [0u8; INPLACE_MAX];
        for (j, c) in bytes.chunks_mut(8).enumerate() {
            c.copy_from_slice(&h.inplace_bytes[j].load(Relaxed).to_le_bytes());
        }
        arena.rewrite(w, head, &bytes[..len]);
    }

    /// Mark the change in flight as having made all its stores (a death
    /// from here to the next record needs no repair but the window's end).
    pub(crate) fn undo_clean(&self) {
        self.hdr().undo_state.store(UNDO_CLEAN, Release);
    }

    // ---- clear (`Header::clear_*`) ------------------------------------------

    /// Remove every entry (writer lock held, sequence odd, no change in
    /// flight). The empty table goes in the active table's own region,
    /// whose first pages that table allocated: a clear needs no file space,
    /// so a full disk cannot fail it, and during a migration it drops the
    /// old table with the rest instead of finishing the migration first.
    /// Recorded (`UNDO_CLEAR`): a death anywhere in it is repaired by
    /// running it again ([`Core::clear_redo`]), which is idempotent.
    pub(crate) fn clear_all(&mut self) -> Result<()> {
        let h = self.hdr();
        let r = desc_region(h.table.load(Relaxed));
        // (allocated already; checked all the same, before any change)
        allocate_table(&self.region, &self.geo, r, MIN_CAP)?;
        h.clear_region.store(r as u64, Relaxed);
        h.clear_arena_end.store(self.arena().used_end(), Relaxed);
        h.undo_state.store(UNDO_CLEAR, Release);
        crate::fault::point();
        self.clear_redo();
        Ok(())
    }

    /// The whole of a clear from its record (see [`Core::clear_all`]).
    /// False, doing nothing, for a record that names another region than
    /// the active table's (a damaged file's: the walks repair).
    pub(crate) fn clear_redo(&mut self) -> bool {
        let h = self.hdr();
        if h.clear_region.load(Relaxed) != desc_region(h.table.load(Relaxed)) as u64 {
            h.undo_state.store(UNDO_WALK, Release);
            return false;
        }
        let r = h.clear_region.load(Relaxed).min(1) as usize;
        let off = self.geo.region_off[r];
        let rb = self.geo.region_bytes();
        // the empty table's slots, and its LRU links
        let slots = self.geo.lay.bytes(MIN_CAP);
        let links = self.geo.links_bytes(MIN_CAP);
        // (word by word, atomically: lock-free readers may be reading
        // these slots, to find the window odd and retry)
        for (at, n) in [(off, slots), (off + self.geo.links_off(), links)] {
            for k in 0..n / 8 {
                self.word_at(at + 8 * k).store(0, Relaxed);
            }
        }
        crate::fault::point();
        h.mig_old.store(0, Relaxed);
        h.mig_front.store(0, Relaxed);
        crate::fault::point();
        h.table.store(table_desc(r as u64, MIN_CAP), Release);
        crate::fault::point();
        h.size.store(0, Relaxed);
        h.tombstones.store(0, Relaxed);
        h.lru_head.store(layout::NIL as u64, Relaxed);
        h.lru_tail.store(layout::NIL as u64, Relaxed);
        h.flush_pos.store(0, Relaxed);
        crate::fault::point();
        // the rest of the region, and the other one, back to the system
        let keep = |n: u64| layout::page_up(n);
        if self.geo.lru {
            let lo = self.geo.links_off();
            self.region
                .punch(off + keep(slots), lo.saturating_sub(keep(slots)));
            self.region
                .punch(off + lo + keep(links), rb.saturating_sub(lo + keep(links)));
        } else {
            self.region
                .punch(off + keep(slots), rb.saturating_sub(keep(slots)));
        }
        crate::fault::point();
        h.spare_dirty.store(0, Relaxed);
        h.spare_alloc.store(0, Relaxed);
        h.spare_links.store(0, Relaxed);
        self.region.punch(self.geo.region_off[1 - r], rb);
        crate::fault::point();
        self.arena().reset(h.clear_arena_end.load(Relaxed));
        self.undo_clean();
        crate::fault::point();
        true
    }

    /// Make room for one more entry (grow, or compact tombstones).
    fn make_room<S: Shape>(&mut self, t: &Table<S>) -> Result<bool> {
        let hdr = self.hdr();
        let size = hdr.size.load(Relaxed);
        let tombs = hdr.tombstones.load(Relaxed);
        let cap = t.cap() as u64;
        // A table at its largest size fills to 7/8 with entries and
        // tombstones before it compacts, any other to 3/4. The largest
        // holds up to `max_entries` at a load of 3/4: compacted at 3/4, it
        // would be rebuilt for the few tombstones the last removals left,
        // at nearly every insert after one (an LRU map whose `max_size`
        // is `max_entries` evicts for every insert: its table was rebuilt
        // at almost every put). At 7/8 a compaction frees at least 1/8 of
        // the table, so its cost spreads over that many inserts.
        let (num, den) = if cap >= self.geo.max_cap {
            (7, 8)
        } else {
            (3, 4)
        };
        if (size + tombs + 1) * den <= cap * num {
            return Ok(false);
        }
        crate::fault::resized();
        // (the new table of a migration in progress filled before the
        // migration ended, which its steps make rare: resize_stepwise ends
        // it first)
        let new = if (size + 1) * 8 <= cap * 3 || cap >= self.geo.max_cap {
            cap // mostly tombstones (or at the largest size): compact in place
        } else {
            self.grown(cap, size)
        };
        self.resize_stepwise::<S>(new)?;
        Ok(true)
    }

    /// Shrink or compact after removals.
    pub(crate) fn maybe_shrink(&mut self) {
        self.maybe_shrink_as::<Dyn>()
    }

    /// [`Core::maybe_shrink`], seeing the tables through shape `S`.
    pub(crate) fn maybe_shrink_as<S: Shape>(&mut self) {
        let Some(t) = self.active() else { return };
        if self.is_migrating() {
            return; // the migration in progress chose the size
        }
        let hdr = self.hdr();
        let size = hdr.size.load(Relaxed);
        let tombs = hdr.tombstones.load(Relaxed);
        let cap = t.cap() as u64;
        if cap > MIN_CAP && size * 4 < cap {
            // Back to a load of 1/2: far from both the shrink and the grow
            // threshold, so alternating inserts and removes cannot thrash.
            let want = (size * 2 + 2).clamp(MIN_CAP, cap - 1);
            // On a full disk the table stays as it is: removals still work.
            let _ = self.resize_stepwise::<S>(want);
        } else if tombs * 4 > cap {
            let _ = self.resize_stepwise::<S>(cap);
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
        match self.place_new_open_as::<Dyn>(hash, kw, vw, expiry, now, None, false)? {
            Some(_) => {
                self.seq_end();
                Ok(Status::Ok)
            }
            None => Ok(Status::Full),
        }
    }

    /// [`Core::place_new`], seeing the table through shape `S` and leaving
    /// the window open once the entry is in (`Ok(Some(slot))`; `Ok(None)`,
    /// `Full`, and an error have closed it). `vacant`: the slot that the
    /// caller's unsuccessful probe of the active table ended on
    /// (`Probe::Vacant`), under this same lock with no change since; it is
    /// taken instead of probing again unless the table changes first (an
    /// eviction or a resize). `evict_after`:
    /// the caller evicts once the entry is in (an LRU insert at
    /// `max_size`, [`Core::evict_after_insert`]), so there is no eviction
    /// here, and the entry may be one over `max_entries` until then.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn place_new_open_as<S: Shape>(
        &mut self,
        hash: u64,
        kw: u64,
        vw: u64,
        expiry: u64,
        now: u32,
        vacant: Option<usize>,
        evict_after: bool,
    ) -> Result<Option<usize>> {
        let mut vacant = vacant;
        let d = self.hdr().table.load(Acquire);
        let mut t = self.table_as::<S>(d).ok_or_else(|| self.damaged())?;
        if self.lru_on && !evict_after && self.hdr().size.load(Relaxed) >= self.max_size {
            // (callers make room first, with a record of their own: a
            // batch by `make_lru_room`, an insert after it is in; an
            // eviction here is not in the record)
            self.hdr().undo_state.store(UNDO_WALK, Relaxed);
            self.evict_one(now, None);
            vacant = None;
        }
        if self.hdr().size.load(Relaxed) >= self.max_entries + evict_after as u64 {
            if self.kb {
                self.arena().free(kw);
            }
            if self.vb {
                self.arena().free(vw);
            }
            self.seq_end();
            return Ok(None);
        }
        match self.make_room(&t) {
            Ok(false) => {}
            Ok(true) => {
                let d = self.hdr().table.load(Acquire);
                t = self.table_as::<S>(d).ok_or_else(|| self.damaged())?;
                vacant = None;
            }
            Err(e) => {
                if self.kb {
                    self.arena().free(kw);
                }
                if self.vb {
                    self.arena().free(vw);
                }
                self.seq_end();
                return Err(e);
            }
        }
        let i = match vacant {
            Some(i) if i < t.cap() && matches!(t.state(i), EMPTY | TOMB) => i,
            _ => match t.probe(hash, |_| false) {
                Probe::Vacant(i) => i,
                _ => {
                    self.seq_end();
                    return Err(self.damaged());
                }
            },
        };
        let was_tomb = t.state(i) == TOMB;
        if self.hdr().recording() {
            let tombs = self.hdr().tombstones.load(Relaxed);
            self.undo_commit(
                t.desc(),
                i,
                kw,
                vw,
                0,
                tombs.saturating_sub(was_tomb as u64),
                1,
            );
        }
        t.fill(i, hash, kw, vw, expiry);
        let hdr = self.hdr();
        if was_tomb {
            hdr.tombstones.fetch_sub(1, Relaxed);
            crate::fault::point();
        }
        hdr.size.fetch_add(1, Relaxed);
        crate::fault::point();
        if self.lru_on {
            let lru = self.lru_of(&t);
            lru.push_head(&t, i);
            lru.end(true);
        }
        Ok(Some(i))
    }

    // ---- the record of a single change (`Header::undo_*`) ----------------
    //
    // A change of one key on a map without LRU (an insert, a string
    // overwrite, a remove) first writes what a recovery needs to finish or
    // undo it without a walk: the counts and `arena_used` before, then
    // (noted by the arena) each block it allocates before taking it, then,
    // before the store that publishes it, the slot and what it publishes,
    // with the counts after; the arena counts the frees that finish. Every
    // writer's lock starts at `UNDO_WALK`: a change that keeps no record
    // (none does any more, but a garbled one counts as none) is repaired
    // by the walks (`raw::recover`).

    /// Start the record of a single change of `kind` (writer lock held,
    /// before the change's first store).
    #[inline(always)]
    pub(crate) fn undo_begin(&self, kind: u64) {
        self.undo_begin_in(kind, UNDO_WALK)
    }

    /// [`Core::undo_begin`] inside a larger change whose own state is
    /// `idle` between its single changes (a batch: `UNDO_BATCH`): the
    /// state while the record's words are rewritten.
    #[inline(always)]
    pub(crate) fn undo_begin_in(&self, kind: u64, idle: u64) {
        let h = self.hdr();
        h.undo_state.store(idle, Relaxed);
        if self.lru_on {
            // the change's relink is not made yet
            h.lru_log_n.store(0, Relaxed);
        }
        h.undo_kind.store(kind, Relaxed);
        h.undo_slot.store(u64::MAX, Relaxed);
        h.undo_size[0].store(h.size.load(Relaxed), Relaxed);
        h.undo_tombs[0].store(h.tombstones.load(Relaxed), Relaxed);
        h.undo_used.store(h.arena_used.load(Relaxed), Relaxed);
        h.undo_nalloc.store(0, Relaxed);
        h.undo_freed.store(0, Relaxed);
        h.undo_state.store(UNDO_SINGLE, Release);
        crate::fault::point();
    }

    /// The record's second half, before the store that publishes the
    /// change: slot `i`, the words it publishes (`old`: an overwrite's old
    /// value word, a remove's plan), the tombstones after and the change
    /// in `size`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn undo_commit(
        &self,
        desc: u64,
        i: usize,
        kw: u64,
        vw: u64,
        old: u64,
        tombs: u64,
        dsize: i64,
    ) {
        let h = self.hdr();
        if h.undo_slot.load(Relaxed) != u64::MAX {
            // a second change under one record (a drain that removed an
            // expired entry first): the record no longer describes it
            h.undo_state.store(UNDO_WALK, Relaxed);
            crate::fault::point();
            return;
        }
        h.undo_key.store(kw, Relaxed);
        h.undo_val.store(vw, Relaxed);
        h.undo_old.store(old, Relaxed);
        let size = h.undo_size[0].load(Relaxed);
        h.undo_size[1].store(size.saturating_add_signed(dsize), Relaxed);
        h.undo_tombs[1].store(tombs, Relaxed);
        h.undo_desc.store(desc, Relaxed);
        h.undo_slot.store(i as u64, Release);
        crate::fault::point();
    }

    /// Remove slot `i` of `t` (writer lock held, seq odd): unlink it from
    /// the LRU list, mark it removed, free its strings.
    pub(crate) fn remove_slot<S: Shape>(&mut self, t: &Table<S>, i: usize) {
        let (kw, vw) = (t.key(i), t.val(i));
        // `tombstones` counts the active table's (a migration's old table
        // is retired with its own)
        let counted = t.desc() == self.hdr().table.load(Relaxed);
        if self.hdr().recording() {
            let plan = t.vacate_plan(i);
            let tombs = self.hdr().tombstones.load(Relaxed);
            let tombs_after = match plan {
                _ if !counted => tombs,
                None => tombs + 1,
                Some(n) => tombs.saturating_sub(n),
            };
            let old = plan.unwrap_or(u64::MAX);
            self.undo_commit(t.desc(), i, kw, vw, old, tombs_after, -1);
        }
        let dt = t.vacate(i);
        let hdr = self.hdr();
        match (counted, dt >= 0) {
            (false, _) => {}
            (true, true) => {
                hdr.tombstones.fetch_add(dt as u64, Relaxed);
                crate::fault::point();
            }
            (true, false) => {
                let cur = hdr.tombstones.load(Relaxed);
                hdr.tombstones
                    .store(cur.saturating_sub((-dt) as u64), Relaxed);
            }
        }
        // saturating: a damaged file must not make the size wrap around
        hdr.size
            .store(hdr.size.load(Relaxed).saturating_sub(1), Relaxed);
        crate::fault::point();
        if self.lru_on {
            // after the slot is vacated (see `raw::lru`)
            let lru = self.lru_of(t);
            lru.unlink(t, i);
            lru.end(true);
        }
        if self.kb {
            self.arena().free(kw);
        }
        if self.vb {
            self.arena().free(vw);
        }
    }

    /// Remove an entry found expired by a write (writer lock held, seq odd).
    /// Its own window, or one whose earlier changes are whole (a drain, a
    /// flush): nothing is in flight while its record is written.
    pub(crate) fn remove_expired<S: Shape>(&mut self, t: &Table<S>, i: usize) {
        self.undo_begin_in(UNDO_REMOVE, UNDO_CLEAN);
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
        !self.ttl_on || !self.ttl().expired(t.ext(i).load(Relaxed), now)
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
            crate::raw::ttl::now()
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
        let cap = t.cap() as u64;
        if want > cap {
            self.grow_to(cap, want)?;
        }
        Ok(())
    }

    /// Grow the active table of `cap` slots to `want` (more) slots
    /// (writer lock held, sequence odd): a large table migrates into the
    /// larger one like any growth (the writes that follow move its
    /// entries), into one at least a growth's step larger, so that the
    /// migration ends before inserts fill the new table (which would
    /// finish it inside an insert). A migration in progress is finished
    /// first.
    pub(crate) fn grow_to(&mut self, cap: u64, want: u64) -> Result<()> {
        let want = if self.migrates(cap) {
            want.max(self.grown(cap, self.hdr().size.load(Relaxed)))
        } else {
            want
        };
        self.resize_stepwise::<Dyn>(want)
    }

    /// The capacity for `n` entries (load at most 3/4), within the map's.
    pub(crate) fn cap_for(&self, n: u64) -> u64 {
        cap_for(n).min(self.geo.max_cap)
    }

    /// The capacity a full table of `cap` slots holding `size` entries grows
    /// to: twice as large while small, then half as large again, so that
    /// the load stays between 1/2 and 3/4 and memory follows the data.
    pub(crate) fn grown(&self, cap: u64, size: u64) -> u64 {
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

    /// The handle's process slot (for tests).
    pub fn slot(&self) -> u32 {
        self.me.slot
    }
}

/// `flush_pos` holds a slot number in its low bits and, above them, a tag
/// of the table descriptor the pass runs over (a pass restarts when the
/// table was rebuilt since).
pub(crate) const FLUSH_SLOT_BITS: u32 = 35;

pub(crate) fn flush_tag(desc: u64) -> u64 {
    desc.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> FLUSH_SLOT_BITS
}

fn peek(r: &Region, m: &mut [u8; 8]) -> bool {
    // SAFETY: m is a valid 8-byte buffer.
    unsafe { libc::pread(r.fd(), m.as_mut_ptr().cast(), 8, 0) == 8 }
}

// ---- migration: resizes in steps (the moves are in `raw::migrate`) ----

impl Core {
    /// The old table and the frontier, while a migration is in progress.
    #[inline(always)]
    pub(crate) fn migrating_as<S: Shape>(&self) -> Option<(Table<S>, usize)> {
        let h = self.hdr();
        let old = h.mig_old.load(Acquire);
        if old == 0 {
            return None;
        }
        self.migrating_slow::<S>(old)
    }

    #[inline(never)]
    fn migrating_slow<S: Shape>(&self, old: u64) -> Option<(Table<S>, usize)> {
        let h = self.hdr();
        if desc_region(old) == desc_region(h.table.load(Acquire)) {
            return None; // a start that never published
        }
        let t = self.table_as::<S>(old)?;
        let front = (h.mig_front.load(Acquire) as usize).min(t.cap());
        Some((t, front))
    }

    /// True while a migration is in progress.
    #[inline(always)]
    pub fn is_migrating(&self) -> bool {
        self.migrating_as::<Dyn>().is_some()
    }

    /// Find the key with `hash` (`eq` compares a key word) in the table
    /// that holds it: the new table, then during a migration the old one,
    /// if the key's home there is at or above the frontier (a key is in
    /// one table only, so the order is free: this one costs a lookup that
    /// finds its key nothing). Not found: the new table's probe (its
    /// vacant slot is where an insert goes).
    #[inline(always)]
    pub(crate) fn find_as<S: Shape>(
        &self,
        new: Table<S>,
        hash: u64,
        mut eq: impl FnMut(u64) -> bool,
    ) -> (Table<S>, Probe) {
        match new.probe(hash, &mut eq) {
            Probe::Found(i) => (new, Probe::Found(i)),
            p if self.hdr().mig_old.load(Acquire) == 0 => (new, p),
            p => match self.find_in_old::<S>(hash, &mut eq) {
                Some((old, i)) => (old, Probe::Found(i)),
                None => (new, p),
            },
        }
    }

    /// The old table's part of [`Core::find_as`], out of the hot path.
    #[cold]
    #[inline(never)]
    fn find_in_old<S: Shape>(
        &self,
        hash: u64,
        eq: &mut impl FnMut(u64) -> bool,
    ) -> Option<(Table<S>, usize)> {
        let old = self.old_holding::<S>(hash)?;
        match old.probe(hash, eq) {
            Probe::Found(i) => Some((old, i)),
            _ => None,
        }
    }

    /// The tables that hold the entries, each with the lowest home its
    /// entries have ([`Table::holds`]): during a migration the old table
    /// (from the frontier), then `active`.
    pub(crate) fn entry_tables(&self, active: Table) -> impl Iterator<Item = (Table, usize)> {
        self.migrating_as::<Dyn>().into_iter().chain([(active, 0)])
    }

    /// The old table of the migration in progress, if a key with `hash`
    /// may still be there (its home is at or above the frontier).
    fn old_holding<S: Shape>(&self, hash: u64) -> Option<Table<S>> {
        let (old, front) = self.migrating_as::<S>()?;
        (old.home(hash) >= front).then_some(old)
    }

    /// [`Core::find_as`] for a read: the table, the slot and its value
    /// word.
    #[inline(always)]
    pub(crate) fn find_read_as<S: Shape>(
        &self,
        new: Table<S>,
        hash: u64,
        mut eq: impl FnMut(u64) -> bool,
    ) -> Option<(Table<S>, usize, u64)> {
        match new.probe_read(hash, &mut eq) {
            Some((i, w)) => Some((new, i, w)),
            None if self.hdr().mig_old.load(Acquire) == 0 => None,
            None => self.find_read_in_old::<S>(hash, &mut eq),
        }
    }

    /// The old table's part of [`Core::find_read_as`].
    #[cold]
    #[inline(never)]
    fn find_read_in_old<S: Shape>(
        &self,
        hash: u64,
        eq: &mut impl FnMut(u64) -> bool,
    ) -> Option<(Table<S>, usize, u64)> {
        let old = self.old_holding::<S>(hash)?;
        old.probe_read(hash, eq).map(|(i, w)| (old, i, w))
    }

    /// Resize to `cap` slots step by step if the map allows it (see the
    /// module), else at once. Writer lock held, sequence odd.
    pub(crate) fn resize_stepwise<S: Shape>(&mut self, cap: u64) -> Result<()> {
        // (first: a resize at once must not take the old table's region)
        self.settle_nested();
        let Some(old) = self.active() else {
            return Err(self.damaged());
        };
        if !self.migrates(old.cap() as u64) {
            return self.resize_as::<S>(cap);
        }
        let h = self.hdr();
        let d = h.table.load(Relaxed);
        let other = 1 - desc_region(d);
        let (off, rb) = (self.geo.region_off[other], self.geo.region_bytes());
        // recorded like a resize at once
        self.resize_begin(d, table_desc(other as u64, cap), RS_STEPWISE);
        // The region must be zero: what a retired table left that the
        // writes since did not punch is punched now; past what they
        // allocated ahead (zero), it is punched again, which costs
        // nothing where it is a hole.
        let dirty = h.spare_dirty.load(Relaxed).min(rb);
        // Each part of the region (the slots; an LRU map's links after
        // them): where it starts, the bytes the table needs, and those
        // allocated ahead (what was allocated past this table's end, for
        // a larger one, is punched too: it would stay resident).
        let ahead = |w: &AtomicU64, need: u64| {
            if dirty > 0 {
                0
            } else {
                w.load(Relaxed).min(need)
            }
        };
        let parts: Vec<_> = self
            .region_parts(cap)
            .into_iter()
            .map(|(start, need, done)| (start, need, ahead(done, need)))
            .collect();
        h.spare_dirty.store(0, Relaxed);
        h.spare_alloc.store(0, Relaxed);
        h.spare_links.store(0, Relaxed);
        crate::fault::point();
        for (k, &(start, _, spare)) in parts.iter().enumerate() {
            let end = parts.get(k + 1).map_or(rb, |p| p.0);
            self.region.punch(off + start + spare, end - start - spare);
        }
        crate::fault::point();
        for &(start, need, spare) in &parts {
            if need <= spare {
                continue;
            }
            if let Err(e) = self.region.allocate(off + start + spare, need - spare) {
                // Return whatever part of it was allocated: the disk is full.
                self.region.punch(off, rb);
                self.resize_end(false);
                return Err(e);
            }
        }
        let h = self.hdr();
        h.mig_front.store(0, Relaxed);
        h.mig_old.store(d, Relaxed);
        crate::fault::point();
        // the publishing store: from here the new table takes inserts
        h.table.store(table_desc(other as u64, cap), Release);
        crate::fault::point();
        h.tombstones.store(0, Relaxed);
        crate::fault::point();
        self.resize_end(true);
        Ok(())
    }

    /// Does a table of `cap` slots resize by a migration (else at once)?
    /// An LRU table's rebuild also sorts its entries' stamps, about four
    /// times the work: it migrates from a quarter of the size.
    pub(crate) fn migrates(&self, cap: u64) -> bool {
        let min = migrate::MIGRATE_MIN.load(Relaxed) >> (2 * self.lru_on as u32);
        (!self.lru_on || self.lru_migrates()) && cap >= min
    }

    /// One step of the migration in progress, if any, on its own (writer
    /// lock held, no change in flight): the entries of the next
    /// [`STEP_HOMES`] old home slots move, in a window of their own.
    fn migrate_step(&mut self) {
        let Some((old, _)) = self.migrating_as::<Dyn>() else {
            return;
        };
        let new = self.active().map_or(1, |t| t.cap() as u64);
        // A shrink into a table much smaller than the old one moves more
        // homes per step (of few entries each), so that it ends before
        // an eighth of the new table's slots can be inserted.
        let scale = (old.cap() as u64 / (8 * new)).max(1);
        self.migrate_alone(migrate::STEP_HOMES.load(Relaxed).max(1) * scale);
    }

    /// A writer's lock (no change in flight): a step of the migration in
    /// progress, or between migrations a chunk of work on the inactive
    /// region ([`Core::tend_spare`]). One test on the common path.
    #[inline(always)]
    pub(crate) fn between_changes(&mut self) {
        let h = self.hdr();
        let cap = crate::format::layout::desc_cap(h.table.load(Relaxed));
        if (h.mig_old.load(Relaxed) | h.spare_dirty.load(Relaxed)) != 0 || cap >= self.spare_gate {
            self.between_changes_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn between_changes_slow(&mut self) {
        self.migrate_step();
        self.tend_spare();
    }

    /// Finish the migration in progress, if any (writer lock held, no
    /// change in flight): the operations that see only the active table
    /// call this first.
    pub(crate) fn settle(&mut self) {
        while self.is_migrating() {
            self.migrate_alone(1 << 16);
        }
    }

    /// Up to `homes` old home slots of the migration in progress, moved on
    /// their own (writer lock held, no change in flight): true if it is
    /// still in progress.
    pub(crate) fn migrate_some(&mut self, homes: u64) -> bool {
        if self.is_migrating() {
            self.migrate_alone(homes.clamp(1, 1 << 16));
        }
        self.is_migrating()
    }

    /// [`Core::settle`] inside a change (sequence odd): the change's own
    /// record stays true (moves change no count).
    pub(crate) fn settle_nested(&mut self) {
        while self.is_migrating() {
            self.migrate_homes(1 << 16);
        }
    }

    /// Steps on their own: in a window, in state `UNDO_MIGRATE` (a death
    /// is repaired by finishing the move in flight), then `UNDO_WALK`.
    fn migrate_alone(&mut self, homes: u64) {
        let h = self.hdr();
        h.undo_state.store(UNDO_MIGRATE, Release);
        self.seq_begin();
        crate::fault::point();
        self.migrate_homes(homes);
        self.seq_end();
        self.hdr().undo_state.store(UNDO_WALK, Relaxed);
    }

    /// Move the entries of the next `homes` old home slots, then advance
    /// the frontier; at the end, retire the old table. Sequence odd.
    fn migrate_homes(&mut self, homes: u64) {
        let Some((old, front)) = self.migrating_as::<Dyn>() else {
            return;
        };
        let Some(new) = self.active() else { return };
        let cap = old.cap();
        let end = (front as u64 + homes).min(cap as u64) as usize;
        let lru = self.lru_unlogged();
        migrate::step(self.hdr(), &old, &new, front, end, lru.as_ref());
        let h = self.hdr();
        if end == cap {
            // Every entry has moved: the old table is retired. Its region
            // is punched a chunk per writer's lock from here on
            // (`tend_spare`), marked dirty before the store that ends the
            // migration, so that it is never taken for zero.
            h.spare_alloc.store(0, Relaxed);
            h.spare_links.store(0, Relaxed);
            h.spare_dirty.store(self.geo.region_bytes(), Relaxed);
            crate::fault::point();
            h.mig_old.store(0, Release);
            crate::fault::point();
            if self.geo.lay.bytes(cap as u64) <= migrate::SPARE_CHUNK {
                // a small table: punched at once (what it held would
                // otherwise stay resident until the next writes)
                let off = self.geo.region_off[desc_region(old.desc())];
                self.region.punch(off, self.geo.region_bytes());
                h.spare_dirty.store(0, Relaxed);
                crate::fault::point();
            }
        }
    }

    /// Punch the whole inactive region now (`freeze`: a frozen map never
    /// takes the lock again that would tend it a chunk at a time).
    pub(crate) fn punch_spare(&mut self) {
        let h = self.hdr();
        if self.is_migrating() || h.spare_dirty.load(Relaxed) | h.spare_alloc.load(Relaxed) == 0 {
            return;
        }
        h.spare_dirty.store(0, Relaxed);
        h.spare_alloc.store(0, Relaxed);
        h.spare_links.store(0, Relaxed);
        let other = 1 - desc_region(h.table.load(Relaxed));
        self.region
            .punch(self.geo.region_off[other], self.geo.region_bytes());
    }

    /// The parts of a table region that a table of `cap` slots uses, in
    /// order: where each starts, the bytes it takes, and the header word
    /// that counts its bytes allocated ahead (the slots, `spare_alloc`;
    /// an LRU map's links after them, `spare_links`).
    fn region_parts(&self, cap: u64) -> Vec<(u64, u64, &AtomicU64)> {
        let h = self.hdr();
        let mut parts = vec![(0, self.geo.lay.bytes(cap), &h.spare_alloc)];
        if self.geo.lru {
            parts.push((
                self.geo.links_off(),
                self.geo.links_bytes(cap),
                &h.spare_links,
            ));
        }
        parts
    }

    /// A table that migrates, whose region is at least [`migrate::SPARE_MIN`] bytes
    /// (a smaller one is allocated at once when its migration starts), at
    /// a load of 0.65 or more.
    fn spare_wanted(&self) -> bool {
        let h = self.hdr();
        let cap = crate::format::layout::desc_cap(h.table.load(Relaxed));
        // (an LRU map's region holds its links too)
        (!self.lru_on || self.lru_migrates())
            && cap >= migrate::MIGRATE_MIN.load(Relaxed)
            && self.geo.lay.bytes(cap) + self.geo.links_bytes(cap) >= migrate::SPARE_MIN
            && (h.size.load(Relaxed) + h.tombstones.load(Relaxed)) * 20 >= cap * 13
    }

    /// Between migrations, one chunk of work on the inactive table region
    /// per writer's lock (no change in flight): punch what a retired table
    /// left, then, once a large table nears its growth, allocate the
    /// region of the table it will grow to, so that neither a whole
    /// region's punch nor its allocation falls on one write. A failed
    /// allocation (a full disk) leaves it to the migration's start, which
    /// reports it.
    fn tend_spare(&mut self) {
        let h = self.hdr();
        // (within the region: a damaged word must not reach past it)
        let dirty = h.spare_dirty.load(Relaxed).min(self.geo.region_bytes());
        if (dirty == 0 && !self.spare_wanted()) || self.is_migrating() {
            return; // nothing to do, or both regions are in use
        }

        let h = self.hdr();
        let other = 1 - desc_region(h.table.load(Relaxed));
        let off = self.geo.region_off[other];
        if dirty > 0 {
            let from = dirty.saturating_sub(migrate::SPARE_CHUNK);
            self.region.punch(off + from, dirty - from);
            h.spare_dirty.store(from, Relaxed);
            crate::fault::point();
            return;
        }
        let Some(t) = self.active() else { return };
        let grown = self.grown(t.cap() as u64, h.size.load(Relaxed));
        let rb = self.geo.region_bytes();
        for (start, want, done) in self.region_parts(grown) {
            let have = done.load(Relaxed);
            if have >= want.min(rb - start) {
                continue;
            }
            let len = migrate::SPARE_CHUNK.min(want - have);
            if self.region.allocate(off + start + have, len).is_ok() {
                done.store(have + len, Relaxed);
                crate::fault::point();
            }
            return;
        }
    }
}

impl Core {
    /// The next entry of a walk in hash order after `after`, across both
    /// tables of a migration in progress: the table and the slot.
    pub(crate) fn walk_next(&self, new: Table, after: Option<u64>) -> Option<(Table, usize)> {
        migrate::next_after(new, self.migrating_as::<Dyn>(), after)
    }

    /// The first part of every recovery, in constant time: the move in
    /// flight (`migrate::finish_move`), then an old-table descriptor left
    /// by a start that never published is cleared.
    pub(crate) fn recover_migration(&mut self) {
        let tables = self
            .migrating_as::<Dyn>()
            .zip(self.active())
            .map(|((old, _), new)| (old, new));
        let h = self.hdr();
        migrate::finish_move(h, tables, self.lru_unlogged().as_ref());
        if h.mig_old.load(Relaxed) != 0 && !self.is_migrating() {
            h.mig_old.store(0, Relaxed);
            crate::fault::point();
        }
    }
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

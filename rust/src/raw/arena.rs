//! String storage: arena blocks carved from `arena_top`, recycled through
//! one free list per size class, in a file that grows on demand (sparse) up
//! to `arena_cap` if one was given. The words themselves (the reference
//! word, the block header, the size classes) are defined in
//! `format::words`.
//!
//! Block headers are written before the top moves, so the arena can always
//! be walked. Recovery rebuilds the free lists from a walk of the arena and
//! the set of blocks the table references.

use crate::format::layout::Header;
use crate::format::layout::{NCLASSES, UNDO_BATCH_PREP, UNDO_MAX_ALLOC, UNDO_SINGLE, UNDO_WALK};
use crate::format::words::*;
use crate::os::region::Region;
use crate::sync::seqlock::{racy_copy, racy_eq};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering::*};

/// The most of a new step of the arena that is mapped into the process at
/// once ([`Region::populate`]).
const POPULATE_MAX: u64 = 1 << 20;

/// Why a string could not be stored.
#[derive(Debug)]
pub enum StoreError {
    /// `arena_cap` reached (or the string is longer than any class).
    Full,
    /// A system call failed.
    Sys(crate::Error),
    /// There is room in the arena up to this end, but not in this handle's
    /// mapping: the caller changes nothing, and the operation runs again
    /// once the mapping covers it (see `Core::str_store`).
    Remap(u64),
}

impl StoreError {
    /// The result of an operation whose string could not be stored: `Full`
    /// is an answer (`Status::Full`), a failed system call an error.
    pub(crate) fn into_status(self) -> crate::Result<crate::raw::types::Status> {
        match self {
            StoreError::Full | StoreError::Remap(_) => Ok(crate::raw::types::Status::Full),
            StoreError::Sys(e) => Err(e),
        }
    }
}

/// A decoded reference: where the bytes are and what they are.
#[derive(Debug, Clone, Copy)]
pub struct StrView {
    /// Absolute offset of the bytes (payload), or 0 for inline. Private:
    /// only `str_view` makes one, after bounding it inside the arena, which
    /// is what lets `str_copy` read there.
    off: u64,
    /// Length in bytes (private, as `off`).
    len: usize,
    /// UTF-8 flag.
    pub utf8: bool,
    /// The inline word (if inline).
    word: u64,
}

impl StrView {
    /// Length in bytes.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// The string arena of an open map: the header words that describe it and
/// this handle's view of the file (`Core::arena`).
pub struct Arena<'a> {
    /// The map's header (top, allocation, usage, free lists).
    pub hdr: &'a Header,
    /// The file (allocation, growth, punching).
    pub region: &'a Region,
    /// Start of the mapping.
    pub base: *mut u8,
    /// Offset of the arena in the file.
    pub off: u64,
    /// `arena_cap` (0: none).
    pub cap: u64,
    /// Arena bytes this handle maps.
    pub reserve: u64,
    /// How far the arena may grow.
    pub limit: u64,
}

impl Arena<'_> {
    #[inline(always)]
    fn hdr(&self) -> &Header {
        self.hdr
    }

    /// The byte at `off` of the mapping.
    #[inline(always)]
    fn ptr_at(&self, off: u64) -> *mut u8 {
        // SAFETY (of the callers' use): `off` was bounded by the arena's
        // checks against the top and this handle's reserve.
        self.base.wrapping_add(off as usize)
    }

    /// The 8-aligned word at `off` (inside the mapping).
    #[inline(always)]
    fn word_at(&self, off: u64) -> &AtomicU64 {
        // SAFETY: callers pass offsets of block words below the arena top
        // (inside the file and this handle's mapping); 8-aligned.
        unsafe { &*(self.ptr_at(off) as *const AtomicU64) }
    }

    /// Decode a reference word, checking every bound against the arena.
    /// `None` means the word cannot be a valid reference (a torn read or a
    /// damaged file).
    #[inline(always)]
    pub(crate) fn view(&self, w: u64) -> Option<StrView> {
        if is_inline(w) {
            let len = ((w >> 56) & 7) as usize;
            return Some(StrView {
                off: 0,
                len,
                utf8: w & INLINE_UTF8 != 0,
                word: w,
            });
        }
        // Blocks end below the allocated part of the arena (`arena_alloc`,
        // at or above the top; read instead of `arena_top`, which is on the
        // writers' line) and inside this process's mapping (which may be
        // smaller than others' when address space was short).
        let (h, _) = self.live_block_at(w, self.hdr().arena_alloc.load(Acquire))?;
        let len = (h & 0xffff_ffff) as usize;
        Some(StrView {
            off: w + BLOCK_HEADER as u64,
            len,
            utf8: h & F_UTF8 != 0,
            word: w,
        })
    }

    /// Do the bytes referenced by `w` equal `want`? (Racy: validate after.)
    #[inline(always)]
    pub(crate) fn eq(&self, w: u64, want: &[u8]) -> bool {
        match self.view(w) {
            Some(v) if v.len == want.len() && v.off != 0 => {
                // SAFETY: str_view checked that the block (whose size is a
                // multiple of 8 and covers the rounded-up length) lies inside
                // the arena; the payload is 8-aligned.
                unsafe { racy_eq(self.ptr_at(v.off), want) }
            }
            _ => false,
        }
    }

    /// Copy the bytes of `v` into the first `v.len` bytes of `dst`
    /// (panics if `dst` is shorter). Racy.
    #[inline(always)]
    pub(crate) fn copy(&self, v: &StrView, dst: &mut [MaybeUninit<u8>]) {
        assert!(dst.len() >= v.len, "str_copy: destination too short");
        let dst: *mut u8 = dst.as_mut_ptr().cast();
        if v.off == 0 {
            let b = v.word.to_le_bytes();
            // SAFETY: dst has room for v.len <= 7 bytes (asserted).
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), dst, v.len) };
        } else {
            // SAFETY: str_view bounded the payload inside the arena (and
            // only it makes a StrView); dst has room for v.len bytes (asserted).
            unsafe { racy_copy(self.ptr_at(v.off), dst, v.len) };
        }
    }

    /// Store a string; returns its reference word. Writer lock held.
    pub(crate) fn store(&self, b: &[u8], utf8: bool) -> Result<u64, StoreError> {
        if let Some(w) = inline_word(b, utf8) {
            return Ok(w);
        }
        let total = (b.len() + BLOCK_HEADER) as u64;
        let class = class_for(total).ok_or(StoreError::Full)?;
        let off = self.block_alloc(class)?;
        self.word_at(off)
            .store(block_header(b.len(), class, utf8), Relaxed);
        // SAFETY: the block [off, off + class_size) is ours (just allocated,
        // inside the file); b.len() + 8 <= class_size.
        unsafe {
            std::ptr::copy_nonoverlapping(
                b.as_ptr(),
                self.ptr_at(off + BLOCK_HEADER as u64),
                b.len(),
            )
        };
        Ok(off)
    }

    /// Write the header word `head` and then the `bytes` into the live
    /// block `w`, which they fit (writer lock held, sequence odd): an
    /// overwrite in place (`Core::overwrite_in_place`).
    pub(crate) fn rewrite(&self, w: u64, head: u64, bytes: &[u8]) {
        self.word_at(w).store(head, Relaxed);
        crate::fault::point();
        // SAFETY: the caller checked that the block is live and that its
        // class holds the header and `bytes`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.ptr_at(w + BLOCK_HEADER as u64),
                bytes.len(),
            )
        };
        crate::fault::point();
    }

    /// Can blocks for strings of these lengths be taken now without an
    /// error? (Writer lock held.) An LRU insert evicts before it stores
    /// its strings, and must not lose an entry to a put that then fails:
    /// it asks this first. A block comes from its class's free list (the
    /// head, then the next for a second one of the class) or from the top,
    /// within `arena_cap` and this handle's mapping, in file space that is
    /// allocated here if it is not yet (as taking it would).
    pub(crate) fn room_for(&self, lens: &[usize]) -> Result<(), StoreError> {
        let hdr = self.hdr();
        let mut bump = 0;
        let mut classes = [usize::MAX; 2];
        for (n, &len) in lens.iter().enumerate().take(2) {
            if len <= 7 {
                continue; // inline
            }
            let class = class_for((len + BLOCK_HEADER) as u64).ok_or(StoreError::Full)?;
            let mut free = hdr.free_heads[class].load(Relaxed);
            if classes[..n].contains(&class) && free != 0 && self.is_free_block(free, class) {
                free = self.word_at(free + 8).load(Relaxed);
            }
            classes[n] = class;
            if free == 0 || !self.is_free_block(free, class) {
                bump += class_size(class);
            }
        }
        if bump == 0 {
            return Ok(());
        }
        self.room_to(hdr.arena_top.load(Relaxed) + bump)
    }

    /// Can the top move up to `end`? Within `arena_cap` and this handle's
    /// mapping, in file space allocated here if it is not yet.
    fn room_to(&self, end: u64) -> Result<(), StoreError> {
        if self.cap != 0 && end - self.off > self.cap {
            return Err(StoreError::Full);
        }
        if end > self.off + self.reserve {
            if end <= self.off + self.limit {
                // Room in the arena, not in this handle's mapping: answer
                // "full" (the caller changes nothing) and let the operation
                // run again once the mapping has grown (no pointer into the
                // mapping may be held while it moves).
                return Err(StoreError::Remap(end));
            }
            return Err(StoreError::Full);
        }
        if end > self.hdr().arena_alloc.load(Relaxed) {
            self.allocate_arena(end).map_err(StoreError::Sys)?;
        }
        Ok(())
    }

    /// Release the block behind `w` (no-op for inline). Writer lock held.
    pub(crate) fn free(&self, w: u64) {
        let hdr = self.hdr();
        // a block in use, below the top (a reference that is not one, in a
        // damaged file, frees nothing)
        if is_inline(w) {
            return;
        }
        let Some((_, class)) = self.live_block_at(w, hdr.arena_top.load(Relaxed)) else {
            return;
        };
        self.push(w, class);
        hdr.arena_used
            .fetch_sub(class_size(class).min(hdr.arena_used.load(Relaxed)), Relaxed);
        if hdr.recording() {
            // one more of the change's frees is done (see `Core::undo_begin`)
            hdr.undo_freed.fetch_add(1, Relaxed);
            crate::fault::point();
        }
    }

    /// Put block `w` of `class` on its free list: its link, its header,
    /// then the head, whose store publishes it. Writer lock held.
    fn push(&self, w: u64, class: usize) {
        let hdr = self.hdr();
        let next = hdr.free_heads[class].load(Relaxed);
        self.word_at(w + 8).store(next, Relaxed);
        crate::fault::point();
        self.word_at(w)
            .store(block_header(0, class, false) | F_FREE, Relaxed);
        hdr.free_heads[class].store(w, Relaxed);
        crate::fault::point();
    }

    /// The size class of the block at `w`, whether in use or free, if `w`
    /// is a block header below the top (recovery asks about blocks that
    /// a dead writer was allocating or freeing).
    pub(crate) fn block_class(&self, w: u64) -> Option<usize> {
        if is_inline(w) {
            return None;
        }
        self.block_at(w, self.hdr().arena_top.load(Relaxed))
            .map(|(_, class)| class)
    }

    /// The size class of the block in use at `w` (below the top, not
    /// free, its length within its class), if `w` names one.
    #[inline(always)]
    pub(crate) fn live_class(&self, w: u64) -> Option<usize> {
        self.live_block_at(w, self.hdr().arena_top.load(Relaxed))
            .map(|(_, class)| class)
    }

    /// [`Arena::block_at`] of a block in use: not free, and its length fits
    /// its class.
    #[inline(always)]
    fn live_block_at(&self, w: u64, end: u64) -> Option<(u64, usize)> {
        let (h, class) = self.block_at(w, end)?;
        let len = h & 0xffff_ffff;
        (h & F_FREE == 0 && len + BLOCK_HEADER as u64 <= class_size(class)).then_some((h, class))
    }

    /// The header word and size class of a block at `w` that lies wholly
    /// below `end` and inside this handle's mapping, if `w` names one.
    #[inline(always)]
    fn block_at(&self, w: u64, end: u64) -> Option<(u64, usize)> {
        let end = end.min(self.off + self.reserve);
        // (saturating: a word of a hostile file may be near 2^64)
        if w < self.off || w % 8 != 0 || w.saturating_add(BLOCK_HEADER as u64) > end {
            return None;
        }
        let h = self.word_at(w).load(Relaxed);
        let class = ((h >> 32) & 0xff) as usize;
        (h >> 48 == BLOCK_MAGIC && class < NCLASSES && w.saturating_add(class_size(class)) <= end)
            .then_some((h, class))
    }

    /// Is block `w` of `class` at the head of its free list (a push that
    /// finished, or a block never popped)?
    pub(crate) fn is_head(&self, w: u64, class: usize) -> bool {
        self.hdr().free_heads[class].load(Relaxed) == w
    }

    /// Recovery: put block `w` (of `class`, see [`Arena::block_class`])
    /// back on its free list, whatever its header says.
    pub(crate) fn push_back(&self, w: u64, class: usize) {
        self.push(w, class);
    }

    fn block_alloc(&self, class: usize) -> Result<u64, StoreError> {
        let size = class_size(class);
        let hdr = self.hdr();
        let head = hdr.free_heads[class].load(Relaxed);
        if head != 0 {
            if self.is_free_block(head, class) {
                let next = self.word_at(head + 8).load(Relaxed);
                let next = if next == 0 || self.is_free_block(next, class) {
                    next
                } else {
                    0
                };
                self.note_alloc(head);
                hdr.free_heads[class].store(next, Relaxed);
                crate::fault::point();
                hdr.arena_used.fetch_add(size, Relaxed);
                crate::fault::point();
                return Ok(head);
            }
            // A damaged list: drop it (recovery rebuilds it from a walk,
            // which a death in this change must then run).
            hdr.undo_state.store(UNDO_WALK, Relaxed);
            hdr.free_heads[class].store(0, Relaxed);
            crate::fault::point();
        }
        let top = hdr.arena_top.load(Relaxed);
        let end = top + size;
        self.room_to(end)?;
        let hdr = self.hdr();
        self.note_alloc(top);
        // Header first, then the top: the arena stays walkable at every instant.
        self.word_at(top)
            .store(block_header(0, class, false), Relaxed);
        hdr.arena_top.store(end, Release);
        crate::fault::point();
        hdr.arena_used.fetch_add(size, Relaxed);
        crate::fault::point();
        Ok(top)
    }

    /// Inside a change that keeps a record (`Core::undo_begin`, or a batch
    /// preparing: `raw::batch`): note the block about to be taken, before
    /// it is, so that a recovery can put it back if the change dies before
    /// publishing it.
    #[inline(always)]
    fn note_alloc(&self, b: u64) {
        let hdr = self.hdr();
        match hdr.undo_state.load(Relaxed) {
            UNDO_SINGLE => {
                let n = hdr.undo_nalloc.load(Relaxed) as usize;
                // (a single change allocates before it publishes, at most
                // two blocks)
                if n >= UNDO_MAX_ALLOC || hdr.undo_slot.load(Relaxed) != u64::MAX {
                    // more than a single change allocates: leave it to the walks
                    hdr.undo_state.store(UNDO_WALK, Relaxed);
                    crate::fault::point();
                    return;
                }
                hdr.undo_alloc[n].store(b, Relaxed);
                hdr.undo_nalloc.store(n as u64 + 1, Relaxed);
                crate::fault::point();
            }
            UNDO_BATCH_PREP => {
                let at = hdr.batch_note.load(Relaxed);
                if at == u64::MAX {
                    hdr.batch_rec.store(b, Relaxed);
                } else if let Some(w) = self.payload_word(hdr.batch_rec.load(Relaxed), at) {
                    w.store(b, Relaxed);
                } else {
                    // no word to note it in (each word notes one block):
                    // leave it to the walks
                    hdr.undo_state.store(UNDO_WALK, Relaxed);
                }
                crate::fault::point();
                // the next block needs a word of its own (`Prep::expect`)
                hdr.batch_note.store(u64::MAX - 1, Relaxed);
            }
            _ => {}
        }
    }

    /// Payload word `i` (the `i`-th 8 bytes after the header) of the
    /// block `w` in use, if its length covers it: a batch's record.
    pub(crate) fn payload_word(&self, w: u64, i: u64) -> Option<&AtomicU64> {
        let (h, _) = self.live_block_at(w, self.hdr().arena_top.load(Relaxed))?;
        let len = h & 0xffff_ffff;
        let at = i.checked_mul(8)?;
        (at.checked_add(8)? <= len).then(|| self.word_at(w + BLOCK_HEADER as u64 + at))
    }

    /// Is `w` a block in use (not inline, not free)?
    pub(crate) fn is_live(&self, w: u64) -> bool {
        !is_inline(w)
            && self
                .live_block_at(w, self.hdr().arena_top.load(Relaxed))
                .is_some()
    }

    /// Is there a free block of `class` at `off` (below the top and inside
    /// this handle's mapping: a free-list word in a hostile file may point
    /// anywhere)? The bounds of [`Arena::block_at`] for a class known in
    /// advance: through `block_at` (which sizes the class it reads) every
    /// string store paid ~18 instructions more.
    #[inline(always)]
    fn is_free_block(&self, off: u64, class: usize) -> bool {
        let end = self
            .hdr()
            .arena_top
            .load(Relaxed)
            .min(self.off + self.reserve);
        if off < self.off || off % 8 != 0 || off.saturating_add(class_size(class)) > end {
            return false;
        }
        let h = self.word_at(off).load(Relaxed);
        h >> 48 == BLOCK_MAGIC && h & F_FREE != 0 && ((h >> 32) & 0xff) as usize == class
    }

    /// Make the arena below `end` exist and be allocated before a block is
    /// carved there: the file grows (sparse, in generous steps), then its
    /// blocks are allocated a smaller step ahead of the top, so that a full
    /// file system fails this call instead of a later store.
    fn allocate_arena(&self, end: u64) -> crate::Result<()> {
        if end > self.hdr().file_size.load(Relaxed) {
            self.grow_file(end)?;
        }
        let hdr = self.hdr();
        let size = hdr.file_size.load(Relaxed);
        // A damaged word only costs allocation calls, never a wrong store.
        let alloc = hdr.arena_alloc.load(Relaxed).clamp(self.off, size);
        if end <= alloc {
            hdr.arena_alloc.store(alloc, Release);
            return Ok(());
        }
        let step = ((alloc - self.off) / 8).max(64 << 10);
        let new = end.max(alloc + step).div_ceil(4096) * 4096;
        let new = new.min(size).max(end);
        self.region.allocate(alloc, new - alloc)?;
        // In memory, the blocks about to be carved are mapped at once
        // rather than a fault per page (at most POPULATE_MAX: no pause
        // grows with the arena's step; the rest faults in as it is
        // touched). On a disk, mapping them ahead would take memory that
        // their allocation did not.
        if self.region.in_memory() {
            self.region.populate(alloc, (new - alloc).min(POPULATE_MAX));
        }
        hdr.arena_alloc.store(new, Release);
        crate::fault::point();
        Ok(())
    }

    /// Grow the file so that `need` bytes exist (sparse; in generous steps).
    fn grow_file(&self, need: u64) -> crate::Result<()> {
        let hdr = self.hdr();
        let cur = hdr.file_size.load(Relaxed);
        let used = cur.saturating_sub(self.off);
        let step = (used / 4).max(1 << 20);
        let mut new = (need.max(cur + step)).div_ceil(4096) * 4096;
        new = new.min(self.off + self.limit).max(need);
        self.region.truncate(new)?;
        hdr.file_size.store(new, Release);
        crate::fault::point();
        Ok(())
    }

    /// Rebuild the free lists and `arena_used` from a walk of the arena,
    /// keeping exactly the blocks `is_live` says are referenced (asked in
    /// increasing order). Writer lock held (recovery).
    /// Returns the number of blocks found in use.
    pub(crate) fn rebuild(&self, mut is_live: impl FnMut(u64) -> bool) -> u64 {
        let hdr = self.hdr();
        if hdr.arena_top.load(Relaxed) > self.off + self.reserve {
            // This process cannot see the whole arena (it reserved less
            // address space than the arena has grown to): leave the lists to
            // a process that can; a damaged list is dropped when met anyway.
            return 0;
        }
        for h in &hdr.free_heads {
            h.store(0, Relaxed);
        }
        let top = hdr.arena_top.load(Relaxed).min(hdr.file_size.load(Relaxed));
        let mut off = self.off;
        let mut used = 0;
        let mut n = 0;
        while off + BLOCK_HEADER as u64 <= top {
            let h = self.word_at(off).load(Relaxed);
            let class = ((h >> 32) & 0xff) as usize;
            if h >> 48 != BLOCK_MAGIC || class >= NCLASSES || off + class_size(class) > top {
                break; // the walk cannot continue past damage: cut the arena here
            }
            let size = class_size(class);
            if is_live(off) {
                used += size;
                n += 1;
            } else {
                let next = hdr.free_heads[class].load(Relaxed);
                self.word_at(off + 8).store(next, Relaxed);
                self.word_at(off)
                    .store(block_header(0, class, false) | F_FREE, Relaxed);
                hdr.free_heads[class].store(off, Relaxed);
            }
            off += size;
        }
        hdr.arena_top.store(off, Relaxed);
        hdr.arena_used.store(used, Relaxed);
        n
    }

    /// The end of the bytes [`Arena::reset`] must punch: past every block
    /// and every allocated page (a clear records it before it starts, so
    /// that running the clear again after a death punches them all).
    pub(crate) fn used_end(&self) -> u64 {
        let hdr = self.hdr();
        let alloc = hdr.arena_alloc.load(Relaxed);
        hdr.arena_top
            .load(Relaxed)
            .max(alloc.min(hdr.file_size.load(Relaxed)))
    }

    /// Drop every block: empty free lists, the top back at the start, the
    /// pages up to `end` (see [`Arena::used_end`]) returned. Idempotent.
    pub(crate) fn reset(&self, end: u64) {
        let hdr = self.hdr();
        for h in &hdr.free_heads {
            h.store(0, Relaxed);
            crate::fault::point();
        }
        hdr.arena_top.store(self.off, Release);
        crate::fault::point();
        hdr.arena_used.store(0, Relaxed);
        crate::fault::point();
        // Lowered before the punch: a page is never claimed allocated
        // after it has been returned.
        hdr.arena_alloc.store(self.off, Release);
        crate::fault::point();
        let end = end.min(hdr.file_size.load(Relaxed));
        self.region.punch(self.off, end.saturating_sub(self.off));
        crate::fault::point();
    }
}

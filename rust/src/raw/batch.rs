//! All-or-nothing batches (`set_multi`, `remove_multi`): one record that
//! undoes the batch before its commit and redoes it after, so that the
//! repair after a death in a batch costs the batch, not the map.
//!
//! The record is an arena block of payload words, taken first:
//!
//! | words | what |
//! |---|---|
//! | 0, 1, 2 | kind ([`SET`] or [`REMOVE`]), entries committed, entries it has room for (`cap`) |
//! | 3 + 3e, 4 + 3e, 5 + 3e | entry e: hash, key word, value word |
//! | 3 + 3 cap … | one bit per entry: its key word is freed when the batch ends |
//!
//! **Preparing** (`undo_state` [`UNDO_BATCH_PREP`], sequence odd): every
//! block the batch takes is noted before it is taken (the arena writes it
//! where `batch_note` says: `batch_rec` for the record itself, then the
//! entry's key or value word in the record), and an entry's words are
//! zeroed and counted in `batch_covered` before the first note. A death
//! here is undone by [`unprepare`]: the noted blocks that were taken go
//! back on their free lists, then the record, and `arena_used` is set back
//! to `batch_used`.
//!
//! **Commit**: one store of `Header::batch_log`. From then on the record is
//! applied ([`apply`]), each entry as a change of one key that keeps its
//! own record (`Core::undo_begin`, state `UNDO_BATCH` between entries): a
//! death is repaired by finishing or undoing that one change, then
//! applying the whole record again, which is idempotent.
//!
//! **Finishing** ([`finish`], state [`UNDO_BATCH_FINISH`]): the key words
//! that no slot holds (a key already present, a removal) are marked in the
//! record, with the `arena_used` to end at, then freed in order with a
//! progress count, then the record itself; a death resumes where it was.
//!
//! A batch on an LRU map is recorded the same way: each relink its apply
//! makes is logged and rolled back by a recovery (`raw::lru`), which then
//! applies the record again; an eviction is a removal of its own
//! (`Core::make_lru_room`).

use crate::format::layout::{
    Header, UNDO_BATCH, UNDO_BATCH_FINISH, UNDO_BATCH_PREP, UNDO_BATCH_UNPREP, UNDO_INSERT,
    UNDO_OVERWRITE, UNDO_REMOVE, UNDO_WALK,
};
use crate::format::words::{class_size, is_inline};
use crate::raw::arena::StoreError;
use crate::raw::core::Core;
use crate::raw::table::Probe;
use crate::raw::types::Status;
use std::sync::atomic::Ordering::*;

/// Store every entry's key and value.
pub const SET: u64 = 1;
/// Remove every entry's key.
pub const REMOVE: u64 = 2;

/// Payload words before the entries.
const HEAD: u64 = 3;

/// The payload word of entry `e`'s hash (its key word follows, then its
/// value word).
fn entry_word(e: u64) -> u64 {
    HEAD + 3 * e
}

/// Read payload word `i` of the record `rec` (0 if `rec` is no live block
/// that long: a damaged record reads as an empty one).
fn load(core: &Core, rec: u64, i: u64) -> u64 {
    core.arena()
        .payload_word(rec, i)
        .map_or(0, |w| w.load(Relaxed))
}

/// Store payload word `i` of `rec` (nothing if it is no live block that
/// long).
fn store(core: &Core, rec: u64, i: u64, x: u64) {
    if let Some(w) = core.arena().payload_word(rec, i) {
        w.store(x, Relaxed);
        crate::fault::point();
    }
}

/// Was block `w` taken from the arena (it is a block, and not the head of
/// its free list: a pop that happened, or a push not yet done)? Asked
/// only before anything is pushed back, or of the one block whose push a
/// progress count does not say finished.
fn taken(core: &Core, w: u64) -> bool {
    let a = core.arena();
    matches!(a.block_class(w), Some(class) if !a.is_head(w, class))
}

/// Put `w` back on its free list if [`taken`].
fn push_back_if_taken(core: &Core, w: u64) {
    let a = core.arena();
    if let Some(class) = a.block_class(w) {
        if !a.is_head(w, class) {
            a.push_back(w, class);
        }
    }
}

/// The bytes of the block `w` on the arena's books.
fn block_bytes(core: &Core, w: u64) -> u64 {
    core.arena().block_class(w).map_or(0, class_size)
}

/// Before a batch's first store (writer lock held, before the window
/// opens): from here a death is undone from the record, which has taken
/// nothing yet.
pub(crate) fn start(core: &Core) {
    let h = core.hdr();
    h.undo_state.store(UNDO_WALK, Relaxed);
    h.batch_rec.store(0, Relaxed);
    h.batch_note.store(u64::MAX, Relaxed);
    h.batch_covered.store(0, Relaxed);
    h.batch_used.store(h.arena_used.load(Relaxed), Relaxed);
    h.undo_state.store(UNDO_BATCH_PREP, Release);
    crate::fault::point();
}

/// A batch being prepared: its record and how many entries it holds.
pub(crate) struct Prep {
    rec: u64,
    n: u64,
    cap: u64,
}

impl Prep {
    /// Start a batch of at most `cap` entries (writer lock held, sequence
    /// odd, after [`start`]): take its record.
    pub(crate) fn begin(core: &mut Core, cap: u64) -> Result<Prep, StoreError> {
        if core.hdr().undo_state.load(Relaxed) != UNDO_BATCH_PREP {
            // (a resize for the batch gives the state back at its end;
            // anything else in between leaves the batch to start again)
            start(core);
        }
        let words = HEAD + 3 * cap + cap.div_ceil(64);
        let rec = match core.str_store(&vec![0u8; words as usize * 8], false) {
            Ok(rec) => rec,
            Err(e) => {
                // nothing was taken
                core.hdr().undo_state.store(UNDO_WALK, Relaxed);
                return Err(e);
            }
        };
        store(core, rec, 2, cap);
        Ok(Prep { rec, n: 0, cap })
    }

    /// The next entry's `part` (1: key, 2: value) is about to be stored:
    /// the arena notes its block in that word of the record (zero until
    /// then: the record was taken zeroed). The entry is covered before its
    /// key's note.
    pub(crate) fn expect(&self, core: &Core, part: u64) {
        debug_assert!(self.n < self.cap && (1..=2).contains(&part));
        let h = core.hdr();
        if part == 1 {
            h.batch_covered.store(self.n + 1, Relaxed);
            crate::fault::point();
        }
        h.batch_note.store(entry_word(self.n) + part, Relaxed);
    }

    /// The entry's words, stored: it joins the batch.
    pub(crate) fn push(&mut self, core: &Core, hash: u64, kw: u64, vw: u64) {
        let at = entry_word(self.n);
        store(core, self.rec, at, hash);
        store(core, self.rec, at + 1, kw);
        store(core, self.rec, at + 2, vw);
        self.n += 1;
    }

    /// No entry was prepared.
    pub(crate) fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Publish the record: the commit point of the batch. Then apply it
    /// (sequence odd, lock held). Returns how many entries took effect.
    pub(crate) fn commit(self, core: &mut Core, kind: u64) -> u64 {
        store(core, self.rec, 0, kind);
        store(core, self.rec, 1, self.n);
        core.hdr().batch_log.store(self.rec, Release);
        crate::fault::point();
        apply(core)
    }

    /// Give the batch up before its commit (a string that could not be
    /// stored): everything it took goes back.
    pub(crate) fn abandon(self, core: &mut Core) {
        unprepare(core);
    }
}

/// Undo a batch that did not commit (a death while it prepared, or a
/// string it could not store): the blocks it took, then its record, go
/// back on their free lists, and `arena_used` is what it was. Can run
/// again after a death in it.
pub(crate) fn unprepare(core: &mut Core) {
    let h = core.hdr();
    let rec = h.batch_rec.load(Relaxed);
    let rec_taken = taken(core, rec);
    let (kb, vb) = (core.kb_flag(), core.vb_flag());
    let covered = h.batch_covered.load(Relaxed);
    // The blocks to give back: the noted words whose blocks were taken.
    // (Every other word in their places is zeroed, before any push.)
    let parts = move |e: u64| [(kb, entry_word(e) + 1), (vb, entry_word(e) + 2)];
    if h.undo_state.load(Relaxed) == UNDO_BATCH_PREP {
        if rec_taken {
            for e in 0..covered {
                for (is_str, at) in parts(e) {
                    let w = load(core, rec, at);
                    if w != 0 && !(is_str && taken(core, w)) {
                        store(core, rec, at, 0);
                    }
                }
            }
        }
        h.batch_pushed.store(0, Relaxed);
        h.undo_state.store(UNDO_BATCH_UNPREP, Release);
        crate::fault::point();
    }
    if h.batch_pushed.load(Relaxed) == DONE {
        return end(h);
    }
    if rec_taken {
        let done = h.batch_pushed.load(Relaxed);
        let mut j = 0;
        for e in 0..covered {
            for (_, at) in parts(e) {
                let w = load(core, rec, at);
                if w == 0 {
                    continue;
                }
                if j >= done {
                    push_back_if_taken(core, w);
                    h.batch_pushed.store(j + 1, Relaxed);
                    crate::fault::point();
                }
                j += 1;
            }
        }
        push_back_if_taken(core, rec);
    }
    h.arena_used.store(h.batch_used.load(Relaxed), Relaxed);
    crate::fault::point();
    h.batch_pushed.store(DONE, Relaxed);
    crate::fault::point();
    end(h);
}

/// `Header::batch_pushed` once every block to give back is back and
/// `arena_used` set: running that part again only ends the batch.
const DONE: u64 = u64::MAX;

/// No batch in flight any more. The state stays as it is (finishing or
/// undoing, with `batch_pushed` at [`DONE`]): a death before the window
/// closes is repaired by ending the batch again, with no walk; the next
/// lock sets `UNDO_WALK`.
fn end(h: &Header) {
    h.batch_log.store(0, Release);
    crate::fault::point();
}

/// Do two key words name the same key (integers: the word; strings:
/// the bytes)?
fn same_key(core: &Core, a: u64, b: u64) -> bool {
    if a == b || !core.kb_flag() {
        return a == b;
    }
    match (core.arena().view(a), core.arena().view(b)) {
        (Some(x), Some(y)) if x.len() == y.len() => {
            let (mut p, mut q) = (vec![0u8; x.len()], vec![0u8; y.len()]);
            core.arena()
                .copy(&x, crate::raw::types::Out::new(&mut p).buf_mut());
            core.arena()
                .copy(&y, crate::raw::types::Out::new(&mut q).buf_mut());
            p == q
        }
        _ => false,
    }
}

/// A string word that no longer names a live block: this batch freed it
/// already (a value replaced by a later entry of the same key, or an entry
/// evicted by the batch itself) before a death made it run again.
fn gone(core: &Core, is_str: bool, w: u64) -> bool {
    is_str && !is_inline(w) && core.arena().view(w).is_none()
}

/// Apply the published record to the end (idempotent), then [`finish`].
/// Sequence odd, lock held. Returns how many entries took effect.
pub(crate) fn apply(core: &mut Core) -> u64 {
    let log = core.hdr().batch_log.load(Acquire);
    if core.arena().payload_word(log, 2).is_none() {
        // a record that is no block (a damaged file): nothing to apply,
        // and nothing the record can say about the arena, whose walk gets
        // back what the batch took
        core.hdr().undo_state.store(UNDO_WALK, Relaxed);
        core.hdr()
            .repair
            .fetch_or(crate::format::layout::REPAIR_ARENA, Release);
        end(core.hdr());
        return 0;
    }
    // Between entries, a death applies the record again (after the relink
    // it was making, on an LRU map, is rolled back).
    let idle = UNDO_BATCH;
    core.hdr().batch_rec.store(log, Relaxed);
    core.hdr().undo_state.store(idle, Release);
    crate::fault::point();
    let (kind, n) = (load(core, log, 0), load(core, log, 1));
    let n = n.min(load(core, log, 2));
    let now = core.now();
    let expiry = crate::raw::ttl::expiry_after(now, core.ttl_default);
    let vb = core.vb_flag();
    let kb = core.kb_flag();
    let mut done = 0;
    for e in 0..n {
        let at = entry_word(e);
        let (hash, kw, vw) = (
            load(core, log, at),
            load(core, log, at + 1),
            load(core, log, at + 2),
        );
        let Some(t) = core.active() else { break };
        // (during a migration, the entry may be in either table)
        let (t, found) = match core.find_as(t, hash, |w| same_key(core, w, kw)) {
            (t, Probe::Found(i)) => (t, Some(i)),
            (t, _) => (t, None),
        };
        match (kind, found) {
            (SET, Some(i)) => {
                let old = t.val(i);
                if old != vw && !gone(core, vb, vw) {
                    if vb {
                        core.undo_begin_in(UNDO_OVERWRITE, idle);
                        let tombs = core.hdr().tombstones.load(Relaxed);
                        core.undo_commit(t.desc(), i, 0, vw, old, tombs, 0);
                    }
                    t.set_val(i, vw);
                    crate::fault::point();
                    if vb {
                        core.arena().free(old);
                    }
                    core.hdr().undo_state.store(idle, Relaxed);
                }
                if let Some(e) = core.ttl().expiry_on_write(&t, i, now, None) {
                    t.ext(i).store(e, Release);
                }
                if core.lru_on {
                    core.lru_of(&t).promote(&t, i);
                }
                done += 1;
            }
            (SET, None) => {
                if gone(core, kb, kw) || gone(core, vb, vw) {
                    continue; // placed, then evicted by this batch: done
                }
                // (an eviction first, a change of its own)
                core.make_lru_room(now, idle, None);
                core.undo_begin_in(UNDO_INSERT, idle);
                if place_in_window(core, hash, kw, vw, expiry, now) == Status::Ok {
                    done += 1;
                }
                core.hdr().undo_state.store(idle, Relaxed);
            }
            (REMOVE, Some(i)) => {
                core.undo_begin_in(UNDO_REMOVE, idle);
                core.remove_slot(&t, i);
                core.hdr().undo_state.store(idle, Relaxed);
                done += 1;
            }
            _ => {}
        }
    }
    finish(core);
    core.maybe_shrink();
    done
}

/// The end of an applied batch: free the key words no slot holds, then
/// the record, from a list marked in the record first (so that a death
/// resumes the frees without freeing a block twice). Can run again after
/// a death in it.
pub(crate) fn finish(core: &mut Core) {
    let h = core.hdr();
    let rec = h.batch_rec.load(Relaxed);
    let n = load(core, rec, 1).min(load(core, rec, 2));
    let bits = HEAD + 3 * load(core, rec, 2);
    if h.undo_state.load(Relaxed) != UNDO_BATCH_FINISH {
        let mut used = h.arena_used.load(Relaxed);
        let mut count = 0;
        if core.kb_flag() {
            let t = core.active();
            let arena = core.arena();
            for g in 0..n.div_ceil(64) {
                let mut mask = 0u64;
                for e in g * 64..(g * 64 + 64).min(n) {
                    let at = entry_word(e);
                    let (hash, kw) = (load(core, rec, at), load(core, rec, at + 1));
                    // a block no slot holds (by its word: a removal, a key
                    // that was present) and that nothing freed already
                    // (during a migration, in either table)
                    let held = t.is_some_and(|t| {
                        matches!(core.find_as(t, hash, |w| w == kw), (_, Probe::Found(_)))
                    });
                    if !is_inline(kw) && !held && arena.is_live(kw) {
                        mask |= 1 << (e % 64);
                        used = used.saturating_sub(block_bytes(core, kw));
                        count += 1;
                    }
                }
                store(core, rec, bits + g, mask);
            }
        }
        h.batch_used_after
            .store(used.saturating_sub(block_bytes(core, rec)), Relaxed);
        h.batch_nfree.store(count, Relaxed);
        h.batch_pushed.store(0, Relaxed);
        h.undo_state.store(UNDO_BATCH_FINISH, Release);
        crate::fault::point();
    }
    let done = h.batch_pushed.load(Relaxed);
    if done == DONE {
        return end(h);
    }
    if done < h.batch_nfree.load(Relaxed) {
        // (the record is whole until its own push, the last)
        let mut j = 0;
        for e in 0..n {
            if load(core, rec, bits + e / 64) & (1 << (e % 64)) == 0 {
                continue;
            }
            if j >= done {
                push_back_if_taken(core, load(core, rec, entry_word(e) + 1));
                h.batch_pushed.store(j + 1, Relaxed);
                crate::fault::point();
            }
            j += 1;
        }
    }
    push_back_if_taken(core, rec);
    h.arena_used
        .store(h.batch_used_after.load(Relaxed), Relaxed);
    crate::fault::point();
    h.batch_pushed.store(DONE, Relaxed);
    crate::fault::point();
    end(h);
}

fn place_in_window(core: &mut Core, hash: u64, kw: u64, vw: u64, expiry: u64, now: u32) -> Status {
    // place_new ends the window; reopen it at once (the record is still
    // published, so recovery would finish the batch either way)
    let st = core
        .place_new(hash, kw, vw, expiry, now)
        .unwrap_or(Status::Full);
    core.seq_begin();
    st
}

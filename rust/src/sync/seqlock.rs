//! The seqlock protocol and the one place where bytes are copied out of the
//! map without a lock.
//!
//! A reader loads `seq` (even: no structural change in progress), reads what
//! it needs, and loads `seq` again: equal means nothing moved meanwhile. The
//! bytes it read in between may have been changed by another process while
//! it read them — in the language of the memory model that is a data race.
//! It is harmless here because (1) the copies go into private buffers and are
//! only *used* after validation, (2) every offset and length read from the
//! map is checked against the mapping before it is followed, and (3) the
//! mapping is shared memory written by other processes anyway, where the
//! compiler cannot assume exclusive access. Word-sized fields are read with
//! atomic loads; only byte strings use the copies below.

use std::sync::atomic::{fence, AtomicU64, Ordering::*};

/// Start an optimistic read: the sequence if no writer is active.
#[inline(always)]
pub fn read_begin(seq: &AtomicU64) -> Option<u64> {
    let s = seq.load(Acquire);
    (s & 1 == 0).then_some(s)
}

/// Finish an optimistic read: true if it saw a consistent state.
#[inline(always)]
pub fn read_valid(seq: &AtomicU64, s: u64) -> bool {
    fence(Acquire);
    seq.load(Relaxed) == s
}

/// Writer: mark the structure as changing (seq becomes odd).
#[inline(always)]
pub fn write_begin(seq: &AtomicU64) {
    let s = seq.load(Relaxed);
    seq.store(s | 1, Relaxed);
    fence(Release);
}

/// Writer: publish the change (seq becomes even and larger).
#[inline(always)]
pub fn write_end(seq: &AtomicU64) {
    let s = seq.load(Relaxed);
    seq.store((s | 1).wrapping_add(1), Release);
}

/// Copy `len` bytes out of the map. The racy copy (see the module docs).
///
/// # Safety
/// `src..src+len` must lie inside the mapping and `dst..dst+len` inside a
/// private buffer; the result is meaningful only after `read_valid`.
#[inline(always)]
pub unsafe fn racy_copy(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: both ranges are valid per the contract; they cannot overlap
    // (one is in the shared mapping, the other private).
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) }
}

/// Compare `len` bytes of the map, starting at 8-aligned `src`, with `want`.
/// Reads whole aligned words (volatile), so it may read up to 7 bytes past
/// `src + want.len()`; the caller guarantees those lie in the same block.
///
/// # Safety
/// `src` must be 8-aligned and `src..src + round_up(want.len(), 8)` inside
/// the mapping. The answer is meaningful only after `read_valid` (or under
/// the writer lock).
#[inline(always)]
pub unsafe fn racy_eq(src: *const u8, want: &[u8]) -> bool {
    let words = src as *const u64;
    let mut chunks = want.chunks_exact(8);
    let mut i = 0;
    for c in &mut chunks {
        // SAFETY: word i lies inside the block per the contract.
        let w = unsafe { std::ptr::read_volatile(words.add(i)) };
        if w != u64::from_le_bytes(c.try_into().unwrap()) {
            return false;
        }
        i += 1;
    }
    let rest = chunks.remainder();
    if rest.is_empty() {
        return true;
    }
    // SAFETY: the last partial word is inside the block (8-byte granularity).
    let w = unsafe { std::ptr::read_volatile(words.add(i)) };
    let mut tail = [0u8; 8];
    tail[..rest.len()].copy_from_slice(rest);
    let mask = u64::MAX >> (64 - 8 * rest.len() as u32);
    w & mask == u64::from_le_bytes(tail)
}

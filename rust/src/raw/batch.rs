//! All-or-nothing batches (`set_multi`, `remove_multi`): a redo record.
//!
//! A batch first prepares everything it will write (the key and value
//! words, strings stored in the arena) inside the seqlock window, then
//! writes a redo record — `kind, n, n × (hash, key word, value word)` — as
//! an arena block and publishes it with one store of `Header::batch_log`:
//! that store is the commit point. Applying the record is idempotent, so a
//! writer that dies before the commit leaves nothing (recovery's arena walk
//! frees the prepared blocks), and one that dies after it leaves a record
//! that recovery applies to the end. The record is cleared, then the words
//! that no entry ended up using are freed.

use crate::format::words::is_inline;
use crate::raw::arena::StoreError;
use crate::raw::core::Core;
use crate::raw::table::Probe;
use crate::raw::types::Status;
use std::sync::atomic::Ordering::*;

/// Store every entry's key and value.
pub const SET: u64 = 1;
/// Remove every entry's key.
pub const REMOVE: u64 = 2;

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

/// A string word that no longer names a live block (its entry was
/// evicted by the batch itself before a crash).
fn gone(core: &Core, is_str: bool, w: u64) -> bool {
    is_str && !is_inline(w) && core.arena().view(w).is_none()
}

/// Write the redo record and publish it (sequence odd, lock held).
pub(crate) fn commit(
    core: &mut Core,
    kind: u64,
    entries: &[(u64, u64, u64)],
) -> Result<(), StoreError> {
    let mut b = Vec::with_capacity(16 + entries.len() * 24);
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for &(h, k, v) in entries {
        b.extend_from_slice(&h.to_le_bytes());
        b.extend_from_slice(&k.to_le_bytes());
        b.extend_from_slice(&v.to_le_bytes());
    }
    let log = core.str_store(&b, false)?;
    core.hdr().batch_log.store(log, Release);
    crate::fault::point();
    Ok(())
}

/// Apply the published redo record (idempotent), clear it and free what
/// no entry uses. Sequence odd, lock held. Returns how many entries took
/// effect.
pub(crate) fn apply(core: &mut Core) -> u64 {
    let log = core.hdr().batch_log.load(Acquire);
    let Some(view) = core.arena().view(log) else {
        core.hdr().batch_log.store(0, Release);
        return 0;
    };
    let mut b = vec![0u8; view.len()];
    core.arena()
        .copy(&view, crate::raw::types::Out::new(&mut b).buf_mut());
    let word = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
    let (kind, n) = (word(0), word(1));
    let n = (n as usize).min((b.len() / 8).saturating_sub(2) / 3);
    let now = core.now();
    let expiry = crate::raw::ttl::expiry_after(now, core.ttl_default);
    let (kb, vb) = (core.kb_flag(), core.vb_flag());
    let mut unused = Vec::new();
    let mut done = 0;
    for e in 0..n {
        let (hash, kw, vw) = (word(2 + 3 * e), word(3 + 3 * e), word(4 + 3 * e));
        let Some(t) = core.active() else { break };
        let found = match t.probe(hash, |w| same_key(core, w, kw)) {
            Probe::Found(i) => Some(i),
            _ => None,
        };
        match (kind, found) {
            (SET, Some(i)) => {
                if t.key(i) != kw {
                    unused.push(kw);
                }
                let old = t.val(i);
                if old != vw && !gone(core, vb, vw) {
                    t.set_val(i, vw);
                    crate::fault::point();
                    if vb {
                        core.arena().free(old);
                    }
                }
                if let Some(e) = core.ttl().expiry_on_write(&t, i, now, None) {
                    t.ext(i).store(e, Release);
                }
                if core.lru_on {
                    core.lru().promote(&t, i);
                }
                done += 1;
            }
            (SET, None) => {
                if gone(core, kb, kw) || gone(core, vb, vw) {
                    continue; // placed, then evicted by this batch: done
                }
                if place_in_window(core, hash, kw, vw, expiry, now) == Status::Ok {
                    done += 1;
                }
            }
            (REMOVE, Some(i)) => {
                core.remove_slot(&t, i);
                unused.push(kw);
                done += 1;
            }
            _ => unused.push(kw),
        }
    }
    core.hdr().batch_log.store(0, Release);
    crate::fault::point();
    core.arena().free(log);
    if kb {
        for w in unused {
            core.arena().free(w);
        }
    }
    core.maybe_shrink();
    done
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

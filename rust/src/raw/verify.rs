//! `verify`: walk the whole map under the writer lock and check every
//! internal invariant, naming the first problem found.

use crate::error::{Error, Result};
use crate::format::layout::{is_full, EMPTY, NCLASSES, TOMB};
use crate::format::words::{class_size, is_inline, BLOCK_HEADER};
use crate::raw::codec::Codec;
use crate::raw::core::Core;
use crate::raw::guard::WriteGuard;
use crate::raw::table::Probe;
use std::collections::HashSet;
use std::sync::atomic::Ordering::*;

use crate::format::words::{BLOCK_MAGIC, F_FREE};

/// Check the header, the table (counts, hashes, reachability, no duplicate
/// keys), every string reference, the arena (block headers, free lists,
/// usage), the LRU list and the expiry words of a map of keys `K` and
/// values `V`. `Ok(())` or the first problem.
pub fn verify<K: Codec, V: Codec>(core: &mut Core) -> Result<()> {
    let g = WriteGuard::view(core)?;
    let core = &*g.core;
    let bad = |what: String| Err(Error::new(format!("{}: verify: {what}", core.path())));
    let h = core.hdr();
    if h.fixed_sum.load(Relaxed) != h.fixed_sum() {
        return bad("header: the checksum of the fixed fields does not match".into());
    }
    let fsize = core.region.file_size()?;
    let recorded = h.file_size.load(Relaxed);
    if recorded > fsize {
        return bad(format!(
            "header: file_size {recorded} exceeds the file's {fsize} bytes"
        ));
    }
    if let Some(e) = h.arena_words_problem(core.arena_off, recorded) {
        return bad(format!("header: {e}"));
    }
    let top = h.arena_top.load(Relaxed);
    if h.seq.load(Relaxed) & 1 == 1 {
        return bad("header: a change is marked in progress with no writer".into());
    }
    let Some(t) = core.table_of(h.table.load(Relaxed)) else {
        return bad("header: the table descriptor is invalid".into());
    };
    // ---- table
    let (mut full, mut tombs) = (0u64, 0u64);
    let mut blocks = HashSet::new();
    for i in 0..t.cap() {
        let m = t.meta(i);
        if m == TOMB {
            tombs += 1;
            continue;
        }
        if m == EMPTY {
            continue;
        }
        if !is_full(m) {
            return bad(format!("slot {i}: unknown state {m:#x}"));
        }
        full += 1;
        let (kw, vw) = (t.key(i), t.val(i));
        let hash = if K::BYTES {
            let Some(v) = core.arena().view(kw) else {
                return bad(format!(
                    "slot {i}: the key's string reference {kw:#x} is invalid"
                ));
            };
            let mut b = vec![0u8; v.len()];
            core.arena()
                .copy(&v, crate::raw::types::Out::new(&mut b).buf_mut());
            crate::format::hash::hash_bytes(core.seed, &b)
        } else {
            if !K::fits(kw as i64) {
                return bad(format!(
                    "slot {i}: key {} does not fit {}",
                    kw as i64,
                    K::NAME
                ));
            }
            crate::format::hash::hash_int(core.seed, kw as i64)
        };
        if crate::format::layout::full_meta(hash) != m {
            return bad(format!("slot {i}: the stored hash does not match the key"));
        }
        // reachable from its home, and the first slot holding this key
        let found = t.probe(hash, |w| w == kw);
        if found != Probe::Found(i) {
            return bad(format!(
                "slot {i}: the key is not reachable from its home slot ({found:?})"
            ));
        }
        if V::BYTES {
            if core.arena().view(vw).is_none() {
                return bad(format!(
                    "slot {i}: the value's string reference {vw:#x} is invalid"
                ));
            }
        } else if !V::fits(vw as i64) {
            return bad(format!(
                "slot {i}: value {} does not fit {}",
                vw as i64,
                V::NAME
            ));
        }
        for (is_str, w) in [(K::BYTES, kw), (V::BYTES, vw)] {
            if is_str && !is_inline(w) && !blocks.insert(w) {
                return bad(format!(
                    "slot {i}: string block {w:#x} is shared with another entry"
                ));
            }
        }
    }
    if full != h.size.load(Relaxed) {
        return bad(format!(
            "size is {} but the table holds {full} entries",
            h.size.load(Relaxed)
        ));
    }
    if tombs != h.tombstones.load(Relaxed) {
        return bad(format!(
            "tombstones is {} but the table has {tombs}",
            h.tombstones.load(Relaxed)
        ));
    }
    if full > core.info(crate::raw::types::Info::MaxEntries) {
        return bad("the table holds more than max_entries entries".into());
    }
    // ---- arena: walk every block
    let mut off = core.arena_off;
    let (mut used, mut free_blocks) = (0u64, HashSet::new());
    while off < top {
        if off + BLOCK_HEADER as u64 > top {
            return bad(format!("arena: a block header at {off} runs past the top"));
        }
        let w = core.word_at(off).load(Relaxed);
        let class = ((w >> 32) & 0xff) as usize;
        if w >> 48 != BLOCK_MAGIC || class >= NCLASSES {
            return bad(format!("arena: bad block header at {off}"));
        }
        let size = class_size(class);
        if off + size > top {
            return bad(format!("arena: block at {off} runs past the top"));
        }
        let is_free = w & F_FREE != 0;
        if blocks.contains(&off) {
            if is_free {
                return bad(format!("arena: block {off} is in use and marked free"));
            }
            used += size;
        } else if is_free {
            free_blocks.insert(off);
        } else {
            return bad(format!(
                "arena: block {off} is neither referenced by an entry nor free (leaked)"
            ));
        }
        off += size;
    }
    if let Some(b) = blocks.iter().find(|&&b| b >= top) {
        return bad(format!("arena: referenced block {b} lies past the top"));
    }
    if used != h.arena_used.load(Relaxed) {
        return bad(format!(
            "arena_used is {} but live blocks hold {used}",
            h.arena_used.load(Relaxed)
        ));
    }
    // free lists: every member a free block of its class, no cycles
    let mut listed = HashSet::new();
    for (c, head) in h.free_heads.iter().enumerate() {
        let mut b = head.load(Relaxed);
        while b != 0 {
            if !free_blocks.contains(&b) {
                return bad(format!("free list {c}: {b} is not a free block"));
            }
            if ((core.word_at(b).load(Relaxed) >> 32) & 0xff) as usize != c {
                return bad(format!("free list {c}: block {b} is of another size class"));
            }
            if !listed.insert(b) {
                return bad(format!("free list {c}: a cycle at {b}"));
            }
            b = core.word_at(b + 8).load(Relaxed);
        }
    }
    // no leak: a block that no entry references is on a free list
    if let Some(b) = free_blocks.iter().find(|b| !listed.contains(*b)) {
        return bad(format!("arena: free block {b} is on no free list (leaked)"));
    }
    // ---- LRU
    if let Err(e) = core.check_lru() {
        return bad(format!("LRU: {e}"));
    }
    if core.lru_on && full > core.max_size {
        return bad("the map holds more than max_size entries".into());
    }
    Ok(())
}

//! Expiry: each entry of a TTL map has an expiry time in wall-clock seconds
//! (0 = never) in its slot's extension word. Expired entries are invisible
//! to every read at once and are removed by the next write that meets them,
//! by `flush_expired*`, or by eviction.

use crate::format::layout::EXT_EXPIRY;
use crate::raw::table::{Shape, Table};
use std::sync::atomic::Ordering::Relaxed;

/// Wall-clock seconds now (the coarse clock: one vDSO read, no syscall).
#[inline(always)]
pub fn now() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    ts.tv_sec.clamp(0, u32::MAX as libc::time_t) as u32
}

/// The expiry for an entry stored at `now` with a lifetime of `secs`
/// (0 = permanent).
#[inline(always)]
pub fn expiry_after(now: u32, secs: u64) -> u64 {
    if secs == 0 {
        0
    } else {
        (now as u64 + secs).clamp(1, EXT_EXPIRY)
    }
}

/// A map's expiry settings: whether it has TTL, and the default lifetime.
#[derive(Debug, Clone, Copy)]
pub struct Ttl {
    /// Expiry is on (`ttl > 0` at creation).
    pub on: bool,
    /// The default lifetime in seconds.
    pub default: u64,
}

impl Ttl {
    /// The expiry an overwrite gives the live slot `i` of `t` at `now`
    /// (SPEC section 5): a TTL write (`ttl` = its seconds) sets its own
    /// lifetime; any other write refreshes the entry to the default
    /// lifetime, except that a permanent entry stays permanent. `None`
    /// (leave the word alone) on a map without TTL.
    #[inline(always)]
    pub(crate) fn expiry_on_write<S: Shape>(
        &self,
        t: &Table<S>,
        i: usize,
        now: u32,
        ttl: Option<u64>,
    ) -> Option<u64> {
        if !self.on {
            return None;
        }
        Some(match ttl {
            Some(secs) => expiry_after(now, secs),
            None if t.ext(i).load(Relaxed) & EXT_EXPIRY == 0 => 0,
            None => expiry_after(now, self.default),
        })
    }

    /// A write that is not a TTL write (a counter, `max`/`min`, `touch`)
    /// restarts a live entry's default lifetime; a permanent entry stays
    /// permanent (SPEC section 5). The word keeps its LRU mark, and is not
    /// stored when nothing changes (repeated counters within one second do
    /// not dirty the line). Safe without the writer lock: writers are kept
    /// out by the counter indicators, and concurrent counters store the
    /// same second or a later one.
    #[inline(always)]
    pub(crate) fn refresh_expiry<S: Shape>(&self, t: &Table<S>, i: usize, now: u32) {
        let Some(ne) = self.expiry_on_write(t, i, now, None).filter(|&ne| ne != 0) else {
            return;
        };
        let e = t.ext(i).load(Relaxed);
        if e & EXT_EXPIRY != ne {
            t.ext(i)
                .store((e & !EXT_EXPIRY) | ne, std::sync::atomic::Ordering::Release);
            crate::fault::point();
        }
    }

    /// True if an extension word says its entry has expired at `now`. The
    /// clock has whole seconds, so an entry lives through the second its
    /// expiry names: a lifetime of `t` seconds lasts at least `t` and less
    /// than `t + 1` seconds (never close to 0 for `t = 1`).
    #[inline(always)]
    pub(crate) fn expired(&self, ext: u64, now: u32) -> bool {
        let e = ext & EXT_EXPIRY;
        self.on && e != 0 && e < now as u64
    }
}

/// Seconds left for an extension word (0 = permanent).
#[inline(always)]
pub fn remaining(ext: u64, now: u32) -> u64 {
    let e = ext & EXT_EXPIRY;
    if e == 0 {
        0
    } else {
        e.saturating_sub(now as u64).max(1)
    }
}

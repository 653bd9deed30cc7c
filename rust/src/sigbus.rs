//! Surviving a map file truncated under our mapping.
//!
//! Touching a page of a shared mapping beyond the end of its file raises
//! SIGBUS, which would kill the process: another process (or a hostile
//! user) truncating the file must not be able to do that. Every mapping is
//! registered here; a SIGBUS inside one of them replaces the missing page
//! with a private zero page (so the access completes, reading zeros that the
//! engine's checks treat as damage) and marks the mapping. Every call into
//! the engine checks the mark afterwards and reports the map as truncated.
//! A SIGBUS anywhere else is handed back to the previous disposition.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::*};
use std::sync::Once;

const SLOTS: usize = 1024;

struct Range {
    base: AtomicUsize,
    len: AtomicUsize,
    hit: AtomicU32,
}

static RANGES: [Range; SLOTS] = [const {
    Range {
        base: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        hit: AtomicU32::new(0),
    }
}; SLOTS];
static INSTALL: Once = Once::new();
static mut PREVIOUS: Option<libc::sigaction> = None;

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    for r in &RANGES {
        let base = r.base.load(Acquire);
        if base != 0 && addr >= base && addr < base + r.len.load(Acquire) {
            let page = addr & !4095;
            // SAFETY: the page lies inside our own mapping; replacing it with
            // a private zero page is what lets the faulting access complete.
            unsafe {
                libc::mmap(
                    page as *mut libc::c_void,
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
            }
            r.hit.store(1, Release);
            return;
        }
    }
    // Not ours: restore the previous disposition; the access faults again.
    // SAFETY: PREVIOUS was written once, before the handler was installed.
    unsafe {
        let prev = std::ptr::addr_of!(PREVIOUS).read();
        match prev {
            Some(p) => libc::sigaction(libc::SIGBUS, &p, std::ptr::null_mut()),
            None => libc::signal(libc::SIGBUS, libc::SIG_DFL) as libc::c_int,
        };
    }
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: plain sigaction setup; PREVIOUS is written before the
        // handler can run.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigbus as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old);
            std::ptr::addr_of_mut!(PREVIOUS).write(Some(old));
            libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
        }
    });
}

/// Watch `[base, base + len)`; returns its slot (None if all are taken:
/// that mapping then is not protected).
pub fn register(base: usize, len: usize) -> Option<usize> {
    install();
    for (i, r) in RANGES.iter().enumerate() {
        if r.base
            .compare_exchange(0, usize::MAX, AcqRel, Relaxed)
            .is_ok()
        {
            r.len.store(len, Release);
            r.hit.store(0, Release);
            r.base.store(base, Release);
            return Some(i);
        }
    }
    None
}

/// Stop watching a slot.
pub fn unregister(slot: usize) {
    let r = &RANGES[slot];
    r.len.store(0, Release);
    r.base.store(0, Release);
}

/// True if a SIGBUS hit this slot's mapping (the file was truncated).
#[inline(always)]
pub fn was_hit(slot: Option<usize>) -> bool {
    slot.is_some_and(|s| RANGES[s].hit.load(Acquire) != 0)
}

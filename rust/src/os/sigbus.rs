//! Surviving a map file truncated under our mapping.
//!
//! Touching a page of a shared mapping beyond the end of its file raises
//! SIGBUS, which would kill the process: another process (or a hostile
//! user) truncating the file must not be able to do that. Every mapping is
//! registered here; a SIGBUS inside one of them replaces the missing page
//! with a private zero page (so the access completes, reading zeros that the
//! engine's checks treat as damage) and marks the mapping. Every call into
//! the engine checks the mark afterwards and reports the map as truncated.
//!
//! Every other SIGBUS goes to the disposition that was in place before ours
//! (a handler is called with the same arguments; the default kills the
//! process as it would have without us). Our handler is (re)installed by
//! [`ensure`] when a map is opened, and by the Perl glue whenever Perl code
//! assigns `$SIG{BUS}` (see DESIGN.md, "Truncation under a live mapping"),
//! so that whoever sets a handler after us is chained behind us, not in
//! front: a truncated map never reaches a handler that would `die` out of
//! the middle of an engine call.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::*};
use std::sync::Mutex;

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

/// The disposition ours replaced, in one of two buffers: `ensure` writes
/// the one not in use, then flips `PREVIOUS_AT` (the handler reads the
/// current one). Only `ensure` writes, under `ENSURE`.
static mut PREVIOUS: [libc::sigaction; 2] = [const {
    // SAFETY: sigaction is plain data; all-zero is SIG_DFL with no flags.
    unsafe { std::mem::zeroed() }
}; 2];
static PREVIOUS_AT: AtomicUsize = AtomicUsize::new(0);
/// Set once our handler has been installed (a map was opened).
static ACTIVE: AtomicBool = AtomicBool::new(false);
static ENSURE: Mutex<()> = Mutex::new(());

/// True if `addr` lies in a registered mapping: then its page is replaced by
/// a zero page and the mapping marked. Async-signal-safe.
fn claim(addr: usize) -> bool {
    for r in &RANGES {
        let base = r.base.load(Acquire);
        if base != 0 && base != usize::MAX && addr >= base && addr < base + r.len.load(Acquire) {
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
            return true;
        }
    }
    false
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // si_code > 0: raised by the kernel for a fault (kill and sigqueue
    // give 0 or less), so si_addr is the faulting address.
    if code > 0 && claim(addr) {
        return;
    }
    // SAFETY: PREVIOUS[PREVIOUS_AT] was written before PREVIOUS_AT named it.
    let prev = unsafe { std::ptr::addr_of!(PREVIOUS[PREVIOUS_AT.load(Acquire)]).read() };
    chain(&prev, sig, code, info, ctx);
}

/// Hand a SIGBUS that is not ours to the disposition we replaced.
fn chain(
    prev: &libc::sigaction,
    sig: libc::c_int,
    code: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    match prev.sa_sigaction {
        libc::SIG_IGN if code <= 0 => {} // a signal sent by someone: ignored
        libc::SIG_DFL | libc::SIG_IGN => {
            // What the system would have done: a fault returns to the
            // faulting access, which faults again under the default and
            // kills the process; a sent signal is raised again under it.
            // SAFETY: sigaction and raise are async-signal-safe.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
                if code <= 0 {
                    libc::raise(libc::SIGBUS);
                }
            }
        }
        h => {
            // A handler, with or without SA_SIGINFO: both take the three
            // arguments (a one-argument handler ignores the other two).
            // SAFETY: h is the handler someone installed for SIGBUS.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(h) };
            f(sig, info, ctx);
        }
    }
}

/// Make sure our handler is the one installed for SIGBUS, remembering the
/// disposition it replaces (that one then gets every SIGBUS that is not
/// ours). Cheap when it already is: one `sigaction` query.
pub fn ensure() {
    let _g = ENSURE.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: plain sigaction calls; PREVIOUS is written (in the buffer the
    // handler does not read) before the flip that publishes it, and before
    // our handler can be installed in its place.
    unsafe {
        let mut cur: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut cur);
        if cur.sa_sigaction == on_sigbus as *const () as usize {
            return;
        }
        let next = PREVIOUS_AT.load(Acquire) ^ 1;
        std::ptr::addr_of_mut!(PREVIOUS[next]).write(cur);
        PREVIOUS_AT.store(next, Release);
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
    ACTIVE.store(true, Release);
}

/// For the Perl glue: after Perl code changed `$SIG{BUS}`, put our handler
/// back in front of the new disposition -- if a map was ever opened in
/// this process (otherwise there is nothing to protect).
#[no_mangle]
pub extern "C" fn dhms_sigbus_reassert() {
    if ACTIVE.load(Acquire) {
        ensure();
    }
}

/// Watch `[base, base + len)`; returns its slot (None if all are taken:
/// that mapping then is not protected).
pub(crate) fn register(base: usize, len: usize) -> Option<usize> {
    ensure();
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
pub(crate) fn unregister(slot: usize) {
    let r = &RANGES[slot];
    r.len.store(0, Release);
    r.base.store(0, Release);
}

/// True if a SIGBUS hit this slot's mapping (the file was truncated).
#[inline(always)]
pub(crate) fn was_hit(slot: Option<usize>) -> bool {
    slot.is_some_and(|s| RANGES[s].hit.load(Acquire) != 0)
}

//! The SIGBUS handler and a handler of the program's own: a fault inside a
//! map whose file was truncated is ours (reported as truncation, never seen
//! by the program's handler); every other SIGBUS is chained to the handler
//! that was installed before ours -- or installed after it, once
//! `sigbus::ensure` has put ours back in front.

mod common;
use common::*;
use hashmap_shared::testing::sigbus;
use hashmap_shared::testing::{Out, Variant};
use std::sync::atomic::{AtomicUsize, Ordering};

static FOREIGN_FAULTS: AtomicUsize = AtomicUsize::new(0);
/// One fork at a time: a child must not inherit a lock another test thread holds.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The program's own handler: counts, and maps a zero page over the fault
/// so that the access completes.
extern "C" fn own_handler(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    FOREIGN_FAULTS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: a SA_SIGINFO handler gets a valid siginfo; the page is the
    // one that faulted, in a mapping of this test's own.
    unsafe {
        let page = (*info).si_addr() as usize & !4095;
        libc::mmap(
            page as *mut libc::c_void,
            4096,
            libc::PROT_READ,
            libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
    }
}

fn install_own_handler() {
    // SAFETY: plain sigaction setup.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = own_handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

/// Read a page of a file mapping of our own whose file was truncated.
fn foreign_fault(t: &Tmp) -> u8 {
    let path = format!("{}.other", t.1);
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(8192).unwrap();
    // SAFETY: a fresh shared read-only mapping of our own file.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    f.set_len(0).unwrap();
    // SAFETY: inside the mapping; the handler makes the access complete.
    let b = unsafe { std::ptr::read_volatile((p as *const u8).add(4096)) };
    std::fs::remove_file(&path).unwrap();
    b
}

/// In a forked child: the own handler installed before (or after, then
/// `ensure`) opening a map; truncation is ours, a foreign fault is theirs.
fn check(own_first: bool) {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Tmp::new("sigbus");
    // SAFETY: the child only runs this test's code and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: alarm has no preconditions.
        unsafe { libc::alarm(60) };
        if own_first {
            install_own_handler();
        }
        let mut m = open(&t, Variant::SS, 10_000);
        for i in 0..2000 {
            put(
                &mut *m,
                &bytes(format!("k{i}").as_bytes()),
                &bytes(&[b'v'; 100]),
            );
        }
        if !own_first {
            install_own_handler();
            sigbus::ensure();
        }
        t.truncate(4096);
        let mut buf = vec![0u8; 200];
        for i in 0..2000 {
            let mut o = Out::with_vec(&mut buf);
            let _ = m.get(&item(&bytes(format!("k{i}").as_bytes())), &mut o);
        }
        let ours_ok = m.core_ref().truncated() && FOREIGN_FAULTS.load(Ordering::SeqCst) == 0;
        let theirs_ok = foreign_fault(&t) == 0 && FOREIGN_FAULTS.load(Ordering::SeqCst) == 1;
        // SAFETY: the forked child leaves without running the parent's code.
        unsafe {
            libc::_exit(if ours_ok && theirs_ok {
                0
            } else if ours_ok {
                2
            } else {
                1
            })
        };
    }
    let mut st = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert_eq!(
        st,
        0,
        "own handler {}: exit 1 = the truncation reached it, 2 = a foreign fault did not",
        if own_first { "first" } else { "after" }
    );
}

/// Both orders in one test, one after the other: no other test thread is
/// running when either child is forked (a rare hang of a child forked while
/// the other test's thread was live was seen under heavy load).
#[test]
fn a_handler_installed_before_or_after_gets_only_the_faults_that_are_not_ours() {
    check(true);
    check(false);
}

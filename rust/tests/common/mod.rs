//! Helpers shared by the integration tests.
#![allow(dead_code)]

use hashmap_shared::testing::{open_any, AnyMap};
use hashmap_shared::testing::{Entry, Item, Out, Params, Status, Variant};
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};

static N: AtomicU32 = AtomicU32::new(0);

/// A fresh path under the temp dir (removed by `Tmp`'s drop).
pub struct Tmp(pub CString, pub String);

impl Tmp {
    pub fn new(tag: &str) -> Tmp {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm".into()
        } else {
            std::env::temp_dir()
        };
        let p = dir.join(format!(
            "dhms-test-{}-{}-{}",
            std::process::id(),
            tag,
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let s = p.to_string_lossy().into_owned();
        let _ = std::fs::remove_file(&s);
        Tmp(CString::new(s.clone()).unwrap(), s)
    }
}

impl Tmp {
    /// Truncate the file to `len` bytes, as another process would.
    pub fn truncate(&self, len: u64) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.1)
            .unwrap()
            .set_len(len)
            .unwrap();
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.1);
    }
}

pub fn open(t: &Tmp, v: Variant, max_entries: u64) -> Box<dyn AnyMap> {
    open_any(&t.0, v, &Params::new(max_entries)).unwrap()
}

pub fn item(e: &Entry) -> Item<'_> {
    match e {
        Entry::Int(n) => Item::int(*n),
        Entry::Bytes(b, u) => {
            let mut i = Item::bytes(b);
            i.utf8 = *u as u32;
            i
        }
    }
}

/// Read one value through an `Out`, growing the buffer on `Small`.
pub fn read_out(is_bytes: bool, mut f: impl FnMut(&mut Out) -> Status) -> Option<Entry> {
    let mut buf = vec![0u8; 4];
    loop {
        let mut o = Out::with_vec(&mut buf);
        match f(&mut o) {
            Status::Ok => {
                return Some(if is_bytes {
                    Entry::Bytes(o.written().to_vec(), o.utf8 != 0)
                } else {
                    Entry::Int(o.num)
                })
            }
            Status::Small => {
                let n = o.len;
                buf.resize(n, 0)
            }
            Status::False => return None,
            s => panic!("unexpected {s:?}"),
        }
    }
}

pub fn val_is_bytes(v: Variant) -> bool {
    matches!(v, Variant::I16S | Variant::I32S | Variant::IS | Variant::SS)
}

pub fn key_is_bytes(v: Variant) -> bool {
    matches!(v, Variant::SI16 | Variant::SI32 | Variant::SI | Variant::SS)
}

pub fn get(m: &mut dyn AnyMap, v: Variant, k: &Entry) -> Option<Entry> {
    let ki = item(k);
    read_out(val_is_bytes(v), |o| m.get(&ki, o).unwrap())
}

pub fn put(m: &mut dyn AnyMap, k: &Entry, val: &Entry) -> Status {
    m.put(&item(k), &item(val)).unwrap()
}

pub fn int(n: i64) -> Entry {
    Entry::Int(n)
}

pub fn bytes(s: &[u8]) -> Entry {
    Entry::Bytes(s.to_vec(), false)
}

/// Small deterministic PRNG (xorshift64*).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Tests that fork take this first (see [`one_at_a_time`]), one at a time, so that no other test
/// thread holds a lock (malloc's) at the instant of a fork.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Run `f` in a forked child under an alarm; the child's exit status is its
/// verdict (0 = pass), so a panic or a signal there fails the test here.
pub fn in_child(f: impl FnOnce() -> i32) -> i32 {
    let pid = spawn_child(60, f);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        1000 + libc::WTERMSIG(status)
    }
}

/// Fork a child that runs `f` under `alarm(secs)` and `_exit`s with its
/// code (99 if it panicked); the caller reaps it. Take [`one_at_a_time`]
/// (or the test file's own lock) first: the child's copy of this thread
/// must be the only one that runs.
pub fn spawn_child(secs: u32, f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child only runs `f` and _exits; it never returns here.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: alarm has no preconditions.
        unsafe { libc::alarm(secs) };
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(99);
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Hold while a test forks (see [`in_child`]).
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

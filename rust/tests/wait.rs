//! Every wait ends (SPEC section 7): a wait on a live process that makes no
//! progress gives up after the handle's wait timeout with an error naming
//! what it waited for and the process slot holding it; a holder that lets go
//! within the timeout is waited for; words that no live process can have
//! written (a lock word naming a slot beyond the table or a generation the
//! slot does not have, a counter flag that is not its slot's generation) are
//! cleared at once and counted in `stat_recoveries`.
//!
//! The "live process" is a forked child that opened its own handle (so it
//! owns process slot 1, the parent slot 0) and then idles; the words are
//! either really held by it (`debug_hold_lock`) or forged with `pwrite`, as a
//! hostile process could. Offsets are those asserted in `layout.rs`.

mod common;
use common::*;
use hashmap_shared::testing::{open_any, AnyMap};
use hashmap_shared::testing::{Info, Item, Out, Params, Status, Variant};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// fork() in a multi-threaded test harness: run these one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const LOCK: u64 = 256;
const SEQ: u64 = 320;
const SLOTS: u64 = 4096;
const SLOT_SIZE: u64 = 64;
/// The wait timeout these tests set.
const LIMIT: Duration = Duration::from_millis(300);
/// Generous bound for "gave up (or got through) in time".
const BOUND: Duration = Duration::from_secs(5);

fn file(t: &Tmp) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&t.1)
        .unwrap()
}

fn peek32(t: &Tmp, off: u64) -> u32 {
    let mut b = [0u8; 4];
    file(t).read_exact_at(&mut b, off).unwrap();
    u32::from_le_bytes(b)
}

fn peek64(t: &Tmp, off: u64) -> u64 {
    let mut b = [0u8; 8];
    file(t).read_exact_at(&mut b, off).unwrap();
    u64::from_le_bytes(b)
}

fn poke32(t: &Tmp, off: u64, v: u32) {
    file(t).write_all_at(&v.to_le_bytes(), off).unwrap();
}

fn poke64(t: &Tmp, off: u64, v: u64) {
    file(t).write_all_at(&v.to_le_bytes(), off).unwrap();
}

fn gen_of(t: &Tmp, slot: u64) -> u32 {
    peek32(t, SLOTS + slot * SLOT_SIZE)
}

fn flag_off(slot: u64) -> u64 {
    SLOTS + slot * SLOT_SIZE + 4
}

fn lock_word(slot: u64, gen: u32) -> u64 {
    ((gen as u64) << 32) | (slot + 1)
}

/// A live process attached to the map: a child that opened its own handle
/// (`hold`: and took the writer lock; `mid_write`: and left the sequence
/// odd) and idles until killed.
struct Live(libc::pid_t);

impl Live {
    fn start(t: &Tmp, hold: bool, mid_write: bool) -> Live {
        let path = t.0.clone();
        Live::spawn(move || {
            std::panic::catch_unwind(|| {
                let mut c = open_any(&path, Variant::SI, &Params::new(1)).unwrap();
                if hold {
                    hashmap_shared::testing::debug_hold_lock(c.core(), mid_write).unwrap();
                }
                std::mem::forget(c);
            })
            .is_ok()
        })
    }

    /// Fork a child that runs `setup`, reports whether it worked, and idles
    /// until killed (under an alarm); returns once the child has reported.
    fn spawn(setup: impl FnOnce() -> bool) -> Live {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid out-array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only runs `setup`, reports and sleeps; it never
        // returns into the harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: alarm has no preconditions.
            unsafe { libc::alarm(60) };
            let b = if setup() { b'r' } else { b'x' };
            // SAFETY: our pipe.
            unsafe { libc::write(fds[1], (&b as *const u8).cast(), 1) };
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        let mut b = 0u8;
        // SAFETY: our pipe.
        unsafe {
            libc::close(fds[1]);
            assert_eq!(libc::read(fds[0], (&mut b as *mut u8).cast(), 1), 1);
            libc::close(fds[0]);
        }
        assert_eq!(b, b'r', "the live child could not set up");
        Live(pid)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // SAFETY: our child.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
            libc::waitpid(self.0, std::ptr::null_mut(), 0);
        }
    }
}

/// A fresh SI map with "a" => 1 and "b" => 2, opened in this process (slot
/// 0) with the short wait timeout.
fn fresh(tag: &str) -> (Tmp, Box<dyn AnyMap>) {
    let t = Tmp::new(tag);
    let mut m = open(&t, Variant::SI, 100);
    put(&mut *m, &bytes(b"a"), &int(1));
    put(&mut *m, &bytes(b"b"), &int(2));
    m.set_wait_timeout(LIMIT).unwrap();
    (t, m)
}

fn recoveries(m: &dyn AnyMap) -> u64 {
    m.core_ref().info(Info::StatRecoveries)
}

/// A put that must give up: returns its error and checks it took at least
/// the timeout (a live holder is never given up early) and ended in time.
fn put_gives_up(m: &mut dyn AnyMap, key: &[u8]) -> String {
    let t0 = Instant::now();
    let r = m.put(&Item::bytes(key), &Item::int(9));
    let took = t0.elapsed();
    let e = r.expect_err("the put should have given up").0;
    assert!(took >= LIMIT, "gave up after {took:?}, before the timeout");
    assert!(took < BOUND, "gave up only after {took:?}");
    e
}

fn get_a(m: &mut dyn AnyMap) -> hashmap_shared::Result<Status> {
    let mut buf = vec![0u8; 8];
    let mut o = Out::with_vec(&mut buf);
    m.get(&Item::bytes(b"a"), &mut o)
}

#[test]
fn wait_timeout_setting() {
    let t = Tmp::new("setting");
    let mut m = open(&t, Variant::SI, 10);
    assert_eq!(m.wait_timeout(), Duration::from_secs(10), "the default");
    m.set_wait_timeout(Duration::from_millis(1500)).unwrap();
    assert_eq!(m.wait_timeout(), Duration::from_millis(1500));
    for bad in [Duration::ZERO, Duration::from_secs(86_401)] {
        let e = m.set_wait_timeout(bad).unwrap_err().0;
        assert!(e.contains("wait_timeout must be"), "{e}");
    }
    assert_eq!(m.wait_timeout(), Duration::from_millis(1500), "unchanged");
}

#[test]
fn live_lock_holder_times_out_and_nothing_changes() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (t, mut m) = fresh("live-lock");
    let kid = Live::start(&t, true, false);
    let e = put_gives_up(&mut *m, b"c");
    assert!(
        e.contains("timed out after 0.3 s waiting for the writer lock held by process slot 1")
            && e.contains("see wait_timeout"),
        "{e}"
    );
    // Readers do not wait for a writer between changes.
    assert_eq!(get_a(&mut *m).unwrap(), Status::Ok);
    assert_eq!(recoveries(&*m), 0, "a live holder is not taken for dead");
    drop(kid);
    // The holder died: the next put recovers and gets through.
    assert_eq!(put(&mut *m, &bytes(b"c"), &int(3)), Status::Ok);
    assert_eq!(recoveries(&*m), 1);
    assert_eq!(m.core_ref().info(Info::Size), 3);
    m.verify().unwrap();
}

#[test]
fn reader_of_a_stuck_change_times_out() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (t, mut m) = fresh("live-seq");
    let kid = Live::start(&t, true, true);
    assert_eq!(peek64(&t, SEQ) & 1, 1, "the child left the sequence odd");
    let t0 = Instant::now();
    let e = get_a(&mut *m).unwrap_err().0;
    let took = t0.elapsed();
    assert!(took >= LIMIT && took < BOUND, "took {took:?}");
    assert!(
        e.contains("waiting for the change in progress by process slot 1"),
        "{e}"
    );
    drop(kid);
    // Dead now: the reader takes the lock, which repairs, and reads.
    assert_eq!(get_a(&mut *m).unwrap(), Status::Ok);
    assert_eq!(recoveries(&*m), 1);
    m.verify().unwrap();
}

#[test]
fn a_forged_lock_word_naming_a_live_process_times_out_until_it_moves() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (t, mut m) = fresh("forged-lock");
    let kid = Live::start(&t, false, false);
    let word = lock_word(1, gen_of(&t, 1));
    poke64(&t, LOCK, word);
    let e = put_gives_up(&mut *m, b"c");
    assert!(e.contains("writer lock held by process slot 1"), "{e}");
    assert_eq!(peek64(&t, LOCK) & 0xffff_7fff_ffff, word, "left as found");

    // The word moves (here: freed by a "holder" after 150 ms, half the
    // timeout): the waiter waits and then gets through.
    let path = t.1.clone();
    // SAFETY: the child pokes the file and _exits.
    let freer = unsafe { libc::fork() };
    if freer == 0 {
        // SAFETY: no preconditions.
        unsafe { libc::alarm(10) };
        std::thread::sleep(Duration::from_millis(150));
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.write_all_at(&0u64.to_le_bytes(), LOCK).unwrap();
        // SAFETY: no preconditions.
        unsafe { libc::_exit(0) };
    }
    let t0 = Instant::now();
    assert_eq!(put(&mut *m, &bytes(b"c"), &int(3)), Status::Ok);
    assert!(t0.elapsed() < BOUND);
    // SAFETY: our child.
    unsafe { libc::waitpid(freer, std::ptr::null_mut(), 0) };
    assert_eq!(m.core_ref().info(Info::Size), 3);
    drop(kid);
}

#[test]
fn garbage_lock_words_are_taken_over_at_once() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (t, mut m) = fresh("garbage-lock");
    let _kid = Live::start(&t, false, false);
    let live_gen = gen_of(&t, 1);
    let cases = [
        ("a slot never claimed", lock_word(4000, 7)),
        ("generation 0", lock_word(1, 0)),
        (
            "the live slot, another generation",
            lock_word(1, live_gen + 1),
        ),
        (
            "the asking handle's own slot and generation",
            lock_word(0, gen_of(&t, 0)),
        ),
    ];
    for (what, word) in cases {
        let before = recoveries(&*m);
        poke64(&t, LOCK, word);
        // A long timeout: taking over must not depend on it.
        m.set_wait_timeout(Duration::from_secs(60)).unwrap();
        let t0 = Instant::now();
        assert_eq!(put(&mut *m, &bytes(b"c"), &int(3)), Status::Ok, "{what}");
        assert!(t0.elapsed() < BOUND, "{what}: took {:?}", t0.elapsed());
        assert_eq!(recoveries(&*m), before + 1, "{what}: counted");
        assert_eq!(peek64(&t, LOCK), 0, "{what}: released");
    }
    m.verify().unwrap();
}

#[test]
fn counter_flags() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (t, mut m) = fresh("flags");
    let kid = Live::start(&t, false, false);
    let gen = gen_of(&t, 1);

    // Not the slot's generation: garbage, cleared at once, counted.
    assert_ne!(gen, 0xffff_ffff);
    for garbage in [gen + 1, gen + 1000, 0xffff_ffff] {
        poke32(&t, flag_off(1), garbage);
        m.set_wait_timeout(Duration::from_secs(60)).unwrap();
        let before = recoveries(&*m);
        let t0 = Instant::now();
        assert_eq!(put(&mut *m, &bytes(b"c"), &int(3)), Status::Ok);
        assert!(t0.elapsed() < BOUND);
        assert_eq!(recoveries(&*m), before + 1, "flag {garbage:#x} counted");
        assert_eq!(peek32(&t, flag_off(1)), 0, "flag {garbage:#x} cleared");
    }

    // The live owner's generation (a counter operation that never ends):
    // the writer gives up, releasing the lock it held, having changed
    // nothing.
    m.set_wait_timeout(LIMIT).unwrap();
    poke32(&t, flag_off(1), gen);
    let e = put_gives_up(&mut *m, b"d");
    assert!(
        e.contains("waiting for the counter operation of process slot 1 to finish"),
        "{e}"
    );
    assert_eq!(peek64(&t, LOCK), 0, "the lock was released");
    assert_eq!(m.core_ref().info(Info::Size), 3, "nothing stored");
    assert_eq!(peek32(&t, flag_off(1)), gen, "a live owner's flag is kept");

    // ... also after taking the lock over from a dead holder: the dead
    // holder's word is put back, so the next taker still recovers.
    let dead = lock_word(2, 0x55);
    poke32(&t, SLOTS + 2 * SLOT_SIZE, 0x55);
    poke64(&t, LOCK, dead);
    let e = put_gives_up(&mut *m, b"d");
    assert!(e.contains("counter operation of process slot 1"), "{e}");
    assert_eq!(peek64(&t, LOCK) & !(1 << 31), dead, "the dead word is back");

    // The owner dies: its flag is cleared, the dead lock recovered.
    drop(kid);
    let before = recoveries(&*m);
    assert_eq!(put(&mut *m, &bytes(b"d"), &int(4)), Status::Ok);
    assert_eq!(
        recoveries(&*m),
        before + 2,
        "the dead lock and the dead flag"
    );
    assert_eq!(peek32(&t, flag_off(1)), 0);
    assert_eq!(m.core_ref().info(Info::Size), 4);
    m.verify().unwrap();
}

/// A live process that holds the creation lock (as a creator stuck halfway
/// would) makes an open give up after the default wait timeout, naming the
/// lock; once the holder is gone, the open goes through.
#[test]
fn a_creation_lock_held_by_a_live_process_times_out() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (t, m) = fresh("creation");
    drop(m);
    let path = t.1.clone();
    let live = Live::spawn(move || {
        // Take the creation lock (layout::INIT_LOCK_BYTE) and keep it: the
        // descriptor is leaked with the idle child.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        // SAFETY: flock is plain data; zero is valid for an OFD lock.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as i16;
        fl.l_whence = libc::SEEK_SET as i16;
        fl.l_start = 1 << 62;
        fl.l_len = 1;
        let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
        // SAFETY: a valid flock for F_OFD_SETLK on our descriptor.
        unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) == 0 }
    });
    let start = Instant::now();
    let e = match open_any(&t.0, Variant::SI, &Params::new(1)) {
        Ok(_) => panic!("opened although the creation lock is held"),
        Err(e) => e,
    };
    let took = start.elapsed();
    assert!(
        e.0.contains("timed out after 10 s waiting for the creation lock"),
        "{}",
        e.0
    );
    assert!(took >= Duration::from_secs(10), "gave up after {took:?}");
    assert!(
        took < Duration::from_secs(10) + BOUND,
        "gave up only after {took:?}"
    );
    drop(live);
    let mut m = open_any(&t.0, Variant::SI, &Params::new(1)).unwrap();
    assert_eq!(get_a(&mut *m).unwrap(), Status::Ok);
}

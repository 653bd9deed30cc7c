//! Several handles and several processes on one map: visibility, counters
//! without lost increments, race-free creation, and writers that die while
//! holding the lock.

mod common;
use common::*;
use hashmap_shared::testing::{Info, Status, Variant};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// fork() in a multi-threaded test harness: run these one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Fork a child that runs `f` under an alarm and `_exit`s with its code.
fn spawn(f: impl FnOnce() -> i32) -> libc::pid_t {
    spawn_child(30, f)
}

/// Wait for `pid`; returns its exit code (panics if it died by a signal,
/// unless `killed_ok`).
fn reap(pid: libc::pid_t) -> i32 {
    let mut st = 0;
    // SAFETY: st is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert!(
        libc::WIFEXITED(st),
        "child {pid} died by signal {}",
        libc::WTERMSIG(st)
    );
    libc::WEXITSTATUS(st)
}

/// A pipe barrier: children block reading until the parent closes it.
struct Barrier(i32, i32);
impl Barrier {
    fn new() -> Barrier {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid out-array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        Barrier(fds[0], fds[1])
    }
    fn wait(&self) {
        // SAFETY: closing our copy of the write end, then reading until EOF.
        unsafe {
            libc::close(self.1);
            let mut b = 0u8;
            libc::read(self.0, (&mut b as *mut u8).cast(), 1);
        }
    }
    fn release(self) {
        // SAFETY: our fds.
        unsafe {
            libc::close(self.1);
            libc::close(self.0);
        }
    }
}

#[test]
fn two_handles_see_each_other() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Tmp::new("two");
    let mut a = open(&t, Variant::SS, 1000);
    let mut b = open(&t, Variant::SS, 1);
    assert_eq!(
        b.core_ref().info(Info::MaxEntries),
        1000,
        "header is authoritative"
    );
    for i in 0..500 {
        put(
            &mut *a,
            &bytes(format!("k{i}").as_bytes()),
            &bytes(format!("value number {i}").as_bytes()),
        );
    }
    for i in 0..500 {
        assert_eq!(
            get(&mut *b, Variant::SS, &bytes(format!("k{i}").as_bytes())),
            Some(bytes(format!("value number {i}").as_bytes()))
        );
    }
    assert_eq!(b.remove(&item(&bytes(b"k7"))).unwrap(), Status::Ok);
    assert_eq!(get(&mut *a, Variant::SS, &bytes(b"k7")), None);
    assert_ne!(
        a.core_ref().slot(),
        b.core_ref().slot(),
        "each handle has its own slot"
    );
}

#[test]
fn forked_counters_lose_nothing() {
    // through the public API: what a Rust program sharing counters does
    use hashmap_shared::{Bytes, Map, Params, I64};
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Tmp::new("incr");
    let mut m = Map::<Bytes, I64>::open(&t.1, &Params::new(100)).unwrap();
    assert!(m.put(b"hits", 0).unwrap());
    let bar = Barrier::new();
    let kids: Vec<_> = (0..4)
        .map(|c| {
            let path = t.1.clone();
            let (r, w) = (bar.0, bar.1);
            spawn(move || {
                Barrier(r, w).wait();
                let mut m = Map::<Bytes, I64>::open(&path, &Params::new(1)).unwrap();
                let own = format!("child{c}");
                for i in 1..=20_000 {
                    // one existing key (lock-free path) and one per child (inserted once)
                    assert!(m.incr(b"hits").unwrap() >= i);
                    assert_eq!(m.incr_by(own.as_bytes(), 2).unwrap(), 2 * i);
                }
                0
            })
        })
        .collect();
    bar.release();
    for k in kids {
        assert_eq!(reap(k), 0);
    }
    assert_eq!(m.get(b"hits").unwrap(), Some(80_000));
    for c in 0..4 {
        assert_eq!(m.get(format!("child{c}").as_bytes()).unwrap(), Some(40_000));
    }
}

#[test]
fn inherited_handle_works_in_children() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Tmp::new("inherit");
    let mut m = open(&t, Variant::II, 1000);
    let kids: Vec<_> = (0..3)
        .map(|c| {
            let mp: *mut dyn hashmap_shared::testing::AnyMap = &mut *m;
            spawn(move || {
                // SAFETY: the child has its own copy of the parent's memory.
                let m = unsafe { &mut *mp };
                let mut res = 0;
                for i in 0..5000 {
                    m.incr_by(&item(&int(0)), 1, &mut res).unwrap();
                    put(m, &int(1000 * (c + 1) + i % 100), &int(i));
                }
                0
            })
        })
        .collect();
    for k in kids {
        assert_eq!(reap(k), 0);
    }
    assert_eq!(get(&mut *m, Variant::II, &int(0)), Some(int(15_000)));
    assert_eq!(m.core_ref().info(Info::Size), 301);
    assert_eq!(
        m.core_ref().info(Info::StatRecoveries),
        0,
        "no live process was taken for dead"
    );
}

#[test]
fn racing_creators_make_one_map() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for round in 0..5 {
        let t = Tmp::new("create");
        let bar = Barrier::new();
        let kids: Vec<_> = (0..8)
            .map(|c| {
                let path = t.0.clone();
                let (r, w) = (bar.0, bar.1);
                spawn(move || {
                    Barrier(r, w).wait();
                    let mut m = match hashmap_shared::testing::open_any(
                        &path,
                        Variant::II,
                        &hashmap_shared::testing::Params::new(100 + c),
                    ) {
                        Ok(m) => m,
                        Err(e) => {
                            eprintln!("open failed: {e}");
                            return 1;
                        }
                    };
                    (put(&mut *m, &int(c as i64), &int(round)) != Status::Ok) as i32
                })
            })
            .collect();
        bar.release();
        for k in kids {
            assert_eq!(reap(k), 0);
        }
        let m = open(&t, Variant::II, 1);
        assert_eq!(
            m.core_ref().info(Info::Size),
            8,
            "round {round}: every creator's key is in one map"
        );
        assert!((100..108).contains(&m.core_ref().info(Info::MaxEntries)));
    }
}

#[test]
fn half_initialized_file_is_reinitialized() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Tmp::new("pending");
    std::fs::write(&t.1, b"DHMS-NEW").unwrap();
    let mut m = open(&t, Variant::II, 10);
    assert_eq!(put(&mut *m, &int(1), &int(2)), Status::Ok);
    let t2 = Tmp::new("foreign");
    std::fs::write(&t2.1, b"hello world, not a map at all").unwrap();
    let e = hashmap_shared::testing::open_any(
        &t2.0,
        Variant::II,
        &hashmap_shared::testing::Params::new(10),
    )
    .err()
    .unwrap();
    assert!(e.0.contains("not a Data::HashMap::Shared file"), "{e}");
    assert_eq!(
        std::fs::read(&t2.1).unwrap(),
        b"hello world, not a map at all",
        "a foreign file is left alone"
    );
}

/// 100 SS entries, "key<i>" -> "a longer value <i>" (values in the arena).
fn put_hundred(m: &mut dyn hashmap_shared::testing::AnyMap) {
    for i in 0..100 {
        put(
            m,
            &bytes(format!("key{i}").as_bytes()),
            &bytes(format!("a longer value {i}").as_bytes()),
        );
    }
}

/// The entries of [`put_hundred`] are all there, each with its value.
fn check_hundred(m: &mut dyn hashmap_shared::testing::AnyMap) {
    for i in 0..100 {
        assert_eq!(
            get(m, Variant::SS, &bytes(format!("key{i}").as_bytes())),
            Some(bytes(format!("a longer value {i}").as_bytes()))
        );
    }
}

/// A child attaches to the SS map at `t`, takes the writer lock (and with
/// `mid_write` marks a change in progress) and dies by SIGKILL holding it.
fn die_holding_the_lock(t: &Tmp, mid_write: bool) {
    let path = t.0.clone();
    let kid = spawn(move || {
        let mut c = hashmap_shared::testing::open_any(
            &path,
            Variant::SS,
            &hashmap_shared::testing::Params::new(1),
        )
        .unwrap();
        hashmap_shared::testing::debug_hold_lock(c.core(), mid_write).unwrap();
        // SAFETY: dies by signal while holding the lock.
        unsafe { libc::raise(libc::SIGKILL) };
        0
    });
    let mut st = 0;
    // SAFETY: valid out-pointer.
    unsafe { libc::waitpid(kid, &mut st, 0) };
    assert!(libc::WIFSIGNALED(st));
}

/// A child takes the lock and dies holding it; the parent's next write must
/// get through, recover, and count the recovery.
#[test]
fn dead_lock_holder_is_recovered() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for mid_write in [false, true] {
        let t = Tmp::new("dead");
        let mut m = open(&t, Variant::SS, 1000);
        put_hundred(&mut *m);
        die_holding_the_lock(&t, mid_write);
        let t0 = Instant::now();
        assert_eq!(
            put(&mut *m, &bytes(b"after"), &bytes(b"the crash")),
            Status::Ok
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!(m.core_ref().info(Info::StatRecoveries), 1);
        assert_eq!(m.core_ref().info(Info::Size), 101);
        m.verify().unwrap();
        check_hundred(&mut *m);
    }
}

/// The header word that names the parts of a repair still to run
/// (offset 552: 2 the counts and LRU order, 1 the arena).
fn repair_pending(t: &Tmp) -> u64 {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(&t.1).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, 552).unwrap();
    u64::from_le_bytes(b)
}

/// A writer dies in the middle of a change; a reader that finds it goes on
/// at once, leaving the walks of the repair (the counts over the table, the
/// free lists over every string) to the next writer, which runs them
/// before it changes anything.
#[test]
fn a_reader_goes_on_and_leaves_the_walks_of_a_repair_to_the_next_writer() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Tmp::new("reader-repairs");
    let mut m = open(&t, Variant::SS, 1000);
    put_hundred(&mut *m);
    die_holding_the_lock(&t, true);
    assert_eq!(repair_pending(&t), 0);
    // a read: it makes the sequence even (one recovery), and walks nothing
    assert_eq!(
        get(&mut *m, Variant::SS, &bytes(b"key7")),
        Some(bytes(b"a longer value 7"))
    );
    assert_eq!(m.core_ref().info(Info::StatRecoveries), 1);
    assert_eq!(repair_pending(&t), 3, "the walks are left to a writer");
    // more reads need nothing more
    check_hundred(&mut *m);
    assert_eq!(repair_pending(&t), 3);
    // the next write runs them first
    assert_eq!(
        put(
            &mut *m,
            &bytes(b"after"),
            &bytes(b"the crash, a long value")
        ),
        Status::Ok
    );
    assert_eq!(repair_pending(&t), 0);
    assert_eq!(m.core_ref().info(Info::StatRecoveries), 1);
    m.verify().unwrap();
}

/// `rounds` times: a child writer (SS, keys "r<round>-<i>", values naming
/// their key) runs a put loop — with a remove every third step, or a read of
/// an older key — and is SIGKILLed at a growing moment; the parent's next
/// put must get through at once (within 5 s), `verify` must pass, then
/// `check` runs. Returns how many rounds met a held lock (recoveries).
fn kill_writer_rounds(
    t: &Tmp,
    m: &mut dyn hashmap_shared::testing::AnyMap,
    rounds: u64,
    reads: bool,
    mut check: impl FnMut(&mut dyn hashmap_shared::testing::AnyMap),
) -> u64 {
    let mut recovered = 0;
    for round in 0..rounds {
        let path = t.0.clone();
        let kid = spawn(move || {
            let mut c = hashmap_shared::testing::open_any(
                &path,
                Variant::SS,
                &hashmap_shared::testing::Params::new(1),
            )
            .unwrap();
            let mut i = 0u64;
            loop {
                let k = format!("r{round}-{i}");
                put(
                    &mut *c,
                    &bytes(k.as_bytes()),
                    &bytes(format!("value for {k} ...........").as_bytes()),
                );
                let older = bytes(format!("r{round}-{}", i / 2).as_bytes());
                if reads {
                    get(&mut *c, Variant::SS, &older);
                } else if i % 3 == 0 {
                    c.remove(&item(&older)).unwrap();
                }
                i += 1;
            }
        });
        std::thread::sleep(Duration::from_millis(20 + 8 * round));
        // SAFETY: kill our own child.
        unsafe { libc::kill(kid, libc::SIGKILL) };
        let mut st = 0;
        // SAFETY: valid out-pointer.
        unsafe { libc::waitpid(kid, &mut st, 0) };
        let before = m.core_ref().info(Info::StatRecoveries);
        let t0 = Instant::now();
        assert_eq!(put(m, &bytes(b"parent"), &int_bytes(round)), Status::Ok);
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t0.elapsed()
        );
        recovered += m.core_ref().info(Info::StatRecoveries) - before;
        m.verify().unwrap();
        check(m);
    }
    recovered
}

/// A child in a put/remove loop is SIGKILLed at random moments; the parent
/// always gets through afterwards and the map stays consistent.
#[test]
fn writer_killed_mid_loop() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Tmp::new("kill");
    let mut m = open(&t, Variant::SS, 100_000);
    let recovered = kill_writer_rounds(&t, &mut *m, 12, false, |m| {
        // the snapshot agrees with size, and every value matches its key
        let snap = m.snapshot().unwrap();
        assert_eq!(snap.len() as u64, m.core_ref().info(Info::Size));
        for (k, v) in snap {
            if let (
                hashmap_shared::testing::Entry::Bytes(k, _),
                hashmap_shared::testing::Entry::Bytes(v, _),
            ) = (k, v)
            {
                if k != b"parent" {
                    assert_eq!(
                        v,
                        format!("value for {} ...........", String::from_utf8_lossy(&k))
                            .into_bytes()
                    );
                }
            }
        }
    });
    assert!(
        recovered >= 1,
        "a writer killed in a tight loop held the lock at least once in 12 kills"
    );
}

fn int_bytes(n: u64) -> hashmap_shared::testing::Entry {
    bytes(n.to_string().as_bytes())
}

#[test]
fn big_sparse_map_uses_little_disk() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Tmp::new("sparse");
    let mut m = open(&t, Variant::SS, 10_000_000);
    for i in 0..100 {
        put(
            &mut *m,
            &bytes(format!("key:{i}").as_bytes()),
            &bytes(b"twenty bytes of data"),
        );
    }
    let md = std::fs::metadata(&t.1).unwrap();
    use std::os::unix::fs::MetadataExt;
    let disk = md.blocks() * 512;
    assert!(disk < 1 << 20, "disk use {disk} bytes");
    assert!(
        md.len() > 100 << 20,
        "apparent size {} (regions are reserved sparse)",
        md.len()
    );
}

/// The lock holder forked a child that lives on (sharing the holder's open
/// file description until the fork hook replaced it): the holder's death
/// must still be detected.
#[test]
fn dead_holder_with_living_child_is_recovered() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Tmp::new("grandchild");
    let mut m = open(&t, Variant::II, 100);
    put(&mut *m, &int(1), &int(1));
    let path = t.0.clone();
    let (r, w) = {
        let mut fds = [0; 2];
        // SAFETY: valid out-array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        (fds[0], fds[1])
    };
    let kid = spawn(move || {
        let mut c = hashmap_shared::testing::open_any(
            &path,
            Variant::II,
            &hashmap_shared::testing::Params::new(1),
        )
        .unwrap();
        put(&mut *c, &int(2), &int(2));
        // A grandchild that sleeps, holding inherited descriptors.
        let g = spawn(|| {
            std::thread::sleep(Duration::from_secs(3));
            0
        });
        // SAFETY: write the grandchild's pid to the parent.
        unsafe { libc::write(w, (&g as *const i32).cast(), 4) };
        hashmap_shared::testing::debug_hold_lock(c.core(), true).unwrap();
        // SAFETY: die holding the lock.
        unsafe { libc::raise(libc::SIGKILL) };
        0
    });
    let mut g: i32 = 0;
    // SAFETY: read 4 bytes into g.
    assert_eq!(unsafe { libc::read(r, (&mut g as *mut i32).cast(), 4) }, 4);
    let mut st = 0;
    // SAFETY: valid out-pointer.
    unsafe { libc::waitpid(kid, &mut st, 0) };
    let t0 = Instant::now();
    assert_eq!(put(&mut *m, &int(3), &int(3)), Status::Ok);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "recovered in {:?} while the grandchild lives",
        t0.elapsed()
    );
    assert_eq!(m.core_ref().info(Info::StatRecoveries), 1);
    // SAFETY: the grandchild is our child's child; it is reparented, so just kill it.
    unsafe { libc::kill(g, libc::SIGKILL) };
}

/// Writers on an LRU+TTL map killed at random moments: the LRU list is
/// rebuilt from the stamps and stays consistent with the table.
#[test]
fn lru_writer_killed_mid_loop() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Tmp::new("kill-lru");
    let mut p = hashmap_shared::testing::Params::new(10_000);
    p.max_size = 300;
    p.ttl = 3600;
    let mut m = hashmap_shared::testing::open_any(&t.0, Variant::SS, &p).unwrap();
    // A kill lands inside a put (with the lock held) in about a third of
    // the rounds: go on, 10 rounds at a time, until one did (at most 60
    // rounds: 0.7^60 is no chance worth a flaky test).
    let mut recovered = 0;
    for _ in 0..6 {
        recovered += kill_writer_rounds(&t, &mut *m, 10, true, |m| {
            let n = m.core_ref().check_lru().unwrap();
            assert_eq!(n as u64, m.core_ref().info(Info::Size));
            assert!(n <= 300);
        });
        if recovered >= 1 {
            break;
        }
    }
    assert!(
        recovered >= 1,
        "no kill landed inside a change in 60 rounds"
    );
}

/// A file truncated under a live mapping: the process survives, and every
/// call reports the truncation instead of dying of SIGBUS.
#[test]
fn truncated_under_us_is_an_error_not_a_crash() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Tmp::new("truncate");
    let mut m = open(&t, Variant::SS, 100_000);
    for i in 0..3000 {
        put(
            &mut *m,
            &bytes(format!("key{i}").as_bytes()),
            &bytes(&[b'v'; 60]),
        );
    }
    t.truncate(4096);
    let mut o_buf = vec![0u8; 100];
    let mut o = hashmap_shared::testing::Out::with_vec(&mut o_buf);
    let k = bytes(b"key7");
    let e = m.get(&item(&k), &mut o);
    // the engine may report the damage it read, or the truncation itself;
    // through the C ABI the truncation is always what is reported
    assert!(e.is_err() || e == Ok(Status::False), "{e:?}");
    assert!(
        m.core_ref().truncated(),
        "the SIGBUS was caught and recorded"
    );
    let e = m.put(&item(&k), &item(&bytes(b"x"))).err();
    let _ = e; // any outcome but a crash
}

/// `verify` finds a leak: string blocks that no entry references and no
/// free list holds (here: the free lists' heads zeroed in the file after
/// removals put blocks on them). The crash tests rely on this check to
/// show that recovery leaks nothing.
#[test]
fn verify_reports_blocks_on_no_free_list() {
    use std::os::unix::fs::FileExt;
    let t = Tmp::new("leak");
    let mut m = open(&t, Variant::SS, 1000);
    put_hundred(&mut *m);
    for i in 0..10 {
        let k = bytes(format!("key{i}").as_bytes());
        assert_eq!(m.remove(&item(&k)).unwrap(), Status::Ok);
    }
    m.verify().expect("whole before the damage");
    drop(m);
    // header: the free-list heads, 112 words at 1088
    let f = std::fs::OpenOptions::new().write(true).open(&t.1).unwrap();
    f.write_all_at(&[0u8; 896], 1088).unwrap();
    drop(f);
    let mut m = open(&t, Variant::SS, 1000);
    let e = m.verify().expect_err("leaked blocks");
    assert!(e.to_string().contains("leaked"), "{e}");
}

/// Readers bound every string block by `arena_alloc` (header @392) and map
/// the arena that far: a file whose word lies below the arena's top or
/// past the file's size is refused at open, and `verify` names it.
#[test]
fn a_damaged_arena_alloc_is_refused() {
    use std::os::unix::fs::FileExt;
    for (what, word) in [("below the top", 0u64), ("past the file", u64::MAX / 2)] {
        let t = Tmp::new("arena-alloc");
        let mut m = open(&t, Variant::SS, 1000);
        put_hundred(&mut *m);
        drop(m);
        let f = std::fs::OpenOptions::new().write(true).open(&t.1).unwrap();
        f.write_all_at(&word.to_le_bytes(), 392).unwrap();
        drop(f);
        let p = hashmap_shared::testing::Params::new(1000);
        let e = hashmap_shared::testing::open_any(&t.0, Variant::SS, &p)
            .err()
            .unwrap_or_else(|| panic!("{what}: opened"));
        assert!(e.to_string().contains("arena_alloc"), "{what}: {e}");
    }
}

/// A free-list head near 2^64 in a hostile file (found by t/45-fuzz.t: a
/// zero head less 8) is a damaged list, not an address: inserts go on
/// (the list is dropped), nothing is read outside the mapping.
/// Damaged words of the inactive region's bookkeeping (`spare_dirty`,
/// `spare_alloc`, header @800 and @808) near 2^64 make a writer punch or
/// allocate nothing outside its region (found by t/45-fuzz.t: `spare_dirty`
/// of 2^64 - 5 wrapped a punch's offset, and the zeroing fallback wrote
/// past the mapping).
#[test]
fn spare_region_words_near_the_top_of_the_address_range_are_bounded() {
    use std::os::unix::fs::FileExt;
    for (at, w) in [
        (800, u64::MAX - 4),
        (800, u64::MAX / 2),
        (808, u64::MAX - 4),
    ] {
        let t = Tmp::new("wild-spare");
        let mut m = open(&t, Variant::II, 1000);
        for i in 0..100 {
            put(&mut *m, &int(i), &int(i * 2));
        }
        drop(m);
        let f = std::fs::OpenOptions::new().write(true).open(&t.1).unwrap();
        f.write_all_at(&w.to_le_bytes(), at).unwrap();
        drop(f);
        let mut m = open(&t, Variant::II, 1000);
        for i in 100..200 {
            assert_eq!(
                put(&mut *m, &int(i), &int(i * 2)),
                Status::Ok,
                "@{at} = {w:#x}"
            );
        }
        for i in 0..200 {
            assert_eq!(
                get(&mut *m, Variant::II, &int(i)),
                Some(int(i * 2)),
                "@{at} = {w:#x}"
            );
        }
        m.verify().unwrap();
    }
}

#[test]
fn a_free_list_head_near_the_top_of_the_address_range_is_refused() {
    use std::os::unix::fs::FileExt;
    for head in [u64::MAX - 7, u64::MAX - 15, u64::MAX / 8 * 8] {
        let t = Tmp::new("wild-head");
        let mut m = open(&t, Variant::SS, 1000);
        put_hundred(&mut *m);
        drop(m);
        let f = std::fs::OpenOptions::new().write(true).open(&t.1).unwrap();
        for class in 0..112u64 {
            f.write_all_at(&head.to_le_bytes(), 1088 + 8 * class)
                .unwrap();
        }
        drop(f);
        let mut m = open(&t, Variant::SS, 1000);
        for i in 0..20 {
            let k = bytes(format!("new key {i}").as_bytes());
            let v = bytes(format!("a value long enough for a block {i}").as_bytes());
            assert_eq!(
                m.put(&item(&k), &item(&v)).unwrap(),
                Status::Ok,
                "{head:#x}"
            );
        }
        assert!(get(&mut *m, Variant::SS, &bytes(b"new key 7")).is_some());
    }
}

//! A full file system never costs data (DESIGN.md invariant 11): every
//! range is allocated before the map first writes to it, so a refusal is an
//! error return, entries stored before stay intact, and writes resume once
//! there is room again.
//!
//! `RLIMIT_FSIZE` gives a file system that refuses to grow the file without
//! root (EFBIG, with SIGXFSZ, whose default action would kill the process).
//! A small tmpfs, mounted when the test runs as root, also refuses the
//! blocks of table regions that the file already spans.

mod common;
use common::*;
use hashmap_shared::testing::{open_any, AnyMap};
use hashmap_shared::testing::{Item, Params, Status, Variant};
use std::ffi::CString;

fn set_fsize_limit(bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) }, 0);
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

fn val(i: u64, len: usize) -> Vec<u8> {
    let mut v = format!("value-{i}-").into_bytes();
    v.resize(len, b'a' + (i % 26) as u8);
    v
}

fn get_bytes(m: &mut dyn AnyMap, k: &[u8]) -> Option<Vec<u8>> {
    let ki = Item::bytes(k);
    read_out(true, |o| m.get(&ki, o).unwrap()).map(|e| match e {
        hashmap_shared::testing::Entry::Bytes(b, _) => b,
        e => panic!("unexpected {e:?}"),
    })
}

/// Fill an SS map with `len`-byte values until a put is refused; return how
/// many were stored. Every refusal must be a no-space error.
fn fill_until_refused(m: &mut dyn AnyMap, from: u64, len: usize) -> u64 {
    let mut i = from;
    loop {
        match m.put(&Item::bytes(&key(i)), &Item::bytes(&val(i, len))) {
            Ok(Status::Ok) => i += 1,
            Ok(s) => panic!("put {i}: unexpected status {s:?}"),
            Err(e) => {
                assert!(e.is_no_space(), "put {i}: not a no-space error: {}", e.0);
                assert!(e.0.contains("no space left on the device for"), "{}", e.0);
                return i - from;
            }
        }
        assert!(i < from + 10_000_000, "the limit never refused a put");
    }
}

#[test]
fn file_size_limit_refuses_a_put_and_loses_nothing() {
    let _one = one_at_a_time();
    let t = Tmp::new("fsize");
    let path = t.1.clone();
    let mut m = open_any(&t.0, Variant::SS, &Params::new(1_000_000)).unwrap();
    let size0 = std::fs::metadata(&path).unwrap().len();
    drop(m);
    let code = in_child(|| {
        let c = CString::new(path.clone()).unwrap();
        let mut m = open_any(&c, Variant::SS, &Params::new(1_000_000)).unwrap();
        // Room for a few MiB of strings past what the file has now.
        set_fsize_limit(size0 + (4 << 20));
        let n = fill_until_refused(&mut *m, 0, 1000);
        if n < 1000 {
            return 2; // the limit should leave room for thousands
        }
        // Everything stored is there, in this process.
        for i in 0..n {
            if get_bytes(&mut *m, &key(i)) != Some(val(i, 1000)) {
                return 3;
            }
        }
        // Removes and in-place overwrites still work; the map verifies.
        if m.remove(&Item::bytes(&key(0))).unwrap() != Status::Ok {
            return 4;
        }
        let short = Item::bytes(b"short");
        if m.put(&Item::bytes(&key(1)), &short).unwrap() != Status::Ok {
            return 5;
        }
        if m.verify().is_err() {
            return 6;
        }
        // Once the limit is lifted, writes resume.
        set_fsize_limit(libc::RLIM_INFINITY);
        for i in n..n + 100 {
            if m.put(&Item::bytes(&key(i)), &Item::bytes(&val(i, 1000)))
                .unwrap()
                != Status::Ok
            {
                return 7;
            }
        }
        let total = Item::bytes(b"total");
        let _ = m.put(&total, &Item::bytes(&(n + 100).to_le_bytes()));
        0
    });
    assert_eq!(code, 0, "the child failed at step {code}");
    // Another process (this one) sees every entry the child stored.
    m = open_any(&t.0, Variant::SS, &Params::new(1_000_000)).unwrap();
    let total = get_bytes(&mut *m, b"total").expect("the child's total");
    let total = u64::from_le_bytes(total.try_into().unwrap());
    assert!(total > 1000);
    assert_eq!(get_bytes(&mut *m, &key(0)), None);
    assert_eq!(get_bytes(&mut *m, &key(1)).as_deref(), Some(&b"short"[..]));
    for i in 2..total {
        assert_eq!(get_bytes(&mut *m, &key(i)), Some(val(i, 1000)), "key {i}");
    }
    m.verify().unwrap();
}

/// Mount a tmpfs of `size` on a fresh directory; None (with the reason
/// printed) where this process may not mount.
struct Tmpfs(String);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("dhms-tmpfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let d = dir.to_string_lossy().into_owned();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &d])
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Tmpfs(d))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn full_tmpfs_refuses_table_growth_and_arena_growth() {
    let _one = one_at_a_time();
    let Some(fs) = Tmpfs::mount("4m") else {
        return;
    };
    // Half the file system is ballast, freed at the end: then the refused
    // growth must go through.
    let ballast = format!("{}/ballast", fs.0);
    std::fs::write(&ballast, vec![1u8; 2 << 20]).unwrap();
    // II: the table outgrows the file system (the file spans both regions
    // from the start, so only allocation can refuse).
    let p = CString::new(format!("{}/ii.map", fs.0)).unwrap();
    let mut m = open_any(&p, Variant::II, &Params::new(10_000_000)).unwrap();
    let mut n = 0i64;
    let err = loop {
        match m.put(&Item::int(n), &Item::int(n * 3)) {
            Ok(Status::Ok) => n += 1,
            Ok(s) => panic!("unexpected {s:?}"),
            Err(e) => break e,
        }
        assert!(n < 10_000_000);
    };
    assert!(err.is_no_space(), "{}", err.0);
    assert!(n > 1000, "only {n} entries fit in 2 MiB");
    // A forked reader sees every entry; the map verifies.
    let pc = p.clone();
    let code = in_child(move || {
        let mut r = open_any(&pc, Variant::II, &Params::new(10_000_000)).unwrap();
        for i in 0..n {
            if get(&mut *r, Variant::II, &int(i)) != Some(int(i * 3)) {
                return 2;
            }
        }
        0
    });
    assert_eq!(code, 0);
    m.verify().unwrap();
    // In-place overwrites and removes work on the full file system.
    assert_eq!(put(&mut *m, &int(5), &int(-5)), Status::Ok);
    assert_eq!(m.remove(&Item::int(6)).unwrap(), Status::Ok);
    // SS: strings run out of room too; nothing stored before is lost.
    let ps = CString::new(format!("{}/ss.map", fs.0)).unwrap();
    let ss = open_any(&ps, Variant::SS, &Params::new(10_000_000));
    if let Ok(mut ss) = ss {
        let stored = fill_until_refused(&mut *ss, 0, 100);
        for i in 0..stored {
            assert_eq!(get_bytes(&mut *ss, &key(i)), Some(val(i, 100)));
        }
        ss.verify().unwrap();
        drop(ss);
    } else if let Err(e) = ss {
        assert!(e.is_no_space(), "{}", e.0);
    }
    let _ = std::fs::remove_file(ps.to_str().unwrap());
    // Space is back: growth resumes.
    std::fs::remove_file(&ballast).unwrap();
    assert_eq!(m.remove(&Item::int(7)).unwrap(), Status::Ok);
    drop(m);
    let mut m = open_any(&p, Variant::II, &Params::new(10_000_000)).unwrap();
    for i in n..n + 100 {
        assert_eq!(put(&mut *m, &int(i), &int(i * 3)), Status::Ok, "put {i}");
    }
    m.verify().unwrap();
    assert_eq!(get(&mut *m, Variant::II, &int(5)), Some(int(-5)));
    assert_eq!(get(&mut *m, Variant::II, &int(6)), None);
    for i in (8..n + 100).step_by(97) {
        assert_eq!(get(&mut *m, Variant::II, &int(i)), Some(int(i * 3)));
    }
}

/// An LRU map at `max_size` evicts for a new key only once it knows the
/// key's strings can be stored: a put refused for space changes nothing,
/// no entry evicted (found by a review: the eviction had become a change of
/// its own, made first).
#[test]
fn an_lru_put_refused_for_space_evicts_nothing() {
    use hashmap_shared::testing::Info;
    let _one = one_at_a_time();
    let t = Tmp::new("lru-refused");
    let path = t.1.clone();
    let mut p = Params::new(1000);
    p.max_size = 20;
    {
        let mut m = open_any(&t.0, Variant::SS, &p).unwrap();
        for i in 0..20 {
            assert_eq!(
                m.put(&Item::bytes(&key(i)), &Item::bytes(b"v")).unwrap(),
                Status::Ok
            );
        }
    }
    // the file may not grow: a 4 MiB value cannot be stored
    let size0 = std::fs::metadata(&path).unwrap().len();
    let code = in_child(|| {
        let c = CString::new(path.clone()).unwrap();
        let mut m = open_any(&c, Variant::SS, &p).unwrap();
        set_fsize_limit(size0);
        let big = vec![b'x'; 4 << 20];
        if m.put(&Item::bytes(b"new"), &Item::bytes(&big)).is_ok() {
            return 2; // refused, with an error
        }
        let kept = (0..20).all(|i| get_bytes(&mut *m, &key(i)).as_deref() == Some(&b"v"[..]));
        match (m.info(Info::Size), m.info(Info::StatEvictions), kept) {
            (20, 0, true) => 0,
            _ => 3,
        }
    });
    assert_eq!(code, 0, "the refused put evicted an entry");

    // arena_cap reached: the put answers Full, and evicts nothing
    let t = Tmp::new("lru-cap");
    p.arena_cap = 256 << 10;
    let mut m = open_any(&t.0, Variant::SS, &p).unwrap();
    for i in 0..20 {
        assert_eq!(
            m.put(&Item::bytes(&key(i)), &Item::bytes(&val(i, 10_000)))
                .unwrap(),
            Status::Ok
        );
    }
    let big = vec![b'x'; 100_000];
    assert_eq!(
        m.put(&Item::bytes(b"new"), &Item::bytes(&big)).unwrap(),
        Status::Full
    );
    assert_eq!((m.info(Info::Size), m.info(Info::StatEvictions)), (20, 0));
    // a put that fits evicts as before
    assert_eq!(
        m.put(&Item::bytes(b"small"), &Item::bytes(b"v")).unwrap(),
        Status::Ok
    );
    assert_eq!((m.info(Info::Size), m.info(Info::StatEvictions)), (20, 1));
    m.verify().unwrap();
}

/// An LRU insert at `max_size` that the file system refuses a larger (or
/// compacted) table for evicts nothing: the eviction comes after the
/// insert, in the same change. (When the eviction came first, a change of
/// its own, the refused put left the map one entry short.)
#[test]
fn an_lru_insert_refused_a_table_evicts_nothing() {
    use hashmap_shared::testing::Info;
    use std::io::Write;
    let _one = one_at_a_time();
    let Some(fs) = Tmpfs::mount("4m") else {
        return;
    };
    let p = CString::new(format!("{}/lru.map", fs.0)).unwrap();
    let mut params = Params::new(100_000);
    params.max_size = 3000;
    let mut m = open_any(&p, Variant::II, &params).unwrap();
    for i in 0..3000 {
        assert_eq!(put(&mut *m, &int(i), &int(i)), Status::Ok);
    }
    // the rest of the file system: ballast
    let mut f = std::fs::File::create(format!("{}/ballast", fs.0)).unwrap();
    while f.write_all(&[1u8; 4096]).is_ok() {}
    drop(f);
    // New keys evict until one needs a table the file system refuses.
    let mut present: std::collections::BTreeSet<i64> = (0..3000).collect();
    let mut refused = 0;
    for i in 3000..200_000i64 {
        let evictions = m.info(Info::StatEvictions);
        match m.put(&Item::int(i), &Item::int(i)) {
            Ok(Status::Ok) => {
                present.insert(i);
                assert_eq!(m.info(Info::StatEvictions), evictions + 1);
                present.retain(|&k| k == i || get(&mut *m, Variant::II, &int(k)).is_some());
                assert_eq!(present.len(), 3000, "put {i}");
            }
            Ok(s) => panic!("put {i}: unexpected {s:?}"),
            Err(e) => {
                assert!(e.is_no_space(), "put {i}: {}", e.0);
                assert_eq!(m.info(Info::StatEvictions), evictions, "put {i} evicted");
                assert_eq!(m.info(Info::Size), 3000, "put {i}");
                for &k in &present {
                    assert_eq!(get(&mut *m, Variant::II, &int(k)), Some(int(k)), "key {k}");
                }
                assert_eq!(get(&mut *m, Variant::II, &int(i)), None);
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
        }
    }
    assert_eq!(refused, 3, "no insert needed a new table");
    m.verify().unwrap();
}

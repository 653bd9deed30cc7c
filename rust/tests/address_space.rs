//! A process can afford many handles and many maps: each handle maps what
//! its map's string storage holds (with room to grow), not the 256 GiB the
//! storage may one day reach, and grows its mapping when the storage grows
//! (issue "Storage v2", item 6).

mod common;
use common::*;
use hashmap_shared::testing::open_any;
use hashmap_shared::testing::{Entry, Item, Params, Status, Variant};

fn set_as_limit(bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
}

fn value(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("{i}:").into_bytes();
    v.resize(len, b'a' + (i % 26) as u8);
    v
}

#[test]
fn many_maps_fit_in_a_small_address_space() {
    let _one = one_at_a_time();
    let tmps: Vec<Tmp> = (0..100).map(|_| Tmp::new("as")).collect();
    let paths: Vec<_> = tmps.iter().map(|t| t.0.clone()).collect();
    let code = in_child(move || {
        // 16 GiB of address space: with a 256 GiB reservation per map the
        // second map already had to make do with a fraction of it.
        set_as_limit(16 << 30);
        let mut maps = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let Ok(mut m) = open_any(p, Variant::SS, &Params::new(1000)) else {
                return 2;
            };
            // 2 MiB: past the storage a map starts with, so every map must
            // be able to grow its mapping (a reservation cut short because
            // address space ran out made such a put fail).
            if m.put(&Item::bytes(b"k"), &Item::bytes(&value(i, 2 << 20)))
                .unwrap()
                != Status::Ok
            {
                return 3;
            }
            maps.push(m);
        }
        for (i, m) in maps.iter_mut().enumerate() {
            if get(&mut **m, Variant::SS, &bytes(b"k"))
                != Some(Entry::Bytes(value(i, 2 << 20), false))
            {
                return 4;
            }
        }
        0
    });
    assert_eq!(code, 0, "the child failed at step {code}");
}

#[test]
fn a_handle_follows_storage_that_another_handle_grew() {
    let _one = one_at_a_time();
    let t = Tmp::new("grow");
    let mut a = open_any(&t.0, Variant::SS, &Params::new(1000)).unwrap();
    let mut b = open_any(&t.0, Variant::IS, &Params::new(1000));
    assert!(b.is_err(), "variant mismatch is still refused");
    b = open_any(&t.0, Variant::SS, &Params::new(1000));
    let mut b = b.unwrap();
    // Both handles mapped a small arena; `a` stores 200 MiB of strings, far
    // past what either mapped at first (it remaps as it goes) ...
    let len = 1 << 20;
    for i in 0..200 {
        let k = format!("key{i}");
        assert_eq!(
            a.put(&Item::bytes(k.as_bytes()), &Item::bytes(&value(i, len)))
                .unwrap(),
            Status::Ok,
            "put {i}"
        );
    }
    // ... and `b` reads every one of them (it remaps on the first read that
    // meets storage beyond its mapping), then stores more itself.
    for i in (0..200).rev() {
        let k = format!("key{i}");
        assert_eq!(
            get(&mut *b, Variant::SS, &bytes(k.as_bytes())),
            Some(Entry::Bytes(value(i, len), false)),
            "get {i}"
        );
    }
    for i in 200..260 {
        let k = format!("key{i}");
        assert_eq!(
            put(
                &mut *b,
                &bytes(k.as_bytes()),
                &Entry::Bytes(value(i, len), false)
            ),
            Status::Ok
        );
    }
    for i in 0..260 {
        let k = format!("key{i}");
        assert_eq!(
            get(&mut *a, Variant::SS, &bytes(k.as_bytes())),
            Some(Entry::Bytes(value(i, len), false))
        );
    }
    a.verify().unwrap();
    b.verify().unwrap();
}

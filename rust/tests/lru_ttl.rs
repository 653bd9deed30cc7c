//! LRU eviction and TTL expiry in the engine.

mod common;
use common::*;
use hashmap_shared::testing::open_any;
use hashmap_shared::testing::{Info, Item, Out, Params, Status, Variant};
use std::time::Duration;

fn lru_map(
    t: &Tmp,
    v: Variant,
    max_entries: u64,
    max_size: u64,
    ttl: u64,
) -> Box<dyn hashmap_shared::testing::AnyMap> {
    let mut p = Params::new(max_entries);
    p.max_size = max_size;
    p.ttl = ttl;
    open_any(&t.0, v, &p).unwrap()
}

#[test]
fn a_key_read_since_it_became_the_candidate_survives() {
    let t = Tmp::new("lru-order");
    let mut m = lru_map(&t, Variant::II, 100, 3, 0);
    for k in 1..=3 {
        assert_eq!(put(&mut *m, &int(k), &int(k)), Status::Ok);
    }
    // 1 is the oldest; reading it gives it a second chance.
    assert_eq!(get(&mut *m, Variant::II, &int(1)), Some(int(1)));
    put(&mut *m, &int(4), &int(4));
    assert_eq!(
        get(&mut *m, Variant::II, &int(2)),
        None,
        "2 was the oldest unread key"
    );
    assert_eq!(get(&mut *m, Variant::II, &int(1)), Some(int(1)));
    // now 3 is the oldest unread (1 was read again just above, 4 is new)
    put(&mut *m, &int(5), &int(5));
    assert_eq!(get(&mut *m, Variant::II, &int(3)), None);
    assert_eq!(m.core_ref().info(Info::Size), 3);
    assert_eq!(m.core_ref().info(Info::StatEvictions), 2);
    assert_eq!(m.core_ref().check_lru(), Ok(3));
}

#[test]
fn updates_promote() {
    let t = Tmp::new("lru-update");
    let mut m = lru_map(&t, Variant::SS, 100, 3, 0);
    for k in [b"a", b"b", b"c"] {
        put(&mut *m, &bytes(k), &bytes(b"v"));
    }
    put(&mut *m, &bytes(b"a"), &bytes(b"newer")); // a moves to the recent end
    put(&mut *m, &bytes(b"d"), &bytes(b"v"));
    assert_eq!(get(&mut *m, Variant::SS, &bytes(b"b")), None);
    assert!(m.touch(&item(&bytes(b"c"))).unwrap());
    put(&mut *m, &bytes(b"e"), &bytes(b"v"));
    assert_eq!(
        get(&mut *m, Variant::SS, &bytes(b"a")),
        None,
        "a was older than the touched c"
    );
    assert_eq!(get(&mut *m, Variant::SS, &bytes(b"c")), Some(bytes(b"v")));
}

#[test]
fn lru_list_survives_resizes_and_random_use() {
    let t = Tmp::new("lru-random");
    let mut m = lru_map(&t, Variant::SI, 5000, 700, 0);
    let mut r = Rng(7);
    for step in 0..40_000 {
        let k = format!("key{}", r.below(3000));
        match r.below(10) {
            0..=5 => assert_eq!(put(&mut *m, &bytes(k.as_bytes()), &int(step)), Status::Ok),
            6..=7 => {
                get(&mut *m, Variant::SI, &bytes(k.as_bytes()));
            }
            8 => {
                m.remove(&item(&bytes(k.as_bytes()))).unwrap();
            }
            _ => {
                let mut res = 0;
                m.incr_by(&item(&bytes(k.as_bytes())), 1, &mut res).unwrap();
            }
        }
        assert!(
            m.core_ref().info(Info::Size) <= 700,
            "size above max_size at step {step}"
        );
        if step % 5000 == 0 {
            let n = m.core_ref().check_lru().unwrap();
            assert_eq!(n as u64, m.core_ref().info(Info::Size));
        }
    }
    assert!(m.core_ref().info(Info::StatEvictions) > 1000);
    m.verify().unwrap();
    let n = m.core_ref().check_lru().unwrap();
    assert_eq!(n as u64, m.core_ref().info(Info::Size));
}

#[test]
fn expired_entries_vanish_and_are_removed() {
    let t = Tmp::new("ttl");
    let mut m = lru_map(&t, Variant::IS, 1000, 0, 1);
    for k in 0..50 {
        put(
            &mut *m,
            &int(k),
            &bytes(b"a value that is long enough for the arena"),
        );
    }
    assert_eq!(
        m.put_ttl(&item(&int(100)), &item(&bytes(b"forever")), 0)
            .unwrap(),
        Status::Ok
    );
    assert_eq!(
        m.put_ttl(&item(&int(101)), &item(&bytes(b"longer")), 100)
            .unwrap(),
        Status::Ok
    );
    assert_eq!(m.ttl_remaining(&item(&int(100))).unwrap(), Some(0));
    assert!(m.ttl_remaining(&item(&int(101))).unwrap().unwrap() > 90);
    assert!(m.ttl_remaining(&item(&int(1))).unwrap().unwrap() <= 1);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        get(&mut *m, Variant::IS, &int(1)),
        None,
        "invisible at once"
    );
    assert!(!m.exists(&item(&int(2))).unwrap());
    assert_eq!(m.ttl_remaining(&item(&int(3))).unwrap(), None);
    assert_eq!(
        get(&mut *m, Variant::IS, &int(100)),
        Some(bytes(b"forever"))
    );
    assert_eq!(m.snapshot().unwrap().len(), 2, "walks skip expired entries");
    // a write that meets an expired entry removes it
    assert_eq!(m.remove(&item(&int(4))).unwrap(), Status::False);
    assert_eq!(m.core_ref().info(Info::StatExpired), 1);
    let (n, done) = m.flush_expired_partial(u64::MAX).unwrap();
    assert_eq!((n, done), (49, true));
    assert_eq!(m.core_ref().info(Info::Size), 2);
    assert_eq!(m.core_ref().info(Info::StatExpired), 50);
    assert_eq!(
        m.core_ref().info(Info::ArenaUsed),
        0,
        "the expired values' blocks were freed"
    );
}

#[test]
fn partial_flush_shares_its_position_and_converges() {
    let t = Tmp::new("ttl-partial");
    let mut a = lru_map(&t, Variant::II, 10_000, 0, 1);
    let mut b = lru_map(&t, Variant::II, 1, 0, 0);
    for k in 0..3000 {
        put(&mut *a, &int(k), &int(k));
    }
    let cap_calls = a.core_ref().info(Info::Capacity).div_ceil(500);
    std::thread::sleep(Duration::from_millis(2100));
    let (mut total, mut calls) = (0, 0);
    loop {
        let m = if calls % 2 == 0 { &mut a } else { &mut b };
        let (n, done) = m.flush_expired_partial(500).unwrap();
        total += n;
        calls += 1;
        if done {
            break;
        }
        assert!(calls < 100, "does not converge");
    }
    assert_eq!(total, 3000);
    assert!(
        calls as u64 <= cap_calls + 1,
        "two processes shared one pass: {calls} calls"
    );
}

#[test]
fn ttl_writers_need_a_ttl_map() {
    let t = Tmp::new("nottl");
    let mut m = lru_map(&t, Variant::SS, 10, 0, 0);
    let e = m
        .put_ttl(&item(&bytes(b"k")), &item(&bytes(b"v")), 5)
        .unwrap_err();
    assert!(
        e.0.contains("put_ttl needs a map created with a TTL"),
        "{e}"
    );
    put(&mut *m, &bytes(b"k"), &bytes(b"v"));
    assert!(!m.persist(&item(&bytes(b"k"))).unwrap());
    assert!(!m.set_ttl(&item(&bytes(b"k")), 5).unwrap());
    assert!(
        !m.touch(&item(&bytes(b"k"))).unwrap(),
        "no LRU, no TTL: touch is false"
    );
    assert_eq!(m.ttl_remaining(&item(&bytes(b"k"))).unwrap(), None);
}

#[test]
fn lru_with_ttl_evicts_expired_first_and_counts_them() {
    let t = Tmp::new("lru-ttl");
    let mut m = lru_map(&t, Variant::II, 100, 3, 100);
    put(&mut *m, &int(1), &int(1));
    m.put_ttl(&item(&int(2)), &item(&int(2)), 1).unwrap();
    put(&mut *m, &int(3), &int(3));
    get(&mut *m, Variant::II, &int(1)); // 1 is marked; 2 will be expired
    std::thread::sleep(Duration::from_millis(2100));
    put(&mut *m, &int(4), &int(4));
    assert_eq!(m.core_ref().info(Info::Size), 3);
    assert_eq!(get(&mut *m, Variant::II, &int(1)), Some(int(1)));
    assert_eq!(get(&mut *m, Variant::II, &int(3)), Some(int(3)));
    assert_eq!(m.core_ref().info(Info::StatExpired), 1);
    assert_eq!(m.core_ref().info(Info::StatEvictions), 0);
}

#[test]
fn a_permanent_entry_stays_permanent_under_writes_that_are_not_ttl_writes() {
    let t = Tmp::new("permanent");
    let mut m = lru_map(&t, Variant::II, 100, 0, 100);
    let k = Item::int(1);
    let mut buf = vec![0u8; 16];
    let mut r = 0i64;
    type Write = fn(&mut dyn hashmap_shared::testing::AnyMap, &Item, &mut Vec<u8>, &mut i64);
    let writes: [(&str, Write); 9] = [
        ("put", |m, k, _, _| {
            m.put(k, &Item::int(2)).unwrap();
        }),
        ("swap", |m, k, b, _| {
            m.swap(k, &Item::int(3), &mut Out::with_vec(b)).unwrap();
        }),
        ("cas", |m, k, _, _| {
            assert_eq!(m.cas(k, &Item::int(7), &Item::int(4)).unwrap(), Status::Ok);
        }),
        ("update", |m, k, _, _| {
            assert_eq!(
                m.conditional(k, &Item::int(5), None, true).unwrap(),
                Status::Ok
            );
        }),
        ("set_multi", |m, k, _, _| {
            assert_eq!(m.set_multi(&[(*k, Item::int(6))]).unwrap(), 1);
        }),
        ("get_or_set", |m, k, b, _| {
            m.get_or_set(k, &Item::int(9), &mut Out::with_vec(b))
                .unwrap();
        }),
        ("incr_by", |m, k, _, r| {
            m.incr_by(k, 2, r).unwrap();
        }),
        ("max", |m, k, _, r| {
            m.extreme(k, 1000, true, r).unwrap();
        }),
        ("min", |m, k, _, r| {
            m.extreme(k, -1000, false, r).unwrap();
        }),
    ];
    for (name, w) in writes {
        // permanent, by put_ttl 0 and by persist
        for via_persist in [false, true] {
            m.put_ttl(&k, &Item::int(7), if via_persist { 50 } else { 0 })
                .unwrap();
            if via_persist {
                assert!(m.persist(&k).unwrap());
            }
            w(&mut *m, &k, &mut buf, &mut r);
            assert_eq!(m.ttl_remaining(&k).unwrap(), Some(0), "{name}");
        }
    }
    // An entry with a lifetime: put, swap, cas, update and set_multi restart
    // it at the default.
    for (name, w) in &writes[..5] {
        m.put_ttl(&k, &Item::int(7), 5).unwrap();
        w(&mut *m, &k, &mut buf, &mut r);
        let left = m.ttl_remaining(&k).unwrap().unwrap();
        assert!((90..=100).contains(&left), "{name}: {left} s left");
    }
    // The TTL writes change a lifetime.
    m.persist(&k).unwrap();
    m.put_ttl(&k, &Item::int(1), 7).unwrap();
    assert!(matches!(m.ttl_remaining(&k).unwrap(), Some(1..=7)));
}

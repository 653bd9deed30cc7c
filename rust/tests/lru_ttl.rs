//! LRU eviction and TTL expiry in the engine.

mod common;
use common::*;
use hashmap_shared::ffi::open_any;
use hashmap_shared::map::{Info, Params, Status, Variant};
use std::time::Duration;

fn lru_map(
    t: &Tmp,
    v: Variant,
    max_entries: u64,
    max_size: u64,
    ttl: u64,
) -> Box<dyn hashmap_shared::ffi::AnyMap> {
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

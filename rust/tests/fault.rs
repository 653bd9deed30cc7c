//! Crash tests: for every mutation kind and every fault point N in it, a
//! forked child dies (`_exit`) at the N-th point while holding the writer
//! lock; the parent recovers the map, runs `verify`, and checks that the map
//! holds exactly the state before or the state after the mutation (per key
//! for batches). Run with `cargo test --features fault-injection`;
//! `DHMS_FAULT_KINDS=LRU,clear` runs only the kinds whose name contains
//! one of the comma-separated words.
#![cfg(feature = "fault-injection")]

mod common;
use common::*;
use hashmap_shared::testing::{keyword_incr, keyword_put, open_any, AnyMap};
use hashmap_shared::testing::{End, Entry, Params, Status, Variant};
use std::collections::BTreeMap;

type State = BTreeMap<Vec<u8>, Entry>;

fn key_bytes(e: &Entry) -> Vec<u8> {
    match e {
        Entry::Int(n) => n.to_le_bytes().to_vec(),
        Entry::Bytes(b, _) => b.clone(),
    }
}

/// Every live entry, by a walk (lock-free: a snapshot would finish a
/// migration in progress, which the migration kinds must start from).
fn state(m: &mut dyn AnyMap, v: Variant) -> State {
    let mut pos = hashmap_shared::testing::CursorPos {
        shard: 0,
        after: None,
    };
    let mut out = State::new();
    loop {
        let (mut kb, mut vb) = (vec![0u8; 4096], vec![0u8; 4096]);
        let mut ko = hashmap_shared::testing::Out::with_vec(&mut kb);
        let mut vo = hashmap_shared::testing::Out::with_vec(&mut vb);
        match m.walk(&mut pos, &mut ko, &mut vo).unwrap() {
            Status::Ok => {}
            Status::False => return out,
            s => panic!("walk: {s:?}"),
        }
        let k = if key_is_bytes(v) {
            bytes(ko.written())
        } else {
            int(ko.num)
        };
        let val = if val_is_bytes(v) {
            Entry::Bytes(vo.written().to_vec(), vo.utf8 != 0)
        } else {
            int(vo.num)
        };
        assert!(
            out.insert(key_bytes(&k), val).is_none(),
            "the walk returned a key twice"
        );
    }
}

struct Kind {
    name: &'static str,
    variant: Variant,
    params: Params,
    setup: fn(&mut dyn AnyMap),
    mutate: fn(&mut dyn AnyMap),
    /// Each key may independently be old or new (batches); else all-or-nothing.
    per_key: bool,
}

fn long(i: u64) -> Vec<u8> {
    format!("a value long enough for the arena, number {i:06}").into_bytes()
}

fn fill_ss(m: &mut dyn AnyMap, n: u64) {
    for i in 0..n {
        assert_eq!(
            put(
                m,
                &bytes(format!("key-{i:04}").as_bytes()),
                &bytes(&long(i))
            ),
            Status::Ok
        );
    }
}

/// Get the SS keys `key-NNNN` numbered `ids` (on an LRU map, the
/// lock-free reads mark them used).
fn read_ss(m: &mut dyn AnyMap, ids: std::ops::Range<u64>) {
    for i in ids {
        let e = bytes(format!("key-{i:04}").as_bytes());
        let k = item(&e);
        read_out(true, |o| m.get(&k, o).unwrap());
    }
}

/// Put the key "the newcomer" (an SS value long enough for the arena).
fn put_newcomer(m: &mut dyn AnyMap) -> Status {
    put(m, &bytes(b"the newcomer"), &bytes(&long(5)))
}

/// `remove_multi` of the SS keys `key-NNNN` numbered `ids`.
fn remove_keys(m: &mut dyn AnyMap, ids: &[u64]) {
    let keys: Vec<_> = ids
        .iter()
        .map(|i| bytes(format!("key-{i:04}").as_bytes()))
        .collect();
    let items: Vec<_> = keys.iter().map(item).collect();
    m.remove_multi(&items).unwrap();
}

/// 40 SS entries grow the table to 64 slots; 8 are left (`key-0000` to
/// `key-0006`, and `key-0009`), so removing one more brings the size under
/// 64/8 and shrinks it.
fn one_removal_from_a_shrink(m: &mut dyn AnyMap) {
    fill_ss(m, 40);
    for i in (7..40).filter(|&i| i != 9) {
        m.remove(&item(&bytes(format!("key-{i:04}").as_bytes())))
            .unwrap();
    }
}

/// 12 SS entries, the even ones with a lifetime of one second, which has
/// ended when this returns.
fn half_expired(m: &mut dyn AnyMap) {
    put_ttls(m, 12, |i| if i % 2 == 0 { 1 } else { 0 });
    std::thread::sleep(std::time::Duration::from_millis(2100));
}

/// SS entries `key-NNNN` 0 .. `n-1`, each with the lifetime `secs(i)`.
fn put_ttls(m: &mut dyn AnyMap, n: u64, secs: impl Fn(u64) -> u64) {
    for i in 0..n {
        let k = bytes(format!("key-{i:04}").as_bytes());
        m.put_ttl(&item(&k), &item(&bytes(&long(i))), secs(i))
            .unwrap();
    }
}

/// `set_multi` of these pairs.
fn set_entries(m: &mut dyn AnyMap, entries: &[(Entry, Entry)]) {
    let pairs: Vec<_> = entries.iter().map(|(k, v)| (item(k), item(v))).collect();
    m.set_multi(&pairs).unwrap();
}

/// `set_multi` of string keys, each with the value `long(n)` of its `n`.
fn set_long(m: &mut dyn AnyMap, pairs: impl IntoIterator<Item = (String, u64)>) {
    let entries: Vec<_> = pairs
        .into_iter()
        .map(|(k, n)| (bytes(k.as_bytes()), bytes(&long(n))))
        .collect();
    set_entries(m, &entries);
}

/// IS entries `0` .. `n-1`, each with a value long enough for the arena.
fn fill_is(m: &mut dyn AnyMap, n: i64) {
    for i in 0..n {
        put(m, &int(i), &bytes(&long(i as u64)));
    }
}

/// `take_ends` of `n` entries from `end` (`pop`, `shift`, `drain`).
fn take(m: &mut dyn AnyMap, n: u64, end: End) {
    m.take_ends(n, end).unwrap();
}

/// `reserve` 300 entries, then an insert (so that the states before and
/// after differ).
fn reserve_then_put(m: &mut dyn AnyMap) {
    assert!(m.reserve(300).unwrap());
    put(m, &bytes(b"after the reserve"), &bytes(&long(3)));
}

/// SI counters `ctr-0` .. `ctr-{n-1}` holding their numbers.
fn fill_counters(m: &mut dyn AnyMap, n: i64) {
    for i in 0..n {
        put(m, &bytes(format!("ctr-{i}").as_bytes()), &int(i));
    }
}

/// `incr_by` 5 of the SI counter `k`.
fn add_5(m: &mut dyn AnyMap, k: &[u8]) {
    let mut r = 0;
    m.incr_by(&item(&bytes(k)), 5, &mut r).unwrap();
}

/// SS entries until the next insert grows the table.
fn fill_ss_to_the_brim(m: &mut dyn AnyMap) {
    use hashmap_shared::testing::Info;
    for i in 0.. {
        let (size, cap) = (
            m.info_try(Info::Size).unwrap(),
            m.info_try(Info::Capacity).unwrap(),
        );
        if (size + 1) * 4 > cap * 3 {
            return;
        }
        put(
            m,
            &bytes(format!("key-{i:04}").as_bytes()),
            &bytes(&long(i)),
        );
    }
}

/// SS entries until a migration has started (its frontier still at 0: the
/// insert that starts it takes no step).
fn fill_ss_until_migrating(m: &mut dyn AnyMap) {
    for i in 0.. {
        if hashmap_shared::testing::migrating(m) {
            return;
        }
        put(
            m,
            &bytes(format!("key-{i:04}").as_bytes()),
            &bytes(&long(i)),
        );
    }
}

/// How tables resize in `kind`: the migration kinds make every table
/// migrate, one old home slot per step (all of it at once for the step
/// that ends one); the others keep the defaults (small tables resize at
/// once). Set before forking: the children inherit it.
fn migration(kind: &Kind) {
    use hashmap_shared::testing::{set_migrate_min, MIGRATE_MIN_DEFAULT};
    if kind.name.contains("ends a migration") {
        set_migrate_min(0, 1 << 20);
    } else if kind.name.contains("migration") {
        set_migrate_min(0, 1);
    } else {
        set_migrate_min(MIGRATE_MIN_DEFAULT, 64);
    }
}

/// `n` integer entries: keys `i * step - 20`, values `-i`.
fn fill_int(m: &mut dyn AnyMap, n: i64, step: i64) {
    for i in 0..n {
        put(m, &int(i * step - 20), &int(-i));
    }
}

/// Insert a new key as `shm_ii_put` does: the quick attempt, then the
/// full put, which takes the slot the attempt found.
fn keyword_insert(m: &mut dyn AnyMap) {
    assert_eq!(keyword_put(m, 12_345, -9, || {}), Some(Status::Ok));
}

fn params(max_entries: u64, max_size: u64, ttl: u64) -> Params {
    let mut p = Params::new(max_entries);
    p.max_size = max_size;
    p.ttl = ttl;
    p
}

/// The kinds to run: all, or those `DHMS_FAULT_KINDS` names (see above).
fn kinds() -> Vec<Kind> {
    let only = std::env::var("DHMS_FAULT_KINDS").unwrap_or_default();
    let words: Vec<&str> = only.split(',').filter(|w| !w.is_empty()).collect();
    all_kinds()
        .into_iter()
        .filter(|k| words.is_empty() || words.iter().any(|w| k.name.contains(w)))
        .collect()
}

fn all_kinds() -> Vec<Kind> {
    vec![
        Kind {
            name: "insert",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss(m, 20),
            mutate: |m| {
                put(m, &bytes(b"a new key of some length"), &bytes(&long(999)));
            },
            per_key: false,
        },
        Kind {
            name: "insert that grows the table",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss(m, 24), // 25 > 32 * 3/4: the next insert grows 32 -> 64
            mutate: |m| {
                put(m, &bytes(b"the key that grows it"), &bytes(&long(998)));
            },
            per_key: false,
        },
        Kind {
            // the same length: rewritten in its own block
            name: "overwrite",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss(m, 20),
            mutate: |m| {
                put(m, &bytes(b"key-0007"), &bytes(&long(777_777)));
            },
            per_key: false,
        },
        Kind {
            // longer: a new block, the old one freed
            name: "overwrite that moves the value",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss(m, 20),
            mutate: |m| {
                let v = [long(1), long(2)].concat();
                put(m, &bytes(b"key-0007"), &bytes(&v));
            },
            per_key: false,
        },
        Kind {
            name: "remove",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss(m, 20),
            mutate: |m| {
                m.remove(&item(&bytes(b"key-0011"))).unwrap();
            },
            per_key: false,
        },
        Kind {
            name: "remove that shrinks the table",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: one_removal_from_a_shrink,
            mutate: |m| {
                m.remove(&item(&bytes(b"key-0009"))).unwrap();
            },
            per_key: false,
        },
        Kind {
            name: "take",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss(m, 20),
            mutate: |m| {
                let e = bytes(b"key-0003");
                let k = item(&e);
                read_out(true, |o| m.take(&k, o).unwrap());
            },
            per_key: false,
        },
        Kind {
            name: "clear",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss(m, 20),
            mutate: |m| m.clear().unwrap(),
            per_key: false,
        },
        Kind {
            name: "counter insert",
            variant: Variant::SI,
            params: params(1000, 0, 0),
            setup: |m| fill_counters(m, 20),
            mutate: |m| add_5(m, b"a brand new counter"),
            per_key: false,
        },
        Kind {
            name: "LRU insert that evicts",
            variant: Variant::SS,
            params: params(1000, 10, 0),
            setup: |m| fill_ss(m, 10),
            mutate: |m| {
                put_newcomer(m);
            },
            per_key: false,
        },
        Kind {
            // size == max_size == max_entries: the insert is one over
            // max_entries until its eviction (a file must still open then)
            name: "LRU insert that evicts at max_entries",
            variant: Variant::SS,
            params: params(12, 12, 0),
            setup: |m| fill_ss(m, 12),
            mutate: |m| {
                put_newcomer(m);
            },
            per_key: false,
        },
        Kind {
            name: "LRU insert that evicts, max_size 1",
            variant: Variant::SS,
            params: params(100, 1, 0),
            setup: |m| {
                fill_ss(m, 1);
                read_ss(m, 0..1);
            },
            mutate: |m| {
                put_newcomer(m);
            },
            per_key: false,
        },
        Kind {
            name: "LRU insert that evicts (II)",
            variant: Variant::II,
            params: params(1000, 10, 0),
            setup: |m| {
                for i in 0..10 {
                    assert_eq!(put(m, &int(i), &int(i * 10)), Status::Ok);
                }
            },
            mutate: |m| {
                put(m, &int(777), &int(7));
            },
            per_key: false,
        },
        Kind {
            name: "LRU promotion",
            variant: Variant::SS,
            params: params(1000, 10, 0),
            setup: |m| fill_ss(m, 10),
            mutate: |m| {
                put(m, &bytes(b"key-0000"), &bytes(&long(12345)));
            },
            per_key: false,
        },
        Kind {
            name: "swap",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss(m, 20),
            mutate: |m| {
                let (ke, ve) = (bytes(b"key-0005"), bytes(&long(55)));
                let (k, v) = (item(&ke), item(&ve));
                read_out(true, |o| m.swap(&k, &v, o).unwrap());
            },
            per_key: false,
        },
        Kind {
            name: "set_multi",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            // room reserved: no resize, so every death is repaired from
            // the batch's record ("set_multi inserting" resizes)
            setup: |m| {
                m.reserve(40).unwrap();
                fill_ss(m, 20)
            },
            mutate: |m| {
                let keys: Vec<Vec<u8>> = (0..5)
                    .map(|i| format!("key-{:04}", i * 7).into_bytes())
                    .collect();
                let vals: Vec<Vec<u8>> = (0..5).map(|i| long(500 + i)).collect();
                let entries: Vec<_> = keys
                    .iter()
                    .zip(&vals)
                    .map(|(k, v)| (bytes(k), bytes(v)))
                    .collect();
                set_entries(m, &entries);
            },
            per_key: false,
        },
        Kind {
            name: "set_multi inserting",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss(m, 20),
            mutate: |m| {
                set_long(m, (0..6).map(|i| (format!("a brand new key {i}"), 600 + i)));
            },
            per_key: false,
        },
        Kind {
            name: "LRU set_multi that evicts",
            variant: Variant::SS,
            params: params(1000, 10, 0),
            setup: |m| fill_ss(m, 10),
            mutate: |m| {
                set_long(m, (0..4).map(|i| (format!("newcomer {i}"), 700 + i)));
            },
            per_key: true,
        },
        Kind {
            name: "remove_multi",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss(m, 20),
            mutate: |m| remove_keys(m, &[1, 4, 9, 16, 19]),
            per_key: false,
        },
        Kind {
            // the shrink runs after the batch's end (state UNDO_BATCH_FINISH)
            name: "remove_multi that shrinks the table",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| {
                fill_ss(m, 40);
                for i in 10..40 {
                    m.remove(&item(&bytes(format!("key-{i:04}").as_bytes())))
                        .unwrap();
                }
            },
            mutate: |m| remove_keys(m, &[1, 4, 7]),
            per_key: false,
        },
        Kind {
            name: "reserve",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss(m, 20),
            // (then an insert: the states before and after must differ)
            mutate: reserve_then_put,
            per_key: false,
        },
        Kind {
            name: "LRU insert that grows the table",
            variant: Variant::SS,
            params: params(1000, 500, 0),
            setup: |m| fill_ss(m, 24),
            mutate: |m| {
                put(m, &bytes(b"the key that grows it"), &bytes(&long(998)));
            },
            per_key: false,
        },
        Kind {
            name: "drain without LRU",
            variant: Variant::IS,
            params: params(1000, 0, 0),
            setup: |m| fill_is(m, 20),
            mutate: |m| take(m, 3, End::Newest),
            per_key: true,
        },
        // Packed slots (plain maps with integer keys: a control byte per
        // slot, keys and values at their widths).
        Kind {
            name: "packed insert (I16)",
            variant: Variant::I16,
            params: params(1000, 0, 0),
            setup: |m| fill_int(m, 20, 1000),
            mutate: |m| {
                put(m, &int(-7), &int(-32768));
            },
            per_key: false,
        },
        Kind {
            // as `shm_ii_put` runs it: the slot the quick attempt found
            name: "keyword insert (II)",
            variant: Variant::II,
            params: params(1000, 0, 0),
            setup: |m| fill_int(m, 20, 1000),
            mutate: keyword_insert,
            per_key: false,
        },
        Kind {
            name: "keyword counter insert (II)",
            variant: Variant::II,
            params: params(1000, 0, 0),
            setup: |m| fill_int(m, 20, 1000),
            mutate: |m| {
                let incr = keyword_incr(m, 12_345, 4, || {});
                assert_eq!(incr, Some((Status::Ok, 4)));
            },
            per_key: false,
        },
        Kind {
            name: "keyword insert that grows the table (II)",
            variant: Variant::II,
            params: params(1000, 0, 0),
            setup: |m| fill_int(m, 24, 1000), // 25 > 32 * 3/4
            mutate: keyword_insert,
            per_key: false,
        },
        Kind {
            name: "packed insert that grows the table (I32)",
            variant: Variant::I32,
            params: params(1000, 0, 0),
            // 16 slots hold 12 entries at a load of 3/4: the 13th grows it
            setup: |m| fill_int(m, 12, 1000),
            mutate: |m| {
                put(m, &int(-123_456), &int(i32::MIN as i64));
            },
            per_key: false,
        },
        Kind {
            name: "packed remove that shrinks the table (II)",
            variant: Variant::II,
            params: params(1000, 0, 0),
            setup: |m| {
                fill_int(m, 40, 1_000_003);
                for i in 7..40 {
                    if i != 9 {
                        m.remove(&item(&int(i * 1_000_003 - 20))).unwrap();
                    }
                }
            },
            mutate: |m| {
                m.remove(&item(&int(9 * 1_000_003 - 20))).unwrap();
            },
            per_key: false,
        },
        Kind {
            name: "packed counter insert (I16)",
            variant: Variant::I16,
            params: params(1000, 0, 0),
            setup: |m| fill_int(m, 20, 1000),
            mutate: |m| {
                let mut r = 0;
                m.incr_by(&item(&int(4242)), -5, &mut r).unwrap();
            },
            per_key: false,
        },
        Kind {
            name: "packed set_multi (I32S)",
            variant: Variant::I32S,
            params: params(1000, 0, 0),
            setup: |m| {
                m.reserve(40).unwrap();
                for i in 0..20 {
                    put(m, &int(i), &bytes(&long(i as u64)));
                }
            },
            mutate: |m| {
                let pairs: Vec<(Entry, Entry)> = (15..30)
                    .map(|i| (int(i), bytes(format!("new value {i}").as_bytes())))
                    .collect();
                let items: Vec<_> = pairs.iter().map(|(k, v)| (item(k), item(v))).collect();
                m.set_multi(&items).unwrap();
            },
            per_key: false,
        },
        // Incremental resize (raw/migrate.rs; these kinds make every
        // table migrate, one old home slot per step: see `migration`).
        Kind {
            name: "insert that starts a migration",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss_to_the_brim(m),
            mutate: |m| {
                put(m, &bytes(b"the key that grows it"), &bytes(&long(1)));
            },
            per_key: false,
        },
        Kind {
            name: "overwrite during a migration",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss_until_migrating(m),
            mutate: |m| {
                put(m, &bytes(b"key-0003"), &bytes(&long(333)));
            },
            per_key: false,
        },
        Kind {
            name: "remove during a migration",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss_until_migrating(m),
            mutate: |m| {
                assert_eq!(m.remove(&item(&bytes(b"key-0002"))).unwrap(), Status::Ok);
            },
            per_key: false,
        },
        Kind {
            name: "packed insert during a migration (II)",
            variant: Variant::II,
            params: params(1000, 0, 0),
            setup: |m| {
                let mut i = 0;
                while !hashmap_shared::testing::migrating(m) {
                    put(m, &int(i * 7 - 20), &int(-i));
                    i += 1;
                }
            },
            mutate: |m| {
                put(m, &int(99_999), &int(5));
            },
            per_key: false,
        },
        Kind {
            name: "TTL put over an expired entry during a migration",
            variant: Variant::SS,
            params: params(1000, 0, 3600),
            setup: |m| {
                fill_ss_until_migrating(m);
                let (k, v) = (bytes(b"key-0005"), bytes(&long(5)));
                m.put_ttl(&item(&k), &item(&v), 1).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2100));
            },
            mutate: |m| {
                put(m, &bytes(b"key-0005"), &bytes(&long(555)));
            },
            per_key: false,
        },
        Kind {
            name: "set_multi during a migration",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss_until_migrating(m),
            mutate: |m| {
                let keys = (0..5)
                    .map(|i| format!("key-{:04}", i * 7))
                    .chain(["brand new one".into(), "brand new two".into()]);
                set_long(m, keys.zip(900..));
            },
            per_key: false,
        },
        Kind {
            name: "remove_multi during a migration",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss_until_migrating(m),
            mutate: |m| remove_keys(m, &[0, 3, 6, 9, 12]),
            per_key: false,
        },
        Kind {
            name: "counter insert during a migration",
            variant: Variant::SI,
            params: params(1000, 0, 0),
            setup: |m| {
                let mut i = 0;
                while !hashmap_shared::testing::migrating(m) {
                    put(m, &bytes(format!("ctr-{i}").as_bytes()), &int(i));
                    i += 1;
                }
            },
            mutate: |m| add_5(m, b"a brand new counter"),
            per_key: false,
        },
        Kind {
            name: "clear during a migration",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss_until_migrating(m),
            mutate: |m| m.clear().unwrap(),
            per_key: false,
        },
        Kind {
            // the old table's entries that have not moved come first
            name: "drain during a migration",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss_until_migrating(m),
            mutate: |m| take(m, 4, End::Oldest),
            per_key: true,
        },
        Kind {
            name: "a step that ends a migration",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss_until_migrating(m),
            mutate: |m| {
                put(m, &bytes(b"key-0001"), &bytes(&long(111)));
            },
            per_key: false,
        },
        // LRU maps migrate too: their list runs through both tables, and
        // each move relinks (raw/lru.rs, raw/migrate.rs).
        Kind {
            name: "LRU insert that starts a migration",
            variant: Variant::SS,
            params: params(1000, 100, 0),
            setup: |m| fill_ss_to_the_brim(m),
            mutate: |m| {
                put(m, &bytes(b"the key that grows it"), &bytes(&long(1)));
            },
            per_key: false,
        },
        Kind {
            // max_size 12: the 13th insert evicts, and it starts the
            // first migration (16 slots to 32); its victim is in the old
            // table
            name: "LRU insert that evicts and starts a migration",
            variant: Variant::SS,
            params: params(1000, 12, 0),
            setup: |m| fill_ss_to_the_brim(m),
            mutate: |m| {
                assert_eq!(put_newcomer(m), Status::Ok);
            },
            per_key: false,
        },
        Kind {
            // max_size 13: the insert that starts the first migration is
            // the 13th, so the map is at max_size while it migrates
            name: "LRU insert that evicts during a migration",
            variant: Variant::SS,
            params: params(1000, 13, 0),
            setup: |m| fill_ss_until_migrating(m),
            mutate: |m| {
                assert_eq!(put_newcomer(m), Status::Ok);
            },
            per_key: false,
        },
        Kind {
            // the tail and the next ones are marked: second chances
            // relink entries of both tables
            name: "LRU insert that evicts with second chances during a migration",
            variant: Variant::SS,
            params: params(1000, 13, 0),
            setup: |m| {
                fill_ss_until_migrating(m);
                read_ss(m, 0..3);
            },
            mutate: |m| {
                assert_eq!(put_newcomer(m), Status::Ok);
            },
            per_key: false,
        },
        Kind {
            name: "LRU promotion during a migration",
            variant: Variant::SS,
            params: params(1000, 100, 0),
            setup: |m| fill_ss_until_migrating(m),
            mutate: |m| {
                put(m, &bytes(b"key-0003"), &bytes(&long(333)));
            },
            per_key: false,
        },
        Kind {
            name: "LRU remove during a migration",
            variant: Variant::SS,
            params: params(1000, 100, 0),
            setup: |m| fill_ss_until_migrating(m),
            mutate: |m| {
                assert_eq!(m.remove(&item(&bytes(b"key-0002"))).unwrap(), Status::Ok);
            },
            per_key: false,
        },
        Kind {
            name: "LRU drain during a migration",
            variant: Variant::SS,
            params: params(1000, 100, 0),
            setup: |m| fill_ss_until_migrating(m),
            mutate: |m| take(m, 4, End::Oldest),
            per_key: true,
        },
        // reserve grows by a migration (every table migrates in these
        // kinds; 12 entries fill the first table to its growth, none in
        // progress); during one, it finishes it first if it asks for more
        Kind {
            name: "reserve that starts a migration",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss(m, 12),
            mutate: reserve_then_put,
            per_key: false,
        },
        Kind {
            name: "LRU reserve that starts a migration",
            variant: Variant::SS,
            params: params(1000, 100, 0),
            setup: |m| fill_ss(m, 12),
            mutate: reserve_then_put,
            per_key: false,
        },
        Kind {
            name: "reserve during a migration",
            variant: Variant::SS,
            params: params(1000, 0, 0),
            setup: |m| fill_ss_until_migrating(m),
            mutate: reserve_then_put,
            per_key: false,
        },
        Kind {
            // every move of the migration, each relinking its entry
            name: "LRU step that ends a migration",
            variant: Variant::SS,
            params: params(1000, 100, 0),
            setup: |m| fill_ss_until_migrating(m),
            mutate: |m| {
                put(m, &bytes(b"key-0001"), &bytes(&long(111)));
            },
            per_key: false,
        },
        Kind {
            name: "drain",
            variant: Variant::IS,
            params: params(1000, 50, 0),
            setup: |m| {
                m.reserve(40).unwrap();
                for i in 0..20 {
                    put(m, &int(i), &bytes(&long(i as u64)));
                }
            },
            mutate: |m| take(m, 3, End::Oldest),
            per_key: true,
        },
        Kind {
            // removes the expired entries it meets (each a recorded
            // change) and takes live ones under the same lock
            name: "drain through expired entries (TTL)",
            variant: Variant::SS,
            params: params(1000, 0, 3600),
            setup: half_expired,
            mutate: |m| take(m, 4, End::Oldest),
            per_key: true,
        },
        Kind {
            // a TTL map at max_entries: the insert first removes the
            // expired entries of the next slots of the flush pass
            name: "TTL insert at max_entries through expired entries",
            variant: Variant::SS,
            params: params(12, 0, 3600),
            setup: half_expired,
            mutate: |m| {
                assert_eq!(put_newcomer(m), Status::Ok);
            },
            per_key: false,
        },
        Kind {
            // the same for a batch: the expired entries go first, each a
            // change of its own, then the batch under its record
            name: "TTL set_multi at max_entries through expired entries",
            variant: Variant::SS,
            params: params(12, 0, 3600),
            setup: half_expired,
            mutate: |m| {
                let e: Vec<_> = (0..3)
                    .map(|i| (bytes(format!("batch key {i}").as_bytes()), bytes(&long(i))))
                    .collect();
                let pairs: Vec<_> = e.iter().map(|(k, v)| (item(k), item(v))).collect();
                assert_eq!(m.set_multi(&pairs).unwrap(), 3, "every pair stored");
            },
            per_key: false,
        },
        Kind {
            // the same while the table migrates: the old table's slots
            // from the frontier on give up their expired entries
            name: "TTL insert at max_entries through expired entries during a migration",
            variant: Variant::SS,
            params: params(24, 0, 3600),
            setup: |m| {
                put_ttls(m, 24, |_| 1);
                assert!(
                    hashmap_shared::testing::migrating(m),
                    "a migration in progress"
                );
                std::thread::sleep(std::time::Duration::from_millis(2100));
            },
            mutate: |m| {
                assert_eq!(put_newcomer(m), Status::Ok);
            },
            per_key: false,
        },
        // (kinds added by a review: LRU, TTL and packed maps through the
        // changes that keep a record since resizes, clears and relinks do)
        Kind {
            name: "LRU remove",
            variant: Variant::SS,
            params: params(1000, 10, 0),
            setup: |m| fill_ss(m, 10),
            mutate: |m| {
                m.remove(&item(&bytes(b"key-0004"))).unwrap();
            },
            per_key: false,
        },
        Kind {
            name: "LRU remove that shrinks the table",
            variant: Variant::SS,
            params: params(1000, 100, 0),
            setup: one_removal_from_a_shrink,
            mutate: |m| {
                m.remove(&item(&bytes(b"key-0009"))).unwrap();
            },
            per_key: false,
        },
        Kind {
            name: "LRU clear",
            variant: Variant::SS,
            params: params(1000, 10, 0),
            setup: |m| fill_ss(m, 10),
            mutate: |m| m.clear().unwrap(),
            per_key: false,
        },
        Kind {
            name: "TTL clear",
            variant: Variant::SS,
            params: params(1000, 0, 3600),
            setup: |m| fill_ss(m, 30),
            mutate: |m| m.clear().unwrap(),
            per_key: false,
        },
        Kind {
            name: "packed clear (II)",
            variant: Variant::II,
            params: params(1000, 0, 0),
            setup: |m| fill_int(m, 30, 3),
            mutate: |m| m.clear().unwrap(),
            per_key: false,
        },
        Kind {
            name: "LRU insert that evicts with second chances",
            variant: Variant::SS,
            params: params(1000, 10, 0),
            setup: |m| {
                fill_ss(m, 10);
                read_ss(m, 0..6);
            },
            mutate: |m| {
                put_newcomer(m);
            },
            per_key: false,
        },
        Kind {
            name: "LRU remove_multi",
            variant: Variant::SS,
            params: params(1000, 10, 0),
            setup: |m| fill_ss(m, 10),
            mutate: |m| remove_keys(m, &[1, 4, 7]),
            per_key: false,
        },
        Kind {
            name: "LRU set_multi overwriting",
            variant: Variant::SS,
            params: params(1000, 10, 0),
            setup: |m| fill_ss(m, 10),
            mutate: |m| {
                set_long(m, [2u64, 5, 8].map(|i| (format!("key-{i:04}"), 900 + i)));
            },
            per_key: false,
        },
        Kind {
            name: "LRU counter",
            variant: Variant::SI,
            params: params(1000, 10, 0),
            setup: |m| fill_counters(m, 10),
            mutate: |m| add_5(m, b"ctr-3"),
            per_key: false,
        },
        Kind {
            name: "LRU counter insert that evicts",
            variant: Variant::SI,
            params: params(1000, 10, 0),
            setup: |m| fill_counters(m, 10),
            mutate: |m| add_5(m, b"a new counter"),
            per_key: false,
        },
        Kind {
            name: "LRU reserve",
            variant: Variant::SS,
            params: params(1000, 100, 0),
            setup: |m| fill_ss(m, 20),
            mutate: reserve_then_put,
            per_key: false,
        },
        Kind {
            name: "LRU drain newest",
            variant: Variant::IS,
            params: params(1000, 50, 0),
            setup: |m| fill_is(m, 20),
            mutate: |m| take(m, 3, End::Newest),
            per_key: true,
        },
        Kind {
            name: "LRU+TTL drain through expired entries",
            variant: Variant::SS,
            params: params(1000, 50, 3600),
            setup: half_expired,
            mutate: |m| take(m, 4, End::Oldest),
            per_key: true,
        },
        Kind {
            name: "LRU+TTL put over an expired entry",
            variant: Variant::SS,
            params: params(1000, 12, 3600),
            setup: |m| {
                put_ttls(m, 12, |i| if i == 3 { 1 } else { 0 });
                std::thread::sleep(std::time::Duration::from_millis(2100));
            },
            mutate: |m| {
                put(m, &bytes(b"key-0003"), &bytes(&long(333)));
            },
            per_key: true,
        },
        Kind {
            name: "flush partial during a migration",
            variant: Variant::SS,
            params: params(1000, 0, 3600),
            setup: |m| fill_ss_until_migrating(m),
            mutate: |m| {
                m.flush_expired_partial(3).unwrap();
                put(m, &bytes(b"after the flush"), &bytes(&long(3)));
            },
            per_key: false,
        },
        Kind {
            name: "packed clear during a migration (II)",
            variant: Variant::II,
            params: params(1000, 0, 0),
            setup: |m| {
                for i in 0.. {
                    if hashmap_shared::testing::migrating(m) {
                        return;
                    }
                    put(m, &int(i * 3 - 20), &int(-i));
                }
            },
            mutate: |m| m.clear().unwrap(),
            per_key: false,
        },
        Kind {
            name: "TTL partial flush that ends a pass and shrinks",
            variant: Variant::SS,
            params: params(1000, 0, 3600),
            setup: |m| {
                use hashmap_shared::testing::Info;
                for i in 0..40u64 {
                    let k = bytes(format!("key-{i:04}").as_bytes());
                    let secs = if i < 4 { 0 } else { 1 };
                    m.put_ttl(&item(&k), &item(&bytes(&long(i))), secs).unwrap();
                }
                std::thread::sleep(std::time::Duration::from_millis(2100));
                let cap = m.info_try(Info::Capacity).unwrap();
                let (_, done) = m.flush_expired_partial(cap - 1).unwrap();
                assert!(!done);
            },
            mutate: |m| {
                let (_, done) = m.flush_expired_partial(1).unwrap();
                assert!(done);
                put(m, &bytes(b"after the flush"), &bytes(&long(3)));
            },
            per_key: false,
        },
    ]
}

/// A map recovered from a death in `kind`'s mutation holds the state
/// before or after it (per key, for the kinds that allow it, and no
/// untouched key lost), and keeps working, and was repaired from the
/// records, in time that does not grow with the map: no walk of the table
/// or the arena since `walks` (`fault::walks` before the recovery).
fn check_recovered(kind: &Kind, m: &mut dyn AnyMap, sc: &Scene, what: &str, walks: u64) {
    let (before, after) = (&sc.before, &sc.after);
    let got = state(m, kind.variant);
    if kind.per_key {
        for (k, v) in &got {
            assert!(
                before.get(k) == Some(v) || after.get(k) == Some(v),
                "{} {what}: key {:?} holds neither its old nor its new value",
                kind.name,
                String::from_utf8_lossy(k)
            );
        }
        for k in before.keys().filter(|k| after.contains_key(*k)) {
            assert!(
                got.contains_key(k),
                "{} {what}: an untouched key was lost",
                kind.name
            );
        }
    } else {
        assert!(
            &got == before || &got == after,
            "{} {what}: neither the old nor the new state",
            kind.name
        );
    }
    assert_eq!(
        put(m, &bytes_or_int(kind.variant), &val_for(kind.variant)),
        Status::Ok,
        "{} {what}: the recovered map takes a put",
        kind.name
    );
    m.verify().unwrap();
    assert_eq!(
        hashmap_shared::fault::walks(),
        walks,
        "{} {what}: repaired by a walk, not from its record",
        kind.name
    );
}

/// A map file set up for `kind` (`base`), and the states before and after
/// one uninterrupted run of its mutation (`done` keeps the file after it).
struct Scene {
    base: Tmp,
    done: Tmp,
    before: State,
    after: State,
}

fn scene(kind: &Kind, tag: &str) -> Scene {
    let base = Tmp::new(&format!("{tag}-base"));
    let mut m = open_any(&base.0, kind.variant, &kind.params).unwrap();
    (kind.setup)(&mut *m);
    let before = state(&mut *m, kind.variant);
    drop(m);
    let done = Tmp::new(&format!("{tag}-done"));
    std::fs::copy(&base.1, &done.1).unwrap();
    let mut m = open_any(&done.0, kind.variant, &Params::new(1)).unwrap();
    (kind.mutate)(&mut *m);
    let after = state(&mut *m, kind.variant);
    Scene {
        base,
        done,
        before,
        after,
    }
}

/// A child that opens `work` and runs `f` with the fault armed at point
/// `n`: true if it died there (exit 77), false if `f` has fewer points.
fn dies_at(kind: &Kind, n: i64, work: &Tmp, f: fn(&mut dyn AnyMap)) -> bool {
    // SAFETY: the child runs `f` and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe { libc::alarm(20) };
        let mut c = open_any(&work.0, kind.variant, &Params::new(1)).unwrap();
        hashmap_shared::fault::arm(n);
        f(&mut *c);
        hashmap_shared::fault::disarm();
        unsafe { libc::_exit(0) };
    }
    let mut st = 0;
    // SAFETY: valid out-pointer.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert!(
        libc::WIFEXITED(st),
        "{} point {n}: child died by a signal",
        kind.name
    );
    let code = libc::WEXITSTATUS(st);
    assert!(
        code == 0 || code == 77,
        "{} point {n}: exit {code}",
        kind.name
    );
    code == 77
}

#[test]
fn every_fault_point_of_every_mutation_recovers() {
    // it forks: no other test's thread may run meanwhile (see `spawn_child`)
    let _one = one_at_a_time();
    let mut cases = 0;
    let mut report = Vec::new();
    for kind in kinds() {
        migration(&kind);
        let sc = scene(&kind, "fault");
        assert_ne!(
            sc.before, sc.after,
            "{}: the mutation changes something",
            kind.name
        );
        let mut n = 1;
        loop {
            let work = Tmp::new("fault-work");
            std::fs::copy(&sc.base.1, &work.1).unwrap();
            if !dies_at(&kind, n, &work, kind.mutate) {
                break; // the mutation has fewer than n points: every one was covered
            }
            let walks = hashmap_shared::fault::walks();
            let mut m = open_any(&work.0, kind.variant, &Params::new(1)).unwrap();
            m.verify()
                .unwrap_or_else(|e| panic!("{} step {n}: {e}", kind.name));
            assert_eq!(
                m.core_ref()
                    .info(hashmap_shared::testing::Info::StatRecoveries),
                1,
                "{} step {n}",
                kind.name
            );
            check_recovered(&kind, &mut *m, &sc, &format!("step {n}"), walks);
            cases += 1;
            n += 1;
        }
        report.push(format!("{}: {} points", kind.name, n - 1));
        assert!(n > 3, "{}: fault points are compiled in", kind.name);
        if kind.name.contains("migration") {
            let m = open_any(&sc.done.0, kind.variant, &Params::new(1)).unwrap();
            let ends = kind.name.contains("ends") || kind.name.contains("clear");
            assert!(
                ends != hashmap_shared::testing::migrating(&*m),
                "{}: a migration in progress after it, unless it ended one (or dropped it)",
                kind.name
            );
        }
        if kind.name.contains("shrinks") || kind.name.contains("grows") {
            assert!(
                n > 20,
                "{}: the resize's own points were reached ({} points)",
                kind.name,
                n - 1
            );
        }
    }
    eprintln!(
        "fault injection: {cases} (mutation, step) cases\n  {}",
        report.join("\n  ")
    );
}

fn bytes_or_int(v: Variant) -> Entry {
    if key_is_bytes(v) {
        bytes(b"after recovery")
    } else {
        int(24242) // fits every integer width
    }
}

fn val_for(v: Variant) -> Entry {
    if val_is_bytes(v) {
        bytes(b"still works")
    } else {
        int(1)
    }
}

/// The C ABI as `xs/dhms.h` declares it, for the test below.
mod c_abi {
    use std::ffi::{c_char, c_int, c_void};
    #[repr(C)]
    pub struct Item {
        pub ptr: *const u8,
        pub len: usize,
        pub num: i64,
        pub utf8: u32,
    }
    #[repr(C)]
    pub struct Out {
        pub buf: *mut u8,
        pub cap: usize,
        pub len: usize,
        pub num: i64,
        pub utf8: u32,
    }
    #[repr(C)]
    pub struct Params {
        pub max_entries: u64,
        pub max_size: u64,
        pub ttl: u64,
        pub lru_skip: u64,
        pub arena_cap: u64,
        pub file_mode: u32,
    }
    /// `dhms_fast`
    #[repr(C)]
    pub struct Fast {
        pub get: unsafe extern "C" fn(*mut c_void, *const Item, *mut Out) -> c_int,
        pub exists: unsafe extern "C" fn(*mut c_void, *const Item) -> c_int,
        pub put: unsafe extern "C" fn(*mut c_void, *const Item, *const Item) -> c_int,
        pub incr_by: unsafe extern "C" fn(*mut c_void, *const Item, i64, *mut i64) -> c_int,
        pub get_num: unsafe extern "C" fn(*mut c_void, i64, *mut i64) -> c_int,
        pub incr_num: unsafe extern "C" fn(*mut c_void, i64, i64, *mut i64) -> c_int,
        pub put_num: unsafe extern "C" fn(*mut c_void, i64, i64) -> c_int,
        pub remove: unsafe extern "C" fn(*mut c_void, *const Item) -> c_int,
    }
    extern "C" {
        pub fn dhms_open(
            path: *const c_char,
            variant: u32,
            params: *const Params,
            out: *mut *mut c_void,
        ) -> c_int;
        pub fn dhms_close(m: *mut c_void);
        pub fn dhms_verify(m: *mut c_void) -> c_int;
        pub fn dhms_last_error() -> *const c_char;
    }
    /// The handle's entry points (`struct dhms_map_head`).
    ///
    /// # Safety
    /// `m` is a handle from `dhms_open`.
    pub unsafe fn fast<'a>(m: *mut c_void) -> &'a Fast {
        // SAFETY: per the contract: a handle starts with the pointer.
        unsafe { &**m.cast::<*const Fast>() }
    }
    pub fn int(n: i64) -> Item {
        Item {
            ptr: std::ptr::null(),
            len: 0,
            num: n,
            utf8: 0,
        }
    }
    pub fn last_error() -> String {
        // SAFETY: a NUL-terminated string, valid until the next call.
        unsafe { std::ffi::CStr::from_ptr(dhms_last_error()) }
            .to_string_lossy()
            .into_owned()
    }
}

/// A panic inside the engine, reached through a handle's own entry
/// points (`dhms_fast`, what the keywords call), comes back to C as
/// `DHMS_ERROR` with an "internal error" message, never as an unwind; the
/// writer lock is released on the way out, and the map is whole after.
#[test]
fn a_panic_in_a_fast_entry_point_is_an_error_status_not_an_unwind() {
    let _one = one_at_a_time();
    let t = Tmp::new("fast-panic");
    let code = in_child(|| {
        let p = c_abi::Params {
            max_entries: 1000,
            max_size: 0,
            ttl: 0,
            lru_skip: 0,
            arena_cap: 0,
            file_mode: 0o600,
        };
        let mut m = std::ptr::null_mut();
        // SAFETY: valid arguments; the handle is used by this thread only.
        unsafe {
            if c_abi::dhms_open(t.0.as_ptr(), 2, &p, &mut m) != 0 {
                return 2;
            }
            let f = c_abi::fast(m);
            for i in 0..100 {
                if (f.put)(m, &c_abi::int(i), &c_abi::int(i * 10)) != 0 {
                    return 3;
                }
            }
            // the first store of a new key's insert panics
            hashmap_shared::fault::arm_panic(1);
            let st = (f.put)(m, &c_abi::int(1000), &c_abi::int(1));
            hashmap_shared::fault::disarm();
            if st != 5 || !c_abi::last_error().contains("internal error") {
                eprintln!("status {st}: {}", c_abi::last_error());
                return 4;
            }
            // the lock was released: this writes, after repairing the map
            if (f.put)(m, &c_abi::int(1001), &c_abi::int(2)) != 0 {
                return 5;
            }
            // the same through the integer entry points, whose quick
            // attempt leaves a new key to the full path
            hashmap_shared::fault::arm_panic(1);
            let st = (f.put_num)(m, 1002, 3);
            hashmap_shared::fault::arm_panic(1);
            let mut r = 0;
            let st2 = (f.incr_num)(m, 1003, 1, &mut r);
            hashmap_shared::fault::disarm();
            if st != 5 || st2 != 5 || !c_abi::last_error().contains("internal error") {
                eprintln!("status {st} {st2}: {}", c_abi::last_error());
                return 8;
            }
            if (f.put_num)(m, 1002, 3) != 0 || (f.get_num)(m, 1002, &mut r) != 0 || r != 3 {
                return 9;
            }
            let mut out = c_abi::Out {
                buf: std::ptr::null_mut(),
                cap: 0,
                len: 0,
                num: 0,
                utf8: 0,
            };
            for i in 0..100 {
                if (f.get)(m, &c_abi::int(i), &mut out) != 0 || out.num != i * 10 {
                    return 6;
                }
            }
            if c_abi::dhms_verify(m) != 0 {
                eprintln!("verify: {}", c_abi::last_error());
                return 7;
            }
            c_abi::dhms_close(m);
        }
        0
    });
    assert_eq!(code, 0, "the child's verdict");
}

/// A death during the recovery itself: for the single-key changes (which
/// recover from their record) and one that needs the walks, at every
/// point `n` of the change and every point `r` of the recovery that
/// follows, a second process dies at `r` while it recovers; the third
/// recovery must still leave the state before or after the change, no
/// leak, and a working map.
#[test]
fn a_death_during_recovery_is_recovered_from() {
    let _one = one_at_a_time();
    let names = [
        "insert",
        "overwrite",
        "overwrite that moves the value",
        "remove",
        "take",
        "swap",
        "counter insert",
        "packed insert (I16)",
        "keyword insert (II)",
        "remove that shrinks the table",
        "drain through expired entries (TTL)",
        "TTL insert at max_entries through expired entries",
        "set_multi",
        "remove_multi",
        "packed set_multi (I32S)",
        "LRU set_multi that evicts",
        "insert that starts a migration",
        "overwrite during a migration",
        "remove during a migration",
        "a step that ends a migration",
        "set_multi during a migration",
        "insert that grows the table",
        "clear",
        "clear during a migration",
        "LRU insert that evicts",
        "LRU insert that evicts with second chances",
        "LRU insert that evicts at max_entries",
        "LRU counter insert that evicts",
        "LRU promotion",
        "drain",
        "drain during a migration",
    ];
    let mut cases = 0;
    for kind in kinds().into_iter().filter(|k| names.contains(&k.name)) {
        migration(&kind);
        let sc = scene(&kind, "nested");
        let recover: fn(&mut dyn AnyMap) = |m| {
            let _ = m.verify();
        };
        for n in 1.. {
            let first = Tmp::new("nested-first");
            std::fs::copy(&sc.base.1, &first.1).unwrap();
            if !dies_at(&kind, n, &first, kind.mutate) {
                break;
            }
            for r in 1.. {
                let work = Tmp::new("nested-work");
                std::fs::copy(&first.1, &work.1).unwrap();
                if !dies_at(&kind, r, &work, recover) {
                    break;
                }
                let walks = hashmap_shared::fault::walks();
                let mut m = open_any(&work.0, kind.variant, &Params::new(1)).unwrap();
                m.verify()
                    .unwrap_or_else(|e| panic!("{} step {n}, recovery step {r}: {e}", kind.name));
                let what = format!("step {n}, recovery step {r}");
                check_recovered(&kind, &mut *m, &sc, &what, walks);
                cases += 1;
            }
        }
    }
    eprintln!("deaths during recovery: {cases} cases");
    let filtered = std::env::var_os("DHMS_FAULT_KINDS").is_some();
    assert!(
        filtered || cases > 50,
        "recoveries have fault points ({cases} cases)"
    );
}

/// An LRU insert at `max_size` never evicts its own entry: here a read
/// (through another handle, as another process's lock-free get may) marks
/// the only other entry used between the insert and its eviction, which
/// then gives that entry its second chance and comes to the new one.
#[test]
fn an_lru_insert_never_evicts_its_own_entry() {
    let _one = one_at_a_time();
    let t = Tmp::new("lru-keep");
    let mut m = open_any(&t.0, Variant::II, &params(100, 1, 0)).unwrap();
    assert_eq!(put(&mut *m, &int(1), &int(10)), Status::Ok);
    let other = open_any(&t.0, Variant::II, &Params::new(100)).unwrap();
    hashmap_shared::fault::set_at("an LRU insert's eviction", move || {
        assert!(hashmap_shared::testing::mark_used(&*other, 1));
    });
    let st = put(&mut *m, &int(2), &int(20));
    hashmap_shared::fault::clear_at();
    assert_eq!(st, Status::Ok);
    assert_eq!(
        get(&mut *m, Variant::II, &int(2)),
        Some(int(20)),
        "the put's own entry"
    );
    assert_eq!(get(&mut *m, Variant::II, &int(1)), None);
    assert_eq!(m.info(hashmap_shared::testing::Info::Size), 1);
    m.verify().unwrap();
}

/// A reader that finds an LRU insert's writer dead in its window repairs
/// it whole, eviction included, before it reads: lock-free reads alone
/// (no writer comes) see the state before the put or after it, never the
/// new entry beside the one it evicts.
#[test]
fn a_reader_repairs_an_lru_insert_whole() {
    let _one = one_at_a_time();
    let kind = all_kinds()
        .into_iter()
        .find(|k| k.name == "LRU insert that evicts")
        .unwrap();
    migration(&kind);
    let sc = scene(&kind, "lru-reader");
    let mut cases = 0;
    for n in 1.. {
        let work = Tmp::new("lru-reader-work");
        std::fs::copy(&sc.base.1, &work.1).unwrap();
        if !dies_at(&kind, n, &work, kind.mutate) {
            break;
        }
        let mut m = open_any(&work.0, kind.variant, &Params::new(1)).unwrap();
        let got = state(&mut *m, kind.variant);
        assert!(
            got == sc.before || got == sc.after,
            "step {n}: a reader saw neither the old nor the new state ({} entries)",
            got.len()
        );
        m.verify().unwrap();
        cases += 1;
    }
    assert!(cases > 10, "{cases} cases");
}

/// A map whose table is at its largest size compacts only when a good
/// part of it is tombstones: an LRU map whose `max_size` is `max_entries`
/// evicts for every insert, and its table was rebuilt at nearly every one
/// (a compaction at a load of 3/4 freed the few tombstones the last
/// evictions left); so was a plain map at `max_entries` under removes and
/// puts.
#[test]
fn a_full_table_compacts_rarely() {
    let _one = one_at_a_time();
    set_migrate_min_default();
    for (name, lru) in [("lru", true), ("plain", false)] {
        let t = Tmp::new(&format!("compact-{name}"));
        let p = if lru {
            params(1000, 1000, 0)
        } else {
            params(1000, 0, 0)
        };
        let mut m = open_any(&t.0, Variant::II, &p).unwrap();
        for i in 0..1000 {
            assert_eq!(put(&mut *m, &int(i), &int(i)), Status::Ok);
        }
        let before = hashmap_shared::fault::resizes();
        for i in 1000..21_000 {
            if !lru {
                assert_eq!(
                    m.remove(&hashmap_shared::testing::Item::int(i - 1000))
                        .unwrap(),
                    Status::Ok
                );
            }
            assert_eq!(put(&mut *m, &int(i), &int(i)), Status::Ok, "{name} put {i}");
        }
        let resizes = hashmap_shared::fault::resizes() - before;
        eprintln!("{name}: {resizes} resizes for 20,000 inserts into a full table");
        assert!(
            resizes < 200,
            "{name}: {resizes} resizes for 20,000 inserts into a full table"
        );
        assert_eq!(m.info(hashmap_shared::testing::Info::Size), 1000);
        for i in 20_000..21_000 {
            assert_eq!(
                get(&mut *m, Variant::II, &int(i)),
                Some(int(i)),
                "{name} {i}"
            );
        }
        m.verify().unwrap();
    }
}

fn set_migrate_min_default() {
    use hashmap_shared::testing::{set_migrate_min, MIGRATE_MIN_DEFAULT};
    set_migrate_min(MIGRATE_MIN_DEFAULT, 64);
}

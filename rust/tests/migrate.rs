//! Incremental resize (`raw/migrate.rs`): with every table migrating one
//! old home slot per write, random operations agree with a `HashMap`
//! model while migrations are in progress, `each` returns every entry
//! present for the whole walk exactly once while grows and shrinks
//! migrate under it (in this process and from another), and `verify`
//! passes after all of it.

mod common;
use common::*;
use hashmap_shared::testing::{
    full_put_num, int_home, keyword_incr, keyword_put, migrating, open_any, quick_get, quick_incr,
    quick_put, set_migrate_min, AnyMap, End, Entry, Info, Out, Params, Status, Variant,
};
use std::collections::HashMap;

/// Every table migrates (none is too small), one home slot per step: a
/// migration lasts as many writes as the old table has slots.
fn slow_migrations() {
    set_migrate_min(0, 1);
}

fn open_with(t: &Tmp, v: Variant, max: u64, ttl: u64) -> Box<dyn AnyMap> {
    let mut p = Params::new(max);
    p.ttl = ttl;
    open_any(&t.0, v, &p).unwrap()
}

/// Key `n` of a variant (fits every integer width for n < 10,000).
fn key(v: Variant, n: u64) -> Entry {
    if key_is_bytes(v) {
        bytes(format!("key number {n}").as_bytes())
    } else {
        int(n as i64 * 3 - 15_000)
    }
}

fn val(v: Variant, n: u64) -> Entry {
    if val_is_bytes(v) {
        bytes(format!("value {n} {}", "v".repeat((n % 40) as usize)).as_bytes())
    } else {
        int((n % 30_000) as i64)
    }
}

/// One step of `each`: the key, or None at the end.
fn each_key(m: &mut dyn AnyMap, v: Variant) -> Option<Entry> {
    let (mut kb, mut vb) = (vec![0u8; 256], vec![0u8; 256]);
    let mut ko = Out::with_vec(&mut kb);
    let mut vo = Out::with_vec(&mut vb);
    match m.each(&mut ko, &mut vo).unwrap() {
        Status::Ok => Some(if key_is_bytes(v) {
            Entry::Bytes(ko.written().to_vec(), false)
        } else {
            int(ko.num)
        }),
        Status::False => None,
        s => panic!("each: {s:?}"),
    }
}

const VARIANTS: [Variant; 5] = [
    Variant::I16,
    Variant::II,
    Variant::IS,
    Variant::SI,
    Variant::SS,
];

#[test]
fn random_operations_agree_with_a_model_across_migrations() {
    let _one = one_at_a_time();
    slow_migrations();
    for v in VARIANTS {
        for ttl in [0, 3600] {
            let t = Tmp::new("migrate-model");
            let mut m = open_with(&t, v, 5000, ttl);
            let mut model: HashMap<Entry, Entry> = HashMap::new();
            let mut r = Rng(0x5eed ^ (v as u64) << 8 ^ ttl);
            let (mut migrating_steps, mut cleared) = (0, false);
            // quick gets decided, and left to the full get; the same for
            // quick incrs and puts
            let mut quick = [0u64; 6];
            for step in 0..20_000u64 {
                // the key space grows, then shrinks: grows, then shrinks
                let span = if step < 12_000 { 300 + step / 4 } else { 300 };
                let n = r.below(span);
                let k = key(v, n);
                match r.below(100) {
                    0..=44 => {
                        let x = val(v, r.below(1 << 20));
                        // every other one through the keywords' quick put
                        // first (integers both ways), which stores over an
                        // existing key or changes nothing
                        let quick_done = match (&k, &x, step % 2) {
                            (Entry::Int(n), Entry::Int(y), 0) => quick_put(&*m, *n, *y),
                            _ => false,
                        };
                        quick[4 + !quick_done as usize] += 1;
                        if !quick_done {
                            // (some as the keywords run them: a missing
                            // key goes where the quick attempt found room)
                            let s = match (&k, &x, v) {
                                (Entry::Int(n), Entry::Int(y), Variant::II) if step % 4 == 0 => {
                                    keyword_put(&mut *m, *n, *y, || {}).unwrap()
                                }
                                _ => put(&mut *m, &k, &x),
                            };
                            assert_eq!(s, Status::Ok, "{v:?} step {step}");
                        }
                        model.insert(k, x);
                    }
                    45..=64 => {
                        let got = m.remove(&item(&k)).unwrap() == Status::Ok;
                        assert_eq!(got, model.remove(&k).is_some(), "{v:?} remove {step}");
                    }
                    65..=84 => {
                        assert_eq!(
                            get(&mut *m, v, &k),
                            model.get(&k).cloned(),
                            "{v:?} get {step}"
                        );
                        // the keywords' quick get: right, or undecided
                        if let (Entry::Int(n), false) = (&k, val_is_bytes(v)) {
                            match quick_get(&*m, *n) {
                                Some(q) => {
                                    assert_eq!(
                                        q.map(int),
                                        model.get(&k).cloned(),
                                        "{v:?} quick get {step}"
                                    );
                                    quick[0] += 1;
                                }
                                None => quick[1] += 1,
                            }
                        }
                    }
                    85..=86 => {
                        // a batch: this key and the next two
                        let ks: Vec<_> = (0..3).map(|d| key(v, (n + d) % span)).collect();
                        let xs: Vec<_> = (0..3).map(|d| val(v, step * 3 + d)).collect();
                        let pairs: Vec<_> = ks
                            .iter()
                            .zip(&xs)
                            .map(|(k, x)| (item(k), item(x)))
                            .collect();
                        assert_eq!(m.set_multi(&pairs).unwrap(), 3, "{v:?} set_multi {step}");
                        for (k, x) in ks.into_iter().zip(xs) {
                            model.insert(k, x);
                        }
                    }
                    87 => {
                        let ks: Vec<_> = (0..3).map(|d| key(v, (n + d * 5) % span)).collect();
                        let items: Vec<_> = ks.iter().map(item).collect();
                        let gone = ks.iter().filter(|k| model.remove(*k).is_some()).count();
                        assert_eq!(
                            m.remove_multi(&items).unwrap(),
                            gone as u64,
                            "{v:?} remove_multi {step}"
                        );
                    }
                    88 => {
                        let ks: Vec<_> = (0..4).map(|d| key(v, (n + d * 11) % span)).collect();
                        let items: Vec<_> = ks.iter().map(item).collect();
                        let got = m.get_multi(&items).unwrap();
                        let want: Vec<_> = ks.iter().map(|k| model.get(k).cloned()).collect();
                        assert_eq!(got, want, "{v:?} get_multi {step}");
                    }
                    89 => {
                        assert_eq!(m.exists(&item(&k)).unwrap(), model.contains_key(&k));
                    }
                    // whole-map operations see both tables (no migration
                    // is finished first)
                    90 if migrating(&*m) || step % 16 == 0 => {
                        let snap: HashMap<Entry, Entry> =
                            m.snapshot().unwrap().into_iter().collect();
                        assert_eq!(snap, model, "{v:?} snapshot {step}");
                    }
                    91 => {
                        let end = if step % 2 == 0 {
                            End::Oldest
                        } else {
                            End::Newest
                        };
                        for (k, x) in m.take_ends(2, end).unwrap() {
                            assert_eq!(model.remove(&k), Some(x), "{v:?} take_ends {step}");
                        }
                    }
                    _ if !val_is_bytes(v) => {
                        // every other one through the keywords' quick incr
                        // first (integer keys), which decides or changes
                        // nothing
                        let quick_res = match (&k, step % 2) {
                            (Entry::Int(n), 0) => quick_incr(&*m, *n, 1),
                            _ => None,
                        };
                        quick[2 + quick_res.is_none() as usize] += 1;
                        let mut res = 0;
                        let s = match quick_res {
                            Some(r) => {
                                res = r;
                                Status::Ok
                            }
                            None => m.incr_by(&item(&k), 1, &mut res).unwrap(),
                        };
                        let cur = match model.get(&k) {
                            Some(Entry::Int(c)) => *c,
                            _ => 0,
                        };
                        let limit = if v == Variant::I16 {
                            i16::MAX as i64
                        } else {
                            i64::MAX
                        };
                        if cur < limit {
                            assert_eq!((s, res), (Status::Ok, cur + 1), "{v:?} incr {step}");
                            model.insert(k, int(cur + 1));
                        }
                    }
                    _ => {}
                }
                if migrating(&*m) {
                    migrating_steps += 1;
                    if step >= 8_000 && !cleared {
                        cleared = true;
                        m.clear().unwrap();
                        model.clear();
                        assert!(!migrating(&*m), "{v:?}: clear drops the migration");
                    }
                }
            }
            assert!(cleared, "{v:?}: a clear during a migration");
            if !key_is_bytes(v) && !val_is_bytes(v) {
                // decided without TTL (misses during migrations are not);
                // never with it (it has extension words)
                let [decided, left, incr_decided, incr_left, put_decided, put_left] = quick;
                assert!(put_left > 0, "{v:?} ttl {ttl}: quick puts left ({quick:?})");
                assert_eq!(
                    put_decided > 0,
                    ttl == 0,
                    "{v:?} ttl {ttl}: quick puts decided"
                );
                assert!(left > 0, "{v:?} ttl {ttl}: quick gets left ({quick:?})");
                assert_eq!(decided > 0, ttl == 0, "{v:?} ttl {ttl}: quick gets decided");
                assert!(
                    incr_left > 0,
                    "{v:?} ttl {ttl}: quick incrs left ({quick:?})"
                );
                assert_eq!(
                    incr_decided > 0,
                    ttl == 0,
                    "{v:?} ttl {ttl}: quick incrs decided"
                );
            }
            assert!(
                migrating_steps > 1000,
                "{v:?}: migrations were in progress ({migrating_steps} steps)"
            );
            // a full walk while the last migration may still be going on
            let mut seen = HashMap::new();
            while let Some(k) = each_key(&mut *m, v) {
                assert!(
                    seen.insert(k, ()).is_none(),
                    "{v:?}: each returned a key twice"
                );
            }
            assert_eq!(seen.len(), model.len(), "{v:?}: each saw every entry");
            for k in model.keys() {
                assert!(seen.contains_key(k), "{v:?}: each missed a key");
            }
            m.verify().unwrap();
            let snap = m.snapshot().unwrap();
            assert_eq!(snap.len(), model.len());
        }
    }
}

/// Volatile keys `base..base + n` come in, then go, again and again: one
/// write per call. The map grows and shrinks, so migrations follow one
/// another.
struct Churn {
    base: u64,
    n: u64,
    at: u64,
    filling: bool,
}

impl Churn {
    fn new(base: u64, n: u64) -> Churn {
        Churn {
            base,
            n,
            at: 0,
            filling: true,
        }
    }

    fn write(&mut self, m: &mut dyn AnyMap, v: Variant) {
        let k = key(v, self.base + self.at);
        if self.filling {
            assert_eq!(put(m, &k, &val(v, self.at)), Status::Ok);
        } else {
            assert_eq!(m.remove(&item(&k)).unwrap(), Status::Ok);
        }
        self.at += 1;
        if self.at == self.n {
            self.at = 0;
            self.filling = !self.filling;
        }
    }
}

/// Walk a map with `each`, `writes` changes of other keys between steps,
/// and check that each stable key comes exactly once.
fn walk_while_writing(v: Variant, writes: u64) {
    let t = Tmp::new("migrate-walk");
    let mut m = open_with(&t, v, 20_000, 0);
    for n in 0..1000 {
        put(&mut *m, &key(v, n), &val(v, n));
    }
    let mut seen: HashMap<Entry, u32> = HashMap::new();
    let mut migrating_steps = 0;
    let mut churn = Churn::new(1000, 1500);
    while let Some(k) = each_key(&mut *m, v) {
        *seen.entry(k).or_default() += 1;
        for _ in 0..writes {
            churn.write(&mut *m, v);
        }
        migrating_steps += migrating(&*m) as u32;
    }
    for n in 0..1000 {
        assert_eq!(
            seen.get(&key(v, n)).copied(),
            Some(1),
            "{v:?}: stable key {n} came once"
        );
    }
    assert!(
        migrating_steps > 50,
        "{v:?}: the walk met migrations ({migrating_steps})"
    );
    m.verify().unwrap();
}

#[test]
fn each_returns_every_stable_entry_once_across_migrations() {
    let _one = one_at_a_time();
    slow_migrations();
    for v in VARIANTS {
        walk_while_writing(v, 3);
    }
}

#[test]
fn a_walk_in_another_process_sees_stable_entries_once() {
    let _one = one_at_a_time();
    slow_migrations();
    let v = Variant::SS;
    let t = Tmp::new("migrate-walk2");
    let mut m = open_with(&t, v, 50_000, 0);
    for n in 0..2000 {
        put(&mut *m, &key(v, n), &val(v, n));
    }
    let path = t.0.clone();
    let walker = spawn_child(60, move || {
        let mut c = open_any(&path, v, &Params::new(1)).unwrap();
        let mut seen: HashMap<Entry, u32> = HashMap::new();
        let mut met = 0;
        while let Some(k) = each_key(&mut *c, v) {
            *seen.entry(k).or_default() += 1;
            met += migrating(&*c) as u32;
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        let once = (0..2000).all(|n| seen.get(&key(v, n)) == Some(&1));
        match (once, met > 0) {
            (true, true) => 0,
            (false, _) => 1,
            (true, false) => 2,
        }
    });
    // meanwhile: volatile keys come and go until the walker is done
    let mut churn = Churn::new(2000, 3000);
    let code = loop {
        let mut st = 0;
        // SAFETY: our own child; WNOHANG.
        if unsafe { libc::waitpid(walker, &mut st, libc::WNOHANG) } == walker {
            break if libc::WIFEXITED(st) {
                libc::WEXITSTATUS(st)
            } else {
                100
            };
        }
        for _ in 0..5 {
            churn.write(&mut *m, v);
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    };
    assert_eq!(
        code, 0,
        "the walker: 1 = a stable key not seen exactly once, 2 = no migration met"
    );
    m.verify().unwrap();
}

/// A table large enough that the next one's region is allocated ahead
/// and the retired one's punched in chunks (8 MiB and up): 700,000 II
/// entries in, every one read back; then most of them out (shrinks, into
/// a region allocated ahead for a larger table); `verify` after each.
#[test]
fn large_tables_grow_and_shrink_through_regions_made_ready_ahead() {
    let _one = one_at_a_time();
    set_migrate_min(hashmap_shared::testing::MIGRATE_MIN_DEFAULT, 64);
    let t = Tmp::new("migrate-large");
    let mut m = open_with(&t, Variant::II, 1_000_000, 0);
    let n = 700_000i64;
    let mut met = 0u32;
    for i in 0..n {
        assert_eq!(put(&mut *m, &int(i), &int(i ^ 0x55)), Status::Ok);
        met += migrating(&*m) as u32;
    }
    assert!(met > 1000, "the fill met migrations ({met} puts)");
    for i in (0..n).step_by(7) {
        assert_eq!(
            get(&mut *m, Variant::II, &int(i)),
            Some(int(i ^ 0x55)),
            "key {i}"
        );
    }
    m.verify().unwrap();
    for i in 0..n - 20_000 {
        assert_eq!(m.remove(&item(&int(i))).unwrap(), Status::Ok);
    }
    for i in n - 20_000..n {
        assert_eq!(
            get(&mut *m, Variant::II, &int(i)),
            Some(int(i ^ 0x55)),
            "key {i}"
        );
    }
    m.verify().unwrap();
    assert_eq!(m.snapshot().unwrap().len(), 20_000);
}

/// The keywords' put of a missing integer key takes the slot its quick
/// attempt found only if nothing changed before the full put took the
/// lock. Here a removal in between empties the slot before it (key `a`'s,
/// the same home): placed in the stale slot, key `b` would sit behind an
/// empty slot, where no lookup finds it.
#[test]
fn a_keyword_put_does_not_take_a_slot_found_before_a_change() {
    let _one = one_at_a_time();
    let t = Tmp::new("migrate-vacancy");
    let mut m = open_with(&t, Variant::II, 100, 0);
    let mut other = open_with(&t, Variant::II, 100, 0);
    // two keys with the same home slot, far from the table's end
    let (home, cap) = int_home(&*m, 0);
    assert!(cap >= 8, "table of {cap} slots");
    let a = (1..100_000)
        .find(|&k| int_home(&*m, k) == (home, cap))
        .expect("a key with the same home");
    assert_eq!(m.put(&item(&int(0)), &item(&int(10))).unwrap(), Status::Ok);
    assert_eq!(m.put(&item(&int(a)), &item(&int(20))).unwrap(), Status::Ok);
    let b = (1..100_000)
        .filter(|&k| k != a)
        .find(|&k| int_home(&*m, k) == (home, cap))
        .expect("a third key with the same home");
    // b's attempt finds the slot after a's; then a goes, and b's slot is
    // the one a leaves
    let st = keyword_put(&mut *m, b, 30, || {
        assert_eq!(other.remove(&item(&int(a))).unwrap(), Status::Ok);
    });
    assert_eq!(st, Some(Status::Ok));
    assert_eq!(get(&mut *m, Variant::II, &int(b)), Some(int(30)));
    assert_eq!(get(&mut *other, Variant::II, &int(b)), Some(int(30)));
    assert_eq!(get(&mut *m, Variant::II, &int(0)), Some(int(10)));
    assert_eq!(get(&mut *m, Variant::II, &int(a)), None);
    // with nothing in between, the slot found is taken
    let c = (1..100_000)
        .filter(|&k| k != a && k != b)
        .find(|&k| int_home(&*m, k) == (home, cap))
        .expect("a fourth key with the same home");
    assert_eq!(keyword_put(&mut *m, c, 40, || {}), Some(Status::Ok));
    assert_eq!(get(&mut *other, Variant::II, &int(c)), Some(int(40)));
    assert_eq!(m.info(Info::Size), 3);
    // the same for a counter created by the keywords' incr: c goes, and
    // a fifth key's slot found before is the one c leaves
    let d = (1..100_000)
        .filter(|&k| ![a, b, c].contains(&k))
        .find(|&k| int_home(&*m, k) == (home, cap))
        .expect("a fifth key with the same home");
    let st = keyword_incr(&mut *m, d, 5, || {
        assert_eq!(other.remove(&item(&int(c))).unwrap(), Status::Ok);
    });
    assert_eq!(st, Some((Status::Ok, 5)));
    assert_eq!(get(&mut *other, Variant::II, &int(d)), Some(int(5)));
    assert_eq!(keyword_incr(&mut *m, d, 2, || {}), Some((Status::Ok, 7)));
    let e = (1..100_000)
        .filter(|&k| ![a, b, c, d].contains(&k))
        .find(|&k| int_home(&*m, k) == (home, cap))
        .expect("a sixth key with the same home");
    assert_eq!(keyword_incr(&mut *m, e, -3, || {}), Some((Status::Ok, -3)));
    assert_eq!(get(&mut *other, Variant::II, &int(e)), Some(int(-3)));
    assert_eq!(m.info(Info::Size), 4);
    m.verify().unwrap();
}

/// What a quick attempt found serves its own key only: an attempt for one
/// key that finds it missing, then the full put of another key (as when
/// that key's own attempt decides nothing before probing: a writer held
/// the lock), which must probe for itself.
#[test]
fn a_keyword_put_takes_only_its_own_keys_slot() {
    let _one = one_at_a_time();
    let t = Tmp::new("migrate-vacancy-key");
    let mut m = open_with(&t, Variant::II, 100, 0);
    // x's home leaves room after it (the seed, random per file, decides
    // the homes), and y's is well past it (the table is empty)
    let cap = int_home(&*m, 0).1;
    let x = (0..100_000)
        .find(|&k| int_home(&*m, k).0 + 3 < cap)
        .expect("a key with an early home");
    let hx = int_home(&*m, x).0;
    let y = (0..100_000)
        .find(|&k| (hx + 3..cap).contains(&int_home(&*m, k).0))
        .expect("a key with a later home");
    assert!(!quick_put(&*m, x, 1), "the key is missing: nothing stored");
    assert_eq!(full_put_num(&mut *m, y, 2), Some(Status::Ok));
    assert_eq!(get(&mut *m, Variant::II, &int(y)), Some(int(2)));
    assert_eq!(get(&mut *m, Variant::II, &int(x)), None);
    m.verify().unwrap();
}

/// An LRU map whose tables migrate (every table, one home slot per step:
/// the list runs through both tables for most of the run) evicts,
/// promotes and drains exactly as the same map whose tables resize at
/// once: what a get, a remove or the size says after every operation, and
/// the whole list order at the end (drained from the oldest), are the
/// same. `verify` checks the list against both tables on the way.
#[test]
fn lru_maps_that_migrate_keep_the_order_of_maps_that_resize_at_once() {
    let _one = one_at_a_time();
    for v in [Variant::II, Variant::SS, Variant::IS, Variant::SI] {
        let run = |migrate: bool| -> (Vec<String>, u64) {
            if migrate {
                slow_migrations();
            } else {
                set_migrate_min(u64::MAX, 64);
            }
            let t = Tmp::new("migrate-lru");
            let mut p = Params::new(5000);
            p.max_size = 1500;
            let mut m = open_any(&t.0, v, &p).unwrap();
            let mut r = Rng(0x1e0 ^ v as u64);
            let (mut log, mut met) = (Vec::new(), 0u64);
            for step in 0..20_000u64 {
                // grows past max_size (evictions), then shrinks
                let span = if step < 12_000 { 300 + step / 3 } else { 400 };
                let k = key(v, r.below(span));
                match r.below(100) {
                    0..=49 => {
                        let x = val(v, r.below(1 << 20));
                        assert_eq!(put(&mut *m, &k, &x), Status::Ok, "{v:?} step {step}");
                    }
                    50..=64 => log.push(format!("remove {:?}", m.remove(&item(&k)).unwrap())),
                    65..=94 => log.push(format!("get {:?}", get(&mut *m, v, &k))),
                    _ => log.push(format!("size {}", m.info_try(Info::Size).unwrap())),
                }
                met += migrating(&*m) as u64;
                if step % 2000 == 0 {
                    m.verify().unwrap();
                }
            }
            m.verify().unwrap();
            let rest = m.take_ends(u64::MAX, End::Oldest).unwrap();
            log.push(format!("{rest:?}"));
            (log, met)
        };
        let (stepwise, met) = run(true);
        let (at_once, none) = run(false);
        assert!(
            met > 1000,
            "{v:?}: the run met migrations ({met} operations)"
        );
        assert_eq!(none, 0, "{v:?}: the other run resized at once");
        assert_eq!(stepwise.len(), at_once.len());
        for (i, (a, b)) in stepwise.iter().zip(&at_once).enumerate() {
            assert_eq!(a, b, "{v:?}: operation {i} (migrating, at once)");
        }
    }
    slow_migrations();
}

/// `reserve` on a table large enough to migrate grows by a migration: it
/// returns with the larger table in place and the entries moving, which
/// the writes that follow finish; every entry stays readable meanwhile.
#[test]
fn reserve_grows_a_large_table_by_a_migration() {
    let _one = one_at_a_time();
    set_migrate_min(hashmap_shared::testing::MIGRATE_MIN_DEFAULT, 64);
    let t = Tmp::new("migrate-reserve");
    let mut m = open_with(&t, Variant::II, 2_000_000, 0);
    let n = 100_000i64;
    for i in 0..n {
        assert_eq!(put(&mut *m, &int(i), &int(-i)), Status::Ok);
    }
    while migrating(&*m) {
        assert_eq!(put(&mut *m, &int(0), &int(0)), Status::Ok);
    }
    let before = m.info_try(Info::Capacity).unwrap();
    assert!(m.reserve(1_000_000).unwrap());
    let after = m.info_try(Info::Capacity).unwrap();
    assert!(after >= 1_333_334, "capacity {before} -> {after}");
    assert!(migrating(&*m), "the entries move after reserve returns");
    for i in (0..n).step_by(3) {
        assert_eq!(get(&mut *m, Variant::II, &int(i)), Some(int(-i)), "key {i}");
    }
    let mut writes = 0;
    while migrating(&*m) {
        assert_eq!(put(&mut *m, &int(n + writes), &int(1)), Status::Ok);
        writes += 1;
    }
    assert!(writes > 100, "the migration took {writes} writes");
    for i in (0..n).step_by(3) {
        assert_eq!(get(&mut *m, Variant::II, &int(i)), Some(int(-i)), "key {i}");
    }
    m.verify().unwrap();
    slow_migrations();
}

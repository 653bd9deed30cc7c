//! The public API, from safe code only: everything a Rust program does with
//! a map, over the four kinds (`I16`, `I32`, `I64`, `Bytes`), through the
//! crate's root exports and nothing else.
#![forbid(unsafe_code)]

use hashmap_shared::{Bytes, Map, Params, Variant, I16, I32, I64};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A fresh path, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let p = dir.join(format!("dhms-api-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn variants_are_the_pairs_of_kinds() {
    assert_eq!(Map::<I16, I16>::variant(), Variant::I16);
    assert_eq!(Map::<I32, I32>::variant(), Variant::I32);
    assert_eq!(Map::<I64, I64>::variant(), Variant::II);
    assert_eq!(Map::<I16, Bytes>::variant(), Variant::I16S);
    assert_eq!(Map::<I64, Bytes>::variant(), Variant::IS);
    assert_eq!(Map::<Bytes, I32>::variant(), Variant::SI32);
    assert_eq!(Map::<Bytes, Bytes>::variant(), Variant::SS);
}

#[test]
fn int16_keys_and_values() {
    let t = Tmp::new("i16");
    let mut m = Map::<I16, I16>::open(&t.0, &Params::new(100)).unwrap();
    assert!(m.put(-5, 300).unwrap());
    assert_eq!(m.get(-5).unwrap(), Some(300i16));
    assert_eq!(m.get(6).unwrap(), None);
    assert_eq!(m.incr_by(1, 32_000).unwrap(), 32_000);
    let e = m.incr_by(1, 1_000).unwrap_err();
    assert!(e.to_string().contains("int16"), "{e}");
    assert_eq!(
        m.get(1).unwrap(),
        Some(32_000),
        "an overflowing incr changes nothing"
    );
    assert_eq!(m.decr(1).unwrap(), 31_999);
    assert_eq!(m.max(1, 32_767).unwrap(), 32_767);
    assert_eq!(m.min(1, -7).unwrap(), -7);
    assert_eq!(m.len().unwrap(), 2);
    assert!(m.remove(-5).unwrap());
    assert!(!m.remove(-5).unwrap());
    assert!(!m.exists(-5).unwrap());
    m.verify().unwrap();
}

#[test]
fn int32_keys_with_string_values() {
    let t = Tmp::new("i32s");
    let mut m = Map::<I32, Bytes>::open(&t.0, &Params::new(1000)).unwrap();
    let long = vec![b'x'; 10_000];
    assert!(m.put(1, b"one").unwrap());
    assert!(m.put(2, &long).unwrap());
    assert!(m.put(i32::MIN, b"").unwrap());
    assert_eq!(m.get(1).unwrap(), Some(b"one".to_vec()));
    assert_eq!(
        m.get(2).unwrap(),
        Some(long.clone()),
        "a value longer than the buffer"
    );
    assert_eq!(m.get(i32::MIN).unwrap(), Some(Vec::new()));
    assert!(!m.add(1, b"uno").unwrap(), "add does not overwrite");
    assert!(m.update(1, b"uno").unwrap());
    assert!(!m.update(3, b"tres").unwrap(), "update does not insert");
    assert!(m.cas(1, b"uno", b"eins").unwrap());
    assert!(!m.cas(1, b"uno", b"un").unwrap());
    assert_eq!(m.take(1).unwrap(), Some(b"eins".to_vec()));
    assert_eq!(m.take(1).unwrap(), None);
    let all: BTreeMap<i32, Vec<u8>> = m.entries().unwrap().into_iter().collect();
    assert_eq!(all.len(), 2);
    assert_eq!(all[&2], long);
    m.verify().unwrap();
}

#[test]
fn int64_counters_and_iteration() {
    let t = Tmp::new("ii");
    let mut m = Map::<I64, I64>::open(&t.0, &Params::new(10_000)).unwrap();
    for k in 0..1000i64 {
        assert_eq!(m.incr_by(k, k * 3).unwrap(), k * 3);
        assert_eq!(m.incr(k).unwrap(), k * 3 + 1);
    }
    assert_eq!(m.len().unwrap(), 1000);
    let mut seen = BTreeMap::new();
    for r in m.iter() {
        let (k, v) = r.unwrap();
        assert!(seen.insert(k, v).is_none(), "key {k} twice");
    }
    assert_eq!(seen.len(), 1000);
    assert!(seen.iter().all(|(k, v)| *v == k * 3 + 1));
    m.clear().unwrap();
    assert!(m.is_empty().unwrap());
    assert_eq!(m.iter().count(), 0);
}

#[test]
fn byte_keys_and_values() {
    let t = Tmp::new("ss");
    let mut m = Map::<Bytes, Bytes>::open(&t.0, &Params::new(5000)).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..2000u32 {
        let k = format!("key-{i}").into_bytes();
        let v = vec![(i % 251) as u8; (i as usize * 7) % 300];
        assert!(m.put(&k, &v).unwrap());
        model.insert(k, v);
    }
    for (k, v) in &model {
        assert_eq!(m.get(k).unwrap().as_ref(), Some(v));
    }
    // iteration with growing buffers: every entry once, the right value
    let mut walked = BTreeMap::new();
    for r in m.iter() {
        let (k, v) = r.unwrap();
        walked.insert(k, v);
    }
    assert_eq!(walked, model);
    // reads into one reused buffer
    let mut buf = Vec::new();
    for (k, v) in model.iter().take(300) {
        assert!(m.get_into(k, &mut buf).unwrap());
        assert_eq!(&buf, v);
    }
    assert!(!m.get_into(b"absent", &mut buf).unwrap());
    assert!(buf.is_empty());
    // stop early: the walk can be dropped half-way
    assert_eq!(m.iter().take(10).count(), 10);
    assert!(m.exists(b"key-7").unwrap());
    assert!(m.remove(b"key-7").unwrap());
    assert_eq!(m.get(b"key-7").unwrap(), None);
    assert_eq!(m.len().unwrap(), 1999);
    m.verify().unwrap();
}

#[test]
fn string_keys_with_int32_counters_in_two_handles() {
    let t = Tmp::new("si32");
    let mut a = Map::<Bytes, I32>::open(&t.0, &Params::new(100)).unwrap();
    let mut b = Map::<Bytes, I32>::open(&t.0, &Params::new(100)).unwrap();
    for _ in 0..50 {
        a.incr(b"hits").unwrap();
        b.incr(b"hits").unwrap();
    }
    assert_eq!(a.get(b"hits").unwrap(), Some(100));
    assert_eq!(b.get(b"hits").unwrap(), Some(100));
}

#[test]
fn a_full_map_says_so() {
    let t = Tmp::new("full");
    let mut m = Map::<I64, I64>::open(&t.0, &Params::new(3)).unwrap();
    for k in 0..3 {
        assert!(m.put(k, k).unwrap());
    }
    assert!(!m.put(3, 3).unwrap(), "the fourth key does not fit");
    assert!(m.put(2, 20).unwrap(), "an existing key is overwritten");
    let e = m.incr(9).unwrap_err();
    assert!(e.to_string().contains("full"), "{e}");
    assert_eq!(m.max_entries(), 3);
}

#[test]
fn lru_and_ttl_through_params() {
    let t = Tmp::new("lru");
    let mut p = Params::new(10);
    p.max_size = 4;
    p.ttl = 100;
    let mut m = Map::<I64, Bytes>::open(&t.0, &p).unwrap();
    for k in 0..10 {
        m.put(k, b"v").unwrap();
    }
    assert_eq!(m.len().unwrap(), 4, "LRU keeps max_size entries");
    assert_eq!(m.stats().unwrap().evictions, 6);
    let left = m.ttl_remaining(9).unwrap().unwrap();
    assert!((1..=100).contains(&left), "{left}");
    assert!(m.put_ttl(9, b"w", 0).unwrap());
    assert_eq!(m.ttl_remaining(9).unwrap(), Some(0), "0: permanent");
    assert_eq!(m.flush_expired().unwrap(), 0);
}

#[test]
fn errors_are_errors_not_crashes() {
    let t = Tmp::new("err");
    {
        let mut m = Map::<I64, I64>::open(&t.0, &Params::new(10)).unwrap();
        m.put(1, 1).unwrap();
    }
    // another variant over the same file
    let e = Map::<Bytes, Bytes>::open(&t.0, &Params::new(10)).unwrap_err();
    assert!(e.to_string().contains("II"), "{e}");
    // bad parameters
    let e = Map::<I64, I64>::open(&t.0, &Params::new(0)).unwrap_err();
    assert!(e.to_string().contains("max_entries"), "{e}");
    // a path with a NUL byte
    let e = Map::<I64, I64>::open("/tmp/a\0b", &Params::new(10)).unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
    // a value over the string limit
    let t2 = Tmp::new("big");
    let mut s = Map::<I64, Bytes>::open(&t2.0, &Params::new(10)).unwrap();
    let huge = vec![0u8; (1 << 30) + 1];
    let e = s.put(1, &huge).unwrap_err();
    assert!(e.to_string().contains("limit"), "{e}");
}

#[test]
fn anonymous_and_sharded_maps() {
    let mut a = Map::<Bytes, I64>::anonymous(&Params::new(100)).unwrap();
    a.put(b"k", 1).unwrap();
    assert_eq!(a.get(b"k").unwrap(), Some(1));

    let t = Tmp::new("shards");
    let prefix = t.0.to_string_lossy().into_owned();
    {
        let mut s = Map::<I32, I32>::open_sharded(&prefix, 4, &Params::new(1000)).unwrap();
        for k in 0..500 {
            s.put(k, -k).unwrap();
        }
        assert_eq!(s.len().unwrap(), 500);
        assert_eq!(s.iter().count(), 500);
        assert_eq!(s.get(250).unwrap(), Some(-250));
    }
    for i in 0..4 {
        let _ = std::fs::remove_file(format!("{prefix}.{i}"));
    }
}

#[test]
fn frozen_maps_open_read_only() {
    let t = Tmp::new("frozen");
    let mut m = Map::<Bytes, Bytes>::open(&t.0, &Params::new(10)).unwrap();
    m.put(b"a", b"b").unwrap();
    m.freeze().unwrap();
    assert!(m.put(b"c", b"d").is_err(), "a frozen map refuses writes");
    let mut r = Map::<Bytes, Bytes>::open_readonly(&t.0).unwrap();
    assert_eq!(r.get(b"a").unwrap(), Some(b"b".to_vec()));
    assert!(r.put(b"x", b"y").is_err());
}

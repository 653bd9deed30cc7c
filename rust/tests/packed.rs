//! Packed slots: plain maps with integer keys keep a control byte per slot
//! and each key/value pair at its variant's widths (DESIGN.md section 3).
//! These tests drive every width through the typed API and check that
//! nothing narrower than 64 bits loses its sign, that the recomputed hashes
//! keep iteration exactly-once across resizes, and that the layout really
//! is smaller (the file's resident table bytes per entry).
#![forbid(unsafe_code)]

use hashmap_shared::{Bytes, Map, Params, I16, I32, I64};
use std::collections::BTreeMap;
use std::path::PathBuf;

struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("dhms-packed-{}-{tag}", std::process::id()));
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
fn every_int16_key_and_value_survives_with_its_sign() {
    let t = Tmp::new("i16-all");
    let mut m = Map::<I16, I16>::open(&t.0, &Params::new(65_536)).unwrap();
    for k in i16::MIN..=i16::MAX {
        assert!(m.put(k, k.wrapping_neg() ^ 0x5a5a).unwrap(), "put {k}");
    }
    assert_eq!(m.len().unwrap(), 65_536);
    for k in i16::MIN..=i16::MAX {
        assert_eq!(
            m.get(k).unwrap(),
            Some(k.wrapping_neg() ^ 0x5a5a),
            "get {k}"
        );
    }
    m.verify().unwrap();
    // every key once, in any order
    let all = m.entries().unwrap();
    assert_eq!(all.len(), 65_536);
    let keys: std::collections::BTreeSet<i16> = all.iter().map(|e| e.0).collect();
    assert_eq!(keys.len(), 65_536);
    // remove the odd keys: the map shrinks, the rest stays readable
    for k in (i16::MIN..=i16::MAX).filter(|k| k & 1 == 1) {
        assert!(m.remove(k).unwrap());
    }
    for k in i16::MIN..=i16::MAX {
        let want = (k & 1 == 0).then(|| k.wrapping_neg() ^ 0x5a5a);
        assert_eq!(m.get(k).unwrap(), want, "after removes, get {k}");
    }
    m.verify().unwrap();
}

#[test]
fn counters_at_every_width_wrap_nothing() {
    let t = Tmp::new("counters");
    let mut a = Map::<I16, I16>::open(&t.0, &Params::new(100)).unwrap();
    assert_eq!(a.incr_by(-1, -32_768).unwrap(), -32_768);
    assert!(a.decr(-1).is_err(), "int16 underflow is refused");
    assert_eq!(a.get(-1).unwrap(), Some(-32_768));
    assert_eq!(a.incr_by(-1, 65_535).unwrap(), 32_767);
    drop(a);
    let t = Tmp::new("counters32");
    let mut b = Map::<I32, I32>::open(&t.0, &Params::new(100)).unwrap();
    assert_eq!(b.incr_by(i32::MIN, i32::MIN as i64).unwrap(), i32::MIN);
    assert_eq!(b.max(i32::MIN, -1).unwrap(), -1);
    assert_eq!(b.incr(i32::MIN).unwrap(), 0);
    assert!(b.incr_by(i32::MIN, i32::MAX as i64 + 1).is_err());
    assert_eq!(b.get(i32::MIN).unwrap(), Some(0));
    drop(b);
    let t = Tmp::new("counters64");
    let mut c = Map::<I64, I64>::open(&t.0, &Params::new(100)).unwrap();
    assert_eq!(c.incr_by(i64::MAX, i64::MIN).unwrap(), i64::MIN);
    assert_eq!(c.get(i64::MAX).unwrap(), Some(i64::MIN));
    assert!(c.decr(i64::MAX).is_err());
}

#[test]
fn int_keys_with_string_values() {
    let t = Tmp::new("i16s");
    let mut m = Map::<I16, Bytes>::open(&t.0, &Params::new(1000)).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..900i16 {
        let k = i.wrapping_mul(73).wrapping_sub(400);
        let v = format!("value of {k} {}", "x".repeat(i as usize % 40));
        assert!(m.put(k, v.as_bytes()).unwrap());
        model.insert(k, v.into_bytes());
    }
    for (k, v) in &model {
        assert_eq!(m.get(*k).unwrap().as_ref(), Some(v));
    }
    let got: BTreeMap<i16, Vec<u8>> = m.entries().unwrap().into_iter().collect();
    assert_eq!(got, model);
    m.verify().unwrap();
    let t = Tmp::new("i32s");
    let mut m = Map::<I32, Bytes>::open(&t.0, &Params::new(10)).unwrap();
    assert!(m.put(-2_000_000_000, b"far negative").unwrap());
    assert_eq!(
        m.take(-2_000_000_000).unwrap().as_deref(),
        Some(&b"far negative"[..])
    );
    assert_eq!(m.len().unwrap(), 0);
}

#[test]
fn iteration_is_exactly_once_while_the_table_grows_and_shrinks() {
    let t = Tmp::new("iter");
    let mut m = Map::<I64, I64>::open(&t.0, &Params::new(100_000)).unwrap();
    for k in 0..1000i64 {
        m.put(k * 7919 - 3_000_000, k).unwrap();
    }
    let mut other = Map::<I64, I64>::open(&t.0, &Params::new(1)).unwrap();
    let mut seen = BTreeMap::new();
    let mut steps = 0;
    {
        let mut it = m.iter();
        while let Some((k, v)) = it.next().transpose().unwrap() {
            *seen.entry(k).or_insert(0) += 1;
            // (the keys added meanwhile may or may not be met)
            assert!(k >= 1_000_000_000 || k == v * 7919 - 3_000_000);
            steps += 1;
            // another handle grows the table (and later shrinks it) under the walk
            if steps == 100 {
                for j in 0..20_000i64 {
                    other.put(j * 2 + 1_000_000_000, 0).unwrap();
                }
            }
            if steps == 500 {
                for j in 0..20_000i64 {
                    other.remove(j * 2 + 1_000_000_000).unwrap();
                }
            }
        }
    }
    for k in 0..1000i64 {
        assert_eq!(seen.get(&(k * 7919 - 3_000_000)), Some(&1), "key {k}");
    }
    m.verify().unwrap();
}

/// The resident size of the table: a plain int16 map costs a few bytes per
/// entry, where a 24-byte slot would cost more than 32.
#[test]
fn packed_tables_are_small() {
    fn blocks(p: &std::path::Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().blocks() * 512
    }
    let n = 50_000i64;
    let mut per_entry = Vec::new();
    for (tag, widths) in [("i16", 4u64), ("i32", 8), ("ii", 16)] {
        let t = Tmp::new(&format!("size-{tag}"));
        let base;
        match tag {
            "i16" => {
                let mut m = Map::<I16, I16>::open(&t.0, &Params::new(n as u64)).unwrap();
                base = blocks(&t.0);
                for k in 0..n {
                    m.put((k - 25_000) as i16, 1).unwrap();
                }
            }
            "i32" => {
                let mut m = Map::<I32, I32>::open(&t.0, &Params::new(n as u64)).unwrap();
                base = blocks(&t.0);
                for k in 0..n {
                    m.put(k as i32, 1).unwrap();
                }
            }
            _ => {
                let mut m = Map::<I64, I64>::open(&t.0, &Params::new(n as u64)).unwrap();
                base = blocks(&t.0);
                for k in 0..n {
                    m.put(k, 1).unwrap();
                }
            }
        }
        let bytes = (blocks(&t.0) - base) as f64 / n as f64;
        // a pair, its control byte and the group's padding, at a load of
        // at least 1/2: at most 2.2 x (pair + 1) (the 24-byte slot: >= 24)
        assert!(
            bytes <= 2.2 * (widths + 1) as f64,
            "{tag}: {bytes:.1} bytes of table per entry"
        );
        per_entry.push(bytes);
    }
    assert!(
        per_entry[0] < per_entry[1] && per_entry[1] < per_entry[2],
        "{per_entry:?}"
    );
}

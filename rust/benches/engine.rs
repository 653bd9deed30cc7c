//! Engine micro-benchmarks without Perl in the way: `cargo bench`.
//! Prints nanoseconds per operation for get/put hits and misses.

use hashmap_shared::map::{Item, Map, Out, Params};
use hashmap_shared::{Bytes, I64};
use std::ffi::CString;
use std::time::Instant;

fn path(tag: &str) -> CString {
    let p = format!("/dev/shm/dhms-bench-{}-{tag}", std::process::id());
    let _ = std::fs::remove_file(&p);
    CString::new(p).unwrap()
}

fn time(name: &str, n: usize, mut f: impl FnMut(usize)) {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for i in 0..n {
            f(i);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("{name:<24} {:>8.1} ns/op", best * 1e9 / n as f64);
}

fn main() {
    let n = 25_000;
    let p = path("ii");
    let mut m = Map::<I64, I64>::open(&p, &Params::new(1_000_000)).unwrap();
    let mut out = Out {
        buf: std::ptr::null_mut(),
        cap: 0,
        len: 0,
        num: 0,
        utf8: 0,
    };
    time("II put", n, |i| {
        m.put(&Item::int(i as i64), &Item::int(i as i64 * 3))
            .unwrap();
    });
    time("II get hit", n, |i| {
        m.get(&Item::int(i as i64), &mut out).unwrap();
    });
    time("II get miss", n, |i| {
        m.get(&Item::int(-(i as i64) - 1), &mut out).unwrap();
    });
    let mut r = 0;
    time("II incr_by", n, |i| {
        m.incr_by(&Item::int(i as i64), 1, &mut r).unwrap();
    });
    let _ = std::fs::remove_file(p.to_str().unwrap());

    let p = path("ss");
    let mut m = Map::<Bytes, Bytes>::open(&p, &Params::new(1_000_000)).unwrap();
    let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("key:{i}").into_bytes()).collect();
    let val = b"value of twenty byte".to_vec();
    let mut buf = vec![0u8; 64];
    let mut out = Out::with_vec(&mut buf);
    time("SS put", n, |i| {
        m.put(&Item::bytes(&keys[i]), &Item::bytes(&val)).unwrap();
    });
    time("SS get hit", n, |i| {
        m.get(&Item::bytes(&keys[i]), &mut out).unwrap();
    });
    time("SS get miss", n, |i| {
        m.get(&Item::bytes(&val[..(i % 19)]), &mut out).unwrap();
    });
    time("SS remove+put", n, |i| {
        m.remove(&Item::bytes(&keys[i])).unwrap();
        m.put(&Item::bytes(&keys[i]), &Item::bytes(&val)).unwrap();
    });
    let _ = std::fs::remove_file(p.to_str().unwrap());
}

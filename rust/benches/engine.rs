//! Engine micro-benchmarks without Perl in the way: `cargo bench`.
//! Prints nanoseconds per operation for get/put hits and misses, and for
//! get hits while another thread writes to the same map through its own
//! handle (the seqlock's contended case: a reader retries when a write to
//! the slot it read overlaps).

use hashmap_shared::testing::{Item, LocalMap as Map, Out, Params};
use hashmap_shared::{Bytes, I64};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
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

/// Runs `read` over `n` keys, pass after pass for at least 0.2 s, while a
/// second thread runs `write` (given a counter) in a loop; prints the best
/// and the mean pass in ns per read, and the writer's rate meanwhile.
fn contended(
    name: &str,
    n: usize,
    mut read: impl FnMut(usize),
    write: impl FnMut(u64) + Send + 'static,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, started, done) = (stop.clone(), started.clone(), done.clone());
        let mut write = write;
        std::thread::spawn(move || {
            let mut i = 0u64;
            started.store(true, Ordering::Release);
            while !stop.load(Ordering::Relaxed) {
                write(i);
                i += 1;
            }
            done.store(i, Ordering::Release);
        })
    };
    while !started.load(Ordering::Acquire) {
        std::hint::spin_loop();
    }
    let t = Instant::now();
    let (mut best, mut passes) = (f64::MAX, 0u32);
    while passes < 5 || t.elapsed().as_secs_f64() < 0.2 {
        let p = Instant::now();
        for i in 0..n {
            read(i);
        }
        best = best.min(p.elapsed().as_secs_f64());
        passes += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer thread");
    let writes = done.load(Ordering::Acquire) as f64;
    println!(
        "{name:<24} {:>8.1} ns/op (mean {:.1}; writer {:.1} M puts/s meanwhile)",
        best * 1e9 / n as f64,
        secs * 1e9 / (n as f64 * passes as f64),
        writes / secs / 1e6
    );
}

fn main() {
    let n = 25_000;
    let p = path("ii");
    let mut m = Map::<I64, I64>::open(&p, &Params::new(1_000_000)).unwrap();
    let mut out = Out::new(&mut []);
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
    // A reader handle and a writer handle (in another thread) on one map.
    {
        let wp = p.clone();
        let mut w = Map::<I64, I64>::open(&wp, &Params::new(1_000_000)).unwrap();
        contended(
            "II get hit, 1 writer",
            n,
            |i| {
                m.get(&Item::int(i as i64), &mut out).unwrap();
            },
            move |i| {
                let k = (i % n as u64) as i64;
                w.put(&Item::int(k), &Item::int(i as i64)).unwrap();
            },
        );
    }
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
    // The writer overwrites values with ones of another length, so the
    // string storage changes under the reader too.
    {
        let mut w = Map::<Bytes, Bytes>::open(&p, &Params::new(1_000_000)).unwrap();
        let wkeys = keys.clone();
        let vals = [
            b"short".to_vec(),
            b"a value of 33 bytes, longer still".to_vec(),
        ];
        contended(
            "SS get hit, 1 writer",
            n,
            |i| {
                m.get(&Item::bytes(&keys[i]), &mut out).unwrap();
            },
            move |i| {
                let k = &wkeys[(i % wkeys.len() as u64) as usize];
                w.put(&Item::bytes(k), &Item::bytes(&vals[(i & 1) as usize]))
                    .unwrap();
            },
        );
    }
    let _ = std::fs::remove_file(p.to_str().unwrap());
}

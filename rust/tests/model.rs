//! Model tests: random operation sequences against a `HashMap` oracle, for
//! every key/value codec pair.

mod common;
use common::*;
use hashmap_shared::testing::AnyMap;
use hashmap_shared::testing::{Entry, Info, Status, Variant};
use std::collections::HashMap;

fn bits(v: Variant) -> (u32, u32) {
    use Variant::*;
    match v {
        I16 => (16, 16),
        I32 => (32, 32),
        II => (64, 64),
        I16S => (16, 0),
        I32S => (32, 0),
        IS => (64, 0),
        SI16 => (0, 16),
        SI32 => (0, 32),
        SI => (0, 64),
        SS => (0, 0),
    }
}

fn gen_key(r: &mut Rng, v: Variant) -> Entry {
    let n = r.below(400) as i64 - 200;
    if key_is_bytes(v) {
        // lengths 0..40 so that both inline and arena keys occur
        let len = (n.unsigned_abs() % 23) as usize + if n % 3 == 0 { 8 } else { 0 };
        let b: Vec<u8> = (0..len)
            .map(|i| (n as u8).wrapping_add((i as u8).wrapping_mul(31)))
            .collect();
        Entry::Bytes(b, false)
    } else {
        match bits(v).0 {
            16 => int(n * 150),
            32 => int(n * 10_000_000),
            _ => int(n * 40_000_000_000_000_000),
        }
    }
}

fn gen_val(r: &mut Rng, v: Variant) -> Entry {
    match bits(v).1 {
        0 => {
            let len = match r.below(10) {
                0 => 0,
                1..=4 => r.below(8) as usize,
                5..=8 => r.below(120) as usize,
                _ => r.below(5000) as usize,
            };
            let b: Vec<u8> = (0..len).map(|_| r.below(256) as u8).collect();
            Entry::Bytes(b, r.below(2) == 1)
        }
        b => {
            let m = if b == 64 {
                i64::MAX
            } else {
                (1i64 << (b - 1)) - 1
            };
            int((r.next() as i64) % m)
        }
    }
}

fn same_bytes(a: &Entry, b: &Entry) -> bool {
    match (a, b) {
        (Entry::Bytes(x, _), Entry::Bytes(y, _)) => x == y,
        _ => a == b,
    }
}

fn ident(k: &Entry) -> Entry {
    match k {
        Entry::Bytes(b, _) => Entry::Bytes(b.clone(), false),
        e => e.clone(),
    }
}

fn run_model(v: Variant, seed: u64, steps: usize) {
    let t = Tmp::new("model");
    let max = 150u64;
    run_model_on(open(&t, v, max), v, max, seed, steps);
}

/// The model run on any map of `max` entries (a file, or a server).
fn run_model_on(mut m: Box<dyn AnyMap>, v: Variant, max: u64, seed: u64, steps: usize) {
    let mut model: HashMap<Entry, Entry> = HashMap::new();
    let mut r = Rng(seed);
    let int_vals = bits(v).1 != 0;
    let vbits = bits(v).1;
    for step in 0..steps {
        let k = gen_key(&mut r, v);
        let id = ident(&k);
        match r.below(100) {
            0..=34 => {
                let val = gen_val(&mut r, v);
                let s = put(&mut *m, &k, &val);
                if model.contains_key(&id) || (model.len() as u64) < max {
                    assert_eq!(s, Status::Ok, "step {step}");
                    model.insert(id, val);
                } else {
                    assert_eq!(s, Status::Full, "step {step}");
                }
            }
            35..=59 => {
                let got = get(&mut *m, v, &k);
                assert_eq!(got, model.get(&id).cloned(), "get step {step} {v:?}");
            }
            60..=64 => {
                assert_eq!(m.exists(&item(&k)).unwrap(), model.contains_key(&id));
            }
            65..=79 => {
                let s = m.remove(&item(&k)).unwrap();
                assert_eq!(
                    s == Status::Ok,
                    model.remove(&id).is_some(),
                    "remove step {step}"
                );
            }
            80..=84 => {
                let ki = item(&k);
                let got = read_out(val_is_bytes(v), |o| m.take(&ki, o).unwrap());
                assert_eq!(got, model.remove(&id), "take step {step}");
            }
            85..=89 => {
                let d = gen_val(&mut r, v);
                let (ki, di) = (item(&k), item(&d));
                let got = read_out(val_is_bytes(v), |o| {
                    match m.get_or_set(&ki, &di, o).unwrap() {
                        Status::Full => Status::False,
                        s => s,
                    }
                });
                let want = match model.get(&id) {
                    Some(x) => Some(x.clone()),
                    None if (model.len() as u64) < max => {
                        model.insert(id.clone(), d.clone());
                        Some(d)
                    }
                    None => None,
                };
                assert_eq!(got, want, "get_or_set step {step}");
            }
            90..=96 if int_vals => {
                let delta = r.below(2001) as i64 - 1000;
                let mut res = 0;
                let s = m.incr_by(&item(&k), delta, &mut res).unwrap();
                let lim = if vbits == 64 {
                    i64::MAX
                } else {
                    (1i64 << (vbits - 1)) - 1
                };
                let (lo, hi) = (-lim - 1, lim);
                let cur = model.get(&id).map(|e| match e {
                    Entry::Int(n) => *n,
                    _ => unreachable!(),
                });
                match cur {
                    Some(c) => match c.checked_add(delta).filter(|n| (lo..=hi).contains(n)) {
                        Some(n) => {
                            assert_eq!((s, res), (Status::Ok, n), "incr step {step}");
                            model.insert(id, int(n));
                        }
                        None => assert_eq!(s, Status::Range),
                    },
                    None if (model.len() as u64) < max => {
                        assert_eq!((s, res), (Status::Ok, delta));
                        model.insert(id, int(delta));
                    }
                    None => assert_eq!(s, Status::Full),
                }
            }
            97 if r.below(20) == 0 => {
                m.clear().unwrap();
                model.clear();
            }
            _ => {
                let snap = m.snapshot().unwrap();
                assert_eq!(snap.len(), model.len());
                for (sk, sv) in snap {
                    let want = model
                        .get(&ident(&sk))
                        .unwrap_or_else(|| panic!("extra key {sk:?}"));
                    assert_eq!(&sv, want);
                }
            }
        }
        assert_eq!(
            m.info_try(Info::Size).unwrap(),
            model.len() as u64,
            "size at step {step}"
        );
    }
    // A full walk with `each` sees every entry once (no concurrent writers).
    let mut seen = HashMap::new();
    let kb = key_is_bytes(v);
    let vb = val_is_bytes(v);
    loop {
        let (mut kbuf, mut vbuf) = (vec![0u8; 8192], vec![0u8; 8192]);
        let mut ko = hashmap_shared::testing::Out::with_vec(&mut kbuf);
        let mut vo = hashmap_shared::testing::Out::with_vec(&mut vbuf);
        match m.each(&mut ko, &mut vo).unwrap() {
            Status::Ok => {
                let k = if kb {
                    Entry::Bytes(ko.written().to_vec(), false)
                } else {
                    int(ko.num)
                };
                let val = if vb {
                    Entry::Bytes(vo.written().to_vec(), vo.utf8 != 0)
                } else {
                    int(vo.num)
                };
                assert!(seen.insert(k, val).is_none(), "each returned a key twice");
            }
            Status::False => break,
            s => panic!("{s:?}"),
        }
    }
    assert_eq!(seen.len(), model.len());
    m.verify().unwrap();
    for (k, val) in &seen {
        assert!(same_bytes(val, &model[k]) && val == &model[k]);
    }
}

#[test]
fn model_every_variant() {
    for (i, v) in Variant::ALL.iter().enumerate() {
        for seed in 1..=3u64 {
            run_model(*v, seed * 7919 + i as u64, 6000);
        }
    }
}

#[test]
fn max_entries_is_exact_and_table_shrinks() {
    let t = Tmp::new("exact");
    let mut m = open(&t, Variant::II, 1000);
    for k in 0..1000 {
        assert_eq!(put(&mut *m, &int(k), &int(k)), Status::Ok, "key {k}");
    }
    assert_eq!(put(&mut *m, &int(5000), &int(1)), Status::Full);
    assert_eq!(
        put(&mut *m, &int(7), &int(70)),
        Status::Ok,
        "overwrite when full"
    );
    let big = m.core_ref().info(Info::Capacity);
    for k in 0..990 {
        assert_eq!(m.remove(&item(&int(k))).unwrap(), Status::Ok);
    }
    let small = m.core_ref().info(Info::Capacity);
    assert!(small * 8 <= big, "capacity {big} -> {small}");
    assert!(m.core_ref().info(Info::Tombstones) <= small / 4 + 1);
    for k in 990..1000 {
        assert_eq!(get(&mut *m, Variant::II, &int(k)), Some(int(k)));
    }
}

#[test]
fn strings_of_every_size_class_round_trip() {
    let t = Tmp::new("strings");
    let mut m = open(&t, Variant::SS, 100);
    let mut r = Rng(99);
    let mut lens = vec![
        0usize, 1, 7, 8, 9, 15, 16, 17, 240, 241, 244, 247, 248, 249, 1000, 65536,
    ];
    lens.push(3 << 20);
    for (i, &len) in lens.iter().enumerate() {
        let k = format!("key-{i}").into_bytes();
        let v: Vec<u8> = (0..len).map(|_| r.below(256) as u8).collect();
        assert_eq!(
            put(&mut *m, &bytes(&k), &Entry::Bytes(v.clone(), true)),
            Status::Ok
        );
        assert_eq!(
            get(&mut *m, Variant::SS, &bytes(&k)),
            Some(Entry::Bytes(v, true))
        );
    }
    // Overwrite and remove everything: the arena's blocks are recycled.
    let used = m.core_ref().info(Info::ArenaUsed);
    for (i, _) in lens.iter().enumerate() {
        let k = format!("key-{i}").into_bytes();
        assert_eq!(m.remove(&item(&bytes(&k))).unwrap(), Status::Ok);
    }
    assert!(used > 3 << 20);
    assert_eq!(m.core_ref().info(Info::ArenaUsed), 0);
}

#[test]
fn arena_cap_limits_string_storage() {
    let t = Tmp::new("cap");
    let mut p = hashmap_shared::testing::Params::new(1000);
    p.arena_cap = 64 << 10;
    let mut m = hashmap_shared::testing::open_any(&t.0, Variant::IS, &p).unwrap();
    let v = vec![b'x'; 1000];
    let mut stored = 0;
    for k in 0..1000 {
        match put(&mut *m, &int(k), &bytes(&v)) {
            Status::Ok => stored += 1,
            Status::Full => break,
            s => panic!("{s:?}"),
        }
    }
    assert!(stored > 30 && stored < 70, "stored {stored}");
    assert_eq!(m.core_ref().info(Info::Size), stored);
    assert_eq!(
        put(&mut *m, &int(5000), &bytes(b"short")),
        Status::Ok,
        "inline strings need no arena"
    );
}

/// A private redis-server (or valkey-server) on a unix socket in a fresh
/// directory, with no TCP port and nothing saved; stopped on drop.
#[cfg(feature = "redis")]
struct Server {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

#[cfg(feature = "redis")]
impl Server {
    /// None when no server program is installed.
    fn start() -> Option<Server> {
        use std::process::{Command, Stdio};
        let bin = ["redis-server", "valkey-server"].into_iter().find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok()
        })?;
        let dir = std::env::temp_dir().join(format!("dhms-model-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("s.sock");
        let child = Command::new(bin)
            .args([
                "--port",
                "0",
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--unixsocket")
            .arg(&sock)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let srv = Server { child, dir };
        for _ in 0..400 {
            if sock.exists() {
                return Some(srv);
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("{bin} did not start");
    }
}

#[cfg(feature = "redis")]
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The same model on a map on a server (SPEC section 9): every variant,
/// with the 4-byte first buffer of `read_out` exercising the retry of
/// take and get_or_set (which must not run twice).
#[cfg(feature = "redis")]
#[test]
fn model_on_a_server() {
    let Some(srv) = Server::start() else {
        eprintln!("model_on_a_server: skipped, no redis-server or valkey-server installed");
        return;
    };
    for (i, v) in Variant::ALL.iter().enumerate() {
        let loc = format!("redis+unix://{}/s.sock#model-{i}", srv.dir.display());
        let loc = std::ffi::CString::new(loc).unwrap();
        let m =
            hashmap_shared::testing::open_any(&loc, *v, &hashmap_shared::testing::Params::new(150))
                .unwrap();
        run_model_on(m, *v, 150, 7919 + i as u64, 2500);
    }
}

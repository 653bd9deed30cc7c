//! A Rust program sharing maps with Perl programs (or other Rust ones).
//!
//! ```text
//! cargo build --release --example share
//! target/release/examples/share COUNTERS STRINGS ROUNDS [WAIT_FOR]
//! ```
//!
//! * `COUNTERS` is an `II` map (int64 -> int64; `Map<I64, I64>` here,
//!   `Data::HashMap::Shared::II` in Perl): keys 1 to 4 are counters, and
//!   each of `ROUNDS` rounds adds 1 to every one of them.
//! * `STRINGS` is an `SS` map (bytes -> bytes; `Map<Bytes, Bytes>`,
//!   `Data::HashMap::Shared::SS`): the program stores `rust` =>
//!   `hello from rust <pid>` in it first; then, given `WAIT_FOR`, it waits
//!   (up to 30 s) for that key to appear there — written by another
//!   process — and prints it as `saw KEY=VALUE` before it starts counting.
//!
//! Either map is created if its file does not exist yet; a process that
//! opens the same file, in Perl or in Rust, sees the same map, live.
//! `t/75-rust-and-perl.t` runs this program next to Perl processes that
//! count on the same keys, and checks that no increment is lost.

use hashmap_shared::{Bytes, Map, Params, I64};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 || args.len() > 5 {
        eprintln!("usage: {} COUNTERS STRINGS ROUNDS [WAIT_FOR]", args[0]);
        std::process::exit(2);
    }
    if let Err(e) = run(&args[1], &args[2], &args[3], args.get(4)) {
        eprintln!("share: {e}");
        std::process::exit(1);
    }
}

fn run(
    counters: &str,
    strings: &str,
    rounds: &str,
    wait_for: Option<&String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let rounds: u64 = rounds
        .parse()
        .map_err(|_| format!("ROUNDS must be a whole number (got {rounds:?})"))?;
    // Parameters are for a map this call creates; attaching ignores them.
    let mut counts = Map::<I64, I64>::open(counters, &Params::new(1000))?;
    let mut texts = Map::<Bytes, Bytes>::open(strings, &Params::new(1000))?;

    let hello = format!("hello from rust {}", std::process::id());
    texts.put(b"rust", hello.as_bytes())?;

    if let Some(key) = wait_for {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = texts.get(key.as_bytes())? {
                println!("saw {key}={}", String::from_utf8_lossy(&v));
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("no key {key:?} in {strings} after 30 s").into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    for _ in 0..rounds {
        for key in 1..=4 {
            counts.incr(key)?; // atomic across every process using the file
        }
    }
    let totals: Vec<String> = (1..=4)
        .map(|k| Ok(format!("{k}={}", counts.get(k)?.unwrap_or(0))))
        .collect::<hashmap_shared::Result<_>>()?;
    println!("counted {rounds} rounds; counters now {}", totals.join(" "));

    Ok(())
}

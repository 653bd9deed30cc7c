//! The arena's repair after a writer's death has two ways of knowing which
//! blocks the table references: a bitmap (arenas up to 4 GiB, every other
//! test) and a sorted list (larger arenas). This binary takes the second
//! way for every repair, then kills writers in the middle of string-heavy
//! changes and checks what recovery left with `verify` (free lists, usage,
//! every reference) and by reading every entry back.

mod common;
use common::*;
use hashmap_shared::testing::{Info, Status, Variant};

#[test]
fn the_sorted_list_repair_keeps_every_referenced_block_and_frees_the_rest() {
    hashmap_shared::testing::repair_with_sorted_list();
    let t = Tmp::new("repair-sorted");
    let mut m = open(&t, Variant::SS, 10_000);
    let val = |i: u64, round: u64| {
        format!(
            "value {i} of round {round}: {}",
            "v".repeat((i % 50) as usize)
        )
    };
    for i in 0..2000u64 {
        put(
            &mut *m,
            &bytes(format!("key {i:05}").as_bytes()),
            &bytes(val(i, 0).as_bytes()),
        );
    }
    let mut recoveries = 0;
    for round in 1..=5u64 {
        let path = t.0.clone();
        let kid = spawn_child(30, move || {
            let mut c = hashmap_shared::testing::open_any(
                &path,
                Variant::SS,
                &hashmap_shared::testing::Params::new(1),
            )
            .unwrap();
            // overwrite strings (allocating and freeing blocks) and die in
            // the middle of a change
            for i in 0..(round * 37) {
                put(
                    &mut *c,
                    &bytes(format!("key {i:05}").as_bytes()),
                    &bytes(val(i, round).as_bytes()),
                );
            }
            hashmap_shared::testing::debug_hold_lock(c.core(), true).unwrap();
            // SAFETY: dies by signal while holding the lock mid-change.
            unsafe { libc::raise(libc::SIGKILL) };
            0
        });
        let mut st = 0;
        // SAFETY: valid out-pointer.
        unsafe { libc::waitpid(kid, &mut st, 0) };
        assert!(libc::WIFSIGNALED(st), "round {round}");
        assert_eq!(
            put(
                &mut *m,
                &bytes(b"after"),
                &bytes(format!("round {round}, a long value").as_bytes())
            ),
            Status::Ok
        );
        recoveries += 1;
        assert_eq!(m.core_ref().info(Info::StatRecoveries), recoveries);
        m.verify().unwrap_or_else(|e| panic!("round {round}: {e}"));
        for i in 0..2000u64 {
            // each round overwrote the keys of the one before, and more
            let want = if i < round * 37 {
                val(i, round)
            } else {
                val(i, 0)
            };
            assert_eq!(
                get(
                    &mut *m,
                    Variant::SS,
                    &bytes(format!("key {i:05}").as_bytes())
                ),
                Some(bytes(want.as_bytes())),
                "round {round}, key {i}"
            );
        }
    }
}

//! Known answers for the keyed hash and for shard routing.
//!
//! The hash is part of the file format (where an entry lives, the hash bits
//! kept in every slot) and of the sharded format (which file a key goes
//! to). The answers below were computed once from the code as it stood on
//! 2026-11-30 (format version 1) and written down here; they are not derived
//! from the code under test. A failure here means a map file written before
//! the change would be read wrongly: change the hash only together with the
//! format `version` (DESIGN.md, "Version policy"), then recompute these.

mod common;
use common::*;
use hashmap_shared::testing::open_any;
use hashmap_shared::testing::Sharded;
use hashmap_shared::testing::{hash_bytes, hash_int};
use hashmap_shared::testing::{Item, Params, Status, Variant};

const SEEDS: [u64; 3] = [0, 0x0123_4567_89ab_cdef, u64::MAX];

/// Integer keys of each width: every integer kind is hashed as its i64 value.
const INT_KEYS: [i64; 12] = [
    i16::MIN as i64,
    -1,
    0,
    1,
    i16::MAX as i64, // int16
    i32::MIN as i64,
    70_000,
    i32::MAX as i64, // int32
    i64::MIN,
    -(1 << 40),
    1 << 53,
    i64::MAX, // int64
];

/// Byte keys across every branch of `hash_bytes`: empty, 1..3, 4..16, and
/// the 16-byte block loop (17, 32, 33 and a long key).
fn byte_keys() -> Vec<Vec<u8>> {
    let pat = |n: usize| (0..n).map(|i| (i * 131 + 7) as u8).collect::<Vec<u8>>();
    let mut v: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"a".to_vec(),
        b"ab".to_vec(),
        b"abc".to_vec(),
        b"abcd".to_vec(),
        b"hello w".to_vec(),
        b"\0\0\0\0\0\0\0\0".to_vec(),
        b"fifteen bytes!!".to_vec(),
        b"sixteen bytes!!!".to_vec(),
    ];
    for n in [17, 32, 33, 1000] {
        v.push(pat(n));
    }
    v
}

/// `hash_int` for INT_KEYS under each of SEEDS.
const INT_ANSWERS: [[u64; 12]; 3] = [
    [
        0x61acb9edd2308500,
        0xffffffffffffffff,
        0x0000000000000000,
        0xe6d24d7e0390ae94,
        0x6be0cc571261aafe,
        0x2eac1b945e931d4b,
        0x0e3e2f4ef0d823f7,
        0x92c65c6e13b9c353,
        0x0c66a6bee1141414,
        0x2077df2e768509d2,
        0xd5029da12fbe4559,
        0xf07b06fc451f56d2,
    ],
    [
        0x197dbe00ee26cc57,
        0xe157138b4ace06f3,
        0xd8cc378218d12713,
        0x876d6a806eb2b4df,
        0x363895c392363272,
        0xde249cab4d7608c3,
        0xbea5443006dbeac9,
        0xaf82f50a9f62e86d,
        0xb2703a7cfd4972b5,
        0x147b275e15e048ca,
        0x2cbb285a422275a3,
        0xab69504a678daf30,
    ],
    [
        0x4be8ed9761755500,
        0x0000000000000000,
        0xffffffffffffffff,
        0x0ef88df880bc2a16,
        0x592d35c1d2428407,
        0x10d65d696bb9da84,
        0xc577cbe20dc34fcf,
        0xac8c13975cdad06c,
        0xe47048f3619e662a,
        0x6632b7fb76c09a3e,
        0x5ce2c80e31a3bdbd,
        0x6a66d6befde55754,
    ],
];

/// `hash_bytes` for byte_keys() under each of SEEDS.
const BYTE_ANSWERS: [[u64; 13]; 3] = [
    [
        0x42bc986dc5eec4d3,
        0x6cf84e5a2465e867,
        0x172ba773b8ebb6d8,
        0xb4808df22d44ffcf,
        0xe73573b4c2ddfea0,
        0xc31af44682c20a09,
        0x426aa7db91aa5b32,
        0x20649733abaa9146,
        0x322b8868400ff7e1,
        0xf75169943d72dd0e,
        0x361efacd8f9b4f8f,
        0x86a77f2da040c824,
        0x0d869a6308a30908,
    ],
    [
        0x520686c8a0b997d2,
        0x5fe74f212eb55404,
        0x411373584cf4fdb3,
        0x16ee643b7d5c448c,
        0xf2ba2ef01cc2063d,
        0xe70a1184506897c2,
        0x05abf29d21087536,
        0x8ee698ce06f84ace,
        0xea7dce212df30980,
        0xa41a48c5e7b8330e,
        0xbde9d169b476e5df,
        0xa4ab259c5b54c1b4,
        0x1be003e4d86efc00,
    ],
    [
        0x33214c455b46f3a5,
        0x8a3341520d8d5ae3,
        0x36462269928c3eef,
        0x3a07b81f613d04d7,
        0x67af768adb59b8d8,
        0x79de939897f13049,
        0x33934f2f3e43653e,
        0x7bfc1e4a5e6b1b80,
        0x67a91ec2f7250147,
        0x094472174cb8be3d,
        0x5a80cfe5a0638fc0,
        0x9f1054142dff4190,
        0xb82967288a461f73,
    ],
];

/// Shard of each of route_int_keys() and route_byte_keys() for n shards.
const ROUTES: [(u32, [usize; 10], [usize; 8]); 4] = [
    (1, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]),
    (3, [2, 2, 0, 1, 0, 1, 2, 2, 2, 0], [0, 1, 1, 1, 0, 0, 2, 2]),
    (4, [3, 2, 1, 1, 0, 1, 1, 0, 1, 1], [2, 3, 1, 0, 0, 1, 0, 1]),
    (
        16,
        [7, 10, 9, 13, 0, 13, 9, 8, 5, 13],
        [6, 7, 5, 4, 12, 1, 0, 9],
    ),
];

/// Prints the whole table on a mismatch, so that a deliberate format change
/// can copy the new answers from the failure.
fn hex(v: &[u64]) -> String {
    v.iter()
        .map(|h| format!("{h:#018x}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn integer_keys_of_every_width_hash_to_their_known_answers() {
    for (s, want) in SEEDS.iter().zip(INT_ANSWERS.iter()) {
        let got: Vec<u64> = INT_KEYS.iter().map(|&k| hash_int(*s, k)).collect();
        assert_eq!(got, want.to_vec(), "seed {s:#x}: now [{}]", hex(&got));
    }
}

#[test]
fn byte_keys_of_every_length_class_hash_to_their_known_answers() {
    for (s, want) in SEEDS.iter().zip(BYTE_ANSWERS.iter()) {
        let got: Vec<u64> = byte_keys().iter().map(|k| hash_bytes(*s, k)).collect();
        assert_eq!(got, want.to_vec(), "seed {s:#x}: now [{}]", hex(&got));
    }
}

#[test]
fn sharded_maps_route_keys_to_their_known_shards() {
    for (n, ints, bytes) in ROUTES {
        assert_eq!(
            shards_of(n, Variant::II, &route_int_keys()),
            ints,
            "integer keys, {n} shards"
        );
        assert_eq!(
            shards_of(n, Variant::SS, &route_byte_keys()),
            bytes,
            "byte keys, {n} shards"
        );
    }
}

fn route_int_keys() -> Vec<Item<'static>> {
    [0i64, 1, 2, 3, 42, -1, 1000, 70_000, i64::MAX, i64::MIN]
        .iter()
        .map(|&k| Item::int(k))
        .collect()
}

/// (`Item` borrows the bytes: `'static` strings here.)
fn route_byte_keys() -> Vec<Item<'static>> {
    [
        "",
        "a",
        "b",
        "user:1",
        "user:2",
        "user:3",
        "session/abcdef",
        "a key longer than sixteen bytes, forty...",
    ]
    .iter()
    .map(|k| Item::bytes(k.as_bytes()))
    .collect()
}

/// Put each key through a sharded map of `n` shards, then open every shard
/// file on its own and report which one holds each key.
fn shards_of(n: u32, v: Variant, keys: &[Item]) -> Vec<usize> {
    let t = Tmp::new("route");
    let paths: Vec<Tmp> = (0..n)
        .map(|i| {
            Tmp(
                std::ffi::CString::new(format!("{}.{i}", t.1)).unwrap(),
                format!("{}.{i}", t.1),
            )
        })
        .collect();
    {
        let mut m = Sharded::open(&t.1, n, v, &Params::new(1000)).unwrap();
        let val = Item::int(1);
        let sval = Item::bytes(b"v");
        for k in keys {
            let vv = if v == Variant::SS { &sval } else { &val };
            assert_eq!(
                hashmap_shared::testing::AnyMap::put(&mut m, k, vv).unwrap(),
                Status::Ok
            );
        }
    }
    let mut shard_maps: Vec<_> = paths
        .iter()
        .map(|p| open_any(&p.0, v, &Params::new(1000)).unwrap())
        .collect();
    keys.iter()
        .map(|k| {
            let found: Vec<usize> = (0..n as usize)
                .filter(|&i| shard_maps[i].exists(k).unwrap())
                .collect();
            assert_eq!(
                found.len(),
                1,
                "a key must live in exactly one shard: {found:?}"
            );
            found[0]
        })
        .collect()
}

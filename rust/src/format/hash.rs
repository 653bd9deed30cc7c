//! The keyed hash. It is part of the file format: changing it changes where
//! entries live, so it is frozen for a format version.
//!
//! Bytes use a wyhash-style construction (64x64->128 multiply, fold); integers
//! a single keyed multiply-fold. The per-file seed is drawn at creation.

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;

#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline(always)]
fn r64(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().unwrap())
}

#[inline(always)]
fn r32(b: &[u8], i: usize) -> u64 {
    u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as u64
}

/// Hash of a byte string under `seed`.
#[inline]
pub fn hash_bytes(seed: u64, b: &[u8]) -> u64 {
    let len = b.len();
    let mut s = seed ^ P0;
    let (a, c);
    if len <= 16 {
        if len >= 4 {
            let q = (len >> 3) << 2;
            a = (r32(b, 0) << 32) | r32(b, q);
            c = (r32(b, len - 4) << 32) | r32(b, len - 4 - q);
        } else if len > 0 {
            a = ((b[0] as u64) << 16) | ((b[len >> 1] as u64) << 8) | b[len - 1] as u64;
            c = 0;
        } else {
            a = 0;
            c = 0;
        }
    } else {
        let mut i = 0;
        while len - i > 16 {
            s = fold(r64(b, i) ^ P1, r64(b, i + 8) ^ s);
            i += 16;
        }
        a = r64(b, len - 16);
        c = r64(b, len - 8);
    }
    fold(P1 ^ len as u64, fold(a ^ P1, c ^ s))
}

/// Hash of an integer key under `seed`.
#[inline(always)]
pub fn hash_int(seed: u64, k: i64) -> u64 {
    fold(fold(k as u64 ^ seed, P2), P1 ^ seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_change_hashes_and_lengths_matter() {
        assert_ne!(hash_bytes(1, b"abc"), hash_bytes(2, b"abc"));
        assert_ne!(hash_bytes(1, b""), hash_bytes(1, b"\0"));
        assert_ne!(hash_bytes(1, b"\0"), hash_bytes(1, b"\0\0"));
        assert_ne!(hash_int(1, 0), hash_int(1, 1));
        for n in 0..64usize {
            let v: Vec<u8> = (0..n as u8).collect();
            assert_eq!(hash_bytes(7, &v), hash_bytes(7, &v.clone()));
        }
    }

    #[test]
    fn high_bits_spread_for_sequential_ints() {
        // Home slots come from the high bits: sequential keys must spread.
        let mut buckets = [0u32; 16];
        for k in 0..16_000i64 {
            buckets[(hash_int(42, k) >> 60) as usize] += 1;
        }
        for &b in &buckets {
            assert!((800..1200).contains(&b), "{buckets:?}");
        }
    }
}

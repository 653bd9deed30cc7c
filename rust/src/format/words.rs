//! The words of string storage.
//!
//! A string of up to 7 bytes lives inside its 64-bit reference word:
//!
//! ```text
//! bit 63      1 = inline
//! bit 62      UTF-8 flag
//! bits 56..59 length (0..7)
//! bits 0..56  the bytes, first byte lowest
//! ```
//!
//! A longer string lives in an arena block, and the word is the block's
//! absolute file offset (bit 63 clear). A block is an 8-byte header followed
//! by the bytes, rounded up to its size class:
//!
//! ```text
//! bits 0..32  length
//! bits 32..40 size class
//! bit 40      UTF-8 flag
//! bit 41      free (then the payload's first word links the free list)
//! bits 48..64 BLOCK_MAGIC
//! ```

/// Number of arena size classes (see [`class_size`]).
pub const NCLASSES: usize = 112;

/// Bytes of a block header.
pub const BLOCK_HEADER: usize = 8;
/// The magic in a block header's top 16 bits.
pub const BLOCK_MAGIC: u64 = 0xB10C;
/// Reference word: an inline string.
pub const INLINE: u64 = 1 << 63;
/// Reference word: an inline string flagged UTF-8.
pub const INLINE_UTF8: u64 = 1 << 62;
/// Block header: the string is flagged UTF-8.
pub const F_UTF8: u64 = 1 << 40;
/// Block header: the block is free.
pub const F_FREE: u64 = 1 << 41;
/// Longest string that fits the largest class.
pub const MAX_STRING: usize = class_size(NCLASSES - 1) as usize - BLOCK_HEADER;

/// Size in bytes of class `c`: 16..248 in steps of 8, then four classes
/// per doubling from 256 (256, 320, 384, 448, 512, ...).
/// (A table: the hot paths bound every block they read by its class.)
#[inline(always)]
pub const fn class_size(c: usize) -> u64 {
    CLASS_SIZES[c]
}

/// [`class_size`] of every class.
const CLASS_SIZES: [u64; NCLASSES] = {
    let mut t = [0u64; NCLASSES];
    let mut c = 0;
    while c < NCLASSES {
        t[c] = if c < 30 {
            16 + 8 * c as u64
        } else {
            let k = (c - 30) as u64;
            (256u64 << (k / 4)) * (4 + k % 4) / 4
        };
        c += 1;
    }
    t
};

/// The smallest class holding `total` bytes (header included).
pub fn class_for(total: u64) -> Option<usize> {
    if total <= 248 {
        return Some((total.max(16) - 16).div_ceil(8) as usize);
    }
    if total <= 256 {
        return Some(30);
    }
    let doublings = 63 - (total / 256).leading_zeros() as usize; // floor(log2(total/256)) >= 0
    let mut c = 30 + 4 * doublings.saturating_sub(1);
    while c < NCLASSES {
        if class_size(c) >= total {
            return Some(c);
        }
        c += 1;
    }
    None
}

/// The inline word for `b`, if it is short enough.
#[inline(always)]
pub fn inline_word(b: &[u8], utf8: bool) -> Option<u64> {
    if b.len() > 7 {
        return None;
    }
    let mut w = [0u8; 8];
    w[..b.len()].copy_from_slice(b);
    let mut word = u64::from_le_bytes(w) | INLINE | ((b.len() as u64) << 56);
    if utf8 {
        word |= INLINE_UTF8;
    }
    Some(word)
}

/// True if a reference word is an inline string.
#[inline(always)]
pub fn is_inline(w: u64) -> bool {
    w & INLINE != 0
}

/// Two inline words hold the same bytes (the UTF-8 flag is not identity).
#[inline(always)]
pub fn inline_same_bytes(a: u64, b: u64) -> bool {
    (a ^ b) & !INLINE_UTF8 == 0
}

/// The header of a block holding `len` bytes in class `class`.
pub fn block_header(len: usize, class: usize, utf8: bool) -> u64 {
    let mut h = len as u64 | ((class as u64) << 32) | (BLOCK_MAGIC << 48);
    if utf8 {
        h |= F_UTF8;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_increasing_and_cover_their_sizes() {
        for c in 1..NCLASSES {
            assert!(class_size(c) > class_size(c - 1), "class {c}");
            assert_eq!(class_size(c) % 8, 0);
        }
        for total in [
            9u64,
            16,
            17,
            248,
            249,
            256,
            257,
            300,
            1000,
            4096,
            1 << 20,
            256 << 20,
        ] {
            let c = class_for(total).unwrap();
            assert!(class_size(c) >= total);
            assert!(c == 0 || class_size(c - 1) < total, "{total} -> {c}");
        }
        const { assert!(MAX_STRING >= 256 << 20) };
        assert!(class_for(MAX_STRING as u64 + 9).is_none());
    }

    #[test]
    fn inline_words_round_trip() {
        for n in 0..=7 {
            let b: Vec<u8> = (0..n as u8).map(|x| x * 37 + 1).collect();
            let w = inline_word(&b, n % 2 == 0).unwrap();
            assert!(is_inline(w));
            assert_eq!(((w >> 56) & 7) as usize, n);
            assert_eq!(&w.to_le_bytes()[..n], &b[..]);
            assert!(inline_same_bytes(w, inline_word(&b, n % 2 != 0).unwrap()));
        }
        assert!(inline_word(b"12345678", false).is_none());
    }
}

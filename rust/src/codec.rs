//! Key and value kinds. Each variant of the map is `Map<K, V>` with two of
//! these; the kind decides how a key or value sits in its 64-bit slot word.
//!
//! Integers are stored as their `i64` bit pattern. Byte strings are stored
//! as a reference word: strings of up to 7 bytes live inside the word
//! itself, longer ones in an arena block (see `arena`).

/// A key or value kind.
pub trait Codec: Send + 'static {
    /// True for byte strings.
    const BYTES: bool;
    /// Width of an integer kind in bits (64 for bytes, unused).
    const BITS: u32;
    /// Name used in messages ("int16").
    const NAME: &'static str;

    /// Smallest integer of this kind.
    fn min() -> i64 {
        if Self::BITS >= 64 {
            i64::MIN
        } else {
            -(1i64 << (Self::BITS - 1))
        }
    }

    /// Largest integer of this kind.
    fn max() -> i64 {
        if Self::BITS >= 64 {
            i64::MAX
        } else {
            (1i64 << (Self::BITS - 1)) - 1
        }
    }

    /// True if `n` fits this kind.
    fn fits(n: i64) -> bool {
        n >= Self::min() && n <= Self::max()
    }
}

macro_rules! int_codec {
    ($t:ident, $bits:expr, $name:expr) => {
        #[doc = concat!("Signed ", $name, " keys or values.")]
        #[derive(Debug, Clone, Copy)]
        pub struct $t;
        impl Codec for $t {
            const BYTES: bool = false;
            const BITS: u32 = $bits;
            const NAME: &'static str = $name;
        }
    };
}

int_codec!(I16, 16, "int16");
int_codec!(I32, 32, "int32");
int_codec!(I64, 64, "int64");

/// Byte-string keys or values.
#[derive(Debug, Clone, Copy)]
pub struct Bytes;
impl Codec for Bytes {
    const BYTES: bool = true;
    const BITS: u32 = 64;
    const NAME: &'static str = "bytes";
}

//! Key and value kinds. Each variant of the map is `Map<K, V>` with two of
//! these; the kind decides how a key or value sits in its 64-bit slot word.
//!
//! Integers are stored as their `i64` bit pattern. Byte strings are stored
//! as a reference word: strings of up to 7 bytes live inside the word
//! itself, longer ones in an arena block (see `arena`).

use crate::raw::types::{Entry, Item, Out};

mod sealed {
    pub trait Sealed {}
}

/// A key or value kind: [`I16`], [`I32`], [`I64`] or [`Bytes`] (sealed).
///
/// `Arg<'a>` is the Rust type an argument of this kind is passed as
/// (`i16`, `i32`, `i64`, `&[u8]`), `Owned` the type a result comes back
/// as (`i16`, `i32`, `i64`, `Vec<u8>`).
pub trait Codec: sealed::Sealed + Send + 'static {
    /// How an argument of this kind is passed.
    type Arg<'a>: Copy;
    /// How a result of this kind is returned.
    type Owned: Clone + std::fmt::Debug + PartialEq;

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

    /// The engine's view of an argument.
    #[doc(hidden)]
    fn item<'a>(a: Self::Arg<'a>) -> Item<'a>;

    /// A result: the integer, or the bytes written into `o`.
    #[doc(hidden)]
    fn owned(o: &Out<'_>) -> Self::Owned;

    /// A result copied out of a snapshot.
    #[doc(hidden)]
    fn from_entry(e: Entry) -> Self::Owned;
}

/// The integer kinds ([`I16`], [`I32`], [`I64`]): values that count.
pub trait Int: Codec {
    /// `n` as the Rust integer type (`n` fits: it came from the map).
    #[doc(hidden)]
    fn native(n: i64) -> Self::Owned;
}

macro_rules! int_codec {
    ($t:ident, $native:ty, $bits:expr, $name:expr) => {
        #[doc = concat!("Signed ", $name, " keys or values (`", stringify!($native), "`).")]
        #[derive(Debug, Clone, Copy)]
        pub struct $t;
        impl sealed::Sealed for $t {}
        impl Codec for $t {
            type Arg<'a> = $native;
            type Owned = $native;
            const BYTES: bool = false;
            const BITS: u32 = $bits;
            const NAME: &'static str = $name;
            fn item<'a>(a: Self::Arg<'a>) -> Item<'a> {
                Item::int(a as i64)
            }
            fn owned(o: &Out<'_>) -> $native {
                o.num as $native
            }
            fn from_entry(e: Entry) -> $native {
                match e {
                    Entry::Int(n) => n as $native,
                    Entry::Bytes(..) => 0,
                }
            }
        }
        impl Int for $t {
            fn native(n: i64) -> $native {
                n as $native
            }
        }
    };
}

int_codec!(I16, i16, 16, "int16");
int_codec!(I32, i32, 32, "int32");
int_codec!(I64, i64, 64, "int64");

/// Byte-string keys or values (`&[u8]` in, `Vec<u8>` out).
#[derive(Debug, Clone, Copy)]
pub struct Bytes;
impl sealed::Sealed for Bytes {}
impl Codec for Bytes {
    type Arg<'a> = &'a [u8];
    type Owned = Vec<u8>;
    const BYTES: bool = true;
    const BITS: u32 = 64;
    const NAME: &'static str = "bytes";
    fn item<'a>(a: Self::Arg<'a>) -> Item<'a> {
        Item::bytes(a)
    }
    fn owned(o: &Out<'_>) -> Vec<u8> {
        o.written().to_vec()
    }
    fn from_entry(e: Entry) -> Vec<u8> {
        match e {
            Entry::Bytes(b, _) => b,
            Entry::Int(_) => Vec::new(),
        }
    }
}

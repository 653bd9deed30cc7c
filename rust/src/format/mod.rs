//! The file format: where every word of a map file lives and what it
//! means (`layout`), the keyed hash that places entries (`hash`), and the words of string storage (`words`). Nothing
//! here touches a file: the other layers read and write these words.

pub mod hash;
pub mod layout;
pub mod words;

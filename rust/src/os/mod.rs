//! The operating system: the map file and its mapping (`region`), futex
//! waits (`futex`), and the SIGBUS handler that turns a truncated file into
//! an error (`sigbus`).

pub mod futex;
pub mod region;
pub mod sigbus;

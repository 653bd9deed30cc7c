//! Synchronization between processes: the sequence lock that makes reads
//! lock-free (`seqlock`), and the writer lock with its process slots
//! (`lock`).

pub mod lock;
pub mod seqlock;

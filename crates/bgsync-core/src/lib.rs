//! The sans-IO heart of bgsync.
//!
//! Nothing in this crate performs I/O, reads a clock or knows which platform
//! it runs on: the browser adapter (`bgsync-web`) and the tests are two shells
//! around the same code. The shell feeds in what happened (the entries it read
//! from storage, the result of each delivery attempt) and asks what to do next
//! (send this entry, delete that one, keep it, tell the browser to retry).

pub mod entry;
pub mod outcome;
pub mod replay;
pub mod wire;

pub use entry::{Entry, EntryKey};
pub use outcome::{Attempt, Outcome};
pub use replay::{Action, Replay, Summary};

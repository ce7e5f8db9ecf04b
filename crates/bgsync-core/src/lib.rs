//! The sans-IO heart of bgsync.
//!
//! Nothing in this crate performs I/O, reads a clock, draws randomness from
//! the platform or knows which platform it runs on: time is an argument, the
//! random seed is an argument, and the shells (the browser adapter in
//! `bgsync-web`, the deterministic simulation in `tests/simulation.rs`) feed
//! in what happened and ask what to do next, as `quinn-proto` does for QUIC.
//!
//! - [`entry`]: an entry (one request owed to the server) and a dead letter;
//! - [`outcome`]: what an HTTP result means for an entry;
//! - [`retry`]: backoff with full jitter, `Retry-After`, attempt and age limits;
//! - [`queue`]: the engine: ordering, batching, pausing, the lifecycle;
//! - [`event`]: what the UI is told;
//! - [`schedule`]: when a periodic pull is due;
//! - [`wire`]: names and batch types shared with the server.

pub mod entry;
pub mod event;
pub mod outcome;
pub mod queue;
pub mod retry;
mod rng;
pub mod schedule;
pub mod wire;

pub use entry::{DeadLetter, DeadReason, Entry, EntryKey};
pub use event::Event;
pub use outcome::{AttemptResult, Outcome, OutcomePolicy, Response};
pub use queue::{BatchLimits, Counts, Engine, QueueConfig, StoreOp, Transmit, TransmitResult};
pub use retry::RetryPolicy;
pub use schedule::PeriodicSchedule;

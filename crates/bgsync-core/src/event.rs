//! What the engine tells the user interface, in the order it happened.

use crate::entry::{DeadReason, EntryKey};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An entry joined the queue.
    Queued {
        key: EntryKey,
    },
    /// These entries are on their way (one request, or one batch).
    Sending {
        keys: Vec<EntryKey>,
    },
    /// The server acknowledged the entry; it is deleted.
    Sent {
        key: EntryKey,
    },
    /// An attempt failed; the entry waits until `at_ms`.
    RetryScheduled {
        key: EntryKey,
        at_ms: u64,
        error: String,
    },
    /// The entry left the queue for the dead letters.
    DeadLettered {
        key: EntryKey,
        reason: DeadReason,
    },
    /// The server wants credentials (401/403): nothing is sent until
    /// [`crate::Engine::resume`].
    Paused {
        status: u16,
    },
    Resumed,
    /// The queue became empty.
    Drained,
}

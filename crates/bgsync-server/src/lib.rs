//! Server pieces for requests that arrive by background sync.
//!
//! A service worker delivers at least once: it retries after lost responses,
//! and the browser itself resends a POST when a kept-alive connection is
//! reset. These pieces make the effect exactly-once and the errors precise:
//!
//! - [`problem`]: RFC 9457 `application/problem+json` responses, and
//!   [`problem::everywhere`] for the error answers axum makes itself;
//! - [`json`]: a JSON body reader whose every refusal is a precise problem;
//! - [`idempotency`]: the `Idempotency-Key` header and the key store that
//!   commits in the same transaction as the effect;
//! - [`writer`]: the transactions effects are written in (group commit on
//!   SQLite), and [`direct`]: their statements run on the caller's thread;
//! - [`batch`]: many queued requests in one round trip;
//! - [`metrics`]: `/metrics` for Prometheus, and a layer timing requests;
//! - [`etag`]: `If-None-Match`, for `304 Not Modified`.

pub mod batch;
pub mod db;
pub mod direct;
pub mod etag;
pub mod failpoint;
pub mod files;
pub mod idempotency;
pub mod json;
pub mod metrics;
pub mod problem;
pub mod serve;
pub mod writer;

pub use failpoint::FailPoint;
pub use idempotency::{Claim, IdempotencyKey, InFlight};
pub use problem::{Problem, StorageFailure};
pub use writer::{WriteTx, Writer, WriterStats};

/// Milliseconds since the Unix epoch, by this server's clock.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

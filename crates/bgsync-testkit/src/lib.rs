//! What bgsync's apps share in their tests: a real headless Chromium driven
//! over the DevTools protocol ([`chromium`]), the test PostgreSQL server
//! ([`postgres`]), waiting for a condition with a deadline
//! ([`eventually`]), and a limit on how long a test may hold its browser
//! ([`watchdog`]).

pub mod chromium;
pub mod postgres;
pub mod watchdog;

use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, or panics with `what` after
/// `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

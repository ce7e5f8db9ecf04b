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
/// `timeout`. A check that does not end is cut at the deadline too (the
/// last one gets at least [`LAST_CHECK`]): a wait that never returns fails
/// the test, saying what it waited for, instead of holding it for ever.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).max(LAST_CHECK);
        match tokio::time::timeout(left, check()).await {
            Ok(Some(value)) => return value,
            Ok(None) => {}
            Err(_) => panic!("timed out after {timeout:?} waiting for {what}: a check did not end within {left:?}"),
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The least time [`eventually`] gives one check.
pub const LAST_CHECK: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_check_that_never_ends_fails_at_the_deadline_saying_what_was_awaited() {
        let started = Instant::now();
        let waiting =
            tokio::spawn(eventually("the answer", Duration::from_secs(1), std::future::pending::<Option<()>>));
        let failure = tokio::time::timeout(LAST_CHECK * 3, waiting)
            .await
            .expect("eventually gave up instead of waiting for ever")
            .expect_err("eventually gave up");
        let message = failure.into_panic();
        let message = message.downcast_ref::<String>().expect("a message");
        assert!(message.contains("waiting for the answer: a check did not end"), "{message}");
        assert!(started.elapsed() < LAST_CHECK + Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_check_that_answers_in_time_is_taken() {
        let mut calls = 0;
        let value = eventually("the third call", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { (n == 3).then_some(n) }
        })
        .await;
        assert_eq!(value, 3);
    }
}

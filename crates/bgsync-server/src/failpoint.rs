//! A failpoint: a place in a handler where a test can make the request die,
//! to prove what is left behind. Disarmed (the default) it costs one atomic
//! load.

use crate::problem::Problem;
use axum::http::StatusCode;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct FailPoint(AtomicBool);

impl FailPoint {
    pub fn arm(&self, armed: bool) {
        self.0.store(armed, Ordering::SeqCst);
    }

    /// Fails the request here when armed; the caller's open transaction is
    /// then dropped uncommitted, as in a crash.
    pub fn check(&self) -> Result<(), Problem> {
        if self.0.load(Ordering::SeqCst) {
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "failpoint",
                "Injected failure",
                "A test failpoint stopped this request before it committed; retry.",
            ));
        }
        Ok(())
    }
}

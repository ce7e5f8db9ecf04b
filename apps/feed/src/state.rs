//! What every handler of the feed shares.

use crate::db::Db;
use bgsync_server::{FailPoint, InFlight};
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub in_flight: Arc<InFlight>,
    /// Fails a post between its effect and its commit (tests only).
    pub before_commit: Arc<FailPoint>,
}

impl AppState {
    pub fn new(db: Db) -> Self {
        Self { db, in_flight: Arc::default(), before_commit: Arc::default() }
    }
}

//! bgsync's JavaScript API as a ready module for pages written in
//! JavaScript: `configure`, `registerWorker`, `enqueue`, `status`,
//! `subscribe`, `retryNow`, `deadLetters`, `retryDeadLetter`,
//! `discardDeadLetter`, `setCredentials`, `forceFallback`, `feedItems`,
//! `pull` (see `bgsync_web::api`). A page with Rust of its own depends on
//! `bgsync-web` with the `js-api` feature instead.

pub use bgsync_web::api::*;

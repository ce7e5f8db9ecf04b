//! bgsync's JavaScript API as a ready module for pages written in
//! JavaScript: `configure`, `enqueue`, `status`, `subscribe`, `retryNow`,
//! `deadLetters`, `retryDeadLetter`, `discardDeadLetter`, `setCredentials`,
//! `forceFallback`, `feedItems`, `pull`, and `registerWorker` (see
//! `bgsync_web::api`). A page with Rust of its own depends on `bgsync-web`
//! with the `js-api` feature instead.

pub use bgsync_web::api;
use wasm_bindgen::prelude::*;

/// Registers the app's service worker (`script`, such as "/sw.js").
#[wasm_bindgen(js_name = registerWorker)]
pub async fn register_worker(script: String) -> Result<(), JsValue> {
    bgsync_web::client::register_worker(&script).await.map(|_| ())
}

//! The page side: queueing, worker and sync registration, and messages to
//! the worker.

use crate::events;
use crate::js::{self, JsResult};
use crate::queue::Queue;
use bgsync_core::{Entry, EntryKey};
use js_sys::Function;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Navigator, ServiceWorkerContainer, ServiceWorkerRegistration};

/// Stores a request durably in `queue` and tells open pages. The key made
/// here is the `Idempotency-Key` of every delivery attempt.
pub async fn enqueue(queue: &Queue, url: &str, body: String) -> JsResult<Entry> {
    let key = EntryKey::parse(&random_uuid()?).map_err(|e| JsValue::from_str(&e.to_string()))?;
    let entry = Entry::new(key, url, body, enqueue_time());
    queue.push(&entry).await?;
    events::broadcast(queue.name(), &bgsync_core::Event::Queued { key: entry.key.clone() });
    Ok(entry)
}

/// The queue order: milliseconds with a fraction (`timeOrigin + now()`), so
/// two posts in the same millisecond keep the order they were written in.
fn enqueue_time() -> f64 {
    let precise = js::get(&js_sys::global(), "performance").ok().and_then(|p| {
        let origin = js::get(&p, "timeOrigin").ok()?.as_f64()?;
        let now: Function = js::get(&p, "now").ok()?.dyn_into().ok()?;
        Some(origin + now.call0(&p).ok()?.as_f64()?)
    });
    precise.unwrap_or_else(js_sys::Date::now)
}

/// A random (v4) UUID from the browser's CSPRNG.
pub fn random_uuid() -> JsResult<String> {
    let crypto = js::get(&js_sys::global(), "crypto")?;
    let make: Function = js::get(&crypto, "randomUUID")?.dyn_into()?;
    make.call0(&crypto)?.as_string().ok_or_else(|| "crypto.randomUUID returned no string".into())
}

fn container() -> Option<ServiceWorkerContainer> {
    let navigator: Navigator = js::global("navigator").ok()?;
    // `serviceWorker` is missing outside secure contexts and in some
    // browsers' private modes.
    js::get(&navigator, "serviceWorker").ok()?.dyn_into().ok()
}

/// Whether this page can have a service worker at all.
pub fn has_service_worker() -> bool {
    container().is_some()
}

/// Whether the browser has one-shot Background Sync (Chromium does;
/// Firefox and Safari do not).
pub fn has_sync_manager() -> bool {
    js::get(&js_sys::global(), "SyncManager").map(|v| !v.is_undefined()).unwrap_or(false)
}

/// Registers the worker script; resolves once it is registered (not yet
/// necessarily active).
pub async fn register_worker(script: &str) -> JsResult<ServiceWorkerRegistration> {
    let container = container().ok_or_else(|| JsValue::from_str("service workers are not available"))?;
    js::await_promise(container.register(script)).await?.dyn_into()
}

/// Registers a one-shot sync `tag` with the active worker. Returns `false`
/// when the browser has no Background Sync, so the caller can fall back.
pub async fn register_sync(tag: &str) -> JsResult<bool> {
    let Some(container) = container() else {
        return Ok(false);
    };
    if !has_sync_manager() {
        return Ok(false);
    }
    let registration = js::await_promise(container.ready()?).await?;
    let sync = js::get(&registration, "sync")?;
    let register: Function = js::get(&sync, "register")?.dyn_into()?;
    js::await_promise(register.call1(&sync, &JsValue::from_str(tag))?.dyn_into()?).await?;
    Ok(true)
}

/// Posts `message` to the worker that controls this page, if any.
/// Returns whether there was one.
pub fn post_to_worker(message: &JsValue) -> bool {
    let Some(worker) = container().and_then(|c| c.controller()) else {
        return false;
    };
    worker.post_message(message).is_ok()
}

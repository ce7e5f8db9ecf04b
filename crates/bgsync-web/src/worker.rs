//! The service-worker side: how requests are answered while offline, and
//! cache housekeeping.
//!
//! `respondWith` must be called synchronously, so which requests reach this
//! module is decided in `sw.js` (same-origin GETs outside `/api/`); how
//! they are answered is decided here.

use crate::js::{self, JsResult};
use crate::queue::Queue;
use js_sys::{Array, Object};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Cache, CacheStorage, Request, Response};

/// Answers a same-origin GET for the app shell: cache-first from
/// `shell_cache`, and the shell's page for any navigation while offline.
pub async fn respond(request: Request, shell_cache: &str) -> JsResult<Response> {
    let caches: CacheStorage = js::global("caches")?;
    let cache: Cache = js::await_promise(caches.open(shell_cache)).await?.dyn_into()?;
    if let Some(response) = cached(&cache, &request).await? {
        return Ok(response);
    }
    match fetch(&request).await {
        Ok(response) => Ok(response),
        Err(error) => {
            // Offline navigation to any page of the app: serve the shell.
            if request.mode() == web_sys::RequestMode::Navigate {
                let shell: JsValue = js::await_promise(cache.match_with_str("/")).await?;
                if let Ok(response) = shell.dyn_into::<Response>() {
                    return Ok(response);
                }
            }
            Err(error)
        }
    }
}

async fn cached(cache: &Cache, request: &Request) -> JsResult<Option<Response>> {
    let hit = js::await_promise(cache.match_with_request(request)).await?;
    Ok(hit.dyn_into::<Response>().ok())
}

async fn fetch(request: &Request) -> JsResult<Response> {
    js::await_promise(js::global_fetch(request)).await?.dyn_into()
}

/// At activation: deletes the caches of earlier versions of the app shell
/// (those named `prefix…` other than `keep`).
pub async fn remove_old_caches(prefix: &str, keep: &str) -> JsResult<()> {
    let caches: CacheStorage = js::global("caches")?;
    let names = Array::from(&js::await_promise(caches.keys()).await?);
    for name in names.iter().filter_map(|n| n.as_string()) {
        if name.starts_with(prefix) && name != keep {
            js::await_promise(caches.delete(&name)).await?;
        }
    }
    Ok(())
}

/// What the worker holds, for a page that asks.
pub async fn status(queue: &Queue) -> JsResult<JsValue> {
    let queued = queue.all().await?.len();
    let dead = crate::queue::dead_letters().await?.len();
    let o = Object::new();
    js::set(&o, "type", "status");
    js::set(&o, "runtime", concat!("bgsync-web ", env!("CARGO_PKG_VERSION")));
    js::set(&o, "queued", queued as u32);
    js::set(&o, "deadLetters", dead as u32);
    Ok(o.into())
}

/// Answers a page's message `{type: "status"}` with [`status`], for the
/// caller to post back.
pub async fn answer(queue: &Queue, message: &JsValue) -> JsResult<Option<JsValue>> {
    match js::get(message, "type")?.as_string().as_deref() {
        Some("status") => status(queue).await.map(Some),
        _ => Ok(None),
    }
}

//! bgsync's ready service worker, compiled to WebAssembly: the functions
//! the bootstrap (`sw.js` in this crate) calls inside `waitUntil` and
//! `respondWith`. An app loads the bootstrap with its declaration (queues,
//! feeds, app shell) and gets background sync for whatever it declared;
//! nothing of any app is compiled in. A Rust app that wants a worker of its
//! own composes one from `bgsync-web`'s public functions, as this does.

use bgsync_web::queue::Queue;
use bgsync_web::{config, pull, replay, worker};
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use web_sys::Request;

/// How long a `sync` event keeps retrying on the engine's own timers
/// before it hands the next attempt back to the browser's sync schedule.
const SYNC_BUDGET_MS: u64 = 20_000;

/// How long a round started by a page's message may keep retrying on the
/// engine's timers.
const MESSAGE_BUDGET_MS: u64 = 30_000;

/// Runs when the module is instantiated: the worker's first Rust line.
#[wasm_bindgen(start)]
pub fn started() {
    worker::mark_started();
}

/// Declares the app's queues and feeds (the object the app gave the
/// bootstrap). Without Background Sync (Firefox, Safari) nothing else wakes
/// the queues in the worker, so it then replays at once (an empty queue
/// costs one read; rounds are serialized per origin).
#[wasm_bindgen]
pub fn worker_configure(declaration: JsValue) -> Result<(), JsValue> {
    config::from_js(&declaration).and_then(config::configure).map_err(bgsync_web::error)?;
    if !bgsync_web::client::has_sync_manager() {
        wasm_bindgen_futures::spawn_local(async {
            let _ = replay::deliver(0, true).await;
        });
    }
    Ok(())
}

/// `sync` event: replays the queues. Rejecting tells the browser to retry
/// later, so the promise rejects exactly when an entry is still owed (dead
/// letters are not owed: no retry can deliver them; nor is a paused queue
/// until new credentials are set).
#[wasm_bindgen]
pub fn worker_sync(tag: String, last_chance: bool) -> Promise {
    bgsync_web::promise(async move {
        if !Queue::declared().iter().any(|q| q.tag() == tag) {
            return Ok(());
        }
        let round = replay::deliver(SYNC_BUDGET_MS, true).await?;
        if round.needs_retry() {
            let when = if last_chance { "a page will retry when opened" } else { "the browser will retry" };
            return Err(JsValue::from_str(&format!(
                "{} entr(ies) could not be delivered yet; {when}",
                round.remaining
            )));
        }
        Ok(())
    })
}

/// `periodicsync` event: pulls the feeds registered under `tag`.
#[wasm_bindgen]
pub fn worker_periodic_sync(tag: String) -> Promise {
    bgsync_web::promise(async move {
        for feed in config::current().feeds.iter().filter(|f| f.tag == tag) {
            pull::pull(feed).await?;
        }
        Ok(())
    })
}

/// `fetch` event for a same-origin GET of the app shell.
#[wasm_bindgen]
pub fn worker_fetch(request: Request, shell_cache: String) -> Promise {
    bgsync_web::promise(async move { worker::respond(request, &shell_cache).await })
}

/// `fetch` event for a request the queue `queue` captures: sent at once,
/// queued only if the network fails (answered `202`).
#[wasm_bindgen]
pub fn worker_capture(request: Request, queue: String) -> Promise {
    bgsync_web::promise(async move { worker::capture(request, &Queue::named(&queue)?).await })
}

/// `activate` event: drop the caches of earlier versions, and learn what
/// the server offers (its batch endpoint, kept in IndexedDB) and store the
/// client id, so that the first drain, maybe days later in a worker just
/// woken for it, costs one round trip and reads only the queue.
#[wasm_bindgen]
pub fn worker_activate(shell_prefix: String, shell_cache: String) -> Promise {
    bgsync_web::promise(async move {
        bgsync_web::worker::prepare_for_rounds().await;
        worker::remove_old_caches(&shell_prefix, &shell_cache).await
    })
}

/// `message` event from a page; answers go back to the sender.
#[wasm_bindgen]
pub fn worker_message(data: JsValue, source: JsValue) -> Promise {
    bgsync_web::promise(async move {
        let kind = js_sys::Reflect::get(&data, &"type".into())?.as_string();
        if kind.as_deref() == Some("replay") {
            // A page's "retry now" (or its fallback without Background Sync),
            // or, not expedited, entries it queued while a round ran.
            let expedite = js_sys::Reflect::get(&data, &"expedite".into())?.as_bool().unwrap_or(true);
            replay::deliver(MESSAGE_BUDGET_MS, expedite).await?;
            return Ok(());
        }
        // A page's pull: answered on the port it sent.
        if worker::pull_for_page(&data).await? {
            return Ok(());
        }
        if let Some(reply) = worker::answer(&data).await? {
            let post: js_sys::Function = js_sys::Reflect::get(&source, &"postMessage".into())?.dyn_into()?;
            post.call1(&source, &reply)?;
        }
        Ok(())
    })
}

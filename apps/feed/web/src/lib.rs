//! The feed app in the browser, compiled to one wasm module that both the
//! page (`start_page`) and the service worker (`worker_*`, called from
//! `sw.js` inside `waitUntil`/`respondWith`) load.

mod page;

use bgsync_core::QueueConfig;
use bgsync_web::pull::{self, Feed};
use bgsync_web::queue::Queue;
use bgsync_web::{replay, worker};
use wasm_bindgen::prelude::*;
use web_sys::{Request, Response};

/// The one-shot sync tag the page registers after queueing a post.
pub const SYNC_TAG: &str = "sync-new-posts";
/// Where posts are delivered.
pub const POSTS_URL: &str = "/api/posts";

/// The posts feed the worker and the page pull (the server's delta feed).
pub const FEED: Feed = Feed {
    url: POSTS_URL,
    items: "posts",
    tag: "pull-posts",
    // Chromium will not fire it more often than about twice a day anyway.
    min_interval_ms: 12 * 60 * 60 * 1000,
    fresh_for_ms: 30 * 1000,
};

/// How long a `sync` event keeps retrying on the engine's own timers
/// before it hands the next attempt back to the browser's sync schedule.
const SYNC_BUDGET_MS: u64 = 20_000;

fn posts() -> Queue {
    Queue::new(Queue::POSTS)
}

/// How long a round started by a page's message may keep retrying on the
/// engine's timers.
const MESSAGE_BUDGET_MS: u64 = 30_000;

/// Replays the posts and then the captured requests (retrying on the
/// engine's timers for up to `budget_ms`), then, if any was delivered,
/// pulls the feed: whoever delivers posts brings them into IndexedDB, so
/// every page, open now (told by the `pulled` broadcast) or opened later,
/// lists them as sent.
pub(crate) async fn deliver(budget_ms: u64) -> Result<replay::Round, JsValue> {
    let mut round = replay::replay_while_alive(&posts(), &config(), budget_ms).await?;
    let captured = Queue::new(Queue::REQUESTS);
    round = round.and(replay::replay_while_alive(&captured, &config(), budget_ms).await?);
    if round.delivered > 0 {
        // A failed pull changes nothing; the next one catches up.
        let _ = pull::pull(&FEED).await;
    }
    Ok(round)
}

/// The feed's queue: ordered (the posts are a timeline), default retry
/// policy and outcome table.
fn config() -> QueueConfig {
    QueueConfig::default()
}

/// Entry point of the page.
#[wasm_bindgen]
pub fn start_page() {
    page::start();
}

/// `sync` event: replays the posts queue. Rejecting tells the browser to
/// retry later, so the promise rejects exactly when a post is still owed
/// (dead letters are not owed: no retry can deliver them).
#[wasm_bindgen]
pub async fn worker_sync(tag: String, last_chance: bool) -> Result<(), JsValue> {
    if tag != SYNC_TAG && tag != worker::CAPTURE_TAG {
        return Ok(());
    }
    let round = deliver(SYNC_BUDGET_MS).await?;
    if round.needs_retry() {
        let when = if last_chance { "the page will retry when opened" } else { "the browser will retry" };
        return Err(JsValue::from_str(&format!("{} post(s) could not be delivered yet; {when}", round.remaining)));
    }
    Ok(())
}

/// `periodicsync` event: pull what changed since the last pull.
#[wasm_bindgen]
pub async fn worker_periodic_sync(tag: String) -> Result<(), JsValue> {
    if tag == FEED.tag {
        pull::pull(&FEED).await?;
    }
    Ok(())
}

/// `fetch` event for a same-origin GET.
#[wasm_bindgen]
pub async fn worker_fetch(request: Request, shell_cache: String) -> Result<Response, JsValue> {
    worker::respond(request, &shell_cache).await
}

/// `fetch` event for a request that changes something under `/api/`:
/// sent at once, queued only if the network fails (answered `202`).
#[wasm_bindgen]
pub async fn worker_capture(request: Request) -> Result<Response, JsValue> {
    worker::capture(request, &Queue::new(Queue::REQUESTS)).await
}

/// `activate` event: drop the caches of earlier versions.
#[wasm_bindgen]
pub async fn worker_activate(shell_prefix: String, shell_cache: String) -> Result<(), JsValue> {
    worker::remove_old_caches(&shell_prefix, &shell_cache).await
}

/// `message` event from a page; answers go back to the sender.
#[wasm_bindgen]
pub async fn worker_message(data: JsValue, source: JsValue) -> Result<(), JsValue> {
    let kind = js_sys::Reflect::get(&data, &"type".into())?.as_string();
    if kind.as_deref() == Some("replay") {
        // A page's "retry now" (or its fallback without Background Sync).
        deliver(MESSAGE_BUDGET_MS).await?;
        return Ok(());
    }
    if let Some(reply) = worker::answer(&data).await? {
        let post: js_sys::Function = js_sys::Reflect::get(&source, &"postMessage".into())?.dyn_into()?;
        post.call1(&source, &reply)?;
    }
    Ok(())
}

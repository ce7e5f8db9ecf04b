//! What the feed's page and worker share: the queue, the feed, and how
//! posts are delivered. Compiled into both wasm modules (`feed-web` for the
//! page, `feed-worker` for the service worker, which includes this file).

use bgsync_core::QueueConfig;
use bgsync_web::pull::{self, Feed};
use bgsync_web::queue::{self, Queue};
use bgsync_web::replay;
use wasm_bindgen::JsValue;

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

/// The feed's queues: the posts (the seed's `sync-posts`), and the requests
/// the worker captured when the network failed.
pub const POSTS_QUEUE: &str = "sync-posts";
pub const REQUESTS_QUEUE: &str = "requests";

/// Declares the feed's queues; the page and the worker call it first.
pub fn declare_queues() -> Result<(), JsValue> {
    queue::declare(&[POSTS_QUEUE, REQUESTS_QUEUE])
}

pub fn posts() -> Result<Queue, JsValue> {
    Queue::named(POSTS_QUEUE)
}

/// The feed's queue: ordered (the posts are a timeline), default retry
/// policy and outcome table.
pub fn config() -> QueueConfig {
    QueueConfig::default()
}

/// Replays the posts and then the captured requests (retrying on the
/// engine's timers for up to `budget_ms`), then, if any was delivered,
/// pulls the feed: whoever delivers posts brings them into IndexedDB, so
/// every page, open now (told by the `pulled` broadcast) or opened later,
/// lists them as sent.
///
/// `expedite`: entries waiting out a backoff go now (a sync event, "retry
/// now"), rather than only those due (a round asked for because entries
/// were queued meanwhile).
pub async fn deliver(budget_ms: u64, expedite: bool) -> Result<replay::Round, JsValue> {
    let mut round = replay::Round::default();
    for queue in Queue::declared() {
        round = round.and(replay::replay_while_alive(&queue, &config(), budget_ms, expedite).await?);
    }
    if round.delivered > 0 {
        // A failed pull changes nothing; the next one catches up.
        let _ = pull::pull(&FEED).await;
    }
    Ok(round)
}

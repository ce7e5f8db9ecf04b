//! What the feed's page and worker share: the queue, the feed, and how
//! posts are delivered. Compiled into both wasm modules (`feed-web` for the
//! page, `feed-worker` for the service worker, which includes this file).

use bgsync_web::config::{self, Capture, Config, FeedDecl, QueueDecl};
use bgsync_web::pull;
use bgsync_web::queue::Queue;
use bgsync_web::replay;
use wasm_bindgen::JsValue;

/// The one-shot sync tag the page registers after queueing a post.
pub const SYNC_TAG: &str = "sync-new-posts";
/// Where posts are delivered.
pub const POSTS_URL: &str = "/api/posts";
/// The feed's queues: the posts (the seed's `sync-posts`), and the requests
/// the worker captured when the network failed.
pub const POSTS_QUEUE: &str = "sync-posts";
pub const REQUESTS_QUEUE: &str = "requests";
/// The posts the server has, pulled from its delta feed.
pub const POSTS_FEED: &str = "posts";

/// The feed's declaration: its two queues (ordered, batched, the default
/// retry policy and outcome table) and its feed. The page and the worker
/// make it first.
pub fn configure() -> Result<(), JsValue> {
    let posts = QueueDecl { tag: SYNC_TAG.into(), ..QueueDecl::new(POSTS_QUEUE) };
    let capture = Capture {
        prefix: "/api/".into(),
        methods: ["POST", "PUT", "PATCH", "DELETE"].map(String::from).to_vec(),
        exclude: vec!["/api/sync/".into()],
    };
    let requests =
        QueueDecl { tag: "bgsync-requests".into(), capture: Some(capture), ..QueueDecl::new(REQUESTS_QUEUE) };
    let feed = FeedDecl {
        page_size: 500,
        tag: "pull-posts".into(),
        // Where version 4 kept them: an upgrade keeps the pulled posts.
        store: "pulled-posts".into(),
        ..FeedDecl::new(POSTS_FEED, POSTS_URL, "posts")
    };
    config::configure(Config { queues: vec![posts, requests], feeds: vec![feed] })
}

#[allow(dead_code)] // the page uses it; the worker includes this file too
pub fn posts() -> Result<Queue, JsValue> {
    Queue::named(POSTS_QUEUE)
}

/// The posts feed.
pub fn feed() -> Result<FeedDecl, JsValue> {
    config::feed(POSTS_FEED)
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
        round = round.and(replay::replay_while_alive(&queue, budget_ms, expedite).await?);
    }
    if round.delivered > 0 {
        // A failed pull changes nothing; the next one catches up.
        if let Ok(feed) = feed() {
            let _ = pull::pull(&feed).await;
        }
    }
    Ok(round)
}

//! The feed's names for what it declared in `/bgsync-config.js`.

use bgsync_web::config;
use bgsync_web::queue::Queue;
use wasm_bindgen::JsValue;

/// Where posts are delivered.
pub const POSTS_URL: &str = "/api/posts";
/// The queue of the posts (the seed's `sync-posts`).
pub const POSTS_QUEUE: &str = "sync-posts";
/// The posts the server has, pulled from its delta feed.
pub const POSTS_FEED: &str = "posts";

/// Declares the feed's queues and feed: the object `/bgsync-config.js`
/// set (the worker loads the same file). The page calls it first.
pub fn configure() -> Result<(), JsValue> {
    let declaration = js_sys::Reflect::get(&js_sys::global(), &"BGSYNC_CONFIG".into())?;
    if declaration.is_undefined() {
        return Err("feed: /bgsync-config.js was not loaded before the page's module".into());
    }
    config::configure(config::from_js(&declaration)?)
}

pub fn posts() -> Result<Queue, JsValue> {
    Queue::named(POSTS_QUEUE)
}

/// The posts feed.
pub fn feed() -> Result<config::Declared, JsValue> {
    config::feed(POSTS_FEED)
}

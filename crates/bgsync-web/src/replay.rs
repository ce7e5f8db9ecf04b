//! Replaying a queue: the platform shell around [`bgsync_core::Replay`].

use crate::events::Event;
use crate::js::{self, JsResult};
use crate::queue::Queue;
use crate::transport;
use bgsync_core::{Action, Replay, Summary};
use js_sys::{Function, Promise};
use std::cell::RefCell;
use wasm_bindgen::JsValue;

thread_local! {
    // The promise that settles when the round in progress ends. A `sync`
    // event, a page's "retry now" and a fetch can all start a round in the
    // same worker; they run one after another, so no entry is in flight
    // twice from one context and no stale copy of an entry is written back
    // after another round deleted it.
    static TAIL: RefCell<Option<Promise>> = const { RefCell::new(None) };
}

/// Runs one replay round of `queue` after any round already running in
/// this context, and returns its summary.
pub async fn replay(queue: &Queue) -> JsResult<Summary> {
    let mut release: Option<Function> = None;
    let mine = Promise::new(&mut |resolve, _| release = Some(resolve));
    let previous = TAIL.with(|tail| tail.borrow_mut().replace(mine));
    if let Some(previous) = previous {
        let _ = js::await_promise(previous).await;
    }
    let result = round(queue).await;
    if let Some(release) = release {
        let _ = release.call0(&JsValue::NULL);
    }
    result
}

async fn round(queue: &Queue) -> JsResult<Summary> {
    let mut replay = Replay::new(queue.all().await?);
    while let Some(entry) = replay.next_to_send() {
        let attempt = transport::send(&entry).await;
        match replay.record(attempt) {
            Action::Delete(key) => {
                queue.delete(&key).await?;
                Event::Sent {
                    queue: queue.name(),
                    key: key.as_str(),
                }
                .broadcast();
            }
            Action::Update(entry) => {
                queue.put(&entry).await?;
                Event::Failed {
                    queue: queue.name(),
                    key: entry.key.as_str(),
                    error: entry.last_error.as_deref().unwrap_or_default(),
                    rejected: entry.rejected,
                }
                .broadcast();
            }
        }
    }
    let summary = replay.summary();
    Event::Replayed {
        queue: queue.name(),
        delivered: summary.delivered,
        retrying: summary.retrying,
        rejected: summary.rejected,
    }
    .broadcast();
    Ok(summary)
}

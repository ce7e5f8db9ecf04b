//! State changes broadcast to every open page of the origin.
//!
//! The worker (or a page replaying on its own) posts a small object on the
//! `bgsync` BroadcastChannel for each event of the engine, so every open tab
//! can update its list and indicator without polling. BroadcastChannel does
//! not deliver to the sender itself.

use crate::js;
use bgsync_core::Event;
use js_sys::{Array, Object};
use wasm_bindgen::JsValue;
use web_sys::BroadcastChannel;

pub const CHANNEL: &str = "bgsync";

/// The event as a plain object: `{type, queue, ...}` with `type` one of
/// `queued`, `sending`, `sent`, `retry-scheduled`, `dead-lettered`,
/// `paused`, `resumed`, `drained`.
pub fn to_js(queue: &str, event: &Event) -> JsValue {
    let o = Object::new();
    js::set(&o, "queue", queue);
    let kind = match event {
        Event::Queued { key } => {
            js::set(&o, "key", key.as_str());
            "queued"
        }
        Event::Sending { keys } => {
            js::set(&o, "keys", keys.iter().map(|k| JsValue::from_str(k.as_str())).collect::<Array>());
            "sending"
        }
        Event::Sent { key } => {
            js::set(&o, "key", key.as_str());
            "sent"
        }
        Event::RetryScheduled { key, at_ms, error } => {
            js::set(&o, "key", key.as_str());
            js::set(&o, "at", *at_ms as f64);
            js::set(&o, "error", error.as_str());
            "retry-scheduled"
        }
        Event::DeadLettered { key, reason } => {
            js::set(&o, "key", key.as_str());
            js::set(&o, "reason", reason.to_string());
            "dead-lettered"
        }
        Event::Paused { status } => {
            js::set(&o, "status", *status);
            "paused"
        }
        Event::Resumed => "resumed",
        Event::Drained => "drained",
    };
    js::set(&o, "type", kind);
    o.into()
}

/// Posts the engine's event to the other contexts of the origin.
pub fn broadcast(queue: &str, event: &Event) {
    post(&to_js(queue, event));
}

thread_local! {
    // One sending channel per context (making one per message is costly
    // when a batch answers a thousand entries at once).
    static SENDER: Option<BroadcastChannel> = BroadcastChannel::new(CHANNEL).ok();
}

/// Posts a message (`{type, ...}`) to the other contexts of the origin
/// (and to this context's own subscribers).
pub fn post(message: &JsValue) {
    SENDER.with(|channel| {
        if let Some(channel) = channel {
            let _ = channel.post_message(message);
        }
    });
}

//! State changes broadcast to every open page of the origin.
//!
//! The worker (or a page replaying on its own) posts a small object on the
//! `bgsync` BroadcastChannel for each change, so every open tab can update
//! its list and indicator without polling.

use crate::js;
use js_sys::Object;
use wasm_bindgen::JsValue;
use web_sys::BroadcastChannel;

pub const CHANNEL: &str = "bgsync";

/// One change of state of a queue.
#[derive(Clone, Debug, PartialEq)]
pub enum Event<'a> {
    /// An entry was stored.
    Queued { queue: &'a str, key: &'a str },
    /// The server acknowledged an entry and it was deleted.
    Sent { queue: &'a str, key: &'a str },
    /// An attempt failed; the entry stays queued (or is kept as rejected).
    Failed {
        queue: &'a str,
        key: &'a str,
        error: &'a str,
        rejected: bool,
    },
    /// A replay round ended.
    Replayed {
        queue: &'a str,
        delivered: usize,
        retrying: usize,
        rejected: usize,
    },
}

impl Event<'_> {
    pub fn to_js(&self) -> JsValue {
        let o = Object::new();
        match self {
            Event::Queued { queue, key } => {
                js::set(&o, "type", "queued");
                js::set(&o, "queue", *queue);
                js::set(&o, "key", *key);
            }
            Event::Sent { queue, key } => {
                js::set(&o, "type", "sent");
                js::set(&o, "queue", *queue);
                js::set(&o, "key", *key);
            }
            Event::Failed {
                queue,
                key,
                error,
                rejected,
            } => {
                js::set(&o, "type", "failed");
                js::set(&o, "queue", *queue);
                js::set(&o, "key", *key);
                js::set(&o, "error", *error);
                js::set(&o, "rejected", *rejected);
            }
            Event::Replayed {
                queue,
                delivered,
                retrying,
                rejected,
            } => {
                js::set(&o, "type", "replayed");
                js::set(&o, "queue", *queue);
                js::set(&o, "delivered", *delivered as u32);
                js::set(&o, "retrying", *retrying as u32);
                js::set(&o, "rejected", *rejected as u32);
            }
        }
        o.into()
    }

    /// Posts the event to the other contexts of the origin. BroadcastChannel
    /// does not deliver to the sender itself, which is why a page that
    /// replays on its own also updates its own view directly.
    pub fn broadcast(&self) {
        if let Ok(channel) = BroadcastChannel::new(CHANNEL) {
            let _ = channel.post_message(&self.to_js());
            channel.close();
        }
    }
}

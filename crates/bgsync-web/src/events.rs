//! State changes broadcast to every open page of the origin.
//!
//! The worker (or a page replaying on its own) posts a small object on the
//! `bgsync` BroadcastChannel for each event of the engine, so every open tab
//! can update its list and indicator without polling. BroadcastChannel does
//! not deliver to the sender itself.

use crate::js;
use bgsync_core::Event;
use js_sys::{Array, Object};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::BroadcastChannel;

pub const CHANNEL: &str = "bgsync";

/// The kinds of broadcast events, so a Rust page matches on them instead
/// of on the strings JavaScript sees (`type` of the object).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Queued,
    Sending,
    Sent,
    RetryScheduled,
    DeadLettered,
    Paused,
    Resumed,
    Drained,
    Pulled,
    /// An entry the app took out of its queue ([`crate::queue::Queue::discard`]).
    Discarded,
}

impl EventKind {
    const ALL: [EventKind; 10] = [
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::RetryScheduled,
        Self::DeadLettered,
        Self::Paused,
        Self::Resumed,
        Self::Drained,
        Self::Pulled,
        Self::Discarded,
    ];

    /// The `type` it has on the channel.
    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::RetryScheduled => "retry-scheduled",
            Self::DeadLettered => "dead-lettered",
            Self::Paused => "paused",
            Self::Resumed => "resumed",
            Self::Drained => "drained",
            Self::Pulled => "pulled",
            Self::Discarded => "discarded",
        }
    }

    /// The kind of a received event object.
    pub fn of(event: &JsValue) -> Option<Self> {
        let name = js::get(event, "type").ok()?.as_string()?;
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    fn of_event(event: &Event) -> Self {
        match event {
            Event::Queued { .. } => Self::Queued,
            Event::Sending { .. } => Self::Sending,
            Event::Sent { .. } => Self::Sent,
            Event::RetryScheduled { .. } => Self::RetryScheduled,
            Event::DeadLettered { .. } => Self::DeadLettered,
            Event::Paused { .. } => Self::Paused,
            Event::Resumed => Self::Resumed,
            Event::Drained => Self::Drained,
        }
    }
}

/// The event as a plain object: `{type, queue, ...}` with `type` one of
/// `queued`, `sending`, `sent`, `retry-scheduled`, `dead-lettered`,
/// `paused`, `resumed`, `drained`.
pub fn to_js(queue: &str, event: &Event) -> JsValue {
    let o = Object::new();
    js::set(&o, "queue", queue);
    match event {
        Event::Queued { key } | Event::Sent { key } => js::set(&o, "key", key.as_str()),
        Event::Sending { keys } => {
            js::set(&o, "keys", keys.iter().map(|k| JsValue::from_str(k.as_str())).collect::<Array>())
        }
        Event::RetryScheduled { key, at_ms, error } => {
            js::set(&o, "key", key.as_str());
            js::set(&o, "at", *at_ms as f64);
            js::set(&o, "error", error.as_str());
        }
        Event::DeadLettered { key, reason } => {
            js::set(&o, "key", key.as_str());
            js::set(&o, "reason", reason.to_string());
            js::set(&o, "cause", crate::queue::cause_to_js(reason));
        }
        Event::Paused { status } => js::set(&o, "status", *status),
        Event::Resumed | Event::Drained => {}
    }
    js::set(&o, "type", EventKind::of_event(event).name());
    o.into()
}

/// Posts the engine's event to the other contexts of the origin.
pub fn broadcast(queue: &str, event: &Event) {
    post(&to_js(queue, event));
}

/// Posts a page's own news about `queue` (an entry queued or taken back,
/// a pause lifted) as [`to_js`] writes it, `{type, queue, key?}`: without the code
/// for the engine's other events, which a page module that never replays
/// does not need.
pub fn tell(queue: &str, kind: EventKind, key: Option<&str>) {
    let o = Object::new();
    js::set(&o, "queue", queue);
    if let Some(key) = key {
        js::set(&o, "key", key);
    }
    js::set(&o, "type", kind.name());
    post(&o.into());
}

thread_local! {
    // One sending channel per context.
    static SENDER: Option<BroadcastChannel> = BroadcastChannel::new(CHANNEL).ok();
    // Events not yet posted, and whether a flush is scheduled.
    static PENDING: std::cell::RefCell<Vec<JsValue>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How long events gather before they go out as one message: posting on a
/// BroadcastChannel costs a trip through the browser process (about 0.2 ms
/// in Chromium), too much for every enqueue or for each of a thousand
/// entries a batch answers at once.
const GATHER_MS: i32 = 10;

/// Posts a message (`{type, ...}`) to every context of the origin (this
/// one's subscribers too). Messages gather for a few milliseconds and go
/// out together as `{type: "events", events: [...]}`, in order; read them
/// with [`unpack`].
pub fn post(message: &JsValue) {
    let first = PENDING.with(|p| {
        let mut pending = p.borrow_mut();
        pending.push(message.clone());
        pending.len() == 1
    });
    if !first {
        return;
    }
    let flush = wasm_bindgen::closure::Closure::once_into_js(flush);
    let set_timeout = js::get(&js_sys::global(), "setTimeout").ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    match set_timeout {
        Some(set_timeout) => {
            if set_timeout.call2(&JsValue::NULL, &flush, &JsValue::from(GATHER_MS)).is_err() {
                self::flush();
            }
        }
        None => self::flush(),
    }
}

/// Posts what gathered, now.
pub fn flush() {
    let events: Array = PENDING.with(|p| p.borrow_mut().drain(..).collect());
    if events.length() == 0 {
        return;
    }
    let message = Object::new();
    js::set(&message, "type", "events");
    js::set(&message, "events", events);
    SENDER.with(|channel| {
        if let Some(channel) = channel {
            let _ = channel.post_message(&message);
        }
    });
}

/// The events in a message received on [`CHANNEL`], in order.
pub fn unpack(data: &JsValue) -> Vec<JsValue> {
    match js::get(data, "type").ok().and_then(|t| t.as_string()).as_deref() {
        Some("events") => {
            js::get(data, "events").ok().and_then(|e| js::array(&e)).map(|e| e.iter().collect()).unwrap_or_default()
        }
        _ => vec![data.clone()],
    }
}

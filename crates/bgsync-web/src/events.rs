//! State changes broadcast to every open page of the origin.
//!
//! The worker (or a page replaying on its own) posts a small object on the
//! `bgsync` BroadcastChannel for each event of the engine, so every open tab
//! can update its list and indicator without polling. BroadcastChannel does
//! not deliver to the sender itself.

use crate::{js, json};
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

/// The engine's events, in order, as one JSON array for `JSON.parse`:
/// each `{queue, ...fields, type}` with `type` one of `queued`, `sending`,
/// `sent`, `retry-scheduled`, `dead-lettered`, `paused`, `resumed`,
/// `drained`, and the fields of its kind (`key`; `keys` for `sending`;
/// `at` and `error` for a retry; `reason` and `cause` for a dead letter;
/// `status` for a pause).
///
/// One text read by the browser's JSON parser, rather than an object
/// built field by field from Rust: a batch's answer is a thousand `sent`
/// events, and building them cost 5–8 ms of the worker's round, about
/// five calls across the wasm boundary each.
pub fn events_json(queue: &str, events: &[Event]) -> String {
    let mut out = String::with_capacity(16 + events.len() * (queue.len() + 80));
    out.push('[');
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"queue":"#);
        json::write_str(&mut out, queue);
        match event {
            Event::Queued { key } | Event::Sent { key } => field_str(&mut out, "key", key.as_str()),
            Event::Sending { keys } => {
                out.push_str(r#","keys":["#);
                for (j, key) in keys.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    json::write_str(&mut out, key.as_str());
                }
                out.push(']');
            }
            Event::RetryScheduled { key, at_ms, error } => {
                field_str(&mut out, "key", key.as_str());
                field_number(&mut out, "at", *at_ms);
                field_str(&mut out, "error", error);
            }
            Event::DeadLettered { key, reason } => {
                field_str(&mut out, "key", key.as_str());
                field_str(&mut out, "reason", &reason.to_string());
                out.push_str(r#","cause":{"kind":"#);
                let (kind, name, value) = crate::queue::cause(reason);
                json::write_str(&mut out, kind);
                field_number(&mut out, name, value);
                out.push('}');
            }
            Event::Paused { status } => field_number(&mut out, "status", u64::from(*status)),
            Event::Resumed | Event::Drained => {}
        }
        field_str(&mut out, "type", EventKind::of_event(event).name());
        out.push('}');
    }
    out.push(']');
    out
}

/// `,"name":"value"`
fn field_str(out: &mut String, name: &str, value: &str) {
    out.push(',');
    json::write_str(out, name);
    out.push(':');
    json::write_str(out, value);
}

/// `,"name":value` (a whole number)
fn field_number(out: &mut String, name: &str, value: u64) {
    use std::fmt::Write;
    out.push(',');
    json::write_str(out, name);
    let _ = write!(out, ":{value}");
}

/// Posts the engine's events to the other contexts of the origin, in
/// order (see [`events_json`] for their shape).
pub fn broadcast(queue: &str, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    // The text is bgsync's own JSON: it parses.
    if let Ok(parsed) = js_sys::JSON::parse(&events_json(queue, events)) {
        let parsed: Array = parsed.unchecked_into();
        queue_up(|pending| *pending = pending.concat(&parsed));
    }
}

/// Posts a page's own news about `queue` (an entry queued or taken back,
/// a pause lifted) as [`events_json`] writes them, `{type, queue, key?}`: without the code
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
    // Events not yet posted, in order (a flush is scheduled while there
    // are any).
    static PENDING: std::cell::RefCell<Array> = std::cell::RefCell::new(Array::new());
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
    queue_up(|pending| {
        pending.push(message);
    });
}

/// Adds to the messages waiting to go out (`add`), and schedules their
/// flush if none was.
fn queue_up(add: impl FnOnce(&mut Array)) {
    let first = PENDING.with(|p| {
        let mut pending = p.borrow_mut();
        let was_empty = pending.length() == 0;
        add(&mut pending);
        was_empty && pending.length() > 0
    });
    if first {
        schedule_flush();
    }
}

/// A [`flush`] in [`GATHER_MS`] (at once where there is no timer).
fn schedule_flush() {
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
    let events: Array = PENDING.with(|p| std::mem::replace(&mut *p.borrow_mut(), Array::new()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use bgsync_core::{DeadReason, EntryKey};

    #[test]
    fn the_engines_events_are_one_json_array_in_the_shape_subscribers_read() {
        let key = |k: &str| EntryKey::parse(k).unwrap();
        let events = [
            Event::Queued { key: key("k-1") },
            Event::Sending { keys: vec![key("k-1"), key("k-2")] },
            Event::Sent { key: key("k-1") },
            Event::RetryScheduled { key: key("k-2"), at_ms: 1_733_083_201_000, error: "HTTP 503: \"busy\"\n".into() },
            Event::DeadLettered {
                key: key("k-3"),
                reason: DeadReason::Rejected { status: 422, body: "{\"detail\":\"no\"}".into() },
            },
            Event::DeadLettered {
                key: key("k-4"),
                reason: DeadReason::TooManyAttempts { attempts: 5, last_error: "HTTP 500".into() },
            },
            Event::DeadLettered {
                key: key("k-5"),
                reason: DeadReason::TooOld { age_ms: 90_000_000, last_error: None },
            },
            Event::Paused { status: 401 },
            Event::Resumed,
            Event::Drained,
        ];
        let expected = [
            r#"{"queue":"q é","key":"k-1","type":"queued"}"#,
            r#"{"queue":"q é","keys":["k-1","k-2"],"type":"sending"}"#,
            r#"{"queue":"q é","key":"k-1","type":"sent"}"#,
            r#"{"queue":"q é","key":"k-2","at":1733083201000,"error":"HTTP 503: \"busy\"\n","type":"retry-scheduled"}"#,
            r#"{"queue":"q é","key":"k-3","reason":"the server refused it (HTTP 422): {\"detail\":\"no\"}","cause":{"kind":"rejected","status":422},"type":"dead-lettered"}"#,
            r#"{"queue":"q é","key":"k-4","reason":"gave up after 5 attempts; the last: HTTP 500","cause":{"kind":"too-many-attempts","attempts":5},"type":"dead-lettered"}"#,
            r#"{"queue":"q é","key":"k-5","reason":"gave up after 25 hours undelivered","cause":{"kind":"too-old","ageMs":90000000},"type":"dead-lettered"}"#,
            r#"{"queue":"q é","status":401,"type":"paused"}"#,
            r#"{"queue":"q é","type":"resumed"}"#,
            r#"{"queue":"q é","type":"drained"}"#,
        ];
        assert_eq!(events_json("q é", &events), format!("[{}]", expected.join(",")));
        assert_eq!(events_json("q", &[]), "[]");
        // Read back as JSON (by bgsync's reader, standing in for the
        // browser's `JSON.parse`): the same fields and values.
        let parsed = json::parse(&events_json("q", &events[3..4])).unwrap();
        let retry = match parsed {
            json::Value::Array(items) => items.into_iter().next().unwrap(),
            other => panic!("not an array: {other:?}"),
        };
        assert_eq!(retry.get("error"), Some(&json::Value::String("HTTP 503: \"busy\"\n".into())));
        assert_eq!(retry.get("at").and_then(json::Value::as_f64), Some(1_733_083_201_000.0));
    }
}

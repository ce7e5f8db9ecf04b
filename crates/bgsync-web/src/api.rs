//! The JavaScript API (feature `js-api`): the functions a page calls, as
//! wasm-bindgen exports with TypeScript types. Each is a thin wrapper
//! around the Rust API of this crate ([`crate::config`], [`crate::client`],
//! [`crate::queue`], [`crate::state`]).
//!
//! ```js
//! await wasm_bindgen({ module_or_path: "/app_bg.wasm" });
//! const key = await wasm_bindgen.enqueue("requests", { url: "/api/posts", body: JSON.stringify(post) });
//! const stop = wasm_bindgen.subscribe((event) => console.log(event.type, event));
//! console.log(await wasm_bindgen.status()); // { queued: 1, deadLetters: 0, paused: false, ... }
//! await wasm_bindgen.setCredentials({ Authorization: `Bearer ${token}` }, { user: accountId });
//! ```

use crate::client::{self, NewRequest};
use crate::js::{self, JsResult};
use crate::queue::{self, Queue};
use crate::state;
use js_sys::{Array, Function, Object, Promise};
use wasm_bindgen::prelude::*;
use web_sys::{BroadcastChannel, MessageEvent};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** A request to queue. `method` defaults to "POST"; `key` (the Idempotency-Key) to a new random UUID. */
export interface QueuedRequest {
  url: string;
  method?: string;
  headers?: Record<string, string> | [string, string][] | Headers;
  body?: string;
  /** The Idempotency-Key every attempt carries (a new one when left out; an Idempotency-Key header is taken as it). */
  key?: string;
}
export interface QueueState { queued: number; paused: number | null }
/** Who the credentials are for: what another user queued waits for them (see setCredentials). */
export interface CredentialOptions {
  /** Who is signed in (their account id): what they queue is theirs, sent only with their credentials. */
  user?: string;
}
/** What an app declares, in its pages and its worker alike. */
export interface BgsyncConfig {
  queues?: {
    name: string;
    /** Default true: entries go in the order they were queued, one request at a time. */
    ordered?: boolean;
    /** The one-shot sync tag (default "bgsync:<name>"). */
    tag?: string;
    /** false: never batch; or limits within the server's. */
    batch?: boolean | { maxEntries?: number; maxBytes?: number };
    retry?: { baseMs?: number; factor?: number; capMs?: number; retryAfterCapMs?: number; maxAttempts?: number; maxAgeMs?: number };
    pauseOn?: number[];
    retryOn?: number[];
    /** An unordered queue's requests (single or batch) on the wire at once: 1 to 32 (default 4). */
    maxInFlight?: number;
    /** How long one request (an entry, or a batch) may take, its answer read, before it counts as failed on the
     *  network and is retried; a captured request, until its answer begins: 100 to 300000 ms (default 60000). */
    timeoutMs?: number;
    /** Requests the worker sends itself and queues here when the network fails or no answer begins within
     *  timeoutMs. (Browsers do not tell the worker when the page aborts such a request: exclude those the page
     *  may cancel.) */
    capture?: { prefix?: string; methods?: string[]; exclude?: string[] };
    /** Names this queue had in earlier versions of the app: what users of those versions left queued under them
     *  (entries and dead letters) joins this queue before each replay of the worker (or of a page that replays). */
    formerly?: string[];
  }[];
  feeds?: {
    name: string;
    url: string;
    /** The field of the answer that holds the items. */
    items: string;
    keyPath?: string;
    pageSize?: number;
    tag?: string;
    minIntervalMs?: number;
    freshForMs?: number;
    store?: string;
  }[];
  /** Where pages find bgsync's fallback module, which replays where no worker does
   *  (a browser without service workers, a worker not active yet): its URL without
   *  ".js"/".wasm", "/__BGSYNC_FALLBACK__" in a file bgsync-build serves. */
  fallback?: string;
}
export interface BgsyncStatus {
  queued: number;
  deadLetters: number;
  paused: boolean;
  hasCredentials: boolean;
  online: boolean;
  queues: Record<string, QueueState>;
}
/** Which of a queue's entries `queued` reads: at most `limit`, the newest first with `newestFirst`. */
export interface QueuedOptions {
  limit?: number;
  newestFirst?: boolean;
}
export interface QueuedEntry {
  queue: string;
  key: string;
  method: string;
  url: string;
  headers: [string, string][];
  body: string;
  attempts: number;
  lastError: string | null;
  /** When it was queued, ms since the epoch. */
  enqueuedAt: number;
  /** Not sent again before this (ms since the epoch; 0: due now). */
  notBefore: number;
  /** The user it waits for: queued while they were signed in, sent only once they are again (absent: whoever is
   *  signed in now, or an app that names no users; see setCredentials). */
  owner?: string;
}
/** Everything this context can see of bgsync, for the inspector. */
export interface BgsyncSnapshot {
  online: boolean;
  /** The user named to setCredentials (null: none): an entry whose owner is another waits for them. */
  user: string | null;
  queues: { name: string; tag: string; ordered: boolean; batching: boolean; maxAttempts: number; maxInFlight: number;
            timeoutMs: number;
            paused: number | null;
            /** How many entries wait, and the first 200 of them in queue order. */
            queued: number; entries: QueuedEntry[] }[];
  deadLetters: DeadLetter[];
  /** Entries stored under queue names no queue declares or lists in formerly (nothing sends them), per name. */
  undeclared: Record<string, number>;
  feeds: { name: string; url: string; store: string; tag: string; cursor: string | null; lastSuccess: number | null }[];
  /** The server's batch endpoint as this browser keeps it. */
  advertisement: { batch: { url: string; max_entries: number; max_bytes: number; prefix: string } | null; freshUntil: number } | null;
}
export interface DeadLetter {
  key: string;
  queue: string;
  method: string;
  url: string;
  headers: [string, string][];
  body: string;
  /** Why it will not be sent again, in words (with the server's detail). */
  reason: string;
  /** Why, as data. */
  cause?: { kind: "rejected"; status: number } | { kind: "too-many-attempts"; attempts: number } | { kind: "too-old"; ageMs: number };
  /** When it was dead-lettered, ms since the epoch. */
  at: number;
}
export type BgsyncEvent = { queue?: string } & (
  | { type: "queued"; key: string }
  | { type: "sending"; keys: string[] }
  | { type: "sent"; key: string }
  | { type: "retry-scheduled"; key: string; at: number; error: string }
  | { type: "dead-lettered"; key: string; reason: string; cause: DeadLetter["cause"] }
  | { type: "paused"; status: number }
  | { type: "resumed" }
  | { type: "drained" }
  | { type: "pulled"; feed: string; items: number }
  | { type: "discarded"; key: string }
);
"#;

/// Header pairs from anything `new Headers(...)` takes.
fn header_list(value: &JsValue, call: &str) -> JsResult<Vec<(String, String)>> {
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    let headers = web_sys::Headers::new_with_str_sequence_sequence(value).map_err(|e| {
        JsValue::from_str(&format!(
            "{call}: the headers must be a record, [name, value] pairs or a Headers of valid names and values ({})",
            js::describe(&e)
        ))
    })?;
    js::header_list(&headers)
}

/// Declares the app's queues and feeds in this page (the worker makes the
/// same declaration): see [`crate::config::from_js`] for the shape.
#[wasm_bindgen(js_name = configure)]
pub fn configure(#[wasm_bindgen(unchecked_param_type = "BgsyncConfig")] config: JsValue) -> JsResult<()> {
    crate::config::from_js(&config).and_then(crate::config::configure).map_err(js::error)
}

/// Registers the app's service worker (`script`, such as "/sw.js") where
/// the browser has service workers; resolves `false` where it has none
/// (the page then replays itself).
#[wasm_bindgen(js_name = registerWorker, unchecked_return_type = "Promise<boolean>")]
pub fn register_worker(#[wasm_bindgen(unchecked_param_type = "string")] script: JsValue) -> Promise {
    js::promise(async move {
        let script = string_arg(&script, "registerWorker", "the worker script's URL")?;
        if !client::has_service_worker() {
            return Ok(false);
        }
        client::register_worker(&script).await.map(|_| true)
    })
}

/// The items pulled from the declared feed `name`, as the server sent them.
#[wasm_bindgen(js_name = feedItems, unchecked_return_type = "Promise<unknown[]>")]
pub fn feed_items(#[wasm_bindgen(unchecked_param_type = "string")] name: JsValue) -> Promise {
    js::promise(async move {
        let feed = crate::config::feed(&string_arg(&name, "feedItems", "the feed's name")?)?;
        Ok(JsValue::from(crate::pull::items(&feed).await?.into_iter().collect::<Array>()))
    })
}

/// Takes what the declared feed `name` pulled off the device: its items
/// and its cursor (for an app's sign-out, so that a feed of the user's own
/// does not stay for whoever signs in next). The next pull is a first
/// pull. (A pull under way when it is called may still store its page.)
#[wasm_bindgen(js_name = clearFeed, unchecked_return_type = "Promise<void>")]
pub fn clear_feed(#[wasm_bindgen(unchecked_param_type = "string")] name: JsValue) -> Promise {
    js::promise(async move {
        let feed = crate::config::feed(&string_arg(&name, "clearFeed", "the feed's name")?)?;
        crate::pull::clear(&feed).await
    })
}

/// Pulls what changed in the declared feed `name`; resolves with how many
/// items arrived.
///
/// A page module built without the replay (bgsync's page module) has no
/// pull of its own either: the worker pulls for it when one is active,
/// else bgsync's fallback module does.
/// (The pull is about 5 KB gzip of a page module.)
#[wasm_bindgen(js_name = pull, unchecked_return_type = "Promise<number>")]
pub fn pull(#[wasm_bindgen(unchecked_param_type = "string")] name: JsValue) -> Promise {
    js::promise(async move {
        let feed = crate::config::feed(&string_arg(&name, "pull", "the feed's name")?)?;
        #[cfg(feature = "replay-here")]
        return Ok(JsValue::from(crate::pull::pull(&feed).await? as u32));
        #[cfg(not(feature = "replay-here"))]
        return crate::client::pull_elsewhere(&feed.name).await;
    })
}

/// Queues `request` in the declared queue `queue` and resolves with its
/// key once it is stored durably and its sync registered; where no sync
/// can be registered (no Background Sync, no active worker yet), a replay
/// starts at once, in the background.
#[wasm_bindgen(js_name = enqueue, unchecked_return_type = "Promise<string>")]
pub fn enqueue(
    #[wasm_bindgen(unchecked_param_type = "string")] queue: JsValue,
    #[wasm_bindgen(unchecked_param_type = "QueuedRequest")] request: JsValue,
) -> Promise {
    js::promise(async move {
        let queue = Queue::named(&string_arg(&queue, "enqueue", "the queue's name")?)?;
        if !request.is_object() {
            return Err::<JsValue, _>(
                "enqueue: the request must be an object like { url, method, headers, body }".into(),
            );
        }
        // A field left out (or null) takes its default; one of another
        // type is refused rather than taken for left out.
        let text = |name: &str, what: &str| -> JsResult<Option<String>> {
            let value = js::get(&request, name)?;
            match value.as_string() {
                Some(text) => Ok(Some(text)),
                None if value.is_undefined() || value.is_null() => Ok(None),
                None => Err(format!("enqueue: {name} must be a string ({what})").into()),
            }
        };
        let url = text("url", "a path of this origin or an absolute URL")?.ok_or("enqueue: the request has no url")?;
        let body = text("body", "JSON.stringify it")?.unwrap_or_default();
        let method = text("method", "such as \"PUT\"; POST when left out")?.unwrap_or_else(|| "POST".into());
        let key = text("key", "the key every attempt carries; a new one when left out")?;
        let queued = client::enqueue_request(
            &queue,
            NewRequest { method, url, headers: header_list(&js::get(&request, "headers")?, "enqueue")?, body, key },
        )
        .await?;
        if !queued.registered {
            // No sync registered: sent now, by the worker or here. Not
            // awaited: the entry is stored, which is what the promise says;
            // a round here takes as long as the server does.
            client::retry_now_soon();
        }
        Ok(queued.entry.key.as_str().into())
    })
}

/// What is queued, paused and dead, over every queue.
#[wasm_bindgen(js_name = status, unchecked_return_type = "Promise<BgsyncStatus>")]
pub fn status() -> Promise {
    js::promise(async move { Ok(client::status().await?.to_js()) })
}

/// Calls `callback` with every event of every queue, from the worker and
/// every page of the origin. Returns the function that unsubscribes.
#[wasm_bindgen(js_name = subscribe, unchecked_return_type = "() => void")]
pub fn subscribe(
    #[wasm_bindgen(unchecked_param_type = "(event: BgsyncEvent) => void")] callback: JsValue,
) -> JsResult<JsValue> {
    let callback: Function =
        callback.dyn_into().map_err(|_| js::error("subscribe: pass the function to call with each event".into()))?;
    let channel = BroadcastChannel::new(crate::events::CHANNEL)?;
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        for one in crate::events::unpack(&event.data()) {
            if let Err(e) = callback.call1(&JsValue::NULL, &one) {
                web_sys::console::error_2(&"bgsync: a subscriber threw".into(), &e);
            }
        }
    });
    channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    Ok(Closure::once_into_js(move || {
        channel.set_onmessage(None);
        channel.close();
        drop(on_message);
    }))
}

/// Replays every queue now: in the worker that controls the page, else here.
#[wasm_bindgen(js_name = retryNow, unchecked_return_type = "Promise<void>")]
pub fn retry_now() -> Promise {
    js::promise(async move { client::retry_now().await.map(|_| ()) })
}

/// Replays every queue here, once, never in a worker (`expedite`: entries
/// waiting out a backoff go now): what a page built without the replay
/// asks of bgsync's fallback module ([`crate::fallback`]).
#[cfg(feature = "replay-here")]
#[wasm_bindgen(js_name = deliverHere, skip_typescript)]
pub fn deliver_here(expedite: bool) -> Promise {
    js::promise(async move { Ok(crate::fallback::round_to_js(&crate::replay::deliver(0, expedite).await?)) })
}

/// The entries waiting in the declared queue `queue`, in queue order: what
/// a page draws as "not sent yet", after a reload too. `options.limit`
/// reads at most that many, `options.newestFirst` the newest first (the
/// count is in [`status`]): a page need not read a queue of thousands to
/// show its latest entries.
#[wasm_bindgen(js_name = queued, unchecked_return_type = "Promise<QueuedEntry[]>")]
pub fn queued(
    #[wasm_bindgen(unchecked_param_type = "string")] queue: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "QueuedOptions")] options: Option<Object>,
) -> Promise {
    js::promise(async move {
        let queue = Queue::named(&string_arg(&queue, "queued", "the queue's name")?)?;
        let entries = match options {
            Some(options) => {
                let (limit, newest_first) = queued_options(&options)?;
                queue.first(limit, newest_first).await?.1
            }
            None => queue.all().await?,
        };
        Ok(listed(&queue, &entries))
    })
}

/// Takes the entry `key` out of the declared queue `queue` before anything
/// sends it (the user deleted what it wrote offline), once no round runs
/// anywhere: resolves with the entry as it was (`attempts` above 0: it was
/// sent before, and the server may have applied it), or `null` when the
/// queue has no such entry (delivered, dead-lettered, or taken out already).
#[wasm_bindgen(js_name = discardQueued, unchecked_return_type = "Promise<QueuedEntry | null>")]
pub fn discard_queued(
    #[wasm_bindgen(unchecked_param_type = "string")] queue: JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
) -> Promise {
    js::promise(async move {
        let queue = Queue::named(&string_arg(&queue, "discardQueued", "the queue's name")?)?;
        queue.take(&string_arg(&key, "discardQueued", "the entry's key")?).await
    })
}

/// How many of each queue's entries [`inspect`] reads: the first, in queue
/// order (the inspector shows 200).
#[cfg(feature = "replay-here")]
const INSPECTED_ENTRIES: u32 = 200;

/// Entries as they are stored.
fn listed(queue: &Queue, entries: &[bgsync_core::Entry]) -> JsValue {
    entries.iter().map(|entry| queue::to_js(queue.name(), entry)).collect::<Array>().into()
}

/// `queued`'s options: `{ limit?: whole number of 1 or more, newestFirst?: boolean }`.
fn queued_options(options: &Object) -> JsResult<(u32, bool)> {
    if !options.is_object() {
        return Err("queued: the options must be an object such as { limit: 100, newestFirst: true }".into());
    }
    let limit = js::get(options, "limit")?;
    let limit = match limit.as_f64() {
        _ if limit.is_undefined() || limit.is_null() => u32::MAX,
        Some(n) if n >= 1.0 && n <= f64::from(u32::MAX) && n.fract() == 0.0 => n as u32,
        _ => return Err("queued: limit must be a whole number of 1 or more".into()),
    };
    let newest = js::get(options, "newestFirst")?;
    let newest_first = match newest.as_bool() {
        _ if newest.is_undefined() || newest.is_null() => false,
        Some(b) => b,
        None => return Err("queued: newestFirst must be true or false".into()),
    };
    Ok((limit, newest_first))
}

/// Everything this page can see of bgsync at once: each declared queue
/// with its policy, pause and entries (attempts, next retry, last error),
/// the dead letters, each feed's cursor and last pull, and the server's
/// batch endpoint as kept. What the inspector draws (`bgsync-inspector.js`);
/// the worker's own rounds come from its status message.
///
/// A page module built without the replay (bgsync's page module) asks
/// bgsync's fallback module for it, loaded the first time ([`crate::fallback`]):
/// an inspector is a developer's tool, and this is about 1.7 KB gzip every
/// visitor's page would download (the module is cached as any hashed file,
/// so an inspector opened once opens offline too).
#[wasm_bindgen(js_name = inspect, unchecked_return_type = "Promise<BgsyncSnapshot>")]
pub fn inspect() -> Promise {
    #[cfg(not(feature = "replay-here"))]
    return js::promise(async { crate::fallback::call("inspect", &JsValue::UNDEFINED).await });
    #[cfg(feature = "replay-here")]
    js::promise(async move {
        let snapshot = Object::new();
        js::set(&snapshot, "online", crate::client::online());
        // Who is signed in: entries another user queued wait for them.
        js::set(&snapshot, "user", state::signed_in().await?.1.map(JsValue::from).unwrap_or(JsValue::NULL));
        let queues = Array::new();
        for queue in Queue::declared() {
            let o = Object::new();
            js::set(&o, "name", queue.name());
            js::set(&o, "tag", queue.tag());
            js::set(&o, "ordered", queue.policy().ordered);
            js::set(&o, "batching", queue.batching());
            js::set(&o, "maxAttempts", queue.policy().retry.max_attempts);
            // What the engine uses: 1 for an ordered queue.
            let in_flight = if queue.policy().ordered { 1 } else { queue.policy().max_in_flight };
            js::set(&o, "maxInFlight", in_flight as u32);
            js::set(&o, "timeoutMs", queue.timeout_ms());
            let paused = state::paused(queue.name()).await?;
            js::set(&o, "paused", paused.map(JsValue::from).unwrap_or(JsValue::NULL));
            // The next to go, never the whole queue (a render per event
            // while a long queue drains), and how many there are.
            let (count, entries) = queue.first(INSPECTED_ENTRIES, false).await?;
            js::set(&o, "queued", count as u32);
            js::set(&o, "entries", listed(&queue, &entries));
            queues.push(&o);
        }
        js::set(&snapshot, "queues", queues);
        js::set(&snapshot, "deadLetters", dead_letter_list().await?);
        let undeclared = Object::new();
        for (name, count) in crate::queue::undeclared().await? {
            js::set(&undeclared, &name, count as u32);
        }
        js::set(&snapshot, "undeclared", undeclared);
        let feeds = Array::new();
        for feed in &crate::config::current().feeds {
            let (cursor, last_success) = crate::pull::describe(feed).await?;
            let o = Object::new();
            js::set(&o, "name", feed.name.as_str());
            js::set(&o, "url", feed.url.as_str());
            js::set(&o, "store", feed.store.as_str());
            js::set(&o, "tag", feed.tag.as_str());
            js::set(&o, "cursor", cursor.map(JsValue::from).unwrap_or(JsValue::NULL));
            js::set(&o, "lastSuccess", last_success.map(|t| JsValue::from_f64(t as f64)).unwrap_or(JsValue::NULL));
            feeds.push(&o);
        }
        js::set(&snapshot, "feeds", feeds);
        js::set(&snapshot, "advertisement", crate::transport::advertisement().await?);
        Ok(JsValue::from(snapshot))
    })
}

/// The dead letters of every queue, oldest first.
#[wasm_bindgen(js_name = deadLetters, unchecked_return_type = "Promise<DeadLetter[]>")]
pub fn dead_letters() -> Promise {
    js::promise(dead_letter_list())
}

async fn dead_letter_list() -> JsResult<JsValue> {
    let list = Array::new();
    for dead in queue::dead_letters().await? {
        let o = Object::new();
        js::set(&o, "key", dead.entry.key.as_str());
        js::set(&o, "queue", dead.queue.as_str());
        js::set(&o, "method", dead.entry.method.as_str());
        js::set(&o, "url", dead.entry.url.as_str());
        js::set(&o, "headers", js::header_pairs(&dead.entry.headers));
        js::set(&o, "body", dead.entry.body.as_str());
        js::set(&o, "reason", dead.reason.as_str());
        js::set(&o, "cause", dead.cause.clone());
        js::set(&o, "at", dead.at_ms);
        list.push(&o);
    }
    Ok(list.into())
}

/// Puts a dead letter back in its queue, at its end (what was queued after
/// it went already), and retries now. Resolves `false` when there is no
/// such dead letter (another tab took it).
#[wasm_bindgen(js_name = retryDeadLetter, unchecked_return_type = "Promise<boolean>")]
pub fn retry_dead_letter(#[wasm_bindgen(unchecked_param_type = "string")] key: JsValue) -> Promise {
    js::promise(async move {
        let found = queue::retry_dead_letter(&string_arg(&key, "retryDeadLetter", "the dead letter's key")?).await?;
        if found {
            client::retry_now().await?;
        }
        Ok(found)
    })
}

/// Deletes a dead letter for good.
#[wasm_bindgen(js_name = discardDeadLetter, unchecked_return_type = "Promise<void>")]
pub fn discard_dead_letter(#[wasm_bindgen(unchecked_param_type = "string")] key: JsValue) -> Promise {
    js::promise(async move {
        queue::discard_dead_letter(&string_arg(&key, "discardDeadLetter", "the dead letter's key")?).await
    })
}

/// A name or key the caller passed: refused with what it must be when it
/// is not a string. (A `String` parameter would make the glue throw, not
/// reject, a TypeError about `length` for `null`.)
fn string_arg(value: &JsValue, call: &str, what: &str) -> JsResult<String> {
    value.as_string().ok_or_else(|| JsValue::from_str(&format!("{call}: {what} must be a string")))
}

#[wasm_bindgen]
extern "C" {
    /// `setCredentials`'s options (`CredentialOptions` in the declarations).
    #[wasm_bindgen(typescript_type = "CredentialOptions")]
    pub type CredentialOptions;
}

/// Sets the headers sent with every queued request at replay (replacing
/// the entry's own of the same name), resumes the queues the server paused
/// with 401/403, and retries now. `{}` forgets them. `options.user` names
/// who is signed in: what another user queued waits for them.
#[wasm_bindgen(js_name = setCredentials, unchecked_return_type = "Promise<void>")]
pub fn set_credentials(
    #[wasm_bindgen(unchecked_param_type = "Record<string, string> | [string, string][] | Headers")] headers: JsValue,
    options: Option<CredentialOptions>,
) -> Promise {
    let options: JsValue = options.map(Into::into).unwrap_or_default();
    js::promise(async move {
        if headers.is_undefined() || headers.is_null() {
            return Err(r#"setCredentials: pass the headers to add at replay, such as { Authorization: "Bearer …" }, or {} to forget them"#.into());
        }
        // `{ user }`, or nothing for an app without users.
        let user = if options.is_object() { js::get(&options, "user")? } else { options.clone() };
        let user = match user.as_string() {
            _ if user.is_undefined() || user.is_null() => None,
            Some(user) if !user.is_empty() && options.is_object() => Some(user),
            _ => return Err(r#"setCredentials: name who is signed in as { user: "ada" } (a non-empty string, such as their account id), or leave it out"#.into()),
        };
        client::set_credentials(&header_list(&headers, "setCredentials")?, user.as_deref()).await
    })
}

/// Ignores Background Sync even where the browser has it (WebViews that
/// expose `SyncManager` but never fire it): pages then replay on load, on
/// `online`, on "retry now" and on the engine's timers. Stored for the
/// origin; `forceFallback(false)` undoes it.
#[wasm_bindgen(js_name = forceFallback, unchecked_return_type = "Promise<void>")]
pub fn force_fallback(#[wasm_bindgen(unchecked_param_type = "boolean")] on: JsValue) -> Promise {
    js::promise(async move {
        let on = on.as_bool().ok_or("forceFallback: pass true to ignore Background Sync, false to use it again")?;
        state::set_force_fallback(on).await
    })
}

//! The page side: queueing, worker and sync registration, and messages to
//! the worker.

use crate::events;
use crate::js::{self, JsResult};
use crate::queue::Queue;
use crate::state;
use bgsync_core::wire::IDEMPOTENCY_KEY;
use bgsync_core::{Entry, EntryKey};
use js_sys::Function;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Navigator, ServiceWorkerContainer, ServiceWorkerRegistration};

/// Stores a `POST` of `body` to `url` durably in `queue`, registers its
/// sync and tells open pages ([`enqueue_request`]). The key made here is
/// the `Idempotency-Key` of every delivery attempt.
pub async fn enqueue(queue: &Queue, url: &str, body: String) -> JsResult<Queued> {
    enqueue_request(queue, NewRequest { method: "POST".into(), url: url.into(), headers: Vec::new(), body, key: None })
        .await
}

/// What [`enqueue_request`] did: the entry it stored, and whether its
/// queue's sync is registered.
#[derive(Clone, Debug)]
pub struct Queued {
    pub entry: Entry,
    /// `false` where no sync could be registered (no Background Sync, none
    /// usable yet, turned off with [`state::set_force_fallback`], or the
    /// registration failed, which is logged): the caller has the entry
    /// replayed ([`retry_now_soon`], or [`retry_now`] to wait for it).
    pub registered: bool,
}

/// A request for [`enqueue_request`].
#[derive(Clone, Debug, Default)]
pub struct NewRequest {
    pub method: String,
    /// A path of this origin (`/api/posts`) or an absolute URL.
    pub url: String,
    /// Sent with every attempt (credentials set with
    /// [`crate::state::set_credentials`] replace those of the same name).
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The `Idempotency-Key`; a new random one when `None`. Enqueueing the
    /// same key again replaces the queued copy.
    pub key: Option<String>,
}

/// Stores `request` durably in `queue`, registers the queue's sync and
/// tells open pages; resolves once the write has committed and the
/// registration is answered. Refuses, with a message saying why, a
/// method, URL, header or key the browser could never send.
///
/// The write, a look for a round running elsewhere and the registration
/// are issued in that order. The caller waits for the commit and the
/// registration together, the longer of them, not their sum (each costs
/// about half an enqueue); the look's answer is read after the commit,
/// without the caller waiting for it. Why no entry is left behind:
///
/// - a `sync` the registration fires reads the queue in a transaction made
///   after this write's, and IndexedDB runs a transaction on a store after
///   every write transaction on it made before, so its round sees the entry;
/// - the browser may swallow the registration (Chromium does while a sync
///   event of the tag is firing, and never fires it again). Whoever runs
///   that event holds the replaying lock from before its first read of the
///   queue until after the event ended ([`crate::replay::deliver`]). The
///   look comes before the registration: if it finds the lock held, a
///   round of its own is asked for once the write has committed, and that
///   round reads the entry; if it finds it free, any event firing when the
///   registration arrives took the lock after the look, so after the
///   write was issued, and its reads see the entry. A round that is past
///   its last read is the one case the look is for.
pub async fn enqueue_request(queue: &Queue, request: NewRequest) -> JsResult<Queued> {
    let NewRequest { method, url, mut headers, body, key } = request;
    let bad = |what: String| Err(JsValue::from_str(&what));
    let method = method.to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return bad(format!("enqueue: \"{method}\" is not an HTTP method"));
    }
    if matches!(method.as_str(), "CONNECT" | "TRACE" | "TRACK") {
        return bad(format!(
            "enqueue: a browser cannot send a {method} request (fetch refuses CONNECT, TRACE and TRACK)"
        ));
    }
    if matches!(method.as_str(), "GET" | "HEAD") && !body.is_empty() {
        return bad(format!("enqueue: a {method} request cannot have a body"));
    }
    // A path of this origin is the usual case; anything else is parsed.
    let plain_path = url.starts_with('/') && !url.starts_with("//") && !url.contains(char::is_whitespace);
    if !plain_path {
        let base = js::get(&js::get(&js_sys::global(), "location")?, "href")?.as_string().unwrap_or_default();
        let Some(parsed) = web_sys::Url::new_with_base(&url, &base).ok().filter(|_| !url.is_empty()) else {
            return bad(format!("enqueue: \"{url}\" is not a URL"));
        };
        if !matches!(parsed.protocol().as_str(), "http:" | "https:") {
            return bad(format!("enqueue: \"{url}\" is not an http or https URL, the only kind fetch sends"));
        }
    }
    if let Some((name, value)) = js::invalid_header(&headers)? {
        return bad(format!("enqueue: \"{name}: {value}\" is not a valid HTTP header"));
    }
    if let Some((name, _)) = headers.iter().find(|(name, _)| is_credential(name)) {
        return bad(format!(
            "enqueue: the header \"{name}\" would be stored in clear with the entry; \
             pass it to setCredentials instead, which adds it at replay to requests for this origin"
        ));
    }
    if let Some((name, _)) = headers.iter().find(|(name, _)| is_browsers_header(name)) {
        return bad(format!(
            "enqueue: the header \"{name}\" is the browser's to set: fetch would leave it out, so it is refused here"
        ));
    }
    // An `Idempotency-Key` header is the entry's key, as for a captured
    // request (each attempt carries the key; a second, different one would
    // make the request ambiguous).
    let header_key =
        headers.iter().find(|(name, _)| name.eq_ignore_ascii_case(IDEMPOTENCY_KEY)).map(|(_, v)| v.clone());
    headers.retain(|(name, _)| !name.eq_ignore_ascii_case(IDEMPOTENCY_KEY));
    let key = match (key, header_key) {
        (Some(key), Some(header)) if key != header.trim() => {
            return bad(format!(
                "enqueue: the {IDEMPOTENCY_KEY} header \"{header}\" is not the key \"{key}\"; \
                 the key is what each attempt carries as {IDEMPOTENCY_KEY}, so give one of them"
            ))
        }
        (Some(key), _) => key,
        (None, Some(header)) => header.trim().to_owned(),
        (None, None) => new_key()?,
    };
    let key = EntryKey::parse(&key).map_err(|e| JsValue::from_str(&format!("enqueue: the key \"{key}\": {e}")))?;
    let mut entry = Entry::new(key, url, body, enqueue_time());
    entry.method = method;
    entry.headers = headers;
    store(queue, entry).await
}

/// The second half of [`enqueue_request`], for an entry whose request is
/// known to be one the browser can send (the worker's capture takes it
/// from a request the browser built): stored, registered, told, with the
/// look that keeps it from being stranded.
pub(crate) async fn store(queue: &Queue, entry: Entry) -> JsResult<Queued> {
    let usable = background_sync_usable().await;
    let written = queue.push(&entry).await?;
    // The look is made before the registration (and its answer read after
    // the commit: the caller does not wait for it).
    let look = if usable { crate::replay::look() } else { None };
    let registering = async {
        if usable {
            register(queue.tag()).await
        } else {
            Ok(false)
        }
    };
    let (stored, registered) = js::join(written, registering).await;
    stored?;
    events::tell(queue.name(), events::EventKind::Queued, Some(entry.key.as_str()));
    if let Some(look) = look {
        wasm_bindgen_futures::spawn_local(async move {
            if crate::replay::held(look).await {
                ask_for_a_round_soon();
            }
        });
    }
    let registered = registered.unwrap_or_else(|e| {
        web_sys::console::warn_2(&"bgsync: the sync registration failed; replaying instead".into(), &e);
        false
    });
    Ok(Queued { entry, registered })
}

/// Headers that carry credentials: never stored in an entry (a queued
/// request outlives a session, and dead letters are shown to scripts); the
/// app's credentials are added at replay ([`state::set_credentials`]).
pub fn is_credential(name: &str) -> bool {
    ["authorization", "proxy-authorization", "cookie"].iter().any(|c| c.eq_ignore_ascii_case(name))
}

/// Request headers only the browser sets (the Fetch standard's forbidden
/// request-header names, credentials aside): `fetch` leaves them out
/// without a word.
pub fn is_browsers_header(name: &str) -> bool {
    const NAMES: [&str; 20] = [
        "accept-charset",
        "accept-encoding",
        "access-control-request-headers",
        "access-control-request-method",
        "connection",
        "content-length",
        "cookie2",
        "date",
        "dnt",
        "expect",
        "host",
        "keep-alive",
        "origin",
        "referer",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
    ];
    let lower = name.to_ascii_lowercase();
    NAMES.contains(&lower.as_str()) || lower.starts_with("proxy-") || lower.starts_with("sec-")
}

/// After an entry was stored: when a context of the origin is replaying
/// right now, asks for a round that will read the entry (see
/// [`enqueue_request`]). Whoever replays also drains what arrives during
/// its round; this covers a round that is past its last read, or waiting
/// out a backoff.
pub async fn make_sure_it_is_taken() -> JsResult<()> {
    if crate::replay::replaying_elsewhere().await {
        replay_here_or_in_worker(false).await?;
    }
    Ok(())
}

/// [`make_sure_it_is_taken`] in the background (the caller's entry is
/// already stored; a failure here is logged, never the caller's).
pub fn make_sure_it_is_taken_soon() {
    in_background("bgsync: asking for a replay failed", make_sure_it_is_taken());
}

/// Asks for a round (in the worker that controls this page, else here),
/// in the background. The round asked for is not expedited: entries
/// waiting out a backoff keep waiting (queueing must not spend their
/// attempts).
fn ask_for_a_round_soon() {
    in_background("bgsync: asking for a replay failed", replay_here_or_in_worker(false));
}

/// Runs `work` in the background; a failure is logged with `failure`.
fn in_background<T>(failure: &'static str, work: impl std::future::Future<Output = JsResult<T>> + 'static) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = work.await {
            web_sys::console::warn_2(&failure.into(), &e);
        }
    });
}

/// The queue order: milliseconds with a fraction (`timeOrigin + now()`), so
/// two posts in the same millisecond keep the order they were written in.
pub(crate) fn enqueue_time() -> f64 {
    match (js::time_origin(), js::performance_now()) {
        (Some(origin), Some(now)) => origin + now,
        _ => js_sys::Date::now(),
    }
}

/// A new entry key: a time-ordered (version 7) UUID, the enqueue time in
/// milliseconds then random bits from the browser's CSPRNG. Keys then sort
/// in queue order, so the entries a batch delivered form one key range,
/// deleted with one request ([`crate::queue::Queue::apply_all`]).
pub fn new_key() -> JsResult<String> {
    let random = random_uuid()?;
    let ms = js_sys::Date::now() as u64 & 0xffff_ffff_ffff;
    // xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx → tttttttt-tttt-7xxx-yxxx-xxxxxxxxxxxx
    let rest = random.get(15..).filter(|rest| rest.len() == 21).ok_or("crypto.randomUUID returned no UUID")?;
    Ok(format!("{:08x}-{:04x}-7{rest}", ms >> 16, ms & 0xffff))
}

/// A random (v4) UUID from the browser's CSPRNG.
pub fn random_uuid() -> JsResult<String> {
    let crypto = js::get(&js_sys::global(), "crypto")?;
    let make: Function = js::get(&crypto, "randomUUID")?.dyn_into()?;
    make.call0(&crypto)?.as_string().ok_or_else(|| "crypto.randomUUID returned no string".into())
}

fn container() -> Option<ServiceWorkerContainer> {
    let navigator: Navigator = js::global("navigator").ok()?;
    // `serviceWorker` is missing outside secure contexts and in some
    // browsers' private modes.
    js::get(&navigator, "serviceWorker").ok()?.dyn_into().ok()
}

/// Whether this page can have a service worker at all.
pub fn has_service_worker() -> bool {
    container().is_some()
}

/// Whether the browser has one-shot Background Sync (Chromium does;
/// Firefox and Safari do not).
pub fn has_sync_manager() -> bool {
    js::get(&js_sys::global(), "SyncManager").map(|v| !v.is_undefined()).unwrap_or(false)
}

/// Registers the worker script; resolves once it is registered (not yet
/// necessarily active).
pub async fn register_worker(script: &str) -> JsResult<ServiceWorkerRegistration> {
    let container = container().ok_or_else(|| JsValue::from_str("service workers are not available"))?;
    js::await_promise(container.register(script)).await?.dyn_into()
}

/// Whether one-shot Background Sync is there and not turned off with
/// [`state::set_force_fallback`]; when not, the page replays itself.
pub async fn background_sync_usable() -> bool {
    has_sync_manager() && !state::force_fallback().await.unwrap_or(false)
}

thread_local! {
    // The `SyncManager` and its `register`, once found.
    static SYNC: std::cell::RefCell<Option<(JsValue, Function)>> = const { std::cell::RefCell::new(None) };
}

/// The registration's `SyncManager` and its `register` function: a
/// worker's own registration, or in a page the registration of this page
/// whose worker is active (looked up until found, then kept: a promise hop
/// per enqueue otherwise). `None` where there is no worker, none active
/// yet, or no Background Sync.
///
/// Not `navigator.serviceWorker.ready`: it waits until a worker is active,
/// which is never where the page registers none or the install failed (a
/// file of its cache that did not load), and a queued entry's caller
/// would wait with it.
async fn sync_manager() -> JsResult<Option<(JsValue, Function)>> {
    if let Some(known) = SYNC.with(|s| s.borrow().clone()) {
        return Ok(Some(known));
    }
    let own = js::get(&js_sys::global(), "registration").ok().filter(JsValue::is_object);
    let registration = match own {
        Some(registration) => registration,
        None => {
            let Some(container) = container() else { return Ok(None) };
            let registration = js::await_promise(container.get_registration()).await?;
            if !registration.is_object() || !js::get(&registration, "active")?.is_object() {
                return Ok(None);
            }
            registration
        }
    };
    let sync = js::get(&registration, "sync")?;
    if !sync.is_object() {
        return Ok(None);
    }
    let register: Function = js::get(&sync, "register")?.dyn_into()?;
    SYNC.with(|s| *s.borrow_mut() = Some((sync.clone(), register.clone())));
    Ok(Some((sync, register)))
}

/// Registers a one-shot sync `tag`, from a page or the worker. Returns
/// `false` when Background Sync is not usable here, so the caller can fall
/// back.
pub async fn register_sync(tag: &str) -> JsResult<bool> {
    if !background_sync_usable().await {
        return Ok(false);
    }
    register(tag).await
}

/// [`register_sync`] where Background Sync is known to be usable.
async fn register(tag: &str) -> JsResult<bool> {
    let Some((sync, register)) = sync_manager().await? else { return Ok(false) };
    js::await_promise(register.call1(&sync, &JsValue::from_str(tag))?.dyn_into()?).await?;
    Ok(true)
}

/// Posts `message` to the worker that controls this page, if any.
/// Returns whether there was one.
pub fn post_to_worker(message: &JsValue) -> bool {
    let Some(worker) = container().and_then(|c| c.controller()) else {
        return false;
    };
    worker.post_message(message).is_ok()
}

/// Pulls the feed `name` where a page module's network code is: in the
/// worker when one is active (the message `{type: "pull", feed, port}`,
/// [`crate::worker::pull_for_page`]), else in bgsync's fallback module.
/// Resolves with how many items arrived, or rejects as the pull did.
///
/// On a first visit the worker may still be installing: its activation is
/// waited for, a few seconds at most. A worker that does not acknowledge
/// the message at once (one of an older version, which pulls for no page)
/// leaves the pull to the fallback module.
#[cfg(not(feature = "replay-here"))]
pub(crate) async fn pull_elsewhere(name: &str) -> JsResult<JsValue> {
    if let Some(worker) = active_worker().await {
        if let Some(answer) = pulled_by(&worker, name).await {
            return answer;
        }
    }
    crate::fallback::call("pull", &name.into()).await
}

/// How long a page waits for its worker's activation, then for the
/// worker's acknowledgement of a pull, then for the pull (its requests'
/// own deadline is 60 s).
#[cfg(not(feature = "replay-here"))]
const ACTIVATION_MS: i32 = 5_000;
#[cfg(not(feature = "replay-here"))]
const ACKNOWLEDGED_MS: i32 = 3_000;
#[cfg(not(feature = "replay-here"))]
const PULLED_MS: i32 = 75_000;

/// The worker that controls this page, or the registration's active one
/// (waited for while it installs, for [`ACTIVATION_MS`] at most).
#[cfg(not(feature = "replay-here"))]
async fn active_worker() -> Option<web_sys::ServiceWorker> {
    let container = container()?;
    if let Some(controller) = container.controller() {
        return Some(controller);
    }
    let registration: ServiceWorkerRegistration =
        js::await_promise(container.get_registration()).await.ok()?.dyn_into().ok()?;
    if registration.active().is_none() && (registration.installing().is_some() || registration.waiting().is_some()) {
        let _ = js::await_promise(within(&container.ready().ok()?, ACTIVATION_MS)).await;
    }
    registration.active()
}

/// Settles as `promise` does, or with `undefined` once `ms` have passed.
#[cfg(not(feature = "replay-here"))]
fn within(promise: &js_sys::Promise, ms: i32) -> js_sys::Promise {
    js_sys::Promise::race(&js_sys::Array::of2(promise, &js::after(ms)))
}

/// Asks `worker` to pull the feed `name`: `None` when it does not
/// acknowledge within [`ACKNOWLEDGED_MS`], or declines (its declaration of
/// the feed is not the page's).
#[cfg(not(feature = "replay-here"))]
async fn pulled_by(worker: &web_sys::ServiceWorker, name: &str) -> Option<JsResult<JsValue>> {
    let channel = web_sys::MessageChannel::new().ok()?;
    let port = channel.port1();
    // The port's next message event, or `undefined` after `ms`. (Each
    // message is an event of its own: the next one's handler is set before
    // it comes.)
    let next = |ms| {
        let message = js_sys::Promise::new(&mut |resolve, _| js::set(&port, "onmessage", resolve));
        js::await_promise(within(&message, ms))
    };
    let message = js_sys::Object::new();
    js::set(&message, "type", "pull");
    js::set(&message, "feed", name);
    // The worker pulls only a feed it declares as this page does.
    js::set(&message, "declaration", &crate::config::current().declaration);
    js::set(&message, "port", channel.port2());
    let acknowledged = next(ACKNOWLEDGED_MS);
    worker.post_message_with_transferable(&message, &js_sys::Array::of1(&channel.port2())).ok()?;
    let data = |event: JsValue| js::get(&event, "data").unwrap_or_default();
    let acknowledged =
        acknowledged.await.ok().map(data).is_some_and(|d| js::get(&d, "accepted").ok() == Some(true.into()));
    let answer = if acknowledged { next(PULLED_MS).await.ok().filter(JsValue::is_object) } else { None };
    port.close();
    if !acknowledged {
        return None;
    }
    let Some(data) = answer.map(data) else {
        return Some(Err(JsValue::from_str("pull: the worker did not answer within 75 s")));
    };
    let error = js::get(&data, "error").unwrap_or_default();
    Some(if error.is_undefined() { js::get(&data, "count") } else { Err(error) })
}

/// What is queued, paused and dead, over every queue.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub queues: Vec<QueueStatus>,
    pub dead_letters: usize,
    /// Whether credentials are set ([`crate::state::set_credentials`]).
    pub has_credentials: bool,
}

#[derive(Clone, Debug)]
pub struct QueueStatus {
    pub name: String,
    pub queued: usize,
    /// The status (401/403) that paused the queue.
    pub paused: Option<u16>,
}

impl Status {
    pub fn queued(&self) -> usize {
        self.queues.iter().map(|q| q.queued).sum()
    }

    pub fn paused(&self) -> bool {
        self.queues.iter().any(|q| q.paused.is_some())
    }

    /// `{queued, deadLetters, paused, hasCredentials, online, queues: {name: {queued, paused}}}`.
    pub fn to_js(&self) -> JsValue {
        let o = js_sys::Object::new();
        js::set(&o, "queued", self.queued() as u32);
        js::set(&o, "deadLetters", self.dead_letters as u32);
        js::set(&o, "paused", self.paused());
        js::set(&o, "hasCredentials", self.has_credentials);
        js::set(&o, "online", online());
        let queues = js_sys::Object::new();
        for q in &self.queues {
            let one = js_sys::Object::new();
            js::set(&one, "queued", q.queued as u32);
            js::set(&one, "paused", q.paused.map(JsValue::from).unwrap_or(JsValue::NULL));
            js::set(&queues, &q.name, one);
        }
        js::set(&o, "queues", queues);
        o.into()
    }
}

/// The state of every queue, read from IndexedDB (so the same in every
/// context).
/// Whether the browser says it is online (`navigator.onLine`; true where
/// it cannot say).
pub fn online() -> bool {
    let online = js::get(&js_sys::global(), "navigator").and_then(|n| js::get(&n, "onLine"));
    online.ok().and_then(|v| v.as_bool()).unwrap_or(true)
}

pub async fn status() -> JsResult<Status> {
    let mut queues = Vec::new();
    for queue in Queue::declared() {
        let (queued, paused) = (queue.count().await?, state::paused(queue.name()).await?);
        queues.push(QueueStatus { name: queue.name().to_owned(), queued, paused });
    }
    Ok(Status {
        queues,
        dead_letters: crate::queue::dead_letter_count().await?,
        has_credentials: !state::credentials().await?.is_empty(),
    })
}

/// "Retry now": asks the worker that controls this page to replay (the
/// message `{type: "replay"}`), or, with no worker, replays every queue
/// here, once, sending entries that wait out a backoff at once.
pub async fn retry_now() -> JsResult<crate::replay::Round> {
    replay_here_or_in_worker(true).await
}

/// [`retry_now`] in the background (a failure is logged: the caller's
/// entry is stored already, and the engine retries it). Calls made before
/// the last one asked for has begun are one: a loop of enqueues asks for
/// one round, not one each (a round reads whatever is queued when it
/// starts, and what arrives while it runs).
pub fn retry_now_soon() {
    if RETRY_ASKED.with(|asked| asked.replace(true)) {
        return;
    }
    in_background("bgsync: replaying failed", async {
        RETRY_ASKED.with(|asked| asked.set(false));
        retry_now().await
    });
}

thread_local! {
    // A retry asked for by `retry_now_soon` that has not begun yet.
    static RETRY_ASKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Asks the worker that controls this page to replay (the message
/// `{type: "replay", expedite}`), or replays every queue here, once, as
/// the worker would ([`crate::replay::deliver`]; in bgsync's fallback
/// module, [`crate::fallback`], without the feature `replay-here`): if that delivered
/// anything, the declared feeds are pulled too, so that what was sent
/// shows as the server has it (without the pull, a post delivered from a
/// page without a worker left the queue and no list had it any more).
async fn replay_here_or_in_worker(expedite: bool) -> JsResult<crate::replay::Round> {
    let message = js_sys::Object::new();
    js::set(&message, "type", "replay");
    js::set(&message, "expedite", expedite);
    if post_to_worker(&message) {
        return Ok(crate::replay::Round::default());
    }
    #[cfg(feature = "replay-here")]
    return crate::replay::deliver(0, expedite).await;
    #[cfg(not(feature = "replay-here"))]
    return crate::fallback::deliver(expedite).await;
}

/// Sets the credentials sent with every queued request (replacing an
/// entry's own header of the same name), and the user they are for, lifts
/// every pause, tells the open pages, and retries at once. An empty list
/// and no user forget them.
///
/// `user` names who is signed in (their account id; `None` for an app
/// without users). When it changes, what the previous user queued and left
/// unsent waits for them ([`state::set_credentials`]): it is sent only
/// once they sign in again, with their credentials. Then it waits for a
/// round in progress anywhere to end (it is sending with the credentials
/// it began with), so no entry of the previous user is on its way when it
/// returns; new credentials for the same user (or for no user) never wait.
pub async fn set_credentials(headers: &[(String, String)], user: Option<&str>) -> JsResult<()> {
    let mut was_paused = Vec::new();
    let queues = Queue::declared();
    for queue in &queues {
        if state::paused(queue.name()).await?.is_some() {
            was_paused.push(queue.name());
        }
    }
    let names: Vec<&str> = queues.iter().map(Queue::name).collect();
    state::set_credentials(headers, user, &names).await?;
    for name in was_paused {
        events::tell(name, events::EventKind::Resumed, None);
    }
    // Out before the replay this starts (maybe in the worker) reports.
    events::flush();
    retry_now().await.map(|_| ())
}

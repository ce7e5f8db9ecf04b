//! The service-worker side: how requests are answered while offline, and
//! cache housekeeping.
//!
//! `respondWith` must be called synchronously, so which requests reach this
//! module is decided in `sw.js` (same-origin GETs outside `/api/`); how
//! they are answered is decided here.

use crate::js::{self, JsResult};
use crate::queue::Queue;
use bgsync_core::wire::IDEMPOTENCY_KEY;
use bgsync_core::{Entry, EntryKey};
use js_sys::{Array, Object};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Cache, CacheStorage, Headers, Request, RequestInit, Response, ResponseInit};

/// Answers a same-origin GET for the app shell: cache-first from
/// `shell_cache`, and the shell's page for any navigation while offline.
pub async fn respond(request: Request, shell_cache: &str) -> JsResult<Response> {
    let caches: CacheStorage = js::global("caches")?;
    let cache: Cache = js::await_promise(caches.open(shell_cache)).await?.dyn_into()?;
    if let Some(response) = cached(&cache, &request).await? {
        return Ok(response);
    }
    match fetch(&request).await {
        Ok(response) => Ok(response),
        Err(error) => {
            // Offline navigation to any page of the app: serve the shell.
            if request.mode() == web_sys::RequestMode::Navigate {
                let shell: JsValue = js::await_promise(cache.match_with_str("/")).await?;
                if let Ok(response) = shell.dyn_into::<Response>() {
                    return Ok(response);
                }
            }
            Err(error)
        }
    }
}

async fn cached(cache: &Cache, request: &Request) -> JsResult<Option<Response>> {
    let hit = js::await_promise(cache.match_with_request(request)).await?;
    Ok(hit.dyn_into::<Response>().ok())
}

async fn fetch(request: &Request) -> JsResult<Response> {
    js::await_promise(js::global_fetch(request)).await?.dyn_into()
}

/// At activation, so that the first round (maybe days later, in a worker
/// just woken for it) reads only what it must: learns the server's
/// advertisement (kept in IndexedDB) and makes sure this origin's client id
/// is stored. Made in a first round, the id was stored only after the
/// round's read of the queue and its decoding (21–36 ms into a round of
/// 1,000 entries, seen in Chromium), and the round waited for it. Best
/// effort: a round does either itself.
pub async fn prepare_for_rounds() {
    let _ = js::join(crate::transport::learn_advertisement(), crate::state::client_id()).await;
}

/// At activation: deletes the caches of earlier versions of the app shell
/// (those named `prefix…` other than `keep`).
pub async fn remove_old_caches(prefix: &str, keep: &str) -> JsResult<()> {
    let caches: CacheStorage = js::global("caches")?;
    let names = Array::from(&js::await_promise(caches.keys()).await?);
    for name in names.iter().filter_map(|n| n.as_string()) {
        if name.starts_with(prefix) && name != keep {
            js::await_promise(caches.delete(&name)).await?;
        }
    }
    Ok(())
}

/// Answers a page's message `{type: "pull", feed, declaration, port}`:
/// when the page declares the feed as this worker does, acknowledges it on
/// `port` at once (`{accepted: true}`), pulls the feed, and answers there
/// with `{count}` or `{error}`; else answers `{accepted: false}` (a page of
/// another version of the app, whose feed is not this worker's), and the
/// page pulls in bgsync's fallback module. A page module has no pull of its
/// own. Returns whether `message` was one.
pub async fn pull_for_page(message: &JsValue) -> JsResult<bool> {
    if js::get(message, "type")?.as_string().as_deref() != Some("pull") {
        return Ok(false);
    }
    let port: web_sys::MessagePort = js::get(message, "port")?.dyn_into()?;
    let name = js::get(message, "feed")?.as_string().unwrap_or_default();
    let theirs = crate::config::from_js(&js::get(message, "declaration")?)
        .ok()
        .and_then(|config| config.feeds.into_iter().find(|feed| feed.name == name));
    let ours = crate::config::feed(&name).ok();
    let same = matches!((&theirs, &ours), (Some(theirs), Some(ours)) if *theirs == **ours);
    let reply = Object::new();
    js::set(&reply, "accepted", same);
    port.post_message(&reply)?;
    let Some(feed) = ours.filter(|_| same) else { return Ok(true) };
    let answer = Object::new();
    match crate::pull::pull(&feed).await {
        Ok(count) => js::set(&answer, "count", count as u32),
        Err(error) => js::set(&answer, "error", js::error(error)),
    }
    port.post_message(&answer)?;
    Ok(true)
}

/// Answers a page's message `{type: "status"}` with the status
/// ([`crate::client::status`]), for the caller to post back.
pub async fn answer(message: &JsValue) -> JsResult<Option<JsValue>> {
    match js::get(message, "type")?.as_string().as_deref() {
        Some("status") => {
            let status = crate::client::status().await?.to_js();
            js::set(&status, "type", "status");
            js::set(&status, "runtime", concat!("bgsync-web ", env!("CARGO_PKG_VERSION")));
            if let Some(ms) = STARTED_AT_MS.with(std::cell::Cell::get) {
                js::set(&status, "coldStartMs", ms);
            }
            // Set by the bootstrap (bgsync-sw.js): when the bootstrap ran,
            // the wasm was read and compiled, in ms since the worker's creation.
            if let Ok(steps) = js::get(&js_sys::global(), "BGSYNC_START") {
                if steps.is_object() {
                    js::set(&status, "startSteps", steps);
                }
            }
            let phases = |list: &[(&'static str, f64)]| {
                let phases = Array::new();
                for (phase, ms) in list {
                    phases.push(&Array::of2(&(*phase).into(), &(*ms).into()));
                }
                phases
            };
            let rounds = Array::new();
            for round in crate::replay::last_rounds() {
                let o = js_sys::Object::new();
                js::set(&o, "queue", round.queue.as_str());
                js::set(&o, "at", round.at_ms);
                js::set(&o, "delivered", round.delivered as u32);
                js::set(&o, "pages", round.pages as u32);
                js::set(&o, "phases", phases(&round.phases));
                rounds.push(&o);
            }
            js::set(&status, "rounds", rounds);
            // The module's linear memory (it grows, never shrinks: its peak).
            let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
            js::set(&status, "wasmMemoryBytes", memory.buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length());
            Ok(Some(status))
        }
        _ => Ok(None),
    }
}

thread_local! {
    static STARTED_AT_MS: std::cell::Cell<Option<f64>> = const { std::cell::Cell::new(None) };
}

/// Records the first Rust line this worker ran (call it from the module's
/// `#[wasm_bindgen(start)]` function): `performance.now()` then, which in a
/// worker counts from the worker's creation, is its cold start, reported
/// as `coldStartMs` in the status answer.
pub fn mark_started() {
    let now = js::performance_now();
    STARTED_AT_MS.with(|s| {
        if s.get().is_none() {
            s.set(now);
        }
    });
}

/// Auto-capture, for a `fetch` event of a request that changes something
/// (by default, non-GET requests under `/api/`; `sw.js` decides which).
///
/// The request is sent with an `Idempotency-Key` (the page's own, else a
/// new one). The server's answer, whatever its status, goes back to the
/// page untouched: a 4xx or 5xx is the page's to handle, never silently
/// "queued". Only when the network fails is the request (method, URL,
/// headers, body) stored in `queue` under that same key, a sync
/// registered, and the page answered `202 Accepted` with
/// `{"queued": true, "queue", "key", "detail"}`; if it cannot be stored
/// either (a binary body, the site's storage full), `503` with a problem
/// titled "Not queued" that says why. A request sent again with
/// the same key replaces its queued copy, so nothing is queued twice, and
/// the server applies the key once even if the first attempt did arrive.
pub async fn capture(request: Request, queue: &Queue) -> JsResult<Response> {
    let key = match request.headers().get(IDEMPOTENCY_KEY)?.map(EntryKey::try_from) {
        Some(Ok(key)) => key,
        // A key the server will refuse: it says so better than we could.
        Some(Err(_)) => return fetch(&request).await,
        None => EntryKey::try_from(crate::client::new_key()?).map_err(|_| "bgsync: a new key was refused")?,
    };
    let bytes = js_sys::Uint8Array::new(&js::await_promise(request.array_buffer()?).await?).to_vec();
    let mut sent = js::header_list(&request.headers())?;
    sent.retain(|(name, _)| !name.eq_ignore_ascii_case(IDEMPOTENCY_KEY));
    let headers = Headers::new()?;
    for (name, value) in &sent {
        headers.append(name, value)?;
    }
    headers.set(IDEMPOTENCY_KEY, key.as_str())?;
    headers.set(bgsync_core::wire::CLIENT_HEADER, &crate::state::client_id().await?)?;
    // What is queued keeps no credentials: they are the app's to set
    // (setCredentials), added at replay, never stored with the entry.
    let mut kept = sent;
    // (Nor any header only the browser may set, which `fetch` would leave
    // out at replay and `enqueue` refuses.)
    kept.retain(|(name, _)| !crate::client::is_credential(name) && !crate::client::is_browsers_header(name));
    let init = RequestInit::new();
    init.set_method(&request.method());
    init.set_headers(&headers);
    init.set_credentials(request.credentials());
    if !bytes.is_empty() {
        init.set_body(&js_sys::Uint8Array::from(bytes.as_slice()).into());
    }
    // A server that takes the request and never answers must not leave
    // the page waiting: past the queue's deadline it is queued, as when
    // the network fails (its Idempotency-Key makes a late success and the
    // replay one).
    let deadline_ms = queue.timeout_ms();
    let error = match js::fetch(&request.url(), &init, deadline_ms, js::Until::Answered).await {
        Ok(response) => return Ok(response),
        Err(error) => error,
    };
    let Ok(body) = String::from_utf8(bytes) else {
        // Queued entries hold text; a binary body is not guessed at.
        return problem(503, "The server could not be reached, and a request with a binary body cannot be queued.");
    };
    let url = web_sys::Url::new(&request.url())?;
    let same_origin = url.origin() == js::origin()?;
    let target = if same_origin { format!("{}{}", url.pathname(), url.search()) } else { request.url() };
    // A request the browser built: its method, URL and headers need none
    // of `enqueue`'s checks (the key was checked above).
    let mut entry = Entry::new(key, target, body, crate::client::enqueue_time());
    entry.method = request.method().to_ascii_uppercase();
    entry.headers = kept;
    let crate::client::Queued { entry, registered } = match crate::client::store(queue, entry).await {
        Ok(queued) => queued,
        // Not stored (the site's storage full, say): the page must learn
        // that nothing will send it later.
        Err(error) => {
            return problem(
                503,
                &format!(
                    "The server could not be reached, and the request could not be queued: {}.",
                    js::describe(&error)
                ),
            )
        }
    };
    if !registered {
        // No Background Sync here: the pages' fallback replays, and a round
        // running now takes it.
        crate::client::make_sure_it_is_taken_soon();
    }
    let o = Object::new();
    js::set(&o, "queued", true);
    js::set(&o, "queue", queue.name());
    js::set(&o, "key", entry.key.as_str());
    js::set(
        &o,
        "detail",
        format!(
            "The server could not be reached ({}); the request is queued and will be sent when it can be.",
            js::fetch_failure(&error, deadline_ms)
        ),
    );
    respond_json(202, &String::from(js_sys::JSON::stringify(&o)?), "application/json")
}

fn problem(status: u16, detail: &str) -> JsResult<Response> {
    let o = Object::new();
    js::set(&o, "type", "about:blank");
    js::set(&o, "title", "Not queued");
    js::set(&o, "status", status);
    js::set(&o, "detail", detail);
    respond_json(status, &String::from(js_sys::JSON::stringify(&o)?), "application/problem+json")
}

fn respond_json(status: u16, body: &str, content_type: &str) -> JsResult<Response> {
    let headers = Headers::new()?;
    headers.set("Content-Type", content_type)?;
    let init = ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers);
    Response::new_with_opt_str_and_init(Some(body), &init)
}

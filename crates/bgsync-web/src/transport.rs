//! Delivery over `fetch`: one entry per request, or many in one batch
//! request when the server advertises a batch endpoint.

use crate::js;
use crate::state::with_overrides;
use bgsync_core::wire::{
    BatchEndpoint, BatchResult, BATCH_SUCCEEDED_HEADER, CLIENT_HEADER, IDEMPOTENCY_KEY, REPLAY_HEADER, WELL_KNOWN_PATH,
};
use bgsync_core::{AttemptResult, Entry, Response as Answer, Transmit, TransmitResult};
use js_sys::Object;
use wasm_bindgen::JsValue;
use web_sys::{Headers, RequestInit, Response};

/// How much of a refusal's body is kept for the dead letter.
const KEPT_BODY_BYTES: usize = 2048;

/// Sends the entry with its `Idempotency-Key` and reports what happened.
/// `credentials` are added to its headers (replacing its own of the same
/// name). Never fails: every failure is an [`AttemptResult`].
/// A request that has not been answered, its answer read, within
/// `deadline_ms` failed on the network.
pub async fn send(entry: &Entry, credentials: &Credentials, deadline_ms: u32) -> AttemptResult {
    match try_send(entry, credentials, deadline_ms).await {
        Ok(Some(answer)) => AttemptResult::Response(answer),
        Ok(None) => AttemptResult::Redirected,
        Err(error) => AttemptResult::NetworkError(js::fetch_failure(&error, deadline_ms)),
    }
}

/// `fetch` of `url` with `init` within `deadline_ms`, redirects not followed: a redirect
/// (`None`) is not the endpoint's answer. Followed, a `POST` answered 302
/// (an expired session sent to the sign-in page, a captive portal) would
/// end as a `GET` of that page, and its 200 would pass for the entry's.
async fn fetch_unredirected(url: &str, init: &RequestInit, deadline_ms: u32) -> js::JsResult<Option<Response>> {
    js::set(init, "redirect", "manual");
    let response = js::fetch(url, init, deadline_ms, js::Until::Read).await?;
    Ok((js::get(&response, "type")?.as_string().as_deref() != Some("opaqueredirect")).then_some(response))
}

async fn try_send(entry: &Entry, credentials: &Credentials, deadline_ms: u32) -> js::JsResult<Option<Answer>> {
    let headers = Headers::new()?;
    headers.set("Content-Type", "application/json")?;
    headers.set("Accept", "application/json")?;
    let same_origin = js::is_same_origin(&entry.url);
    for (name, value) in &credentials.for_entry(entry, same_origin) {
        headers.set(name, value)?;
    }
    headers.set(IDEMPOTENCY_KEY, entry.key.as_str())?;
    if same_origin {
        mark_replay(&headers, credentials)?;
    }
    let init = RequestInit::new();
    init.set_method(&entry.method);
    init.set_headers(&headers);
    if !matches!(entry.method.as_str(), "GET" | "HEAD") {
        init.set_body(&entry.body.as_str().into());
    }
    let Some(response) = fetch_unredirected(&entry.url, &init, deadline_ms).await? else { return Ok(None) };
    let retry_after = response.headers().get("Retry-After").ok().flatten();
    // Read the body to the end (so the connection can be reused) and keep
    // the start of a refusal for the user.
    let body = js::response_text(&response).await.unwrap_or_default();
    Ok(Some(Answer { status: response.status(), retry_after, body: kept_body(response.status(), body) }))
}

/// Marks a request to this origin as bgsync's own replay
/// ([`REPLAY_HEADER`]), which the worker's auto-capture lets through, and
/// names the client ([`CLIENT_HEADER`]) that the server scopes keys by.
/// Only for this origin: custom headers elsewhere would cost a CORS
/// preflight, and the client id is nobody else's business.
fn mark_replay(headers: &Headers, credentials: &Credentials) -> js::JsResult<()> {
    headers.set(REPLAY_HEADER, "1")?;
    headers.set(CLIENT_HEADER, &credentials.client_id)
}

/// What a round adds to the requests it sends: the app's credentials
/// ([`crate::state::set_credentials`]), for this origin only, and the
/// browser's client id.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub headers: Vec<(String, String)>,
    pub client_id: String,
}

impl Credentials {
    /// The headers to send with `entry`: its own, with the credentials in
    /// place of those of the same name when it goes to this origin. A
    /// token never leaves for a third party through bgsync.
    fn for_entry(&self, entry: &Entry, same_origin: bool) -> Vec<(String, String)> {
        if same_origin {
            with_overrides(&entry.headers, &self.headers)
        } else {
            entry.headers.clone()
        }
    }
}

/// What is kept of an answer's body: nothing for a success; for a refusal
/// the problem's `detail` (RFC 9457: the sentence written for people) or
/// the start of the body, for the dead letter.
fn kept_body(status: u16, body: String) -> String {
    if (200..300).contains(&status) {
        return String::new();
    }
    let detail = js_sys::JSON::parse(&body)
        .ok()
        .and_then(|v| ["detail", "title"].iter().find_map(|field| js::get(&v, field).ok()?.as_string()));
    let mut kept = detail.unwrap_or(body);
    if kept.len() > KEPT_BODY_BYTES {
        let mut end = KEPT_BODY_BYTES;
        while !kept.is_char_boundary(end) {
            end -= 1;
        }
        kept.truncate(end);
    }
    kept
}

/// What the server advertised and until when it may be used without
/// asking again (ms since the epoch).
#[derive(Clone, Debug)]
struct Learnt {
    endpoint: Option<BatchEndpoint>,
    fresh_until_ms: f64,
}

thread_local! {
    // What the server advertised, once learnt or read in this context.
    static ADVERTISED: std::cell::RefCell<Option<Learnt>> = const { std::cell::RefCell::new(None) };
}

/// Where the advertisement is kept in the `meta` store, so that a fresh
/// worker (a browser start, a wake-up for a sync event) sends its first
/// batch without asking first.
const STORED: &str = "advertisement";

/// Asks the server for its batch endpoint (its `/.well-known/bgsync`
/// document), when what [`known_endpoint`] had is out of date or missing;
/// what was kept, stale, when the server cannot be reached. `None`: the
/// server offers no batch endpoint (or has never been reached), and entries
/// go one by one.
pub async fn ask_endpoint() -> Option<BatchEndpoint> {
    let known = ADVERTISED.with(|a| a.borrow().clone());
    match learn().await {
        Ok(learnt) => learnt.endpoint,
        // Stale is better than nothing while the server cannot be reached.
        Err(_) => known.and_then(|l| l.endpoint),
    }
}

/// The batch endpoint as known without asking the server: `Some` while
/// what it advertised (here or in IndexedDB) is fresh, `None` when it must
/// be asked ([`ask_endpoint`]). Kept for the server's `Cache-Control:
/// max-age`, and forgotten when the batch URL answered as if it were gone
/// ([`forget_advertisement`]).
pub async fn known_endpoint() -> Option<Option<BatchEndpoint>> {
    let mut known = ADVERTISED.with(|a| a.borrow().clone());
    if known.is_none() {
        known = read_stored().await.ok().flatten();
        ADVERTISED.with(|a| *a.borrow_mut() = known.clone());
    }
    known.filter(|l| l.fresh_until_ms > js_sys::Date::now()).map(|l| l.endpoint)
}

/// Asks the server for its advertisement now, and keeps it (in this
/// context and in IndexedDB). The worker calls it when it activates, so
/// that even its first drain costs one round trip.
pub async fn learn_advertisement() -> js::JsResult<()> {
    learn().await.map(|_| ())
}

/// (Boxed: a round and the worker's activation both learn, and each would
/// otherwise carry a copy of this state machine.)
fn learn() -> js::Boxed<'static, js::JsResult<Learnt>> {
    js::boxed(learn_now())
}

async fn learn_now() -> js::JsResult<Learnt> {
    let learnt = fetch_advertisement().await?;
    ADVERTISED.with(|a| *a.borrow_mut() = Some(learnt.clone()));
    // Not kept (IndexedDB failing): the next context asks again.
    let _ = store(&learnt).await;
    Ok(learnt)
}

/// The batch URL answered 404, 405 or 410: the advertisement is out of date
/// (the server was redeployed without it, or moved it). Forgotten here and
/// in IndexedDB, so the next round asks again.
pub async fn forget_advertisement() {
    ADVERTISED.with(|a| *a.borrow_mut() = None);
    if let Ok(db) = crate::db::database().await {
        if let Ok(tx) = db.transaction_with_str_and_mode(crate::db::META, web_sys::IdbTransactionMode::Readwrite) {
            if let Ok(meta) = tx.object_store(crate::db::META) {
                let _ = meta.delete(&STORED.into());
            }
            let _ = js::committed(&tx).await;
        }
    }
}

/// Whether a batch request's answer says the batch URL is not (or no
/// longer) a batch endpoint.
pub fn endpoint_gone(result: &TransmitResult) -> bool {
    matches!(result, TransmitResult::BatchFailed(AttemptResult::Response(r)) if matches!(r.status, 404 | 405 | 410))
}

/// Whether the server answers at all (a small request past every cache):
/// after a batch failed on the network, this tells a batch that breaks the
/// request (split it) from a server that cannot be reached (wait). Within
/// the queue's deadline, as the batch was.
pub async fn reachable(deadline_ms: u32) -> bool {
    let init = RequestInit::new();
    js::set(&init, "cache", "no-store");
    js::fetch(WELL_KNOWN_PATH, &init, deadline_ms, js::Until::Read).await.is_ok()
}

/// The server's advertisement as this browser keeps it, for the
/// inspector: `{batch: {url, max_entries, max_bytes, prefix} | null,
/// freshUntil}` (the batch as the server's document names it), or `null`
/// when nothing was learnt yet. Read as stored, not parsed: a page module
/// without the replay has no use for the rest of this module.
pub async fn advertisement() -> js::JsResult<wasm_bindgen::JsValue> {
    let record = read_record().await?;
    if !record.is_object() {
        return Ok(wasm_bindgen::JsValue::NULL);
    }
    let kept = Object::new();
    js::set(&kept, "freshUntil", js::get(&record, "freshUntil")?);
    js::set(&kept, "batch", js::get(&record, "batch")?);
    Ok(kept.into())
}

/// What is kept of an advertisement: `{batch, freshUntil}`, the batch
/// endpoint with the names of the server's document.
fn to_js(learnt: &Learnt) -> Object {
    let record = Object::new();
    js::set(&record, "freshUntil", learnt.fresh_until_ms);
    let batch = match &learnt.endpoint {
        Some(e) => {
            let o = Object::new();
            js::set(&o, "url", e.url.as_str());
            js::set(&o, "max_entries", e.max_entries as f64);
            js::set(&o, "max_bytes", e.max_bytes as f64);
            js::set(&o, "prefix", e.prefix.as_str());
            o.into()
        }
        None => wasm_bindgen::JsValue::NULL,
    };
    js::set(&record, "batch", batch);
    record
}

/// The advertisement's record in the `meta` store (undefined when none).
async fn read_record() -> js::JsResult<wasm_bindgen::JsValue> {
    let db = crate::db::database().await?;
    let tx = db.transaction_with_str(crate::db::META)?;
    js::request(&tx.object_store(crate::db::META)?.get(&STORED.into())?).await
}

async fn read_stored() -> js::JsResult<Option<Learnt>> {
    let record = read_record().await?;
    if !record.is_object() {
        return Ok(None);
    }
    let fresh_until_ms = js::get(&record, "freshUntil")?.as_f64().unwrap_or(0.0);
    Ok(Some(Learnt { endpoint: endpoint_of(&js::get(&record, "batch")?), fresh_until_ms }))
}

async fn store(learnt: &Learnt) -> js::JsResult<()> {
    let db = crate::db::database().await?;
    let tx = db.transaction_with_str_and_mode(crate::db::META, web_sys::IdbTransactionMode::Readwrite)?;
    let record = to_js(learnt);
    js::set(&record, "key", STORED);
    tx.object_store(crate::db::META)?.put(&record)?;
    js::committed(&tx).await
}

async fn fetch_advertisement() -> js::JsResult<Learnt> {
    // Past the browser's HTTP cache: freshness is kept here, and asking
    // means the kept answer is out of date.
    let init = RequestInit::new();
    js::set(&init, "cache", "no-cache");
    let response = js::fetch(WELL_KNOWN_PATH, &init, js::DEADLINE_MS, js::Until::Read).await?;
    let max_age_s = response.headers().get("Cache-Control").ok().flatten().as_deref().and_then(max_age).unwrap_or(0);
    let fresh_until_ms = js_sys::Date::now() + max_age_s as f64 * 1000.0;
    // (Bytes compared, not `str::contains`: its substring searcher is 4 KB
    // of the worker's module.)
    let json = response
        .headers()
        .get("Content-Type")
        .ok()
        .flatten()
        .is_some_and(|t| t.as_bytes().windows(4).any(|w| w.eq_ignore_ascii_case(b"json")));
    if !response.ok() || !json {
        // No document: the server offers nothing more (a definite answer).
        // So is a page of another type (a static host answering every
        // path with the app's HTML): entries go one by one, and the round
        // does not fail on it.
        return Ok(Learnt { endpoint: None, fresh_until_ms });
    }
    let document = js::await_promise(response.json()?).await?;
    Ok(Learnt { endpoint: endpoint_of(&js::get(&document, "batch")?), fresh_until_ms })
}

/// The `max-age` of a `Cache-Control` value, in seconds (`no-store` and
/// `no-cache` mean 0).
fn max_age(value: &str) -> Option<u64> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(0);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            age = seconds.trim_matches('"').parse().ok();
        }
    }
    age
}

fn endpoint_of(batch: &wasm_bindgen::JsValue) -> Option<BatchEndpoint> {
    if !batch.is_object() {
        return None;
    }
    let number = |name| js::get(batch, name).ok()?.as_f64().map(|n| n as usize);
    Some(BatchEndpoint {
        url: js::get(batch, "url").ok()?.as_string()?,
        max_entries: number("max_entries")?,
        max_bytes: number("max_bytes")?,
        prefix: js::get(batch, "prefix").ok().and_then(|p| p.as_string()).unwrap_or_default(),
    })
}

/// Sends the entries of `transmit` as one batch request.
/// `credentials` go on the batch request and on each of its entries.
pub async fn send_batch(
    endpoint: &BatchEndpoint,
    transmit: &Transmit,
    ordered: bool,
    credentials: &Credentials,
    deadline_ms: u32,
) -> TransmitResult {
    match try_send_batch(endpoint, transmit, ordered, credentials, deadline_ms).await {
        Ok(result) => result,
        Err(error) => TransmitResult::BatchFailed(AttemptResult::NetworkError(js::fetch_failure(&error, deadline_ms))),
    }
}

async fn try_send_batch(
    endpoint: &BatchEndpoint,
    transmit: &Transmit,
    ordered: bool,
    credentials: &Credentials,
    deadline_ms: u32,
) -> js::JsResult<TransmitResult> {
    // Entries run on the batch endpoint's server: only this origin's
    // endpoint gets this origin's credentials.
    let same_origin = js::is_same_origin(&endpoint.url);
    let body =
        crate::round_json::batch_body(&transmit.entries, ordered, |entry| credentials.for_entry(entry, same_origin));
    let headers = Headers::new()?;
    headers.set("Content-Type", "application/json")?;
    headers.set("Accept", "application/json")?;
    if same_origin {
        for (name, value) in &credentials.headers {
            headers.set(name, value)?;
        }
        mark_replay(&headers, credentials)?;
        // Nothing of a success is kept but its status: the server may leave
        // its body out. (Not across origins: a header the server's CORS may
        // not allow would fail the preflight.)
        headers.set("Prefer", bgsync_core::wire::RETURN_MINIMAL)?;
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    // As bytes (one copy out of the module's memory): as a string, the
    // text was decoded from UTF-8 into JavaScript and encoded again by
    // `fetch`, about 300 KB each way for a thousand entries.
    init.set_body(&js_sys::Uint8Array::from(body.as_bytes()).into());
    let Some(response) = fetch_unredirected(&endpoint.url, &init, deadline_ms).await? else {
        return Ok(TransmitResult::BatchFailed(AttemptResult::Redirected));
    };
    if !response.ok() {
        let retry_after = response.headers().get("Retry-After").ok().flatten();
        let _ = js::await_promise(response.text()?).await;
        return Ok(TransmitResult::BatchFailed(AttemptResult::Response(Answer {
            status: response.status(),
            retry_after,
            body: String::new(),
        })));
    }
    // Every entry succeeded, the server says before its body: nothing in
    // the body is needed (a success's answer is not kept), and the round
    // goes on without waiting for it. It is read all the same, so that the
    // connection is free for the next request.
    let succeeded = response.headers().get(BATCH_SUCCEEDED_HEADER).ok().flatten();
    if succeeded.and_then(|n| n.trim().parse::<usize>().ok()) == Some(transmit.entries.len()) {
        if let Ok(rest) = response.array_buffer() {
            wasm_bindgen_futures::spawn_local(async move {
                let _ = js::await_promise(rest).await;
            });
        }
        let results = transmit.entries.iter().map(|entry| BatchResult {
            key: entry.key.as_str().into(),
            // (A 2xx: the header does not say which.)
            status: Some(200),
            retry_after: None,
            body: String::new(),
        });
        return Ok(TransmitResult::Batch(results.collect()));
    }
    let text = js::response_text(&response).await?;
    let Some(results) = crate::round_json::batch_results(&text) else {
        return Err(JsValue::from_str("the batch endpoint's answer is not JSON"));
    };
    let results = results
        .into_iter()
        .map(|mut result| {
            result.body = result.status.map(|s| kept_body(s, std::mem::take(&mut result.body))).unwrap_or_default();
            result
        })
        .collect();
    Ok(TransmitResult::Batch(results))
}

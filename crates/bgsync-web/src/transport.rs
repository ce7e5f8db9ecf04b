//! Delivery over `fetch`: one entry per request, or many in one batch
//! request when the server advertises a batch endpoint.

use crate::js;
use crate::state::with_overrides;
use bgsync_core::wire::{BatchEndpoint, BatchResult, CLIENT_HEADER, IDEMPOTENCY_KEY, REPLAY_HEADER, WELL_KNOWN_PATH};
use bgsync_core::{AttemptResult, Entry, Response as Answer, Transmit, TransmitResult};
use js_sys::{Array, Object};
use wasm_bindgen::JsCast;
use web_sys::{Headers, Request, RequestInit, Response};

/// How much of a refusal's body is kept for the dead letter.
const KEPT_BODY_BYTES: usize = 2048;

/// Sends the entry with its `Idempotency-Key` and reports what happened.
/// `credentials` are added to its headers (replacing its own of the same
/// name). Never fails: every failure is an [`AttemptResult`].
pub async fn send(entry: &Entry, credentials: &Credentials) -> AttemptResult {
    match try_send(entry, credentials).await {
        Ok(answer) => AttemptResult::Response(answer),
        Err(error) => AttemptResult::NetworkError(js::describe(&error)),
    }
}

async fn try_send(entry: &Entry, credentials: &Credentials) -> js::JsResult<Answer> {
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
    let request = Request::new_with_str_and_init(&entry.url, &init)?;
    let response: Response = js::await_promise(js::global_fetch(&request)).await?.dyn_into()?;
    let retry_after = response.headers().get("Retry-After").ok().flatten();
    // Read the body to the end (so the connection can be reused) and keep
    // the start of a refusal for the user.
    let body = match response.text() {
        Ok(text) => js::await_promise(text).await.ok().and_then(|t| t.as_string()).unwrap_or_default(),
        Err(_) => String::new(),
    };
    Ok(Answer { status: response.status(), retry_after, body: kept_body(response.status(), body) })
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

thread_local! {
    // What the server advertised, once learnt in this context.
    static ADVERTISED: std::cell::RefCell<Option<Option<BatchEndpoint>>> = const { std::cell::RefCell::new(None) };
}

/// The server's batch endpoint, from its `/.well-known/bgsync` document.
/// Learnt once per context; while the server cannot be reached it is
/// unknown and entries go one by one.
pub async fn batch_endpoint() -> Option<BatchEndpoint> {
    if let Some(known) = ADVERTISED.with(|a| a.borrow().clone()) {
        return known;
    }
    let found = match fetch_advertisement().await {
        Ok(found) => found,
        Err(_) => return None,
    };
    ADVERTISED.with(|a| *a.borrow_mut() = Some(found.clone()));
    found
}

async fn fetch_advertisement() -> js::JsResult<Option<BatchEndpoint>> {
    let request = Request::new_with_str(WELL_KNOWN_PATH)?;
    let response: Response = js::await_promise(js::global_fetch(&request)).await?.dyn_into()?;
    if !response.ok() {
        // No document: the server offers nothing more (a definite answer).
        return Ok(None);
    }
    let document = js::await_promise(response.json()?).await?;
    let batch = js::get(&document, "batch")?;
    if !batch.is_object() {
        return Ok(None);
    }
    let number = |name| js::get(&batch, name).ok()?.as_f64().map(|n| n as usize);
    Ok((|| {
        Some(BatchEndpoint {
            url: js::get(&batch, "url").ok()?.as_string()?,
            max_entries: number("max_entries")?,
            max_bytes: number("max_bytes")?,
            prefix: js::get(&batch, "prefix").ok().and_then(|p| p.as_string()).unwrap_or_default(),
        })
    })())
}

/// Sends the entries of `transmit` as one batch request.
/// `credentials` go on the batch request and on each of its entries.
pub async fn send_batch(
    endpoint: &BatchEndpoint,
    transmit: &Transmit,
    ordered: bool,
    credentials: &Credentials,
) -> TransmitResult {
    match try_send_batch(endpoint, transmit, ordered, credentials).await {
        Ok(result) => result,
        Err(error) => TransmitResult::BatchFailed(AttemptResult::NetworkError(js::describe(&error))),
    }
}

async fn try_send_batch(
    endpoint: &BatchEndpoint,
    transmit: &Transmit,
    ordered: bool,
    credentials: &Credentials,
) -> js::JsResult<TransmitResult> {
    // Entries run on the batch endpoint's server: only this origin's
    // endpoint gets this origin's credentials.
    let same_origin = js::is_same_origin(&endpoint.url);
    let entries = Array::new();
    for entry in &transmit.entries {
        let o = Object::new();
        js::set(&o, "key", entry.key.as_str());
        js::set(&o, "method", entry.method.as_str());
        js::set(&o, "path", entry.url.as_str());
        js::set(&o, "headers", js::header_pairs(&credentials.for_entry(entry, same_origin)));
        js::set(&o, "body", entry.body.as_str());
        entries.push(&o);
    }
    let body = Object::new();
    js::set(&body, "ordered", ordered);
    js::set(&body, "entries", entries);
    let headers = Headers::new()?;
    headers.set("Content-Type", "application/json")?;
    headers.set("Accept", "application/json")?;
    if same_origin {
        for (name, value) in &credentials.headers {
            headers.set(name, value)?;
        }
        mark_replay(&headers, credentials)?;
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&js_sys::JSON::stringify(&body)?.into());
    let request = Request::new_with_str_and_init(&endpoint.url, &init)?;
    let response: Response = js::await_promise(js::global_fetch(&request)).await?.dyn_into()?;
    if !response.ok() {
        let retry_after = response.headers().get("Retry-After").ok().flatten();
        let _ = js::await_promise(response.text()?).await;
        return Ok(TransmitResult::BatchFailed(AttemptResult::Response(Answer {
            status: response.status(),
            retry_after,
            body: String::new(),
        })));
    }
    let document = js::await_promise(response.json()?).await?;
    let results = Array::from(&js::get(&document, "results")?)
        .iter()
        .filter_map(|item| {
            let text = |name| js::get(&item, name).ok()?.as_string();
            let status = js::get(&item, "status").ok()?.as_f64().map(|s| s as u16);
            let body = status.map(|s| kept_body(s, text("body").unwrap_or_default())).unwrap_or_default();
            Some(BatchResult { key: text("key")?, status, retry_after: text("retry_after"), body })
        })
        .collect();
    Ok(TransmitResult::Batch(results))
}

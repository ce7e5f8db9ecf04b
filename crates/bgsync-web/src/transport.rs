//! Delivery of one entry over `fetch`.

use crate::js;
use bgsync_core::wire::IDEMPOTENCY_KEY;
use bgsync_core::{AttemptResult, Entry, Response as Answer};
use wasm_bindgen::JsCast;
use web_sys::{Headers, Request, RequestInit, Response};

/// How much of a refusal's body is kept for the dead letter.
const KEPT_BODY_BYTES: usize = 2048;

/// Sends the entry with its `Idempotency-Key` and reports what happened.
/// Never fails: every failure is an [`AttemptResult`].
pub async fn send(entry: &Entry) -> AttemptResult {
    match try_send(entry).await {
        Ok(answer) => AttemptResult::Response(answer),
        Err(error) => AttemptResult::NetworkError(js::describe(&error)),
    }
}

async fn try_send(entry: &Entry) -> js::JsResult<Answer> {
    let headers = Headers::new()?;
    headers.set("Content-Type", "application/json")?;
    headers.set("Accept", "application/json")?;
    for (name, value) in &entry.headers {
        headers.set(name, value)?;
    }
    headers.set(IDEMPOTENCY_KEY, entry.key.as_str())?;
    let init = RequestInit::new();
    init.set_method(&entry.method);
    init.set_headers(&headers);
    init.set_body(&entry.body.as_str().into());
    let request = Request::new_with_str_and_init(&entry.url, &init)?;
    let response: Response = js::await_promise(js::global_fetch(&request)).await?.dyn_into()?;
    let retry_after = response.headers().get("Retry-After").ok().flatten();
    // Read the body to the end (so the connection can be reused) and keep
    // the start of a refusal for the user.
    let mut body = match response.text() {
        Ok(text) => js::await_promise(text).await.ok().and_then(|t| t.as_string()).unwrap_or_default(),
        Err(_) => String::new(),
    };
    if response.ok() {
        body.clear();
    } else if let Some(detail) = problem_detail(&body) {
        // RFC 9457: the `detail` is the sentence written for people.
        body = detail;
    }
    if body.len() > KEPT_BODY_BYTES {
        let mut end = KEPT_BODY_BYTES;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
    }
    Ok(Answer { status: response.status(), retry_after, body })
}

/// The `detail` (else `title`) of a problem+json body.
fn problem_detail(body: &str) -> Option<String> {
    let value = js_sys::JSON::parse(body).ok()?;
    ["detail", "title"].iter().find_map(|field| js::get(&value, field).ok()?.as_string())
}

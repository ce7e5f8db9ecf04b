//! Delivery of one entry over `fetch`.

use crate::js;
use bgsync_core::wire::IDEMPOTENCY_KEY;
use bgsync_core::{Attempt, Entry};
use wasm_bindgen::JsCast;
use web_sys::{Headers, Request, RequestInit, Response};

/// POSTs the entry's body to its URL with its `Idempotency-Key`, and
/// reports what happened. Never fails: every failure is an [`Attempt`].
pub async fn send(entry: &Entry) -> Attempt {
    match try_send(entry).await {
        Ok(status) => Attempt::Status(status),
        Err(error) => Attempt::NetworkError(js::describe(&error)),
    }
}

async fn try_send(entry: &Entry) -> js::JsResult<u16> {
    let headers = Headers::new()?;
    headers.set("Content-Type", "application/json")?;
    headers.set("Accept", "application/json")?;
    headers.set(IDEMPOTENCY_KEY, entry.key.as_str())?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&entry.body.as_str().into());
    let request = Request::new_with_str_and_init(&entry.url, &init)?;
    let response: Response = js::await_promise(js::global_fetch(&request))
        .await?
        .dyn_into()?;
    // Read the body to the end so the connection can be reused; its
    // content does not change the outcome.
    if let Ok(text) = response.text() {
        let _ = js::await_promise(text).await;
    }
    Ok(response.status())
}

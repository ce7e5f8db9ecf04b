//! `POST /api/sync/batch`: many queued requests in one round trip. Each
//! entry runs through the app's own router as if it had arrived alone, with
//! its own `Idempotency-Key`, so it gets exactly the validation, effects and
//! answer it would get alone, and one bad entry fails alone.
//!
//! The entries share one database transaction, committed once at the end:
//! one commit, one fsync, for the whole batch. An entry that is refused
//! leaves no write behind; an entry that meets a storage error (503), or a
//! commit that fails, rolls the whole batch back, and every entry that had
//! succeeded is answered 503 instead (nothing of the batch took effect).

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use bgsync_core::wire::{BatchRequest, BatchResponse, BatchResult, IDEMPOTENCY_KEY};
use bgsync_server::{json, Problem};
use tower::ServiceExt;

use super::posts::SharedTx;
use crate::db::Db;

/// The most entries one batch may carry.
pub const MAX_ENTRIES: usize = 1000;
/// The largest batch body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The route entries must not target (no batches of batches).
pub const PATH: &str = "/api/sync/batch";

/// The routes an entry may target.
#[derive(Clone)]
pub struct BatchState {
    pub api: Router,
    pub db: Db,
}

pub async fn handle(
    State(state): State<BatchState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<BatchResponse>, Problem> {
    let request: BatchRequest = json::parse(&headers, body)?;
    if request.entries.len() > MAX_ENTRIES {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "Batch too large",
            format!(
                "A batch may carry at most {MAX_ENTRIES} entries; this one has {}. Split it.",
                request.entries.len()
            ),
        ));
    }
    let shared = SharedTx::default();
    let tx = state.db.pool.begin().await.map_err(|e| Problem::storage(&e))?;
    *shared.0.lock().await = Some(tx);
    let mut results = Vec::with_capacity(request.entries.len());
    let mut stopped = false;
    for entry in request.entries {
        if stopped {
            results.push(BatchResult { key: entry.key, status: None, retry_after: None, body: String::new() });
            continue;
        }
        let result = run(&state.api, entry, &shared).await;
        if request.ordered && !result.status.is_some_and(|s| (200..300).contains(&s)) {
            stopped = true;
        }
        results.push(result);
    }
    let tx = shared.0.lock().await.take();
    let storage_failed = results.iter().any(|r| r.status == Some(503));
    let committed = match tx {
        Some(tx) if storage_failed => {
            let _ = tx.rollback().await;
            Err(sqlx::Error::Protocol("an entry of the batch met a storage error; the batch was rolled back".into()))
        }
        Some(tx) => tx.commit().await,
        None => Ok(()),
    };
    if let Err(e) = committed {
        // Nothing of this batch took effect: what had succeeded must be
        // sent again.
        let problem = Problem::storage(&e);
        let body = serde_json::to_string(&problem).expect("a problem serialises");
        for result in &mut results {
            if result.status.is_some_and(|s| (200..300).contains(&s)) {
                result.status = Some(503);
                result.retry_after = Some("1".into());
                result.body = body.clone();
            }
        }
    }
    Ok(axum::Json(BatchResponse { results }))
}

async fn run(api: &Router, entry: bgsync_core::wire::BatchEntry, shared: &SharedTx) -> BatchResult {
    let key = entry.key.clone();
    let answer =
        |status: u16, body: String| BatchResult { key: key.clone(), status: Some(status), retry_after: None, body };
    let refuse = |detail: String| {
        let problem = Problem::new(StatusCode::BAD_REQUEST, "invalid-batch-entry", "Invalid batch entry", detail);
        answer(400, serde_json::to_string(&problem).expect("a problem serialises"))
    };
    if !entry.path.starts_with("/api/") || entry.path.starts_with(PATH) {
        return refuse(format!("path {:?} is not an API route a batch entry may target", entry.path));
    }
    let Ok(method) = Method::from_bytes(entry.method.as_bytes()) else {
        return refuse(format!("method {:?} is not an HTTP method", entry.method));
    };
    let mut request = Request::builder().method(method).uri(&entry.path);
    for (name, value) in &entry.headers {
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            (Ok(name), Ok(value)) if name != header::CONTENT_LENGTH => request = request.header(name, value),
            _ => return refuse(format!("header {name:?} is not a valid HTTP header")),
        }
    }
    let has_type = entry.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    if !has_type {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let Ok(key_value) = HeaderValue::from_str(&entry.key) else {
        return refuse("the entry key is not a valid Idempotency-Key".into());
    };
    let request = request.header(IDEMPOTENCY_KEY, key_value).extension(shared.clone());
    let request = match request.body(Body::from(entry.body)) {
        Ok(request) => request,
        Err(e) => return refuse(format!("the entry is not a valid request: {e}")),
    };
    let response = match api.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status().as_u16();
    let retry_after = response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = axum::body::to_bytes(response.into_body(), MAX_BODY_BYTES).await.unwrap_or_default();
    BatchResult { key, status: Some(status), retry_after, body: String::from_utf8_lossy(&body).into_owned() }
}

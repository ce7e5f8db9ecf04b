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
//!
//! A batch may not hold the server: it carries only requests that change
//! state (a read in a batch would be an amplifier, and would need a second
//! database connection while holding the first), at most
//! half as many batches as the pool has connections run at once (the rest are answered
//! 503 at once, so ordinary requests always find a connection), and it
//! stops running entries once it has held its transaction for
//! [`MAX_HOLD`] or answered [`MAX_ANSWER_BYTES`]: the entries it did not
//! run are reported as not attempted (`status: null`) and sent again.

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use bgsync_core::wire::{BatchRequest, BatchResponse, BatchResult, CLIENT_HEADER, IDEMPOTENCY_KEY};
use bgsync_server::{json, Problem};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::posts::SharedTx;
use crate::db::Db;

/// The most entries one batch may carry.
pub const MAX_ENTRIES: usize = 1000;
/// The largest batch body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The route entries must not target (no batches of batches).
pub const PATH: &str = "/api/sync/batch";
/// Entries must target paths under this prefix (the API routes).
pub const PREFIX: &str = "/api/";
/// The methods an entry may have: those that change state.
pub const METHODS: [&str; 4] = ["POST", "PUT", "PATCH", "DELETE"];
/// The longest a batch holds its transaction (and, on SQLite, the write
/// lock) before it stops running entries.
pub const MAX_HOLD: Duration = Duration::from_secs(2);
/// The most bytes of entry answers one batch returns.
pub const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;
/// The most bytes one entry's answer may have.
const MAX_ENTRY_ANSWER_BYTES: usize = 64 * 1024;
/// Batches at once: half the database pool, so that ordinary requests
/// always find a connection.
pub fn max_concurrent(pool_size: u32) -> usize {
    (pool_size as usize / 2).max(1)
}

/// The routes an entry may target.
#[derive(Clone)]
pub struct BatchState {
    pub api: Router,
    pub db: Db,
    pub running: Arc<Semaphore>,
}

impl BatchState {
    pub fn new(api: Router, db: Db) -> Self {
        let running = Arc::new(Semaphore::new(max_concurrent(db.pool.options().get_max_connections())));
        Self { api, db, running }
    }
}

pub async fn handle(
    State(state): State<BatchState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<BatchResponse>, Problem> {
    let request: BatchRequest = json::parse(&headers, body)?;
    let scope = bgsync_server::idempotency::client_scope(&headers)?;
    let client = headers.get(CLIENT_HEADER).filter(|_| !scope.is_empty()).cloned();
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
    let Ok(_running) = state.running.clone().try_acquire_owned() else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-batches",
            "Too many batches",
            "The server is running as many batches as it allows at once; send this one again shortly.",
        )
        .with_retry_after(1));
    };
    let shared = SharedTx::default();
    let tx = state.db.pool.begin().await.map_err(|e| Problem::storage(&e))?;
    let started = Instant::now();
    let mut answered = 0;
    *shared.0.lock().await = Some(tx);
    let mut results = Vec::with_capacity(request.entries.len());
    let mut stopped = false;
    for entry in request.entries {
        if stopped {
            results.push(BatchResult { key: entry.key, status: None, retry_after: None, body: String::new() });
            continue;
        }
        if started.elapsed() >= MAX_HOLD || answered >= MAX_ANSWER_BYTES {
            // Not attempted: the client sends it again in another batch.
            stopped = true;
            results.push(BatchResult { key: entry.key, status: None, retry_after: None, body: String::new() });
            continue;
        }
        let result = run(&state.api, entry, &shared, client.as_ref()).await;
        answered += result.body.len();
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

async fn run(
    api: &Router,
    entry: bgsync_core::wire::BatchEntry,
    shared: &SharedTx,
    client: Option<&HeaderValue>,
) -> BatchResult {
    let key = entry.key.clone();
    let answer =
        |status: u16, body: String| BatchResult { key: key.clone(), status: Some(status), retry_after: None, body };
    let refuse = |detail: String| {
        let problem = Problem::new(StatusCode::BAD_REQUEST, "invalid-batch-entry", "Invalid batch entry", detail);
        answer(400, serde_json::to_string(&problem).expect("a problem serialises"))
    };
    if !entry.path.starts_with(PREFIX) || entry.path.starts_with(PATH) {
        return refuse(format!(
            "path {:?} is not a route a batch entry may target (paths under {PREFIX}, the batch endpoint aside); \
             send it on its own",
            entry.path
        ));
    }
    if !METHODS.contains(&entry.method.as_str()) {
        return refuse(format!(
            "method {:?} is not allowed in a batch, which carries only requests that change state ({}); \
             send reads on their own",
            entry.method,
            METHODS.join(", ")
        ));
    }
    let Ok(method) = Method::from_bytes(entry.method.as_bytes()) else {
        return refuse(format!("method {:?} is not an HTTP method", entry.method));
    };
    let mut request = Request::builder().method(method).uri(&entry.path);
    for (name, value) in &entry.headers {
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            // The batch's own client id stands for every entry.
            (Ok(name), Ok(_)) if name.as_str().eq_ignore_ascii_case(CLIENT_HEADER) => {}
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
    let mut request = request.header(IDEMPOTENCY_KEY, key_value).extension(shared.clone());
    if let Some(client) = client {
        request = request.header(CLIENT_HEADER, client.clone());
    }
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
    let Ok(body) = axum::body::to_bytes(response.into_body(), MAX_ENTRY_ANSWER_BYTES).await else {
        // Its effect is in the batch's transaction, but its answer cannot be
        // returned: roll the batch back rather than lose the answer.
        let problem = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "entry-answer-too-large",
            "Answer too large",
            format!("The answer to this entry is over {MAX_ENTRY_ANSWER_BYTES} bytes; send it on its own."),
        );
        return answer(503, serde_json::to_string(&problem).expect("a problem serialises"));
    };
    BatchResult { key, status: Some(status), retry_after, body: String::from_utf8_lossy(&body).into_owned() }
}

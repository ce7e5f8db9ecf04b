//! Batch replay: many queued requests in one round trip, and the one
//! database transaction they share.
//!
//! [`router`] serves the batch endpoint and the `/.well-known/bgsync`
//! document that tells clients about it. Each entry of a batch runs through
//! the app's own router (the one passed in) as if it had arrived alone, with
//! its own `Idempotency-Key`, so it gets exactly the validation, effects and
//! answer it would get alone, and one bad entry fails alone.
//!
//! The entries share one database transaction, committed once at the end:
//! one commit, one fsync, for the whole batch. Handlers join it with
//! [`EffectTx::begin`], which outside a batch begins a transaction of their
//! own. An entry that is not answered 2xx is rolled back, so it leaves no
//! write behind whatever its
//! handler did (the usual batch, where every entry succeeds, takes one
//! savepoint for the whole batch; at the first failure the batch rolls back
//! to it and runs again the entries that had succeeded). An entry that meets a storage failure (a [`Problem`] made
//! with [`Problem::storage`], marked [`StorageFailure`]), or a commit that
//! fails, rolls the whole batch back, and every entry that had succeeded is
//! answered 503 instead (nothing of the batch took effect).
//!
//! A batch may not hold the server: it carries only requests that change
//! state under [`BatchConfig::prefix`] (a read in a batch would amplify, and
//! would need a second connection while holding the first), at most
//! [`BatchConfig::max_concurrent`] batches run at once (the rest are
//! answered 503 at once, so ordinary requests always find a connection),
//! and a batch stops running entries once it has held its transaction for
//! [`BatchConfig::max_hold`] or answered [`BatchConfig::max_answer_bytes`]:
//! the entries it did not run are reported as not attempted
//! (`status: null`), and the client sends them again.
//!
//! The answer's head says how many entries were answered 2xx
//! ([`bgsync_core::wire::BATCH_SUCCEEDED_HEADER`]), so that a client whose
//! entries all succeeded need not wait for the body.

use crate::problem::{Problem, StorageFailure};
use crate::writer::{WriteTx, Writer};
use crate::{idempotency, json};
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bgsync_core::wire::{
    prefers_minimal, Advertisement, BatchEndpoint, BatchEntry, BatchRequest, BatchResponse, BatchResult,
    BATCH_SUCCEEDED_HEADER, CLIENT_HEADER, IDEMPOTENCY_KEY, RETURN_MINIMAL, WELL_KNOWN_PATH,
};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, MutexGuard, Semaphore};
use tower::ServiceExt;

/// The methods an entry may have: those that change state.
pub const METHODS: [&str; 4] = ["POST", "PUT", "PATCH", "DELETE"];

/// Where the batch endpoint is and what one batch may take.
#[derive(Clone, Debug)]
pub struct BatchConfig {
    /// The batch endpoint's path.
    pub path: String,
    /// Entries must target paths under this (the app's API).
    pub prefix: String,
    pub max_entries: usize,
    pub max_body_bytes: usize,
    /// The longest a batch holds its transaction (on SQLite, the write lock)
    /// before it stops running entries.
    pub max_hold: Duration,
    /// The most bytes of entry answers one batch returns.
    pub max_answer_bytes: usize,
    /// The most bytes of one entry's answer.
    pub max_entry_answer_bytes: usize,
    /// Batches at once; `None`: half the pool's connections (at least one).
    pub max_concurrent: Option<usize>,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            path: "/api/sync/batch".into(),
            prefix: "/api/".into(),
            max_entries: 1000,
            max_body_bytes: 1024 * 1024,
            max_hold: Duration::from_secs(2),
            max_answer_bytes: 2 * 1024 * 1024,
            max_entry_answer_bytes: 64 * 1024,
            max_concurrent: None,
        }
    }
}

/// The transaction the entries of one batch share, as a request extension
/// its entries' handlers find ([`EffectTx::begin`]).
pub struct BatchTx<DB: sqlx::Database>(Arc<Mutex<Option<WriteTx<DB>>>>);

impl<DB: sqlx::Database> Clone for BatchTx<DB> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// As an extractor, `Option<BatchTx<DB>>`: the batch's transaction when the
/// request is an entry of a batch, `None` otherwise.
impl<DB: sqlx::Database, S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for BatchTx<DB> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}

/// The transaction a handler applies its effect in: the batch's, when the
/// request is an entry of a batch, else one from the app's [`Writer`]. The
/// handler writes the effect and its idempotency key through it, then calls
/// [`EffectTx::commit`] (which, in a batch, leaves the commit to the batch).
pub enum EffectTx<'a, DB: sqlx::Database> {
    Own(WriteTx<DB>),
    Batch(MutexGuard<'a, Option<WriteTx<DB>>>),
}

impl<'a, DB> EffectTx<'a, DB>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: 'static,
{
    /// Joins `batch`'s transaction, or begins one with `writer`.
    pub async fn begin(writer: &Writer<DB>, batch: Option<&'a BatchTx<DB>>) -> Result<Self, Problem> {
        match batch {
            Some(batch) => {
                let slot = batch.0.lock().await;
                if slot.is_none() {
                    return Err(Problem::storage(&std::io::Error::other("the batch's transaction has ended")));
                }
                Ok(Self::Batch(slot))
            }
            None => Ok(Self::Own(writer.begin().await.map_err(|e| Problem::storage(&e))?)),
        }
    }

    /// The connection for statements run on this thread through SQLite's C
    /// API, where the transaction holds SQLite's write lock (on SQLite with
    /// group commit: every request's and every batch's); `None` otherwise,
    /// and the handler uses sqlx (`&mut *tx`). See [`crate::direct`]: in a
    /// batch, the entries share one hand-over of the connection, and a
    /// batch of 1,000 inserts takes milliseconds instead of a thread round
    /// trip per statement.
    pub async fn sqlite(&mut self) -> Result<Option<&mut crate::direct::Direct>, Problem> {
        let tx = match self {
            Self::Own(tx) => tx,
            Self::Batch(slot) => slot.as_mut().expect("checked at begin"),
        };
        tx.sqlite().await.map_err(|e| Problem::storage(&e))
    }

    /// Whether this is a batch's transaction.
    pub fn in_batch(&self) -> bool {
        matches!(self, Self::Batch(_))
    }

    /// Commits a transaction of its own (returning once it is durable); in
    /// a batch, the batch commits.
    pub async fn commit(self) -> Result<(), Problem> {
        match self {
            Self::Own(tx) => tx.commit().await.map_err(|e| Problem::storage(&e)),
            Self::Batch(_) => Ok(()),
        }
    }
}

impl<DB: sqlx::Database> Deref for EffectTx<'_, DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        match self {
            Self::Own(tx) => tx,
            Self::Batch(slot) => slot.as_ref().expect("checked at begin"),
        }
    }
}

impl<DB: sqlx::Database> DerefMut for EffectTx<'_, DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match self {
            Self::Own(tx) => tx,
            Self::Batch(slot) => slot.as_mut().expect("checked at begin"),
        }
    }
}

struct Batches<DB: sqlx::Database> {
    api: Router,
    writer: Writer<DB>,
    config: BatchConfig,
    running: Arc<Semaphore>,
}

impl<DB: sqlx::Database> Clone for Batches<DB> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            writer: self.writer.clone(),
            config: self.config.clone(),
            running: self.running.clone(),
        }
    }
}

/// The batch endpoint ([`BatchConfig::path`], POST) and the
/// `/.well-known/bgsync` advertisement (GET), to merge into the app's
/// router. `api` is the app's own router that entries run through (the
/// layers on it apply to each entry), `writer` where the entries' handlers
/// write (the batch's transaction is one of its transactions).
pub fn router<DB>(api: Router, writer: Writer<DB>, config: BatchConfig) -> Router
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: 'static,
{
    let concurrent =
        config.max_concurrent.unwrap_or((writer.pool().options().get_max_connections() as usize / 2).max(1));
    let advertisement = Advertisement {
        batch: Some(BatchEndpoint {
            url: config.path.clone(),
            max_entries: config.max_entries,
            max_bytes: config.max_body_bytes,
            prefix: config.prefix.clone(),
        }),
    };
    let (path, body_limit) = (config.path.clone(), config.max_body_bytes);
    let batches = Batches {
        // A batch's entries see only the API, and a problem for a path it
        // lacks or for any refusal of axum's own.
        api: crate::problem::everywhere(
            api.fallback(|uri: Uri| async move { Problem::not_found(format!("There is no route at {}.", uri.path())) }),
        ),
        writer,
        config,
        running: Arc::new(Semaphore::new(concurrent.max(1))),
    };
    let only = |allowed: &'static str, path: String| {
        move |method: Method| {
            let path = path.clone();
            async move { method_not_allowed(&method, allowed, &path) }
        }
    };
    Router::new()
        .route(&path, post(handle::<DB>).fallback(only("POST", path.clone())))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(batches)
        .route(
            WELL_KNOWN_PATH,
            get(move || {
                let document = advertisement.clone();
                async move { ([(header::CACHE_CONTROL, "max-age=3600")], axum::Json(document)) }
            })
            .fallback(only("GET, HEAD", WELL_KNOWN_PATH.into())),
        )
}

pub use crate::problem::method_not_allowed;

/// Whether the entry was answered 2xx.
fn succeeded(result: &BatchResult) -> bool {
    result.status.is_some_and(|s| (200..300).contains(&s))
}

fn not_attempted(key: String) -> BatchResult {
    BatchResult { key, status: None, retry_after: None, body: String::new() }
}

async fn handle<DB>(
    batches: State<Batches<DB>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: 'static,
{
    let span = tracing::debug_span!("batch");
    let minimal = prefers_minimal(headers.get_all(PREFER).iter().map(HeaderValue::as_bytes));
    let answer = tracing::Instrument::instrument(run_batch(batches, headers, body, minimal), span).await;
    let metrics = &crate::metrics::METRICS;
    // The entries answered 2xx, counted with the metrics: the answer's
    // head says it (a client whose entries all succeeded need not wait
    // for the body).
    let mut count = 0;
    match &answer {
        Err(_) => metrics.batches.with_label_values(&["refused"]).inc(),
        Ok((response, rolled_back)) => {
            crate::metrics::observe_batch_size(response.results.len());
            metrics.batches.with_label_values(&[if *rolled_back { "rolled_back" } else { "committed" }]).inc();
            for result in &response.results {
                let outcome = match result.status {
                    None => "not_attempted",
                    Some(_) if succeeded(result) => {
                        count += 1;
                        "succeeded"
                    }
                    Some(408 | 425 | 429) | Some(500..) => "failed",
                    Some(_) => "refused",
                };
                metrics.batch_entries.with_label_values(&[outcome]).inc();
            }
        }
    }
    let (response, _) = answer?;
    let told = [(BATCH_SUCCEEDED_HEADER, HeaderValue::from(count))];
    if minimal {
        let applied = [(PREFERENCE_APPLIED, HeaderValue::from_static(RETURN_MINIMAL))];
        return Ok((applied, told, axum::Json(response)).into_response());
    }
    Ok((told, axum::Json(response)).into_response())
}

const PREFER: HeaderName = HeaderName::from_static("prefer");
const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// Runs a batch; with its answer, whether it was rolled back as a whole.
/// `minimal`: the bodies of entries answered 2xx are left out
/// ([`RETURN_MINIMAL`]).
async fn run_batch<DB>(
    State(batches): State<Batches<DB>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    minimal: bool,
) -> Result<(BatchResponse, bool), Problem>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: 'static,
{
    let config = &batches.config;
    let request: BatchRequest = json::parse(&headers, body)?;
    let scope = idempotency::client_scope(&headers)?;
    let client = headers.get(CLIENT_HEADER).filter(|_| !scope.is_empty()).cloned();
    if request.entries.len() > config.max_entries {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "Batch too large",
            format!(
                "A batch may carry at most {} entries; this one has {}. Split it.",
                config.max_entries,
                request.entries.len()
            ),
        ));
    }
    let Ok(_running) = batches.running.clone().try_acquire_owned() else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-batches",
            "Too many batches",
            "The server is running as many batches as it allows at once; send this one again shortly.",
        )
        .with_retry_after(1));
    };
    let shared = BatchTx(Arc::new(Mutex::new(Some(batches.writer.begin().await.map_err(|e| Problem::storage(&e))?))));
    let started = Instant::now();
    let (mut answered, mut stopped, mut storage_failed) = (0, false, false);
    let mut results: Vec<BatchResult> = Vec::with_capacity(request.entries.len());
    // Savepoints cost a statement each, so the usual batch (every entry
    // succeeds) takes one for the whole batch. At the first entry that
    // fails, the batch rolls back to it, runs again the entries that had
    // succeeded, and from then on gives each entry a savepoint of its own.
    let mut per_entry = false;
    if let Err(e) = savepoint(&shared, "SAVEPOINT bgsync_batch").await {
        return Err(Problem::storage(&e));
    }
    let entries = request.entries;
    for (i, entry) in entries.iter().enumerate() {
        if stopped || started.elapsed() >= config.max_hold || answered >= config.max_answer_bytes {
            // Not attempted: the client sends it again in another batch.
            stopped = true;
            results.push(not_attempted(entry.key.clone()));
            continue;
        }
        // An entry refused before it runs wrote nothing: no rollback needed.
        let prepared = match build(config, entry.clone(), &shared, client.as_ref()) {
            Ok(prepared) => prepared,
            Err(problem) => {
                stopped = request.ordered;
                results.push(answer(entry.key.clone(), problem.status, &problem));
                continue;
            }
        };
        let (result, failed) = run(&batches, entry.key.clone(), prepared, &shared, per_entry).await;
        let ok = succeeded(&result);
        storage_failed |= failed;
        if !ok && !per_entry && !storage_failed {
            per_entry = true;
            match redo(&batches, &entries[..i], &mut results, &shared, client.as_ref()).await {
                Ok(failed) => storage_failed |= failed,
                Err(e) => {
                    storage_failed = true;
                    tracing::warn!("a batch could not be rolled back to its start: {e}");
                }
            }
        }
        // What the answer will carry.
        if !(minimal && ok) {
            answered += result.body.len();
        }
        stopped = storage_failed || (request.ordered && !ok);
        results.push(result);
    }
    let tx = shared.0.lock().await.take();
    let committed = match tx {
        Some(tx) if storage_failed => {
            let _ = tx.rollback().await;
            Err(sqlx::Error::Protocol("an entry of the batch met a storage failure; the batch was rolled back".into()))
        }
        Some(tx) => tx.commit().await,
        None => Ok(()),
    };
    let rolled_back = committed.is_err();
    if let Err(e) = committed {
        // Nothing of this batch took effect: what had succeeded must be
        // sent again.
        let body = serde_json::to_string(&Problem::storage(&e)).expect("a problem serialises");
        for result in &mut results {
            if succeeded(result) {
                result.status = Some(503);
                result.retry_after = Some("1".into());
                result.body = body.clone();
            }
        }
    }
    if minimal {
        for result in &mut results {
            if succeeded(result) {
                result.body = String::new();
            }
        }
    }
    Ok((BatchResponse { results }, rolled_back))
}

/// Undoes everything the batch did so far (the entries that succeeded, and
/// the one that just failed) and runs the entries that had succeeded again,
/// each in a savepoint of its own, replacing their results. Returns whether
/// one met a storage failure.
async fn redo<DB>(
    batches: &Batches<DB>,
    done: &[BatchEntry],
    results: &mut [BatchResult],
    shared: &BatchTx<DB>,
    client: Option<&HeaderValue>,
) -> Result<bool, sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: 'static,
{
    savepoint(shared, "ROLLBACK TO SAVEPOINT bgsync_batch").await?;
    let mut storage_failed = false;
    for (entry, result) in done.iter().zip(results.iter_mut()) {
        if succeeded(result) {
            let (again, failed) = match build(&batches.config, entry.clone(), shared, client) {
                Ok(prepared) => run(batches, entry.key.clone(), prepared, shared, true).await,
                Err(problem) => (answer(entry.key.clone(), problem.status, &problem), false),
            };
            storage_failed |= failed;
            *result = again;
        }
    }
    Ok(storage_failed)
}

/// Runs one entry (built by [`build`]) in the batch's transaction, in a
/// savepoint of its own if `savepoint_each`; returns its result and whether
/// it met a storage failure.
async fn run<DB>(
    batches: &Batches<DB>,
    key: String,
    request: Request<Body>,
    shared: &BatchTx<DB>,
    savepoint_each: bool,
) -> (BatchResult, bool)
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: 'static,
{
    if savepoint_each {
        if let Err(e) = savepoint(shared, "SAVEPOINT bgsync_entry").await {
            return (answer(key, 503, &Problem::storage(&e)), true);
        }
    }
    let span = tracing::debug_span!("entry", key = %key);
    let response = match tracing::Instrument::instrument(batches.api.clone().oneshot(request), span).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let storage_failed = response.extensions().get::<StorageFailure>().is_some();
    let retry_after = response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let limit = batches.config.max_entry_answer_bytes;
    let Ok(body) = axum::body::to_bytes(response.into_body(), limit).await else {
        // Its effect is in the transaction but its answer cannot be
        // returned: undo the effect rather than lose the answer.
        if savepoint_each {
            let _ = savepoint(shared, "ROLLBACK TO SAVEPOINT bgsync_entry").await;
        }
        let problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "entry-answer-too-large",
            "Answer too large for a batch",
            format!("The answer to this entry is over {limit} bytes; send it on its own."),
        );
        return (answer(key, 422, &problem), false);
    };
    // A refused entry leaves nothing behind, whatever its handler wrote.
    if savepoint_each {
        let end =
            if status.is_success() { "RELEASE SAVEPOINT bgsync_entry" } else { "ROLLBACK TO SAVEPOINT bgsync_entry" };
        if let Err(e) = savepoint(shared, end).await {
            return (answer(key, 503, &Problem::storage(&e)), true);
        }
    }
    let result = BatchResult {
        key,
        status: Some(status.as_u16()),
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    (result, storage_failed)
}

fn answer(key: String, status: u16, problem: &Problem) -> BatchResult {
    let body = serde_json::to_string(problem).expect("a problem serialises");
    BatchResult { key, status: Some(status), retry_after: problem.retry_after_secs.map(|s| s.to_string()), body }
}

async fn savepoint<DB>(shared: &BatchTx<DB>, statement: &'static str) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: 'static,
{
    let mut slot = shared.0.lock().await;
    let tx = slot.as_mut().ok_or_else(|| sqlx::Error::Protocol("the batch's transaction has ended".into()))?;
    tx.run_plain(statement).await
}

/// The entry as a request to the app's router, or why it cannot be one.
fn build<DB: sqlx::Database>(
    config: &BatchConfig,
    entry: BatchEntry,
    shared: &BatchTx<DB>,
    client: Option<&HeaderValue>,
) -> Result<Request<Body>, Problem> {
    let refuse =
        |detail: String| Problem::new(StatusCode::BAD_REQUEST, "invalid-batch-entry", "Invalid batch entry", detail);
    if !entry.path.starts_with(config.prefix.as_str()) || entry.path.starts_with(config.path.as_str()) {
        return Err(refuse(format!(
            "path {:?} is not a route a batch entry may target (paths under {}, the batch endpoint aside); \
             send it on its own",
            entry.path, config.prefix
        )));
    }
    if !METHODS.contains(&entry.method.as_str()) {
        return Err(refuse(format!(
            "method {:?} is not allowed in a batch, which carries only requests that change state ({}); \
             send reads on their own",
            entry.method,
            METHODS.join(", ")
        )));
    }
    let method = Method::from_bytes(entry.method.as_bytes())
        .map_err(|_| refuse(format!("method {:?} is not an HTTP method", entry.method)))?;
    let mut request = Request::builder().method(method).uri(&entry.path);
    for (name, value) in &entry.headers {
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            // The batch's own client id stands for every entry, and the
            // entry's body says its length.
            (Ok(name), Ok(_))
                if name.as_str().eq_ignore_ascii_case(CLIENT_HEADER) || name == header::CONTENT_LENGTH => {}
            // The entry's key is its Idempotency-Key; the same again is
            // no news, another would make two.
            (Ok(name), Ok(_)) if name.as_str().eq_ignore_ascii_case(IDEMPOTENCY_KEY) => {
                if value.trim() != entry.key {
                    return Err(refuse(format!(
                        "its {IDEMPOTENCY_KEY} header {value:?} is not its key {:?}; an entry's key is its \
                         {IDEMPOTENCY_KEY}, so leave the header out",
                        entry.key
                    )));
                }
            }
            (Ok(name), Ok(value)) => request = request.header(name, value),
            _ => return Err(refuse(format!("header {name:?} is not a valid HTTP header"))),
        }
    }
    if !entry.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let key =
        HeaderValue::from_str(&entry.key).map_err(|_| refuse("the entry key is not a valid Idempotency-Key".into()))?;
    let mut request = request.header(IDEMPOTENCY_KEY, key).extension(shared.clone());
    if let Some(client) = client {
        request = request.header(CLIENT_HEADER, client.clone());
    }
    request.body(Body::from(entry.body)).map_err(|e| refuse(format!("the entry is not a valid request: {e}")))
}

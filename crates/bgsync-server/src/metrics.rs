//! What the server does, for Prometheus: `GET /metrics` in the text
//! exposition format ([`router`]), and a layer that times every request
//! ([`track`]).
//!
//! | metric | what |
//! | --- | --- |
//! | `bgsync_http_requests_total{method, route, status}` | requests answered (`method`: one HTTP defines, else `other`; `route`: the matched route's pattern, else `unmatched`) |
//! | `bgsync_http_request_duration_seconds{method, route}` | their durations (histogram) |
//! | `bgsync_batches_total{outcome}` | batch requests: `committed`, `rolled_back`, `refused` |
//! | `bgsync_batch_entries_total{outcome}` | batch entries: `succeeded`, `refused`, `failed`, `not_attempted` |
//! | `bgsync_idempotent_replays_total` | requests answered from a stored key (a retry) |
//! | `bgsync_idempotency_mismatches_total` | keys reused with another request (422) |
//! | `bgsync_in_flight_conflicts_total` | requests refused while their key was in flight (409) |
//! | `bgsync_idempotency_keys` | keys stored now (counted at scrape) |
//! | `bgsync_key_purges_total`, `bgsync_keys_purged_total` | purge runs, keys they deleted |
//! | `bgsync_group_commits_total`, `bgsync_group_commit_writes_total` | SQLite group commits and the writes they carried |
//! | `bgsync_wal_checkpoints_total` | SQLite WAL checkpoints made beside the group writer after its commits |
//! | `bgsync_sqlite_direct_total` | hand-overs of a group's SQLite connection to a request's thread ([`crate::direct`]) |
//! | `bgsync_sqlite_direct_gave_up_total` | hand-overs not made in time (the statements went through sqlx) |
//!
//! `route` is the route's pattern (`/api/tasks/{id}`), never the raw path, so
//! the number of series stays bounded whatever clients send; paths no route
//! matches are `unmatched`.

use crate::Writer;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use std::sync::LazyLock;
use std::time::Instant;

/// The process's metrics (one server per process is the usual case; tests
/// that run several see their sums).
pub(crate) struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub unreadable: IntCounterVec,
    pub durations: HistogramVec,
    pub batches: IntCounterVec,
    pub batch_entries: IntCounterVec,
    pub replays: IntCounter,
    pub mismatches: IntCounter,
    pub in_flight_conflicts: IntCounter,
    pub purges: IntCounter,
    pub purged: IntCounter,
    keys: IntGauge,
    pub group_commits: IntCounter,
    pub group_writes: IntCounter,
    pub checkpoints: IntCounter,
    pub direct: IntCounter,
    pub direct_gave_up: IntCounter,
    batch_sizes: Histogram,
}

pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let counter = |name: &str, help: &str| {
        let c = IntCounter::new(name, help).expect("a valid metric");
        registry.register(Box::new(c.clone())).expect("registered once");
        c
    };
    let counters = |name: &str, help: &str, labels: &[&str]| {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
        registry.register(Box::new(c.clone())).expect("registered once");
        c
    };
    let gauge = |name: &str, help: &str| {
        let g = IntGauge::new(name, help).expect("a valid metric");
        registry.register(Box::new(g.clone())).expect("registered once");
        g
    };
    let durations = HistogramVec::new(
        HistogramOpts::new("bgsync_http_request_duration_seconds", "How long requests took to answer.")
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        &["method", "route"],
    )
    .expect("a valid metric");
    registry.register(Box::new(durations.clone())).expect("registered once");
    let batch_sizes = Histogram::with_opts(
        HistogramOpts::new("bgsync_batch_entries", "Entries per batch request.")
            .buckets(vec![1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0]),
    )
    .expect("a valid metric");
    registry.register(Box::new(batch_sizes.clone())).expect("registered once");
    Metrics {
        requests: counters("bgsync_http_requests_total", "Requests answered.", &["method", "route", "status"]),
        unreadable: counters(
            "bgsync_http_unreadable_total",
            "Requests the HTTP layer could not read, answered before any route (400, 414, 431).",
            &["status"],
        ),
        durations,
        batches: counters("bgsync_batches_total", "Batch requests by outcome.", &["outcome"]),
        batch_entries: counters("bgsync_batch_entries_total", "Batch entries by outcome.", &["outcome"]),
        replays: counter("bgsync_idempotent_replays_total", "Requests answered from a stored Idempotency-Key."),
        mismatches: counter("bgsync_idempotency_mismatches_total", "Idempotency-Keys reused with another request."),
        in_flight_conflicts: counter(
            "bgsync_in_flight_conflicts_total",
            "Requests refused (409) while the same key was being processed.",
        ),
        purges: counter("bgsync_key_purges_total", "Purge runs of expired Idempotency-Keys."),
        purged: counter("bgsync_keys_purged_total", "Expired Idempotency-Keys deleted."),
        keys: gauge("bgsync_idempotency_keys", "Idempotency-Keys stored (counted when scraped)."),
        group_commits: counter("bgsync_group_commits_total", "SQLite group commits made."),
        group_writes: counter("bgsync_group_commit_writes_total", "Requests' writes the group commits carried."),
        checkpoints: counter(
            "bgsync_wal_checkpoints_total",
            "SQLite WAL checkpoints made beside the group writer after its commits.",
        ),
        direct: counter(
            "bgsync_sqlite_direct_total",
            "Hand-overs of a group's SQLite connection to a request's thread (statements without a thread hop).",
        ),
        direct_gave_up: counter(
            "bgsync_sqlite_direct_gave_up_total",
            "Hand-overs of a group's SQLite connection that sqlx did not make in time (the statements went through sqlx).",
        ),
        batch_sizes,
        registry,
    }
});

pub(crate) fn observe_batch_size(entries: usize) {
    METRICS.batch_sizes.observe(entries as f64);
}

/// A layer (`axum::middleware::from_fn(metrics::track)`) that counts and
/// times every request by method, route pattern and status, inside a
/// `tracing` span `request` (its answer logged at debug level).
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let span = tracing::info_span!("request", method = %method, route = %route);
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let elapsed = started.elapsed();
    let metrics = &*METRICS;
    metrics.durations.with_label_values(&[method, &route]).observe(elapsed.as_secs_f64());
    metrics.requests.with_label_values(&[method, &route, response.status().as_str()]).inc();
    span.in_scope(|| {
        tracing::debug!(status = response.status().as_u16(), ms = elapsed.as_secs_f64() * 1000.0, "answered")
    });
    response
}

/// A request's method as a label: the methods HTTP defines as they are,
/// any other `other`. A client may send any token as a method, and a
/// series per token would grow the server's memory and every scrape
/// without bound (as a path no route matches is `unmatched`).
fn method_label(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|known| *known == method.as_str()).unwrap_or("other")
}

/// `GET /metrics`: every metric above, in Prometheus' text format. The key
/// count is read from `writer`'s database when scraped.
pub fn router<DB>(writer: Writer<DB>) -> Router
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: 'static,
    for<'r> (i64,): sqlx::FromRow<'r, DB::Row>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let other = |method: axum::http::Method| async move {
        crate::problem::method_not_allowed(&method, "GET, HEAD", "/metrics")
    };
    Router::new().route("/metrics", get(scrape::<DB>).fallback(other)).with_state(writer)
}

async fn scrape<DB>(State(writer): State<Writer<DB>>) -> Response
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: 'static,
    for<'r> (i64,): sqlx::FromRow<'r, DB::Row>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let metrics = &*METRICS;
    if let Ok((keys,)) =
        sqlx::query_as::<DB, (i64,)>("SELECT COUNT(*) FROM idempotency_keys").fetch_one(writer.pool()).await
    {
        metrics.keys.set(keys);
    }
    let mut body = Vec::new();
    if let Err(e) = prometheus::TextEncoder::new().encode(&metrics.registry.gather(), &mut body) {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("metrics could not be encoded: {e}")).into_response();
    }
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response()
}

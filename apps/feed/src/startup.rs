//! Building the app and serving it.

use crate::db::Db;
use crate::routes::{batch, posts};
use crate::{assets, db, Config};
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bgsync_core::wire::{Advertisement, BatchEndpoint, WELL_KNOWN_PATH};
use bgsync_server::{FailPoint, InFlight, Problem};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub in_flight: Arc<InFlight>,
    /// Fails a post between its effect and its commit (tests only).
    pub before_commit: Arc<FailPoint>,
}

impl AppState {
    pub fn new(db: Db) -> Self {
        Self { db, in_flight: Arc::default(), before_commit: Arc::default() }
    }
}

/// The whole app: the API, the batch endpoint and the embedded PWA.
pub fn router(state: AppState) -> Router {
    router_wrapping_api(state, |api| api)
}

/// The app with the API routes wrapped by `wrap` (middleware), which then
/// also applies to each entry of a batch, since a batch runs its entries
/// through those same routes.
pub fn router_wrapping_api(state: AppState, wrap: impl FnOnce(Router) -> Router) -> Router {
    let db = state.db.clone();
    let api = wrap(
        Router::new()
            .route("/api/posts", get(posts::list).post(posts::create))
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(posts::MAX_BODY_BYTES))
            .with_state(state),
    );
    // A batch's entries see only the API, and a problem for a path it lacks.
    let batch_api = api.clone().fallback(api_not_found);
    let batch = Router::new()
        .route(batch::PATH, post(batch::handle))
        .method_not_allowed_fallback(|method: Method| async move { only(&method, "POST", batch::PATH) })
        .layer(DefaultBodyLimit::max(batch::MAX_BODY_BYTES))
        .with_state(batch::BatchState::new(batch_api, db));
    api.merge(batch)
        .route(WELL_KNOWN_PATH, get(advertise))
        .method_not_allowed_fallback(|method: Method| async move { only(&method, "GET, HEAD", WELL_KNOWN_PATH) })
        .fallback(fallback)
        .layer(middleware::map_response(nosniff))
}

/// Unknown paths: a problem under `/api/`, else the app's files.
async fn fallback(method: Method, uri: Uri) -> Response {
    if uri.path().starts_with(batch::PREFIX) {
        return api_not_found(uri).await.into_response();
    }
    assets::serve(method, uri).await
}

async fn api_not_found(uri: Uri) -> Problem {
    Problem::not_found(format!("There is no API route at {}; the API is /api/posts.", uri.path()))
}

/// Every answer: browsers must take its `Content-Type` as it is.
async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// 405 with `Allow` for a route that only takes `allowed`.
fn only(method: &Method, allowed: &'static str, path: &str) -> Response {
    let problem = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not allowed here; {path} takes {allowed}."),
    );
    ([(header::ALLOW, allowed)], problem).into_response()
}

/// Tells background-sync clients that batches are welcome, and how large.
async fn advertise() -> impl IntoResponse {
    let document = Advertisement {
        batch: Some(BatchEndpoint {
            url: batch::PATH.into(),
            max_entries: batch::MAX_ENTRIES,
            max_bytes: batch::MAX_BODY_BYTES,
            prefix: batch::PREFIX.into(),
        }),
    };
    ([(header::CACHE_CONTROL, "max-age=3600")], axum::Json(document))
}

async fn method_not_allowed(method: Method) -> Response {
    only(&method, "GET, HEAD, POST", "/api/posts")
}

/// Deletes idempotency keys older than `ttl` every few minutes, for as long
/// as the server runs. A key only has to outlive every retry of its request.
pub fn spawn_key_purge(db: Db, ttl: Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(300));
        loop {
            every.tick().await;
            let cutoff = posts::now_ms().saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
            match bgsync_server::idempotency::purge_older_than(&db.pool, cutoff).await {
                Ok(purged) => tracing::debug!(purged, "expired idempotency keys purged"),
                Err(e) => tracing::warn!("purging old idempotency keys failed (will retry): {e}"),
            }
        }
    });
}

/// Opens the database and serves until SIGTERM or SIGINT (Ctrl-C), then
/// drains the requests in flight for at most the configured grace.
pub async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let db = db::connect(&config.database_url)
        .await
        .map_err(|e| format!("cannot open the database {}: {e}", config.database_url))?;
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e} (choose another with --addr)", config.addr))?;
    println!("feed: serving on http://{} (database {})", listener.local_addr()?, config.database_url);
    spawn_key_purge(db.clone(), Duration::from_secs(config.key_ttl_secs));
    let drained = bgsync_server::serve::serve(
        listener,
        router(AppState::new(db.clone())),
        config.limits,
        bgsync_server::serve::shutdown_signal(),
    )
    .await?;
    if drained.cut > 0 {
        println!("feed: stopped; {} connection(s) still busy after the grace period were closed", drained.cut);
    } else {
        println!("feed: stopped; every request in flight was answered");
    }
    db.pool.close().await;
    Ok(())
}

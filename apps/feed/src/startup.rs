//! Building the app and serving it.

use crate::db::Db;
use crate::routes::{batch, posts};
use crate::{assets, db, Config};
use axum::extract::DefaultBodyLimit;
use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
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
    let batch = Router::new()
        .route(batch::PATH, post(batch::handle))
        .layer(DefaultBodyLimit::max(batch::MAX_BODY_BYTES))
        .with_state(batch::BatchState { api: api.clone(), db });
    api.merge(batch).route(WELL_KNOWN_PATH, get(advertise)).fallback(assets::serve)
}

/// Tells background-sync clients that batches are welcome, and how large.
async fn advertise() -> impl IntoResponse {
    let document = Advertisement {
        batch: Some(BatchEndpoint {
            url: batch::PATH.into(),
            max_entries: batch::MAX_ENTRIES,
            max_bytes: batch::MAX_BODY_BYTES,
        }),
    };
    ([(header::CACHE_CONTROL, "max-age=3600")], axum::Json(document))
}

async fn method_not_allowed(method: Method) -> impl IntoResponse {
    let problem = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not allowed here; /api/posts takes GET and POST."),
    );
    ([(header::ALLOW, "GET, POST")], problem)
}

/// Deletes idempotency keys older than `ttl` every few minutes, for as long
/// as the server runs. A key only has to outlive every retry of its request.
pub fn spawn_key_purge(db: Db, ttl: Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(300));
        loop {
            every.tick().await;
            let cutoff = posts::now_ms().saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
            if let Err(e) = bgsync_server::idempotency::purge_older_than(&db.pool, cutoff).await {
                eprintln!("feed: purging old idempotency keys failed (will retry): {e}");
            }
        }
    });
}

/// Opens the database and serves until Ctrl-C.
pub async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let db = db::connect(&config.database_url)
        .await
        .map_err(|e| format!("cannot open the database {}: {e}", config.database_url))?;
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e} (choose another with --addr)", config.addr))?;
    println!("feed: serving on http://{} (database {})", listener.local_addr()?, config.database_url);
    spawn_key_purge(db.clone(), Duration::from_secs(config.key_ttl_secs));
    axum::serve(listener, router(AppState::new(db.clone())))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    db.pool.close().await;
    Ok(())
}

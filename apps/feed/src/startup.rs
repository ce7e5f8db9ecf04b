//! Building the app and serving it.

use crate::routes::posts;
use crate::state::AppState;
use crate::{assets, db, Config};
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bgsync_server::batch::BatchConfig;
use bgsync_server::{idempotency, Problem};
use std::time::Duration;
use tokio::net::TcpListener;

/// The whole app: the API, the batch endpoint and the embedded PWA.
pub fn router(state: AppState) -> Router {
    router_wrapping_api(state, |api| api)
}

/// The app with the API routes wrapped by `wrap` (middleware), which then
/// also applies to each entry of a batch, since a batch runs its entries
/// through those same routes.
pub fn router_wrapping_api(state: AppState, wrap: impl FnOnce(Router) -> Router) -> Router {
    let writer = state.db.writer.clone();
    let api = wrap(
        Router::new()
            .route("/api/posts", get(posts::list).post(posts::create))
            .layer(DefaultBodyLimit::max(posts::MAX_BODY_BYTES))
            .with_state(state),
    );
    let batches = bgsync_server::batch::router(api.clone(), writer.clone(), BatchConfig::default());
    let app = api
        .merge(batches)
        .merge(bgsync_server::metrics::router(writer))
        .fallback(fallback)
        .layer(middleware::from_fn(bgsync_server::metrics::track));
    // axum's own refusals (a method a route does not take) as problems, and
    // every answer `nosniff`.
    bgsync_server::problem::everywhere(app)
}

/// Unknown paths: a problem under `/api/`, else the app's files.
async fn fallback(method: Method, uri: Uri, headers: axum::http::HeaderMap) -> Response {
    if uri.path().starts_with("/api/") {
        return api_not_found(uri).await.into_response();
    }
    assets::serve(method, uri, headers).await
}

async fn api_not_found(uri: Uri) -> Problem {
    Problem::not_found(format!("There is no API route at {}; the API is /api/posts.", uri.path()))
}

/// Opens the database and serves until SIGTERM or SIGINT (Ctrl-C), then
/// drains the requests in flight for at most the configured grace.
pub async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let mut db = db::connect(&config.database_url)
        .await
        .map_err(|e| format!("cannot open the database {}: {e}", config.database_url))?;
    if !config.group_commit {
        db.writer = bgsync_server::Writer::per_request(db.pool.clone());
    }
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e} (choose another with --addr)", config.addr))?;
    say(&format!("feed: serving on http://{} (database {})", listener.local_addr()?, config.database_url));
    // A key only has to outlive every retry of its request.
    idempotency::spawn_purge(db.writer.clone(), Duration::from_secs(config.key_ttl_secs), Duration::from_secs(300));
    let drained = bgsync_server::serve::serve(
        listener,
        router(AppState::new(db.clone())),
        config.limits,
        bgsync_server::serve::shutdown_signal(),
    )
    .await?;
    if drained.cut > 0 {
        say(&format!("feed: stopped; {} connection(s) still busy after the grace period were closed", drained.cut));
    } else {
        say("feed: stopped; every request in flight was answered");
    }
    db.pool.close().await;
    Ok(())
}

/// A line for the operator on stdout; a closed stdout (a supervisor that
/// stopped reading) is no reason to fail.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

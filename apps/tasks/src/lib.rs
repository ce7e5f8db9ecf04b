//! The tasks app: a to-do list that keeps working offline, built on
//! bgsync's public pieces only. Its page (plain JavaScript, `static/`)
//! queues edits (PUT, PATCH, DELETE of a task: one ordered queue) and
//! analytics events (an unordered, batched queue), and reads the tasks from
//! a pulled feed; bgsync's ready worker delivers. The server below mounts
//! bgsync-server's batch router beside its own routes, on SQLite or
//! PostgreSQL.

pub mod assets;
pub mod db;
pub mod routes;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use bgsync_server::batch::BatchConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// The whole app: its API, bgsync's batch endpoint and the page.
pub fn router(db: db::Db) -> Router {
    let api = Router::new()
        .route("/api/tasks", get(routes::tasks::list))
        .route("/api/tasks/{id}", put(routes::tasks::put).patch(routes::tasks::patch).delete(routes::tasks::delete))
        .route("/api/events", post(routes::events::record))
        .layer(DefaultBodyLimit::max(routes::MAX_BODY_BYTES))
        .with_state(db.clone());
    let batches = bgsync_server::batch::router(api.clone(), db.writer.clone(), BatchConfig::default());
    let app = api
        .merge(batches)
        .merge(bgsync_server::metrics::router(db.writer))
        .fallback(assets::serve)
        .layer(axum::middleware::from_fn(bgsync_server::metrics::track));
    // axum's own refusals (a 405, a path that is not UTF-8) as problems, and
    // every answer `nosniff`.
    bgsync_server::problem::everywhere(app)
}

/// Opens the database and serves until SIGTERM or SIGINT.
pub async fn serve(addr: SocketAddr, database_url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let db = db::connect(database_url).await.map_err(|e| format!("cannot open the database {database_url}: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    say(&format!("tasks: serving on http://{} (database {database_url})", listener.local_addr()?));
    bgsync_server::idempotency::spawn_purge(db.writer.clone(), Duration::from_secs(86_400), Duration::from_secs(300));
    let limits = bgsync_server::serve::Limits::default();
    bgsync_server::serve::serve(listener, router(db.clone()), limits, bgsync_server::serve::shutdown_signal()).await?;
    db.pool.close().await;
    Ok(())
}

/// A line for the operator on stdout; a closed stdout (a supervisor that
/// stopped reading) is no reason to fail.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

//! Building the app and serving it.

use crate::routes::posts;
use crate::{assets, db, Config};
use axum::extract::DefaultBodyLimit;
use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bgsync_server::Problem;
use sqlx::SqlitePool;
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct AppState {
    pub db: SqlitePool,
}

/// The whole app: the API and the embedded PWA.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/posts", get(posts::list).post(posts::create))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(posts::MAX_BODY_BYTES))
        .fallback(assets::serve)
        .with_state(state)
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

/// Opens the database and serves until Ctrl-C.
pub async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let pool = db::connect(&config.database_url)
        .await
        .map_err(|e| format!("cannot open the database {}: {e}", config.database_url))?;
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e} (choose another with --addr)", config.addr))?;
    println!("feed: serving on http://{} (database {})", listener.local_addr()?, config.database_url);
    axum::serve(listener, router(AppState { db: pool.clone() }))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    pool.close().await;
    Ok(())
}

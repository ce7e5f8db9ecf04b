//! The tasks server for tests: the real app on a random port, on a SQLite
//! file or a fresh PostgreSQL database (`BGSYNC_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`; the tests fail, never skip,
//! when it cannot be reached), with a log of the requests it received.

#![allow(dead_code)]

use axum::extract::Request;
use axum::middleware::{self, Next};
#[allow(unused_imports)]
pub use bgsync_testkit::eventually;
use bgsync_testkit::postgres::{create_database, drop_database, on_own_runtime};
use std::sync::{Arc, Mutex};

pub struct Server {
    pub url: String,
    pub pool: sqlx::AnyPool,
    requests: Arc<Mutex<Vec<String>>>,
    /// A batch request whose body contains this breaks on the network.
    breaker: Arc<Mutex<Option<String>>>,
    /// While true, batch requests wait before they are run.
    hold: Arc<tokio::sync::watch::Sender<bool>>,
    postgres_database: Option<String>,
    _dir: tempfile::TempDir,
    /// Ends the test binary when the test outlasts its limit.
    _watchdog: Option<bgsync_testkit::watchdog::Watchdog>,
}

impl Server {
    pub async fn start(postgres: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, postgres_database) = if postgres {
            let (url, name) = create_database("tasks_test").await;
            (url, Some(name))
        } else {
            (format!("sqlite://{}", dir.path().join("tasks.db").display()), None)
        };
        let db = tasks::db::connect(&database_url).await.expect("the test database");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let breaker: Arc<Mutex<Option<String>>> = Arc::default();
        let hold = Arc::new(tokio::sync::watch::Sender::new(false));
        let (log, breaks, held) = (requests.clone(), breaker.clone(), hold.clone());
        let app = tasks::router(db.clone()).layer(middleware::from_fn(move |req: Request, next: Next| {
            let (log, breaks, held) = (log.clone(), breaks.clone(), held.clone());
            async move {
                log.lock().unwrap().push(format!("{} {}", req.method(), req.uri()));
                if req.uri().path() == "/api/sync/batch" {
                    let _ = held.subscribe().wait_for(|held| !*held).await;
                }
                let marker = breaks.lock().unwrap().clone();
                match marker {
                    Some(marker) if req.uri().path() == "/api/sync/batch" => {
                        break_if_carrying(req, next, &marker).await
                    }
                    _ => next.run(req).await,
                }
            }
        }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let _watchdog = bgsync_testkit::watchdog::limit_this_test();
        Self { url, pool: db.pool, requests, breaker, hold, postgres_database, _dir: dir, _watchdog }
    }

    /// From now on a batch request carrying `marker` (anywhere in its body)
    /// breaks on the network: its answer's body fails midway, as when a
    /// proxy resets the connection. Other requests, smaller batches without
    /// it among them, go through.
    pub fn break_batches_containing(&self, marker: &str) {
        *self.breaker.lock().unwrap() = Some(marker.to_owned());
    }

    /// While `held`, batch requests arrive (and are logged) but wait,
    /// unanswered, until it is false again: a round in progress for as
    /// long as a test needs one.
    pub fn hold_batches(&self, held: bool) {
        self.hold.send_replace(held);
    }

    /// Every request so far, as "METHOD /path?query".
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// The tasks as stored: (id, title, done, deleted), in version order.
    pub async fn tasks(&self) -> Vec<(String, String, i64, i64)> {
        sqlx::query_as("SELECT id, title, done, deleted FROM tasks ORDER BY version")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    pub async fn count(&self, table: &str) -> i64 {
        let (n,): (i64,) =
            sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&self.pool).await.unwrap();
        n
    }
}

/// Runs the request, unless its body carries `marker`: then answers with
/// a body that fails after its headers, which the browser reports as a
/// network error.
async fn break_if_carrying(req: Request, next: Next, marker: &str) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    if String::from_utf8_lossy(&bytes).contains(marker) {
        // Some bytes first, and time for them to leave: a connection that
        // breaks before any answer byte is one Chromium sends the POST
        // again on, by itself (several times).
        use futures_util::StreamExt;
        let broken = futures_util::stream::iter([Ok(axum::body::Bytes::from_static(b"{\"results\": ["))]).chain(
            futures_util::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "broken by the test"))
            }),
        );
        return axum::response::Response::builder()
            .header("content-type", "application/json")
            .body(axum::body::Body::from_stream(broken))
            .unwrap();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(name) = self.postgres_database.take() {
            let pool = self.pool.clone();
            // (A pool's close waits for every connection to come back, with
            // no limit of its own.)
            on_own_runtime(async move {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(10), pool.close()).await;
            });
            on_own_runtime(async move { drop_database(&name).await });
        }
    }
}

//! The real server for tests: the feed app on a random port, on a SQLite
//! file in a temporary directory or a fresh PostgreSQL database, on a
//! runtime of its own so a test can stop it dead (every connection dropped,
//! as when the process dies) and start it again on the same port.
//!
//! PostgreSQL: `BGSYNC_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`) must reach a server that lets
//! that user create databases. Tests fail, never skip, when it does not.

#![allow(dead_code)]

/// Each test, once on SQLite and once on PostgreSQL.
#[allow(unused_macros)]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(feed::db::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(feed::db::Backend::Postgres).await
                }
            )*
        }
    };
}

pub mod browser;
pub mod webdriver;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use feed::db::Backend;
use feed::AppState;
use sqlx::Connection;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct TestServer {
    pub addr: SocketAddr,
    pub database_url: String,
    pub backend: Backend,
    pub state: Option<AppState>,
    fault: Arc<Fault>,
    before_commit: Arc<bgsync_server::FailPoint>,
    requests: Arc<std::sync::Mutex<Vec<(String, u16)>>>,
    net: Arc<Net>,
    extra: Option<axum::Router>,
    runtime: Option<tokio::runtime::Runtime>,
    postgres_database: Option<String>,
    _dir: tempfile::TempDir,
    /// Ends the test binary when the test outlasts its limit.
    _watchdog: Option<bgsync_testkit::watchdog::Watchdog>,
}

/// The network between browser and API as the server sees it: an emulated
/// latency per request, a fault mode, and what crossed.
#[derive(Default)]
pub struct Net {
    latency_ms: std::sync::atomic::AtomicU64,
    /// Milliseconds every API read (`GET` under `/api/`) waits on top.
    read_delay_ms: std::sync::atomic::AtomicU64,
    /// Milliseconds the body of a batch's answer comes after its head.
    batch_body_delay_ms: std::sync::atomic::AtomicU64,
    /// Files whose path starts with this wait that many milliseconds.
    slow_files: std::sync::Mutex<Option<(String, u64)>>,
    fail_every: std::sync::atomic::AtomicU64,
    seen: std::sync::atomic::AtomicU64,
    /// Requests whose body carries this text have their connection broken.
    poison: std::sync::Mutex<Option<String>>,
    /// Requests whose body carries this text are refused 400 with an HTML
    /// page, as by a web application firewall before the server.
    blocked: std::sync::Mutex<Option<String>>,
    /// Requests refused for it.
    pub refused_by_firewall: std::sync::atomic::AtomicU64,
    /// API request bodies larger than this many bytes are answered 413, as
    /// a proxy before the server with a smaller limit does (0: none).
    max_body_bytes: std::sync::atomic::AtomicU64,
    /// Requests answered 413 for it.
    pub too_large: std::sync::atomic::AtomicU64,
    /// API requests (under `/api/`) received.
    pub requests: std::sync::atomic::AtomicU64,
    /// Batch requests (`POST /api/sync/batch`) being answered now, and the
    /// most there ever were at once.
    pub batches_in_flight: std::sync::atomic::AtomicU64,
    pub max_batches_in_flight: std::sync::atomic::AtomicU64,
    /// Bytes of API request bodies received.
    pub bytes_up: std::sync::atomic::AtomicU64,
    /// Bytes of API response bodies sent.
    pub bytes_down: std::sync::atomic::AtomicU64,
    /// Bytes of the batch endpoint's answers (part of `bytes_down`).
    pub batch_bytes_down: std::sync::atomic::AtomicU64,
}

use bgsync_testkit::postgres::on_own_runtime as block_on;
pub use bgsync_testkit::postgres::{create_database, drop_database};

/// A fault the test injects in front of `POST /api/posts`: answer with this
/// status instead of handling the request.
#[derive(Default)]
struct Fault {
    status: AtomicU16,
    failed: AtomicUsize,
    /// Posts whose body contains this are refused with 400 (a poison entry).
    poison: std::sync::Mutex<Option<String>>,
    /// The Idempotency-Key of every post that reached the API.
    keys: std::sync::Mutex<Vec<String>>,
    /// Posts without this header (name, value) are refused with 401.
    required_header: std::sync::Mutex<Option<(String, String)>>,
    /// The `Authorization` header of every post that reached the API.
    authorizations: std::sync::Mutex<Vec<Option<String>>>,
    /// Milliseconds every post waits before it is handled.
    delay_ms: std::sync::atomic::AtomicU64,
    /// `Retry-After` seconds sent with an injected status (0: none).
    retry_after_secs: std::sync::atomic::AtomicU64,
}

impl TestServer {
    /// Starts the app on a fresh SQLite file and a random port.
    pub fn start() -> Self {
        Self::start_on(Backend::Sqlite)
    }

    /// Starts the app on a fresh database of `backend` and a random port.
    pub fn start_on(backend: Backend) -> Self {
        Self::start_with(backend, None)
    }

    /// Starts the app on a fresh SQLite file with more routes beside it
    /// (a benchmark's pages).
    pub fn start_with_routes(routes: axum::Router) -> Self {
        Self::start_with(Backend::Sqlite, Some(routes))
    }

    fn start_with(backend: Backend, extra: Option<axum::Router>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, postgres_database) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.path().join("feed.db").display()), None),
            Backend::Postgres => {
                let (url, name) = block_on(create_database("feed_test"));
                (url, Some(name))
            }
        };
        Self::serve(dir, database_url, backend, postgres_database, extra)
    }

    /// Another server on the same database (several stateless servers).
    pub fn another_on_same_database(&self) -> Self {
        Self::serve(tempfile::tempdir().unwrap(), self.database_url.clone(), self.backend, None, None)
    }

    fn serve(
        dir: tempfile::TempDir,
        database_url: String,
        backend: Backend,
        postgres_database: Option<String>,
        extra: Option<axum::Router>,
    ) -> Self {
        let mut server = Self {
            addr: "127.0.0.1:0".parse().unwrap(),
            database_url,
            backend,
            state: None,
            fault: Arc::default(),
            before_commit: Arc::default(),
            requests: Arc::default(),
            net: Arc::default(),
            extra,
            runtime: None,
            postgres_database,
            _dir: dir,
            _watchdog: bgsync_testkit::watchdog::limit_this_test(),
        };
        server.up();
        server
    }

    /// Makes every post fail after its effect, before its commit.
    pub fn fail_before_commit(&self, armed: bool) {
        self.before_commit.arm(armed);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn origin(&self) -> String {
        self.url()
    }

    /// Starts serving again on the same port and database.
    pub fn up(&mut self) {
        assert!(self.runtime.is_none(), "the server is already up");
        let listener = bind(self.addr);
        self.addr = listener.local_addr().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let url = self.database_url.clone();
        let fault = self.fault.clone();
        let before_commit = self.before_commit.clone();
        let requests = self.requests.clone();
        let net = self.net.clone();
        let extra = self.extra.clone();
        // Migrations run before the port answers, so a test never races them.
        // On the server's runtime: a connection opened on a runtime that is
        // then dropped fails when it is used ("the Tokio context is being
        // shut down"), and the pool keeps the one it opened to check the URL.
        let handle = runtime.handle().clone();
        let db = std::thread::spawn(move || {
            handle.block_on(async move { feed::db::connect(&url).await.expect("test database") })
        })
        .join()
        .unwrap();
        let state = AppState { before_commit, ..AppState::new(db) };
        self.state = Some(state.clone());
        runtime.spawn(async move {
            // The faults wrap the API routes, so they also reach each entry
            // of a batch.
            let app = feed::router_wrapping_api(state, |api| {
                api.layer(middleware::from_fn(move |req: Request, next: Next| {
                    let fault = fault.clone();
                    async move { inject(&fault, req, next).await }
                }))
            })
            .merge(extra.unwrap_or_default())
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                let requests = requests.clone();
                async move { log(&requests, req, next).await }
            }))
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                let net = net.clone();
                async move { network(&net, req, next).await }
            }));
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
        self.runtime = Some(runtime);
    }

    /// Stops serving at once: the listener and every open connection close,
    /// as when the process is killed.
    pub fn down(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Tasks are dropped on the runtime's threads; `up` waits for
            // the port if they have not let go of it yet.
            runtime.shutdown_background();
        }
    }

    /// From now on, answer every `POST /api/posts` with `status` (or serve
    /// normally with `None`); a 3xx redirects to the app's page.
    pub fn fail_posts_with(&self, status: Option<u16>) {
        self.fault.status.store(status.unwrap_or(0), Ordering::SeqCst);
    }

    /// [`Self::fail_posts_with`], the answer asking to retry after `secs`.
    pub fn fail_posts_with_retry_after(&self, status: u16, secs: u64) {
        self.fault.retry_after_secs.store(secs, Ordering::SeqCst);
        self.fail_posts_with(Some(status));
    }

    /// From now on, refuse every post whose body contains `marker` with a
    /// 400 problem, as a server refuses input it will never accept.
    pub fn refuse_posts_containing(&self, marker: Option<&str>) {
        *self.fault.poison.lock().unwrap() = marker.map(str::to_owned);
    }

    /// The Idempotency-Key of every post that reached the API, alone or in
    /// a batch, in arrival order.
    pub fn keys_received(&self) -> Vec<String> {
        self.fault.keys.lock().unwrap().clone()
    }

    /// From now on, refuse with 401 every post that lacks the header
    /// `name: value` (or accept all with `None`).
    pub fn require_header(&self, header: Option<(&str, &str)>) {
        *self.fault.required_header.lock().unwrap() = header.map(|(n, v)| (n.to_owned(), v.to_owned()));
    }

    /// The `Authorization` header of every post that reached the API.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.fault.authorizations.lock().unwrap().clone()
    }

    /// API request bodies over `bytes` are answered 413 with an HTML page
    /// (a proxy's limit, below what the server advertises).
    pub fn limit_bodies(&self, bytes: Option<u64>) {
        self.net.max_body_bytes.store(bytes.unwrap_or(0), Ordering::SeqCst);
    }

    /// From now on, every API request whose body carries `marker` (a post
    /// alone, or a batch holding it) has its connection broken after the
    /// first bytes of an answer: the browser's `fetch` fails with a network
    /// error, as behind a proxy that cannot stomach one request.
    pub fn break_requests_carrying(&self, marker: Option<&str>) {
        *self.net.poison.lock().unwrap() = marker.map(str::to_owned);
    }

    /// From now on, every API request whose body carries `marker` (a post
    /// alone, or a batch holding it) is answered 400 with a firewall's HTML
    /// page, as a web application firewall before the server that objects
    /// to something in one post does.
    pub fn block_requests_carrying(&self, marker: Option<&str>) {
        *self.net.blocked.lock().unwrap() = marker.map(str::to_owned);
    }

    /// Every API request waits `ms` before it is handled: the network's
    /// round trip, emulated.
    pub fn set_latency(&self, ms: u64) {
        self.net.latency_ms.store(ms, Ordering::SeqCst);
    }

    /// From now on, every file whose path starts with `prefix` (such as
    /// "/bgsync_fallback-") is served `ms` late; `None` stops.
    pub fn delay_files(&self, slow: Option<(&str, u64)>) {
        *self.net.slow_files.lock().unwrap() = slow.map(|(prefix, ms)| (prefix.to_owned(), ms));
    }

    /// From now on, every read under `/api/` (a `GET`: the feed's pulls)
    /// waits `ms` before it is handled, so that a test can act while one is
    /// under way.
    pub fn delay_reads(&self, ms: u64) {
        self.net.read_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// From now on, the answer to a batch request sends its status line and
    /// headers as soon as the server has them, and its body `ms` later (a
    /// slow link, or a proxy that holds bodies back).
    pub fn delay_batch_bodies(&self, ms: u64) {
        self.net.batch_body_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// From now on, every `n`-th POST under `/api/` (counting HTTP requests:
    /// a batch is one), starting with the first, is answered 500 before it
    /// is handled; `None` stops.
    pub fn fail_every(&self, n: Option<u64>) {
        self.net.seen.store(0, Ordering::SeqCst);
        self.net.fail_every.store(n.unwrap_or(0), Ordering::SeqCst);
    }

    /// What crossed the emulated network so far.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// From now on, every post waits `ms` before it is handled (a slow
    /// server, so that a test can act in the middle of a delivery).
    pub fn delay_posts(&self, ms: u64) {
        self.fault.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Every request so far, as `"METHOD /path?query"` with the status
    /// answered.
    pub fn request_log(&self) -> Vec<(String, u16)> {
        self.requests.lock().unwrap().clone()
    }

    /// How many requests came in as `"METHOD /path?query"`.
    pub fn requests(&self, line: &str) -> usize {
        self.requests.lock().unwrap().iter().filter(|(l, _)| l == line).count()
    }

    /// How many requests the fault answered.
    pub fn failed_posts(&self) -> usize {
        self.fault.failed.load(Ordering::SeqCst)
    }

    /// How many posts are stored.
    pub async fn count_posts(&self) -> i64 {
        self.count("posts").await
    }

    /// The stored posts as (id, title, location), read from the database
    /// itself rather than through the API.
    pub async fn stored_posts(&self) -> Vec<(String, String, String)> {
        self.rows("SELECT id, title, location FROM posts ORDER BY seq").await
    }

    /// Rows in a table, read from the database itself.
    pub async fn count(&self, table: &str) -> i64 {
        let rows: Vec<(i64,)> = self.rows(&format!("SELECT COUNT(*) FROM {table}")).await;
        rows[0].0
    }

    /// The rows `sql` selects from the test's database, on a connection of
    /// its own, within 30 s (else a failure that names the query). Not a
    /// pool made per read: closing one waits for its connection to come
    /// back from a task the pool spawns, with no limit, and the tests read
    /// every 100 ms while they wait for posts (a CI run hung twice in
    /// `stranded.rs`, a test idle with its browser open, where these reads
    /// are most frequent).
    async fn rows<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let read = async {
            sqlx::any::install_default_drivers();
            let mut db = sqlx::AnyConnection::connect(&self.database_url).await.unwrap();
            let rows = sqlx::query_as(sql).fetch_all(&mut db).await;
            let _ = db.close().await;
            rows.unwrap()
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .unwrap_or_else(|_| panic!("reading `{sql}` took more than 30 s"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        if let Some(state) = self.state.take() {
            // A request the runtime's shutdown cut off may hold a
            // connection that never comes back: give up on it after 10 s.
            block_on(async move {
                if tokio::time::timeout(Duration::from_secs(10), state.db.pool.close()).await.is_err() {
                    eprintln!("the test server's pool did not close within 10 s: left to the process's end");
                }
            });
        }
        if let Some(name) = self.postgres_database.take() {
            block_on(async move { drop_database(&name).await });
        }
    }
}

fn bind(addr: SocketAddr) -> std::net::TcpListener {
    // After `down`, the old socket may take a moment to be released.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => {
                listener.set_nonblocking(true).unwrap();
                return listener;
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting to bind {addr}: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("cannot bind {addr}: {e}"),
        }
    }
}

/// Emulates the network for API requests: latency, every n-th POST
/// answered 500, and counts of what crossed.
async fn network(net: &Net, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/api/") && !path.starts_with("/.well-known/") {
        let slow = net.slow_files.lock().unwrap().clone();
        if let Some((prefix, ms)) = slow.filter(|(prefix, _)| path.starts_with(prefix.as_str())) {
            eprintln!("holding {path} ({prefix}) for {ms} ms");
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        return next.run(req).await;
    }
    let latency = net.latency_ms.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let api = path.starts_with("/api/");
    if api {
        net.requests.fetch_add(1, Ordering::SeqCst);
        let up = req.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
        net.bytes_up.fetch_add(up, Ordering::SeqCst);
    }
    let limit = net.max_body_bytes.load(Ordering::SeqCst);
    if api && limit > 0 {
        let length = req.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if length.unwrap_or(0) > limit {
            net.too_large.fetch_add(1, Ordering::SeqCst);
            let page = "<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>";
            return (StatusCode::PAYLOAD_TOO_LARGE, [("content-type", "text/html")], page).into_response();
        }
    }
    let read_delay = net.read_delay_ms.load(Ordering::SeqCst);
    if api && req.method() == Method::GET && read_delay > 0 {
        tokio::time::sleep(Duration::from_millis(read_delay)).await;
    }
    let poison = net.poison.lock().unwrap().clone();
    let blocked = net.blocked.lock().unwrap().clone();
    let req = if api && (poison.is_some() || blocked.is_some()) {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        if poison.is_some_and(|marker| text.contains(&marker)) {
            return broken_response();
        }
        if blocked.is_some_and(|marker| text.contains(&marker)) {
            net.refused_by_firewall.fetch_add(1, Ordering::SeqCst);
            let page = "<html><body><h1>Request blocked</h1><p>Rule 941100 matched.</p></body></html>";
            return (StatusCode::BAD_REQUEST, [("content-type", "text/html")], page).into_response();
        }
        Request::from_parts(parts, axum::body::Body::from(bytes))
    } else {
        req
    };
    let every = net.fail_every.load(Ordering::SeqCst);
    if api && req.method() == Method::POST && every > 0 && net.seen.fetch_add(1, Ordering::SeqCst).is_multiple_of(every)
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected fault").into_response();
    }
    let batch = req.uri().path() == "/api/sync/batch";
    if batch {
        let now = net.batches_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        net.max_batches_in_flight.fetch_max(now, Ordering::SeqCst);
    }
    let response = next.run(req).await;
    if batch {
        net.batches_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    if api {
        // The body's own size: a handler's answer has no Content-Length
        // header yet (hyper writes it from the body's size).
        let header = response.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok());
        let down = header.or(axum::body::HttpBody::size_hint(response.body()).exact()).unwrap_or(0);
        net.bytes_down.fetch_add(down, Ordering::SeqCst);
        if batch {
            net.batch_bytes_down.fetch_add(down, Ordering::SeqCst);
        }
    }
    let delay = net.batch_body_delay_ms.load(Ordering::SeqCst);
    if batch && delay > 0 {
        // (Its bytes counted above, from the body's size.)
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
        let later = futures_util::stream::once(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            Ok::<_, std::io::Error>(bytes)
        });
        return Response::from_parts(parts, axum::body::Body::from_stream(later));
    }
    response
}

/// An answer whose body fails after its first bytes, which the browser
/// reports as a network error. (Some bytes first, and time for them to
/// leave: a connection that breaks before any answer byte is one Chromium
/// sends the POST again on, by itself, several times.)
fn broken_response() -> Response {
    use futures_util::StreamExt;
    let broken = futures_util::stream::iter([Ok(axum::body::Bytes::from_static(b"{\"results\": ["))]).chain(
        futures_util::stream::once(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "broken by the test"))
        }),
    );
    Response::builder().header("content-type", "application/json").body(axum::body::Body::from_stream(broken)).unwrap()
}

/// A route serving the feed's declaration (`/bgsync-config.js`, loaded by
/// its page and its worker) with `extra` fields on its posts queue, such as
/// `ordered: false`: for routes beside the app
/// ([`TestServer::start_with_routes`]).
pub fn posts_queue_declared_with(extra: &str) -> axum::Router {
    let queue = r#"{ name: "sync-posts", tag: "sync-new-posts" }"#;
    declared_replacing(queue, &format!(r#"{{ name: "sync-posts", tag: "sync-new-posts", {extra} }}"#))
}

/// The same with `extra` fields on the queue the worker captures requests
/// into (`requests`), such as `timeoutMs: 1000`.
pub fn capture_queue_declared_with(extra: &str) -> axum::Router {
    let tag = r#"tag: "bgsync-requests","#;
    declared_replacing(tag, &format!("{tag} {extra},"))
}

/// A route serving the feed's declaration with `from` replaced by `to`.
pub fn declared_replacing(from: &str, to: &str) -> axum::Router {
    let declared = String::from_utf8(feed::assets::find("/bgsync-config.js").unwrap().body.to_vec()).unwrap();
    assert!(declared.contains(from), "the feed's declaration changed: {declared}");
    let declared = declared.replace(from, to);
    axum::Router::new().route(
        "/bgsync-config.js",
        axum::routing::get(move || {
            std::future::ready(
                ([(axum::http::header::CONTENT_TYPE, "text/javascript")], declared.clone()).into_response(),
            )
        }),
    )
}

/// Records every request the server receives (and prints it with
/// `BGSYNC_TEST_LOG` set).
async fn log(requests: &std::sync::Mutex<Vec<(String, u16)>>, req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map_or_else(|| req.uri().path().to_owned(), |p| p.to_string());
    let line = format!("{} {target}", req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    if std::env::var_os("BGSYNC_TEST_LOG").is_some() {
        eprintln!("server: {line} -> {} in {:.1} ms", response.status(), started.elapsed().as_secs_f64() * 1000.0);
    }
    requests.lock().unwrap().push((line, response.status().as_u16()));
    response
}

async fn inject(fault: &Fault, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || req.uri().path() != "/api/posts" {
        return next.run(req).await;
    }
    if let Some(key) = req.headers().get("idempotency-key").and_then(|k| k.to_str().ok()) {
        fault.keys.lock().unwrap().push(key.to_owned());
    }
    let authorization = req.headers().get("authorization").and_then(|k| k.to_str().ok()).map(str::to_owned);
    fault.authorizations.lock().unwrap().push(authorization);
    let delay = fault.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let required = fault.required_header.lock().unwrap().clone();
    if let Some((name, value)) = required {
        if req.headers().get(&name).and_then(|v| v.to_str().ok()) != Some(value.as_str()) {
            fault.failed.fetch_add(1, Ordering::SeqCst);
            let problem = bgsync_server::Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Sign in again",
                format!("This server wants the header {name}."),
            );
            return problem.into_response();
        }
    }
    let status = fault.status.load(Ordering::SeqCst);
    if status != 0 {
        fault.failed.fetch_add(1, Ordering::SeqCst);
        let mut response = (StatusCode::from_u16(status).unwrap(), "injected fault").into_response();
        if (300..400).contains(&status) {
            // To the app's page, as a server sends an expired session to
            // its sign-in page (which answers 200).
            response.headers_mut().insert("location", axum::http::HeaderValue::from_static("/"));
        }
        let retry_after = fault.retry_after_secs.load(Ordering::SeqCst);
        if retry_after > 0 {
            response.headers_mut().insert("retry-after", retry_after.into());
        }
        return response;
    }
    let marker = fault.poison.lock().unwrap().clone();
    let Some(marker) = marker else { return next.run(req).await };
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    if String::from_utf8_lossy(&bytes).contains(&marker) {
        fault.failed.fetch_add(1, Ordering::SeqCst);
        let problem = bgsync_server::Problem::new(
            StatusCode::BAD_REQUEST,
            "poison",
            "Refused",
            "This post is refused by the test server.",
        );
        return problem.into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

pub use bgsync_testkit::eventually;

/// Where a server process started with `--addr 127.0.0.1:0` listens: the
/// address on the line it prints first ("… serving on http://ADDR …"). The
/// server picks the port, so no parallel test can take it first. The rest
/// of its stdout is read (and dropped) in the background.
pub fn listening_address(child: &mut std::process::Child) -> String {
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout piped"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the server did not say where it listens: {line:?}"))
        .to_owned()
}

//! Serving an app over HTTP/1.1 so that hostile or broken clients cannot
//! hold the server: a deadline for a request's headers (which also closes
//! an idle keep-alive connection), a deadline for its body, a bound on open
//! connections, and a shutdown that drains requests in flight for at most a
//! grace period.
//!
//! `axum::serve` has none of these knobs: a client that sends half a header
//! line, announces a body it never sends, or keeps a connection idle holds
//! a socket and a task forever, and enough of them exhaust the process's
//! file descriptors.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// What a connection and a request may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// From the moment the server waits for a request (a new connection,
    /// or a kept-alive one after its last answer) until its headers are
    /// complete. An idle keep-alive connection is closed after this too.
    pub header_timeout: Duration,
    /// From the request's headers until its body has been read.
    pub body_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// After a shutdown signal: how long requests in flight may still run.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// How a [`serve`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    /// Connections still open when the grace period ran out, closed then.
    pub cut: usize,
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops
/// accepting, lets requests in flight finish (closing each connection after
/// its answer) for at most [`Limits::shutdown_grace`], and closes the rest.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<Drained> {
    let body_timeout = limits.body_timeout;
    let app =
        app.layer(middleware::from_fn(move |req: Request, next: Next| with_body_deadline(req, next, body_timeout)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: keep serving the others.
                    tracing::warn!("accepting a connection failed (still serving): {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(TokioIo::new(ProblemIo::new(stream)), service);
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let _slot = slot;
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopping.wait_for(|stop| *stop) => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop.send(true);
    let drained =
        tokio::time::timeout(limits.shutdown_grace, async { while connections.join_next().await.is_some() {} }).await;
    let cut = if drained.is_err() { connections.len() } else { 0 };
    connections.shutdown().await;
    Ok(Drained { cut })
}

/// A connection's socket that gives hyper's own refusals a problem body.
///
/// hyper answers a request it cannot read (a request line or header it
/// cannot parse, conflicting framing, a URL or headers over its limits)
/// before any route runs, with a bare 400, 414 or 431, `content-length: 0`
/// and `connection: close`. No hook changes that answer, so it is
/// recognised where it is written, as one head alone, and written as a
/// problem instead. Anything else passes through untouched.
struct ProblemIo<T> {
    inner: T,
    /// The problem answer being written in place of hyper's head, and how
    /// much of it is out.
    replacing: Option<(Vec<u8>, usize)>,
}

impl<T> ProblemIo<T> {
    fn new(inner: T) -> Self {
        Self { inner, replacing: None }
    }
}

/// The problem answer for `head` when it is hyper's own refusal.
fn problem_for_refusal(head: &[u8]) -> Option<Vec<u8>> {
    let status = head.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let detail = match status {
        b"400" => {
            "The request is not HTTP/1.1 this server can read (its request line, a header, or its framing such as \
                   Content-Length and Transfer-Encoding); nothing was done. Send a well-formed request."
        }
        b"414" => "The request's URL is longer than this server reads; nothing was done. Send the data in the body.",
        b"431" => {
            "The request's headers are too many (over 100) or too large; nothing was done. Send fewer or \
                   smaller headers."
        }
        _ => return None,
    };
    let lower = head.to_ascii_lowercase();
    let has = |line: &[u8]| lower.windows(line.len()).any(|w| w == line);
    if !(head.ends_with(b"\r\n\r\n") && has(b"\r\ncontent-length: 0\r\n") && has(b"\r\nconnection: close\r\n")) {
        return None;
    }
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let status_line = std::str::from_utf8(&head[..line_end]).ok()?;
    let code = axum::http::StatusCode::from_bytes(status).ok()?;
    crate::metrics::METRICS.unreadable.with_label_values(&[code.as_str()]).inc();
    tracing::debug!(status = code.as_u16(), "a request the HTTP layer could not read was refused");
    let body = serde_json::to_vec(&crate::problem::of_status(code, detail)).ok()?;
    let mut answer = format!(
        "{status_line}\r\ncontent-type: {}\r\ncontent-length: {}\r\nx-content-type-options: nosniff\r\n\
         connection: close\r\n\r\n",
        crate::problem::CONTENT_TYPE,
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

impl<T: tokio::io::AsyncWrite + Unpin> ProblemIo<T> {
    /// Writes `buf` (hyper's whole head or a part of what it writes), or
    /// the problem in its place; `Ok(n)` says how much of `buf` is done.
    fn write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.replacing.is_none() {
            // hyper's refusal is one short head, written first and alone.
            if buf.len() > 256 || !buf.starts_with(b"HTTP/1.1 4") {
                return Pin::new(&mut self.inner).poll_write(cx, buf);
            }
            match problem_for_refusal(buf) {
                Some(answer) => self.replacing = Some((answer, 0)),
                None => return Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        let (answer, written) = self.replacing.as_mut().expect("set above");
        while *written < answer.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                other => return other,
            }
        }
        self.replacing = None;
        Poll::Ready(Ok(buf.len()))
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for ProblemIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for ProblemIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        // A head alone comes as one slice (a body would follow in others).
        match bufs {
            [head] if self.replacing.is_some() || head.starts_with(b"HTTP/1.1 4") => self.write(cx, head),
            _ => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Resolves at the first SIGTERM (what systemd, Docker and Kubernetes send)
/// or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn with_body_deadline(req: Request, next: Next, timeout: Duration) -> Response {
    let sleep = Box::pin(tokio::time::sleep(timeout));
    let req = req.map(|body| Body::new(DeadlineBody { inner: body, sleep, timeout }));
    next.run(req).await
}

/// The error a request body gives when it was not received in time; see
/// [`crate::json::parse`], which answers it with 408.
#[derive(Debug)]
pub struct BodyTimedOut(pub Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body was not received within {} s", self.0.as_secs_f64())
    }
}

impl std::error::Error for BodyTimedOut {}

/// A request body that fails once its deadline passes, however slowly its
/// bytes trickle in.
struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut(self.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Logs to stderr what the server's `tracing` events say (storage
/// failures, accept errors, purges, and with `debug` every request and
/// batch entry), filtered by `RUST_LOG` in the `target=level` form
/// (`info`, the default; `warn`; `bgsync_server=debug,info`). Call once, at
/// the start of `main`. An unreadable `RUST_LOG` is an error that says why.
pub fn init_logging() -> Result<(), String> {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => value.parse::<Targets>().map_err(|e| {
            format!("RUST_LOG={value:?} is not a filter ({e}); use levels such as info or bgsync_server=debug,info")
        })?,
        _ => Targets::new().with_default(tracing::Level::INFO),
    };
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(true))
        .with(filter)
        .try_init()
        .map_err(|e| format!("logging was already set up: {e}"))
}

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
        let connection = http.serve_connection(TokioIo::new(stream), service);
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

//! The real server process against clients that stall: partial headers, a
//! trickled or announced-but-unsent body, idle keep-alive connections, more
//! stalled connections than file descriptors, and SIGTERM or SIGINT with a
//! request in flight.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// The feed binary on a fresh SQLite file, with `flags`, under a file
    /// descriptor limit of `max_files`.
    fn start(flags: &str, max_files: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("feed.db").display());
        // Port 0: the server picks a free port and says which (a port picked
        // here could be taken by a parallel test before the server binds it).
        let script = format!("ulimit -n {max_files} && exec \"$0\" --addr 127.0.0.1:0 --database-url {db} {flags}");
        let mut child = Command::new("sh")
            .args(["-c", &script, env!("CARGO_BIN_EXE_feed")])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the feed binary starts");
        let addr = common::listening_address(&mut child);
        Self { child, addr, _dir: dir }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its status and how long it took.
    fn wait(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(started.elapsed() < limit, "the server still runs after {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads until the server closes the connection; returns what it sent and
/// how long it took.
fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
}

fn post_head(addr: &str, length: usize) -> String {
    format!("POST /api/posts HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n")
}

const BODY: &str = r#"{"title":"In flight","location":"Wire"}"#;

#[test]
fn stalled_headers_bodies_and_idle_connections_are_closed_in_time() {
    let server = Server::start("--header-timeout 1 --body-timeout 1", 1024);

    // Half a request line and no end of headers.
    let mut partial = server.connect();
    partial.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let (_, took) = read_until_closed(&mut partial);
    assert!(took < Duration::from_secs(4), "partial headers held the connection {took:?}");

    // A body announced and never sent.
    let mut unsent = server.connect();
    unsent.write_all(post_head(&server.addr, BODY.len()).as_bytes()).unwrap();
    let (answer, took) = read_until_closed(&mut unsent);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(took < Duration::from_secs(4), "an unsent body held the connection {took:?}");

    // A body trickled a byte at a time, each within the header timeout.
    let mut trickled = server.connect();
    trickled.write_all(post_head(&server.addr, BODY.len()).as_bytes()).unwrap();
    let started = Instant::now();
    for byte in BODY.as_bytes() {
        if trickled.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let (answer, _) = read_until_closed(&mut trickled);
    assert!(answer.starts_with("HTTP/1.1 408"), "a trickled body gets 408: {answer}");

    // An idle keep-alive connection after a complete request.
    let mut idle = server.connect();
    idle.write_all(format!("GET /.well-known/bgsync HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes()).unwrap();
    let (answer, took) = read_until_closed(&mut idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < Duration::from_secs(4), "an idle keep-alive connection was kept {took:?}");
}

/// Before: with `ulimit -n 128`, 200 stalled connections made the server
/// stop answering for good.
#[test]
fn more_stalled_connections_than_file_descriptors_do_not_stop_the_server() {
    let server = Server::start("--header-timeout 2 --max-connections 64", 128);
    let stalled: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = server.connect();
            stream.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    let mut client = server.connect();
    client
        .write_all(
            format!("GET /.well-known/bgsync HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.addr)
                .as_bytes(),
        )
        .unwrap();
    let (answer, _) = read_until_closed(&mut client);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(15), "answered after {:?}", started.elapsed());
    drop(stalled);
}

/// Before: SIGTERM killed the process at once, cutting requests in flight;
/// SIGINT drained with no deadline.
#[test]
fn sigterm_and_sigint_drain_requests_in_flight_then_exit_zero() {
    for signal in ["TERM", "INT"] {
        let mut server = Server::start("--shutdown-grace 5 --body-timeout 60", 1024);
        // A request in flight: its handler is reading the body (the
        // server said "100 Continue" when it started) and half of it is in.
        let mut in_flight = server.connect();
        let head = post_head(&server.addr, BODY.len()).replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n");
        in_flight.write_all(head.as_bytes()).unwrap();
        let mut continued = [0u8; 25];
        in_flight.read_exact(&mut continued).unwrap();
        assert!(continued.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"), "{:?}", String::from_utf8_lossy(&continued));
        in_flight.write_all(&BODY.as_bytes()[..10]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        server.signal(signal);
        std::thread::sleep(Duration::from_millis(300));
        assert!(server.child.try_wait().unwrap().is_none(), "SIG{signal}: the process waits for the request");
        assert!(TcpStream::connect(&server.addr).is_err(), "SIG{signal}: no new connections once stopping");
        in_flight.write_all(&BODY.as_bytes()[10..]).unwrap();
        let (answer, _) = read_until_closed(&mut in_flight);
        assert!(answer.starts_with("HTTP/1.1 201"), "SIG{signal}: the request in flight is answered: {answer}");
        let (status, _) = server.wait(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "SIG{signal}");
    }

    // A request that never completes is cut at the grace period's end.
    let mut server = Server::start("--shutdown-grace 1 --body-timeout 60", 1024);
    let mut stalled = server.connect();
    stalled.write_all(post_head(&server.addr, BODY.len()).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.signal("TERM");
    let (status, took) = server.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(4), "exited after {took:?}");
}

/// Requests hyper itself refuses before any route runs (a request line or
/// header it cannot parse, conflicting framing, a URL or headers over its
/// limits) are answered with a problem like every other refusal; before,
/// with a bare status and an empty body.
#[test]
fn requests_that_are_not_http_are_answered_with_a_problem() {
    let server = Server::start("", 1024);
    let many_headers: String = (0..150).map(|i| format!("X-Header-{i}: {i}\r\n")).collect();
    let cases = [
        ("GET /api/posts HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n".to_owned(), "400", "not HTTP/1.1"),
        (
            format!("{}abcdefg", post_head(&server.addr, 7).replace("\r\n\r\n", "\r\nContent-Length: 8\r\n\r\n")),
            "400",
            "not HTTP/1.1",
        ),
        (format!("GET /api/posts?q={} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)), "414", "URL"),
        (format!("GET /api/posts HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"), "431", "headers"),
    ];
    for (request, status, says) in cases {
        let mut stream = server.connect();
        stream.write_all(request.as_bytes()).unwrap();
        let (answer, _) = read_until_closed(&mut stream);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{answer}");
        assert!(head.contains("content-type: application/problem+json"), "{answer}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{answer}");
        let problem: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(problem["status"].as_u64().map(|s| s.to_string()).as_deref(), Some(status), "{body}");
        // Named as axum's own refusals are (`problem::everywhere`).
        let kind = problem["type"].as_str().unwrap_or("");
        assert!(
            ["/problems/bad-request", "/problems/uri-too-long", "/problems/request-header-fields-too-large"]
                .contains(&kind),
            "{body}"
        );
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains(says) && !d.contains("  ")), "{body}");
    }
    // /metrics counts them by status.
    let mut scrape = server.connect();
    scrape
        .write_all(format!("GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.addr).as_bytes())
        .unwrap();
    let (metrics, _) = read_until_closed(&mut scrape);
    for line in [
        r#"bgsync_http_unreadable_total{status="400"} 2"#,
        r#"bgsync_http_unreadable_total{status="414"} 1"#,
        r#"bgsync_http_unreadable_total{status="431"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    // A good request on a connection that kept alive is answered as before,
    // and the bad one after it with its problem.
    let mut stream = server.connect();
    let good = format!("GET /.well-known/bgsync HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    stream.write_all(format!("{good}GET /a b HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
    let (answer, _) = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
    assert!(answer.ends_with('}'), "{answer}");
}

//! The server process killed with SIGKILL under write load, then restarted:
//! every post that got a 2xx is there, and resending every request (the
//! clients' retries) stores none of them twice.

mod common;

use common::TestServer;
use feed::db::Backend;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Process {
    child: Child,
    /// Where it listens, as the server said on stdout.
    addr: String,
    url: String,
}

/// Starts the binary on `addr` (`127.0.0.1:0`: a port the server picks, so
/// no other test can take it first) and waits for it to say where it
/// listens.
fn spawn(addr: &str, database_url: &str) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_feed"))
        .args(["--addr", addr, "--database-url", database_url])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the feed binary starts");
    let addr = common::listening_address(&mut child);
    let url = format!("http://{addr}");
    Process { child, addr, url }
}

async fn killed_under_load_keeps_every_acknowledged_post(backend: Backend) {
    // The database of a test server, served by the real binary instead.
    let mut db = TestServer::start_on(backend);
    db.down();
    let mut server = spawn("127.0.0.1:0", &db.database_url);
    let addr = server.addr.clone();

    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let http = reqwest::Client::new();
    let request = |n: usize| json!({ "id": format!("00000000-0000-4000-8000-{n:012}"), "title": format!("Crash {n}"), "location": "Disk" });
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (http, url, acked) = (http.clone(), server.url.clone(), acked.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let n = w * 100_000 + i;
                    let sent = http
                        .post(format!("{url}/api/posts"))
                        .header("Idempotency-Key", format!("crash-{n}"))
                        .json(&request(n))
                        .send()
                        .await;
                    match sent {
                        Ok(res) if res.status().is_success() => acked.lock().unwrap().push(n),
                        Ok(res) => panic!("HTTP {} under load", res.status()),
                        // The server is gone.
                        Err(_) => return i,
                    }
                }
                unreachable!()
            })
        })
        .collect();
    // Let the load run, then pull the plug.
    let start = Instant::now();
    while acked.lock().unwrap().len() < 200 && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    // Each writer's last request was cut off by the kill: it may or may not
    // have been applied.
    let mut cut_off = Vec::new();
    for (w, writer) in writers.into_iter().enumerate() {
        cut_off.push(w * 100_000 + writer.await.unwrap());
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200, "the load ran ({} acknowledged)", acked.len());

    let mut server = spawn(&addr, &db.database_url);
    let stored: Vec<(String, String, String)> = db.stored_posts().await;
    let stored_ids: std::collections::HashSet<&str> = stored.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(stored_ids.len(), stored.len(), "no post twice");
    for n in &acked {
        let id = format!("00000000-0000-4000-8000-{n:012}");
        assert!(stored_ids.contains(id.as_str()), "post {n} got a 2xx but is gone after the crash");
    }

    // Every client retries what was not acknowledged, and (as a browser
    // may) some of what was: each retry answers 2xx, and nothing is stored twice.
    let mut expected = stored_ids.iter().map(|id| id.to_string()).collect::<std::collections::HashSet<_>>();
    for n in cut_off.iter().chain(acked.iter().take(50)) {
        let res = http
            .post(format!("{}/api/posts", server.url))
            .header("Idempotency-Key", format!("crash-{n}"))
            .json(&request(*n))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "retry of {n}: {}", res.status());
        expected.insert(format!("00000000-0000-4000-8000-{n:012}"));
    }
    let after = db.stored_posts().await;
    assert_eq!(after.len(), expected.len(), "retries stored nothing twice");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_under_load_keeps_every_acknowledged_post() {
    killed_under_load_keeps_every_acknowledged_post(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_under_load_keeps_every_acknowledged_post() {
    killed_under_load_keeps_every_acknowledged_post(Backend::Postgres).await;
}

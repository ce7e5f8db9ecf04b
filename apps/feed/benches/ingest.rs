//! Ingest benchmark: the real server over real HTTP on loopback, single
//! POSTs and batches, on SQLite and PostgreSQL, at 1, 16 and 64 concurrent
//! clients. Every request carries an Idempotency-Key, as background sync
//! sends them.
//!
//! Run: `cargo bench -p feed --bench ingest` (PostgreSQL from
//! `BGSYNC_TEST_POSTGRES`, as for the tests). Prints a Markdown table and
//! writes it to `target/bench/ingest.md`. `BGSYNC_BENCH_SECONDS` sets the
//! time per cell (default 3).
//!
//! Then the real `feed` binary under `wrk` (Debian's, installed with apt
//! when missing and run as root): 64 connections, 2 threads,
//! `BGSYNC_BENCH_WRK_SECONDS` (default 10), a fresh post id and key per
//! POST (`benches/wrk-posts.lua`), server and load on the same machine; on
//! SQLite with group commit (the default), without it (`--group-commit
//! off`), and on PostgreSQL.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use common::TestServer;
use feed::db::Backend;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BATCH: usize = 50;

struct Cell {
    backend: &'static str,
    mode: String,
    clients: usize,
    requests: u64,
    posts: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn main() {
    // A benchmark's runs take as long as they take.
    bgsync_testkit::watchdog::set_turn_limit(None);
    let seconds: u64 = std::env::var("BGSYNC_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut cells = Vec::new();
    for (backend, name) in [(Backend::Sqlite, "SQLite"), (Backend::Postgres, "PostgreSQL")] {
        for batch in [false, true] {
            // The server runs at most half its pool's connections in batches
            // at once (4 on SQLite) and answers 503 to more: batches are
            // measured up to that.
            let clients: &[usize] = if batch { &[1, 4] } else { &[1, 16, 64] };
            for &clients in clients {
                // A fresh database per cell, so cells do not slow each other.
                let server = TestServer::start_on(backend);
                let cell = runtime.block_on(run(&server, batch, clients, Duration::from_secs(seconds)));
                eprintln!("{name} {} x{clients}: {:.0} posts/s", cell.mode, cell.posts as f64 / cell.seconds);
                cells.push(Cell { backend: name, ..cell });
            }
        }
    }
    let mut table = String::from(
        "| database | request | clients | requests/s | posts/s | p50 ms | p99 ms |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for c in &cells {
        table.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.1} |\n",
            c.backend,
            c.mode,
            c.clients,
            c.requests as f64 / c.seconds,
            c.posts as f64 / c.seconds,
            c.p50_ms,
            c.p99_ms
        ));
    }
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_owned()))
            .unwrap_or_default()
    );
    let wrk_seconds: u64 = std::env::var("BGSYNC_BENCH_WRK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut wrk_table = String::from(
        "| database | server | posts/s | p50 ms | p99 ms | non-2xx | stored |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for (name, backend, group_commit) in
        [("SQLite", Backend::Sqlite, true), ("SQLite", Backend::Sqlite, false), ("PostgreSQL", Backend::Postgres, true)]
    {
        let row = runtime.block_on(under_wrk(backend, group_commit, wrk_seconds));
        let server = match (backend, group_commit) {
            (Backend::Sqlite, true) => "group commit (default)",
            (Backend::Sqlite, false) => "`--group-commit off`",
            _ => "a transaction per request",
        };
        eprintln!("wrk {name} {server}: {row}");
        wrk_table.push_str(&format!("| {name} | {server} | {row} |\n"));
    }
    let report = format!(
        "Ingest, {seconds} s per cell, server and clients on one machine ({machine}):\n\n{table}\n\
         The `feed` binary under `wrk -t2 -c64 -d{wrk_seconds}s` (single POSTs, a fresh id and key each):\n\n{wrk_table}"
    );
    println!("{report}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ingest.md"), report).unwrap();
}

async fn run(server: &TestServer, batch: bool, clients: usize, time: Duration) -> Cell {
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let deadline = start + time;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, next, latencies) = (http.clone(), next.clone(), latencies.clone());
            let base = server.url();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let post = |i: u64| json!({ "title": format!("Post {i}"), "location": "Bench" });
                    let began = Instant::now();
                    let ok = if batch {
                        let entries: Vec<_> = (0..BATCH as u64)
                            .map(|j| {
                                let i = n * BATCH as u64 + j;
                                json!({ "key": format!("k-{i}"), "method": "POST", "path": "/api/posts", "headers": [], "body": post(i).to_string() })
                            })
                            .collect();
                        let res = http
                            .post(format!("{base}/api/sync/batch"))
                            .json(&json!({ "ordered": true, "entries": entries }))
                            .send()
                            .await
                            .unwrap();
                        let status = res.status();
                        let body: serde_json::Value = res.json().await.unwrap();
                        let results = body["results"].as_array().unwrap_or_else(|| panic!("{status}: {body}"));
                        results.iter().all(|r| r["status"] == 201)
                    } else {
                        let res = http
                            .post(format!("{base}/api/posts"))
                            .header("Idempotency-Key", format!("k-{n}"))
                            .json(&post(n))
                            .send()
                            .await
                            .unwrap();
                        res.status() == 201
                    };
                    assert!(ok, "every post is accepted");
                    mine.push(began.elapsed());
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    let requests = latencies.len() as u64;
    let posts = if batch { requests * BATCH as u64 } else { requests };
    assert_eq!(server.stored_posts().await.len() as u64, posts, "every acknowledged post is stored once");
    Cell {
        backend: "",
        mode: if batch { format!("batch of {BATCH}") } else { "single".into() },
        clients,
        requests,
        posts,
        seconds,
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
    }
}

/// The real binary on a fresh database under `wrk`; the table row's cells
/// after the first two.
async fn under_wrk(backend: Backend, group_commit: bool, seconds: u64) -> String {
    let wrk = bgsync_testkit::chromium::installed(&["wrk"], "wrk", "BGSYNC_WRK");
    let dir = tempfile::tempdir().unwrap();
    let (url, postgres) = match backend {
        Backend::Sqlite => (format!("sqlite://{}", dir.path().join("wrk.db").display()), None),
        Backend::Postgres => {
            let (url, name) = common::create_database("feed_wrk").await;
            (url, Some(name))
        }
    };
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_feed"))
        .args(["--addr", "127.0.0.1:0", "--database-url", &url])
        .args(["--group-commit", if group_commit { "on" } else { "off" }])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr = common::listening_address(&mut server);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/wrk-posts.lua");
    let output = std::process::Command::new(wrk)
        .args(["-t2", "-c64", &format!("-d{seconds}s"), "-s"])
        .arg(&script)
        .arg(format!("http://{addr}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let line = text.lines().find(|l| l.starts_with("BGSYNC ")).unwrap_or_else(|| panic!("wrk said: {text}"));
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    let (requests, duration_s) = (field("requests"), field("duration_us") / 1e6);
    let db = feed::db::connect(&url).await.unwrap();
    let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM posts").fetch_one(&db.pool).await.unwrap();
    db.pool.close().await;
    let _ = server.kill();
    let _ = server.wait();
    if let Some(name) = postgres {
        common::drop_database(&name).await;
    }
    let non_2xx = field("non2xx") as i64;
    assert!(stored as f64 >= requests - non_2xx as f64, "every answered post is stored ({stored} of {requests})");
    format!(
        "{:.0} | {:.1} | {:.1} | {non_2xx} | {stored}",
        requests / duration_s,
        field("p50_us") / 1000.0,
        field("p99_us") / 1000.0
    )
}

//! Ingest benchmark: the real server over real HTTP on loopback, single
//! POSTs and batches, on SQLite and PostgreSQL, at 1, 16 and 64 concurrent
//! clients. Every request carries an Idempotency-Key, as background sync
//! sends them.
//!
//! Run: `cargo bench -p feed --bench ingest` (PostgreSQL from
//! `BGSYNC_TEST_POSTGRES`, as for the tests). Prints a Markdown table and
//! writes it to `target/bench/ingest.md`. `BGSYNC_BENCH_SECONDS` sets the
//! time per cell (default 3).

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
    let seconds: u64 = std::env::var("BGSYNC_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut cells = Vec::new();
    for (backend, name) in [(Backend::Sqlite, "SQLite"), (Backend::Postgres, "PostgreSQL")] {
        for batch in [false, true] {
            for clients in [1, 16, 64] {
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
    let report = format!("Ingest, {seconds} s per cell, server and clients on one machine ({machine}):\n\n{table}");
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
                        let body: serde_json::Value = res.json().await.unwrap();
                        body["results"].as_array().unwrap().iter().all(|r| r["status"] == 201)
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

//! Background sync, side by side: bgsync, the seed tutorial's approach and
//! Workbox's background-sync `Queue`, measured in one run on this machine in
//! a real headless Chromium against the same server (the feed server on a
//! fresh SQLite file per run).
//!
//! Run: `cargo bench -p feed --bench sync` (needs npm, once, to fetch
//! `workbox-background-sync`, `workbox-core` and `esbuild` into
//! `target/bench/npm`; the app and the tests never need npm). Prints a
//! Markdown report and writes it to `target/bench/sync.md`.
//!
//! Each run: a fresh server and browser; the peer's page is opened and its
//! worker controls it; the worker is taken offline (DevTools network
//! emulation, which Background Sync honours); the page enqueues N posts one
//! after another (timed in the page); the server gets the emulated latency;
//! the worker goes back online, which fires the pending sync; the drain
//! ends when the server has stored all N posts and the peer's IndexedDB
//! store is empty; a peer that empties its store without delivering
//! everything, or stops making progress for 30 s, is reported unfinished.
//!
//! Settings: `BGSYNC_BENCH_REPS` (default 3), `BGSYNC_BENCH_SIZES` (default
//! `100,1000,10000`; 10,000 runs at 20 ms only, and once for the seed and
//! Workbox, whose runs take minutes), `BGSYNC_BENCH_PEERS`
//! (default `bgsync,seed,workbox`), `BGSYNC_BENCH_TIMEOUT` (seconds a drain
//! may take before it is reported as unfinished, default 300),
//! `BGSYNC_BENCH_UNORDERED=1` (bgsync's posts queue declared `ordered:
//! false`, as the poison run always has it: up to 4 batches at once).
//!
//! Long queues: `BGSYNC_BENCH_PEERS=bgsync BGSYNC_BENCH_HUGE=10000,100000
//! cargo bench -p feed --bench sync` fills bgsync's store directly with that
//! many posts, drains them at 20 ms and reports the worker's JavaScript heap
//! (DevTools `Runtime.getHeapUsage`, sampled every 100 ms) and how late the
//! page's event loop ran (`target/bench/sync-huge.md`).
//!
//! The feed's own page over a long queue: `BGSYNC_BENCH_RENDER=1000,10000,20000
//! cargo bench -p feed --bench sync` times, at each queue length, how long
//! a post queued through the API takes to show in the page's status line.
//!
//! Cold starts alone: `BGSYNC_BENCH_COLD=20 cargo bench -p feed --bench
//! sync` stops and wakes bgsync's worker that many times, first after it
//! idled 3 s each time (the browser stops a worker that idled 30 s), then
//! back to back, and prints when each step of its start ended.
//!
//! A probe: `BGSYNC_BENCH_PROBE=apps/feed/benches/probes/record-shape.js
//! cargo bench -p feed --bench sync` evaluates that script (an expression,
//! awaited) in bgsync's benchmark page with the worker offline, prints what
//! it returns and the page's CPU profile by function. `probes/` holds the
//! ones the README quotes.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use common::browser::{eval, worker_status, Chromium};
use common::TestServer;
use sqlx::any::AnyPoolOptions;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const LATENCIES: [u64; 2] = [0, 20];
/// A drain that makes no progress for this long has stopped for good.
const STALL: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Peer {
    Bgsync,
    Seed,
    Workbox,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Bgsync => "bgsync",
            Peer::Seed => "seed",
            Peer::Workbox => "workbox",
        }
    }
}

/// What goes wrong during a drain.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    /// Every n-th API request (the first, the n+1-th, …) answered 500 for
    /// the first 3 s, then the server recovers.
    Every(u64),
    /// One post (the middle one) breaks the connection of every request
    /// that carries it, for good: alone, or in a batch.
    Poison,
}

/// The title that marks the poisoned post.
const POISON: &str = "Poison post";

/// One drain run.
#[derive(Clone, Debug, Default)]
struct Run {
    enqueue_ms: Vec<f64>,
    /// None: not drained before the timeout.
    drain_ms: Option<f64>,
    stored: i64,
    left: u64,
    requests: u64,
    bytes: u64,
    /// bgsync: reading its whole queue from IndexedDB, in the page.
    idb_read_ms: Option<f64>,
}

fn main() {
    // A run holds its browser as long as its peers take (Workbox's 10,000
    // posts, up to BGSYNC_BENCH_TIMEOUT): no test's limit on a turn.
    bgsync_testkit::watchdog::set_turn_limit(None);
    let reps: usize = env_or("BGSYNC_BENCH_REPS", 3);
    let sizes: Vec<usize> = std::env::var("BGSYNC_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("BGSYNC_BENCH_SIZES: numbers separated by commas"))
        .collect();
    let peers: Vec<Peer> = std::env::var("BGSYNC_BENCH_PEERS")
        .unwrap_or_else(|_| "bgsync,seed,workbox".into())
        .split(',')
        .map(|p| match p.trim() {
            "bgsync" => Peer::Bgsync,
            "seed" => Peer::Seed,
            "workbox" => Peer::Workbox,
            other => panic!("BGSYNC_BENCH_PEERS: unknown peer {other}"),
        })
        .collect();
    let timeout = Duration::from_secs(env_or("BGSYNC_BENCH_TIMEOUT", 300));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let workbox_sw = if peers.contains(&Peer::Workbox) { bundle_workbox(&out.join("npm")) } else { String::new() };

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if let Ok(sizes) = std::env::var("BGSYNC_BENCH_HUGE") {
        // Long queues: bgsync alone, the queue filled straight into
        // IndexedDB (enqueueing 100,000 posts one by one takes minutes and
        // is measured above), then drained while the worker's heap is
        // sampled.
        let sizes: Vec<usize> =
            sizes.split(',').map(|s| s.trim().parse().expect("BGSYNC_BENCH_HUGE: numbers")).collect();
        let mut report = String::from(
            "| queued | drain ms | posts/s | requests | worker JS heap before MB | worker JS heap peak MB | worker wasm memory MB | page's longest task ms |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for n in sizes {
            let run = runtime.block_on(huge(n));
            eprintln!("huge n={n}: {run:?}");
            let drain = run.drain_ms.map_or_else(|| "not drained".to_owned(), |d| format!("{d:.0}"));
            let rate = run.drain_ms.map_or_else(|| "–".to_owned(), |d| format!("{:.0}", n as f64 / d * 1000.0));
            report.push_str(&format!(
                "| {n} | {drain} | {rate} | {} | {:.1} | {:.1} | {:.1} | {:.0} |\n",
                run.requests,
                run.heap_before / 1e6,
                run.heap_peak / 1e6,
                run.wasm_memory / 1e6,
                run.page_lag_ms
            ));
        }
        println!("{report}");
        std::fs::write(out.join("sync-huge.md"), report).unwrap();
        eprintln!("written to target/bench/sync-huge.md");
        return;
    }
    if let Ok(sizes) = std::env::var("BGSYNC_BENCH_RENDER") {
        let sizes: Vec<usize> =
            sizes.split(',').map(|s| s.trim().parse().expect("BGSYNC_BENCH_RENDER: numbers")).collect();
        let report = runtime.block_on(renders(&sizes, reps.max(5)));
        println!("{report}");
        return;
    }
    if let Ok(starts) = std::env::var("BGSYNC_BENCH_COLD") {
        let starts = starts.parse().expect("BGSYNC_BENCH_COLD: a number");
        let cold =
            runtime.block_on(async { (cold_starts(starts, IDLE).await, cold_starts(starts, Duration::ZERO).await) });
        println!("{}", cold_start_lines(&cold));
        return;
    }
    if let Ok(script) = std::env::var("BGSYNC_BENCH_PROBE") {
        // A script (file) evaluated in the bgsync peer's page with its
        // worker offline, for looking into a figure.
        // A path from where cargo was run, or from the workspace's root
        // (cargo runs a benchmark in its package's directory).
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(&script);
        let script = std::fs::read_to_string(&script)
            .or_else(|_| std::fs::read_to_string(&root))
            .unwrap_or_else(|e| panic!("BGSYNC_BENCH_PROBE={script}: {e}"));
        runtime.block_on(async {
            let server = TestServer::start_with_routes(routes(&workbox_sw, false));
            let chromium = Chromium::launch().await;
            let page = chromium.new_page(&format!("{}/bench/bgsync/", server.url())).await;
            assert!(eval::<bool>(&page, "peer.ready.then(() => true)").await);
            chromium.set_worker_offline(true).await;
            use chromiumoxide::cdp::js_protocol::profiler;
            page.execute(profiler::EnableParams::default()).await.unwrap();
            page.execute(profiler::StartParams::default()).await.unwrap();
            println!("{}", eval::<serde_json::Value>(&page, &script).await);
            let profile = page.execute(profiler::StopParams::default()).await.unwrap().result.profile;
            // Self time by function, from the sample counts.
            let total: i64 = profile.nodes.iter().map(|n| n.hit_count.unwrap_or(0)).sum();
            let mut by_name: BTreeMap<String, i64> = BTreeMap::new();
            for node in &profile.nodes {
                let name = format!(
                    "{} {}:{}",
                    node.call_frame.function_name, node.call_frame.url, node.call_frame.line_number
                );
                *by_name.entry(name).or_default() += node.hit_count.unwrap_or(0);
            }
            let mut top: Vec<_> = by_name.into_iter().collect();
            top.sort_by_key(|(_, hits)| -hits);
            for (name, hits) in top.iter().take(25) {
                println!("{:5.1}% {name}", *hits as f64 * 100.0 / total.max(1) as f64);
            }
            chromium.close().await;
        });
        return;
    }
    runtime.block_on(async {
        let mut runs: BTreeMap<(Peer, u64, usize), Vec<Run>> = BTreeMap::new();
        let mut chromium_version = String::new();
        for &n in &sizes {
            for latency in LATENCIES {
                if n >= 10_000 && latency == 0 {
                    continue;
                }
                for rep in 0..reps {
                    for &peer in &peers {
                        // 10,000 posts take Workbox minutes per run: its
                        // figure (and the seed's) comes from one run.
                        if n >= 10_000 && peer != Peer::Bgsync && rep > 0 {
                            continue;
                        }
                        let (run, version) = drain(peer, n, latency, &workbox_sw, timeout, None).await;
                        chromium_version = version;
                        eprintln!(
                            "{} n={n} latency={latency}ms rep={rep}: drain {:?} ms, enqueue median {:.2} ms, {} requests",
                            peer.name(),
                            run.drain_ms.map(|d| d.round()),
                            median(&run.enqueue_ms),
                            run.requests
                        );
                        runs.entry((peer, latency, n)).or_default().push(run);
                    }
                }
            }
        }
        let mut faults = BTreeMap::new();
        let mut poisons = BTreeMap::new();
        for &peer in &peers {
            let (run, _) = drain(peer, 100, 0, &workbox_sw, Duration::from_secs(30), Some(Fault::Every(3))).await;
            eprintln!("{} fault run: drain {:?} ms, stored {}, left {}", peer.name(), run.drain_ms, run.stored, run.left);
            faults.insert(peer, run);
            let (run, _) = drain(peer, 100, 0, &workbox_sw, Duration::from_secs(60), Some(Fault::Poison)).await;
            eprintln!("{} poison run: drain {:?} ms, stored {}, left {}", peer.name(), run.drain_ms, run.stored, run.left);
            poisons.insert(peer, run);
        }
        let cold = (cold_starts(reps, IDLE).await, cold_starts(reps, Duration::ZERO).await);
        let transaction_ms = (one_transaction_ms(1000, true).await, one_transaction_ms(1000, false).await);
        let report = report(&runs, (&faults, &poisons), &cold, transaction_ms, &workbox_sw, &chromium_version, reps);
        println!("{report}");
        std::fs::write(out.join("sync.md"), report).unwrap();
        eprintln!("written to target/bench/sync.md");
    });
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Installs Workbox and esbuild with npm (once) and bundles the Workbox
/// peer's worker.
fn bundle_workbox(npm_dir: &Path) -> String {
    let esbuild = npm_dir.join("node_modules/.bin/esbuild");
    if !esbuild.is_file() {
        std::fs::create_dir_all(npm_dir).unwrap();
        eprintln!("installing workbox-background-sync, workbox-core and esbuild with npm into {}", npm_dir.display());
        let ok = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                npm_dir.to_str().unwrap(),
                "workbox-background-sync@7.4.1",
                "workbox-core@7.4.1",
                "esbuild@0.28.2",
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "npm install failed: the Workbox peer needs npm and the npm registry");
    }
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/peers/workbox/sw-src.js");
    let bundled = npm_dir.join("workbox-sw.js");
    let ok = Command::new(&esbuild)
        .arg(&source)
        .args(["--bundle", "--minify", "--format=iife", "--define:process.env.NODE_ENV=\"production\""])
        .arg(format!("--outfile={}", bundled.display()))
        .env("NODE_PATH", npm_dir.join("node_modules"))
        .current_dir(npm_dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "esbuild could not bundle {}", source.display());
    std::fs::read_to_string(bundled).unwrap()
}

fn peer_file(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/peers").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The peers' pages and workers, beside the app.
/// With `unordered`, the feed's declaration (page and worker) with its
/// posts queue unordered.
fn routes(workbox_sw: &str, unordered: bool) -> Router {
    let js = |body: String| ([(header::CONTENT_TYPE, "text/javascript")], body).into_response();
    // Cross-origin isolated, so that `performance.now()` counts in 5 µs
    // steps rather than 100 µs: an enqueue takes about 1 ms, and its median
    // would otherwise move by whole tenths.
    let html = |body: String| {
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
                (header::HeaderName::from_static("cross-origin-embedder-policy"), "require-corp"),
            ],
            body,
        )
            .into_response()
    };
    let common = peer_file("common.js");
    let seed_page = peer_file("seed/index.html");
    let seed_sw = peer_file("seed/sw.js");
    let workbox_page = peer_file("workbox/index.html");
    let workbox_sw = workbox_sw.to_owned();
    let bgsync_page = peer_file("bgsync/index.html").replace("__BUNDLE__", feed::assets::BUNDLE);
    let router = if unordered { common::posts_queue_declared_with("ordered: false") } else { Router::new() };
    router
        .route("/bench/common.js", get(move || std::future::ready(js(common.clone()))))
        .route("/bench/seed/", get(move || std::future::ready(html(seed_page.clone()))))
        .route("/bench/seed/sw.js", get(move || std::future::ready(js(seed_sw.clone()))))
        .route("/bench/workbox/", get(move || std::future::ready(html(workbox_page.clone()))))
        .route("/bench/workbox/sw.js", get(move || std::future::ready(js(workbox_sw.clone()))))
        .route("/bench/bgsync/", get(move || std::future::ready(html(bgsync_page.clone()))))
}

/// One run: enqueue `n` posts with the worker offline, then drain them at
/// `latency` ms per request, with the `fault` if any. With
/// [`Fault::Poison`] the drain ends when every other post is stored and
/// the peer's store holds at most the poisoned one (which no retry can
/// deliver); bgsync's queue is declared unordered for it (an ordered queue
/// keeps what follows behind the poison until it is dead-lettered, by
/// design).
async fn drain(
    peer: Peer,
    n: usize,
    latency: u64,
    workbox_sw: &str,
    timeout: Duration,
    fault: Option<Fault>,
) -> (Run, String) {
    let poison = fault == Some(Fault::Poison);
    let unordered = poison || std::env::var_os("BGSYNC_BENCH_UNORDERED").is_some();
    let server = TestServer::start_with_routes(routes(workbox_sw, unordered));
    let chromium = Chromium::launch().await;
    let version = chromium.browser.version().await.map(|v| v.product).unwrap_or_default();
    let page = chromium.new_page(&format!("{}/bench/{}/", server.url(), peer.name())).await;
    assert!(eval::<bool>(&page, "peer.ready.then(() => true)").await, "{} did not start", peer.name());
    assert!(
        eval::<bool>(&page, "self.crossOriginIsolated").await,
        "{}: the page is not cross-origin isolated",
        peer.name()
    );
    chromium.set_worker_offline(true).await;

    let enqueue_ms: Vec<f64> = eval(
        &page,
        &format!(
            "(async () => {{ const times = []; for (let i = 0; i < {n}; i++) {{ \
               const post = {{ id: crypto.randomUUID(), title: ({poison} && i === {middle} ? '{POISON}' : 'Bench post ') + i, location: 'Bench' }}; \
               const t0 = performance.now(); await peer.enqueue(post); times.push(performance.now() - t0); }} \
             return times; }})()",
            middle = n / 2
        ),
    )
    .await;
    let queued: u64 = eval(&page, "peer.queued()").await;
    assert_eq!(queued, n as u64, "{}: not every post was queued", peer.name());

    let idb_read_ms = if peer == Peer::Bgsync {
        Some(
            eval::<f64>(
                &page,
                r#"new Promise((resolve, reject) => {
                    const t0 = performance.now();
                    const open = indexedDB.open("bgsync");
                    open.onsuccess = () => {
                        const range = IDBKeyRange.bound(["sync-posts"], ["sync-posts", []]);
                        const all = open.result.transaction("entries").objectStore("entries").getAll(range);
                        all.onsuccess = () => { open.result.close(); resolve(performance.now() - t0); };
                        all.onerror = () => reject(all.error);
                    };
                })"#,
            )
            .await,
        )
    } else {
        None
    };
    let pool = AnyPoolOptions::new().max_connections(1).connect(&server.database_url).await.unwrap();
    let stored = || async {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM posts").fetch_one(&pool).await.unwrap();
        count
    };
    server.set_latency(latency);
    let every = match fault {
        Some(Fault::Every(every)) => Some(every),
        _ => None,
    };
    server.fail_every(every);
    server.break_requests_carrying(poison.then_some(POISON));
    // Done when the server has this many and the peer's store holds at
    // most `owed`.
    let (goal, owed) = if poison { (n as i64 - 1, 1) } else { (n as i64, 0) };
    let start = Instant::now();
    let start_epoch_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() * 1e3;
    chromium.set_worker_offline(false).await;
    // The fault lasts 3 s (the peer's first attempts), then the server
    // recovers.
    let mut faulty = every.is_some();
    let mut run = Run { enqueue_ms, idb_read_ms, ..Run::default() };
    let mut quiet_since: Option<(i64, u64, Instant)> = None;
    loop {
        if faulty && start.elapsed() >= Duration::from_secs(3) {
            server.fail_every(None);
            faulty = false;
        }
        let count = stored().await;
        let left: u64 = if count >= goal || fault.is_some() { eval(&page, "peer.queued()").await } else { u64::MAX };
        if count >= goal && left <= owed {
            run.drain_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        // A peer that emptied its queue without delivering everything (or
        // stopped changing) is finished too: what is missing is lost.
        let now = (count, left, Instant::now());
        match quiet_since {
            Some((c, l, since)) if c == count && l == left => {
                if left == 0 && !faulty && since.elapsed() > Duration::from_secs(2) {
                    break;
                }
                // Nothing moved for long: the peer has stopped trying.
                if left != u64::MAX && since.elapsed() > STALL {
                    break;
                }
                if left == u64::MAX && since.elapsed() > STALL {
                    let left_now: u64 = eval(&page, "peer.queued()").await;
                    if left_now > 0 {
                        break;
                    }
                }
            }
            _ => quiet_since = Some(now),
        }
        if start.elapsed() > timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(if n > 1000 { 20 } else { 5 })).await;
    }
    if peer == Peer::Bgsync && std::env::var_os("BGSYNC_TEST_LOG").is_some() {
        let status = worker_status(&page).await;
        let rounds = status["rounds"].as_array().cloned().unwrap_or_default();
        let last = rounds.last().map(|r| r["phases"].clone());
        eprintln!("bgsync worker's last round (phase, ms): {}", last.unwrap_or_default());
        // When the rounds began, from the moment the worker went online.
        let began: Vec<String> =
            rounds.iter().filter_map(|r| r["at"].as_f64()).map(|at| format!("{:.1}", at - start_epoch_ms)).collect();
        eprintln!("bgsync rounds began (ms after going online): {}", began.join(", "));
        // When the last round's batch requests went and were answered
        // (the worker's Resource Timing), from the round's start: what
        // precedes a request beside the phases above.
        if let Some(at) = rounds.last().and_then(|r| r["at"].as_f64()) {
            let requests = chromium
                .worker_eval(&format!(
                    "JSON.stringify(performance.getEntriesByType('resource')\
                     .filter(e => e.name.includes('/api/sync/batch') && e.startTime + performance.timeOrigin >= {at})\
                     .map(e => [e.startTime + performance.timeOrigin - {at}, e.responseEnd + performance.timeOrigin - {at}]\
                     .map(t => t.toFixed(1)).join('–')).join(', '))"
                ))
                .await;
            eprintln!(
                "bgsync last round's batch requests (ms after it began, sent–answered): {}",
                requests.as_str().unwrap_or_default()
            );
        }
    }
    run.requests = server.net().requests.load(Ordering::SeqCst);
    run.bytes = server.net().bytes_up.load(Ordering::SeqCst) + server.net().bytes_down.load(Ordering::SeqCst);
    run.stored = stored().await;
    run.left = eval(&page, "peer.queued()").await;
    pool.close().await;
    chromium.close().await;
    (run, version)
}

/// A long-queue run ([`huge`]).
#[derive(Debug, Default)]
struct Huge {
    drain_ms: Option<f64>,
    requests: u64,
    heap_before: f64,
    heap_peak: f64,
    /// The worker's wasm memory at the end (it only grows: its peak).
    wasm_memory: f64,
    /// The longest the page's event loop was late by during the drain.
    page_lag_ms: f64,
}

/// `n` posts written straight into bgsync's store (as `enqueue` writes
/// them) with the worker offline, a sync registered, then drained at 20 ms
/// while the worker's live JavaScript heap is sampled every 100 ms (each
/// sample collects the garbage first, which slows the drain a little).
async fn huge(n: usize) -> Huge {
    let server = TestServer::start_with_routes(routes("", false));
    let chromium = Chromium::launch().await;
    let page = chromium.new_page(&format!("{}/bench/bgsync/", server.url())).await;
    assert!(eval::<bool>(&page, "peer.ready.then(() => true)").await, "bgsync did not start");
    chromium.set_worker_offline(true).await;
    let filled = common::browser::fill_queue(&page, "sync-posts", "sync-new-posts", n).await;
    assert_eq!(filled, n as u64);
    // The page's event loop, watched: how late a 10 ms timer fires.
    assert!(
        eval::<bool>(
            &page,
            "(() => { window.lag = 0; let last = performance.now(); \
               setInterval(() => { const now = performance.now(); window.lag = Math.max(window.lag, now - last - 10); \
               last = now; }, 10); return true; })()"
        )
        .await
    );
    let pool = AnyPoolOptions::new().max_connections(1).connect(&server.database_url).await.unwrap();
    let mut run = Huge { heap_before: chromium.worker_js_heap().await, ..Huge::default() };
    run.heap_peak = run.heap_before;
    server.set_latency(20);
    let start = Instant::now();
    chromium.set_worker_offline(false).await;
    while start.elapsed() < Duration::from_secs(900) {
        run.heap_peak = run.heap_peak.max(chromium.worker_js_heap().await);
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM posts").fetch_one(&pool).await.unwrap();
        if count >= n as i64 && eval::<u64>(&page, "peer.queued()").await == 0 {
            run.drain_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.page_lag_ms = eval(&page, "window.lag").await;
    run.wasm_memory = worker_status(&page).await["wasmMemoryBytes"].as_f64().unwrap_or_default();
    run.requests = server.net().requests.load(Ordering::SeqCst);
    pool.close().await;
    chromium.close().await;
    run
}

/// One SQLite transaction writing `n` posts and their idempotency keys
/// through the server's writer (median of 5): the server's way, the
/// statements on SQLite's C API on this thread (`bgsync_server::direct`),
/// and through sqlx (a round trip to its SQLite thread per statement).
async fn one_transaction_ms(n: usize, direct: bool) -> f64 {
    use bgsync_server::direct::Value;
    use bgsync_server::idempotency::{self, IdempotencyKey, StoredResponse};
    const INSERT_POST: &str =
        "INSERT INTO posts (id, title, location, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING";
    let dir = tempfile::tempdir().unwrap();
    let db = feed::db::connect(&format!("sqlite://{}", dir.path().join("floor.db").display())).await.unwrap();
    let answer = StoredResponse { status: 201, content_type: Some("application/json".into()), body: vec![b'x'; 100] };
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut tx = db.writer.begin().await.unwrap();
        for i in 0..n {
            let id = uuid::Uuid::new_v4().to_string();
            let key = IdempotencyKey::parse(&id.parse().unwrap()).unwrap();
            let title = format!("Bench post {i}");
            if direct {
                let direct = tx.sqlite().await.unwrap().expect("the server's SQLite writer runs statements directly");
                idempotency::claim_answered(&mut *direct, "", &key, "fingerprint", 0, &answer).await.unwrap();
                let post = [Value::Text(&id), Value::Text(&title), Value::Text("Bench"), Value::Integer(0)];
                direct.execute(INSERT_POST, &post).unwrap();
            } else {
                idempotency::claim_answered(&mut *tx, "", &key, "fingerprint", 0, &answer).await.unwrap();
                let insert = sqlx::query(INSERT_POST).bind(&id).bind(&title).bind("Bench").bind(0_i64);
                insert.execute(&mut *tx).await.unwrap();
            }
        }
        tx.commit().await.unwrap();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    median(&times)
}

/// The feed app's own page with a long queue: for each size, the queue
/// filled straight into IndexedDB (worker offline), then `reps` posts
/// queued through the API one at a time, each timed in the page from the
/// call until the status line shows the new count (the page renders 50 ms
/// after a burst of events, then reads the queue and rebuilds its list).
async fn renders(sizes: &[usize], reps: usize) -> String {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    assert!(eval::<bool>(&page, "navigator.serviceWorker.ready.then(() => true)").await);
    chromium.set_worker_offline(true).await;
    let mut report = String::from("| queued | enqueue → status line shows it, ms: median (min–max) |\n|---:|---:|\n");
    let mut queued = 0;
    for &n in sizes {
        queued =
            common::browser::fill_queue(&page, "sync-posts", "sync-new-posts", n.saturating_sub(queued as usize)).await;
        let mut times = Vec::new();
        for _ in 0..reps {
            times.push(
                eval::<f64>(
                    &page,
                    "new Promise((resolve) => { const status = document.querySelector('#sync-status'); \
                       const before = status.textContent; const start = performance.now(); \
                       const seen = new MutationObserver(() => { if (status.textContent !== before) { \
                         seen.disconnect(); resolve(performance.now() - start); } }); \
                       seen.observe(status, { childList: true, characterData: true, subtree: true }); \
                       wasm_bindgen.enqueue('sync-posts', { url: '/api/posts', \
                         body: JSON.stringify({ id: crypto.randomUUID(), title: 'Render', location: 'Bench' }) }); })",
                )
                .await,
            );
        }
        queued += reps as u64;
        report.push_str(&format!("| {queued} | {} |\n", spread(&times, 1)));
    }
    chromium.close().await;
    report
}

/// How long the worker idles before the cold starts' stops: the browser
/// stops an idle worker after 30 s (Chromium), and by then what the
/// instance's start left running (V8 optimising the code it ran, in
/// threads of its own) is long done.
const IDLE: Duration = Duration::from_secs(3);

/// bgsync's worker, stopped after idling for `idle`, then woken: when, in ms
/// from the worker's creation, its bootstrap ran, the wasm was read,
/// compiled, and the first Rust line ran (the cold start). With `idle`
/// zero, each stop comes as soon as the last start answered, and the next
/// start shares the two cores with what that one left running.
async fn cold_starts(reps: usize, idle: Duration) -> Vec<[f64; 4]> {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    let mut times = Vec::new();
    for _ in 0..reps.max(5) {
        tokio::time::sleep(idle).await;
        common::browser::stop_all_workers(&page).await;
        let status = worker_status(&page).await;
        let step = |name: &str| status["startSteps"][name].as_f64().expect("the worker reports its start's steps");
        let rust = status["coldStartMs"].as_f64().expect("the worker reports its cold start");
        times.push([step("bootstrap"), step("wasmRead"), step("compiled"), rust]);
    }
    chromium.close().await;
    times
}

fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn spread(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "–".into();
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.digits$} ({min:.digits$}–{max:.digits$})", median(values))
}

fn gzip_len(bytes: &[u8]) -> usize {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-9c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    child.wait_with_output().unwrap().stdout.len()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let kernel =
        Command::new("uname").arg("-sr").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    format!("{cpu}, {cores} cores, {}", kernel.unwrap_or_default())
}

fn report(
    runs: &BTreeMap<(Peer, u64, usize), Vec<Run>>,
    (faults, poisons): (&BTreeMap<Peer, Run>, &BTreeMap<Peer, Run>),
    cold: &(Vec<[f64; 4]>, Vec<[f64; 4]>),
    (transaction_ms, through_sqlx_ms): (f64, f64),
    workbox_sw: &str,
    chromium: &str,
    reps: usize,
) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# Background sync benchmark\n\n`cargo bench -p feed --bench sync`: {chromium} (headless), {}; \
         feed server on SQLite (WAL, synchronous=FULL); {reps} repetitions, median (min–max).\n\n",
        machine()
    ));
    out.push_str("## Drain: worker back online until the server has every post and IndexedDB is empty\n\n");
    out.push_str(
        "| peer | N | latency | drain ms | posts/s | requests | bytes | enqueue ms/post median | enqueue p99 |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for ((peer, latency, n), list) in runs {
        let drains: Vec<f64> = list.iter().filter_map(|r| r.drain_ms).collect();
        let unfinished = list.len() - drains.len();
        let drain = if unfinished > 0 {
            let left: Vec<String> =
                list.iter().filter(|r| r.drain_ms.is_none()).map(|r| (r.stored).to_string()).collect();
            format!("{} not finished (stored {})", unfinished, left.join(", "))
        } else {
            spread(&drains, 0)
        };
        let rate =
            if drains.is_empty() { "–".into() } else { format!("{:.0}", *n as f64 / (median(&drains) / 1000.0)) };
        let requests: Vec<f64> = list.iter().map(|r| r.requests as f64).collect();
        let bytes: Vec<f64> = list.iter().map(|r| r.bytes as f64).collect();
        let enqueue_medians: Vec<f64> = list.iter().map(|r| median(&r.enqueue_ms)).collect();
        let enqueue_p99: Vec<f64> = list.iter().map(|r| percentile(&r.enqueue_ms, 0.99)).collect();
        out.push_str(&format!(
            "| {} | {n} | {latency} ms | {drain} | {rate} | {:.0} | {:.0} | {} | {} |\n",
            peer.name(),
            median(&requests),
            median(&bytes),
            spread(&enqueue_medians, 2),
            spread(&enqueue_p99, 2),
        ));
    }
    out.push_str("\nRatios at N = 1000, 20 ms (medians):");
    let at = |peer, n| runs.get(&(peer, 20, n)).map(|l| l.iter().filter_map(|r| r.drain_ms).collect::<Vec<_>>());
    if let Some(ours) = at(Peer::Bgsync, 1000).filter(|d| !d.is_empty()).map(|d| median(&d)) {
        for peer in [Peer::Workbox, Peer::Seed] {
            if let Some(theirs) = at(peer, 1000).filter(|d| !d.is_empty()).map(|d| median(&d)) {
                out.push_str(&format!(" bgsync is {:.1}× faster than {};", theirs / ours, peer.name()));
            }
        }
        if let Some(big) = at(Peer::Bgsync, 10_000).filter(|d| !d.is_empty()).map(|d| median(&d)) {
            out.push_str(&format!(" 10,000 posts take {:.1}× the time of 1,000.", big / ours));
        }
        let reads: Vec<f64> =
            runs.get(&(Peer::Bgsync, 20, 1000)).into_iter().flatten().filter_map(|r| r.idb_read_ms).collect();
        // The batch request is the one round trip: the worker keeps what
        // the server advertised (learnt when it activated).
        let floor = 20.0 + median(&reads) + transaction_ms;
        out.push_str(&format!(
            "\n\nFloor for 1,000 posts at 20 ms: one round trip (20 ms) + reading the queue from IndexedDB ({:.0} ms, \
             measured in the page) + one SQLite transaction storing 1,000 posts and their keys ({transaction_ms:.0} ms \
             the server's way, on SQLite's C API; {through_sqlx_ms:.0} ms through sqlx, a round trip to its SQLite \
             thread per statement; measured on the same machine) = {floor:.0} ms; bgsync's drain is {:.1}× that.",
            median(&reads),
            ours / floor
        ));
    }
    out.push_str("\n\n## Fault run: 100 posts, 0 ms; every third API request (the first, fourth, …) answered 500 for 3 s, then the server recovers\n\n");
    out.push_str("| peer | stored | lost | left in IndexedDB | stored twice | drain ms (from online) | requests |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for (peer, run) in faults {
        let lost = if run.left == 0 { 100 - run.stored.min(100) } else { 0 };
        let drain = run.drain_ms.map(|d| format!("{d:.0}")).unwrap_or_else(|| "not drained".into());
        out.push_str(&format!(
            "| {} | {} | {lost} | {} | {} | {drain} | {} |\n",
            peer.name(),
            run.stored,
            run.left,
            (run.stored - 100).max(0),
            run.requests
        ));
    }
    out.push_str(&format!(
        "\n\n## Poison run: 100 posts, 0 ms; the 51st (\"{POISON}…\") breaks the connection of every request that \
         carries it, for good (after a 200 status line and the first bytes of the answer); bgsync's queue declared \
         unordered\n\n"
    ));
    out.push_str("| peer | good posts stored (of 99) | the poisoned post | ms until the 99 are stored | requests |\n");
    out.push_str("|---|---:|---|---:|---:|\n");
    for (peer, run) in poisons {
        let drain = run.drain_ms.map(|d| format!("{d:.0}")).unwrap_or_else(|| "never (stalled)".into());
        // It never reaches the server: kept if still in the store, lost if
        // the peer deleted it.
        let poisoned = match (run.left, 100 - run.stored - run.left as i64) {
            (1, 0) => "kept, retried on its own backoff",
            (0, 1) => "**lost**: deleted as if delivered",
            _ => "–",
        };
        out.push_str(&format!("| {} | {} | {poisoned} | {drain} | {} |\n", peer.name(), run.stored, run.requests));
    }
    out.push_str(
        "\n## Worker size and start\n\n| peer | worker code | raw bytes | gzip bytes |\n|---|---|---:|---:|\n",
    );
    let asset = |stem: &str, ext: &str| {
        feed::assets::ASSETS.iter().find(|a| a.path == format!("/{stem}.{ext}")).map(|a| a.body).unwrap_or_default()
    };
    let worker = feed::assets::WORKER;
    let (wasm, glue, sw) = (asset(worker, "wasm"), asset(worker, "js"), feed::assets::find("/sw.js").unwrap().body);
    // The app's sw.js imports its declaration and bgsync's bootstrap.
    let config = feed::assets::find("/bgsync-config.js").unwrap().body;
    let bootstrap = feed::assets::find("/bgsync-sw.js").unwrap().body;
    let total = [wasm, glue, sw, config, bootstrap].concat();
    for (name, bytes) in [
        ("wasm", wasm),
        ("wasm-bindgen glue", glue),
        ("sw.js (the feed's)", sw),
        ("bgsync-config.js (the feed's declaration)", config),
        ("bgsync-sw.js (bgsync's bootstrap)", bootstrap),
        ("total", &total[..]),
    ] {
        out.push_str(&format!("| bgsync | {name} | {} | {} |\n", bytes.len(), gzip_len(bytes)));
    }
    if !workbox_sw.is_empty() {
        out.push_str(&format!(
            "| workbox | bundled sw.js (esbuild, minified) | {} | {} |\n",
            workbox_sw.len(),
            gzip_len(workbox_sw.as_bytes())
        ));
    }
    let seed = peer_file("seed/sw.js");
    out.push_str(&format!("| seed | sw.js | {} | {} |\n", seed.len(), gzip_len(seed.as_bytes())));
    out.push('\n');
    out.push_str(&cold_start_lines(cold));
    out
}

/// The cold starts after an idle worker's stop, then back to back.
fn cold_start_lines((idle, at_once): &(Vec<[f64; 4]>, Vec<[f64; 4]>)) -> String {
    let line = |cold: &[[f64; 4]], when: &str| {
        let step = |i: usize| cold.iter().map(|c| c[i]).collect::<Vec<f64>>();
        format!(
            "bgsync worker cold start (worker created → first Rust line, {when}): {} ms over {} starts; \
             medians, ms from the worker's creation: bootstrap running {:.1}, wasm read from the shell cache {:.1}, \
             compiled {:.1}.\n",
            spread(&step(3), 1),
            cold.len(),
            median(&step(0)),
            median(&step(1)),
            median(&step(2)),
        )
    };
    line(idle, &format!("the worker stopped after idling {} s, as the browser stops it", IDLE.as_secs()))
        + "\n"
        + &line(at_once, "the worker stopped as soon as its last start answered, back to back")
}

//! What a hostile or careless client tries against the API and the batch
//! endpoint, each on a SQLite file and on a PostgreSQL database: a batch
//! must not starve ordinary requests or amplify reads, every refusal is a
//! problem, keys are scoped per client, the purge cannot break a claim,
//! conditional requests follow RFC 9110, and text is canonical and visible.

#[macro_use]
mod common;

use common::TestServer;
use feed::db::Backend;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn post_body(n: u64) -> Value {
    json!({ "id": format!("00000000-0000-4000-8000-{n:012}"), "title": format!("Post {n}"), "location": "Here" })
}

fn entry(key: &str, method: &str, path: &str, body: &str) -> Value {
    json!({ "key": key, "method": method, "path": path, "headers": [], "body": body })
}

async fn problem(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{status}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.len() > 10), "{body}");
    (status, body)
}

/// Before: a `GET` entry needed a second pooled connection while its batch
/// held the first, so 32 (SQLite) or 64 (PostgreSQL) concurrent batches
/// stalled every database access for 30 s and plain POSTs got 503.
async fn concurrent_batches_never_starve_ordinary_requests(backend: Backend) {
    let server = TestServer::start_on(backend);
    let http = Client::new();
    let url = format!("{}/api/sync/batch", server.url());
    let concurrent = if backend == Backend::Sqlite { 32 } else { 64 };
    let batches: Vec<_> = (0..concurrent)
        .map(|i| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let mut entries = vec![entry(&format!("read-{i}"), "GET", "/api/posts?limit=1", "")];
                for n in 0..20 {
                    let n = i * 100 + n;
                    entries.push(entry(&format!("w-{n}"), "POST", "/api/posts", &post_body(n).to_string()));
                }
                http.post(&url).json(&json!({ "ordered": false, "entries": entries })).send().await.unwrap()
            })
        })
        .collect();
    // Meanwhile, plain posts are answered at once.
    for n in 0..10 {
        let started = Instant::now();
        let res = http.post(format!("{}/api/posts", server.url())).json(&post_body(900_000 + n)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert!(started.elapsed() < Duration::from_secs(1), "a plain post took {:?}", started.elapsed());
    }
    let mut ran = 0;
    for batch in batches {
        let res = batch.await.unwrap();
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            let (_, body) = problem(res).await;
            assert_eq!(body["type"], "/problems/too-many-batches");
            continue;
        }
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        let results = body["results"].as_array().unwrap();
        assert_eq!(results[0]["status"], 400, "a read is refused in a batch: {}", results[0]);
        assert!(results[0]["body"].as_str().unwrap().contains("change state"));
        assert!(results[1..].iter().all(|r| r["status"] == 201), "{body}");
        ran += 1;
    }
    assert!(ran > 0, "some batches ran");
}

/// Before: 1,000 `GET /api/posts?limit=500` entries in a 92 KB batch
/// answered 855 MB.
async fn a_batch_of_reads_is_refused_entry_by_entry_and_answers_small(backend: Backend) {
    let server = TestServer::start_on(backend);
    let http = Client::new();
    for n in 0..100 {
        http.post(format!("{}/api/posts", server.url())).json(&post_body(n)).send().await.unwrap();
    }
    let entries: Vec<_> = (0..1000)
        .map(|i| entry(&format!("r-{i}"), if i % 2 == 0 { "GET" } else { "HEAD" }, "/api/posts?limit=500", ""))
        .collect();
    let res = http
        .post(format!("{}/api/sync/batch", server.url()))
        .json(&json!({ "ordered": false, "entries": entries }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    assert!(text.len() < 1000 * 600, "the answer is {} bytes", text.len());
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(body["results"].as_array().unwrap().iter().all(|r| r["status"] == 400));
}

/// A batch whose entries are slow stops running them once it has held its
/// transaction for its budget: the rest come back not attempted, and a
/// concurrent writer is not locked out.
async fn a_slow_batch_stops_at_its_time_budget_and_the_rest_is_sent_again(backend: Backend) {
    let server = TestServer::start_on(backend);
    server.delay_posts(150);
    let http = Client::new();
    let url = format!("{}/api/sync/batch", server.url());
    let entries: Vec<_> =
        (0..40).map(|n| entry(&format!("slow-{n}"), "POST", "/api/posts", &post_body(n).to_string())).collect();
    let started = Instant::now();
    let batch = tokio::spawn({
        let (http, url) = (http.clone(), url.clone());
        async move { http.post(&url).json(&json!({ "ordered": true, "entries": entries })).send().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = http.post(format!("{}/api/posts", server.url())).json(&post_body(500)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "a writer beside the batch is served");
    let body: Value = batch.await.unwrap().json().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "the batch took {:?}", started.elapsed());
    let results = body["results"].as_array().unwrap();
    let done = results.iter().take_while(|r| r["status"] == 201).count();
    assert!(done > 0 && done < 40, "{done} entries ran");
    assert!(results[done..].iter().all(|r| r["status"].is_null()), "the rest is not attempted: {body}");
    assert_eq!(server.stored_posts().await.len(), done + 1);
}

async fn every_refusal_is_a_problem_and_pages_carry_security_headers(backend: Backend) {
    let server = TestServer::start_on(backend);
    let http = Client::new();
    let base = server.url();
    let res = http.get(format!("{base}/api/sync/batch")).send().await.unwrap();
    assert_eq!(res.headers()["allow"], "POST");
    assert_eq!(problem(res).await.0, StatusCode::METHOD_NOT_ALLOWED);
    let res = http.post(format!("{base}/.well-known/bgsync")).send().await.unwrap();
    assert_eq!(problem(res).await.0, StatusCode::METHOD_NOT_ALLOWED);
    let res = http.delete(format!("{base}/")).send().await.unwrap();
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    assert_eq!(problem(res).await.0, StatusCode::METHOD_NOT_ALLOWED);
    let res = http.get(format!("{base}/api/nothing-here")).send().await.unwrap();
    assert_eq!(problem(res).await.0, StatusCode::NOT_FOUND);
    let res = http
        .post(format!("{base}/api/sync/batch"))
        .json(&json!({ "ordered": false, "entries": [entry("k", "PUT", "/api/nothing-here", "{}")] }))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["results"][0]["status"], 404);
    let entry_problem: Value = serde_json::from_str(body["results"][0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(entry_problem["status"], 404, "{entry_problem}");

    let page = http.get(format!("{base}/")).send().await.unwrap();
    let headers = page.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");
    let api = http.get(format!("{base}/api/posts")).send().await.unwrap();
    assert_eq!(api.headers()["x-content-type-options"], "nosniff");
    let advertised: Value = http.get(format!("{base}/.well-known/bgsync")).send().await.unwrap().json().await.unwrap();
    assert_eq!(advertised["batch"]["prefix"], "/api/");
}

/// Before: keys had one scope, so whoever learnt a key could claim it first
/// with another body and the owner's request failed with 422.
async fn keys_are_scoped_per_client(backend: Backend) {
    let server = TestServer::start_on(backend);
    let http = Client::new();
    let url = format!("{}/api/posts", server.url());
    let send = |client: Option<&str>, body: Value| {
        let mut req = http.post(&url).header("Idempotency-Key", "shared-key").json(&body);
        if let Some(client) = client {
            req = req.header("Bgsync-Client", client);
        }
        req.send()
    };
    let res = send(None, json!({ "title": "Squatter", "location": "Elsewhere" })).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = send(Some("owner-browser"), post_body(1)).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "the owner's key is its own");
    let res = send(Some("owner-browser"), post_body(1)).await.unwrap();
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    let res = send(Some("another browser"), post_body(2)).await.unwrap();
    assert_eq!(problem(res).await.0, StatusCode::BAD_REQUEST, "a client id is printable ASCII without spaces");
    // A batch's client id stands for its entries.
    let res = http
        .post(format!("{}/api/sync/batch", server.url()))
        .header("Bgsync-Client", "owner-browser")
        .json(&json!({ "ordered": true, "entries": [entry("shared-key", "POST", "/api/posts", &post_body(1).to_string())] }))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["results"][0]["status"], 201, "{body}");
    assert_eq!(server.stored_posts().await.len(), 2);
}

/// Before: when the purge deleted a key between a claim's conflict and its
/// next statement, a key row without an answer was stored, and every retry
/// of that key got 503 for a whole TTL.
async fn the_purge_racing_claims_never_leaves_a_key_without_its_answer(backend: Backend) {
    let server = TestServer::start_on(backend);
    let writer = server.state.as_ref().unwrap().db.writer.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let purger = tokio::spawn({
        let (writer, stop) = (writer.clone(), stop.clone());
        async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = bgsync_server::idempotency::purge_older_than(&writer, i64::MAX).await;
            }
        }
    });
    let http = Client::new();
    let url = format!("{}/api/posts", server.url());
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..60 {
                    let key = format!("race-{c}-{}", i / 3);
                    let res = http
                        .post(&url)
                        .header("Idempotency-Key", &key)
                        .json(&json!({ "title": key, "location": "Race" }))
                        .send()
                        .await
                        .unwrap();
                    statuses.push(res.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for client in clients {
        statuses.extend(client.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    purger.await.unwrap();
    assert!(statuses.iter().all(|s| matches!(s, 200 | 201 | 409)), "{statuses:?}");
    let (broken,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM idempotency_keys WHERE status IS NULL")
        .fetch_one(writer.pool())
        .await
        .unwrap();
    assert_eq!(broken, 0, "a key stored without its answer");
}

/// The purge deletes in bounded chunks: requests go on while it runs.
async fn a_purge_of_many_keys_runs_in_chunks_beside_requests(backend: Backend) {
    let server = TestServer::start_on(backend);
    let pool = server.state.as_ref().unwrap().db.pool.clone();
    let generate = match backend {
        Backend::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000) \
             INSERT INTO idempotency_keys (scope, key, fingerprint, status, created_at) SELECT '', 'old-' || i, '', 200, 0 FROM n"
        }
        Backend::Postgres => {
            "INSERT INTO idempotency_keys (scope, key, fingerprint, status, created_at) \
             SELECT '', 'old-' || i, '', 200, 0 FROM generate_series(1, 1000000) AS i"
        }
    };
    sqlx::query(generate).execute(&pool).await.unwrap();
    let purge = tokio::spawn({
        let writer = server.state.as_ref().unwrap().db.writer.clone();
        async move { bgsync_server::idempotency::purge_older_than(&writer, 1).await.unwrap() }
    });
    let http = Client::new();
    let mut n = 0;
    while !purge.is_finished() {
        let started = Instant::now();
        let res = http.post(format!("{}/api/posts", server.url())).json(&post_body(n)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "a post beside the purge took {:?}",
            started.elapsed()
        );
        n += 1;
    }
    assert_eq!(purge.await.unwrap(), 1_000_000);
}

async fn conditional_requests_follow_rfc_9110_and_extra_parameters_are_ignored(backend: Backend) {
    let server = TestServer::start_on(backend);
    let http = Client::new();
    let url = format!("{}/api/posts", server.url());
    let head: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    let since = head["cursor"].as_str().unwrap().to_owned();
    for n in 0..2 {
        http.post(&url).json(&post_body(n)).send().await.unwrap();
    }
    let delta = format!("{url}?since={since}&limit=2&_=1733000000");
    // On PostgreSQL a row is served once no older transaction runs (other
    // tests share the server), so wait for the page to fill.
    let (etag, body) = common::eventually("the two posts in the delta", Duration::from_secs(20), || async {
        let res = http.get(&delta).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "a cache-buster parameter is ignored");
        let etag = res.headers()["etag"].to_str().unwrap().to_owned();
        let body: Value = res.json().await.unwrap();
        (body["posts"].as_array().unwrap().len() == 2).then_some((etag, body))
    })
    .await;
    assert_eq!(body["more"], false);
    let strong = etag.trim_start_matches("W/").to_owned();
    for candidate in [etag.clone(), strong, "*".to_owned(), format!("\"other\", {etag}")] {
        let res = http.get(&delta).header("If-None-Match", &candidate).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "If-None-Match: {candidate}");
    }
    // A write past the page changes `more`, so the same page is new.
    http.post(&url).json(&post_body(2)).send().await.unwrap();
    common::eventually("the page to change", Duration::from_secs(20), || async {
        let res = http.get(&delta).header("If-None-Match", &etag).send().await.unwrap();
        if res.status() == StatusCode::NOT_MODIFIED {
            return None;
        }
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["more"], true, "{body}");
        Some(())
    })
    .await;
}

async fn text_is_stored_canonical_and_invisible_or_bidi_text_is_refused(backend: Backend) {
    let server = TestServer::start_on(backend);
    let http = Client::new();
    let url = format!("{}/api/posts", server.url());
    for (title, why) in [
        ("\u{200B}\u{200B}", "visible characters"),
        ("Invoice \u{202E}fdp.exe", "U+202E"),
        ("two\u{2028}lines", "control characters"),
    ] {
        let res = http.post(&url).json(&json!({ "title": title, "location": "X" })).send().await.unwrap();
        let (status, body) = problem(res).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["detail"].as_str().unwrap().contains(why), "{body}");
    }
    let res = http.post(&url).json(&json!({ "title": "Cafe\u{301}", "location": "X" })).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(server.stored_posts().await[0].1, "Caf\u{e9}", "stored in NFC");
}

on_both_databases!(
    concurrent_batches_never_starve_ordinary_requests,
    a_batch_of_reads_is_refused_entry_by_entry_and_answers_small,
    a_slow_batch_stops_at_its_time_budget_and_the_rest_is_sent_again,
    every_refusal_is_a_problem_and_pages_carry_security_headers,
    keys_are_scoped_per_client,
    the_purge_racing_claims_never_leaves_a_key_without_its_answer,
    a_purge_of_many_keys_runs_in_chunks_beside_requests,
    conditional_requests_follow_rfc_9110_and_extra_parameters_are_ignored,
    text_is_stored_canonical_and_invisible_or_bidi_text_is_refused,
);

/// PostgreSQL: a post stuck behind a lock another session holds (an
/// operator's open transaction, a migration) fails at the connection's
/// `statement_timeout` (15 s) with a 503 problem that asks for a retry,
/// rather than holding its connection for as long as the lock lasts while
/// the client's retries pile up on the pool (before, it waited until the
/// lock went). Once the lock is gone the same key stores the post once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_stuck_behind_a_lock_is_answered_503_and_stored_once_later() {
    use sqlx::Connection;
    let server = TestServer::start_on(Backend::Postgres);
    sqlx::any::install_default_drivers();
    let mut locker = sqlx::AnyConnection::connect(&server.database_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE").execute(&mut locker).await.unwrap();
    let http = Client::new();
    let url = format!("{}/api/posts", server.url());
    // (Bounded, so that a server that waits for the lock fails the test.)
    let send = || {
        http.post(&url).header("Idempotency-Key", "stuck-1").json(&post_body(1)).timeout(Duration::from_secs(40)).send()
    };
    let started = Instant::now();
    let (status, body) = problem(send().await.unwrap()).await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["type"], "/problems/storage-unavailable");
    assert!(waited >= Duration::from_secs(14) && waited < Duration::from_secs(30), "{waited:?}");
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    let res = send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(server.count_posts().await, 1);
}

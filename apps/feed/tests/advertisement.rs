//! What the server offers (`/.well-known/bgsync`) is learnt when the worker
//! activates and kept in IndexedDB for its `max-age`, so a worker the
//! browser starts only to fire a sync sends its first batch at once: one
//! round trip. A batch URL that has gone (404/405/410) makes the worker ask
//! again and deliver in the same round. Real Chromium, real worker, real
//! server.

mod common;

use common::browser::{dispatch_sync, eval, meta, queued, stop_all_workers, submit_post, until_stored, Chromium};
use common::{eventually, TestServer};
use std::time::Duration;

const TAG: &str = "sync-new-posts";
const ADVERTISEMENT: &str = "GET /.well-known/bgsync";

/// The advertisement the browser keeps, read by the page.
async fn kept(page: &chromiumoxide::Page) -> serde_json::Value {
    meta(page, "advertisement").await
}

/// The app open, its worker active, and the advertisement it learnt when
/// it activated kept in IndexedDB.
async fn app_with_advertisement_kept() -> (TestServer, Chromium, chromiumoxide::Page) {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    eventually("the advertisement to be kept", Duration::from_secs(10), || async {
        kept(&page).await.is_object().then_some(())
    })
    .await;
    (server, chromium, page)
}

/// Posts written with the server down, the tab closed and the worker
/// stopped (as the browser does to an idle worker).
async fn queued_with_everything_closed(
    server: &mut TestServer,
    chromium: &Chromium,
    page: chromiumoxide::Page,
    n: usize,
) -> chromiumoxide::Page {
    server.down();
    for i in 0..n {
        submit_post(&page, &format!("Kept advertisement {i}"), "Offline").await;
        let want = i + 1;
        eventually("the post to be queued", Duration::from_secs(10), || async {
            (queued(&page).await.len() == want).then_some(())
        })
        .await;
    }
    page.close().await.unwrap();
    let other = chromium.blank_page().await;
    stop_all_workers(&other).await;
    other
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_woken_for_a_sync_sends_its_first_batch_without_asking_what_the_server_offers() {
    let (mut server, chromium, page) = app_with_advertisement_kept().await;
    let kept_now = kept(&page).await;
    assert_eq!(kept_now["batch"]["url"], "/api/sync/batch", "{kept_now}");
    let fresh_for_ms = kept_now["freshUntil"].as_f64().unwrap() - eval::<f64>(&page, "Date.now()").await;
    assert!(fresh_for_ms > 3_000_000.0, "fresh for the server's max-age (an hour): {fresh_for_ms}");
    // The client id the batches carry is stored at activation too: made in
    // the first round, its write waited behind the round's read of the queue.
    let client = eventually("the client id to be stored", Duration::from_secs(10), || async {
        let stored = meta(&page, "client-id").await;
        stored["id"].as_str().map(str::to_owned)
    })
    .await;
    assert_eq!(client.len(), 36, "a UUID: {client}");

    let other = queued_with_everything_closed(&mut server, &chromium, page, 3).await;
    server.up();
    let before = server.request_log().len();
    dispatch_sync(&other, &server.origin(), TAG).await;
    assert_eq!(until_stored(&server, 3).await.len(), 3);
    let log: Vec<String> = server.request_log()[before..].iter().map(|(line, _)| line.clone()).collect();
    assert!(!log.iter().any(|line| line == ADVERTISEMENT), "the woken worker asked again: {log:?}");
    assert_eq!(log.iter().filter(|line| *line == "POST /api/sync/batch").count(), 1, "{log:?}");
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_url_that_has_gone_is_forgotten_and_the_same_round_delivers_through_the_new_one() {
    let (mut server, chromium, page) = app_with_advertisement_kept().await;
    // What an older server advertised: another batch URL, fresh for a day.
    eval::<bool>(
        &page,
        r#"new Promise((resolve, reject) => {
            const open = indexedDB.open("bgsync");
            open.onsuccess = () => {
                const tx = open.result.transaction("meta", "readwrite");
                tx.objectStore("meta").put({ key: "advertisement", freshUntil: Date.now() + 86400000,
                    batch: { url: "/api/v0/batch", max_entries: 100, max_bytes: 1048576, prefix: "/api/" } });
                tx.oncomplete = () => { open.result.close(); resolve(true); };
                tx.onerror = () => reject(tx.error);
            };
        })"#,
    )
    .await;
    let other = queued_with_everything_closed(&mut server, &chromium, page, 2).await;
    server.up();
    let before = server.request_log().len();
    dispatch_sync(&other, &server.origin(), TAG).await;
    assert_eq!(until_stored(&server, 2).await.len(), 2);
    let log: Vec<(String, u16)> = server.request_log()[before..].to_vec();
    let lines: Vec<&str> = log.iter().map(|(line, _)| line.as_str()).collect();
    let gone = lines.iter().position(|l| *l == "POST /api/v0/batch").expect("the old URL was tried");
    assert_eq!(log[gone].1, 404);
    let asked = lines
        .iter()
        .position(|l| *l == ADVERTISEMENT)
        .unwrap_or_else(|| panic!("then the server was asked: {lines:?}"));
    let sent = lines.iter().position(|l| *l == "POST /api/sync/batch").expect("then the new URL used");
    assert!(gone < asked && asked < sent, "{lines:?}");
    assert_eq!(lines.iter().filter(|l| **l == "POST /api/v0/batch").count(), 1, "{lines:?}");
    let page = chromium.new_page(&server.url()).await;
    eventually("the new advertisement to be kept", Duration::from_secs(10), || async {
        let kept = kept(&page).await;
        (kept["batch"]["url"] == "/api/sync/batch").then_some(())
    })
    .await;
    assert!(queued(&page).await.is_empty());
    chromium.close().await;
}

/// A static host in front of the app answers `/.well-known/bgsync` with the
/// app's HTML (a single-page app's catch-all), here kept for ten minutes:
/// the worker takes that as "no batch endpoint" and keeps it (before, the
/// HTML failed the JSON read, nothing was kept, and every round asked
/// again), and posts go one request each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_page_for_the_advertisement_means_no_batch_endpoint_and_posts_go_one_by_one() {
    let catch_all = axum::Router::new().route(
        "/.well-known/bgsync",
        axum::routing::get(|| async {
            ([("content-type", "text/html"), ("cache-control", "max-age=600")], "<!doctype html><title>App</title>")
        }),
    );
    let server = TestServer::start_with_routes(catch_all);
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    let learnt = eventually("the answer to be kept", Duration::from_secs(10), || async {
        let kept = kept(&page).await;
        kept.is_object().then_some(kept)
    })
    .await;
    assert!(learnt["batch"].is_null(), "no batch endpoint: {learnt}");
    chromium.set_worker_offline(true).await;
    for i in 0..2 {
        submit_post(&page, &format!("Behind a static host {i}"), "CDN").await;
    }
    chromium.set_worker_offline(false).await;
    dispatch_sync(&page, &server.origin(), TAG).await;
    assert_eq!(until_stored(&server, 2).await.len(), 2);
    assert_eq!(server.requests("POST /api/posts"), 2, "one request each");
    assert_eq!(server.requests("POST /api/sync/batch"), 0);
    chromium.close().await;
}

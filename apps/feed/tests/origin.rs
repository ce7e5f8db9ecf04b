//! Credentials stay with this origin: what `setCredentials` holds is added
//! at replay only to requests for the page's own origin (judged by parsing
//! the URL as `fetch` resolves it, so `/\host/path` is another origin), and
//! no credential header is ever stored in a queued entry. Real Chromium, a
//! real third-party server on another port that accepts CORS and records
//! what reached it.

mod common;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::browser::{eval, queued_in, Chromium};
use common::{eventually, TestServer};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// `/collect` on another origin: answers CORS preflights for every header
/// bgsync could send, and records the headers of each POST.
fn third_party(seen: Seen) -> Router {
    let cors = [
        ("access-control-allow-origin", "*"),
        ("access-control-allow-methods", "POST"),
        (
            "access-control-allow-headers",
            "content-type, accept, idempotency-key, authorization, bgsync-replay, bgsync-client",
        ),
    ];
    Router::new().route(
        "/collect",
        post(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(headers);
                (StatusCode::CREATED, cors, "{}")
            }
        })
        .options(move || async move { (StatusCode::NO_CONTENT, cors) }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_go_only_to_this_origin_and_are_never_stored_with_an_entry() {
    let seen: Seen = Arc::default();
    let third = TestServer::start_with_routes(third_party(seen.clone()));
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    assert!(
        eval::<bool>(&page, "wasm_bindgen.setCredentials({ Authorization: 'Bearer secret' }).then(() => true)").await
    );

    // Captured with the worker offline: the page's own Authorization is
    // not kept in the queue.
    chromium.set_worker_offline(true).await;
    let captured: serde_json::Value = eval(
        &page,
        "fetch('/api/posts', { method: 'POST', headers: { 'Content-Type': 'application/json', \
         Authorization: 'Bearer page-token' }, body: JSON.stringify({ title: 'Captured', location: 'Here' }) }) \
         .then((r) => r.status)",
    )
    .await;
    assert_eq!(captured, 202);
    let entries = queued_in(&page, "requests").await;
    assert_eq!(entries.len(), 1);
    let headers = entries[0]["headers"].to_string().to_ascii_lowercase();
    assert!(!headers.contains("authorization") && !headers.contains("page-token"), "{headers}");
    // The JS API refuses a credential header, saying where it belongs.
    let refused: String = eval(
        &page,
        "wasm_bindgen.enqueue('requests', { url: '/api/posts', headers: { Authorization: 'x' }, body: '{}' }) \
         .then(() => 'queued', (e) => String(e))",
    )
    .await;
    assert!(refused.contains("setCredentials"), "{refused}");

    // Two entries for the third party: an absolute URL, and a path that
    // `fetch` resolves to the other host.
    let other = third.addr;
    let queue = format!(
        "Promise.all([wasm_bindgen.enqueue('requests', {{ url: 'http://{other}/collect', body: '{{}}' }}), \
         wasm_bindgen.enqueue('requests', {{ url: '/\\\\{other}/collect', body: '{{}}' }})]).then(() => true)"
    );
    assert!(eval::<bool>(&page, &queue).await);
    chromium.set_worker_offline(false).await;

    eventually("both third-party requests and the captured post", Duration::from_secs(45), || async {
        (seen.lock().unwrap().len() >= 2 && server.stored_posts().await.len() == 1).then_some(())
    })
    .await;
    for headers in seen.lock().unwrap().iter() {
        assert!(headers.get("authorization").is_none(), "a credential left the origin: {headers:?}");
        assert!(headers.get("bgsync-client").is_none() && headers.get("bgsync-replay").is_none(), "{headers:?}");
    }
    assert_eq!(
        server.authorizations().last().cloned().flatten().as_deref(),
        Some("Bearer secret"),
        "this origin gets the credentials set for it"
    );
    chromium.close().await;
}

//! A queue declared unordered sends up to its `maxInFlight` batches at
//! once, each acknowledged and deleted on its own, nothing sent twice.
//! Real Chromium, the feed's worker, the feed's declaration with its posts
//! queue made unordered (`maxInFlight: 3`, batches of at most 5), and a
//! server slow enough that batches overlap if the worker lets them.

mod common;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use common::browser::{eval, queued, until_stored, Chromium};
use common::TestServer;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

/// The feed's declaration, its posts queue unordered with `extra` fields.
fn declaration(extra: &str) -> axum::Router {
    let declared = String::from_utf8(feed::assets::find("/bgsync-config.js").unwrap().body.to_vec()).unwrap();
    let queue = r#"{ name: "sync-posts", tag: "sync-new-posts" }"#;
    assert!(declared.contains(queue), "the feed's declaration changed: {declared}");
    let declared = declared.replace(queue, &format!(r#"{{ name: "sync-posts", tag: "sync-new-posts", {extra} }}"#));
    axum::Router::new().route(
        "/bgsync-config.js",
        get(move || {
            std::future::ready(([(header::CONTENT_TYPE, "text/javascript")], declared.clone()).into_response())
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unordered_queue_has_up_to_max_in_flight_batches_on_the_wire() {
    let server = TestServer::start_with_routes(declaration("ordered: false, maxInFlight: 3, batch: { maxEntries: 5 }"));
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    assert!(eval::<bool>(&page, "navigator.serviceWorker.ready.then(() => true)").await);
    // Each post (each entry of a batch too) takes 150 ms: a batch of 5
    // takes 750 ms or more on the server.
    server.delay_posts(150);

    chromium.set_worker_offline(true).await;
    let keys: Vec<String> = eval(
        &page,
        "(async () => { const keys = []; for (let i = 0; i < 20; i++) { \
           keys.push(await wasm_bindgen.enqueue('sync-posts', { url: '/api/posts', \
             body: JSON.stringify({ id: crypto.randomUUID(), title: 'Post ' + i, location: 'Here' }) })); } \
         return keys; })()",
    )
    .await;
    assert_eq!(keys.len(), 20);
    chromium.set_worker_offline(false).await;

    let posts = until_stored(&server, 20).await;
    bgsync_testkit::eventually("the queue to empty", std::time::Duration::from_secs(10), || async {
        queued(&page).await.is_empty().then_some(())
    })
    .await;
    let titles: BTreeSet<_> = posts.iter().map(|(_, title, _)| title.clone()).collect();
    assert_eq!((posts.len(), titles.len()), (20, 20), "each post stored once: {posts:?}");
    let most = server.net().max_batches_in_flight.load(Ordering::SeqCst);
    assert!((2..=3).contains(&most), "batches on the wire at once: {most} (maxInFlight is 3)");
    chromium.close().await;
}

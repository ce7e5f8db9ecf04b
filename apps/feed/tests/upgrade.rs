//! A browser that used the version 4 layout (one IndexedDB store per queue)
//! opens the new version and loses nothing: queued entries of both queues
//! (delivered once, with the stored credentials), a dead letter, pulled
//! posts and the credentials themselves. The old layout is written here
//! directly, as version 4 of bgsync left it.

mod common;

use common::browser::{eval, queued, wait_for_state, Chromium};
use common::{eventually, TestServer};
use std::time::Duration;

const VERSION_4: &str = r#"new Promise((resolve, reject) => {
    const open = indexedDB.open("bgsync", 4);
    open.onupgradeneeded = () => {
        const db = open.result;
        for (const name of ["sync-posts", "requests", "dead-letters", "meta"]) db.createObjectStore(name, { keyPath: "key" });
        db.createObjectStore("pulled-posts", { keyPath: "id" });
    };
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
        const db = open.result;
        const tx = db.transaction(["sync-posts", "requests", "dead-letters", "pulled-posts", "meta"], "readwrite");
        const entry = (key, title, at) => ({ key, method: "POST", url: "/api/posts", headers: [],
            body: JSON.stringify({ title, location: "Version 4" }), enqueuedAt: Date.now() - 1000 + at, attempts: 0, notBefore: 0, lastError: null });
        tx.objectStore("sync-posts").put(entry("0190a000-0000-7000-8000-000000000001", "Old post 1", 1));
        tx.objectStore("sync-posts").put(entry("0190a000-0000-7000-8000-000000000002", "Old post 2", 2));
        tx.objectStore("requests").put(entry("0190a000-0000-7000-8000-000000000003", "Old request", 3));
        tx.objectStore("dead-letters").put({ key: "0190a000-0000-7000-8000-000000000004", queue: "sync-posts",
            entry: entry("0190a000-0000-7000-8000-000000000004", "Old refusal", 4), reason: "refused by the server (400): no", at: 5 });
        tx.objectStore("pulled-posts").put({ id: "0190a000-0000-4000-8000-000000000005", title: "Pulled long ago",
            location: "Server", created_at: 6 });
        tx.objectStore("meta").put({ key: "credentials", headers: [["Authorization", "Bearer kept"]] });
        tx.oncomplete = () => { db.close(); resolve(true); };
        tx.onerror = () => reject(tx.error);
    };
})"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_4_database_opens_in_the_new_layout_and_keeps_everything() {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let old = chromium.new_page(&format!("{}/manifest.webmanifest", server.url())).await;
    assert!(eval::<bool>(&old, VERSION_4).await);
    old.close().await.unwrap();

    let page = chromium.open_app(&server.url()).await;
    let stores: Vec<String> = eval(
        &page,
        "new Promise((resolve) => { const open = indexedDB.open('bgsync'); \
         open.onsuccess = () => { const db = open.result; \
           const names = [...db.objectStoreNames, 'v' + db.version, \
             ...[...db.transaction('entries').objectStore('entries').indexNames].map((i) => 'index ' + i)]; \
         open.result.close(); resolve(names); }; })",
    )
    .await;
    for expected in ["entries", "v6", "index order"] {
        assert!(stores.contains(&expected.to_owned()), "{expected}: {stores:?}");
    }
    assert!(!stores.contains(&"sync-posts".to_owned()) && !stores.contains(&"requests".to_owned()), "{stores:?}");
    assert_eq!(queued(&page).await.len(), 2, "both queued posts, in their queue");

    // The page lists the pulled post and the dead letter as before.
    wait_for_state(&page, "Pulled long ago", "sent").await;
    let dead: serde_json::Value = eval(&page, "wasm_bindgen.deadLetters()").await;
    assert_eq!(dead.as_array().unwrap().len(), 1, "{dead}");
    assert_eq!((dead[0]["queue"].as_str(), dead[0]["url"].as_str()), (Some("sync-posts"), Some("/api/posts")));
    let status: serde_json::Value = eval(&page, "wasm_bindgen.status()").await;
    assert_eq!(status["queues"]["sync-posts"]["queued"], 2, "{status}");
    assert_eq!(status["queues"]["requests"]["queued"], 1, "{status}");
    assert_eq!(status["hasCredentials"], true, "{status}");

    // Delivered once each, with the credentials stored in version 4.
    assert!(eval::<bool>(&page, "wasm_bindgen.retryNow().then(() => true)").await);
    let stored = eventually("the three old entries to arrive", Duration::from_secs(30), || async {
        let stored = server.stored_posts().await;
        (stored.len() == 3).then_some(stored)
    })
    .await;
    let titles: Vec<&str> = stored.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(titles, ["Old post 1", "Old post 2", "Old request"]);
    assert!(
        server.authorizations().iter().all(|a| a.as_deref() == Some("Bearer kept")),
        "{:?}",
        server.authorizations()
    );
    chromium.close().await;
}

/// A page whose first uses of the database come at once (its connection
/// let go, then four calls of the API together) opens one connection, not
/// one per call: a newer version of the app in another tab can then
/// upgrade the database (this page lets its connection go when asked).
/// Before, each call opened a connection of its own, one was kept and the
/// others were never closed, so the other tab's upgrade waited for as long
/// as this page stayed open, and so did everything that tab queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_open_the_database_together_share_one_connection_and_never_block_an_upgrade() {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    // As a newer tab would: open the database one version up (this page
    // lets its connection go), then ask for a version more while the page
    // has opened the database again through four calls at once.
    let upgraded: String = eval(
        &page,
        r#"(async () => {
            const open = (version) => new Promise((resolve, reject) => {
                const r = version ? indexedDB.open("bgsync", version) : indexedDB.open("bgsync");
                r.onsuccess = () => { r.result.close(); resolve(r.result.version); };
                r.onerror = () => reject(r.error);
                r.onblocked = () => resolve("blocked");
            });
            const now = await open();
            if ((await open(now + 1)) === "blocked") return "the first upgrade was blocked";
            await Promise.all([wasm_bindgen.status(), wasm_bindgen.queued("sync-posts"),
                               wasm_bindgen.feedItems("posts"), wasm_bindgen.deadLetters()]);
            const later = await Promise.race([open(now + 2),
                new Promise((resolve) => setTimeout(() => resolve("timed out"), 5000))]);
            return String(later);
        })()"#,
    )
    .await;
    assert!(upgraded.chars().all(|c| c.is_ascii_digit()), "the second upgrade: {upgraded}");
    chromium.close().await;
}

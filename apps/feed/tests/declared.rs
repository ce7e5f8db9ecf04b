//! Queues and feeds are the app's declaration, not the library's: the
//! JavaScript API refuses an undeclared name by naming the declared ones,
//! refuses a bad declaration by naming the field, and reads a feed's items
//! by the feed's name. Real Chromium, the feed app's page.

mod common;

use common::browser::{eval, wait_for_state, Chromium};
use common::TestServer;

/// Evaluates a promise and returns its rejection's message ("" if it
/// resolved).
/// The message `js`'s promise rejects with; a rejection with anything but
/// an `Error` (a bare string has no `message` for a `catch` to show) says
/// so instead.
async fn refusal(page: &chromiumoxide::Page, js: &str) -> String {
    eval(
        page,
        &format!(
            "Promise.resolve().then(() => {js}).then(() => '', \
             (e) => e instanceof Error ? e.message : 'not an Error: ' + String(e))"
        ),
    )
    .await
}

/// Posts `title` to the server directly (not through a page), as another
/// client would.
async fn post_on_server(server: &TestServer, title: &str) {
    let res = reqwest::Client::new()
        .post(format!("{}/api/posts", server.url()))
        .json(&serde_json::json!({ "title": title, "location": "There" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{title}");
}

/// How many requests the server had for bgsync's fallback module (its
/// script, its wasm).
fn fallback_loads(server: &TestServer) -> usize {
    server.request_log().into_iter().filter(|(line, _)| line.contains("/bgsync_fallback-")).count()
}

/// Opens the database one version up from the page's script, as a newer
/// tab would, so that the page lets its connection go and opens it again
/// (with its declaration as it is now) at its next use; returns that
/// version.
async fn let_go_of_the_pages_connection(page: &chromiumoxide::Page) -> f64 {
    eval(
        page,
        "new Promise((resolve, reject) => { const probe = indexedDB.open('bgsync'); probe.onsuccess = () => { \
           const v = probe.result.version; probe.result.close(); const up = indexedDB.open('bgsync', v + 1); \
           up.onsuccess = () => { up.result.close(); resolve(v + 1); }; up.onerror = () => reject(up.error); }; })",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_names_and_bad_declarations_are_refused_with_what_to_do() {
    let server = TestServer::start();
    post_on_server(&server, "On the server").await;
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    wait_for_state(&page, "On the server", "sent").await;

    let message = refusal(&page, "wasm_bindgen.enqueue('nope', { url: '/api/posts', body: '{}' })").await;
    assert!(message.contains(r#"there is no queue "nope"; the queues are "sync-posts", "requests""#), "{message}");
    let message = refusal(&page, "wasm_bindgen.feedItems('nope')").await;
    assert!(message.contains(r#"there is no feed "nope"; the feeds are "posts""#), "{message}");
    // What needs bgsync's fallback module (the inspector's snapshot, here)
    // says what to declare when the declaration has no `fallback`.
    let message = refusal(
        &page,
        "(wasm_bindgen.configure({ ...self.BGSYNC_CONFIG, fallback: undefined }), wasm_bindgen.inspect()) \
         .finally(() => wasm_bindgen.configure(self.BGSYNC_CONFIG))",
    )
    .await;
    assert!(message.contains(r#"fallback: "/__BGSYNC_FALLBACK__" in the config"#), "{message}");
    for (options, expected) in [
        ("{ limit: 0 }", "limit must be a whole number of 1 or more"),
        ("{ limit: 2.5 }", "limit must be a whole number of 1 or more"),
        ("{ limit: '10' }", "limit must be a whole number of 1 or more"),
        ("{ newestFirst: 'yes' }", "newestFirst must be true or false"),
        ("7", "the options must be an object"),
    ] {
        let message = refusal(&page, &format!("wasm_bindgen.queued('sync-posts', {options})")).await;
        assert!(message.contains(&format!("queued: {expected}")), "{options}: {message}");
    }
    for (declaration, expected) in [
        ("{ queues: [{ name: '' }] }", r#""" is not a queue name"#),
        ("{ queues: [{ name: 'a' }, { name: 'a' }] }", r#"the queue "a" is declared twice"#),
        ("{ queues: [{ name: 'a', retry: { baseMs: -1 } }] }", "baseMs must be a number"),
        ("{ queues: [{ name: 'a', maxInFlight: 0 }] }", "maxInFlight must be a whole number from 1 to 32"),
        ("{ queues: [{ name: 'a', maxInFlight: 2.5 }] }", "maxInFlight must be a whole number from 1 to 32"),
        (
            "{ queues: [{ name: 'a', timeoutMs: 50 }] }",
            "timeoutMs (how long one request may take) must be a whole number of milliseconds from 100 to 300000",
        ),
        ("{ queues: [{ name: 'a', timeoutMs: 1e9 }] }", "must be a whole number of milliseconds from 100 to 300000"),
        ("{ queues: [{ name: 'a', timeoutMs: '30s' }] }", "timeoutMs"),
        (
            "{ queues: [{ name: 'a', formerly: ['b'] }, { name: 'b' }] }",
            r#"the queue "a" names "b" in formerly, but a queue of that name is declared"#,
        ),
        ("{ queues: [{ name: 'a', formerly: 'v1' }] }", "formerly"),
        ("{ feeds: [{ name: 'f', url: '/f' }] }", "which field holds its items"),
        ("{ feeds: [{ name: 'f', url: '/f', items: 'x', store: 'entries' }] }", "a store and a URL of its own"),
        (
            "{ feeds: [{ name: 'f', url: '/f', items: 'x' }, { name: 'g', url: '/f', items: 'y' }] }",
            r#"the feed "g" needs a store and a URL of its own, not "feed:g" and "/f""#,
        ),
        (
            "{ feeds: [{ name: 'f', url: '/f', items: 'x', keyPath: 'post id' }] }",
            r#"feed "f": keyPath "post id" is not a key path: name the field that identifies an item"#,
        ),
        ("{ feeds: [{ name: 'f', url: '/f', items: 'x', keyPath: 'meta..id' }] }", "is not a key path"),
        ("{ feeds: [{ name: 'f', url: '/f', items: 'x', keyPath: '1st' }] }", "is not a key path"),
        ("{ feeds: [{ name: 'f', url: '/f', items: 'x', keyPath: '' }] }", "is not a key path"),
        ("7", "must be an object"),
    ] {
        let message = refusal(&page, &format!("wasm_bindgen.configure({declaration})")).await;
        assert!(message.starts_with("configure: ") && message.contains(expected), "{declaration}: {message}");
    }
    // A refused declaration changed nothing.
    let items: Vec<serde_json::Value> = eval(&page, "wasm_bindgen.feedItems('posts')").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["title"], "On the server");
    chromium.close().await;
}

/// What the JavaScript API is given is checked before anything is stored:
/// a request `fetch` could never send (another scheme, a method it
/// refuses, a header only the browser sets, which it would leave out
/// without a word) and a field or argument of the wrong type are refused
/// with what to write, as a rejected promise (a `null` name made the glue
/// throw a TypeError about `length` before), and nothing is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fetch_could_never_send_and_arguments_of_the_wrong_type_are_refused_and_nothing_is_queued() {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    let request =
        |fields: &str| format!("wasm_bindgen.enqueue('requests', {{ url: '/api/posts', body: '{{}}', {fields} }})");
    for (call, expected) in [
        (request("url: 'javascript:alert(1)'"), r#"enqueue: "javascript:alert(1)" is not an http or https URL"#),
        (request("url: 'ftp://example.com/x'"), "is not an http or https URL, the only kind fetch sends"),
        (request("method: 'trace'"), "enqueue: a browser cannot send a TRACE request"),
        (request("method: 'CONNECT'"), "enqueue: a browser cannot send a CONNECT request"),
        (request("headers: [['Host', 'elsewhere.example']]"), r#"enqueue: the header "host" is the browser's to set"#),
        (request("headers: { 'Sec-Fetch-Site': 'none' }"), r#"the header "sec-fetch-site" is the browser's to set"#),
        (request("headers: [['Content-Length', '5']]"), r#"the header "content-length" is the browser's to set"#),
        (request("key: 5"), "enqueue: key must be a string"),
        (
            request("key: 'k-1', headers: { 'Idempotency-Key': 'k-2' }"),
            r#"enqueue: the Idempotency-Key header "k-2" is not the key "k-1""#,
        ),
        (request("headers: 'X-A: b'"), "enqueue: the headers must be a record, [name, value] pairs or a Headers"),
        ("wasm_bindgen.setCredentials([['Authorization']])".into(), "setCredentials: the headers must be a record"),
        (request("method: 5"), "enqueue: method must be a string"),
        ("wasm_bindgen.enqueue('requests', { url: 42 })".into(), "enqueue: url must be a string"),
        ("wasm_bindgen.enqueue(null, { url: '/api/posts' })".into(), "enqueue: the queue's name must be a string"),
        ("wasm_bindgen.queued(undefined)".into(), "queued: the queue's name must be a string"),
        ("wasm_bindgen.feedItems(null)".into(), "feedItems: the feed's name must be a string"),
        ("wasm_bindgen.pull(7)".into(), "pull: the feed's name must be a string"),
        ("wasm_bindgen.retryDeadLetter(null)".into(), "retryDeadLetter: the dead letter's key must be a string"),
        ("wasm_bindgen.discardDeadLetter({})".into(), "discardDeadLetter: the dead letter's key must be a string"),
        ("wasm_bindgen.setCredentials()".into(), "setCredentials: pass the headers to add at replay"),
        ("wasm_bindgen.forceFallback('yes')".into(), "forceFallback: pass true to ignore Background Sync"),
    ] {
        let message = refusal(&page, &call).await;
        assert!(message.contains(expected), "{call}: {message}");
        // Refused by the promise, not thrown by the call.
        let settles: String = eval(
            &page,
            &format!("(() => {{ try {{ return ({call}) instanceof Promise ? 'promise' : 'other'; }} catch (e) {{ return 'threw ' + e; }} }})()"),
        )
        .await;
        assert_eq!(settles, "promise", "{call}");
    }
    // subscribe returns at once, so it throws.
    let thrown: String = eval(
        &page,
        "(() => { try { wasm_bindgen.subscribe(null); return 'accepted'; } catch (e) { return e instanceof Error ? e.message : 'not an Error'; } })()",
    )
    .await;
    assert!(thrown.contains("subscribe: pass the function to call with each event"), "{thrown}");
    let queued: usize = eval(&page, "wasm_bindgen.queued('requests').then((l) => l.length)").await;
    assert_eq!(queued, 0, "nothing refused was stored");
    // A request fetch can send still goes.
    let key: String = eval(&page, &request("method: 'put', headers: [['X-Request-Note', 'kept']]")).await;
    assert!(!key.is_empty());
    // An Idempotency-Key header is the entry's key (as when the worker
    // captures a request), not a second header beside it: in a batch the
    // two made every attempt a 400 "send the header once".
    let key: String = eval(&page, &request("headers: { 'Idempotency-Key': 'mine-1' }")).await;
    assert_eq!(key, "mine-1");
    let stored: Vec<serde_json::Value> = eval(&page, "wasm_bindgen.queued('requests')").await;
    let mine = stored.iter().find(|e| e["key"] == "mine-1").expect("queued under its header's key");
    assert!(!mine["headers"].to_string().to_ascii_lowercase().contains("idempotency-key"), "{mine}");
    chromium.close().await;
}

/// A feed whose server answers out of shape: a page without the feed's
/// items, a page that says there is more but never moves its cursor, and
/// items without a key (left out, the others stored; before, the pull
/// failed on them every time, storing nothing after them).
/// `pull` rejects each with what was wrong, promptly, and the API goes on
/// working. (Before, the first threw through the module's code, which
/// JavaScript exceptions must not do, and the second pulled for ever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_answered_out_of_shape_is_refused_and_a_cursor_that_never_moves_ends_the_pull() {
    use axum::routing::get;
    let endless = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let asked = endless.clone();
    let routes = common::declared_replacing(
        "feeds: [",
        r#"feeds: [
    { name: "shapeless", url: "/api/shapeless", items: "things", tag: "pull-shapeless" },
    { name: "endless", url: "/api/endless", items: "things", tag: "pull-endless" },
    { name: "keyless", url: "/api/keyless", items: "things", tag: "pull-keyless" },
    { name: "busy", url: "/api/busy", items: "things", tag: "pull-busy" },"#,
    )
    .route("/api/shapeless", get(|| async { axum::Json(serde_json::json!({ "cursor": "c1", "more": false })) }))
    .route(
        "/api/busy",
        get(|| async {
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                [("content-type", "application/problem+json")],
                r#"{"status":503,"title":"Busy","detail":"The feed is being rebuilt; ask again in a minute."}"#,
            )
        }),
    )
    .route(
        "/api/keyless",
        get(|| async {
            axum::Json(serde_json::json!({
                "things": [{ "id": "k1" }, { "title": "no id" }, null, 5, { "id": { "not": "a key" } }, { "id": "k2" }],
                "cursor": "c1",
                "more": false,
            }))
        }),
    )
    .route(
        "/api/endless",
        get(move || {
            asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::ready(axum::Json(
                serde_json::json!({ "things": [{ "id": "a" }], "cursor": "same", "more": true }),
            ))
        }),
    );
    let server = TestServer::start_with_routes(routes);
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;

    let message = refusal(&page, "wasm_bindgen.pull('shapeless')").await;
    assert!(message.contains(r#"pull: the feed "shapeless" answered without an array "things""#), "{message}");
    let message = refusal(&page, "wasm_bindgen.pull('endless')").await;
    assert!(
        message.contains(r#"pull: the feed "endless" said there is more but did not move its cursor"#),
        "{message}"
    );
    assert!(endless.load(std::sync::atomic::Ordering::SeqCst) <= 3, "the pull stopped at once");
    // A feed that answers an error: the server's own words, after its status.
    let message = refusal(&page, "wasm_bindgen.pull('busy')").await;
    assert_eq!(
        message,
        r#"pull: the feed "busy" answered HTTP 503: The feed is being rebuilt; ask again in a minute."#
    );
    // Items IndexedDB cannot key are left out; the others are stored.
    let pulled: u64 = eval(&page, "wasm_bindgen.pull('keyless')").await;
    assert_eq!(pulled, 2);
    let ids: Vec<String> = eval(&page, "wasm_bindgen.feedItems('keyless').then((l) => l.map((i) => i.id))").await;
    assert_eq!(ids, ["k1", "k2"]);
    // The API goes on working: a post is queued and delivered.
    let key: String =
        eval(&page, "wasm_bindgen.enqueue('requests', { url: '/api/posts', body: JSON.stringify({ title: 'After', location: 'Here' }) })").await;
    assert!(!key.is_empty());
    common::eventually("the post to be stored", std::time::Duration::from_secs(30), || async {
        (server.stored_posts().await.len() == 1).then_some(())
    })
    .await;
    chromium.close().await;
}

/// An app that renamed a queue names the old name in the new queue's
/// `formerly`: what users of the old version left queued under it joins the
/// queue when the worker next replays, keys and times kept, and is sent
/// once; its dead letters join too (a retry sends them to the new queue).
/// Entries under a name no queue declares or names are listed by
/// `inspect().undeclared`, never sent and never dropped. (Before session 26
/// both kinds waited in IndexedDB for ever, seen by nothing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_under_a_former_queue_name_join_the_queue_and_undeclared_ones_are_listed() {
    use common::browser::{fill_queue, store_request, until_stored};
    let server = TestServer::start_with_routes(common::posts_queue_declared_with(r#"formerly: ["posts-v1"]"#));
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    chromium.set_worker_offline(true).await;
    // What the old version left: three entries under "posts-v1", a dead
    // letter of it, and two entries under a name nothing declares.
    assert_eq!(fill_queue(&page, "posts-v1", "sync-new-posts", 3).await, 3);
    assert_eq!(fill_queue(&page, "gone", "sync-new-posts", 2).await, 2);
    let entry = r#"{ queue: "posts-v1", key: "old-dead-1", method: "POST", url: "/api/posts", headers: [],
        body: JSON.stringify({ id: "9b2e8f1c-3d4a-4b5c-8d6e-7f8091a2b3c4", title: "Refused once", location: "Old" }),
        enqueuedAt: 1, attempts: 1, notBefore: 0, lastError: null }"#;
    let letter = format!(
        r#"put({{ key: "old-dead-1", queue: "posts-v1", entry: {entry}, reason: "the server refused it (HTTP 400)",
            cause: {{ kind: "rejected", status: 400 }}, at: 1 }})"#
    );
    store_request(&page, "dead-letters", "readwrite", &letter).await;
    let undeclared: serde_json::Value = eval(&page, "wasm_bindgen.inspect().then((s) => s.undeclared)").await;
    assert_eq!(undeclared, serde_json::json!({ "gone": 2 }), "a former name is not undeclared");

    chromium.set_worker_offline(false).await;
    common::browser::dispatch_sync(&page, &server.origin(), "sync-new-posts").await;
    let stored = until_stored(&server, 3).await;
    assert_eq!(stored.len(), 3, "the three left under the former name, once each: {stored:?}");
    let former = "count(IDBKeyRange.bound(['posts-v1'], ['posts-v1', []]))";
    assert_eq!(store_request(&page, "entries", "readonly", former).await, 0, "nothing left under the former name");
    let dead: Vec<serde_json::Value> = eval(&page, "wasm_bindgen.deadLetters()").await;
    assert_eq!((dead.len(), dead[0]["queue"].as_str()), (1, Some("sync-posts")), "{dead:?}");
    assert!(eval::<bool>(&page, "wasm_bindgen.retryDeadLetter('old-dead-1')").await);
    let stored = until_stored(&server, 4).await;
    assert!(stored.iter().any(|(_, title, _)| title == "Refused once"), "{stored:?}");
    // The undeclared ones stay where they are, listed, not sent.
    let snapshot: serde_json::Value = eval(&page, "wasm_bindgen.inspect()").await;
    assert_eq!(snapshot["undeclared"], serde_json::json!({ "gone": 2 }), "{snapshot}");
    // The inspector says so, with what to do.
    page.find_element("#inspector-panel summary").await.unwrap().click().await.unwrap();
    let shown: Vec<String> = common::eventually("the inspector to list them", std::time::Duration::from_secs(20), || async {
        let rows: Vec<String> = eval(
            &page,
            "[...document.querySelectorAll('#inspector-panel [data-section=undeclared-queues] tr[data-queue]')].map((r) => r.textContent)",
        )
        .await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(shown, ["gone2"]);
    let gone = "count(IDBKeyRange.bound(['gone'], ['gone', []]))";
    assert_eq!(store_request(&page, "entries", "readonly", gone).await, 2);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(server.stored_posts().await.len(), 4, "nothing else sent");
    chromium.close().await;
}

/// A feed whose `keyPath` the browser refuses to make a store with (here
/// one with a character outside ASCII that no identifier has, which
/// `configure` leaves to the browser to judge) costs that feed its store,
/// never the queues: the database opens without it, a post is still
/// queued and sent, and the feed's pull says why it has no store. (Before,
/// every opening of the database upgraded it three versions up and then
/// failed, so nothing could be queued in any context of the app.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_store_the_browser_refuses_leaves_the_queues_working_and_its_pull_says_why() {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    // The app's declaration and a feed keyed by a path with a no-break
    // space in it; then this page's connection is let go (another opening
    // at a higher version, as a newer tab's would), so that its next use
    // opens the database with the new declaration.
    let configured = refusal(
        &page,
        "wasm_bindgen.configure({ ...self.BGSYNC_CONFIG, feeds: [...self.BGSYNC_CONFIG.feeds, \
           { name: 'odd', url: '/api/posts?feed=odd', items: 'posts', keyPath: 'post\\u00a0id' }] })",
    )
    .await;
    assert_eq!(configured, "", "configure refused the declaration");
    let version = let_go_of_the_pages_connection(&page).await;
    let queued = refusal(
        &page,
        "wasm_bindgen.enqueue('sync-posts', { url: '/api/posts', \
           body: JSON.stringify({ id: crypto.randomUUID(), title: 'Still queued', location: 'Here' }) })",
    )
    .await;
    assert_eq!(queued, "", "the post was not queued");
    // One upgrade for the feed's store at most, not three.
    let now: f64 = eval(
        &page,
        "new Promise((resolve) => { const r = indexedDB.open('bgsync'); \
           r.onsuccess = () => { resolve(r.result.version); r.result.close(); }; })",
    )
    .await;
    assert!(now <= version + 1.0, "the database went from version {version} to {now}");
    for call in ["wasm_bindgen.pull('odd')", "wasm_bindgen.feedItems('odd')"] {
        let message = refusal(&page, call).await;
        assert!(
            message.contains(r#"the feed "odd" has no store: the browser refused to make "feed:odd" with keyPath"#),
            "{call}: {message}"
        );
    }
    // The queue is delivered as ever.
    wait_for_state(&page, "Still queued", "sent").await;
    let posts: serde_json::Value =
        reqwest::get(format!("{}/api/posts", server.url())).await.unwrap().json().await.unwrap();
    assert!(posts["posts"].as_array().unwrap().iter().any(|p| p["title"] == "Still queued"), "{posts}");
    chromium.close().await;
}

/// A feed given another store (a new version of the app that renamed it,
/// or changed its `keyPath`, which a store cannot change) starts its new
/// store with a first pull, not from the cursor the old store had reached:
/// the new store holds the feed's items at once. (Before, the cursor and
/// `ETag`, kept by the feed's URL, carried over: the new store got only what
/// changed afterwards, and an unchanged feed answered 304, so it stayed
/// empty.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_moved_to_another_store_fills_it_from_a_first_pull() {
    let server = TestServer::start();
    for title in ["First", "Second"] {
        post_on_server(&server, title).await;
    }
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    wait_for_state(&page, "Second", "sent").await;
    // The same feed in a store of its own, and this page's connection let
    // go (as by a newer tab's upgrade) so that its next use makes the store.
    let configured = refusal(
        &page,
        "wasm_bindgen.configure({ ...self.BGSYNC_CONFIG, \
           feeds: self.BGSYNC_CONFIG.feeds.map((f) => ({ ...f, store: 'posts-moved' })) })",
    )
    .await;
    assert_eq!(configured, "", "configure refused the declaration");
    let_go_of_the_pages_connection(&page).await;
    let _: u64 = eval(&page, "wasm_bindgen.pull('posts')").await;
    let mut titles: Vec<String> =
        eval(&page, "wasm_bindgen.feedItems('posts').then((l) => l.map((p) => p.title))").await;
    titles.sort();
    assert_eq!(titles, ["First", "Second"]);
    chromium.close().await;
}

/// A page module has no pull of its own: the worker pulls for the page
/// (a worker offline fails the page's pull with the network's `TypeError`,
/// the page itself online), and the page never loads bgsync's fallback
/// module for it; a page that declares the feed otherwise than its worker
/// (another version of the app) is declined by the worker and pulls in
/// that module, with its own declaration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pages_pull_is_the_workers_unless_the_worker_declares_the_feed_otherwise() {
    let server = TestServer::start();
    post_on_server(&server, "Pulled").await;
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    wait_for_state(&page, "Pulled", "sent").await;
    assert_eq!(refusal(&page, "wasm_bindgen.pull('posts')").await, "");
    chromium.set_worker_offline(true).await;
    let failed: String = eval(
        &page,
        "wasm_bindgen.pull('posts').then(() => 'pulled', (e) => (e instanceof TypeError ? 'TypeError: ' : '') + e.message)",
    )
    .await;
    assert!(failed.starts_with("TypeError: "), "{failed}");
    chromium.set_worker_offline(false).await;
    assert_eq!(fallback_loads(&server), 0, "the page loaded the fallback module to pull");
    // Declared otherwise in the page: the worker declines, the fallback
    // module pulls into the page's store.
    let configured = refusal(
        &page,
        "wasm_bindgen.configure({ ...self.BGSYNC_CONFIG, \
           feeds: self.BGSYNC_CONFIG.feeds.map((f) => ({ ...f, store: 'posts-elsewhere' })) })",
    )
    .await;
    assert_eq!(configured, "");
    let_go_of_the_pages_connection(&page).await;
    let pulled: u64 = eval(&page, "wasm_bindgen.pull('posts')").await;
    assert_eq!(pulled, 1);
    assert_eq!(fallback_loads(&server), 2, "its script and its wasm");
    chromium.close().await;
}

/// A worker that does not pull for pages (an older version's, which
/// ignores the message) leaves the page's pull to the fallback module once
/// it has not acknowledged the message for 3 s: the pull resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_ignores_the_pull_message_leaves_the_pull_to_the_fallback_module() {
    use axum::response::IntoResponse;
    let older = "self.addEventListener('install', () => self.skipWaiting()); \
                 self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));";
    let routes = axum::Router::new().route(
        "/sw.js",
        axum::routing::get(move || {
            std::future::ready(([(axum::http::header::CONTENT_TYPE, "text/javascript")], older).into_response())
        }),
    );
    let server = TestServer::start_with_routes(routes);
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    // The page pulls when it opens, through the fallback module too once
    // the worker has not answered for 3 s: that pull done first, the post
    // is this pull's to bring (raced, either could, and this one found
    // nothing now and then).
    common::eventually("the page's own pull on opening", std::time::Duration::from_secs(20), || async {
        let done: bool =
            eval(&page, "wasm_bindgen.inspect().then((s) => s.feeds.every((f) => f.lastSuccess !== null))").await;
        done.then_some(())
    })
    .await;
    post_on_server(&server, "Pulled anyway").await;
    let pulled: u64 = eval(&page, "wasm_bindgen.pull('posts')").await;
    assert_eq!(pulled, 1);
    assert_eq!(fallback_loads(&server), 2, "the fallback module's script and wasm");
    chromium.close().await;
}

/// A feed of this origin behind the app's sign-in is pulled with the
/// credentials the app set (`setCredentials`), as queued requests are
/// replayed with them. (Before, pulls carried no credentials: a feed that
/// wants a bearer token could not be pulled at all. A feed of another
/// origin gets none, judged as for a queued request by `is_same_origin`;
/// the feed app's Content-Security-Policy lets its pages reach no other
/// origin to show it here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_of_this_origin_is_pulled_with_the_apps_credentials() {
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let record = seen.clone();
    let routes = common::declared_replacing(
        "feeds: [",
        r#"feeds: [
    { name: "private", url: "/api/private", items: "things", tag: "pull-private" },"#,
    )
    .route(
        "/api/private",
        get(move |headers: HeaderMap| {
            let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
            record.lock().unwrap().push(authorization.clone());
            std::future::ready(if authorization.as_deref() == Some("Bearer t1") {
                axum::Json(serde_json::json!({ "things": [{ "id": "mine" }], "cursor": "c1", "more": false }))
                    .into_response()
            } else {
                (axum::http::StatusCode::UNAUTHORIZED, "sign in first").into_response()
            })
        }),
    );
    let server = TestServer::start_with_routes(routes);
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;

    let message = refusal(&page, "wasm_bindgen.pull('private')").await;
    assert!(message.contains(r#"the feed "private" answered HTTP 401"#), "{message}");
    assert_eq!(refusal(&page, "wasm_bindgen.setCredentials({ Authorization: 'Bearer t1' })").await, "");
    let pulled: u64 = eval(&page, "wasm_bindgen.pull('private')").await;
    assert_eq!(pulled, 1);
    let ids: Vec<String> = eval(&page, "wasm_bindgen.feedItems('private').then((l) => l.map((i) => i.id))").await;
    assert_eq!(ids, ["mine"]);
    assert_eq!(seen.lock().unwrap().last().cloned().flatten().as_deref(), Some("Bearer t1"));
    chromium.close().await;
}

/// What a feed pulled can be taken off the device (`clearFeed`, for an
/// app's sign-out: a feed of the user's own, pulled with their credentials,
/// must not stay for whoever signs in next): its items and its cursor go,
/// so the next pull is a first pull and brings what the server has now.
/// (Before, nothing but clearing the site's data removed them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_cleared_keeps_nothing_and_its_next_pull_starts_afresh() {
    let server = TestServer::start();
    post_on_server(&server, "Pulled").await;
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    wait_for_state(&page, "Pulled", "sent").await;
    let message = refusal(&page, "wasm_bindgen.clearFeed('nope')").await;
    assert!(message.contains(r#"there is no feed "nope"; the feeds are "posts""#), "{message}");
    assert_eq!(refusal(&page, "wasm_bindgen.clearFeed('posts')").await, "");
    let left: Vec<serde_json::Value> = eval(&page, "wasm_bindgen.feedItems('posts')").await;
    assert!(left.is_empty(), "{left:?}");
    let snapshot: serde_json::Value = eval(&page, "wasm_bindgen.inspect().then((s) => s.feeds)").await;
    assert!(snapshot.to_string().contains("\"cursor\":null"), "the cursor stayed: {snapshot}");
    // The next pull is a first pull (no cursor, no ETag): the post is back.
    let pulled: u64 = eval(&page, "wasm_bindgen.pull('posts')").await;
    assert_eq!(pulled, 1);
    let titles: Vec<String> = eval(&page, "wasm_bindgen.feedItems('posts').then((l) => l.map((p) => p.title))").await;
    assert_eq!(titles, ["Pulled"]);
    chromium.close().await;
}

/// A server whose data was restored or reset no longer knows the cursor a
/// page reached: it answers 410, and the pull replaces what the feed holds
/// with a first pull, in one transaction with its first page, so the page
/// lists what the server has now. (Before, the server answered an empty
/// delta for ever, and the page kept listing posts the server no longer
/// had, and never got those written before the cursor came round again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_server_forgot_its_cursor_is_pulled_afresh() {
    use sqlx::Connection;
    let server = TestServer::start();
    post_on_server(&server, "Before the reset").await;
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    wait_for_state(&page, "Before the reset", "sent").await;
    // The server's data reset under the page: what it pulled is gone there.
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&server.database_url).await.unwrap();
    for table in ["posts", "idempotency_keys"] {
        sqlx::query(&format!("DELETE FROM {table}")).execute(&mut db).await.unwrap();
    }
    let pulled: u64 = eval(&page, "wasm_bindgen.pull('posts')").await;
    assert_eq!(pulled, 0);
    let left: Vec<serde_json::Value> = eval(&page, "wasm_bindgen.feedItems('posts')").await;
    assert!(left.is_empty(), "what the server no longer has is still listed: {left:?}");
    // And what is written now arrives with the next pull.
    post_on_server(&server, "After the reset").await;
    let pulled: u64 = eval(&page, "wasm_bindgen.pull('posts')").await;
    assert_eq!(pulled, 1);
    chromium.close().await;
}

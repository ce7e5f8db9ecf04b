//! The tasks app in a real headless Chromium: its plain JavaScript page on
//! bgsync's JavaScript API, bgsync's ready worker, real IndexedDB, and the
//! real server on a SQLite file.

mod common;

use bgsync_testkit::chromium::{eval, queued_in, wait_for, Chromium};
use common::{eventually, Server};
use std::time::Duration;

/// The tasks page has started when it marked its status ready.
const READY: &str = "document.querySelector('#status').dataset.ready === 'true'";

/// The app open on a fresh server, its worker offline (the page is not:
/// its own reads still reach the server).
async fn app_with_worker_offline() -> (Server, Chromium, chromiumoxide::Page) {
    let server = Server::start(false).await;
    let chromium = Chromium::launch(READY).await;
    let page = chromium.open_app(&server.url).await;
    chromium.set_worker_offline(true).await;
    (server, chromium, page)
}

fn titles_js() -> &'static str {
    "[...document.querySelectorAll('#tasks li')].map(li => li.querySelector('.title').textContent + (li.classList.contains('done') ? ' (done)' : ''))"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_and_deletes_are_delivered_once_and_in_order_after_the_tab_is_closed() {
    let (server, chromium, page) = app_with_worker_offline().await;
    // t1 is on the server already (written on another client, pulled here).
    let res = another_client(&server, reqwest::Method::PUT, "t1", Some(serde_json::json!({ "title": "Draft" })))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The worker pulls for the page: online for that one.
    chromium.set_worker_offline(false).await;
    assert!(eval::<bool>(&page, "tasks.refresh().then(() => true)").await);
    wait_for(&page, "the pulled task", "document.querySelectorAll('#tasks li').length === 1").await;
    chromium.set_worker_offline(true).await;
    let queued: bool = eval(
        &page,
        "(async () => { await tasks.patch('t1', { title: 'Final' }); \
         await tasks.put('t2', { title: 'Keep', done: false }); \
         await tasks.patch('t2', { done: true }); await tasks.remove('t1'); return true; })()",
    )
    .await;
    assert!(queued);
    let edits = queued_in(&page, "edits").await;
    let methods: Vec<&str> = edits.iter().map(|e| e["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["PATCH", "PUT", "PATCH", "DELETE"], "queued in the order they were made");
    let shown: Vec<String> = eval(&page, titles_js()).await;
    assert_eq!(shown, ["Keep (done)"], "the page shows its queued changes");
    // After a reload too: the page reads them back from the queue.
    page.reload().await.unwrap();
    wait_for(&page, "the page to start again", READY).await;
    let shown: Vec<String> = eval(&page, titles_js()).await;
    assert_eq!(shown, ["Keep (done)"], "the queued changes survive a reload");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.count("tasks").await, 1, "nothing left the browser while offline");
    // bgsync's inspector works in this app too: its queues and their entries.
    page.find_element("#inspector-panel summary").await.unwrap().click().await.unwrap();
    let requests: Vec<String> = eventually("the inspector to list the queued edits", Duration::from_secs(10), || async {
        let rows: Vec<String> = eval(
            &page,
            "[...document.querySelectorAll('#inspector-panel .bgsync-inspector [data-section=queue-edits] tbody tr td:first-child')].map(td => td.firstChild.textContent)",
        )
        .await;
        (rows.len() == 4).then_some(rows)
    })
    .await;
    assert_eq!(requests, ["PATCH /api/tasks/t1", "PUT /api/tasks/t2", "PATCH /api/tasks/t2", "DELETE /api/tasks/t1"]);
    page.close().await.unwrap();

    // Back online with no tab open: the worker delivers.
    chromium.set_worker_offline(false).await;
    let stored = eventually("the four edits", Duration::from_secs(45), || async {
        let tasks = server.tasks().await;
        (tasks.len() == 2 && tasks[1].3 == 1).then_some(tasks)
    })
    .await;
    // In order: a PATCH before its PUT would have been refused (404), a
    // DELETE before the PATCH would have left the old title.
    assert_eq!(stored, [("t2".to_owned(), "Keep".to_owned(), 1, 0), ("t1".to_owned(), "Final".to_owned(), 0, 1)]);
    eventually("the four events", Duration::from_secs(45), || async {
        (server.count("events").await == 4).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.count("idempotency_keys").await, 8, "each edit and event applied once");

    let page = chromium.open_app(&server.url).await;
    wait_for(&page, "the pulled list", "document.querySelectorAll('#tasks li').length === 1").await;
    let shown: Vec<String> = eval(&page, titles_js()).await;
    assert_eq!(shown, ["Keep (done)"]);
    assert!(queued_in(&page, "edits").await.is_empty());
    chromium.close().await;
}

/// A task added offline and deleted before it was sent is taken back out
/// of the queue with its changes (`discardQueued`): the server never hears
/// of it, not even as a DELETE, and the other tasks go as queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_added_and_deleted_before_it_was_sent_never_reaches_the_server() {
    let (server, chromium, page) = app_with_worker_offline().await;
    let queued: bool = eval(
        &page,
        "(async () => { await tasks.put('typo', { title: 'Bye mlik', done: false }); \
         await tasks.put('keep', { title: 'Keep', done: false }); \
         await tasks.patch('typo', { title: 'Buy mlik' }); await tasks.remove('typo'); return true; })()",
    )
    .await;
    assert!(queued);
    let edits = queued_in(&page, "edits").await;
    let queued: Vec<(&str, &str)> =
        edits.iter().map(|e| (e["method"].as_str().unwrap(), e["url"].as_str().unwrap())).collect();
    assert_eq!(queued, [("PUT", "/api/tasks/keep")], "the deleted task's PUT and PATCH are out, no DELETE queued");
    let shown: Vec<String> = eval(&page, titles_js()).await;
    assert_eq!(shown, ["Keep"]);
    wait_for(&page, "the status", "document.querySelector('#status').textContent === '1 change(s) waiting to be sent'")
        .await;

    chromium.set_worker_offline(false).await;
    eventually("the three events (two adds, a rename)", Duration::from_secs(45), || async {
        (server.count("events").await == 3).then_some(())
    })
    .await;
    let stored = eventually("the kept task", Duration::from_secs(45), || async {
        let tasks = server.tasks().await;
        (!tasks.is_empty()).then_some(tasks)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stored, [("keep".to_owned(), "Keep".to_owned(), 0, 0)]);
    assert_eq!(server.tasks().await, stored, "nothing of the deleted task, not even a tombstone");
    assert_eq!(server.count("idempotency_keys").await, 4, "one edit and three events");
    wait_for(&page, "all saved", "document.querySelector('#status').dataset.state === 'synced'").await;
    chromium.close().await;
}

/// `discardQueued` waits while any context's round is sending (here the
/// worker's batch, held unanswered by the server), so its answer is exact:
/// `null` for an entry that round delivered, the entry itself (attempts 0)
/// for one nothing sent, which is then never sent; other tabs are told
/// with a `discarded` event; bad arguments are refused with what to pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_an_entry_out_waits_for_a_round_in_progress_and_says_whether_it_went() {
    let (server, chromium, page) = app_with_worker_offline().await;
    assert!(eval::<bool>(&page, "tasks.put('sent', { title: 'In flight', done: false }).then(() => true)").await);
    let key = queued_in(&page, "edits").await[0]["key"].as_str().unwrap().to_owned();
    server.hold_batches(true);
    chromium.set_worker_offline(false).await;
    eventually("the worker's batch to reach the server", Duration::from_secs(30), || async {
        server.requests().iter().any(|r| r == "POST /api/sync/batch").then_some(())
    })
    .await;
    let started: bool = eval(
        &page,
        &format!(
            "(window.taken = 'waiting', wasm_bindgen.discardQueued('edits', '{key}').then((v) => (window.taken = v), \
             (e) => (window.taken = 'refused: ' + e)), true)"
        ),
    )
    .await;
    assert!(started);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(eval::<String>(&page, "window.taken").await, "waiting", "not while the round sends it");
    server.hold_batches(false);
    let taken: String = eventually("the answer", Duration::from_secs(30), || async {
        let taken: String = eval(&page, "JSON.stringify(window.taken)").await;
        (taken != "\"waiting\"").then_some(taken)
    })
    .await;
    assert_eq!(taken, "null", "the round delivered it");
    assert_eq!(server.tasks().await, [("sent".to_owned(), "In flight".to_owned(), 0, 0)]);

    // One nothing has sent: taken out, as it was, and never sent; a second
    // page hears of it.
    chromium.set_worker_offline(true).await;
    let other = chromium.open_app(&server.url).await;
    let listening: bool =
        eval(&other, "(window.heard = [], wasm_bindgen.subscribe((e) => window.heard.push(e)), true)").await;
    assert!(listening);
    let key = eval::<String>(
        &page,
        "wasm_bindgen.enqueue('edits', { method: 'PUT', url: '/api/tasks/never', body: '{\"title\":\"Never\"}' })",
    )
    .await;
    let taken: serde_json::Value = eval(&page, &format!("wasm_bindgen.discardQueued('edits', '{key}')")).await;
    assert_eq!(
        (&taken["key"], &taken["method"], &taken["url"], &taken["attempts"], &taken["queue"]),
        (
            &serde_json::json!(key),
            &serde_json::json!("PUT"),
            &serde_json::json!("/api/tasks/never"),
            &serde_json::json!(0),
            &serde_json::json!("edits")
        ),
        "{taken}"
    );
    assert!(queued_in(&page, "edits").await.is_empty());
    let again: String =
        eval(&page, &format!("wasm_bindgen.discardQueued('edits', '{key}').then(JSON.stringify)")).await;
    assert_eq!(again, "null", "already out");
    let heard: Vec<serde_json::Value> = eventually("the other page to hear of it", Duration::from_secs(10), || async {
        let heard: Vec<serde_json::Value> = eval(&other, "window.heard.filter((e) => e.type === 'discarded')").await;
        (!heard.is_empty()).then_some(heard)
    })
    .await;
    assert_eq!(heard, [serde_json::json!({ "type": "discarded", "queue": "edits", "key": key })]);
    let refusals: Vec<String> = eval(
        &page,
        "Promise.all([wasm_bindgen.discardQueued('nope', 'k'), wasm_bindgen.discardQueued('edits', 5)].map((p) => \
         p.then(() => 'resolved', (e) => (e instanceof Error ? e.message : 'not an Error'))))",
    )
    .await;
    assert!(refusals[0].contains("there is no queue \"nope\"; the queues are \"edits\""), "{refusals:?}");
    assert_eq!(refusals[1], "discardQueued: the entry's key must be a string");
    chromium.set_worker_offline(false).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.tasks().await.len(), 1, "the taken entry is never sent");
    chromium.close().await;
}

/// A request to the task `id` from another client (a phone), straight to
/// the server.
async fn another_client(
    server: &Server,
    method: reqwest::Method,
    id: &str,
    body: Option<serde_json::Value>,
) -> reqwest::Result<reqwest::Response> {
    let mut request = reqwest::Client::new().request(method, format!("{}/api/tasks/{id}", server.url));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pulled_feed_shows_another_clients_changes() {
    let server = Server::start(false).await;
    let chromium = Chromium::launch(READY).await;
    let page = chromium.open_app(&server.url).await;
    let other = |method, body| another_client(&server, method, "from-phone", body);
    let res = other(reqwest::Method::PUT, Some(serde_json::json!({ "title": "Written on the phone" }))).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(eval::<bool>(&page, "tasks.refresh().then(() => true)").await);
    wait_for(&page, "the other client's task", "document.querySelector('#tasks li[data-id=\"from-phone\"]')").await;
    let shown: Vec<String> = eval(&page, titles_js()).await;
    assert_eq!(shown, ["Written on the phone"]);

    let res = other(reqwest::Method::DELETE, None).await.unwrap();
    assert_eq!(res.status(), 204);
    assert!(eval::<bool>(&page, "tasks.refresh().then(() => true)").await);
    wait_for(&page, "the deletion", "document.querySelectorAll('#tasks li').length === 0").await;
    let pulls: Vec<String> = server.requests().into_iter().filter(|r| r.starts_with("GET /api/tasks")).collect();
    assert!(pulls.iter().any(|r| r.contains("since=")), "later pulls ask only for changes: {pulls:?}");
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unordered_events_queue_is_delivered_in_batches() {
    let (server, chromium, page) = app_with_worker_offline().await;
    let queued: bool = eval(
        &page,
        "(async () => { for (let i = 0; i < 30; i++) await wasm_bindgen.enqueue('events', \
         { url: '/api/events', body: JSON.stringify({ name: 'tap-' + i }) }); return true; })()",
    )
    .await;
    assert!(queued);
    chromium.set_worker_offline(false).await;
    eventually("the thirty events", Duration::from_secs(45), || async {
        (server.count("events").await == 30).then_some(())
    })
    .await;
    let requests = server.requests();
    let batches = requests.iter().filter(|r| r.as_str() == "POST /api/sync/batch").count();
    let alone = requests.iter().filter(|r| r.as_str() == "POST /api/events").count();
    assert!((1..=2).contains(&batches) && alone == 0, "{requests:?}");
    chromium.close().await;
}

/// An event whose bytes break any request that carries them (a proxy that
/// resets it): the batch fails on the network while the server still
/// answers, so the worker splits it, halving while a half breaks; the other
/// events are delivered, each once, with no attempt counted against them,
/// and the breaking one ends alone, dead-lettered after its own attempts
/// (the queue allows five).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_breaks_its_batch_is_isolated_and_the_others_are_delivered() {
    let (server, chromium, page) = app_with_worker_offline().await;
    server.break_batches_containing("BREAKS-THE-PROXY");
    let queued: bool = eval(
        &page,
        "(async () => { for (let i = 0; i < 20; i++) await wasm_bindgen.enqueue('events', \
         { url: '/api/events', body: JSON.stringify({ name: i === 7 ? 'BREAKS-THE-PROXY' : 'tap-' + i }) }); return true; })()",
    )
    .await;
    assert!(queued);
    chromium.set_worker_offline(false).await;
    eventually("the nineteen good events", Duration::from_secs(45), || async {
        (server.count("events").await == 19).then_some(())
    })
    .await;
    let dead: Vec<serde_json::Value> =
        eventually("the breaking event dead-lettered", Duration::from_secs(60), || async {
            let dead: Vec<serde_json::Value> = eval(&page, "wasm_bindgen.deadLetters()").await;
            (!dead.is_empty()).then_some(dead)
        })
        .await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0]["body"].as_str().unwrap().contains("BREAKS-THE-PROXY"));
    assert_eq!(
        dead[0]["cause"],
        serde_json::json!({ "kind": "too-many-attempts", "attempts": 5 }),
        "its own five attempts"
    );
    assert!(queued_in(&page, "events").await.is_empty());
    assert_eq!(server.count("events").await, 19, "each good event once");
    let batches = server.requests().iter().filter(|r| *r == "POST /api/sync/batch").count();
    // 20 → 10 → 5 → 3 → 2 → 1: two requests per halving, then its own five.
    assert!(batches <= 2 * 5 + 5 + 2, "{batches} batch requests: {:?}", server.requests());
    chromium.close().await;
}

/// Where no worker replays or pulls for the page (here: a browser without
/// service workers), bgsync's page module, which has neither of its own,
/// loads bgsync's fallback module once, for its first pull (the tasks app
/// pulls as it starts), and replays there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_service_workers_the_page_loads_the_fallback_module_and_delivers_in_order() {
    let server = Server::start(false).await;
    let chromium = Chromium::launch(READY).await;
    let page = chromium.open_app_without_service_worker(&server.url).await;
    let fallback_requests =
        || server.requests().into_iter().filter(|r| r.contains("/bgsync_fallback-")).collect::<Vec<_>>();
    eventually("the page's first pull to load the fallback module", Duration::from_secs(10), || async {
        (fallback_requests().len() == 2).then_some(())
    })
    .await;
    // The pull went: another client's task shows after the next one.
    let res = another_client(&server, reqwest::Method::PUT, "t0", Some(serde_json::json!({ "title": "Theirs" })))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(eval::<bool>(&page, "tasks.refresh().then(() => true)").await);
    wait_for(&page, "the pulled task", "document.querySelectorAll('#tasks li').length === 1").await;

    let queued: bool = eval(
        &page,
        "(async () => { wasm_bindgen.configure(self.BGSYNC_CONFIG); \
         await tasks.put('t1', { title: 'Draft', done: false }); await tasks.patch('t1', { title: 'Final' }); \
         await tasks.put('t2', { title: 'Gone', done: false }); await tasks.remove('t2'); return true; })()",
    )
    .await;
    assert!(queued);
    eventually("the edits to leave the queue, from the page", Duration::from_secs(30), || async {
        queued_in(&page, "edits").await.is_empty().then_some(())
    })
    .await;
    let stored = eventually("the edits on the server", Duration::from_secs(10), || async {
        let tasks = server.tasks().await;
        tasks.iter().any(|t| t.0 == "t1").then_some(tasks)
    })
    .await;
    // In order: a PATCH before its PUT would have been refused (404). t2
    // is gone: taken out before the page's round sent it, or sent and
    // deleted after (the page's round may already be sending it).
    assert!(stored.contains(&("t1".to_owned(), "Final".to_owned(), 0, 0)), "{stored:?}");
    assert!(stored.iter().all(|t| t.0 != "t2" || t.3 == 1), "{stored:?}");
    let modules = fallback_requests();
    assert_eq!(modules.len(), 2, "its script and its wasm, once, for pulls and the replay alike: {modules:?}");
    // The browser took its bytes as the Brotli encoding the build made
    // (Chromium weighs every coding it names alike, so the server picks
    // the smaller), and read the whole module out of them.
    let wasm = format!("/{}.wasm", tasks::assets::BGSYNC_FALLBACK);
    let asset = tasks::assets::ASSETS.iter().find(|a| a.path == wasm).unwrap();
    let sizes: Vec<u64> = eval(
        &page,
        &format!(
            "(() => {{ const e = performance.getEntriesByType('resource').find(e => e.name.endsWith({wasm:?})); \
             return e ? [e.encodedBodySize, e.decodedBodySize] : []; }})()"
        ),
    )
    .await;
    let br = asset.br.expect("the fallback module has a Brotli encoding").len() as u64;
    assert_eq!(sizes, [br, asset.body.len() as u64], "transferred with Brotli ({br} bytes), read whole");
    chromium.close().await;
}

/// A change the server refuses for good (renaming, and marking done, two
/// tasks another client deleted meanwhile: 404) is listed with what it was
/// and the server's reason, the status line counts it, and each can be
/// retried (once the task is back, the rename is applied) or discarded.
/// (Before session 25 such a change vanished from the page without a word.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_server_refuses_is_listed_with_why_then_retried_or_discarded() {
    let server = Server::start(false).await;
    let chromium = Chromium::launch(READY).await;
    let page = chromium.open_app(&server.url).await;
    for (id, title) in [("shop", "Buy milk"), ("call", "Call Ada")] {
        let res = another_client(&server, reqwest::Method::PUT, id, Some(serde_json::json!({ "title": title })))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    assert!(eval::<bool>(&page, "tasks.refresh().then(() => true)").await);
    wait_for(&page, "the two tasks", "document.querySelectorAll('#tasks li').length === 2").await;
    chromium.set_worker_offline(true).await;
    let queued: bool = eval(
        &page,
        "(async () => { await tasks.patch('shop', { title: 'Buy oat milk' }); \
         await tasks.patch('call', { done: true }); return true; })()",
    )
    .await;
    assert!(queued);
    for id in ["shop", "call"] {
        assert_eq!(another_client(&server, reqwest::Method::DELETE, id, None).await.unwrap().status(), 204);
    }
    chromium.set_worker_offline(false).await;

    let rows = "[...document.querySelectorAll('#not-saved li .reason')].map(s => s.textContent)";
    let shown: Vec<String> = eventually("the refused changes to be listed", Duration::from_secs(45), || async {
        let shown: Vec<String> = eval(&page, rows).await;
        (shown.len() == 2).then_some(shown)
    })
    .await;
    assert!(
        shown[0].starts_with(
            "Renaming \u{201c}Buy milk\u{201d} to \u{201c}Buy oat milk\u{201d} failed: the server refused it (HTTP 404): "
        ) && shown[0].contains("There is no task shop"),
        "{shown:?}"
    );
    assert!(
        shown[1].starts_with("Marking \u{201c}Call Ada\u{201d} done failed: the server refused it (HTTP 404): ")
            && shown[1].contains("There is no task call"),
        "{shown:?}"
    );
    let status =
        "document.querySelector('#status').dataset.state + ': ' + document.querySelector('#status').textContent";
    wait_for(&page, "the status to count them", "document.querySelector('#status').dataset.state === 'failed'").await;
    assert_eq!(eval::<String>(&page, status).await, "failed: 2 change(s) not saved (below)");

    // The rename is retried once the task is back; the other is let go.
    let res = another_client(&server, reqwest::Method::PUT, "shop", Some(serde_json::json!({ "title": "Buy milk" })))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        eval::<bool>(&page, "(document.querySelector('#not-saved li button[data-action=retry]').click(), true)").await
    );
    let stored = eventually("the retried rename", Duration::from_secs(45), || async {
        let tasks = server.tasks().await;
        tasks.iter().any(|t| t.0 == "shop" && t.1 == "Buy oat milk").then_some(tasks)
    })
    .await;
    assert!(stored.contains(&("call".to_owned(), "Call Ada".to_owned(), 0, 1)), "still deleted: {stored:?}");
    wait_for(&page, "one change left", "document.querySelectorAll('#not-saved li').length === 1").await;
    assert!(
        eval::<bool>(&page, "(document.querySelector('#not-saved li button[data-action=discard]').click(), true)")
            .await
    );
    wait_for(&page, "none left", "document.querySelectorAll('#not-saved li').length === 0").await;
    wait_for(&page, "all saved", "document.querySelector('#status').dataset.state === 'synced'").await;
    let left: usize = eval(&page, "wasm_bindgen.deadLetters().then(d => d.length)").await;
    assert_eq!(left, 0);
    chromium.close().await;
}

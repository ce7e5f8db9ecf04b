//! How a round moves a queue: an unordered queue has up to its
//! `maxInFlight` batches on the wire at once; a long queue is read a page
//! at a time (the next page while a batch travels) and delivered in order,
//! as is a short one whose keys run
//! against its order; a batch request goes out before the pages are told
//! it is sending, and one whose entries all succeeded ends without waiting
//! for its answer's body; draining a long queue leaves the
//! worker's memory as it was, and the feed's page lists only the newest
//! of a long queue. Real Chromium, the feed's worker, the feed's
//! declaration with its posts queue changed where a test says so.

mod common;

use common::browser::{eval, fill_queue, queued, until_drained, worker_status, Chromium};
use common::{eventually, posts_queue_declared_with, TestServer};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unordered_queue_has_up_to_max_in_flight_batches_on_the_wire() {
    let (server, chromium, page) = the_app_declaring("ordered: false, maxInFlight: 3, batch: { maxEntries: 10 }").await;
    let declared: u64 =
        eval(&page, "wasm_bindgen.inspect().then((s) => s.queues.find((q) => q.name === 'sync-posts').maxInFlight)")
            .await;
    assert_eq!(declared, 3, "the inspector's snapshot shows the queue's maxInFlight");
    // Each post (each entry of a batch too) takes 150 ms: a batch of 10
    // takes 1.5 s or more on the server. The round reads the 30 posts in one
    // page (maxInFlight batches' worth) and sends three batches at once.
    server.delay_posts(150);

    let keys = queued_offline(&chromium, &page, 30, "").await;
    assert_eq!(keys.len(), 30);
    chromium.set_worker_offline(false).await;

    let posts = until_drained(&server, &page, 30).await;
    let titles: BTreeSet<_> = posts.iter().map(|(_, title, _)| title.clone()).collect();
    assert_eq!((posts.len(), titles.len()), (30, 30), "each post stored once: {posts:?}");
    let most = server.net().max_batches_in_flight.load(Ordering::SeqCst);
    assert_eq!(most, 3, "batches on the wire at once (maxInFlight is 3)");
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_ordered_queue_is_read_a_page_at_a_time_and_delivered_in_order() {
    // Batches of at most 5: the worker reads 20 entries at a time.
    let (server, chromium, page) = the_app_declaring("batch: { maxEntries: 5 }").await;

    // Five in the same millisecond now and then: the queue's order is the
    // enqueue time, then the key, as the engine's.
    let (titles, expected) = queued_offline_then_drained(&chromium, &server, &page, 70, "").await;
    assert_eq!(titles, expected, "stored once each, in the order they were queued");
    let status = worker_status(&page).await;
    let pages: u64 = status["rounds"].as_array().unwrap().iter().map(|r| r["pages"].as_u64().unwrap()).max().unwrap();
    assert!(pages >= 4, "70 entries, 20 at a time: {pages} page(s) in the largest round; {status}");
    // The worker keeps nothing of a success but its status, and says so
    // (`Prefer: return=minimal`): the answers carry no post back (about
    // 75 bytes an entry; 170 with the created post in each).
    let answers = server.net().batch_bytes_down.load(Ordering::SeqCst);
    assert!((1..=70 * 100).contains(&answers), "{answers} bytes of batch answers for 70 entries");
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_page_is_read_while_the_first_batch_travels() {
    // Batches of 5, pages of 20, 150 ms a post on the server: the first
    // batch is on the wire for 750 ms or more, and the round reads the
    // next page as it sends it, so the batch after it is in hand when its
    // answer comes. (Before, a round read on only once it held half a page:
    // during the third batch.)
    let (server, chromium, page) = the_app_declaring("batch: { maxEntries: 5 }").await;
    server.delay_posts(150);
    assert_eq!(queued_offline(&chromium, &page, 45, "").await.len(), 45);
    // In the worker: when each read of the queue's order index was issued,
    // and when each batch request went out and was answered.
    watch_batch_requests(
        &chromium,
        "self.reads = []; \
         const getAll = IDBIndex.prototype.getAll; \
         IDBIndex.prototype.getAll = function (...args) { self.reads.push(performance.now()); return getAll.apply(this, args); };",
    )
    .await;
    chromium.set_worker_offline(false).await;
    assert_eq!(until_drained(&server, &page, 45).await.len(), 45);

    let timeline = chromium.worker_eval("({ reads: self.reads, batches: self.batches })").await;
    let reads: Vec<f64> = serde_json::from_value(timeline["reads"].clone()).unwrap();
    let batches: Vec<(f64, f64)> = serde_json::from_value(timeline["batches"].clone()).unwrap();
    let (sent, answered) = *batches.first().unwrap_or_else(|| panic!("no batch request in the worker: {timeline}"));
    // The first read is the round's first page; the second is issued with
    // the first batch (just after it: the round issues the request, then
    // the read), long before its answer.
    assert!(
        reads.len() >= 2 && reads[1] < answered,
        "the next page read while the first batch was on the wire ({sent:.0}–{answered:.0} ms): reads at {reads:?}"
    );
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_goes_out_before_its_sending_events_are_told() {
    // Telling the pages which entries a batch carries (one `sending` event
    // with every key: 1,000 of them in a full batch) took 3–7 ms of a
    // drain's critical path when it came first. The request goes first,
    // and the pages hear of it while it travels.
    let (server, chromium, page) = opened(TestServer::start()).await;
    assert_eq!(queued_offline(&chromium, &page, 30, "").await.len(), 30);
    // In the worker: the batch request going out, and the message
    // carrying the `sending` event posted to the pages, in their order.
    watch_batch_requests(
        &chromium,
        "const post = BroadcastChannel.prototype.postMessage; \
         BroadcastChannel.prototype.postMessage = function (message) { \
           if (JSON.stringify(message).includes('\"sending\"')) self.order.push('sending'); \
           return post.call(this, message); };",
    )
    .await;
    chromium.set_worker_offline(false).await;
    assert_eq!(until_drained(&server, &page, 30).await.len(), 30);
    let order = chromium.worker_eval("self.order").await;
    assert_eq!(order, serde_json::json!(["batch", "sending"]), "the batch request, then its event");
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_entries_all_succeeded_ends_without_waiting_for_its_answers_body() {
    // The server says in the answer's head how many entries succeeded
    // (`Bgsync-Batch-Succeeded`); when that is all of them, the body
    // (results the worker would read only to find 2xx) is not waited for.
    // Here each body comes 4 s after its head: the entries leave the queue
    // long before (they waited for it before), and the next batches go.
    let (server, chromium, page) = the_app_declaring("batch: { maxEntries: 10 }").await;
    assert_eq!(queued_offline(&chromium, &page, 30, "").await.len(), 30);
    server.delay_batch_bodies(4_000);
    chromium.set_worker_offline(false).await;
    let went = std::time::Instant::now();
    eventually("the queue to empty", Duration::from_secs(20), || async {
        queued(&page).await.is_empty().then_some(())
    })
    .await;
    let took = went.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "three batches' entries left the queue after {took:?}, not after their bodies"
    );
    assert_eq!(server.stored_posts().await.len(), 30);
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_run_against_the_queue_order_do_not_change_the_order_it_is_sent_in() {
    // Keys given by the app need not follow the queue's order (here they
    // run backwards), and the store's own order is by key: what a round
    // sends follows the queue's order all the same, however it read it.
    let (server, chromium, page) = opened(TestServer::start()).await;
    let (titles, expected) =
        queued_offline_then_drained(&chromium, &server, &page, 12, "key: 'key-' + String(99 - i),").await;
    assert_eq!(titles, expected, "stored once each, in the order they were queued, not in key order");
    let status = worker_status(&page).await;
    let rounds = status["rounds"].as_array().unwrap();
    assert!(rounds.iter().all(|r| r["pages"] == 1), "one read of the whole queue a round: {status}");
    // Where a round's read went: waiting for IndexedDB (`read`), then the
    // records read into entries (`decode`), each a phase of its record.
    for round in rounds {
        let phases: Vec<&str> = round["phases"].as_array().unwrap().iter().map(|p| p[0].as_str().unwrap()).collect();
        assert_eq!(phases.get(..2), Some(&["read", "decode"][..]), "{round}");
    }
    chromium.close().await;
}

/// Wraps the worker's `fetch` so that each batch request is noted, as
/// `"batch"` in `self.order` when it is made and as `[sent, answered]`
/// (`performance.now()`) in `self.batches`; `more` (JavaScript) runs first,
/// to note something else beside it.
async fn watch_batch_requests(chromium: &Chromium, more: &str) {
    let wrapped = chromium
        .worker_eval(&format!(
            "(() => {{ self.order = []; self.batches = []; {more} \
               const fetch = self.fetch; \
               self.fetch = function (request, ...rest) {{ \
                 const batch = String(request.url || request).includes('/api/sync/batch') ? [performance.now(), null] : null; \
                 if (batch) {{ self.order.push('batch'); self.batches.push(batch); }} \
                 const answer = fetch.call(this, request, ...rest); \
                 if (batch) answer.then(() => {{ batch[1] = performance.now(); }}, () => {{ batch[1] = performance.now(); }}); \
                 return answer; }}; \
               return true; }})()"
        ))
        .await;
    assert_eq!(wrapped, serde_json::json!(true), "the worker's fetch wrapped");
}

/// The feed app with its posts queue declared with `declaration` (fields
/// of the queue's object, in JavaScript), open in Chromium, its worker
/// active.
async fn the_app_declaring(declaration: &str) -> (TestServer, Chromium, chromiumoxide::Page) {
    opened(TestServer::start_with_routes(posts_queue_declared_with(declaration))).await
}

/// The app of `server` open in Chromium, its worker ready.
async fn opened(server: TestServer) -> (TestServer, Chromium, chromiumoxide::Page) {
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    assert!(eval::<bool>(&page, "navigator.serviceWorker.ready.then(() => true)").await);
    (server, chromium, page)
}

/// Takes the worker offline and queues `n` posts titled "Post 00",
/// "Post 01"… through bgsync's API (`fields`: more fields of each request,
/// in JavaScript, `i` being the post's number); returns their keys. The
/// worker stays offline.
async fn queued_offline(chromium: &Chromium, page: &chromiumoxide::Page, n: usize, fields: &str) -> Vec<String> {
    chromium.set_worker_offline(true).await;
    eval(
        page,
        &format!(
            "(async () => {{ const keys = []; for (let i = 0; i < {n}; i++) {{ \
               keys.push(await wasm_bindgen.enqueue('sync-posts', {{ url: '/api/posts', {fields} \
                 body: JSON.stringify({{ id: crypto.randomUUID(), title: 'Post ' + String(i).padStart(2, '0'), location: 'Here' }}) }})); }} \
             return keys; }})()"
        ),
    )
    .await
}

/// Queues `n` posts (see [`queued_offline`]) with the worker offline,
/// then puts it back online,
/// and returns the titles the server stored, in its order, once all are
/// there, beside the titles in the order they were queued.
async fn queued_offline_then_drained(
    chromium: &Chromium,
    server: &TestServer,
    page: &chromiumoxide::Page,
    n: usize,
    fields: &str,
) -> (Vec<String>, Vec<String>) {
    assert_eq!(queued_offline(chromium, page, n, fields).await.len(), n);
    chromium.set_worker_offline(false).await;
    let posts = until_drained(server, page, n).await;
    let titles = posts.into_iter().map(|(_, title, _)| title).collect();
    (titles, (0..n).map(|i| format!("Post {i:02}")).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_lists_the_newest_hundred_waiting_posts_and_counts_them_all() {
    let (server, chromium, page) = opened(TestServer::start()).await;
    assert_eq!(queued_offline(&chromium, &page, 130, "").await.len(), 130);
    let (titles, more) = eventually("the page to count the 130 posts", Duration::from_secs(10), || async {
        let (status, titles, more): (String, Vec<String>, String) = eval(
            &page,
            "[document.querySelector('#sync-status').textContent, \
              [...document.querySelectorAll('#posts .post[data-state=pending] .title')].map(t => t.textContent), \
              document.querySelector('#posts .more')?.textContent ?? '']",
        )
        .await;
        (status == "130 post(s) waiting to be sent").then_some((titles, more))
    })
    .await;
    // The newest first: posts 129 down to 30, then the line for the rest.
    assert_eq!(titles, (30..130).rev().map(|i| format!("Post {i:02}")).collect::<Vec<_>>());
    assert_eq!(more, "… and 30 older post(s) waiting to be sent");
    chromium.set_worker_offline(false).await;
    assert_eq!(until_drained(&server, &page, 130).await.len(), 130);
}

/// The feed app with "Bench post 0" … "Bench post 9999" (oldest first)
/// written straight into its queue, its worker offline.
async fn ten_thousand_queued_offline() -> (TestServer, Chromium, chromiumoxide::Page) {
    let (server, chromium, page) = opened(TestServer::start()).await;
    chromium.set_worker_offline(true).await;
    assert_eq!(fill_queue(&page, "sync-posts", "sync-new-posts", 10_000).await, 10_000);
    (server, chromium, page)
}

/// Counts, in the page, the queue records its reads of the `entries`
/// store take in (every record a `getAll` returns, every step of a cursor)
/// from now on, in `window.entriesRead`.
const COUNT_ENTRY_READS: &str = "(() => { window.entriesRead = 0; \
    const store = (source) => (source.objectStore || source).name; \
    const records = { getAll: (result) => result.length, openCursor: (cursor) => (cursor ? 1 : 0) }; \
    for (const proto of [IDBIndex.prototype, IDBObjectStore.prototype]) { \
      for (const [name, count] of Object.entries(records)) { \
        const call = proto[name]; \
        proto[name] = function (...args) { const req = call.apply(this, args); \
          if (store(this) === 'entries') req.addEventListener('success', () => window.entriesRead += count(req.result)); \
          return req; }; } } \
    return true; })()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_the_api_and_the_inspector_read_the_newest_or_first_of_a_long_queue() {
    let (_server, chromium, page) = ten_thousand_queued_offline().await;
    assert!(eval::<bool>(&page, COUNT_ENTRY_READS).await);
    // One more post through the API, which makes the page render.
    let key: String = eval(
        &page,
        "wasm_bindgen.enqueue('sync-posts', { url: '/api/posts', \
           body: JSON.stringify({ id: crypto.randomUUID(), title: 'The newest', location: 'Here' }) })",
    )
    .await;
    eventually("the page to count the 10,001 posts", Duration::from_secs(20), || async {
        let status: String = eval(&page, "document.querySelector('#sync-status').textContent").await;
        (status == "10001 post(s) waiting to be sent").then_some(())
    })
    .await;
    let (shown, more, read): (usize, String, u64) = eval(
        &page,
        "[document.querySelectorAll('#posts .post[data-state=pending]').length, \
          document.querySelector('#posts .more')?.textContent ?? '', window.entriesRead]",
    )
    .await;
    assert_eq!((shown, more.as_str()), (100, "… and 9901 older post(s) waiting to be sent"));
    // A render reads the newest hundred (a render per burst of events,
    // and another may have run): never the 10,001.
    assert!(read > 0 && read <= 300, "the page took in {read} queue records to render");

    // The JavaScript API reads the same way: at most `limit`, newest first
    // when asked.
    let titles = |options: &str| {
        format!(
            "wasm_bindgen.queued('sync-posts', {options}).then((entries) => \
               entries.map((e) => [e.key, JSON.parse(e.body).title]))"
        )
    };
    let newest: Vec<(String, String)> = eval(&page, &titles("{ limit: 3, newestFirst: true }")).await;
    assert_eq!(newest[0], (key, "The newest".to_owned()));
    let newest: Vec<&str> = newest.iter().map(|(_, title)| title.as_str()).collect();
    assert_eq!(newest, ["The newest", "Bench post 9999", "Bench post 9998"]);
    let oldest: Vec<(String, String)> = eval(&page, &titles("{ limit: 2 }")).await;
    let oldest: Vec<&str> = oldest.iter().map(|(_, title)| title.as_str()).collect();
    assert_eq!(oldest, ["Bench post 0", "Bench post 1"]);
    // The inspector's snapshot: the count, and the first 200 to go.
    let (count, listed, first): (u64, usize, String) = eval(
        &page,
        "wasm_bindgen.inspect().then((s) => { const q = s.queues.find((q) => q.name === 'sync-posts'); \
           return [q.queued, q.entries.length, JSON.parse(q.entries[0].body).title]; })",
    )
    .await;
    assert_eq!((count, listed, first.as_str()), (10_001, 200, "Bench post 0"));
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_ten_thousand_entries_leaves_the_workers_heap_as_it_was() {
    let (server, chromium, page) = ten_thousand_queued_offline().await;
    let before = chromium.worker_js_heap().await;

    chromium.set_worker_offline(false).await;
    assert_eq!(until_drained(&server, &page, 10_000).await.len(), 10_000);
    // Each read's handlers used to keep its page of records alive for the
    // life of the worker: 3 MB more after these 10,000 (measured).
    let after = chromium.worker_js_heap().await;
    assert!(
        after < before + 1_500_000.0,
        "the worker's live JavaScript heap: {before:.0} bytes before the drain, {after:.0} after"
    );
    chromium.close().await;
}

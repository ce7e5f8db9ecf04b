//! Entries queued while a replay is under way are delivered by it, or by a
//! round the page asks for, never left to a browser sync event that may not
//! come (Chromium 156 swallows a registration made while its tag's event is
//! firing, and never fires it again). Real Chromium, real worker, real
//! server; no trigger is given after the entries are queued.

mod common;

use common::browser::{dispatch_sync, eval, meta, put_meta, stop_all_workers, store_request, Chromium};
use common::{eventually, TestServer};
use std::collections::BTreeSet;
use std::time::Duration;

/// Queues `n` posts through the JavaScript API; resolves with their keys.
async fn enqueue(page: &chromiumoxide::Page, prefix: &str, n: usize) -> Vec<String> {
    eval(
        page,
        &format!(
            "(async () => {{ const keys = []; for (let i = 0; i < {n}; i++) {{ keys.push(await wasm_bindgen.enqueue('requests', \
             {{ url: '/api/posts', body: JSON.stringify({{ title: '{prefix} ' + i, location: 'Mid-round' }}) }})); }} return keys; }})()"
        ),
    )
    .await
}

/// Five posts queued offline, then the worker back online sending them in
/// one batch that the server holds (300 ms per post) while the test acts.
async fn a_batch_in_flight() -> (TestServer, Chromium, chromiumoxide::Page, Vec<String>) {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    chromium.set_worker_offline(true).await;
    let keys = enqueue(&page, "Before", 5).await;
    server.delay_posts(300);
    chromium.set_worker_offline(false).await;
    eventually("a batch in flight", Duration::from_secs(30), || async {
        (!server.keys_received().is_empty()).then_some(())
    })
    .await;
    (server, chromium, page, keys)
}

/// The feed app open in Chromium, its worker offline (so no sync event
/// fires unless a test lets it).
async fn the_app_with_its_worker_offline() -> (TestServer, Chromium, chromiumoxide::Page) {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    chromium.set_worker_offline(true).await;
    (server, chromium, page)
}

/// Waits until at least as many posts as `keys` are stored, then checks
/// each of `keys` was received once.
async fn every_post_once(server: &TestServer, keys: &[String], within: Duration) {
    eventually(&format!("{} posts to be stored", keys.len()), within, || async {
        (server.stored_posts().await.len() >= keys.len()).then_some(())
    })
    .await;
    // Any late round would show up as a second receipt.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = server.keys_received();
    let wanted: BTreeSet<&String> = keys.iter().collect();
    let delivered: Vec<&String> = received.iter().filter(|k| wanted.contains(k)).collect();
    assert_eq!(delivered.len(), keys.len(), "each post reached the server once: {received:?}");
}

/// Entries written while the worker's round is under way, with no sync
/// registration and no message at all (as when the browser swallowed the
/// registration of the tab that wrote them), are sent by that round before
/// it ends. (This failed before rounds drained: the round ended with them
/// still queued.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_written_during_a_round_with_no_trigger_at_all_are_sent_by_that_round() {
    let (server, chromium, page, mut keys) = a_batch_in_flight().await;
    // Copies of a queued entry, written straight into the store.
    let written: Vec<String> = eval(
        &page,
        r#"new Promise((resolve, reject) => {
            const open = indexedDB.open("bgsync");
            open.onsuccess = () => {
                const tx = open.result.transaction("entries", "readwrite");
                const store = tx.objectStore("entries");
                const keys = [];
                store.getAll(IDBKeyRange.bound(["requests"], ["requests", []])).onsuccess = (e) => {
                    const model = e.target.result[0];
                    for (let i = 0; i < 5; i++) {
                        const key = "zz-direct-" + i;
                        const body = JSON.stringify({ title: "Direct " + i, location: "IndexedDB" });
                        store.put({ ...model, key, body, enqueuedAt: Date.now() + i, attempts: 0, notBefore: 0, lastError: null });
                        keys.push(key);
                    }
                };
                tx.oncomplete = () => resolve(keys);
                tx.onerror = () => reject(tx.error);
            };
            open.onerror = () => reject(open.error);
        })"#,
    )
    .await;
    keys.extend(written);
    assert!(server.stored_posts().await.len() < 5, "the first batch was still in flight");
    every_post_once(&server, &keys, Duration::from_secs(20)).await;
    assert_eq!(server.stored_posts().await.len(), 10);
    chromium.close().await;
}

/// The worker is sending a batch (the server holds it) when the page
/// queues ten more through the JavaScript API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_queued_while_the_worker_sends_a_batch_are_delivered_without_another_trigger() {
    let (server, chromium, page, mut keys) = a_batch_in_flight().await;
    keys.extend(enqueue(&page, "During", 10).await);
    assert!(server.stored_posts().await.len() < 5, "the first batch was still in flight");
    every_post_once(&server, &keys, Duration::from_secs(30)).await;
    assert_eq!(server.stored_posts().await.len(), keys.len());
    let left: usize = eval(&page, "wasm_bindgen.status().then((s) => s.queued)").await;
    assert_eq!(left, 0);
    chromium.close().await;
}

/// The worker waits out a `Retry-After` inside its sync event when the
/// page queues more: the queue is ordered, so they go right after the
/// refused post, on the worker's own timer, with no other trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_queued_while_the_worker_waits_on_a_retry_timer_go_with_that_retry() {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    server.fail_posts_with_retry_after(503, 3);
    let first = enqueue(&page, "Refused", 1).await;
    eventually("the first attempt to be refused", Duration::from_secs(30), || async {
        (server.failed_posts() > 0).then_some(())
    })
    .await;
    server.fail_posts_with(None);
    let refused = server.keys_received().len();
    let later = enqueue(&page, "While waiting", 3).await;
    assert_eq!(server.keys_received().len(), refused, "nothing jumps the queue or spends the backoff");
    every_post_once(&server, &later, Duration::from_secs(12)).await;
    let stored = server.stored_posts().await;
    let titles: Vec<&str> = stored.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(titles, ["Refused 0", "While waiting 0", "While waiting 1", "While waiting 2"], "in order");
    assert!(server.keys_received().contains(&first[0]));
    chromium.close().await;
}

/// Without Background Sync (forced), the page asks the worker for a round
/// after each enqueue; posts queued during one are delivered too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_fallback_mode_posts_queued_during_a_round_are_delivered() {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    assert!(eval::<bool>(&page, "wasm_bindgen.forceFallback(true).then(() => true)").await);
    server.delay_posts(300);
    let mut keys = enqueue(&page, "First", 5).await;
    eventually("a round in flight", Duration::from_secs(30), || async {
        (!server.keys_received().is_empty()).then_some(())
    })
    .await;
    keys.extend(enqueue(&page, "Meanwhile", 10).await);
    every_post_once(&server, &keys, Duration::from_secs(30)).await;
    chromium.close().await;
}

/// A sync event's work does not end with its last round: the worker then
/// pulls the feeds (the server's view of what it delivered). Posts queued
/// during that pull, while the event still fires (so the browser may
/// swallow their registration), are delivered with no other trigger.
/// The worker now holds its "replaying" lock through the pulls too, so the
/// page asks it for a round. (With the lock held only around each queue's
/// rounds, the page saw nothing running and relied on its registration;
/// here Chromium 156 fired it again once the event resolved, so this also
/// passed then. An event that rejects, an entry still owed, gets no such
/// second firing: that case is what the lock covers.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_queued_while_the_worker_pulls_after_delivering_are_delivered_without_another_trigger() {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    chromium.set_worker_offline(true).await;
    let mut keys = enqueue(&page, "Before", 2).await;
    server.delay_reads(3_000);
    let reads_before = server.net().requests.load(std::sync::atomic::Ordering::SeqCst);
    chromium.set_worker_offline(false).await;
    // Delivered, and the pull that follows under way (held by the server).
    eventually("the posts delivered and the pull sent", Duration::from_secs(30), || async {
        let requests = server.net().requests.load(std::sync::atomic::Ordering::SeqCst);
        (server.stored_posts().await.len() == 2 && requests > reads_before + 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pulled =
        |log: &[(String, u16)]| log.iter().filter(|(line, _)| line.starts_with("GET /api/posts?since")).count();
    let pulls_done = pulled(&server.request_log());
    keys.extend(enqueue(&page, "During the pull", 3).await);
    assert_eq!(pulled(&server.request_log()), pulls_done, "the worker's pull was still under way");
    server.delay_reads(0);
    every_post_once(&server, &keys, Duration::from_secs(20)).await;
    assert_eq!(server.stored_posts().await.len(), 5);
    chromium.close().await;
}

/// The page's look after each enqueue, on its own: while some context of
/// the origin holds bgsync's "replaying" lock (`bgsync-active`: a replay
/// under way, which the browser may let swallow this enqueue's sync
/// registration, and which may be past its last read), the page asks the
/// worker for a round of its own. The worker is offline, so no sync
/// event fires: a round (its `sending` event) shows only if it was asked
/// for. Here the test holds the lock itself, in the page. Without the
/// lock held, the page asks for nothing. (Every test above passes without
/// the look: the rounds read what arrives while they run, and Chromium 156
/// fired a swallowed registration again once the event resolved.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_queues_while_a_replay_holds_the_lock_asks_the_worker_for_a_round() {
    let (server, chromium, page) = the_app_with_its_worker_offline().await;
    assert!(
        eval::<bool>(
            &page,
            "(() => { self.seen = []; wasm_bindgen.subscribe((e) => self.seen.push(e.type)); return true; })()"
        )
        .await
    );
    let sending = || async { eval::<Vec<String>>(&page, "self.seen").await.iter().filter(|t| *t == "sending").count() };
    enqueue(&page, "Nobody replays", 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sending().await, 0, "with no replay under way, the page asks for no round");
    assert!(
        eval::<bool>(
            &page,
            "new Promise((held) => navigator.locks.request('bgsync-active', { mode: 'shared' }, \
               () => { held(true); return new Promise((release) => { self.release = release; }); }))"
        )
        .await
    );
    enqueue(&page, "While a replay runs", 1).await;
    eventually("the round the page asked for", Duration::from_secs(15), || async {
        (sending().await > 0).then_some(())
    })
    .await;
    assert!(server.keys_received().is_empty(), "the worker is offline");
    chromium.close().await;
}

/// The order an enqueue makes its calls in, which the two tests above rely
/// on: the write is issued first, then the look for a running replay, then
/// the sync registration, all before the write has committed (the caller
/// waits for the longest of them, not for their sum). The look must come
/// before the registration: a replay whose lock the look finds free took
/// it, if ever, after the write was issued, so its reads see the entry;
/// a registration made before the look could be swallowed by a sync event
/// that ended unseen. (Before this order, the look and the registration
/// waited for the commit: `put, committed, register, look`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_issues_the_write_then_the_look_then_the_registration_while_the_write_commits() {
    let (_server, chromium, page) = the_app_with_its_worker_offline().await;
    // The browser's own functions, wrapped to log their calls (before the
    // page's first enqueue, which looks up the sync registration once).
    assert!(
        eval::<bool>(
            &page,
            "(() => { self.calls = []; \
               const put = IDBObjectStore.prototype.put; \
               IDBObjectStore.prototype.put = function (...args) { \
                 const request = put.apply(this, args); \
                 if (this.name === 'entries') { self.calls.push('put'); \
                   this.transaction.addEventListener('complete', () => self.calls.push('committed')); } \
                 return request; }; \
               const query = LockManager.prototype.query; \
               LockManager.prototype.query = function (...args) { self.calls.push('look'); return query.apply(this, args); }; \
               const register = SyncManager.prototype.register; \
               SyncManager.prototype.register = function (...args) { self.calls.push('register'); return register.apply(this, args); }; \
               return true; })()"
        )
        .await
    );
    enqueue(&page, "First", 1).await;
    let first: Vec<String> = eval(&page, "self.calls.splice(0)").await;
    assert!(
        first.contains(&"register".to_string()),
        "the registration is made through the browser's function: {first:?}"
    );
    enqueue(&page, "Second", 1).await;
    let calls: Vec<String> = eval(&page, "self.calls").await;
    assert_eq!(calls, ["put", "look", "register", "committed"]);
    chromium.close().await;
}

/// Writes a post into the queue `requests` straight through IndexedDB, as
/// something other than bgsync would (no sync registered, no message),
/// dated `offset_ms` from now; returns its key.
async fn write_straight_into_the_queue(page: &chromiumoxide::Page, title: &str, offset_ms: f64) -> String {
    let key = format!("written-straight-{}", uuid::Uuid::new_v4());
    let record = serde_json::json!({
        "queue": "requests", "key": key, "method": "POST", "url": "/api/posts", "headers": [],
        "body": serde_json::json!({ "title": title, "location": "IndexedDB" }).to_string(),
        "attempts": 0, "notBefore": 0, "lastError": null,
    });
    let put = format!("put(Object.assign({record}, {{ enqueuedAt: Date.now() + {offset_ms} }}))");
    store_request(page, "entries", "readwrite", &put).await;
    key
}

/// The app with three posts queued and delivered by the worker (which
/// stays online), and their keys.
async fn three_posts_delivered() -> (TestServer, Chromium, chromiumoxide::Page, Vec<String>) {
    let (server, chromium, page) = the_app_with_its_worker_offline().await;
    let first = enqueue(&page, "First", 3).await;
    chromium.set_worker_offline(false).await;
    every_post_once(&server, &first, Duration::from_secs(20)).await;
    (server, chromium, page, first)
}

/// Every one of `delivered`, `new` and `old` stored once, and each of
/// `new` received before `old`: a round read from where it last found its
/// queue empty (`delivered` the posts it delivered before), and found `old`,
/// stored below that, by counting.
async fn new_ones_first_then_the_old_one(server: &TestServer, delivered: &[String], new: &[String], old: &String) {
    let all: Vec<String> = delivered.iter().chain(new).chain([old]).cloned().collect();
    every_post_once(server, &all, Duration::from_secs(20)).await;
    assert_eq!(server.stored_posts().await.len(), all.len());
    let received = server.keys_received();
    let at = |key: &String| received.iter().position(|k| k == key).unwrap();
    assert!(new.iter().all(|k| at(k) < at(old)), "the old entry came before the new ones: {received:?}");
}

/// Once a round found its queue empty, the worker's next rounds read from
/// the last record it read on (Chromium walks the index entries of every
/// delivered record from the queue's start until it sweeps them), yet an
/// entry stored below that point (its time from a clock set back) is not
/// left behind: the round counts the queue at its end and reads it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_older_than_where_the_worker_last_found_its_queue_empty_is_still_delivered() {
    let (server, chromium, page, first) = three_posts_delivered().await;
    chromium.set_worker_offline(true).await;
    // An hour older than everything delivered, written straight into the
    // store, then two posts queued through the API (which register the sync).
    let old = write_straight_into_the_queue(&page, "From a clock set back", -3_600_000.0).await;
    let second = enqueue(&page, "Second", 2).await;
    chromium.set_worker_offline(false).await;
    // The round's first read started where the queue was found empty: the
    // two new posts went first, the old entry once the count found it.
    new_ones_first_then_the_old_one(&server, &first, &second, &old).await;
    chromium.close().await;
}

/// Where a round found its queue empty is kept in IndexedDB: a worker the
/// browser stopped and woke for a sync reads from there too, and so does a
/// page listing the queue. An entry stored below it is listed and
/// delivered all the same: the listing and the round count the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_and_the_pages_listing_start_where_the_queue_was_found_empty_and_miss_nothing() {
    let (server, chromium, page, first) = three_posts_delivered().await;
    let mark = eventually("the mark to be kept", Duration::from_secs(10), || async {
        Some(meta(&page, "mark:requests").await).filter(serde_json::Value::is_object)
    })
    .await;
    assert_eq!(mark["through"][2], first[2], "the mark is the last record read: {mark}");
    // With no worker running, one old entry and two new ones, written as
    // something other than bgsync would (so nothing wakes the worker).
    stop_all_workers(&page).await;
    let old = write_straight_into_the_queue(&page, "From a clock set back", -3_600_000.0).await;
    let new = [
        write_straight_into_the_queue(&page, "New 0", 0.0).await,
        write_straight_into_the_queue(&page, "New 1", 1.0).await,
    ];
    for newest_first in [false, true] {
        let listed: Vec<String> = eval(
            &page,
            &format!(
                "wasm_bindgen.queued('requests', {{ limit: 10, newestFirst: {newest_first} }}).then(l => l.map(e => e.key))"
            ),
        )
        .await;
        let mut want = vec![old.clone(), new[0].clone(), new[1].clone()];
        if newest_first {
            want.reverse();
        }
        assert_eq!(listed, want, "newest first: {newest_first}");
    }
    dispatch_sync(&page, &server.origin(), "bgsync-requests").await;
    // The woken worker's first read started at the kept mark.
    new_ones_first_then_the_old_one(&server, &first, &new, &old).await;
    chromium.close().await;
}

/// A `mark:` record in `meta` that is not a mark bgsync wrote (a time that
/// is not a number, a string, `null`, or a mark above every entry), and a
/// credentials record without its headers, never keep an entry from being
/// listed or delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_written_by_something_else_is_ignored_or_found_out_by_the_count() {
    let (server, chromium, page) = the_app_with_its_worker_offline().await;
    // And credentials kept without their headers, which every round reads.
    put_meta(&page, "{ key: 'credentials' }").await;
    let mut all = Vec::new();
    // (`null`, and the credentials, threw through the module's code, which
    // then hung every promise of the context.)
    let junk = ["['requests', NaN, 'x']", "'not a key'", "null", "['requests', 9e15, 'zzz']"];
    for (i, through) in junk.into_iter().enumerate() {
        put_meta(&page, &format!("{{ key: 'mark:requests', through: {through} }}")).await;
        let keys = enqueue(&page, &format!("Marked {i}"), 2).await;
        let listed: Vec<String> =
            eval(&page, "wasm_bindgen.queued('requests', { limit: 10 }).then(l => l.map(e => e.key))").await;
        assert_eq!(listed, keys, "listed under the mark {through}");
        all.extend(keys);
        chromium.set_worker_offline(false).await;
        every_post_once(&server, &all, Duration::from_secs(20)).await;
        chromium.set_worker_offline(true).await;
    }
    chromium.close().await;
}

/// Posts queued while the worker's round sends a batch are read from after
/// what that round read, not from the queue's start (which walks the index
/// entries of everything delivered before): the round's closing count
/// finds them, and the round keeps the queue's mark rather than drop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_queued_during_a_round_are_read_from_after_what_it_read_not_from_the_queues_start() {
    let (server, chromium, page, first) = three_posts_delivered().await;
    // Counts the worker's reads of the queue-order index from the queue's
    // start (a lower bound of the queue's name alone).
    let wrapped = chromium
        .worker_eval(
            "(() => { self.fromStart = 0; const getAll = IDBIndex.prototype.getAll; \
               IDBIndex.prototype.getAll = function (range, ...rest) { \
                 if (range && Array.isArray(range.lower) && range.lower.length === 1 && range.lower[0] === 'requests') self.fromStart++; \
                 return getAll.call(this, range, ...rest); }; \
               return true; })()",
        )
        .await;
    assert_eq!(wrapped, true);
    chromium.set_worker_offline(true).await;
    let before = enqueue(&page, "Before", 2).await;
    server.delay_posts(300);
    chromium.set_worker_offline(false).await;
    eventually("a batch in flight", Duration::from_secs(30), || async {
        (server.keys_received().len() > first.len()).then_some(())
    })
    .await;
    let during = enqueue(&page, "During", 2).await;
    let all: Vec<String> = first.iter().chain(&before).chain(&during).cloned().collect();
    every_post_once(&server, &all, Duration::from_secs(30)).await;
    assert_eq!(server.stored_posts().await.len(), all.len());
    assert_eq!(chromium.worker_eval("self.fromStart").await, 0, "the worker read its queue from the start");
    chromium.close().await;
}

/// The site's data cleared while the app is open (DevTools' "Clear site
/// data", the browser's settings, `Clear-Site-Data`): the browser deletes
/// the database and closes every connection to it. The page and the worker
/// then make a new one on their next use: posts queued afterwards are
/// stored and delivered, not refused with "the database connection is
/// closing" until every tab is reloaded and the worker restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_sites_data_is_cleared_under_the_open_app_posts_are_queued_and_delivered() {
    let (server, chromium, page, first) = three_posts_delivered().await;
    page.execute(chromiumoxide::cdp::browser_protocol::storage::ClearDataForOriginParams::new(
        server.origin(),
        "indexeddb",
    ))
    .await
    .expect("the browser clears the origin's IndexedDB");
    eventually("the database to be deleted", Duration::from_secs(10), || async {
        let names: Vec<String> = eval(&page, "indexedDB.databases().then((list) => list.map((d) => d.name))").await;
        (!names.iter().any(|n| n == "bgsync")).then_some(())
    })
    .await;
    let after = enqueue(&page, "After clearing", 3).await;
    let all: Vec<String> = first.iter().chain(&after).cloned().collect();
    every_post_once(&server, &all, Duration::from_secs(20)).await;
    assert_eq!(server.stored_posts().await.len(), all.len());
    let left: usize = eval(&page, "wasm_bindgen.status().then((s) => s.queued)").await;
    assert_eq!(left, 0);
    chromium.close().await;
}

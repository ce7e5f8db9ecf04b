//! The feed's page in the tests' Chromium: bgsync's driver
//! ([`bgsync_testkit::chromium`]), started with the feed's notion of a page
//! that is ready, and the feed's own form, list and snackbar.

pub use bgsync_testkit::chromium::*;
use chromiumoxide::Page;
use std::time::Duration;

use super::eventually;

/// The feed's page has started when its status indicator left "starting".
const READY: &str = "document.querySelector('#sync-status').dataset.state !== 'starting'";

/// Chromium for the feed app.
pub struct Chromium(bgsync_testkit::chromium::Chromium);

impl std::ops::Deref for Chromium {
    type Target = bgsync_testkit::chromium::Chromium;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Chromium {
    pub async fn launch() -> Self {
        Self(bgsync_testkit::chromium::Chromium::launch(READY).await)
    }

    pub async fn launch_on(dir: &std::path::Path) -> Self {
        Self(bgsync_testkit::chromium::Chromium::launch_on(dir, READY).await)
    }

    pub async fn kill(self) {
        self.0.kill().await
    }

    pub async fn close(self) {
        self.0.close().await
    }
}

/// Types a post into the real form and submits it with the button.
///
/// The snackbar is hidden and emptied first, so that [`snackbar`] waits for
/// the message of this submission (a message still shown from the one
/// before would otherwise be read before this one's entry is stored).
pub async fn submit_post(page: &Page, title: &str, location: &str) {
    let hidden: bool = eval(
        page,
        "(() => { const bar = document.querySelector('#snackbar'); bar.classList.remove('visible'); \
         bar.textContent = ''; return true; })()",
    )
    .await;
    assert!(hidden);
    for (selector, text) in [("#title", title), ("#location", location)] {
        let input = page.find_element(selector).await.unwrap();
        input.click().await.unwrap();
        if !text.is_empty() {
            input.type_str(text).await.unwrap();
        }
    }
    page.find_element("#post-button").await.unwrap().click().await.unwrap();
}

/// The entries in the app's queue (IndexedDB `bgsync` / `sync-posts`), read
/// by the page's own IndexedDB, never created by the reading.
pub async fn queued(page: &Page) -> Vec<serde_json::Value> {
    queued_in(page, "sync-posts").await
}

/// The text of the snackbar once it is shown.
pub async fn snackbar(page: &Page) -> String {
    wait_for(page, "the snackbar", "document.querySelector('#snackbar').classList.contains('visible')").await;
    eval(page, "document.querySelector('#snackbar').textContent").await
}

/// The state (`pending`, `sent`, `failed`) of the listed post with `title`.
pub async fn listed_state(page: &Page, title: &str) -> Option<String> {
    let js = format!(
        "[...document.querySelectorAll('#posts .post')].filter(li => li.querySelector('.title').textContent === {}).map(li => li.dataset.state)[0] ?? ''",
        serde_json::to_string(title).unwrap()
    );
    Some(eval::<String>(page, &js).await).filter(|s| !s.is_empty())
}

/// Waits until the listed post with `title` is in `state`.
pub async fn wait_for_state(page: &Page, title: &str, state: &str) {
    eventually(&format!("{title:?} to be listed as {state}"), Duration::from_secs(30), || async {
        (listed_state(page, title).await.as_deref() == Some(state)).then_some(())
    })
    .await
}

/// Waits until the server stores `n` posts, and returns them.
pub async fn until_stored(server: &super::TestServer, n: usize) -> Vec<(String, String, String)> {
    eventually(&format!("{n} post(s) to reach the server"), Duration::from_secs(45), || async {
        let posts = server.stored_posts().await;
        (posts.len() >= n).then_some(posts)
    })
    .await
}

/// Waits until the app's queue is empty and the page lists a sent post.
pub async fn until_delivered_on_page(page: &Page) {
    eventually("the queue to empty", Duration::from_secs(45), || async { queued(page).await.is_empty().then_some(()) })
        .await;
    wait_for(page, "the page to show the post as sent", "document.querySelector('#posts .post[data-state=sent]')")
        .await;
}

/// The status the worker that controls `page` answers to
/// `{type: "status"}` (its queues, cold start, rounds, wasm memory).
pub async fn worker_status(page: &Page) -> serde_json::Value {
    eval(
        page,
        r#"new Promise((resolve) => {
            navigator.serviceWorker.addEventListener("message", (e) => resolve(e.data), { once: true });
            navigator.serviceWorker.controller.postMessage({ type: "status" });
        })"#,
    )
    .await
}

/// Waits until the server has stored `n` posts and the app's queue is
/// empty; returns the stored posts.
pub async fn until_drained(server: &super::TestServer, page: &Page, n: usize) -> Vec<(String, String, String)> {
    eventually(&format!("{n} post(s) to reach the server"), Duration::from_secs(60), || async {
        (server.count_posts().await >= n as i64).then_some(())
    })
    .await;
    eventually("the queue to empty", Duration::from_secs(20), || async { queued(page).await.is_empty().then_some(()) })
        .await;
    server.stored_posts().await
}

/// Writes `n` posts straight into bgsync's store as queue `queue`, as
/// `enqueue` writes them (time-ordered keys, one millisecond apart, the
/// last just before now, so that a post queued next is the newest), in
/// transactions of 5,000, then registers the sync `tag`; returns how many
/// the queue holds. Enqueueing 100,000 posts one by one takes minutes.
pub async fn fill_queue(page: &Page, queue: &str, tag: &str, n: usize) -> u64 {
    eval(
        page,
        &format!(
            r#"new Promise((resolve, reject) => {{
                const open = indexedDB.open("bgsync");
                open.onsuccess = async () => {{
                    const db = open.result;
                    const start = Math.floor(performance.timeOrigin + performance.now()) - {n};
                    const key = (ms) => {{
                        const t = ms.toString(16).padStart(12, "0");
                        return t.slice(0, 8) + "-" + t.slice(8) + "-7" + crypto.randomUUID().slice(15);
                    }};
                    for (let from = 0; from < {n}; from += 5000) {{
                        await new Promise((done, fail) => {{
                            const tx = db.transaction("entries", "readwrite");
                            const store = tx.objectStore("entries");
                            for (let i = from; i < Math.min(from + 5000, {n}); i++) {{
                                const id = crypto.randomUUID();
                                store.put({{ queue: {queue:?}, key: key(start + i), method: "POST", url: "/api/posts",
                                    headers: [], body: JSON.stringify({{ id, title: "Bench post " + i, location: "Bench" }}),
                                    enqueuedAt: start + i, attempts: 0, notBefore: 0, lastError: null }});
                            }}
                            tx.oncomplete = done;
                            tx.onabort = () => fail(tx.error);
                        }});
                    }}
                    const count = await new Promise((done, fail) => {{
                        const range = IDBKeyRange.bound([{queue:?}], [{queue:?}, []]);
                        const counting = db.transaction("entries").objectStore("entries").count(range);
                        counting.onsuccess = () => done(counting.result);
                        counting.onerror = () => fail(counting.error);
                    }});
                    db.close();
                    const registration = await navigator.serviceWorker.ready;
                    await registration.sync.register({tag:?});
                    resolve(count);
                }};
                open.onerror = () => reject(open.error);
            }})"#
        ),
    )
    .await
}

/// bgsync's record `key` in its `meta` store (`false` if none), read by the
/// page.
pub async fn meta(page: &Page, key: &str) -> serde_json::Value {
    store_request(page, "meta", "readonly", &format!("get({key:?})")).await
}

/// Puts `record` (a JavaScript object, its `key` included) in bgsync's
/// `meta` store, as something other than bgsync would.
pub async fn put_meta(page: &Page, record: &str) {
    store_request(page, "meta", "readwrite", &format!("put({record})")).await;
}

/// Runs `<request>` (such as `get("client-id")`) on bgsync's object store
/// `store` in a transaction of `mode`, as something other than bgsync
/// would; its result once the transaction is done (`false` if none).
pub async fn store_request(page: &Page, store: &str, mode: &str, request: &str) -> serde_json::Value {
    eval(
        page,
        &format!(
            r#"new Promise((resolve, reject) => {{
                const open = indexedDB.open("bgsync");
                open.onsuccess = () => {{
                    const tx = open.result.transaction({store:?}, {mode:?});
                    const request = tx.objectStore({store:?}).{request};
                    tx.oncomplete = () => {{ open.result.close(); resolve(request.result ?? false); }};
                    tx.onerror = () => reject(tx.error);
                }};
                open.onerror = () => reject(open.error);
            }})"#
        ),
    )
    .await
}

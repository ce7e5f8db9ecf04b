//! Pulling fresh data: a server's delta feed (`?since=<cursor>`, `ETag`)
//! stored in IndexedDB, so a page renders from IndexedDB first and opens
//! with current data, offline too.
//!
//! The worker pulls on `periodicsync` where the browser grants it; pages
//! pull when the app opens or comes online if the [`PeriodicSchedule`] says
//! a pull is due, and after their own posts were delivered.

pub use crate::config::FeedDecl as Feed;
use crate::db::{database, META};
use crate::js::{self, JsResult};
use bgsync_core::PeriodicSchedule;
use js_sys::{Array, Object};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Headers, IdbDatabase, IdbTransactionMode, RequestInit};

/// What is stored about a feed.
#[derive(Clone, Debug, Default)]
struct State {
    cursor: Option<String>,
    etag: Option<String>,
    last_success_ms: Option<u64>,
}

// Named by the URL (as since version 4), so a cursor survives upgrades.
fn meta_key(feed: &Feed) -> String {
    format!("feed:{}", feed.url)
}

/// What is stored about `feed`, and with `credentials` the app's
/// credentials (`setCredentials`), read beside it in one transaction.
async fn state(feed: &Feed, credentials: bool) -> JsResult<(State, Vec<(String, String)>)> {
    let db = database().await?;
    let tx = db.transaction_with_str(META)?;
    let store = tx.object_store(META)?;
    let stored_credentials =
        if credentials { Some(store.get(&JsValue::from_str(crate::state::CREDENTIALS))?) } else { None };
    let value = js::request(&store.get(&JsValue::from_str(&meta_key(feed)))?).await?;
    // (A request's result is there once a later request of its
    // transaction succeeded.)
    let credentials = match stored_credentials {
        Some(read) => crate::state::credentials_of(&read.result()?)?,
        None => Vec::new(),
    };
    let text = |name| js::get(&value, name).ok()?.as_string();
    // Nothing stored yet; or reached for another store (the feed was given
    // a new one, which starts empty), and the new store begins with a
    // first pull. (A state stored before session 28 names no store: it is
    // the feed's.)
    if !value.is_object() || text("store").is_some_and(|store| store != feed.store) {
        return Ok((State::default(), credentials));
    }
    let state = State {
        cursor: text("cursor"),
        etag: text("etag"),
        last_success_ms: js::get(&value, "lastSuccess").ok().and_then(|v| v.as_f64()).map(|v| v as u64),
    };
    Ok((state, credentials))
}

/// What the inspector shows of `feed`: its cursor and when it was last
/// pulled with success (ms since the epoch), as stored.
pub async fn describe(feed: &Feed) -> JsResult<(Option<String>, Option<u64>)> {
    let (state, _) = state(feed, false).await?;
    Ok((state.cursor, state.last_success_ms))
}

/// The schedule of pulls when the app opens or comes online, as stored.
pub async fn schedule(feed: &Feed) -> JsResult<PeriodicSchedule> {
    let mut schedule = PeriodicSchedule::new(&feed.tag, feed.fresh_for_ms);
    schedule.last_success_ms = state(feed, false).await?.0.last_success_ms;
    Ok(schedule)
}

/// Pulls what changed since the stored cursor; returns how many items
/// arrived. The items and the new cursor commit in one transaction per
/// page, so a pull cut short resumes where it stopped.
///
/// (Boxed: a worker pulls after delivering and on `periodicsync`, and each
/// caller would otherwise carry a copy of this state machine in its wasm.)
pub fn pull(feed: &Feed) -> crate::js::Boxed<'_, JsResult<usize>> {
    crate::js::boxed(pull_now(feed))
}

async fn pull_now(feed: &Feed) -> JsResult<usize> {
    has_store(feed).await?;
    // A feed of this origin is pulled with the app's credentials, as its
    // queued requests are replayed with them; another origin's never gets
    // them.
    let (mut state, credentials) = state(feed, js::is_same_origin(&feed.url)).await?;
    let (mut arrived, mut replace) = (0, false);
    loop {
        let headers = Headers::new()?;
        for (name, value) in &credentials {
            headers.set(name, value)?;
        }
        headers.set("Accept", "application/json")?;
        if let Some(etag) = &state.etag {
            headers.set("If-None-Match", etag)?;
        }
        let init = RequestInit::new();
        init.set_headers(&headers);
        // The first pull asks for the newest items and a cursor; the next
        // ones for what changed after it. The cursor is the server's.
        let join = if feed.url.contains('?') { '&' } else { '?' };
        let url = match &state.cursor {
            Some(cursor) => {
                format!("{}{join}since={}&limit={}", feed.url, js_sys::encode_uri_component(cursor), feed.page_size)
            }
            None => format!("{}{join}limit={}", feed.url, feed.page_size),
        };
        let response = js::fetch(&url, &init, js::DEADLINE_MS, js::Until::Read).await?;
        if response.status() == 304 {
            break;
        }
        // The server's delta ETag names the cursor reached, so it also
        // validates the next pull from that cursor (304 while unchanged).
        state.etag = response.headers().get("ETag").ok().flatten();
        let (status, read) = (response.status(), js::await_promise(response.json()?).await);
        // 410 to a cursor: the server no longer knows it (its data was
        // restored or reset). What this feed holds is replaced by a first
        // pull, in the transaction that stores its first page.
        if status == 410 && !replace && state.cursor.is_some() {
            (state.cursor, state.etag, replace) = (None, None, true);
            continue;
        }
        if !(200..300).contains(&status) {
            // With the server's own words when it answers a problem (its
            // detail says whether to retry and what to do).
            let detail = read.ok().and_then(|problem| js::get(&problem, "detail").ok()?.as_string());
            let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
            return Err(JsValue::from_str(&format!("pull: the feed \"{}\" answered HTTP {status}{detail}", feed.name)));
        }
        let answer = read?;
        let Some(items) = js::get(&answer, &feed.items).ok().and_then(|items| js::array(&items)) else {
            return Err(JsValue::from_str(&format!(
                "pull: the feed \"{}\" answered without an array \"{}\" (its declaration's items)",
                feed.name, feed.items
            )));
        };
        let cursor = js::get(&answer, "cursor")?.as_string();
        let moved = cursor.is_some() && cursor != state.cursor;
        state.cursor = cursor.or(state.cursor);
        arrived += store_page(feed, &items, &state, std::mem::take(&mut replace)).await?;
        if js::get(&answer, "more")?.as_bool() != Some(true) {
            break;
        }
        if !moved {
            // Asking again from the same cursor would get the same page,
            // for as long as the server says so.
            return Err(JsValue::from_str(&format!(
                "pull: the feed \"{}\" said there is more but did not move its cursor",
                feed.name
            )));
        }
    }
    state.last_success_ms = Some(js_sys::Date::now() as u64);
    save(feed, &state).await?;
    let event = Object::new();
    js::set(&event, "type", "pulled");
    js::set(&event, "feed", feed.name.as_str());
    js::set(&event, "count", arrived as u32);
    crate::events::post(&event);
    Ok(arrived)
}

/// Stores a page's items and the cursor reached, in one transaction;
/// returns how many were stored. An item IndexedDB cannot key (not an
/// object, or without a valid key at the feed's `keyPath`) is left out
/// with a warning: one bad item from the server must not keep the rest of
/// the feed, and every later pull, from being stored. With `replace`,
/// what the store held goes first, in the same transaction.
async fn store_page(feed: &Feed, items: &Array, state: &State, replace: bool) -> JsResult<usize> {
    let db = database().await?;
    let stores = Array::of2(&feed.store.as_str().into(), &META.into());
    let tx = db.transaction_with_str_sequence_and_mode(&stores, IdbTransactionMode::Readwrite)?;
    let store = tx.object_store(&feed.store)?;
    if replace {
        store.clear()?;
    }
    // (`put` refuses such an item by throwing, before it is queued: the
    // transaction goes on.)
    let stored = items.iter().filter(|item| store.put(item).is_ok()).count();
    tx.object_store(META)?.put(&state_to_js(feed, state))?;
    let left_out = items.length() as usize - stored;
    if left_out > 0 {
        web_sys::console::warn_1(&JsValue::from_str(&format!(
            "bgsync: the feed \"{}\" sent {left_out} item(s) without a valid key \"{}\" (its keyPath); they are not stored",
            feed.name, feed.key_path
        )));
    }
    js::commit(tx).await?;
    Ok(stored)
}

async fn save(feed: &Feed, state: &State) -> JsResult<()> {
    let db = database().await?;
    let tx = db.transaction_with_str_and_mode(META, IdbTransactionMode::Readwrite)?;
    tx.object_store(META)?.put(&state_to_js(feed, state))?;
    js::commit(tx).await
}

fn state_to_js(feed: &Feed, state: &State) -> JsValue {
    let o = Object::new();
    js::set(&o, "key", meta_key(feed));
    js::set(&o, "store", feed.store.as_str());
    let text = |v: &Option<String>| v.as_deref().map(JsValue::from_str).unwrap_or(JsValue::NULL);
    js::set(&o, "cursor", text(&state.cursor));
    js::set(&o, "etag", text(&state.etag));
    js::set(&o, "lastSuccess", state.last_success_ms.map(|t| JsValue::from_f64(t as f64)).unwrap_or(JsValue::NULL));
    o.into()
}

/// Deletes what `feed` pulled, its items and its state (cursor, `ETag`,
/// last success), in one transaction: the next pull is a first pull.
pub async fn clear(feed: &Feed) -> JsResult<()> {
    let db = has_store(feed).await?;
    let stores = Array::of2(&feed.store.as_str().into(), &META.into());
    let tx = db.transaction_with_str_sequence_and_mode(&stores, IdbTransactionMode::Readwrite)?;
    tx.object_store(&feed.store)?.clear()?;
    tx.object_store(META)?.delete(&JsValue::from_str(&meta_key(feed)))?;
    js::committed(&tx).await
}

/// Refuses, saying why, a feed without its store: one the browser would
/// not make when the database was opened (`crate::db`).
async fn has_store(feed: &Feed) -> JsResult<IdbDatabase> {
    let db = database().await?;
    if !db.object_store_names().contains(&feed.store) {
        return Err(JsValue::from_str(&format!(
            "the feed \"{}\" has no store: the browser refused to make \"{}\" with keyPath \"{}\"; \
             declare one that names a field, such as \"id\"",
            feed.name, feed.store, feed.key_path
        )));
    }
    Ok(db)
}

/// Every item pulled from `feed`.
pub async fn items(feed: &Feed) -> JsResult<Vec<JsValue>> {
    let db = has_store(feed).await?;
    let tx = db.transaction_with_str(&feed.store)?;
    let all = js::request(&tx.object_store(&feed.store)?.get_all()?).await?;
    Ok(Array::from(&all).iter().collect())
}

/// Registers Periodic Background Sync for `feed` where the browser allows
/// it (Chromium, installed app, permission granted). Returns whether it
/// did; a refusal (`NotAllowedError`) is the normal case in a tab, not an
/// error: the page then pulls when it opens or comes online.
pub async fn register_periodic(feed: &Feed) -> bool {
    let attempt = async {
        let navigator = js::get(&js_sys::global(), "navigator")?;
        let container: web_sys::ServiceWorkerContainer = js::get(&navigator, "serviceWorker")?.dyn_into()?;
        let registration = js::await_promise(container.ready()?).await?;
        let periodic = js::get(&registration, "periodicSync")?;
        if periodic.is_undefined() {
            return Ok::<bool, JsValue>(false);
        }
        let register: js_sys::Function = js::get(&periodic, "register")?.dyn_into()?;
        let options = Object::new();
        js::set(&options, "minInterval", feed.min_interval_ms as f64);
        js::await_promise(register.call2(&periodic, &feed.tag.as_str().into(), &options)?.dyn_into()?).await?;
        Ok(true)
    };
    attempt.await.unwrap_or(false)
}

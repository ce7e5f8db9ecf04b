//! What outlives a replay round, beside the queues: whether a queue is
//! paused because the server asked for credentials (401/403), and the
//! credentials to send.
//!
//! Both live in the `meta` object store, so a pause the worker hit holds in
//! every page and after a restart, and credentials a page sets are what the
//! worker sends, even with the page gone. Credentials are stored in
//! IndexedDB in clear, like any token a web app keeps for its worker; set
//! short-lived ones, and call [`set_credentials`] with an empty list to
//! forget them (on sign-out).

use crate::db::{database, DEAD_LETTERS, ENTRIES, META};
use crate::js::{self, JsResult};
use js_sys::Object;
use wasm_bindgen::JsValue;
use web_sys::IdbTransactionMode;

pub(crate) const CREDENTIALS: &str = "credentials";
const CLIENT_ID: &str = "client-id";
const FORCE_FALLBACK: &str = "force-fallback";

fn paused_key(queue: &str) -> String {
    format!("paused:{queue}")
}

async fn read(key: &str) -> JsResult<JsValue> {
    let db = database().await?;
    let tx = db.transaction_with_str(META)?;
    js::request(&tx.object_store(META)?.get(&JsValue::from_str(key))?).await
}

/// The status (401 or 403) that paused `queue`, if it is paused.
pub async fn paused(queue: &str) -> JsResult<Option<u16>> {
    let value = read(&paused_key(queue)).await?;
    if !value.is_object() {
        return Ok(None);
    }
    Ok(Some(js::get(&value, "status")?.as_f64().unwrap_or(401.0) as u16))
}

/// Records that `queue` is paused by `status` (lifted by
/// [`set_credentials`]).
pub async fn pause(queue: &str, status: u16) -> JsResult<()> {
    let db = database().await?;
    let tx = db.transaction_with_str_and_mode(META, IdbTransactionMode::Readwrite)?;
    let o = Object::new();
    js::set(&o, "key", paused_key(queue));
    js::set(&o, "status", status);
    js::set(&o, "at", js_sys::Date::now());
    tx.object_store(META)?.put(&o)?;
    js::committed(&tx).await
}

/// Whether Background Sync is to be ignored where the browser has it
/// ([`set_force_fallback`]).
/// Read once per context (it is asked on every enqueue), so a change made
/// in another context applies here when this context next starts.
pub async fn force_fallback() -> JsResult<bool> {
    if let Some(known) = FORCED.with(std::cell::Cell::get) {
        return Ok(known);
    }
    let forced = read(FORCE_FALLBACK).await?.is_object();
    FORCED.with(|f| f.set(Some(forced)));
    Ok(forced)
}

thread_local! {
    static FORCED: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// For WebViews and browsers that expose `SyncManager` but never fire
/// `sync`: from now on (in every context of the origin) nothing registers
/// a sync, and pages replay themselves (on load, `online`, "retry now",
/// and the engine's timers), as where there is no Background Sync.
pub async fn set_force_fallback(on: bool) -> JsResult<()> {
    let db = database().await?;
    let tx = db.transaction_with_str_and_mode(META, IdbTransactionMode::Readwrite)?;
    let store = tx.object_store(META)?;
    if on {
        let o = Object::new();
        js::set(&o, "key", FORCE_FALLBACK);
        store.put(&o)?;
    } else {
        store.delete(&JsValue::from_str(FORCE_FALLBACK))?;
    }
    js::committed(&tx).await?;
    FORCED.with(|f| f.set(Some(on)));
    Ok(())
}

/// This browser profile's client id (a random UUID made the first time it
/// is asked for, kept in `meta`), sent with every same-origin replay as
/// [`bgsync_core::wire::CLIENT_HEADER`] so that the server scopes
/// idempotency keys per client.
pub async fn client_id() -> JsResult<String> {
    if let Some(known) = CLIENT.with(|c| c.borrow().clone()) {
        return Ok(known);
    }
    let stored = read(CLIENT_ID).await?;
    let id = match js::get(&stored, "id").ok().and_then(|v| v.as_string()).filter(|_| stored.is_object()) {
        Some(id) => id,
        None => {
            let db = database().await?;
            let tx = db.transaction_with_str_and_mode(META, IdbTransactionMode::Readwrite)?;
            let o = Object::new();
            js::set(&o, "key", CLIENT_ID);
            js::set(&o, "id", crate::client::random_uuid()?);
            // `add`, not `put`: when two contexts race, the first id stays
            // and the other's write fails; both then read the same id.
            let _ = tx.object_store(META)?.add(&o);
            let _ = js::committed(&tx).await;
            let stored = read(CLIENT_ID).await?;
            js::get(&stored, "id")?.as_string().ok_or_else(|| JsValue::from_str("the client id could not be stored"))?
        }
    };
    CLIENT.with(|c| *c.borrow_mut() = Some(id.clone()));
    Ok(id)
}

thread_local! {
    static CLIENT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Forgets what this context keeps in memory of the state stored in the
/// database (the client id, whether the fallback is forced): called when
/// it lets go of the database, which may have been deleted with the
/// site's data, so that every context of the origin reads the same state
/// again, or makes it anew, rather than each keeping its own.
pub(crate) fn forget_stored() {
    CLIENT.with(|c| c.borrow_mut().take());
    FORCED.with(|f| f.set(None));
}

/// The headers added to every request of every queue at replay (they
/// replace an entry's own header of the same name).
pub async fn credentials() -> JsResult<Vec<(String, String)>> {
    credentials_of(&read(CREDENTIALS).await?)
}

/// The credentials and the user they are for (`None`: no user named), as
/// one read: what a round sends with, and whose entries it sends.
pub(crate) async fn signed_in() -> JsResult<(Vec<(String, String)>, Option<String>)> {
    let stored = read(CREDENTIALS).await?;
    Ok((credentials_of(&stored)?, user_of(&stored)))
}

/// The credentials in what was read from their record (`undefined`: none
/// set), for a reader that reads them in a transaction of its own.
pub(crate) fn credentials_of(stored: &JsValue) -> JsResult<Vec<(String, String)>> {
    if !stored.is_object() {
        return Ok(Vec::new());
    }
    Ok(js::stored_header_pairs(&js::get(stored, "headers")?))
}

fn user_of(stored: &JsValue) -> Option<String> {
    js::get(stored, USER).ok()?.as_string()
}

const USER: &str = "user";

/// Replaces the credentials (and the user they are for) and lifts every
/// pause, in one transaction: the next round sends the queued entries with
/// the new headers. An empty list and no user forget them. Header names
/// and values must be valid HTTP (checked by the browser's own `Headers`),
/// else nothing changes.
///
/// When a user was named and another one (or none) takes over, what the
/// first queued and left unsent, entries and dead letters, is marked as
/// theirs in that transaction (an entry's `owner`): a round sends an entry
/// only when its owner is the user signed in, so it waits for them to sign
/// in again and never goes with another's credentials. That waits until
/// no round runs in any context (the rounds' Web Lock); new
/// credentials for the same user, or for none, do not wait.
pub async fn set_credentials(headers: &[(String, String)], user: Option<&str>, queues: &[&str]) -> JsResult<()> {
    if let Some((name, value)) = js::invalid_header(headers)? {
        return Err(JsValue::from_str(&format!("credentials: \"{name}: {value}\" is not a valid HTTP header")));
    }
    // Another user takes over: what the previous one left is marked as
    // theirs with no round running (a round's write of an entry it holds
    // would lose the mark, and one sending with the previous user's
    // credentials would take the new user's first entries). The record is
    // read again once no round runs: another context may have changed it.
    let mut before = user_of(&read(CREDENTIALS).await?);
    let rounds_held = match &before {
        Some(before) if Some(before.as_str()) != user => crate::replay::hold_rounds().await?,
        _ => None,
    };
    if rounds_held.is_some() {
        before = user_of(&read(CREDENTIALS).await?);
    }
    let db = database().await?;
    let stores = js_sys::Array::of3(&META.into(), &ENTRIES.into(), &DEAD_LETTERS.into());
    let tx = db.transaction_with_str_sequence_and_mode(&stores, IdbTransactionMode::Readwrite)?;
    if let Some(before) = before.filter(|before| Some(before.as_str()) != user) {
        mark_owner(&tx.object_store(ENTRIES)?, false, &before)?;
        mark_owner(&tx.object_store(DEAD_LETTERS)?, true, &before)?;
    }
    let store = tx.object_store(META)?;
    // A user with no headers is an app whose credentials are cookies.
    if headers.is_empty() && user.is_none() {
        store.delete(&JsValue::from_str(CREDENTIALS))?;
    } else {
        let o = Object::new();
        js::set(&o, "key", CREDENTIALS);
        js::set(&o, "headers", js::header_pairs(headers));
        if let Some(user) = user {
            js::set(&o, USER, user);
        }
        store.put(&o)?;
    }
    for queue in queues {
        store.delete(&JsValue::from_str(&paused_key(queue)))?;
    }
    js::committed(&tx).await
}

/// Marks every record of `store` (entries, or with `dead` dead letters)
/// whose entry has no owner as `owner`'s, in the store's transaction.
fn mark_owner(store: &web_sys::IdbObjectStore, dead: bool, owner: &str) -> JsResult<()> {
    let read = store.get_all()?;
    let (request, store, owner) = (read.clone(), store.clone(), JsValue::from_str(owner));
    // The success handler runs while the transaction is active.
    let on_read = wasm_bindgen::closure::Closure::once_into_js(move || {
        let records = request.result().ok().and_then(|r| js::array(&r)).unwrap_or_default();
        for record in records.iter() {
            let entry = if dead { js::get(&record, "entry").unwrap_or_default() } else { record.clone() };
            if entry.is_object() && !js::get(&entry, crate::round_json::OWNER).is_ok_and(|o| o.is_string()) {
                js::set(&entry, crate::round_json::OWNER, owner.clone());
                let _ = store.put(&record);
            }
        }
    });
    read.set_onsuccess(Some(wasm_bindgen::JsCast::unchecked_ref(&on_read)));
    Ok(())
}

/// `headers` with `overrides` applied: a header named in both takes the
/// override's value (names compare case-insensitively, as in HTTP).
pub fn with_overrides(headers: &[(String, String)], overrides: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !overrides.iter().any(|(o, _)| o.eq_ignore_ascii_case(name)))
        .chain(overrides)
        .cloned()
        .collect()
}

//! The durable queue: entries in an IndexedDB object store.
//!
//! One database (`bgsync`) holds one object store per queue, keyed by the
//! entry key. Pages and the service worker open the same database, so an
//! entry a page wrote is what the worker replays after the tab is gone.

use crate::js::{self, JsResult};
use bgsync_core::{Entry, EntryKey};
use js_sys::{Array, Object};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    IdbDatabase, IdbFactory, IdbObjectStoreParameters, IdbTransactionMode, IdbVersionChangeEvent,
};

pub const DATABASE: &str = "bgsync";
/// Bumped when the set of object stores changes.
const VERSION: u32 = 1;
/// The object stores this version creates.
const STORES: &[&str] = &[Queue::POSTS];

thread_local! {
    // Opening a database costs a round trip to the browser process; one
    // connection per JavaScript context is enough.
    static DB: RefCell<Option<IdbDatabase>> = const { RefCell::new(None) };
}

/// A named queue of entries.
#[derive(Clone, Debug)]
pub struct Queue {
    name: &'static str,
}

impl Queue {
    /// The queue of the feed's posts (the seed's `sync-posts`).
    pub const POSTS: &'static str = "sync-posts";

    pub fn new(name: &'static str) -> Self {
        assert!(STORES.contains(&name), "unknown queue {name}");
        Self { name }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Stores a new entry; returns once the write has committed.
    pub async fn push(&self, entry: &Entry) -> JsResult<()> {
        self.put(entry).await
    }

    /// Replaces a stored entry (after a failed attempt).
    pub async fn put(&self, entry: &Entry) -> JsResult<()> {
        let db = database().await?;
        let tx = db.transaction_with_str_and_mode(self.name, IdbTransactionMode::Readwrite)?;
        tx.object_store(self.name)?.put(&to_js(entry))?;
        js::committed(&tx).await
    }

    /// Deletes an entry; returns once the deletion has committed.
    pub async fn delete(&self, key: &EntryKey) -> JsResult<()> {
        let db = database().await?;
        let tx = db.transaction_with_str_and_mode(self.name, IdbTransactionMode::Readwrite)?;
        tx.object_store(self.name)?
            .delete(&JsValue::from_str(key.as_str()))?;
        js::committed(&tx).await
    }

    /// Every stored entry. Records that cannot be read as entries (written
    /// by something else) are reported and left in place, never deleted.
    pub async fn all(&self) -> JsResult<Vec<Entry>> {
        let db = database().await?;
        let tx = db.transaction_with_str(self.name)?;
        let values = js::request(&tx.object_store(self.name)?.get_all()?).await?;
        let mut entries = Vec::new();
        for value in Array::from(&values).iter() {
            match from_js(&value) {
                Some(entry) => entries.push(entry),
                None => web_sys::console::warn_2(
                    &"bgsync: skipping an unreadable queue record".into(),
                    &value,
                ),
            }
        }
        Ok(entries)
    }
}

async fn database() -> JsResult<IdbDatabase> {
    if let Some(db) = DB.with(|db| db.borrow().clone()) {
        return Ok(db);
    }
    let factory: IdbFactory = js::global("indexedDB")?;
    let open = factory.open_with_u32(DATABASE, VERSION)?;
    let upgrade =
        Closure::<dyn FnMut(IdbVersionChangeEvent)>::new(move |event: IdbVersionChangeEvent| {
            let Some(db) = event
                .target()
                .and_then(|t| t.dyn_into::<web_sys::IdbOpenDbRequest>().ok())
                .and_then(|r| r.result().ok())
                .and_then(|r| r.dyn_into::<IdbDatabase>().ok())
            else {
                return;
            };
            let existing = db.object_store_names();
            for store in STORES {
                if !existing.contains(store) {
                    let params = IdbObjectStoreParameters::new();
                    params.set_key_path(&JsValue::from_str("key"));
                    let _ = db.create_object_store_with_optional_parameters(store, &params);
                }
            }
        });
    open.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let db: IdbDatabase = js::request(&open).await?.dyn_into()?;
    drop(upgrade);
    // A newer version of the app in another tab wants to upgrade: let it,
    // and reopen on next use.
    let on_version_change = Closure::<dyn FnMut()>::new(|| {
        DB.with(|slot| {
            if let Some(db) = slot.borrow_mut().take() {
                db.close();
            }
        })
    });
    db.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
    on_version_change.forget();
    DB.with(|slot| *slot.borrow_mut() = Some(db.clone()));
    Ok(db)
}

fn to_js(entry: &Entry) -> JsValue {
    let o = Object::new();
    js::set(&o, "key", entry.key.as_str());
    js::set(&o, "url", entry.url.as_str());
    js::set(&o, "body", entry.body.as_str());
    js::set(&o, "enqueuedAt", entry.enqueued_at_ms);
    js::set(&o, "attempts", entry.attempts);
    js::set(
        &o,
        "lastError",
        entry
            .last_error
            .as_deref()
            .map(JsValue::from_str)
            .unwrap_or(JsValue::NULL),
    );
    js::set(&o, "rejected", entry.rejected);
    o.into()
}

fn from_js(value: &JsValue) -> Option<Entry> {
    let text = |name| js::get(value, name).ok()?.as_string();
    Some(Entry {
        key: EntryKey::parse(&text("key")?).ok()?,
        url: text("url")?,
        body: text("body")?,
        enqueued_at_ms: js::get(value, "enqueuedAt").ok()?.as_f64()?,
        attempts: js::get(value, "attempts").ok()?.as_f64().unwrap_or(0.0) as u32,
        last_error: text("lastError"),
        rejected: js::get(value, "rejected").ok()?.as_bool().unwrap_or(false),
    })
}

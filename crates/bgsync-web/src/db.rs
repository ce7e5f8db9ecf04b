//! The IndexedDB database every context of an origin shares: its schema
//! (the entries of every queue, the dead letters, `meta`, a store per
//! declared feed), opening it once per context, and upgrading it.

use crate::js::{self, JsResult};
use js_sys::Array;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{IdbDatabase, IdbFactory, IdbObjectStoreParameters, IdbVersionChangeEvent};

pub const DATABASE: &str = "bgsync";
/// Bumped when the set of object stores changes. Version 5 moved every
/// queue's entries (one store per queue until then) into [`ENTRIES`];
/// version 6 added [`ORDER`].
const VERSION: u32 = 6;
/// Per-feed state (cursor, ETag, last success), pauses, credentials, the
/// client id.
pub const META: &str = "meta";
/// The entries of every queue, keyed by `[queue, key]`.
pub const ENTRIES: &str = "entries";

/// The index of [`ENTRIES`] in queue order, `[queue, enqueuedAt, key]`: a
/// round reads a long queue a page at a time, in the order it sends.
pub const ORDER: &str = "order";
/// Where entries that will not be sent again are kept, for the user.
pub const DEAD_LETTERS: &str = "dead-letters";
/// The object stores every version has, with their key paths (beside
/// [`ENTRIES`] and a store per declared feed).
const STORES: &[(&str, &str)] = &[(DEAD_LETTERS, "key"), (META, "key")];
/// Store names a feed may not take.
pub const RESERVED_STORES: [&str; 3] = [ENTRIES, DEAD_LETTERS, META];

thread_local! {
    // Opening a database costs a round trip to the browser process; one
    // connection per JavaScript context is enough.
    static DB: RefCell<Option<IdbDatabase>> = const { RefCell::new(None) };
    // The opening under way: what callers that come meanwhile wait for.
    static OPENING: RefCell<Option<js_sys::Promise>> = const { RefCell::new(None) };
    // The feed stores the browser refused to make in an upgrade of this
    // context (a key path it does not take), with that key path: the
    // database is complete without them, so a feed declared wrong never
    // stops the queues, nor makes each opening upgrade again.
    static REFUSED: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

pub(crate) async fn database() -> JsResult<IdbDatabase> {
    if let Some(db) = opened() {
        return Ok(db);
    }
    // One opening at a time: callers that come while it runs get its
    // connection (or its error). A connection each, one would be kept and
    // the others never closed, and another tab's upgrade would wait on
    // them for as long as this context lived.
    if let Some(opening) = OPENING.with(|o| o.borrow().clone()) {
        // Resolved with the connection, or with the error.
        return js::await_promise(opening).await?.dyn_into();
    }
    let mut done = None;
    let opening = js_sys::Promise::new(&mut |resolve, _| done = Some(resolve));
    let Some(done) = done else { return Err("the browser made no promise".into()) };
    OPENING.with(|o| *o.borrow_mut() = Some(opening));
    let mut settle = Settle(done, "bgsync: the opening of the database was given up".into());
    // Boxed: every IndexedDB step awaits `database()`, and the opening and
    // upgrading below would otherwise be copied into each of their futures.
    let result = js::boxed(open_database()).await;
    settle.1 = result.as_ref().map_or_else(|e| e, |db| db.as_ref()).clone();
    result
}

/// Ends the opening under way when dropped (done, or given up): the callers
/// waiting for it get its value, the connection or why there is none.
struct Settle(js_sys::Function, JsValue);

impl Drop for Settle {
    fn drop(&mut self) {
        OPENING.with(|o| o.borrow_mut().take());
        let _ = self.0.call1(&JsValue::NULL, &self.1);
    }
}

/// The database, if this context has it open.
pub(crate) fn opened() -> Option<IdbDatabase> {
    DB.with(|db| db.borrow().clone())
}

async fn open_database() -> JsResult<IdbDatabase> {
    let factory: IdbFactory = js::global("indexedDB")?;
    // Opened at whatever version it has; upgraded (one version up, at
    // least to VERSION) only when a store is missing: a feed declared
    // since, or the version 4 layout.
    // A feed's store the browser refuses to make (a key path it does not
    // take) is asked for once per context: it costs that feed its store,
    // whose pulls then say so (`crate::pull`), never the queues.
    let mut db = open(&factory, None).await?;
    for _ in 0..3 {
        if complete(&db) {
            break;
        }
        let next = (db.version() as u32 + 1).max(VERSION);
        db.close();
        db = open(&factory, Some(next)).await?;
    }
    if !complete(&db) {
        return Err(JsValue::from_str("bgsync: the IndexedDB stores could not be created"));
    }
    // Let go of this connection, and open the database again on next use,
    // when another tab's newer version of the app wants to upgrade it
    // (`versionchange`), or when the browser closed it (`close`: the site's
    // data cleared under the open app, which deletes the database, or a
    // failing disk). A closed connection refuses every transaction ("the
    // database connection is closing"), so a context kept it at its peril:
    // every enqueue refused until the tab is reloaded.
    let this = db.clone();
    let let_go = Closure::<dyn FnMut()>::new(move || let_go(&this));
    db.set_onversionchange(Some(let_go.as_ref().unchecked_ref()));
    db.set_onclose(Some(let_go.as_ref().unchecked_ref()));
    let_go.forget();
    DB.with(|slot| *slot.borrow_mut() = Some(db.clone()));
    Ok(db)
}

/// Closes `db` and forgets it, with what this context keeps of the state
/// stored in it, if it is still the connection this context uses (a
/// late event of an earlier connection leaves the current one alone).
fn let_go(db: &IdbDatabase) {
    let current = DB.with(|slot| {
        let mut slot = slot.borrow_mut();
        let current = slot.as_ref() == Some(db);
        if current {
            *slot = None;
        }
        current
    });
    // (Closed either way: a connection this context no longer uses must
    // not hold up another tab's upgrade.)
    db.close();
    if current {
        crate::state::forget_stored();
    }
}

/// Whether `db` has every store this version and the declared feeds need
/// (a feed's store the browser refused to make aside).
fn complete(db: &IdbDatabase) -> bool {
    let names = db.object_store_names();
    let refused = |feed: &crate::config::FeedDecl| {
        REFUSED.with(|r| r.borrow().iter().any(|(store, path)| *store == feed.store && *path == feed.key_path))
    };
    db.version() as u32 >= VERSION
        && names.contains(ENTRIES)
        && has_order_index(db)
        && STORES.iter().all(|(store, _)| names.contains(store))
        && crate::config::current().feeds.iter().all(|feed| names.contains(&feed.store) || refused(feed))
}

/// Whether [`ENTRIES`] has its [`ORDER`] index (a database that lacks it
/// is upgraded like one missing a store).
fn has_order_index(db: &IdbDatabase) -> bool {
    db.transaction_with_str(ENTRIES)
        .and_then(|tx| tx.object_store(ENTRIES))
        .is_ok_and(|entries| entries.index_names().contains(ORDER))
}

/// Opens the database (at `version`, or at the one it has), creating what
/// is missing in the upgrade.
async fn open(factory: &IdbFactory, version: Option<u32>) -> JsResult<IdbDatabase> {
    let open = match version {
        Some(version) => factory.open_with_u32(DATABASE, version)?,
        None => factory.open(DATABASE)?,
    };
    let upgrade = Closure::<dyn FnMut(IdbVersionChangeEvent)>::new(move |event: IdbVersionChangeEvent| {
        let Some(request) = event.target().and_then(|t| t.dyn_into::<web_sys::IdbOpenDbRequest>().ok()) else {
            return;
        };
        let Some(db) = request.result().ok().and_then(|r| r.dyn_into::<IdbDatabase>().ok()) else { return };
        let existing = db.object_store_names();
        // Whether the store is there now.
        let create = |store: &str, key_path: &JsValue| {
            existing.contains(store) || {
                let params = IdbObjectStoreParameters::new();
                params.set_key_path(key_path);
                db.create_object_store_with_optional_parameters(store, &params).is_ok()
            }
        };
        for (store, key_path) in STORES {
            create(store, &JsValue::from_str(key_path));
        }
        create(ENTRIES, &Array::of2(&"queue".into(), &"key".into()));
        if let Some(entries) = request.transaction().and_then(|tx| tx.object_store(ENTRIES).ok()) {
            if !entries.index_names().contains(ORDER) {
                let path: JsValue = Array::of3(&"queue".into(), &"enqueuedAt".into(), &"key".into()).into();
                let _ = entries.create_index_with_str_sequence(ORDER, &path);
            }
        }
        for feed in &crate::config::current().feeds {
            if !create(&feed.store, &JsValue::from_str(&feed.key_path)) {
                REFUSED.with(|r| r.borrow_mut().push((feed.store.clone(), feed.key_path.clone())));
            }
        }
        if event.old_version() < 5.0 {
            if let Some(tx) = request.transaction() {
                move_queue_stores(&db, &tx);
            }
        }
    });
    open.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let db: IdbDatabase = js::request(&open).await?.dyn_into()?;
    drop(upgrade);
    Ok(db)
}

/// The version 4 layout kept each queue in a store of its own, named after
/// the queue and keyed by `key`: moves their entries into [`ENTRIES`] under
/// that queue's name and drops the stores, in the upgrade transaction (so
/// the move is all or nothing). Dead letters written before dead letters
/// recorded their queue go back to the queue store that existed then.
fn move_queue_stores(db: &IdbDatabase, tx: &web_sys::IdbTransaction) {
    let names = db.object_store_names();
    let old: Vec<String> = (0..names.length())
        .filter_map(|i| names.item(i))
        .filter(|name| name != ENTRIES && !STORES.iter().any(|(store, _)| store == name))
        .filter(|name| !crate::config::current().feeds.iter().any(|feed| &feed.store == name))
        .filter(|name| {
            tx.object_store(name).ok().and_then(|s| s.key_path().ok()).and_then(|p| p.as_string()).as_deref()
                == Some("key")
        })
        .collect();
    let Ok(entries) = tx.object_store(ENTRIES) else { return };
    if let (Some(first), Ok(dead)) = (old.first().cloned(), tx.object_store(DEAD_LETTERS)) {
        if let Ok(all) = dead.get_all() {
            let (read, store) = (all.clone(), dead.clone());
            let on_read = Closure::once_into_js(move || {
                for record in Array::from(&read.result().unwrap_or_default()).iter() {
                    if js::get(&record, "queue").map(|q| q.is_undefined()).unwrap_or(false) {
                        js::set(&record, "queue", first.as_str());
                        let _ = store.put(&record);
                    }
                }
            });
            all.set_onsuccess(Some(on_read.unchecked_ref()));
        }
    }
    for name in old {
        let Ok(store) = tx.object_store(&name) else { continue };
        let Ok(all) = store.get_all() else { continue };
        let (read, target, db) = (all.clone(), entries.clone(), db.clone());
        // The success handler runs while the upgrade transaction is active.
        let on_read = Closure::once_into_js(move || {
            for record in Array::from(&read.result().unwrap_or_default()).iter() {
                js::set(&record, "queue", name.as_str());
                let _ = target.put(&record);
            }
            let _ = db.delete_object_store(&name);
        });
        all.set_onsuccess(Some(on_read.unchecked_ref()));
    }
}

//! The durable queues: entries in IndexedDB, and the dead letters beside
//! them.
//!
//! One database (`bgsync`) holds the entries of every queue in one object
//! store, `entries`, keyed by `[queue, key]`: a queue's entries are one key
//! range, in key (time) order, and a new queue is new data, never a new
//! schema version. The queues an app has are declared
//! ([`crate::config::configure`]) by its pages and its worker alike. Pages and the service worker open the same
//! database, so an entry a page wrote is what the worker replays after the
//! tab is gone.

use crate::config::{Capture, QueueDecl};
use crate::db::{database, DEAD_LETTERS, ENTRIES, META};
use crate::js::{self, JsResult};
use crate::round_json::OWNER;
use bgsync_core::{DeadLetter, DeadReason, Entry, EntryKey, QueueConfig, StoreOp};
use js_sys::{Array, Object};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{IdbDatabase, IdbTransactionMode};

/// A declared queue of entries ([`crate::config::QueueDecl`]).
#[derive(Clone, Debug)]
pub struct Queue {
    /// The declaration it is part of, and its place there (shared, not
    /// copied: a copy of a queue's declaration is code in every module).
    config: std::rc::Rc<crate::config::Config>,
    index: usize,
}

impl Queue {
    /// Every declared queue, in the order a full replay visits them.
    pub fn declared() -> Vec<Queue> {
        let config = crate::config::current();
        (0..config.queues.len()).map(|index| Queue { config: config.clone(), index }).collect()
    }

    /// The declared queue called `name`, or an error naming the declared
    /// ones.
    pub fn named(name: &str) -> JsResult<Self> {
        let config = crate::config::current();
        if let Some(index) = config.queues.iter().position(|q| q.name == name) {
            return Ok(Self { config, index });
        }
        let known: Vec<String> = config.queues.iter().map(|q| format!("\"{}\"", q.name)).collect();
        Err(JsValue::from_str(&format!(
            "there is no queue \"{name}\"; the queues are {}",
            crate::config::or_none(&known)
        )))
    }

    fn decl(&self) -> &QueueDecl {
        &self.config.queues[self.index]
    }

    pub fn name(&self) -> &str {
        &self.decl().name
    }

    /// How its entries are delivered.
    pub fn policy(&self) -> &QueueConfig {
        &self.decl().policy
    }

    /// Whether its entries may travel in batches.
    pub fn batching(&self) -> bool {
        self.decl().batching
    }

    /// How long one of its requests may take, answer read, before it
    /// counts as failed on the network (and is retried).
    pub fn timeout_ms(&self) -> u32 {
        self.decl().timeout_ms
    }

    /// The one-shot sync tag registered after an entry is queued.
    pub fn tag(&self) -> &str {
        &self.decl().tag
    }

    /// Which requests the worker captures into it.
    pub fn capture(&self) -> Option<&Capture> {
        self.decl().capture.as_ref()
    }

    /// The key range of this queue's entries in [`ENTRIES`].
    fn range(&self) -> JsResult<JsValue> {
        range_of(self.name())
    }

    /// The names this queue had before (see [`QueueDecl::formerly`]).
    pub fn formerly(&self) -> &[String] {
        &self.decl().formerly
    }

    /// Moves what is stored under `former`, a name this queue had in an
    /// earlier version of the app, into this queue: its entries, keeping
    /// their keys, times, attempts and backoff, and its dead letters (so a
    /// retried one comes back here). Up to [`ADOPT_AT_ONCE`] entries a
    /// transaction, each all or nothing: a move cut short goes on at the
    /// next start. Returns how many entries moved.
    pub async fn adopt(&self, former: &str) -> JsResult<usize> {
        let mut moved = 0;
        loop {
            let db = database().await?;
            let stores = Array::of3(&ENTRIES.into(), &DEAD_LETTERS.into(), &META.into());
            let tx = db.transaction_with_str_sequence_and_mode(&stores, IdbTransactionMode::Readwrite)?;
            let entries = tx.object_store(ENTRIES)?;
            let read = entries.get_all_with_key_and_limit(&range_of(former)?, ADOPT_AT_ONCE)?;
            let count = std::rc::Rc::new(std::cell::Cell::new(0));
            let (request, counted, name, old) =
                (read.clone(), count.clone(), self.name().to_owned(), former.to_owned());
            let (meta, mark) = (tx.object_store(META)?, self.mark_key());
            // The success handler runs while the transaction is active.
            let on_read = Closure::once_into_js(move || {
                let records = request.result().ok().and_then(|r| js::array(&r)).unwrap_or_default();
                if records.length() > 0 {
                    // What moves is older than where this queue was last
                    // found empty: its reads start at its start again.
                    let _ = meta.delete(&mark.into());
                }
                for record in records.iter() {
                    let Ok(key) = js::get(&record, "key") else { continue };
                    js::set(&record, "queue", name.as_str());
                    if entries.put(&record).is_ok() && entries.delete(&Array::of2(&old.as_str().into(), &key)).is_ok() {
                        counted.set(counted.get() + 1);
                    }
                }
            });
            read.set_onsuccess(Some(on_read.unchecked_ref()));
            if moved == 0 {
                let dead = tx.object_store(DEAD_LETTERS)?;
                let letters = dead.get_all()?;
                let (request, name, old) = (letters.clone(), self.name().to_owned(), former.to_owned());
                let on_letters = Closure::once_into_js(move || {
                    let records = request.result().ok().and_then(|r| js::array(&r)).unwrap_or_default();
                    for record in records.iter() {
                        if js::get(&record, "queue").ok().and_then(|q| q.as_string()).as_deref() == Some(&old) {
                            js::set(&record, "queue", name.as_str());
                            if let Some(entry) = js::get(&record, "entry").ok().filter(JsValue::is_object) {
                                js::set(&entry, "queue", name.as_str());
                            }
                            let _ = dead.put(&record);
                        }
                    }
                });
                letters.set_onsuccess(Some(on_letters.unchecked_ref()));
            }
            js::committed(&tx).await?;
            moved += count.get();
            if count.get() < ADOPT_AT_ONCE as usize {
                return Ok(moved);
            }
        }
    }

    fn id(&self, key: &str) -> JsValue {
        Array::of2(&self.name().into(), &key.into()).into()
    }

    /// Stores a new entry. The write is issued when this resolves; the
    /// future it resolves with ends once the write has committed (so a
    /// caller can start something that must come after the write, such as
    /// a sync registration, while it commits).
    pub async fn push(&self, entry: &Entry) -> JsResult<impl std::future::Future<Output = JsResult<()>>> {
        let db = database().await?;
        let tx = db.transaction_with_str_and_mode(ENTRIES, IdbTransactionMode::Readwrite)?;
        tx.object_store(ENTRIES)?.put(&to_js(self.name(), entry))?;
        Ok(js::commit(tx))
    }

    /// Takes the entry `key` out of the queue for good: the user took back
    /// what it asked for (deleted the post it wrote offline), so nothing
    /// sends it again. Waits until no round runs in any context of the
    /// origin (a round in progress ends, its requests answered or out of
    /// time, at most the queue's `timeoutMs`), and keeps the next round
    /// waiting until the entry is gone, so the answer is exact: the entry
    /// as it was when taken out, or `None` when the queue has no such entry
    /// (it was delivered, dead-lettered, or taken out before). Tells every
    /// context with a `discarded` event.
    ///
    /// An entry taken out with `attempts` above 0 was sent before: the
    /// server may have applied it and its answer been lost (it is undone,
    /// if at all, by what the app's API offers, such as a `DELETE`).
    pub async fn discard(&self, key: &str) -> JsResult<Option<Entry>> {
        Ok(from_js(&self.take(key).await?))
    }

    /// [`Queue::discard`], the entry as stored (`null` for none): what the
    /// JavaScript API answers.
    pub(crate) async fn take(&self, key: &str) -> JsResult<JsValue> {
        let id = self.id(key);
        let taken = crate::replay::between_rounds(js::boxed(async move {
            let db = database().await?;
            let tx = db.transaction_with_str_and_mode(ENTRIES, IdbTransactionMode::Readwrite)?;
            let store = tx.object_store(ENTRIES)?;
            // Requests run in order: the read sees the entry the delete removes.
            let read = store.get(&id)?;
            store.delete(&id)?;
            js::committed(&tx).await?;
            read.result()
        }))
        .await?;
        if taken.is_undefined() {
            return Ok(JsValue::NULL);
        }
        crate::events::tell(self.name(), crate::events::EventKind::Discarded, Some(key));
        Ok(taken)
    }

    /// Carries out the engine's store operations in one transaction (one
    /// commit for a whole batch's answers), in order. A dead letter leaves
    /// the queue and enters the dead letters in that transaction, so it is in
    /// exactly one of them whatever happens.
    ///
    /// The transaction is `relaxed` (committed without waiting for the disk):
    /// losing it in a power cut only means sending again entries the server
    /// already has, which their Idempotency-Keys make harmless (a dead
    /// letter's refusal is replayed, so it dies again). New entries, in
    /// [`Queue::push`], keep the default durability.
    ///
    /// When the site's storage is full and the transaction does not fit
    /// (an entry's new attempt count or error, a dead letter), its deletes
    /// are made alone, so that what the server has leaves the queue and
    /// frees space; the error is still returned, and a later round does
    /// the rest.
    pub async fn apply_all(&self, ops: &[StoreOp]) -> JsResult<()> {
        let deletes = |op: &&StoreOp| matches!(op, StoreOp::Delete(_));
        match self.apply_in_one(ops).await {
            Err(error) if js::is_quota_error(&error) && ops.iter().any(|op| !deletes(&op)) => {
                let only: Vec<StoreOp> = ops.iter().filter(deletes).cloned().collect();
                self.apply_in_one(&only).await?;
                Err(error)
            }
            done => done,
        }
    }

    async fn apply_in_one(&self, ops: &[StoreOp]) -> JsResult<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let db = database().await?;
        let stores = Array::of2(&ENTRIES.into(), &DEAD_LETTERS.into());
        let tx = relaxed_transaction(&db, &stores)?;
        let queue = tx.object_store(ENTRIES)?;
        if ops.len() >= RANGE_DELETE_MIN && ops.iter().all(|op| matches!(op, StoreOp::Delete(_))) {
            self.delete_as_range(&queue, ops)?;
            return js::committed(&tx).await;
        }
        for op in ops {
            match op {
                StoreOp::Put(entry) => {
                    // Only while still queued: an answer that arrives after
                    // another context deleted the entry must not bring it back.
                    let count = queue.count_with_key(&self.id(entry.key.as_str()))?;
                    let counted = count.clone();
                    let store = queue.clone();
                    let value = to_js(self.name(), entry);
                    // The success handler runs while the transaction is active.
                    let on_count = Closure::once_into_js(move || {
                        if counted.result().ok().and_then(|n| n.as_f64()) == Some(1.0) {
                            let _ = store.put(&value);
                        }
                    });
                    count.set_onsuccess(Some(on_count.unchecked_ref()));
                }
                StoreOp::Delete(key) => {
                    queue.delete(&self.id(key.as_str()))?;
                }
                StoreOp::DeadLetter(dead) => {
                    queue.delete(&self.id(dead.entry.key.as_str()))?;
                    tx.object_store(DEAD_LETTERS)?.put(&dead_to_js(self.name(), dead))?;
                }
            }
        }
        // A put is made by its count's success handler, later (and a range
        // delete by its count's, above).
        if ops.iter().any(|op| matches!(op, StoreOp::Put(_))) {
            return js::committed(&tx).await;
        }
        js::commit(tx).await
    }

    /// How many entries are stored (without reading them).
    pub async fn count(&self) -> JsResult<usize> {
        let db = database().await?;
        let tx = db.transaction_with_str(ENTRIES)?;
        let count = tx.object_store(ENTRIES)?.count_with_key(&self.range()?)?;
        Ok(js::request(&count).await?.as_f64().unwrap_or(0.0) as usize)
    }

    /// Every stored entry, in queue order (enqueue time, then key). Records
    /// that cannot be read as entries (written by something else) are
    /// reported and left in place, never deleted.
    pub async fn all(&self) -> JsResult<Vec<Entry>> {
        let db = database().await?;
        let tx = db.transaction_with_str(ENTRIES)?;
        let index = tx.object_store(ENTRIES)?.index(crate::db::ORDER)?;
        let values = Array::from(&js::request(&index.get_all_with_key(&self.order_range(None)?.into())?).await?);
        self.note_read(&values)?;
        Ok(decode(&values))
    }

    /// How many entries there are, and the first `limit` of them in queue
    /// order (`newest_first`: the last `limit`, newest first), read in one
    /// transaction: what a page shows of a queue without reading all of it
    /// (a long offline spell can leave tens of thousands).
    ///
    /// Read from where the queue was last found empty ([`Queue::found_empty`])
    /// when the entries counted from there are all the queue holds; else
    /// from the queue's start.
    pub async fn first(&self, limit: u32, newest_first: bool) -> JsResult<(usize, Vec<Entry>)> {
        let db = database().await?;
        let tx = db.transaction_with_str_sequence(&Array::of2(&ENTRIES.into(), &META.into()))?;
        let store = tx.object_store(ENTRIES)?;
        let index = store.index(crate::db::ORDER)?;
        let mark = self.stored_mark(&tx).await?;
        let count = store.count_with_key(&self.range()?)?;
        let above = match &mark {
            Some(mark) => Some(index.count_with_key(&self.order_range(Some(mark))?.into())?),
            None => None,
        };
        let count = js::request(&count).await?.as_f64().unwrap_or(0.0);
        // From the mark when what lies after it is all there is (else some
        // lie below it, see `found_empty`).
        let from = match above {
            Some(above) if js::request(&above).await?.as_f64() == Some(count) => mark,
            _ => None,
        };
        let range: JsValue = self.order_range(from.as_ref())?.into();
        // In queue order one request takes them all; newest first (which
        // `getAll` cannot do everywhere yet) a cursor steps back.
        let values = if newest_first {
            let cursor = index.open_cursor_with_range_and_direction(&range, web_sys::IdbCursorDirection::Prev)?;
            js::cursor_values(&cursor, limit).await?
        } else {
            Array::from(&js::request(&index.get_all_with_key_and_limit(&range, limit.max(1))?).await?)
        };
        Ok((count as usize, decode(&values)))
    }

    /// This queue's part of the [`crate::db::ORDER`] index, from the start
    /// or after `after`.
    fn order_range(&self, after: Option<&PageCursor>) -> JsResult<web_sys::IdbKeyRange> {
        let high = Array::of2(&self.name().into(), &Array::new());
        match after {
            Some(cursor) => web_sys::IdbKeyRange::bound_with_lower_open_and_upper_open(&cursor.0, &high, true, false),
            None => web_sys::IdbKeyRange::bound(&Array::of1(&self.name().into()), &high),
        }
    }

    /// At most `limit` entries in queue order (enqueue time, then key),
    /// those after `after` (from where the queue was last found empty if
    /// `None`, see [`Queue::found_empty`]), and where the next page starts
    /// (`None` when this one was the last): a round reads a long queue a
    /// page at a time, so what it holds stays bounded however long the
    /// queue is. A first page (`after` is `None`) starts this context's
    /// record of what it read.
    pub async fn page(&self, after: Option<&PageCursor>, limit: u32) -> JsResult<(Vec<Entry>, Option<PageCursor>)> {
        let db = database().await?;
        let tx = db.transaction_with_str_sequence(&Array::of2(&ENTRIES.into(), &META.into()))?;
        let start = match after {
            Some(after) => Some(after.clone()),
            None => {
                self.read_through(|read| *read = None);
                self.stored_mark(&tx).await?
            }
        };
        // Always there: opening the database upgrades one without it.
        let index = tx.object_store(ENTRIES)?.index(crate::db::ORDER)?;
        let range = self.order_range(start.as_ref())?;
        let values = Array::from(&js::request(&index.get_all_with_key_and_limit(&range, limit.max(1))?).await?);
        let last = self.note_read(&values)?;
        let next = last.filter(|_| values.length() >= limit.max(1)).map(PageCursor);
        let started = js::performance_now();
        let entries = decode(&values);
        if let (Some(started), Some(ended)) = (started, js::performance_now()) {
            DECODING.with(|d| d.set(Some(d.get().unwrap_or(0.0) + (ended - started))));
        }
        Ok((entries, next))
    }

    /// The entries after the last record this context's round read (after
    /// the mark, as its first read, if it read none): those queued while
    /// the round ran, which is usually all a count finds it missed.
    pub async fn after_read(&self) -> JsResult<Vec<Entry>> {
        let through = self.read_through(|read| read.clone()).map(PageCursor);
        Ok(self.page(through.as_ref(), u32::MAX).await?.0)
    }

    /// Keeps the index key of the last of `values` (records just read in
    /// queue order) as where this context has read through, and returns it:
    /// as stored (its time read back from text could be a rounding off).
    fn note_read(&self, values: &Array) -> JsResult<Option<JsValue>> {
        let Some(last) = values.length().checked_sub(1).map(|i| values.get(i)) else { return Ok(None) };
        let last: JsValue =
            Array::of3(&self.name().into(), &js::get(&last, "enqueuedAt")?, &js::get(&last, "key")?).into();
        self.read_through(|read| *read = Some(last.clone()));
        Ok(Some(last))
    }

    /// The round that read this queue found it empty (counted after its
    /// last delete): first reads, in any context and after a restart, start
    /// after the last record it read. Kept in `meta` as `mark:<queue>`.
    ///
    /// Chromium keeps an index's entries for deleted records until it
    /// sweeps them, and a read of the index walks them: a first read from
    /// the queue's start took 10 ms more for every 1,000 entries deleted
    /// before it (`apps/feed/benches/probes/drain-store.js`), and as much
    /// after the database was closed for 20 s and opened again. What was
    /// enqueued since has a later time (a retried dead letter too), so it
    /// is read from there. An entry below (a clock set back) is not lost:
    /// a round counts the queue when it ends, and when the count says it
    /// holds more than was read, reads after what it read
    /// ([`Queue::after_read`]), then the whole queue if that was not all
    /// ([`Queue::forget_empty`]); [`Queue::first`] counts before it trusts
    /// the mark.
    pub fn found_empty(&self) {
        if let Some(through) = self.read_through(Option::take) {
            let o = Object::new();
            js::set(&o, "key", self.mark_key());
            js::set(&o, "through", through);
            self.write_mark(Some(o.into()));
        }
    }

    /// Reads start at the queue's start again (a count found entries the
    /// reads from the mark did not).
    pub fn forget_empty(&self) {
        self.write_mark(None);
    }

    fn mark_key(&self) -> String {
        format!("mark:{}", self.name())
    }

    /// Puts `mark` (a record) in `meta`, or deletes this queue's mark
    /// (`None`), without waiting for it: a mark lost only makes the next
    /// first read start lower, and a later transaction on `meta` runs after
    /// this one, so no read sees the mark before it. (A round has the
    /// database open.)
    fn write_mark(&self, mark: Option<JsValue>) {
        let Some(db) = crate::db::opened() else { return };
        let _ = relaxed_transaction(&db, &Array::of1(&META.into())).and_then(|tx| {
            let meta = tx.object_store(META)?;
            match mark {
                Some(mark) => meta.put(&mark),
                None => meta.delete(&self.mark_key().into()),
            }
        });
    }

    /// Where the queue was last found empty, read in `tx` (which covers
    /// [`META`]); none where the record is not a mark of this queue (a key
    /// of it, or the range from it, could not be made).
    async fn stored_mark(&self, tx: &web_sys::IdbTransaction) -> JsResult<Option<PageCursor>> {
        let stored = js::request(&tx.object_store(META)?.get(&self.mark_key().into())?).await?;
        if !stored.is_object() {
            return Ok(None);
        }
        let Some(through) = js::array(&js::get(&stored, "through")?) else { return Ok(None) };
        let valid = through.length() == 3
            && through.get(0).as_string().as_deref() == Some(self.name())
            && through.get(1).as_f64().is_some_and(|t| !t.is_nan())
            && through.get(2).is_string();
        Ok(valid.then(|| PageCursor(through.into())))
    }

    fn read_through<T>(&self, f: impl FnOnce(&mut Option<JsValue>) -> T) -> T {
        READ_THROUGH.with(|marks| {
            let mut marks = marks.borrow_mut();
            let i = match marks.iter().position(|(name, _)| name == self.name()) {
                Some(i) => i,
                None => {
                    marks.push((self.name().to_owned(), None));
                    marks.len() - 1
                }
            };
            f(&mut marks[i].1)
        })
    }
}

/// The ms this context spent reading records into entries in
/// [`Queue::page`] since the last call (`None` if it read no page): a
/// round's `decode` phase, wherever the read happened.
pub(crate) fn take_decode_ms() -> Option<f64> {
    DECODING.with(|d| d.take())
}

thread_local! {
    static DECODING: std::cell::Cell<Option<f64>> = const { std::cell::Cell::new(None) };
    // Per queue, the index key of the last record this context read since
    // its round's first read (a `Vec`: a map costs more code per type).
    static READ_THROUGH: std::cell::RefCell<Vec<(String, Option<JsValue>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// From how many deletes on a range is tried.
const RANGE_DELETE_MIN: usize = 8;

impl Queue {
    /// Deletes the keys of `ops` (all deletes) with one request when they
    /// are exactly this queue's keys in their range (time-ordered keys of a
    /// delivered batch), else one by one. The count and the delete run in
    /// the same transaction, so no other key in the range can be deleted
    /// by mistake.
    fn delete_as_range(&self, store: &web_sys::IdbObjectStore, ops: &[StoreOp]) -> JsResult<()> {
        let keys: Vec<&str> = ops
            .iter()
            .filter_map(|op| match op {
                StoreOp::Delete(key) => Some(key.as_str()),
                _ => None,
            })
            .collect();
        let (Some(low), Some(high)) = (keys.iter().min(), keys.iter().max()) else { return Ok(()) };
        let range = web_sys::IdbKeyRange::bound(&self.id(low), &self.id(high))?;
        let count = store.count_with_key(&range)?;
        let (counted, store) = (count.clone(), store.clone());
        let distinct = keys.iter().collect::<std::collections::HashSet<_>>().len() == keys.len();
        // The keys as IndexedDB keys only when they are deleted one by one:
        // a thousand arrays built for nothing on the usual path otherwise.
        let (queue, owned): (Queue, Vec<String>) = (self.clone(), keys.iter().map(|k| (*k).to_owned()).collect());
        // The success handler runs while the transaction is active.
        let on_count = Closure::once_into_js(move || {
            let present = counted.result().ok().and_then(|n| n.as_f64()).unwrap_or(-1.0);
            // Keys not found (deleted by another context) make the count
            // smaller; one by one is right then too.
            if present == owned.len() as f64 && distinct {
                let _ = store.delete(&range);
            } else {
                for key in &owned {
                    let _ = store.delete(&queue.id(key));
                }
            }
            // The transaction's last requests are made.
            js::commit_now(&store.transaction());
        });
        count.set_onsuccess(Some(on_count.unchecked_ref()));
        Ok(())
    }
}

/// A read-write transaction on `stores` with `durability: "relaxed"` where
/// the browser knows the option (others ignore it).
fn relaxed_transaction(db: &IdbDatabase, stores: &Array) -> JsResult<web_sys::IdbTransaction> {
    let options = Object::new();
    js::set(&options, "durability", "relaxed");
    let open: js_sys::Function = js::get(db, "transaction")?.dyn_into()?;
    open.call3(db, stores, &"readwrite".into(), &options)?.dyn_into()
}

/// The key range of the entries stored under the queue name `name`.
fn range_of(name: &str) -> JsResult<JsValue> {
    // Arrays sort after strings, so `[name, []]` is above every key.
    let low = Array::of1(&name.into());
    let high = Array::of2(&name.into(), &Array::new());
    Ok(web_sys::IdbKeyRange::bound(&low, &high)?.into())
}

/// How many entries [`Queue::adopt`] moves in one transaction.
pub const ADOPT_AT_ONCE: u32 = 500;

/// The names entries are stored under that no queue of this context
/// declares or names in its `formerly`, with how many entries each:
/// entries nothing sends (an app that renamed or dropped a queue without
/// naming the old name in the new queue's `formerly`). One step of a key
/// cursor a stored name (each jumps past the name's last key), in one
/// transaction with the counts.
///
/// (Boxed: `deliver`'s warning and `inspect` both ask, and each would
/// otherwise carry a copy of this state machine.)
pub fn undeclared() -> js::Boxed<'static, JsResult<Vec<(String, usize)>>> {
    js::boxed(undeclared_now())
}

async fn undeclared_now() -> JsResult<Vec<(String, usize)>> {
    let config = crate::config::current();
    let tx = database().await?.transaction_with_str(ENTRIES)?;
    let store = tx.object_store(ENTRIES)?;
    let walk = store.open_key_cursor()?;
    let mut counts = Vec::new();
    // Each step is taken in the microtask after the cursor's success
    // event, while the transaction is active.
    while let Ok(cursor) = js::request(&walk).await?.dyn_into::<web_sys::IdbCursor>() {
        let Some(name) = js::array(&cursor.key()?).and_then(|k| k.get(0).as_string()) else { break };
        if !config.queues.iter().any(|q| q.name == name || q.formerly.contains(&name)) {
            counts.push((name.clone(), store.count_with_key(&range_of(&name)?)?));
        }
        // Arrays sort after strings: `[name, []]` is above every key of it.
        cursor.continue_with_key(&Array::of2(&name.into(), &Array::new()))?;
    }
    js::committed(&tx).await?;
    let count = |request: web_sys::IdbRequest| request.result().ok().and_then(|n| n.as_f64()).unwrap_or(0.0) as usize;
    Ok(counts.into_iter().map(|(name, request)| (name, count(request))).collect())
}

/// Puts a dead letter back in the queue it came from as a fresh entry (no
/// attempts, no backoff, queued now: behind what is queued, as the entries
/// queued after it were delivered already), in one transaction: the user
/// fixed the cause, or wants to try again. Returns whether there was such a
/// dead letter.
pub async fn retry_dead_letter(key: &str) -> JsResult<bool> {
    let db = database().await?;
    let stores = Array::of2(&ENTRIES.into(), &DEAD_LETTERS.into());
    let tx = db.transaction_with_str_sequence_and_mode(&stores, IdbTransactionMode::Readwrite)?;
    let dead = tx.object_store(DEAD_LETTERS)?;
    let get = dead.get(&JsValue::from_str(key))?;
    let found = std::rc::Rc::new(std::cell::Cell::new(false));
    let (read, transaction, flag) = (get.clone(), tx.clone(), found.clone());
    // The success handler runs while the transaction is active.
    let on_read = Closure::once_into_js(move || {
        let Ok(record) = read.result() else { return };
        let Some(mut entry) = js::get(&record, "entry").ok().and_then(|e| from_js(&e)) else { return };
        let Some(queue) = js::get(&record, "queue").ok().and_then(|q| q.as_string()) else { return };
        let Ok(target) = transaction.object_store(ENTRIES) else { return };
        entry.attempts = 0;
        entry.not_before_ms = 0;
        entry.last_error = None;
        entry.enqueued_at_ms = crate::client::enqueue_time();
        if target.put(&to_js(&queue, &entry)).is_ok() && dead.delete(&JsValue::from_str(entry.key.as_str())).is_ok() {
            flag.set(true);
        }
    });
    get.set_onsuccess(Some(on_read.unchecked_ref()));
    js::committed(&tx).await?;
    Ok(found.get())
}

/// Deletes a dead letter for good (the user gave up on it). Deleting one
/// that is already gone is not an error.
pub async fn discard_dead_letter(key: &str) -> JsResult<()> {
    let db = database().await?;
    let tx = db.transaction_with_str_and_mode(DEAD_LETTERS, IdbTransactionMode::Readwrite)?;
    tx.object_store(DEAD_LETTERS)?.delete(&JsValue::from_str(key))?;
    js::committed(&tx).await
}

/// How many dead letters there are, over every queue.
pub async fn dead_letter_count() -> JsResult<usize> {
    count_store(DEAD_LETTERS).await
}

async fn count_store(store: &str) -> JsResult<usize> {
    let db = database().await?;
    let tx = db.transaction_with_str(store)?;
    Ok(js::request(&tx.object_store(store)?.count()?).await?.as_f64().unwrap_or(0.0) as usize)
}

/// A dead letter as stored: the entry, the queue it left, why, and when.
#[derive(Clone, Debug)]
pub struct StoredDeadLetter {
    pub queue: String,
    pub entry: Entry,
    /// Why, for people.
    pub reason: String,
    /// Why, as data (`{kind, status | attempts | ageMs}`); absent for dead
    /// letters stored before it was recorded.
    pub cause: JsValue,
    pub at_ms: f64,
}

/// The dead letters of every queue, oldest first.
pub async fn dead_letters() -> JsResult<Vec<StoredDeadLetter>> {
    let db = database().await?;
    let tx = db.transaction_with_str(DEAD_LETTERS)?;
    let values = js::request(&tx.object_store(DEAD_LETTERS)?.get_all()?).await?;
    let mut dead: Vec<StoredDeadLetter> = Array::from(&values)
        .iter()
        .filter_map(|v| {
            Some(StoredDeadLetter {
                entry: from_js(&js::get(&v, "entry").ok()?)?,
                queue: js::get(&v, "queue").ok().and_then(|q| q.as_string()).unwrap_or_default(),
                reason: js::get(&v, "reason").ok()?.as_string()?,
                cause: js::get(&v, "cause").unwrap_or(JsValue::UNDEFINED),
                at_ms: js::get(&v, "at").ok()?.as_f64().unwrap_or(0.0),
            })
        })
        .collect();
    // Oldest first, by insertion: read in key order (time-ordered keys),
    // they are usually nearly sorted already, so this is about one pass; the
    // standard library's sort is kilobytes of every module that lists them.
    for i in 1..dead.len() {
        let mut j = i;
        while j > 0 && dead[j - 1].at_ms > dead[j].at_ms {
            dead.swap(j - 1, j);
            j -= 1;
        }
    }
    Ok(dead)
}

/// An entry of `queue` as it is stored (and as the JavaScript API lists it).
pub(crate) fn to_js(queue: &str, entry: &Entry) -> JsValue {
    let o = Object::new();
    js::set(&o, "queue", queue);
    js::set(&o, "key", entry.key.as_str());
    js::set(&o, "method", entry.method.as_str());
    js::set(&o, "url", entry.url.as_str());
    js::set(&o, "headers", js::header_pairs(&entry.headers));
    js::set(&o, "body", entry.body.as_str());
    js::set(&o, "enqueuedAt", entry.enqueued_at_ms);
    js::set(&o, "attempts", entry.attempts);
    // Milliseconds since the epoch fit a double exactly.
    js::set(&o, "notBefore", entry.not_before_ms as f64);
    js::set(&o, "lastError", entry.last_error.as_deref().map(JsValue::from_str).unwrap_or(JsValue::NULL));
    if let Some(owner) = &entry.owner {
        js::set(&o, OWNER, owner.as_str());
    }
    o.into()
}

/// Where [`Queue::page`] goes on: the last record's key in the queue-order
/// index.
#[derive(Clone, Debug)]
pub struct PageCursor(JsValue);

/// The entries among `values` (records as stored). Records that cannot be
/// read as entries (written by something else) are reported and left in
/// place, never deleted.
fn decode(values: &Array) -> Vec<Entry> {
    // Where rounds run (the feature `replay-here`): all the records as one
    // JSON text, one crossing into Rust instead of one per field. (Where
    // that fails, say a record holding something JSON cannot say, record
    // by record.) A page built without the replay lists a queue but never
    // drains one: it reads record by record, and its module goes without
    // the JSON reader.
    #[cfg(feature = "replay-here")]
    let records = js_sys::JSON::stringify(values)
        .ok()
        .and_then(|text| crate::js::long_text(&text))
        .and_then(|text| crate::round_json::entries_of_json(&text));
    #[cfg(not(feature = "replay-here"))]
    let records: Option<Vec<Option<Entry>>> = None;
    if let Some(records) = records {
        let mut entries = Vec::with_capacity(records.len());
        for (i, record) in records.into_iter().enumerate() {
            match record {
                Some(entry) => entries.push(entry),
                None => unreadable(&values.get(i as u32)),
            }
        }
        return entries;
    }
    let mut entries = Vec::new();
    for value in values.iter() {
        match from_js(&value) {
            Some(entry) => entries.push(entry),
            None => unreadable(&value),
        }
    }
    entries
}

fn unreadable(record: &JsValue) {
    web_sys::console::warn_2(&"bgsync: skipping an unreadable queue record".into(), record);
}

fn from_js(value: &JsValue) -> Option<Entry> {
    let text = |name| js::get(value, name).ok()?.as_string();
    let number = |name| js::get(value, name).ok()?.as_f64();
    let headers = js::get(value, "headers").map(|h| js::stored_header_pairs(&h)).unwrap_or_default();
    Some(Entry {
        key: EntryKey::try_from(text("key")?).ok()?,
        method: text("method").unwrap_or_else(|| "POST".into()),
        url: text("url")?,
        headers,
        body: text("body")?,
        enqueued_at_ms: number("enqueuedAt")?,
        attempts: number("attempts").unwrap_or(0.0) as u32,
        not_before_ms: number("notBefore").unwrap_or(0.0) as u64,
        last_error: text("lastError"),
        owner: text(OWNER),
    })
}

/// Why an entry was dead-lettered, as data: `{kind: "rejected", status}`,
/// `{kind: "too-many-attempts", attempts}` or `{kind: "too-old", ageMs}`
/// (the sentence for people is `reason`, beside it).
pub fn cause_to_js(reason: &DeadReason) -> JsValue {
    let (kind, name, value) = cause(reason);
    let o = Object::new();
    js::set(&o, "kind", kind);
    js::set(&o, name, value as f64);
    o.into()
}

/// A dead letter's typed cause as the API shows it, `{kind, <name>: value}`:
/// `rejected` with the `status`, `too-many-attempts` with the `attempts`,
/// `too-old` with the `ageMs`. (Written as an object by [`cause_to_js`], as
/// JSON by the events.)
pub(crate) fn cause(reason: &DeadReason) -> (&'static str, &'static str, u64) {
    match reason {
        DeadReason::Rejected { status, .. } => ("rejected", "status", u64::from(*status)),
        DeadReason::TooManyAttempts { attempts, .. } => ("too-many-attempts", "attempts", u64::from(*attempts)),
        DeadReason::TooOld { age_ms, .. } => ("too-old", "ageMs", *age_ms),
    }
}

fn dead_to_js(queue: &str, dead: &DeadLetter) -> JsValue {
    let o = Object::new();
    js::set(&o, "key", dead.entry.key.as_str());
    js::set(&o, "queue", queue);
    js::set(&o, "entry", to_js(queue, &dead.entry));
    js::set(&o, "reason", dead.reason.to_string());
    js::set(&o, "cause", cause_to_js(&dead.reason));
    js::set(&o, "at", dead.at_ms as f64);
    o.into()
}

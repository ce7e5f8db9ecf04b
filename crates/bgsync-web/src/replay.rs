//! Replaying a queue: the browser shell around the engine
//! ([`bgsync_core::Engine`]).
//!
//! A round reads the stored entries, lets the engine decide what to send
//! and what each answer means, carries out its store operations in
//! IndexedDB before the next step, and broadcasts its events. Rounds run one
//! at a time per JavaScript context; while the context lives, a round that
//! ends with entries waiting for a retry can be followed by another when
//! the engine's timer is due ([`deliver`]); otherwise the
//! browser's own sync retry (or the next page load) brings the next round.

use crate::events;
use crate::js::{self, join, JsResult};
use crate::queue::{PageCursor, Queue};
use crate::state;
use crate::transport;
use bgsync_core::{AttemptResult, BatchLimits, Engine, Event, QueueConfig, StoreOp, Transmit, TransmitResult};
use js_sys::{Function, Promise};
use std::cell::{Cell, RefCell};
use wasm_bindgen::prelude::Closure;
use wasm_bindgen::{JsCast, JsValue};

thread_local! {
    // The promise that settles when the round in progress ends. A `sync`
    // event, a page's "retry now" and a timer can all start a round in the
    // same context; they run one after another, so no entry is in flight
    // twice from one context.
    static TAIL: RefCell<Option<Promise>> = const { RefCell::new(None) };
}

/// How a round ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    /// Entries still queued (waiting for a retry, or behind one).
    pub remaining: usize,
    /// When the engine wants to send again (ms since the epoch).
    pub next_at_ms: Option<u64>,
    /// The server asked for credentials (401/403).
    pub paused: bool,
}

impl Round {
    /// Whether the browser should be asked to try again later: entries
    /// are owed and the queue is not paused (no retry helps a paused
    /// queue; new credentials start the next round).
    pub fn needs_retry(&self) -> bool {
        self.remaining > 0 && !self.paused
    }

    /// Two rounds (of two queues) as one.
    pub fn and(self, other: Round) -> Round {
        Round {
            delivered: self.delivered + other.delivered,
            remaining: self.remaining + other.remaining,
            next_at_ms: match (self.next_at_ms, other.next_at_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            paused: self.paused || other.paused,
        }
    }
}

pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// Runs one round of `queue` after any round already running in this
/// context. `expedite`: the round was asked for from outside (the user's
/// "retry now", the browser's `sync` or `online`), so entries waiting out a
/// backoff are sent now; rounds run by the engine's own timers pass `false`.
pub async fn replay(queue: &Queue, expedite: bool) -> JsResult<Round> {
    let mut release: Option<Function> = None;
    let mine = Promise::new(&mut |resolve, _| release = Some(resolve));
    let previous = TAIL.with(|tail| tail.borrow_mut().replace(mine));
    if let Some(previous) = previous {
        let _ = js::await_promise(previous).await;
    }
    let result = with_origin_lock(queue, expedite).await;
    if let Some(release) = release {
        let _ = release.call0(&JsValue::NULL);
    }
    result
}

/// Rounds (the first one expedited if `expedite`) until the queue is empty, paused, or
/// the next retry is further away than `budget_ms` from now: the engine's
/// timers, honoured while this context is alive anyway (inside a
/// `waitUntil`, or an open page).
async fn rounds_until(queue: &Queue, budget_ms: u64, expedite: bool) -> JsResult<Round> {
    let deadline = now_ms() + budget_ms;
    let mut expedite = expedite;
    loop {
        let round = replay(queue, std::mem::take(&mut expedite)).await?;
        match round.next_at_ms {
            Some(at) if round.remaining > 0 && !round.paused && at <= deadline => {
                sleep_until(at).await;
            }
            _ => return Ok(round),
        }
    }
}

/// Replays every declared queue (retrying on the engine's timers for up to
/// `budget_ms`), then, if anything was delivered, pulls every declared
/// feed: whoever delivers brings the server's view into IndexedDB, so every
/// page, open now (told by the `pulled` broadcast) or opened later, shows
/// what was sent as the server has it. `expedite`: entries waiting out a
/// backoff go now (a sync event, "retry now"), rather than only those due.
///
/// All of it (rounds, the waits between them, the pulls: the whole of a
/// sync event's work) holds the shared Web Lock `bgsync-active`, so that a page
/// that queues an entry meanwhile knows to ask for a round of its own
/// ([`crate::client::make_sure_it_is_taken`]) rather than trust a sync
/// registration the browser may swallow while this sync event fires.
pub async fn deliver(budget_ms: u64, expedite: bool) -> JsResult<Round> {
    with_lock(
        ACTIVE_LOCK,
        "shared",
        js::boxed(async move {
            js::boxed(adopt_former_names()).await;
            let mut total = Round::default();
            for queue in Queue::declared() {
                total = total.and(rounds_until(&queue, budget_ms, expedite).await?);
            }
            if total.delivered > 0 {
                for feed in &crate::config::current().feeds {
                    // A failed pull changes nothing; the next one catches up.
                    let _ = crate::pull::pull(feed).await;
                }
            }
            if !WARNED.with(|done| done.replace(true)) {
                warn_of_undeclared().await;
            }
            Ok(total)
        }),
    )
    .await
}

thread_local! {
    // Whether this context has looked for undeclared queue names (once:
    // a warning, not a task).
    static WARNED: Cell<bool> = const { Cell::new(false) };
}

/// What is stored under a name a queue had before (its `formerly`) joins
/// that queue, before its rounds: at every `deliver`, so that what a page
/// of the old version still open queues there later joins too (one empty
/// read a former name when there is none). A move that fails is tried
/// again at the next `deliver`.
async fn adopt_former_names() {
    for queue in Queue::declared() {
        for former in queue.formerly() {
            if let Err(e) = queue.adopt(former).await {
                let what = format!(
                    "bgsync: moving the queue \"{former}\" into \"{}\" failed (tried again at the next replay)",
                    queue.name()
                );
                web_sys::console::warn_2(&what.into(), &e);
            }
        }
    }
}

/// Says in the console which stored queue names no queue declares: nothing
/// sends their entries.
async fn warn_of_undeclared() {
    for (name, count) in crate::queue::undeclared().await.unwrap_or_default() {
        web_sys::console::warn_1(
            &format!(
                "bgsync: {count} entries wait in the queue \"{name}\", which this app does not declare, so nothing \
                 sends them: declare the queue again, or name \"{name}\" in formerly of the queue that took its place"
            )
            .into(),
        );
    }
}

async fn sleep_until(at_ms: u64) {
    let delay = at_ms.saturating_sub(now_ms()).min(i32::MAX as u64) as i32;
    let _ = js::await_promise(js::after(delay)).await;
}

/// The Web Lock that makes one round at a time per origin: two tabs and
/// the worker replaying together would otherwise read the same entries and
/// send them twice (harmless to the server, which deduplicates, but wasted).
const ORIGIN_LOCK: &str = "bgsync-replay";

/// Held (shared) through every [`deliver`]: its rounds, the waits between
/// them and its pulls: "a context is replaying and will not look again
/// unless asked".
const ACTIVE_LOCK: &str = "bgsync-active";

fn locks() -> Option<JsValue> {
    js::get(&js_sys::global(), "navigator").and_then(|n| js::get(&n, "locks")).ok().filter(JsValue::is_object)
}

/// Runs a round holding the origin-wide Web Lock.
async fn with_origin_lock(queue: &Queue, expedite: bool) -> JsResult<Round> {
    let queue = queue.clone();
    with_lock(ORIGIN_LOCK, "exclusive", js::boxed(async move { round(&queue, expedite).await })).await
}

/// Runs `work` when no round runs in any context of the origin, and keeps
/// every round waiting until it ends: what must not overlap a round (taking
/// an entry out of a queue before anything sends it).
pub(crate) async fn between_rounds<T>(work: js::Boxed<'static, JsResult<T>>) -> JsResult<T> {
    with_lock(ORIGIN_LOCK, "exclusive", work).await
}

/// Waits until no round runs in any context of the origin and keeps every
/// round waiting until what this returns is dropped: [`between_rounds`]
/// for a caller whose work borrows.
pub(crate) async fn hold_rounds() -> JsResult<Option<Held>> {
    js::boxed(acquire(ORIGIN_LOCK, "exclusive")).await
}

/// Runs `work` holding the Web Lock `name` in `mode`, where the browser has
/// Web Locks (every current engine); else just runs it (the server's
/// idempotency still keeps every entry exactly-once).
async fn with_lock<T>(name: &str, mode: &str, work: js::Boxed<'static, JsResult<T>>) -> JsResult<T> {
    let _held = js::boxed(acquire(name, mode)).await?;
    work.await
}

/// A Web Lock this context holds: released when dropped (the work done,
/// or given up).
pub(crate) struct Held(Function);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.call0(&JsValue::NULL);
    }
}

/// Asks for the Web Lock `name` in `mode` and waits until it is granted
/// (`None` where there are no Web Locks). Not generic: every caller shares it.
async fn acquire(name: &str, mode: &str) -> JsResult<Option<Held>> {
    let Some(locks) = locks() else { return Ok(None) };
    let request: Function = js::get(&locks, "request")?.dyn_into()?;
    let (mut release, mut grant) = (None, None);
    let held = Promise::new(&mut |resolve, _| release = Some(resolve));
    let granted = Promise::new(&mut |resolve, _| grant = Some(resolve));
    let (Some(release), Some(grant)) = (release, grant) else {
        return Err("the browser made no promise".into());
    };
    // The lock is held until the promise the callback returns settles.
    let callback = Closure::once_into_js(move |_lock: JsValue| -> Promise {
        let _ = grant.call0(&JsValue::NULL);
        held
    });
    let options = js_sys::Object::new();
    js::set(&options, "mode", mode);
    // Made before the wait: given up while waiting (or failing), the lock
    // is let go as soon as it is granted.
    let guard = Held(release);
    let requested = request.call3(&locks, &name.into(), &options, &callback)?;
    // The request's own promise settles only once the lock is released,
    // or fails when the lock cannot be asked for.
    js::await_promise(Promise::race(&js_sys::Array::of2(&granted, &requested))).await?;
    Ok(Some(guard))
}

/// Whether some context of the origin is replaying now (a round, or the
/// waits between the rounds of a sync event or a page's message).
pub async fn replaying_elsewhere() -> bool {
    match look() {
        Some(look) => held(look).await,
        None => false,
    }
}

/// Asks the browser which locks are held, now ([`held`] reads the answer):
/// `None` where there are no Web Locks.
pub fn look() -> Option<Promise> {
    let locks = locks()?;
    let query: Function = js::get(&locks, "query").ok()?.dyn_into().ok()?;
    query.call0(&locks).ok()?.dyn_into().ok()
}

/// Whether the answer to [`look`] holds the replaying lock.
pub async fn held(look: Promise) -> bool {
    let Ok(snapshot) = js::await_promise(look).await else { return false };
    let held = js::get(&snapshot, "held").ok().and_then(|h| js::array(&h)).unwrap_or_default();
    held.iter().any(|lock| {
        matches!(js::get(&lock, "name").ok().and_then(|n| n.as_string()).as_deref(), Some(ORIGIN_LOCK | ACTIVE_LOCK))
    })
}

/// A round of this context that sent something: when it started, its
/// queue, what it delivered, and where its time went (phase, ms: reading
/// the queue and its state from IndexedDB, decoding the records read,
/// learning the batch endpoint, each request, each store step), for the
/// worker's status answer.
#[derive(Clone, Debug)]
pub struct RoundRecord {
    pub queue: String,
    /// Ms since the epoch.
    pub at_ms: f64,
    pub delivered: usize,
    /// Pages of the queue it read (see [`Queue::page`]).
    pub pages: usize,
    pub phases: Vec<(&'static str, f64)>,
}

/// The last rounds of this context that sent anything (at most
/// [`KEPT_ROUNDS`], oldest first), for the inspector.
pub fn last_rounds() -> Vec<RoundRecord> {
    ROUNDS.with(|r| r.borrow().clone())
}

/// How many rounds [`last_rounds`] keeps.
pub const KEPT_ROUNDS: usize = 8;

thread_local! {
    static ROUNDS: RefCell<Vec<RoundRecord>> = const { RefCell::new(Vec::new()) };
}

fn precise_now() -> f64 {
    js::performance_now().unwrap_or_else(js_sys::Date::now)
}

struct Clock(f64, Vec<(&'static str, f64)>, f64);

impl Clock {
    fn start() -> Self {
        crate::queue::take_decode_ms();
        Clock(precise_now(), Vec::new(), js_sys::Date::now())
    }

    /// Ends `phase`. The pages of the queue decoded in it (their records
    /// read into entries, see [`Queue::page`]) are a phase of their own,
    /// `decode`, after it: it is the round's own work (code a worker just
    /// started runs for the first time), where the rest of a `read` is
    /// waiting for IndexedDB.
    fn lap(&mut self, phase: &'static str) {
        let now = precise_now();
        let decoding = crate::queue::take_decode_ms();
        // (At least 0: the browser may coarsen `performance.now()`.)
        self.1.push((phase, (now - self.0 - decoding.unwrap_or(0.0)).max(0.0)));
        if let Some(ms) = decoding {
            self.1.push(("decode", ms));
        }
        self.0 = now;
    }

    /// Keeps this round's record if it sent anything.
    fn keep_if_sent(self, queue: &Queue, delivered: usize, pages: usize) {
        if self.1.iter().any(|(phase, _)| *phase == "request") {
            let record =
                RoundRecord { queue: queue.name().to_owned(), at_ms: self.2, delivered, pages, phases: self.1 };
            ROUNDS.with(|r| {
                let mut rounds = r.borrow_mut();
                if rounds.len() >= KEPT_ROUNDS {
                    rounds.remove(0);
                }
                rounds.push(record);
            });
        }
    }
}

async fn round(queue: &Queue, expedite: bool) -> JsResult<Round> {
    match js::boxed(round_once(queue, expedite, true)).await? {
        Once::Ended(round) => Ok(round),
        // The advertisement was out of date (forgotten by now): once more,
        // with what the server says today.
        Once::EndpointGone { delivered } => {
            let Once::Ended(mut round) = js::boxed(round_once(queue, expedite, false)).await? else {
                unreachable!("a second round does not stop for the endpoint")
            };
            round.delivered += delivered;
            Ok(round)
        }
    }
}

/// How [`round_once`] ended.
enum Once {
    Ended(Round),
    /// The batch URL answered 404, 405 or 410: the batch's entries were
    /// left as they were (not an attempt), after `delivered` others.
    EndpointGone {
        delivered: usize,
    },
}

/// How many entries a round reads at a time: what its requests on the
/// wire at once carry (a batch for an ordered queue, `maxInFlight` batches
/// for an unordered one; at least 20, at most 2,000), 200 for a queue
/// that sends one request per entry. The next page is read while a
/// request travels, so a long queue's drain pays for its reads in the
/// shadow of the network, one page ahead.
fn page_size(queue: &Queue) -> u32 {
    if !queue.batching() {
        return 200;
    }
    let policy = queue.policy();
    // The server's limit, when it is known, is at most 1,000 entries.
    let ours = policy.batch.as_ref().map_or(1_000, |b| b.max_entries.min(1_000));
    let at_once = if policy.ordered { 1 } else { policy.max_in_flight.max(1) };
    ours.saturating_mul(at_once).clamp(20, 2_000) as u32
}

/// Waits for the first of `futures` to finish, and takes it out.
async fn first_done<T>(futures: &mut Vec<js::Boxed<'_, T>>) -> T {
    use std::task::Poll;
    std::future::poll_fn(|cx| {
        for i in 0..futures.len() {
            if let Poll::Ready(value) = futures[i].as_mut().poll(cx) {
                drop(futures.swap_remove(i));
                return Poll::Ready(value);
            }
        }
        Poll::Pending
    })
    .await
}

/// What a round needs beside its entries.
struct Context {
    paused: bool,
    credentials: transport::Credentials,
    /// Who is signed in: entries another user queued wait for them.
    user: Option<String>,
    /// The batch endpoint, when known without asking the server.
    endpoint: Option<Option<bgsync_core::wire::BatchEndpoint>>,
}

async fn context(queue: &Queue) -> JsResult<Context> {
    // Side by side: each is a small read of its own, and the queue's read
    // beside them keeps the event loop busy; one after the other, each
    // would wait for it.
    let ((paused, headers), (client_id, endpoint)) = join(
        join(state::paused(queue.name()), state::signed_in()),
        join(state::client_id(), async {
            if queue.batching() {
                transport::known_endpoint().await
            } else {
                Some(None)
            }
        }),
    )
    .await;
    let (headers, user) = headers?;
    let credentials = transport::Credentials { headers, client_id: client_id? };
    Ok(Context { paused: paused?.is_some(), credentials, user, endpoint })
}

async fn round_once(queue: &Queue, expedite: bool, stop_if_endpoint_gone: bool) -> JsResult<Once> {
    let config = queue.policy();
    let mut clock = Clock::start();
    // A page at a time: the first batches go while the next page is read,
    // and what a round holds stays bounded however long the queue is.
    let limit = page_size(queue);
    // The context's small reads are issued first (`join` polls in order):
    // after the page's, they were answered only once its records were
    // decoded (10 ms for a thousand), and the round waited for them.
    let (context, page) = join(context(queue), queue.page(None, limit)).await;
    let ((mut entries, mut next_page), Context { paused, credentials, user, endpoint }) = (page?, context?);
    // Entries of another user than the one signed in, read and left alone.
    let mut others = Others { user: user.as_deref(), held: 0 };
    others.leave_out(&mut entries);
    let mut pages = 1;
    clock.lap("read");
    // A queue the server paused (401/403) sends nothing until new
    // credentials are set: every request would be refused the same way.
    // (Counted when the page is empty too: its read started where the queue
    // was last found empty, and an entry could be stored below that.)
    if paused {
        let remaining = if next_page.is_some() || entries.is_empty() { queue.count().await? } else { entries.len() };
        if remaining > 0 {
            return Ok(Once::Ended(Round { delivered: 0, remaining, next_at_ms: None, paused: true }));
        }
    }
    // Batches when the server offers them: known from an earlier context
    // (kept in IndexedDB), else asked now, if there is anything to send.
    let endpoint = match endpoint {
        Some(known) => known,
        None if !entries.is_empty() => transport::ask_endpoint().await,
        None => None,
    };
    clock.lap("endpoint");
    // Within the server's limits and ours.
    let batch = endpoint.as_ref().map(|e| {
        let ours = config.batch.clone().unwrap_or(BatchLimits::new(usize::MAX, usize::MAX));
        BatchLimits {
            max_entries: e.max_entries.min(ours.max_entries),
            // Room for the JSON around each entry.
            max_bytes: (e.max_bytes / 2).min(ours.max_bytes),
            prefix: e.prefix.clone(),
        }
    });
    let config = QueueConfig { batch, ..config.clone() };
    let ordered = config.ordered;
    let seed = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    let mut engine = Engine::new(config, seed, entries);
    if expedite {
        engine.expedite();
    }
    clock.lap("engine");
    let mut delivered = 0;
    // Requests on their way, each with the transmit it carries: one at a
    // time for an ordered queue, up to the queue's `maxInFlight` for an
    // unordered one (the engine decides).
    let (endpoint, credentials, deadline_ms) = (&endpoint, &credentials, queue.timeout_ms());
    let send = |transmit: Transmit| -> js::Boxed<'_, (Transmit, TransmitResult)> {
        js::boxed(async move {
            let result = match (endpoint, transmit.batch) {
                (Some(endpoint), true) => {
                    transport::send_batch(endpoint, &transmit, ordered, credentials, deadline_ms).await
                }
                _ => TransmitResult::Single(transport::send(&transmit.entries[0], credentials, deadline_ms).await),
            };
            // A batch that failed on the network while the server answers
            // something small: the batch itself breaks the request, and the
            // engine splits it rather than wait.
            let result = match result {
                TransmitResult::BatchFailed(AttemptResult::NetworkError(error))
                    if transmit.entries.len() > 1 && transport::reachable(deadline_ms).await =>
                {
                    TransmitResult::BatchBroke(AttemptResult::NetworkError(error))
                }
                other => other,
            };
            (transmit, result)
        })
    };
    let mut flying = Vec::new();
    // The answers of the last request, not stored yet: they are stored
    // while the next requests are on their way (the engine is done with
    // those entries, and the requests carry others), so a drain of many
    // batches pays the IndexedDB writes of all but the last one in the
    // shadow of the network. Nothing is deleted before its answer came.
    let mut answered: Option<Decisions> = None;
    // The next page is read when what the engine holds beside the requests
    // on their way is less than a page: while a request travels if one
    // does, so the next batch is in hand when its answer comes. (An
    // unordered queue also reads on when everything it holds waits out a
    // backoff: what follows may go now.) What a round holds stays under
    // two pages and the requests in flight.
    let low = |engine: &Engine| engine.unsent() < limit as usize;
    // The batch URL answered 404, 405 or 410 (the advertisement is out of
    // date, and forgotten): nothing more is sent, the answers of the
    // requests still on their way count, and the round ends for the caller
    // to run again with what the server says today.
    let mut gone = false;
    loop {
        while let Some(transmit) = if gone { None } else { engine.poll_transmit(now_ms()) } {
            flying.push(send(transmit));
        }
        // What the engine decided since the last store, after the answers
        // not stored yet: one transaction for both.
        let decided = match answered.take() {
            Some(answers) => answers.then(decisions(&mut engine)),
            None => decisions(&mut engine),
        };
        if flying.is_empty() {
            delivered += persist(queue, decided, Some(&mut clock)).await?;
            if gone {
                return Ok(Once::EndpointGone { delivered });
            }
            clock.lap("plan");
            if next_page.is_some() && (low(&engine) || !ordered) {
                let page = queue.page(next_page.as_ref(), limit).await?;
                next_page = take_page(&mut engine, page, expedite, &mut pages, &mut others);
                clock.lap("read");
                continue;
            }
            // Entries queued while this round ran: sent by this round, not
            // left to a browser event that may never come.
            if next_page.is_none() && take_new_entries(queue, &mut engine, &mut others).await? {
                continue;
            }
            break;
        }
        let read_next = !gone && next_page.is_some() && low(&engine);
        let reading = async {
            match &next_page {
                Some(cursor) if read_next => Some(queue.page(Some(cursor), limit).await),
                _ => None,
            }
        };
        // The request's phase includes those writes and that read. `join`
        // polls in order: the new requests go first (their body built and
        // the fetch begun before the `sending` events are told, which held
        // up a batch of 1,000 by 3–7 ms), then the read: IndexedDB runs it
        // before the delete, and its entries are taken in here while the
        // delete runs, rather than after it. (The delete is of entries
        // before the page, which the read does not see either way.)
        let ((transmit, result), (page, stored)) =
            join(first_done(&mut flying), join(reading, persist(queue, decided, None))).await;
        delivered += stored?;
        if let Some(page) = page {
            next_page = take_page(&mut engine, page?, expedite, &mut pages, &mut others);
        }
        clock.lap("request");
        let result = if stop_if_endpoint_gone && transport::endpoint_gone(&result) {
            if !gone {
                transport::forget_advertisement().await;
                gone = true;
            }
            // Not an attempt: the entries stay as they were.
            TransmitResult::Batch(Vec::new())
        } else {
            result
        };
        engine.handle(transmit.id, result, now_ms());
        clock.lap("handle");
        answered = Some(decisions(&mut engine));
    }
    clock.keep_if_sent(queue, delivered, pages);
    // Pages not read (the queue's head waits out a backoff) are still owed;
    // entries another user queued are not, until they sign in again.
    let remaining = if next_page.is_some() { queue.count().await?.saturating_sub(others.held) } else { engine.len() };
    Ok(Once::Ended(Round { delivered, remaining, next_at_ms: engine.poll_timeout(), paused: engine.is_paused() }))
}

/// Hands the engine a page the round read (expedited if the round is:
/// `Engine::expedite` covered only what the engine held then), but for
/// `others`' entries, counts it, and returns where the next page starts.
fn take_page(
    engine: &mut Engine,
    (mut entries, next): (Vec<bgsync_core::Entry>, Option<PageCursor>),
    expedite: bool,
    pages: &mut usize,
    others: &mut Others<'_>,
) -> Option<PageCursor> {
    others.leave_out(&mut entries);
    if expedite {
        entries.iter_mut().for_each(|e| e.not_before_ms = 0);
    }
    engine.extend(entries);
    *pages += 1;
    next
}

/// The entries a round reads and leaves alone: those another user than
/// `user` (the one signed in) queued, by their `owner`, marked when
/// someone else signed in. They wait until their owner is signed in
/// again, and never go with another's credentials.
struct Others<'a> {
    user: Option<&'a str>,
    /// How many the round has read (they are in the store, not the engine).
    held: usize,
}

impl Others<'_> {
    /// Takes them out of `entries`, counting them.
    fn leave_out(&mut self, entries: &mut Vec<bgsync_core::Entry>) {
        let before = entries.len();
        entries.retain(|entry| entry.owner.is_none() || entry.owner.as_deref() == self.user);
        self.held += before - entries.len();
    }
}

/// Adds to the engine the entries queued since it read the store (but for
/// `others`'); returns whether there were any. (A page writes to the store,
/// not to this context's engine.)
async fn take_new_entries(queue: &Queue, engine: &mut Engine, others: &mut Others<'_>) -> JsResult<bool> {
    // Counting is cheap; reading only when the count says something
    // arrived (this round holds the origin lock, so only new entries, or a
    // dead letter put back, change it): first what lies after what the
    // round read, and the whole queue only when that was not all.
    if engine.is_paused() {
        return Ok(false);
    }
    let stored = queue.count().await?;
    if stored == engine.len() + others.held {
        if stored == 0 {
            queue.found_empty();
        }
        return Ok(false);
    }
    // Those the engine holds already are skipped; no "queued" events (whoever
    // wrote the new ones told the pages).
    let known = engine.len();
    // Most likely queued while this round ran: after what it read. (The
    // next check counts again.)
    let mut new = queue.after_read().await?;
    others.leave_out(&mut new);
    engine.extend(new);
    if engine.len() > known || stored == engine.len() + others.held {
        return Ok(engine.len() > known);
    }
    // Some lie below where this round's reads started (a clock set back):
    // the next rounds read from the start.
    queue.forget_empty();
    // (All of them again: counted anew.)
    let mut all = queue.all().await?;
    others.held = 0;
    others.leave_out(&mut all);
    engine.extend(all);
    Ok(engine.len() > known)
}

/// What the engine decided since it was last asked: store operations,
/// and the events to tell once they are stored.
struct Decisions {
    ops: Vec<StoreOp>,
    events: Vec<Event>,
}

impl Decisions {
    /// These, then `later`.
    fn then(mut self, later: Decisions) -> Decisions {
        self.ops.extend(later.ops);
        self.events.extend(later.events);
        self
    }
}

fn decisions(engine: &mut Engine) -> Decisions {
    Decisions {
        ops: std::iter::from_fn(|| engine.poll_store()).collect(),
        events: std::iter::from_fn(|| engine.poll_event()).collect(),
    }
}

/// Stores `decided` (and a pause), then tells the pages. Returns how many
/// entries were delivered.
async fn persist(queue: &Queue, decided: Decisions, mut clock: Option<&mut Clock>) -> JsResult<usize> {
    queue.apply_all(&decided.ops).await?;
    if let Some(clock) = clock.as_deref_mut() {
        clock.lap("store");
    }
    let mut delivered = 0;
    for event in &decided.events {
        match event {
            Event::Sent { .. } => delivered += 1,
            Event::Paused { status } => state::pause(queue.name(), *status).await?,
            _ => {}
        }
    }
    events::broadcast(queue.name(), &decided.events);
    // A round's news goes out at once (a worker may be stopped soon after).
    events::flush();
    if let Some(clock) = clock {
        clock.lap("events");
    }
    Ok(delivered)
}

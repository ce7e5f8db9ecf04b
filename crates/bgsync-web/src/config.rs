//! What an app declares: its queues (name, delivery policy, sync tag, which
//! requests the worker captures into it) and its pull feeds (URL, where the
//! items are, their key, page size, schedule, store).
//!
//! Pages and the worker make the same declaration when they start (from
//! one object, such as a `bgsync-config.js` both load), so the worker knows
//! every queue and feed after a restart with no page open. From
//! JavaScript, [`from_js`] reads the object; every mistake is refused with
//! a sentence naming the field.

use crate::js::{self, JsResult};
use bgsync_core::{BatchLimits, QueueConfig, RetryPolicy};
use js_sys::Array;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsValue;

/// Everything an app declares.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub queues: Vec<QueueDecl>,
    pub feeds: Vec<FeedDecl>,
    /// Where a page finds bgsync's fallback module, which replays where no
    /// worker does (see [`crate::fallback`]): its URL without `.js` or
    /// `.wasm`, as `bgsync_build::FALLBACK` names it
    /// (`"/__BGSYNC_FALLBACK__"` in a static file).
    pub fallback: Option<String>,
    /// The declaration as [`from_js`] read it, for the fallback module.
    pub declaration: JsValue,
}

/// A queue: its name and how its entries are delivered.
#[derive(Clone, Debug)]
pub struct QueueDecl {
    /// The app's name for it, 1 to 100 printable characters.
    pub name: String,
    /// Ordering, retry policy, which statuses pause or retry, batch limits.
    pub policy: QueueConfig,
    /// Whether entries may travel in batches when the server offers a
    /// batch endpoint.
    pub batching: bool,
    /// The one-shot sync tag registered after an entry is queued.
    pub tag: String,
    /// Which requests the worker sends itself and queues here when the
    /// network fails or the server has not begun to answer within
    /// `timeout_ms`.
    pub capture: Option<Capture>,
    /// How long one of its requests (an entry, or a batch of them) may
    /// take, its answer read, before it counts as failed on the network
    /// and is retried like one: a server or proxy that never answers holds
    /// nothing up for longer ([`DEFAULT_TIMEOUT_MS`]).
    pub timeout_ms: u32,
    /// Names this queue had in earlier versions of the app: what is stored
    /// under them (entries queued by users of the old version, and dead
    /// letters) joins this queue before each replay of a context that
    /// replays, the worker or a page without one
    /// ([`crate::queue::Queue::adopt`]), rather than wait for ever under a
    /// name nothing sends.
    pub formerly: Vec<String>,
}

/// A queue's request deadline unless it declares `timeoutMs`: a full batch
/// (1 MiB) goes up a slow mobile link (256 kbit/s) in about 33 s.
pub const DEFAULT_TIMEOUT_MS: u32 = 60_000;
/// The longest `timeoutMs`: five minutes (a browser ends a sync event that
/// runs for minutes anyway; a request that takes longer is better split).
pub const MAX_TIMEOUT_MS: u32 = 300_000;

impl QueueDecl {
    /// A queue with the default policy: ordered, batched, retried with
    /// backoff, paused on 401/403; tag `bgsync:<name>`; no capture.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            policy: QueueConfig::default(),
            batching: true,
            tag: format!("bgsync:{name}"),
            capture: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            formerly: Vec::new(),
        }
    }
}

/// Which requests a queue captures: same-origin requests whose path starts
/// with `prefix` (and with none of `exclude`), with one of `methods`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    pub prefix: String,
    pub methods: Vec<String>,
    pub exclude: Vec<String>,
}

/// A delta feed to pull into a store of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedDecl {
    pub name: String,
    /// Answers `?limit=<n>` (the newest items and a cursor) and
    /// `?since=<cursor>&limit=<n>` (what changed after it) with
    /// `{<items>: [...], cursor, more}`. The cursor is opaque.
    pub url: String,
    /// The field of the answer that holds the items.
    pub items: String,
    /// The field of an item that identifies it (its key in the store).
    pub key_path: String,
    /// Items asked for per request.
    pub page_size: u32,
    /// The Periodic Background Sync tag.
    pub tag: String,
    /// The least time between two periodic (background) pulls.
    pub min_interval_ms: u64,
    /// When the app opens or comes online, a pull older than this is
    /// refreshed.
    pub fresh_for_ms: u64,
    /// The IndexedDB store of its items (`feed:<name>` unless given); two
    /// feeds never share one.
    pub store: String,
}

impl FeedDecl {
    pub fn new(name: &str, url: &str, items: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            items: items.to_owned(),
            key_path: "id".into(),
            page_size: 100,
            tag: format!("bgsync-pull:{name}"),
            min_interval_ms: 12 * 60 * 60 * 1000,
            fresh_for_ms: 30 * 1000,
            store: format!("feed:{name}"),
        }
    }
}

thread_local! {
    static CONFIG: RefCell<Rc<Config>> = RefCell::new(Rc::default());
}

/// Declares the app's queues and feeds for this context (page or worker),
/// replacing an earlier declaration. Refuses, saying which, an empty or
/// repeated name, and two feeds on one store.
pub fn configure(config: Config) -> JsResult<()> {
    // Repeats are looked for by comparing each with those before it: an
    // app declares a handful, and a hash set would put hashbrown (some
    // kilobytes) into every page module.
    for (i, queue) in config.queues.iter().enumerate() {
        check_name("queue", &queue.name)?;
        if config.queues[..i].iter().any(|q| q.name == queue.name) {
            return Err(error(format!("the queue \"{}\" is declared twice", queue.name)));
        }
        // (A former name two queues list joins the first of them.)
        if let Some(former) = queue.formerly.iter().find(|f| config.queues.iter().any(|q| q.name == **f)) {
            return Err(error(format!(
                "the queue \"{}\" names \"{former}\" in formerly, but a queue of that name is declared",
                queue.name
            )));
        }
    }
    for (i, feed) in config.feeds.iter().enumerate() {
        check_name("feed", &feed.name)?;
        let before = &config.feeds[..i];
        if before.iter().any(|f| f.name == feed.name) {
            return Err(error(format!("the feed \"{}\" is declared twice", feed.name)));
        }
        // (A feed's cursor and ETag are kept by its URL: two feeds on one
        // URL would each take the other's, and miss what it pulled.)
        if crate::db::RESERVED_STORES.contains(&feed.store.as_str())
            || before.iter().any(|f| f.store == feed.store || f.url == feed.url)
        {
            return Err(error(format!(
                "the feed \"{}\" needs a store and a URL of its own, not \"{}\" and \"{}\"",
                feed.name, feed.store, feed.url
            )));
        }
    }
    CONFIG.with(|c| *c.borrow_mut() = Rc::new(config));
    Ok(())
}

/// What this context declared.
pub fn current() -> Rc<Config> {
    CONFIG.with(|c| c.borrow().clone())
}

/// The declared feed called `name`, or an error naming the declared ones.
pub fn feed(name: &str) -> JsResult<Declared> {
    let config = current();
    match config.feeds.iter().position(|f| f.name == name) {
        Some(index) => Ok(Declared { config, index }),
        None => {
            let known: Vec<String> = config.feeds.iter().map(|f| format!("\"{}\"", f.name)).collect();
            Err(error(format!("there is no feed \"{name}\"; the feeds are {}", or_none(&known))))
        }
    }
}

/// A declared feed, as [`feed`] finds it: its place in the declaration
/// (shared, not copied; it reads as the [`FeedDecl`]).
#[derive(Clone, Debug)]
pub struct Declared {
    config: Rc<Config>,
    index: usize,
}

impl std::ops::Deref for Declared {
    type Target = FeedDecl;

    fn deref(&self) -> &FeedDecl {
        &self.config.feeds[self.index]
    }
}

pub(crate) fn or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none yet (declare them with configure when the page and the worker start)".into()
    } else {
        names.join(", ")
    }
}

fn check_name(what: &str, name: &str) -> JsResult<()> {
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(error(format!("\"{name}\" is not a {what} name: use 1 to 100 printable characters")));
    }
    Ok(())
}

/// The most requests a queue may have on the wire at once: more would
/// only wait in the browser's own connection queue (6 per origin over
/// HTTP/1.1).
pub const MAX_IN_FLIGHT: usize = 32;

fn error(message: String) -> JsValue {
    JsValue::from_str(&format!("configure: {message}"))
}

/// Reads a declaration from JavaScript:
///
/// ```js
/// {
///   queues: [{ name: "edits", ordered: true, tag: "edits", batch: true,
///              retry: { baseMs, factor, capMs, retryAfterCapMs, maxAttempts, maxAgeMs },
///              pauseOn: [401, 403], retryOn: [300, 301, 302, 303, 307, 308, 408, 409, 425, 429, 500, 502, 503, 504],
///              maxInFlight: 4, timeoutMs: 60000, capture: { prefix: "/api/", methods: ["POST"], exclude: [] },
///              formerly: ["edits-v1"] }],
///   feeds: [{ name: "tasks", url: "/api/tasks", items: "tasks", keyPath: "id", pageSize: 100,
///             tag: "pull-tasks", minIntervalMs, freshForMs, store: "feed:tasks" }],
///   fallback: "/__BGSYNC_FALLBACK__",
/// }
/// ```
/// Only `name` (and a feed's `url` and `items`) are required; `fallback`
/// where a page may have no worker to replay for it (see
/// [`crate::fallback`]).
pub fn from_js(value: &JsValue) -> JsResult<Config> {
    if !value.is_object() {
        return Err(error("the declaration must be an object like { queues: [...], feeds: [...] }".into()));
    }
    let mut config = Config::default();
    for (i, q) in list(value, "queues")?.iter().enumerate() {
        let at = format!("queues[{i}]");
        let name = text(q, "name", &at)?.ok_or_else(|| error(format!("{at} has no name")))?;
        let mut decl = QueueDecl::new(&name);
        let at = format!("queue \"{name}\"");
        if let Some(ordered) = flag(q, "ordered", &at)? {
            decl.policy.ordered = ordered;
        }
        if let Some(tag) = text(q, "tag", &at)? {
            decl.tag = tag;
        }
        if let Some(n) = number(q, "maxInFlight", &at)? {
            if !(1.0..=MAX_IN_FLIGHT as f64).contains(&n) || n.fract() != 0.0 {
                return Err(error(format!("{at}: maxInFlight must be a whole number from 1 to {MAX_IN_FLIGHT}")));
            }
            decl.policy.max_in_flight = n as usize;
        }
        if let Some(ms) = number(q, "timeoutMs", &at)? {
            if !(100.0..=f64::from(MAX_TIMEOUT_MS)).contains(&ms) || ms.fract() != 0.0 {
                return Err(error(format!(
                    "{at}: timeoutMs (how long one request may take) must be a whole number of milliseconds from 100 to \
                     {MAX_TIMEOUT_MS}"
                )));
            }
            decl.timeout_ms = ms as u32;
        }
        let batch = js::get(q, "batch")?;
        if batch.as_bool() == Some(false) {
            decl.batching = false;
        } else if batch.is_object() {
            let limits = BatchLimits::new(
                number(&batch, "maxEntries", &at)?.map_or(usize::MAX, |n| n.max(1.0) as usize),
                number(&batch, "maxBytes", &at)?.map_or(usize::MAX, |n| n.max(1.0) as usize),
            );
            decl.policy.batch = Some(limits);
        }
        let retry = js::get(q, "retry")?;
        if retry.is_object() {
            decl.policy.retry = retry_policy(&retry, &at)?;
        }
        if let Some(pause) = statuses(q, "pauseOn", &at)? {
            decl.policy.outcomes.pause = pause;
        }
        if let Some(retry) = statuses(q, "retryOn", &at)? {
            decl.policy.outcomes.retry = retry;
        }
        decl.formerly = strings(q, "formerly", &at)?.unwrap_or_default();
        let capture = js::get(q, "capture")?;
        if capture.is_object() {
            let methods = strings(&capture, "methods", &at)?
                .unwrap_or_else(|| ["POST", "PUT", "PATCH", "DELETE"].map(String::from).to_vec());
            decl.capture = Some(Capture {
                prefix: text(&capture, "prefix", &at)?.unwrap_or_else(|| "/".into()),
                methods: methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                exclude: strings(&capture, "exclude", &at)?.unwrap_or_default(),
            });
        }
        config.queues.push(decl);
    }
    for (i, f) in list(value, "feeds")?.iter().enumerate() {
        let at = format!("feeds[{i}]");
        let name = text(f, "name", &at)?.ok_or_else(|| error(format!("{at} has no name")))?;
        let at = format!("feed \"{name}\"");
        let url = text(f, "url", &at)?.ok_or_else(|| error(format!("{at} has no url")))?;
        let items = text(f, "items", &at)?
            .ok_or_else(|| error(format!("{at} does not say which field holds its items (items)")))?;
        let mut decl = FeedDecl::new(&name, &url, &items);
        if let Some(key_path) = text(f, "keyPath", &at)? {
            if !is_key_path(&key_path) {
                return Err(error(format!(
                    "{at}: keyPath \"{key_path}\" is not a key path: name the field that identifies an item, such as \
                     \"id\", or \"meta.id\" for one inside another"
                )));
            }
            decl.key_path = key_path;
        }
        if let Some(n) = number(f, "pageSize", &at)? {
            decl.page_size = n.clamp(1.0, 10_000.0) as u32;
        }
        if let Some(tag) = text(f, "tag", &at)? {
            decl.tag = tag;
        }
        if let Some(n) = number(f, "minIntervalMs", &at)? {
            decl.min_interval_ms = n as u64;
        }
        if let Some(n) = number(f, "freshForMs", &at)? {
            decl.fresh_for_ms = n as u64;
        }
        if let Some(store) = text(f, "store", &at)? {
            decl.store = store;
        }
        config.feeds.push(decl);
    }
    config.fallback = text(value, "fallback", "the declaration")?;
    config.declaration = value.clone();
    Ok(config)
}

/// Whether `path` can be an IndexedDB key path that names a field:
/// identifiers joined by dots. A character outside ASCII is left to the
/// browser to judge (which ones an identifier may hold is in Unicode's
/// tables, kilobytes in every module); a store the browser refuses to make
/// costs only its feed, whose pulls say so (`crate::db`).
fn is_key_path(path: &str) -> bool {
    path.split('.').all(|name| {
        let identifier = |c: char, first: bool| {
            !c.is_ascii()
                || c == '_'
                || c == '$'
                || if first { c.is_ascii_alphabetic() } else { c.is_ascii_alphanumeric() }
        };
        let mut chars = name.chars();
        chars.next().is_some_and(|c| identifier(c, true)) && chars.all(|c| identifier(c, false))
    })
}

fn retry_policy(value: &JsValue, at: &str) -> JsResult<RetryPolicy> {
    let mut policy = RetryPolicy::default();
    let fields: [(&str, &mut u64); 4] = [
        ("baseMs", &mut policy.base_ms),
        ("capMs", &mut policy.cap_ms),
        ("retryAfterCapMs", &mut policy.retry_after_cap_ms),
        ("maxAgeMs", &mut policy.max_age_ms),
    ];
    for (name, slot) in fields {
        if let Some(n) = number(value, name, at)? {
            *slot = n as u64;
        }
    }
    if let Some(n) = number(value, "factor", at)? {
        policy.factor = n.max(1.0) as u32;
    }
    if let Some(n) = number(value, "maxAttempts", at)? {
        policy.max_attempts = n.max(1.0) as u32;
    }
    Ok(policy)
}

fn list(value: &JsValue, field: &str) -> JsResult<Vec<JsValue>> {
    let v = js::get(value, field)?;
    if v.is_undefined() || v.is_null() {
        return Ok(Vec::new());
    }
    if !Array::is_array(&v) {
        return Err(error(format!("{field} must be an array")));
    }
    Ok(Array::from(&v).iter().collect())
}

fn text(value: &JsValue, field: &str, at: &str) -> JsResult<Option<String>> {
    let v = js::get(value, field)?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string().map(Some).ok_or_else(|| error(format!("{at}: {field} must be a string")))
}

fn number(value: &JsValue, field: &str, at: &str) -> JsResult<Option<f64>> {
    let v = js::get(value, field)?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
        _ => Err(error(format!("{at}: {field} must be a number of 0 or more"))),
    }
}

fn flag(value: &JsValue, field: &str, at: &str) -> JsResult<Option<bool>> {
    let v = js::get(value, field)?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_bool().map(Some).ok_or_else(|| error(format!("{at}: {field} must be true or false")))
}

fn strings(value: &JsValue, field: &str, at: &str) -> JsResult<Option<Vec<String>>> {
    let v = js::get(value, field)?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    if !Array::is_array(&v) {
        return Err(error(format!("{at}: {field} must be an array of strings")));
    }
    Array::from(&v)
        .iter()
        .map(|s| s.as_string().ok_or_else(|| error(format!("{at}: {field} must be an array of strings"))))
        .collect::<JsResult<Vec<_>>>()
        .map(Some)
}

fn statuses(value: &JsValue, field: &str, at: &str) -> JsResult<Option<Vec<u16>>> {
    let v = js::get(value, field)?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    let bad = || error(format!("{at}: {field} must be an array of HTTP statuses such as [401, 403]"));
    if !Array::is_array(&v) {
        return Err(bad());
    }
    Array::from(&v)
        .iter()
        .map(|s| s.as_f64().filter(|n| (100.0..600.0).contains(n)).map(|n| n as u16).ok_or_else(bad))
        .collect::<JsResult<Vec<_>>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::is_key_path;

    #[test]
    fn a_key_path_is_identifiers_joined_by_dots() {
        for good in ["id", "meta.id", "_key", "$ref", "a1.b_2.$c", "título", "ключ"] {
            assert!(is_key_path(good), "{good:?}");
        }
        for bad in ["", "post id", "1st", "a..b", ".id", "id.", "a-b", "items[0]", "a.1"] {
            assert!(!is_key_path(bad), "{bad:?}");
        }
    }
}

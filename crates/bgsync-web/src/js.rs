//! Small bridges from JavaScript's callback and promise APIs to Rust.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbRequest, IdbTransaction};

pub type JsResult<T> = Result<T, JsValue>;

/// A future behind a pointer, for the code size: a future awaited in two
/// places, or handed to a generic function, is otherwise copied (inlined or
/// monomorphised) into each, and in wasm every byte is downloaded.
pub(crate) type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;

pub(crate) fn boxed<'a, T>(work: impl std::future::Future<Output = T> + 'a) -> Boxed<'a, T> {
    Box::pin(work)
}

/// Runs `work` as a JavaScript promise: what an exported `async fn` does,
/// with one copy of `future_to_promise` for all of them (its body is
/// otherwise generated anew, with the whole future inlined, for each
/// export).
///
/// A rejection is an `Error` (see [`error`]), so a caller's `catch (e)`
/// finds the sentence in `e.message`, as with any JavaScript API.
pub fn promise<T: Resolved>(work: impl std::future::Future<Output = JsResult<T>> + 'static) -> Promise {
    wasm_bindgen_futures::future_to_promise(boxed(async move { work.await.map(Resolved::into_js).map_err(error) }))
}

/// What bgsync's API rejects or throws with: a text (bgsync's own
/// sentences, which Rust code passes around as `JsValue` strings) becomes
/// an `Error` with that message; an exception the browser raised (a
/// `TypeError` from `fetch`, a `DOMException` from IndexedDB) stays as it
/// is, its name telling what happened.
pub fn error(value: JsValue) -> JsValue {
    match value.as_string() {
        Some(text) => js_sys::Error::new(&text).into(),
        None => value,
    }
}

/// What a [`promise`] can resolve with.
pub trait Resolved {
    fn into_js(self) -> JsValue;
}

impl Resolved for () {
    fn into_js(self) -> JsValue {
        JsValue::UNDEFINED
    }
}

impl Resolved for JsValue {
    fn into_js(self) -> JsValue {
        self
    }
}

impl Resolved for bool {
    fn into_js(self) -> JsValue {
        self.into()
    }
}

impl Resolved for u32 {
    fn into_js(self) -> JsValue {
        self.into()
    }
}

impl Resolved for web_sys::Response {
    fn into_js(self) -> JsValue {
        self.into()
    }
}

#[wasm_bindgen]
extern "C" {
    // `fetch` exists on both `Window` and `WorkerGlobalScope`; binding the
    // global function serves both without asking which one we are in.
    #[wasm_bindgen(js_name = fetch)]
    pub(crate) fn global_fetch(input: &web_sys::Request) -> Promise;
}

/// How long bgsync's own requests that no queue declares a deadline for
/// (the server's advertisement, a feed's pull) may take, their answer
/// read, before they count as failed on the network.
pub(crate) const DEADLINE_MS: u32 = 60_000;

/// How far a [`fetch`]'s deadline reaches.
#[derive(Clone, Copy)]
pub(crate) enum Until {
    /// The answer read to its end: bgsync's own requests, whose answer it
    /// reads.
    Read,
    /// The answer's headers: a page's request the worker sends on its
    /// behalf ([`crate::worker::capture`]), whose body streams to the page
    /// with no deadline.
    Answered,
}

/// `fetch(url, init)`, given up on (rejected with a `TimeoutError`) when it
/// has not got `until` within `deadline_ms`: a server or proxy that accepts
/// a request and never answers must not hold a round, and the replaying
/// lock with it, or a page, for as long as the context lives. (An
/// `AbortController` and a timer rather than `AbortSignal.timeout`, which
/// cannot be called off once the answer has come.)
pub(crate) async fn fetch(
    url: &str,
    init: &web_sys::RequestInit,
    deadline_ms: u32,
    until: Until,
) -> JsResult<web_sys::Response> {
    let global = js_sys::global();
    let timer = (|| -> JsResult<(Function, JsValue)> {
        let controller = js_sys::Reflect::construct(
            &get(&global, "AbortController")?.dyn_into::<Function>()?,
            &js_sys::Array::new(),
        )?;
        let reason = js_sys::Reflect::construct(
            &get(&global, "DOMException")?.dyn_into::<Function>()?,
            &js_sys::Array::of2(&"the server did not answer in time".into(), &"TimeoutError".into()),
        )?;
        let abort = get(&controller, "abort")?.dyn_into::<Function>()?.bind1(&controller, &reason);
        set(init, "signal", get(&controller, "signal")?);
        let set_timeout: Function = get(&global, "setTimeout")?.dyn_into()?;
        let clear_timeout: Function = get(&global, "clearTimeout")?.dyn_into()?;
        Ok((clear_timeout, set_timeout.call2(&JsValue::NULL, &abort, &deadline_ms.into())?))
    })();
    let request = web_sys::Request::new_with_str_and_init(url, init)?;
    let answer = await_promise(global_fetch(&request)).await;
    // (With `Until::Read` the timer runs on: aborting an answer read to its
    // end does nothing.)
    if let (Until::Answered, Ok((clear_timeout, id))) = (until, timer) {
        let _ = clear_timeout.call1(&JsValue::NULL, &id);
    }
    answer?.dyn_into()
}

/// A failed [`fetch`] described for people: the end of its deadline says
/// how long it waited.
pub(crate) fn fetch_failure(error: &JsValue, deadline_ms: u32) -> String {
    if get(error, "name").ok().and_then(|n| n.as_string()).as_deref() == Some("TimeoutError") {
        // (Whole numbers: formatting a float would bring its code into the module.)
        if deadline_ms.is_multiple_of(1000) {
            format!("no answer within {} s", deadline_ms / 1000)
        } else {
            format!("no answer within {deadline_ms} ms")
        }
    } else {
        describe(error)
    }
}

/// `value` as an array, if it is one. (Not `Array::from`: on `null` or
/// `undefined`, which stored records, messages and a server's answers can
/// hold, it throws, and an exception thrown through the module's code
/// leaves it broken: every promise of the context hangs after it.)
/// A promise that resolves (with `undefined`) after `ms`.
pub(crate) fn after(ms: i32) -> Promise {
    Promise::new(&mut |resolve, _| {
        if let Ok(set_timeout) = get(&js_sys::global(), "setTimeout").and_then(|f| f.dyn_into::<Function>()) {
            let _ = set_timeout.call2(&JsValue::NULL, &resolve, &ms.into());
        }
    })
}

pub(crate) fn array(value: &JsValue) -> Option<js_sys::Array> {
    js_sys::Array::is_array(value).then(|| value.clone().unchecked_into())
}

/// A property of the global object (`self` in a worker, `window` in a page).
pub(crate) fn global<T: JsCast>(name: &str) -> JsResult<T> {
    let value = Reflect::get(&js_sys::global(), &JsValue::from_str(name))?;
    value.dyn_into::<T>().map_err(|_| JsValue::from_str(&format!("`{name}` is not available in this browser context")))
}

pub(crate) fn get(target: &JsValue, name: &str) -> JsResult<JsValue> {
    with_name(name, |name| Reflect::get(target, name))
}

pub(crate) fn set(target: &JsValue, name: &str, value: impl Into<JsValue>) {
    set_value(target, name, value.into());
}

// Not generic: the name cache's code once, not once for each type `set`
// is called with.
fn set_value(target: &JsValue, name: &str, value: JsValue) {
    // Setting a property on a plain object we made cannot fail.
    let _ = with_name(name, |name| Reflect::set(target, name, &value));
}

/// Slots of the property-name cache (a power of two).
const NAME_SLOTS: usize = 256;

/// A cached property name: the Rust text and the JavaScript string.
type CachedName = Option<(Box<str>, JsValue)>;

thread_local! {
    // Property names as JavaScript strings, made once: a name made anew
    // costs two more crossings of the wasm boundary (the string in, the
    // reference dropped) than the property access itself, and a round
    // reads and writes ten properties per entry. A slot holds the last
    // name that hashed to it.
    static NAMES: std::cell::RefCell<Vec<CachedName>> =
        std::cell::RefCell::new((0..NAME_SLOTS).map(|_| None).collect());
}

/// Runs `f` with `name` as a JavaScript string, from the cache. The name
/// is taken out of its slot while `f` runs (a getter may call back into
/// Rust), then put back.
fn with_name<T>(name: &str, f: impl FnOnce(&JsValue) -> T) -> T {
    // FNV-1a, enough to spread a few dozen names.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    let slot = hash as usize & (NAME_SLOTS - 1);
    let cached = NAMES.with(|names| {
        let mut names = names.borrow_mut();
        match &names[slot] {
            Some((cached, _)) if &**cached == name => names[slot].take(),
            _ => None,
        }
    });
    let (text, value) = cached.unwrap_or_else(|| (name.into(), JsValue::from_str(name)));
    let result = f(&value);
    NAMES.with(|names| names.borrow_mut()[slot] = Some((text, value)));
    result
}

/// The text of a JavaScript string, copied into Rust by the browser's own
/// UTF-8 encoder (`TextEncoder`; a lone surrogate becomes U+FFFD, as with
/// wasm-bindgen's conversion). For long texts: wasm-bindgen's conversion
/// first walks the string a character at a time in JavaScript, which for a
/// round's 1,000 records (about 300 KB) took 6–17 ms in a worker that had
/// just started, a third of the round's reading.
#[cfg_attr(not(feature = "replay-here"), allow(dead_code))]
pub(crate) fn long_text(value: &JsValue) -> Option<String> {
    if !value.is_string() {
        return None;
    }
    let encoded = ENCODER.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            let make: Function = global("TextEncoder").ok()?;
            let encoder = Reflect::construct(&make, &js_sys::Array::new()).ok()?;
            let encode = get(&encoder, "encode").ok()?.dyn_into::<Function>().ok()?;
            *slot = Some((encoder, encode));
        }
        let (encoder, encode) = slot.as_ref()?;
        encode.call1(encoder, value).ok()
    });
    match encoded {
        Some(bytes) => Some(utf8(js_sys::Uint8Array::new(&bytes).to_vec())),
        None => value.as_string(),
    }
}

thread_local! {
    static ENCODER: std::cell::RefCell<Option<(JsValue, Function)>> = const { std::cell::RefCell::new(None) };
}

/// `bytes` as text, invalid UTF-8 replaced.
pub(crate) fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A response's body as text, read as bytes (one copy into Rust, none
/// through a JavaScript string).
pub(crate) async fn response_text(response: &web_sys::Response) -> JsResult<String> {
    let buffer = await_promise(response.array_buffer()?).await?;
    Ok(utf8(js_sys::Uint8Array::new(&buffer).to_vec()))
}

pub(crate) async fn await_promise(promise: Promise) -> JsResult<JsValue> {
    JsFuture::from(promise).await
}

/// Waits until `target` fires its event `ok` (true) or `failed` (false).
/// The promise's own `resolve` and `reject` are the handlers: no Rust
/// closure is made, so none is left to free whichever event fires, or
/// when the wait is given up (a handler then settles a promise nobody
/// awaits).
async fn settled(target: &JsValue, [ok, failed]: [&str; 2]) -> bool {
    let promise = Promise::new(&mut |resolve: Function, reject: Function| {
        set(target, ok, resolve);
        set(target, failed, reject);
    });
    await_promise(promise).await.is_ok()
}

/// Resolves with the request's result on `success`, rejects on `error`.
pub(crate) async fn request(req: &IdbRequest) -> JsResult<JsValue> {
    if settled(req, ["onsuccess", "onerror"]).await {
        req.result()
    } else {
        Err(req.error().ok().flatten().map(JsValue::from).unwrap_or(JsValue::NULL))
    }
}

/// The values a cursor request (`openCursor`) walks over, at most
/// `limit` of them, in its direction. Each step is taken in the microtask
/// that follows the cursor's success event, while its transaction is
/// still active.
pub(crate) async fn cursor_values(req: &IdbRequest, limit: u32) -> JsResult<js_sys::Array> {
    let values = js_sys::Array::new();
    while values.length() < limit {
        let cursor = request(req).await?;
        if cursor.is_null() {
            break;
        }
        let cursor: web_sys::IdbCursorWithValue = cursor.unchecked_into();
        values.push(&cursor.value()?);
        if values.length() < limit {
            cursor.continue_()?;
        }
    }
    Ok(values)
}

/// Whether `error` is the browser's refusal of a write for the site's
/// storage quota.
pub(crate) fn is_quota_error(error: &JsValue) -> bool {
    get(error, "name").ok().and_then(|n| n.as_string()).as_deref() == Some("QuotaExceededError")
}

/// Asks the browser to commit `tx` as soon as the requests already made
/// are done (`IDBTransaction.commit()`), rather than once their success
/// events have run and the script has made no more: the commit then starts
/// in the browser's IndexedDB process without a hop back to this context
/// first (an enqueue's put: 1.06 → 0.90 ms, session 38). Only for a
/// transaction whose requests are all made: a handler of one of them can
/// make no more. A browser without `commit` (Firefox before 74, Safari
/// before 15) commits as it always did.
pub(crate) fn commit_now(tx: &IdbTransaction) {
    // web-sys marks it deprecated; it is IndexedDB 3.0's, in every engine
    // of today.
    #[allow(deprecated)]
    let _ = tx.commit();
}

/// [`commit_now`], then [`committed`]: for a transaction whose requests
/// are all made. The commit is asked for when this is called, not when
/// the future is first polled.
pub(crate) fn commit(tx: IdbTransaction) -> impl std::future::Future<Output = JsResult<()>> {
    commit_now(&tx);
    async move { committed(&tx).await }
}

/// Resolves once the transaction has committed: only then is a write
/// durable, and only then may the user be told it is saved. (An error that
/// is not handled aborts the transaction, so `abort` covers both.) A
/// refusal for the storage quota becomes a `QuotaExceededError` that says
/// what happened and what to do.
pub(crate) async fn committed(tx: &IdbTransaction) -> JsResult<()> {
    if settled(tx, ["oncomplete", "onabort"]).await {
        return Ok(());
    }
    Err(match tx.error() {
        // The browser's has no message: one that says what happened and
        // what to do, under the same name (callers may test for it).
        Some(error) if is_quota_error(&error) => web_sys::DomException::new_with_message_and_name(
            "the browser's storage for this site is full, so nothing was stored: free some space (other sites' \
             data, or this site's) and try again",
            "QuotaExceededError",
        )
        .map_or_else(|_| error.into(), JsValue::from),
        Some(error) => error.into(),
        None => "transaction aborted".into(),
    })
}

/// Header pairs as a JavaScript array of `[name, value]` arrays, the form
/// both the stored entries and the batch wire format use.
pub(crate) fn header_pairs(headers: &[(String, String)]) -> js_sys::Array {
    headers.iter().map(|(name, value)| js_sys::Array::of2(&name.into(), &value.into())).collect()
}

/// The header pairs [`header_pairs`] stored, read back from `value` as
/// someone else may have left it: nothing if it is not an array, and any
/// element that is not a pair of strings skipped.
pub(crate) fn stored_header_pairs(value: &JsValue) -> Vec<(String, String)> {
    let Some(pairs) = array(value) else { return Vec::new() };
    pairs
        .iter()
        .filter_map(|pair| {
            let pair = array(&pair)?;
            Some((pair.get(0).as_string()?, pair.get(1).as_string()?))
        })
        .collect()
}

/// `performance.now()`: milliseconds since this context started (a
/// worker's creation, a page's navigation), where there is a `performance`.
pub(crate) fn performance_now() -> Option<f64> {
    PERFORMANCE.with(|p| {
        let (performance, now, _) = p.as_ref()?;
        now.call0(performance).ok()?.as_f64()
    })
}

/// `performance.timeOrigin`: ms since the epoch when this context began.
pub(crate) fn time_origin() -> Option<f64> {
    PERFORMANCE.with(|p| p.as_ref().map(|(_, _, origin)| *origin))
}

thread_local! {
    // `performance`, its `now` and its `timeOrigin`, looked up once (the
    // queue order takes both at every enqueue).
    static PERFORMANCE: Option<(JsValue, Function, f64)> = {
        let performance = get(&js_sys::global(), "performance").ok().filter(JsValue::is_object);
        performance.and_then(|performance| {
            let now = get(&performance, "now").ok()?.dyn_into().ok()?;
            let origin = get(&performance, "timeOrigin").ok()?.as_f64()?;
            Some((performance, now, origin))
        })
    };
}

/// The `[name, value]` pairs of a `Headers` (names lower-cased, as the
/// browser keeps them).
pub(crate) fn header_list(headers: &web_sys::Headers) -> JsResult<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for pair in js_sys::try_iter(headers)?.into_iter().flatten() {
        let pair = js_sys::Array::from(&pair?);
        if let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
            pairs.push((name, value));
        }
    }
    Ok(pairs)
}

/// The first of `headers` the browser would refuse to send (checked by its
/// own `Headers`), if any.
pub(crate) fn invalid_header(headers: &[(String, String)]) -> JsResult<Option<&(String, String)>> {
    if headers.is_empty() {
        return Ok(None);
    }
    let check = web_sys::Headers::new()?;
    Ok(headers.iter().find(|(name, value)| check.append(name, value).is_err()))
}

/// This context's origin (`location.origin`).
pub(crate) fn origin() -> JsResult<String> {
    Ok(get(&get(&js_sys::global(), "location")?, "origin")?.as_string().unwrap_or_default())
}

/// Whether `url`, resolved against this context's location as `fetch` will
/// resolve it, is of this origin. Parsed, never prefix-matched: `/\x.org/`
/// and `//x.org/` are other origins.
pub(crate) fn is_same_origin(url: &str) -> bool {
    let Ok(base) = get(&get(&js_sys::global(), "location").unwrap_or_default(), "href") else { return false };
    let Some(base) = base.as_string() else { return false };
    match (web_sys::Url::new_with_base(url, &base), origin()) {
        (Ok(parsed), Ok(origin)) => parsed.origin() == origin,
        _ => false,
    }
}

/// A readable message for an error that crossed from JavaScript.
pub fn describe(error: &JsValue) -> String {
    if let Some(s) = error.as_string() {
        return s;
    }
    let message = get(error, "message").ok().and_then(|m| m.as_string());
    let name = get(error, "name").ok().and_then(|m| m.as_string());
    match (name, message) {
        (Some(n), Some(m)) if !m.is_empty() => format!("{n}: {m}"),
        (_, Some(m)) if !m.is_empty() => m,
        // (An exception without a message, as the browser's own often are.)
        (Some(n), _) => n,
        _ => String::from(js_sys::JSON::stringify(error).ok().unwrap_or_else(|| "unknown error".into())),
    }
}

/// Polls two futures together, `a` first: a round's reads of the queue
/// and of its state overlap, as do an entry's write and its sync
/// registration.
pub(crate) async fn join<A: std::future::Future, B: std::future::Future>(a: A, b: B) -> (A::Output, B::Output) {
    use std::task::Poll;
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut first, mut second) = (None, None);
    std::future::poll_fn(|cx| {
        if first.is_none() {
            if let Poll::Ready(value) = a.as_mut().poll(cx) {
                first = Some(value);
            }
        }
        if second.is_none() {
            if let Poll::Ready(value) = b.as_mut().poll(cx) {
                second = Some(value);
            }
        }
        if first.is_some() && second.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (first.expect("ready"), second.expect("ready"))
}

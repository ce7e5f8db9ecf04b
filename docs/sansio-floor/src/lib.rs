//! The floor of a sans-I/O worker's Rust: bgsync's engine for every
//! declared queue, the records read into entries and what to do next
//! written out as JSON text, through bgsync-web's own JSON reader and
//! writer, with no futures and no web-sys. A script would do the I/O
//! (IndexedDB, fetch, locks, broadcasts) and call these four functions
//! (`declare`, `take`, `poll`, `answered`).
//! What a real worker adds to it (the declaration's checks and their
//! messages, the capture, the pull, credentials and owners, the status for
//! the inspector) is not here: this is a lower bound, for a decision
//! (docs/worker-size.md, "Session 36").
#![allow(dead_code)]
// The same file bgsync-web compiles (its tests' items are `cfg(test)`).
#[path = "../../../crates/bgsync-web/src/json.rs"]
mod json;
// And the round's JSON texts as bgsync-web reads and writes them.
#[path = "../../../crates/bgsync-web/src/round_json.rs"]
mod round_json;
use bgsync_core::*;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

#[global_allocator]
static TALC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

thread_local! { static ENGINES: RefCell<Vec<(String, Engine)>> = const { RefCell::new(Vec::new()) }; }

/// A queue's declaration, `{"name", "ordered": 1 or 0, "maxInFlight",
/// "baseMs", "capMs", "maxAttempts", "retryOn": [status...], "maxEntries",
/// "maxBytes", "prefix"}` (the batch limits as the server advertised
/// them); what is left out keeps the engine's default.
fn config_of_json(text: &str) -> Option<(String, QueueConfig)> {
    let mut r = json::Reader::new(text);
    let mut name = None;
    let mut c = QueueConfig::default();
    let (mut max_entries, mut max_bytes, mut prefix) = (None, None, None);
    r.object(|r, field| {
        match field {
            "name" => name = r.maybe_string()?,
            "prefix" => prefix = r.maybe_string()?,
            "retryOn" if r.at_array()? => {
                let out = &mut c.outcomes.retry;
                out.clear();
                r.array(|r| {
                    if let Some(n) = r.maybe_number()? {
                        out.push(n as u16)
                    }
                    Some(())
                })?
            }
            _ => {
                let Some(n) = r.maybe_number()? else { return Some(()) };
                match field {
                    "ordered" => c.ordered = n != 0.0,
                    "maxInFlight" => c.max_in_flight = n as usize,
                    "baseMs" => c.retry.base_ms = n as u64,
                    "capMs" => c.retry.cap_ms = n as u64,
                    "maxAttempts" => c.retry.max_attempts = n as u32,
                    "maxEntries" => max_entries = Some(n as usize),
                    "maxBytes" => max_bytes = Some(n as usize),
                    _ => {}
                }
            }
        }
        Some(())
    })?;
    if let (Some(entries), Some(bytes)) = (max_entries, max_bytes) {
        let mut limits = BatchLimits::new(entries, bytes);
        limits.prefix = prefix.unwrap_or_default();
        c.batch = Some(limits);
    }
    Some((name?, c))
}

fn with<T>(queue: &str, f: impl FnOnce(&mut Engine) -> T) -> Option<T> {
    ENGINES.with(|e| e.borrow_mut().iter_mut().find(|(n, _)| n == queue).map(|(_, e)| f(e)))
}

/// Declares a queue (its config as JSON).
#[wasm_bindgen]
pub fn declare(config: &str, seed: f64) -> Result<(), JsValue> {
    let (name, c) = config_of_json(config).ok_or("the queue's declaration is not valid")?;
    ENGINES.with(|e| e.borrow_mut().push((name, Engine::new(c, seed as u64, Vec::new()))));
    Ok(())
}

/// Gives the engine the records read (JSON.stringify of getAll).
#[wasm_bindgen]
pub fn take(queue: &str, records: &str) -> Result<u32, JsValue> {
    let records = round_json::entries_of_json(records).ok_or("the records are not a JSON array")?;
    let bad = records.iter().filter(|r| r.is_none()).count() as u32;
    with(queue, |e| e.extend(records.into_iter().flatten())).ok_or("no such queue")?;
    Ok(bad)
}

fn write_entry_record(out: &mut String, e: &Entry) {
    out.push_str("{\"key\":");
    json::write_str(out, e.key.as_str());
    out.push_str(",\"method\":");
    json::write_str(out, &e.method);
    out.push_str(",\"url\":");
    json::write_str(out, &e.url);
    out.push_str(",\"headers\":[");
    for (i, (n, v)) in e.headers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        json::write_str(out, n);
        out.push(',');
        json::write_str(out, v);
        out.push(']');
    }
    out.push_str("],\"body\":");
    json::write_str(out, &e.body);
    out.push_str(",\"enqueuedAt\":");
    push_ms(out, e.enqueued_at_ms);
    out.push_str(",\"attempts\":");
    push_u64(out, u64::from(e.attempts));
    out.push_str(",\"notBefore\":");
    push_u64(out, e.not_before_ms);
    if let Some(le) = &e.last_error {
        out.push_str(",\"lastError\":");
        json::write_str(out, le);
    }
    out.push('}');
}

/// What to do next, as JSON: a request to send, a store step, an event,
/// or when to wake up.
#[wasm_bindgen]
pub fn poll(queue: &str, now: f64) -> Option<String> {
    with(queue, |e| {
        let mut out = String::new();
        if let Some(op) = e.poll_store() {
            match op {
                StoreOp::Put(entry) => {
                    out.push_str("{\"store\":\"put\",\"entry\":");
                    write_entry_record(&mut out, &entry);
                }
                StoreOp::Delete(key) => {
                    out.push_str("{\"store\":\"delete\",\"key\":");
                    json::write_str(&mut out, key.as_str());
                }
                StoreOp::DeadLetter(d) => {
                    out.push_str("{\"store\":\"dead\",\"reason\":");
                    json::write_str(&mut out, &d.reason.to_string());
                    out.push_str(",\"entry\":");
                    write_entry_record(&mut out, &d.entry);
                }
            }
            out.push('}');
            return Some(out);
        }
        if let Some(ev) = e.poll_event() {
            out.push_str("{\"event\":");
            match ev {
                Event::Sending { keys } => {
                    out.push_str("\"sending\",\"keys\":[");
                    for (i, k) in keys.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        json::write_str(&mut out, k.as_str());
                    }
                    out.push(']');
                }
                Event::Sent { key } => {
                    out.push_str("\"sent\",\"key\":");
                    json::write_str(&mut out, key.as_str());
                }
                Event::Queued { key } => {
                    out.push_str("\"queued\",\"key\":");
                    json::write_str(&mut out, key.as_str());
                }
                Event::RetryScheduled { key, at_ms, error } => {
                    out.push_str("\"retry\",\"key\":");
                    json::write_str(&mut out, key.as_str());
                    out.push_str(",\"at\":");
                    push_u64(&mut out, at_ms);
                    out.push_str(",\"error\":");
                    json::write_str(&mut out, &error);
                }
                Event::DeadLettered { key, reason } => {
                    out.push_str("\"dead\",\"key\":");
                    json::write_str(&mut out, key.as_str());
                    out.push_str(",\"reason\":");
                    json::write_str(&mut out, &reason.to_string());
                }
                _ => out.push_str("\"other\""),
            }
            out.push('}');
            return Some(out);
        }
        if let Some(t) = e.poll_transmit(now as u64) {
            out.push_str("{\"send\":");
            push_u64(&mut out, t.id);
            out.push_str(",\"batch\":");
            out.push_str(if t.batch { "true" } else { "false" });
            out.push_str(",\"body\":");
            let ordered = e.config().ordered;
            if t.batch {
                let body = round_json::batch_body(&t.entries, ordered, |entry| entry.headers.clone());
                json::write_str(&mut out, &body);
            } else if let Some(one) = t.entries.first() {
                write_entry_record(&mut out, one);
            }
            out.push('}');
            return Some(out);
        }
        e.poll_timeout().map(|t| {
            let mut s = String::from("{\"wake\":");
            push_u64(&mut s, t);
            s.push('}');
            s
        })
    })
    .flatten()
}

/// The answer to the request `id`: `status` 0 for a network failure
/// (`body` then says what failed), else the status, its `Retry-After` and
/// its body (a batch's: its JSON, read into the entries' results).
#[wasm_bindgen]
pub fn answered(queue: &str, id: f64, batch: bool, status: u16, retry_after: Option<String>, body: String, now: f64) {
    let failed = status == 0;
    let result = match (batch, failed) {
        (false, true) => TransmitResult::Single(AttemptResult::NetworkError(body)),
        (true, true) => TransmitResult::BatchFailed(AttemptResult::NetworkError(body)),
        (true, false) if (200..300).contains(&status) => {
            TransmitResult::Batch(round_json::batch_results(&body).unwrap_or_default())
        }
        (true, false) => TransmitResult::BatchFailed(AttemptResult::Response(Response { status, retry_after, body })),
        (false, false) => TransmitResult::Single(AttemptResult::Response(Response { status, retry_after, body })),
    };
    with(queue, |e| e.handle(id as u64, result, now as u64));
}

/// `n` in decimal (without `core::fmt`'s machinery).
fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(core::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

/// Milliseconds with three decimals (the queue order's fraction).
fn push_ms(out: &mut String, ms: f64) {
    let whole = ms.trunc();
    push_u64(out, whole as u64);
    let frac = (((ms - whole) * 1000.0).round() as u64).min(999);
    if frac > 0 {
        out.push('.');
        let mut s = String::new();
        push_u64(&mut s, frac + 1000);
        out.push_str(&s[1..]);
    }
}

//! The JSON texts of a round, read and written in plain Rust over
//! [`crate::json`] (no browser type: its tests run natively, and a module
//! that is not bgsync-web can compile this file): a page of the queue's
//! stored records read into entries (`JSON.stringify` of IndexedDB's
//! `getAll`, one crossing into the module for a whole page), a batch
//! request's body written, and a batch's answer read into results. One
//! crossing a text instead of one a field: a thousand entries were about
//! 25,000 crossings of the wasm boundary a round.

use crate::json;
use bgsync_core::wire::BatchResult;
use bgsync_core::{Entry, EntryKey};

/// The field of a stored entry that names the user it waits for
/// ([`crate::state::set_credentials`]).
pub(crate) const OWNER: &str = "owner";

/// The records of a JSON array (as `JSON.stringify` writes what
/// `getAll` read), each an entry or `None` where it is not one, read
/// straight into entries: the same fields and defaults as the queue's
/// record by record reading (`queue::from_js`).
/// `None` if the text is not such an array.
pub(crate) fn entries_of_json(text: &str) -> Option<Vec<Option<Entry>>> {
    let mut reader = json::Reader::new(text);
    let mut records = Vec::new();
    reader.array(|reader| {
        records.push(entry_of_json(reader)?);
        Some(())
    })?;
    reader.end()?;
    Some(records)
}

fn entry_of_json(reader: &mut json::Reader) -> Option<Option<Entry>> {
    let (mut key, mut enqueued_at, mut attempts, mut not_before) = (None, None, None, None);
    let (mut method, mut url, mut body, mut last_error, mut owner) = (None, None, None, None, None);
    let mut headers = Vec::new();
    reader.object(|reader, name| {
        match name {
            "key" => key = reader.maybe_string()?,
            "enqueuedAt" => enqueued_at = reader.maybe_number()?,
            "attempts" => attempts = reader.maybe_number()?,
            "notBefore" => not_before = reader.maybe_number()?,
            "method" => method = reader.maybe_string()?,
            "url" => url = reader.maybe_string()?,
            "body" => body = reader.maybe_string()?,
            "lastError" => last_error = reader.maybe_string()?,
            OWNER => owner = reader.maybe_string()?,
            "headers" if reader.at_array()? => reader.array(|reader| {
                if !reader.at_array()? {
                    return reader.skip();
                }
                let mut pair: [Option<Option<String>>; 2] = [None, None];
                let mut n = 0;
                reader.array(|reader| {
                    match pair.get_mut(n) {
                        Some(slot) => *slot = Some(reader.maybe_string()?),
                        None => reader.skip()?,
                    }
                    n += 1;
                    Some(())
                })?;
                if let [Some(Some(name)), Some(Some(value))] = pair {
                    headers.push((name, value));
                }
                Some(())
            })?,
            _ => reader.skip()?,
        }
        Some(())
    })?;
    Some((|| {
        Some(Entry {
            key: EntryKey::try_from(key?).ok()?,
            enqueued_at_ms: enqueued_at?,
            attempts: attempts.unwrap_or(0.0) as u32,
            not_before_ms: not_before.unwrap_or(0.0) as u64,
            method: method.unwrap_or_else(|| "POST".into()),
            url: url?,
            headers,
            body: body?,
            last_error,
            owner,
        })
    })())
}

/// The body of a batch request carrying `entries` (`{"ordered", "entries":
/// [{"key", "method", "path", "headers", "body"}]}`), each entry with the
/// headers `headers_of` gives it (its own, with the credentials that
/// apply).
pub(crate) fn batch_body(
    entries: &[Entry],
    ordered: bool,
    headers_of: impl Fn(&Entry) -> Vec<(String, String)>,
) -> String {
    let size: usize = entries.iter().map(|e| e.url.len() + e.body.len() + 128).sum();
    let mut body = String::with_capacity(size + 32);
    body.push_str(if ordered { r#"{"ordered":true,"entries":["# } else { r#"{"ordered":false,"entries":["# });
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"key":"#);
        json::write_str(&mut body, entry.key.as_str());
        body.push_str(r#","method":"#);
        json::write_str(&mut body, &entry.method);
        body.push_str(r#","path":"#);
        json::write_str(&mut body, &entry.url);
        body.push_str(r#","headers":["#);
        for (j, (name, value)) in headers_of(entry).iter().enumerate() {
            if j > 0 {
                body.push(',');
            }
            body.push('[');
            json::write_str(&mut body, name);
            body.push(',');
            json::write_str(&mut body, value);
            body.push(']');
        }
        body.push_str(r#"],"body":"#);
        json::write_str(&mut body, &entry.body);
        body.push('}');
    }
    body.push_str("]}");
    body
}

/// The `results` of a batch endpoint's answer (`{"results": [{"key",
/// "status", "retry_after", "body"}, ...]}`), read straight from its text
/// into results, the body as the server wrote it. An item without a key is
/// left out; a field of another type counts as absent; JSON of another
/// shape (a `results` that is not an array, an answer that is not an
/// object) holds none, and the engine retries the entries it has no answer
/// for. `None` if the text is not JSON.
pub(crate) fn batch_results(text: &str) -> Option<Vec<BatchResult>> {
    let mut reader = json::Reader::new(text);
    let mut results = Vec::new();
    if !reader.at_object()? {
        reader.skip()?;
        return reader.end().map(|_| results);
    }
    reader.object(|reader, name| {
        if name != "results" || !reader.at_array()? {
            return reader.skip();
        }
        reader.array(|reader| {
            if !reader.at_object()? {
                return reader.skip();
            }
            let (mut key, mut status, mut retry_after, mut body) = (None, None, None, None);
            reader.object(|reader, name| {
                match name {
                    "key" => key = reader.maybe_string()?,
                    "status" => status = reader.maybe_number()?,
                    "retry_after" => retry_after = reader.maybe_string()?,
                    "body" => body = reader.maybe_string()?,
                    _ => reader.skip()?,
                }
                Some(())
            })?;
            if let Some(key) = key {
                let status = status.map(|s| s as u16);
                results.push(BatchResult { key, status, retry_after, body: body.unwrap_or_default() });
            }
            Some(())
        })
    })?;
    reader.end()?;
    Some(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_body_is_json_with_each_entry_and_the_headers_given_it() {
        let mut first = Entry::new(EntryKey::parse("k-1").unwrap(), "/api/a?q=\"x\"", "{\"t\":\"é\\n😀\"}", 1.5);
        first.headers = vec![("X-Own".into(), "1".into())];
        let mut second = Entry::new(EntryKey::parse("k-2").unwrap(), "/api/b", "", 2.0);
        second.method = "DELETE".into();
        let body = batch_body(&[first, second], true, |entry| {
            let mut headers = entry.headers.clone();
            headers.push(("Authorization".into(), "Bearer \"t\"".into()));
            headers
        });
        let value = json::parse(&body).expect("JSON");
        assert_eq!(value.get("ordered"), Some(&json::Value::Bool(true)));
        let Some(json::Value::Array(entries)) = value.get("entries") else { panic!("{body}") };
        let text = |v: Option<&json::Value>| match v {
            Some(json::Value::String(s)) => s.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(text(entries[0].get("key")), "k-1");
        assert_eq!(text(entries[0].get("method")), "POST");
        assert_eq!(text(entries[0].get("path")), "/api/a?q=\"x\"");
        assert_eq!(text(entries[0].get("body")), "{\"t\":\"é\\n😀\"}");
        let pair =
            |a: &str, b: &str| json::Value::Array(vec![json::Value::String(a.into()), json::Value::String(b.into())]);
        assert_eq!(
            entries[0].get("headers"),
            Some(&json::Value::Array(vec![pair("X-Own", "1"), pair("Authorization", "Bearer \"t\"")]))
        );
        assert_eq!(text(entries[1].get("method")), "DELETE");
        assert_eq!(text(entries[1].get("body")), "");
        let unordered = batch_body(&[], false, |_| Vec::new());
        assert_eq!(unordered, r#"{"ordered":false,"entries":[]}"#);
    }

    #[test]
    fn records_read_as_json_become_entries_with_the_stored_fields_and_defaults() {
        // As `JSON.stringify` writes `getAll`'s records: a whole one, one
        // with only what is required, and three that are not entries.
        let text = r#"[
            {"queue":"q","key":"k-1","method":"PUT","url":"/api/a?x=\"1\"","headers":[["X-A","1"],["X-B",2],["X-C","3","extra"],"junk"],
             "body":"{\"t\":\"é\\n\"}","enqueuedAt":1733083200123.456,"attempts":3,"notBefore":1733083201000,"lastError":"HTTP 503","extra":{"n":[1]}},
            {"key":"k-2","url":"/api/b","body":"","enqueuedAt":5,"lastError":null,"headers":"none"},
            {"key":"k-3","url":"/api/c","enqueuedAt":6},
            {"key":"not a key","url":"/api/d","body":"","enqueuedAt":7},
            {"key":"k-5","url":"/api/e","body":"","enqueuedAt":"late"}
        ]"#;
        let records = entries_of_json(text).unwrap();
        assert_eq!(records.len(), 5);
        let first = records[0].clone().unwrap();
        assert_eq!(first.key.as_str(), "k-1");
        assert_eq!((first.method.as_str(), first.url.as_str()), ("PUT", "/api/a?x=\"1\""));
        assert_eq!(first.headers, [("X-A".to_owned(), "1".to_owned()), ("X-C".to_owned(), "3".to_owned())]);
        assert_eq!(first.body, "{\"t\":\"é\\n\"}");
        assert_eq!(first.enqueued_at_ms, 1_733_083_200_123.456);
        assert_eq!((first.attempts, first.not_before_ms), (3, 1_733_083_201_000));
        assert_eq!(first.last_error.as_deref(), Some("HTTP 503"));
        let second = records[1].clone().unwrap();
        assert_eq!((second.method.as_str(), second.attempts, second.not_before_ms), ("POST", 0, 0));
        assert!(second.headers.is_empty() && second.last_error.is_none());
        assert!(records[2..].iter().all(Option::is_none), "{:?}", &records[2..]);
        assert_eq!(entries_of_json("[{\"key\":\"k\"}"), None, "not JSON");
        assert_eq!(entries_of_json("{}"), None, "not an array");
    }

    fn result(key: &str, status: Option<u16>, retry_after: Option<&str>, body: &str) -> BatchResult {
        BatchResult { key: key.into(), status, retry_after: retry_after.map(Into::into), body: body.into() }
    }

    #[test]
    fn a_batch_answer_is_read_into_its_results() {
        let text = r#" {"version":1,"results":[
            {"key":"k1","status":201},
            {"status":503,"key":"k2","retry_after":"2","body":"{\"detail\":\"busy \\\"now\\\"\"}","extra":{"a":[1]}},
            {"key":"k3"},
            {"key":"k4","status":"201","retry_after":7,"body":null},
            {"status":201},
            "not an entry", 5, null,
            {"key":"k5","status":422,"body":"é😀"}
        ]} "#;
        assert_eq!(
            batch_results(text),
            Some(vec![
                result("k1", Some(201), None, ""),
                result("k2", Some(503), Some("2"), r#"{"detail":"busy \"now\""}"#),
                result("k3", None, None, ""),
                result("k4", None, None, ""),
                result("k5", Some(422), None, "é😀"),
            ])
        );
    }

    #[test]
    fn an_answer_of_another_shape_has_no_results_and_one_that_is_not_json_is_refused() {
        for other in [r#"{}"#, r#"{"results":{"key":"k1"}}"#, r#"{"results":null}"#] {
            assert_eq!(batch_results(other), Some(Vec::new()), "{other}");
        }
        // JSON, but not an object: no results either (not a failure).
        for json in ["[]", "5", r#""results""#, "null", r#"[{"key":"k1","status":201}]"#] {
            assert_eq!(batch_results(json), Some(Vec::new()), "{json}");
        }
        for bad in ["", "{", r#"{"results":[{"key":"k1","status":201}"#, r#"{"results":[]} x"#, "<html>", "[1] x"] {
            assert_eq!(batch_results(bad), None, "{bad}");
        }
    }
}

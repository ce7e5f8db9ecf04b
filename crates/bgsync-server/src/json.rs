//! Reading a JSON request body so that every way it can be wrong gets its
//! own status and a message that says what to fix.
//!
//! axum's `Json` extractor answers in plain text; a background-sync client
//! must tell "never send this again" (4xx) from "try later", and a person
//! reading the dead letter must see why, so the answers here are problems.

use crate::problem::Problem;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

/// Whether the body failed because its deadline passed
/// ([`crate::serve::BodyTimedOut`]).
fn timed_out(rejection: &BytesRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(error) = source {
        if error.is::<crate::serve::BodyTimedOut>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Parses `body` as JSON into `T`: 415 for a missing or non-JSON
/// `Content-Type` or a `Content-Encoding` (the body is read as it comes,
/// never decompressed), 413 for a body over the route's limit, 400 for
/// bytes that are not JSON (including invalid UTF-8: JSON is UTF-8, and a
/// `charset` parameter changes nothing, RFC 8259 §11, but a body that
/// fails while declaring another one is told so), 408 for a body that did
/// not arrive in time, 422 for JSON of the wrong shape.
pub fn parse<T: DeserializeOwned>(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<T, Problem> {
    let unsupported = |detail: String| {
        Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type", detail)
    };
    if !is_json(headers) {
        return Err(unsupported("Send the body as JSON with the header `Content-Type: application/json`.".into()));
    }
    let codings = headers.get_all(header::CONTENT_ENCODING).iter();
    let codings: Vec<&str> = codings
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
        .collect();
    if !codings.is_empty() {
        return Err(unsupported(format!(
            "The body is sent with Content-Encoding: {}, which this endpoint does not decode; send it \
             uncompressed, without Content-Encoding.",
            codings.join(", ")
        )));
    }
    let bytes = body.map_err(|rejection| {
        if timed_out(&rejection) {
            Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Body too slow",
                "The request body did not arrive in time; send it again, all at once.",
            )
        } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Body too large",
                "The request body is larger than this endpoint accepts.",
            )
        } else {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "unreadable-body",
                "Unreadable body",
                format!("The request body could not be read: {rejection}."),
            )
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|err| {
        use serde_json::error::Category;
        match err.classify() {
            Category::Data => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-json-shape",
                "Invalid request",
                format!("The JSON does not have the expected shape: {err}."),
            ),
            Category::Syntax | Category::Eof | Category::Io => {
                let declared = charset(headers)
                    .filter(|c| !c.eq_ignore_ascii_case("utf-8") && !c.eq_ignore_ascii_case("utf8"))
                    .map(|c| {
                        format!(" It is declared as charset={c}, but JSON is read as UTF-8 only: send it as UTF-8.")
                    })
                    .unwrap_or_default();
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "malformed-json",
                    "Malformed JSON",
                    format!("The body is not valid JSON: {err}.{declared}"),
                )
            }
        }
    })
}

/// The `charset` parameter of the `Content-Type`, if it has one.
fn charset(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    value.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim().eq_ignore_ascii_case("charset").then(|| value.trim().trim_matches('"').to_owned())
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Thing {
        name: String,
    }

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    fn status(ct: &str, body: &[u8]) -> u16 {
        match parse::<Thing>(&headers(ct), Ok(Bytes::copy_from_slice(body))) {
            Ok(_) => 200,
            Err(p) => p.status,
        }
    }

    #[test]
    fn each_kind_of_bad_body_has_its_status() {
        assert_eq!(status("application/json", br#"{"name":"a"}"#), 200);
        assert_eq!(status("application/json; charset=utf-8", br#"{"name":"a"}"#), 200);
        assert_eq!(status("application/merge-patch+json", br#"{"name":"a"}"#), 200);
        assert_eq!(status("text/plain", br#"{"name":"a"}"#), 415);
        assert_eq!(status("application/json", b"{\"name\":"), 400);
        assert_eq!(status("application/json", b"{\"name\":\"\xff\"}"), 400);
        assert_eq!(status("application/json", br#"{"name":1}"#), 422);
        assert_eq!(status("application/json", br#"{"name":"a","x":1}"#), 422);
        assert_eq!(parse::<Thing>(&HeaderMap::new(), Ok(Bytes::new())).unwrap_err().status, 415);
        assert_eq!(status("application/json; charset=\"UTF-8\"", br#"{"name":"a"}"#), 200);
        // A charset changes nothing (RFC 8259 §11): the body is UTF-8 or
        // it fails, saying that it must be.
        assert_eq!(status("application/json; charset=latin1", br#"{"name":"a"}"#), 200);
        let latin1 = parse::<Thing>(
            &headers("application/json; charset=latin1"),
            Ok(Bytes::from_static(b"{\"name\":\"caf\xe9\"}")),
        );
        let refused = latin1.unwrap_err();
        assert_eq!(refused.status, 400);
        assert!(
            refused.detail.contains("charset=latin1") && refused.detail.contains("UTF-8 only"),
            "{}",
            refused.detail
        );
        let plain = parse::<Thing>(&headers("application/json"), Ok(Bytes::from_static(b"{\"name\":\"caf\xe9\"}")));
        assert!(!plain.unwrap_err().detail.contains("charset"));
    }

    #[test]
    fn a_compressed_body_is_refused_not_read_as_json() {
        let parsed = |codings: &[&str]| {
            let mut h = headers("application/json");
            for coding in codings {
                h.append(header::CONTENT_ENCODING, HeaderValue::from_str(coding).unwrap());
            }
            parse::<Thing>(&h, Ok(Bytes::from_static(br#"{"name":"a"}"#)))
        };
        assert!(parsed(&[]).is_ok());
        assert!(parsed(&["identity"]).is_ok());
        let refused = parsed(&["gzip"]).unwrap_err();
        assert_eq!(refused.status, 415);
        assert!(refused.detail.contains("Content-Encoding: gzip"), "{}", refused.detail);
        assert!(parsed(&["identity, br"]).unwrap_err().detail.contains(": br,"));
        assert!(parsed(&["deflate", "gzip"]).unwrap_err().detail.contains("deflate, gzip"));
    }
}

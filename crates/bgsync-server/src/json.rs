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
/// `Content-Type`, 413 for a body over the route's limit, 400 for bytes that
/// are not JSON (including invalid UTF-8), 408 for a body that did not
/// arrive in time, 422 for JSON of the wrong shape.
pub fn parse<T: DeserializeOwned>(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<T, Problem> {
    if !is_json(headers) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "Send the body as JSON with the header `Content-Type: application/json`.",
        ));
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
            Category::Syntax | Category::Eof | Category::Io => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                format!("The body is not valid JSON: {err}."),
            ),
        }
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
    }
}

//! Conditional reads: whether a client's `If-None-Match` names what it
//! would be sent, so that it gets `304 Not Modified` instead (an app's
//! files, a feed's delta that has nothing new).

use axum::http::{header, HeaderMap};

/// Whether `headers`' `If-None-Match` names the entity tag `etag` (as sent
/// in `ETag`, `W/"…"` or `"…"`) under the weak comparison (RFC 9110
/// 13.1.2): `*`, or any listed tag with the same opaque part, `W/` or not.
pub fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    fn opaque(tag: &[u8]) -> &[u8] {
        let tag = tag.trim_ascii();
        tag.strip_prefix(b"W/").unwrap_or(tag)
    }
    let ours = opaque(etag.as_bytes());
    headers.get_all(header::IF_NONE_MATCH).iter().any(|value| {
        value.as_bytes().split(|b| *b == b',').map(<[u8]>::trim_ascii).any(|tag| tag == b"*" || opaque(tag) == ours)
    })
}

#[cfg(test)]
mod tests {
    use super::none_match;
    use axum::http::{header, HeaderMap, HeaderValue};

    #[test]
    fn if_none_match_is_compared_weakly() {
        let etag = "W/\"0123456789abcdef\"";
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
            headers
        };
        for yes in ["W/\"0123456789abcdef\"", "\"0123456789abcdef\"", "\"x\", W/\"0123456789abcdef\"", "*", " * "] {
            assert!(none_match(&with(yes), etag), "{yes}");
        }
        for no in ["", "\"0123456789abcdee\"", "W/\"x\", \"y\"", "0123456789abcdef"] {
            assert!(!none_match(&with(no), etag), "{no}");
        }
        assert!(!none_match(&HeaderMap::new(), etag), "no If-None-Match");
    }
}

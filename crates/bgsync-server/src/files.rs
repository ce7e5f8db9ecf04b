//! An app's own files (page, worker, wasm), embedded by `bgsync-build` into
//! the server binary, and how they are answered: cache headers by whether a
//! file's name carries a content hash, the Brotli and gzip encodings made at
//! build time for clients that take them, a page's security headers,
//! problems for anything else.

use crate::Problem;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// A file of the app, embedded at build time (`bgsync-build` writes the
/// table of them).
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    /// Content-hashed files never change under their name.
    pub immutable: bool,
    pub body: &'static [u8],
    /// The body gzipped at build time, when that is smaller.
    pub gzip: Option<&'static [u8]>,
    /// The body compressed with Brotli at build time, when that is smaller
    /// than the gzip.
    pub br: Option<&'static [u8]>,
    /// Its validator (`W/"<content hash>"`): a client that revalidates the
    /// file with `If-None-Match` gets `304 Not Modified` while it is the
    /// same.
    pub etag: &'static str,
}

impl Asset {
    /// The body to send to a client whose `Accept-Encoding` is `accept`, and
    /// its `Content-Encoding`: of the encodings this file has, the one the
    /// client weighs highest (on a tie the smaller: Brotli), else the body
    /// as it is.
    pub fn encoded(&self, accept: Option<&str>) -> (&'static [u8], Option<&'static str>) {
        let weight = |coding| accept.map_or(0.0, |accept| weight(accept, coding));
        let offers = [(self.br, "br"), (self.gzip, "gzip")];
        let mut best: Option<(&'static [u8], &'static str, f32)> = None;
        for (body, coding) in offers {
            let (Some(body), w) = (body, weight(coding)) else { continue };
            if w > 0.0 && best.is_none_or(|(_, _, b)| w > b) {
                best = Some((body, coding, w));
            }
        }
        match best {
            Some((body, coding, _)) => (body, Some(coding)),
            None => (self.body, None),
        }
    }
}

/// How much an `Accept-Encoding` value wants `coding`: the weight of its
/// own item, else of `*`, else 0 (not taken). An item whose weight cannot
/// be read counts as not taken.
fn weight(accept: &str, coding: &str) -> f32 {
    let mut star = None;
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let weight = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)))
            .unwrap_or(0.0);
        if name.eq_ignore_ascii_case(coding) {
            return weight;
        }
        if name == "*" {
            star = Some(weight);
        }
    }
    star.unwrap_or(0.0)
}

/// Answers `GET`/`HEAD` of one of `assets` (`/index.html` is `/`): hashed
/// files cached for a year, the others revalidated (or an update would never
/// reach the browser; `304` to an `If-None-Match` that names the file's
/// entity tag), Brotli or gzip where taken (`Vary: Accept-Encoding`),
/// `nosniff`, and for pages `page_policy` as their Content-Security-Policy
/// with `X-Frame-Options: DENY` and `Referrer-Policy: same-origin`. Another
/// method is a 405 problem, an unknown path a 404 problem.
pub fn serve(
    assets: &'static [Asset],
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    page_policy: &'static str,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return crate::problem::method_not_allowed(method, "GET, HEAD", uri.path());
    }
    let path = if uri.path() == "/index.html" { "/" } else { uri.path() };
    let Some(asset) = assets.iter().find(|a| a.path == path) else {
        return Problem::not_found(format!("There is nothing at {}.", uri.path())).into_response();
    };
    let cache = if asset.immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    let validators = [
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (header::ETAG, HeaderValue::from_static(asset.etag)),
        (header::VARY, HeaderValue::from_static("Accept-Encoding")),
    ];
    // What a `no-cache` file costs a client that has it: a request and
    // this answer, not the file again.
    if crate::etag::none_match(headers, asset.etag) {
        return (StatusCode::NOT_MODIFIED, validators).into_response();
    }
    let (body, encoding) = asset.encoded(headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()));
    let mut response = (
        StatusCode::OK,
        validators,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    if let Some(encoding) = encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    if asset.content_type.starts_with("text/html") {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(page_policy));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::{weight, Asset};

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        for yes in ["gzip", "GZIP", "br, gzip", "gzip;q=0.5", "deflate, *", "br;q=1.0, gzip; q=0.8"] {
            assert!(weight(yes, "gzip") > 0.0, "{yes}");
        }
        for no in ["", "br", "identity", "gzip;q=0", "gzip;q=0.0", "gzip;q=nope", "*;q=0", "xgzip", "gzip;q=2"] {
            assert_eq!(weight(no, "gzip"), 0.0, "{no}");
        }
        // A coding's own item counts, not `*`'s.
        assert_eq!(weight("*, gzip;q=0", "gzip"), 0.0);
        assert_eq!(weight("*;q=0.3, br", "gzip"), 0.3);
    }

    #[test]
    fn the_encoding_the_client_weighs_highest_is_sent() {
        let asset = Asset {
            path: "/a.wasm",
            content_type: "application/wasm",
            immutable: true,
            body: b"plain",
            gzip: Some(b"gz"),
            br: Some(b"br"),
            etag: "W/\"0123456789abcdef\"",
        };
        let cases = [
            (None, None),
            (Some(""), None),
            (Some("gzip, deflate, br, zstd"), Some("br")),
            (Some("gzip, deflate"), Some("gzip")),
            (Some("br"), Some("br")),
            (Some("br;q=0.5, gzip"), Some("gzip")),
            (Some("br;q=0, gzip;q=0"), None),
            (Some("*"), Some("br")),
            (Some("identity"), None),
        ];
        for (accept, coding) in cases {
            let (body, sent) = asset.encoded(accept);
            assert_eq!(sent, coding, "{accept:?}");
            let expected: &[u8] = match coding {
                Some("br") => b"br",
                Some(_) => b"gz",
                None => b"plain",
            };
            assert_eq!(body, expected, "{accept:?}");
        }
        // A file with no Brotli encoding goes gzipped to a client that
        // prefers Brotli.
        let gzip_only = Asset { br: None, ..asset };
        assert_eq!(gzip_only.encoded(Some("br, gzip")).1, Some("gzip"));
    }
}

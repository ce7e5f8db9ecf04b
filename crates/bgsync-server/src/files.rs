//! An app's own files (page, worker, wasm), embedded by `bgsync-build` into
//! the server binary, and how they are answered: cache headers by whether a
//! file's name carries a content hash, the gzip made at build time for
//! clients that take it, a page's security headers, problems for anything
//! else.

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
}

impl Asset {
    /// The body to send to a client whose `Accept-Encoding` is `accept`, and
    /// its `Content-Encoding`: gzip when the client takes it and it is
    /// smaller.
    pub fn encoded(&self, accept: Option<&str>) -> (&'static [u8], Option<&'static str>) {
        match self.gzip {
            Some(gzip) if accept.is_some_and(accepts_gzip) => (gzip, Some("gzip")),
            _ => (self.body, None),
        }
    }
}

/// Whether an `Accept-Encoding` value takes gzip (`gzip` or `*`, with a
/// weight above 0).
fn accepts_gzip(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let weight = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok());
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && weight.is_some_and(|w| w > 0.0)
    })
}

/// Answers `GET`/`HEAD` of one of `assets` (`/index.html` is `/`): hashed
/// files cached for a year, the others revalidated (or an update would never
/// reach the browser), gzip where taken (`Vary: Accept-Encoding`),
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
    let (body, encoding) = asset.encoded(headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()));
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::VARY, HeaderValue::from_static("Accept-Encoding")),
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
    use super::accepts_gzip;

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        for yes in ["gzip", "GZIP", "br, gzip", "gzip;q=0.5", "deflate, *", "br;q=1.0, gzip; q=0.8"] {
            assert!(accepts_gzip(yes), "{yes}");
        }
        for no in ["", "br", "identity", "gzip;q=0", "gzip;q=0.0", "gzip;q=nope", "*;q=0", "xgzip"] {
            assert!(!accepts_gzip(no), "{no}");
        }
    }
}

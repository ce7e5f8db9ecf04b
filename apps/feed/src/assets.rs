//! The PWA's files, embedded at build time (see `build.rs`).

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// What the app's pages may load and who may frame them: scripts, wasm,
/// styles and connections of this origin only, no plugins, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Serves an embedded file (GET and HEAD), or a problem for an unknown
/// path or another method.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let problem = bgsync_server::Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("{method} is not allowed on {}; the app's files take GET and HEAD.", uri.path()),
        );
        return ([(header::ALLOW, "GET, HEAD")], problem).into_response();
    }
    let Some(asset) = find(uri.path()) else {
        return bgsync_server::Problem::not_found(format!("There is nothing at {}.", uri.path())).into_response();
    };
    let cache = if asset.immutable {
        "public, max-age=31536000, immutable"
    } else {
        // The page, the worker script and the unhashed files must be
        // revalidated, or an update would never reach the browser.
        "no-cache"
    };
    let (body, encoding) = asset.encoded(headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()));
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response();
    // Compressed at build time (the wasm is a third of its size in gzip).
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Some(encoding) = encoding {
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    if asset.content_type.starts_with("text/html") {
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
    response
}

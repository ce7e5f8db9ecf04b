//! The page's files and bgsync's modules, embedded at build time
//! (`build.rs`).

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bgsync_server::Problem;

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Serves an embedded file (GET and HEAD), or a problem.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if uri.path().starts_with("/api/") {
        return Problem::not_found(format!("There is no API route at {}.", uri.path())).into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return bgsync_server::batch::method_not_allowed(&method, "GET, HEAD", uri.path());
    }
    let Some(asset) = ASSETS.iter().find(|a| a.path == uri.path()) else {
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
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; frame-ancestors 'none'",
            ),
        );
    }
    response
}

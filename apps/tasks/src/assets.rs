//! The page's files and bgsync's modules, embedded at build time
//! (`build.rs`).

use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use bgsync_server::Problem;

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Serves an embedded file (GET and HEAD), or a problem.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if uri.path().starts_with("/api/") {
        return Problem::not_found(format!("There is no API route at {}.", uri.path())).into_response();
    }
    bgsync_server::files::serve(
        ASSETS,
        &method,
        &uri,
        &headers,
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    )
}

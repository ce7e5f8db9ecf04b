//! The PWA's files, embedded at build time (see `build.rs`).

use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

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
    bgsync_server::files::serve(ASSETS, &method, &uri, &headers, CONTENT_SECURITY_POLICY)
}

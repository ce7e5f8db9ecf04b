//! The PWA's files, embedded at build time (see `build.rs`).

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    /// Content-hashed files never change under their name.
    pub immutable: bool,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// Serves an embedded file, or a problem for an unknown path.
pub async fn serve(uri: Uri) -> Response {
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
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        asset.body,
    )
        .into_response()
}

//! Builds the feed's WebAssembly and embeds it, with the static files, into
//! the server binary (`bgsync-build` does the work; see its docs): the page
//! module `feed-web` (the feed's Rust page with bgsync's JavaScript API,
//! without the replay), bgsync's fallback module (which the page loads
//! where no worker replays for it) and bgsync's ready service worker, which
//! the feed's `sw.js` loads with the declaration in `bgsync-config.js`.

use bgsync_build::{File, Module};

fn main() {
    let root = bgsync_build::workspace_root(2);
    let page =
        Module { package: "feed-web", features: &[], placeholder: "__BUNDLE__", types: true, global: "wasm_bindgen" };
    let file = |url: &'static str, name: &str, content_type: &'static str| File {
        url,
        path: root.join("apps/feed/static").join(name),
        content_type,
    };
    let js = "text/javascript; charset=utf-8";
    let [inspector_js, inspector_css] = bgsync_build::inspector(&root);
    let files = [
        file("/", "index.html", "text/html; charset=utf-8"),
        file("/sw.js", "sw.js", js),
        file("/start.js", "start.js", js),
        file("/bgsync-config.js", "bgsync-config.js", js),
        file("/app.css", "app.css", "text/css; charset=utf-8"),
        file("/manifest.webmanifest", "manifest.webmanifest", "application/manifest+json"),
        file("/icon.svg", "icon.svg", "image/svg+xml"),
        bgsync_build::worker_bootstrap(&root),
        inspector_js,
        inspector_css,
    ];
    let watch = ["apps/feed/static", "apps/feed/web/src", "apps/feed/web/Cargo.toml", "apps/feed/post/src"];
    bgsync_build::build_and_embed(&root, &[page, bgsync_build::FALLBACK, bgsync_build::WORKER], &files, &watch);
}

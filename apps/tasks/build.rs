//! Embeds the tasks app's page (plain JavaScript), bgsync's JavaScript API
//! module (with its fallback module, for pages no worker replays for) and
//! bgsync's ready service worker into the server binary.

use bgsync_build::File;

fn main() {
    let root = bgsync_build::workspace_root(2);
    let file = |url: &'static str, name: &str, content_type: &'static str| File {
        url,
        path: root.join("apps/tasks/static").join(name),
        content_type,
    };
    let js = "text/javascript; charset=utf-8";
    let [inspector_js, inspector_css] = bgsync_build::inspector(&root);
    let files = [
        file("/", "index.html", "text/html; charset=utf-8"),
        file("/app.js", "app.js", js),
        file("/app.css", "app.css", "text/css; charset=utf-8"),
        file("/sw.js", "sw.js", js),
        file("/bgsync-config.js", "bgsync-config.js", js),
        bgsync_build::worker_bootstrap(&root),
        inspector_js,
        inspector_css,
    ];
    bgsync_build::build_and_embed(
        &root,
        &[bgsync_build::PAGE_API, bgsync_build::FALLBACK, bgsync_build::WORKER],
        &files,
        &["apps/tasks/static"],
    );
}

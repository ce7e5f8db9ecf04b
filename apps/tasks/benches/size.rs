//! What a browser downloads of bgsync, in an app built on its public API
//! only: `cargo bench -p tasks --bench size` prints, for each file that
//! `bgsync-build` made or serves for bgsync, its bytes as built, as served
//! gzipped (`gzip -9n` at build time, what a client that takes only gzip
//! receives) and as served with Brotli (quality 11 at build time, what
//! browsers receive: each of today's takes it), and writes the table to
//! `target/bench/size.md`.
//!
//! The page loads the page module; the fallback module only where no worker
//! replays for the page (no service workers, the first visit before the
//! worker is active); the worker, its module, glue and bootstrap.

use tasks::assets::{self, ASSETS};

fn main() {
    let file = |path: &str| {
        let asset = ASSETS.iter().find(|a| a.path == path).unwrap_or_else(|| panic!("{path} is not served"));
        let gzip = asset.gzip.map_or(asset.body.len(), <[u8]>::len);
        (asset.body.len(), gzip, asset.br.map_or(gzip, <[u8]>::len))
    };
    let mut out = String::from("| what | file | bytes | gzip bytes | brotli bytes |\n|---|---|---:|---:|---:|\n");
    let mut group = |what: &str, paths: &[String]| {
        let mut total = (0, 0, 0);
        for path in paths {
            let (raw, gzip, br) = file(path);
            out.push_str(&format!("| {what} | {path} | {raw} | {gzip} | {br} |\n"));
            total = (total.0 + raw, total.1 + gzip, total.2 + br);
        }
        out.push_str(&format!("| {what} | **total** | {} | **{}** | **{}** |\n", total.0, total.1, total.2));
    };
    let module = |stem: &str| [format!("/{stem}.wasm"), format!("/{stem}.js")];
    group("page module (bgsync-page)", &module(assets::BGSYNC));
    group("fallback module (bgsync-fallback)", &module(assets::BGSYNC_FALLBACK));
    let [wasm, glue] = module(assets::WORKER);
    group("worker (bgsync-worker)", &[wasm, glue, "/bgsync-sw.js".into()]);
    group("inspector", &["/bgsync-inspector.js".into(), "/bgsync-inspector.css".into()]);
    println!("{out}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("size.md"), out).unwrap();
    eprintln!("written to target/bench/size.md");
}

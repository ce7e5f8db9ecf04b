//! Builds the feed's WebAssembly (page and service-worker logic) and embeds
//! it, with the static files, into the server binary.
//!
//! Two modules: `feed-web` for the page (with bgsync's JavaScript API) and
//! bgsync's ready service worker, `bgsync-worker` (no page code, so it loads
//! fast; the feed gives it its declaration in `sw.js`).
//! Steps for each: a nested `cargo build --profile wasm` for
//! `wasm32-unknown-unknown` (size-optimised, see the workspace manifest;
//! one invocation per module, so the page's features do not leak into the
//! worker), `wasm-bindgen` (as a library, the same version as the crate, so
//! the glue always matches), a content hash in the bundle's file name, and
//! the names written into `sw.js` and `index.html` (`__BUNDLE__` for the
//! page, `__WORKER__` for the worker). The browser compares only `sw.js` for
//! updates, never the `.wasm`: without the hashes in `sw.js`, a Rust-only
//! change would never reach users.
//!
//! Set `BGSYNC_SKIP_WASM=1` for `cargo check`/`clippy` runs that do not need
//! a working page: the bundle is then an empty placeholder.

use std::collections::hash_map::DefaultHasher;
use std::env;
use std::fs;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Static files: (URL path, file relative to `static/`, content type).
const STATIC: &[(&str, &str, &str)] = &[
    ("/", "index.html", "text/html; charset=utf-8"),
    ("/sw.js", "sw.js", "text/javascript; charset=utf-8"),
    ("/start.js", "start.js", "text/javascript; charset=utf-8"),
    ("/bgsync-config.js", "bgsync-config.js", "text/javascript; charset=utf-8"),
    ("/bgsync-sw.js", "../../../crates/bgsync-worker/sw.js", "text/javascript; charset=utf-8"),
    ("/app.css", "app.css", "text/css; charset=utf-8"),
    ("/manifest.webmanifest", "manifest.webmanifest", "application/manifest+json"),
    ("/icon.svg", "icon.svg", "image/svg+xml"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().unwrap();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    for path in [
        "apps/feed/static",
        "apps/feed/web/src",
        "apps/feed/web/Cargo.toml",
        "crates/bgsync-worker/src",
        "crates/bgsync-worker/Cargo.toml",
        "crates/bgsync-worker/sw.js",
        "apps/feed/post/src",
        "crates/bgsync-web/src",
        "crates/bgsync-web/Cargo.toml",
        "crates/bgsync-core/src",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=BGSYNC_SKIP_WASM");

    let skip = env::var_os("BGSYNC_SKIP_WASM").is_some();
    if skip {
        println!("cargo:warning=BGSYNC_SKIP_WASM is set: the page and worker will not work");
    }
    let modules: Vec<(&str, &str, String, Vec<u8>)> = [("feed-web", "__BUNDLE__"), ("bgsync-worker", "__WORKER__")]
        .into_iter()
        .map(|(package, placeholder)| {
            let (js, wasm) = if skip { (String::new(), Vec::new()) } else { build_wasm(&root, &out_dir, package) };
            (package, placeholder, js, wasm)
        })
        .collect();
    let names: Vec<String> = modules
        .iter()
        .map(|(package, _, js, wasm)| {
            let mut hasher = DefaultHasher::new();
            hasher.write(js.as_bytes());
            hasher.write(wasm);
            format!("{}-{:016x}", package.replace('-', "_"), hasher.finish())
        })
        .collect();
    let bundle = names[0].clone();

    let assets = out_dir.join("assets");
    let _ = fs::remove_dir_all(&assets);
    fs::create_dir_all(&assets).unwrap();
    let mut table = Vec::new();
    for (url, file, content_type) in STATIC {
        let text = fs::read(manifest_dir.join("static").join(file)).unwrap();
        let text = match String::from_utf8(text) {
            Ok(mut s) => {
                for ((_, placeholder, _, _), name) in modules.iter().zip(&names) {
                    s = s.replace(placeholder, name);
                }
                s.into_bytes()
            }
            Err(e) => e.into_bytes(),
        };
        // Named by URL: files may come from outside `static/` (the worker
        // bootstrap ships with bgsync-worker).
        let dest = if *url == "/" { "index.html" } else { url.trim_start_matches('/') };
        fs::write(assets.join(dest), text).unwrap();
        table.push((url.to_string(), dest.to_string(), *content_type, false));
    }
    for ((_, _, js, wasm), name) in modules.iter().zip(&names) {
        let js_name = format!("{name}.js");
        let wasm_name = format!("{name}.wasm");
        fs::write(assets.join(&js_name), js).unwrap();
        fs::write(assets.join(&wasm_name), wasm).unwrap();
        table.push((format!("/{js_name}"), js_name, "text/javascript; charset=utf-8", true));
        table.push((format!("/{wasm_name}"), wasm_name, "application/wasm", true));
    }
    let worker = &names[1];
    // The page module's TypeScript declarations: bgsync's JavaScript API.
    let types = out_dir.join("bindgen/feed_web/feed_web.d.ts");
    let types = if skip { String::new() } else { fs::read_to_string(types).unwrap() };
    let types_name = format!("{bundle}.d.ts");
    fs::write(assets.join(&types_name), types).unwrap();
    table.push((format!("/{types_name}"), types_name, "application/typescript; charset=utf-8", true));

    let mut code = format!(
        "/// The content-hashed stem of the page's wasm bundle.\npub const BUNDLE: &str = {bundle:?};\n\
         /// The content-hashed stem of the worker's wasm bundle.\npub const WORKER: &str = {worker:?};\n\n"
    );
    code.push_str("pub static ASSETS: &[Asset] = &[\n");
    for (url, file, content_type, immutable) in table {
        let path = assets.join(&file);
        code.push_str(&format!(
            "    Asset {{ path: {url:?}, content_type: {content_type:?}, immutable: {immutable}, body: include_bytes!({path:?}) }},\n"
        ));
    }
    code.push_str("];\n");
    fs::write(out_dir.join("assets.rs"), code).unwrap();
}

/// rustup installs the targets `rust-toolchain.toml` lists only when it
/// installs the toolchain itself; on a machine that already had the
/// toolchain the wasm target can be missing, so it is added here.
fn ensure_wasm_target(root: &Path) {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc).args(["--print", "sysroot"]).output().ok().filter(|o| o.status.success());
    let has_target = sysroot.is_some_and(|o| {
        let sysroot = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        Path::new(&sysroot).join("lib/rustlib/wasm32-unknown-unknown/lib").is_dir()
    });
    if has_target {
        return;
    }
    println!("cargo:warning=installing the wasm32-unknown-unknown target with rustup (once)");
    let added = Command::new("rustup").current_dir(root).args(["target", "add", "wasm32-unknown-unknown"]).status();
    assert!(
        added.is_ok_and(|s| s.success()),
        "the wasm32-unknown-unknown target is missing and `rustup target add wasm32-unknown-unknown` failed; \
         install it by hand, or set BGSYNC_SKIP_WASM=1 to build the server without the web app"
    );
}

/// Returns the wasm-bindgen JS glue and the wasm module.
fn build_wasm(root: &Path, out_dir: &Path, package: &str) -> (String, Vec<u8>) {
    // A nested build in the outer target dir would wait forever on the
    // outer build's lock, so it gets a directory of its own.
    let target_dir =
        env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target")).join("wasm");
    ensure_wasm_target(root);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args([
        "build",
        "--profile",
        "wasm",
        "--locked",
        "--package",
        package,
        "--target",
        "wasm32-unknown-unknown",
        "--target-dir",
    ]);
    cmd.arg(&target_dir);
    // The outer build's settings describe the host build, not this one.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let cargo_var = key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_MAKEFLAGS";
        if cargo_var
            || matches!(&*key, "RUSTFLAGS" | "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER" | "CARGO_ENCODED_RUSTFLAGS")
        {
            cmd.env_remove(&*key);
        }
    }
    let status = cmd.status().expect("could not run cargo for the wasm build");
    assert!(status.success(), "the wasm build of {package} failed (see above)");

    let stem = package.replace('-', "_");
    let input = target_dir.join(format!("wasm32-unknown-unknown/wasm/{stem}.wasm"));
    let bindgen_dir = out_dir.join("bindgen").join(&stem);
    let _ = fs::remove_dir_all(&bindgen_dir);
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&input)
        .no_modules(true)
        .unwrap()
        .typescript(true)
        .remove_name_section(true)
        .remove_producers_section(true)
        .out_name(&stem)
        .generate(&bindgen_dir)
        .unwrap_or_else(|e| panic!("wasm-bindgen failed on {}: {e:?}", input.display()));
    let js = fs::read_to_string(bindgen_dir.join(format!("{stem}.js"))).unwrap();
    let wasm = fs::read(bindgen_dir.join(format!("{stem}_bg.wasm"))).unwrap();
    (js, wasm)
}

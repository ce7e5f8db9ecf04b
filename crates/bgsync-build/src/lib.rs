//! For an app's `build.rs`: builds WebAssembly modules (bgsync's worker,
//! bgsync's page API, or the app's own page crate) and embeds them, with the
//! app's static files, into the server binary.
//!
//! Steps for each module: a nested `cargo build --profile wasm` for
//! `wasm32-unknown-unknown` (one invocation per module, so one module's
//! features never leak into another), `wasm-bindgen` as a library (the same
//! version as the crate, so the glue always matches), and a content hash in
//! the bundle's file name, written into the static files in place of the
//! module's placeholder (such as `__WORKER__`). The browser compares only
//! `sw.js` and what it imports for updates, never the `.wasm`: without the
//! hashes there, a Rust-only change would never reach users.
//!
//! Scripts (the wasm-bindgen glue and the static files served as
//! `text/javascript`) go out without their comments, indentation and blank
//! lines (`strip`; the `.d.ts` keeps the glue's docs, the repository the
//! files'), and the names only the glue and the module share are made
//! short on both sides (`rename`); docs/worker-size.md has what each saves.
//!
//! The app `include!`s `$OUT_DIR/assets.rs`, which holds
//! `ASSETS: &[bgsync_server::files::Asset]` (served by
//! `bgsync_server::files::serve`; each file gzipped and Brotli-compressed
//! when that is smaller), a constant per
//! module (the placeholder without underscores: `WORKER`) and
//! `ASSETS: &[Asset]`.
//!
//! `BGSYNC_SKIP_WASM=1` skips the wasm (for `cargo check`/`clippy` runs that
//! do not need a working page): bundles are then empty placeholders.

mod rename;
mod strip;

use std::collections::hash_map::DefaultHasher;
use std::env;
use std::fs;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A crate to build for the browser.
pub struct Module<'a> {
    pub package: &'a str,
    /// Cargo features to build it with.
    pub features: &'a [&'a str],
    /// What the static files say where its hashed name goes.
    pub placeholder: &'a str,
    /// Also serve its TypeScript declarations (`<name>.d.ts`).
    pub types: bool,
    /// The global its glue defines (also as a property of `self`):
    /// `wasm_bindgen` for a page's module (`wasm_bindgen({ module_or_path
    /// })`, then `wasm_bindgen.enqueue`).
    pub global: &'a str,
}

/// bgsync's ready service worker (`crates/bgsync-worker`), and the
/// bootstrap that goes with it ([`worker_bootstrap`]).
pub const WORKER: Module<'static> =
    Module { package: "bgsync-worker", features: &[], placeholder: "__WORKER__", types: false, global: "wasm_bindgen" };

/// bgsync's JavaScript API for pages written in JavaScript
/// (`crates/bgsync-page`), without the replay: a page that has to replay
/// itself (no worker replays for it) loads [`FALLBACK`] then.
pub const PAGE_API: Module<'static> =
    Module { package: "bgsync-page", features: &[], placeholder: "__BGSYNC__", types: true, global: "wasm_bindgen" };

/// bgsync's fallback module (`crates/bgsync-fallback`): the page API with
/// the replay, which a page module built without it (bgsync's
/// [`PAGE_API`], or an app's page crate depending on `bgsync-web` without
/// `replay-here`) loads where no worker replays for the page. The app
/// declares where it is in its configuration: `fallback:
/// "/__BGSYNC_FALLBACK__"`.
pub const FALLBACK: Module<'static> = Module {
    package: "bgsync-fallback",
    features: &[],
    placeholder: "__BGSYNC_FALLBACK__",
    types: false,
    global: "bgsync_fallback",
};

/// A static file: its URL, where it is, its content type.
pub struct File<'a> {
    pub url: &'a str,
    pub path: PathBuf,
    pub content_type: &'a str,
}

/// The worker bootstrap as a static file, served at `/bgsync-sw.js`.
pub fn worker_bootstrap(root: &Path) -> File<'static> {
    File {
        url: "/bgsync-sw.js",
        path: root.join("crates/bgsync-worker/sw.js"),
        content_type: "text/javascript; charset=utf-8",
    }
}

/// bgsync's inspector (`bgsyncInspector(element)`, a live panel of the
/// queues, dead letters, worker rounds, feeds and events), served at
/// `/bgsync-inspector.js` with its stylesheet at `/bgsync-inspector.css`.
pub fn inspector(root: &Path) -> [File<'static>; 2] {
    [
        File {
            url: "/bgsync-inspector.js",
            path: root.join("crates/bgsync-page/inspector.js"),
            content_type: "text/javascript; charset=utf-8",
        },
        File {
            url: "/bgsync-inspector.css",
            path: root.join("crates/bgsync-page/inspector.css"),
            content_type: "text/css; charset=utf-8",
        },
    ]
}

/// The workspace root, from an app's `CARGO_MANIFEST_DIR` `levels` below it.
pub fn workspace_root(levels: usize) -> PathBuf {
    let mut root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("run from a build script"));
    for _ in 0..levels {
        root = root.join("..");
    }
    root.canonicalize().expect("the workspace root exists")
}

/// Builds `modules`, embeds them and `files`, and asks cargo to run again
/// when anything under `watch` (paths relative to `root`) changes; bgsync's
/// own crates are always watched.
pub fn build_and_embed(root: &Path, modules: &[Module], files: &[File], watch: &[&str]) {
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("run from a build script"));
    let ours = [
        "crates/bgsync-web/src",
        "crates/bgsync-web/Cargo.toml",
        "crates/bgsync-core/src",
        "crates/bgsync-worker/src",
        "crates/bgsync-worker/Cargo.toml",
        "crates/bgsync-worker/sw.js",
        "crates/bgsync-page/src",
        "crates/bgsync-page/Cargo.toml",
        "crates/bgsync-fallback/src",
        "crates/bgsync-fallback/Cargo.toml",
        "Cargo.lock",
    ];
    for path in ours.iter().chain(watch) {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    for file in files {
        println!("cargo:rerun-if-changed={}", file.path.display());
    }
    println!("cargo:rerun-if-env-changed=BGSYNC_SKIP_WASM");
    println!("cargo:rerun-if-env-changed=BGSYNC_KEEP_NAMES");
    let skip = env::var_os("BGSYNC_SKIP_WASM").is_some();
    if skip {
        println!("cargo:warning=BGSYNC_SKIP_WASM is set: the page and worker will not work");
    }

    let built: Vec<(String, String, Vec<u8>)> = modules
        .iter()
        .map(|module| {
            let (js, wasm) = if skip { (String::new(), Vec::new()) } else { build_wasm(root, &out_dir, module) };
            let mut hasher = DefaultHasher::new();
            hasher.write(js.as_bytes());
            hasher.write(&wasm);
            (format!("{}-{:016x}", module.package.replace('-', "_"), hasher.finish()), js, wasm)
        })
        .collect();

    let assets = out_dir.join("assets");
    let _ = fs::remove_dir_all(&assets);
    fs::create_dir_all(&assets).unwrap();
    let mut table = Vec::new();
    for file in files {
        let bytes = fs::read(&file.path).unwrap_or_else(|e| panic!("{}: {e}", file.path.display()));
        let bytes = match String::from_utf8(bytes) {
            Ok(mut text) => {
                for (module, (name, _, _)) in modules.iter().zip(&built) {
                    text = text.replace(module.placeholder, name);
                }
                // A placeholder of bgsync's modules that none built: the
                // file would name a module the server does not have.
                for (module, constant) in [(WORKER, "WORKER"), (PAGE_API, "PAGE_API"), (FALLBACK, "FALLBACK")] {
                    if text.contains(module.placeholder) {
                        println!(
                            "cargo:warning={} names {} but bgsync_build::{constant} is not among the modules \
                             built: add it to build_and_embed's modules",
                            file.path.display(),
                            module.placeholder,
                        );
                    }
                }
                // Scripts go out without their comments and indentation
                // (the source keeps them); one this cannot read goes as is.
                if file.content_type.starts_with("text/javascript") {
                    text = strip::strip(&text).unwrap_or(text);
                }
                text.into_bytes()
            }
            Err(e) => e.into_bytes(),
        };
        // Named by URL: files may come from anywhere in the workspace.
        let dest =
            if file.url == "/" { "index.html".to_owned() } else { file.url.trim_start_matches('/').replace('/', "_") };
        fs::write(assets.join(&dest), bytes).unwrap();
        table.push((file.url.to_owned(), dest, file.content_type, false));
    }
    let mut code = String::from(ASSET_CODE);
    for (module, (name, js, wasm)) in modules.iter().zip(&built) {
        let (js_name, wasm_name) = (format!("{name}.js"), format!("{name}.wasm"));
        fs::write(assets.join(&js_name), js).unwrap();
        fs::write(assets.join(&wasm_name), wasm).unwrap();
        table.push((format!("/{js_name}"), js_name, "text/javascript; charset=utf-8", true));
        table.push((format!("/{wasm_name}"), wasm_name, "application/wasm", true));
        if module.types {
            let stem = module.package.replace('-', "_");
            let types = out_dir.join(format!("bindgen/{stem}/{stem}.d.ts"));
            let types = if skip { String::new() } else { fs::read_to_string(types).unwrap() };
            let types_name = format!("{name}.d.ts");
            fs::write(assets.join(&types_name), types).unwrap();
            table.push((format!("/{types_name}"), types_name, "application/typescript; charset=utf-8", true));
        }
        let constant = module.placeholder.trim_matches('_');
        code.push_str(&format!(
            "/// The content-hashed stem of the `{}` bundle.\npub const {constant}: &str = {name:?};\n",
            module.package
        ));
    }
    code.push_str("\npub static ASSETS: &[Asset] = &[\n");
    let mut brotli = BrotliCache::open(&out_dir);
    let included = |path: Option<PathBuf>| match path {
        Some(path) => format!("Some(include_bytes!({path:?}))"),
        None => "None".to_owned(),
    };
    for (url, file, content_type, immutable) in table {
        let path = assets.join(&file);
        let body = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The content's hash names its Brotli encoding in the cache and
        // makes its entity tag: a weak one, the same for each encoding
        // (they hold the same content), so a client revalidating the file
        // gets `304 Not Modified` until a build changes it.
        let mut hasher = DefaultHasher::new();
        hasher.write(&body);
        let hash = hasher.finish();
        let gzip = gzipped(&path);
        let br = brotli.compress(&body, hash, gzip.as_deref());
        let (gzip, br) = (included(gzip), included(br));
        let etag = format!("W/\"{hash:016x}\"");
        code.push_str(&format!(
            "    Asset {{ path: {url:?}, content_type: {content_type:?}, immutable: {immutable}, body: include_bytes!({path:?}), gzip: {gzip}, br: {br}, etag: {etag:?} }},\n"
        ));
    }
    brotli.forget_unused();
    code.push_str("];\n");
    fs::write(out_dir.join("assets.rs"), code).unwrap();
}

/// The files' Brotli encodings, kept between runs of the build script by
/// their content (Brotli's best quality takes about a second for each
/// module, and most runs change none of them).
struct BrotliCache {
    dir: PathBuf,
    used: Vec<PathBuf>,
}

impl BrotliCache {
    fn open(out_dir: &Path) -> Self {
        let dir = out_dir.join("brotli");
        fs::create_dir_all(&dir).unwrap();
        Self { dir, used: Vec::new() }
    }

    /// `body` (whose content hash is `hash`) compressed with Brotli
    /// (quality 11, a 4 MiB window), where the cache keeps it, when that is
    /// smaller than its gzip (`gzip`, or the body itself less a tenth where
    /// there is none); `None` otherwise.
    fn compress(&mut self, body: &[u8], hash: u64, gzip: Option<&Path>) -> Option<PathBuf> {
        use std::io::Write;
        if body.len() < 256 {
            return None;
        }
        let beat = match gzip {
            Some(gzip) => fs::metadata(gzip).ok()?.len() as usize,
            None => body.len() - body.len() / 10,
        };
        // Named by the settings too: other settings, another encoding.
        let (quality, window) = (11, 22);
        let cached = self.dir.join(format!("{hash:016x}-q{quality}w{window}.br"));
        let size = match fs::metadata(&cached) {
            Ok(meta) => meta.len() as usize,
            Err(_) => {
                let mut encoded = Vec::new();
                let mut writer = brotli::CompressorWriter::new(&mut encoded, 1 << 16, quality, window);
                writer.write_all(body).ok()?;
                drop(writer);
                // Whole or not at all: a build stopped mid-write must not
                // leave a cut encoding for the next to embed.
                let part = cached.with_extension("part");
                fs::write(&part, &encoded).ok()?;
                fs::rename(&part, &cached).ok()?;
                encoded.len()
            }
        };
        self.used.push(cached.clone());
        (size < beat).then_some(cached)
    }

    /// Deletes the encodings of files this run did not have (modules since
    /// rebuilt), so the cache holds one build's worth.
    fn forget_unused(self) {
        for entry in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if !self.used.contains(&entry.path()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// What the generated `assets.rs` starts with: the table's type, served by
/// `bgsync_server::files::serve`.
const ASSET_CODE: &str = "pub use bgsync_server::files::Asset;\n\n";

/// `path` gzipped beside it (`<path>.gz`, with Debian's `gzip -9n`: no name
/// nor time in it, so builds are reproducible), when that is smaller than
/// the file by at least a tenth; `None` otherwise, or where `gzip` cannot be
/// run (the assets are then served as they are).
fn gzipped(path: &Path) -> Option<PathBuf> {
    let original = fs::metadata(path).ok()?.len();
    if original < 256 {
        return None;
    }
    let output =
        Command::new("gzip").args(["-9", "-n", "-c"]).arg(path).output().ok().filter(|o| o.status.success())?;
    if (output.stdout.len() as u64) * 10 > original * 9 {
        return None;
    }
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    let gz = PathBuf::from(gz);
    fs::write(&gz, output.stdout).ok()?;
    Some(gz)
}

/// rustup installs the targets `rust-toolchain.toml` lists only when it
/// installs the toolchain itself; on a machine that already had the
/// toolchain the wasm target can be missing, so it is added here. Two
/// apps' build scripts run side by side (`cargo test --workspace`), and two
/// `rustup target add` at once fail, so the addition holds a file lock and
/// looks again once it has it.
fn ensure_wasm_target(root: &Path) {
    let has_target = || {
        let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let sysroot = Command::new(rustc).args(["--print", "sysroot"]).output().ok().filter(|o| o.status.success());
        sysroot.is_some_and(|o| {
            let sysroot = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            Path::new(&sysroot).join("lib/rustlib/wasm32-unknown-unknown/lib").is_dir()
        })
    };
    if has_target() {
        return;
    }
    let lock = fs::File::create(env::temp_dir().join("bgsync-wasm-target.lock"));
    let _held = lock.as_ref().ok().filter(|file| file.lock().is_ok());
    if has_target() {
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

/// `--remap-path-prefix` flags for the wasm build: the source paths a
/// module keeps (in its panic messages) name no directory of the machine
/// that built it, so the same sources make the same bytes, and the same
/// hashed file names, wherever `CARGO_HOME` is. The workspace becomes
/// `.`, each crate registry `crates` (the standard library's are
/// `/rustc/<its commit>` already).
fn remapped_paths(root: &Path) -> Vec<String> {
    let mut flags = vec![format!("--remap-path-prefix={}=.", root.display())];
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    if let Some(Ok(registries)) = cargo_home.map(|home| fs::read_dir(home.join("registry/src"))) {
        for registry in registries.flatten() {
            flags.push(format!("--remap-path-prefix={}=crates", registry.path().display()));
        }
    }
    flags
}

/// Returns the wasm-bindgen JS glue and the wasm module.
fn build_wasm(root: &Path, out_dir: &Path, module: &Module) -> (String, Vec<u8>) {
    let package = module.package;
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
        "--features",
        &module.features.join(","),
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
    cmd.env("CARGO_ENCODED_RUSTFLAGS", remapped_paths(root).join("\x1f"));
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
        .no_modules_global(module.global)
        .unwrap()
        .typescript(true)
        .remove_name_section(std::env::var_os("BGSYNC_KEEP_NAMES").is_none())
        .remove_producers_section(true)
        .out_name(&stem)
        .generate(&bindgen_dir)
        .unwrap_or_else(|e| panic!("wasm-bindgen failed on {}: {e:?}", input.display()));
    let js = fs::read_to_string(bindgen_dir.join(format!("{stem}.js"))).unwrap();
    let mut js = strip::strip(&js).unwrap_or_else(|| {
        println!("cargo:warning={stem}.js: its glue holds JavaScript bgsync-build cannot strip; shipped as generated");
        js
    });
    // The glue's `let` makes a global binding that is no property of the
    // global object: code that looks the module up (the page module that
    // loads the fallback module) needs it as one.
    js.push_str(&format!("self.{0}={0};\n", module.global));
    let wasm = fs::read(bindgen_dir.join(format!("{stem}_bg.wasm"))).unwrap();
    match rename::rename(&wasm, &js) {
        Some((wasm, js)) => (js, wasm),
        None => {
            println!(
                "cargo:warning={stem}: its module and glue are not as bgsync-build expects; names kept as generated"
            );
            (js, wasm)
        }
    }
}

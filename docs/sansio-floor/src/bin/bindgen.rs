//! `cargo run --bin bindgen -- <module.wasm> <out dir>`: wasm-bindgen with
//! the options bgsync-build uses, then the module's and the glue's bytes,
//! raw and gzip.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(input), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: bindgen <module.wasm> <out dir>");
        std::process::exit(2);
    };
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(input)
        .no_modules(true)
        .expect("no-modules output")
        .remove_name_section(std::env::var_os("BGSYNC_KEEP_NAMES").is_none())
        .remove_producers_section(true)
        .out_name("sansio_floor")
        .generate(out)
        .expect("wasm-bindgen");
    for file in ["sansio_floor_bg.wasm", "sansio_floor.js"] {
        let path = std::path::Path::new(out).join(file);
        let bytes = std::fs::read(&path).expect("written above");
        let gzip = std::process::Command::new("gzip")
            .args(["-9", "-c"])
            .arg(&path)
            .output()
            .map(|o| o.stdout.len())
            .unwrap_or(0);
        println!("{file}: {} bytes, {gzip} gzip", bytes.len());
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {}

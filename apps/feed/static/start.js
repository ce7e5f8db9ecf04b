// Starts the page's Rust code. A file of its own, not an inline script, so
// the page's Content-Security-Policy allows only scripts of this origin.
// `moduleLoaded` settles once the module is instantiated.
self.moduleLoaded = wasm_bindgen({ module_or_path: "/__BUNDLE__.wasm" });
self.moduleLoaded.then(() => wasm_bindgen.start_page());

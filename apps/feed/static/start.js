// Starts the page's Rust code. A file of its own, not an inline script, so
// the page's Content-Security-Policy allows only scripts of this origin.
wasm_bindgen({ module_or_path: "/__BUNDLE__.wasm" }).then(() => {
  wasm_bindgen.start_page();
  // bgsync's inspector, drawn while its panel is open.
  const panel = document.getElementById("inspector-panel");
  let inspector = null;
  panel.addEventListener("toggle", () => {
    if (panel.open && !inspector) {
      inspector = bgsyncInspector(document.getElementById("bgsync-inspector"));
    } else if (!panel.open && inspector) {
      inspector.close();
      inspector = null;
    }
  });
});

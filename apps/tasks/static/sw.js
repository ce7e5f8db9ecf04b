// The tasks app's service worker: bgsync's ready worker with the app's
// declaration and its app shell.
importScripts("/bgsync-config.js");

self.BGSYNC = {
  wasm: "/__WORKER__.wasm",
  shell: {
    prefix: "tasks-shell-",
    cache: "tasks-shell-__WORKER__-__BGSYNC__",
    files: ["/", "/app.js", "/app.css", "/bgsync-config.js", "/bgsync-inspector.js", "/bgsync-inspector.css",
      "/__BGSYNC__.js", "/__BGSYNC__.wasm"],
  },
  config: self.BGSYNC_CONFIG,
};

// bgsync's bootstrap first: it starts compiling the wasm while the glue loads.
importScripts("/bgsync-sw.js", "/__WORKER__.js");

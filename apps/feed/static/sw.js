// The feed's service worker: bgsync's ready worker with the feed's
// declaration (the same one its pages load) and its app shell.
importScripts("/bgsync-config.js");

self.BGSYNC = {
  wasm: "/__WORKER__.wasm",
  shell: {
    prefix: "feed-shell-",
    cache: "feed-shell-__WORKER__-__BUNDLE__",
    // The page's files, so the app opens offline.
    files: ["/", "/start.js", "/bgsync-config.js", "/app.css", "/manifest.webmanifest", "/icon.svg",
      "/bgsync-inspector.js", "/bgsync-inspector.css", "/__BUNDLE__.js", "/__BUNDLE__.wasm"],
  },
  config: self.BGSYNC_CONFIG,
};

// bgsync's bootstrap first: it starts compiling the wasm while the glue loads.
importScripts("/bgsync-sw.js", "/__WORKER__.js");

// bgsync's service-worker bootstrap. The app's own sw.js declares what it
// has, then loads the glue and this file:
//
//   self.BGSYNC = {
//     wasm: "/bgsync_worker-<hash>.wasm",
//     shell: { prefix: "app-shell-", cache: "app-shell-<hash>", files: ["/", "/app.css", ...] },
//     config: { queues: [...], feeds: [...] },   // the same declaration the pages make
//   };
//   importScripts("/bgsync-sw.js", "/bgsync_worker-<hash>.js");
//
// This file first: it starts reading and compiling the wasm (off the main
// thread) at once, while the browser reads and evaluates the glue after it,
// so a worker the browser starts for an event runs Rust sooner. (The other
// order works too; it only overlaps nothing.)
//
// Every listener is registered synchronously at top level (the browser only
// dispatches to listeners present at the first evaluation); the work runs in
// Rust inside waitUntil/respondWith.
(function () {
  // When each step of the worker's start ended, in ms since the worker was
  // created: reported with its cold start in the worker's status.
  const start = (self.BGSYNC_START = { bootstrap: performance.now() });
  const app = self.BGSYNC;
  if (!app || !app.wasm || !app.config) {
    throw new Error("bgsync: set self.BGSYNC = { wasm, shell, config } before importScripts of bgsync-sw.js");
  }
  const shell = app.shell || { prefix: "bgsync-shell-", cache: "bgsync-shell", files: [] };
  const queues = app.config.queues || [];

  // The wasm comes from the shell cache, so a worker the browser restarts
  // while offline still runs: the browser keeps sw.js and the imported
  // scripts, but never the .wasm, for us.
  // Compiled as it streams in (a Response of type application/wasm), off
  // the main thread.
  let compiled = null;
  function compile() {
    if (!compiled) {
      compiled = caches
        .match(app.wasm, { cacheName: shell.cache })
        .then((cached) => cached || fetch(app.wasm))
        .then((response) => {
          start.wasmRead = performance.now();
          if (!response.ok) {
            throw new Error("bgsync: " + app.wasm + " answered " + response.status);
          }
          return WebAssembly.compileStreaming && response.headers.get("Content-Type") === "application/wasm"
            ? WebAssembly.compileStreaming(response)
            : response.arrayBuffer().then((bytes) => WebAssembly.compile(bytes));
        })
        .then((module) => {
          start.compiled = performance.now();
          return module;
        })
        .catch((error) => {
          compiled = null;
          throw error;
        });
    }
    return compiled;
  }
  // Now, at the worker's start; a failure here is tried again, and
  // reported, by the first event that needs Rust.
  compile().catch(() => {});

  let rust = null;
  function ready() {
    if (!rust) {
      rust = compile()
        .then((module_or_path) => wasm_bindgen({ module_or_path }))
        .then(() => {
          wasm_bindgen.worker_configure(app.config);
          return wasm_bindgen;
        })
        .catch((error) => {
          rust = null;
          throw error;
        });
    }
    return rust;
  }

  self.addEventListener("install", (event) => {
    event.waitUntil(
      caches
        .open(shell.cache)
        .then((cache) => cache.addAll(shell.files.concat([app.wasm])))
        .then(() => self.skipWaiting()),
    );
  });

  self.addEventListener("activate", (event) => {
    event.waitUntil(
      ready()
        .then((w) => w.worker_activate(shell.prefix, shell.cache))
        .then(() => self.clients.claim()),
    );
  });

  self.addEventListener("sync", (event) => {
    event.waitUntil(ready().then((w) => w.worker_sync(event.tag, event.lastChance)));
  });

  self.addEventListener("periodicsync", (event) => {
    event.waitUntil(ready().then((w) => w.worker_periodic_sync(event.tag)));
  });

  self.addEventListener("message", (event) => {
    event.waitUntil(ready().then((w) => w.worker_message(event.data, event.source)));
  });

  // The queue that captures a request, if any: respondWith must be called
  // synchronously, so the rule is applied here.
  function capturing(request, path) {
    return queues.find((queue) => {
      const rule = queue.capture;
      if (!rule) return false;
      const methods = (rule.methods || ["POST", "PUT", "PATCH", "DELETE"]).map((m) => m.toUpperCase());
      return (
        path.startsWith(rule.prefix || "/") &&
        methods.includes(request.method) &&
        !(rule.exclude || []).some((prefix) => path.startsWith(prefix))
      );
    });
  }

  self.addEventListener("fetch", (event) => {
    const request = event.request;
    const url = new URL(request.url);
    if (url.origin !== self.location.origin) {
      return;
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      // A replay by bgsync itself (from a page) must fail when it fails,
      // not be queued again.
      const queue = !request.headers.has("bgsync-replay") && capturing(request, url.pathname);
      if (queue) {
        // Without the Rust code (it failed to load), the request goes out as is.
        event.respondWith(ready().then((w) => w.worker_capture(request, queue.name), () => fetch(request)));
      }
      return;
    }
    // The app shell only (its files, and navigations, which get the shell's
    // page offline): every other read, the API's included, goes to the
    // network as if there were no worker (pages keep their data in
    // IndexedDB).
    const files = shell.files || [];
    if (request.method !== "GET" || !(request.mode === "navigate" || files.includes(url.pathname))) {
      return;
    }
    event.respondWith(ready().then((w) => w.worker_fetch(request, shell.cache)));
  });
})();

// The feed's service worker: a bootstrap for the Rust code in the wasm.
// Every listener is registered synchronously at top level (the browser only
// dispatches to listeners present at the first evaluation); the work itself
// runs in Rust inside waitUntil/respondWith.
// The worker's own module (no page code in it): glue, then the wasm.
importScripts("/__WORKER__.js");

const SHELL_PREFIX = "feed-shell-";
const SHELL_CACHE = SHELL_PREFIX + "__WORKER__-__BUNDLE__";
const WASM = "/__WORKER__.wasm";
// The page's files, so the app opens offline, and the worker's wasm.
const SHELL = ["/", "/start.js", "/app.css", "/manifest.webmanifest", "/icon.svg", "/__BUNDLE__.js", "/__BUNDLE__.wasm", WASM];

// The wasm comes from the shell cache, so a worker the browser restarts
// while offline still runs: the browser keeps sw.js and the imported glue,
// but never the .wasm, for us.
let rust = null;
function ready() {
  if (!rust) {
    rust = caches
      .match(WASM, { cacheName: SHELL_CACHE })
      .then((cached) => cached || fetch(WASM))
      .then((module_or_path) => wasm_bindgen({ module_or_path }))
      .then(() => wasm_bindgen)
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
      .open(SHELL_CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    ready()
      .then((w) => w.worker_activate(SHELL_PREFIX, SHELL_CACHE))
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

// Auto-capture: requests that change something under /api/ (the batch
// endpoint aside) are sent by Rust with an Idempotency-Key and queued only
// if the network fails (the page gets 202 and the queued key).
const CAPTURE_PREFIX = "/api/";
const NOT_CAPTURED = ["/api/sync/"];

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) {
    return;
  }
  const api = url.pathname.startsWith(CAPTURE_PREFIX);
  if (request.method !== "GET" && request.method !== "HEAD") {
    // A replay by bgsync itself (from a page) must fail when it fails, not
    // be queued again.
    const replay = request.headers.has("bgsync-replay");
    if (api && !replay && !NOT_CAPTURED.some((p) => url.pathname.startsWith(p))) {
      // Without the Rust code (it failed to load), the request goes out as is.
      event.respondWith(ready().then((w) => w.worker_capture(request), () => fetch(request)));
    }
    return;
  }
  // The app shell only: API reads go to the network (the page keeps the
  // data in IndexedDB and renders from there when offline).
  if (request.method !== "GET" || api) {
    return;
  }
  event.respondWith(ready().then((w) => w.worker_fetch(request, SHELL_CACHE)));
});

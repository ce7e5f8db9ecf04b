// Workbox's background sync, as its documentation sets it up: one Queue,
// default onSync (replayRequests), requests pushed with pushRequest.
// Bundled with esbuild by the benchmark.
import { Queue } from "workbox-background-sync";

const queue = new Queue("bench");

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
self.addEventListener("message", (event) => {
  if (!event.data || event.data.type !== "enqueue") {
    return;
  }
  const request = new Request("/api/posts", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(event.data.post),
  });
  event.waitUntil(
    queue.pushRequest({ request }).then(
      () => event.ports[0].postMessage("ok"),
      (error) => event.ports[0].postMessage(String(error)),
    ),
  );
});

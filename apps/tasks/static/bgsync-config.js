// What the tasks app declares to bgsync: loaded by the page and by the
// service worker, so both know the same queues and feed.
self.BGSYNC_CONFIG = {
  queues: [
    // Creating, changing and deleting tasks: in the order the user did it.
    { name: "edits", tag: "tasks-edits" },
    // What the user did, for analytics: any order, many per request, and
    // not worth more than a few tries.
    { name: "events", tag: "tasks-events", ordered: false, batch: { maxEntries: 100 }, retry: { maxAttempts: 5 } },
  ],
  feeds: [{ name: "tasks", url: "/api/tasks", items: "tasks", keyPath: "id", pageSize: 500, tag: "pull-tasks", freshForMs: 0 }],
  // Where a page that no worker replays for (no service workers, or none
  // active yet) loads the replay from; bgsync-build names the module.
  fallback: "/__BGSYNC_FALLBACK__",
};

// What the feed declares to bgsync: loaded by the page (index.html) and by
// the service worker (sw.js), so both know the same queues and feed, and the
// worker knows them after a restart with no page open.
self.BGSYNC_CONFIG = {
  queues: [
    // The posts, in the order they were written (the seed's store name).
    { name: "sync-posts", tag: "sync-new-posts" },
    // Requests the worker sends itself and queues when the network fails.
    {
      name: "requests",
      tag: "bgsync-requests",
      capture: { prefix: "/api/", methods: ["POST", "PUT", "PATCH", "DELETE"], exclude: ["/api/sync/"] },
    },
  ],
  feeds: [
    {
      name: "posts",
      url: "/api/posts",
      items: "posts",
      pageSize: 500,
      tag: "pull-posts",
      // Where earlier versions kept them: an upgrade keeps the pulled posts.
      store: "pulled-posts",
    },
  ],
  // Where a page that no worker replays for (no service workers, or none
  // active yet) loads the replay from; bgsync-build names the module.
  fallback: "/__BGSYNC_FALLBACK__",
};

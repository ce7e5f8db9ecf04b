// The seed tutorial's service worker (sw.js + utility.js): on
// `sync-new-posts`, read every stored post, POST each, and delete it from
// IndexedDB when the answer is ok. As in the tutorial, the fetches are not
// awaited (waitUntil covers only the read) and carry no Idempotency-Key.
// One change: the tutorial's `for (var dt of data)` makes every callback
// delete the last post only; `const` gives the behaviour it intends.
function db() {
  return new Promise(function (resolve, reject) {
    var open = indexedDB.open("posts-store", 1);
    open.onupgradeneeded = function () {
      open.result.createObjectStore("posts", { keyPath: "id" });
      open.result.createObjectStore("sync-posts", { keyPath: "id" });
    };
    open.onsuccess = function () { resolve(open.result); };
    open.onerror = function () { reject(open.error); };
  });
}
var dbPromise = db();
function readAllData(st) {
  return dbPromise.then(function (db) {
    return new Promise(function (resolve, reject) {
      var req = db.transaction(st, "readonly").objectStore(st).getAll();
      req.onsuccess = function () { resolve(req.result); };
      req.onerror = function () { reject(req.error); };
    });
  });
}
function deleteItemFromData(st, id) {
  return dbPromise.then(function (db) {
    return new Promise(function (resolve) {
      var tx = db.transaction(st, "readwrite");
      tx.objectStore(st).delete(id);
      tx.oncomplete = function () { resolve(); };
    });
  });
}
self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });
self.addEventListener("sync", function (event) {
  if (event.tag === "sync-new-posts") {
    event.waitUntil(
      readAllData("sync-posts").then(function (data) {
        for (const dt of data) {
          fetch("/api/posts", {
            method: "POST",
            headers: { "Content-Type": "application/json", Accept: "application/json" },
            body: JSON.stringify({ id: dt.id, title: dt.title, location: dt.location }),
          })
            .then(function (res) {
              if (res.ok) {
                deleteItemFromData("sync-posts", dt.id);
              }
            })
            .catch(function (err) { console.log(err); });
        }
      }),
    );
  }
});

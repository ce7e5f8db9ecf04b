// The page contract every peer implements, for the sync benchmark:
//   peer.ready        resolves once the peer's worker controls the page
//   peer.enqueue(p)   stores one post for background delivery
//   peer.queued()     how many posts are still stored in the browser
// `count(db, store, range)` counts an IndexedDB store (within `range`)
// without creating anything.
function count(database, store, range) {
  return new Promise(function (resolve, reject) {
    var open = indexedDB.open(database);
    open.onupgradeneeded = function () { open.transaction.abort(); };
    open.onerror = function () { resolve(0); };
    open.onsuccess = function () {
      var db = open.result;
      if (!db.objectStoreNames.contains(store)) { db.close(); return resolve(0); }
      var req = db.transaction(store).objectStore(store).count(range);
      req.onsuccess = function () { db.close(); resolve(req.result); };
      req.onerror = function () { db.close(); reject(req.error); };
    };
  });
}
function controlled() {
  return navigator.serviceWorker.controller
    ? Promise.resolve()
    : new Promise(function (resolve) { navigator.serviceWorker.addEventListener("controllerchange", resolve, { once: true }); });
}

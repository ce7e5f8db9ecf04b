// Probe for the sync benchmark's page (BGSYNC_BENCH_PROBE=apps/feed/benches/probes/enqueue-timeline.js
// cargo bench -p feed --bench sync): when, within one enqueue, each browser call is made and
// answered, for bgsync's enqueue and for the same three calls made from JavaScript (a put, the
// lock look, a registration, awaited together). The browser's functions are wrapped to note the
// time of each call, of the write's commit and of the registration's answer; prints, per kind,
// the median ms from the start of the enqueue to each, and to the caller's promise settling, and
// (`raw`) the marks of a few enqueues of each kind in the order they came.
(async () => {
  const db = await new Promise((ok, no) => { const r = indexedDB.open("bgsync"); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
  const sw = await navigator.serviceWorker.ready;
  let marks = null;
  const mark = (name) => { if (marks && !(name in marks)) marks[name] = performance.now(); };
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (...args) {
    mark("put");
    // This enqueue's marks (the listener may run after the caller's promise settled and the next
    // enqueue began); a capturing listener runs before the transaction's own oncomplete.
    const mine = marks;
    this.transaction.addEventListener("complete", () => { if (mine && !("commit" in mine)) mine.commit = performance.now(); }, { capture: true });
    return put.apply(this, args);
  };
  const query = LockManager.prototype.query;
  LockManager.prototype.query = function (...args) {
    mark("look");
    return query.apply(this, args).then((answer) => { mark("looked"); return answer; });
  };
  const register = SyncManager.prototype.register;
  SyncManager.prototype.register = function (...args) {
    mark("register");
    return register.apply(this, args).then((answer) => { mark("registered"); return answer; });
  };
  const body = () => JSON.stringify({ id: crypto.randomUUID(), title: "Bench post 1", location: "Somewhere" });
  const record = () => ({ queue: "probe", key: crypto.randomUUID(), method: "POST", url: "/api/posts", headers: [], body: body(), enqueuedAt: Date.now() + Math.random(), attempts: 0, notBefore: 0, lastError: null });
  const kinds = {
    bgsync: () => wasm_bindgen.enqueue("sync-posts", { url: "/api/posts", body: body() }),
    script: () => {
      const tx = db.transaction("entries", "readwrite");
      const p = new Promise((ok, no) => { tx.oncomplete = ok; tx.onerror = () => no(tx.error); });
      tx.objectStore("entries").put(record());
      const l = navigator.locks.query();
      return Promise.all([p, sw.sync.register("probe-tag"), l]);
    },
    // The script's calls with bgsync's record (its queue, a time-ordered key) and its tag.
    likeBgsync: () => {
      const tx = db.transaction("entries", "readwrite");
      const p = new Promise((ok, no) => { tx.oncomplete = ok; tx.onerror = () => no(tx.error); });
      const r = record();
      r.queue = "sync-posts";
      r.key = Date.now().toString(16).padStart(12, "0") + r.key.slice(12);
      r.enqueuedAt = performance.timeOrigin + performance.now();
      tx.objectStore("entries").put(r);
      const l = navigator.locks.query();
      return Promise.all([p, sw.sync.register("sync-posts"), l]);
    },
  };
  const times = {};
  const raw = [];
  for (const name in kinds) times[name] = {};
  const names = Object.keys(kinds);
  for (let round = 0; round < 10; round++) {
    const order = round % 2 ? names : [...names].reverse();
    for (const name of order) {
      for (let i = 0; i < 40; i++) {
        marks = {};
        const t = performance.now();
        await kinds[name]();
        mark("settled");
        const m = marks;
        marks = null;
        for (const step in m) (times[name][step] = times[name][step] || []).push(m[step] - t);
        if (round === 5 && i < 4) raw.push(name + " " + Object.entries(m).sort((a, b) => a[1] - b[1]).map(([k, v]) => k + "=" + (v - t).toFixed(2)).join(" "));
      }
    }
  }
  IDBObjectStore.prototype.put = put;
  LockManager.prototype.query = query;
  SyncManager.prototype.register = register;
  const med = (a) => { const s = [...a].sort((x, y) => x - y); return +s[s.length >> 1].toFixed(3); };
  await new Promise((ok) => { const tx = db.transaction("entries", "readwrite"); tx.objectStore("entries").delete(IDBKeyRange.bound(["probe", ""], ["probe", "\uffff"])); tx.objectStore("entries").delete(IDBKeyRange.bound(["sync-posts", ""], ["sync-posts", "\uffff"])); tx.oncomplete = ok; });
  const out = { raw };
  for (const name of names) {
    out[name] = {};
    for (const step of ["put", "look", "register", "looked", "registered", "commit", "settled"]) {
      if (times[name][step]) out[name][step] = med(times[name][step]) + (times[name][step].length < 400 ? ` (${times[name][step].length})` : "");
    }
  }
  return out;
})()

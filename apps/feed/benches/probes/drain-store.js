// Probe for the sync benchmark's page (BGSYNC_BENCH_PROBE=apps/feed/benches/probes/drain-store.js
// cargo bench -p feed --bench sync): what the IndexedDB parts of a drain of 1,000 entries cost
// from plain JavaScript, against the worker's phases (read, store). Each rep fills a store with
// 1,000 records shaped as bgsync's (one transaction, not timed), then times: reading them in
// queue order (getAll on the order index, or on the store), JSON.stringify of what was read, and
// deleting them: one range delete and one delete a key, keyed [queue, key], with and without the
// order index, `relaxed` durability as the worker's store does. In the indexed store it also reads
// from the oldest live record's time on, and counts. Prints each median and each rep's figure, ms
// (a rep's read walks the index entries of the records the reps before it deleted).
(async () => {
  await new Promise((ok) => { const r = indexedDB.deleteDatabase("probe-drain"); r.onsuccess = r.onerror = r.onblocked = ok; });
  const db = await new Promise((ok, no) => {
    const r = indexedDB.open("probe-drain", 1);
    r.onupgradeneeded = () => {
      const d = r.result;
      d.createObjectStore("indexed", { keyPath: ["queue", "key"] }).createIndex("order", ["queue", "enqueuedAt", "key"]);
      d.createObjectStore("plain", { keyPath: ["queue", "key"] });
    };
    r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
  });
  const N = 1000;
  const records = () => {
    const t0 = Date.now();
    return Array.from({ length: N }, (_, i) => {
      const id = crypto.randomUUID();
      const body = JSON.stringify({ id, title: "Bench post " + i, location: "Somewhere" });
      // Time-ordered keys, as bgsync's: the range covers exactly these.
      const key = (t0 + i).toString(16).padStart(12, "0") + "-" + crypto.randomUUID().slice(13);
      return { queue: "probe", key, method: "POST", url: "/api/posts", headers: [], body, enqueuedAt: t0 + i, attempts: 0, notBefore: 0, lastError: null };
    });
  };
  const done = (tx) => new Promise((ok, no) => { tx.oncomplete = ok; tx.onerror = tx.onabort = () => no(tx.error); });
  const req = (r) => new Promise((ok, no) => { r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
  const relaxed = (store) => db.transaction(store, "readwrite", { durability: "relaxed" });
  const fill = async (store) => {
    const list = records();
    const tx = db.transaction(store, "readwrite");
    for (const r of list) tx.objectStore(store).put(r);
    await done(tx);
    return list;
  };
  // The queue's part of either store or index (arrays sort after strings and numbers).
  const range = IDBKeyRange.bound(["probe"], ["probe", []]);
  const times = {};
  const timed = async (name, work) => {
    const t = performance.now();
    const result = await work();
    (times[name] ||= []).push(performance.now() - t);
    return result;
  };
  for (let rep = 0; rep < 10; rep++) {
    for (const store of rep % 2 ? ["indexed", "plain"] : ["plain", "indexed"]) {
      const list = await fill(store);
      const source = () => {
        const s = db.transaction(store).objectStore(store);
        return store === "indexed" ? s.index("order") : s;
      };
      const read = await timed(store + " getAll", () => req(source().getAll(range, N)));
      if (store === "indexed") {
        // The same read from the oldest live record's time on: the deleted
        // records' index entries below it are not walked.
        const from = IDBKeyRange.bound(["probe", list[0].enqueuedAt], ["probe", []]);
        const again = await timed(store + " getAll from the oldest live time", () => req(source().getAll(from, N)));
        if (again.length !== read.length) throw new Error("read " + again.length);
        await timed(store + " count", () => req(db.transaction(store).objectStore(store).count(range)));
      }
      const text = await timed(store + " stringify", () => JSON.stringify(read));
      if (text.length < 1000) throw new Error("read nothing");
      await timed(store + " range delete", () => {
        const del = relaxed(store);
        const keys = read.map((r) => [r.queue, r.key]).sort((a, b) => indexedDB.cmp(a, b));
        del.objectStore(store).delete(IDBKeyRange.bound(keys[0], keys[keys.length - 1]));
        return done(del);
      });
      // And one delete a key, as where keys are not one range.
      const again = await fill(store);
      await timed(store + " delete each", () => {
        const del = relaxed(store);
        for (const r of again) del.objectStore(store).delete([r.queue, r.key]);
        return done(del);
      });
      const left = await req(db.transaction(store).objectStore(store).count());
      if (left !== 0) throw new Error(store + ": " + left + " left");
    }
  }
  const med = (a) => { const s = [...a].sort((x, y) => x - y); return +s[s.length >> 1].toFixed(2); };
  const out = {};
  for (const [n, a] of Object.entries(times)) out[n] = med(a);
  out.each = Object.fromEntries(Object.entries(times).map(([n, a]) => [n, a.map((x) => +x.toFixed(1))]));
  db.close();
  return out;
})()

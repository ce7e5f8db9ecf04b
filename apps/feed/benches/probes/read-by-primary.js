// Probe for the sync benchmark's page (BGSYNC_BENCH_PROBE=apps/feed/benches/probes/read-by-primary.js
// cargo bench -p feed --bench sync): what a queue's 1,000 records cost to read, and to delete, by
// where its order lives. "index": bgsync's store (keyed [queue, key], read in queue order through
// the index `order` = [queue, enqueuedAt, key]); "primary": keyed [queue, enqueuedAt, key] (queue
// order is the key's), with an index `byKey` = [queue, key] for the lookups by key. Each rep fills
// both stores of a fresh database (not timed), reads each with one getAll in queue order, then
// deletes what it read (one range delete each); the two alternate which goes first. Prints medians
// and each rep's figure, ms.
(async () => {
  const shapes = ["index", "primary"];
  const drop = (name) => new Promise((ok) => { const r = indexedDB.deleteDatabase(name); r.onsuccess = r.onerror = r.onblocked = ok; });
  const fresh = async (name) => {
    await drop(name);
    return new Promise((ok, no) => {
      const r = indexedDB.open(name, 1);
      r.onupgradeneeded = () => {
        r.result.createObjectStore("index", { keyPath: ["queue", "key"] }).createIndex("order", ["queue", "enqueuedAt", "key"]);
        r.result.createObjectStore("primary", { keyPath: ["queue", "enqueuedAt", "key"] }).createIndex("byKey", ["queue", "key"], { unique: true });
      };
      r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
    });
  };
  const N = 1000;
  const done = (tx) => new Promise((ok, no) => { tx.oncomplete = ok; tx.onerror = tx.onabort = () => no(tx.error); });
  const req = (r) => new Promise((ok, no) => { r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
  const range = IDBKeyRange.bound(["probe"], ["probe", []]);
  let t0 = Date.now();
  const record = (i) => {
    t0++;
    const key = t0.toString(16).padStart(12, "0") + "-" + crypto.randomUUID().slice(13);
    const body = JSON.stringify({ id: crypto.randomUUID(), title: "Bench post " + i, location: "Somewhere" });
    return { queue: "probe", key, enqueuedAt: t0, method: "POST", url: "/api/posts", headers: [], body, attempts: 0, notBefore: 0, lastError: null };
  };
  const times = {};
  const note = (name, t) => (times[name] ||= []).push(performance.now() - t);
  for (let rep = 0; rep < 12; rep++) {
    const db = await fresh("probe-read-by-primary");
    const records = Array.from({ length: N }, (_, i) => record(i));
    for (const shape of shapes) {
      const fill = db.transaction(shape, "readwrite");
      for (const r of records) fill.objectStore(shape).put(r);
      await done(fill);
    }
    for (const shape of rep % 2 ? [...shapes].reverse() : shapes) {
      let t = performance.now();
      const tx = db.transaction(shape);
      const store = tx.objectStore(shape);
      const read = await req(shape === "index" ? store.index("order").getAll(range, N) : store.getAll(range, N));
      note(shape + " read", t);
      if (read.length !== N) throw new Error(shape + ": read " + read.length);
      t = performance.now();
      const del = db.transaction(shape, "readwrite", { durability: "relaxed" });
      const first = read[0], last = read[N - 1];
      if (shape === "index") del.objectStore(shape).delete(IDBKeyRange.bound(["probe", first.key], ["probe", last.key]));
      else del.objectStore(shape).delete(IDBKeyRange.bound(["probe", first.enqueuedAt, first.key], ["probe", last.enqueuedAt, last.key]));
      await done(del);
      note(shape + " delete", t);
    }
    db.close();
  }
  await drop("probe-read-by-primary");
  const med = (a) => { const s = [...a].sort((x, y) => x - y); return +s[s.length >> 1].toFixed(2); };
  const out = {};
  for (const [n, a] of Object.entries(times)) out[n] = med(a);
  out.each = Object.fromEntries(Object.entries(times).map(([n, a]) => [n, a.map((x) => +x.toFixed(1))]));
  return out;
})()

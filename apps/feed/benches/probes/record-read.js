// Probe for the sync benchmark's page (BGSYNC_BENCH_PROBE=apps/feed/benches/probes/record-read.js
// cargo bench -p feed --bench sync): what reading 1,000 queued records through the queue-order
// index costs by the record's shape. "fields": bgsync's record (ten fields); "text": the fields
// the keys need (queue, key, enqueuedAt) and the rest as one JSON text. Each rep fills a store of
// each shape in a fresh database (not timed) and reads it with getAll on the index; the two
// shapes alternate which goes first. Prints each median and each rep's figure, ms.
(async () => {
  const shapes = ["fields", "text"];
  const drop = (name) => new Promise((ok) => { const r = indexedDB.deleteDatabase(name); r.onsuccess = r.onerror = r.onblocked = ok; });
  // A fresh database each rep: no deleted records' index entries to walk.
  const fresh = async (name) => {
    await drop(name);
    return new Promise((ok, no) => {
      const r = indexedDB.open(name, 1);
      r.onupgradeneeded = () => {
        for (const shape of shapes) r.result.createObjectStore(shape, { keyPath: ["queue", "key"] }).createIndex("order", ["queue", "enqueuedAt", "key"]);
      };
      r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
    });
  };
  const N = 1000;
  const done = (tx) => new Promise((ok, no) => { tx.oncomplete = ok; tx.onerror = tx.onabort = () => no(tx.error); });
  const req = (r) => new Promise((ok, no) => { r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
  const range = IDBKeyRange.bound(["probe"], ["probe", []]);
  let t0 = Date.now();
  const record = (shape, i) => {
    t0++;
    const key = t0.toString(16).padStart(12, "0") + "-" + crypto.randomUUID().slice(13);
    const body = JSON.stringify({ id: crypto.randomUUID(), title: "Bench post " + i, location: "Somewhere" });
    const rest = { method: "POST", url: "/api/posts", headers: [], body, attempts: 0, notBefore: 0, lastError: null };
    return shape === "fields" ? { queue: "probe", key, enqueuedAt: t0, ...rest } : { queue: "probe", key, enqueuedAt: t0, data: JSON.stringify(rest) };
  };
  const times = {};
  for (let rep = 0; rep < 12; rep++) {
    const db = await fresh("probe-record-read");
    for (const shape of rep % 2 ? [...shapes].reverse() : shapes) {
      const fill = db.transaction(shape, "readwrite");
      for (let i = 0; i < N; i++) fill.objectStore(shape).put(record(shape, i));
      await done(fill);
      const t = performance.now();
      const read = await req(db.transaction(shape).objectStore(shape).index("order").getAll(range, N));
      (times[shape] ||= []).push(performance.now() - t);
      if (read.length !== N) throw new Error(shape + ": read " + read.length);
    }
    db.close();
  }
  await drop("probe-record-read");
  const med = (a) => { const s = [...a].sort((x, y) => x - y); return +s[s.length >> 1].toFixed(2); };
  const out = {};
  for (const [n, a] of Object.entries(times)) out[n] = med(a);
  out.each = Object.fromEntries(Object.entries(times).map(([n, a]) => [n, a.map((x) => +x.toFixed(1))]));
  return out;
})()

// Probe for the sync benchmark's page (BGSYNC_BENCH_PROBE=apps/feed/benches/probes/record-shape.js
// cargo bench -p feed --bench sync): does a queue record's shape cost enqueue anything? 10 x 50
// records of each shape, interleaved, one read-write transaction each, into bgsync's own store:
// bgsync's full record and one without the fields that hold their defaults. Prints the
// median and mean ms of each; the records are deleted after.
(async () => {
  const db = await new Promise((ok, no) => { const r = indexedDB.open("bgsync"); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
  const body = JSON.stringify({ id: "x", title: "Bench post 1", location: "Somewhere", image: "" });
  const full = () => ({ queue: "probe", key: crypto.randomUUID(), method: "POST", url: "/api/posts", headers: [], body, enqueuedAt: Date.now() + Math.random(), attempts: 0, notBefore: 0, lastError: null });
  const lean = () => ({ queue: "probe", key: crypto.randomUUID(), method: "POST", url: "/api/posts", body, enqueuedAt: Date.now() + Math.random() });
  const put = (record) => new Promise((ok, no) => { const tx = db.transaction("entries", "readwrite"); tx.objectStore("entries").put(record); tx.oncomplete = ok; tx.onerror = () => no(tx.error); });
  const times = { full: [], lean: [] };
  for (let round = 0; round < 20; round++) {
    for (const [name, make] of round % 2 ? [["full", full], ["lean", lean]] : [["lean", lean], ["full", full]]) {
      for (let i = 0; i < 50; i++) { const t = performance.now(); await put(make()); times[name].push(performance.now() - t); }
    }
  }
  const med = (a) => { const s = [...a].sort((x, y) => x - y); return +s[s.length >> 1].toFixed(3); };
  const mean = (a) => +(a.reduce((x, y) => x + y, 0) / a.length).toFixed(3);
  await new Promise((ok) => { const tx = db.transaction("entries", "readwrite"); tx.objectStore("entries").delete(IDBKeyRange.bound(["probe", ""], ["probe", "\uffff"])); tx.oncomplete = ok; });
  return { full: { median: med(times.full), mean: mean(times.full) }, lean: { median: med(times.lean), mean: mean(times.lean) } };
})()

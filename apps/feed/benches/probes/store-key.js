// Probe for the sync benchmark's page (BGSYNC_BENCH_PROBE=apps/feed/benches/probes/store-key.js
// cargo bench -p feed --bench sync): does the entries store's key or its index cost a write?
// One record a transaction into stores of a scratch database ("probe"): keyed by key, by
// [queue, key], the same with the order index, and the seed's three-field post keyed by id
// (seedlike) beside bgsync's record in the first store (seedlike-full). Prints each median, ms.
(async () => {
  await new Promise((ok) => { const r = indexedDB.deleteDatabase("probe"); r.onsuccess = r.onerror = r.onblocked = ok; });
  const db = await new Promise((ok, no) => {
    const r = indexedDB.open("probe", 1);
    r.onupgradeneeded = () => {
      const d = r.result;
      d.createObjectStore("plain", { keyPath: "key" });
      d.createObjectStore("pair", { keyPath: ["queue", "key"] });
      d.createObjectStore("indexed", { keyPath: ["queue", "key"] }).createIndex("order", ["queue", "enqueuedAt", "key"]);
      d.createObjectStore("seedlike", { keyPath: "id" });
    };
    r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
  });
  const body = JSON.stringify({ id: "x", title: "Bench post 1", location: "Somewhere", image: "" });
  const full = () => ({ queue: "probe", key: crypto.randomUUID(), method: "POST", url: "/api/posts", headers: [], body, enqueuedAt: Date.now() + Math.random(), attempts: 0, notBefore: 0, lastError: null });
  const seed = () => ({ id: crypto.randomUUID(), title: "Bench post 1", location: "Somewhere" });
  const put = (store, record) => new Promise((ok, no) => { const tx = db.transaction(store, "readwrite"); tx.objectStore(store).put(record); tx.oncomplete = ok; tx.onerror = () => no(tx.error); });
  const kinds = [["plain", full], ["pair", full], ["indexed", full], ["seedlike", seed], ["seedlike-full", full]];
  const times = {};
  for (const [n] of kinds) times[n] = [];
  for (let round = 0; round < 12; round++) {
    const order = round % 2 ? kinds : [...kinds].reverse();
    for (const [name, make] of order) {
      const store = name === "seedlike-full" ? "plain" : name;
      for (let i = 0; i < 50; i++) { const t = performance.now(); await put(store, make()); times[name].push(performance.now() - t); }
    }
  }
  const med = (a) => { const s = [...a].sort((x, y) => x - y); return +s[s.length >> 1].toFixed(3); };
  const out = {};
  for (const [n] of kinds) out[n] = med(times[n]);
  db.close();
  return out;
})()

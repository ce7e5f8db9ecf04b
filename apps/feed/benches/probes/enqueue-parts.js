// Probe for the sync benchmark's page (BGSYNC_BENCH_PROBE=apps/feed/benches/probes/enqueue-parts.js
// cargo bench -p feed --bench sync): where an enqueue's time goes. Interleaved, 10 x 40 of each:
// bgsync's enqueue; the seed's (a put, then a registration); a put alone into bgsync's store; a
// registration alone; a put and a registration together; the lock look alone; a put, a look and
// a registration together (bgsync's calls without its Rust). Prints each median and mean, ms;
// the probe's records are deleted after.
(async () => {
  const db = await new Promise((ok, no) => { const r = indexedDB.open("bgsync"); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
  const sw = await navigator.serviceWorker.ready;
  const body = () => JSON.stringify({ id: crypto.randomUUID(), title: "Bench post 1", location: "Somewhere" });
  const record = () => ({ queue: "probe", key: crypto.randomUUID(), method: "POST", url: "/api/posts", headers: [], body: body(), enqueuedAt: Date.now() + Math.random(), attempts: 0, notBefore: 0, lastError: null });
  const put = () => new Promise((ok, no) => { const tx = db.transaction("entries", "readwrite"); tx.objectStore("entries").put(record()); tx.oncomplete = ok; tx.onerror = () => no(tx.error); });
  const putCommit = () => new Promise((ok, no) => { const tx = db.transaction("entries", "readwrite"); tx.objectStore("entries").put(record()); tx.commit(); tx.oncomplete = ok; tx.onerror = () => no(tx.error); });
  const register = () => sw.sync.register("probe-tag");
  const kinds = {
    bgsync: () => wasm_bindgen.enqueue("sync-posts", { url: "/api/posts", body: body() }),
    seed: () => put().then(register),
    put,
    putCommit,
    register,
    putAndRegister: () => Promise.all([put(), register()]),
    look: () => navigator.locks.query(),
    putLookRegister: () => { const p = put(); const l = navigator.locks.query(); return Promise.all([p, register(), l]); },
    putCommitLookRegister: () => { const p = putCommit(); const l = navigator.locks.query(); return Promise.all([p, register(), l]); },
    broadcast: () => { new BroadcastChannel("probe").postMessage({ type: "queued", key: crypto.randomUUID() }); return Promise.resolve(); },
  };
  const times = {};
  for (const name in kinds) times[name] = [];
  const names = Object.keys(kinds);
  for (let round = 0; round < 10; round++) {
    const order = round % 2 ? names : [...names].reverse();
    for (const name of order) {
      for (let i = 0; i < 40; i++) { const t = performance.now(); await kinds[name](); times[name].push(performance.now() - t); }
    }
  }
  const med = (a) => { const s = [...a].sort((x, y) => x - y); return +s[s.length >> 1].toFixed(3); };
  const mean = (a) => +(a.reduce((x, y) => x + y, 0) / a.length).toFixed(3);
  await new Promise((ok) => { const tx = db.transaction("entries", "readwrite"); tx.objectStore("entries").delete(IDBKeyRange.bound(["probe", ""], ["probe", "\uffff"])); tx.oncomplete = ok; });
  const out = {};
  for (const name of names) out[name] = { median: med(times[name]), mean: mean(times[name]) };
  return out;
})()

// Probe for the sync benchmark's page (BGSYNC_BENCH_PROBE=apps/feed/benches/probes/reopen.js
// cargo bench -p feed --bench sync): whether Chromium sweeps the index entries of deleted records
// when the database is closed and opened again, as a worker the browser stopped and woke does.
// Delivers 8 × 1,000 records (read through the queue-order index, range delete), fills 1,000
// more, then times a read of them from the queue's start: with the database open, after closing
// and opening it at once, after 3 s and after 20 s closed; then 8,000 more delivered, and the
// read again, at once and 20 s later with the database open; then, with all delivered, a cursor
// stepping back over the empty queue (a page's list, newest first) from its start and from after
// the last record. Prints ms.
(async () => {
  const name = "probe-reopen";
  await new Promise((ok) => { const r = indexedDB.deleteDatabase(name); r.onsuccess = r.onerror = r.onblocked = ok; });
  const open = () => new Promise((ok, no) => {
    const r = indexedDB.open(name, 1);
    r.onupgradeneeded = () => r.result.createObjectStore("q", { keyPath: ["queue", "key"] }).createIndex("order", ["queue", "enqueuedAt", "key"]);
    r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
  });
  let db = await open();
  const N = 1000;
  const done = (tx) => new Promise((ok, no) => { tx.oncomplete = ok; tx.onerror = tx.onabort = () => no(tx.error); });
  const req = (r) => new Promise((ok, no) => { r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
  const range = IDBKeyRange.bound(["probe"], ["probe", []]);
  let t0 = Date.now();
  const fill = async () => {
    const tx = db.transaction("q", "readwrite");
    for (let i = 0; i < N; i++) {
      t0++;
      const key = t0.toString(16).padStart(12, "0") + "-" + crypto.randomUUID().slice(13);
      tx.objectStore("q").put({ queue: "probe", key, method: "POST", url: "/api/posts", headers: [], body: JSON.stringify({ id: crypto.randomUUID(), title: "Bench post " + i, location: "Somewhere" }), enqueuedAt: t0, attempts: 0, notBefore: 0, lastError: null });
    }
    await done(tx);
  };
  const read = async () => { const t = performance.now(); const r = await req(db.transaction("q").objectStore("q").index("order").getAll(range, N)); return [r, +(performance.now() - t).toFixed(1)]; };
  const drain = async () => {
    const [r] = await read();
    const tx = db.transaction("q", "readwrite", { durability: "relaxed" });
    tx.objectStore("q").delete(IDBKeyRange.bound(["probe", r[0].key], ["probe", r[r.length - 1].key]));
    await done(tx);
  };
  const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
  const out = {};
  for (let i = 0; i < 8; i++) { await fill(); await drain(); }
  await fill();
  out.open8k = (await read())[1];
  out.open8kAgain = (await read())[1];
  db.close(); db = await open();
  out.reopenedAtOnce = (await read())[1];
  db.close(); await sleep(3000); db = await open();
  out.reopenedAfter3s = (await read())[1];
  db.close(); await sleep(20000); db = await open();
  out.reopenedAfter20s = (await read())[1];
  await drain();
  for (let i = 0; i < 8; i++) { await fill(); await drain(); }
  await fill();
  out.again8k = (await read())[1];
  await sleep(20000);
  out.open20sLater = (await read())[1];
  // A page's list of the queue, newest first, once it is empty: a cursor
  // stepping back from the queue's end, and from after the last record.
  const [last] = await read();
  await drain();
  const back = async (from) => {
    const t = performance.now();
    const cursor = db.transaction("q").objectStore("q").index("order").openCursor(from, "prev");
    await new Promise((ok, no) => { cursor.onsuccess = () => (cursor.result ? cursor.result.continue() : ok()); cursor.onerror = () => no(cursor.error); });
    return +(performance.now() - t).toFixed(1);
  };
  out.emptyListedFromStart = await back(range);
  const end = last[last.length - 1];
  out.emptyListedFromMark = await back(IDBKeyRange.bound(["probe", end.enqueuedAt, end.key], ["probe", []], true, false));
  db.close();
  return out;
})()

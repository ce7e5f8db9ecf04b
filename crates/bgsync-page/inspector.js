// bgsync's inspector: a live panel of what bgsync is doing in this browser.
//
//   <details data-bgsync-inspector><summary>Inspector</summary></details>
//   <script src="/bgsync-inspector.js" defer></script>   (served by bgsync-build's inspector files)
//
// draws the panel inside that <details> while it is open (nothing runs until
// then). Or by hand, once wasm_bindgen has loaded:
//   const panel = bgsyncInspector(element);   panel.close();   // stop watching
//
// It shows every declared queue with its entries (key, method, URL, attempts,
// next retry and why, Discard), the pause, the dead letters with their typed
// cause and Retry / Discard, the worker's last rounds with their phase
// timings, each feed's cursor and last pull, the batch endpoint this browser
// keeps, and the live event stream. It uses only bgsync's public JavaScript
// API (`inspect`, `subscribe`, `retryNow`, `discardQueued`, `retryDeadLetter`,
// `discardDeadLetter`) and the worker's status message. Everything is
// written as text, never as HTML: the entries are user data.
(function () {
  "use strict";

  const EVENTS_KEPT = 50;
  // Entries drawn per queue (the snapshot has the first 200 and the count:
  // a queue of thousands is counted, not read or drawn).
  const ROWS_SHOWN = 200;

  // The stylesheet beside this script (a page's CSP may forbid inline styles).
  const script = document.currentScript;
  const stylesheet = script && script.src ? script.src.replace(/\.js(\?.*)?$/, ".css") : null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "class") node.className = value;
      else if (name.startsWith("data-")) node.setAttribute(name, value);
      else if (name === "onclick") node.addEventListener("click", value);
      else node[name] = value;
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function ago(ms, now) {
    if (!ms) return "never";
    const s = Math.round((now - ms) / 1000);
    if (s < 1) return "just now";
    if (s < 120) return `${s} s ago`;
    if (s < 7200) return `${Math.round(s / 60)} min ago`;
    return new Date(ms).toLocaleString();
  }

  function nextRetry(entry, now, user) {
    // (A partial snapshot does not know who is signed in: `user` undefined.)
    if (entry.owner && user !== undefined && entry.owner !== user) return `waits for ${entry.owner} to sign in`;
    if (!entry.notBefore || entry.notBefore <= now) return entry.attempts ? "due now" : "queued";
    const s = Math.ceil((entry.notBefore - now) / 1000);
    return s < 120 ? `in ${s} s` : `in ${Math.round(s / 60)} min`;
  }

  function cause(dead) {
    const c = dead.cause || {};
    if (c.kind === "rejected") return `refused: ${c.status}`;
    if (c.kind === "too-many-attempts") return `gave up after ${c.attempts} attempts`;
    if (c.kind === "too-old") return `too old (${Math.round(c.ageMs / 3600000)} h)`;
    return "dead";
  }

  function short(key) {
    return key.length > 13 ? `${key.slice(0, 8)}…${key.slice(-4)}` : key;
  }

  // The page module answers inspect() through bgsync's fallback module,
  // loaded on first use. Where that cannot load (offline, before any
  // inspector was opened online here), what the page module reads itself:
  // each queue's first entries and count, its pause, the dead letters.
  async function partialSnapshot(api, error) {
    const [status, deadLetters] = await Promise.all([api.status(), api.deadLetters()]);
    const queues = await Promise.all(Object.entries(status.queues).map(async ([name, state]) =>
      ({ name, queued: state.queued, paused: state.paused, entries: await api.queued(name, { limit: ROWS_SHOWN }) })));
    return { online: status.online, queues, deadLetters, undeclared: {}, feeds: [], advertisement: null,
      partial: String((error && error.message) || error) };
  }

  // The worker's status (its last rounds), or null without a worker.
  function workerStatus() {
    const controller = navigator.serviceWorker && navigator.serviceWorker.controller;
    if (!controller) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), 1000);
      const onMessage = (event) => {
        if (event.data && event.data.type === "status") {
          clearTimeout(timer);
          navigator.serviceWorker.removeEventListener("message", onMessage);
          resolve(event.data);
        }
      };
      navigator.serviceWorker.addEventListener("message", onMessage);
      controller.postMessage({ type: "status" });
    });
  }

  // Every <details data-bgsync-inspector>: the panel is drawn while it is
  // open, in a <div> of its own, and stops watching when it is closed.
  function attach(details) {
    let panel = null;
    details.addEventListener("toggle", () => {
      if (details.open && !panel) {
        let body = details.querySelector(":scope > .bgsync-inspector");
        if (!body) details.append((body = el("div")));
        panel = self.bgsyncInspector(body);
      } else if (!details.open && panel) {
        panel.close();
        panel = null;
      }
    });
  }
  function attachAll() {
    document.querySelectorAll("details[data-bgsync-inspector]").forEach(attach);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", attachAll);
  else attachAll();

  self.bgsyncInspector = function bgsyncInspector(root, api) {
    // The no-modules glue declares `wasm_bindgen` with `let`: a global
    // binding, not a property of `self`.
    // eslint-disable-next-line no-undef
    api = api || (typeof wasm_bindgen !== "undefined" ? wasm_bindgen : undefined);
    if (!root || !api || typeof api.inspect !== "function") {
      throw new Error("bgsyncInspector(element, api): load bgsync's page module (wasm_bindgen) first");
    }
    if (stylesheet && !document.querySelector(`link[href="${stylesheet}"]`)) {
      document.head.append(el("link", { rel: "stylesheet", href: stylesheet }));
    }
    root.classList.add("bgsync-inspector");
    const events = [];
    let snapshot = null;
    let worker = null;
    let closed = false;
    let pending = null;

    function section(title, count, ...body) {
      return el("section", { "data-section": title.toLowerCase().replace(/ /g, "-") },
        el("h3", {}, title, count === null ? null : el("span", { class: "count" }, ` ${count}`)), ...body);
    }

    function table(headings, rows, empty) {
      if (!rows.length) return el("p", { class: "empty" }, empty);
      return el("table", {}, el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
    }

    function act(label, action, work) {
      return el("button", {
        type: "button", "data-action": action,
        onclick: async (event) => {
          event.target.disabled = true;
          try { await work(); } catch (error) { console.error("bgsync inspector:", error); }
          refresh();
        },
      }, label);
    }

    function draw() {
      if (!snapshot) return;
      const now = Date.now();
      const queues = snapshot.queues.map((queue) => section(`Queue ${queue.name}`, queue.queued,
        el("p", { class: "meta" },
          snapshot.partial ? "" : `tag ${queue.tag} · ${queue.ordered ? "ordered" : "unordered"} · ${queue.batching ? "batched" : "one request per entry"} · ${queue.maxInFlight} at a time · ${queue.timeoutMs / 1000} s a request · up to ${queue.maxAttempts} attempts`,
          queue.paused ? el("strong", { class: "paused", "data-paused": String(queue.paused) }, ` · paused by ${queue.paused}: waiting for setCredentials`) : null),
        table(["request", "attempts", "next retry", "why", ""], queue.entries.slice(0, ROWS_SHOWN).map((entry) =>
          el("tr", { "data-key": entry.key },
            el("td", {}, `${entry.method} ${entry.url}`, el("br"), el("small", { title: entry.key }, short(entry.key) + (entry.owner ? ` · ${entry.owner}'s` : ""))),
            el("td", { "data-field": "attempts" }, entry.attempts),
            el("td", { "data-field": "next-retry" }, nextRetry(entry, now, snapshot.user)),
            el("td", { "data-field": "why" }, entry.lastError || ""),
            // Taken out of the queue, never sent (after a round in progress ends).
            el("td", { class: "actions" }, act("Discard", "discard", () => api.discardQueued(queue.name, entry.key))))),
          "Nothing waiting."),
        queue.queued > ROWS_SHOWN ? el("p", { class: "meta" }, `and ${queue.queued - ROWS_SHOWN} more`) : null));
      const dead = section("Dead letters", snapshot.deadLetters.length,
        table(["request", "cause", "reason", "when", ""], snapshot.deadLetters.map((d) =>
          el("tr", { "data-key": d.key },
            el("td", {}, `${d.method} ${d.url}`, el("br"), el("small", { title: d.key }, `${d.queue} · ${short(d.key)}`)),
            el("td", { "data-field": "cause" }, cause(d)),
            el("td", { "data-field": "reason" }, d.reason),
            el("td", {}, ago(d.at, now)),
            el("td", { class: "actions" },
              act("Retry", "retry", () => api.retryDeadLetter(d.key)),
              act("Discard", "discard", () => api.discardDeadLetter(d.key))))), "None."));
      const undeclared = Object.entries(snapshot.undeclared || {});
      const stranded = undeclared.length ? section("Undeclared queues", undeclared.length,
        el("p", { class: "meta" }, "Entries stored under queue names this app does not declare: nothing sends them. " +
          "Declare the queue again, or name it in formerly of the queue that took its place."),
        table(["queue", "entries"], undeclared.map(([name, count]) =>
          el("tr", { "data-queue": name }, el("td", {}, name), el("td", { "data-field": "entries" }, count))), "")) : null;
      const rounds = (worker && worker.rounds) || [];
      const roundsSection = section("Worker rounds", rounds.length,
        el("p", { class: "meta" }, worker
          ? `${worker.runtime || "worker"} · cold start ${worker.coldStartMs ? worker.coldStartMs.toFixed(1) + " ms" : "unknown"}` +
            (worker.startSteps && worker.startSteps.compiled
              ? ` (bootstrap at ${worker.startSteps.bootstrap.toFixed(1)}, wasm read at ${worker.startSteps.wasmRead.toFixed(1)}, compiled at ${worker.startSteps.compiled.toFixed(1)})`
              : "") +
            (worker.wasmMemoryBytes ? ` · wasm memory ${(worker.wasmMemoryBytes / 1048576).toFixed(1)} MiB` : "")
          : "No worker controls this page."),
        table(["when", "queue", "delivered", "phases (ms)"], rounds.slice().reverse().map((round) =>
          el("tr", {},
            el("td", {}, ago(round.at, now)),
            el("td", {}, round.queue),
            el("td", {}, round.pages > 1 ? `${round.delivered} (queue read in ${round.pages} pages)` : round.delivered),
            el("td", { class: "phases" }, round.phases.map(([phase, ms]) => `${phase} ${ms.toFixed(1)}`).join(" · ")))),
          "No round has sent anything in this worker yet."));
      const ad = snapshot.advertisement;
      const feeds = snapshot.partial ? null : section("Feeds", snapshot.feeds.length,
        table(["feed", "url", "cursor", "last pull"], snapshot.feeds.map((feed) =>
          el("tr", {}, el("td", {}, feed.name), el("td", {}, feed.url),
            el("td", { "data-field": "cursor" }, feed.cursor || "none yet"),
            el("td", {}, ago(feed.lastSuccess, now)))), "No feed declared."),
        el("p", { class: "meta" }, "Batch endpoint: ", ad && ad.batch
          ? `${ad.batch.url} (up to ${ad.batch.max_entries} entries), kept until ${new Date(ad.freshUntil).toLocaleTimeString()}`
          : ad ? "the server offers none" : "not learnt yet"));
      const stream = section("Events", null,
        events.length
          ? el("ul", { class: "events" }, events.map(([at, event]) =>
            el("li", { "data-type": event.type },
              el("time", {}, new Date(at).toLocaleTimeString()), " ", event.type, event.queue ? ` ${event.queue}` : "",
              event.key ? ` ${short(event.key)}` : "", event.keys ? ` ${event.keys.length} entr${event.keys.length === 1 ? "y" : "ies"}` : "",
              event.error ? ` (${event.error})` : "", event.reason ? ` (${event.reason})` : "")))
          : el("p", { class: "empty" }, "Nothing yet: events appear here as they happen, from every tab and the worker."));
      const header = el("div", { class: "bar" },
        el("strong", {}, "bgsync inspector"),
        el("span", { "data-field": "online" }, snapshot.online ? " online" : " offline"),
        act("Retry now", "retry-now", () => api.retryNow()));
      const partial = snapshot.partial ? el("p", { class: "error", "data-field": "partial" },
        `Queues and dead letters only (no policies, feeds or batch endpoint): ${snapshot.partial}`) : null;
      root.replaceChildren(...[header, partial, ...queues, dead, stranded, roundsSection, feeds, stream].filter(Boolean));
    }

    // inspect(), or the partial view when it fails or has not answered
    // within 5 s (the fallback module's first load over a network that
    // does not answer); a later refresh takes it once it has loaded.
    function fullOrPartial() {
      let timer;
      const late = new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error("bgsync's fallback module, which answers inspect(), has not loaded within 5 s")), 5000);
      });
      return Promise.race([api.inspect(), late])
        .catch((error) => partialSnapshot(api, error))
        .finally(() => clearTimeout(timer));
    }

    async function refresh() {
      if (closed) return;
      try {
        [snapshot, worker] = await Promise.all([fullOrPartial(), workerStatus()]);
        root.dataset.state = "ready";
      } catch (error) {
        root.dataset.state = "failed";
        root.replaceChildren(el("p", { class: "error" }, `bgsync inspector: ${error}`));
        return;
      }
      draw();
    }

    // Events redraw soon (many come at once); a timer keeps "in 12 s" true.
    function soon() {
      if (!pending) pending = setTimeout(() => { pending = null; refresh(); }, 150);
    }
    const unsubscribe = api.subscribe((event) => {
      events.unshift([Date.now(), event]);
      events.length = Math.min(events.length, EVENTS_KEPT);
      soon();
    });
    const ticker = setInterval(refresh, 2000);
    refresh();
    return {
      refresh,
      close() {
        closed = true;
        clearInterval(ticker);
        clearTimeout(pending);
        unsubscribe();
      },
    };
  };
})();

// The tasks page, in plain JavaScript on bgsync's JavaScript API. The list
// is the pulled feed "tasks" (IndexedDB, so it opens offline) with the
// user's own changes that are still queued laid over it.
"use strict";

const tasks = {
  // Changes queued and not yet sent: key -> {id, method, change}, read
  // back from bgsync's queue at start (so a reload still shows them).
  pending: new Map(),

  async start() {
    await wasm_bindgen({ module_or_path: "/__BGSYNC__.wasm" });
    wasm_bindgen.configure(self.BGSYNC_CONFIG);
    await wasm_bindgen.registerWorker("/sw.js");
    wasm_bindgen.subscribe((event) => {
      if (["sent", "dead-lettered", "discarded"].includes(event.type)) tasks.pending.delete(event.key);
      if (["sent", "pulled", "dead-lettered", "discarded", "drained", "paused", "resumed"].includes(event.type)) tasks.render();
    });
    addEventListener("online", () => tasks.refresh());
    document.querySelector("#new-task").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.querySelector("#title");
      const title = input.value.trim();
      if (title) tasks.put(crypto.randomUUID(), { title, done: false }).then(() => (input.value = ""));
    });
    for (const entry of await wasm_bindgen.queued("edits")) {
      tasks.pending.set(entry.key, { id: tasks.idOf(entry), method: entry.method, change: entry.body ? JSON.parse(entry.body) : null });
    }
    await tasks.render();
    await tasks.refresh();
    document.querySelector("#status").dataset.ready = "true";
  },

  // Why the last pull failed when it reached the server (the site's
  // storage full, the feed answering an error), else null.
  pullError: null,

  // Asks the server what changed (offline, the list stays as it was).
  async refresh() {
    try {
      await wasm_bindgen.pull("tasks");
      tasks.pullError = null;
    } catch (error) {
      // Not reached (the network, the deadline): the pulled list is what we
      // show, and that is no error. Reached and failed: say why.
      const unreached = error instanceof TypeError || ["AbortError", "TimeoutError"].includes(error && error.name);
      tasks.pullError = unreached ? null : (error && (error.message || error.name)) || String(error);
    }
    await tasks.render();
  },

  // A change the server refused for good (a dead letter): what it was, in
  // words, with the task's title where it is known.
  describe(dead, titles) {
    const id = tasks.idOf(dead);
    let change = {};
    try {
      const parsed = dead.body ? JSON.parse(dead.body) : {};
      if (parsed && typeof parsed === "object") change = parsed;
    } catch (error) {
      // Not JSON: described by its method alone.
    }
    const quote = (text) => "\u201c" + text + "\u201d";
    const known = quote(titles.get(id) || change.title || id);
    if (dead.method === "DELETE") return "Deleting " + known;
    if (dead.method === "PUT") return "Adding " + quote(change.title || id);
    const steps = [];
    if (typeof change.title === "string") steps.push("renaming " + known + " to " + quote(change.title));
    if (typeof change.done === "boolean") steps.push("marking " + (steps.length ? "it" : known) + (change.done ? " done" : " not done"));
    const what = steps.join(" and ") || "changing " + known;
    return what[0].toUpperCase() + what.slice(1);
  },

  async queue(method, id, change) {
    const request = { method, url: "/api/tasks/" + encodeURIComponent(id) };
    if (change) request.body = JSON.stringify(change);
    try {
      const key = await wasm_bindgen.enqueue("edits", request);
      tasks.pending.set(key, { id, method, change });
      await wasm_bindgen.enqueue("events", { url: "/api/events", body: JSON.stringify({ name: "task-" + method.toLowerCase() }) });
    } catch (error) {
      tasks.show(String(error));
    }
    await tasks.render();
  },

  put(id, task) {
    return tasks.queue("PUT", id, task);
  },
  patch(id, change) {
    return tasks.queue("PATCH", id, change);
  },
  // Deleting a task added here and not sent yet takes its changes back out
  // of the queue (from any tab's queueing): the server never hears of it.
  // Any other task gets a DELETE, queued behind its changes.
  async remove(id) {
    try {
      const changes = (await wasm_bindgen.queued("edits")).filter((entry) => tasks.idOf(entry) === id);
      if (changes.length && changes[0].method === "PUT") {
        // The last first, the PUT at the end: what a round sends meanwhile
        // goes in order, so a PUT that went (or went without an answer:
        // attempts above 0) is followed by the DELETE below.
        let put = null;
        for (const entry of changes.reverse()) {
          put = await wasm_bindgen.discardQueued("edits", entry.key);
          tasks.pending.delete(entry.key);
        }
        if (put && put.attempts === 0) return await tasks.render();
      }
    } catch (error) {
      tasks.show(String(error));
    }
    return tasks.queue("DELETE", id, null);
  },

  // The task a queued change or a dead letter is about (its URL ends in the id).
  idOf(entry) {
    return decodeURIComponent(entry.url.split("/").pop());
  },

  show(message) {
    const error = document.querySelector("#error");
    error.textContent = message;
    error.hidden = !message;
  },

  // The pulled tasks with the queued changes applied, in creation order.
  list(pulled) {
    const byId = new Map();
    for (const task of pulled) {
      if (!task.deleted) byId.set(task.id, { ...task });
    }
    for (const { id, method, change } of tasks.pending.values()) {
      if (method === "DELETE") byId.delete(id);
      else byId.set(id, { ...(byId.get(id) || { id, version: Infinity }), ...change, pending: true });
    }
    return [...byId.values()].sort((a, b) => a.version - b.version);
  },

  async render() {
    let pulled, status, dead;
    try {
      [pulled, status, dead] = await Promise.all([
        wasm_bindgen.feedItems("tasks"),
        wasm_bindgen.status(),
        wasm_bindgen.deadLetters(),
      ]);
    } catch (error) {
      tasks.show("Could not read the saved tasks: " + error);
      return;
    }
    const list = tasks.list(pulled);
    dead = dead.filter((d) => d.queue === "edits");
    const ul = document.querySelector("#tasks");
    ul.replaceChildren(
      ...list.map((task) => {
        const li = document.createElement("li");
        li.dataset.id = task.id;
        li.classList.toggle("done", !!task.done);
        if (task.pending) li.dataset.pending = "true";
        const box = document.createElement("input");
        box.type = "checkbox";
        box.checked = !!task.done;
        box.addEventListener("change", () => tasks.patch(task.id, { done: box.checked }));
        const title = document.createElement("span");
        title.className = "title";
        title.textContent = task.title;
        const remove = document.createElement("button");
        remove.textContent = "Delete";
        remove.addEventListener("click", () => tasks.remove(task.id));
        li.append(box, title, remove);
        return li;
      }),
    );
    // The changes the server refused, with why, to retry or let go.
    // (Deleted tasks too: a change to a task deleted elsewhere names it.)
    const titles = new Map(pulled.map((task) => [task.id, task.title]));
    document.querySelector("#not-saved").replaceChildren(
      ...dead.map((letter) => {
        const li = document.createElement("li");
        li.dataset.key = letter.key;
        const text = document.createElement("span");
        text.className = "reason";
        text.textContent = tasks.describe(letter, titles) + " failed: " + letter.reason;
        const act = (label, call) => {
          const button = document.createElement("button");
          button.textContent = label;
          button.dataset.action = label.toLowerCase();
          button.addEventListener("click", async () => {
            try {
              await call(letter.key);
            } catch (error) {
              tasks.show(String(error));
            }
            await tasks.render();
          });
          return button;
        };
        li.append(text, act("Retry", wasm_bindgen.retryDeadLetter), act("Discard", wasm_bindgen.discardDeadLetter));
        return li;
      }),
    );
    const indicator = document.querySelector("#status");
    const queued = status.queues.edits ? status.queues.edits.queued : 0;
    const [state, text] = status.paused
      ? ["paused", "Paused: sign in again"]
      : queued > 0
        ? ["pending", queued + " change(s) waiting to be sent"]
        : dead.length > 0
          ? ["failed", dead.length + " change(s) not saved (below)"]
          : tasks.pullError
            ? ["error", "Could not update the tasks: " + tasks.pullError]
            : ["synced", "All changes saved"];
    indicator.dataset.state = state;
    indicator.textContent = text;
  },
};

self.tasks = tasks;
tasks.start().catch((error) => tasks.show("The app could not start: " + error));

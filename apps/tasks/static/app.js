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
      if (event.type === "sent" || event.type === "dead-lettered") tasks.pending.delete(event.key);
      if (["sent", "pulled", "dead-lettered", "drained", "paused", "resumed"].includes(event.type)) tasks.render();
    });
    addEventListener("online", () => tasks.refresh());
    document.querySelector("#new-task").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.querySelector("#title");
      const title = input.value.trim();
      if (title) tasks.put(crypto.randomUUID(), { title, done: false }).then(() => (input.value = ""));
    });
    for (const entry of await wasm_bindgen.queued("edits")) {
      const id = decodeURIComponent(entry.url.split("/").pop());
      tasks.pending.set(entry.key, { id, method: entry.method, change: entry.body ? JSON.parse(entry.body) : null });
    }
    await tasks.render();
    await tasks.refresh();
    document.querySelector("#status").dataset.ready = "true";
  },

  // Asks the server what changed (offline, the list stays as it was).
  async refresh() {
    try {
      await wasm_bindgen.pull("tasks");
    } catch (error) {
      // Offline or the server is down: the pulled list is what we show.
    }
    await tasks.render();
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
  remove(id) {
    return tasks.queue("DELETE", id, null);
  },

  show(message) {
    const error = document.querySelector("#error");
    error.textContent = message;
    error.hidden = !message;
  },

  // The pulled tasks with the queued changes applied, in creation order.
  async list() {
    const byId = new Map();
    for (const task of await wasm_bindgen.feedItems("tasks")) {
      if (!task.deleted) byId.set(task.id, { ...task });
    }
    for (const { id, method, change } of tasks.pending.values()) {
      if (method === "DELETE") byId.delete(id);
      else byId.set(id, { ...(byId.get(id) || { id, version: Infinity }), ...change, pending: true });
    }
    return [...byId.values()].sort((a, b) => a.version - b.version);
  },

  async render() {
    let list, status;
    try {
      [list, status] = await Promise.all([tasks.list(), wasm_bindgen.status()]);
    } catch (error) {
      tasks.show("Could not read the saved tasks: " + error);
      return;
    }
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
    const indicator = document.querySelector("#status");
    const queued = status.queues.edits ? status.queues.edits.queued : 0;
    indicator.dataset.state = status.paused ? "paused" : queued > 0 ? "pending" : "synced";
    indicator.textContent = status.paused
      ? "Paused: sign in again"
      : queued > 0
        ? queued + " change(s) waiting to be sent"
        : "All changes saved";
  },
};

self.tasks = tasks;
tasks.start().catch((error) => tasks.show("The app could not start: " + error));

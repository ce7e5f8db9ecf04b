//! The feed page: the form, the snackbar, the list and the sync indicator.
//!
//! The list is rendered from IndexedDB only: the posts pulled from the
//! server's delta feed, the posts still queued (waiting), and the dead
//! letters (failed, with the server's reason). So it renders at once and
//! offline; pulls (on open and `online` when due, after a delivery, and by
//! the worker on `periodicsync`) bring what changed. Any change broadcast by
//! the worker re-renders it, so a post delivered in the background turns
//! into a sent one without a reload.

use crate::{feed, posts, POSTS_QUEUE, POSTS_URL};
use bgsync_web::client;
use bgsync_web::events::{EventKind, CHANNEL};
use bgsync_web::{pull, replay};
use feed_post::{FieldError, NewPost};
use js_sys::{Object, Reflect};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{BroadcastChannel, Document, Element, Event, HtmlFormElement, HtmlInputElement, MessageEvent};

const SNACKBAR_MS: i32 = 6000;

thread_local! {
    // Renders are async; only the newest one may write the list.
    static RENDER: Cell<u32> = const { Cell::new(0) };
    static SNACKBAR_TIMER: Cell<i32> = const { Cell::new(0) };
    static RETRY_TIMER: Cell<i32> = const { Cell::new(0) };
    // Whether a render is already scheduled (a burst of events renders once).
    static RENDER_SCHEDULED: Cell<bool> = const { Cell::new(false) };
    // Whether a delivery is under way (from the `sending` broadcast until
    // the queue drains or waits).
    static SENDING: Cell<bool> = const { Cell::new(false) };
}

pub fn start() {
    if let Err(e) = wire_up() {
        web_sys::console::error_2(&"feed: the page could not start".into(), &e);
    }
}

fn doc() -> Document {
    web_sys::window().and_then(|w| w.document()).expect("a page has a document")
}

fn by_id<T: JsCast>(id: &str) -> T {
    doc()
        .get_element_by_id(id)
        .unwrap_or_else(|| panic!("index.html has no #{id}"))
        .dyn_into()
        .unwrap_or_else(|_| panic!("#{id} has an unexpected element type"))
}

fn wire_up() -> Result<(), JsValue> {
    let window = web_sys::window().ok_or("no window")?;

    let form: HtmlFormElement = by_id("post-form");
    let on_submit = Closure::<dyn FnMut(Event)>::new(|event: Event| {
        event.prevent_default();
        spawn_local(submit());
    });
    form.add_event_listener_with_callback("submit", on_submit.as_ref().unchecked_ref())?;
    on_submit.forget();

    let list: Element = by_id("posts");
    let on_click = Closure::<dyn FnMut(Event)>::new(|event: Event| {
        let Some(button) = event.target().and_then(|t| t.dyn_into::<Element>().ok()) else { return };
        if let (Some(action), Some(key)) = (button.get_attribute("data-action"), button.get_attribute("data-key")) {
            // Once: a cancel waits for a round in progress to end.
            let _ = button.set_attribute("disabled", "");
            if action == "cancel" {
                button.set_text_content(Some("Cancelling…"));
            }
            spawn_local(post_action(action, key));
        }
    });
    list.add_event_listener_with_callback("click", on_click.as_ref().unchecked_ref())?;
    on_click.forget();

    let channel = BroadcastChannel::new(CHANNEL)?;
    // Every state is in IndexedDB (whoever delivers posts also pulls them),
    // so any change is a re-render.
    let on_change = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        for one in bgsync_web::events::unpack(&event.data()) {
            match EventKind::of(&one) {
                Some(EventKind::Sending) => SENDING.with(|s| s.set(true)),
                Some(EventKind::Drained | EventKind::RetryScheduled | EventKind::Paused | EventKind::DeadLettered) => {
                    SENDING.with(|s| s.set(false))
                }
                _ => {}
            }
        }
        schedule_render();
    });
    channel.set_onmessage(Some(on_change.as_ref().unchecked_ref()));
    on_change.forget();
    // The channel must outlive this function to keep receiving.
    std::mem::forget(channel);

    let on_online = Closure::<dyn FnMut()>::new(|| {
        spawn_local(async {
            refresh().await;
            fallback_replay().await;
        })
    });
    window.add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref())?;
    on_online.forget();
    let on_offline = Closure::<dyn FnMut()>::new(|| spawn_local(render()));
    window.add_event_listener_with_callback("offline", on_offline.as_ref().unchecked_ref())?;
    on_offline.forget();

    spawn_local(async {
        if client::has_service_worker() {
            if let Err(e) = client::register_worker("/sw.js").await {
                web_sys::console::warn_2(&"feed: no service worker, sending from the page".into(), &e);
            }
        }
        // What was pulled last time, at once, offline too; then what changed.
        render().await;
        refresh().await;
        fallback_replay().await;
        if let Ok(feed) = feed() {
            pull::register_periodic(&feed).await;
        }
    });
    Ok(())
}

thread_local! {
    // Whether the last pull reached the server (for the indicator).
    static REACHABLE: Cell<bool> = const { Cell::new(true) };
    // Why the last pull failed when it did reach the server (the site's
    // storage full, the feed answering an error): not "offline".
    static PULL_FAILED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Pulls the delta feed when the schedule says it is due (the app opened or
/// came online), and renders.
async fn refresh() {
    let Ok(feed) = feed() else { return render().await };
    let due = pull::schedule(&feed).await.map(|s| s.is_due(replay::now_ms())).unwrap_or(true);
    if due {
        let result = pull::pull(&feed).await;
        REACHABLE.with(|r| r.set(!result.as_ref().is_err_and(not_reached)));
        PULL_FAILED.with(|p| *p.borrow_mut() = result.err().filter(|e| !not_reached(e)).map(|e| describe(&e)));
    }
    render().await;
}

/// Whether a failed pull did not reach the server: `fetch`'s `TypeError`
/// (the network), or the request's deadline.
fn not_reached(e: &JsValue) -> bool {
    let name = Reflect::get(e, &"name".into()).ok().and_then(|n| n.as_string());
    e.is_instance_of::<js_sys::TypeError>() || matches!(name.as_deref(), Some("AbortError" | "TimeoutError"))
}

async fn submit() {
    let title: HtmlInputElement = by_id("title");
    let location: HtmlInputElement = by_id("location");
    let id = match client::random_uuid() {
        Ok(id) => id,
        Err(e) => return snackbar(&format!("Could not save the post: {}", describe(&e))),
    };
    let post = match NewPost::parse(&id, &title.value(), &location.value()) {
        Ok(post) => post,
        Err(errors) => return show_field_errors(&errors),
    };
    show_field_errors(&[]);
    let body = Object::new();
    for (k, v) in [("id", &post.id), ("title", &post.title), ("location", &post.location)] {
        let _ = Reflect::set(&body, &k.into(), &v.into());
    }
    let body = js_sys::JSON::stringify(&body).map(String::from).unwrap_or_default();
    let queue = match posts() {
        Ok(queue) => queue,
        Err(e) => return snackbar(&format!("Could not save the post: {}", describe(&e))),
    };
    let queued = match client::enqueue(&queue, POSTS_URL, body).await {
        Ok(queued) => queued,
        // Nothing was stored: keep what the user typed.
        Err(e) => return snackbar(&format!("Could not save the post: {}", describe(&e))),
    };
    by_id::<HtmlFormElement>("post-form").reset();
    if queued.registered {
        snackbar("Your post was saved for syncing");
    } else {
        // No sync registered (no Background Sync, no active worker yet, or
        // the registration failed): sent now, by the worker if one
        // controls the page, else here.
        snackbar("Your post was saved and will be sent when the server can be reached");
        replay_now().await;
    }
    render().await;
}

/// Where the browser has no Background Sync, the queue is replayed on page
/// load, on `online` and after each submit: by the worker when one
/// controls the page, else by the page itself.
async fn fallback_replay() {
    if !client::background_sync_usable().await {
        replay_now().await;
    }
}

/// Replays the queue now ("retry now"): in the worker when one controls
/// the page, else here ([`client::retry_now`], which pulls the feed after
/// delivering). Here, the retries follow on the engine's timers for as
/// long as the page stays open (the timer below; a round the worker took
/// reports nothing to retry).
pub async fn replay_now() {
    match client::retry_now().await {
        Ok(round) => {
            if let (true, Some(at)) = (round.needs_retry() && !round.paused, round.next_at_ms) {
                // One pending retry timer at a time, for the latest round.
                let delay = at.saturating_sub(replay::now_ms()).min(i32::MAX as u64) as i32;
                let again = Closure::once_into_js(|| spawn_local(replay_now()));
                if let Some(window) = web_sys::window() {
                    window.clear_timeout_with_handle(RETRY_TIMER.with(Cell::get));
                    if let Ok(handle) =
                        window.set_timeout_with_callback_and_timeout_and_arguments_0(again.unchecked_ref(), delay)
                    {
                        RETRY_TIMER.with(|t| t.set(handle));
                    }
                }
            }
        }
        Err(e) => web_sys::console::warn_2(&"feed: replay failed".into(), &e),
    }
    // Render now, so the list is current when "retry now" returns.
    render().await;
}

fn show_field_errors(errors: &[FieldError]) {
    for field in ["title", "location"] {
        let slot: Element = by_id(&format!("{field}-error"));
        let input: Element = by_id(field);
        match errors.iter().find(|e| e.field == field) {
            Some(error) => {
                slot.set_text_content(Some(&error.message));
                let _ = slot.remove_attribute("hidden");
                let _ = input.set_attribute("aria-invalid", "true");
            }
            None => {
                slot.set_text_content(None);
                let _ = slot.set_attribute("hidden", "");
                let _ = input.remove_attribute("aria-invalid");
            }
        }
    }
    if let Some(first) = errors.first() {
        if let Some(Ok(input)) = doc().get_element_by_id(first.field).map(|e| e.dyn_into::<web_sys::HtmlElement>()) {
            let _ = input.focus();
        }
    }
}

fn snackbar(message: &str) {
    let bar: Element = by_id("snackbar");
    bar.set_text_content(Some(message));
    let _ = bar.class_list().add_1("visible");
    let Some(window) = web_sys::window() else {
        return;
    };
    let hide = Closure::once_into_js(move || {
        let _ = bar.class_list().remove_1("visible");
    });
    let previous = SNACKBAR_TIMER.with(Cell::get);
    window.clear_timeout_with_handle(previous);
    if let Ok(handle) = window.set_timeout_with_callback_and_timeout_and_arguments_0(hide.unchecked_ref(), SNACKBAR_MS)
    {
        SNACKBAR_TIMER.with(|t| t.set(handle));
    }
}

/// A post as the list shows it.
struct Item {
    id: String,
    title: String,
    location: String,
    state: &'static str,
    note: String,
    /// For a waiting post (its Cancel) or a dead letter (its Retry and
    /// Discard): its key and the buttons' actions and labels.
    key: Option<(String, &'static [(&'static str, &'static str)])>,
}

/// A waiting post's button: taken back before it is sent.
const WAITING_ACTIONS: &[(&str, &str)] = &[("cancel", "Cancel")];
/// A dead letter's buttons.
const DEAD_ACTIONS: &[(&str, &str)] = &[("retry", "Retry"), ("discard", "Discard")];

/// Renders soon, once for a burst of events (a batch answers hundreds of
/// entries at once; each render reads IndexedDB).
fn schedule_render() {
    if RENDER_SCHEDULED.with(|s| s.replace(true)) {
        return;
    }
    let later = Closure::once_into_js(|| {
        RENDER_SCHEDULED.with(|s| s.set(false));
        spawn_local(render());
    });
    if let Some(window) = web_sys::window() {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(later.unchecked_ref(), 50);
    }
}

async fn render() {
    let generation = RENDER.with(|r| {
        r.set(r.get().wrapping_add(1));
        r.get()
    });
    // A read that fails is shown as such: never "All posts sent" when the
    // queue could not be read.
    let mut unreadable: Option<String> = None;
    let mut note = |e: JsValue| {
        unreadable.get_or_insert_with(|| describe(&e));
    };
    // How many are queued and the newest of them, never the whole queue:
    // the list shows the newest, the status line counts them all.
    let (total, queued) = match posts() {
        Ok(queue) => queue.first(LIST_MAX_WAITING as u32, true).await.unwrap_or_else(|e| {
            note(e);
            (0, Vec::new())
        }),
        Err(e) => {
            note(e);
            (0, Vec::new())
        }
    };
    let dead = bgsync_web::queue::dead_letters().await.unwrap_or_else(|e| {
        note(e);
        Vec::new()
    });
    let server = pulled_posts().await.unwrap_or_else(|e| {
        note(e);
        Vec::new()
    });
    let paused = bgsync_web::state::paused(POSTS_QUEUE).await.unwrap_or_else(|e| {
        note(e);
        None
    });
    if RENDER.with(Cell::get) != generation {
        return;
    }

    let mut items = Vec::new();
    let server_ids: HashSet<&str> = server.iter().map(|i| i.id.as_str()).collect();
    // Those read that are not waiting posts are not counted either.
    let mut waiting = total;
    for entry in &queued {
        let Some(mut item) = item_from_json(&entry.body) else {
            waiting = waiting.saturating_sub(1);
            continue;
        };
        // Delivered but not yet deleted: the server's copy is shown.
        if server_ids.contains(item.id.as_str()) {
            waiting = waiting.saturating_sub(1);
            continue;
        }
        item.state = "pending";
        item.note = match &entry.last_error {
            Some(e) => format!("Waiting to be sent (last try: {e})"),
            None => "Waiting to be sent".into(),
        };
        item.key = Some((entry.key.to_string(), WAITING_ACTIONS));
        items.push(item);
    }
    let shown_waiting = items.len();
    let mut failed = 0;
    for dead in dead.iter().rev().filter(|d| d.queue == POSTS_QUEUE) {
        let (entry, reason) = (&dead.entry, &dead.reason);
        let Some(mut item) = item_from_json(&entry.body) else {
            continue;
        };
        failed += 1;
        item.state = "failed";
        item.note = format!("Not sent: {reason}");
        item.key = Some((entry.key.to_string(), DEAD_ACTIONS));
        items.push(item);
    }
    let online = web_sys::window().map(|w| w.navigator().on_line()).unwrap_or(true);
    let reachable = REACHABLE.with(Cell::get);
    let pull_failed = PULL_FAILED.with(|p| p.borrow().clone());
    items.extend(server);

    let list: Element = by_id("posts");
    list.set_text_content(None);
    let document = doc();
    let append = |item: &Item| {
        if let Ok(li) = post_element(&document, item) {
            let _ = list.append_child(&li);
        }
    };
    items[..shown_waiting].iter().for_each(append);
    if waiting > shown_waiting {
        more_waiting(&document, &list, waiting - shown_waiting);
    }
    items[shown_waiting..].iter().for_each(append);
    if items.is_empty() {
        if let Ok(li) = document.create_element("li") {
            li.set_class_name("empty");
            li.set_text_content(Some("No posts yet. Share the first one above."));
            let _ = list.append_child(&li);
        }
    }

    let sending = SENDING.with(Cell::get) && waiting > 0;
    let (state, text) = match (waiting, failed, online && reachable) {
        _ if unreadable.is_some() => (
            "error",
            format!("Could not read the saved posts ({}); reload the page", unreadable.as_deref().unwrap_or_default()),
        ),
        _ if paused.is_some() => {
            ("paused", format!("Paused: the server wants you to sign in again ({waiting} post(s) waiting)"))
        }
        (w, 0, _) if sending => ("sending", format!("Sending {w} post(s)…")),
        (0, 0, true) if pull_failed.is_some() => {
            ("error", format!("Could not update the posts: {}", pull_failed.unwrap_or_default()))
        }
        (0, 0, true) => ("synced", "All posts sent".to_string()),
        (0, 0, false) => ("offline", "Offline: showing the last posts seen".to_string()),
        (w, 0, _) => ("pending", format!("{w} post(s) waiting to be sent")),
        (0, f, _) => ("failed", format!("{f} post(s) could not be sent")),
        (w, f, _) => ("failed", format!("{w} waiting, {f} could not be sent")),
    };
    let status: Element = by_id("sync-status");
    let _ = status.set_attribute("data-state", state);
    status.set_text_content(Some(&text));
}

/// How many waiting posts a render reads and the list shows (the newest):
/// the list is rebuilt on every burst of events, and a queue of thousands
/// (a long offline spell, or a script) made each render read and decode
/// the whole queue and build an item for each while the worker drained
/// it. The status line counts them all (a count, not a read).
const LIST_MAX_WAITING: usize = 100;

/// The line that stands for the waiting posts not shown.
fn more_waiting(document: &Document, list: &Element, hidden: usize) {
    if let Ok(li) = document.create_element("li") {
        li.set_class_name("more");
        li.set_text_content(Some(&format!("… and {hidden} older post(s) waiting to be sent")));
        let _ = list.append_child(&li);
    }
}

fn post_element(document: &Document, item: &Item) -> Result<Element, JsValue> {
    let li = document.create_element("li")?;
    li.set_class_name("post");
    li.set_attribute("data-state", item.state)?;
    li.set_attribute("data-id", &item.id)?;
    for (class, text) in [("title", &item.title), ("location", &item.location), ("note", &item.note)] {
        let span = document.create_element("span")?;
        span.set_class_name(class);
        span.set_text_content(Some(text));
        li.append_child(&span)?;
    }
    if let Some((key, buttons)) = &item.key {
        let actions = document.create_element("span")?;
        actions.set_class_name("actions");
        for (action, label) in buttons.iter() {
            let button = document.create_element("button")?;
            button.set_attribute("type", "button")?;
            button.set_attribute("data-action", action)?;
            button.set_attribute("data-key", key)?;
            button.set_text_content(Some(label));
            actions.append_child(&button)?;
        }
        li.append_child(&actions)?;
    }
    Ok(li)
}

/// Cancel on a waiting post, Retry or Discard on a dead letter (one
/// listener on the list).
async fn post_action(action: String, key: String) {
    if action == "cancel" {
        // Taken out of the queue once no round is sending (the worker's
        // round in progress ends first), so the answer is exact.
        let taken = match posts() {
            Ok(queue) => queue.discard(&key).await,
            Err(e) => Err(e),
        };
        match taken {
            Ok(Some(entry)) if entry.attempts > 0 => snackbar(
                "Cancelled. It was tried before without an answer: if that try reached the server, the post may \
                 still appear",
            ),
            Ok(Some(_)) => snackbar("Cancelled: the post will not be sent"),
            Ok(None) => snackbar("Too late: the post was already sent"),
            Err(e) => snackbar(&format!("That did not work: {}", describe(&e))),
        }
        render().await;
        return;
    }
    let done = match action.as_str() {
        "retry" => bgsync_web::queue::retry_dead_letter(&key).await,
        "discard" => bgsync_web::queue::discard_dead_letter(&key).await.map(|()| true),
        _ => return,
    };
    match done {
        // Another tab got there first.
        Ok(false) => {}
        Ok(true) if action == "retry" => {
            snackbar("Your post is queued again and will be sent");
            replay_now().await;
        }
        Ok(true) => snackbar("The post was discarded"),
        Err(e) => snackbar(&format!("That did not work: {}", describe(&e))),
    }
    render().await;
}

fn item_from_json(text: &str) -> Option<Item> {
    item_from_value(&js_sys::JSON::parse(text).ok()?)
}

fn item_from_value(value: &JsValue) -> Option<Item> {
    let text = |k: &str| Reflect::get(value, &k.into()).ok()?.as_string();
    Some(Item {
        id: text("id")?,
        title: text("title")?,
        location: text("location")?,
        state: "sent",
        note: "Sent".into(),
        key: None,
    })
}

/// The posts pulled from the server, newest first, from IndexedDB.
async fn pulled_posts() -> Result<Vec<Item>, JsValue> {
    let mut posts: Vec<(f64, Item)> = pull::items(&*feed()?)
        .await?
        .iter()
        .filter_map(|v| {
            let at = Reflect::get(v, &"created_at".into()).ok()?.as_f64().unwrap_or(0.0);
            Some((at, item_from_value(v)?))
        })
        .collect();
    posts.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(posts.into_iter().map(|(_, item)| item).collect())
}

/// An error for the snackbar: its message, else its name (the browser's
/// own exceptions often have no message).
fn describe(e: &JsValue) -> String {
    let field = |name: &str| Reflect::get(e, &name.into()).ok()?.as_string().filter(|text| !text.is_empty());
    e.as_string().or_else(|| field("message")).or_else(|| field("name")).unwrap_or_else(|| "unknown error".into())
}

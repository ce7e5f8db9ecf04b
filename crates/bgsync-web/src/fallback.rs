//! Replaying in a page that no worker replays for, from a module built
//! without the replay.
//!
//! A page needs the replay (the engine, the transport, the batch protocol:
//! about 40% of a page module's bytes) only where no worker replays for it:
//! a browser without service workers, the first visit before the worker is
//! active, [`crate::state::set_force_fallback`]. So bgsync's page module
//! (and an app's page crate that depends on this crate without the feature
//! `replay-here`) leaves it out, and the first time a page has to replay
//! itself it loads bgsync's fallback module (`crates/bgsync-fallback`,
//! built by `bgsync_build::FALLBACK`: this crate with `replay-here`, the
//! same JavaScript API) and calls it, configured with the page's
//! declaration as it is then. Pages that a worker controls never load it.
//!
//! The app says where the module is in its declaration (`fallback`, the
//! URL without `.js`/`.wasm`: `"/__BGSYNC_FALLBACK__"` in a static file).
//! Both modules share IndexedDB, the replaying lock and the event channel,
//! so what the fallback module sends is seen by the page's subscribers as
//! if the page had sent it.

use crate::js::{self, JsResult};
use crate::replay::Round;
use js_sys::{Function, Object, Promise};
use std::cell::RefCell;
use wasm_bindgen::{JsCast, JsValue};

/// The fallback module's global (its glue's `--no-modules-global`).
pub const GLOBAL: &str = "bgsync_fallback";

thread_local! {
    // The load in progress or done: the module's API once it settles.
    static LOADED: RefCell<Option<Promise>> = const { RefCell::new(None) };
}

/// Replays every queue in the fallback module, as
/// [`crate::replay::deliver`] does (`expedite`: entries waiting out a
/// backoff go now).
pub async fn deliver(expedite: bool) -> JsResult<Round> {
    let round = call("deliverHere", &expedite.into()).await?;
    let number = |name| js::get(&round, name).ok().and_then(|v| v.as_f64());
    Ok(Round {
        delivered: number("delivered").unwrap_or(0.0) as usize,
        remaining: number("remaining").unwrap_or(0.0) as usize,
        next_at_ms: number("nextAt").map(|at| at as u64),
        paused: js::get(&round, "paused")?.as_bool().unwrap_or(false),
    })
}

/// Calls the fallback module's function `name` with `arg`, configured with
/// the page's declaration as it is now (the page may have configured again
/// since the module loaded), and awaits what it resolves with.
pub async fn call(name: &str, arg: &JsValue) -> JsResult<JsValue> {
    let api = api().await?;
    let configure: Function = js::get(&api, "configure")?.dyn_into()?;
    configure.call1(&api, &crate::config::current().declaration)?;
    let function: Function = js::get(&api, name)?.dyn_into()?;
    js::await_promise(function.call1(&api, arg)?.dyn_into()?).await
}

/// A round as [`deliver`] reads it back (what `deliverHere` resolves with).
pub fn round_to_js(round: &Round) -> JsValue {
    let o = Object::new();
    js::set(&o, "delivered", round.delivered as u32);
    js::set(&o, "remaining", round.remaining as u32);
    js::set(&o, "nextAt", round.next_at_ms.map(|at| JsValue::from_f64(at as f64)).unwrap_or(JsValue::NULL));
    js::set(&o, "paused", round.paused);
    o.into()
}

/// The fallback module's API, loaded once; a load that failed is tried
/// again by the next call.
async fn api() -> JsResult<JsValue> {
    let loading = LOADED.with(|l| l.borrow_mut().get_or_insert_with(|| js::promise(load())).clone());
    let loaded = js::await_promise(loading).await;
    if loaded.is_err() {
        LOADED.with(|l| *l.borrow_mut() = None);
    }
    loaded
}

async fn load() -> JsResult<JsValue> {
    let config = crate::config::current();
    let Some(stem) = config.fallback.clone() else {
        return Err(JsValue::from_str(
            "bgsync: this needs bgsync's fallback module (no worker replays or pulls for this page, or the \
             inspector is open): declare where it is (fallback: \"/__BGSYNC_FALLBACK__\" in the config; \
             bgsync_build::FALLBACK builds it)",
        ));
    };
    let global = js_sys::global();
    if !js::get(&global, GLOBAL)?.is_function() {
        run_script(&format!("{stem}.js")).await?;
    }
    let init: Function = js::get(&global, GLOBAL)?
        .dyn_into()
        .map_err(|_| JsValue::from_str(&format!("bgsync: {stem}.js is not bgsync's fallback module")))?;
    let options = Object::new();
    js::set(&options, "module_or_path", format!("{stem}.wasm"));
    js::await_promise(init.call1(&JsValue::NULL, &options)?.dyn_into()?).await?;
    js::get(&global, GLOBAL)
}

/// Runs the classic script at `url` (a `<script>` element) and waits for it.
async fn run_script(url: &str) -> JsResult<()> {
    let document = js::get(&js_sys::global(), "document")?;
    if !document.is_object() {
        return Err(JsValue::from_str("bgsync: the fallback module loads in a window only"));
    }
    let create: Function = js::get(&document, "createElement")?.dyn_into()?;
    let script = create.call1(&document, &"script".into())?;
    js::set(&script, "src", url);
    let done = Promise::new(&mut |resolve, reject| {
        js::set(&script, "onload", resolve);
        js::set(&script, "onerror", reject);
    });
    let head = js::get(&document, "head")?;
    let parent = if head.is_object() { head } else { js::get(&document, "documentElement")? };
    let append: Function = js::get(&parent, "appendChild")?.dyn_into()?;
    append.call1(&parent, &script)?;
    if js::await_promise(done).await.is_ok() {
        return Ok(());
    }
    // The next call tries again with an element of its own (an inspector
    // open offline asks every 2 s): none is left behind.
    if let Ok(remove) = js::get(&script, "remove").and_then(|f| f.dyn_into::<Function>()) {
        let _ = remove.call0(&script);
    }
    Err(JsValue::from_str(&format!("bgsync: the fallback module's script {url} did not load")))
}

//! bgsync in the browser: the adapters around `bgsync-core`.
//!
//! - [`config`]: what an app declares: its queues and its pull feeds;
//! - [`db`]: the IndexedDB schema every context shares, and its upgrades;
//! - [`queue`]: the durable queues in IndexedDB (works in pages and workers);
//! - [`transport`]: delivery of one entry with `fetch` and its
//!   `Idempotency-Key`;
//! - [`replay`]: a replay round, one at a time per JavaScript context, with
//!   every change broadcast to open pages;
//! - [`pull`]: the delta feed pulled into IndexedDB (periodic sync, or
//!   when the app opens or comes online), so pages render offline;
//! - [`worker`]: the service-worker side (app-shell cache, fetch strategies);
//! - [`state`]: pauses (401/403) and the credentials that lift them;
//! - `api` (feature `js-api`): the same as a JavaScript API with
//!   TypeScript types;
//! - [`client`]: the page side (worker registration, sync registration,
//!   messages to the worker);
//! - [`fallback`]: a page's replay where no worker replays for it, from a
//!   second module loaded then (without the feature `replay-here`).
//!
//! Everything here also runs in a window, so a browser without a service
//! worker still queues durably and replays from the page: with the feature
//! `replay-here` in the page's own module, without it (bgsync's page
//! module, 40% smaller) in bgsync's fallback module, loaded only when a
//! page has to replay.

#[cfg(feature = "js-api")]
pub mod api;
pub mod client;
pub mod config;
pub mod db;
pub mod events;
#[cfg_attr(feature = "replay-here", allow(dead_code))]
pub mod fallback;
mod js;
// The replay's: a page module without it keeps none of it.
#[cfg_attr(not(feature = "replay-here"), allow(dead_code))]
mod json;
pub mod pull;
pub mod queue;
pub mod replay;
// The replay's: a page module lists a queue record by record and sends
// nothing.
#[cfg_attr(not(feature = "replay-here"), allow(dead_code))]
mod round_json;
pub mod state;
pub mod transport;
pub mod worker;

pub use js::{error, promise, JsResult, Resolved};

// The feature `talc`: the module's allocator.
#[cfg(all(feature = "talc", target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static TALC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

//! The feed app's page, compiled to WebAssembly: the form, the list and
//! the status, plus bgsync's JavaScript API (`enqueue`, `status`,
//! `subscribe`, `retryNow`, `deadLetters`, `retryDeadLetter`,
//! `discardDeadLetter`, `setCredentials`, ...). The service worker runs
//! bgsync's ready worker (`bgsync-worker`), smaller, without any of the
//! page's code.

mod delivery;
mod page;

pub use delivery::*;
use wasm_bindgen::prelude::*;

/// Runs when the module is instantiated, before any other call (the page's
/// own start, or bgsync's JavaScript API).
#[wasm_bindgen(start)]
pub fn declare() -> Result<(), JsValue> {
    configure()
}

/// Entry point of the page.
#[wasm_bindgen]
pub fn start_page() {
    page::start();
}

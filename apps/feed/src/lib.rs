//! The feed app's server: the posts API and the PWA (HTML, CSS, manifest,
//! icon, `sw.js` and the wasm), embedded in one binary.

pub mod assets;
pub mod config;
pub mod db;
pub mod routes;
pub mod startup;
pub mod state;

pub use config::Config;
pub use startup::{router, router_wrapping_api, serve};
pub use state::AppState;

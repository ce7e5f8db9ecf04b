//! bgsync's fallback module: the JavaScript API of `bgsync-page` with the
//! replay in it (`bgsync-web`'s feature `replay-here`), under the global
//! `bgsync_fallback`. A page module built without the replay (bgsync's
//! page module, or an app's page crate) loads it the first time the page
//! has to replay itself (no worker replays for it) and calls its
//! `deliverHere`; see `bgsync_web::fallback`. Built and served by
//! `bgsync_build::FALLBACK`; a page never loads it by hand.

pub use bgsync_web::api::*;

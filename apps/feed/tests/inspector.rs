//! bgsync's inspector in the feed app, driven in a real Chromium: it shows
//! the dead letters with their typed cause and acts on them (Discard,
//! Retry), an entry waiting for a retry with its attempts, when and why,
//! the worker's rounds with their phases, the feed's cursor, and the live
//! events. Its screenshot is the README's.

mod common;

use common::browser::{eval, submit_post, wait_for, Chromium};
use common::{eventually, TestServer};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(45);

/// The text of what `selector` matches inside the inspector, one per match.
async fn texts(page: &chromiumoxide::Page, selector: &str) -> Vec<String> {
    eval(
        page,
        &format!(
            "[...document.querySelectorAll('#inspector-panel .bgsync-inspector {selector}')].map((e) => e.textContent)"
        ),
    )
    .await
}

async fn shown(
    page: &chromiumoxide::Page,
    what: &str,
    selector: &str,
    wanted: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    eventually(what, WITHIN, || async {
        let found = texts(page, selector).await;
        wanted(&found).then_some(found)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_shows_dead_letters_retries_rounds_and_events_and_acts_on_dead_letters() {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    page.find_element("#inspector-panel summary").await.unwrap().click().await.unwrap();
    wait_for(
        &page,
        "the inspector to draw",
        "document.querySelector('#inspector-panel .bgsync-inspector[data-state=ready]')",
    )
    .await;

    // Two posts the server refuses, then one it asks to wait for.
    server.refuse_posts_containing(Some("POISON"));
    for title in ["A POISON post", "Another POISON post"] {
        submit_post(&page, title, "Here").await;
    }
    let causes =
        shown(&page, "two dead letters", "[data-section=dead-letters] td[data-field=cause]", |c| c.len() == 2).await;
    assert_eq!(causes, ["refused: 400", "refused: 400"]);
    let reasons = texts(&page, "[data-section=dead-letters] td[data-field=reason]").await;
    assert!(reasons[0].contains("This post is refused by the test server"), "{reasons:?}");

    server.refuse_posts_containing(None);
    server.fail_posts_with_retry_after(503, 600);
    submit_post(&page, "A post the server asks to wait for", "Later").await;
    let attempts =
        shown(&page, "the waiting entry", "[data-section=queue-sync-posts] td[data-field=attempts]", |a| a == ["1"])
            .await;
    assert_eq!(attempts, ["1"]);
    let next = texts(&page, "[data-section=queue-sync-posts] td[data-field=next-retry]").await;
    assert!(next[0].starts_with("in ") && next[0].ends_with("min"), "next retry in about 10 min: {next:?}");
    let why = texts(&page, "[data-section=queue-sync-posts] td[data-field=why]").await;
    assert!(why[0].contains("503"), "{why:?}");

    // The worker's rounds, with where their time went.
    let rounds = shown(&page, "the worker's rounds", "[data-section=worker-rounds] td.phases", |r| !r.is_empty()).await;
    assert!(rounds[0].contains("request"), "{rounds:?}");
    // And where the worker's start went.
    let start = texts(&page, "[data-section=worker-rounds] p.meta").await;
    assert!(start[0].contains("cold start") && start[0].contains("compiled at"), "{start:?}");
    let cursors = shown(&page, "the feed", "[data-section=feeds] td[data-field=cursor]", |c| c.len() == 1).await;
    assert_eq!(cursors.len(), 1);
    let events = texts(&page, "[data-section=events] li").await;
    assert!(events.iter().any(|e| e.contains("dead-lettered")), "{events:?}");
    assert!(events.iter().any(|e| e.contains("retry-scheduled")), "{events:?}");

    let png = page.screenshot(chromiumoxide::page::ScreenshotParams::builder().full_page(true).build()).await.unwrap();
    std::fs::write(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("inspector.png"), png).unwrap();

    // Discard the first dead letter; Retry the second, which the server
    // now takes.
    page.find_element("#inspector-panel .bgsync-inspector [data-section=dead-letters] button[data-action=discard]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    shown(&page, "one dead letter left", "[data-section=dead-letters] td[data-field=cause]", |c| c.len() == 1).await;
    server.fail_posts_with(None);
    page.find_element("#inspector-panel .bgsync-inspector [data-section=dead-letters] button[data-action=retry]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let stored = eventually("the retried post to be stored", WITHIN, || async {
        let posts = server.stored_posts().await;
        posts.iter().any(|p| p.1 == "Another POISON post").then_some(posts)
    })
    .await;
    assert!(!stored.iter().any(|p| p.1 == "A POISON post"), "the discarded one was never sent again");
    shown(&page, "no dead letter", "[data-section=dead-letters] p.empty", |e| e == ["None."]).await;
    let dead: Vec<serde_json::Value> = eval(&page, "wasm_bindgen.deadLetters()").await;
    assert!(dead.is_empty());
    chromium.close().await;
}

/// The page module answers `inspect()` through bgsync's fallback module.
/// Where that cannot load (here: a declaration without `fallback`; in
/// life, offline before any inspector was opened online), the inspector
/// still shows each queue's entries and the dead letters, from the page
/// module's own calls, and says why the rest is missing. Its Discard on a
/// queued entry takes the entry out (`discardQueued`): the post is never
/// sent, the other one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_fallback_module_the_inspector_shows_the_queues_and_discards_a_queued_entry() {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    chromium.set_worker_offline(true).await;
    for title in ["Sent in the end", "Taken back"] {
        submit_post(&page, title, "Here").await;
    }
    let configured: bool =
        eval(&page, "(wasm_bindgen.configure({ ...self.BGSYNC_CONFIG, fallback: undefined }), true)").await;
    assert!(configured);
    // Opened by script: the snackbar of the last post may cover the summary.
    assert!(eval::<bool>(&page, "(document.querySelector('#inspector-panel').open = true)").await);
    let rows = shown(&page, "the two queued posts", "[data-section=queue-sync-posts] tbody tr", |r| r.len() == 2).await;
    assert_eq!(rows.len(), 2);
    let partial = texts(&page, "[data-field=partial]").await;
    assert!(
        partial.len() == 1 && partial[0].contains("Queues and dead letters only") && partial[0].contains("fallback"),
        "{partial:?}"
    );
    assert!(texts(&page, "[data-section=feeds]").await.is_empty(), "no feed section it cannot fill");
    // A declared module that cannot be fetched (the worker is offline): the
    // same view, saying so, and each refresh's failed attempt leaves no
    // element behind (it asks again every 2 s).
    let configured: bool =
        eval(&page, "(wasm_bindgen.configure({ ...self.BGSYNC_CONFIG, fallback: '/no-such-module' }), true)").await;
    assert!(configured);
    let partial = shown(&page, "the failed load to be said", "[data-field=partial]", |p| {
        p.len() == 1 && p[0].contains("did not load")
    })
    .await;
    assert!(partial[0].contains("/no-such-module.js"), "{partial:?}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let scripts: u32 = eval(&page, "document.querySelectorAll('script[src=\"/no-such-module.js\"]').length").await;
    assert!(scripts <= 1, "{scripts} script elements left by the failed loads");

    let bodies: Vec<String> = eval(&page, "wasm_bindgen.queued('sync-posts').then((q) => q.map((e) => e.body))").await;
    let second = if bodies[1].contains("Taken back") { 2 } else { 1 };
    let clicked: bool = eval(
        &page,
        &format!(
            "(document.querySelector('#inspector-panel .bgsync-inspector [data-section=queue-sync-posts] \
             tbody tr:nth-child({second}) button[data-action=discard]').click(), true)"
        ),
    )
    .await;
    assert!(clicked);
    shown(&page, "one queued post left", "[data-section=queue-sync-posts] tbody tr", |r| r.len() == 1).await;
    let events =
        shown(&page, "the discarded event", "[data-section=events] li", |e| e.iter().any(|e| e.contains("discarded")))
            .await;
    assert!(events.iter().any(|e| e.contains("discarded sync-posts")), "{events:?}");

    chromium.set_worker_offline(false).await;
    common::browser::dispatch_sync(&page, &server.origin(), "sync-new-posts").await;
    let stored = eventually("the post that stayed", WITHIN, || async {
        let posts = server.stored_posts().await;
        (!posts.is_empty()).then_some(posts)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let titles: Vec<String> = server.stored_posts().await.into_iter().map(|p| p.1).collect();
    assert_eq!(titles, ["Sent in the end"], "the discarded post never went: {stored:?}");
    chromium.close().await;
}

/// The fallback module through which the page module answers `inspect()`
/// is slow to arrive (held 8 s by the server): the inspector draws the
/// partial view after 5 s, saying so, and the full one once the module has
/// loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_draws_what_it_can_while_the_fallback_module_is_slow_to_load() {
    let server = TestServer::start();
    let chromium = Chromium::launch().await;
    let page = chromium.open_app(&server.url()).await;
    chromium.set_worker_offline(true).await;
    submit_post(&page, "Waiting here", "Faro").await;
    server.delay_files(Some(("/bgsync_fallback-", 8000)));
    assert!(eval::<bool>(&page, "(document.querySelector('#inspector-panel').open = true)").await);
    let partial = shown(&page, "the partial view", "[data-field=partial]", |p| p.len() == 1).await;
    assert!(partial[0].contains("has not loaded within 5 s"), "{partial:?}");
    let rows = texts(&page, "[data-section=queue-sync-posts] tbody tr").await;
    assert_eq!(rows.len(), 1, "the waiting post is listed meanwhile: {rows:?}");
    shown(&page, "the full view, with the feed", "[data-section=feeds] td[data-field=cursor]", |c| c.len() == 1).await;
    assert!(texts(&page, "[data-field=partial]").await.is_empty());
    chromium.close().await;
}

//! The testkit's browser never holds a test run: closing one that does not
//! exit kills it.

use bgsync_testkit::chromium::Chromium;
use std::time::Duration;

/// A browser frozen with SIGSTOP takes no DevTools request and never exits
/// on its own: `close` gives up on it and kills it, so the test that
/// closes it goes on and the next test gets its turn to run a browser.
/// (Without the kill, `close` waited for the process for ever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_that_does_not_exit_when_closed_is_killed() {
    let mut chromium = Chromium::launch("true").await;
    let pid = chromium.pid().expect("a launched browser has a process");
    let stopped = std::process::Command::new("kill").args(["-STOP", &pid.to_string()]).status().unwrap();
    assert!(stopped.success(), "kill -STOP {pid}");
    tokio::time::timeout(Duration::from_secs(40), chromium.close())
        .await
        .expect("close returns though the browser never answers");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the browser's process {pid} is gone");
}

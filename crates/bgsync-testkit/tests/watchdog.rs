//! A test that hangs with its browser fails the run within its turn's
//! limit, its browser killed, instead of holding every test after it (and
//! CI, until its own limit).
//!
//! The hanging test is this test run again, as a child of itself under
//! libtest (which captures what a test prints, as in any run) with a short
//! limit; what is checked is how that child ends.

use bgsync_testkit::chromium::Chromium;
use bgsync_testkit::watchdog::TURN_LIMIT_VAR;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the child: hang with a browser.
const HANG: &str = "BGSYNC_WATCHDOG_TEST_HANG";
/// The child's limit.
const LIMIT: Duration = Duration::from_secs(10);
/// This test's name, for the child to run it alone.
const NAME: &str = "a_test_that_hangs_with_its_browser_ends_the_binary_and_the_browser";

#[test]
fn a_test_that_hangs_with_its_browser_ends_the_binary_and_the_browser() {
    if std::env::var_os(HANG).is_some() {
        hang();
        // Only reached when the watchdog did not end this process.
        let _ = writeln!(std::io::stdout(), "still running after the hang");
        return;
    }
    the_child_ends_at_its_limit_with_its_browser();
}

/// The child: takes a turn, launches a browser, says its pid, and waits for
/// far longer than its limit.
fn hang() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let mut chromium = Chromium::launch("true").await;
        // Past libtest's capture, for the parent to read.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "browser {}", chromium.pid().expect("a launched browser has a process"));
        let _ = out.flush();
        tokio::time::sleep(LIMIT * 12).await;
        chromium.close().await;
    });
}

fn the_child_ends_at_its_limit_with_its_browser() {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--test-threads", "1"])
        .env(HANG, "1")
        .env(TURN_LIMIT_VAR, LIMIT.as_secs().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // After libtest's own words ("running 1 test", then "test <name> ... "
    // on the same line).
    let mut line = String::new();
    while !line.contains("browser ") {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
    }
    let browser: u32 = line
        .rsplit_once("browser ")
        .and_then(|(_, pid)| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("the child says its browser's pid first, said {line:?}"));
    assert!(alive(browser), "the child's browser {browser} runs");

    // The limit, and a minute more for a slow machine, before calling it a
    // hang of its own.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT + Duration::from_secs(60) {
            let _ = child.kill();
            let _ = Command::new("kill").args(["-KILL", &browser.to_string()]).status();
            panic!("the child still ran {:?} after it started, with a limit of {LIMIT:?}", started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();

    assert_eq!(status.code(), Some(101), "the child fails (stdout after the pid: {rest:?}; stderr: {stderr})");
    assert!(started.elapsed() >= LIMIT, "not before its limit: {:?}", started.elapsed());
    assert!(
        stderr.contains(&format!("the test `{NAME}` held its turn to run a browser for more than 10s")),
        "the child says which test hung, and for how long: {stderr}"
    );
    assert!(!rest.contains("still running"), "the child never got past its hang: {rest:?}");
    // Killed; reaped by whoever adopted it, or a zombie where nobody reaps.
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(browser) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!alive(browser), "the child's browser {browser} was killed with it");
}

/// Whether `pid` runs: it exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
    }
}

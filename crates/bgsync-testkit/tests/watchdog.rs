//! A test that hangs fails the run within its limit, what it started
//! killed, instead of holding every test after it (and CI, until its own
//! limit): one that hangs with its browser at its turn's limit, and one
//! that hangs without a browser (a request to a test server that never
//! ends) at its test's limit.
//!
//! The hanging test is each test run again, as a child of itself under
//! libtest (which captures what a test prints, as in any run) with a short
//! limit; what is checked is how that child ends.

use bgsync_testkit::chromium::Chromium;
use bgsync_testkit::watchdog::{limit_this_test, TEST_LIMIT_TURNS, TURN_LIMIT_VAR};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the child: hang.
const HANG: &str = "BGSYNC_WATCHDOG_TEST_HANG";
/// The child's turn limit when it hangs with its browser (time enough to
/// launch one on a slow machine).
const LIMIT: Duration = Duration::from_secs(10);
/// The child's turn limit when it hangs without a browser.
const SHORT: Duration = Duration::from_secs(3);

#[test]
fn a_test_that_hangs_with_its_browser_ends_the_binary_and_the_browser() {
    const NAME: &str = "a_test_that_hangs_with_its_browser_ends_the_binary_and_the_browser";
    if std::env::var_os(HANG).is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let mut chromium = Chromium::launch("true").await;
            say_pid(chromium.pid().expect("a launched browser has a process"));
            tokio::time::sleep(LIMIT * 30).await;
            chromium.close().await;
        });
        still_running();
        return;
    }
    the_child_ends_at_its_limit_with(NAME, LIMIT, LIMIT, "held its turn to run a browser");
}

#[test]
fn a_test_that_hangs_without_a_browser_ends_the_binary_and_what_it_started() {
    const NAME: &str = "a_test_that_hangs_without_a_browser_ends_the_binary_and_what_it_started";
    if std::env::var_os(HANG).is_some() {
        // As a test server holds it.
        let _watchdog = limit_this_test();
        let mut child = Command::new("sleep").arg("300").spawn().unwrap();
        say_pid(child.id());
        std::thread::sleep(SHORT * 100);
        let _ = child.kill();
        let _ = child.wait();
        still_running();
        return;
    }
    the_child_ends_at_its_limit_with(NAME, SHORT, SHORT * TEST_LIMIT_TURNS, "ran");
}

/// Past libtest's capture, for the parent to read.
fn say_pid(pid: u32) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "started {pid}");
    let _ = out.flush();
}

/// Only reached when the watchdog did not end the child.
fn still_running() {
    let _ = writeln!(std::io::stdout(), "still running after the hang");
}

/// Runs the test `name` as a child that hangs, with `turn` as its turn
/// limit, and checks that it ends at `limit` saying the test `did` for
/// longer, the process it started killed.
fn the_child_ends_at_its_limit_with(name: &str, turn: Duration, limit: Duration, did: &str) {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads", "1"])
        .env(HANG, "1")
        .env(TURN_LIMIT_VAR, turn.as_secs().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // After libtest's own words ("running 1 test", then "test <name> ... "
    // on the same line).
    let mut line = String::new();
    while !line.contains("started ") {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
    }
    let process: u32 = line
        .rsplit_once("started ")
        .and_then(|(_, pid)| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("the child says what it started first, said {line:?}"));
    assert!(alive(process), "the child's process {process} runs");

    // The limit, and a minute more for a slow machine, before calling it a
    // hang of its own.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit + Duration::from_secs(60) {
            let _ = child.kill();
            let _ = Command::new("kill").args(["-KILL", &process.to_string()]).status();
            panic!("the child still ran {:?} after it started, with a limit of {limit:?}", started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();

    assert_eq!(status.code(), Some(101), "the child fails (stdout after the pid: {rest:?}; stderr: {stderr})");
    assert!(started.elapsed() >= limit, "not before its limit: {:?}", started.elapsed());
    assert!(
        stderr.contains(&format!("the test `{name}` {did} for more than {}s", limit.as_secs())),
        "the child says which test hung, and for how long: {stderr}"
    );
    assert!(!rest.contains("still running"), "the child never got past its hang: {rest:?}");
    // Killed; reaped by whoever adopted it, or a zombie where nobody reaps.
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(process) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!alive(process), "the child's process {process} was killed with it");
}

/// Whether `pid` runs: it exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
    }
}

//! A limit on how long one test may hold its turn to run a browser, or run
//! at all.
//!
//! Browser tests take turns ([`crate::chromium::one_at_a_time`]), so a test
//! that hangs with its browser holds every test after it, and a CI run
//! waits for its own time limit (90 minutes) before it says anything; a
//! test of a server over HTTP whose request never ends holds the run as
//! long. The watchdog turns that into a failure within minutes that names
//! the test: when a turn (or a test that took [`limit_this_test`])
//! outlasts its limit, it kills every process the test binary started (the
//! browser and its children, a WebDriver and its browser, a server run as
//! a process) and ends the binary with a failing status.

use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::Duration;

/// A turn's limit unless `BGSYNC_TEST_TURN_LIMIT` or [`set_turn_limit`]
/// says otherwise: the longest browser test takes about a minute on two
/// cores, a hang takes for ever.
pub const DEFAULT_TURN_LIMIT: Duration = Duration::from_secs(300);

/// The environment variable that sets a turn's limit, in seconds (`0`: no
/// limit).
pub const TURN_LIMIT_VAR: &str = "BGSYNC_TEST_TURN_LIMIT";

static SET: OnceLock<Option<Duration>> = OnceLock::new();

/// Sets the limit of every turn this process takes from now on (`None`: no
/// limit), over [`TURN_LIMIT_VAR`]: for a benchmark, whose runs hold a
/// browser as long as they need. Only the first call counts.
pub fn set_turn_limit(limit: Option<Duration>) {
    let _ = SET.set(limit);
}

/// The limit of a turn taken now: [`set_turn_limit`]'s, else
/// [`TURN_LIMIT_VAR`]'s, else [`DEFAULT_TURN_LIMIT`].
///
/// # Panics
/// If [`TURN_LIMIT_VAR`] is set to something other than whole seconds.
pub fn turn_limit() -> Option<Duration> {
    if let Some(limit) = SET.get() {
        return *limit;
    }
    match std::env::var(TURN_LIMIT_VAR) {
        Err(_) => Some(DEFAULT_TURN_LIMIT),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(0) => None,
            Ok(seconds) => Some(Duration::from_secs(seconds)),
            Err(_) => panic!("{TURN_LIMIT_VAR}={text:?}: give the limit in whole seconds, or 0 for none"),
        },
    }
}

/// Armed while it lives: dropping it (the turn or the test ends) disarms
/// it.
#[must_use = "the watchdog is disarmed when dropped"]
pub struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

/// A watchdog for the test running on this thread as a whole (a test of a
/// server over HTTP, whose request may never end), with
/// [`TEST_LIMIT_TURNS`] times a turn's limit ([`turn_limit`]; `None` when
/// there is none): keep it while the test runs. The apps' test servers hold
/// one each, so a browser test's covers its wait for a turn too.
#[must_use = "the watchdog is disarmed when dropped"]
pub fn limit_this_test() -> Option<Watchdog> {
    turn_limit().map(|limit| Watchdog::arm(limit * TEST_LIMIT_TURNS, "ran"))
}

/// How many turns' limits a whole test may take ([`limit_this_test`]): a
/// browser test waits for the turns of the others in its binary (about
/// four minutes in all for the largest today) before it takes its own.
pub const TEST_LIMIT_TURNS: u32 = 3;

impl Watchdog {
    /// Arms a watchdog for the test running on this thread (libtest names
    /// each test's thread after the test); at its limit it says the test
    /// `did` for longer.
    pub(crate) fn arm(limit: Duration, did: &'static str) -> Self {
        let (disarm, disarmed) = mpsc::channel::<()>();
        let test = std::thread::current().name().unwrap_or("(unnamed)").to_owned();
        std::thread::Builder::new()
            .name("bgsync-testkit watchdog".into())
            .spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit) {
                    expire(&test, did, limit);
                }
            })
            .expect("the watchdog's thread starts");
        Self { _disarm: disarm }
    }
}

/// The turn or the test outlasted its limit: says so, kills what the
/// binary started, and ends the binary.
fn expire(test: &str, did: &str, limit: Duration) -> ! {
    let killed = descendants(std::process::id());
    // Straight to the standard error: `eprintln!` on this thread would go
    // to the test's captured output (a thread inherits its spawner's
    // capture), which nobody prints once the process exits.
    let _ = writeln!(
        std::io::stderr(),
        "bgsync-testkit: the test `{test}` {did} for more than {}s \
         ({TURN_LIMIT_VAR}): it hangs, or it needs a longer limit. Killing the processes this \
         test binary started ({killed:?}) and ending it.",
        limit.as_secs()
    );
    if !killed.is_empty() {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .args(killed.iter().map(u32::to_string))
            .stderr(std::process::Stdio::null())
            .status();
    }
    std::process::exit(101)
}

/// Every process descended from `root`, read from `/proc` (none where there
/// is no `/proc`).
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid …"; comm may hold spaces and parentheses.
            let ppid = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = Vec::new();
    let mut next = vec![root];
    while let Some(parent) = next.pop() {
        for &(pid, _) in parents.iter().filter(|(_, ppid)| *ppid == parent) {
            found.push(pid);
            next.push(pid);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_started_here_and_its_child_are_descendants() {
        let mut child = std::process::Command::new("sh").args(["-c", "sleep 30 & wait"]).spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut found = descendants(std::process::id());
        while found.len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            found = descendants(std::process::id());
        }
        let _ = std::process::Command::new("kill").arg("-KILL").args(found.iter().map(u32::to_string)).status();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?} holds the shell {}", child.id());
        assert_eq!(found.len(), 2, "{found:?} holds the shell and its sleep");
        assert!(!found.contains(&std::process::id()), "{found:?} leaves out the process itself");
    }
}

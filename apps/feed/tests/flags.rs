//! The real `feed` binary's flags and environment: `--help`, `FEED_ADDR`
//! and `DATABASE_URL` (a flag given too wins), and a bad value refused with
//! exit status 2 and a message that says what to write.

mod common;

use std::process::{Command, Stdio};

fn feed() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_feed"));
    command.env_remove("FEED_ADDR").env_remove("DATABASE_URL").env("RUST_LOG", "warn");
    command
}

#[test]
fn help_lists_the_flags_with_their_variables_and_defaults() {
    let out = feed().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for wanted in [
        "--addr <HOST:PORT>",
        "[env: FEED_ADDR=]",
        "[env: DATABASE_URL=]",
        "[default: sqlite://feed.db]",
        "--shutdown-grace",
    ] {
        assert!(help.contains(wanted), "{wanted} in {help}");
    }
}

#[test]
fn the_environment_sets_the_address_and_the_database_and_a_flag_wins() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("from-env.db");
    let mut child = feed()
        .env("FEED_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = common::listening_address(&mut child);
    assert!(addr.starts_with("127.0.0.1:") && addr != "127.0.0.1:8080", "FEED_ADDR's port 0, not the default: {addr}");
    assert!(db.exists(), "the database named by DATABASE_URL was created");
    child.kill().unwrap();
    child.wait().unwrap();

    // A bad FEED_ADDR, overridden by --addr: the flag is used.
    let mut child = feed()
        .env("FEED_ADDR", "nope")
        .args(["--addr", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}", db.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(common::listening_address(&mut child).starts_with("127.0.0.1:"));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// An empty variable (`DATABASE_URL=` in a service file) counts as unset:
/// the default database, `feed.db` in the working directory.
#[test]
fn an_empty_variable_means_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = feed()
        .current_dir(dir.path())
        .env("FEED_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", "")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(common::listening_address(&mut child).starts_with("127.0.0.1:"));
    assert!(dir.path().join("feed.db").exists(), "the default sqlite://feed.db");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_bad_value_is_refused_with_status_2_and_says_what_to_write() {
    let out = feed().env("FEED_ADDR", "nope").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let error = String::from_utf8(out.stderr).unwrap();
    assert!(error.contains("'nope'") && error.contains("--addr") && error.contains("HOST:PORT"), "{error}");
    let out = feed().args(["--database-url", "mysql://x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("sqlite://"));
}

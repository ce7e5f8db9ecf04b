//! Command-line settings, with `clap`: `feed --help` lists them; `FEED_ADDR`
//! and `DATABASE_URL` set `--addr` and `--database-url` (a flag given too
//! wins).

use bgsync_server::serve::Limits;
use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://feed.db";

/// feed: the bgsync demo app (posts with a title and a location, sent in
/// the background when offline).
#[derive(Parser, Debug)]
#[command(name = "feed", version)]
pub struct Flags {
    /// Where to listen.
    #[arg(long, env = "FEED_ADDR", value_name = "HOST:PORT", default_value = DEFAULT_ADDR, value_parser = address)]
    pub addr: SocketAddr,
    /// sqlite://PATH (created if absent) or postgres://USER@HOST:PORT/DATABASE.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", default_value = DEFAULT_DATABASE_URL, value_parser = database_url)]
    pub database_url: String,
    /// How long an Idempotency-Key and its answer are kept; longer than any
    /// client keeps retrying.
    #[arg(long, value_name = "SECONDS", default_value = "86400", value_parser = positive_seconds)]
    pub key_ttl: u64,
    /// SQLite: requests that write at the same time share one commit (each
    /// answered after it); off: a transaction per request.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub group_commit: bool,
    /// A request's headers must arrive within this; an idle keep-alive
    /// connection is closed after it.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds, help_heading = LIMITS)]
    pub header_timeout: Duration,
    /// A request's body must arrive within this after its headers, else 408.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = seconds, help_heading = LIMITS)]
    pub body_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, value_name = "N", default_value = "1024", value_parser = connections, help_heading = LIMITS)]
    pub max_connections: usize,
    /// On SIGTERM or SIGINT, how long requests in flight may still finish
    /// before the rest are cut.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds, help_heading = LIMITS)]
    pub shutdown_grace: Duration,
}

const LIMITS: &str = "Limits (a slow or hostile client cannot hold the server)";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: String,
    /// How long an Idempotency-Key and its stored answer are kept.
    pub key_ttl_secs: u64,
    /// SQLite: commit concurrent writes together ([`bgsync_server::Writer`]).
    pub group_commit: bool,
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: DEFAULT_ADDR.parse().expect("the default address parses"),
            database_url: DEFAULT_DATABASE_URL.into(),
            key_ttl_secs: 24 * 60 * 60,
            group_commit: true,
            limits: Limits::default(),
        }
    }
}

impl From<Flags> for Config {
    fn from(flags: Flags) -> Self {
        Self {
            addr: flags.addr,
            database_url: flags.database_url,
            key_ttl_secs: flags.key_ttl,
            group_commit: flags.group_commit,
            limits: Limits {
                header_timeout: flags.header_timeout,
                body_timeout: flags.body_timeout,
                max_connections: flags.max_connections,
                shutdown_grace: flags.shutdown_grace,
            },
        }
    }
}

impl Config {
    /// The settings `args` (the program's name first) and the environment
    /// ask for, or clap's error: a message that says what to write, or the
    /// help or version text (`Error::exit` prints it and exits with the
    /// right status).
    pub fn try_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Flags::try_parse_from(args).map(Self::from)
    }
}

/// An empty value (`FEED_ADDR=` in a service file, say) means the default,
/// as if it were not set.
fn or_default<'a>(v: &'a str, default: &'a str) -> &'a str {
    if v.trim().is_empty() {
        default
    } else {
        v
    }
}

fn address(v: &str) -> Result<SocketAddr, String> {
    or_default(v, DEFAULT_ADDR).parse().map_err(|_| "not HOST:PORT, such as 127.0.0.1:8080".to_owned())
}

fn database_url(v: &str) -> Result<String, String> {
    let v = or_default(v, DEFAULT_DATABASE_URL);
    crate::db::check_url(v).map(|_| v.to_owned())
}

fn positive_seconds(v: &str) -> Result<u64, String> {
    v.parse().ok().filter(|s| *s > 0).ok_or_else(|| "not a positive number of seconds".to_owned())
}

fn on_off(v: &str) -> Result<bool, String> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("neither on nor off".to_owned()),
    }
}

/// A positive number of seconds, fractions allowed (`0.5`).
fn seconds(v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "not a number of seconds between 0 and 86400".to_owned())
}

fn connections(v: &str) -> Result<usize, String> {
    v.parse().ok().filter(|n| (1..=1_000_000).contains(n)).ok_or_else(|| "not a number from 1 to 1000000".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags alone: this process's FEED_ADDR and DATABASE_URL, if the
    /// machine running the tests has them, are not read (`tests/flags.rs`
    /// sets them on the real binary).
    fn parse(args: &[&str]) -> Result<Config, String> {
        use clap::{CommandFactory, FromArgMatches};
        let command = Flags::command().mut_arg("addr", |a| a.env(None)).mut_arg("database_url", |a| a.env(None));
        command
            .try_get_matches_from(std::iter::once("feed").chain(args.iter().copied()))
            .and_then(|matches| Flags::from_arg_matches(&matches))
            .map(Config::from)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(parse(&[]).unwrap(), Config::default());
        let c = parse(&["--addr", "0.0.0.0:9000", "--database-url=sqlite:///tmp/x.db"]).unwrap();
        assert_eq!(c.addr.port(), 9000);
        assert_eq!(c.database_url, "sqlite:///tmp/x.db");
        let help = Config::try_from_args(["feed", "--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        let help = help.to_string();
        for wanted in
            ["--addr <HOST:PORT>", "[env: FEED_ADDR", "[env: DATABASE_URL", "[default: 127.0.0.1:8080]", "Limits"]
        {
            assert!(help.contains(wanted), "{wanted} in {help}");
        }
    }

    #[test]
    fn bad_arguments_say_what_to_do() {
        assert!(parse(&["--addr", "nope"]).unwrap_err().contains("HOST:PORT"));
        assert!(parse(&["--addr"]).unwrap_err().contains("a value is required"));
        assert!(parse(&["--port", "1"]).unwrap_err().contains("unexpected argument '--port'"));
        assert!(parse(&["--adr", "1"]).unwrap_err().contains("--addr"), "suggests the flag meant");
        assert!(parse(&["--database-url", "mysql://x"]).unwrap_err().contains("sqlite://"));
        assert!(parse(&["--database-url", "postgres://u@h:5432/d"]).is_ok());
        assert_eq!(parse(&["--addr", "", "--database-url", " "]).unwrap(), Config::default(), "empty: the default");
        assert!(parse(&["--key-ttl", "0"]).unwrap_err().contains("positive"));
        assert!(matches!(parse(&["--key-ttl", "60"]), Ok(Config { key_ttl_secs: 60, .. })));
        assert!(parse(&["--group-commit", "maybe"]).unwrap_err().contains("on nor off"));
        assert!(matches!(parse(&["--group-commit=off"]), Ok(Config { group_commit: false, .. })));
        assert!(parse(&["--header-timeout", "0"]).unwrap_err().contains("seconds"));
        assert!(parse(&["--body-timeout", "soon"]).unwrap_err().contains("seconds"));
        assert!(parse(&["--max-connections", "0"]).unwrap_err().contains("from 1"));
        let c = parse(&["--header-timeout", "0.5", "--max-connections=64", "--shutdown-grace", "3"]).unwrap();
        assert_eq!(c.limits.header_timeout, Duration::from_millis(500));
        assert_eq!((c.limits.max_connections, c.limits.shutdown_grace), (64, Duration::from_secs(3)));
    }
}

//! Command-line settings.

use bgsync_server::serve::Limits;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://feed.db";

pub const HELP: &str = "\
feed: the bgsync demo app (posts with a title and a location, sent in the
background when offline).

USAGE:
    feed [--addr HOST:PORT] [--database-url URL] [--key-ttl SECONDS] [limits]

OPTIONS:
    --addr HOST:PORT       where to listen [env: FEED_ADDR] [default: 127.0.0.1:8080]
    --database-url URL     sqlite://PATH (created if absent) or postgres://USER@HOST:PORT/DATABASE
                           [env: DATABASE_URL] [default: sqlite://feed.db]
    --key-ttl SECONDS      how long an Idempotency-Key and its answer are kept; longer
                           than any client keeps retrying [default: 86400]
    --group-commit on|off  SQLite: requests that write at the same time share one
                           commit (each answered after it); off: a transaction per
                           request [default: on]
    -h, --help             print this help

LIMITS (a slow or hostile client cannot hold the server):
    --header-timeout SECONDS   a request's headers must arrive within this; an idle
                               keep-alive connection is closed after it [default: 10]
    --body-timeout SECONDS     a request's body must arrive within this after its
                               headers, else 408 [default: 30]
    --max-connections N        connections served at once; more wait to be
                               accepted [default: 1024]
    --shutdown-grace SECONDS   on SIGTERM or SIGINT, how long requests in flight
                               may still finish before the rest are cut [default: 10]
";

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

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve(Config),
    Help,
}

#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n\nRun `feed --help` for the options.", self.0)
    }
}

/// Environment variables that set a flag (a flag given too wins).
pub const ENV_FLAGS: [(&str, &str); 2] = [("FEED_ADDR", "--addr"), ("DATABASE_URL", "--database-url")];

impl Command {
    /// [`Command::parse`], with [`ENV_FLAGS`] read through `env` first.
    pub fn parse_with_env(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, UsageError> {
        let mut all = Vec::new();
        for (var, flag) in ENV_FLAGS {
            if let Some(value) = env(var).filter(|v| !v.is_empty()) {
                let arg = format!("{flag}={value}");
                Self::parse([arg.clone()]).map_err(|e| UsageError(format!("{var}={value:?}: {}", e.0)))?;
                all.push(arg);
            }
        }
        all.extend(args);
        Self::parse(all)
    }

    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, UsageError> {
        let mut config = Config::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value =
                || inline.clone().or_else(|| args.next()).ok_or_else(|| UsageError(format!("{name} needs a value")));
            match name.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--addr" => {
                    let v = value()?;
                    config.addr = v
                        .parse()
                        .map_err(|_| UsageError(format!("--addr {v:?} is not HOST:PORT, such as 127.0.0.1:8080")))?;
                }
                "--database-url" => {
                    let v = value()?;
                    crate::db::check_url(&v).map_err(UsageError)?;
                    config.database_url = v;
                }
                "--key-ttl" => {
                    let v = value()?;
                    config.key_ttl_secs =
                        v.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                            UsageError(format!("--key-ttl {v:?} is not a positive number of seconds"))
                        })?;
                }
                "--group-commit" => {
                    config.group_commit = match value()?.as_str() {
                        "on" => true,
                        "off" => false,
                        v => return Err(UsageError(format!("--group-commit {v:?} is neither on nor off"))),
                    }
                }
                "--header-timeout" => config.limits.header_timeout = seconds(&name, &value()?)?,
                "--body-timeout" => config.limits.body_timeout = seconds(&name, &value()?)?,
                "--shutdown-grace" => config.limits.shutdown_grace = seconds(&name, &value()?)?,
                "--max-connections" => {
                    let v = value()?;
                    config.limits.max_connections =
                        v.parse().ok().filter(|n| (1..=1_000_000).contains(n)).ok_or_else(|| {
                            UsageError(format!("--max-connections {v:?} is not a number from 1 to 1000000"))
                        })?;
                }
                other => return Err(UsageError(format!("unknown argument {other:?}"))),
            }
        }
        Ok(Command::Serve(config))
    }
}

/// A positive number of seconds, fractions allowed (`0.5`).
fn seconds(flag: &str, v: &str) -> Result<Duration, UsageError> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| UsageError(format!("{flag} {v:?} is not a number of seconds between 0 and 86400")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        Command::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(parse(&[]).unwrap(), Command::Serve(Config::default()));
        let Command::Serve(c) = parse(&["--addr", "0.0.0.0:9000", "--database-url=sqlite:///tmp/x.db"]).unwrap() else {
            panic!()
        };
        assert_eq!(c.addr.port(), 9000);
        assert_eq!(c.database_url, "sqlite:///tmp/x.db");
        assert_eq!(parse(&["--help"]).unwrap(), Command::Help);
    }

    #[test]
    fn bad_arguments_say_what_to_do() {
        assert!(parse(&["--addr", "nope"]).unwrap_err().0.contains("HOST:PORT"));
        assert!(parse(&["--addr"]).unwrap_err().0.contains("needs a value"));
        assert!(parse(&["--port", "1"]).unwrap_err().0.contains("unknown argument"));
        assert!(parse(&["--database-url", "mysql://x"]).unwrap_err().0.contains("sqlite://"));
        assert!(parse(&["--database-url", "postgres://u@h:5432/d"]).is_ok());
        assert!(parse(&["--key-ttl", "0"]).unwrap_err().0.contains("positive"));
        assert!(matches!(parse(&["--key-ttl", "60"]), Ok(Command::Serve(Config { key_ttl_secs: 60, .. }))));
        let env = |var: &str| match var {
            "FEED_ADDR" => Some("0.0.0.0:9001".to_owned()),
            "DATABASE_URL" => Some("postgres://u@h:5432/d".to_owned()),
            _ => None,
        };
        let Command::Serve(c) = Command::parse_with_env(Vec::new(), env).unwrap() else { panic!() };
        assert_eq!((c.addr.port(), c.database_url.as_str()), (9001, "postgres://u@h:5432/d"));
        let Command::Serve(c) = Command::parse_with_env(vec!["--addr".into(), "127.0.0.1:1".into()], env).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.addr.port(), 1, "a flag wins over the environment");
        let bad = Command::parse_with_env(Vec::new(), |v: &str| (v == "FEED_ADDR").then(|| "nope".to_owned()));
        assert!(bad.unwrap_err().0.starts_with("FEED_ADDR=\"nope\": --addr"), "names the variable");
        assert!(parse(&["--group-commit", "maybe"]).unwrap_err().0.contains("on nor off"));
        assert!(matches!(parse(&["--group-commit=off"]), Ok(Command::Serve(Config { group_commit: false, .. }))));
        assert!(parse(&["--header-timeout", "0"]).unwrap_err().0.contains("seconds"));
        assert!(parse(&["--body-timeout", "soon"]).unwrap_err().0.contains("seconds"));
        assert!(parse(&["--max-connections", "0"]).unwrap_err().0.contains("from 1"));
        let Command::Serve(c) =
            parse(&["--header-timeout", "0.5", "--max-connections=64", "--shutdown-grace", "3"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.limits.header_timeout, Duration::from_millis(500));
        assert_eq!((c.limits.max_connections, c.limits.shutdown_grace), (64, Duration::from_secs(3)));
    }
}

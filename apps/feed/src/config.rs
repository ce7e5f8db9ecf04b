//! Command-line settings.

use std::fmt;
use std::net::SocketAddr;

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://feed.db";

pub const HELP: &str = "\
feed: the bgsync demo app (posts with a title and a location, sent in the
background when offline).

USAGE:
    feed [--addr HOST:PORT] [--database-url URL] [--key-ttl SECONDS]

OPTIONS:
    --addr HOST:PORT       where to listen [default: 127.0.0.1:8080]
    --database-url URL     sqlite://PATH (created if absent) or
                           postgres://USER@HOST:PORT/DATABASE [default: sqlite://feed.db]
    --key-ttl SECONDS      how long an Idempotency-Key and its answer are kept; longer
                           than any client keeps retrying [default: 86400]
    -h, --help             print this help
";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: String,
    /// How long an Idempotency-Key and its stored answer are kept.
    pub key_ttl_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: DEFAULT_ADDR.parse().expect("the default address parses"),
            database_url: DEFAULT_DATABASE_URL.into(),
            key_ttl_secs: 24 * 60 * 60,
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

impl Command {
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
                other => return Err(UsageError(format!("unknown argument {other:?}"))),
            }
        }
        Ok(Command::Serve(config))
    }
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
    }
}

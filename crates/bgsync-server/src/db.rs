//! Opening an app's database the way background sync needs it: SQLite (a
//! file, created if absent: the embedded default) or PostgreSQL (several
//! stateless servers on one database), chosen by the URL, through sqlx's
//! `Any` driver so an app writes its queries once, with its migrations
//! (and the key store's schema among them) run at start.

use crate::Writer;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor};
use std::borrow::Cow;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Which backend a URL names, or what to use instead.
    pub fn of(url: &str) -> Result<Self, String> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(format!(
                "the database URL {url:?} is not supported: use sqlite://PATH (such as sqlite://app.db) \
                 or postgres://USER@HOST:PORT/DATABASE"
            ))
        }
    }
}

/// An open database, which backend it is, and the [`Writer`] effects are
/// written through (group commit on SQLite, a transaction per request on
/// PostgreSQL).
#[derive(Clone, Debug)]
pub struct Database {
    pub pool: AnyPool,
    pub backend: Backend,
    pub writer: Writer<sqlx::Any>,
}

/// How long one statement may run on PostgreSQL (lock waits included).
const STATEMENT_TIMEOUT: &str = "SET statement_timeout = 15000";

/// A migration: version, description, SQL.
pub type MigrationSql = (i64, &'static str, &'static str);

/// Opens `url` and runs `migrations(backend)` (in version order; include
/// [`crate::idempotency::SQLITE_SCHEMA`] or `POSTGRES_SCHEMA` among them).
///
/// SQLite runs in WAL mode (readers beside the writer) with
/// `synchronous = FULL` (a request that got a 2xx survives a power loss,
/// not only a killed process) and a 10 s busy timeout; 8 connections.
/// Statement and savepoint journals stay in memory (`temp_store = MEMORY`:
/// a batch's savepoint otherwise copies every page it touches into a temp
/// file first, thousands of `pwrite`s per 1,000-entry batch), and each
/// connection caches up to 16 MiB of pages (SQLite's default, 2 MiB, is
/// less than a large batch touches on a grown database).
/// PostgreSQL gets 16, each with a `statement_timeout` of 15 s (unless the
/// URL sets one, as `?options=-c%20statement_timeout%3D5000`): a statement
/// stuck behind a lock another session holds fails, and its request gets a
/// storage failure (503, retried by clients) instead of holding its
/// connection for as long as the lock lasts while retries pile up on the
/// pool. Migrations run without it. On SQLite, writes go through one
/// connection with group commit ([`Writer::group_commit`]). A request
/// waits at most 5 s for a connection, then gets a storage failure (503)
/// rather than hanging.
pub async fn connect(url: &str, migrations: impl Fn(Backend) -> Vec<MigrationSql>) -> Result<Database, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of(url).map_err(|e| sqlx::Error::Configuration(e.into()))?;
    let url = match backend {
        Backend::Sqlite if !url.contains("mode=") => {
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        }
        _ => url.to_owned(),
    };
    let own_timeout = backend == Backend::Postgres && !url.contains("statement_timeout");
    let pool = AnyPoolOptions::new()
        .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
        .acquire_timeout(Duration::from_secs(5))
        // A ping before each use is a round trip to the connection's
        // thread; a SQLite file's connection cannot go away by itself.
        .test_before_acquire(backend != Backend::Sqlite)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA busy_timeout = 10000",
                        "PRAGMA foreign_keys = ON",
                        "PRAGMA temp_store = MEMORY",
                        "PRAGMA cache_size = -16384",
                    ] {
                        conn.execute(pragma).await?;
                    }
                }
                if own_timeout {
                    conn.execute(STATEMENT_TIMEOUT).await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    let migrations = migrations(backend)
        .into_iter()
        .map(|(version, description, sql)| {
            Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, Cow::Borrowed(sql), false)
        })
        .collect();
    let migrator = Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT };
    if own_timeout {
        // A migration may take longer than a request's statements may: on
        // a connection of its own, without the timeout.
        let once = AnyPoolOptions::new().max_connections(1).connect(&url).await?;
        let migrated = migrator.run(&once).await;
        once.close().await;
        migrated?;
    } else {
        migrator.run(&pool).await?;
    }
    let writer = match backend {
        Backend::Sqlite => Writer::group_commit(pool.clone()),
        Backend::Postgres => Writer::per_request(pool.clone()),
    };
    Ok(Database { pool, backend, writer })
}

//! The database: SQLite (embedded, the default) or PostgreSQL (several
//! stateless servers on one database), chosen by the URL, through sqlx's
//! `Any` driver so the queries are written once. Migrations are embedded.

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor};
use std::borrow::Cow;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "posts", include_str!("../migrations/sqlite/0001_posts.sql")),
    (2, "idempotency keys", bgsync_server::idempotency::SQLITE_SCHEMA),
];

const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "posts", include_str!("../migrations/postgres/0001_posts.sql")),
    (2, "idempotency keys", bgsync_server::idempotency::POSTGRES_SCHEMA),
];

/// Which backend a URL names, or what to use instead.
pub fn check_url(url: &str) -> Result<Backend, String> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(format!(
            "--database-url {url:?} is not supported: use sqlite://PATH (such as sqlite://feed.db) \
             or postgres://USER@HOST:PORT/DATABASE"
        ))
    }
}

/// Opens (a SQLite file is created if absent) and migrates the database.
pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let backend = check_url(url).map_err(|e| sqlx::Error::Configuration(e.into()))?;
    let url = match backend {
        Backend::Sqlite if !url.contains("mode=") => {
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        }
        _ => url.to_owned(),
    };
    let pool = AnyPoolOptions::new()
        .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
        // A request that cannot get a connection soon is answered 503 (and
        // retried by its client) rather than held for sqlx's default 30 s.
        .acquire_timeout(std::time::Duration::from_secs(5))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the writer; FULL syncs the
                    // WAL on every commit, so a post that got a 2xx survives
                    // a crash or a power loss, not only a killed process.
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA busy_timeout = 10000",
                        "PRAGMA foreign_keys = ON",
                    ] {
                        conn.execute(pragma).await?;
                    }
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    migrator(backend).run(&pool).await?;
    Ok(Db { pool, backend })
}

fn migrator(backend: Backend) -> Migrator {
    let list = match backend {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
    };
    let migrations = list
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(*version, Cow::Borrowed(*description), MigrationType::Simple, Cow::Borrowed(*sql), false)
        })
        .collect::<Vec<_>>();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

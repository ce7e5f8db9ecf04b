//! The database: SQLite (a file, the default) or PostgreSQL, through sqlx's
//! `Any` driver so the queries are written once; migrations are embedded.

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyConnection, AnyPool, Executor};
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

/// Opens (a SQLite file is created if absent) and migrates the database.
pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let (backend, url) = if url.starts_with("sqlite:") {
        let join = if url.contains('?') { '&' } else { '?' };
        (Backend::Sqlite, if url.contains("mode=") { url.to_owned() } else { format!("{url}{join}mode=rwc") })
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        (Backend::Postgres, url.to_owned())
    } else {
        return Err(sqlx::Error::Configuration(
            format!("{url:?} is not supported: use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE").into(),
        ));
    };
    let pool = AnyPoolOptions::new()
        .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
        .acquire_timeout(std::time::Duration::from_secs(5))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    for pragma in
                        ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA busy_timeout = 10000"]
                    {
                        conn.execute(pragma).await?;
                    }
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    let (tasks, keys) = match backend {
        Backend::Sqlite => {
            (include_str!("../migrations/sqlite/0001_tasks.sql"), bgsync_server::idempotency::SQLITE_SCHEMA)
        }
        Backend::Postgres => {
            (include_str!("../migrations/postgres/0001_tasks.sql"), bgsync_server::idempotency::POSTGRES_SCHEMA)
        }
    };
    let migrations = [(1, "tasks", tasks), (2, "idempotency keys", keys)]
        .into_iter()
        .map(|(version, name, sql)| {
            Migration::new(version, Cow::Borrowed(name), MigrationType::Simple, Cow::Borrowed(sql), false)
        })
        .collect();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }.run(&pool).await?;
    Ok(Db { pool, backend })
}

/// Serializes writers to the tasks table for the rest of the transaction,
/// so each write's version is one more than the last committed one and
/// versions commit in order (a reader never sees N+1 before N). SQLite
/// serializes writers already.
pub async fn lock_writes(conn: &mut AnyConnection, backend: Backend) -> Result<(), sqlx::Error> {
    if backend == Backend::Postgres {
        conn.execute("SELECT pg_advisory_xact_lock(7201)").await?;
    }
    Ok(())
}

//! The database: connection settings and migrations.

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

/// Migrations, embedded so the binary needs no files beside it.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "posts", include_str!("../migrations/0001_posts.sql")),
    (2, "idempotency keys", bgsync_server::idempotency::SQLITE_SCHEMA),
];

/// Refuses URLs this build cannot serve, with what to use instead.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("sqlite:") {
        Ok(())
    } else {
        Err(format!("--database-url {url:?} is not supported: use sqlite://PATH, such as sqlite://feed.db"))
    }
}

/// Opens (creating if absent) and migrates the database.
pub async fn connect(url: &str) -> Result<SqlitePool, sqlx::Error> {
    check_url(url).map_err(|e| sqlx::Error::Configuration(e.into()))?;
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        // WAL lets readers run beside the writer; FULL syncs the WAL on
        // every commit, so an acknowledged post survives a crash or a power
        // loss, not only a killed process.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
    migrator().run(&pool).await?;
    Ok(pool)
}

fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(*version, Cow::Borrowed(*description), MigrationType::Simple, Cow::Borrowed(*sql), false)
        })
        .collect::<Vec<_>>();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

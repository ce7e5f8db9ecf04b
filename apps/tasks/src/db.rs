//! The tasks database: SQLite (a file, the default) or PostgreSQL, opened by
//! bgsync-server with the app's migrations.

use bgsync_server::db::MigrationSql;
pub use bgsync_server::db::{Backend, Database as Db};
use sqlx::{AnyConnection, Executor};

fn migrations(backend: Backend) -> Vec<MigrationSql> {
    match backend {
        Backend::Sqlite => vec![
            (1, "tasks", include_str!("../migrations/sqlite/0001_tasks.sql")),
            (2, "idempotency keys", bgsync_server::idempotency::SQLITE_SCHEMA),
        ],
        Backend::Postgres => vec![
            (1, "tasks", include_str!("../migrations/postgres/0001_tasks.sql")),
            (2, "idempotency keys", bgsync_server::idempotency::POSTGRES_SCHEMA),
        ],
    }
}

/// Opens (a SQLite file is created if absent) and migrates the database.
pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
    bgsync_server::db::connect(url, migrations).await
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

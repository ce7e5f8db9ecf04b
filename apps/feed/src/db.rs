//! The feed's database: SQLite (embedded, the default) or PostgreSQL,
//! opened by bgsync-server with the feed's migrations.

use bgsync_server::db::MigrationSql;
pub use bgsync_server::db::{Backend, Database as Db};

fn migrations(backend: Backend) -> Vec<MigrationSql> {
    match backend {
        Backend::Sqlite => vec![
            (1, "posts", include_str!("../migrations/sqlite/0001_posts.sql")),
            (2, "idempotency keys", bgsync_server::idempotency::SQLITE_SCHEMA),
        ],
        Backend::Postgres => vec![
            (1, "posts", include_str!("../migrations/postgres/0001_posts.sql")),
            (2, "idempotency keys", bgsync_server::idempotency::POSTGRES_SCHEMA),
        ],
    }
}

/// Which backend a URL names, or what to use instead.
pub fn check_url(url: &str) -> Result<Backend, String> {
    Backend::of(url).map_err(|e| format!("--database-url: {e}"))
}

/// Opens (a SQLite file is created if absent) and migrates the database.
pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
    bgsync_server::db::connect(url, migrations).await
}

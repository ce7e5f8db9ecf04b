//! The test PostgreSQL server (`BGSYNC_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`): a fresh database per test,
//! dropped after. Tests fail, never skip, when it cannot be reached.

/// The admin URL of the test PostgreSQL server.
pub fn admin_url() -> String {
    std::env::var("BGSYNC_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Runs `sql` (`CREATE DATABASE …`, `DROP DATABASE …`) on the test server.
pub async fn admin(sql: &str) {
    sqlx::any::install_default_drivers();
    let url = admin_url();
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is needed for these tests and is not reachable at {url} ({e}); start it or set BGSYNC_TEST_POSTGRES")
    });
    sqlx::query(sql).execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
}

/// A new, empty database named `<prefix>_<unique>`: its URL and its name
/// (to drop with [`drop_database`]).
pub async fn create_database(prefix: &str) -> (String, String) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let name = format!("{prefix}_{}_{}_{n}", std::process::id(), since_epoch.as_millis());
    admin(&format!("CREATE DATABASE {name}")).await;
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    (format!("{base}/{name}"), name)
}

/// Drops a database [`create_database`] made.
pub async fn drop_database(name: &str) {
    admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}

/// Runs `f` to completion on a runtime of its own, from sync code that may
/// itself be inside a runtime (a `Drop`).
pub fn on_own_runtime<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f))
        .join()
        .unwrap()
}

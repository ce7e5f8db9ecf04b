//! Direct SQLite: a group's statements run on the calling thread, through
//! SQLite's C API, instead of one round trip each to sqlx's SQLite thread.
//!
//! sqlx gives every SQLite connection a thread of its own, and each
//! statement is a message to it and an answer back: two thread wake-ups.
//! Measured on a 2-core VM, storing 1,000 posts and their idempotency keys
//! (2,000 inserts) in one transaction took 107–117 ms through sqlx and 9–15
//! ms through the C API on the same connection: the wake-ups, not SQLite,
//! were the time (the last paragraph of `cargo bench -p feed --bench sync`
//! measures both).
//!
//! [`crate::WriteTx::sqlite`] (and [`crate::batch::EffectTx::sqlite`])
//! hands out a [`Direct`] where the transaction already holds SQLite's
//! write lock: a member of a group-commit writer's group, and so every
//! entry of a batch on SQLite. There a statement never waits for the lock
//! (no busy handler can block the caller's thread); elsewhere (PostgreSQL,
//! SQLite without group commit) it is `None` and the handler uses sqlx as
//! before. [`Direct`] holds sqlx's lock on the connection
//! ([`sqlx::sqlite::SqliteConnection::lock_handle`]) until the group's
//! transaction next runs a statement through sqlx, commits or ends, so a
//! batch's entries, and the requests of one group, share one hand-over.
//! Both kinds of statement run in the same transaction; a handler may mix
//! them.
//!
//! Statements are prepared once per hand-over and kept while it lasts (a
//! batch of 1,000 entries prepares each of its statements once), and
//! finalized when it ends: the connection stays sqlx's, which may close it.

use libsqlite3_sys as ffi;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::sqlite::{LockedSqliteHandle, SqliteConnection};
use sqlx::AnyConnection;
use sqlx_core::any::AnyConnectionBackend;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};
use std::ptr::NonNull;

/// A value bound to a statement's parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Self::Integer(v)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Self::Blob(v)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// The current row of a query, read by column index (from 0).
pub struct Row<'s> {
    statement: NonNull<ffi::sqlite3_stmt>,
    _statement: std::marker::PhantomData<&'s mut Direct>,
}

impl Row<'_> {
    fn kind(&self, column: usize) -> c_int {
        unsafe { ffi::sqlite3_column_type(self.statement.as_ptr(), column as c_int) }
    }

    /// The column as an integer (`None` for NULL).
    pub fn integer(&self, column: usize) -> Option<i64> {
        (self.kind(column) != ffi::SQLITE_NULL)
            .then(|| unsafe { ffi::sqlite3_column_int64(self.statement.as_ptr(), column as c_int) })
    }

    /// The column as text (`None` for NULL; invalid UTF-8 replaced).
    pub fn text(&self, column: usize) -> Option<String> {
        let bytes = self.bytes(column, true)?;
        Some(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// The column as bytes (`None` for NULL).
    pub fn blob(&self, column: usize) -> Option<Vec<u8>> {
        self.bytes(column, false)
    }

    fn bytes(&self, column: usize, text: bool) -> Option<Vec<u8>> {
        if self.kind(column) == ffi::SQLITE_NULL {
            return None;
        }
        let (statement, column) = (self.statement.as_ptr(), column as c_int);
        // SAFETY: the pointer is valid until the next step, reset or
        // conversion of this column; the length is asked after it.
        unsafe {
            let data: *const u8 = if text {
                ffi::sqlite3_column_text(statement, column)
            } else {
                ffi::sqlite3_column_blob(statement, column).cast()
            };
            let len = ffi::sqlite3_column_bytes(statement, column) as usize;
            Some(if data.is_null() { Vec::new() } else { std::slice::from_raw_parts(data, len).to_vec() })
        }
    }
}

/// How long a request waits for sqlx's thread to hand the connection over
/// (it takes microseconds when it works) before it uses sqlx instead.
pub const HAND_OVER_PATIENCE: std::time::Duration = std::time::Duration::from_millis(20);

/// A transaction's SQLite connection, held for statements run on the
/// calling thread (see the module's documentation).
pub struct Direct {
    // Finalized (in `drop`) before the lock below is released.
    statements: HashMap<Box<str>, NonNull<ffi::sqlite3_stmt>>,
    db: NonNull<ffi::sqlite3>,
    _lock: LockedSqliteHandle<'static>,
}

// SAFETY: `Direct` owns sqlx's lock on the connection: while it lives no
// other thread uses the handle or its statements, and it is used through
// `&mut self` only, so it may move between threads with its owner (sqlx
// opens SQLite connections in multi-thread mode: a connection may be used
// from any thread, one at a time).
unsafe impl Send for Direct {}
unsafe impl Sync for Direct {}

impl Drop for Direct {
    fn drop(&mut self) {
        for (_, statement) in self.statements.drain() {
            unsafe { ffi::sqlite3_finalize(statement.as_ptr()) };
        }
    }
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct").field("statements", &self.statements.len()).finish()
    }
}

impl Direct {
    /// Takes `conn`'s handle from sqlx's thread; `None` when sqlx's thread
    /// has not handed it over within [`HAND_OVER_PATIENCE`] (the caller
    /// then runs its statements through sqlx).
    ///
    /// sqlx-sqlite 0.8.6's `lock_handle` can wait forever: it holds the
    /// connection's lock while it waits for room in the channel to sqlx's
    /// thread, and that thread, waiting for the lock, does not read. The
    /// channel fills with hand-over messages a caller got ahead of (see
    /// `Slot::direct` in [`crate::writer`], which hands the connection over
    /// once a group so that it cannot happen there). The patience is the
    /// safety net: giving up the wait lets go of the lock, sqlx's thread
    /// goes on, and the statements go through sqlx as they would without
    /// this module.
    ///
    /// # Safety
    /// `conn` must outlive the returned value and run no statement through
    /// sqlx until it is dropped (that statement would wait for it).
    pub(crate) async unsafe fn lock(conn: &mut SqliteConnection) -> Result<Option<Self>, sqlx::Error> {
        let Ok(lock) = tokio::time::timeout(HAND_OVER_PATIENCE, conn.lock_handle()).await else {
            crate::metrics::METRICS.direct_gave_up.inc();
            return Ok(None);
        };
        let mut lock = lock?;
        let db = lock.as_raw_handle();
        // SAFETY (the caller's): the guard locks a mutex that `conn`'s
        // worker shares (behind an `Arc`), which outlives this value.
        let lock = unsafe { std::mem::transmute::<LockedSqliteHandle<'_>, LockedSqliteHandle<'static>>(lock) };
        Ok(Some(Self { statements: HashMap::new(), db, _lock: lock }))
    }

    /// Runs a statement that returns no rows (or whose rows are not
    /// wanted); returns how many rows it changed. Parameters are `$1`,
    /// `$2`, … (or `?1`, `?`) as with sqlx.
    pub fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, sqlx::Error> {
        let statement = self.prepare(sql, params)?;
        let result = loop {
            match unsafe { ffi::sqlite3_step(statement.as_ptr()) } {
                ffi::SQLITE_ROW => continue,
                ffi::SQLITE_DONE => break Ok(unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) } as u64),
                code => break Err(self.error(code)),
            }
        };
        self.reset(statement);
        result
    }

    /// Runs a query and reads its first row with `read`, if it has one.
    pub fn query_optional<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        read: impl FnOnce(&Row<'_>) -> T,
    ) -> Result<Option<T>, sqlx::Error> {
        let statement = self.prepare(sql, params)?;
        let result = match unsafe { ffi::sqlite3_step(statement.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(Some(read(&Row { statement, _statement: std::marker::PhantomData }))),
            ffi::SQLITE_DONE => Ok(None),
            code => Err(self.error(code)),
        };
        self.reset(statement);
        result
    }

    /// Runs statements without parameters (`SAVEPOINT …; …`).
    pub fn execute_batch(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = std::ffi::CString::new(sql).map_err(|_| protocol("a statement may not contain a NUL byte"))?;
        let code = unsafe {
            ffi::sqlite3_exec(self.db.as_ptr(), sql.as_ptr(), None, std::ptr::null_mut(), std::ptr::null_mut())
        };
        if code == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.error(code))
        }
    }

    /// The prepared statement for `sql` (prepared now, or kept from an
    /// earlier use), with `params` bound.
    fn prepare(&mut self, sql: &str, params: &[Value<'_>]) -> Result<NonNull<ffi::sqlite3_stmt>, sqlx::Error> {
        let statement = match self.statements.get(sql) {
            Some(statement) => *statement,
            None => {
                let mut raw = std::ptr::null_mut();
                let mut tail: *const c_char = std::ptr::null();
                let len = c_int::try_from(sql.len()).map_err(|_| protocol("the statement is too long"))?;
                let code = unsafe {
                    ffi::sqlite3_prepare_v3(
                        self.db.as_ptr(),
                        sql.as_ptr().cast(),
                        len,
                        ffi::SQLITE_PREPARE_PERSISTENT,
                        &mut raw,
                        &mut tail,
                    )
                };
                if code != ffi::SQLITE_OK {
                    return Err(self.error(code));
                }
                let Some(statement) = NonNull::new(raw) else {
                    return Err(protocol("the statement is empty"));
                };
                // Where SQLite stopped reading: the end of the first statement.
                let rest =
                    if tail.is_null() { sql.len() } else { (tail as usize).saturating_sub(sql.as_ptr() as usize) };
                if !sql[rest.min(sql.len())..].trim().trim_matches(';').trim().is_empty() {
                    unsafe { ffi::sqlite3_finalize(statement.as_ptr()) };
                    return Err(protocol("one statement at a time: run several with Direct::execute_batch"));
                }
                self.statements.insert(sql.into(), statement);
                statement
            }
        };
        if let Err(e) = self.bind(statement, params) {
            self.reset(statement);
            return Err(e);
        }
        Ok(statement)
    }

    fn bind(&self, statement: NonNull<ffi::sqlite3_stmt>, params: &[Value<'_>]) -> Result<(), sqlx::Error> {
        let raw = statement.as_ptr();
        let count = unsafe { ffi::sqlite3_bind_parameter_count(raw) };
        let mut next = 0;
        for i in 1..=count {
            // `$N` and `?N` name their argument; a plain `?` takes the next.
            let name = unsafe { ffi::sqlite3_bind_parameter_name(raw, i) };
            let index = if name.is_null() {
                next += 1;
                next
            } else {
                let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
                name.get(1..)
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| protocol(&format!("parameter {name} is not of the form $N or ?N")))?
            };
            let value = params.get(index.wrapping_sub(1)).ok_or_else(|| {
                protocol(&format!("the statement uses parameter {index}; {} were given", params.len()))
            })?;
            let code = unsafe {
                match *value {
                    Value::Null => ffi::sqlite3_bind_null(raw, i),
                    Value::Integer(v) => ffi::sqlite3_bind_int64(raw, i, v),
                    Value::Real(v) => ffi::sqlite3_bind_double(raw, i, v),
                    Value::Text(v) => {
                        ffi::sqlite3_bind_text64(raw, i, v.as_ptr().cast(), v.len() as u64, ffi::SQLITE_TRANSIENT(), 1)
                    }
                    Value::Blob(v) => {
                        ffi::sqlite3_bind_blob64(raw, i, v.as_ptr().cast(), v.len() as u64, ffi::SQLITE_TRANSIENT())
                    }
                }
            };
            if code != ffi::SQLITE_OK {
                return Err(self.error(code));
            }
        }
        Ok(())
    }

    fn reset(&self, statement: NonNull<ffi::sqlite3_stmt>) {
        unsafe {
            ffi::sqlite3_reset(statement.as_ptr());
            ffi::sqlite3_clear_bindings(statement.as_ptr());
        }
    }

    fn error(&self, code: c_int) -> sqlx::Error {
        let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db.as_ptr())) }.to_string_lossy().into_owned();
        let extended = unsafe { ffi::sqlite3_extended_errcode(self.db.as_ptr()) };
        sqlx::Error::Database(Box::new(DirectError { code: if extended != 0 { extended } else { code }, message }))
    }
}

fn protocol(message: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("direct SQLite: {message}"))
}

/// An error SQLite reported to a [`Direct`] statement, as sqlx reports its
/// own (`kind()` tells constraint violations apart).
#[derive(Debug)]
pub struct DirectError {
    code: c_int,
    message: String,
}

impl std::fmt::Display for DirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for DirectError {}

impl DatabaseError for DirectError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => ErrorKind::UniqueViolation,
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// The SQLite connection behind `conn`: `conn` itself, or the one an `Any`
/// connection runs on; `None` for any other database.
pub(crate) fn sqlite_connection<C: 'static>(conn: &mut C) -> Option<&mut SqliteConnection> {
    let conn: &mut dyn std::any::Any = conn;
    if conn.is::<SqliteConnection>() {
        return conn.downcast_mut();
    }
    let any = conn.downcast_mut::<AnyConnection>()?;
    // sqlx 0.8's `AnyConnection` is one field, `backend: Box<dyn
    // AnyConnectionBackend>`, and offers no way to it; the backend trait
    // has `std::any::Any` as a supertrait for downcasts like this one.
    const _: () = assert!(
        std::mem::size_of::<AnyConnection>() == std::mem::size_of::<Box<dyn AnyConnectionBackend>>()
            && std::mem::align_of::<AnyConnection>() == std::mem::align_of::<Box<dyn AnyConnectionBackend>>()
    );
    // SAFETY: a struct of one field, of the field's size and alignment, has
    // it at offset 0 (checked above; the test
    // `an_any_connection_is_reached_and_its_statements_run_directly` runs it
    // on a real connection).
    let backend = unsafe { &mut *(any as *mut AnyConnection).cast::<Box<dyn AnyConnectionBackend>>() };
    let backend: &mut dyn std::any::Any = &mut **backend;
    backend.downcast_mut::<SqliteConnection>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    #[tokio::test]
    async fn an_any_connection_is_reached_and_its_statements_run_directly() {
        sqlx::any::install_default_drivers();
        let mut any = sqlx::AnyConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::Executor::execute(&mut any, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, data BLOB)")
            .await
            .unwrap();
        let sqlite = sqlite_connection(&mut any).expect("an Any connection on SQLite reaches its SqliteConnection");
        let mut direct = unsafe { Direct::lock(sqlite) }.await.unwrap().expect("handed over in time");
        let insert = "INSERT INTO t (name, data) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
        assert_eq!(direct.execute(insert, &["a".into(), Value::Blob(b"x")]).unwrap(), 1);
        assert_eq!(direct.execute(insert, &["a".into(), Value::Null]).unwrap(), 0, "the conflict changes nothing");
        // `$2` before `$1`: bound by name, not by position.
        assert_eq!(
            direct.execute("INSERT INTO t (data, name) VALUES ($2, $1)", &["b".into(), Value::Null]).unwrap(),
            1
        );
        let row = direct
            .query_optional("SELECT id, name, data FROM t WHERE name = $1", &["a".into()], |r| {
                (r.integer(0), r.text(1), r.blob(2))
            })
            .unwrap();
        assert_eq!(row, Some((Some(1), Some("a".into()), Some(b"x".to_vec()))));
        let none = direct.query_optional("SELECT id FROM t WHERE name = $1", &["zz".into()], |r| r.integer(0));
        assert_eq!(none.unwrap(), None);
        let error = direct.execute("INSERT INTO t (id, name) VALUES (1, 'c')", &[]).unwrap_err();
        assert!(matches!(&error, sqlx::Error::Database(e) if e.kind() == ErrorKind::UniqueViolation), "{error}");
        assert!(direct.execute("INSERT INTO nowhere VALUES ($1)", &[Value::Integer(1)]).is_err());
        assert!(direct.execute("SELECT $3", &[Value::Integer(1)]).is_err(), "a missing argument is an error");
        assert!(direct.execute("SELECT 1; SELECT 2", &[]).is_err(), "one statement at a time");
        drop(direct);
        // The connection is sqlx's again, with what was written.
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM t").fetch_one(&mut any).await.unwrap();
        assert_eq!(count, 2);
    }

    #[tokio::test]
    async fn a_hand_over_not_made_in_time_is_given_up_and_the_connection_stays_sqlxs() {
        sqlx::any::install_default_drivers();
        let mut any = sqlx::AnyConnection::connect("sqlite::memory:").await.unwrap();
        let sqlite = sqlite_connection(&mut any).unwrap();
        let held = unsafe { Direct::lock(sqlite) }.await.unwrap().expect("handed over in time");
        // While it is held, sqlx's thread cannot hand the connection over
        // again: the wait ends after the patience, not never.
        let gave_up = crate::metrics::METRICS.direct_gave_up.get();
        let began = std::time::Instant::now();
        let sqlite = sqlite_connection(&mut any).unwrap();
        let waited = tokio::time::timeout(std::time::Duration::from_secs(5), unsafe { Direct::lock(sqlite) }).await;
        assert!(waited.expect("the wait for a hand-over ends").unwrap().is_none());
        assert!(began.elapsed() >= HAND_OVER_PATIENCE);
        assert!(crate::metrics::METRICS.direct_gave_up.get() > gave_up, "the give-up is counted");
        drop(held);
        // The abandoned wait leaves nothing behind: sqlx's thread takes the
        // connection back and runs statements, and hands it over again.
        let (one,): (i64,) = sqlx::query_as("SELECT 1").fetch_one(&mut any).await.unwrap();
        assert_eq!(one, 1);
        let sqlite = sqlite_connection(&mut any).unwrap();
        assert!(unsafe { Direct::lock(sqlite) }.await.unwrap().is_some());
    }
}

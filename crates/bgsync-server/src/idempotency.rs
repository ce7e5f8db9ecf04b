//! `Idempotency-Key`: the header, and the key store that makes a repeated
//! request return the first result instead of applying the effect again.
//!
//! The key row is written in the same database transaction as the effect
//! and the response it produced, so there is no moment at which the effect
//! exists without its key (a retry would apply it twice) or the key without
//! its effect (a retry would be answered with a response for nothing).

use crate::problem::Problem;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bgsync_core::wire::{is_valid_idempotency_key, CLIENT_HEADER, IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_MAX_LEN};

/// The schema of the key store on SQLite, for the app's migrations.
pub const SQLITE_SCHEMA: &str = "\
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL DEFAULT '',
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       INTEGER,
    content_type TEXT,
    body         BLOB,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);";

/// The schema of the key store on PostgreSQL.
pub const POSTGRES_SCHEMA: &str = "\
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL DEFAULT '',
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       BIGINT,
    content_type TEXT,
    body         BYTEA,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);";

/// A validated `Idempotency-Key` header value. As an extractor it answers 400
/// when the header is missing; as `Option<IdempotencyKey>` only when the
/// header is present but invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: &HeaderValue) -> Result<Self, Problem> {
        match value.to_str() {
            Ok(key) if is_valid_idempotency_key(key) => Ok(Self(key.to_owned())),
            _ => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
                format!(
                    "The {IDEMPOTENCY_KEY} header must be 1 to {IDEMPOTENCY_KEY_MAX_LEN} \
                     printable ASCII characters, such as a UUID."
                ),
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Problem> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
                format!("Send the {IDEMPOTENCY_KEY} header once, not several times."),
            ));
        }
        Self::parse(first).map(Some)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        <Self as OptionalFromRequestParts<S>>::from_request_parts(parts, state).await?.ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "missing-idempotency-key",
                "Missing Idempotency-Key",
                format!("This endpoint requires an {IDEMPOTENCY_KEY} header (a UUID made once per request)."),
            )
        })
    }
}

/// What the key store says about a key at the start of a transaction.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use: apply the effect, then [`complete`] in the same transaction.
    New,
    /// Already completed: answer with the stored response.
    Replay(StoredResponse),
    /// The key was used with another payload: 422, nothing applied.
    Mismatch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl IntoResponse for StoredResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut response = (status, self.body).into_response();
        // The type stored, or none (a 204 has no body to type; the bytes'
        // own `application/octet-stream` would be a guess).
        match self.content_type.and_then(|ct| HeaderValue::from_str(&ct).ok()) {
            Some(value) => response.headers_mut().insert(header::CONTENT_TYPE, value),
            None => response.headers_mut().remove(header::CONTENT_TYPE),
        };
        response.headers_mut().insert("Idempotent-Replayed", HeaderValue::from_static("true"));
        response
    }
}

/// The answer for [`Claim::Mismatch`].
pub fn mismatch_problem() -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
        "Idempotency-Key reused",
        format!(
            "This {IDEMPOTENCY_KEY} was already used with a different request body; make a new key for a new request."
        ),
    )
}

/// A database connection the key store runs on: SQLite, PostgreSQL, or
/// sqlx's `Any` driver (the statements are the same on each). Pass the
/// connection of the transaction that applies the effect: `&mut *tx`.
pub trait KeyConnection: Send {
    #[doc(hidden)]
    fn insert_key(
        &mut self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now_ms: i64,
        answer: Option<&StoredResponse>,
    ) -> impl std::future::Future<Output = Result<bool, sqlx::Error>> + Send;
    #[doc(hidden)]
    fn stored_key(
        &mut self,
        scope: &str,
        key: &str,
    ) -> impl std::future::Future<Output = Result<Option<StoredRow>, sqlx::Error>> + Send;
    #[doc(hidden)]
    fn set_answer(
        &mut self,
        scope: &str,
        key: &str,
        answer: &StoredResponse,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send;
    #[doc(hidden)]
    fn delete_key(
        &mut self,
        scope: &str,
        key: &str,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send;
    #[doc(hidden)]
    fn delete_older(
        &mut self,
        cutoff_ms: i64,
        limit: i64,
    ) -> impl std::future::Future<Output = Result<u64, sqlx::Error>> + Send;
}

#[doc(hidden)]
pub type StoredRow = (String, Option<i64>, Option<String>, Option<Vec<u8>>);

// The key store's statements, the same on every database.
const INSERT_KEY: &str =
    "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at, status, content_type, body) \
                          VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope, key) DO NOTHING";
const STORED_KEY: &str =
    "SELECT fingerprint, status, content_type, body FROM idempotency_keys WHERE scope = $1 AND key = $2";
const SET_ANSWER: &str =
    "UPDATE idempotency_keys SET status = $1, content_type = $2, body = $3 WHERE scope = $4 AND key = $5";
const DELETE_KEY: &str = "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2";
const DELETE_OLDER: &str = "DELETE FROM idempotency_keys WHERE (scope, key) IN \
                            (SELECT scope, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)";

macro_rules! key_connection {
    ($($connection:ty),*) => {$(
        impl KeyConnection for $connection {
            async fn insert_key(
                &mut self,
                scope: &str,
                key: &str,
                fingerprint: &str,
                now_ms: i64,
                answer: Option<&StoredResponse>,
            ) -> Result<bool, sqlx::Error> {
                let inserted = sqlx::query(INSERT_KEY)
                .bind(scope)
                .bind(key)
                .bind(fingerprint)
                .bind(now_ms)
                .bind(answer.map(|a| i64::from(a.status)))
                .bind(answer.and_then(|a| a.content_type.clone()))
                .bind(answer.map(|a| a.body.clone()))
                .execute(&mut *self)
                .await?
                .rows_affected();
                Ok(inserted == 1)
            }

            async fn stored_key(&mut self, scope: &str, key: &str) -> Result<Option<StoredRow>, sqlx::Error> {
                sqlx::query_as(STORED_KEY)
                .bind(scope)
                .bind(key)
                .fetch_optional(&mut *self)
                .await
            }

            async fn set_answer(&mut self, scope: &str, key: &str, answer: &StoredResponse) -> Result<(), sqlx::Error> {
                sqlx::query(SET_ANSWER)
                .bind(i64::from(answer.status))
                .bind(answer.content_type.clone())
                .bind(answer.body.clone())
                .bind(scope)
                .bind(key)
                .execute(&mut *self)
                .await
                .map(|_| ())
            }

            async fn delete_key(&mut self, scope: &str, key: &str) -> Result<(), sqlx::Error> {
                sqlx::query(DELETE_KEY)
                    .bind(scope)
                    .bind(key)
                    .execute(&mut *self)
                    .await
                    .map(|_| ())
            }

            async fn delete_older(&mut self, cutoff_ms: i64, limit: i64) -> Result<u64, sqlx::Error> {
                Ok(sqlx::query(DELETE_OLDER)
                .bind(cutoff_ms)
                .bind(limit)
                .execute(&mut *self)
                .await?
                .rows_affected())
            }
        }
    )*};
}

key_connection!(sqlx::SqliteConnection, sqlx::PgConnection, sqlx::AnyConnection);

/// The same statements on SQLite's C API, on the caller's thread.
impl KeyConnection for crate::direct::Direct {
    async fn insert_key(
        &mut self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now_ms: i64,
        answer: Option<&StoredResponse>,
    ) -> Result<bool, sqlx::Error> {
        let params: [crate::direct::Value<'_>; 7] = [
            scope.into(),
            key.into(),
            fingerprint.into(),
            now_ms.into(),
            answer.map(|a| i64::from(a.status)).into(),
            answer.and_then(|a| a.content_type.as_deref()).into(),
            answer.map(|a| a.body.as_slice()).into(),
        ];
        Ok(self.execute(INSERT_KEY, &params)? == 1)
    }

    async fn stored_key(&mut self, scope: &str, key: &str) -> Result<Option<StoredRow>, sqlx::Error> {
        self.query_optional(STORED_KEY, &[scope.into(), key.into()], |row| {
            (row.text(0).unwrap_or_default(), row.integer(1), row.text(2), row.blob(3))
        })
    }

    async fn set_answer(&mut self, scope: &str, key: &str, answer: &StoredResponse) -> Result<(), sqlx::Error> {
        let params: [crate::direct::Value<'_>; 5] = [
            i64::from(answer.status).into(),
            answer.content_type.as_deref().into(),
            answer.body.as_slice().into(),
            scope.into(),
            key.into(),
        ];
        self.execute(SET_ANSWER, &params).map(|_| ())
    }

    async fn delete_key(&mut self, scope: &str, key: &str) -> Result<(), sqlx::Error> {
        self.execute(DELETE_KEY, &[scope.into(), key.into()]).map(|_| ())
    }

    async fn delete_older(&mut self, cutoff_ms: i64, limit: i64) -> Result<u64, sqlx::Error> {
        self.execute(DELETE_OLDER, &[cutoff_ms.into(), limit.into()])
    }
}

/// Claims `key` inside the caller's open transaction.
///
/// The claim is an INSERT, the transaction's first write: SQLite then holds
/// the write lock (waiting for it under the busy timeout rather than failing
/// on a stale read snapshot), and on PostgreSQL a concurrent request with
/// the same key waits on the row until this transaction commits, then sees
/// its stored response.
///
/// `scope` separates the keys of different clients ([`client_scope`], or
/// an authenticated user's id); use `""` when there is no client identity.
pub async fn claim<C: KeyConnection + ?Sized>(
    conn: &mut C,
    scope: &str,
    key: &IdempotencyKey,
    fingerprint: &str,
    now_ms: i64,
) -> Result<Claim, sqlx::Error> {
    claim_with(conn, scope, key, fingerprint, now_ms, None).await
}

/// [`claim`], storing `expected` as the key's response in the same
/// statement: for effects whose answer is known before they run (a create
/// whose row the request fully describes), one statement instead of two.
/// If the effect ends up answering otherwise, [`complete`] overwrites it,
/// in the same transaction.
pub async fn claim_answered<C: KeyConnection + ?Sized>(
    conn: &mut C,
    scope: &str,
    key: &IdempotencyKey,
    fingerprint: &str,
    now_ms: i64,
    expected: &StoredResponse,
) -> Result<Claim, sqlx::Error> {
    claim_with(conn, scope, key, fingerprint, now_ms, Some(expected)).await
}

async fn claim_with<C: KeyConnection + ?Sized>(
    conn: &mut C,
    scope: &str,
    key: &IdempotencyKey,
    fingerprint: &str,
    now_ms: i64,
    expected: Option<&StoredResponse>,
) -> Result<Claim, sqlx::Error> {
    // The row that made the insert conflict can be deleted (by the purge)
    // before we read it. Then the key is free again: claim it anew, with
    // the same statement, so a claim made with its answer never turns into
    // a row without one.
    for _ in 0..3 {
        if conn.insert_key(scope, key.as_str(), fingerprint, now_ms, expected).await? {
            return Ok(Claim::New);
        }
        let Some((stored_fingerprint, status, content_type, body)) = conn.stored_key(scope, key.as_str()).await? else {
            continue;
        };
        if stored_fingerprint != fingerprint {
            crate::metrics::METRICS.mismatches.inc();
            return Ok(Claim::Mismatch);
        }
        // The row and its response commit together, so a visible row always
        // has a status; a NULL would mean a writer that bypassed `complete`.
        let status = status.ok_or_else(|| sqlx::Error::Protocol("idempotency key stored without a response".into()))?;
        crate::metrics::METRICS.replays.inc();
        return Ok(Claim::Replay(StoredResponse {
            status: u16::try_from(status).unwrap_or(200),
            content_type,
            body: body.unwrap_or_default(),
        }));
    }
    Err(sqlx::Error::Protocol("the idempotency key kept being purged while it was claimed".into()))
}

/// Stores the response for a key claimed as [`Claim::New`], in the same
/// transaction as the effect.
pub async fn complete<C: KeyConnection + ?Sized>(
    conn: &mut C,
    scope: &str,
    key: &IdempotencyKey,
    response: &StoredResponse,
) -> Result<(), sqlx::Error> {
    conn.set_answer(scope, key.as_str(), response).await
}

/// Gives up a key claimed as [`Claim::New`] whose effect was refused, in the
/// same transaction, so that the key stays free for a corrected request.
/// (Inside a batch the entry's savepoint does this already.)
pub async fn release<C: KeyConnection + ?Sized>(
    conn: &mut C,
    scope: &str,
    key: &IdempotencyKey,
) -> Result<(), sqlx::Error> {
    conn.delete_key(scope, key.as_str()).await
}

/// How many keys one purge statement deletes: a short transaction, so
/// requests are never held behind a purge of millions of expired keys.
pub const PURGE_CHUNK: i64 = 1000;
/// The pause between two purge statements.
pub const PURGE_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);

/// Deletes keys created before `cutoff_ms`, [`PURGE_CHUNK`] at a time;
/// returns how many. Run it periodically ([`spawn_purge`]): a key only has
/// to outlive every retry of its request.
///
/// Each chunk is a write of `writer`'s like any request's: with group
/// commit (SQLite) it takes its turn on the writer's connection among the
/// requests, so it can neither starve them nor be starved by them (on
/// SQLite's lock, a purge outside the writer would wait for a moment when no
/// group is open, which under steady load never comes).
pub async fn purge_older_than<DB>(writer: &crate::Writer<DB>, cutoff_ms: i64) -> Result<u64, sqlx::Error>
where
    DB: sqlx::Database,
    DB::Connection: KeyConnection,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: 'static,
{
    let mut total = 0;
    loop {
        let mut tx = writer.begin().await?;
        let deleted = tx.delete_older(cutoff_ms, PURGE_CHUNK).await?;
        tx.commit().await?;
        total += deleted;
        if deleted < PURGE_CHUNK as u64 {
            return Ok(total);
        }
        // Let waiting requests have the database between chunks (outside a
        // group writer, SQLite's busy handler retries a waiting writer
        // after sleeps of up to 100 ms: a purge that took the lock straight
        // back would starve it).
        tokio::time::sleep(PURGE_PAUSE).await;
    }
}

/// Purges keys older than `ttl` every `every`, for as long as the runtime
/// runs, through `writer` ([`purge_older_than`]). Failures are logged and
/// retried at the next run.
pub fn spawn_purge<DB>(writer: crate::Writer<DB>, ttl: std::time::Duration, every: std::time::Duration)
where
    DB: sqlx::Database,
    DB::Connection: KeyConnection,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let cutoff = crate::now_ms().saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
            match purge_older_than(&writer, cutoff).await {
                Ok(purged) => {
                    crate::metrics::METRICS.purges.inc();
                    crate::metrics::METRICS.purged.inc_by(purged);
                    tracing::debug!(purged, "expired idempotency keys purged");
                }
                Err(e) => tracing::warn!("purging old idempotency keys failed (will retry): {e}"),
            }
        }
    });
}

/// The scope of a request's keys: the browser's client id
/// ([`CLIENT_HEADER`], made by bgsync at the browser's first start and sent
/// with every replay), so that someone who learns a key cannot claim it
/// first for another client. An app with signed-in users passes the user's
/// id instead (or as well), so that keys never cross accounts.
pub fn client_scope(headers: &axum::http::HeaderMap) -> Result<String, Problem> {
    let mut values = headers.get_all(CLIENT_HEADER).iter();
    let Some(first) = values.next() else { return Ok(String::new()) };
    match first.to_str() {
        Ok(id) if values.next().is_none() && is_valid_idempotency_key(id) && id.len() <= 64 => {
            Ok(format!("client:{id}"))
        }
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-client-id",
            "Invalid client id",
            format!("Send the {CLIENT_HEADER} header once, as 1 to 64 printable ASCII characters (a UUID)."),
        )),
    }
}

/// The keys being processed by this server process. A second request with a
/// key still in flight here is answered 409 at once, with `Retry-After`,
/// instead of queueing behind the first (on several servers, PostgreSQL's
/// row lock makes it wait for the first to commit, then replay its answer).
#[derive(Debug, Default)]
pub struct InFlight(std::sync::Mutex<std::collections::HashSet<(String, String)>>);

/// Releases its key when dropped, however the request ended.
#[must_use]
pub struct InFlightGuard<'a> {
    set: &'a InFlight,
    entry: (String, String),
}

impl InFlight {
    pub fn enter(&self, scope: &str, key: &IdempotencyKey) -> Result<InFlightGuard<'_>, Problem> {
        let entry = (scope.to_owned(), key.as_str().to_owned());
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !set.insert(entry.clone()) {
            crate::metrics::METRICS.in_flight_conflicts.inc();
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "idempotency-key-in-flight",
                "Request in progress",
                format!(
                    "A request with this {IDEMPOTENCY_KEY} is still being processed; retry shortly to get its result."
                ),
            )
            .with_retry_after(1));
        }
        Ok(InFlightGuard { set: self, entry })
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.set.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::parse(&HeaderValue::from_str(k).unwrap()).unwrap()
    }

    #[test]
    fn a_key_in_flight_is_refused_with_409_until_released() {
        let set = InFlight::default();
        let first = set.enter("", &key("k")).unwrap();
        let problem = set.enter("", &key("k")).err().unwrap();
        assert_eq!((problem.status, problem.retry_after_secs), (409, Some(1)));
        assert!(set.enter("other-client", &key("k")).is_ok(), "keys are per scope");
        assert!(set.enter("", &key("k2")).is_ok());
        drop(first);
        assert!(set.enter("", &key("k")).is_ok());
    }

    #[test]
    fn keys_are_validated() {
        for bad in ["", "with space", "é"] {
            let value = HeaderValue::from_bytes(bad.as_bytes()).unwrap();
            assert_eq!(IdempotencyKey::parse(&value).unwrap_err().status, 400, "{bad:?}");
        }
        let long = HeaderValue::from_str(&"k".repeat(256)).unwrap();
        assert!(IdempotencyKey::parse(&long).is_err());
    }
}

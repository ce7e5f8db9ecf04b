//! `/api/posts`: create a post (exactly once per Idempotency-Key or post
//! id); list posts newest first; or, with `since`, the delta feed.

use crate::db::Backend;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bgsync_server::batch::{BatchTx, EffectTx};
use bgsync_server::direct::Direct;
use bgsync_server::idempotency::{self, Claim, StoredResponse};
use bgsync_server::{json, IdempotencyKey, Problem};
use feed_post::{FieldError, NewPost};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use std::fmt;
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// The largest request body accepted; a post is at most a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most posts one list answer holds.
pub const LIST_LIMIT: i64 = 500;

/// What a client may send. Unknown fields are refused rather than ignored,
/// so a misspelt field is an error and not a silently lost value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostInput {
    id: Option<String>,
    title: String,
    location: String,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Post {
    pub id: String,
    pub title: String,
    pub location: String,
    /// Milliseconds since the Unix epoch, by the server's clock.
    pub created_at: i64,
}

type PostRow = (i64, i64, String, String, String, i64);

fn post_of((_, _, id, title, location, created_at): PostRow) -> Post {
    Post { id, title, location, created_at }
}

/// A position in the delta feed: the writing transaction, then the
/// sequence, and a check of the post there. Opaque to clients
/// (`"<txid>.<seq>.<check>"`, or `"0.0"` for the feed's start).
///
/// The check is what tells a position this feed handed out from the same
/// position handed out again: a database restored from a backup hands out
/// anew the positions it had handed out after the backup, to other posts,
/// and a client whose cursor is one of them would otherwise take the posts
/// after it for all it missed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    txid: i64,
    seq: i64,
    /// `None` at the start, and in a cursor from before the check.
    check: Option<u32>,
}

impl Cursor {
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let (txid, seq) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
        let check = match parts.next() {
            Some(check) => Some(u32::from_str_radix(check, 16).ok().filter(|_| check.len() == 8)?),
            None => None,
        };
        let cursor = Cursor { txid, seq, check };
        (parts.next().is_none() && cursor.txid >= 0 && cursor.seq >= 0).then_some(cursor)
    }

    /// The position of the post `id` written at `(txid, seq)`.
    fn of(txid: i64, seq: i64, id: &str) -> Self {
        // FNV-1a: a post given another's position tells itself apart from it
        // but for one chance in four billion.
        let check = id.bytes().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
        Cursor { txid, seq, check: Some(check) }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.txid, self.seq)?;
        match self.check {
            Some(check) => write!(f, ".{check:08x}"),
            None => Ok(()),
        }
    }
}

#[derive(Serialize)]
pub struct PostList {
    pub posts: Vec<Post>,
    /// Pass as `since` to get what changed after this answer.
    pub cursor: String,
    /// More changes are waiting past `limit`: ask again with `cursor`.
    pub more: bool,
}

/// Other query parameters (a cache-buster such as `?_=123`) are ignored.
#[derive(Deserialize)]
pub struct ListQuery {
    since: Option<String>,
    limit: Option<i64>,
}

/// On PostgreSQL, only rows of transactions older than every running one
/// are stable; see `migrations/postgres/0001_posts.sql`.
fn stable(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "",
        Backend::Postgres => "AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
    }
}

/// The feed's newest change that every reader can see (0.0 when empty).
async fn head(db: &crate::db::Db) -> Result<Cursor, Problem> {
    let query = match db.backend {
        // `txid` is always 0 there: the newest row by key, one index read
        // (ordered by `txid` too, SQLite scanned and sorted the table).
        Backend::Sqlite => "SELECT txid, seq, id FROM posts ORDER BY seq DESC LIMIT 1".to_owned(),
        Backend::Postgres => format!(
            "SELECT txid, seq, id FROM posts WHERE TRUE {} ORDER BY txid DESC, seq DESC LIMIT 1",
            stable(db.backend)
        ),
    };
    let head: Option<(i64, i64, String)> =
        sqlx::query_as(&query).fetch_optional(&db.pool).await.map_err(|e| Problem::storage(&e))?;
    Ok(head.map(|(txid, seq, id)| Cursor::of(txid, seq, &id)).unwrap_or_default())
}

pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let Query(query) = query.map_err(|e| bad_query(format!("The query string is invalid: {e}.")))?;
    let limit = query.limit.unwrap_or(LIST_LIMIT);
    if !(1..=LIST_LIMIT).contains(&limit) {
        return Err(bad_query(format!("limit must be between 1 and {LIST_LIMIT}.")));
    }
    let db = &state.db;
    let storage = |e: sqlx::Error| Problem::storage(&e);
    let (list, tag) = match query.since.as_deref() {
        None => {
            let rows: Vec<PostRow> = sqlx::query_as(
                "SELECT txid, seq, id, title, location, created_at FROM posts ORDER BY seq DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(&db.pool)
            .await
            .map_err(storage)?;
            let cursor = head(db).await?;
            let newest = rows.first().map_or(0, |r| r.1);
            let tag = format!("head-{cursor}-{newest}-{}", rows.len());
            (PostList { posts: rows.into_iter().map(post_of).collect(), cursor: cursor.to_string(), more: false }, tag)
        }
        Some(since) => {
            let since = Cursor::parse(since)
                .ok_or_else(|| bad_query("since must be a cursor returned by this API, such as \"0.0\".".into()))?;
            // From the cursor's own post on, which must be the one the
            // cursor names: one that is not (a position given to another
            // post by a restored database, a cursor from before the check,
            // one that was never this feed's) is refused, so that the client
            // pulls afresh rather than miss what lies before. (One index
            // read when nothing changed: the idle client's poll.)
            let mut rows: Vec<PostRow> = sqlx::query_as(&format!(
                "SELECT txid, seq, id, title, location, created_at FROM posts \
                 WHERE (txid > $1 OR (txid = $1 AND seq >= $2)) {} ORDER BY txid, seq LIMIT $3",
                stable(db.backend)
            ))
            .bind(since.txid)
            .bind(since.seq)
            .bind(limit + 2)
            .fetch_all(&db.pool)
            .await
            .map_err(storage)?;
            if since != Cursor::default() {
                match rows.first() {
                    Some(row) if Cursor::of(row.0, row.1, &row.2) == since => drop(rows.remove(0)),
                    _ => return Err(Problem::cursor_unknown(since)),
                }
            }
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            let cursor = rows.last().map_or(since, |r| Cursor::of(r.0, r.1, &r.2));
            // The rows of a delta are those in (since, cursor], so the cursor
            // alone identifies the answer. It is also a validator for the
            // next request, `?since=<cursor>`: while nothing was written
            // past it, that answer is empty and the client gets a 304.
            let tag = format!("delta-{cursor}{}", if more { "-more" } else { "" });
            (PostList { posts: rows.into_iter().map(post_of).collect(), cursor: cursor.to_string(), more }, tag)
        }
    };
    let etag = format!("W/\"{tag}\"");
    let not_modified = bgsync_server::etag::none_match(&headers, &etag);
    let etag = HeaderValue::from_str(&etag).expect("digits, dots and dashes");
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((StatusCode::OK, [(header::ETAG, etag)], axum::Json(list)).into_response())
}

fn bad_query(detail: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query", detail)
}

pub async fn create(
    State(state): State<AppState>,
    batch: Option<BatchTx<sqlx::Any>>,
    key: Option<IdempotencyKey>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let input: PostInput = json::parse(&headers, body)?;
    let given_id = input.id.is_some();
    let id = input.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // Canonical (NFC) text, so that the same title typed on two keyboards
    // is the same title, and the rules below see what will be stored.
    let (title, location) = (nfc(input.title), nfc(input.location));
    let post = NewPost::parse(&id, &title, &location).map_err(invalid_post)?;
    // What the key is bound to: a retry must carry the same post. An id the
    // server made up is not part of what the client sent.
    let fingerprint = serde_json::to_string(&(given_id.then_some(&post.id), &post.title, &post.location))
        .expect("strings always serialise");
    let scope = idempotency::client_scope(&headers)?;
    let scope = scope.as_str();

    let _in_flight = match &key {
        Some(key) => Some(state.in_flight.enter(scope, key)?),
        None => None,
    };
    // In a batch, the batch's transaction (committed once for all its
    // entries; the batch rolls a refused entry back).
    let mut tx = EffectTx::begin(&state.db.writer, batch.as_ref()).await?;
    // On SQLite, the statements run on this thread (no round trip to sqlx's
    // SQLite thread each); elsewhere through sqlx.
    let answer = match tx.sqlite().await? {
        Some(direct) => apply(direct, key.as_ref(), scope, &fingerprint, &post).await?,
        None => apply(&mut *tx, key.as_ref(), scope, &fingerprint, &post).await?,
    };
    if !tx.in_batch() {
        state.before_commit.check()?;
    }
    tx.commit().await?;
    Ok(answer)
}

/// `text` in Unicode's canonical composition (NFC): as it came when the
/// quick check says it is so already (ASCII always is, and most text of
/// other scripts), without composing it into a new string (composing took
/// about 4% of the processor time of batches of 1,000 posts in a profile;
/// the batch's time moved less than its noise, session 38).
fn nfc(text: String) -> String {
    if is_nfc_quick(text.chars()) == IsNormalized::Yes {
        text
    } else {
        text.nfc().collect()
    }
}

/// Claims the key, inserts the post and stores the answer under the key,
/// in `conn`'s transaction; the caller commits. A new post's answer is
/// known before it is stored (the request describes the whole row), so the
/// usual path is two statements: the key with its answer, then the post.
async fn apply<C: PostStore>(
    conn: &mut C,
    key: Option<&IdempotencyKey>,
    scope: &str,
    fingerprint: &str,
    post: &NewPost,
) -> Result<Response, Problem> {
    let storage = |e: sqlx::Error| Problem::storage(&e);
    let now = bgsync_server::now_ms();
    let created =
        Post { id: post.id.clone(), title: post.title.clone(), location: post.location.clone(), created_at: now };
    let created = StoredResponse {
        status: StatusCode::CREATED.as_u16(),
        content_type: Some("application/json".into()),
        body: serde_json::to_vec(&created).expect("a post always serialises"),
    };
    if let Some(key) = key {
        match idempotency::claim_answered(&mut *conn, scope, key, fingerprint, now, &created).await.map_err(storage)? {
            Claim::New => {}
            Claim::Replay(stored) => return Ok(stored.into_response()),
            Claim::Mismatch => return Err(idempotency::mismatch_problem()),
        }
    }
    if conn.insert_post(post, now).await.map_err(storage)? {
        return Ok(fresh(created));
    }
    // The id is taken: the same post again (answered 200 with the stored
    // one), or another post (refused; the caller's rollback frees the key).
    let stored = conn.stored_post(&post.id).await.map_err(storage)?;
    if stored.title != post.title || stored.location != post.location {
        // Refused: the caller's rollback (or the batch's, for an entry)
        // frees the key.
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "post-id-taken",
            "Post id already used",
            format!("A different post already has the id {}; make a new id for a new post.", post.id),
        ));
    }
    let repeated = StoredResponse {
        status: StatusCode::OK.as_u16(),
        content_type: Some("application/json".into()),
        body: serde_json::to_vec(&stored).expect("a post always serialises"),
    };
    if let Some(key) = key {
        idempotency::complete(&mut *conn, scope, key, &repeated).await.map_err(storage)?;
    }
    Ok(fresh(repeated))
}

const INSERT_POST: &str =
    "INSERT INTO posts (id, title, location, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING";
const STORED_POST: &str = "SELECT id, title, location, created_at FROM posts WHERE id = $1";

/// Where a post and its key are written: through sqlx, or through SQLite's
/// C API on this thread ([`bgsync_server::direct`]); the same statements.
trait PostStore: idempotency::KeyConnection {
    /// Inserts the post unless its id is taken; whether it did.
    async fn insert_post(&mut self, post: &NewPost, now: i64) -> Result<bool, sqlx::Error>;
    /// The post stored under `id` (which exists).
    async fn stored_post(&mut self, id: &str) -> Result<Post, sqlx::Error>;
}

impl PostStore for AnyConnection {
    async fn insert_post(&mut self, post: &NewPost, now: i64) -> Result<bool, sqlx::Error> {
        let query = sqlx::query(INSERT_POST).bind(&post.id).bind(&post.title).bind(&post.location).bind(now);
        Ok(query.execute(&mut *self).await?.rows_affected() == 1)
    }

    async fn stored_post(&mut self, id: &str) -> Result<Post, sqlx::Error> {
        let (id, title, location, created_at) = sqlx::query_as(STORED_POST).bind(id).fetch_one(&mut *self).await?;
        Ok(Post { id, title, location, created_at })
    }
}

impl PostStore for Direct {
    async fn insert_post(&mut self, post: &NewPost, now: i64) -> Result<bool, sqlx::Error> {
        let params = [(&post.id).into(), (&post.title).into(), (&post.location).into(), now.into()];
        Ok(self.execute(INSERT_POST, &params)? == 1)
    }

    async fn stored_post(&mut self, id: &str) -> Result<Post, sqlx::Error> {
        self.query_optional(STORED_POST, &[id.into()], |row| Post {
            id: row.text(0).unwrap_or_default(),
            title: row.text(1).unwrap_or_default(),
            location: row.text(2).unwrap_or_default(),
            created_at: row.integer(3).unwrap_or_default(),
        })?
        .ok_or(sqlx::Error::RowNotFound)
    }
}

/// A response made now (not a replay of a stored one).
fn fresh(response: StoredResponse) -> Response {
    (
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        response.body,
    )
        .into_response()
}

fn invalid_post(errors: Vec<FieldError>) -> Problem {
    let detail = errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" ");
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-post", "Invalid post", detail)
        .with_errors(errors.into_iter().map(|e| (e.field.to_owned(), e.message)))
}

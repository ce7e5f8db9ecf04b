//! `/api/posts`: create a post (exactly once per Idempotency-Key or post
//! id), list posts newest first.

use crate::startup::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bgsync_server::idempotency::{self, Claim, StoredResponse};
use bgsync_server::{json, IdempotencyKey, Problem};
use feed_post::{FieldError, NewPost};
use serde::{Deserialize, Serialize};
use sqlx::SqliteConnection;

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

type PostRow = (String, String, String, i64);

impl From<PostRow> for Post {
    fn from((id, title, location, created_at): PostRow) -> Self {
        Self { id, title, location, created_at }
    }
}

#[derive(Serialize)]
pub struct PostList {
    pub posts: Vec<Post>,
}

pub async fn list(State(state): State<AppState>) -> Result<Json<PostList>, Problem> {
    let rows =
        sqlx::query_as::<_, PostRow>("SELECT id, title, location, created_at FROM posts ORDER BY seq DESC LIMIT ?")
            .bind(LIST_LIMIT)
            .fetch_all(&state.db)
            .await
            .map_err(|e| Problem::storage(&e))?;
    Ok(Json(PostList { posts: rows.into_iter().map(Post::from).collect() }))
}

pub async fn create(
    State(state): State<AppState>,
    key: Option<IdempotencyKey>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let input: PostInput = json::parse(&headers, body)?;
    let given_id = input.id.is_some();
    let id = input.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let post = NewPost::parse(&id, &input.title, &input.location).map_err(invalid_post)?;
    // What the key is bound to: a retry must carry the same post. An id the
    // server made up is not part of what the client sent.
    let fingerprint = serde_json::to_string(&(given_id.then_some(&post.id), &post.title, &post.location))
        .expect("strings always serialise");
    let now = now_ms();

    let mut tx = state.db.begin().await.map_err(|e| Problem::storage(&e))?;
    if let Some(key) = &key {
        match idempotency::claim(&mut tx, key, &fingerprint, now).await.map_err(|e| Problem::storage(&e))? {
            Claim::New => {}
            Claim::Replay(stored) => return Ok(stored.into_response()),
            Claim::Mismatch => return Err(idempotency::mismatch_problem()),
        }
    }
    let (status, stored) = insert(&mut tx, &post, now).await?;
    let body = serde_json::to_vec(&stored).expect("a post always serialises");
    if let Some(key) = &key {
        let response = StoredResponse {
            status: status.as_u16(),
            content_type: Some("application/json".into()),
            body: body.clone(),
        };
        idempotency::complete(&mut tx, key, &response).await.map_err(|e| Problem::storage(&e))?;
    }
    tx.commit().await.map_err(|e| Problem::storage(&e))?;
    Ok((status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
}

/// Inserts the post unless one with its id exists: a repeat of the same
/// post answers 200 with the stored one; another post under the same id is
/// refused.
async fn insert(conn: &mut SqliteConnection, post: &NewPost, now: i64) -> Result<(StatusCode, Post), Problem> {
    let inserted = sqlx::query(
        "INSERT INTO posts (id, title, location, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&post.id)
    .bind(&post.title)
    .bind(&post.location)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|e| Problem::storage(&e))?
    .rows_affected();
    let stored: Post = sqlx::query_as::<_, PostRow>("SELECT id, title, location, created_at FROM posts WHERE id = ?")
        .bind(&post.id)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Problem::storage(&e))?
        .into();
    if inserted == 1 {
        return Ok((StatusCode::CREATED, stored));
    }
    if stored.title == post.title && stored.location == post.location {
        Ok((StatusCode::OK, stored))
    } else {
        Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "post-id-taken",
            "Post id already used",
            format!("A different post already has the id {}; make a new id for a new post.", post.id),
        ))
    }
}

fn invalid_post(errors: Vec<FieldError>) -> Problem {
    let detail = errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" ");
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-post", "Invalid post", detail)
        .with_errors(errors.into_iter().map(|e| (e.field.to_owned(), e.message)))
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

//! `/api/tasks`: the list and its delta feed; `/api/tasks/{id}`: create or
//! replace (PUT), change (PATCH), delete (DELETE). Every change takes the
//! next version, and a deleted task stays as a tombstone, so the feed tells
//! clients about deletions too.

use super::{answer, claim, storage};
use crate::db::{lock_writes, Db};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use bgsync_server::batch::{BatchTx, EffectTx};
use bgsync_server::idempotency::{self, IdempotencyKey};
use bgsync_server::{json, Problem};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

/// The most tasks one answer holds.
pub const LIMIT: i64 = 1000;
const MAX_TITLE_CHARS: usize = 200;

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub done: bool,
    /// A tombstone: the task was deleted (only in the delta feed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    pub version: i64,
}

type Row = (String, String, i64, i64, i64);

fn task((id, title, done, deleted, version): Row) -> Task {
    Task { id, title, done: done != 0, deleted: deleted != 0, version }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTask {
    title: String,
    #[serde(default)]
    done: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    title: Option<String>,
    done: Option<bool>,
}

#[derive(Serialize)]
pub struct TaskList {
    pub tasks: Vec<Task>,
    /// Pass as `since` for what changed after this answer.
    pub cursor: String,
    pub more: bool,
}

#[derive(Deserialize)]
pub struct ListQuery {
    since: Option<String>,
    limit: Option<i64>,
}

fn invalid(field: &str, detail: String) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-task", "Invalid task", detail)
        .with_errors([(field.to_owned(), "invalid".to_owned())])
}

fn check_id(id: &str) -> Result<(), Problem> {
    if (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(())
    } else {
        Err(invalid("id", format!("The task id {id:?} must be 1 to 64 letters, digits or dashes (a UUID).")))
    }
}

/// A title as the page shows it: trimmed, 1 to 200 characters, on one line,
/// with something visible, and without the characters that make a text
/// display as other than what it holds (bidirectional controls).
fn check_title(title: &str) -> Result<String, Problem> {
    let title = title.trim();
    let why = if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        format!("A title is 1 to {MAX_TITLE_CHARS} characters; this one has {}.", title.chars().count())
    } else if let Some(c) = title.chars().find(|&c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        format!("A title is one line, without control characters; this one has U+{:04X}.", c as u32)
    } else if let Some(c) = title.chars().find(
        |&c| matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'),
    ) {
        format!(
            "A title must not hold the bidirectional control U+{:04X}: it can make the title read other than it is.",
            c as u32
        )
    } else if title.chars().all(|c| {
        c.is_whitespace()
            || matches!(c, '\u{00AD}' | '\u{034F}' | '\u{180E}' | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}'
                | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}')
    }) {
        "A title needs a visible character; this one has only invisible ones.".to_owned()
    } else {
        return Ok(title.to_owned());
    };
    Err(invalid("title", why))
}

/// `GET /api/tasks[?since=<cursor>][&limit=n]`: without `since`, the tasks
/// (not deleted) in version order; with it, every change after the cursor,
/// tombstones included.
pub async fn list(
    State(db): State<Db>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<axum::Json<TaskList>, Problem> {
    let Query(query) = query.map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query", format!("The query is invalid: {e}."))
    })?;
    let limit = query.limit.unwrap_or(LIMIT);
    if !(1..=LIMIT).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "Invalid query",
            format!("limit must be 1 to {LIMIT}."),
        ));
    }
    let since = match query.since.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(since)) if since >= 0 => Some(since),
        Some(_) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "Invalid query",
                "since must be a cursor this API returned.",
            ))
        }
    };
    let mut rows: Vec<Row> = sqlx::query_as(
        "SELECT id, title, done, deleted, version FROM tasks WHERE version > $1 AND ($2 = 1 OR deleted = 0) \
         ORDER BY version LIMIT $3",
    )
    .bind(since.unwrap_or(0))
    .bind(i64::from(since.is_some()))
    .bind(limit + 1)
    .fetch_all(&db.pool)
    .await
    .map_err(storage)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let cursor = match (rows.last(), more) {
        (Some(last), true) => last.4,
        // Complete: the cursor is the newest change, tombstones included.
        _ => {
            let (head,): (Option<i64>,) =
                sqlx::query_as("SELECT MAX(version) FROM tasks").fetch_one(&db.pool).await.map_err(storage)?;
            let head = head.unwrap_or(0);
            // A cursor past the newest change was not this list's.
            if let Some(since) = since.filter(|since| *since > head) {
                return Err(Problem::cursor_unknown(since));
            }
            head
        }
    };
    Ok(axum::Json(TaskList { tasks: rows.into_iter().map(task).collect(), cursor: cursor.to_string(), more }))
}

/// The transaction a change of the tasks table runs in (the batch's, or its
/// own), with the writers' lock taken.
async fn begin_write<'a>(
    db: &'a Db,
    batch: Option<&'a BatchTx<sqlx::Any>>,
) -> Result<EffectTx<'a, sqlx::Any>, Problem> {
    let mut tx = EffectTx::begin(&db.writer, batch).await?;
    lock_writes(&mut tx, db.backend).await.map_err(storage)?;
    Ok(tx)
}

async fn next_version(conn: &mut AnyConnection) -> Result<i64, Problem> {
    let (version,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(version), 0) + 1 FROM tasks")
        .fetch_one(&mut *conn)
        .await
        .map_err(storage)?;
    Ok(version)
}

async fn read(conn: &mut AnyConnection, id: &str) -> Result<Option<Task>, Problem> {
    let row: Option<Row> = sqlx::query_as("SELECT id, title, done, deleted, version FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(storage)?;
    Ok(row.map(task))
}

fn body_of(task: &Task) -> Vec<u8> {
    serde_json::to_vec(task).expect("a task serialises")
}

/// `PUT /api/tasks/{id}` `{title, done?}`: creates the task or replaces it
/// (a deleted one comes back). 200 with the task.
pub async fn put(
    State(db): State<Db>,
    batch: Option<BatchTx<sqlx::Any>>,
    key: Option<IdempotencyKey>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::response::Response, Problem> {
    check_id(&id)?;
    let input: NewTask = json::parse(&headers, body)?;
    let title = check_title(&input.title)?;
    let scope = idempotency::client_scope(&headers)?;
    let mut tx = begin_write(&db, batch.as_ref()).await?;
    if let Some(replay) = claim(&mut tx, key.as_ref(), &scope, &format!("PUT {id} {title} {}", input.done)).await? {
        return Ok(replay);
    }
    let version = next_version(&mut tx).await?;
    sqlx::query(
        "INSERT INTO tasks (id, title, done, deleted, version, updated_at) VALUES ($1, $2, $3, 0, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET title = excluded.title, done = excluded.done, deleted = 0, \
         version = excluded.version, updated_at = excluded.updated_at",
    )
    .bind(&id)
    .bind(&title)
    .bind(i64::from(input.done))
    .bind(version)
    .bind(bgsync_server::now_ms())
    .execute(&mut *tx)
    .await
    .map_err(storage)?;
    let task = Task { id, title, done: input.done, deleted: false, version };
    let response = answer(&mut tx, key.as_ref(), &scope, StatusCode::OK, body_of(&task)).await?;
    tx.commit().await?;
    Ok(response)
}

/// `PATCH /api/tasks/{id}` `{title?, done?}`: changes what is given (422
/// when neither is). 404 for a task that does not exist (or was deleted).
pub async fn patch(
    State(db): State<Db>,
    batch: Option<BatchTx<sqlx::Any>>,
    key: Option<IdempotencyKey>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::response::Response, Problem> {
    check_id(&id)?;
    let change: Change = json::parse(&headers, body)?;
    if change.title.is_none() && change.done.is_none() {
        // Nothing to change: no new version for every client to pull.
        return Err(invalid("title", "A change gives a title, done or both; this one gives neither.".into()));
    }
    let title = change.title.as_deref().map(check_title).transpose()?;
    let scope = idempotency::client_scope(&headers)?;
    let mut tx = begin_write(&db, batch.as_ref()).await?;
    let fingerprint = format!("PATCH {id} {title:?} {:?}", change.done);
    if let Some(replay) = claim(&mut tx, key.as_ref(), &scope, &fingerprint).await? {
        return Ok(replay);
    }
    let Some(current) = read(&mut tx, &id).await?.filter(|t| !t.deleted) else {
        // Refused: the key is released with the transaction (or by the
        // batch's rollback of the entry).
        return Err(Problem::not_found(format!("There is no task {id}; create it with PUT first.")));
    };
    let version = next_version(&mut tx).await?;
    let task =
        Task { title: title.unwrap_or(current.title), done: change.done.unwrap_or(current.done), version, ..current };
    sqlx::query("UPDATE tasks SET title = $1, done = $2, version = $3, updated_at = $4 WHERE id = $5")
        .bind(&task.title)
        .bind(i64::from(task.done))
        .bind(version)
        .bind(bgsync_server::now_ms())
        .bind(&task.id)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
    let response = answer(&mut tx, key.as_ref(), &scope, StatusCode::OK, body_of(&task)).await?;
    tx.commit().await?;
    Ok(response)
}

/// `DELETE /api/tasks/{id}`: 204, also when it was already gone (a delete
/// that arrives twice, or after another client's, changes nothing).
pub async fn delete(
    State(db): State<Db>,
    batch: Option<BatchTx<sqlx::Any>>,
    key: Option<IdempotencyKey>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<axum::response::Response, Problem> {
    check_id(&id)?;
    let scope = idempotency::client_scope(&headers)?;
    let mut tx = begin_write(&db, batch.as_ref()).await?;
    if let Some(replay) = claim(&mut tx, key.as_ref(), &scope, &format!("DELETE {id}")).await? {
        return Ok(replay);
    }
    if read(&mut tx, &id).await?.is_some_and(|t| !t.deleted) {
        let version = next_version(&mut tx).await?;
        sqlx::query("UPDATE tasks SET deleted = 1, version = $1, updated_at = $2 WHERE id = $3")
            .bind(version)
            .bind(bgsync_server::now_ms())
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
    }
    let response = answer(&mut tx, key.as_ref(), &scope, StatusCode::NO_CONTENT, Vec::new()).await?;
    tx.commit().await?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::check_title;

    fn why(title: &str) -> String {
        check_title(title).unwrap_err().detail
    }

    #[test]
    fn a_title_is_trimmed_bounded_visible_and_reads_as_it_is() {
        assert_eq!(check_title("  Buy milk\t").unwrap(), "Buy milk");
        assert_eq!(check_title(&"é".repeat(200)).unwrap().chars().count(), 200);
        assert_eq!(why(&"é".repeat(201)), "A title is 1 to 200 characters; this one has 201.");
        assert_eq!(why(" \n "), "A title is 1 to 200 characters; this one has 0.");
        assert!(why("a\nb").contains("U+000A"), "{}", why("a\nb"));
        assert!(why("a\u{2028}b").contains("U+2028"));
        assert!(why("pay \u{202E}0001\u{202C} now").contains("bidirectional control U+202E"));
        assert_eq!(
            why("\u{200B}\u{FEFF} \u{2060}"),
            "A title needs a visible character; this one has only invisible ones."
        );
        // Joiners inside a visible title are text (emoji sequences, scripts).
        assert!(check_title("👩\u{200D}💻 ship it").is_ok());
    }
}

//! The server pieces on an app's own sqlx pool, typed for its database (no
//! `Any` driver): the key store on a `SqlitePool` and a `PgPool`, and a
//! small app of its own that mounts the batch router, whose handler joins
//! the batch's transaction and never releases a key by hand.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bgsync_server::batch::{BatchConfig, BatchTx, EffectTx};
use bgsync_server::idempotency::{self, Claim, IdempotencyKey, KeyConnection, StoredResponse};
use bgsync_server::{Problem, Writer};
use sqlx::{Executor, Sqlite, SqlitePool};
use tower::ServiceExt;

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::parse(&axum::http::HeaderValue::from_str(k).unwrap()).unwrap()
}

fn answer(body: &str) -> StoredResponse {
    StoredResponse { status: 201, content_type: Some("application/json".into()), body: body.as_bytes().to_vec() }
}

async fn claims_replay_and_refuse<C: KeyConnection>(conn: &mut C) {
    let k = key("k-1");
    assert_eq!(idempotency::claim(conn, "s", &k, "fp", 1).await.unwrap(), Claim::New);
    idempotency::complete(conn, "s", &k, &answer("{}")).await.unwrap();
    assert_eq!(idempotency::claim(conn, "s", &k, "fp", 2).await.unwrap(), Claim::Replay(answer("{}")));
    assert_eq!(idempotency::claim(conn, "s", &k, "other", 2).await.unwrap(), Claim::Mismatch);
    assert_eq!(idempotency::claim(conn, "another scope", &k, "other", 2).await.unwrap(), Claim::New);
    idempotency::release(conn, "another scope", &k).await.unwrap();
    let k2 = key("k-2");
    assert_eq!(idempotency::claim_answered(conn, "s", &k2, "fp", 3, &answer("2")).await.unwrap(), Claim::New);
    assert_eq!(idempotency::claim(conn, "s", &k2, "fp", 3).await.unwrap(), Claim::Replay(answer("2")));
}

#[tokio::test]
async fn the_key_store_runs_on_a_plain_sqlite_pool() {
    let dir = std::env::temp_dir().join(format!("bgsync-server-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let pool = SqlitePool::connect(&format!("sqlite://{}?mode=rwc", dir.display())).await.unwrap();
    pool.execute(idempotency::SQLITE_SCHEMA).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    claims_replay_and_refuse(&mut *conn).await;
    drop(conn);
    assert_eq!(idempotency::purge_older_than(&Writer::group_commit(pool.clone()), 10).await.unwrap(), 2);
    pool.close().await;
    let _ = std::fs::remove_file(&dir);
}

#[tokio::test]
async fn the_key_store_runs_on_a_plain_postgres_pool() {
    let admin =
        std::env::var("BGSYNC_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let admin_pool = sqlx::PgPool::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is needed for this test at {admin} ({e}); set BGSYNC_TEST_POSTGRES"));
    let name = format!("bgsync_server_{}_{}", std::process::id(), bgsync_server::now_ms());
    admin_pool.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    let pool = sqlx::PgPool::connect(&format!("{base}/{name}")).await.unwrap();
    pool.execute(idempotency::POSTGRES_SCHEMA).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    claims_replay_and_refuse(&mut *tx).await;
    tx.commit().await.unwrap();
    assert_eq!(idempotency::purge_older_than(&Writer::per_request(pool.clone()), 10).await.unwrap(), 2);
    pool.close().await;
    admin_pool.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await.unwrap();
}

/// An app of its own: `PUT /api/notes` stores a note under its key, and
/// refuses (422) a note saying "refuse" after it has written it and
/// claimed its key: the batch's savepoint, not the handler, undoes both.
async fn put_note(
    State(writer): State<Writer<Sqlite>>,
    batch: Option<BatchTx<Sqlite>>,
    key: IdempotencyKey,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let scope = idempotency::client_scope(&headers)?;
    let text = String::from_utf8_lossy(&body).into_owned();
    let mut tx = EffectTx::begin(&writer, batch.as_ref()).await?;
    let storage = |e: sqlx::Error| Problem::storage(&e);
    match idempotency::claim(&mut *tx, &scope, &key, &text, bgsync_server::now_ms()).await.map_err(storage)? {
        Claim::New => {}
        Claim::Replay(stored) => return Ok(stored.into_response()),
        Claim::Mismatch => return Err(idempotency::mismatch_problem()),
    }
    sqlx::query("INSERT INTO notes (text) VALUES ($1)").bind(&text).execute(&mut *tx).await.map_err(storage)?;
    if text == "refuse" {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", "Refused", "This note is refused."));
    }
    idempotency::complete(&mut *tx, &scope, &key, &answer(&text)).await.map_err(storage)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, text).into_response())
}

#[tokio::test]
async fn an_app_of_its_own_mounts_the_batch_router_and_a_refused_entry_leaves_nothing() {
    // One connection: the batch holds it, so an entry's handler that took a
    // second one from the pool would wait forever instead of passing.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect("sqlite::memory:")
        .await
        .unwrap();
    pool.execute(idempotency::SQLITE_SCHEMA).await.unwrap();
    pool.execute("CREATE TABLE notes (text TEXT NOT NULL)").await.unwrap();
    // Group commit: the batch's transaction is a member of the writer's group.
    let writer = Writer::group_commit(pool.clone());
    let api = Router::new().route("/api/notes", post(put_note).put(put_note)).with_state(writer.clone());
    let app = api.clone().merge(bgsync_server::batch::router(api, writer, BatchConfig::default()));

    let entry = |key: &str, method: &str, body: &str| serde_json::json!({ "key": key, "method": method, "path": "/api/notes", "headers": [["content-type", "text/plain"]], "body": body });
    let batch = serde_json::json!({ "ordered": false, "entries": [
        entry("a", "PUT", "first"), entry("b", "PUT", "refuse"), entry("c", "POST", "third"), entry("d", "GET", ""),
    ]});
    let request = Request::post("/api/sync/batch")
        .header("content-type", "application/json")
        .body(Body::from(batch.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value =
        serde_json::from_slice(&axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap();
    let statuses: Vec<_> = body["results"].as_array().unwrap().iter().map(|r| r["status"].as_u64()).collect();
    assert_eq!(statuses, [Some(201), Some(422), Some(201), Some(400)], "{body}");
    let notes: Vec<(String,)> = sqlx::query_as("SELECT text FROM notes").fetch_all(&pool).await.unwrap();
    assert_eq!(notes, [("first".to_owned(),), ("third".to_owned(),)], "the refused note left nothing");
    let (keys,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM idempotency_keys").fetch_one(&pool).await.unwrap();
    assert_eq!(keys, 2, "nor its key: it is free for a corrected note");

    let advertised = app.oneshot(Request::get("/.well-known/bgsync").body(Body::empty()).unwrap()).await.unwrap();
    let document: serde_json::Value =
        serde_json::from_slice(&axum::body::to_bytes(advertised.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(document["batch"]["url"], "/api/sync/batch");
    assert_eq!(document["batch"]["prefix"], "/api/");
}

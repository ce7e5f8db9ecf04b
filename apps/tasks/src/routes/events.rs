//! `POST /api/events` `{name}`: an analytics event (what the user did),
//! recorded once per Idempotency-Key. Answered 202.

use super::{answer, claim, storage};
use crate::db::Db;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bgsync_server::batch::{BatchTx, EffectTx};
use bgsync_server::idempotency::{self, IdempotencyKey};
use bgsync_server::{json, Problem};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    name: String,
}

pub async fn record(
    State(db): State<Db>,
    batch: Option<BatchTx<sqlx::Any>>,
    key: Option<IdempotencyKey>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::response::Response, Problem> {
    let event: Event = json::parse(&headers, body)?;
    if !(1..=64).contains(&event.name.len()) || !event.name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-event",
            "Invalid event",
            "An event name is 1 to 64 printable ASCII characters, such as \"task-done\".",
        ));
    }
    let scope = idempotency::client_scope(&headers)?;
    let mut tx = EffectTx::begin(&db.writer, batch.as_ref()).await?;
    if let Some(replay) = claim(&mut tx, key.as_ref(), &scope, &event.name).await? {
        return Ok(replay);
    }
    sqlx::query("INSERT INTO events (name, at) VALUES ($1, $2)")
        .bind(&event.name)
        .bind(bgsync_server::now_ms())
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
    let response =
        answer(&mut tx, key.as_ref(), &scope, StatusCode::ACCEPTED, br#"{"accepted":true}"#.to_vec()).await?;
    tx.commit().await?;
    Ok(response)
}

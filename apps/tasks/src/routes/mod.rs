//! The tasks API, one file per resource.

pub mod events;
pub mod tasks;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bgsync_server::batch::EffectTx;
use bgsync_server::idempotency::{self, Claim, IdempotencyKey, StoredResponse};
use bgsync_server::Problem;

/// The largest request body: a task or an event is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn storage(e: sqlx::Error) -> Problem {
    Problem::storage(&e)
}

/// Claims the request's key (if it has one) in `tx`: `Some(answer)` when
/// the request was already applied (its stored answer) or the key was used
/// for another request (422).
pub async fn claim(
    tx: &mut EffectTx<'_, sqlx::Any>,
    key: Option<&IdempotencyKey>,
    scope: &str,
    fingerprint: &str,
) -> Result<Option<Response>, Problem> {
    let Some(key) = key else { return Ok(None) };
    match idempotency::claim(&mut **tx, scope, key, fingerprint, bgsync_server::now_ms()).await.map_err(storage)? {
        Claim::New => Ok(None),
        Claim::Replay(stored) => Ok(Some(stored.into_response())),
        Claim::Mismatch => Err(idempotency::mismatch_problem()),
    }
}

/// Stores `status` and `body` as the key's answer (in `tx`) and returns it.
pub async fn answer(
    tx: &mut EffectTx<'_, sqlx::Any>,
    key: Option<&IdempotencyKey>,
    scope: &str,
    status: StatusCode,
    body: Vec<u8>,
) -> Result<Response, Problem> {
    let content_type = (!body.is_empty()).then(|| "application/json".to_owned());
    if let Some(key) = key {
        let stored = StoredResponse { status: status.as_u16(), content_type: content_type.clone(), body: body.clone() };
        idempotency::complete(&mut **tx, scope, key, &stored).await.map_err(storage)?;
    }
    let mut response = (status, body).into_response();
    match content_type {
        Some(_) => response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json")),
        // A 204: no body, so no type.
        None => response.headers_mut().remove(CONTENT_TYPE),
    };
    Ok(response)
}

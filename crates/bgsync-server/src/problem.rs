//! Errors as RFC 9457 problem details (`application/problem+json`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// A problem detail answered to the client. `title` names the kind of
/// problem, `detail` says what was wrong with this request and what to do.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Field-level errors, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    #[serde(skip)]
    pub retry_after_secs: Option<u32>,
    /// Made by [`Problem::storage`]: the answer carries [`StorageFailure`].
    #[serde(skip)]
    pub storage_failure: bool,
}

/// A response extension that marks an answer as a storage failure (the
/// database failed, not the request): a batch that meets one rolls back
/// as a whole ([`crate::batch`]). Other 503s are the app's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageFailure;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

impl Problem {
    /// `kind` is a short slug; it becomes the problem type `/problems/<kind>`.
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_secs: None,
            storage_failure: false,
        }
    }

    pub fn with_errors(mut self, errors: impl IntoIterator<Item = (String, String)>) -> Self {
        self.errors = errors.into_iter().map(|(field, message)| FieldProblem { field, message }).collect();
        self
    }

    pub fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The database failed or is busy: the client should retry, and a
    /// background-sync client will (503 is transient).
    pub fn storage(err: &dyn std::error::Error) -> Self {
        tracing::warn!("storage error: {err}");
        let mut problem = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage-unavailable",
            "Storage unavailable",
            "The request was not applied because the database is unavailable; retry later.",
        )
        .with_retry_after(1);
        problem.storage_failure = true;
        problem
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).expect("a problem always serialises");
        let mut response = (self.status_code(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.storage_failure {
            response.extensions_mut().insert(StorageFailure);
        }
        response
    }
}

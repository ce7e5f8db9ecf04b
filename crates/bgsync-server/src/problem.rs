//! Errors as RFC 9457 problem details (`application/problem+json`).

use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
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

    /// A delta feed's answer to a `since` cursor it never handed out (its
    /// data was restored or reset since the client got it): 410
    /// `cursor-unknown`, on which bgsync's pull replaces what the feed holds
    /// with a first pull, rather than wait for changes past a cursor that
    /// may never come.
    pub fn cursor_unknown(cursor: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::GONE,
            "cursor-unknown",
            "Cursor unknown",
            format!(
                "The cursor {cursor} is not one of this feed's (its data was restored or reset): forget it and pull \
                 again without since."
            ),
        )
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

/// 405 with `Allow`, as a problem.
pub fn method_not_allowed(method: &Method, allowed: &'static str, path: &str) -> Response {
    ([(header::ALLOW, allowed)], not_allowed(method, path, allowed)).into_response()
}

fn not_allowed(method: &Method, path: &str, allowed: &str) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not allowed here; {path} takes {allowed}."),
    )
}

/// `router` with every error answer a problem: the error answers axum
/// makes itself, which are plain text or empty, become
/// `application/problem+json` (a method a route does not take: 405, its
/// detail naming the methods the route does; a path parameter that is not
/// UTF-8 or does not parse; a body or query an extractor refused, with the
/// text axum wrote as the detail). Answers that already have a type
/// (problems, JSON, HTML) pass untouched, and so do successes. Every
/// answer also gets `X-Content-Type-Options: nosniff`: browsers take its
/// `Content-Type` as it is (a problem or a JSON answer is never run as a
/// script or shown as a page). Wrap the whole app, as served:
///
/// ```text
/// let app = bgsync_server::problem::everywhere(api.merge(batches).fallback(files));
/// ```
///
/// ([`crate::batch::router`] wraps the API it runs entries through, so a
/// batch entry's refusal is a problem too.) It wraps the router from
/// outside, since axum adds a 405's `Allow` header after every layer a
/// router's `layer` adds.
pub fn everywhere(router: axum::Router) -> axum::Router {
    let layer = axum::middleware::map_response(as_problem);
    axum::Router::new().fallback_service(tower::Layer::layer(&layer, router))
}

async fn as_problem(method: Method, uri: Uri, mut response: Response) -> Response {
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let essence = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if !matches!(essence.as_deref(), None | Some("") | Some("text/plain")) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.ok().and_then(|bytes| String::from_utf8(bytes.to_vec()).ok());
    let text = text.as_deref().map(str::trim).unwrap_or("");
    let path = uri.path();
    let allowed = parts
        .headers
        .get(header::ALLOW)
        .and_then(|value| value.to_str().ok())
        .map(|allow| allow.split(',').map(str::trim).filter(|m| !m.is_empty()).collect::<Vec<_>>().join(", "));
    let problem = match allowed {
        Some(allowed) if status == StatusCode::METHOD_NOT_ALLOWED => not_allowed(&method, path, &allowed),
        _ => {
            let detail = if text.is_empty() {
                format!("{method} {path} was answered {status} without saying why.")
            } else {
                format!("{}.", text.trim_end_matches('.'))
            };
            of_status(status, detail)
        }
    };
    // The original's other headers (Allow, Retry-After, ...) stay.
    parts.headers.remove(header::CONTENT_LENGTH);
    let (problem_parts, body) = problem.into_response().into_parts();
    parts.headers.extend(problem_parts.headers);
    Response::from_parts(parts, body)
}

/// A problem named after its status alone, for refusals made below the
/// app (axum's, hyper's): type `/problems/bad-request`, title "Bad
/// request", and `detail`.
pub(crate) fn of_status(status: StatusCode, detail: impl Into<String>) -> Problem {
    let reason = status.canonical_reason().unwrap_or("Error");
    let kind = reason.to_ascii_lowercase().replace([' ', '\''], "-");
    let title: String = reason.chars().take(1).chain(reason.chars().skip(1).flat_map(char::to_lowercase)).collect();
    Problem::new(status, &kind, &title, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn through(method: Method, path: &str, response: Response) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = as_problem(method, path.parse().unwrap(), response).await;
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn axums_own_error_answers_become_problems_and_the_rest_pass() {
        let empty_405 =
            Response::builder().status(405).header("allow", "PUT,PATCH,DELETE").body(Body::empty()).unwrap();
        let (status, headers, body) = through(Method::GET, "/api/tasks/a", empty_405).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(headers[header::ALLOW], "PUT,PATCH,DELETE");
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["type"], "/problems/method-not-allowed");
        assert_eq!(problem["title"], "Method not allowed");
        assert_eq!(problem["status"], 405);
        assert_eq!(problem["detail"], "GET is not allowed here; /api/tasks/a takes PUT, PATCH, DELETE.");

        let text_400 = Response::builder()
            .status(400)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from("Invalid URL: Invalid UTF-8 in `id`"))
            .unwrap();
        let (status, headers, body) = through(Method::PUT, "/api/tasks/%FF", text_400).await;
        assert_eq!(
            (status, &headers[header::CONTENT_TYPE]),
            (StatusCode::BAD_REQUEST, &HeaderValue::from_static(CONTENT_TYPE))
        );
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (problem["type"].as_str(), problem["title"].as_str()),
            (Some("/problems/bad-request"), Some("Bad request"))
        );
        assert_eq!(problem["detail"], "Invalid URL: Invalid UTF-8 in `id`.");

        let bare_503 = Response::builder().status(503).header("retry-after", "3").body(Body::empty()).unwrap();
        let (_, headers, body) = through(Method::POST, "/api/x", bare_503).await;
        assert_eq!(headers[header::RETRY_AFTER], "3");
        assert!(body.contains("POST /api/x was answered 503 Service Unavailable without saying why."), "{body}");

        for untouched in [
            Problem::not_found("nothing here").into_response(),
            Response::builder()
                .status(404)
                .header("content-type", "text/html")
                .body(Body::from("<p>gone</p>"))
                .unwrap(),
            Response::builder().status(200).header("content-type", "text/plain").body(Body::from("fine")).unwrap(),
            Response::builder().status(204).body(Body::empty()).unwrap(),
        ] {
            let mut before = (untouched.status(), untouched.headers().clone());
            before.1.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            // Untouched but for `nosniff`.
            let (status, headers, _) = through(Method::GET, "/api/x", untouched).await;
            assert_eq!((status, headers), before);
        }
    }
}

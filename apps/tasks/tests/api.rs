//! The tasks API over real HTTP, on SQLite and on PostgreSQL: updates and
//! deletes exactly once per key, tombstones in the delta feed, precise
//! problems, and bgsync's batch endpoint running the app's own routes.

mod common;

use common::Server;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

async fn send(
    http: &Client,
    method: reqwest::Method,
    url: String,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http.request(method, url);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

async fn edits_apply_once_and_the_feed_carries_tombstones(postgres: bool) {
    let server = Server::start(postgres).await;
    let http = Client::new();
    let task = |id: &str| format!("{}/api/tasks/{id}", server.url);
    use reqwest::Method;
    let (status, body) = send(&http, Method::PUT, task("a"), Some("k1"), Some(json!({ "title": " Buy milk " }))).await;
    assert_eq!(
        (status, body["title"].as_str(), body["done"].as_bool()),
        (StatusCode::OK, Some("Buy milk"), Some(false))
    );
    let (status, again) = send(&http, Method::PUT, task("a"), Some("k1"), Some(json!({ "title": " Buy milk " }))).await;
    assert_eq!(
        (status, again["version"].clone()),
        (StatusCode::OK, body["version"].clone()),
        "replayed, not applied again"
    );
    let (status, problem) = send(&http, Method::PUT, task("a"), Some("k1"), Some(json!({ "title": "Other" }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, body) = send(&http, Method::PATCH, task("a"), Some("k2"), Some(json!({ "done": true }))).await;
    assert_eq!(
        (status, body["done"].as_bool(), body["title"].as_str()),
        (StatusCode::OK, Some(true), Some("Buy milk"))
    );
    send(&http, Method::PUT, task("b"), Some("k3"), Some(json!({ "title": "Call Ada" }))).await;
    let (status, _) = send(&http, Method::DELETE, task("a"), Some("k4"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(&http, Method::DELETE, task("a"), Some("k5"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "deleting again changes nothing");
    let (status, problem) = send(&http, Method::PATCH, task("a"), Some("k6"), Some(json!({ "done": false }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("PUT"), "{problem}");

    let (_, list) = send(&http, Method::GET, format!("{}/api/tasks", server.url), None, None).await;
    let titles: Vec<&str> = list["tasks"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Call Ada"], "the list has no deleted task");
    let (_, delta) = send(&http, Method::GET, format!("{}/api/tasks?since=0", server.url), None, None).await;
    let changes: Vec<(&str, bool)> = delta["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["deleted"].as_bool().unwrap_or(false)))
        .collect();
    assert_eq!(changes, [("b", false), ("a", true)], "each task once, as it is now, tombstones included");
    let (_, nothing) = send(
        &http,
        Method::GET,
        format!("{}/api/tasks?since={}", server.url, delta["cursor"].as_str().unwrap()),
        None,
        None,
    )
    .await;
    assert_eq!(nothing["tasks"].as_array().unwrap().len(), 0);
    // A cursor ahead of the newest change (the data was restored or reset
    // since): 410, for the client to pull afresh.
    let (status, gone) = send(&http, Method::GET, format!("{}/api/tasks?since=999999", server.url), None, None).await;
    assert_eq!(status, StatusCode::GONE, "{gone}");
    assert_eq!(gone["type"], "/problems/cursor-unknown", "{gone}");

    for (method, url, body, expected) in [
        (Method::PUT, task("bad id!"), Some(json!({ "title": "x" })), StatusCode::UNPROCESSABLE_ENTITY),
        (Method::PUT, task("c"), Some(json!({ "title": "  " })), StatusCode::UNPROCESSABLE_ENTITY),
        (Method::PUT, task("c"), Some(json!({ "title": "x", "color": "red" })), StatusCode::UNPROCESSABLE_ENTITY),
        (Method::GET, format!("{}/api/tasks?since=x", server.url), None, StatusCode::BAD_REQUEST),
        (
            Method::POST,
            format!("{}/api/events", server.url),
            Some(json!({ "name": "" })),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, problem) = send(&http, method.clone(), url.clone(), None, body).await;
        assert_eq!(status, expected, "{method} {url}: {problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{problem}");
    }
    let res = http.put(task("c")).header("content-type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(server.count("tasks").await, 2);
}

async fn a_batch_runs_edits_in_order_through_the_apps_routes(postgres: bool) {
    let server = Server::start(postgres).await;
    let http = Client::new();
    let entry = |key: &str, method: &str, path: &str, body: Value| json!({ "key": key, "method": method, "path": path, "headers": [], "body": if body.is_null() { String::new() } else { body.to_string() } });
    let batch = json!({ "ordered": true, "entries": [
        entry("e1", "PUT", "/api/tasks/x", json!({ "title": "Write the report" })),
        entry("e2", "PATCH", "/api/tasks/x", json!({ "title": "Write the short report" })),
        entry("e3", "PUT", "/api/tasks/y", json!({ "title": "Send it" })),
        entry("e4", "DELETE", "/api/tasks/x", Value::Null),
        entry("e5", "PATCH", "/api/tasks/y", json!({ "done": true })),
    ]});
    let res: Value =
        http.post(format!("{}/api/sync/batch", server.url)).json(&batch).send().await.unwrap().json().await.unwrap();
    let statuses: Vec<_> = res["results"].as_array().unwrap().iter().map(|r| r["status"].as_u64()).collect();
    assert_eq!(statuses, [Some(200), Some(200), Some(200), Some(204), Some(200)], "{res}");
    assert_eq!(
        server.tasks().await,
        [("x".to_owned(), "Write the short report".to_owned(), 0, 1), ("y".to_owned(), "Send it".to_owned(), 1, 0)]
    );
    // Unordered events, and a refused edit in the same batch that leaves
    // nothing behind (not its key either).
    let mut entries: Vec<Value> =
        (0..10).map(|i| entry(&format!("v{i}"), "POST", "/api/events", json!({ "name": "task-put" }))).collect();
    entries.push(entry("bad", "PATCH", "/api/tasks/nope", json!({ "done": true })));
    let res: Value = http
        .post(format!("{}/api/sync/batch", server.url))
        .json(&json!({ "ordered": false, "entries": entries }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<_> = res["results"].as_array().unwrap().iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(&statuses[..10], [202; 10]);
    assert_eq!(statuses[10], 404);
    assert_eq!(server.count("events").await, 10);
    let (kept,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM idempotency_keys WHERE key = 'bad'")
        .fetch_one(&server.pool)
        .await
        .unwrap();
    assert_eq!(kept, 0);
}

/// axum's own refusals (a method a route does not take, a path parameter
/// that is not UTF-8) answer problem+json like the app's, alone and as
/// batch entries; a 204 carries no content type; every answer is
/// `nosniff`.
async fn every_refusal_is_a_problem_and_a_204_has_no_type(postgres: bool) {
    let server = Server::start(postgres).await;
    let http = Client::new();
    let problem = |res: reqwest::Response| async move {
        let status = res.status();
        let allow = res.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(res.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"));
        let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null);
        assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{status}: {body}");
        (status, allow, body["detail"].as_str().unwrap_or("").to_owned())
    };
    let (status, allow, detail) = problem(http.get(format!("{}/api/tasks/a", server.url)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(allow.as_deref(), Some("PUT,PATCH,DELETE"));
    assert_eq!(detail, "GET is not allowed here; /api/tasks/a takes PUT, PATCH, DELETE.");
    let (status, _, detail) = problem(http.get(format!("{}/api/events", server.url)).send().await.unwrap()).await;
    assert_eq!(
        (status, detail.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "GET is not allowed here; /api/events takes POST.")
    );
    let res = http.put(format!("{}/api/tasks/%FF", server.url)).json(&json!({ "title": "x" })).send().await.unwrap();
    let (status, _, detail) = problem(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(detail.contains("UTF-8"), "{detail}");
    // The same refusals inside a batch.
    let entry = |key: &str, method: &str, path: &str| json!({ "key": key, "method": method, "path": path, "headers": [], "body": "{\"title\":\"x\"}" });
    let batch = json!({ "ordered": false, "entries": [entry("b1", "PUT", "/api/tasks/%FF"), entry("b2", "PATCH", "/api/events")] });
    let res: Value =
        http.post(format!("{}/api/sync/batch", server.url)).json(&batch).send().await.unwrap().json().await.unwrap();
    let results = res["results"].as_array().unwrap();
    assert_eq!((results[0]["status"].as_u64(), results[1]["status"].as_u64()), (Some(400), Some(405)), "{res}");
    for result in results {
        let body: Value = serde_json::from_str(result["body"].as_str().unwrap()).unwrap_or(Value::Null);
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "a problem: {result}");
    }
    assert_eq!(server.count("tasks").await, 0);
    // A change that changes nothing makes no version.
    http.put(format!("{}/api/tasks/d", server.url)).json(&json!({ "title": "x" })).send().await.unwrap();
    for nothing in [json!({}), json!({ "title": null })] {
        let res = http.patch(format!("{}/api/tasks/d", server.url)).json(&nothing).send().await.unwrap();
        let (status, _, detail) = problem(res).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.contains("neither"), "{detail}");
    }
    // Every answer, JSON as well as problems, is to be taken as typed.
    let res = http.get(format!("{}/api/tasks", server.url)).send().await.unwrap();
    assert_eq!(res.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"));
    let (_, feed) = send(&http, reqwest::Method::GET, format!("{}/api/tasks", server.url), None, None).await;
    assert_eq!(feed["tasks"][0]["version"], 1, "{feed}");
    // A delete's 204, and its replay, have no body and so no type.
    for _ in 0..2 {
        let res =
            http.delete(format!("{}/api/tasks/d", server.url)).header("Idempotency-Key", "del-1").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(res.headers().get("content-type"), None);
    }
}

macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(false).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(true).await })*
        }
    };
}

on_both_databases!(
    edits_apply_once_and_the_feed_carries_tombstones,
    a_batch_runs_edits_in_order_through_the_apps_routes,
    every_refusal_is_a_problem_and_a_204_has_no_type
);

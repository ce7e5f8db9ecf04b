//! The posts API over real HTTP, against the real server, each test on a
//! SQLite file and on a PostgreSQL database.

#[macro_use]
mod common;

use common::TestServer;
use feed::db::Backend;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const ID: &str = "6b0d3e7a-3c55-4a4b-8d7e-0f6a1c2b3d4e";

struct Api {
    server: TestServer,
    http: Client,
}

impl Api {
    fn start(backend: Backend) -> Self {
        Self { server: TestServer::start_on(backend), http: Client::new() }
    }

    fn url(&self) -> String {
        format!("{}/api/posts", self.server.url())
    }

    async fn post(&self, key: Option<&str>, body: &Value) -> (StatusCode, Value) {
        self.post_raw(key, "application/json", serde_json::to_vec(body).unwrap()).await
    }

    async fn post_raw(&self, key: Option<&str>, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        self.send(key, &self.url(), content_type, body).await
    }

    async fn post_raw_to(&self, url: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        self.send(None, url, content_type, body).await
    }

    async fn get(&self, url: &str) -> (StatusCode, Value) {
        let res = self.http.get(url).send().await.unwrap();
        (res.status(), res.json().await.unwrap())
    }

    async fn send(&self, key: Option<&str>, url: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let mut req = self.http.post(url).header("content-type", content_type).body(body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let body: Value = res.json().await.unwrap();
        if !status.is_success() {
            assert_eq!(ct.as_deref(), Some("application/problem+json"), "{status} {body}");
            assert_eq!(body["status"], status.as_u16(), "{body}");
            assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
        }
        (status, body)
    }
}

fn post(title: &str, location: &str) -> Value {
    json!({ "id": ID, "title": title, "location": location })
}

async fn a_valid_post_is_stored_trimmed_and_listed_newest_first(backend: Backend) {
    let api = Api::start(backend);
    let (status, body) = api.post(Some("k-1"), &post("  Sunset ", " Lisbon ")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!((body["id"].as_str(), body["title"].as_str()), (Some(ID), Some("Sunset")));

    let second = json!({ "title": "Harbour", "location": "Porto" });
    let (status, created) = api.post(None, &second).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["id"].as_str().unwrap().len(), 36, "the server makes a UUID when none is sent");

    let list: Value = api.http.get(api.url()).send().await.unwrap().json().await.unwrap();
    let titles: Vec<_> = list["posts"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Harbour", "Sunset"]);
    assert_eq!(api.server.stored_posts().await.len(), 2);
}

async fn each_kind_of_bad_input_gets_a_precise_problem_and_stores_nothing(backend: Backend) {
    let api = Api::start(backend);
    let long = "x".repeat(201);
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "empty title",
            "application/json",
            br#"{"title":"  ","location":"Rome"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Title is required.",
        ),
        (
            "long location",
            "application/json",
            format!(r#"{{"title":"a","location":"{long}"}}"#).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "at most 200 characters",
        ),
        (
            "timestamp id",
            "application/json",
            br#"{"id":"2024-01-01T00:00:00Z","title":"a","location":"b"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "UUID",
        ),
        (
            "missing field",
            "application/json",
            br#"{"title":"a"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field `location`",
        ),
        (
            "wrong type",
            "application/json",
            br#"{"title":1,"location":"b"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid type",
        ),
        (
            "unknown field",
            "application/json",
            br#"{"title":"a","location":"b","admin":true}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `admin`",
        ),
        ("malformed", "application/json", br#"{"title":"a","#.to_vec(), StatusCode::BAD_REQUEST, "not valid JSON"),
        (
            "invalid utf-8",
            "application/json",
            b"{\"title\":\"\xff\xfe\",\"location\":\"b\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            "latin-1 body",
            "application/json; charset=ISO-8859-1",
            b"{\"title\":\"caf\xe9\",\"location\":\"b\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "UTF-8 only",
        ),
        (
            "form body",
            "application/x-www-form-urlencoded",
            b"title=a&location=b".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type: application/json",
        ),
    ];
    for (name, ct, body, want, detail) in cases {
        let (status, problem) = api.post_raw(None, ct, body).await;
        assert_eq!(status, want, "{name}: {problem}");
        let text = problem.to_string();
        assert!(text.contains(detail), "{name}: {detail:?} not in {text}");
    }
    // A 10 MB body is refused without being read, whether its length is
    // announced or it arrives in chunks.
    let huge = vec![b' '; 10 * 1024 * 1024];
    for chunked in [false, true] {
        let (status, content_type, body) = raw_post(api.server.addr, &huge, chunked).await;
        assert_eq!(status, 413, "chunked: {chunked}: {body}");
        assert_eq!(content_type, "application/problem+json");
        assert!(body.contains("larger than this endpoint accepts"), "{body}");
    }

    // A compressed body is refused, not read as if it were plain JSON
    // (nothing here decompresses a request).
    let res = api
        .http
        .post(api.url())
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(serde_json::to_vec(&post("a", "b")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let problem: Value = res.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("Content-Encoding: gzip"), "{problem}");

    let (status, problem) = api.post(Some("bad key with spaces"), &post("a", "b")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["type"], "/problems/invalid-idempotency-key");

    let res = api.http.delete(api.url()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET,HEAD,POST");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["detail"], "DELETE is not allowed here; /api/posts takes GET, HEAD, POST.");
    let res = api.http.get(format!("{}/api/nothing", api.server.url())).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    assert!(api.server.stored_posts().await.is_empty());
}

async fn a_repeated_key_or_post_id_returns_the_first_result_and_stores_once(backend: Backend) {
    let api = Api::start(backend);
    let (first_status, first) = api.post(Some("key-a"), &post("Sunset", "Lisbon")).await;
    assert_eq!(first_status, StatusCode::CREATED);

    // Same key, same post: the stored response, byte for byte.
    let (status, again) = api.post(Some("key-a"), &post("Sunset", "Lisbon")).await;
    assert_eq!((status, &again), (StatusCode::CREATED, &first));

    // Another key (or none) for the same post id: the stored post.
    let (status, same) = api.post(Some("key-b"), &post("Sunset", "Lisbon")).await;
    assert_eq!((status, &same), (StatusCode::OK, &first));
    let (status, _) = api.post(None, &post("Sunset", "Lisbon")).await;
    assert_eq!(status, StatusCode::OK);

    // The same key for another payload, or another post under the same id.
    let (status, problem) = api.post(Some("key-a"), &post("Moonrise", "Lisbon")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["type"], "/problems/idempotency-key-reused");
    let (status, problem) = api.post(Some("key-c"), &post("Moonrise", "Lisbon")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["type"], "/problems/post-id-taken");

    // A key sent without a post id still replays (the server's id is not
    // part of what the client sent).
    let no_id = json!({ "title": "Dawn", "location": "Faro" });
    let (s1, b1) = api.post(Some("key-d"), &no_id).await;
    let (s2, b2) = api.post(Some("key-d"), &no_id).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(b1, b2);

    assert_eq!(api.server.stored_posts().await.len(), 2);
}

async fn fifty_concurrent_requests_with_one_key_store_one_row(backend: Backend) {
    let api = Api::start(backend);
    let send = |http: Client, url: String| async move {
        let res = http
            .post(url)
            .header("Idempotency-Key", "the-one-key")
            .json(&post("Crowd", "Stadium"))
            .send()
            .await
            .unwrap();
        let retry_after = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        (res.status(), retry_after, res.json::<Value>().await.unwrap())
    };
    let requests: Vec<_> = (0..50).map(|_| tokio::spawn(send(api.http.clone(), api.url()))).collect();
    let mut first = None;
    let mut in_flight = 0;
    for r in requests {
        let (status, retry_after, body) = r.await.unwrap();
        match status {
            // The first, or a replay of its stored answer.
            StatusCode::CREATED => assert_eq!(first.get_or_insert_with(|| body.clone()), &body),
            // Still in flight in this server: try again shortly.
            StatusCode::CONFLICT => {
                assert_eq!(retry_after.as_deref(), Some("1"));
                assert_eq!(body["type"], "/problems/idempotency-key-in-flight");
                in_flight += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let first = first.expect("one request went through");
    // A retry after a 409 gets the stored answer.
    let (status, _, body) = send(api.http.clone(), api.url()).await;
    assert_eq!((status, &body), (StatusCode::CREATED, &first));
    assert_eq!(api.server.stored_posts().await.len(), 1, "{in_flight} answered 409");
    assert_eq!(api.server.count("idempotency_keys").await, 1);
}

async fn two_hundred_concurrent_requests_with_twenty_keys_make_twenty_posts(backend: Backend) {
    let api = Api::start(backend);
    let requests: Vec<_> = (0..200)
        .map(|i| {
            let (http, url) = (api.http.clone(), api.url());
            tokio::spawn(async move {
                let k = i % 20;
                let body = json!({ "id": format!("00000000-0000-4000-8000-{k:012}"), "title": format!("Post {k}"), "location": "Here" });
                loop {
                    let res = http.post(&url).header("Idempotency-Key", format!("key-{k}")).json(&body).send().await.unwrap();
                    match res.status() {
                        StatusCode::CONFLICT => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                        status => return (k, status),
                    }
                }
            })
        })
        .collect();
    for r in requests {
        let (k, status) = r.await.unwrap();
        assert!(status == StatusCode::CREATED || status == StatusCode::OK, "key {k}: {status}");
    }
    assert_eq!(api.server.stored_posts().await.len(), 20);
    assert_eq!(api.server.count("idempotency_keys").await, 20);
}

async fn a_crash_between_the_effect_and_the_stored_answer_leaves_neither(backend: Backend) {
    let api = Api::start(backend);
    api.server.fail_before_commit(true);
    let (status, problem) = api.post(Some("crash-key"), &post("Half done", "Nowhere")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(api.server.count("posts").await, 0, "no effect without its key");
    assert_eq!(api.server.count("idempotency_keys").await, 0, "no key without its effect");

    api.server.fail_before_commit(false);
    let (status, _) = api.post(Some("crash-key"), &post("Half done", "Nowhere")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((api.server.count("posts").await, api.server.count("idempotency_keys").await), (1, 1));
}

async fn expired_keys_are_purged(backend: Backend) {
    let api = Api::start(backend);
    api.post(Some("old-key"), &post("Old", "Then")).await;
    let writer = &api.server.state.as_ref().unwrap().db.writer;
    let now = bgsync_server::now_ms();
    assert_eq!(bgsync_server::idempotency::purge_older_than(writer, now - 60_000).await.unwrap(), 0, "young keys stay");
    assert_eq!(bgsync_server::idempotency::purge_older_than(writer, now + 1).await.unwrap(), 1);
    assert_eq!(api.server.count("idempotency_keys").await, 0);
    assert_eq!(api.server.count("posts").await, 1, "the post itself stays");
}

fn batch_entry(key: &str, body: Value) -> Value {
    json!({ "key": key, "method": "POST", "path": "/api/posts", "headers": [], "body": body.to_string() })
}

async fn a_batch_runs_each_entry_as_if_alone(backend: Backend) {
    let api = Api::start(backend);
    let url = format!("{}/api/sync/batch", api.server.url());
    let good = |n: u32| json!({ "id": format!("00000000-0000-4000-8000-{n:012}"), "title": format!("Batch {n}"), "location": "B" });
    let request = json!({ "ordered": false, "entries": [
        batch_entry("b-1", good(1)),
        batch_entry("b-2", json!({ "title": "", "location": "B" })),
        json!({ "key": "b-3", "method": "POST", "path": "/api/sync/batch", "headers": [], "body": "{}" }),
        batch_entry("b-4", good(4)),
        batch_entry("b-1", good(1)),
    ]});
    let res: Value = api.http.post(&url).json(&request).send().await.unwrap().json().await.unwrap();
    let statuses: Vec<_> = res["results"].as_array().unwrap().iter().map(|r| r["status"].as_u64()).collect();
    assert_eq!(statuses, [Some(201), Some(422), Some(400), Some(201), Some(201)], "{res}");
    let refused: Value = serde_json::from_str(res["results"][1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(refused["detail"], "Title is required.");
    assert_eq!(api.server.stored_posts().await.len(), 2, "the repeated key applied once");

    // Ordered: stop at the first failure, report the rest as not attempted.
    let request = json!({ "ordered": true, "entries": [
        batch_entry("o-1", good(11)), batch_entry("o-2", json!({ "title": "x", "location": "" })), batch_entry("o-3", good(13)),
    ]});
    let res: Value = api.http.post(&url).json(&request).send().await.unwrap().json().await.unwrap();
    let statuses: Vec<_> = res["results"].as_array().unwrap().iter().map(|r| r["status"].as_u64()).collect();
    assert_eq!(statuses, [Some(201), Some(422), None], "{res}");
    assert_eq!(api.server.stored_posts().await.len(), 3);

    // An entry that fails after its key was claimed (its post id is taken
    // by another post) rolls back alone: its key is free again, and the
    // entries around it are committed.
    let taken = json!({ "id": good(1)["id"], "title": "Another post", "location": "B" });
    let request = json!({ "ordered": false, "entries": [
        batch_entry("s-1", good(21)), batch_entry("s-2", taken), batch_entry("s-3", good(23)),
    ]});
    let res: Value = api.http.post(&url).json(&request).send().await.unwrap().json().await.unwrap();
    let statuses: Vec<_> = res["results"].as_array().unwrap().iter().map(|r| r["status"].as_u64()).collect();
    assert_eq!(statuses, [Some(201), Some(422), Some(201)], "{res}");
    assert_eq!(api.server.stored_posts().await.len(), 5);
    let request = json!({ "ordered": false, "entries": [batch_entry("s-2", good(22))] });
    let res: Value = api.http.post(&url).json(&request).send().await.unwrap().json().await.unwrap();
    assert_eq!(res["results"][0]["status"], 201, "the failed entry's key was not kept: {res}");
    assert_eq!(api.server.stored_posts().await.len(), 6);

    // An entry may carry its own key as a header, and a Content-Length: the
    // key and the body say both. A header key other than the entry's is
    // refused, saying so (it was "send the header once", or "not a valid
    // HTTP header" for the length).
    let with = |key: &str, n: u32, headers: Value| json!({ "key": key, "method": "POST", "path": "/api/posts", "headers": headers, "body": good(n).to_string() });
    let request = json!({ "ordered": false, "entries": [
        with("h-1", 31, json!([["Idempotency-Key", "h-1"], ["Content-Length", "5"]])),
        with("h-2", 32, json!([["idempotency-key", "another"]])),
    ]});
    let res: Value = api.http.post(&url).json(&request).send().await.unwrap().json().await.unwrap();
    let statuses: Vec<_> = res["results"].as_array().unwrap().iter().map(|r| r["status"].as_u64()).collect();
    assert_eq!(statuses, [Some(201), Some(400)], "{res}");
    let refused: Value = serde_json::from_str(res["results"][1]["body"].as_str().unwrap()).unwrap();
    assert!(refused["detail"].as_str().unwrap().contains("is not its key \"h-2\""), "{refused}");
    assert_eq!(api.server.stored_posts().await.len(), 7);

    let too_many = json!({ "ordered": false, "entries": (0..1001).map(|i| batch_entry(&format!("m-{i}"), good(i))).collect::<Vec<_>>() });
    let res = api.http.post(&url).json(&too_many).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, problem) = api.post_raw_to(&url, "application/json", br#"{"ordered":true}"#.to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
}

/// `Prefer: return=minimal` (RFC 7240): the answers of entries that
/// succeeded come without their bodies (the worker keeps none of them),
/// refusals keep theirs, and `Preference-Applied` says so; without the
/// preference every body is there.
async fn a_batch_asked_for_minimal_answers_leaves_out_the_bodies_of_successes(backend: Backend) {
    let api = Api::start(backend);
    let url = format!("{}/api/sync/batch", api.server.url());
    let good = |n: u32| json!({ "id": format!("00000000-0000-4000-8000-{n:012}"), "title": format!("Minimal {n}"), "location": "M" });
    let entries = |prefix: &str, first: u32| {
        json!({ "ordered": false, "entries": [
            batch_entry(&format!("{prefix}-1"), good(first)),
            batch_entry(&format!("{prefix}-2"), json!({ "title": "", "location": "M" })),
            batch_entry(&format!("{prefix}-3"), good(first + 1)),
        ]})
    };
    for prefer in ["return=minimal", "respond-async, RETURN = \"minimal\"", "wait=5,return=minimal"] {
        let first = 10 * (api.server.stored_posts().await.len() as u32 + 1);
        let res = api
            .http
            .post(&url)
            .header("Prefer", prefer)
            .json(&entries(&format!("m{first}"), first))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let applied = res.headers().get("preference-applied").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(applied.as_deref(), Some("return=minimal"), "Prefer: {prefer}");
        let res: Value = res.json().await.unwrap();
        let results = res["results"].as_array().unwrap();
        let statuses: Vec<_> = results.iter().map(|r| r["status"].as_u64()).collect();
        assert_eq!(statuses, [Some(201), Some(422), Some(201)], "{res}");
        assert_eq!(results[0]["body"], "", "{res}");
        assert_eq!(results[2]["body"], "", "{res}");
        let refused: Value = serde_json::from_str(results[1]["body"].as_str().unwrap()).unwrap();
        assert_eq!(refused["detail"], "Title is required.", "a refusal keeps its body: {res}");
    }
    assert_eq!(api.server.stored_posts().await.len(), 6);
    // Without it (or with another preference), every answer is whole.
    for prefer in [None, Some("return=representation")] {
        let first = 10 * (api.server.stored_posts().await.len() as u32 + 1);
        let mut req = api.http.post(&url).json(&entries(&format!("r{first}"), first));
        if let Some(prefer) = prefer {
            req = req.header("Prefer", prefer);
        }
        let res = req.send().await.unwrap();
        assert!(res.headers().get("preference-applied").is_none(), "{prefer:?}");
        let res: Value = res.json().await.unwrap();
        let created: Value = serde_json::from_str(res["results"][0]["body"].as_str().unwrap()).unwrap();
        assert_eq!(created["title"], format!("Minimal {first}"), "{res}");
    }
}

/// A batch's answer says in a header how many of its entries succeeded
/// (`Bgsync-Batch-Succeeded`), so that a client whose entries all did need
/// not read the body: every one, some, none (ordered, stopped at the
/// first), and replays of keys already answered.
async fn a_batch_answer_says_how_many_entries_succeeded(backend: Backend) {
    let api = Api::start(backend);
    let url = format!("{}/api/sync/batch", api.server.url());
    let good = |n: u32| json!({ "id": format!("00000000-0000-4000-8000-{n:012}"), "title": format!("Counted {n}"), "location": "C" });
    let bad = json!({ "title": "", "location": "C" });
    let cases = [
        (
            json!({ "ordered": true, "entries": [batch_entry("c-1", good(1)), batch_entry("c-2", good(2)), batch_entry("c-3", good(3))] }),
            "3",
        ),
        (
            json!({ "ordered": false, "entries": [batch_entry("c-4", good(4)), batch_entry("c-5", bad.clone()), batch_entry("c-6", good(6))] }),
            "2",
        ),
        (json!({ "ordered": true, "entries": [batch_entry("c-7", bad), batch_entry("c-8", good(8))] }), "0"),
        // The same keys again: replayed answers are successes too.
        (json!({ "ordered": true, "entries": [batch_entry("c-1", good(1)), batch_entry("c-2", good(2))] }), "2"),
    ];
    for (request, succeeded) in cases {
        for prefer in [Some("return=minimal"), None] {
            let mut req = api.http.post(&url).json(&request);
            if let Some(prefer) = prefer {
                req = req.header("Prefer", prefer);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let header = res.headers().get("bgsync-batch-succeeded").map(|v| v.to_str().unwrap().to_owned());
            let body: Value = res.json().await.unwrap();
            assert_eq!(header.as_deref(), Some(succeeded), "{prefer:?} {body}");
            let counted = body["results"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["status"].as_u64().is_some_and(|s| (200..300).contains(&s)))
                .count();
            assert_eq!(counted.to_string(), succeeded, "the header agrees with the results: {body}");
        }
    }
    assert_eq!(api.server.stored_posts().await.len(), 5);
}

async fn the_delta_feed_returns_each_change_once_with_etags(backend: Backend) {
    let api = Api::start(backend);
    let url = api.url();
    let (status, problem) = api.get(&format!("{url}?since=nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (status, _) = api.get(&format!("{url}?since=0.0&limit=0")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A cursor ahead of the feed's newest change (the server's data was
    // restored or reset since the client got it): 410, so that the client
    // pulls afresh rather than wait for ever for changes past it.
    let (status, problem) = api.get(&format!("{url}?since=999999999.5")).await;
    assert_eq!(status, StatusCode::GONE, "{problem}");
    assert_eq!(problem["type"], "/problems/cursor-unknown", "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("pull again without since"), "{problem}");
    let (status, empty) = api.get(&format!("{url}?since=0.0")).await;
    assert_eq!(status, StatusCode::OK, "{empty}");

    // Two servers write concurrently on the same database while a reader
    // follows the feed page by page.
    let other = api.server.another_on_same_database();
    let writers: Vec<_> = [api.server.url(), other.url()]
        .into_iter()
        .enumerate()
        .map(|(w, base)| {
            let http = api.http.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    let body = json!({ "title": format!("w{w}-{i}"), "location": "L" });
                    let res = http.post(format!("{base}/api/posts")).json(&body).send().await.unwrap();
                    assert_eq!(res.status(), StatusCode::CREATED);
                }
            })
        })
        .collect();
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = "0.0".to_string();
    let mut writers_done = false;
    let mut writers = writers;
    // A gap would make this wait forever for the 80th post: fail instead.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(std::time::Instant::now() < deadline, "the feed never reached 80 posts (a gap?): {seen:?}");
        let (status, page) = api.get(&format!("{url}?since={cursor}&limit=7")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(page["posts"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap().to_owned()));
        cursor = page["cursor"].as_str().unwrap().to_owned();
        if writers_done && !page["more"].as_bool().unwrap() && seen.len() == 80 {
            break;
        }
        if !writers_done && writers.iter().all(|w| w.is_finished()) {
            for w in writers.drain(..) {
                w.await.unwrap();
            }
            writers_done = true;
        }
        assert!(seen.len() <= 80, "repeats: {seen:?}");
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 80, "no gaps, no repeats");

    // Nothing changed since: 304 for the same ETag.
    let res = api.http.get(format!("{url}?since={cursor}")).send().await.unwrap();
    let etag = res.headers()["etag"].clone();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["posts"].as_array().unwrap().len(), 0);
    let res = api.http.get(format!("{url}?since={cursor}")).header("If-None-Match", etag.clone()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    // A new post changes the answer and its ETag (on PostgreSQL once every
    // older transaction has ended, which may take a moment).
    api.post(None, &json!({ "title": "late", "location": "L" })).await;
    let later = common::eventually("the new post in the delta", std::time::Duration::from_secs(10), || {
        let (http, url, cursor, etag) = (api.http.clone(), url.clone(), cursor.clone(), etag.clone());
        async move {
            let res = http.get(format!("{url}?since={cursor}")).header("If-None-Match", etag).send().await.unwrap();
            (res.status() == StatusCode::OK).then_some(res)
        }
    })
    .await;
    assert_ne!(later.headers()["etag"], etag);
    let body: Value = later.json().await.unwrap();
    let titles: Vec<&str> = body["posts"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["late"]);
}

/// A database restored from a backup hands out again the positions it had
/// handed out after the backup: a client whose cursor names such a
/// position, now another post's, would take the posts after it for all it
/// missed, and never get the ones in between. The cursor names its post as
/// well as its position, so such a cursor is refused (410), and the client
/// pulls afresh. (Before session 29, only a cursor past the newest post was
/// told apart.) SQLite, whose `AUTOINCREMENT` counter is restored with the
/// rows.
#[tokio::test]
async fn a_cursor_whose_position_a_restored_database_gave_to_another_post_is_refused() {
    use sqlx::Connection;
    let api = Api::start(Backend::Sqlite);
    let url = api.url();
    for title in ["Before the backup", "After the backup"] {
        assert_eq!(api.post(None, &json!({ "title": title, "location": "Here" })).await.0, StatusCode::CREATED);
    }
    let (_, first) = api.get(&url).await;
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    let (status, _) = api.get(&format!("{url}?since={cursor}")).await;
    assert_eq!(status, StatusCode::OK);
    // The backup was taken between the two posts: restored, the second post
    // and the counter past it are gone.
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&api.server.database_url).await.unwrap();
    sqlx::query("DELETE FROM posts WHERE title = 'After the backup'").execute(&mut db).await.unwrap();
    sqlx::query("UPDATE sqlite_sequence SET seq = (SELECT MAX(seq) FROM posts) WHERE name = 'posts'")
        .execute(&mut db)
        .await
        .unwrap();
    for title in ["Written after the restore", "And another"] {
        assert_eq!(api.post(None, &json!({ "title": title, "location": "Here" })).await.0, StatusCode::CREATED);
    }
    let (status, answer) = api.get(&format!("{url}?since={cursor}")).await;
    assert_eq!(status, StatusCode::GONE, "the client would miss a post: {answer}");
    assert_eq!(answer["type"], "/problems/cursor-unknown", "{answer}");
    // A cursor of the restored feed goes on as before.
    let (_, first) = api.get(&url).await;
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    assert_eq!(api.post(None, &json!({ "title": "Newest", "location": "Here" })).await.0, StatusCode::CREATED);
    let (status, delta) = api.get(&format!("{url}?since={cursor}")).await;
    assert_eq!(status, StatusCode::OK, "{delta}");
    let titles: Vec<&str> = delta["posts"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Newest"]);
}

// The assets do not depend on the database: one run is enough.
/// Decompresses with Debian's `gzip` (the tests need no gzip crate).
fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    output.stdout
}

/// Decompresses a Brotli stream.
fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli_decompressor::BrotliDecompress(&mut &bytes[..], &mut out).expect("a Brotli stream");
    out
}

#[tokio::test]
async fn the_app_is_served_with_the_hashed_bundle() {
    let api = Api::start(Backend::Sqlite);
    let html = api.http.get(api.server.url()).send().await.unwrap().text().await.unwrap();
    let start = api.http.get(format!("{}/start.js", api.server.url())).send().await.unwrap().text().await.unwrap();
    let sw = api.http.get(format!("{}/sw.js", api.server.url())).send().await.unwrap();
    assert_eq!(sw.headers()["cache-control"], "no-cache");
    // Revalidated, a file not changed since costs an answer without it.
    let etag = sw.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\"") && etag.ends_with('"') && etag.len() == 20, "{etag}");
    let sw = sw.text().await.unwrap();
    let revalidate =
        |tag: &str| api.http.get(format!("{}/sw.js", api.server.url())).header("if-none-match", tag).send();
    let same = revalidate(&etag).await.unwrap();
    assert_eq!(same.status(), 304);
    assert_eq!(same.headers()["etag"], etag.as_str());
    assert_eq!(same.headers()["cache-control"], "no-cache");
    assert!(same.bytes().await.unwrap().is_empty());
    assert_eq!(revalidate(&format!("\"other\", {}", &etag[2..])).await.unwrap().status(), 304, "a strong form, listed");
    let changed = revalidate("W/\"0000000000000000\"").await.unwrap();
    assert_eq!(changed.status(), 200, "another tag: the file");
    assert_eq!(changed.text().await.unwrap(), sw);
    let start_tag =
        api.http.get(format!("{}/start.js", api.server.url())).send().await.unwrap().headers()["etag"].clone();
    assert_ne!(start_tag, etag.as_str(), "each file its own tag");
    let bundle = feed::assets::BUNDLE;
    assert!(bundle.starts_with("feed_web-") && bundle.len() == "feed_web-".len() + 16, "{bundle}");
    assert!(html.contains("<script src=\"/start.js\">") && !html.contains("wasm_bindgen("), "no inline script");
    assert!(start.contains(&format!("/{bundle}.wasm")) && sw.contains(&format!("/{bundle}.wasm")));
    let worker = feed::assets::WORKER;
    assert!(worker.starts_with("bgsync_worker-") && worker.len() == "bgsync_worker-".len() + 16, "{worker}");
    assert!(sw.contains(&format!("importScripts(\"/bgsync-sw.js\", \"/{worker}.js\")")), "{sw}");
    assert!(sw.contains(&format!("/{worker}.wasm")) && sw.contains("importScripts(\"/bgsync-config.js\")"), "{sw}");
    // bgsync's bootstrap and the declaration the page and the worker share.
    for (path, needle) in [("/bgsync-sw.js", "worker_capture"), ("/bgsync-config.js", "BGSYNC_CONFIG")] {
        let file = api.http.get(format!("{}{path}", api.server.url())).send().await.unwrap().text().await.unwrap();
        assert!(file.contains(needle), "{path}");
    }
    for placeholder in ["__BUNDLE__", "__WORKER__"] {
        assert!(
            !html.contains(placeholder) && !sw.contains(placeholder) && !start.contains(placeholder),
            "{placeholder}"
        );
    }
    for module in [bundle, worker] {
        let wasm = api.http.get(format!("{}/{module}.wasm", api.server.url())).send().await.unwrap();
        assert_eq!(wasm.headers()["content-type"], "application/wasm");
        assert!(wasm.headers()["cache-control"].to_str().unwrap().contains("immutable"));
        assert_eq!(wasm.headers()["vary"], "Accept-Encoding");
        assert!(wasm.headers().get("content-encoding").is_none(), "no Accept-Encoding, no compression");
        let plain = wasm.bytes().await.unwrap();
        assert_eq!(&plain[..4], b"\0asm");
        // Its panic messages name sources relative to no directory of the
        // machine that built it (the same bytes wherever CARGO_HOME is).
        assert!(!plain.windows(14).any(|w| w == b"/registry/src/"), "{module}: a builder's path");
        assert!(plain.windows(8).any(|w| w == b"crates/j"), "{module}: js-sys's sources, remapped");
        // Compressed at build time: with Brotli for clients that take it
        // (browsers do), gzip for those that take only gzip.
        let get = |accept: &'static str| {
            api.http.get(format!("{}/{module}.wasm", api.server.url())).header("accept-encoding", accept).send()
        };
        let gz = get("gzip, deflate").await.unwrap();
        assert_eq!(gz.headers()["content-encoding"], "gzip");
        let gz = gz.bytes().await.unwrap();
        assert_eq!(&gz[..2], b"\x1f\x8b", "a gzip stream");
        assert!(gz.len() * 2 < plain.len(), "{} of {}", gz.len(), plain.len());
        assert_eq!(gunzip(&gz), plain, "the same module once decompressed");
        for accept in ["gzip, deflate, br, zstd", "br;q=1.0, gzip;q=0.8"] {
            let br = get(accept).await.unwrap();
            assert_eq!(br.headers()["content-encoding"], "br", "{accept}");
            let br = br.bytes().await.unwrap();
            assert!(br.len() < gz.len(), "{accept}: Brotli {} against gzip {}", br.len(), gz.len());
            assert_eq!(unbrotli(&br), plain, "{accept}: the same module once decompressed");
        }
        let gzip_first = get("br;q=0.5, gzip").await.unwrap();
        assert_eq!(gzip_first.headers()["content-encoding"], "gzip", "the client's weights decide");
        let refused = api
            .http
            .get(format!("{}/{module}.wasm", api.server.url()))
            .header("accept-encoding", "gzip;q=0, identity")
            .send()
            .await
            .unwrap();
        assert!(refused.headers().get("content-encoding").is_none(), "gzip;q=0 refuses gzip (and Brotli is not named)");
    }
    // The page's module has no replay (it never sends a batch, which asks
    // for `Prefer: return=minimal`); bgsync's fallback module, which a page
    // loads where no worker replays for it, has it, and the declaration
    // says where it is.
    let fallback = feed::assets::BGSYNC_FALLBACK;
    let has_replay = |wasm: &[u8]| wasm.windows(14).any(|w| w == b"return=minimal");
    let module = |name: String| {
        let (http, url) = (api.http.clone(), api.server.url());
        async move { http.get(format!("{url}/{name}")).send().await.unwrap().bytes().await.unwrap() }
    };
    assert!(!has_replay(&module(format!("{bundle}.wasm")).await), "the page's module has the replay");
    assert!(has_replay(&module(format!("{fallback}.wasm")).await), "the fallback module has no replay");
    assert!(has_replay(&module(format!("{worker}.wasm")).await));
    let fallback_glue = String::from_utf8(module(format!("{fallback}.js")).await.to_vec()).unwrap();
    assert!(
        fallback_glue.contains("deliverHere") && fallback_glue.ends_with("self.bgsync_fallback=bgsync_fallback;\n")
    );
    let config = String::from_utf8(module("bgsync-config.js".into()).await.to_vec()).unwrap();
    assert!(config.contains(&format!("fallback: \"/{fallback}\"")), "{config}");
    // The worker's module has the worker's exports and none of the page's.
    let glue = api.http.get(format!("{}/{worker}.js", api.server.url())).send().await.unwrap().text().await.unwrap();
    assert!(glue.contains("worker_sync") && !glue.contains("start_page") && !glue.contains("setCredentials"));
    // Served without comments or indentation; the declarations keep the docs.
    assert!(!glue.contains("/**") && !glue.contains("\n    "), "{glue}");
    // The names only the glue and the module share are short on both sides.
    assert!(
        !glue.contains("_bg.js") && !glue.contains("__convert__closures") && !glue.contains("__wbg_new_"),
        "{glue}"
    );
    // The JavaScript API's TypeScript declarations.
    let types = api.http.get(format!("{}/{bundle}.d.ts", api.server.url())).send().await.unwrap().text().await.unwrap();
    assert!(types.contains("/**"), "{types}");
    for signature in [
        "export function enqueue(queue: string, request: QueuedRequest): Promise<string>;",
        "export function status(): Promise<BgsyncStatus>;",
        "export function subscribe(callback: (event: BgsyncEvent) => void): () => void;",
        "export function retryNow(): Promise<void>;",
        "export function deadLetters(): Promise<DeadLetter[]>;",
        "export function retryDeadLetter(key: string): Promise<boolean>;",
        "export function discardDeadLetter(key: string): Promise<void>;",
        "export function setCredentials(headers: Record<string, string> | [string, string][] | Headers, options?: CredentialOptions | null): Promise<void>;",
    ] {
        assert!(types.contains(signature), "missing from the declarations: {signature}");
    }
}

/// POSTs `body` over a raw connection, writing it while reading the answer:
/// the server answers 413 before the body is sent, and an HTTP client
/// library would report the closed connection instead of that answer.
async fn raw_post(addr: std::net::SocketAddr, body: &[u8], chunked: bool) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let framing =
        if chunked { "Transfer-Encoding: chunked".to_string() } else { format!("Content-Length: {}", body.len()) };
    let head = format!(
        "POST /api/posts HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
    );
    let mut payload = head.into_bytes();
    if chunked {
        for chunk in body.chunks(16 * 1024) {
            payload.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
            payload.extend(chunk);
            payload.extend(b"\r\n");
        }
        payload.extend(b"0\r\n\r\n");
    } else {
        payload.extend(body);
    }
    let writer = tokio::spawn(async move {
        // The server may close before the body is through: that is the point.
        let _ = write.write_all(&payload).await;
    });
    let mut answer = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), read.read_to_end(&mut answer))
        .await
        .expect("the server answers a huge body promptly")
        .ok();
    writer.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_owned))
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// The value of the Prometheus series `series` (name and labels exactly as
/// exposed), 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

async fn metrics_count_requests_replays_batches_and_keys(backend: Backend) {
    let api = Api::start(backend);
    let scrape = || async {
        let res = api.http.get(format!("{}/metrics", api.server.url())).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        res.text().await.unwrap()
    };
    let before = scrape().await;
    let post = json!({ "title": "Counted", "location": "Here" });
    assert_eq!(api.post(Some("metrics-key"), &post).await.0, StatusCode::CREATED);
    assert_eq!(api.post(Some("metrics-key"), &post).await.0, StatusCode::CREATED, "a replay");
    let batch = json!({ "ordered": false, "entries": [
        { "key": "metrics-b1", "method": "POST", "path": "/api/posts", "headers": [], "body": json!({ "title": "In a batch", "location": "Here" }).to_string() },
        { "key": "metrics-b2", "method": "POST", "path": "/api/posts", "headers": [], "body": "{}" },
    ]});
    let (status, _) = api
        .post_raw_to(
            &format!("{}/api/sync/batch", api.server.url()),
            "application/json",
            batch.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let after = scrape().await;
    // Other tests of this process count too: compare before and after.
    let grew = |series: &str, by: f64| {
        let (was, is) = (metric(&before, series), metric(&after, series));
        assert!(is - was >= by, "{series}: {was} -> {is}\n{after}");
    };
    grew(r#"bgsync_http_requests_total{method="POST",route="/api/posts",status="201"}"#, 2.0);
    grew(r#"bgsync_http_requests_total{method="POST",route="/api/sync/batch",status="200"}"#, 1.0);
    grew(r#"bgsync_http_request_duration_seconds_count{method="POST",route="/api/posts"}"#, 2.0);
    grew("bgsync_idempotent_replays_total", 1.0);
    grew(r#"bgsync_batches_total{outcome="committed"}"#, 1.0);
    grew(r#"bgsync_batch_entries_total{outcome="succeeded"}"#, 1.0);
    grew(r#"bgsync_batch_entries_total{outcome="refused"}"#, 1.0);
    assert!(metric(&after, "bgsync_idempotency_keys") >= 2.0, "{after}");
    if backend == Backend::Sqlite {
        grew("bgsync_group_commits_total", 2.0);
        // The posts and the batch's entries were written on the request's
        // thread, not through sqlx's SQLite thread.
        grew("bgsync_sqlite_direct_total", 3.0);
    }
    // A path no route matches is one series, whatever the path.
    api.http.get(format!("{}/api/nothing/{}", api.server.url(), uuid::Uuid::new_v4())).send().await.unwrap();
    assert!(scrape().await.contains(r#"route="unmatched",status="404""#));
    // Another method: a problem, like everywhere else.
    let (status, problem) =
        api.post_raw_to(&format!("{}/metrics", api.server.url()), "application/json", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(problem["detail"].as_str().unwrap().contains("GET, HEAD"), "{problem}");
    // Methods a client makes up (HTTP allows any token) are one series
    // together: a label per method would let a client grow the server's
    // memory and every scrape without bound, a series at a time.
    let before = scrape().await;
    let made_up: Vec<String> = (0..20).map(|i| format!("MADEUP{i}X{}", uuid::Uuid::new_v4().simple())).collect();
    for method in &made_up {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = api.http.request(method, format!("{}/api/posts", api.server.url())).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let after = scrape().await;
    for method in &made_up {
        assert!(!after.contains(method.as_str()), "{method} is not a label of its own:\n{after}");
    }
    let series = r#"bgsync_http_requests_total{method="other",route="/api/posts",status="405"}"#;
    let (was, is) = (metric(&before, series), metric(&after, series));
    assert!(is - was >= 20.0, "{series}: {was} -> {is}\n{after}");
}

on_both_databases!(
    metrics_count_requests_replays_batches_and_keys,
    a_valid_post_is_stored_trimmed_and_listed_newest_first,
    each_kind_of_bad_input_gets_a_precise_problem_and_stores_nothing,
    a_repeated_key_or_post_id_returns_the_first_result_and_stores_once,
    fifty_concurrent_requests_with_one_key_store_one_row,
    two_hundred_concurrent_requests_with_twenty_keys_make_twenty_posts,
    a_crash_between_the_effect_and_the_stored_answer_leaves_neither,
    expired_keys_are_purged,
    a_batch_runs_each_entry_as_if_alone,
    a_batch_asked_for_minimal_answers_leaves_out_the_bodies_of_successes,
    a_batch_answer_says_how_many_entries_succeeded,
    the_delta_feed_returns_each_change_once_with_etags,
);

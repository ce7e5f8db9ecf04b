//! The posts API over real HTTP, against the real server on a SQLite file.

mod common;

use common::TestServer;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const ID: &str = "6b0d3e7a-3c55-4a4b-8d7e-0f6a1c2b3d4e";

struct Api {
    server: TestServer,
    http: Client,
}

impl Api {
    fn start() -> Self {
        Self { server: TestServer::start(), http: Client::new() }
    }

    fn url(&self) -> String {
        format!("{}/api/posts", self.server.url())
    }

    async fn post(&self, key: Option<&str>, body: &Value) -> (StatusCode, Value) {
        self.post_raw(key, "application/json", serde_json::to_vec(body).unwrap()).await
    }

    async fn post_raw(&self, key: Option<&str>, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let mut req = self.http.post(self.url()).header("content-type", content_type).body(body);
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

#[tokio::test]
async fn a_valid_post_is_stored_trimmed_and_listed_newest_first() {
    let api = Api::start();
    let (status, body) = api.post(Some("k-1"), &post("  Sunset ", " Lisbon ")).await;
    assert_eq!(status, StatusCode::CREATED);
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

#[tokio::test]
async fn each_kind_of_bad_input_gets_a_precise_problem_and_stores_nothing() {
    let api = Api::start();
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

    let (status, problem) = api.post(Some("bad key with spaces"), &post("a", "b")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["type"], "/problems/invalid-idempotency-key");

    let res = api.http.delete(api.url()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET, POST");
    let res = api.http.get(format!("{}/api/nothing", api.server.url())).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    assert!(api.server.stored_posts().await.is_empty());
}

#[tokio::test]
async fn a_repeated_key_or_post_id_returns_the_first_result_and_stores_once() {
    let api = Api::start();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_with_one_key_store_one_row() {
    let api = Api::start();
    let requests = (0..50).map(|_| {
        let http = api.http.clone();
        let url = api.url();
        tokio::spawn(async move {
            let res = http
                .post(url)
                .header("Idempotency-Key", "the-one-key")
                .json(&post("Crowd", "Stadium"))
                .send()
                .await
                .unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        })
    });
    let mut answers = Vec::new();
    for r in requests {
        answers.push(r.await.unwrap());
    }
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
        assert_eq!(body, &answers[0].1);
    }
    assert_eq!(api.server.stored_posts().await.len(), 1);
}

#[tokio::test]
async fn the_app_is_served_with_the_hashed_bundle() {
    let api = Api::start();
    let html = api.http.get(api.server.url()).send().await.unwrap().text().await.unwrap();
    let sw = api.http.get(format!("{}/sw.js", api.server.url())).send().await.unwrap();
    assert_eq!(sw.headers()["cache-control"], "no-cache");
    let sw = sw.text().await.unwrap();
    let bundle = feed::assets::BUNDLE;
    assert!(bundle.starts_with("feed_web-") && bundle.len() == "feed_web-".len() + 16, "{bundle}");
    assert!(html.contains(&format!("/{bundle}.wasm")) && sw.contains(&format!("/{bundle}.wasm")));
    assert!(!html.contains("__BUNDLE__") && !sw.contains("__BUNDLE__"));
    let wasm = api.http.get(format!("{}/{bundle}.wasm", api.server.url())).send().await.unwrap();
    assert_eq!(wasm.headers()["content-type"], "application/wasm");
    assert!(wasm.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert_eq!(&wasm.bytes().await.unwrap()[..4], b"\0asm");
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

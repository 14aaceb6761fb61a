//! The webhook routes (shapes, codes and messages checked against Meilisearch 1.50) and the
//! notification of finished tasks.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use super::*;
use crate::testutil::{eventually, node_task, Cluster, MASTER_KEY, TASKS_ONLY_KEY};

async fn send(cluster: &Cluster, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = cluster
        .http
        .request(method, format!("{}{path}", cluster.base))
        .header("authorization", format!("Bearer {MASTER_KEY}"));
    if let Some(b) = body {
        request = request
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Method, path, body, then the expected status, code and message.
type Case<'a> = (&'a str, String, Option<&'a str>, u16, &'a str, String);

fn error(status: u16, body: &Value) -> (u16, &str, &str) {
    (
        status,
        body["code"].as_str().unwrap_or_default(),
        body["message"].as_str().unwrap_or_default(),
    )
}

#[test]
fn authorization_values_are_redacted_as_meilisearch_does() {
    let hook = Webhook {
        url: "https://a.com".into(),
        headers: [
            ("Authorization", "short"),
            (
                "authorization",
                "Bearer 0123456789abcdefghijklmnopqrstuvwxyz",
            ),
            ("X-Other", "Bearer visible"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    let shown = view("3cacc51b-4c29-49ef-997d-866e2d98c1f0", &hook);
    assert_eq!(
        shown,
        json!({"uuid": "3cacc51b-4c29-49ef-997d-866e2d98c1f0", "isEditable": true,
               "url": "https://a.com",
               "headers": {"Authorization": "XXX...", "X-Other": "Bearer visible",
                           "authorization": "Bearer 01234XXXXXX..."}})
    );
    let mut s = "Bearer secret-token".to_string();
    hide_secret(&mut s, "Bearer ".len());
    assert_eq!(s, "Bearer seXXXX...");
    let mut s = "Bearer x".to_string();
    hide_secret(&mut s, "Bearer ".len());
    assert_eq!(s, "Bearer XXX...");
}

#[tokio::test]
async fn the_routes_answer_as_meilisearch() {
    let cluster = Cluster::start(1).await;
    assert_eq!(
        send(&cluster, "GET", "/webhooks", None).await,
        (200, json!({"results": []}))
    );
    let (status, created) = send(
        &cluster,
        "POST",
        "/webhooks",
        Some(r#"{"url":"https://example.com/webhook","headers":{"Authorization":"Bearer x","X-Custom":"v"}}"#),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let uuid = created["uuid"].as_str().expect("uuid").to_string();
    assert_eq!(Uuid::parse_str(&uuid).map(|u| u.get_version_num()), Ok(4));
    assert_eq!(
        created,
        json!({"uuid": uuid, "isEditable": true, "url": "https://example.com/webhook",
               "headers": {"Authorization": "Bearer XXX...", "X-Custom": "v"}})
    );
    let keys: Vec<&String> = created.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["uuid", "isEditable", "url", "headers"]);
    assert_eq!(
        send(&cluster, "GET", &format!("/webhooks/{uuid}"), None).await,
        (200, created.clone())
    );
    assert_eq!(
        send(
            &cluster,
            "GET",
            &format!("/webhooks/{}", uuid.to_uppercase()),
            None
        )
        .await,
        (200, created.clone()),
        "any form of the uuid"
    );
    let (_, list) = send(&cluster, "GET", "/webhooks", None).await;
    assert_eq!(list, json!({"results": [created]}));

    // PATCH: a null header is removed, others kept or added; url changes.
    let (status, patched) = send(
        &cluster,
        "PATCH",
        &format!("/webhooks/{uuid}"),
        Some(r#"{"url":"https://example.com/updated","headers":{"Authorization":null,"new":"x"}}"#),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["url"], "https://example.com/updated");
    assert_eq!(patched["headers"], json!({"X-Custom": "v", "new": "x"}));
    let (_, patched) = send(
        &cluster,
        "PATCH",
        &format!("/webhooks/{uuid}"),
        Some(r#"{"headers":null}"#),
    )
    .await;
    assert_eq!(patched["headers"], json!({}));
    let (status, body) = send(
        &cluster,
        "PATCH",
        &format!("/webhooks/{uuid}"),
        Some(r#"{"url":null}"#),
    )
    .await;
    assert_eq!(
        error(status, &body),
        (
            400,
            "invalid_webhook_url",
            format!("The URL for the webhook `{uuid}` is missing.").as_str()
        )
    );

    // Errors, word for word.
    let nil = "00000000-0000-0000-0000-000000000000";
    let other = "aebd546a-1ad1-4541-8316-6c3c327502a1";
    let cases: Vec<Case> = vec![
        ("GET", "/webhooks/non-existent-uid".into(), None, 400, "invalid_webhook_uuid",
         "Invalid UUID: invalid character: found `n` at 0".into()),
        ("GET", format!("/webhooks/{nil}"), None, 404, "webhook_not_found",
         format!("Webhook `{nil}` not found.")),
        ("DELETE", format!("/webhooks/{nil}"), None, 400, "immutable_webhook",
         format!("Webhook `{nil}` is immutable. The webhook defined from the command line cannot be modified using the API.")),
        ("PATCH", format!("/webhooks/{nil}"), Some("{}"), 400, "immutable_webhook",
         format!("Webhook `{nil}` is immutable. The webhook defined from the command line cannot be modified using the API.")),
        ("PATCH", format!("/webhooks/{other}"), Some("{}"), 404, "webhook_not_found",
         format!("Webhook `{other}` not found.")),
        ("PATCH", "/webhooks/xyz".into(), Some(r#"{"nope":1}"#), 400, "bad_request",
         "Unknown field `nope`: expected one of `url`, `headers`".into()),
        ("DELETE", "/webhooks/non-existent-uid".into(), None, 400, "invalid_webhook_uuid",
         "Invalid UUID: invalid character: found `n` at 0".into()),
        ("DELETE", format!("/webhooks/{other}"), None, 404, "webhook_not_found",
         format!("Webhook `{other}` not found.")),
        ("POST", "/webhooks".into(), Some("garbage"), 400, "malformed_payload",
         "The json payload provided is malformed. `expected value at line 1 column 1`.".into()),
        ("POST", "/webhooks".into(), Some(""), 400, "missing_payload", "A json payload is missing.".into()),
        ("POST", "/webhooks".into(), Some(r#"{"url":"not a url"}"#), 400, "invalid_webhook_url",
         "Invalid URL `not a url`: relative URL without a base".into()),
        ("POST", "/webhooks".into(), Some(r#"{"url":"http://"}"#), 400, "invalid_webhook_url",
         "Invalid URL `http://`: empty host".into()),
        ("POST", "/webhooks".into(), Some(r#"{"url":"https://e.com","uuid":"x"}"#), 400, "immutable_webhook_uuid",
         "Immutable field `uuid`: expected one of `url`, `headers`".into()),
        ("POST", "/webhooks".into(), Some(r#"{"url":"https://e.com","isEditable":true}"#), 400,
         "immutable_webhook_is_editable", "Immutable field `isEditable`: expected one of `url`, `headers`".into()),
        ("POST", "/webhooks".into(), Some(r#"{"urls":"x"}"#), 400, "bad_request",
         "Unknown field `urls`: did you mean `url`? expected one of `url`, `headers`".into()),
        ("POST", "/webhooks".into(), Some(r#"{"url":1}"#), 400, "invalid_webhook_url",
         "Invalid value type at `.url`: expected a string, but found a positive integer: `1`".into()),
        ("POST", "/webhooks".into(), Some(r#"{"url":1.5}"#), 400, "invalid_webhook_url",
         "Invalid value type at `.url`: expected a string, but found a number: `1.5`".into()),
        ("POST", "/webhooks".into(), Some(r#"{"url":"http://a","headers":"x"}"#), 400, "invalid_webhook_headers",
         "Invalid value type at `.headers`: expected an object, but found a string: `\"x\"`".into()),
        ("POST", "/webhooks".into(), Some(r#"{"url":"http://a","headers":{"a b":1}}"#), 400, "invalid_webhook_headers",
         "Invalid value type at `.headers.a b`: expected a string, but found a positive integer: `1`".into()),
        ("POST", "/webhooks".into(), Some(r#"{"url":"http://a","headers":{"bad name":"x"}}"#), 400, "invalid_webhook_headers",
         "Invalid header name `bad name`: invalid HTTP header name".into()),
        ("POST", "/webhooks".into(), Some("{\"url\":\"http://a\",\"headers\":{\"ok\":\"bad\\nvalue\"}}"), 400,
         "invalid_webhook_headers", "Invalid header value `ok`: failed to parse header value".into()),
        ("POST", "/webhooks".into(), Some("[]"), 400, "bad_request",
         "Invalid value type: expected an object, but found an array: `[]`".into()),
        ("POST", "/webhooks".into(), Some("null"), 400, "bad_request",
         "Invalid value type: expected an object, but found null".into()),
    ];
    for (method, path, body, code_status, code, message) in cases {
        let (status, answer) = send(&cluster, method, &path, body).await;
        assert_eq!(
            error(status, &answer),
            (code_status, code, message.as_str()),
            "{method} {path} {body:?}"
        );
    }
    let (status, body) = send(
        &cluster,
        "POST",
        "/webhooks",
        Some(r#"{"headers":{"a":"b"}}"#),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_webhook_url"))
    );
    assert!(body["message"].as_str().is_some_and(
        |m| m.starts_with("The URL for the webhook `") && m.ends_with("` is missing.")
    ));
    // A null header on creation is an empty value.
    let (status, body) = send(
        &cluster,
        "POST",
        "/webhooks",
        Some(r#"{"url":"https://e.com","headers":{"a":null}}"#),
    )
    .await;
    assert_eq!((status, &body["headers"]), (201, &json!({"a": ""})));
    // Content types.
    let response = cluster
        .http
        .post(format!("{}/webhooks", cluster.base))
        .header("authorization", format!("Bearer {MASTER_KEY}"))
        .header("content-type", "text/plain")
        .body(r#"{"url":"http://b"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 415);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["message"], "The Content-Type `text/plain` is invalid. Accepted values for the Content-Type header are: `application/json`");

    // Header limit.
    let many: Map<String, Value> = (0..=MAX_HEADERS)
        .map(|i| (format!("h{i}"), json!("v")))
        .collect();
    let (status, body) = send(
        &cluster,
        "POST",
        "/webhooks",
        Some(&json!({"url": "https://a", "headers": many}).to_string()),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_webhook_headers"))
    );
    assert!(body["message"].as_str().is_some_and(|m| m.ends_with("Please limit the number of headers to 200. Hint: To remove an already defined header set its value to `null`")));

    // At most 20 webhooks (two exist).
    for _ in 2..MAX_WEBHOOKS {
        let (status, _) = send(
            &cluster,
            "POST",
            "/webhooks",
            Some(r#"{"url":"https://a"}"#),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, body) = send(
        &cluster,
        "POST",
        "/webhooks",
        Some(r#"{"url":"https://a"}"#),
    )
    .await;
    assert_eq!(
        error(status, &body),
        (400, "invalid_webhooks", "Defining too many webhooks would crush the server. Please limit the number of webhooks to 20. You may use a third-party proxy server to dispatch events to more than 20 endpoints.")
    );

    // DELETE → 204 and gone.
    let response = cluster
        .http
        .delete(format!("{}/webhooks/{uuid}", cluster.base))
        .header("authorization", format!("Bearer {MASTER_KEY}"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 204);
    assert!(response.bytes().await.expect("body").is_empty());
    let (status, _) = send(&cluster, "GET", &format!("/webhooks/{uuid}"), None).await;
    assert_eq!(status, 404);
    let (_, list) = send(&cluster, "GET", "/webhooks", None).await;
    let uuids: Vec<&str> = list["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|w| w["uuid"].as_str())
        .collect();
    let mut sorted = uuids.clone();
    sorted.sort_unstable();
    assert_eq!(uuids, sorted, "in uuid order, as Meilisearch's map");
}

#[tokio::test]
async fn keys_need_the_webhook_rights_on_a_node() {
    let cluster = Cluster::start(1).await;
    let (status, body) = cluster.call("GET", "/webhooks", &[], None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("missing_authorization_header"))
    );
    let tasks_only = format!("Bearer {TASKS_ONLY_KEY}");
    let (status, _) = cluster
        .call("GET", "/tasks", &[("authorization", &tasks_only)], None)
        .await;
    assert_eq!(status, 200, "the key may read tasks");
    for (method, path) in [
        ("GET", "/webhooks"),
        ("POST", "/webhooks"),
        ("PATCH", "/webhooks/aebd546a-1ad1-4541-8316-6c3c327502a1"),
        ("DELETE", "/webhooks/aebd546a-1ad1-4541-8316-6c3c327502a1"),
    ] {
        let (status, body) = cluster
            .call(
                method,
                path,
                &[("authorization", &tasks_only)],
                Some(json!({"url": "https://a"})),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("invalid_api_key")),
            "{method} {path}"
        );
    }
    assert!(cluster.app.store.webhooks().await.expect("list").is_empty());
}

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, Bytes)>>>);

async fn receive(State(r): State<Received>, headers: HeaderMap, body: Bytes) -> &'static str {
    r.0.lock().expect("lock").push((headers, body));
    "ok"
}

async fn receiver() -> (String, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let router = Router::new()
        .route("/hook", post(receive))
        .with_state(received.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, received)
}

#[tokio::test]
async fn a_finished_task_is_sent_to_every_webhook_once() {
    let cluster = Cluster::start(2).await;
    let (url_a, got_a) = receiver().await;
    let (url_b, got_b) = receiver().await;
    for (url, extra) in [(&url_a, "a"), (&url_b, "b")] {
        let body = json!({"url": url, "headers": {"Authorization": "Bearer hook-secret", "X-Which": extra}});
        let (status, _) = send(&cluster, "POST", "/webhooks", Some(&body.to_string())).await;
        assert_eq!(status, 201);
    }
    for node in &cluster.nodes {
        node.put(node_task(5, "enqueued", 2));
    }
    let registration = json!({"record": {"indexUid": "movies", "type": "documentAdditionOrUpdate",
        "details": {"receivedDocuments": 4}, "copies": 1, "customMetadata": "run-7",
        "nodeTasks": [{"node": "n0", "group": "g0", "taskUid": 5}, {"node": "n1", "group": "g0", "taskUid": 5}]}});
    let (status, body) = cluster
        .filter("/_miroir/internal/tasks", registration)
        .await;
    assert_eq!(status, 201, "{body}");
    let uid = body["taskUid"].as_u64().expect("uid");

    // One node finished: not yet.
    cluster.nodes[0].set_status(5, "succeeded");
    crate::tasks::registry::poll_pending(&cluster.app)
        .await
        .expect("poll");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        got_a.0.lock().expect("lock").is_empty(),
        "never once per node task"
    );

    cluster.nodes[1].set_status(5, "succeeded");
    // A read and the poller race to see it finish: one notification still.
    let path = format!("/tasks/{uid}");
    let (read, polled) = tokio::join!(
        cluster.client("GET", &path),
        crate::tasks::registry::poll_pending(&cluster.app)
    );
    assert_eq!(read.0, 200);
    polled.expect("poll");
    for got in [&got_a, &got_b] {
        let got = got.clone();
        eventually("the webhook call", || {
            let n = got.0.lock().expect("lock").len();
            async move { n >= 1 }
        })
        .await;
    }
    crate::tasks::registry::poll_pending(&cluster.app)
        .await
        .expect("poll");
    let _ = cluster.client("GET", &format!("/tasks/{uid}")).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let (_, task) = cluster.client("GET", &format!("/tasks/{uid}")).await;
    assert_eq!(task["customMetadata"], "run-7");
    for (got, which) in [(&got_a, "a"), (&got_b, "b")] {
        let calls = got.0.lock().expect("lock").clone();
        assert_eq!(calls.len(), 1, "webhook {which} called once");
        let (headers, body) = &calls[0];
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        assert_eq!(header("content-encoding").as_deref(), Some("gzip"));
        assert_eq!(
            header("content-type").as_deref(),
            Some("application/x-ndjson")
        );
        assert_eq!(
            header("authorization").as_deref(),
            Some("Bearer hook-secret"),
            "unredacted"
        );
        assert_eq!(header("x-which").as_deref(), Some(which));
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .expect("gzip of utf-8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert!(text.ends_with('\n'));
        assert_eq!(lines, vec![task.clone()], "the cluster-wide task object");
        assert_eq!(lines[0]["status"], "succeeded");
    }
}

#[tokio::test]
async fn an_unreachable_webhook_does_not_hold_the_poller() {
    let cluster = Cluster::start(1).await;
    // Accepts connections, never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let (status, _) = send(
        &cluster,
        "POST",
        "/webhooks",
        Some(&json!({"url": url}).to_string()),
    )
    .await;
    assert_eq!(status, 201);
    cluster.nodes[0].put(node_task(1, "enqueued", 1));
    let registration = json!({"record": {"indexUid": "movies", "type": "documentAdditionOrUpdate",
        "nodeTasks": [{"node": "n0", "group": "g0", "taskUid": 1}]}});
    let (status, _) = cluster
        .filter("/_miroir/internal/tasks", registration)
        .await;
    assert_eq!(status, 201);
    cluster.nodes[0].set_status(1, "succeeded");
    let started = std::time::Instant::now();
    let finished = crate::tasks::registry::poll_pending(&cluster.app)
        .await
        .expect("poll");
    assert_eq!(finished, 1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

//! Bounded work per request, Miroir's fields out of clients' reach, and static task reads with
//! the client's key, through a real Envoy (issue 10). Run against real Meilisearch with
//! `MEILISEARCH_BIN=... cargo test -p miroir-e2e --test limits`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use miroir_e2e::Cluster;
use serde_json::{json, Value};
use support::{add_in_batches, corpus, create_movies, three_nodes, wait_task, with_reference};

#[test]
fn caps_are_meilisearch_shaped_errors_and_reach_no_node() {
    let cluster = Cluster::start("limits_caps", three_nodes(1));
    let client = cluster.client();
    create_movies(&client);
    add_in_batches(&client, &corpus(30), 30);

    let queries: Vec<Value> = (0..101).map(|_| json!({"indexUid": "movies"})).collect();
    for body in [
        json!({ "queries": queries }),
        json!({ "federation": {}, "queries": queries }),
    ] {
        let (status, error) = client.post("/multi-search", &body).pair();
        assert_eq!(status, 400, "{error}");
        assert_eq!(error["code"], "miroir_too_many_search_queries");
        assert_eq!(error["type"], "invalid_request");
    }
    let queries: Vec<Value> = (0..100).map(|_| json!({"indexUid": "movies"})).collect();
    let (status, answer) = client
        .post("/multi-search", &json!({ "queries": queries }))
        .pair();
    assert_eq!(status, 200, "100 queries run: {answer}");

    let (status, error) = client
        .get("/indexes/movies/documents?offset=10000&limit=1")
        .pair();
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["code"], "miroir_documents_window_too_large");
    let (status, error) = client
        .post(
            "/indexes/movies/documents/fetch",
            &json!({"offset": 9990, "limit": 11}),
        )
        .pair();
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("miroir_documents_window_too_large"))
    );
    let (status, page) = client
        .get("/indexes/movies/documents?offset=9990&limit=10")
        .pair();
    assert_eq!(status, 200, "a window at the cap is listed: {page}");
    assert_eq!(page["total"], 30);

    let mut csv = String::from("id,title\n");
    for i in 0..=1_000_000u32 {
        csv.push_str(&format!("{i},t\n"));
    }
    let reply = client.send(
        "POST",
        "/indexes/movies/documents",
        Some(("text/csv", csv.as_bytes())),
    );
    let (status, error) = reply.pair();
    assert_eq!(status, 413, "{error}");
    assert_eq!(error["code"], "miroir_too_many_csv_rows");
    let (_, stats) = client.get("/indexes/movies/stats").pair();
    assert_eq!(stats["numberOfDocuments"], 30, "nothing was written");
}

/// Sends request headers announcing a large body and none of it; the status Envoy answered
/// The connection stays open (returned) so its body stays in flight; replies are read within
/// `wait`.
fn announce_large_body(url: &str, key: &str, wait: Duration) -> TcpStream {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect to Envoy");
    let head = format!(
        "POST /indexes/movies/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 99000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("write headers");
    stream.set_read_timeout(Some(wait)).expect("timeout");
    stream
}

fn read_reply(stream: &mut TcpStream) -> Option<String> {
    let mut buffer = vec![0u8; 4096];
    let n = stream.read(&mut buffer).ok()?;
    (n > 0).then(|| String::from_utf8_lossy(&buffer[..n]).into_owned())
}

#[test]
fn a_worker_holding_its_budget_of_large_bodies_refuses_more_with_503_and_retry_after() {
    let cluster = Cluster::start("limits_large_bodies", three_nodes(1));
    let key = cluster.master_key().to_string();
    // Envoy runs two workers: of five bodies of 99 MB in flight, one worker holds at least three,
    // and its budget (200 MB) holds two.
    let mut streams: Vec<TcpStream> = (0..5)
        .map(|_| announce_large_body(&cluster.envoy_url(), &key, Duration::from_secs(3)))
        .collect();
    let replies: Vec<Option<String>> = streams.iter_mut().map(read_reply).collect();
    let refused: Vec<&String> = replies.iter().flatten().collect();
    assert!(!refused.is_empty(), "no body was refused: {replies:?}");
    for reply in &refused {
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
        assert!(
            reply.to_ascii_lowercase().contains("retry-after: 10"),
            "{reply}"
        );
        assert!(reply.contains("miroir_too_many_large_bodies"), "{reply}");
    }
    assert!(
        refused.len() <= 3,
        "at most one per worker past two: {replies:?}"
    );
    drop(streams);
    // Their room is given back once the requests are gone.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..4 {
        let mut stream =
            announce_large_body(&cluster.envoy_url(), &key, Duration::from_millis(500));
        assert_eq!(read_reply(&mut stream), None, "admitted again");
    }
    let log = cluster.envoy_log();
    assert!(
        !log.contains("panicked") && !log.contains("Uncaught"),
        "{log}"
    );
}

#[test]
fn miroirs_fields_cannot_be_named_in_settings_or_editions_and_filters_read_as_one_nodes() {
    let (cluster, single) = with_reference("limits_reserved_fields", three_nodes(1), |client| {
        create_movies(client);
        add_in_batches(client, &corpus(20), 20);
    });
    let client = cluster.client();
    for (method, path, body) in [
        (
            "PATCH",
            "/indexes/movies/settings",
            json!({"searchableAttributes": ["title", "_miroir_shard"]}),
        ),
        (
            "PATCH",
            "/indexes/movies/settings",
            json!({"rankingRules": ["words", "_miroir_seq:asc"]}),
        ),
        (
            "PUT",
            "/indexes/movies/settings/sortable-attributes",
            json!(["_miroir_seq"]),
        ),
        (
            "PUT",
            "/indexes/movies/settings/filterable-attributes",
            json!(["genre", "_miroir_*"]),
        ),
    ] {
        let (status, error) = client.send_json(method, path, &body).pair();
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["code"], "miroir_reserved_field", "{body}");
    }
    let (status, error) = client
        .post(
            "/indexes/movies/documents/edit",
            &json!({"function": "doc._miroir_shard = \"....\""}),
        )
        .pair();
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("miroir_reserved_field")),
        "{error}"
    );

    // A filter naming `_miroir_shard` is refused as one node refuses an unknown attribute.
    let cases = [
        (
            "/indexes/movies/search",
            json!({"filter": "_miroir_shard = 1"}),
        ),
        (
            "/indexes/movies/search",
            json!({"filter": ["genre = drama", ["_miroir_seq = 2", "year > 1"]]}),
        ),
        (
            "/indexes/movies/facet-search",
            json!({"facetName": "genre", "filter": "_miroir_shard EXISTS"}),
        ),
        (
            "/indexes/movies/documents/fetch",
            json!({"filter": "_miroir_shard = 1"}),
        ),
        (
            "/multi-search",
            json!({"queries": [{"indexUid": "movies"}, {"indexUid": "movies", "filter": "_miroir_shard = 1"}]}),
        ),
    ];
    for (path, body) in cases {
        let sharded = client.post(path, &body).pair();
        let one = single.client().post(path, &body).pair();
        assert_eq!(sharded.0, 400, "{path} {body}: {}", sharded.1);
        assert_eq!(sharded, one, "{path} {body}");
    }
    // A deletion by such a filter deletes nothing (one node's task fails, its filter refused).
    let (status, enqueued) = client
        .post(
            "/indexes/movies/documents/delete",
            &json!({"filter": "_miroir_shard EXISTS"}),
        )
        .pair();
    if status == 202 {
        let uid = enqueued["taskUid"].as_u64().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, task) = client.get(&format!("/tasks/{uid}")).pair();
            if matches!(task["status"].as_str(), Some("succeeded" | "failed")) {
                if let Some(message) = task["error"]["message"].as_str() {
                    assert!(!message.contains("_miroir-"), "stand-in shown: {message}");
                }
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{task}");
            std::thread::sleep(Duration::from_millis(50));
        }
    } else {
        assert_eq!(status, 400, "{enqueued}");
    }
    let (_, stats) = client.get("/indexes/movies/stats").pair();
    assert_eq!(stats["numberOfDocuments"], 20, "no document was deleted");
}

#[test]
fn a_static_task_read_is_scoped_by_the_clients_key() {
    // The test node does not scope task reads by a key's indexes: Meilisearch's behaviour.
    if std::env::var_os("MEILISEARCH_BIN").is_none_or(|v| v.is_empty()) {
        eprintln!("skipped: needs MEILISEARCH_BIN (real Meilisearch)");
        return;
    }
    let cluster = Cluster::start("limits_task_scope", three_nodes(1));
    let client = cluster.client();
    create_movies(&client);
    support::write(
        &client,
        "POST",
        "/indexes",
        &json!({"uid": "other", "primaryKey": "id"}),
    );
    let (status, enqueued) = client
        .post(
            "/indexes/movies/documents",
            &json!([{"id": 1, "title": "a"}]),
        )
        .pair();
    assert_eq!(status, 202, "{enqueued}");
    wait_task(&client, &enqueued);
    let uid = enqueued["taskUid"].as_u64().unwrap();

    let (status, key) = client
        .post(
            "/keys",
            &json!({"uid": "0f2b1a4e-5c3d-4e6f-8a9b-0c1d2e3f4a5b", "actions": ["tasks.get"], "indexes": ["other"], "expiresAt": null}),
        )
        .pair();
    assert_eq!(status, 201, "{key}");
    let scoped = cluster.client().with_key(key["key"].as_str().unwrap());
    let (status, error) = scoped.get(&format!("/tasks/{uid}")).pair();
    assert_eq!(
        (status, error),
        (
            404,
            json!({"message": format!("Task `{uid}` not found."), "code": "task_not_found", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#task_not_found"})
        ),
        "a key that cannot see `movies` does not see its task, as on one Meilisearch"
    );
    let (status, _) = client.get(&format!("/tasks/{uid}")).pair();
    assert_eq!(status, 200, "the master key sees it");
    let (status, error) = cluster
        .client()
        .with_key("not-a-key")
        .get(&format!("/tasks/{uid}"))
        .pair();
    assert_eq!(
        (status, error["code"].as_str()),
        (403, Some("invalid_api_key"))
    );
}

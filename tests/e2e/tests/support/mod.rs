//! What the scenarios share: a corpus, and waiting for tasks the way an SDK does.

#![allow(dead_code)]

pub mod load;

use std::time::{Duration, Instant};

use miroir_e2e::{Client, Cluster, Spec};
use serde_json::{json, Value};

const GENRES: [&str; 5] = ["drama", "comedy", "action", "horror", "documentary"];
const WORDS: [&str; 8] = [
    "river", "city", "night", "garden", "storm", "winter", "mirror", "road",
];

/// `n` documents with an integer id, a keyword unique to each (`kw0042`), text whose match
/// quality for the query `mirror road` varies, a genre and a year.
pub fn corpus(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let words: Vec<&str> = (0..(1 + i % 5))
                .map(|k| WORDS[(i * 7 + k * 3) % WORDS.len()])
                .collect();
            json!({
                "id": i,
                "title": format!("{} kw{i:04}", words.join(" ")),
                "genre": GENRES[i % GENRES.len()],
                "year": 1950 + (i * 13) % 70,
            })
        })
        .collect()
}

/// Polls `GET /tasks/{uid}` until the task is finished, as SDKs' `waitForTask` does.
pub fn wait_task(client: &Client, enqueued: &Value) -> Value {
    let uid = enqueued["taskUid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no taskUid in {enqueued}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, task) = client.get(&format!("/tasks/{uid}")).pair();
        assert_eq!(status, 200, "GET /tasks/{uid}: {task}");
        match task["status"].as_str() {
            Some("succeeded") => return task,
            Some("failed") | Some("canceled") => panic!("task {uid} did not succeed: {task}"),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "task {uid} still {task} after 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends a write and waits for its task; panics unless it was accepted and succeeded.
pub fn write(client: &Client, method: &str, path: &str, body: &Value) -> Value {
    let reply = if body.is_null() {
        client.send(method, path, None)
    } else {
        client.send_json(method, path, body)
    };
    let (status, enqueued) = reply.pair();
    assert_eq!(status, 202, "{method} {path}: {enqueued}");
    wait_task(client, &enqueued)
}

/// Creates `movies` with `genre` and `year` filterable and typos off (the keyword search must
/// match exactly one document on real Meilisearch too).
pub fn create_movies(client: &Client) {
    write(
        client,
        "POST",
        "/indexes",
        &json!({"uid": "movies", "primaryKey": "id"}),
    );
    write(
        client,
        "PATCH",
        "/indexes/movies/settings",
        &json!({"filterableAttributes": ["genre", "year"], "typoTolerance": {"enabled": false}}),
    );
}

/// Adds `docs` in batches of `batch` and waits for each.
pub fn add_in_batches(client: &Client, docs: &[Value], batch: usize) {
    for chunk in docs.chunks(batch) {
        write(
            client,
            "POST",
            "/indexes/movies/documents",
            &Value::Array(chunk.to_vec()),
        );
    }
}

/// Every document a node stores (read straight from the node).
pub fn stored(node: &Client) -> Vec<Value> {
    let (status, page) = node.get("/indexes/movies/documents?limit=100000").pair();
    assert_eq!(status, 200, "{page}");
    page["results"].as_array().cloned().unwrap_or_default()
}

/// Three nodes in one replica group, 8 shards, `rf` copies of each.
pub fn three_nodes(rf: u32) -> Spec {
    Spec::new(&[("n0", "g"), ("n1", "g"), ("n2", "g")], 8, rf)
}

/// A sharded cluster and one node holding everything (`<name>_single`), both prepared by
/// `setup` alike: the reference for "answers like one node".
pub fn with_reference(name: &str, spec: Spec, setup: impl Fn(&Client)) -> (Cluster, Cluster) {
    let cluster = Cluster::start(name, spec);
    let single = Cluster::single_node(&format!("{name}_single"));
    for target in [cluster.client(), single.client()] {
        setup(&target);
    }
    (cluster, single)
}

//! Writes through a real Envoy: documents land on their owners only, and a bad batch lands nowhere.

mod support;

use std::collections::BTreeMap;

use miroir_e2e::{Cluster, Spec};
use miroir_topology::canonical_key;
use miroir_topology::reserved::encode_shard;
use serde_json::{json, Value};
use support::{add_in_batches, corpus, create_movies, stored, three_nodes};

/// Scenario 1, with two replicas in one group and a second group: every document is on exactly
/// its write targets (the RF owners in every group) and nowhere else.
#[test]
fn documents_are_stored_exactly_on_their_owners() {
    let cluster = Cluster::start(
        "writes_on_owners",
        Spec::new(
            &[
                ("a0", "a"),
                ("a1", "a"),
                ("a2", "a"),
                ("b0", "b"),
                ("b1", "b"),
            ],
            12,
            2,
        ),
    );
    let client = cluster.client();
    create_movies(&client);
    add_in_batches(&client, &corpus(1000), 250);

    let topology = cluster.topology();
    let mut copies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in cluster.node_ids() {
        for doc in stored(&cluster.node_client(&node)) {
            let id = canonical_key(&doc["id"]).unwrap();
            let shard = topology.shard_for_key(&id);
            assert_eq!(doc["_miroir_shard"], json!(encode_shard(shard)), "{doc}");
            copies.entry(id).or_default().push(node.clone());
        }
    }
    assert_eq!(copies.len(), 1000, "every document is stored somewhere");
    for (id, mut holders) in copies {
        holders.sort();
        let mut owners: Vec<String> = topology
            .write_targets(topology.shard_for_key(&id))
            .iter()
            .map(|n| n.id.clone())
            .collect();
        owners.sort();
        assert_eq!(holders, owners, "document {id}");
    }
}

/// Scenario 5: one document without the primary key rejects the whole batch before any node
/// sees it.
#[test]
fn a_batch_with_a_bad_document_is_rejected_whole() {
    let cluster = Cluster::start("writes_rejected_whole", three_nodes(1));
    let client = cluster.client();
    create_movies(&client);
    let tasks_before = node_task_counts(&cluster);

    let mut docs = corpus(50);
    docs[37] = json!({"title": "no id here", "genre": "drama"});
    let (status, error) = client
        .post("/indexes/movies/documents", &Value::Array(docs))
        .pair();
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["code"], "miroir_primary_key_required");
    assert_eq!(error["type"], "invalid_request");
    assert_eq!(
        error["link"],
        "https://docs.meilisearch.com/errors#miroir_primary_key_required"
    );
    assert!(
        error["message"].as_str().unwrap().contains("position 37"),
        "{error}"
    );

    let (status, error) = client
        .post(
            "/indexes/movies/documents",
            &json!([{"id": 1, "_miroir_shard": 0}]),
        )
        .pair();
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("miroir_reserved_field"))
    );

    cluster.wait_all_nodes_idle();
    assert_eq!(
        node_task_counts(&cluster),
        tasks_before,
        "no node got a task"
    );
    for node in cluster.node_ids() {
        assert!(
            stored(&cluster.node_client(&node)).is_empty(),
            "{node} holds documents"
        );
    }
}

fn node_task_counts(cluster: &Cluster) -> Vec<u64> {
    cluster
        .node_ids()
        .iter()
        .map(|id| {
            let (status, tasks) = cluster.node_client(id).get("/tasks?limit=1").pair();
            assert_eq!(status, 200, "{tasks}");
            tasks["total"].as_u64().unwrap()
        })
        .collect()
}

/// The same JSON, NDJSON and CSV requests stored through Miroir and on one node give the same
/// documents, types included, plus `_miroir_shard`.
#[test]
fn every_payload_format_stores_what_one_node_stores() {
    let cluster = Cluster::start("writes_formats", three_nodes(1));
    let single = Cluster::single_node("writes_formats_single");
    let ndjson = (0..40)
        .map(|i| json!({"id": i, "title": format!("ndjson {i}"), "tags": ["a", i.to_string()], "score": i as f64 / 4.0}).to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let csv = std::iter::once("id:number;title;rating:number;available:boolean;code".to_string())
        .chain((40..80).map(|i| format!("{i};\"csv; {i}\";{}.5;{};00{i}", i % 9, i % 2 == 0)))
        .collect::<Vec<_>>()
        .join("\n");
    for target in [cluster.client(), single.client()] {
        let requests: [(&str, &str, &str, Vec<u8>); 3] = [
            (
                "POST",
                "/indexes/movies/documents?primaryKey=id",
                "application/x-ndjson",
                ndjson.clone().into_bytes(),
            ),
            (
                "POST",
                "/indexes/movies/documents?csvDelimiter=%3B",
                "text/csv",
                csv.clone().into_bytes(),
            ),
            (
                "PUT",
                "/indexes/movies/documents",
                "application/json",
                json!([{"id": 3, "extra": {"nested": true}}, {"id": 41, "title": null}])
                    .to_string()
                    .into_bytes(),
            ),
        ];
        for (method, path, content_type, body) in requests {
            let (status, enqueued) = target
                .send(method, path, Some((content_type, &body)))
                .pair();
            assert_eq!(status, 202, "{method} {path}: {enqueued}");
            support::wait_task(&target, &enqueued);
        }
    }
    let mut sharded: BTreeMap<String, Value> = BTreeMap::new();
    for node in cluster.node_ids() {
        for mut doc in stored(&cluster.node_client(&node)) {
            let fields = doc.as_object_mut().unwrap();
            assert!(fields.shift_remove("_miroir_shard").is_some());
            // Partial updates that create a document stamp no sequence number.
            fields.shift_remove("_miroir_seq");
            assert!(
                fields.shift_remove("_miroir_version").is_some(),
                "every write stamps a version"
            );
            sharded.insert(canonical_key(&doc["id"]).unwrap(), doc);
        }
    }
    let reference: BTreeMap<String, Value> = stored(&single.client())
        .into_iter()
        .map(|doc| (canonical_key(&doc["id"]).unwrap(), doc))
        .collect();
    assert_eq!(sharded.len(), 80);
    assert_eq!(sharded, reference);
}

/// Meilisearch takes payloads up to 100 MB: a 20 MB NDJSON batch goes through Envoy and the filter
/// whole, and one byte over the limit gets Meilisearch's 413 before any node sees it.
#[test]
fn large_batches_are_accepted_up_to_meilisearchs_payload_limit() {
    let cluster = Cluster::start("writes_large", three_nodes(1));
    let client = cluster.client();

    let mut body = Vec::new();
    let mut count = 0u64;
    while body.len() < 20_000_000 {
        let doc = json!({"id": count, "title": "large batch ".repeat(40), "n": count});
        body.extend_from_slice(doc.to_string().as_bytes());
        body.push(b'\n');
        count += 1;
    }
    let reply = client.send(
        "POST",
        "/indexes/large/documents",
        Some(("application/x-ndjson", &body)),
    );
    let (status, task) = reply.pair();
    assert_eq!(status, 202, "{task}");
    cluster.wait_all_nodes_idle();
    let (status, stats) = client.get("/indexes/large/stats").pair();
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["numberOfDocuments"], json!(count), "{stats}");

    // Envoy answers as soon as the headers announce too much and closes the connection, so the
    // client announces the size and waits for the answer instead of writing 100 MB into a reset.
    let before = node_task_counts(&cluster);
    let (status, error) = announce_only(&cluster, "/indexes/large/documents", 100_000_001);
    assert_eq!(status, 413, "{error}");
    assert_eq!(
        error,
        json!({
            "message": "The provided payload reached the size limit. The maximum accepted payload size is 95.367431640625 MiB.",
            "code": "payload_too_large",
            "type": "invalid_request",
            "link": "https://docs.meilisearch.com/errors#payload_too_large"
        })
    );
    assert_eq!(
        node_task_counts(&cluster),
        before,
        "no node saw the request"
    );
}

/// Sends only a request's headers, announcing `length` bytes of NDJSON, and reads the answer.
fn announce_only(cluster: &Cluster, path: &str, length: u64) -> (u16, Value) {
    use std::io::{Read, Write};
    let address = cluster
        .envoy_url()
        .trim_start_matches("http://")
        .to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {}\r\ncontent-type: application/x-ndjson\r\ncontent-length: {length}\r\n\r\n",
        cluster.master_key()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

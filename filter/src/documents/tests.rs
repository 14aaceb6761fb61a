use miroir_topology::{Node, NodeState};
use serde_json::json;

use super::*;
use miroir_topology::reserved::{decode_seq, encode_shard};

fn json_batch(v: serde_json::Value) -> Batch {
    parse_batch(Some("application/json"), None, v.to_string().as_bytes()).unwrap()
}

fn len(batch: &Batch) -> usize {
    match batch {
        Batch::Json(docs) => docs.len(),
        Batch::Csv { rows, .. } => rows.len(),
    }
}

fn topology() -> Topology {
    Topology {
        epoch: 1,
        shards: 8,
        replication_factor: 1,
        nodes: ["n0", "n1"]
            .iter()
            .map(|id| Node {
                id: id.to_string(),
                address: "h:1".into(),
                group: "g".into(),
                state: NodeState::Active,
            })
            .collect(),
    }
}

#[test]
fn accepts_an_array_or_a_single_object() {
    assert_eq!(len(&json_batch(json!([{"id": 1}, {"id": 2}]))), 2);
    assert_eq!(len(&json_batch(json!({"id": 1}))), 1);
    assert_eq!(
        len(&parse_batch(Some("application/json; charset=utf-8"), None, b"[]").unwrap()),
        0
    );
}

#[test]
fn ndjson_describes_the_same_documents_as_json() {
    let ndjson = parse_batch(
        Some("application/x-ndjson"),
        None,
        b"{\"id\": 1, \"a\": [1]}\n\n{\"id\": \"x\"}\n",
    )
    .unwrap();
    assert_eq!(
        ndjson,
        json_batch(json!([{"id": 1, "a": [1]}, {"id": "x"}]))
    );
    let err = parse_batch(Some("application/x-ndjson"), None, b"{\"id\": 1}\n{oops").unwrap_err();
    assert_eq!(err.code, "malformed_payload");
    assert!(
        err.message
            .starts_with("The `ndjson` payload provided is malformed."),
        "{}",
        err.message
    );
}

#[test]
fn malformed_payloads_use_meilisearchs_codes() {
    let err = parse_batch(Some("application/json"), None, b"[{\"id\": 1").unwrap_err();
    assert_eq!((err.status, err.code), (400, "malformed_payload"));
    assert!(err
        .message
        .starts_with("The `json` payload provided is malformed."));
    let err = parse_batch(Some("application/json"), None, b"[1, 2]").unwrap_err();
    assert_eq!(err.code, "malformed_payload");
    let err = parse_batch(Some("application/json"), None, b"  ").unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        ("missing_payload", "A json payload is missing.")
    );
    let err = parse_batch(Some("text/plain"), None, b"[]").unwrap_err();
    assert_eq!(
        err.message,
        "The Content-Type `text/plain` is invalid. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`"
    );
    let err = parse_batch(Some("text/csv"), Some(";;"), b"id\n1\n").unwrap_err();
    assert_eq!(err.code, "invalid_document_csv_delimiter");
}

#[test]
fn infers_the_primary_key_like_meilisearch() {
    assert_eq!(
        infer_primary_key(&json_batch(json!([{"title": "x", "movieId": 1}]))).unwrap(),
        "movieId"
    );
    let none = infer_primary_key(&json_batch(json!([{"title": "x"}]))).unwrap_err();
    assert_eq!(none.code, "index_primary_key_no_candidate_found");
    let many = infer_primary_key(&json_batch(json!([{"id": 1, "uid": 2}]))).unwrap_err();
    assert_eq!(many.code, "index_primary_key_multiple_candidates_found");
    let csv = parse_batch(Some("text/csv"), None, b"title,bookId:number\nx,1\n").unwrap();
    assert_eq!(infer_primary_key(&csv).unwrap(), "bookId");
}

#[test]
fn validates_ids_and_returns_them_canonically() {
    let ids = validate(
        &json_batch(json!([{"id": 1}, {"id": "a-b_C9"}, {"id": -3}])),
        "id",
    )
    .unwrap();
    assert_eq!(ids, ["1", "a-b_C9", "-3"]);
    let nested = validate(&json_batch(json!([{"info": {"ref": "x1"}}])), "info.ref").unwrap();
    assert_eq!(nested, ["x1"]);
    let long = "a".repeat(512);
    assert_eq!(
        validate(&json_batch(json!([{"id": long}])), "id")
            .unwrap_err()
            .code,
        "invalid_document_id"
    );
    assert_eq!(
        validate(&json_batch(json!([{"id": ""}])), "id")
            .unwrap_err()
            .code,
        "invalid_document_id"
    );
    assert_eq!(
        validate(&json_batch(json!([{"id": true}])), "id")
            .unwrap_err()
            .code,
        "invalid_document_id"
    );
}

#[test]
fn csv_ids_follow_the_column_type() {
    let csv = parse_batch(Some("text/csv"), None, b"id:number,title\n007,a\n-2,b\n").unwrap();
    assert_eq!(
        validate(&csv, "id").unwrap(),
        ["7", "-2"],
        "a typed number is its integer"
    );
    let csv = parse_batch(Some("text/csv"), None, b"id,title\n007,a\n").unwrap();
    assert_eq!(
        validate(&csv, "id").unwrap(),
        ["007"],
        "an untyped id is a string"
    );
    let csv = parse_batch(Some("text/csv"), None, b"id,title\n,a\n").unwrap();
    assert_eq!(
        validate(&csv, "id").unwrap_err().code,
        "miroir_primary_key_required"
    );
    let csv = parse_batch(Some("text/csv"), None, b"id:number,title\n1.5,a\n").unwrap();
    assert_eq!(
        validate(&csv, "id").unwrap_err().code,
        "invalid_document_id"
    );
    let csv = parse_batch(Some("text/csv"), None, b"id,_miroir_shard\n1,2\n").unwrap();
    assert_eq!(
        validate(&csv, "id").unwrap_err().code,
        "miroir_reserved_field"
    );
}

#[test]
fn csv_rows_travel_as_csv_with_their_shard_and_sequence() {
    let t = topology();
    let body = b"id:number;title;rating:number\n1;\"Carol; the film\";7.2\n2;Moana;7.6\n3;Pi;7.9\n";
    let csv = parse_batch(Some("text/csv"), Some(";"), body).unwrap();
    let ids = validate(&csv, "id").unwrap();
    let parts = partition(&t, csv, &ids, Some(40));
    let mut rows = Vec::new();
    for part in parts.values() {
        assert_eq!(part.content_type, "text/csv");
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .from_reader(part.body.as_slice());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(
            header,
            [
                "id:number",
                "title",
                "rating:number",
                "_miroir_shard",
                "_miroir_seq"
            ]
        );
        for record in reader.records() {
            let record = record.unwrap();
            let id = record.get(0).unwrap().to_string();
            assert_eq!(
                record.get(3),
                Some(encode_shard(t.shard_for_key(&id)).as_str())
            );
            let seq = decode_seq(record.get(4).unwrap()).unwrap();
            rows.push((id, record.get(1).unwrap().to_string(), seq));
        }
    }
    rows.sort();
    assert_eq!(
        rows,
        [
            ("1".to_string(), "Carol; the film".to_string(), 40),
            ("2".to_string(), "Moana".to_string(), 41),
            ("3".to_string(), "Pi".to_string(), 42)
        ]
    );
}

#[test]
fn json_documents_are_stamped_with_their_shard() {
    let t = topology();
    let batch = json_batch(json!([{"id": 1, "t": "a"}, {"id": "1", "t": "b"}]));
    let ids = validate(&batch, "id").unwrap();
    let parts = partition(&t, batch, &ids, None);
    assert_eq!(
        parts.len(),
        1,
        "1 and \"1\" are the same document, on the same node"
    );
    let docs: serde_json::Value =
        serde_json::from_slice(&parts.values().next().unwrap().body).unwrap();
    let shard = encode_shard(t.shard_for_key("1"));
    assert_eq!(
        docs,
        json!([{"id": 1, "t": "a", "_miroir_shard": shard}, {"id": "1", "t": "b", "_miroir_shard": shard}]),
        "a partial update carries no sequence number"
    );
}

use std::collections::BTreeMap;

use miroir_topology::{Node, NodeState};
use serde_json::json;

use super::*;
use crate::plan::partition::{Partition, Stamps};
use miroir_topology::reserved::{decode_seq, encode_seq, encode_shard, version_of};
use miroir_topology::Topology;

fn parse(content_type: &str, body: &[u8]) -> Result<Batch, MeiliError> {
    parse_batch(Some(content_type), None, body)
}

fn topology() -> Topology {
    Topology {
        epoch: 1,
        shards: 8,
        shard_map: Default::default(),
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

/// Every node's body, as the write sends them: validated with `id`, then split.
fn split(
    t: &Topology,
    content_type: &str,
    body: &[u8],
    first_seq: Option<u64>,
) -> BTreeMap<String, (&'static str, String)> {
    let batch = parse(content_type, body).unwrap();
    let shards = validate(&batch, body, "id", |id| t.shard_for_key(&id)).unwrap();
    parts(&Partition::new(t, &batch, body, &shards, stamps(first_seq)))
}

/// Numbers from `first_seq` as a replacement stamps them; a partial update's (no sequence
/// number) from 0 without it.
fn stamps(first_seq: Option<u64>) -> Stamps {
    Stamps {
        first: first_seq.unwrap_or(0),
        seq: first_seq.is_some(),
    }
}

/// The version member stamped on the document at `position` of a batch stamped from 0.
fn version(position: u64) -> String {
    format!(r#","_miroir_version":"{}""#, encode_seq(position))
}

fn parts(split: &Partition) -> BTreeMap<String, (&'static str, String)> {
    split
        .nodes()
        .map(|node| {
            let mut body = Vec::new();
            let content_type = split.write(node, &mut body);
            if content_type != "text/csv" {
                assert!(
                    body.len() <= split.largest(),
                    "one allocation holds any part"
                );
            }
            (
                node.clone(),
                (content_type, String::from_utf8(body).unwrap()),
            )
        })
        .collect()
}

/// What a node stores from its body, whatever the layout.
fn stored(content_type: &str, body: &str) -> Vec<serde_json::Value> {
    match content_type {
        "application/x-ndjson" => body
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect(),
        _ => serde_json::from_str(body).unwrap(),
    }
}

#[test]
fn accepts_an_array_or_a_single_object() {
    assert_eq!(
        parse("application/json", br#"[{"id": 1}, {"id": 2}]"#)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        parse("application/json", br#" {"id": 1} "#).unwrap().len(),
        1
    );
    assert!(parse("application/json; charset=utf-8", b"[]")
        .unwrap()
        .is_empty());
    let t = topology();
    let single = split(&t, "application/json", b"{\"id\": 1}\n", None);
    let (content_type, body) = single.values().next().unwrap();
    assert_eq!(*content_type, "application/json");
    let shard = encode_shard(t.shard_for_key("1"));
    assert_eq!(
        *body,
        format!(r#"[{{"id": 1,"_miroir_shard":"{shard}"{}}}]"#, version(0)),
        "one object is sent as an array of one"
    );
}

#[test]
fn ndjson_travels_as_ndjson_with_the_same_documents_as_json() {
    let t = topology();
    let ndjson = split(
        &t,
        "application/x-ndjson",
        b"{\"id\": 1, \"a\": [1]}\n\n  {\"id\": \"x\"}\r\n{\"id\":2}",
        Some(7),
    );
    let json = split(
        &t,
        "application/json",
        br#"[{"id": 1, "a": [1]}, {"id": "x"}, {"id":2}]"#,
        Some(7),
    );
    assert_eq!(
        ndjson.keys().collect::<Vec<_>>(),
        json.keys().collect::<Vec<_>>()
    );
    for ((content_type, lines), (_, array)) in ndjson.values().zip(json.values()) {
        assert_eq!(*content_type, "application/x-ndjson");
        assert!(
            lines.ends_with('\n') && !lines.contains("\n\n"),
            "{lines:?}"
        );
        assert_eq!(
            stored(content_type, lines),
            stored("application/json", array)
        );
    }
}

/// How Meilisearch reads an `application/json` payload at its route
/// (meilisearch-types/src/document_formats.rs `read_json`), but for its UTF-8 check: each array
/// element checked for syntax only, or else the whole payload read as one map.
fn meilisearch_json_error(body: &[u8]) -> String {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_slice(body);
    match Vec::<serde::de::IgnoredAny>::deserialize(&mut de) {
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) {
                Err(e) if e.classify() == serde_json::error::Category::Data => {
                    "data are neither an object nor a list of objects".to_string()
                }
                other => other.unwrap_err().to_string(),
            }
        }
        other => other.unwrap_err().to_string(),
    }
}

fn malformed(format: &str, detail: &str) -> String {
    format!("The `{format}` payload provided is malformed. `Couldn't serialize document value: {detail}`.")
}

#[test]
fn malformed_payloads_fail_where_and_how_they_fail_on_meilisearch() {
    let err = parse("application/json", b"[{\"id\": 1,").unwrap_err();
    assert_eq!((err.status, err.code), (400, "malformed_payload"));
    assert_eq!(
        err.message,
        "The `json` payload provided is malformed. `Couldn't serialize document value: EOF while parsing an object at line 1 column 10`.",
        "fixtures/meilisearch-1.50/documents-add-malformed.json"
    );
    let cases: [&[u8]; 13] = [
        b"[{\"id\": 1},]",
        b"[{\"id\": 1} {\"id\": 2}]",
        b"[{\"id\": 1}\n,\n{\"id\": 2, \"a\": tru}]",
        b"[{\"id\": 1, \"a\": \"\\q\"}]",
        b"[{\"id\": 1, \"a\": 01}]",
        b"[{\"id\": 1, \"a\": \"tab\there\"}]",
        b"[{\"id\": 1, 2: 3}]",
        b"[{\"id\": 1, \"a\": [1}]",
        b"{\"id\": 1} x",
        b"{\"id\": 1, \"a\": 1e400}",
        b"\"x\"",
        b"nul",
        b"-",
    ];
    for body in cases {
        let err = parse("application/json", body).unwrap_err();
        assert_eq!((err.status, err.code), (400, "malformed_payload"));
        assert_eq!(
            err.message,
            malformed("json", &meilisearch_json_error(body)),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(
        parse("application/json", b"42").unwrap_err().message,
        malformed("json", "data are neither an object nor a list of objects")
    );
}

#[test]
fn values_in_an_array_are_checked_for_syntax_only_as_on_meilisearch() {
    let deep = format!(
        "[{{\"id\": 1, \"a\": {}{}}}]",
        "[".repeat(200),
        "]".repeat(200)
    );
    for body in [
        br#"[{"id": 1, "a": 1e400, "b": "\ud800"}]"#.as_slice(),
        deep.as_bytes(),
        b"[{\"id\": 1}] what follows the array is not read",
    ] {
        assert_eq!(parse("application/json", body).unwrap().len(), 1);
    }
    // Not UTF-8: positioned just past the document, as serde_json places it for Meilisearch.
    let err = parse(
        "application/json",
        b"[{\"id\": 1},\n {\"id\": 2, \"a\": \"\xff\"} ]",
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        malformed("json", "invalid unicode code point at line 2 column 20")
    );
    let err = parse("application/x-ndjson", b"{\"id\": 1}\n{\"a\": \"\xff\"}\n").unwrap_err();
    assert_eq!(
        err.message,
        malformed("ndjson", "invalid unicode code point at line 2 column 10")
    );
}

#[test]
fn attribute_names_must_decode_and_are_placed_within_their_document() {
    let document = br#"{"a": 1, "\ud800": 2}"#;
    let body = [&b"[{\"id\": 1},\n  "[..], document, b"]"].concat();
    let meilisearch =
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(document)
            .unwrap_err()
            .to_string();
    assert_eq!(
        meilisearch,
        "unexpected end of hex escape at line 1 column 17"
    );
    let err = parse("application/json", &body).unwrap_err();
    assert_eq!(err.message, malformed("json", &meilisearch));
}

#[test]
fn an_identifier_that_only_parses_for_syntax_is_invalid() {
    let err = ids(br#"[{"id": 1}, {"id": 1e400}]"#, "id").unwrap_err();
    assert_eq!(err.code, "invalid_document_id");
    assert_eq!(
        err.message,
        "The identifier of the document at position 1 cannot be read: number out of range at line 1 column 12."
    );
}

#[test]
fn payloads_that_are_not_documents_name_what_they_hold() {
    for (body, detail) in [
        (&b"[1, 2]"[..], "invalid type: number, expected a map"),
        (
            b"[{\"id\": 1}, [{\"id\": 2}], true]",
            "invalid type: sequence, expected a map",
        ),
        (b"[{}, \"x\"]", "invalid type: string, expected a map"),
        (b"[null]", "invalid type: null, expected a map"),
        (b"[{}, false]", "invalid type: boolean, expected a map"),
        // A syntax error further on is what the client hears first.
        (
            b"[1, {\"id\": ",
            "EOF while parsing a value at line 1 column 11",
        ),
    ] {
        let err = parse("application/json", body).unwrap_err();
        assert_eq!(err.message, malformed("json", detail));
    }
}

#[test]
fn ndjson_fails_at_its_first_bad_line() {
    let body = b"{\"id\": 1}\n{oops\n[1]";
    let first_error = serde_json::Deserializer::from_slice(body)
        .into_iter::<serde::de::IgnoredAny>()
        .find_map(Result::err)
        .unwrap()
        .to_string();
    let err = parse("application/x-ndjson", body).unwrap_err();
    assert_eq!(err.code, "malformed_payload");
    assert_eq!(err.message, malformed("ndjson", &first_error));
    assert_eq!(first_error, "key must be a string at line 2 column 2");
    for body in [&b"{\"id\": 1}\n[1]\n{oops"[..], b"{\"id\": 1}2"] {
        let err = parse("application/x-ndjson", body).unwrap_err();
        assert!(
            err.message
                .ends_with("value: invalid type: sequence, expected a map`.")
                || err
                    .message
                    .ends_with("value: invalid type: number, expected a map`."),
            "{}",
            err.message
        );
    }
    let err = parse("application/x-ndjson", b"{\"id\": 1}x").unwrap_err();
    assert_eq!(
        err.message,
        malformed("ndjson", "expected value at line 1 column 10")
    );
}

#[test]
fn content_type_and_missing_payload_errors() {
    let err = parse("application/json", b"  ").unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        ("missing_payload", "A json payload is missing.")
    );
    let err = parse("application/x-ndjson", b"\n\n").unwrap_err();
    assert_eq!(err.message, "A ndjson payload is missing.");
    let err = parse("text/plain", b"[]").unwrap_err();
    assert_eq!(
        err.message,
        "The Content-Type `text/plain` is invalid. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`"
    );
    let err = parse_batch(None, None, b"[]").unwrap_err();
    assert_eq!((err.status, err.code), (415, "missing_content_type"));
    let err = parse_batch(Some("text/csv"), Some(";;"), b"id\n1\n").unwrap_err();
    assert_eq!(err.code, "invalid_document_csv_delimiter");
}

fn infer(content_type: &str, body: &[u8]) -> Result<String, MeiliError> {
    infer_primary_key(&parse(content_type, body).unwrap(), body)
}

#[test]
fn infers_the_primary_key_like_meilisearch() {
    assert_eq!(
        infer(
            "application/json",
            br#"[{"title": "x", "movieId": 1}, {"uid": 2}]"#
        )
        .unwrap(),
        "movieId"
    );
    assert_eq!(
        infer(
            "application/x-ndjson",
            b"{\"title\": \"x\", \"\\u0069d\": 1}\n"
        )
        .unwrap(),
        "id",
        "names are read decoded"
    );
    assert_eq!(
        infer(
            "application/json",
            br#"{"id": 1, "t": {"uid": 2}, "id": 3}"#
        )
        .unwrap(),
        "id",
        "a repeated attribute is one attribute; nested ones do not count"
    );
    let none = infer("application/json", br#"[{"title": "x"}]"#).unwrap_err();
    assert_eq!(none.code, "index_primary_key_no_candidate_found");
    let none = infer("application/json", b"[]").unwrap_err();
    assert_eq!(none.code, "index_primary_key_no_candidate_found");
    let many = infer("application/json", br#"[{"id": 1, "uid": 2}]"#).unwrap_err();
    assert_eq!(many.code, "index_primary_key_multiple_candidates_found");
    assert_eq!(
        many.message,
        "The primary key inference failed as the engine found 2 fields ending with `id` in their names: 'id' and 'uid'. Please specify the primary key manually using the `primaryKey` query parameter."
    );
    assert_eq!(
        infer("text/csv", b"title,bookId:number\nx,1\n").unwrap(),
        "bookId"
    );
}

fn ids(body: &[u8], primary_key: &str) -> Result<Vec<String>, MeiliError> {
    let batch = parse("application/json", body).unwrap();
    validate(&batch, body, primary_key, |id| id)
}

#[test]
fn validates_ids_and_returns_them_canonically() {
    assert_eq!(
        ids(
            br#"[{"id": 1}, {"id": "a-b_C9"}, {"id": -3}, {"id": 10.0e0}]"#,
            "id"
        )
        .unwrap_err()
        .code,
        "invalid_document_id",
        "a float is no id, even a whole one"
    );
    assert_eq!(
        ids(br#"[{"id": 1}, {"id": "a-b_C9"}, {"id": -3}]"#, "id").unwrap(),
        ["1", "a-b_C9", "-3"]
    );
    assert_eq!(
        ids(
            br#"[{"info": {"ref": "x1", "n": 2}, "info": {"ref": "x2"}}]"#,
            "info.ref"
        )
        .unwrap(),
        ["x2"],
        "a dotted key reads inside the object; a repeated attribute is its last value"
    );
    assert_eq!(
        ids(
            br#"[{"info": {"ref": "inside"}, "info.ref": "flat"}]"#,
            "info.ref"
        )
        .unwrap(),
        ["flat"],
        "an attribute named like the dotted key wins"
    );
    assert_eq!(ids(br#"[{"a": {"b": {"c": 5}}}]"#, "a.b.c").unwrap(), ["5"]);
    assert_eq!(
        ids(br#"[{"id": 1, "id": 2}]"#, "id").unwrap(),
        ["2"],
        "the last of a repeated attribute counts, as in one Meilisearch"
    );
    let long = format!(r#"[{{"id": "{}"}}]"#, "a".repeat(512));
    for bad in [
        long.as_bytes(),
        br#"[{"id": ""}]"#,
        br#"[{"id": true}]"#,
        br#"[{"id": "a b"}]"#,
    ] {
        assert_eq!(ids(bad, "id").unwrap_err().code, "invalid_document_id");
    }
    let err = ids(br#"[{"id": 1}, {"id": {"x": [1, 2.50]}}]"#, "id").unwrap_err();
    assert!(
        err.message
            .starts_with(r#"Document identifier `{"x":[1,2.5]}` is invalid."#),
        "{}",
        err.message
    );
}

#[test]
fn a_document_without_its_primary_key_is_shown_in_the_error() {
    let err = ids(
        b"[{\"id\": 1}, {\"title\" : \"Caf\\u00e9\",\n \"n\": 1.50, \"o\": {\"id\": 2}}]",
        "id",
    )
    .unwrap_err();
    assert_eq!(err.code, "miroir_primary_key_required");
    assert_eq!(
        err.message,
        r#"Document at position 1 doesn't have a `id` attribute: `{"title":"Café","n":1.5,"o":{"id":2}}`. No document of the batch was written."#
    );
}

#[test]
fn reserved_attributes_are_refused_at_the_top_level_only() {
    let err = ids(
        br#"[{"id": 1, "x": {"_miroir_shard": 1}}, {"id": 2, "_miroir_seq": 1, "_miroir_shard": 2}]"#,
        "id",
    )
    .unwrap_err();
    assert_eq!(err.code, "miroir_reserved_field");
    assert_eq!(
        err.message,
        "Document at position 1 contains the reserved attribute `_miroir_seq`, which Miroir manages."
    );
    let err = ids(br#"[{"\u005fmiroir_shard": 1, "id": 1}]"#, "id").unwrap_err();
    assert_eq!(
        err.message,
        "Document at position 0 contains the reserved attribute `_miroir_shard`, which Miroir manages.",
        "an escaped name is the same name"
    );
    let err = ids(br#"[{"title": "no id", "_miroir_shard": 1}]"#, "id").unwrap_err();
    assert_eq!(
        err.code, "miroir_reserved_field",
        "checked before the primary key"
    );
}

#[test]
fn nodes_get_the_clients_bytes_with_the_shard_stamped() {
    let t = topology();
    // Numbers as written (a float with a trailing zero, an exponent, an integer beyond u64),
    // escapes, whitespace, and brackets and quotes inside strings.
    let body = concat!(
        "[ {\"id\": 1, \"t\": \"a\", \"f\": 1.50, \"e\": 1E2, \"big\": 123456789012345678901234567890,\n",
        "   \"s\": \"}]{[\\\"\\\\\", \"\\u00e9\\ud83d\\ude00\": {\"o\": [1, {\"p\": \"}\"}]} } ,\n",
        " {\"id\":\"1\",\"t\":\"b\"}\t]"
    );
    let parts = split(&t, "application/json", body.as_bytes(), None);
    assert_eq!(
        parts.len(),
        1,
        "1 and \"1\" are the same document, on the same node"
    );
    let (content_type, sent) = parts.values().next().unwrap();
    assert_eq!(*content_type, "application/json");
    let shard = encode_shard(t.shard_for_key("1"));
    assert_eq!(
        *sent,
        format!(
            "[{},\"_miroir_shard\":\"{shard}\"{}}},{},\"_miroir_shard\":\"{shard}\"{}}}]",
            concat!(
                "{\"id\": 1, \"t\": \"a\", \"f\": 1.50, \"e\": 1E2, \"big\": 123456789012345678901234567890,\n",
                "   \"s\": \"}]{[\\\"\\\\\", \"\\u00e9\\ud83d\\ude00\": {\"o\": [1, {\"p\": \"}\"}]} "
            ),
            version(0),
            "{\"id\":\"1\",\"t\":\"b\"",
            version(1),
        ),
        "a partial update carries no sequence number"
    );
}

#[test]
fn documents_go_to_their_shards_owners_in_batch_order_with_their_sequence() {
    let t = topology();
    let docs: Vec<serde_json::Value> = (0..40).map(|i| json!({"id": i, "n": i})).collect();
    let body = serde_json::to_vec(&docs).unwrap();
    let parts = split(&t, "application/json", &body, Some(100));
    assert_eq!(parts.len(), 2);
    let mut seen = 0;
    for (node, (content_type, sent)) in &parts {
        let stored = stored(content_type, sent);
        let positions: Vec<u64> = stored.iter().map(|d| d["n"].as_u64().unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "batch order");
        for doc in &stored {
            let id = doc["id"].to_string();
            let shard = t.shard_for_key(&id);
            assert_eq!(t.write_targets(shard)[0].id, *node);
            assert_eq!(doc["_miroir_shard"], encode_shard(shard));
            let seq = decode_seq(doc["_miroir_seq"].as_str().unwrap()).unwrap();
            assert_eq!(seq, 100 + doc["n"].as_u64().unwrap());
            assert_eq!(
                version_of(doc),
                Some(seq),
                "a replacement's version is its seq"
            );
            let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                ["id", "n", "_miroir_shard", "_miroir_seq", "_miroir_version"],
                "Miroir's last"
            );
        }
        seen += stored.len();
    }
    assert_eq!(seen, 40);
}

#[test]
fn an_object_without_attributes_stays_valid_json_once_stamped() {
    let t = topology();
    let body = b"[{}, { \n }, {\"a\":1 }]";
    let batch = parse("application/json", body).unwrap();
    let shards = [0, 0, 0];
    let parts = parts(&Partition::new(&t, &batch, body, &shards, stamps(None)));
    let (_, sent) = parts.values().next().unwrap();
    let stamp = |n| format!("\"_miroir_shard\":\"{}\"{}", encode_shard(0), version(n));
    assert_eq!(
        *sent,
        format!(
            "[{{{}}},{{ \n {}}},{{\"a\":1 ,{}}}]",
            stamp(0),
            stamp(1),
            stamp(2)
        )
    );
}

#[test]
fn csv_ids_follow_the_column_type() {
    let csv_ids = |body: &[u8]| {
        let batch = parse("text/csv", body).unwrap();
        validate(&batch, body, "id", |id| id)
    };
    assert_eq!(
        csv_ids(b"id:number,title\n007,a\n-2,b\n").unwrap(),
        ["7", "-2"],
        "a typed number is its integer"
    );
    assert_eq!(
        csv_ids(b"id,title\n007,a\n").unwrap(),
        ["007"],
        "an untyped id is a string"
    );
    assert_eq!(
        csv_ids(b"id,title\n,a\n").unwrap_err().code,
        "miroir_primary_key_required"
    );
    assert_eq!(
        csv_ids(b"id:number,title\n1.5,a\n").unwrap_err().code,
        "invalid_document_id"
    );
    assert_eq!(
        csv_ids(b"id,_miroir_shard\n1,2\n").unwrap_err().code,
        "miroir_reserved_field"
    );
}

#[test]
fn csv_rows_travel_as_csv_with_their_shard_and_sequence() {
    let t = topology();
    let body = b"id:number;title;rating:number\n1;\"Carol; the film\";7.2\n2;Moana;7.6\n3;Pi;7.9\n";
    let batch = parse_batch(Some("text/csv"), Some(";"), body).unwrap();
    let shards = validate(&batch, body, "id", |id| t.shard_for_key(&id)).unwrap();
    let parts = parts(&Partition::new(&t, &batch, body, &shards, stamps(Some(40))));
    let mut rows = Vec::new();
    for (content_type, sent) in parts.values() {
        assert_eq!(*content_type, "text/csv");
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .from_reader(sent.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(
            header,
            [
                "id:number",
                "title",
                "rating:number",
                "_miroir_shard",
                "_miroir_seq",
                "_miroir_version"
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
            assert_eq!(record.get(5).and_then(decode_seq), Some(seq));
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

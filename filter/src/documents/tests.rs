use serde_json::json;

use super::*;

fn batch(v: serde_json::Value) -> Vec<Document> {
    parse_batch(Some("application/json"), v.to_string().as_bytes()).unwrap()
}

#[test]
fn accepts_an_array_or_a_single_object() {
    assert_eq!(batch(json!([{"id": 1}, {"id": 2}])).len(), 2);
    assert_eq!(batch(json!({"id": 1})).len(), 1);
    assert_eq!(
        parse_batch(Some("application/json; charset=utf-8"), b"[]")
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn malformed_payloads_use_meilisearchs_codes() {
    let err = parse_batch(Some("application/json"), b"[{\"id\": 1").unwrap_err();
    assert_eq!((err.status, err.code), (400, "malformed_payload"));
    assert!(err
        .message
        .starts_with("The `json` payload provided is malformed."));
    let err = parse_batch(Some("application/json"), b"[1, 2]").unwrap_err();
    assert_eq!(err.code, "malformed_payload");
    let err = parse_batch(Some("application/json"), b"  ").unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        ("missing_payload", "A json payload is missing.")
    );
    let err = parse_batch(Some("text/plain"), b"[]").unwrap_err();
    assert_eq!(
        err.message,
        "The Content-Type `text/plain` is invalid. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`"
    );
}

#[test]
fn infers_the_primary_key_like_meilisearch() {
    assert_eq!(
        infer_primary_key(&batch(json!([{"title": "x", "movieId": 1}]))).unwrap(),
        "movieId"
    );
    let none = infer_primary_key(&batch(json!([{"title": "x"}]))).unwrap_err();
    assert_eq!(none.code, "index_primary_key_no_candidate_found");
    let many = infer_primary_key(&batch(json!([{"id": 1, "uid": 2}]))).unwrap_err();
    assert_eq!(many.code, "index_primary_key_multiple_candidates_found");
}

#[test]
fn validates_ids_and_returns_them_canonically() {
    let ids = validate(
        &batch(json!([{"id": 1}, {"id": "a-b_C9"}, {"id": -3}])),
        "id",
    )
    .unwrap();
    assert_eq!(ids, ["1", "a-b_C9", "-3"]);
    let nested = validate(&batch(json!([{"info": {"ref": "x1"}}])), "info.ref").unwrap();
    assert_eq!(nested, ["x1"]);
    let long = "a".repeat(512);
    assert_eq!(
        validate(&batch(json!([{"id": long}])), "id")
            .unwrap_err()
            .code,
        "invalid_document_id"
    );
    assert_eq!(
        validate(&batch(json!([{"id": ""}])), "id")
            .unwrap_err()
            .code,
        "invalid_document_id"
    );
    assert_eq!(
        validate(&batch(json!([{"id": true}])), "id")
            .unwrap_err()
            .code,
        "invalid_document_id"
    );
}

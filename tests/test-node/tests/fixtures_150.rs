//! Replays the fixtures recorded from the real Meilisearch 1.50 binary by
//! `tools/record-fixtures.py` (`tests/test-node/fixtures/meilisearch-1.50`): vectors, `/similar`,
//! `distinct`, facets in count order, facet search, `sizeFormat=human`, `POST /fields`, errors and
//! tenant tokens. The recording used the test node's test master key, so key values are the same
//! here; tenant tokens are signed again with the recorded claims and a fresh `exp`.
//!
//! Run-dependent values (dates, durations, request uids, sizes) are ignored. Similarities are
//! Meilisearch's formula and compared to 1e-6; where the answer depends on the test node's own
//! keyword ranking or on the order of exact ties, hits are compared as sets.

mod support;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use support::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/meilisearch-1.50")
}

fn load(name: &str) -> Value {
    let path = dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn mac_of<M: Mac + hmac::digest::KeyInit>(key: &str, input: &str) -> Vec<u8> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// A JWT signed as the recording signed it (compact JSON, the recorded claims' key order).
fn sign(header: &Value, claims: &Value, key: &str) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = match header["alg"].as_str().unwrap() {
        "HS256" => mac_of::<Hmac<sha2::Sha256>>(key, &input),
        "HS384" => mac_of::<Hmac<sha2::Sha384>>(key, &input),
        "HS512" => mac_of::<Hmac<sha2::Sha512>>(key, &input),
        other => panic!("{other}"),
    };
    format!("{input}.{}", b64url(&sig))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Sends a recorded request (signing its tenant token for this node) and returns our reply and
/// the recorded response.
async fn send(node: &Node, name: &str) -> (Reply, Value) {
    let f = load(name);
    let token = f.get("tenantToken").map(|t| {
        let mut claims = t["claims"].clone();
        if let Some(offset) = t["expOffset"].as_i64() {
            claims["exp"] = json!(now() + offset);
        }
        let signer = t["signedWithKey"]
            .as_str()
            .or(claims["apiKeyUid"].as_str())
            .unwrap()
            .to_string();
        let key = miroir_test_node::keys::generate_key(MASTER_KEY, &signer);
        sign(&t["header"], &claims, &key)
    });
    let reply = node.send_fixture(&f, token.as_deref()).await;
    (reply, f["response"].clone())
}

async fn exact(node: &Node, name: &str) -> Reply {
    let (reply, expected) = send(node, name).await;
    assert_same(name, &reply, &expected);
    reply
}

async fn write(node: &Node, name: &str) {
    let reply = exact(node, name).await;
    let task = node
        .wait_task(reply.body["taskUid"].as_u64().unwrap())
        .await;
    assert_eq!(task["status"], "succeeded", "{name}: {task}");
}

/// Equal after scrubbing, numbers within 1e-6 (similarities are `f32` computations).
fn close(path: &str, a: &Value, e: &Value) {
    match (a, e) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() < 1e-6, "{path}: {x} != {y}");
        }
        (Value::Object(x), Value::Object(y)) => {
            let xk: Vec<&String> = x.keys().collect();
            let yk: Vec<&String> = y.keys().collect();
            assert_eq!(xk, yk, "{path}: keys");
            for (k, v) in y {
                close(&format!("{path}.{k}"), &x[k], v);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: length of {a} vs {e}");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                close(&format!("{path}[{i}]"), v, w);
            }
        }
        _ => assert_eq!(a, e, "{path}"),
    }
}

async fn approx(node: &Node, name: &str) -> Reply {
    let (reply, expected) = send(node, name).await;
    assert_eq!(
        reply.status as u64,
        expected["status"].as_u64().unwrap(),
        "{name}: {}",
        reply.body
    );
    close(name, &scrub(&reply.body), &scrub(&expected["body"]));
    reply
}

fn by_id(body: &Value) -> Value {
    let mut body = scrub(body);
    if let Some(hits) = body["hits"].as_array_mut() {
        hits.sort_by_key(|h| h["id"].to_string());
    }
    body
}

/// Like `approx`, with the hits compared as a set (tie order, or the test node's own ranking).
async fn unordered(node: &Node, name: &str) -> Reply {
    let (reply, expected) = send(node, name).await;
    assert_eq!(
        reply.status as u64,
        expected["status"].as_u64().unwrap(),
        "{name}: {}",
        reply.body
    );
    close(name, &by_id(&reply.body), &by_id(&expected["body"]));
    reply
}

fn ids(body: &Value) -> Vec<i64> {
    hit_ids(body).iter().map(|v| v.as_i64().unwrap()).collect()
}

fn assert_human_size(name: &str, v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{name}: {v} is not a string"));
    let (num, unit) = s.split_once(' ').unwrap();
    assert!(num.parse::<f64>().is_ok(), "{name}: {s}");
    assert!(
        ["B", "KiB", "MiB", "GiB"].contains(&unit),
        "{name}: unit of {s}"
    );
    if unit == "B" {
        assert!(num.parse::<u64>().is_ok(), "{name}: {s}");
    }
}

#[tokio::test]
async fn replays_vectors_similar_and_errors() {
    let node = Node::start().await;
    vectors(&node).await;
    similar(&node).await;
}

async fn vectors(node: &Node) {
    write(node, "vectors-settings").await;
    write(node, "vectors-documents-add").await;
    exact(node, "vectors-settings-get").await;
    for name in [
        "vectors-search-semantic",
        "vectors-search-semantic-details",
        "vectors-search-semantic-filter",
        "vectors-search-retrieve",
        "vectors-search-get",
    ] {
        approx(node, name).await;
    }
    // Hybrid: which list a hit comes from depends on the keyword scores, which are the test
    // node's own; the hits (every document, the one without an embedding included) are not.
    let (reply, expected) = send(node, "vectors-search-hybrid").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut got = ids(&reply.body);
    let mut want = ids(&expected["body"]);
    got.sort();
    want.sort();
    assert_eq!(got, want, "vectors-search-hybrid: hits");
    assert_same_shape("vectors-search-hybrid", &reply.body, &expected["body"]);
    assert_eq!(
        reply.body["estimatedTotalHits"],
        expected["body"]["estimatedTotalHits"]
    );
    unordered(node, "vectors-search-hybrid-keyword").await;
    for name in [
        "vectors-search-no-hybrid",
        "vectors-search-bad-dimensions",
        "vectors-search-unknown-embedder",
        "vectors-search-ratio-out-of-range",
        "vectors-document-get",
        "vectors-documents-fetch",
        "vectors-index-stats",
    ] {
        exact(node, name).await;
    }
}

async fn similar(node: &Node) {
    // Documents 3 and 5 tie (similarity 0.5) after 2 and 4.
    let reply = unordered(node, "similar-post").await;
    assert_eq!(ids(&reply.body)[..2], [2, 4]);
    approx(node, "similar-post-filter").await;
    approx(node, "similar-get").await;
    for name in [
        "similar-not-found-id",
        "similar-missing-embedder",
        "similar-unknown-embedder",
        "error-similar-unknown-field",
    ] {
        exact(node, name).await;
    }
    exact(node, "fields-vectors").await;
}

#[tokio::test]
async fn replays_distinct_facets_stats_fields_and_tenant_tokens() {
    let node = Node::start().await;
    // The recording made the `vecs` index first: its tasks take uids 0 and 1.
    write(&node, "vectors-settings").await;
    write(&node, "vectors-documents-add").await;

    write(&node, "books-settings").await;
    write(&node, "books-documents-add").await;
    for name in [
        "distinct-param",
        "distinct-param-get",
        "distinct-not-filterable",
    ] {
        exact(&node, name).await;
    }
    write(&node, "distinct-setting-patch").await;
    exact(&node, "distinct-setting-get").await;
    exact(&node, "distinct-setting-search").await;
    exact(&node, "distinct-setting-overridden").await;
    write(&node, "distinct-setting-reset").await;

    // Facet values: alpha order, then count order with equal counts by descending value,
    // numbers before strings, then orders per attribute.
    exact(&node, "facets-alpha").await;
    write(&node, "facets-count-settings").await;
    for name in [
        "facets-count-order",
        "facets-count-order-filtered",
        "facets-pattern",
        "facet-search-count",
        "facet-search-count-query",
        "facet-search-count-filter",
    ] {
        exact(&node, name).await;
    }
    write(&node, "facets-count-settings-per-attribute").await;
    exact(&node, "facets-mixed-order").await;
    exact(&node, "facet-search-mixed-order").await;

    // Sizes are the node's own; their form is Meilisearch's.
    let human = exact(&node, "stats-index-human").await;
    for field in ["rawDocumentDbSize", "avgDocumentSize"] {
        assert_human_size(field, &human.body[field]);
    }
    let raw = exact(&node, "stats-index-raw").await;
    assert!(raw.body["rawDocumentDbSize"].is_u64());
    let human = exact(&node, "stats-human").await;
    for field in ["databaseSize", "usedDatabaseSize"] {
        assert_human_size(field, &human.body[field]);
    }
    for (uid, stats) in human.body["indexes"].as_object().unwrap() {
        for field in ["rawDocumentDbSize", "avgDocumentSize"] {
            assert_human_size(&format!("{uid}.{field}"), &stats[field]);
        }
    }
    exact(&node, "stats-bad-size-format").await;

    for name in [
        "fields-all",
        "fields-page",
        "fields-filter-filterable",
        "fields-filter-patterns",
        "fields-vectors",
        "fields-unknown-field",
        "fields-index-not-found",
    ] {
        exact(&node, name).await;
    }

    write(&node, "plain-documents-add").await;
    for name in [
        "error-facets-pattern-not-filterable",
        "error-facets-not-filterable",
        "error-get-unknown-param",
        "error-invalid-filter",
        "error-invalid-filter-get",
        "error-unknown-body-field",
        "error-facet-search-unknown-field",
    ] {
        exact(&node, name).await;
    }

    tenant_tokens(&node).await;
}

async fn tenant_tokens(node: &Node) {
    exact(node, "tenant-key-create").await;
    exact(node, "tenant-other-key-create").await;
    for name in [
        "tenant-search-filter",
        "tenant-search-get",
        "tenant-search-other-index",
        "tenant-multi-search",
        "tenant-facet-search",
        "tenant-documents-refused",
        "tenant-search-rules-array",
        "tenant-wrong-signature",
        "tenant-parent-key-without-search",
        "tenant-hs384",
        "tenant-missing-api-key-uid",
        "tenant-unknown-api-key-uid",
        "tenant-search-rules-null",
        "tenant-garbage-token",
        "tenant-malformed-jwt",
    ] {
        exact(node, name).await;
    }
    // Placeholder hits tie: compared as sets.
    unordered(node, "tenant-search-filter-and-query-filter").await;
    unordered(node, "tenant-search-rules-star").await;
    // The message names the token's `exp` and the time of the check.
    let (reply, expected) = send(node, "tenant-expired").await;
    assert_eq!(reply.status, 403);
    let mut body = reply.body.clone();
    let message = body["message"].as_str().unwrap().to_string();
    let rest = message
        .strip_prefix("Tenant token expired. Was valid up to `")
        .unwrap_or_else(|| panic!("{message}"));
    let (exp, rest) = rest.split_once("` and we're now `").unwrap();
    let checked = rest.strip_suffix("`.").unwrap();
    let (exp, checked): (i64, i64) = (exp.parse().unwrap(), checked.parse().unwrap());
    assert!((checked - exp - 3600).abs() <= 2, "{message}");
    body["message"] = expected["body"]["message"].clone();
    assert_eq!(body, expected["body"]);

    exact(node, "tenant-key-delete").await;
    exact(node, "tenant-after-key-deleted").await;
    exact(node, "tenant-other-key-delete").await;
}

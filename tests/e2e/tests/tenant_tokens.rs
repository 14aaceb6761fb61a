//! Tenant tokens through a real Envoy: a search key created through Miroir signs a token (HS256)
//! whose search rules filter `movies` to one genre; every shard answers with its own share of
//! that genre only, and once the key is deleted through Miroir every node and Envoy refuse the
//! token. The nodes enforce the token; Miroir forwards it unchanged.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use miroir_e2e::Cluster;
use serde_json::{json, Value};
use support::{add_in_batches, corpus, create_movies, stored, three_nodes};

/// An HS256 JWT over `claims`, signed with `key` (an API key's value).
fn sign_hs256(claims: &Value, key: &str) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{input}.{signature}")
}

fn ids(page: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = page["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {page}"))
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

fn assert_refused(who: &str, reply: (u16, Value)) {
    let (status, error) = reply;
    assert_eq!(
        (status, error["code"].as_str(), error["type"].as_str()),
        (403, Some("invalid_api_key"), Some("auth")),
        "{who}: {error}"
    );
}

#[test]
fn tenant_tokens_filter_every_shard_and_die_with_their_key() {
    let cluster = Cluster::start("tenant_tokens", three_nodes(1));
    let admin = cluster.client();
    create_movies(&admin);
    let docs = corpus(60);
    add_in_batches(&admin, &docs, 60);
    cluster.wait_all_nodes_idle();
    let horror: Vec<u64> = docs
        .iter()
        .filter(|d| d["genre"] == "horror")
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    // The horror documents are spread: several nodes hold some.
    let holders = cluster
        .node_ids()
        .iter()
        .filter(|n| {
            stored(&cluster.node_client(n))
                .iter()
                .any(|d| d["genre"] == "horror")
        })
        .count();
    assert!(holders >= 2, "horror documents on {holders} node(s) only");

    let (status, key) = admin
        .post(
            "/keys",
            &json!({"actions": ["search"], "indexes": ["*"], "expiresAt": null}),
        )
        .pair();
    assert_eq!(status, 201, "{key}");
    let uid = key["uid"].as_str().unwrap().to_string();
    let value = key["key"].as_str().unwrap().to_string();
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = sign_hs256(
        &json!({
            "searchRules": {"movies": {"filter": "genre = horror"}},
            "apiKeyUid": uid,
            "exp": exp,
        }),
        &value,
    );

    // Through Envoy: the horror documents of every shard, nothing else, with or without a
    // filter of the client's own (ANDed with the rule's).
    let tenant = cluster.client().with_key(&token);
    let (status, page) = tenant
        .post("/indexes/movies/search", &json!({"limit": 100}))
        .pair();
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), horror, "{page}");
    assert_eq!(page["estimatedTotalHits"], json!(horror.len()), "{page}");
    let (status, page) = tenant
        .post(
            "/indexes/movies/search",
            &json!({"filter": "year >= 1990", "limit": 100, "facets": ["genre"]}),
        )
        .pair();
    assert_eq!(status, 200, "{page}");
    let recent: Vec<u64> = docs
        .iter()
        .filter(|d| d["genre"] == "horror" && d["year"].as_u64().unwrap() >= 1990)
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids(&page), recent, "{page}");
    assert_eq!(
        page["facetDistribution"]["genre"],
        json!({"horror": recent.len()}),
        "{page}"
    );
    let (status, page) = tenant
        .get("/indexes/movies/search?q=kw0013&limit=100")
        .pair();
    assert_eq!((status, ids(&page)), (200, vec![13]), "{page}");
    let (status, page) = tenant
        .get("/indexes/movies/search?q=kw0012&limit=100")
        .pair();
    assert_eq!((status, ids(&page)), (200, vec![]), "not horror: {page}");

    // Each node applies the rule to its own share; the shares add up to the whole.
    let mut seen = Vec::new();
    for node in cluster.node_ids() {
        let (status, page) = cluster
            .node_client(&node)
            .with_key(&token)
            .post("/indexes/movies/search", &json!({"limit": 100}))
            .pair();
        assert_eq!(status, 200, "{node}: {page}");
        for hit in page["hits"].as_array().unwrap() {
            assert_eq!(hit["genre"], "horror", "{node}: {hit}");
        }
        seen.extend(ids(&page));
    }
    seen.sort_unstable();
    assert_eq!(seen, horror);

    // A token may only search.
    assert_refused(
        "documents through Envoy",
        tenant.get("/indexes/movies/documents").pair(),
    );

    // Deleting the key through Miroir kills the token everywhere.
    let reply = admin.delete(&format!("/keys/{uid}"));
    assert_eq!(reply.status, 204, "{}", reply.text());
    for node in cluster.node_ids() {
        assert_refused(
            &node,
            cluster
                .node_client(&node)
                .with_key(&token)
                .post("/indexes/movies/search", &json!({}))
                .pair(),
        );
    }
    assert_refused(
        "Envoy",
        tenant.post("/indexes/movies/search", &json!({})).pair(),
    );
    assert_refused(
        "Envoy (GET)",
        tenant.get("/indexes/movies/search?q=kw0013").pair(),
    );
}

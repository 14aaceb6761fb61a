#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use miroir_topology::reserved::{encode_seq, encode_shard, shard_filter};
use miroir_topology::{Node, NodeState};
use serde_json::{json, Map, Value};

use super::*;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn topology() -> Topology {
    Topology {
        epoch: 1,
        shards: 8,
        shard_map: Default::default(),
        replication_factor: 1,
        nodes: vec![Node {
            id: "n0".into(),
            address: "127.0.0.1:1".into(),
            group: "g".into(),
            state: NodeState::Active,
        }],
    }
}

fn plan(body: Value) -> Option<Plan> {
    Plan::new(obj(body), &topology())
}

fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
    query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn get_parameters_read_as_meilisearch_reads_them() {
    let body = query_from_get(&pairs(&[
        ("id", "5"),
        ("embedder", "e"),
        ("offset", "2"),
        ("attributesToRetrieve", "id, title"),
        ("showRankingScore", "true"),
        ("rankingScoreThreshold", "0.5"),
        ("filter", "rating > 5"),
    ]))
    .unwrap();
    assert_eq!(
        Value::Object(body),
        json!({"id": "5", "embedder": "e", "offset": 2, "attributesToRetrieve": ["id", "title"], "showRankingScore": true, "rankingScoreThreshold": 0.5, "filter": "rating > 5"})
    );
    // A filter that parses as JSON is JSON.
    let body = query_from_get(&pairs(&[("filter", r#"["genres = drama"]"#)])).unwrap();
    assert_eq!(body["filter"], json!(["genres = drama"]));
    // Anything Meilisearch would refuse is left for a node to word.
    for bad in [
        ("limit", "ten"),
        ("offset", "-1"),
        ("showRankingScore", "yes"),
        ("rankingScoreThreshold", "1.5"),
        ("nope", "1"),
    ] {
        assert_eq!(query_from_get(&pairs(&[bad])), None, "{bad:?}");
    }
    assert_eq!(
        query_from_get(&pairs(&[("limit", "1"), ("limit", "2")])),
        None,
        "a repeated parameter"
    );
}

#[test]
fn only_requests_with_meilisearchs_types_are_planned() {
    let p = plan(json!({"id": 5, "embedder": "e", "offset": null, "filter": ["a = 1"]})).unwrap();
    assert_eq!(
        (p.id.as_str(), p.window.offset, p.window.limit),
        ("5", 0, 20)
    );
    assert_eq!(p.window.shard, topology().shard_for_key("5"));
    for body in [
        json!({"embedder": "e"}),
        json!({"id": ["x"], "embedder": "e"}),
        json!({"id": "a b", "embedder": "e"}),
        json!({"id": 5}),
        json!({"id": 5, "embedder": 3}),
        json!({"id": 5, "embedder": "e", "limit": "ten"}),
        json!({"id": 5, "embedder": "e", "offset": -1}),
        json!({"id": 5, "embedder": "e", "showRankingScoreDetails": "yes"}),
        json!({"id": 5, "embedder": "e", "rankingScoreThreshold": 2}),
        json!({"id": 5, "embedder": "e", "attributesToRetrieve": "title"}),
        json!({"id": 5, "embedder": "e", "attributesToRetrieve": [1]}),
        json!({"id": 5, "embedder": "e", "filter": 5}),
    ] {
        assert!(plan(body.clone()).is_none(), "{body}");
    }
}

#[test]
fn the_target_shard_is_asked_for_the_whole_head_of_its_list() {
    let p = plan(json!({"id": "x", "embedder": "e", "offset": 3, "limit": 4, "rankingScoreThreshold": 0.9, "filter": "rating > 5", "attributesToRetrieve": ["title"], "retrieveVectors": true})).unwrap();
    let probe = p.probe();
    let restriction = shard_filter(&[p.window.shard]);
    assert_eq!(
        Value::Object(probe),
        json!({"id": "x", "embedder": "e", "offset": 0, "limit": 7, "filter": ["rating > 5", restriction], "attributesToRetrieve": ["title", SEQ_FIELD], "retrieveVectors": true, "showRankingScore": true, "showRankingScoreDetails": true})
    );
    let (search, window) = p.search(Some(json!([1.0, 0.0])));
    assert_eq!(
        Value::Object(search),
        json!({"vector": [1.0, 0.0], "hybrid": {"embedder": "e", "semanticRatio": 1.0}, "filter": "rating > 5", "attributesToRetrieve": ["title"], "retrieveVectors": true})
    );
    assert_eq!(window.wanted, 7);
    let (search, window) = p.search(None);
    assert_eq!(window.wanted, 0, "no embedding: only the totals");
    assert!(!search.contains_key("vector"));
}

#[test]
fn the_first_embedding_is_the_query() {
    let p = plan(json!({"id": 1, "embedder": "e"})).unwrap();
    let read = |vectors: Value| p.embedding(&json!({"id": 1, "_vectors": vectors}));
    assert_eq!(
        read(json!({"e": {"embeddings": [[1, 2], [3, 4]], "regenerate": false}})).unwrap(),
        Some(json!([1, 2]))
    );
    assert_eq!(
        read(json!({"e": [0.5, 0.5]})).unwrap(),
        Some(json!([0.5, 0.5]))
    );
    assert_eq!(
        read(json!({"e": {"embeddings": [], "regenerate": false}})).unwrap(),
        None
    );
    assert_eq!(read(json!({"e": null})).unwrap(), None);
    let hidden = p.embedding(&json!({"id": 1})).unwrap_err();
    assert_eq!((hidden.status, hidden.code), (501, "miroir_not_supported"));
}

fn hit(id: u64, similarity: Option<f64>, seq: u64) -> Value {
    json!({"id": id, "_miroir_shard": encode_shard(0), "_miroir_seq": encode_seq(seq), "_rankingScore": similarity.unwrap_or(0.0), "_rankingScoreDetails": {"vectorSort": {"order": 0, "similarity": similarity}}})
}

fn window(offset: u64, limit: u64) -> Window {
    Window {
        shard: 0,
        offset,
        limit,
        threshold: None,
        show_score: false,
        show_details: false,
        wanted: offset + limit,
    }
}

/// The target's shard's `/similar` answer, then two searched shards.
fn answers() -> Vec<Map<String, Value>> {
    vec![
        obj(
            json!({"hits": [hit(1, Some(0.9), 1), hit(2, Some(0.5), 2)], "id": "7", "processingTimeMs": 2, "limit": 10, "offset": 0, "estimatedTotalHits": 3}),
        ),
        obj(
            json!({"hits": [hit(3, Some(0.9), 0), hit(4, Some(0.7), 4), hit(5, None, 5)], "query": "", "processingTimeMs": 5, "limit": 10, "offset": 0, "estimatedTotalHits": 3, "semanticHitCount": 3, "requestUid": "r"}),
        ),
        obj(
            json!({"hits": [hit(6, Some(0.8), 6)], "query": "", "processingTimeMs": 1, "limit": 10, "offset": 0, "estimatedTotalHits": 1, "semanticHitCount": 1, "requestUid": "r"}),
        ),
    ]
}

fn ids(merged: &Value) -> Vec<u64> {
    merged["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn hits_are_merged_by_similarity_as_one_similar_answer() {
    let merged = merge(window(0, 10), answers(), Some(1000)).unwrap();
    assert_eq!(
        ids(&merged),
        vec![3, 1, 6, 4, 2],
        "by similarity, ties in insertion order; no hit without an embedding"
    );
    let keys: Vec<&String> = merged.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "hits",
            "id",
            "processingTimeMs",
            "limit",
            "offset",
            "estimatedTotalHits"
        ],
        "the target shard's /similar answer is the template"
    );
    assert_eq!(merged["processingTimeMs"], 5);
    assert_eq!(
        merged["estimatedTotalHits"], 7,
        "every document but the target"
    );
    assert_eq!(
        merged["hits"][0],
        json!({"id": 3}),
        "Miroir's fields and unasked scores hidden"
    );

    let merged = merge(window(1, 2), answers(), Some(5)).unwrap();
    assert_eq!(ids(&merged), vec![1, 6]);
    assert_eq!(
        (merged["offset"].clone(), merged["limit"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(merged["estimatedTotalHits"], 5, "capped at maxTotalHits");
}

#[test]
fn the_threshold_cuts_the_page_and_the_total_as_meilisearch_does() {
    let mut w = window(1, 3);
    w.threshold = Some(0.75);
    let merged = merge(w, answers(), Some(1000)).unwrap();
    assert_eq!(
        ids(&merged),
        vec![1, 6],
        "the page stops at the first hit below"
    );
    assert_eq!(
        merged["estimatedTotalHits"], 3,
        "the hits ranked before the cut"
    );
    // No hit of the page below it: the total stays every document.
    w.threshold = Some(0.5);
    let merged = merge(w, answers(), Some(1000)).unwrap();
    assert_eq!(ids(&merged), vec![1, 6, 4]);
    assert_eq!(merged["estimatedTotalHits"], 7);
}

#[test]
fn scores_are_shown_as_similar_shows_them() {
    let mut w = window(0, 1);
    w.show_score = true;
    w.show_details = true;
    let mut responses = answers();
    // A searched index with a custom rule after the relevancy rules details it too.
    responses[1]["hits"][0]["_rankingScoreDetails"]["rating:desc"] =
        json!({"order": 1, "value": 3});
    let merged = merge(w, responses, None).unwrap();
    assert_eq!(
        merged["hits"][0],
        json!({"id": 3, "_rankingScore": 0.9, "_rankingScoreDetails": {"vectorSort": {"order": 0, "similarity": 0.9}}})
    );
}

#[test]
fn a_rule_ranking_before_similarity_is_refused() {
    let mut responses = answers();
    responses[2]["hits"][0]["_rankingScoreDetails"]["vectorSort"]["order"] = json!(1);
    let e = merge(window(0, 10), responses, None).unwrap_err();
    assert_eq!((e.status, e.code), (501, "miroir_not_supported"));
}

#[test]
fn one_shard_keeps_its_own_total() {
    let only = answers().into_iter().take(1).collect();
    let merged = merge(window(0, 10), only, None).unwrap();
    assert_eq!(ids(&merged), vec![1, 2]);
    assert_eq!(merged["estimatedTotalHits"], 3);
}

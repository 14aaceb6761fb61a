//! `POST|GET /indexes/{uid}/similar` as Meilisearch 1.50 answers it.

mod support;

use serde_json::{json, Value};

use support::*;

async fn write(node: &Node, method: &str, path: &str, body: Value) -> Value {
    let r = node.call(method, path, Some(body)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    node.wait_task(r.body["taskUid"].as_u64().unwrap()).await
}

async fn index() -> Node {
    let node = Node::start().await;
    write(
        &node,
        "PATCH",
        "/indexes/test/settings",
        json!({"embedders": {"manual": {"source": "userProvided", "dimensions": 3}},
               "filterableAttributes": ["color"]}),
    )
    .await;
    let t = write(
        &node,
        "POST",
        "/indexes/test/documents",
        json!([
            {"id": 1, "color": "red", "_vectors": {"manual": [1.0, 0.0, 0.0]}},
            {"id": 2, "color": "red", "_vectors": {"manual": [0.9, 0.1, 0.0]}},
            {"id": 3, "color": "blue", "_vectors": {"manual": [0.0, 1.0, 0.0]}},
            {"id": 4, "color": "blue", "_vectors": {"manual": [[0.0, 0.0, 1.0], [1.0, 0.0, 0.1]]}},
            {"id": 5, "color": "red", "_vectors": {"manual": null}}
        ]),
    )
    .await;
    assert_eq!(t["status"], "succeeded", "{t}");
    node
}

fn ids(body: &Value) -> Vec<i64> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn similar_documents_by_embedding() {
    let node = index().await;
    let r = node
        .call(
            "POST",
            "/indexes/test/similar",
            Some(json!({"id": 1, "embedder": "manual", "showRankingScore": true, "showRankingScoreDetails": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Embeddings are compared rank by rank (milli keeps one vector store per rank): the target's
    // only embedding meets document 4's first one, [0, 0, 1], not its second, close to [1, 0, 0].
    // 3 and 4 tie (orthogonal to the target). 5 has no embedding and is no hit.
    assert_eq!(ids(&r.body), [2, 3, 4]);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "hits",
            "id",
            "processingTimeMs",
            "limit",
            "offset",
            "estimatedTotalHits"
        ]
    );
    assert_eq!(r.body["id"], "1");
    // The universe counts every document but the target, embedded or not.
    assert_eq!(r.body["estimatedTotalHits"], 4);
    let hit = &r.body["hits"][0];
    let s = hit["_rankingScore"].as_f64().unwrap();
    assert!(s > 0.99 && s <= 1.0, "{s}");
    assert_eq!(hit["_rankingScoreDetails"]["vectorSort"]["order"], 0);
    assert_eq!(hit.get("_vectors"), None);

    // Filter, offset, limit, attributesToRetrieve, retrieveVectors.
    let r = node
        .call(
            "POST",
            "/indexes/test/similar",
            Some(
                json!({"id": 1, "embedder": "manual", "filter": "color = red", "limit": 1,
                        "attributesToRetrieve": ["id"], "retrieveVectors": true}),
            ),
        )
        .await;
    assert_eq!(ids(&r.body), [2]);
    assert_eq!(r.body["estimatedTotalHits"], 2);
    // Embeddings are stored as `f32`, and shown widened to `f64`, as Meilisearch shows them.
    assert_eq!(
        r.body["hits"][0],
        json!({"id": 2, "_vectors": {"manual": {"embeddings": [[0.9f32, 0.1f32, 0.0]], "regenerate": false}}})
    );

    // A threshold stops at the first hit below it; the total keeps only what was seen.
    let r = node
        .call(
            "POST",
            "/indexes/test/similar",
            Some(json!({"id": 1, "embedder": "manual", "rankingScoreThreshold": 0.9})),
        )
        .await;
    assert_eq!(ids(&r.body), [2]);
    assert_eq!(r.body["estimatedTotalHits"], 1);

    // GET form.
    let r = node
        .call(
            "GET",
            "/indexes/test/similar?id=1&embedder=manual&offset=1&limit=1",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r.body), [3]);
    assert_eq!(
        (r.body["offset"].clone(), r.body["limit"].clone()),
        (json!(1), json!(1))
    );
}

#[tokio::test]
async fn similar_errors_are_meilisearchs() {
    let node = index().await;
    let cases = [
        (
            json!({"id": 1, "embedder": "auto"}),
            400,
            "invalid_similar_embedder",
            "Cannot find embedder with name `auto`.",
        ),
        (
            json!({"id": "nope", "embedder": "manual"}),
            400,
            "not_found_similar_id",
            "Document `nope` not found.",
        ),
        (
            json!({"id": 1}),
            400,
            "bad_request",
            "Missing field `embedder`",
        ),
        (
            json!({"id": "http://x/", "embedder": "manual"}),
            400,
            "invalid_similar_id",
            "Invalid value at `.id`: the value of `id` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes.",
        ),
        (
            json!({"id": 1, "embedder": "manual", "rankingScoreThreshold": 42}),
            400,
            "invalid_similar_ranking_score_threshold",
            "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.",
        ),
        (
            json!({"id": 1, "embedder": "manual", "filter": "title = x"}),
            400,
            "invalid_similar_filter",
            "Attribute `title` is not filterable. Available filterable attribute patterns are: `color`.\n1:6 title = x",
        ),
    ];
    for (body, status, code, message) in cases {
        let r = node
            .call("POST", "/indexes/test/similar", Some(body.clone()))
            .await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(r.body["code"], code, "{body}: {}", r.body);
        if code != "invalid_similar_filter" {
            assert_eq!(r.body["message"], message, "{body}");
        }
    }
    let r = node
        .call(
            "POST",
            "/indexes/missing/similar",
            Some(json!({"id": 1, "embedder": "manual"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].clone()),
        (404, json!("index_not_found"))
    );
    let r = node.call("GET", "/indexes/test/similar?id=1", None).await;
    assert_eq!(r.body["message"], "Missing parameter `embedder`");
}

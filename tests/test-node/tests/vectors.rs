//! User-provided embedders, `_vectors`, semantic and hybrid search, compared with what
//! Meilisearch 1.50 answers (its own test suite's corpus: three movies with 2-d embeddings).

mod support;

use serde_json::{json, Value};

use support::*;

async fn write(node: &Node, method: &str, path: &str, body: Value) -> Value {
    let r = node.call(method, path, Some(body)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    node.wait_task(r.body["taskUid"].as_u64().unwrap()).await
}

/// Meilisearch's `SIMPLE_SEARCH_DOCUMENTS_VEC` with a `userProvided` embedder of 2 dimensions.
async fn movies() -> Node {
    let node = Node::start().await;
    let t = write(
        &node,
        "PATCH",
        "/indexes/test/settings",
        json!({"embedders": {"default": {"source": "userProvided", "dimensions": 2}}}),
    )
    .await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(
        t["details"],
        json!({"embedders": {"default": {"source": "userProvided", "dimensions": 2}}})
    );
    let t = write(
        &node,
        "POST",
        "/indexes/test/documents",
        json!([
            {"title": "Shazam!", "desc": "a Captain Marvel ersatz", "id": "1", "_vectors": {"default": [1.0, 3.0]}},
            {"title": "Captain Planet", "desc": "He's not part of the Marvel Cinematic Universe", "id": "2", "_vectors": {"default": [1.0, 2.0]}},
            {"title": "Captain Marvel", "desc": "a Shazam ersatz", "id": "3", "_vectors": {"default": [2.0, 3.0]}}
        ]),
    )
    .await;
    assert_eq!(t["status"], "succeeded", "{t}");
    node
}

async fn search(node: &Node, body: Value) -> Value {
    let r = node
        .call("POST", "/indexes/test/search", Some(body.clone()))
        .await;
    assert_eq!(r.status, 200, "{body} -> {}", r.body);
    r.body
}

fn ids(body: &Value) -> Vec<&str> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect()
}

fn scores(body: &Value) -> Vec<f64> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_rankingScore"].as_f64().unwrap())
        .collect()
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

#[tokio::test]
async fn semantic_search_scores_like_meilisearch() {
    let node = movies().await;
    // semanticRatio 1: a semantic search; Meilisearch answers 3, 2, 1 with these scores.
    let body = search(
        &node,
        json!({"q": "Captain", "vector": [1.0, 1.0], "showRankingScore": true,
               "hybrid": {"embedder": "default", "semanticRatio": 1.0}, "retrieveVectors": true}),
    )
    .await;
    assert_eq!(ids(&body), ["3", "2", "1"]);
    assert!(close(
        &scores(&body),
        &[0.990290343761444, 0.974341630935669, 0.9472135901451112]
    ));
    assert_eq!(body["semanticHitCount"], 3);
    assert_eq!(body["queryVector"], json!([1.0, 1.0]));
    assert_eq!(
        body["hits"][0]["_vectors"],
        json!({"default": {"embeddings": [[2.0, 3.0]], "regenerate": false}})
    );
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "hits",
            "query",
            "queryVector",
            "processingTimeMs",
            "limit",
            "offset",
            "estimatedTotalHits",
            "requestUid",
            "semanticHitCount"
        ]
    );

    // No query text: semantic whatever the ratio; details carry `vectorSort`.
    let body = search(
        &node,
        json!({"vector": [1.0, 1.0], "hybrid": {"embedder": "default"}, "showRankingScoreDetails": true}),
    )
    .await;
    assert_eq!(ids(&body), ["3", "2", "1"]);
    assert_eq!(body["hits"][0].get("_vectors"), None);
    let details = &body["hits"][0]["_rankingScoreDetails"];
    assert_eq!(details.as_object().unwrap().len(), 1);
    assert_eq!(details["vectorSort"]["order"], 0);
    assert!(
        (details["vectorSort"]["similarity"].as_f64().unwrap() - 0.990290343761444).abs() < 1e-6
    );
    assert_eq!(body["estimatedTotalHits"], 3);

    // Page mode and a threshold.
    let body = search(
        &node,
        json!({"vector": [1.0, 1.0], "hybrid": {"embedder": "default"}, "hitsPerPage": 1, "page": 2,
               "rankingScoreThreshold": 0.96}),
    )
    .await;
    assert_eq!(ids(&body), ["2"]);
    assert_eq!(
        (body["totalHits"].clone(), body["totalPages"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(body["semanticHitCount"], 1);
}

#[tokio::test]
async fn hybrid_search_merges_like_meilisearch() {
    let node = movies().await;
    // A low ratio: keyword hits first (keyword order), no semantic hit in the page.
    let body = search(
        &node,
        json!({"q": "Captain", "vector": [1.0, 1.0], "hybrid": {"semanticRatio": 0.2, "embedder": "default"}}),
    )
    .await;
    assert_eq!(ids(&body), ["2", "3", "1"]);
    assert_eq!(body["semanticHitCount"], 0);
    assert_eq!(body["estimatedTotalHits"], 3);

    // A high ratio: every hit comes from the semantic list, with its similarity.
    let body = search(
        &node,
        json!({"q": "Captain", "vector": [1.0, 1.0], "showRankingScore": true,
               "hybrid": {"semanticRatio": 0.8, "embedder": "default"}}),
    )
    .await;
    assert_eq!(ids(&body), ["3", "2", "1"]);
    assert_eq!(body["semanticHitCount"], 3);
    assert!(close(
        &scores(&body),
        &[0.990290343761444, 0.974341630935669, 0.9472135901451112]
    ));

    // Offset and limit cut the merged list; semanticHitCount counts the page only.
    let body = search(
        &node,
        json!({"q": "Captain", "vector": [1.0, 1.0], "offset": 1, "limit": 1,
               "hybrid": {"semanticRatio": 0.9, "embedder": "default"}}),
    )
    .await;
    assert_eq!(ids(&body), ["2"]);
    assert_eq!(body["semanticHitCount"], 1);

    // Keyword results good enough (limit 1, score high): no semantic search at all.
    let body = search(
        &node,
        json!({"q": "Captain Planet", "vector": [1.0, 1.0], "limit": 1,
               "hybrid": {"semanticRatio": 0.5, "embedder": "default"}}),
    )
    .await;
    assert_eq!(ids(&body), ["2"]);
    assert_eq!(body["semanticHitCount"], 0);
    assert_eq!(body.get("queryVector"), None);

    // Without a vector, a user-provided embedder cannot embed the text: keyword results.
    let body = search(
        &node,
        json!({"q": "Captain", "hybrid": {"semanticRatio": 0.9, "embedder": "default"}}),
    )
    .await;
    assert_eq!(ids(&body), ["2", "3", "1"]);
    assert_eq!(body["semanticHitCount"], 0);

    // semanticRatio 0 is a keyword search: no semanticHitCount, the embedder is not checked.
    let body = search(
        &node,
        json!({"q": "Captain", "hybrid": {"semanticRatio": 0.0, "embedder": "nope"}}),
    )
    .await;
    assert_eq!(body.get("semanticHitCount"), None);

    // GET form.
    let r = node
        .call(
            "GET",
            "/indexes/test/search?q=Captain&vector=1,1&hybridEmbedder=default&hybridSemanticRatio=0.8",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r.body), ["3", "2", "1"]);
}

#[tokio::test]
async fn vector_errors_are_meilisearchs() {
    let node = movies().await;
    let cases = [
        (
            json!({"vector": [1.0, 1.0]}),
            "missing_search_hybrid",
            "Invalid request: missing `hybrid` parameter when `vector` or `media` are present.",
        ),
        (
            json!({"vector": [1.0, 1.0], "hybrid": {"embedder": "nope"}}),
            "invalid_search_embedder",
            "Cannot find embedder with name `nope`.",
        ),
        (
            json!({"vector": [1.0, 1.0, 1.0], "hybrid": {"embedder": "default"}}),
            "invalid_vector_dimensions",
            "Invalid vector dimensions: expected: `2`, found: `3`.",
        ),
        (
            json!({"q": "x", "hybrid": {"semanticRatio": 0.5}}),
            "invalid_search_hybrid_query",
            "Missing field `embedder` inside `.hybrid`",
        ),
        (
            json!({"q": "x", "hybrid": {"embedder": "default", "semanticRatio": 1.5}}),
            "invalid_search_semantic_ratio",
            "Invalid value at `.hybrid.semanticRatio`: the value of `semanticRatio` is invalid, expected a float between `0.0` and `1.0`.",
        ),
        (
            json!({"vector": "x", "hybrid": {"embedder": "default"}}),
            "invalid_search_vector",
            "Invalid value type at `.vector`: expected an array, but found a string: `\"x\"`",
        ),
    ];
    for (body, code, message) in cases {
        let r = node
            .call("POST", "/indexes/test/search", Some(body.clone()))
            .await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.body["code"], code, "{body}: {}", r.body);
        assert_eq!(r.body["message"], message, "{body}");
    }
}

#[tokio::test]
async fn documents_carry_vectors_as_meilisearch_stores_them() {
    let node = movies().await;
    // Hidden unless asked for.
    let r = node.call("GET", "/indexes/test/documents/3", None).await;
    assert_eq!(
        r.body,
        json!({"title": "Captain Marvel", "desc": "a Shazam ersatz", "id": "3"})
    );
    let r = node
        .call(
            "GET",
            "/indexes/test/documents/3?retrieveVectors=true",
            None,
        )
        .await;
    assert_eq!(
        r.body["_vectors"],
        json!({"default": {"embeddings": [[2.0, 3.0]], "regenerate": false}})
    );
    let r = node
        .call(
            "GET",
            "/indexes/test/documents?retrieveVectors=true&limit=1",
            None,
        )
        .await;
    assert_eq!(
        r.body["results"][0]["_vectors"]["default"]["embeddings"],
        json!([[1.0, 3.0]])
    );

    // Every document must give vectors for a user-provided embedder, or opt out with null.
    let r = node
        .call(
            "POST",
            "/indexes/test/documents",
            Some(json!([{"id": "40", "title": "x"}, {"id": "41", "title": "y"}])),
        )
        .await;
    let t = node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error"]["code"], "vector_embedding_error");
    assert_eq!(
        t["error"]["message"],
        "Index `test`: While embedding documents for embedder `default`: no vectors provided for document `40` and at least 1 other document(s)\n- Note: `default` has `source: userProvided`, so documents must provide embeddings as an array in `_vectors.default`.\n- Hint: opt-out for a document with `_vectors.default: null`"
    );
    let r = node
        .call(
            "POST",
            "/indexes/test/documents",
            Some(json!([{"id": "42", "_vectors": {"default": [1.0, 2.0, 3.0]}}])),
        )
        .await;
    let t = node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["error"]["code"], "invalid_vector_dimensions");
    assert_eq!(
        t["error"]["message"],
        "Index `test`: Invalid vector dimensions in document with id `42` in `._vectors.default`.\n  - note: embedding #0 has dimensions 3\n  - note: embedder `default` requires 2"
    );
    let r = node
        .call(
            "POST",
            "/indexes/test/documents",
            Some(json!([{"id": "43", "title": "none", "_vectors": {"default": null}}])),
        )
        .await;
    let t = node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");

    // A document without an embedding still matches a semantic search, last, with a 0 score.
    let body = search(
        &node,
        json!({"vector": [1.0, 1.0], "hybrid": {"embedder": "default"}, "showRankingScore": true,
               "showRankingScoreDetails": true, "retrieveVectors": true}),
    )
    .await;
    assert_eq!(ids(&body), ["3", "2", "1", "43"]);
    assert_eq!(body["hits"][3]["_rankingScore"], 0.0);
    assert_eq!(
        body["hits"][3]["_rankingScoreDetails"]["vectorSort"],
        json!({"order": 0, "similarity": null})
    );
    assert_eq!(
        body["hits"][3]["_vectors"],
        json!({"default": {"embeddings": [], "regenerate": false}})
    );

    // Statistics count embeddings.
    let r = node.call("GET", "/indexes/test/stats", None).await;
    assert_eq!(r.body["numberOfEmbeddings"], 3);
    assert_eq!(r.body["numberOfEmbeddedDocuments"], 3);

    // A user-provided embedder needs its dimensions.
    let t = write(
        &node,
        "PATCH",
        "/indexes/test/settings/embedders",
        json!({"other": {"source": "userProvided"}}),
    )
    .await;
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error"]["code"], "invalid_settings_embedders");
}

#[tokio::test]
async fn distribution_shift_and_sort_rules() {
    let node = movies().await;
    let t = write(
        &node,
        "PATCH",
        "/indexes/test/settings",
        json!({"embedders": {"default": {"distribution": {"mean": 0.998, "sigma": 0.01}}}}),
    )
    .await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let r = node
        .call("GET", "/indexes/test/settings/embedders", None)
        .await;
    assert_eq!(
        r.body,
        json!({"default": {"source": "userProvided", "dimensions": 2, "distribution": {"mean": 0.998, "sigma": 0.01}}})
    );
    let body = search(
        &node,
        json!({"q": "Captain", "vector": [1.0, 1.0], "showRankingScore": true,
               "hybrid": {"embedder": "default", "semanticRatio": 1.0}}),
    )
    .await;
    // Meilisearch: 0.19161224365234375, then two hits clamped to f32::EPSILON.
    let s = scores(&body);
    assert!((s[0] - 0.19161224365234375).abs() < 1e-3, "{s:?}");
    assert_eq!(s[1], 1.1920928955078125e-7);
    assert_eq!(s[2], 1.1920928955078125e-7);

    // A custom ranking rule keeps its place after `vectorSort`.
    write(
        &node,
        "PATCH",
        "/indexes/test/settings",
        json!({"rankingRules": ["words", "title:asc"], "embedders": {"default": {"distribution": null}}}),
    )
    .await;
    let body = search(
        &node,
        json!({"vector": [1.0, 1.0], "hybrid": {"embedder": "default"}, "showRankingScoreDetails": true}),
    )
    .await;
    let details = body["hits"][0]["_rankingScoreDetails"].as_object().unwrap();
    let names: Vec<&String> = details.keys().collect();
    assert_eq!(names, ["vectorSort", "title:asc"]);
    assert_eq!(details["title:asc"]["order"], 1);
}

//! Federated multi-search, and the index-level `distinctAttribute`, as Meilisearch 1.50.

mod support;

use serde_json::{json, Value};

use support::*;

async fn write(node: &Node, method: &str, path: &str, body: Value) -> Value {
    let r = node.call(method, path, Some(body)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let t = node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    t
}

async fn two_indexes() -> Node {
    let node = Node::start().await;
    write(
        &node,
        "PATCH",
        "/indexes/movies/settings",
        json!({"filterableAttributes": ["genre", "year"]}),
    )
    .await;
    write(
        &node,
        "POST",
        "/indexes/movies/documents",
        json!([
            {"id": 1, "title": "Batman", "genre": "action", "year": 1989},
            {"id": 2, "title": "Batman Returns", "genre": "action", "year": 1992},
            {"id": 3, "title": "Badman", "genre": "comedy", "year": 2001},
            {"id": 4, "title": "The Dark Knight", "genre": "action", "year": 2008}
        ]),
    )
    .await;
    write(
        &node,
        "PATCH",
        "/indexes/comics/settings",
        json!({"filterableAttributes": ["genre"]}),
    )
    .await;
    write(
        &node,
        "POST",
        "/indexes/comics/documents",
        json!([
            {"id": 10, "title": "Batman: Year One", "genre": "noir"},
            {"id": 11, "title": "Watchmen", "genre": "action"}
        ]),
    )
    .await;
    node
}

async fn multi(node: &Node, body: Value) -> (u16, Value) {
    let r = node.call("POST", "/multi-search", Some(body)).await;
    (r.status, r.body)
}

fn origins(body: &Value) -> Vec<(String, i64, u64)> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["_federation"]["indexUid"].as_str().unwrap().to_string(),
                h["id"].as_i64().unwrap(),
                h["_federation"]["queriesPosition"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn merges_queries_by_weighted_score() {
    let node = two_indexes().await;
    let (status, body) = multi(
        &node,
        json!({"federation": {}, "queries": [
            {"indexUid": "movies", "q": "batman", "showRankingScore": true},
            {"indexUid": "comics", "q": "batman"},
            {"indexUid": "movies", "q": "knight", "federationOptions": {"weight": 0.5}}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "hits",
            "processingTimeMs",
            "limit",
            "offset",
            "estimatedTotalHits",
            "requestUid"
        ]
    );
    // "Batman" is an exact match (1.0) in both indexes: on a tie, the lower query position.
    let o = origins(&body);
    assert_eq!(o[0], ("movies".into(), 1, 0));
    assert_eq!(o.last().unwrap(), &("movies".into(), 4, 2));
    assert_eq!(body["hits"][0]["_federation"]["weightedRankingScore"], 1.0);
    assert_eq!(body["hits"][0]["_rankingScore"], 1.0);
    // Hits keep their query's formatting: `_federation` before the scores.
    let hit_keys: Vec<&String> = body["hits"][0].as_object().unwrap().keys().collect();
    assert_eq!(hit_keys.last().unwrap().as_str(), "_rankingScore");
    let knight = body["hits"].as_array().unwrap().last().unwrap();
    assert_eq!(
        knight["_federation"]["weightedRankingScore"].as_f64(),
        Some(0.5 * knight_score(&node).await)
    );
    // Totals: distinct documents per index, summed (movies 1, 2, 4; comics 10).
    assert_eq!(body["estimatedTotalHits"], 4);

    // Weights reorder: the comics query weighted up goes first.
    let (_, body) = multi(
        &node,
        json!({"federation": {"limit": 2}, "queries": [
            {"indexUid": "movies", "q": "batman"},
            {"indexUid": "comics", "q": "batman", "federationOptions": {"weight": 2.0}}
        ]}),
    )
    .await;
    assert_eq!(origins(&body)[0], ("comics".into(), 10, 1));
    assert_eq!(body["hits"].as_array().unwrap().len(), 2);
    assert_eq!(body["limit"], 2);

    // A document reached by two queries of one index is kept once, from the better query.
    let (_, body) = multi(
        &node,
        json!({"federation": {}, "queries": [
            {"indexUid": "movies", "q": "returns"},
            {"indexUid": "movies", "q": "batman returns"}
        ]}),
    )
    .await;
    let o = origins(&body);
    assert_eq!(o.iter().filter(|(_, id, _)| *id == 2).count(), 1);

    // Page mode.
    let (_, body) = multi(
        &node,
        json!({"federation": {"page": 2, "hitsPerPage": 1}, "queries": [
            {"indexUid": "movies", "q": "batman"},
            {"indexUid": "comics", "q": "batman"}
        ]}),
    )
    .await;
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "hits",
            "processingTimeMs",
            "hitsPerPage",
            "page",
            "totalPages",
            "totalHits",
            "requestUid"
        ]
    );
    assert_eq!(
        (body["totalHits"].clone(), body["totalPages"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(body["hits"].as_array().unwrap().len(), 1);

    // An empty list of queries.
    let (status, body) = multi(&node, json!({"federation": {}, "queries": []})).await;
    assert_eq!(status, 200);
    assert_eq!(body["estimatedTotalHits"], 0);
}

async fn knight_score(node: &Node) -> f64 {
    let r = node
        .call(
            "POST",
            "/indexes/movies/search",
            Some(json!({"q": "knight", "showRankingScore": true})),
        )
        .await;
    r.body["hits"][0]["_rankingScore"].as_f64().unwrap()
}

#[tokio::test]
async fn facets_by_index_and_merged() {
    let node = two_indexes().await;
    let (status, body) = multi(
        &node,
        json!({"federation": {"facetsByIndex": {"movies": ["genre", "year"], "comics": ["genre"]}},
               "queries": [{"indexUid": "movies", "q": "batman"}, {"indexUid": "comics"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["facetsByIndex"],
        json!({
            "comics": {"distribution": {"genre": {"action": 1, "noir": 1}}, "stats": {}},
            "movies": {"distribution": {"genre": {"action": 2}, "year": {"1989": 1, "1992": 1}},
                       "stats": {"year": {"min": 1989.0, "max": 1992.0}}}
        })
    );

    let (status, body) = multi(
        &node,
        json!({"federation": {"facetsByIndex": {"movies": ["genre"], "comics": ["genre"]},
                              "mergeFacets": {"maxValuesPerFacet": 2}},
               "queries": [{"indexUid": "movies"}, {"indexUid": "comics"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.get("facetsByIndex"), None);
    assert_eq!(
        body["facetDistribution"],
        json!({"genre": {"action": 4, "comedy": 1}})
    );
    assert_eq!(body["facetStats"], json!({}));

    // Different value orders cannot be merged.
    write(
        &node,
        "PATCH",
        "/indexes/comics/settings/faceting",
        json!({"sortFacetValuesBy": {"genre": "count"}}),
    )
    .await;
    let (status, body) = multi(
        &node,
        json!({"federation": {"facetsByIndex": {"movies": ["genre"], "comics": ["genre"]},
                              "mergeFacets": {}},
               "queries": [{"indexUid": "movies"}, {"indexUid": "comics"}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_multi_search_facet_order");
    assert_eq!(
        body["message"],
        "Inside `.federation.facetsByIndex.movies`: Inconsistent order for values in facet `genre`: index `comics` orders by count, but index `movies` orders alphanumerically.\n - Hint: Remove `federation.mergeFacets` or change `faceting.sortFacetValuesBy` to be consistent in settings.\n - Note: index `movies` used in `.queries[0]`"
    );

    // A facet that is not filterable.
    let (status, body) = multi(
        &node,
        json!({"federation": {"facetsByIndex": {"movies": ["title"]}},
               "queries": [{"indexUid": "movies"}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_multi_search_facets");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Inside `.federation.facetsByIndex.movies`: Invalid facet distribution: Attribute `title` is not filterable."));
}

#[tokio::test]
async fn federation_errors_are_meilisearchs() {
    let node = two_indexes().await;
    let cases = [
        (
            json!({"federation": {}, "queries": [{"indexUid": "movies", "q": "x"}, {"indexUid": "movies", "limit": 5}]}),
            "invalid_multi_search_query_pagination",
            "Inside `.queries[1]`: Using pagination options is not allowed in federated queries.\n - Hint: remove `limit` from query #1 or remove `federation` from the request\n - Hint: pass `federation.limit` and `federation.offset` for pagination in federated search",
        ),
        (
            json!({"federation": {}, "queries": [{"indexUid": "movies", "facets": ["genre"]}]}),
            "invalid_multi_search_query_facets",
            "Inside `.queries[0]`: Using facet options is not allowed in federated queries.\n - Hint: remove `facets` from query #0 or remove `federation` from the request\n - Hint: pass `federation.facetsByIndex.movies: [\"genre\"]` for facets in federated search",
        ),
        (
            json!({"queries": [{"indexUid": "movies", "federationOptions": {"weight": 2}}]}),
            "invalid_multi_search_federation_options",
            "Using `federationOptions` is not allowed in a non-federated search.\n - Hint: remove `federationOptions` from query #0 or add `federation` to the request.",
        ),
        (
            json!({"federation": {}, "queries": [{"indexUid": "nope"}]}),
            "index_not_found",
            "Inside `.queries[0]`: Index `nope` not found.",
        ),
        (
            json!({"federation": {}, "queries": [{"indexUid": "movies", "federationOptions": {"queryPosition": 3}}]}),
            "feature_not_enabled",
            "Using `federationOptions.queryPosition` requires enabling the `network` experimental feature. See https://github.com/orgs/meilisearch/discussions/805",
        ),
        (
            json!({"federation": {}}),
            "bad_request",
            "Missing field `queries`",
        ),
        (
            json!({"federation": {}, "queries": [{"q": "x"}]}),
            "missing_index_uid",
            "Missing field `indexUid` inside `.queries[0]`",
        ),
    ];
    for (body, code, message) in cases {
        let (status, reply) = multi(&node, body.clone()).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert_eq!(reply["code"], code, "{body}: {reply}");
        assert_eq!(reply["message"], message, "{body}");
    }
}

#[tokio::test]
async fn query_position_with_the_network_feature() {
    let node = two_indexes().await;
    let r = node
        .call(
            "PATCH",
            "/experimental-features",
            Some(json!({"network": true})),
        )
        .await;
    assert_eq!((r.status, r.body["network"].clone()), (200, json!(true)));
    let (status, body) = multi(
        &node,
        json!({"federation": {}, "queries": [
            {"indexUid": "movies", "q": "badman", "federationOptions": {"queryPosition": 7}}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(origins(&body), [("movies".into(), 3, 7)]);
}

#[tokio::test]
async fn distinct_attribute_setting_and_parameter() {
    let node = two_indexes().await;
    write(
        &node,
        "PATCH",
        "/indexes/movies/settings",
        json!({"distinctAttribute": "genre"}),
    )
    .await;
    let r = node
        .call("POST", "/indexes/movies/search", Some(json!({})))
        .await;
    let ids: Vec<i64> = r.body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 3]);
    assert_eq!(r.body["estimatedTotalHits"], 2);
    // The `distinct` parameter overrides the setting.
    let r = node
        .call(
            "POST",
            "/indexes/movies/search",
            Some(json!({"distinct": "year"})),
        )
        .await;
    assert_eq!(r.body["estimatedTotalHits"], 4);

    // `federation.distinct` deduplicates across queries and indexes.
    write(
        &node,
        "PATCH",
        "/indexes/movies/settings",
        json!({"distinctAttribute": null}),
    )
    .await;
    let (status, body) = multi(
        &node,
        json!({"federation": {"distinct": "genre"}, "queries": [
            {"indexUid": "movies"}, {"indexUid": "comics"}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let genres: Vec<&str> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["genre"].as_str().unwrap())
        .collect();
    assert_eq!(genres, ["action", "comedy", "noir"]);
    assert_eq!(body["estimatedTotalHits"], 3);
}

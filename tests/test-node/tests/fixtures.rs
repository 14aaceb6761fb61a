//! Replays the requests recorded from Meilisearch 1.50 (`/work/shared/fixtures/meilisearch-1.50`)
//! against an in-process test node, in recorded order, and compares status codes and bodies.
//! Run-dependent values (dates, durations, request uids, sizes) are ignored; responses whose
//! content depends on Meilisearch's own relevance numbers are compared on hit order and shape.

mod support;

use serde_json::{json, Value};

use support::*;

async fn replay_exact(node: &Node, name: &str) {
    let (reply, expected) = node.replay(name).await;
    assert_same(name, &reply, &expected);
}

async fn replay_write(node: &Node, name: &str) -> u64 {
    let (reply, expected) = node.replay(name).await;
    assert_same(name, &reply, &expected);
    let uid = reply.body["taskUid"].as_u64().unwrap();
    node.wait_task(uid).await;
    uid
}

/// Compares a recorded `GET /tasks/{uid}` with ours.
async fn check_task(node: &Node, name: &str) {
    let (reply, expected) = node.replay(name).await;
    assert_same(name, &reply, &expected);
}

#[tokio::test]
async fn replays_recorded_meilisearch_session() {
    let node = Node::start().await;

    replay_exact(&node, "health").await;
    replay_exact(&node, "auth-missing-header").await;
    replay_exact(&node, "auth-invalid-key").await;
    replay_exact(&node, "index-create-invalid-uid").await;

    replay_write(&node, "index-create").await;
    replay_write(&node, "index-create-duplicate").await;
    check_task(&node, "task-failed-index-already-exists").await;
    replay_write(&node, "settings-update").await;
    check_task(&node, "task-succeeded-settings").await;
    replay_write(&node, "documents-add-json").await;
    check_task(&node, "task-succeeded-documents").await;
    replay_write(&node, "documents-add-ndjson").await;
    replay_write(&node, "documents-add-csv-typed").await;
    replay_write(&node, "documents-update-put").await;
    replay_write(&node, "documents-add-missing-pk").await;
    check_task(&node, "task-failed-missing-document-id").await;
    replay_write(&node, "documents-add-invalid-pk").await;
    check_task(&node, "task-failed-invalid-document-id").await;

    for name in [
        "documents-add-empty",
        "documents-add-malformed",
        "documents-add-wrong-content-type",
        "documents-add-missing-content-type",
        "index-get",
        "index-get-not-found",
        "indexes-list",
        "index-stats",
        "stats",
        "settings-get",
        "document-get",
        "document-get-fields",
        "document-get-not-found",
        "documents-list",
        "documents-fetch-filter",
        "documents-fetch-sort",
        "search-basic",
        "search-get",
        "search-filter",
        "search-filter-array",
        "search-facets",
        "search-offset-limit",
        "search-page",
        "search-filter-not-filterable",
        "search-invalid-filter",
        "search-sort-not-sortable",
        "search-unknown-param",
        "search-index-not-found",
        "multi-search",
        "multi-search-index-not-found",
        "task-not-found",
        "tasks-cancel-no-filter",
    ] {
        replay_exact(&node, name).await;
    }

    // Federated multi-search: hit order, shape, origins and totals as recorded; the weighted
    // scores are the test node's own, but the weight applies as on Meilisearch.
    let (reply, expected) = node.replay("multi-search-federated").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(hit_ids(&reply.body), hit_ids(&expected["body"]));
    assert_same_shape("multi-search-federated", &reply.body, &expected["body"]);
    for (a, e) in reply.body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .zip(expected["body"]["hits"].as_array().unwrap())
    {
        assert_eq!(a["_federation"]["indexUid"], e["_federation"]["indexUid"]);
        assert_eq!(
            a["_federation"]["queriesPosition"],
            e["_federation"]["queriesPosition"]
        );
    }
    assert_eq!(
        reply.body["estimatedTotalHits"],
        expected["body"]["estimatedTotalHits"]
    );
    assert_eq!(
        reply.body["hits"][3]["_federation"]["weightedRankingScore"],
        0.5
    );

    // Relevance numbers are the test node's own: compare hit order and the details' shape.
    for name in [
        "search-ranking-score",
        "search-ranking-score-details",
        "search-sort-details",
        "search-placeholder-sort",
    ] {
        let (reply, expected) = node.replay(name).await;
        assert_eq!(reply.status, 200, "{name}");
        assert_eq!(
            hit_ids(&reply.body),
            hit_ids(&expected["body"]),
            "{name}: hit order"
        );
        assert_same_shape(name, &reply.body, &expected["body"]);
        for hit in reply.body["hits"].as_array().unwrap() {
            if let Some(score) = hit.get("_rankingScore") {
                let s = score.as_f64().unwrap();
                assert!((0.0..=1.0).contains(&s), "{name}: score {s}");
            }
        }
    }
    // Placeholder sort details carry the real sort values.
    let (reply, expected) = node.replay("search-placeholder-sort").await;
    assert_same("search-placeholder-sort", &reply, &expected);

    replay_write(&node, "settings-ranking-rules-put").await;
    let (reply, expected) = node.replay("search-custom-rule-details").await;
    assert_eq!(
        hit_ids(&reply.body),
        hit_ids(&expected["body"]),
        "custom rule order"
    );
    assert_same_shape("search-custom-rule-details", &reply.body, &expected["body"]);
    // Sort values are not part of the score and must be the documents' own.
    for (a, e) in reply.body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .zip(expected["body"]["hits"].as_array().unwrap())
    {
        assert_eq!(
            a["_rankingScoreDetails"]["rating:desc"],
            e["_rankingScoreDetails"]["rating:desc"]
        );
        assert_eq!(
            a["_rankingScoreDetails"]["exactness"]["matchType"],
            e["_rankingScoreDetails"]["exactness"]["matchType"]
        );
    }

    replay_write(&node, "settings-faceting-patch").await;
    replay_exact(&node, "search-facets-truncated").await;
    replay_exact(&node, "facet-search").await;

    replay_write(&node, "documents-delete-one").await;
    replay_write(&node, "documents-delete-batch").await;
    replay_write(&node, "documents-delete-filter").await;
    check_task(&node, "task-succeeded-delete-filter").await;
    replay_exact(&node, "tasks-list").await;
    replay_exact(&node, "tasks-list-filtered").await;

    // The key value derives from the master key, which the recording does not reveal: compare
    // the rest, and the value with the derivation.
    for name in ["keys-create", "keys-get"] {
        let (mut reply, mut expected) = node.replay(name).await;
        let uid = reply.body["uid"].as_str().unwrap().to_string();
        assert_eq!(
            reply.body["key"],
            miroir_test_node::keys::generate_key(MASTER_KEY, &uid),
            "{name}"
        );
        reply.body["key"] = json!("<key>");
        expected["body"]["key"] = json!("<key>");
        assert_same(name, &reply, &expected);
    }

    replay_write(&node, "documents-clear").await;
    let clear = node.wait_task(14).await;
    assert_eq!(clear["type"], "documentDeletion");
    assert_eq!(clear["details"], json!({"deletedDocuments": 5}));
    replay_write(&node, "index-delete").await;
    let r = node.call("GET", "/indexes/movies", None).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn tasks_run_in_order_and_unknown_routes_are_empty_404s() {
    let node = Node::start().await;
    let r = node
        .call(
            "POST",
            "/indexes/books/documents",
            Some(json!([{"book_id": "a"}, {"book_id": 2}])),
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["status"], "enqueued");
    let r = node
        .call(
            "PUT",
            "/indexes/books/documents",
            Some(json!({"book_id": "a", "title": "Dune"})),
        )
        .await;
    assert_eq!(r.body["taskUid"], 1);
    let t = node.wait_task(1).await;
    assert_eq!(t["status"], "succeeded");
    let t0 = node.wait_task(0).await;
    assert!(t0["finishedAt"].as_str().unwrap() <= t["startedAt"].as_str().unwrap());
    let doc = node.call("GET", "/indexes/books/documents/a", None).await;
    assert_eq!(doc.body, json!({"book_id": "a", "title": "Dune"}));
    let idx = node.call("GET", "/indexes/books", None).await;
    assert_eq!(idx.body["primaryKey"], "book_id");

    // An empty array is a valid payload.
    let r = node
        .call("POST", "/indexes/empty/documents", Some(json!([])))
        .await;
    let t = node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded");
    assert_eq!(
        t["details"],
        json!({"receivedDocuments": 0, "indexedDocuments": 0})
    );

    let r = node
        .call(
            "POST",
            "/indexes/x/documents",
            Some(json!([{"id": 1, "uid": 2}])),
        )
        .await;
    let t = node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    assert_eq!(
        t["error"]["code"],
        "index_primary_key_multiple_candidates_found"
    );

    let r = node.call("GET", "/nope", None).await;
    assert_eq!((r.status, r.body), (404, Value::Null));

    // Totals are not capped by maxTotalHits; retrievable hits are.
    let docs: Vec<Value> = (0..30).map(|i| json!({"id": i})).collect();
    node.call(
        "PATCH",
        "/indexes/many/settings",
        Some(json!({"pagination": {"maxTotalHits": 10}})),
    )
    .await;
    let r = node
        .call("POST", "/indexes/many/documents", Some(Value::Array(docs)))
        .await;
    node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    let r = node
        .call(
            "POST",
            "/indexes/many/search",
            Some(json!({"offset": 8, "limit": 5})),
        )
        .await;
    assert_eq!(r.body["estimatedTotalHits"], 30);
    assert_eq!(hit_ids(&r.body), vec![json!(8), json!(9)]);
    let r = node
        .call(
            "POST",
            "/indexes/many/search",
            Some(json!({"page": 1, "hitsPerPage": 7})),
        )
        .await;
    assert_eq!(
        (r.body["totalHits"].clone(), r.body["totalPages"].clone()),
        (json!(30), json!(5))
    );
}

async fn seed_movies(node: &Node) {
    node.call(
        "PATCH",
        "/indexes/movies/settings",
        Some(json!({"filterableAttributes": ["genres", "year"], "displayedAttributes": ["*"]})),
    )
    .await;
    let r = node
        .call(
            "POST",
            "/indexes/movies/documents",
            Some(json!([
                {"id": 1, "title": "Alien", "genres": ["Horror", "Science Fiction"], "year": 1979},
                {"id": 2, "title": "Aliens", "genres": ["Action", "Science Fiction"], "year": 1986},
                {"id": 3, "title": "Heat", "genres": ["Action", "Crime"], "year": 1995},
                {"id": 4, "title": "Amelie", "genres": ["comedy", "Romance"], "year": 2001},
                {"id": 5, "title": "Arrival", "genres": ["Science Fiction", "drama"], "year": 2016}
            ])),
        )
        .await;
    let t = node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
}

#[tokio::test]
async fn api_keys_are_managed_and_enforced() {
    use miroir_test_node::keys::generate_key;
    let node = Node::start().await;
    seed_movies(&node).await;

    // Default keys, newest first.
    let r = node.call("GET", "/keys", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["total"], 4);
    let names: Vec<&str> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Default Read-Only Admin API Key",
            "Default Search API Key",
            "Default Admin API Key",
            "Default Chat API Key"
        ]
    );
    let key_of = |name: &str| {
        r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (search_key, admin_key, read_only_key) = (
        key_of("Default Search API Key"),
        key_of("Default Admin API Key"),
        key_of("Default Read-Only Admin API Key"),
    );
    for k in r.body["results"].as_array().unwrap() {
        assert_eq!(
            k["key"],
            generate_key(MASTER_KEY, k["uid"].as_str().unwrap())
        );
    }
    let r = node.call("GET", "/keys?offset=1&limit=1", None).await;
    assert_eq!(
        (
            r.body["results"][0]["name"].clone(),
            r.body["offset"].clone(),
            r.body["limit"].clone()
        ),
        (json!("Default Search API Key"), json!(1), json!(1))
    );

    // Create a scoped key with an explicit uid: the value is the derivation.
    let uid = "0b5c1e2a-3d4f-4a6b-8c9d-0e1f2a3b4c5d";
    let body = json!({"uid": uid, "name": "scoped", "actions": ["search", "documents.get"], "indexes": ["mov*"], "expiresAt": null});
    let r = node.call("POST", "/keys", Some(body.clone())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let key = generate_key(MASTER_KEY, uid);
    assert_eq!(r.body["key"], key);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "name",
            "description",
            "key",
            "uid",
            "actions",
            "indexes",
            "expiresAt",
            "createdAt",
            "updatedAt"
        ]
    );
    let r = node.call("POST", "/keys", Some(body)).await;
    assert_eq!(
        (r.status, r.body["code"].clone()),
        (409, json!("api_key_already_exists"))
    );
    let r = node
        .call(
            "POST",
            "/keys",
            Some(json!({"actions": ["search"], "indexes": ["*"]})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].clone(), r.body["message"].clone()),
        (
            400,
            json!("missing_api_key_expires_at"),
            json!("Missing field `expiresAt`")
        )
    );
    let r = node.call("GET", &format!("/keys/{key}"), None).await;
    assert_eq!((r.status, r.body["uid"].clone()), (200, json!(uid)));

    // Enforcement.
    let search = |path: &str| format!("/indexes/{path}/search");
    let r = node
        .call_as(&key, "POST", &search("movies"), Some(json!({"q": "alien"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = node
        .call_as(&key, "GET", "/indexes/movies/documents", None)
        .await;
    assert_eq!(r.status, 200);
    let r = node
        .call_as(
            &key,
            "POST",
            "/indexes/movies/documents",
            Some(json!([{"id": 9}])),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].clone(), r.body["message"].clone()),
        (
            403,
            json!("invalid_api_key"),
            json!("The provided API key is invalid.")
        )
    );
    let r = node
        .call_as(&key, "POST", &search("books"), Some(json!({})))
        .await;
    assert_eq!(
        (r.status, r.body["message"].clone()),
        (
            403,
            json!("The API key cannot acces the index `books`, authorized indexes are [\"mov*\"].")
        )
    );
    let r = node
        .call_as(
            &key,
            "POST",
            "/multi-search",
            Some(json!({"queries": [{"indexUid": "movies"}, {"indexUid": "books"}]})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["message"].clone()),
        (
            403,
            json!("Inside `.queries[1]`: The provided API key is invalid.")
        )
    );
    assert_eq!(
        node.call_as(&key, "GET", "/indexes", None).await.status,
        403
    );
    assert_eq!(node.call_as(&key, "GET", "/keys", None).await.status, 403);
    assert_eq!(node.call_as("", "GET", "/version", None).await.status, 401);
    assert_eq!(
        node.call_as("nope", "GET", "/version", None).await.status,
        403
    );
    assert_eq!(node.call_as("", "GET", "/health", None).await.status, 200);

    // Default keys.
    let r = node
        .call_as(&search_key, "POST", &search("movies"), Some(json!({})))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        node.call_as(&search_key, "GET", "/indexes/movies/settings", None)
            .await
            .status,
        403
    );
    assert_eq!(
        node.call_as(&read_only_key, "GET", "/indexes/movies/settings", None)
            .await
            .status,
        200
    );
    assert_eq!(
        node.call_as(&read_only_key, "GET", "/keys", None)
            .await
            .status,
        200
    );
    let r = node
        .call_as(
            &read_only_key,
            "PATCH",
            "/indexes/movies/settings",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = node
        .call_as(
            &admin_key,
            "POST",
            "/indexes",
            Some(json!({"uid": "books"})),
        )
        .await;
    assert_eq!(r.status, 202);
    let r = node
        .call_as(&admin_key, "DELETE", &format!("/keys/{uid}"), None)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, Value::Null);
    let r = node
        .call_as(&key, "POST", &search("movies"), Some(json!({})))
        .await;
    assert_eq!(r.status, 403);

    // A key may only create the indexes it covers, and only sees those in listings.
    let r = node
        .call(
            "POST",
            "/keys",
            Some(json!({"actions": ["indexes.*"], "indexes": ["mov*"], "expiresAt": "2999-01-01"})),
        )
        .await;
    assert_eq!(r.body["expiresAt"], "2999-01-01T00:00:00Z");
    let idx_key = r.body["key"].as_str().unwrap().to_string();
    let r = node
        .call_as(&idx_key, "POST", "/indexes", Some(json!({"uid": "books2"})))
        .await;
    assert_eq!(r.status, 403);
    let r = node
        .call_as(
            &idx_key,
            "POST",
            "/indexes",
            Some(json!({"uid": "movies2"})),
        )
        .await;
    assert_eq!(r.status, 202);
    node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    let r = node.call_as(&idx_key, "GET", "/indexes", None).await;
    let uids: Vec<&str> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["uid"].as_str().unwrap())
        .collect();
    assert_eq!(
        (uids, r.body["total"].clone()),
        (vec!["movies", "movies2"], json!(2))
    );

    // Updates: name and description only.
    let r = node
        .call(
            "PATCH",
            &format!("/keys/{idx_key}"),
            Some(json!({"name": "renamed", "description": null})),
        )
        .await;
    assert_eq!((r.status, r.body["name"].clone()), (200, json!("renamed")));
    let r = node
        .call(
            "PATCH",
            &format!("/keys/{idx_key}"),
            Some(json!({"indexes": ["*"]})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].clone()),
        (400, json!("immutable_api_key_indexes"))
    );
    let r = node.call("GET", &format!("/keys/{uid}"), None).await;
    assert_eq!(
        (r.status, r.body["code"].clone(), r.body["message"].clone()),
        (
            404,
            json!("api_key_not_found"),
            json!(format!("API key `{uid}` not found."))
        )
    );

    // Without a master key every route is open except /keys.
    let open = Node::start_with(None).await;
    let r = open.call_as("", "GET", "/keys", None).await;
    assert_eq!(
        (r.status, r.body["code"].clone()),
        (401, json!("missing_master_key"))
    );
    assert_eq!(open.call_as("", "GET", "/indexes", None).await.status, 200);
}

#[tokio::test]
async fn facet_search_finds_values_among_matching_documents() {
    let node = Node::start().await;
    seed_movies(&node).await;
    let fs = |body: Value| node.call("POST", "/indexes/movies/facet-search", Some(body));

    let r = fs(json!({"facetName": "genres", "facetQuery": "A"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["facetHits"],
        json!([{"value": "Action", "count": 2}])
    );
    assert_eq!(r.body["facetQuery"], "A");
    // All values without a query, alphabetical by normalized value; unknown fields are ignored.
    let r = fs(json!({"facetName": "genres", "limit": 3})).await;
    let values: Vec<&str> = r.body["facetHits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        [
            "Action",
            "comedy",
            "Crime",
            "drama",
            "Horror",
            "Romance",
            "Science Fiction"
        ]
    );
    assert_eq!(r.body["facetQuery"], Value::Null);
    // Only documents matching q and filter count.
    let r = fs(json!({"facetName": "genres", "facetQuery": "sc", "q": "alien"})).await;
    assert_eq!(
        r.body["facetHits"],
        json!([{"value": "Science Fiction", "count": 2}])
    );
    let r = fs(json!({"facetName": "genres", "filter": "year > 1990"})).await;
    assert_eq!(r.body["facetHits"].as_array().unwrap().len(), 6);
    // Count order and maxValuesPerFacet.
    node.call(
        "PATCH",
        "/indexes/movies/settings",
        Some(
            json!({"faceting": {"maxValuesPerFacet": 2, "sortFacetValuesBy": {"genres": "count"}}}),
        ),
    )
    .await;
    let r = node.call("GET", "/tasks?limit=1", None).await;
    node.wait_task(r.body["results"][0]["uid"].as_u64().unwrap())
        .await;
    let r = fs(json!({"facetName": "genres"})).await;
    assert_eq!(
        r.body["facetHits"],
        json!([{"value": "Science Fiction", "count": 3}, {"value": "Action", "count": 2}])
    );

    // Errors.
    let r = fs(json!({"facetQuery": "a"})).await;
    assert_eq!(
        (r.status, r.body["code"].clone(), r.body["message"].clone()),
        (
            400,
            json!("missing_facet_search_facet_name"),
            json!("Missing field `facetName`")
        )
    );
    let r = fs(json!({"facetName": "title"})).await;
    assert_eq!(
        (r.status, r.body["code"].clone(), r.body["message"].clone()),
        (
            400,
            json!("invalid_facet_search_facet_name"),
            json!("Index `movies`: Attribute `title` is not facet-searchable. Available facet-searchable attributes patterns are: `genres, year`. To make it facet-searchable add it to the `filterableAttributes` index settings.")
        )
    );
    let r = fs(json!({"facetName": "genres", "filter": "title = x"})).await;
    assert_eq!(r.body["code"], "invalid_search_filter");
    let r = node
        .call(
            "POST",
            "/indexes/nope/facet-search",
            Some(json!({"facetName": "genres"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].clone()),
        (404, json!("index_not_found"))
    );
    let r = node
        .call(
            "PUT",
            "/indexes/movies/settings/facet-search",
            Some(json!(false)),
        )
        .await;
    node.wait_task(r.body["taskUid"].as_u64().unwrap()).await;
    let r = fs(json!({"facetName": "genres"})).await;
    assert_eq!(
        (r.status, r.body["code"].clone(), r.body["message"].clone()),
        (
            400,
            json!("facet_search_disabled"),
            json!("The facet search is disabled for this index")
        )
    );
}

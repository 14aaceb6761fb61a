//! Index, settings, document-by-id and deletion routes through a real Envoy: the client sees one
//! Meilisearch, and the nodes hold what one Meilisearch would.

mod support;

use miroir_e2e::{Cluster, Spec};
use serde_json::{json, Value};
use support::{add_in_batches, corpus, create_movies, stored, three_nodes, with_reference, write};

fn total_stored(cluster: &Cluster) -> usize {
    cluster
        .node_ids()
        .iter()
        .map(|n| stored(&cluster.node_client(n)).len())
        .sum()
}

#[test]
fn index_and_settings_read_like_one_node() {
    let cluster = Cluster::start("routes_index_settings", three_nodes(1));
    let client = cluster.client();
    create_movies(&client);

    let (status, index) = client.get("/indexes/movies").pair();
    assert_eq!(status, 200, "{index}");
    assert_eq!(
        (index["uid"].as_str(), index["primaryKey"].as_str()),
        (Some("movies"), Some("id"))
    );
    assert!(index["createdAt"].is_string() && index["updatedAt"].is_string());
    let (status, list) = client.get("/indexes").pair();
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["results"][0]["uid"], "movies");

    // The client never sees `_miroir_shard`, though every node keeps it filterable.
    let (_, settings) = client.get("/indexes/movies/settings").pair();
    assert_eq!(settings["filterableAttributes"], json!(["genre", "year"]));
    let (_, filterable) = client
        .get("/indexes/movies/settings/filterable-attributes")
        .pair();
    assert_eq!(filterable, json!(["genre", "year"]));
    for node in cluster.node_ids() {
        let (_, own) = cluster
            .node_client(&node)
            .get("/indexes/movies/settings/filterable-attributes")
            .pair();
        assert!(
            own.as_array().unwrap().contains(&json!("_miroir_shard")),
            "{node}: {own}"
        );
    }
    write(
        &client,
        "PUT",
        "/indexes/movies/settings/filterable-attributes",
        &json!(["genre"]),
    );
    write(
        &client,
        "DELETE",
        "/indexes/movies/settings/sortable-attributes",
        &Value::Null,
    );
    let (_, filterable) = client
        .get("/indexes/movies/settings/filterable-attributes")
        .pair();
    assert_eq!(filterable, json!(["genre"]));
    // A full reset keeps searches working: the shard field is made filterable again.
    write(&client, "DELETE", "/indexes/movies/settings", &Value::Null);
    add_in_batches(&client, &corpus(30), 30);
    let (status, page) = client
        .post("/indexes/movies/search", &json!({"q": "kw0007"}))
        .pair();
    assert_eq!(
        (status, page["hits"][0]["id"].clone()),
        (200, json!(7)),
        "{page}"
    );

    let (status, version) = client.get("/version").pair();
    assert_eq!(status, 200);
    assert!(version["pkgVersion"].is_string(), "{version}");

    // Creating it again fails like on one node, and leaves the settings alone.
    write(
        &client,
        "PATCH",
        "/indexes/movies/settings",
        &json!({"filterableAttributes": ["genre"]}),
    );
    let (status, enqueued) = client.post("/indexes", &json!({"uid": "movies"})).pair();
    assert_eq!(status, 202);
    let task = wait_failed(&client, &enqueued);
    assert_eq!(task["error"]["code"], "index_already_exists");
    let (_, filterable) = client
        .get("/indexes/movies/settings/filterable-attributes")
        .pair();
    assert_eq!(filterable, json!(["genre"]));

    write(&client, "DELETE", "/indexes/movies", &Value::Null);
    let (status, error) = client.get("/indexes/movies").pair();
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("index_not_found"))
    );
}

fn wait_failed(client: &miroir_e2e::Client, enqueued: &Value) -> Value {
    let uid = enqueued["taskUid"].as_u64().unwrap();
    for _ in 0..600 {
        let (_, task) = client.get(&format!("/tasks/{uid}")).pair();
        if task["status"] == "failed" {
            return task;
        }
        assert_ne!(task["status"], "succeeded", "{task}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("task {uid} never failed");
}

#[test]
fn documents_by_id_and_deletions() {
    let cluster = Cluster::start("routes_documents", three_nodes(2));
    let client = cluster.client();
    create_movies(&client);
    add_in_batches(&client, &corpus(120), 120);
    assert_eq!(total_stored(&cluster), 240, "two copies of each document");

    let (status, doc) = client.get("/indexes/movies/documents/42").pair();
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["id"], 42);
    assert!(doc.get("_miroir_shard").is_none(), "{doc}");
    let (status, missing) = client.get("/indexes/movies/documents/4242").pair();
    assert_eq!(
        (status, missing["code"].as_str()),
        (404, Some("document_not_found"))
    );

    write(
        &client,
        "DELETE",
        "/indexes/movies/documents/42",
        &Value::Null,
    );
    let (status, _) = client.get("/indexes/movies/documents/42").pair();
    assert_eq!(status, 404);
    let task = write(
        &client,
        "POST",
        "/indexes/movies/documents/delete-batch",
        &json!([1, "2", 3]),
    );
    assert_eq!(task["type"], "documentDeletion");
    assert_eq!(total_stored(&cluster), 232);

    let task = write(
        &client,
        "POST",
        "/indexes/movies/documents/delete",
        &json!({"filter": "genre = drama"}),
    );
    assert_eq!(task["status"], "succeeded");
    for node in cluster.node_ids() {
        assert!(stored(&cluster.node_client(&node))
            .iter()
            .all(|d| d["genre"] != "drama"));
    }
    write(&client, "DELETE", "/indexes/movies/documents", &Value::Null);
    assert_eq!(total_stored(&cluster), 0);
}

/// Statistics count each document once, though every document is stored on several nodes.
#[test]
fn stats_count_each_document_once() {
    let cluster = Cluster::start(
        "routes_stats",
        Spec::new(
            &[
                ("a0", "a"),
                ("a1", "a"),
                ("a2", "a"),
                ("b0", "b"),
                ("b1", "b"),
            ],
            8,
            2,
        ),
    );
    let single = Cluster::single_node("routes_stats_single");
    for target in [cluster.client(), single.client()] {
        create_movies(&target);
        add_in_batches(&target, &corpus(150), 150);
    }
    assert_eq!(total_stored(&cluster), 600, "2 copies in each of 2 groups");
    let (status, stats) = cluster.client().get("/indexes/movies/stats").pair();
    assert_eq!(status, 200, "{stats}");
    let (_, reference) = single.client().get("/indexes/movies/stats").pair();
    assert_eq!(stats["numberOfDocuments"], 150);
    assert_eq!(stats["fieldDistribution"], reference["fieldDistribution"]);
    assert_eq!(stats["isIndexing"], false);

    let (status, all) = cluster.client().get("/stats").pair();
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["indexes"]["movies"]["numberOfDocuments"], 150);
    assert_eq!(
        all["indexes"]["movies"]["fieldDistribution"],
        reference["fieldDistribution"]
    );
    assert!(all["databaseSize"].as_u64().unwrap() > 0);
}

/// Document listings through Envoy: every document once, totals summed, sorted like one node.
#[test]
fn document_listings_match_one_node() {
    let (cluster, single) = with_reference("routes_listing", three_nodes(2), |target| {
        create_movies(target);
        write(
            target,
            "PATCH",
            "/indexes/movies/settings",
            &json!({"sortableAttributes": ["year"]}),
        );
        add_in_batches(target, &corpus(120), 120);
    });
    let client = cluster.client();
    let (status, all) = client.get("/indexes/movies/documents?limit=1000").pair();
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["total"], 120, "replicas are not counted twice");
    let mut ids: Vec<u64> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..120).collect::<Vec<_>>());
    assert!(all["results"][0].get("_miroir_shard").is_none());

    // Sorted pages walk the same year sequence as one node.
    let years = |target: &miroir_e2e::Client, page: usize| {
        let mut years = Vec::new();
        for offset in (0..120).step_by(page) {
            let body = json!({"offset": offset, "limit": page, "sort": ["year:desc"], "fields": ["id"], "filter": "genre != horror"});
            let (status, got) = target.post("/indexes/movies/documents/fetch", &body).pair();
            assert_eq!(status, 200, "{got}");
            for doc in got["results"].as_array().unwrap() {
                assert_eq!(
                    doc.as_object().unwrap().keys().collect::<Vec<_>>(),
                    ["id"],
                    "only the fields asked for"
                );
                years.push(doc["id"].as_u64().unwrap());
            }
        }
        years
    };
    let year_of = |id: u64| corpus(120)[id as usize]["year"].as_u64().unwrap();
    let sharded: Vec<u64> = years(&client, 7).into_iter().map(year_of).collect();
    let reference: Vec<u64> = years(&single.client(), 200)
        .into_iter()
        .map(year_of)
        .collect();
    assert_eq!(sharded, reference);

    let (status, some) = client
        .get("/indexes/movies/documents?ids=3,17,99&fields=id,title")
        .pair();
    assert_eq!(status, 200, "{some}");
    let mut got: Vec<u64> = some["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!((got, some["total"].clone()), (vec![3, 17, 99], json!(3)));
}

/// Keys created through Miroir work on every node: the nodes enforce them, Miroir forwards them.
#[test]
fn api_keys_work_through_miroir() {
    let cluster = Cluster::start("routes_keys", three_nodes(1));
    let admin = cluster.client();
    create_movies(&admin);
    let (status, key) = admin
        .post("/keys", &json!({"actions": ["search", "documents.add"], "indexes": ["movies"], "expiresAt": null}))
        .pair();
    assert_eq!(status, 201, "{key}");
    let value = key["key"].as_str().unwrap().to_string();
    let uid = key["uid"].as_str().unwrap().to_string();
    for node in cluster.node_ids() {
        let (status, there) = cluster
            .node_client(&node)
            .get(&format!("/keys/{uid}"))
            .pair();
        assert_eq!(
            (status, there["key"].as_str()),
            (200, Some(value.as_str())),
            "{node} derives the same value"
        );
    }

    // The key's own rights: add documents and search (Miroir's lookups use its own key)...
    let limited = cluster.client().with_key(&value);
    let (status, enqueued) = limited
        .post("/indexes/movies/documents", &Value::Array(corpus(20)))
        .pair();
    assert_eq!(status, 202, "{enqueued}");
    cluster.wait_all_nodes_idle();
    let (status, page) = limited
        .post(
            "/indexes/movies/search",
            &json!({"q": "kw0003", "facets": ["genre"]}),
        )
        .pair();
    assert_eq!(
        (status, page["hits"][0]["id"].clone()),
        (200, json!(3)),
        "{page}"
    );
    // ...and nothing more: the nodes refuse, Miroir relays.
    let (status, error) = limited
        .patch(
            "/indexes/movies/settings",
            &json!({"sortableAttributes": ["year"]}),
        )
        .pair();
    assert_eq!(
        (status, error["code"].as_str()),
        (403, Some("invalid_api_key")),
        "{error}"
    );
    let (status, _) = cluster
        .client()
        .with_key("not-a-key")
        .post("/indexes/movies/search", &json!({}))
        .pair();
    assert_eq!(status, 403);

    let (status, list) = admin.get("/keys").pair();
    assert_eq!(status, 200, "{list}");
    assert!(list["results"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["uid"] == json!(uid)));
    assert!(admin
        .get("/keys")
        .header("x-miroir-disagreeing-nodes")
        .is_none());
    let reply = admin.delete(&format!("/keys/{uid}"));
    assert_eq!(reply.status, 204, "{}", reply.text());
    let (status, _) = limited.post("/indexes/movies/search", &json!({})).pair();
    assert_eq!(status, 403, "a deleted key stops working everywhere");
}

/// Facet search through Envoy answers like one node. Counts are asked exhaustive: Meilisearch's
/// default estimate would differ between one node and several for reasons of its own.
#[test]
fn facet_search_matches_one_node() {
    let (cluster, single) = with_reference("routes_facet_search", three_nodes(2), |target| {
        create_movies(target);
        add_in_batches(target, &corpus(200), 200);
    });
    for body in [
        json!({"facetName": "genre", "exhaustiveFacetCount": true}),
        json!({"facetName": "genre", "facetQuery": "d", "q": "mirror", "exhaustiveFacetCount": true}),
        json!({"facetName": "genre", "filter": "year > 1990", "exhaustiveFacetCount": true}),
    ] {
        let (status, got) = cluster
            .client()
            .post("/indexes/movies/facet-search", &body)
            .pair();
        assert_eq!(status, 200, "{got}");
        let (_, want) = single
            .client()
            .post("/indexes/movies/facet-search", &body)
            .pair();
        assert_eq!(got["facetHits"], want["facetHits"], "{body}");
        assert_eq!(got["facetQuery"], want["facetQuery"]);
    }
}

/// Experimental features are per node: a PATCH through Miroir sets them on every node, and a
/// GET tells them like one node would.
#[test]
fn experimental_features_are_set_on_every_node() {
    let cluster = Cluster::start("routes_features", three_nodes(1));
    let client = cluster.client();
    let (status, patched) = client
        .patch("/experimental-features", &json!({"containsFilter": true}))
        .pair();
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["containsFilter"], json!(true), "{patched}");
    for node in cluster.node_ids() {
        let (status, features) = cluster
            .node_client(&node)
            .get("/experimental-features")
            .pair();
        assert_eq!(status, 200, "{features}");
        assert_eq!(features, patched, "{node}");
    }
    let (status, features) = client.get("/experimental-features").pair();
    assert_eq!((status, features), (200, patched));

    let (status, error) = client
        .patch("/experimental-features", &json!({"noSuchFeature": true}))
        .pair();
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["code"], json!("bad_request"), "{error}");
}

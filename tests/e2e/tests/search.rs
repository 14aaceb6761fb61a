//! Searches through a real Envoy compared with the nodes themselves and with one node holding
//! every document.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use miroir_e2e::{Client, Cluster};
use serde_json::{json, Value};
use support::{add_in_batches, corpus, create_movies, three_nodes, with_reference, write};

fn ids(hits: &Value) -> Vec<u64> {
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect()
}

/// Scenario 2: with two copies of every shard in the group, each node also holds shards it is
/// not asked for; a keyword unique to a document still finds it exactly once.
#[test]
fn a_unique_keyword_finds_its_document_exactly_once() {
    let cluster = Cluster::start("search_exactly_once", three_nodes(2));
    let client = cluster.client();
    create_movies(&client);
    let docs = corpus(1000);
    add_in_batches(&client, &docs, 500);

    for i in 0..docs.len() {
        let (status, page) = client
            .post("/indexes/movies/search", &json!({"q": format!("kw{i:04}")}))
            .pair();
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            ids(&page["hits"]),
            vec![i as u64],
            "search for kw{i:04}: {page}"
        );
        assert_eq!(page["estimatedTotalHits"], 1);
        assert!(
            page["hits"][0].get("_miroir_shard").is_none(),
            "internal field leaked"
        );
    }
    // Every document once over a placeholder search too.
    let (_, page) = client
        .post("/indexes/movies/search", &json!({"limit": 1000}))
        .pair();
    let all: BTreeSet<u64> = ids(&page["hits"]).into_iter().collect();
    assert_eq!(all.len(), 1000);
    assert_eq!(page["estimatedTotalHits"], 1000);
}

/// Scenario 3: facet counts through Envoy are the sum over the nodes and equal one node's.
#[test]
fn facet_counts_add_up_across_nodes_and_match_one_node() {
    let docs = corpus(600);
    let (cluster, single) = with_reference("search_facets", three_nodes(1), |target| {
        // The index is created implicitly by the first batch, as Meilisearch allows.
        add_in_batches(target, &docs, 200);
        write(
            target,
            "PATCH",
            "/indexes/movies/settings",
            &json!({"filterableAttributes": ["genre", "year"]}),
        );
    });
    let query = json!({"q": "mirror", "facets": ["genre", "year"], "filter": "year >= 1970"});
    let (status, through_envoy) = cluster
        .client()
        .post("/indexes/movies/search", &query)
        .pair();
    assert_eq!(status, 200, "{through_envoy}");

    let mut summed: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for node in cluster.node_ids() {
        let (status, page) = cluster
            .node_client(&node)
            .post("/indexes/movies/search", &query)
            .pair();
        assert_eq!(status, 200, "{page}");
        for (facet, counts) in page["facetDistribution"].as_object().unwrap() {
            for (value, count) in counts.as_object().unwrap() {
                *summed
                    .entry(facet.clone())
                    .or_default()
                    .entry(value.clone())
                    .or_default() += count.as_u64().unwrap();
            }
        }
    }
    assert_eq!(through_envoy["facetDistribution"], json!(summed));
    let (_, reference) = single
        .client()
        .post("/indexes/movies/search", &query)
        .pair();
    assert_eq!(
        through_envoy["facetDistribution"],
        reference["facetDistribution"]
    );
    assert_eq!(through_envoy["facetStats"], reference["facetStats"]);
    assert_eq!(
        through_envoy["estimatedTotalHits"],
        reference["estimatedTotalHits"]
    );
}

/// Scenario 4: walking the results page by page through Envoy gives one node's global order.
/// Hits of equal score are ordered by internal document id on one node, which a sharded cluster
/// cannot know; within such a tie the order may differ (docs/architecture.md), never the scores
/// or the set of hits.
#[test]
fn paging_follows_one_nodes_global_order() {
    let docs = corpus(400);
    let (cluster, single) = with_reference("search_paging", three_nodes(1), |target| {
        create_movies(target);
        add_in_batches(target, &docs, 400);
    });
    for q in ["mirror road", "river", "night storm garden"] {
        let reference = walk(&single.client(), q, 1000);
        let sharded = walk(&cluster.client(), q, 7);
        assert!(!reference.is_empty(), "query {q} matches nothing");
        let scores = |hits: &[(u64, f64)]| hits.iter().map(|h| h.1).collect::<Vec<_>>();
        assert_eq!(
            scores(&sharded),
            scores(&reference),
            "query {q}: score order differs"
        );
        let by_score = |hits: &[(u64, f64)]| {
            let mut groups: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
            for (id, score) in hits {
                groups
                    .entry(format!("{score:.12}"))
                    .or_default()
                    .insert(*id);
            }
            groups
        };
        assert_eq!(
            by_score(&sharded),
            by_score(&reference),
            "query {q}: different hits per score"
        );
        let unique: BTreeSet<u64> = sharded.iter().map(|h| h.0).collect();
        assert_eq!(
            unique.len(),
            sharded.len(),
            "query {q}: a hit repeated across pages"
        );
    }
}

/// Every hit of `q`, `page_size` at a time, with its score.
fn walk(client: &Client, q: &str, page_size: u64) -> Vec<(u64, f64)> {
    let mut hits = Vec::new();
    let mut offset = 0;
    loop {
        let body = json!({"q": q, "offset": offset, "limit": page_size, "showRankingScore": true});
        let (status, page) = client.post("/indexes/movies/search", &body).pair();
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            (page["offset"].as_u64(), page["limit"].as_u64()),
            (Some(offset), Some(page_size))
        );
        let batch = page["hits"].as_array().unwrap();
        hits.extend(batch.iter().map(|h| {
            (
                h["id"].as_u64().unwrap(),
                h["_rankingScore"].as_f64().unwrap(),
            )
        }));
        if (batch.len() as u64) < page_size {
            return hits;
        }
        offset += page_size;
    }
}

/// A node that dies is replaced, inside the request, by another owner of its shards: searches
/// keep answering with every hit exactly once.
#[test]
fn searches_survive_a_dead_node() {
    let cluster = Cluster::start("search_failover", three_nodes(2));
    let client = cluster.client();
    create_movies(&client);
    add_in_batches(&client, &corpus(300), 300);
    let before = client
        .post(
            "/indexes/movies/search",
            &json!({"q": "mirror", "limit": 300}),
        )
        .json();

    cluster.kill_node("n1");
    for _ in 0..12 {
        let (status, page) = client
            .post(
                "/indexes/movies/search",
                &json!({"q": "mirror", "limit": 300}),
            )
            .pair();
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["estimatedTotalHits"], before["estimatedTotalHits"]);
        let mut got = ids(&page["hits"]);
        let mut expected = ids(&before["hits"]);
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected);
    }
}

/// Sorted searches (query `sort` and a custom ranking rule) page through Envoy in one node's
/// order: the same ranking details hit after hit, the same hits for each.
#[test]
fn sorted_paging_follows_one_nodes_order() {
    let (cluster, single) = with_reference("search_sorted", three_nodes(1), |target| {
        create_movies(target);
        write(
            target,
            "PATCH",
            "/indexes/movies/settings",
            &json!({"sortableAttributes": ["year", "genre"]}),
        );
        add_in_batches(target, &corpus(300), 300);
    });
    let queries = [
        json!({"q": "mirror", "sort": ["year:desc"]}),
        json!({"sort": ["genre:asc", "year:asc"]}),
        json!({"q": "river night", "sort": ["year:asc"], "filter": "genre != horror"}),
    ];
    for query in &queries {
        assert_same_ranking(&cluster.client(), &single.client(), query);
    }
    // A custom ranking rule is not in `_rankingScore` either.
    for target in [cluster.client(), single.client()] {
        write(
            &target,
            "PUT",
            "/indexes/movies/settings/ranking-rules",
            &json!([
                "words",
                "year:desc",
                "typo",
                "proximity",
                "attribute",
                "exactness"
            ]),
        );
    }
    assert_same_ranking(
        &cluster.client(),
        &single.client(),
        &json!({"q": "road garden"}),
    );
}

fn assert_same_ranking(sharded: &Client, single: &Client, query: &Value) {
    let walk = |client: &Client, page: u64| {
        let mut hits: Vec<(u64, String)> = Vec::new();
        let mut offset = 0;
        loop {
            let mut body = query.clone();
            body["offset"] = json!(offset);
            body["limit"] = json!(page);
            body["showRankingScoreDetails"] = json!(true);
            let (status, result) = client.post("/indexes/movies/search", &body).pair();
            assert_eq!(status, 200, "{query}: {result}");
            let batch = result["hits"].as_array().unwrap().clone();
            hits.extend(batch.iter().map(|h| {
                (
                    h["id"].as_u64().unwrap(),
                    h["_rankingScoreDetails"].to_string(),
                )
            }));
            if (batch.len() as u64) < page {
                return hits;
            }
            offset += page;
        }
    };
    let reference = walk(single, 1000);
    let got = walk(sharded, 9);
    assert!(!reference.is_empty(), "{query} matches nothing");
    assert_eq!(got.len(), reference.len(), "{query}: number of hits");
    if let Some(at) = (0..got.len()).find(|&i| got[i].1 != reference[i].1) {
        panic!(
            "{query}: ranking differs at hit {at}: got id {} {}, one node has id {} {}",
            got[at].0, got[at].1, reference[at].0, reference[at].1
        );
    }
    let groups = |hits: &[(u64, String)]| {
        let mut g: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for (id, d) in hits {
            g.entry(d.clone()).or_default().insert(*id);
        }
        g
    };
    assert_eq!(
        groups(&got),
        groups(&reference),
        "{query}: different hits per rank"
    );
}

/// Multi-search and GET search through Envoy answer like one node.
#[test]
fn multi_search_and_get_search_match_one_node() {
    let (cluster, single) = with_reference("search_multi", three_nodes(1), |target| {
        create_movies(target);
        add_in_batches(target, &corpus(200), 200);
    });
    let body = json!({"queries": [
        {"indexUid": "movies", "q": "mirror", "facets": ["genre"], "showRankingScore": true, "limit": 200},
        {"indexUid": "movies", "q": "kw0042"},
        {"indexUid": "movies", "filter": "year > 2000", "limit": 200},
    ]});
    let (status, sharded) = cluster.client().post("/multi-search", &body).pair();
    assert_eq!(status, 200, "{sharded}");
    let (_, reference) = single.client().post("/multi-search", &body).pair();
    let results = sharded["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (got, want) in results.iter().zip(reference["results"].as_array().unwrap()) {
        assert_eq!(got["indexUid"], "movies");
        assert_eq!(got["estimatedTotalHits"], want["estimatedTotalHits"]);
        assert_eq!(got["facetDistribution"], want["facetDistribution"]);
        let set = |r: &Value| ids(&r["hits"]).into_iter().collect::<BTreeSet<_>>();
        assert_eq!(set(got), set(want));
    }
    let (status, error) = cluster
        .client()
        .post(
            "/multi-search",
            &json!({"queries": [{"indexUid": "movies"}, {"indexUid": "nope"}]}),
        )
        .pair();
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("index_not_found"))
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("Inside `.queries[1]`: "),
        "{error}"
    );

    let (status, got) = cluster
        .client()
        .get("/indexes/movies/search?q=mirror&limit=5&offset=3&facets=genre")
        .pair();
    assert_eq!(status, 200, "{got}");
    let (_, post) = cluster
        .client()
        .post(
            "/indexes/movies/search",
            &json!({"q": "mirror", "limit": 5, "offset": 3, "facets": ["genre"]}),
        )
        .pair();
    assert_eq!(ids(&got["hits"]), ids(&post["hits"]));
    assert_eq!(got["facetDistribution"], post["facetDistribution"]);
}

/// `distinct` keeps one hit per value across shards, the best one, like one node.
#[test]
fn distinct_holds_across_shards() {
    let (cluster, single) = with_reference("search_distinct", three_nodes(1), |target| {
        create_movies(target);
        add_in_batches(target, &corpus(300), 300);
    });
    for query in [
        json!({"q": "mirror", "distinct": "genre", "showRankingScore": true}),
        json!({"q": "road", "distinct": "genre", "showRankingScore": true, "attributesToRetrieve": ["id"]}),
    ] {
        let best = |client: &Client| {
            let (status, page) = client.post("/indexes/movies/search", &query).pair();
            assert_eq!(status, 200, "{page}");
            page["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    let genre = corpus(300)[h["id"].as_u64().unwrap() as usize]["genre"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    (
                        genre,
                        format!("{:.12}", h["_rankingScore"].as_f64().unwrap()),
                    )
                })
                .collect::<Vec<_>>()
        };
        let sharded = best(&cluster.client());
        let genres: BTreeSet<&String> = sharded.iter().map(|(g, _)| g).collect();
        assert_eq!(
            genres.len(),
            sharded.len(),
            "{query}: a genre twice in {sharded:?}"
        );
        let sorted = |mut v: Vec<(String, String)>| {
            v.sort();
            v
        };
        assert_eq!(sorted(sharded), sorted(best(&single.client())), "{query}");
    }
}

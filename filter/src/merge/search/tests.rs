#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use serde_json::{json, Map, Value};

use super::*;
use crate::merge::facets::*;
use crate::plan::search_body::*;
use crate::request::search_params::*;

fn merge_default(
    client: &Map<String, Value>,
    pagination: Pagination,
    responses: Vec<Map<String, Value>>,
) -> Value {
    merge_values(client, pagination, responses, &Faceting::default(), None)
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// Three nodes' full result lists with many equal scores.
fn node_lists() -> Vec<Vec<Value>> {
    let scores = [
        [0.9, 0.9, 0.5, 0.5, 0.5, 0.1],
        [0.9, 0.7, 0.5, 0.5, 0.2, 0.1],
        [1.0, 0.5, 0.5, 0.5, 0.5, 0.5],
    ];
    scores
        .iter()
        .enumerate()
        .map(|(n, list)| {
            list.iter()
                .enumerate()
                .map(|(i, s)| json!({"id": format!("{n}-{i}"), "_rankingScore": s, "_miroir_shard": n}))
                .collect()
        })
        .collect()
}

fn page(lists: &[Vec<Value>], offset: u64, limit: u64) -> Vec<String> {
    let pagination = Pagination::Offset { offset, limit };
    let wanted = (offset + limit) as usize;
    let responses = lists
        .iter()
        .map(|hits| {
            let total = hits.len();
            obj(json!({"hits": hits.iter().take(wanted).cloned().collect::<Vec<_>>(), "query": "", "processingTimeMs": 1, "limit": wanted, "offset": 0, "estimatedTotalHits": total}))
        })
        .collect();
    let merged = merge_default(&obj(json!({})), pagination, responses);
    merged["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn pages_partition_the_merged_order() {
    let lists = node_lists();
    let everything = page(&lists, 0, 100);
    assert_eq!(everything.len(), 18);
    assert_eq!(everything[0], "2-0", "highest score first");
    for limit in 1..6 {
        let mut walked = Vec::new();
        let mut offset = 0;
        while offset < 18 {
            walked.extend(page(&lists, offset, limit));
            offset += limit;
        }
        assert_eq!(
            walked, everything,
            "paging by {limit} neither repeats nor skips"
        );
    }
}

#[test]
fn totals_add_up_and_internal_fields_are_stripped() {
    let responses = vec![
        obj(
            json!({"hits": [{"id": 1, "_rankingScore": 0.5, "_miroir_shard": 0}], "query": "q", "processingTimeMs": 3, "limit": 20, "offset": 0, "estimatedTotalHits": 4, "facetDistribution": {"genre": {"b": 1, "a": 2}}, "facetStats": {"year": {"min": 1990.0, "max": 2000.0}}, "requestUid": "u"}),
        ),
        obj(
            json!({"hits": [{"id": 2, "_rankingScore": 0.7, "_miroir_shard": 1}], "query": "q", "processingTimeMs": 9, "limit": 20, "offset": 0, "estimatedTotalHits": 5, "facetDistribution": {"genre": {"c": 4, "a": 1}}, "facetStats": {"year": {"min": 1985.0, "max": 1999.0}}, "requestUid": "v"}),
        ),
    ];
    let merged = merge_default(
        &obj(json!({"showRankingScore": true})),
        Pagination::Offset {
            offset: 0,
            limit: 20,
        },
        responses,
    );
    assert_eq!(
        merged["hits"],
        json!([{"id": 2, "_rankingScore": 0.7}, {"id": 1, "_rankingScore": 0.5}])
    );
    assert_eq!(merged["estimatedTotalHits"], 9);
    assert_eq!(merged["processingTimeMs"], 9);
    assert_eq!(
        merged["facetDistribution"],
        json!({"genre": {"a": 3, "b": 1, "c": 4}})
    );
    assert_eq!(
        merged["facetStats"],
        json!({"year": {"min": 1985.0, "max": 2000.0}})
    );
    let keys: Vec<&String> = merged.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "hits",
            "query",
            "processingTimeMs",
            "limit",
            "offset",
            "estimatedTotalHits",
            "facetDistribution",
            "facetStats",
            "requestUid"
        ]
    );
}

#[test]
fn exhaustive_pagination_counts_pages() {
    let responses = vec![
        obj(
            json!({"hits": [], "query": "", "processingTimeMs": 0, "hitsPerPage": 4, "page": 1, "totalPages": 1, "totalHits": 3}),
        ),
        obj(
            json!({"hits": [], "query": "", "processingTimeMs": 0, "hitsPerPage": 4, "page": 1, "totalPages": 2, "totalHits": 5}),
        ),
    ];
    let merged = merge_default(
        &obj(json!({"page": 2, "hitsPerPage": 2})),
        Pagination::Pages {
            page: 2,
            hits_per_page: 2,
        },
        responses,
    );
    assert_eq!(
        (
            merged["totalHits"].clone(),
            merged["totalPages"].clone(),
            merged["page"].clone()
        ),
        (json!(8), json!(4), json!(2))
    );
}

#[test]
fn pagination_parameters_are_validated() {
    assert_eq!(
        parse_pagination(&obj(json!({}))).unwrap(),
        Pagination::Offset {
            offset: 0,
            limit: 20
        }
    );
    assert_eq!(
        parse_pagination(&obj(json!({"hitsPerPage": 5}))).unwrap(),
        Pagination::Pages {
            page: 1,
            hits_per_page: 5
        }
    );
    let err = parse_pagination(&obj(json!({"limit": -1}))).unwrap_err();
    assert_eq!((err.status, err.code), (400, "invalid_search_limit"));
    let body = node_body(
        &obj(json!({"page": 3, "hitsPerPage": 10, "filter": [["a = 1", "b = 2"]]})),
        parse_pagination(&obj(json!({"page": 3, "hitsPerPage": 10}))).unwrap(),
        &[2, 5],
    );
    assert_eq!(body["page"], 1);
    assert_eq!(body["hitsPerPage"], 30);
    assert_eq!(
        body["filter"],
        json!([
            ["a = 1", "b = 2"],
            miroir_topology::reserved::shard_filter(&[2, 5])
        ])
    );
}

fn scored(id: u64, words: f64, sort: Value, exactness: f64) -> Value {
    // The shape Meilisearch 1.50 records for `q` + `sort: ["year:desc"]` (score excludes sort).
    json!({"id": id, "_rankingScore": words * exactness,
           "_rankingScoreDetails": {
               "words": {"order": 0, "matchingWords": 1, "maxMatchingWords": 1, "score": words},
               "year:desc": {"order": 1, "value": sort},
               "exactness": {"order": 2, "matchType": "noExactMatch", "score": exactness}}})
}

fn merged_ids(client: Value, lists: Vec<Vec<Value>>) -> Vec<u64> {
    let responses = lists
        .into_iter()
        .map(|hits| obj(json!({"hits": hits, "query": "", "processingTimeMs": 0, "limit": 20, "offset": 0, "estimatedTotalHits": 0})))
        .collect();
    let merged = merge_default(
        &obj(client),
        Pagination::Offset {
            offset: 0,
            limit: 20,
        },
        responses,
    );
    merged["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn sort_values_decide_after_the_rules_before_them() {
    // Node A and node B each in their own (correct) order.
    let a = vec![
        scored(1, 1.0, json!(2018.0), 0.3),
        scored(2, 1.0, json!(2004.0), 1.0),
        scored(3, 0.5, json!(2020.0), 1.0),
    ];
    let b = vec![
        scored(4, 1.0, json!(2012.0), 0.3),
        scored(5, 1.0, json!(2012.0), 0.2),
        scored(6, 0.5, json!(1990.0), 1.0),
    ];
    // words first; then year descending; then exactness; the score alone would put 2 and 3 first.
    assert_eq!(merged_ids(json!({}), vec![a, b]), [1, 4, 5, 2, 3, 6]);
}

#[test]
fn placeholder_sort_and_mixed_values() {
    let hit = |id: u64, value: Value| json!({"id": id, "_rankingScore": 1.0, "_rankingScoreDetails": {"rating:asc": {"order": 0, "value": value}}});
    let a = vec![hit(1, json!(2.5)), hit(2, json!("b")), hit(3, Value::Null)];
    let b = vec![hit(4, json!(1.0)), hit(5, json!("a"))];
    assert_eq!(
        merged_ids(json!({}), vec![a, b]),
        [4, 1, 5, 2, 3],
        "numbers, then strings, then missing"
    );
}

#[test]
fn details_are_shown_only_when_asked() {
    let a = vec![scored(1, 1.0, json!(2018.0), 0.3)];
    let responses = || {
        vec![obj(
            json!({"hits": a.clone(), "query": "", "processingTimeMs": 0, "limit": 20, "offset": 0, "estimatedTotalHits": 1}),
        )]
    };
    let plain = merge_default(
        &obj(json!({})),
        Pagination::Offset {
            offset: 0,
            limit: 20,
        },
        responses(),
    );
    assert_eq!(plain["hits"][0], json!({"id": 1}));
    let asked = merge_default(
        &obj(json!({"showRankingScoreDetails": true})),
        Pagination::Offset {
            offset: 0,
            limit: 20,
        },
        responses(),
    );
    assert!(asked["hits"][0]["_rankingScoreDetails"]["year:desc"].is_object());
    assert!(asked["hits"][0].get("_rankingScore").is_none());
}

#[test]
fn facet_values_are_ordered_and_cut_like_one_node() {
    let response = |genres: Value, years: Value| {
        obj(
            json!({"hits": [], "query": "", "processingTimeMs": 0, "limit": 0, "offset": 0, "estimatedTotalHits": 0, "facetDistribution": {"genre": genres, "year": years}}),
        )
    };
    let responses = || {
        vec![
            response(
                json!({"b": 1, "a": 5, "c": 2}),
                json!({"200": 1, "1993": 2}),
            ),
            response(json!({"c": 4, "d": 1}), json!({"25": 3, "x": 1})),
        ]
    };
    let merged = merge_default(
        &obj(json!({})),
        Pagination::Offset {
            offset: 0,
            limit: 0,
        },
        responses(),
    );
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(&merged["facetDistribution"]["genre"]),
        ["a", "b", "c", "d"]
    );
    assert_eq!(
        keys(&merged["facetDistribution"]["year"]),
        ["25", "200", "1993", "x"],
        "numbers numerically, then strings"
    );

    let faceting = Faceting::from_settings(
        &json!({"maxValuesPerFacet": 2, "sortFacetValuesBy": {"*": "alpha", "genre": "count"}}),
    );
    let merged = merge_values(
        &obj(json!({})),
        Pagination::Offset {
            offset: 0,
            limit: 0,
        },
        responses(),
        &faceting,
        None,
    );
    assert_eq!(
        merged["facetDistribution"]["genre"],
        json!({"c": 6, "a": 5})
    );
    assert_eq!(keys(&merged["facetDistribution"]["year"]), ["25", "200"]);
}

#[test]
fn hybrid_hits_rank_by_weighted_score_and_the_page_counts_its_semantic_hits() {
    let keyword = |id: &str, score: f64| json!({"id": id, "_rankingScore": score, "_rankingScoreDetails": {"words": {"order": 0, "score": score}}});
    let semantic = |id: &str, score: f64| json!({"id": id, "_rankingScore": score, "_rankingScoreDetails": {"vectorSort": {"order": 0, "similarity": score}}});
    let response = |hits: Vec<Value>| {
        obj(
            json!({"hits": hits, "query": "", "processingTimeMs": 0, "limit": 3, "offset": 0, "estimatedTotalHits": 9, "semanticHitCount": 3}),
        )
    };
    // Ratio 0.8: semantic 0.5 weighs 0.4, keyword 0.9 weighs 0.18, keyword 1.0 weighs 0.2.
    let merged = merge_default(
        &obj(json!({"hybrid": {"embedder": "e", "semanticRatio": 0.8}})),
        Pagination::Offset {
            offset: 0,
            limit: 3,
        },
        vec![
            response(vec![keyword("k1", 1.0), keyword("k2", 0.9)]),
            response(vec![semantic("s1", 0.5), semantic("s2", 0.2)]),
        ],
    );
    let ids: Vec<&str> = merged["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["s1", "k1", "k2"]);
    assert_eq!(
        merged["semanticHitCount"], 1,
        "counted on the page, not summed"
    );
    assert_eq!(
        merged["hits"][0]["_rankingScore"],
        Value::Null,
        "scores shown only when asked"
    );
}

#[test]
fn facet_hits_add_up_and_keep_one_nodes_order() {
    let response = |hits: Value, ms: u64| {
        obj(json!({"facetHits": hits, "facetQuery": "a", "processingTimeMs": ms}))
    };
    let responses = || {
        vec![
            response(
                json!([{"value": "Action", "count": 2}, {"value": "adventure", "count": 1}]),
                3,
            ),
            response(
                json!([{"value": "Adventure", "count": 4}, {"value": "Action", "count": 1}]),
                7,
            ),
        ]
    };
    let client = obj(json!({"facetName": "genres", "facetQuery": "a"}));
    let merged = merge_facet_hits(&client, responses(), &Faceting::default());
    assert_eq!(
        merged,
        json!({"facetHits": [{"value": "Action", "count": 3}, {"value": "adventure", "count": 5}], "facetQuery": "a", "processingTimeMs": 7}),
        "values equal once normalized are one value, with the first spelling met"
    );
    let by_count = Faceting::from_settings(
        &json!({"maxValuesPerFacet": 1, "sortFacetValuesBy": {"genres": "count"}}),
    );
    let merged = merge_facet_hits(&client, responses(), &by_count);
    assert_eq!(
        merged["facetHits"],
        json!([{"value": "adventure", "count": 5}])
    );
}

#[test]
fn distinct_values_appear_once_across_shards() {
    let hit = |id: u64, score: f64, group: &str| json!({"id": id, "family": group, "_rankingScore": score});
    let node = |hits: Vec<Value>| {
        obj(
            json!({"hits": hits, "query": "", "processingTimeMs": 0, "limit": 20, "offset": 0, "estimatedTotalHits": 2}),
        )
    };
    let client = obj(json!({"distinct": "family", "attributesToRetrieve": ["id"]}));
    let body = node_body(
        &client,
        Pagination::Offset {
            offset: 0,
            limit: 20,
        },
        &[1],
    );
    assert_eq!(
        body["attributesToRetrieve"],
        json!(["id", "family", "_miroir_seq"])
    );
    let merged = merge_default(
        &client,
        Pagination::Offset {
            offset: 0,
            limit: 20,
        },
        vec![
            node(vec![hit(1, 0.9, "a"), hit(2, 0.5, "b")]),
            node(vec![hit(3, 0.8, "b"), hit(4, 0.7, "a")]),
        ],
    );
    assert_eq!(
        merged["hits"],
        json!([{"id": 1}, {"id": 3}]),
        "the best hit of each family, family hidden again"
    );
}

#[test]
fn exact_ties_follow_insertion_order_across_shards_and_stay_hidden() {
    use miroir_topology::reserved::encode_seq;
    // One node lists equal hits by internal id, i.e. insertion order; each shard did so too.
    let hit = |id: &str, score: f64, seq: u64| json!({"id": id, "_rankingScore": score, "_miroir_seq": encode_seq(seq), "_miroir_shard": "...."});
    let responses = vec![
        obj(
            json!({"hits": [hit("a", 0.9, 1), hit("c", 0.5, 3), hit("e", 0.5, 7)], "estimatedTotalHits": 3}),
        ),
        obj(
            json!({"hits": [hit("b", 0.5, 2), hit("d", 0.5, 5), hit("f", 0.5, 6)], "estimatedTotalHits": 3}),
        ),
    ];
    let merged = merge_default(
        &obj(json!({})),
        Pagination::Offset {
            offset: 0,
            limit: 10,
        },
        responses,
    );
    let hits = merged["hits"].as_array().unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b", "c", "d", "f", "e"]);
    assert!(hits
        .iter()
        .all(|h| h.get("_miroir_seq").is_none() && h.get("_miroir_shard").is_none()));
}

#[test]
fn distinct_values_are_nested_paths_and_any_shared_value_of_an_array() {
    let hit = json!({"director": {"name": "Ada"}, "genres": ["Drama", "horror"]});
    assert_eq!(distinct_values(&hit, "director.name"), ["s:ada"]);
    assert_eq!(distinct_values(&hit, "genres"), ["s:drama", "s:horror"]);
    let client = obj(json!({"distinct": "genres"}));
    let response = |hits: Value| obj(json!({"hits": hits, "estimatedTotalHits": 2}));
    let merged = merge_default(
        &client,
        Pagination::Offset {
            offset: 0,
            limit: 10,
        },
        vec![
            response(json!([{"id": 1, "_rankingScore": 0.9, "genres": ["drama", "horror"]}])),
            response(
                json!([{"id": 2, "_rankingScore": 0.8, "genres": ["horror"]}, {"id": 3, "_rankingScore": 0.7, "genres": "comedy"}]),
            ),
        ],
    );
    let ids: Vec<u64> = merged["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 3]);
}

#[test]
fn no_hit_is_ranked_past_max_total_hits() {
    let faceting = Faceting {
        max_total_hits: Some(3),
        ..Faceting::default()
    };
    let response = |ids: &[u64]| {
        let hits: Vec<Value> = ids
            .iter()
            .map(|i| json!({"id": i, "_rankingScore": 1.0 - *i as f64 / 10.0}))
            .collect();
        obj(json!({"hits": hits, "totalHits": 3}))
    };
    let merged = merge_values(
        &obj(json!({})),
        Pagination::Pages {
            page: 1,
            hits_per_page: 10,
        },
        vec![response(&[1, 3, 5]), response(&[2, 4, 6])],
        &faceting,
        None,
    );
    assert_eq!(merged["hits"].as_array().unwrap().len(), 3);
    // Totals are not capped (a live 1.50 node counts every candidate).
    assert_eq!(
        (merged["totalHits"].clone(), merged["totalPages"].clone()),
        (json!(6), json!(1))
    );
    let estimated = |total: u64| obj(json!({"hits": [], "estimatedTotalHits": total}));
    let merged = merge_values(
        &obj(json!({})),
        Pagination::Offset {
            offset: 0,
            limit: 0,
        },
        vec![estimated(2), estimated(2)],
        &faceting,
        None,
    );
    assert_eq!(merged["estimatedTotalHits"], json!(4), "summed, not capped");
}

#[test]
fn get_parameters_are_refused_and_mapped_as_meilisearch_declares_them() {
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let unknown = query_from_get(&pairs(&[("unknownParam", "1")])).unwrap_err();
    assert_eq!((unknown.status, unknown.code), (400, "bad_request"));
    assert_eq!(
        unknown.message,
        "Unknown parameter `unknownParam`: expected one of `q`, `offset`, `limit`, `page`, `hitsPerPage`, `attributesToRetrieve`, `attributesToCrop`, `cropLength`, `cropMarker`, `attributesToHighlight`, `highlightPreTag`, `highlightPostTag`, `showMatchesPosition`, `filter`, `sort`, `distinct`, `facets`, `matchingStrategy`, `attributesToSearchOn`, `rankingScoreThreshold`, `locales`, `hybridEmbedder`, `hybridSemanticRatio`, `vector`, `retrieveVectors`, `personalizeUserContext`, `useNetwork`, `showRankingScore`, `showRankingScoreDetails`, `showPerformanceDetails`"
    );
    let typo = query_from_get(&pairs(&[("filtre", "a = 1")])).unwrap_err();
    assert!(typo
        .message
        .starts_with("Unknown parameter `filtre`: did you mean `filter`? expected one of `q`,"));
    let body = query_from_get(&pairs(&[
        ("personalizeUserContext", "likes westerns"),
        ("useNetwork", "false"),
    ]))
    .unwrap();
    assert_eq!(
        Value::Object(body),
        json!({"personalize": {"userContext": "likes westerns"}, "useNetwork": false})
    );
    let bad = query_from_get(&pairs(&[("useNetwork", "maybe")])).unwrap_err();
    assert_eq!(bad.code, "invalid_search_use_network");
}

#[test]
fn the_restriction_is_an_element_of_its_own_and_a_non_filter_goes_as_it_is() {
    let own = json!(shard_filter(&[3]));
    assert_eq!(restrict_filter(None, &[3]), own);
    assert_eq!(
        restrict_filter(Some(&json!("a = 1 OR b = 2")), &[3]),
        json!(["a = 1 OR b = 2", own])
    );
    assert_eq!(
        restrict_filter(Some(&json!([["a = 1", "b = 2"], "c = 3"])), &[3]),
        json!([["a = 1", "b = 2"], "c = 3", own])
    );
    // Inside an array, a number would be refused as "expected String, [String]" rather than as
    // one node refuses a number filter ("expected String, Array").
    assert_eq!(restrict_filter(Some(&json!(5)), &[3]), json!(5));
    assert_eq!(
        restrict_filter(Some(&json!({"a": 1})), &[3]),
        json!({"a": 1})
    );
}

#[test]
fn facet_values_that_rust_parses_as_floats_are_strings() {
    use crate::merge::facets::count_order;
    let mut values = [("nan", 2), ("inf", 2), ("3", 1), ("NaN", 2), ("b", 2)];
    values.sort_by(|a, b| count_order(*a, *b));
    // Numbers first, then by count, equal counts by descending value (normalized).
    let order: Vec<&str> = values.iter().map(|(v, _)| *v).collect();
    assert_eq!(order, vec!["3", "nan", "NaN", "inf", "b"]);
}

#[test]
fn hybrid_sides_are_merged_by_weighted_score_even_when_a_side_ranks_against_its_scores() {
    // `a` beats `b` by its rules but shows a lower score (nodes round differently): comparing
    // pairwise (rules within a side, weighted scores across) would be cyclic with `c` between
    // them (b < c < a < b), an order a sort may panic on. Each side keeps its rule order and
    // the sides merge by weighted score.
    let keyword = |id: &str, words: f64, score: f64| json!({"id": id, "_rankingScore": score, "_rankingScoreDetails": {"words": {"order": 0, "score": words}}});
    let semantic = |id: &str, score: f64| json!({"id": id, "_rankingScore": score, "_rankingScoreDetails": {"vectorSort": {"order": 0, "similarity": score}}});
    let response = |hits: Vec<Value>| {
        obj(
            json!({"hits": hits, "query": "", "processingTimeMs": 0, "limit": 10, "offset": 0, "estimatedTotalHits": 3}),
        )
    };
    let merged = merge_default(
        &obj(json!({"hybrid": {"embedder": "e", "semanticRatio": 0.5}})),
        Pagination::Offset {
            offset: 0,
            limit: 10,
        },
        vec![
            response(vec![keyword("a", 0.9, 0.6)]),
            response(vec![keyword("b", 0.8, 0.95)]),
            response(vec![semantic("c", 0.8)]),
        ],
    );
    let ids: Vec<&str> = merged["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c", "a", "b"]);
}

#[test]
fn ranking_any_mix_of_hits_never_panics_and_keeps_every_hit() {
    // Pseudo-random mixes of keyword, semantic and detail-less hits with clashing scores.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..200 {
        let mut responses = Vec::new();
        let mut count = 0;
        for _ in 0..3 {
            let hits: Vec<Value> = (0..(next() % 12))
                .map(|_| {
                    count += 1;
                    let score = (next() % 5) as f64 / 4.0;
                    match next() % 3 {
                        0 => json!({"id": count, "_rankingScore": score, "_rankingScoreDetails": {"words": {"order": 0, "score": (next() % 5) as f64 / 4.0}}}),
                        1 => json!({"id": count, "_rankingScore": score, "_rankingScoreDetails": {"vectorSort": {"order": 0, "similarity": score}}}),
                        _ => json!({"id": count, "_rankingScore": score}),
                    }
                })
                .collect();
            responses.push(obj(json!({"hits": hits, "query": "", "processingTimeMs": 0, "limit": 50, "offset": 0, "estimatedTotalHits": 50})));
        }
        let merged = merge_default(
            &obj(json!({"hybrid": {"embedder": "e", "semanticRatio": 0.5}, "limit": 50})),
            Pagination::Offset {
                offset: 0,
                limit: 50,
            },
            responses,
        );
        assert_eq!(merged["hits"].as_array().unwrap().len(), count);
    }
}

#[test]
fn hits_carry_ranking_details_only_when_the_score_cannot_order_them() {
    let plain = obj(json!({"q": "dune", "limit": 5}));
    let pagination = parse_pagination(&plain).unwrap();
    let asks = |client: &Map<String, Value>, by_values: bool| {
        search_node_body(client, pagination, &[0], by_values)
            .contains_key("showRankingScoreDetails")
    };
    assert!(!asks(&plain, false));
    assert!(
        asks(&plain, true),
        "the index ranks by `attr:asc|desc` rules"
    );
    for extra in [
        json!({"sort": ["year:asc"]}),
        json!({"hybrid": {"embedder": "e"}}),
        json!({"vector": [0.1]}),
        json!({"distinct": "genre"}),
    ] {
        let mut client = plain.clone();
        client.extend(obj(extra.clone()));
        assert!(asks(&client, false), "{extra}");
    }
    let defaults =
        json!({"rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness"]});
    assert!(!ranks_by_values(&defaults));
    assert!(ranks_by_values(
        &json!({"rankingRules": ["words", "rating:desc"]})
    ));
    assert!(ranks_by_values(&json!({})), "unknown settings");
}

#[test]
fn a_hit_with_a_field_of_an_unexpected_type_still_ranks_by_its_score() {
    let node = |hits: Value| obj(json!({"hits": hits, "estimatedTotalHits": 1}));
    let merged = merge_default(
        &obj(json!({})),
        Pagination::Offset {
            offset: 0,
            limit: 10,
        },
        vec![
            node(json!([{"id": 1, "_rankingScore": 0.2}])),
            node(
                json!([{"id": 2, "_rankingScore": 0.9, "_miroir_seq": 7, "_rankingScoreDetails": []}]),
            ),
        ],
    );
    let ids: Vec<&Value> = merged["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["id"])
        .collect();
    assert_eq!(ids, [&json!(2), &json!(1)]);
}

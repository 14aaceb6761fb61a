#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::*;
use crate::merge::facets::merge_facet_hits;
use crate::merge::search::merge_values as merge;
use crate::plan::search_body::shard_filter;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// Documents with a `studio`, or none.
fn shard(studios: &[(&str, usize)], valueless: usize) -> Vec<Value> {
    let mut docs: Vec<Value> = studios
        .iter()
        .flat_map(|(s, n)| std::iter::repeat_n(json!({"studio": s}), *n))
        .collect();
    docs.extend(std::iter::repeat_n(json!({"title": "x"}), valueless));
    docs
}

/// The filter conditions the follow-ups add: `"attr" IN [...]` and `"attr" NOT IN [...]`.
fn keeps(condition: &str, doc: &Value) -> bool {
    let (attr, rest) = condition[1..].split_once('"').unwrap();
    let negated = rest.trim_start().starts_with("NOT");
    let list = &rest[rest.find('[').unwrap() + 1..rest.rfind(']').unwrap()];
    let values: Vec<String> = list
        .split("\", \"")
        .map(|v| v.trim_matches('"').to_lowercase())
        .collect();
    let value = doc.get(attr).and_then(Value::as_str).map(str::to_lowercase);
    let held = value.is_some_and(|v| values.contains(&v));
    held != negated
}

/// The documents a body's last filter element (a follow-up condition) keeps.
fn filtered<'a>(docs: &'a [Value], body: &Map<String, Value>) -> Vec<&'a Value> {
    let condition = body["filter"]
        .as_array()
        .and_then(|f| f.last())
        .and_then(Value::as_str)
        .filter(|c| c.starts_with('"'))
        .map(str::to_string);
    docs.iter()
        .filter(|d| condition.as_deref().is_none_or(|c| keeps(c, d)))
        .collect()
}

/// A node's distribution of `studio` over some documents, cut to `k` by count, ties by
/// descending value (as Meilisearch 1.50 answers).
fn distribution(docs: &[&Value], k: usize) -> Map<String, Value> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for doc in docs {
        if let Some(s) = doc.get("studio").and_then(Value::as_str) {
            *counts.entry(s.to_string()).or_default() += 1;
        }
    }
    let mut list: Vec<(String, u64)> = counts.into_iter().collect();
    list.sort_by(|(a, ca), (b, cb)| cb.cmp(ca).then(b.cmp(a)));
    list.truncate(k);
    list.into_iter().map(|(v, c)| (v, json!(c))).collect()
}

fn by_count(k: usize) -> Faceting {
    Faceting::from_settings(&json!({"maxValuesPerFacet": k, "sortFacetValuesBy": {"*": "count"}}))
}

/// Runs every round against the shards; each call answered as a node holding them would.
fn run(follow: &mut FollowUp, shards: &[Vec<Value>], k: usize) -> usize {
    let mut calls = 0;
    loop {
        let round = follow.next_round();
        if round.is_empty() {
            return calls;
        }
        for (tag, call) in round.into_iter().enumerate() {
            calls += 1;
            let docs = &shards[call.slot];
            let body = call.body.as_object().unwrap();
            let answer = if call.path == "/multi-search" && body.contains_key("federation") {
                let query = body["queries"][0].as_object().unwrap();
                let kept = filtered(docs, query);
                json!({"facetsByIndex": {"movies": {"distribution": {"studio": distribution(&kept, k)}}}})
            } else if call.path == "/multi-search" {
                let results: Vec<Value> = body["queries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|q| {
                        let kept = filtered(docs, q.as_object().unwrap());
                        json!({"hits": [], "estimatedTotalHits": kept.len(), "facetDistribution": {"studio": distribution(&kept, k)}})
                    })
                    .collect();
                json!({ "results": results })
            } else {
                let kept = filtered(docs, body);
                let hits: Vec<Value> = distribution(&kept, k)
                    .into_iter()
                    .map(|(v, c)| json!({"value": v, "count": c}))
                    .collect();
                json!({ "facetHits": hits })
            };
            follow.accept(tag, Some(&serde_json::to_vec(&answer).unwrap()));
        }
    }
}

fn first_answers(shards: &[Vec<Value>], k: usize) -> Vec<Map<String, Value>> {
    shards
        .iter()
        .map(|docs| {
            let all: Vec<&Value> = docs.iter().collect();
            obj(json!({"hits": [], "query": "", "processingTimeMs": 1, "limit": 0, "offset": 0,
                "estimatedTotalHits": docs.len(), "facetDistribution": {"studio": distribution(&all, k)}}))
        })
        .collect()
}

/// Three shards whose own top values all differ from the overall ones.
fn skewed() -> Vec<Vec<Value>> {
    vec![
        shard(&[("a", 10), ("b", 9), ("c", 8), ("d", 1)], 2),
        shard(&[("e", 10), ("f", 9), ("c", 8), ("d", 7)], 0),
        shard(&[("g", 10), ("h", 9), ("c", 8), ("d", 7)], 1),
    ]
}

fn slot_views<'a>(
    shards: &'a [Vec<u32>],
    answers: &'a [Map<String, Value>],
) -> Vec<(&'a [u32], &'a Map<String, Value>)> {
    shards
        .iter()
        .map(Vec::as_slice)
        .zip(answers.iter())
        .collect()
}

#[test]
fn search_facets_in_count_order_are_counted_as_one_node_counts_them() {
    let shards = skewed();
    let k = 3;
    let mut answers = first_answers(&shards, k);
    let client = obj(json!({"q": "", "facets": ["studio"], "limit": 0}));
    let pagination = Pagination::Offset {
        offset: 0,
        limit: 0,
    };
    let numbers = vec![vec![0], vec![1], vec![2]];
    let faceting = by_count(k);
    let mut follow = FollowUp::start(
        Kind::Search(pagination),
        "movies",
        &client,
        &|_| faceting.clone(),
        &slot_views(&numbers, &answers),
    );
    assert!(run(&mut follow, &shards, k) > 0);
    assert_eq!(follow.finish(&mut answers), None);
    let merged = merge(&client, pagination, answers, &faceting, None);
    // One node: c 24, d 15, g 10 (a, e and g tie at 10; g first).
    assert_eq!(
        merged["facetDistribution"]["studio"],
        json!({"c": 24, "d": 15, "g": 10})
    );
}

#[test]
fn follow_up_searches_repeat_the_clients_on_the_same_shards_without_hits() {
    let shards = skewed();
    let answers = first_answers(&shards, 3);
    let client = obj(
        json!({"q": "x", "facets": ["studio"], "filter": "year > 1990",
        "attributesToRetrieve": ["title"], "sort": ["year:asc"], "page": 2, "hitsPerPage": 5}),
    );
    let numbers = vec![vec![0, 3], vec![1], vec![2]];
    let mut follow = FollowUp::start(
        Kind::Search(Pagination::Pages {
            page: 2,
            hits_per_page: 5,
        }),
        "movies",
        &client,
        &|_| by_count(3),
        &slot_views(&numbers, &answers),
    );
    let round = follow.next_round();
    let call = round.iter().find(|c| c.slot == 0).unwrap();
    assert_eq!(call.path, "/multi-search");
    let query = &call.body["queries"][0];
    assert_eq!(query["indexUid"], "movies");
    assert_eq!(query["q"], "x");
    assert_eq!(query["facets"], json!(["studio"]));
    assert_eq!(
        (query["page"].clone(), query["hitsPerPage"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(query["filter"][0], "year > 1990");
    assert_eq!(query["filter"][1], json!(shard_filter(&[0, 3])));
    assert!(query["filter"][2]
        .as_str()
        .unwrap()
        .starts_with("\"studio\" "));
    for shaping in ["attributesToRetrieve", "sort", "distinct", "limit"] {
        assert!(query.get(shaping).is_none(), "{shaping}");
    }
}

#[test]
fn facet_search_counts_in_count_order_are_exact() {
    let shards = skewed();
    let k = 2;
    let mut answers: Vec<Map<String, Value>> = shards
        .iter()
        .map(|docs| {
            let all: Vec<&Value> = docs.iter().collect();
            let hits: Vec<Value> = distribution(&all, k)
                .into_iter()
                .map(|(v, c)| json!({"value": v, "count": c}))
                .collect();
            obj(json!({"facetHits": hits, "facetQuery": null, "processingTimeMs": 1}))
        })
        .collect();
    let client = obj(json!({"facetName": "studio"}));
    let numbers = vec![vec![0], vec![1], vec![2]];
    let faceting = by_count(k);
    let mut follow = FollowUp::start(
        Kind::FacetSearch,
        "movies",
        &client,
        &|_| faceting.clone(),
        &slot_views(&numbers, &answers),
    );
    run(&mut follow, &shards, k);
    follow.finish(&mut answers);
    let merged = merge_facet_hits(&client, answers, &faceting);
    assert_eq!(
        merged["facetHits"],
        json!([{"value": "c", "count": 24}, {"value": "d", "count": 15}])
    );
}

#[test]
fn a_federated_index_is_probed_with_its_own_queries_only() {
    let shards = skewed();
    let k = 2;
    let mut answers: Vec<Map<String, Value>> = shards
        .iter()
        .map(|docs| {
            let all: Vec<&Value> = docs.iter().collect();
            obj(json!({"hits": [], "estimatedTotalHits": docs.len(),
                "facetsByIndex": {"movies": {"distribution": {"studio": distribution(&all, k)}, "stats": {}}}}))
        })
        .collect();
    let client = obj(
        json!({"federation": {"facetsByIndex": {"movies": ["studio"]}}, "queries": [
            {"indexUid": "movies", "q": "x", "showRankingScore": true},
            {"indexUid": "other", "q": "y"},
        ]}),
    );
    let numbers = vec![vec![0], vec![1], vec![2]];
    let faceting = by_count(k);
    let mut follow = FollowUp::start(
        Kind::Federated,
        "",
        &client,
        &|index| {
            if index == "movies" {
                faceting.clone()
            } else {
                Faceting::default()
            }
        },
        &slot_views(&numbers, &answers),
    );
    let round = follow.next_round();
    let body = &round[0].body;
    assert_eq!(
        body["federation"],
        json!({"limit": 0, "facetsByIndex": {"movies": ["studio"]}})
    );
    assert_eq!(body["queries"].as_array().unwrap().len(), 1);
    assert_eq!(body["queries"][0]["q"], "x");
    assert!(body["queries"][0].get("showRankingScore").is_none());
    // The rest of the rounds, answered.
    for (tag, call) in round.into_iter().enumerate() {
        let kept = filtered(
            &shards[call.slot],
            call.body["queries"][0].as_object().unwrap(),
        );
        let answer = json!({"facetsByIndex": {"movies": {"distribution": {"studio": distribution(&kept, k)}}}});
        follow.accept(tag, Some(&serde_json::to_vec(&answer).unwrap()));
    }
    run(&mut follow, &shards, k);
    follow.finish(&mut answers);
    let counts: BTreeMap<String, u64> = answers
        .iter()
        .flat_map(|a| {
            a["facetsByIndex"]["movies"]["distribution"]["studio"]
                .as_object()
                .unwrap()
                .clone()
        })
        .fold(BTreeMap::new(), |mut sums, (v, c)| {
            *sums.entry(v).or_default() += c.as_u64().unwrap();
            sums
        });
    assert_eq!((counts["c"], counts["d"]), (24, 15));
}

#[test]
fn a_distinct_search_counts_each_value_once_and_hides_the_facet_it_asked_for() {
    let shards = skewed();
    let k = 100;
    // Each node's distinct hits: one per studio, plus the documents without one.
    let mut answers: Vec<Map<String, Value>> = shards
        .iter()
        .map(|docs| {
            let all: Vec<&Value> = docs.iter().collect();
            let studios = distribution(&all, k);
            let valueless = docs.iter().filter(|d| d.get("studio").is_none()).count();
            let ones: Map<String, Value> = studios.keys().map(|s| (s.clone(), json!(1))).collect();
            obj(json!({"hits": [{"studio": studios.keys().next()}], "estimatedTotalHits": studios.len() + valueless,
                "facetDistribution": {"studio": ones}, "facetStats": {}}))
        })
        .collect();
    let client = obj(json!({"q": "", "distinct": "studio", "limit": 1}));
    let pagination = Pagination::Offset {
        offset: 0,
        limit: 1,
    };
    let numbers = vec![vec![0], vec![1], vec![2]];
    let mut follow = FollowUp::start(
        Kind::Search(pagination),
        "movies",
        &client,
        &|_| Faceting::default(),
        &slot_views(&numbers, &answers),
    );
    assert_eq!(follow.next_round().len(), 0, "the facet lists are complete");
    let total = follow.finish(&mut answers);
    // Studios a..h, and three documents without one.
    assert_eq!(total, Some(11));
    let merged = merge(&client, pagination, answers, &Faceting::default(), total);
    assert_eq!(merged["estimatedTotalHits"], 11);
    assert!(merged.get("facetDistribution").is_none());
    assert!(merged.get("facetStats").is_none());
}

#[test]
fn a_distinct_node_with_too_many_values_lists_its_hits() {
    let answers = [
        obj(json!({"hits": [{"studio": "a"}], "estimatedTotalHits": 40,
            "facetDistribution": {"studio": {"a": 1, "b": 1}}})),
        obj(json!({"hits": [{"studio": "c"}], "estimatedTotalHits": 1,
            "facetDistribution": {"studio": {"c": 1}}})),
    ];
    let client = obj(json!({"distinct": "studio", "limit": 1, "facets": ["studio"]}));
    let numbers = vec![vec![0], vec![1]];
    let mut follow = FollowUp::start(
        Kind::Search(Pagination::Offset {
            offset: 0,
            limit: 1,
        }),
        "movies",
        &client,
        &|_| Faceting::from_settings(&json!({"maxValuesPerFacet": 2})),
        &slot_views(&numbers, &answers),
    );
    let round = follow.next_round();
    assert_eq!(round.len(), 1);
    assert_eq!(round[0].slot, 0);
    let query = &round[0].body["queries"][0];
    assert_eq!(query["distinct"], "studio");
    assert_eq!(query["attributesToRetrieve"], json!(["studio"]));
    assert_eq!(
        (query["page"].clone(), query["hitsPerPage"].clone()),
        (json!(1), json!(1000))
    );
    let listed = json!({"results": [{"hits": [{"studio": "a"}, {"studio": "b"}, {"studio": "c"}, {}], "totalHits": 4}]});
    follow.accept(0, Some(&serde_json::to_vec(&listed).unwrap()));
    assert!(follow.next_round().is_empty());
    let mut answers = answers.to_vec();
    // a, b, c and one document without a studio; the facet the client asked for stays.
    assert_eq!(follow.finish(&mut answers), Some(4));
    assert!(answers[0]["facetDistribution"].get("studio").is_some());
}

#[test]
fn no_follow_up_for_hybrid_searches() {
    let shards = skewed();
    let answers = first_answers(&shards, 1);
    let client = obj(
        json!({"q": "x", "facets": ["studio"], "hybrid": {"embedder": "e", "semanticRatio": 0.5}}),
    );
    let numbers = vec![vec![0], vec![1], vec![2]];
    let mut follow = FollowUp::start(
        Kind::Search(Pagination::Offset {
            offset: 0,
            limit: 20,
        }),
        "movies",
        &client,
        &|_| by_count(1),
        &slot_views(&numbers, &answers),
    );
    assert!(follow.next_round().is_empty());
}

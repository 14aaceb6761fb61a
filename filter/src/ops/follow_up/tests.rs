//! The follow-up rounds through a whole exchange: a fleet of fake nodes, each holding its own
//! documents, answers searches, multi-searches and facet searches the way one Meilisearch node
//! would over those documents, facets cut to `maxValuesPerFacet` in `count` order.

#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::config::FilterConfig;
use miroir_topology::reserved::decode_shard;
use miroir_topology::{cluster_name, Node, NodeState, PluginConfig, Topology};
use serde_json::{json, Map, Value};

use crate::exchange::Exchange;
use crate::host::mock::{json_reply, MockHost};
use crate::host::{Call, Reply};
use crate::request::Request;

/// `faceting` of index `movies` (`other` keeps the defaults).
fn settings(index: &str, max_values: usize) -> Value {
    match index {
        "movies" => json!({
            "faceting": {"maxValuesPerFacet": max_values, "sortFacetValuesBy": {"*": "count"}},
            "pagination": {"maxTotalHits": 1000},
            "filterableAttributes": ["studio"],
            "distinctAttribute": "studio",
        }),
        _ => json!({"faceting": {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}}}),
    }
}

/// The follow-ups' extra filter condition (`"studio" IN [...]`, `"studio" NOT IN [...]`).
fn keeps(filter: &Value, doc: &Value) -> bool {
    let Some(condition) = filter
        .as_array()
        .and_then(|f| f.last())
        .and_then(Value::as_str)
        .filter(|c| c.starts_with("\"studio\""))
    else {
        return true;
    };
    let negated = condition.contains("NOT IN");
    let list = &condition[condition.find('[').unwrap() + 1..condition.rfind(']').unwrap()];
    let held = list
        .split(", ")
        .any(|v| Some(v.trim_matches('"')) == doc["studio"].as_str());
    held != negated
}

/// A node holding every shard's documents, answering for the shards a search restricts it to.
struct FakeNode {
    shards: Vec<Vec<Value>>,
    max_values: usize,
}

/// The shards named by a filter's `_miroir_shard IN [...]` element.
fn shards_in(filter: &Value) -> Vec<usize> {
    let elements: Vec<&str> = match filter {
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        Value::String(s) => vec![s.as_str()],
        _ => Vec::new(),
    };
    elements
        .iter()
        .filter(|e| e.contains("_miroir_shard"))
        .flat_map(|e| e.split('"').skip(1).step_by(2))
        .filter_map(decode_shard)
        .map(|s| s as usize)
        .collect()
}

impl FakeNode {
    /// As `settings` says: `movies` in count order cut to `max_values`, others alphabetical.
    fn distribution(&self, index: &str, docs: &[&Value]) -> Map<String, Value> {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for doc in docs {
            if let Some(s) = doc["studio"].as_str() {
                *counts.entry(s).or_default() += 1;
            }
        }
        let mut list: Vec<(&str, u64)> = counts.into_iter().collect();
        if index == "movies" {
            list.sort_by(|(a, ca), (b, cb)| cb.cmp(ca).then(a.cmp(b)));
            list.truncate(self.max_values);
        }
        list.into_iter()
            .map(|(v, c)| (v.to_string(), json!(c)))
            .collect()
    }

    /// A search of index `index` with this body (no `q`: every document matches).
    fn search(&self, index: &str, body: &Value) -> Value {
        let docs: Vec<&Value> = shards_in(&body["filter"])
            .into_iter()
            .filter_map(|s| self.shards.get(s))
            .flatten()
            .filter(|d| index == "movies" || d["studio"] != "c")
            .filter(|d| keeps(&body["filter"], d))
            .collect();
        let distinct = body["distinct"].as_str() == Some("studio");
        let kept: Vec<&Value> = if distinct {
            let mut seen = Vec::new();
            docs.iter()
                .copied()
                .filter(|d| {
                    let fresh = !seen.contains(&d["studio"]);
                    seen.push(d["studio"].clone());
                    fresh
                })
                .collect()
        } else {
            docs.clone()
        };
        let limit = body["limit"]
            .as_u64()
            .or(body["hitsPerPage"].as_u64())
            .unwrap_or(20) as usize;
        let hits: Vec<Value> = kept
            .iter()
            .take(limit)
            .map(|d| {
                let mut hit = (*d).clone();
                hit["_rankingScore"] = json!(1.0);
                hit
            })
            .collect();
        let mut answer = json!({"hits": hits, "query": "", "processingTimeMs": 1});
        if body.get("page").is_some() {
            answer["totalHits"] = json!(kept.len());
        } else {
            answer["estimatedTotalHits"] = json!(kept.len());
        }
        if body["facets"].as_array().is_some_and(|f| !f.is_empty()) {
            answer["facetDistribution"] = json!({"studio": self.distribution(index, &kept)});
            answer["facetStats"] = json!({});
        }
        answer
    }

    fn handle(&self, call: &Call) -> Reply {
        let body: Value = call
            .body
            .as_ref()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let parts: Vec<&str> = call.path.split('/').collect();
        match (call.method, parts.as_slice()) {
            ("GET", ["", "indexes", index, "settings"]) => {
                json_reply(200, settings(index, self.max_values))
            }
            ("POST", ["", "indexes", index, "search"]) => {
                json_reply(200, self.search(index, &body))
            }
            ("POST", ["", "indexes", index, "facet-search"]) => {
                let found = self.search(
                    index,
                    &json!({"filter": body["filter"], "facets": ["studio"], "limit": 0}),
                );
                let hits: Vec<Value> = found["facetDistribution"]["studio"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(v, c)| json!({"value": v, "count": c}))
                    .collect();
                json_reply(
                    200,
                    json!({"facetHits": hits, "facetQuery": null, "processingTimeMs": 1}),
                )
            }
            ("POST", ["", "multi-search"]) if body.get("federation").is_some() => {
                let mut by_index = Map::new();
                for query in body["queries"].as_array().unwrap() {
                    let index = query["indexUid"].as_str().unwrap();
                    let found = self.search(
                        index,
                        &json!({"filter": query["filter"], "facets": ["studio"]}),
                    );
                    by_index.insert(
                        index.to_string(),
                        json!({"distribution": found["facetDistribution"], "stats": {}}),
                    );
                }
                let mut answer = json!({"hits": [], "processingTimeMs": 1, "limit": 20, "offset": 0, "estimatedTotalHits": 0});
                if body["federation"].get("facetsByIndex").is_some() {
                    answer["facetsByIndex"] = Value::Object(by_index);
                }
                json_reply(200, answer)
            }
            ("POST", ["", "multi-search"]) => {
                let results: Vec<Value> = body["queries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|q| self.search(q["indexUid"].as_str().unwrap(), q))
                    .collect();
                json_reply(200, json!({ "results": results }))
            }
            _ => json_reply(404, json!({"message": "no route", "code": "not_found"})),
        }
    }
}

fn studios(list: &[(&str, usize)]) -> Vec<Value> {
    list.iter()
        .flat_map(|(s, n)| std::iter::repeat_n(json!({"studio": s}), *n))
        .collect()
}

/// Three shards whose own first values all differ from the fleet's: `c` is first overall but
/// third in each shard; every node holds every shard (the topology picks who answers for which).
fn fleet(max_values: usize) -> (Rc<FilterConfig>, BTreeMap<String, FakeNode>) {
    let ids = ["n0", "n1", "n2"];
    let config = Rc::new(FilterConfig::compile(PluginConfig::new(Topology {
        epoch: 1,
        shards: 3,
        shard_map: Default::default(),
        replication_factor: 1,
        nodes: ids
            .iter()
            .map(|id| Node {
                id: id.to_string(),
                address: "127.0.0.1:1".into(),
                group: "g".into(),
                state: NodeState::Active,
            })
            .collect(),
    })));
    let docs = [
        studios(&[("a", 10), ("b", 9), ("c", 8), ("d", 1)]),
        studios(&[("e", 10), ("f", 9), ("c", 8), ("d", 7)]),
        studios(&[("g", 10), ("h", 9), ("c", 8), ("d", 7)]),
    ];
    let nodes = ids
        .iter()
        .map(|id| {
            let shards = docs.to_vec();
            (cluster_name(id), FakeNode { shards, max_values })
        })
        .collect();
    (config, nodes)
}

fn run(
    config: &Rc<FilterConfig>,
    nodes: &BTreeMap<String, FakeNode>,
    path: &str,
    body: Value,
) -> (Value, MockHost) {
    let mut host = MockHost::default();
    let request = Request::new(
        "POST",
        path,
        vec![("content-type".into(), "application/json".into())],
        serde_json::to_vec(&body).unwrap(),
    );
    let mut exchange = Exchange::start(config.clone(), request, 0, &mut host);
    while let Some((token, call)) = host.in_flight.pop() {
        let reply = nodes
            .get(&call.cluster)
            .map(|n| n.handle(&call))
            .unwrap_or(Reply::Failed);
        exchange.on_reply(token, reply, &mut host);
    }
    assert!(exchange.is_answered());
    let (status, answer) = host.answer().unwrap();
    assert_eq!(status, 200, "{answer}");
    (answer, host)
}

fn follow_ups(host: &MockHost) -> usize {
    host.sent
        .iter()
        .filter(|c| c.path == "/multi-search" || c.path.ends_with("facet-search"))
        .count()
}

#[test]
fn facet_counts_a_node_cut_are_asked_for_and_the_list_is_one_nodes() {
    let (config, nodes) = fleet(2);
    let (answer, host) = run(
        &config,
        &nodes,
        "/indexes/movies/search",
        json!({"facets": ["studio"], "limit": 0, "distinct": null}),
    );
    // One node: c 24, d 15.
    assert_eq!(
        answer["facetDistribution"]["studio"],
        json!({"c": 24, "d": 15})
    );
    assert!(follow_ups(&host) > 0);
}

#[test]
fn nothing_more_is_asked_when_no_node_cut_its_facets() {
    let (config, nodes) = fleet(100);
    let (answer, host) = run(
        &config,
        &nodes,
        "/indexes/movies/search",
        json!({"facets": ["studio"], "limit": 0, "distinct": null}),
    );
    assert_eq!(answer["facetDistribution"]["studio"]["c"], json!(24));
    assert_eq!(follow_ups(&host), 0);
}

#[test]
fn facet_search_counts_are_completed_the_same_way() {
    let (config, nodes) = fleet(2);
    let (answer, _) = run(
        &config,
        &nodes,
        "/indexes/movies/facet-search",
        json!({"facetName": "studio"}),
    );
    assert_eq!(
        answer["facetHits"],
        json!([{"value": "c", "count": 24}, {"value": "d", "count": 15}])
    );
}

#[test]
fn the_index_distinct_attribute_counts_each_value_once() {
    let (config, nodes) = fleet(100);
    let (answer, host) = run(
        &config,
        &nodes,
        "/indexes/movies/search",
        json!({"limit": 3}),
    );
    // Studios a to h.
    assert_eq!(answer["estimatedTotalHits"], json!(8));
    assert!(answer.get("facetDistribution").is_none(), "{answer}");
    let first = host
        .sent
        .iter()
        .find(|c| c.path == "/indexes/movies/search")
        .unwrap();
    let sent: Value = serde_json::from_slice(first.body.as_ref().unwrap()).unwrap();
    assert_eq!(sent["distinct"], "studio");
    assert_eq!(sent["facets"], json!(["studio"]));
}

#[test]
fn federated_facets_follow_each_indexs_settings_and_are_completed() {
    let (config, nodes) = fleet(2);
    let (answer, _) = run(
        &config,
        &nodes,
        "/multi-search",
        json!({"federation": {"facetsByIndex": {"movies": ["studio"], "other": ["studio"]}}, "queries": [
            {"indexUid": "movies"},
            {"indexUid": "other"},
        ]}),
    );
    let by_index = &answer["facetsByIndex"];
    // `movies`: count order, two values, counted as one node counts them.
    assert_eq!(
        by_index["movies"]["distribution"]["studio"],
        json!({"c": 24, "d": 15})
    );
    // `other` (no `c`): the defaults, alphabetical and uncut.
    let other: Vec<&String> = by_index["other"]["distribution"]["studio"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(other, ["a", "b", "d", "e", "f", "g", "h"]);
}

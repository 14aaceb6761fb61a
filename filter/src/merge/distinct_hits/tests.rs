//! A search distinct on `genres` (an array) through a whole exchange: a fleet of fake nodes, each
//! holding every shard's documents and answering for the shards a search restricts it to, with
//! the distinct rule one Meilisearch node applies. The reference is that rule over every
//! document.

#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::collections::BTreeSet;
use std::rc::Rc;

use crate::config::FilterConfig;
use miroir_topology::reserved::decode_shard;
use miroir_topology::{cluster_name, Node, NodeState, PluginConfig, Topology};
use serde_json::{json, Value};

use crate::exchange::Exchange;
use crate::host::mock::{json_reply, MockHost};
use crate::host::{Call, Reply};
use crate::request::Request;

/// A document: id, place (0 to 2: three shards, each answered by another node), genres; the
/// list order is the ranking (scores decrease).
type Doc = (u32, usize, Vec<&'static str>);

struct Fleet {
    config: Rc<FilterConfig>,
    /// The shard of each place.
    places: Vec<usize>,
    docs: Vec<Doc>,
    max_total_hits: u64,
    /// Follow-up searches answer with this status instead (a node failing meanwhile).
    follow_ups_fail: bool,
}

fn fleet(docs: Vec<Doc>) -> Fleet {
    let ids = ["n0", "n1", "n2"];
    let config = Rc::new(FilterConfig::compile(PluginConfig::new(Topology {
        epoch: 1,
        shards: 12,
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
    let mut places: Vec<usize> = Vec::new();
    let mut owners: Vec<String> = Vec::new();
    for shard in 0..12 {
        let owner = config.topology.owners(shard, "g")[0].id.clone();
        if !owners.contains(&owner) {
            owners.push(owner);
            places.push(shard as usize);
        }
    }
    assert_eq!(places.len(), 3, "each node owns a shard");
    Fleet {
        config,
        places,
        docs,
        max_total_hits: 1000,
        follow_ups_fail: false,
    }
}

/// The shards named by a filter's `_miroir_shard IN [...]` element, and the genres a
/// `"genres" NOT IN [...]` element excludes.
fn read_filter(filter: &Value) -> (Vec<usize>, Vec<String>) {
    let elements: Vec<&str> = match filter {
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        Value::String(s) => vec![s.as_str()],
        _ => Vec::new(),
    };
    let quoted = |e: &str| -> Vec<String> {
        e.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let shards = elements
        .iter()
        .filter(|e| e.contains("_miroir_shard"))
        .flat_map(|e| quoted(e))
        .filter_map(|s| decode_shard(&s))
        .map(|s| s as usize)
        .collect();
    let excluded = elements
        .iter()
        .filter(|e| e.starts_with("\"genres\" NOT IN"))
        .flat_map(|e| quoted(e).into_iter().skip(1))
        .collect();
    (shards, excluded)
}

/// One Meilisearch node's distinct rule: a document is kept when no kept document holds one of
/// its values.
fn distinct<'d>(docs: impl Iterator<Item = &'d Doc>) -> Vec<&'d Doc> {
    let mut held = BTreeSet::new();
    docs.filter(|(_, _, genres)| {
        if genres.iter().any(|g| held.contains(g)) {
            return false;
        }
        held.extend(genres.iter().copied());
        true
    })
    .collect()
}

fn hit(doc: &Doc, rank: usize) -> Value {
    json!({"id": doc.0, "genres": doc.2, "_rankingScore": 1.0 - rank as f64 / 1000.0})
}

impl Fleet {
    fn search(&self, body: &Value) -> Value {
        let (shards, excluded) = read_filter(&body["filter"]);
        let ranked = self.docs.iter().enumerate().filter(|(_, d)| {
            shards.contains(&self.places[d.1])
                && !d.2.iter().any(|g| excluded.iter().any(|e| e == g))
        });
        let kept: Vec<(usize, &Doc)> = {
            let mut held = BTreeSet::new();
            ranked
                .filter(|(_, (_, _, genres))| {
                    if genres.iter().any(|g| held.contains(g)) {
                        return false;
                    }
                    held.extend(genres.iter().copied());
                    true
                })
                .collect()
        };
        let limit = body["limit"]
            .as_u64()
            .or(body["hitsPerPage"].as_u64())
            .unwrap_or(20)
            .min(self.max_total_hits) as usize;
        let hits: Vec<Value> = kept
            .iter()
            .take(limit)
            .map(|(rank, d)| hit(d, *rank))
            .collect();
        let mut facet = serde_json::Map::new();
        for (_, d) in &kept {
            for g in &d.2 {
                let n = facet.get(*g).and_then(Value::as_u64).unwrap_or(0);
                facet.insert(g.to_string(), json!(n + 1));
            }
        }
        json!({"hits": hits, "query": "", "processingTimeMs": 1, "limit": limit, "offset": 0,
            "estimatedTotalHits": kept.len(), "facetDistribution": {"genres": facet}, "facetStats": {}})
    }

    fn handle(&self, call: &Call) -> Reply {
        let body: Value = call
            .body
            .as_ref()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        match (call.method, call.path.as_str()) {
            ("GET", "/indexes/movies/settings") => json_reply(
                200,
                json!({"filterableAttributes": ["genres"], "pagination": {"maxTotalHits": self.max_total_hits},
                    "faceting": {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}}}),
            ),
            ("POST", "/indexes/movies/search") => json_reply(200, self.search(&body)),
            ("POST", "/multi-search") if self.follow_ups_fail => Reply::Failed,
            ("POST", "/multi-search") => {
                let results: Vec<Value> = body["queries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|q| self.search(q))
                    .collect();
                json_reply(200, json!({ "results": results }))
            }
            _ => json_reply(404, json!({"message": "no route", "code": "not_found"})),
        }
    }

    /// The ids of the page through the filter, and the host.
    fn run(&self, body: Value) -> (Vec<u64>, MockHost) {
        let (answer, host) = self.answer(body);
        let ids = answer["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_u64().unwrap())
            .collect();
        (ids, host)
    }

    /// The answer through the filter, and the host.
    fn answer(&self, body: Value) -> (Value, MockHost) {
        let mut host = MockHost::default();
        let request = Request::new(
            "POST",
            "/indexes/movies/search",
            vec![("content-type".into(), "application/json".into())],
            serde_json::to_vec(&body).unwrap(),
        );
        let mut exchange = Exchange::start(self.config.clone(), request, 0, &mut host);
        while let Some((token, call)) = host.in_flight.pop() {
            let known = ["n0", "n1", "n2"]
                .iter()
                .any(|n| cluster_name(n) == call.cluster);
            let reply = if known {
                self.handle(&call)
            } else {
                Reply::Failed
            };
            exchange.on_reply(token, reply, &mut host);
        }
        assert!(exchange.is_answered());
        let (status, answer) = host.answer().unwrap();
        assert_eq!(status, 200, "{answer}");
        (answer, host)
    }

    /// One node's page over every document.
    fn one_node(&self, offset: usize, limit: usize) -> Vec<u64> {
        distinct(self.docs.iter())
            .into_iter()
            .take(self.max_total_hits as usize)
            .skip(offset)
            .take(limit)
            .map(|d| u64::from(d.0))
            .collect()
    }
}

fn follow_ups(host: &MockHost) -> usize {
    host.sent
        .iter()
        .filter(|c| c.path == "/multi-search")
        .count()
}

#[test]
fn a_document_hidden_by_one_the_merge_drops_is_found() {
    // A on shard 0; B and C on shard 1. Shard 1's node keeps B, which hides C; the merge drops B
    // (A holds y): one node keeps A and C.
    let fleet = fleet(vec![
        (1, 0, vec!["x", "y"]),
        (2, 1, vec!["y", "z"]),
        (3, 1, vec!["z"]),
    ]);
    let (ids, host) = fleet.run(json!({"distinct": "genres"}));
    assert_eq!(ids, fleet.one_node(0, 20));
    assert_eq!(ids, vec![1, 3]);
    assert!(follow_ups(&host) > 0);
    assert_eq!(
        host.counters
            .get(crate::metrics::SEARCH_DISTINCT_UNSETTLED)
            .copied()
            .unwrap_or(0),
        0
    );
}

#[test]
fn a_page_short_of_hits_asks_the_nodes_that_may_hold_more() {
    // P's three genres drop shard 1's first three hits: one node's page of three is P, 4, 5.
    let docs = vec![
        (10, 0, vec!["a", "b", "c"]),
        (1, 1, vec!["a"]),
        (2, 1, vec!["b"]),
        (3, 1, vec!["c"]),
        (4, 1, vec!["d"]),
        (5, 1, vec!["e"]),
        (6, 1, vec!["f"]),
    ];
    let fleet = fleet(docs);
    let (ids, _) = fleet.run(json!({"distinct": "genres", "limit": 3}));
    assert_eq!(ids, vec![10, 4, 5]);
    let (ids, _) = fleet.run(json!({"distinct": "genres", "offset": 2, "limit": 2}));
    assert_eq!(ids, vec![5, 6]);
    let (ids, _) = fleet.run(json!({"distinct": "genres", "page": 2, "hitsPerPage": 2}));
    assert_eq!(ids, vec![5, 6]);
}

#[test]
fn the_total_is_one_nodes_once_every_kept_document_is_known() {
    // The nodes' own totals add up to 7 (P; 1 to 6); one node keeps P, 4, 5 and 6.
    let fleet = fleet(vec![
        (10, 0, vec!["a", "b", "c"]),
        (1, 1, vec!["a"]),
        (2, 1, vec!["b"]),
        (3, 1, vec!["c"]),
        (4, 1, vec!["d"]),
        (5, 1, vec!["e"]),
        (6, 1, vec!["f"]),
    ]);
    let (answer, _) = fleet.answer(json!({"distinct": "genres", "hitsPerPage": 10}));
    assert_eq!(answer["totalHits"], json!(4));
    assert_eq!(answer["totalPages"], json!(1));
    let (answer, _) = fleet.answer(json!({"distinct": "genres", "limit": 20}));
    assert_eq!(answer["estimatedTotalHits"], json!(4));
}

#[test]
fn no_node_is_asked_past_max_total_hits() {
    let docs = vec![
        (10, 0, vec!["a", "b", "c"]),
        (1, 1, vec!["a"]),
        (2, 1, vec!["b"]),
        (3, 1, vec!["c"]),
        (4, 1, vec!["d"]),
        (5, 1, vec!["e"]),
    ];
    let mut fleet = fleet(docs);
    fleet.max_total_hits = 2;
    let (ids, host) = fleet.run(json!({"distinct": "genres", "limit": 5}));
    assert_eq!(ids, vec![10, 4]);
    for call in host.sent.iter().filter(|c| c.path == "/multi-search") {
        let body: Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
        for query in body["queries"].as_array().unwrap() {
            assert!(query["limit"].as_u64().unwrap() <= 2, "{query}");
        }
    }
}

#[test]
fn nothing_more_is_asked_without_a_hit_holding_several_values() {
    let fleet = fleet(vec![
        (1, 0, vec!["x"]),
        (2, 1, vec!["x"]),
        (3, 1, vec!["y"]),
        (4, 2, vec![]),
    ]);
    let (ids, host) = fleet.run(json!({"distinct": "genres", "limit": 2}));
    assert_eq!(ids, vec![1, 3]);
    assert_eq!(follow_ups(&host), 0);
}

#[test]
fn a_failed_follow_up_answers_with_the_merge_and_is_counted() {
    let mut fleet = fleet(vec![
        (1, 0, vec!["x", "y"]),
        (2, 1, vec!["y", "z"]),
        (3, 1, vec!["z"]),
    ]);
    fleet.follow_ups_fail = true;
    let (ids, host) = fleet.run(json!({"distinct": "genres"}));
    assert_eq!(ids, vec![1]);
    assert_eq!(
        host.counters.get(crate::metrics::SEARCH_DISTINCT_UNSETTLED),
        Some(&1)
    );
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn random_fleets_answer_one_nodes_pages() {
    const GENRES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut rng = Rng(0x5eed);
    let mut unsettled = 0;
    let mut searches = 0;
    for round in 0..90 {
        // One fleet in three holds at most one value per document: no round is needed there.
        let single = round % 3 == 0;
        let n = 5 + rng.below(40) as u32;
        let docs: Vec<Doc> = (0..n)
            .map(|id| {
                let mut genres = Vec::new();
                for _ in 0..rng.below(if single { 2 } else { 4 }) {
                    let g = GENRES[rng.below(GENRES.len() as u64) as usize];
                    if !genres.contains(&g) {
                        genres.push(g);
                    }
                }
                (id, rng.below(3) as usize, genres)
            })
            .collect();
        let mut fleet = fleet(docs);
        if rng.below(3) == 0 {
            fleet.max_total_hits = 1 + rng.below(5);
        }
        for _ in 0..4 {
            let (offset, limit) = (rng.below(4) as usize, 1 + rng.below(6) as usize);
            let (ids, host) =
                fleet.run(json!({"distinct": "genres", "offset": offset, "limit": limit}));
            searches += 1;
            if single {
                assert_eq!(follow_ups(&host), 0);
            }
            if host
                .counters
                .get(crate::metrics::SEARCH_DISTINCT_UNSETTLED)
                .is_some_and(|n| *n > 0)
            {
                unsettled += 1;
                continue;
            }
            assert_eq!(
                ids,
                fleet.one_node(offset, limit),
                "offset {offset}, limit {limit}, max {}: {:?}",
                fleet.max_total_hits,
                fleet.docs
            );
        }
    }
    assert!(
        unsettled * 20 < searches,
        "{unsettled} of {searches} unsettled"
    );
}

//! `/similar` through the exchange, against fake nodes that rank by cosine similarity as
//! Meilisearch's `Similar` and semantic search do: Miroir's answer over shards must be the
//! answer of one node holding every document.

#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::config::FilterConfig;
use miroir_topology::reserved::{decode_shard, encode_seq, encode_shard};
use miroir_topology::{cluster_name, Node, NodeState, PluginConfig, Topology};
use serde_json::{json, Value};

use crate::exchange::Exchange;
use crate::host::mock::{json_reply, MockHost};
use crate::host::{Call, Reply};
use crate::request::Request;

/// Few directions, so that many documents tie; every fifth document has no embedding.
fn embedding(id: u64) -> Option<[f32; 2]> {
    [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]]
        .get((id % 5) as usize)
        .copied()
}

fn corpus(n: u64) -> Vec<Value> {
    (0..n)
        .map(|id| json!({"id": id, "title": format!("movie {id}"), "_vectors": {"e": embedding(id)}}))
        .collect()
}

/// Meilisearch's similarity: `1 - (1 - cos) / 2`, in `f32`.
fn similarity(a: &[f32], b: &[f32]) -> f64 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    f64::from(1.0 - (1.0 - dot / (norm(a) * norm(b))) / 2.0)
}

fn vector_of(doc: &Value) -> Option<Vec<f32>> {
    doc["_vectors"]["e"]
        .as_array()
        .map(|v| v.iter().map(|x| x.as_f64().unwrap() as f32).collect())
}

fn error(code: &str, message: &str) -> Reply {
    json_reply(
        400,
        json!({"message": message, "code": code, "type": "invalid_request", "link": format!("https://docs.meilisearch.com/errors#{code}")}),
    )
}

/// One node: documents in insertion order (its tie order).
#[derive(Default)]
struct FakeNode {
    docs: Vec<Value>,
    down: bool,
    hide_vectors: bool,
}

impl FakeNode {
    fn handle(&self, call: &Call) -> Reply {
        if self.down {
            return Reply::Failed;
        }
        let body: Value = call
            .body
            .as_ref()
            .map(|b| serde_json::from_slice(b).unwrap())
            .unwrap_or(Value::Null);
        let path = call.path.split('?').next().unwrap();
        match (call.method, path) {
            ("GET", "/indexes/movies/settings") => {
                json_reply(200, json!({"pagination": {"maxTotalHits": 1000}}))
            }
            ("POST", "/indexes/movies/similar") => self.similar(&body),
            ("POST", "/indexes/movies/search") => self.search(&body),
            ("GET", p) => {
                assert!(
                    call.path.ends_with("?retrieveVectors=true"),
                    "{}",
                    call.path
                );
                let id = p.rsplit('/').next().unwrap();
                let Some(doc) = self.doc(id) else {
                    return json_reply(404, json!({"code": "document_not_found"}));
                };
                let embeddings: Vec<Vec<f32>> = vector_of(doc).into_iter().collect();
                let mut doc = doc.as_object().unwrap().clone();
                doc.shift_remove("_vectors");
                if !self.hide_vectors {
                    doc.insert(
                        "_vectors".into(),
                        json!({"e": {"embeddings": embeddings, "regenerate": false}}),
                    );
                }
                json_reply(200, Value::Object(doc))
            }
            other => panic!("unexpected call {other:?}"),
        }
    }

    fn doc(&self, id: &str) -> Option<&Value> {
        self.docs
            .iter()
            .find(|d| miroir_topology::canonical_key(&d["id"]).as_deref() == Some(id))
    }

    /// The documents a filter's shard restriction (a string, or an array's last element)
    /// keeps; all without one.
    fn allowed<'a>(&'a self, filter: &Value) -> Vec<&'a Value> {
        let restriction = match filter {
            Value::String(s) => Some(s.as_str()),
            Value::Array(items) => items.last().and_then(Value::as_str),
            _ => None,
        };
        let shards: Option<Vec<u32>> = restriction.map(|r| {
            r.split('"')
                .skip(1)
                .step_by(2)
                .filter_map(decode_shard)
                .collect()
        });
        self.docs
            .iter()
            .filter(|d| match &shards {
                None => true,
                Some(shards) => d["_miroir_shard"]
                    .as_str()
                    .and_then(decode_shard)
                    .is_some_and(|s| shards.contains(&s)),
            })
            .collect()
    }

    fn shown(doc: &Value, similarity: Option<f64>, body: &Value) -> Value {
        let mut hit = doc.as_object().unwrap().clone();
        hit.shift_remove("_vectors");
        if body["showRankingScore"] == json!(true) {
            hit.insert("_rankingScore".into(), json!(similarity.unwrap_or(0.0)));
        }
        if body["showRankingScoreDetails"] == json!(true) {
            hit.insert(
                "_rankingScoreDetails".into(),
                json!({"vectorSort": {"order": 0, "similarity": similarity}}),
            );
        }
        Value::Object(hit)
    }

    /// Meilisearch's `Similar`: the ranked documents with an embedding, the threshold checked
    /// on the page, the total every candidate (or those before the cut).
    fn similar(&self, body: &Value) -> Reply {
        let number = |field: &str, default: u64| match &body[field] {
            Value::Null => Ok(default),
            v => v.as_u64().ok_or(()),
        };
        let (Ok(offset), Ok(limit)) = (number("offset", 0), number("limit", 20)) else {
            return error("invalid_similar_limit", "Invalid value type at `.limit`");
        };
        if body["embedder"] != "e" {
            return error(
                "invalid_similar_embedder",
                "Cannot find embedder with name `nope`.",
            );
        }
        let id = miroir_topology::canonical_key(&body["id"]).unwrap();
        let Some(target) = self.doc(&id) else {
            return error(
                "not_found_similar_id",
                &format!("Document `{id}` not found."),
            );
        };
        let universe: Vec<&Value> = self
            .allowed(&body["filter"])
            .into_iter()
            .filter(|d| d["id"] != target["id"])
            .collect();
        let mut ranked: Vec<(&Value, f64)> = match vector_of(target) {
            Some(t) => universe
                .iter()
                .filter_map(|d| vector_of(d).map(|v| (*d, similarity(&t, &v))))
                .collect(),
            None => Vec::new(),
        };
        ranked.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
        let mut total = universe.len().min(1000);
        let mut hits = Vec::new();
        for (i, (doc, s)) in ranked
            .iter()
            .enumerate()
            .skip(offset as usize)
            .take(limit as usize)
        {
            if body["rankingScoreThreshold"]
                .as_f64()
                .is_some_and(|t| *s < t)
            {
                total = i;
                break;
            }
            hits.push(Self::shown(doc, Some(*s), body));
        }
        json_reply(
            200,
            json!({"hits": hits, "id": id, "processingTimeMs": 0, "limit": limit, "offset": offset, "estimatedTotalHits": total}),
        )
    }

    /// A semantic search: every document the filter keeps, those without an embedding last.
    fn search(&self, body: &Value) -> Reply {
        let query = vector_of(&json!({"_vectors": {"e": body["vector"]}}));
        let mut ranked: Vec<(&Value, Option<f64>)> = self
            .allowed(&body["filter"])
            .into_iter()
            .map(|d| {
                (
                    d,
                    query
                        .as_ref()
                        .zip(vector_of(d))
                        .map(|(q, v)| similarity(q, &v)),
                )
            })
            .collect();
        ranked.sort_by(|a, b| match (a.1, b.1) {
            (Some(x), Some(y)) => y.partial_cmp(&x).unwrap(),
            (x, y) => y.is_some().cmp(&x.is_some()),
        });
        let limit = body["limit"].as_u64().unwrap() as usize;
        let hits: Vec<Value> = ranked
            .iter()
            .take(limit)
            .map(|(d, s)| Self::shown(d, *s, body))
            .collect();
        json_reply(
            200,
            json!({"hits": hits, "query": "", "processingTimeMs": 0, "limit": limit, "offset": 0, "estimatedTotalHits": ranked.len(), "semanticHitCount": hits.len(), "requestUid": "r"}),
        )
    }
}

fn config(shards: u32, rf: u32) -> Rc<FilterConfig> {
    let nodes = ["n0", "n1", "n2"]
        .iter()
        .map(|id| Node {
            id: id.to_string(),
            address: "127.0.0.1:1".into(),
            group: "g".into(),
            state: NodeState::Active,
        })
        .collect();
    Rc::new(FilterConfig::compile(PluginConfig::new(Topology {
        epoch: 1,
        shards,
        shard_map: Default::default(),
        replication_factor: rf,
        nodes,
    })))
}

/// The cluster's nodes, each holding the documents of its shards (stamped as Miroir stamps
/// them), and one node holding every document.
fn fleet(config: &FilterConfig, docs: &[Value]) -> (BTreeMap<String, FakeNode>, FakeNode) {
    let mut nodes: BTreeMap<String, FakeNode> = config
        .topology
        .nodes
        .iter()
        .map(|n| (cluster_name(&n.id), FakeNode::default()))
        .collect();
    for (seq, doc) in docs.iter().enumerate() {
        let id = miroir_topology::canonical_key(&doc["id"]).unwrap();
        let shard = config.topology.shard_for_key(&id);
        let mut stamped = doc.clone();
        stamped["_miroir_shard"] = json!(encode_shard(shard));
        stamped["_miroir_seq"] = json!(encode_seq(seq as u64));
        for owner in config.topology.write_targets(shard) {
            let node = nodes.get_mut(&cluster_name(&owner.id)).unwrap();
            node.docs.push(stamped.clone());
        }
    }
    let reference = FakeNode {
        docs: docs.to_vec(),
        ..FakeNode::default()
    };
    (nodes, reference)
}

/// Runs one request through the exchange, replying newest call first.
fn run(
    config: &Rc<FilterConfig>,
    nodes: &BTreeMap<String, FakeNode>,
    host: &mut MockHost,
    seq: u64,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let headers = vec![("content-type".to_string(), "application/json".to_string())];
    let bytes = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let request = Request::new(method, path, headers, bytes);
    host.response = None;
    let mut exchange = Exchange::start(config.clone(), request, seq, host);
    while let Some((token, call)) = host.in_flight.pop() {
        let reply = nodes[&call.cluster].handle(&call);
        exchange.on_reply(token, reply, host);
    }
    assert!(exchange.is_answered());
    host.answer().unwrap()
}

fn reference_answer(reference: &FakeNode, body: &Value) -> (u16, Value) {
    let call = Call {
        cluster: String::new(),
        authority: String::new(),
        method: "POST",
        path: "/indexes/movies/similar".into(),
        headers: Vec::new(),
        body: Some(serde_json::to_vec(body).unwrap()),
        timeout_ms: 0,
    };
    match reference.handle(&call) {
        Reply::Response { status, body, .. } => (status, serde_json::from_slice(&body).unwrap()),
        Reply::Failed => panic!("the reference failed"),
    }
}

#[test]
fn similar_over_shards_is_one_nodes_similar() {
    // RF 2: every node also holds shards it is not asked for.
    let config = config(8, 2);
    let docs = corpus(60);
    let (nodes, reference) = fleet(&config, &docs);
    let bodies = [
        json!({"id": 0, "embedder": "e"}),
        json!({"id": 2, "embedder": "e", "offset": 3, "limit": 7, "showRankingScore": true}),
        json!({"id": 3, "embedder": "e", "limit": 50, "showRankingScoreDetails": true}),
        json!({"id": 1, "embedder": "e", "offset": 2, "limit": 20, "rankingScoreThreshold": 0.9}),
        json!({"id": "12", "embedder": "e", "offset": 40, "limit": 30}),
        // Without an embedding nothing is similar; every other document is still counted.
        json!({"id": 4, "embedder": "e"}),
    ];
    let mut host = MockHost::default();
    for (seq, body) in bodies.iter().enumerate() {
        let want = reference_answer(&reference, body);
        assert_eq!(want.0, 200, "{}", want.1);
        let got = run(
            &config,
            &nodes,
            &mut host,
            seq as u64,
            "POST",
            "/indexes/movies/similar",
            Some(body.clone()),
        );
        assert_eq!(got, want, "{body}");
    }
}

#[test]
fn the_get_form_is_the_same_request() {
    let config = config(8, 1);
    let (nodes, reference) = fleet(&config, &corpus(30));
    let mut host = MockHost::default();
    let got = run(
        &config,
        &nodes,
        &mut host,
        0,
        "GET",
        "/indexes/movies/similar?id=2&embedder=e&offset=1&limit=5&showRankingScore=true",
        None,
    );
    let want = reference_answer(
        &reference,
        &json!({"id": "2", "embedder": "e", "offset": 1, "limit": 5, "showRankingScore": true}),
    );
    assert_eq!(got, want);
}

#[test]
fn refusals_are_the_target_shard_owners_own() {
    let config = config(8, 1);
    let (nodes, reference) = fleet(&config, &corpus(30));
    let mut host = MockHost::default();
    let owner = |id: &str| {
        let shard = config.topology.shard_for_key(id);
        cluster_name(&config.topology.write_targets(shard)[0].id)
    };
    for body in [
        json!({"id": 999, "embedder": "e"}),
        json!({"id": 0, "embedder": "nope"}),
    ] {
        host.sent.clear();
        let got = run(
            &config,
            &nodes,
            &mut host,
            0,
            "POST",
            "/indexes/movies/similar",
            Some(body.clone()),
        );
        assert_eq!(got, reference_answer(&reference, &body), "{body}");
        let id = miroir_topology::canonical_key(&body["id"]).unwrap();
        assert!(
            host.sent.iter().all(|c| c.cluster == owner(&id)),
            "only the target's shard is asked"
        );
        assert!(!host.sent.iter().any(|c| c.path.ends_with("/search")));
    }
    // A request Miroir cannot read reaches a node as the client sent it.
    host.sent.clear();
    let body = json!({"id": 0, "embedder": "e", "limit": "ten"});
    let (status, answer) = run(
        &config,
        &nodes,
        &mut host,
        0,
        "POST",
        "/indexes/movies/similar",
        Some(body.clone()),
    );
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_similar_limit"))
    );
    assert_eq!(host.sent.len(), 1);
    assert_eq!(host.sent[0].body, Some(serde_json::to_vec(&body).unwrap()));
    assert_eq!(host.sent[0].cluster, owner("0"));
}

#[test]
fn the_target_shard_fails_over_to_another_owner() {
    let config = config(8, 2);
    let docs = corpus(40);
    let (mut nodes, reference) = fleet(&config, &docs);
    let body = json!({"id": 3, "embedder": "e", "limit": 40});
    let shard = config.topology.shard_for_key("3");
    let first = cluster_name(&config.topology.owners(shard, "g")[0].id);
    nodes.get_mut(&first).unwrap().down = true;
    let mut host = MockHost::default();
    let got = run(
        &config,
        &nodes,
        &mut host,
        0,
        "POST",
        "/indexes/movies/similar",
        Some(body.clone()),
    );
    assert_eq!(got, reference_answer(&reference, &body));
    assert!(
        host.counters
            .get(crate::metrics::READ_FAILOVERS)
            .copied()
            .unwrap_or(0)
            >= 1
    );
}

#[test]
fn an_unreadable_embedding_is_refused_rather_than_guessed() {
    let config = config(8, 1);
    let (mut nodes, _) = fleet(&config, &corpus(20));
    for node in nodes.values_mut() {
        node.hide_vectors = true;
    }
    let mut host = MockHost::default();
    let (status, answer) = run(
        &config,
        &nodes,
        &mut host,
        0,
        "POST",
        "/indexes/movies/similar",
        Some(json!({"id": 1, "embedder": "e"})),
    );
    assert_eq!(
        (status, answer["code"].as_str()),
        (501, Some("miroir_not_supported"))
    );
}

#[test]
fn one_shard_needs_no_search() {
    let config = config(1, 1);
    let (nodes, reference) = fleet(&config, &corpus(20));
    let body = json!({"id": 1, "embedder": "e", "limit": 5});
    let mut host = MockHost::default();
    let got = run(
        &config,
        &nodes,
        &mut host,
        0,
        "POST",
        "/indexes/movies/similar",
        Some(body.clone()),
    );
    assert_eq!(got, reference_answer(&reference, &body));
    assert!(!host.sent.iter().any(|c| c.path.ends_with("/search")));
}

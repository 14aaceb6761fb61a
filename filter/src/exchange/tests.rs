//! The request state machine driven natively: a scripted fleet of nodes answers the calls the
//! exchange makes, in an order the test chooses.

#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use miroir_topology::reserved::{decode_shard, encode_shard};
use std::collections::BTreeMap;

use miroir_topology::{Node, NodeState, PluginConfig, Topology};
use serde_json::{json, Value};

use super::*;
use crate::host::mock::{json_reply, MockHost};
use crate::host::Call;
use crate::metrics::INDEX_LOOKUPS;
use crate::request::intake::{admit_body, refuse_oversized};
use crate::tasks::UidLease;
use miroir_topology::cluster_name;

/// The shards a node was limited to by the filter's `_miroir_shard IN [...]` restriction.
fn shards_in(filter: &str) -> Vec<u32> {
    filter
        .split('"')
        .skip(1)
        .step_by(2)
        .filter_map(decode_shard)
        .collect()
}

fn config(nodes: &[(&str, &str)], shards: u32, rf: u32) -> Rc<FilterConfig> {
    Rc::new(FilterConfig::compile(PluginConfig::new(Topology {
        epoch: 7,
        shards,
        shard_map: Default::default(),
        replication_factor: rf,
        nodes: nodes
            .iter()
            .map(|(id, group)| Node {
                id: id.to_string(),
                address: "127.0.0.1:1".into(),
                group: group.to_string(),
                state: NodeState::Active,
            })
            .collect(),
    })))
}

fn three_nodes() -> Rc<FilterConfig> {
    config(&[("n0", "g"), ("n1", "g"), ("n2", "g")], 16, 1)
}

/// One fake Meilisearch node: enough of the API to answer the filter's calls.
#[derive(Default)]
struct FakeNode {
    index: Option<Option<String>>,
    docs: Vec<Value>,
    next_task: u64,
    log: Vec<String>,
    down: bool,
    settings: Value,
    deleted: Vec<Value>,
    keys: Vec<Value>,
}

impl FakeNode {
    fn handle(&mut self, call: &Call) -> Reply {
        if self.down {
            return Reply::Failed;
        }
        self.log.push(format!("{} {}", call.method, call.path));
        let ndjson = call
            .headers
            .contains(&("content-type".into(), "application/x-ndjson".into()));
        let body: Value = match call.body.as_deref() {
            Some(b) if ndjson => serde_json::Deserializer::from_slice(b)
                .into_iter()
                .collect::<Result<Vec<Value>, _>>()
                .map_or(Value::Null, Value::Array),
            Some(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
            None => Value::Null,
        };
        let path = call.path.split('?').next().unwrap_or("");
        let mut task = |kind: &str| {
            self.next_task += 1;
            json_reply(
                202,
                json!({"taskUid": self.next_task - 1, "indexUid": "movies", "status": "enqueued", "type": kind, "enqueuedAt": "2026-11-22T00:00:00Z"}),
            )
        };
        match (call.method, path) {
            ("GET", "/indexes/movies") => match &self.index {
                Some(pk) => json_reply(200, json!({"uid": "movies", "primaryKey": pk})),
                None => json_reply(
                    404,
                    json!({"message": "Index `movies` not found.", "code": "index_not_found", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#index_not_found"}),
                ),
            },
            ("POST", "/indexes") => {
                self.index = Some(
                    body.get("primaryKey")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                );
                task("indexCreation")
            }
            ("POST", "/dumps") => task("dumpCreation"),
            ("POST", "/snapshots") => task("snapshotCreation"),
            ("PATCH", "/indexes/movies/settings") => task("settingsUpdate"),
            ("DELETE", "/indexes/movies/settings") => task("settingsUpdate"),
            ("PUT", p) if p.starts_with("/indexes/movies/settings/") => task("settingsUpdate"),
            ("GET", "/indexes/movies/settings") => json_reply(200, self.settings.clone()),
            ("POST", "/keys") => {
                let mut key = body.clone();
                key["key"] = json!(format!("value-of-{}", key["uid"].as_str().unwrap_or("")));
                key["createdAt"] = json!(format!("2026-11-22T00:00:0{}Z", self.log.len()));
                self.keys.push(key.clone());
                json_reply(201, key)
            }
            ("GET", "/keys") => json_reply(
                200,
                json!({"results": self.keys, "offset": 0, "limit": 20, "total": self.keys.len()}),
            ),
            ("GET", "/indexes/movies/settings/faceting") => json_reply(
                200,
                json!({"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}}),
            ),
            ("POST", "/indexes/movies/documents/delete-batch") => {
                self.deleted
                    .extend(body.as_array().cloned().unwrap_or_default());
                task("documentDeletion")
            }
            ("DELETE", p) if p.starts_with("/indexes/movies/documents/") => {
                self.deleted.push(json!(p.rsplit('/').next().unwrap_or("")));
                task("documentDeletion")
            }
            ("GET", p) if p.starts_with("/indexes/movies/documents/") => {
                let id = p.rsplit('/').next().unwrap_or("");
                match self
                    .docs
                    .iter()
                    .find(|d| miroir_topology::canonical_key(&d["id"]).as_deref() == Some(id))
                {
                    Some(doc) => json_reply(200, doc.clone()),
                    None => json_reply(
                        404,
                        json!({"message": format!("Document `{id}` not found."), "code": "document_not_found", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#document_not_found"}),
                    ),
                }
            }
            ("POST", "/indexes/movies/documents") => {
                if self.index.is_none() {
                    self.index = Some(None);
                }
                self.docs
                    .extend(body.as_array().cloned().unwrap_or_default());
                task("documentAdditionOrUpdate")
            }
            ("POST", "/indexes/movies/search") => self.search(&body),
            ("GET", p) if p.starts_with("/tasks/") => json_reply(
                200,
                json!({"uid": 0, "status": "succeeded", "type": "documentAdditionOrUpdate", "details": {"receivedDocuments": 2, "indexedDocuments": 2}, "enqueuedAt": "2026-11-22T00:00:00Z", "startedAt": "2026-11-22T00:00:01Z", "finishedAt": "2026-11-22T00:00:02Z", "duration": "PT1.5S", "error": null}),
            ),
            _ => json_reply(
                404,
                json!({"message": "no route", "code": "not_found", "type": "invalid_request", "link": ""}),
            ),
        }
    }

    /// Hits scored by their `score` field; the shard restriction is the last filter element.
    fn search(&self, body: &Value) -> Reply {
        let filter = body.get("filter").cloned().unwrap_or(Value::Null);
        let restriction = match &filter {
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .last()
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            _ => String::new(),
        };
        let allowed = shards_in(&restriction);
        let mut hits: Vec<Value> = self
            .docs
            .iter()
            .filter(|d| {
                d.get("_miroir_shard")
                    .and_then(Value::as_str)
                    .and_then(decode_shard)
                    .is_some_and(|s| allowed.contains(&s))
            })
            .cloned()
            .collect();
        hits.sort_by(|a, b| {
            let score = |d: &Value| d.get("score").and_then(Value::as_f64).unwrap_or(0.0);
            score(b)
                .partial_cmp(&score(a))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let total = hits.len();
        let mut genres: BTreeMap<String, u64> = BTreeMap::new();
        for hit in &hits {
            if let Some(g) = hit.get("genre").and_then(Value::as_str) {
                *genres.entry(g.to_string()).or_default() += 1;
            }
        }
        let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(20) as usize;
        let hits: Vec<Value> = hits
            .into_iter()
            .take(limit)
            .map(|mut h| {
                let score = h.get("score").cloned().unwrap_or(json!(0.0));
                h.as_object_mut()
                    .map(|o| o.insert("_rankingScore".into(), score));
                h
            })
            .collect();
        json_reply(
            200,
            json!({"hits": hits, "query": body.get("q").cloned().unwrap_or(json!("")), "processingTimeMs": total as u64, "limit": limit, "offset": 0, "estimatedTotalHits": total, "facetDistribution": {"genre": genres}, "requestUid": "r"}),
        )
    }
}

/// The control plane's task routes, as the filter sees them.
#[derive(Default)]
struct FakeControlPlane {
    down: bool,
    next_uid: u32,
    registered: Vec<miroir_topology::tasks::TaskRegistration>,
    forwarded: Vec<Call>,
    intents: Vec<miroir_topology::tasks::Intent>,
    /// Intents closed (`DELETE .../intents/{id}`), by id.
    closed: Vec<String>,
    /// Answers intents `{"intent": null}` (the client's key may not make the change).
    refuse_intents: bool,
}

impl FakeControlPlane {
    fn handle(&mut self, call: &Call) -> Reply {
        if self.down {
            return json_reply(503, json!("upstream connect error"));
        }
        if let Some(id) = call
            .path
            .strip_prefix(crate::tasks::control_plane::INTENT_PATH)
            .and_then(|rest| rest.strip_prefix('/'))
        {
            assert_eq!(call.method, "DELETE");
            self.closed.push(id.to_string());
            return Reply::Response {
                status: 204,
                headers: Vec::new(),
                body: Vec::new(),
            };
        }
        if call.path == crate::tasks::control_plane::INTENT_PATH {
            self.intents
                .push(serde_json::from_slice(call.body.as_ref().unwrap()).unwrap());
            let id = (!self.refuse_intents).then_some(self.intents.len());
            return json_reply(201, json!({ "intent": id }));
        }
        if call.path == crate::tasks::control_plane::REGISTER_PATH {
            self.registered
                .push(serde_json::from_slice(call.body.as_ref().unwrap()).unwrap());
            self.next_uid += 1;
            return json_reply(201, json!({"taskUid": self.next_uid - 1}));
        }
        self.forwarded.push(call.clone());
        json_reply(200, json!({"uid": 100, "status": "succeeded"}))
    }
}

struct Fleet {
    host: MockHost,
    nodes: BTreeMap<String, FakeNode>,
    control_plane: FakeControlPlane,
}

impl Fleet {
    fn new(config: &FilterConfig) -> Self {
        Fleet {
            host: MockHost::default(),
            nodes: config
                .topology
                .nodes
                .iter()
                .map(|n| (cluster_name(&n.id), FakeNode::default()))
                .collect(),
            control_plane: FakeControlPlane {
                next_uid: 100,
                ..FakeControlPlane::default()
            },
        }
    }

    fn node(&mut self, id: &str) -> &mut FakeNode {
        self.nodes.entry(cluster_name(id)).or_default()
    }

    /// Runs one request to its answer, replying to calls newest first (out of order).
    fn run(
        &mut self,
        config: &Rc<FilterConfig>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> (u16, Value) {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let request = Request::new(method, path, headers, bytes);
        self.host.response = None;
        let mut exchange = Exchange::start(config.clone(), request, 0, &mut self.host);
        while let Some((token, call)) = self.host.in_flight.pop() {
            let reply = if call.cluster == miroir_topology::CONTROL_PLANE_CLUSTER {
                self.control_plane.handle(&call)
            } else {
                self.nodes
                    .get_mut(&call.cluster)
                    .map(|n| n.handle(&call))
                    .unwrap_or(Reply::Failed)
            };
            exchange.on_reply(token, reply, &mut self.host);
        }
        assert!(
            exchange.is_answered(),
            "no answer once every call was answered"
        );
        self.host.answer().unwrap()
    }

    fn add_documents(&mut self, config: &Rc<FilterConfig>, docs: Value) -> (u16, Value) {
        self.run(
            config,
            "POST",
            "/indexes/movies/documents",
            &[
                ("content-type", "application/json"),
                ("authorization", "Bearer k"),
            ],
            docs,
        )
    }

    /// Writes `docs` with every call that `fails` picks answered `reply` instead of by its node.
    fn add_documents_failing(
        &mut self,
        config: &Rc<FilterConfig>,
        docs: &Value,
        fails: impl Fn(&Call) -> bool,
        reply: impl Fn() -> Reply,
    ) -> (u16, Value) {
        let request = Request::new(
            "POST",
            "/indexes/movies/documents",
            vec![("content-type".into(), "application/json".into())],
            serde_json::to_vec(docs).unwrap(),
        );
        let mut exchange = Exchange::start(config.clone(), request, 0, &mut self.host);
        while let Some((token, call)) = self.host.in_flight.pop() {
            let answer = if call.cluster == miroir_topology::CONTROL_PLANE_CLUSTER {
                self.control_plane.handle(&call)
            } else if fails(&call) {
                reply()
            } else {
                self.nodes.get_mut(&call.cluster).unwrap().handle(&call)
            };
            exchange.on_reply(token, answer, &mut self.host);
        }
        self.host.answer().unwrap()
    }
}

fn movies(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"id": i, "title": format!("movie {i}"), "score": 1.0 - (i as f64) / 1000.0, "genre": if i % 3 == 0 { "drama" } else { "comedy" }}))
            .collect(),
    )
}

#[test]
fn health_is_answered_by_the_filter() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    assert_eq!(
        fleet.run(&config, "GET", "/health", &[], Value::Null),
        (200, json!({"status": "available"}))
    );
    assert!(fleet.host.sent.is_empty());
    assert_eq!(fleet.host.header("x-miroir-topology-epoch"), Some("7"));
}

#[test]
fn requests_are_counted_by_route_family_and_status_class_and_node_calls_by_node() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
    }
    fleet.run(&config, "GET", "/health", &[], Value::Null);
    fleet.run(&config, "POST", "/chats/x/settings", &[], Value::Null);
    let (status, _) = fleet.run(
        &config,
        "POST",
        "/indexes/movies/search",
        &[],
        json!({"q": "movie"}),
    );
    assert_eq!(status, 200);
    let labeled = |key: &str| fleet.host.labeled.get(key).copied().unwrap_or(0);
    assert_eq!(
        labeled("miroir_filter_requests_total{route=health,status=2xx}"),
        1
    );
    assert_eq!(
        labeled("miroir_filter_requests_total{route=unsupported,status=5xx}"),
        1
    );
    assert_eq!(
        labeled("miroir_filter_requests_total{route=search,status=2xx}"),
        1
    );
    let node_calls: u64 = ["n0", "n1", "n2"]
        .iter()
        .map(|n| {
            labeled(&format!(
                "miroir_filter_node_calls_total{{node={n},status=2xx}}"
            ))
        })
        .sum();
    assert_eq!(
        node_calls as usize,
        fleet.host.sent.len(),
        "every call counted once"
    );
    let timed = |prefix: &str| {
        fleet
            .host
            .histograms
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .count()
    };
    assert_eq!(
        timed("miroir_filter_request_duration_milliseconds{route="),
        3
    );
    assert_eq!(
        timed("miroir_filter_node_call_duration_milliseconds{node="),
        fleet.host.sent.len()
    );
}

#[test]
fn unsupported_routes_get_a_meilisearch_error_and_reach_no_node() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    let (status, body) = fleet.run(&config, "POST", "/chats/x/settings", &[], Value::Null);
    assert_eq!(status, 501);
    assert_eq!(body["code"], "miroir_not_supported");
    assert_eq!(body["type"], "invalid_request");
    assert_eq!(
        body["link"],
        "https://docs.meilisearch.com/errors#miroir_not_supported"
    );
    assert!(fleet.host.sent.is_empty());
}

#[test]
fn meilisearchs_own_sharding_is_refused_with_the_reason() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    let (status, body) = fleet.run(&config, "PATCH", "/network", &[], json!({"self": "a"}));
    assert_eq!(status, 501);
    assert_eq!(body["code"], "miroir_not_supported");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("Meilisearch's own sharding")));
    assert!(fleet.host.sent.is_empty());
}

#[test]
fn documents_go_to_their_owner_only_with_the_shard_stamped() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
    }
    let (status, body) = fleet.add_documents(&config, movies(60));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["taskUid"], 0);
    assert_eq!(body["type"], "documentAdditionOrUpdate");
    let mut seen = 0;
    for node in &config.topology.nodes {
        for doc in &fleet.node(&node.id).docs {
            let id = canonical_key_of(doc);
            let shard = config.topology.shard_for_key(&id);
            assert_eq!(doc["_miroir_shard"], encode_shard(shard));
            let owners: Vec<String> = config
                .topology
                .write_targets(shard)
                .iter()
                .map(|n| n.id.clone())
                .collect();
            assert_eq!(owners, vec![node.id.clone()]);
            seen += 1;
        }
    }
    assert_eq!(seen, 60);
    // The client's credentials reach the nodes unchanged.
    assert!(fleet.host.sent.iter().all(|c| c
        .headers
        .contains(&("authorization".into(), "Bearer k".into()))));
    let (_, second) = fleet.add_documents(&config, movies(1));
    assert_eq!(second["taskUid"], 1, "task uids increase");
}

/// NDJSON stays NDJSON, and every node gets the client's bytes: numbers as the client wrote them.
#[test]
fn ndjson_reaches_nodes_as_written_by_the_client() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
    }
    let body: String = (0..30)
        .map(|i| {
            format!(
                "{{\"id\": {i}, \"rating\": {i}.50, \"big\": 123456789012345678901234567890}}\n"
            )
        })
        .collect();
    let request = Request::new(
        "POST",
        "/indexes/movies/documents",
        vec![("content-type".into(), "application/x-ndjson".into())],
        body.into_bytes(),
    );
    let mut exchange = Exchange::start(config.clone(), request, 0, &mut fleet.host);
    while let Some((token, call)) = fleet.host.in_flight.pop() {
        let reply = fleet.nodes.get_mut(&call.cluster).unwrap().handle(&call);
        exchange.on_reply(token, reply, &mut fleet.host);
    }
    assert_eq!(fleet.host.answer().unwrap().0, 202);
    let writes: Vec<&Call> = fleet
        .host
        .sent
        .iter()
        .filter(|c| c.method == "POST")
        .collect();
    assert_eq!(writes.len(), 3);
    let mut lines = 0;
    for call in writes {
        assert!(call
            .headers
            .contains(&("content-type".into(), "application/x-ndjson".into())));
        let sent = String::from_utf8(call.body.clone().unwrap()).unwrap();
        for line in sent.lines() {
            let id: u64 = line["{\"id\": ".len()..]
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                line.starts_with(&format!(
                    "{{\"id\": {id}, \"rating\": {id}.50, \"big\": 123456789012345678901234567890,\"_miroir_shard\":"
                )),
                "{line}"
            );
            lines += 1;
        }
    }
    assert_eq!(lines, 30);
    let stored: usize = fleet.nodes.values().map(|n| n.docs.len()).sum();
    assert_eq!(stored, 30);
}

fn canonical_key_of(doc: &Value) -> String {
    miroir_topology::canonical_key(&doc["id"]).unwrap()
}

#[test]
fn a_batch_with_one_bad_document_reaches_no_node() {
    let config = three_nodes();
    for (bad, code) in [
        (json!({"title": "no id"}), "miroir_primary_key_required"),
        (json!({"id": "a b"}), "invalid_document_id"),
        (json!({"id": 1.5}), "invalid_document_id"),
        (
            json!({"id": 9, "_miroir_shard": encode_shard(3)}),
            "miroir_reserved_field",
        ),
    ] {
        let mut fleet = Fleet::new(&config);
        for id in ["n0", "n1", "n2"] {
            fleet.node(id).index = Some(Some("id".into()));
        }
        let mut docs = movies(10);
        docs.as_array_mut().unwrap().insert(5, bad);
        let (status, body) = fleet.add_documents(&config, docs);
        assert_eq!(
            (status, body["code"].as_str().unwrap()),
            (400, code),
            "{body}"
        );
        assert!(
            fleet.host.sent.iter().all(|c| c.method == "GET"),
            "only lookups were sent"
        );
        assert!(fleet.nodes.values().all(|n| n.docs.is_empty()));
    }
}

#[test]
fn a_missing_index_is_created_with_the_shard_field_filterable_before_documents() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    let (status, _) = fleet.add_documents(&config, movies(90));
    assert_eq!(status, 202);
    for id in ["n0", "n1", "n2"] {
        assert!(!fleet.node(id).docs.is_empty());
        let log = &fleet.node(id).log;
        let order: Vec<&str> = log
            .iter()
            .map(String::as_str)
            .filter(|l| !l.starts_with("GET"))
            .collect();
        assert_eq!(order[0], "POST /indexes");
        assert_eq!(order[1], "PATCH /indexes/movies/settings");
        assert!(
            order[2].starts_with("POST /indexes/movies/documents?primaryKey=id"),
            "{order:?}"
        );
    }
    let settings = fleet
        .host
        .sent
        .iter()
        .find(|c| c.method == "PATCH")
        .unwrap();
    let body: Value = serde_json::from_slice(settings.body.as_ref().unwrap()).unwrap();
    assert_eq!(body, json!({"filterableAttributes": ["_miroir_shard"]}));
}

#[test]
fn payload_errors_are_meilisearch_errors() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    let (status, body) = fleet.run(
        &config,
        "POST",
        "/indexes/movies/documents",
        &[("content-type", "text/plain")],
        json!([]),
    );
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (415, "invalid_content_type")
    );
    let (status, body) = fleet.run(&config, "POST", "/indexes/movies/documents", &[], json!([]));
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (415, "missing_content_type")
    );
    let (status, body) = fleet.run(
        &config,
        "POST",
        "/indexes/movies/documents",
        &[("content-type", "application/json")],
        Value::Null,
    );
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (400, "missing_payload")
    );
    assert!(fleet.host.sent.is_empty());
}

fn header<'a>(host: &'a MockHost, name: &str) -> Option<&'a str> {
    let (_, headers, _) = host.response.as_ref()?;
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn with_min_copies(config: &Rc<FilterConfig>, min: u32) -> Rc<FilterConfig> {
    let mut plugin = config.to_plugin();
    plugin.topology.shard_map.min_copies = Some(min);
    Rc::new(FilterConfig::compile(plugin))
}

#[test]
fn a_write_needs_min_copies_and_the_control_plane_to_leave_the_others_out_of_sync() {
    // RF 3 in one group of 3: every node owns every shard.
    let plain = config(&[("n0", "g"), ("n1", "g"), ("n2", "g")], 4, 3);
    let managed = with_control_plane(&plain);
    let mut fleet = Fleet::new(&plain);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
    }
    let n2_fails = |call: &Call| call.method == "POST" && call.cluster == cluster_name("n2");
    let connect_error = || Reply::Response {
        status: 503,
        headers: Vec::new(),
        body: b"upstream connect error".to_vec(),
    };
    // No control plane can record n2 out of sync: every in-sync copy must take the write.
    let (status, body) = fleet.add_documents_failing(&plain, &movies(5), n2_fails, connect_error);
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("miroir_write_unavailable"))
    );
    assert!(fleet.control_plane.registered.is_empty());

    // With one, n2 is named to it in the registration, and the answer says the write is degraded.
    let (status, body) = fleet.add_documents_failing(&managed, &movies(5), n2_fails, connect_error);
    assert_eq!(status, 202, "{body}");
    let missed = fleet.control_plane.registered[0].missed.clone().unwrap();
    assert_eq!(missed.nodes, ["n2"]);
    assert_eq!(missed.epoch, 7);
    let touched = missed.shards.unwrap();
    assert!(!touched.is_empty());
    let degraded = header(&fleet.host, "x-miroir-degraded").unwrap();
    assert!(degraded.starts_with("2/3 copies: shards "), "{degraded}");

    // Only n0 takes it: enough for minCopies 1, not for 2.
    let only_n0 = |call: &Call| call.method == "POST" && call.cluster != cluster_name("n0");
    let (status, _) = fleet.add_documents_failing(&managed, &movies(5), only_n0, || Reply::Failed);
    assert_eq!(status, 202);
    let two = with_min_copies(&managed, 2);
    let (status, body) = fleet.add_documents_failing(&two, &movies(5), only_n0, || Reply::Failed);
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("miroir_write_unavailable"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("minCopies (2)"),
        "{body}"
    );

    // The control plane unreachable: no leased uid for a write that left a copy behind.
    fleet.control_plane.down = true;
    let registered = fleet.control_plane.registered.len();
    let (status, body) = fleet.add_documents_failing(&managed, &movies(5), n2_fails, connect_error);
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("miroir_write_unavailable"))
    );
    assert_eq!(fleet.control_plane.registered.len(), registered);
    fleet.control_plane.down = false;

    // Every copy took it: no mark asked for, no header.
    let (status, _) = fleet.add_documents_failing(&managed, &movies(5), |_| false, connect_error);
    assert_eq!(status, 202);
    assert!(fleet
        .control_plane
        .registered
        .last()
        .unwrap()
        .missed
        .is_none());
    assert_eq!(header(&fleet.host, "x-miroir-degraded"), None);
}

#[test]
fn a_shard_no_copy_answers_fails_the_search_unless_the_cluster_takes_partial_answers() {
    let strict = three_nodes();
    let mut fleet = Fleet::new(&strict);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
    }
    assert_eq!(fleet.add_documents(&strict, movies(30)).0, 202);
    fleet.node("n2").down = true;
    let search = |fleet: &mut Fleet, config: &Rc<FilterConfig>| {
        fleet.run(
            config,
            "POST",
            "/indexes/movies/search",
            &[("content-type", "application/json")],
            json!({"q": "", "limit": 100}),
        )
    };
    let (status, body) = search(&mut fleet, &strict);
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("miroir_shard_unavailable"))
    );
    assert_eq!(header(&fleet.host, "x-miroir-degraded"), None);

    let mut plugin = strict.to_plugin();
    plugin.topology.shard_map.unavailable_shards =
        Some(miroir_topology::UnavailableShards::Partial);
    let partial = Rc::new(FilterConfig::compile(plugin));
    let (status, body) = search(&mut fleet, &partial);
    assert_eq!(status, 200, "{body}");
    let on_n2 = fleet.node("n2").docs.len();
    assert_eq!(body["hits"].as_array().unwrap().len(), 30 - on_n2);
    let degraded = header(&fleet.host, "x-miroir-degraded").unwrap();
    assert!(degraded.starts_with("unavailable shards: "), "{degraded}");
}

#[test]
fn a_dump_needs_every_node_and_marks_none_out_of_sync() {
    let managed = with_control_plane(&three_nodes());
    let mut fleet = Fleet::new(&managed);
    fleet.node("n2").down = true;
    let (status, body) = fleet.run(&managed, "POST", "/dumps", &[], Value::Null);
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("miroir_node_unavailable"))
    );
    assert!(fleet.control_plane.registered.is_empty());
}

#[test]
fn agreement_reads_skip_a_node_down_or_out_of_sync() {
    let plain = config(&[("n0", "g"), ("n1", "g"), ("n2", "g")], 4, 2);
    let mut fleet = Fleet::new(&plain);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
        fleet.node(id).settings = json!({"stopWords": ["the"]});
    }
    fleet.node("n2").down = true;
    let (status, body) = fleet.run(&plain, "GET", "/indexes/movies/settings", &[], Value::Null);
    assert_eq!(
        (status, &body["stopWords"]),
        (200, &json!(["the"])),
        "{body}"
    );
    fleet.node("n1").down = true;
    fleet.node("n0").down = true;
    let (status, body) = fleet.run(&plain, "GET", "/indexes/movies/settings", &[], Value::Null);
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("miroir_node_unavailable"))
    );

    // A node with a copy out of sync may have missed a settings change: it is not asked.
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).down = false;
    }
    fleet.node("n2").settings = json!({"stopWords": []});
    let mut plugin = plain.to_plugin();
    let n2_copy = plugin
        .topology
        .shard_map
        .groups
        .get_mut("g")
        .unwrap()
        .iter_mut()
        .flatten()
        .find(|c| c.node == "n2")
        .unwrap();
    n2_copy.state = miroir_topology::CopyState::OutOfSync;
    let marked = Rc::new(FilterConfig::compile(plugin));
    let before = fleet.node("n2").log.len();
    let (status, body) = fleet.run(&marked, "GET", "/indexes/movies/settings", &[], Value::Null);
    assert_eq!(
        (status, &body["stopWords"]),
        (200, &json!(["the"])),
        "{body}"
    );
    assert_eq!(fleet.node("n2").log.len(), before, "n2 was not asked");
    assert_eq!(header(&fleet.host, "x-miroir-disagreeing-nodes"), None);
}

#[test]
fn a_node_down_is_on_the_path_of_its_own_shards_only() {
    // RF 1: n2's shards have no other copy.
    let plain = three_nodes();
    let mut fleet = Fleet::new(&plain);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
    }
    fleet.node("n2").down = true;
    let n2_shards: Vec<u32> = (0..plain.topology.shards)
        .filter(|s| {
            plain
                .topology
                .write_targets(*s)
                .iter()
                .any(|n| n.id == "n2")
        })
        .collect();
    let elsewhere: Vec<Value> = (0..200)
        .filter(|i| !n2_shards.contains(&plain.topology.shard_for_key(&i.to_string())))
        .take(10)
        .map(|i| json!({"id": i, "title": "elsewhere"}))
        .collect();
    let (status, body) = fleet.add_documents(&plain, Value::Array(elsewhere));
    assert_eq!(
        status, 202,
        "a batch of other shards does not need n2: {body}"
    );
    assert_eq!(header(&fleet.host, "x-miroir-degraded"), None);
    let (status, body) = fleet.add_documents(&plain, movies(30));
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("miroir_write_unavailable"))
    );
}

#[test]
fn a_node_down_for_the_lookup_of_a_new_index_is_left_out_of_the_whole_write() {
    let managed = with_control_plane(&config(&[("n0", "g"), ("n1", "g"), ("n2", "g")], 4, 2));
    let mut fleet = Fleet::new(&managed);
    fleet.node("n2").down = true;
    let (status, body) = fleet.add_documents(&managed, movies(20));
    assert_eq!(status, 202, "{body}");
    let missed = fleet.control_plane.registered[0].missed.clone().unwrap();
    assert_eq!(missed.nodes, ["n2"]);
    assert_eq!(
        missed.shards, None,
        "n2 may lack the index: every copy of it missed the write"
    );
    assert!(fleet.node("n2").docs.is_empty());
    for id in ["n0", "n1"] {
        assert!(
            fleet.node(id).log.iter().any(|l| l == "POST /indexes"),
            "{id} created it"
        );
    }
    // A settings change too: the other nodes take it, n2 leaves the in-sync set.
    let (status, _) = fleet.run(
        &managed,
        "PATCH",
        "/indexes/movies/settings",
        &[("content-type", "application/json")],
        json!({"searchableAttributes": ["title"]}),
    );
    assert_eq!(status, 202);
    let missed = fleet.control_plane.registered[1].missed.clone().unwrap();
    assert_eq!(
        (missed.nodes, missed.shards),
        (vec!["n2".to_string()], None)
    );
}

fn with_registry(config: &Rc<FilterConfig>, primary_key: &str) -> Rc<FilterConfig> {
    let mut plugin = config.to_plugin();
    plugin.indexes.insert(
        "movies".into(),
        miroir_topology::IndexRef {
            primary_key: primary_key.into(),
        },
    );
    Rc::new(FilterConfig::compile(plugin))
}

/// Ids whose shards have no copy on `node`.
fn ids_away_from(config: &FilterConfig, node: &str, count: usize) -> Vec<u32> {
    (0..1000)
        .filter(|i| {
            let shard = config.topology.shard_for_key(&i.to_string());
            !config
                .topology
                .write_targets(shard)
                .iter()
                .any(|n| n.id == node)
        })
        .take(count)
        .collect()
}

#[test]
fn with_the_registrys_primary_key_a_write_asks_only_the_nodes_its_documents_go_to() {
    let registry = with_registry(
        &config(&[("n0", "g"), ("n1", "g"), ("n2", "g")], 16, 2),
        "id",
    );
    let mut fleet = Fleet::new(&registry);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
    }
    // Hung or dead, n2 holds none of this batch's shards: it is asked nothing.
    fleet.node("n2").down = true;
    let docs: Vec<Value> = ids_away_from(&registry, "n2", 10)
        .into_iter()
        .map(|i| json!({"id": i, "title": "elsewhere"}))
        .collect();
    let (status, body) = fleet.add_documents(&registry, Value::Array(docs));
    assert_eq!(status, 202, "{body}");
    assert!(
        fleet
            .host
            .sent
            .iter()
            .all(|c| c.cluster != cluster_name("n2")),
        "n2 is not on the write's path"
    );
    assert_eq!(header(&fleet.host, "x-miroir-degraded"), None);
    assert_eq!(fleet.host.counters.get(INDEX_LOOKUPS), None);
    for id in ["n0", "n1"] {
        let node = fleet.node(id);
        assert_eq!(
            node.log.first().map(String::as_str),
            Some("GET /indexes/movies")
        );
        assert_eq!(
            node.docs.len(),
            10,
            "RF 2 in a group of 3: {id} holds both copies"
        );
    }
}

#[test]
fn a_registry_behind_the_nodes_costs_a_lookup_not_a_misrouted_document() {
    let plain = three_nodes();
    // The index was re-created with another primary key since this Envoy's registry.
    let stale = with_registry(&plain, "id");
    let mut fleet = Fleet::new(&stale);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("sku".into()));
    }
    let docs: Vec<Value> = (0..40)
        .map(|i| json!({"id": i, "sku": format!("s-{i}")}))
        .collect();
    let (status, body) = fleet.add_documents(&stale, Value::Array(docs));
    assert_eq!(status, 202, "{body}");
    assert_eq!(fleet.host.counters.get(INDEX_LOOKUPS), Some(&1));
    let mut seen = 0;
    for node in &plain.topology.nodes {
        for doc in &fleet.node(&node.id).docs {
            let sku = doc["sku"].as_str().unwrap().to_string();
            let shard = plain.topology.shard_for_key(&sku);
            assert_eq!(doc["_miroir_shard"], encode_shard(shard), "routed by `sku`");
            seen += 1;
        }
    }
    assert_eq!(seen, 40);

    // Deleted since: the index is created everywhere first, with the shard field filterable.
    let mut fleet = Fleet::new(&stale);
    let (status, body) = fleet.add_documents(&stale, movies(20));
    assert_eq!(status, 202, "{body}");
    for id in ["n0", "n1", "n2"] {
        let log = &fleet.node(id).log;
        let created = log.iter().position(|l| l == "POST /indexes");
        assert!(created.is_some(), "{id} created the index: {log:?}");
    }
    assert_eq!(fleet.host.counters.get(INDEX_LOOKUPS), Some(&1));
}

#[test]
fn search_restricts_each_node_to_its_shards_and_merges_by_score() {
    // RF 2: every node also holds shards it is not asked for; without the restriction hits would
    // come back twice.
    let config = config(&[("n0", "g"), ("n1", "g"), ("n2", "g")], 8, 2);
    let mut fleet = Fleet::new(&config);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
    }
    assert_eq!(fleet.add_documents(&config, movies(90)).0, 202);
    fleet.host.sent.clear();

    let (status, body) = fleet.run(
        &config,
        "POST",
        "/indexes/movies/search",
        &[],
        json!({"q": "movie", "offset": 10, "limit": 15, "facets": ["genre"]}),
    );
    assert_eq!(status, 200, "{body}");
    let ids: Vec<u64> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (10..25).collect::<Vec<_>>(),
        "global score order, offset applied once"
    );
    assert_eq!(body["estimatedTotalHits"], 90);
    assert_eq!(
        body["facetDistribution"]["genre"],
        json!({"comedy": 60, "drama": 30})
    );
    assert_eq!(
        (body["offset"].clone(), body["limit"].clone()),
        (json!(10), json!(15))
    );
    let hit = body["hits"][0].as_object().unwrap();
    assert!(!hit.contains_key("_miroir_shard") && !hit.contains_key("_rankingScore"));

    let mut asked: Vec<u32> = Vec::new();
    for call in fleet.host.sent.iter().filter(|c| c.method == "POST") {
        let sent: Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            (
                sent["offset"].clone(),
                sent["limit"].clone(),
                sent["showRankingScore"].clone()
            ),
            (json!(0), json!(25), json!(true))
        );
        let filter = sent["filter"].as_str().unwrap();
        asked.extend(shards_in(filter));
    }
    asked.sort_unstable();
    assert_eq!(
        asked,
        (0..8).collect::<Vec<_>>(),
        "every shard asked exactly once"
    );
}

#[test]
fn the_clients_filter_is_kept_and_anded() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    fleet.run(
        &config,
        "POST",
        "/indexes/movies/search",
        &[],
        json!({"filter": "genre = drama", "showRankingScore": true}),
    );
    let searches = fleet
        .host
        .sent
        .iter()
        .filter(|c| c.path.ends_with("/search"));
    assert_eq!(searches.clone().count(), 3);
    for call in searches {
        let sent: Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
        assert_eq!(sent["filter"][0], "genre = drama");
        assert!(sent["filter"][1]
            .as_str()
            .unwrap()
            .starts_with("_miroir_shard IN ["));
    }
}

#[test]
fn node_errors_reach_the_client_unchanged() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    let error = json!({"message": "Index `movies` not found.", "code": "index_not_found", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#index_not_found"});
    let request = Request::new("POST", "/indexes/movies/search", vec![], b"{}".to_vec());
    let mut exchange = Exchange::start(config.clone(), request, 0, &mut fleet.host);
    while let Some((token, _)) = fleet.host.in_flight.pop() {
        exchange.on_reply(token, json_reply(404, error.clone()), &mut fleet.host);
    }
    assert_eq!(fleet.host.answer(), Some((404, error)));
}

/// A node's refusal of a filter naming an attribute that is not filterable, worded as the test
/// node and Meilisearch 1.50 word it: every filterable attribute listed (`_miroir_shard` too) and
/// the node's whole filter quoted, shard restriction included.
fn refuse_overview_filter(call: &Call) -> Reply {
    if call.method == "GET" {
        // The index's settings, read before searching.
        return json_reply(200, json!({}));
    }
    let body: Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
    let filter = body
        .get("filter")
        .unwrap_or_else(|| &body["queries"][0]["filter"]);
    let restriction = filter[1].as_str().unwrap().replacen(
        miroir_topology::SHARD_FIELD,
        &format!("\"{}\"", miroir_topology::SHARD_FIELD),
        1,
    );
    let inside = if call.path == "/multi-search" {
        "Inside `.queries[0]`: "
    } else {
        ""
    };
    json_reply(
        400,
        json!({"message": format!("{inside}Index `movies`: Attribute `overview` is not filterable. Available filterable attribute patterns are: `_miroir_shard`, `genre`.\n2:10 \"overview\" = \"storm\" AND {restriction}"), "code": "invalid_search_filter", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#invalid_search_filter"}),
    )
}

#[test]
fn node_errors_read_as_one_nodes_whatever_the_route() {
    let config = three_nodes();
    let one_node = "Index `movies`: Attribute `overview` is not filterable. Available filterable attribute patterns are: `genre`.\n2:10 \"overview\" = \"storm\"";
    let filter = json!({"filter": "overview = storm"});
    let cases = [
        ("POST", "/indexes/movies/search", filter.clone(), ""),
        (
            "POST",
            "/indexes/movies/facet-search",
            json!({"facetName": "genre", "filter": "overview = storm"}),
            "",
        ),
        (
            "POST",
            "/indexes/movies/documents/fetch",
            filter.clone(),
            "",
        ),
        (
            "GET",
            "/indexes/movies/documents?filter=overview%20%3D%20storm",
            Value::Null,
            "",
        ),
        (
            "POST",
            "/multi-search",
            json!({"queries": [{"indexUid": "movies", "filter": "overview = storm"}]}),
            "Inside `.queries[0]`: ",
        ),
        (
            "POST",
            "/multi-search",
            json!({"federation": {}, "queries": [{"indexUid": "movies", "filter": "overview = storm"}]}),
            "Inside `.queries[0]`: ",
        ),
    ];
    for (method, path, body, inside) in cases {
        let mut host = MockHost::default();
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        let request = Request::new(method, path, vec![], bytes);
        let mut exchange = Exchange::start(config.clone(), request, 0, &mut host);
        while let Some((token, call)) = host.in_flight.pop() {
            exchange.on_reply(token, refuse_overview_filter(&call), &mut host);
        }
        let (status, error) = host.answer().unwrap();
        assert_eq!(status, 400, "{method} {path}");
        assert_eq!(
            error["message"],
            format!("{inside}{one_node}"),
            "{method} {path}"
        );
        assert_eq!(error["code"], "invalid_search_filter");
    }
}

#[test]
fn an_unreachable_node_without_replica_is_a_503_not_a_crash() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    // The owner of shard 0 is unknown to this Envoy (e.g. its cluster is not warmed yet) and,
    // with one copy of each shard, nobody else holds its shards.
    let owner = config.topology.owners(0, "g")[0].id.clone();
    fleet.host.unknown_clusters.push(cluster_name(&owner));
    let (status, body) = fleet.run(
        &config,
        "POST",
        "/indexes/movies/search",
        &[],
        json!({"q": "x"}),
    );
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (503, "miroir_shard_unavailable")
    );
    assert!(
        body["message"].as_str().unwrap().contains("shard(s) ["),
        "{body}"
    );
}

#[test]
fn a_search_fails_over_to_the_other_replicas() {
    for (nodes, rf) in [
        (vec![("n0", "g"), ("n1", "g"), ("n2", "g")], 2),
        (vec![("a0", "a"), ("a1", "a"), ("b0", "b"), ("b1", "b")], 1),
    ] {
        let config = config(&nodes, 16, rf);
        let mut fleet = ready_fleet(&config);
        assert_eq!(fleet.add_documents(&config, movies(90)).0, 202);
        let down = config.topology.nodes[0].id.clone();
        fleet.node(&down).down = true;
        for _ in 0..3 {
            let (status, body) = fleet.run(
                &config,
                "POST",
                "/indexes/movies/search",
                &[],
                json!({"q": "movie", "limit": 100}),
            );
            assert_eq!(status, 200, "{body}");
            let ids: Vec<u64> = body["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["id"].as_u64().unwrap())
                .collect();
            assert_eq!(
                ids,
                (0..90).collect::<Vec<_>>(),
                "every hit once, in order, with {down} down"
            );
            assert_eq!(body["estimatedTotalHits"], 90);
        }
    }
}

#[test]
fn settings_keep_the_shard_field_filterable() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    let (status, body) = fleet.run(
        &config,
        "PATCH",
        "/indexes/movies/settings",
        &[],
        json!({"filterableAttributes": ["genre"], "sortableAttributes": ["year"]}),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["type"], "settingsUpdate");
    assert_eq!(fleet.host.sent.len(), 3, "sent to every node");
    for call in &fleet.host.sent {
        let sent: Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            sent,
            json!({"filterableAttributes": ["genre", "_miroir_shard"], "sortableAttributes": ["year"]})
        );
    }
}

#[test]
fn tasks_stand_for_every_node_task() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
    }
    let (_, enqueued) = fleet.add_documents(&config, movies(90));
    assert!(
        fleet.nodes.values().all(|n| !n.docs.is_empty()),
        "every node got a node task"
    );
    let uid = enqueued["taskUid"].as_u64().unwrap();
    let (status, task) = fleet.run(&config, "GET", &format!("/tasks/{uid}"), &[], Value::Null);
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["uid"], uid);
    assert_eq!(task["status"], "succeeded");
    assert_eq!(
        task["details"]["receivedDocuments"], 90,
        "the request's count, not the nodes' parts"
    );
    assert_eq!(task["duration"], "PT1.5S");
    let (status, missing) = fleet.run(&config, "GET", "/tasks/999", &[], Value::Null);
    assert_eq!(
        (status, missing["code"].as_str().unwrap()),
        (404, "task_not_found")
    );
}

fn ready_fleet(config: &FilterConfig) -> Fleet {
    let mut fleet = Fleet::new(config);
    for node in &config.topology.nodes {
        fleet.node(&node.id).index = Some(Some("id".into()));
    }
    fleet
}

#[test]
fn creating_an_existing_index_leaves_its_settings_alone() {
    let config = three_nodes();
    let mut fleet = ready_fleet(&config);
    fleet.node("n1").index = None;
    let (status, body) = fleet.run(
        &config,
        "POST",
        "/indexes",
        &[],
        json!({"uid": "movies", "primaryKey": "id"}),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["type"], "indexCreation");
    let patched: Vec<String> = fleet
        .host
        .sent
        .iter()
        .filter(|c| c.method == "PATCH")
        .map(|c| c.cluster.clone())
        .collect();
    assert_eq!(
        patched,
        vec![cluster_name("n1")],
        "only where the index is new"
    );
    assert_eq!(
        fleet
            .host
            .sent
            .iter()
            .filter(|c| c.method == "POST")
            .count(),
        3,
        "creation goes everywhere"
    );
}

#[test]
fn resetting_settings_keeps_the_shard_field_filterable() {
    let config = three_nodes();
    let mut fleet = ready_fleet(&config);
    let (status, _) = fleet.run(
        &config,
        "DELETE",
        "/indexes/movies/settings",
        &[],
        Value::Null,
    );
    assert_eq!(status, 202);
    for id in ["n0", "n1", "n2"] {
        let log: Vec<&str> = fleet.node(id).log.iter().map(String::as_str).collect();
        assert_eq!(
            log,
            [
                "DELETE /indexes/movies/settings",
                "PATCH /indexes/movies/settings"
            ]
        );
    }
    fleet.host.sent.clear();
    let (status, _) = fleet.run(
        &config,
        "DELETE",
        "/indexes/movies/settings/filterable-attributes",
        &[],
        Value::Null,
    );
    assert_eq!(status, 202);
    for call in &fleet.host.sent {
        assert_eq!(
            (call.method, call.path.as_str()),
            ("PUT", "/indexes/movies/settings/filterable-attributes")
        );
        assert_eq!(
            call.body.as_deref(),
            Some(br#"["_miroir_shard"]"#.as_slice())
        );
    }
}

#[test]
fn settings_reads_hide_the_shard_field_and_flag_disagreement() {
    let config = three_nodes();
    let mut fleet = ready_fleet(&config);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).settings =
            json!({"filterableAttributes": ["genre", "_miroir_shard"], "rankingRules": ["words"]});
    }
    let (status, body) = fleet.run(&config, "GET", "/indexes/movies/settings", &[], Value::Null);
    assert_eq!(
        (status, body.clone()),
        (
            200,
            json!({"filterableAttributes": ["genre"], "rankingRules": ["words"]})
        )
    );
    assert_eq!(
        fleet.host.header(crate::ops::read::DISAGREEMENT_HEADER),
        None
    );

    fleet.node("n2").settings =
        json!({"filterableAttributes": ["_miroir_shard"], "rankingRules": ["words"]});
    let (_, body) = fleet.run(&config, "GET", "/indexes/movies/settings", &[], Value::Null);
    assert_eq!(body["filterableAttributes"], json!(["genre"]));
    assert_eq!(
        fleet.host.header(crate::ops::read::DISAGREEMENT_HEADER),
        Some("n2")
    );
    assert_eq!(
        fleet.host.counters.get(crate::metrics::NODE_DISAGREEMENTS),
        Some(&1)
    );
}

#[test]
fn deletions_by_id_go_to_the_owners_only() {
    let config = config(&[("n0", "g"), ("n1", "g"), ("n2", "g")], 16, 2);
    let mut fleet = ready_fleet(&config);
    let ids: Vec<Value> = (0..40)
        .map(|i| {
            if i % 2 == 0 {
                json!(i)
            } else {
                json!(format!("{i}"))
            }
        })
        .collect();
    let (status, body) = fleet.run(
        &config,
        "POST",
        "/indexes/movies/documents/delete-batch",
        &[],
        Value::Array(ids.clone()),
    );
    assert_eq!(
        (status, body["type"].as_str()),
        (202, Some("documentDeletion"))
    );
    for node in &config.topology.nodes {
        for id in &fleet.node(&node.id).deleted.clone() {
            let shard = config
                .topology
                .shard_for_key(&miroir_topology::canonical_key(id).unwrap());
            assert!(config
                .topology
                .write_targets(shard)
                .iter()
                .any(|n| n.id == node.id));
        }
    }
    let total: usize = fleet.nodes.values().map(|n| n.deleted.len()).sum();
    assert_eq!(total, 80, "each id to both of its owners");

    fleet.host.sent.clear();
    let (status, _) = fleet.run(
        &config,
        "DELETE",
        "/indexes/movies/documents/7",
        &[],
        Value::Null,
    );
    assert_eq!(status, 202);
    let shard = config.topology.shard_for_key("7");
    let mut targets: Vec<String> = config
        .topology
        .write_targets(shard)
        .iter()
        .map(|n| cluster_name(&n.id))
        .collect();
    let mut sent: Vec<String> = fleet.host.sent.iter().map(|c| c.cluster.clone()).collect();
    targets.sort();
    sent.sort();
    assert_eq!(sent, targets);
}

#[test]
fn a_document_read_fails_over_to_another_replica() {
    let config = config(&[("n0", "g"), ("n1", "g"), ("n2", "g")], 16, 2);
    let mut fleet = ready_fleet(&config);
    assert_eq!(fleet.add_documents(&config, movies(30)).0, 202);
    let shard = config.topology.shard_for_key("12");
    let owners = config.topology.owners(shard, "g");
    fleet.node(&owners[0].id).down = true;
    fleet.node(&owners[1].id).down = false;
    for _ in 0..2 {
        let (status, doc) = fleet.run(
            &config,
            "GET",
            "/indexes/movies/documents/12",
            &[],
            Value::Null,
        );
        assert_eq!(status, 200, "{doc}");
        assert_eq!(doc["id"], 12);
        assert!(doc.get("_miroir_shard").is_none());
    }
    let (status, missing) = fleet.run(
        &config,
        "GET",
        "/indexes/movies/documents/999",
        &[],
        Value::Null,
    );
    assert_eq!(
        (status, missing["code"].as_str()),
        (404, Some("document_not_found"))
    );
}

#[test]
fn multi_search_answers_each_query_in_order() {
    let config = three_nodes();
    let mut fleet = ready_fleet(&config);
    assert_eq!(fleet.add_documents(&config, movies(30)).0, 202);
    let body = json!({"queries": [
        {"indexUid": "movies", "q": "movie", "limit": 2},
        {"indexUid": "movies", "q": "movie", "offset": 5, "limit": 3, "showRankingScore": true},
    ]});
    let (status, answer) = fleet.run(&config, "POST", "/multi-search", &[], body);
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["indexUid"], "movies");
    let ids = |r: &Value| {
        r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&results[0]), [0, 1]);
    assert_eq!(ids(&results[1]), [5, 6, 7]);
    assert!(results[1]["hits"][0].get("_rankingScore").is_some());
    assert_eq!(
        results[0]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .map(String::as_str),
        Some("indexUid")
    );
}

#[test]
fn the_first_failing_query_fails_the_multi_search() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    let error = json!({"message": "Index `nope` not found.", "code": "index_not_found", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#index_not_found"});
    let request = Request::new(
        "POST",
        "/multi-search",
        vec![],
        serde_json::to_vec(&json!({"queries": [{"indexUid": "movies"}, {"indexUid": "nope"}]}))
            .unwrap(),
    );
    let mut exchange = Exchange::start(config.clone(), request, 0, &mut fleet.host);
    while let Some((token, call)) = fleet.host.in_flight.pop() {
        let reply = if call.path.contains("nope") {
            json_reply(404, error.clone())
        } else {
            json_reply(
                200,
                json!({"hits": [], "query": "", "processingTimeMs": 0, "limit": 20, "offset": 0, "estimatedTotalHits": 0}),
            )
        };
        exchange.on_reply(token, reply, &mut fleet.host);
    }
    let (status, body) = fleet.host.answer().unwrap();
    assert_eq!(
        status, 400,
        "a missing index is a bad request in multi-search"
    );
    assert_eq!(
        body["message"],
        "Inside `.queries[1]`: Index `nope` not found."
    );
    let (status, body) = fleet.run(
        &config,
        "POST",
        "/multi-search",
        &[],
        json!({"queries": [{"q": "x"}]}),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("missing_index_uid"))
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Inside `.queries[0]`: "));
}

#[test]
fn get_search_is_the_same_search() {
    let config = three_nodes();
    let mut fleet = ready_fleet(&config);
    assert_eq!(fleet.add_documents(&config, movies(30)).0, 202);
    fleet.host.sent.clear();
    let (status, body) = fleet.run(&config, "GET", "/indexes/movies/search?q=movie&offset=2&limit=3&facets=genre,year&filter=genre%20%3D%20drama&showRankingScore=true", &[], Value::Null);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["offset"].clone(), body["limit"].clone()),
        (json!(2), json!(3))
    );
    for call in fleet
        .host
        .sent
        .iter()
        .filter(|c| c.path.ends_with("/search"))
    {
        let sent: Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
        assert_eq!(call.method, "POST");
        assert_eq!(sent["facets"], json!(["genre", "year"]));
        assert_eq!(sent["filter"][0], "genre = drama");
        assert_eq!(sent["limit"], 5);
    }
    let (status, err) = fleet.run(
        &config,
        "GET",
        "/indexes/movies/search?limit=ten",
        &[],
        Value::Null,
    );
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("invalid_search_limit"))
    );
    let (status, err) = fleet.run(
        &config,
        "GET",
        "/indexes/movies/search?bogus=1",
        &[],
        Value::Null,
    );
    assert_eq!((status, err["code"].as_str()), (400, Some("bad_request")));
}

#[test]
fn keys_are_created_everywhere_with_one_uid() {
    let config = three_nodes();
    let mut fleet = ready_fleet(&config);
    let (status, key) = fleet.run(
        &config,
        "POST",
        "/keys",
        &[],
        json!({"actions": ["search"], "indexes": ["movies"], "expiresAt": null}),
    );
    assert_eq!(status, 201, "{key}");
    let uid = key["uid"].as_str().unwrap().to_string();
    assert_eq!(uid.len(), 36);
    for id in ["n0", "n1", "n2"] {
        assert_eq!(
            fleet.node(id).keys[0]["uid"],
            json!(uid),
            "{id} got the same uid"
        );
    }
    let (status, list) = fleet.run(&config, "GET", "/keys", &[], Value::Null);
    assert_eq!(status, 200);
    assert_eq!(list["results"][0]["uid"], json!(uid));
    assert_eq!(
        fleet.host.header(crate::ops::read::DISAGREEMENT_HEADER),
        None,
        "dates may differ, keys may not"
    );

    let (status, key) = fleet.run(&config, "POST", "/keys", &[], json!({"uid": "6062abda-a5aa-4414-ac91-ecd7944c0f8d", "actions": ["*"], "indexes": ["*"], "expiresAt": null}));
    assert_eq!(
        (status, key["uid"].as_str()),
        (201, Some("6062abda-a5aa-4414-ac91-ecd7944c0f8d")),
        "the client's uid is kept"
    );
    fleet.node("n1").keys.pop();
    let (_, list) = fleet.run(&config, "GET", "/keys", &[], Value::Null);
    assert_eq!(
        list["total"], 1,
        "a key missing on a node does not work through Miroir: not listed"
    );
    assert_eq!(list["results"][0]["uid"], json!(uid));
    assert_eq!(
        fleet.host.header(crate::ops::read::DISAGREEMENT_HEADER),
        Some("n0,n2"),
        "the nodes holding it"
    );
}

#[test]
fn lookups_use_miroirs_key_and_writes_the_clients() {
    let mut plugin = three_nodes().to_plugin();
    plugin.node_api_key = Some("miroir-lookups".into());
    let config = Rc::new(FilterConfig::compile(plugin));
    let mut fleet = ready_fleet(&config);
    assert_eq!(fleet.add_documents(&config, movies(30)).0, 202);
    let auth = |c: &Call| {
        c.headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
    };
    for call in &fleet.host.sent {
        let expected = if call.method == "GET" {
            "Bearer miroir-lookups"
        } else {
            "Bearer k"
        };
        assert_eq!(
            auth(call).as_deref(),
            Some(expected),
            "{} {}",
            call.method,
            call.path
        );
    }
}

fn with_control_plane(config: &Rc<FilterConfig>) -> Rc<FilterConfig> {
    crate::host::mock::with_control_plane(config.to_plugin())
}

#[test]
fn a_schema_change_is_recorded_with_the_control_plane_before_any_node_sees_it() {
    let managed = with_control_plane(&three_nodes());
    let mut fleet = Fleet::new(&managed);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
    }
    let change = |fleet: &mut Fleet| {
        fleet.run(
            &managed,
            "PATCH",
            "/indexes/movies/settings",
            &[
                ("content-type", "application/json"),
                ("authorization", "Bearer k"),
            ],
            json!({"searchableAttributes": ["title"]}),
        )
    };
    let (status, body) = change(&mut fleet);
    assert_eq!(status, 202, "{body}");
    let sent = &fleet.host.sent;
    let recorded = sent
        .iter()
        .position(|c| c.path == crate::tasks::control_plane::INTENT_PATH)
        .expect("the change was recorded");
    let first_node = sent
        .iter()
        .position(|c| c.cluster != miroir_topology::CONTROL_PLANE_CLUSTER)
        .expect("nodes were called");
    assert!(recorded < first_node, "recorded before any node saw it");
    assert!(sent[recorded]
        .headers
        .contains(&("authorization".into(), "Bearer k".into())));
    let intent = &fleet.control_plane.intents[0];
    assert_eq!(
        (intent.kind.as_str(), intent.target.as_str()),
        ("settingsUpdate", "movies")
    );
    assert_eq!(intent.phases.len(), 1);
    let call = &intent.phases[0];
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("PATCH", "/indexes/movies/settings")
    );
    assert_eq!(
        call.body.as_ref().unwrap()["searchableAttributes"],
        json!(["title"])
    );
    assert_eq!(call.nodes, None, "every node");
    assert_eq!(fleet.control_plane.registered[0].record.intent, Some(1));

    // Not recorded: sent all the same, and the registration names no intent.
    fleet.control_plane.refuse_intents = true;
    let (status, body) = change(&mut fleet);
    assert_eq!(status, 202, "{body}");
    assert_eq!(fleet.control_plane.registered[1].record.intent, None);

    // Documents written by id are routed, not recorded; a deletion by filter is.
    fleet.control_plane.refuse_intents = false;
    let (status, _) = fleet.add_documents(&managed, movies(5));
    assert_eq!(status, 202);
    assert_eq!(fleet.control_plane.intents.len(), 2);
    fleet.run(
        &managed,
        "POST",
        "/indexes/movies/documents/delete",
        &[("content-type", "application/json")],
        json!({"filter": "genre = drama"}),
    );
    let deletion = &fleet.control_plane.intents[2];
    assert_eq!(
        (deletion.kind.as_str(), deletion.target.as_str()),
        ("documentDeletion", "movies")
    );
    assert_eq!(
        deletion.phases[0].body,
        Some(json!({"filter": "genre = drama"}))
    );
}

#[test]
fn a_key_change_is_recorded_first_and_closed_once_the_nodes_answered() {
    let managed = with_control_plane(&three_nodes());
    let mut fleet = ready_fleet(&managed);
    let uid = "6062abda-a5aa-4414-ac91-ecd7944c0f8d";
    let (status, key) = fleet.run(
        &managed,
        "POST",
        "/keys",
        &[("authorization", "Bearer master")],
        json!({"uid": uid, "actions": ["search"], "indexes": ["movies"], "expiresAt": null}),
    );
    assert_eq!(status, 201, "{key}");
    let intent = &fleet.control_plane.intents[0];
    assert_eq!(
        (intent.kind.as_str(), intent.target.as_str()),
        ("keyCreation", "keys")
    );
    assert_eq!(intent.phases[0].path, "/keys");
    assert_eq!(fleet.control_plane.closed, ["1"]);
    let sent = &fleet.host.sent;
    let at = |p: &dyn Fn(&Call) -> bool| sent.iter().position(p).unwrap();
    let recorded = at(&|c| c.path == crate::tasks::control_plane::INTENT_PATH);
    let first_node = at(&|c| c.cluster != miroir_topology::CONTROL_PLANE_CLUSTER);
    let last_node = sent
        .iter()
        .rposition(|c| c.cluster != miroir_topology::CONTROL_PLANE_CLUSTER)
        .unwrap();
    let closed = at(&|c| c.method == "DELETE");
    assert!(recorded < first_node && last_node < closed, "{sent:?}");
    for id in ["n0", "n1", "n2"] {
        assert_eq!(fleet.node(id).keys[0]["uid"], json!(uid), "{id}");
    }
}

#[test]
fn an_index_creation_records_its_phases_with_the_nodes_each_goes_to() {
    let managed = with_control_plane(&three_nodes());
    let mut fleet = Fleet::new(&managed);
    fleet.node("n0").index = Some(Some("id".into()));
    let (status, body) = fleet.run(
        &managed,
        "POST",
        "/indexes",
        &[("content-type", "application/json")],
        json!({"uid": "movies", "primaryKey": "id"}),
    );
    assert_eq!(status, 202, "{body}");
    let intent = &fleet.control_plane.intents[0];
    assert_eq!(intent.kind, "indexCreation");
    let phases: Vec<(&str, &str, Option<Vec<String>>)> = intent
        .phases
        .iter()
        .map(|p| (p.method.as_str(), p.path.as_str(), p.nodes.clone()))
        .collect();
    assert_eq!(
        phases,
        vec![
            ("POST", "/indexes", None),
            (
                "PATCH",
                "/indexes/movies/settings",
                Some(vec!["n1".to_string(), "n2".to_string()])
            ),
        ],
        "the shard field made filterable only where the index is new"
    );
}

#[test]
fn writes_get_their_uid_from_the_control_plane_and_task_reads_go_there() {
    let config = with_control_plane(&config(
        &[("a0", "a"), ("a1", "a"), ("b0", "b"), ("b1", "b")],
        8,
        2,
    ));
    let mut fleet = Fleet::new(&config);
    for node in &config.topology.nodes {
        fleet.node(&node.id).index = Some(Some("id".into()));
    }
    let (status, enqueued) = fleet.add_documents(&config, movies(30));
    assert_eq!(
        (status, enqueued["taskUid"].clone()),
        (202, json!(100)),
        "{enqueued}"
    );
    let registration = &fleet.control_plane.registered[0];
    assert_eq!(registration.task_uid, None);
    let record = &registration.record;
    assert_eq!(record.copies, 2);
    assert_eq!(record.details["receivedDocuments"], 30);
    assert_eq!(record.node_tasks.len(), 4, "a node task on every node");
    for task in &record.node_tasks {
        assert_eq!(task.group, &task.node[..1]);
    }
    let register_call = fleet
        .host
        .sent
        .iter()
        .find(|c| c.path == crate::tasks::control_plane::REGISTER_PATH)
        .unwrap();
    assert!(register_call.headers.contains(&(
        "x-miroir-token".into(),
        crate::host::mock::CONTROL_PLANE_TOKEN.into()
    )));

    let (status, _) = fleet.run(
        &config,
        "GET",
        "/tasks/100?x=1",
        &[("authorization", "Bearer client")],
        Value::Null,
    );
    assert_eq!(status, 200);
    let forwarded = fleet.control_plane.forwarded.last().unwrap();
    assert_eq!(forwarded.path, "/tasks/100?x=1");
    assert!(
        forwarded
            .headers
            .contains(&("authorization".into(), "Bearer client".into())),
        "the client's key reaches the control plane"
    );
    let (status, _) = fleet.run(&config, "POST", "/tasks/cancel?uids=100", &[], Value::Null);
    assert_eq!(status, 200);
    assert_eq!(fleet.control_plane.forwarded.last().unwrap().method, "POST");
}

#[test]
fn without_the_control_plane_writes_use_leased_uids_and_stay_readable_here() {
    let config = with_control_plane(&three_nodes());
    let mut fleet = Fleet::new(&config);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
    }
    fleet.control_plane.down = true;
    let (status, refused) = fleet.add_documents(&config, movies(9));
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["code"], "miroir_control_plane_unavailable");
    // Now known to be unreachable: the next write is refused before any node sees it.
    let sent = fleet.host.sent.len();
    let (status, refused) = fleet.add_documents(&config, movies(9));
    assert_eq!(
        (status, refused["code"].clone()),
        (503, json!("miroir_control_plane_unavailable"))
    );
    assert_eq!(fleet.host.sent.len(), sent, "nothing was sent");

    crate::tasks::add_lease(
        &mut fleet.host,
        UidLease {
            first: 5000,
            last: 5001,
        },
    );
    let (status, enqueued) = fleet.add_documents(&config, movies(9));
    assert_eq!(
        (status, enqueued["taskUid"].clone()),
        (202, json!(5000)),
        "{enqueued}"
    );
    assert_eq!(
        crate::tasks::outbox(&fleet.host),
        [5000],
        "kept for the hand-over"
    );

    let (status, task) = fleet.run(&config, "GET", "/tasks/5000", &[], Value::Null);
    assert_eq!(status, 200, "{task}");
    assert_eq!(
        (task["uid"].clone(), task["status"].clone()),
        (json!(5000), json!("succeeded"))
    );
    let (status, listing) = fleet.run(&config, "GET", "/tasks", &[], Value::Null);
    assert_eq!(
        (status, listing["code"].clone()),
        (503, json!("miroir_control_plane_unavailable"))
    );
}

#[test]
fn a_body_above_the_payload_limit_is_refused_like_meilisearch_before_any_node_is_called() {
    let config = three_nodes();
    let mut host = MockHost::default();
    assert!(!refuse_oversized(&config, 100_000_000, &mut host));
    assert_eq!(host.responses, 0);

    assert!(refuse_oversized(&config, 100_000_001, &mut host));
    assert!(host.sent.is_empty());
    assert_eq!(
        host.answer(),
        Some((
            413,
            json!({
                "message": "The provided payload reached the size limit. The maximum accepted payload size is 95.367431640625 MiB.",
                "code": "payload_too_large",
                "type": "invalid_request",
                "link": "https://docs.meilisearch.com/errors#payload_too_large"
            })
        ))
    );
    assert_eq!(host.header("x-miroir-topology-epoch"), Some("7"));
}

#[test]
fn an_inferred_primary_key_reaches_the_nodes_that_got_no_document() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(None);
    }
    // One document lands on one node; the two others must learn the key all the same.
    let (status, _) = fleet.add_documents(&config, json!([{"id": 1, "title": "Carol"}]));
    assert_eq!(status, 202);
    for id in ["n0", "n1", "n2"] {
        let log = &fleet.node(id).log;
        assert!(
            log.iter()
                .any(|l| l.starts_with("POST /indexes/movies/documents?primaryKey=id")),
            "{id}: {log:?}"
        );
    }
    let docs: usize = ["n0", "n1", "n2"]
        .iter()
        .map(|id| fleet.node(id).docs.len())
        .sum();
    assert_eq!(docs, 1, "the document itself is on its owner only");
}

#[test]
fn dumps_and_snapshots_are_taken_on_every_node_as_one_task() {
    for path in ["/dumps", "/snapshots"] {
        let config = three_nodes();
        let mut fleet = Fleet::new(&config);
        let (status, body) = fleet.run(&config, "POST", path, &[], Value::Null);
        assert_eq!(status, 202, "{path}: {body}");
        for id in ["n0", "n1", "n2"] {
            assert!(
                fleet
                    .node(id)
                    .log
                    .iter()
                    .any(|l| l == &format!("POST {path}")),
                "{path} on {id}"
            );
        }
        assert!(body["taskUid"].is_u64());
    }
}

#[test]
fn fields_are_every_nodes_by_name_without_miroirs() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    let field = |name: &str| json!({"name": name, "displayed": {"enabled": true}});
    let mut sent = Vec::new();
    for (id, names) in [
        ("n0", vec!["title", "_miroir_shard", "id"]),
        ("n1", vec!["id", "year"]),
        ("n2", vec!["_miroir_seq", "id"]),
    ] {
        let results: Vec<Value> = names.iter().map(|n| field(n)).collect();
        sent.push((id, results));
    }
    let request = Request::new(
        "POST",
        "/indexes/movies/fields",
        vec![("content-type".into(), "application/json".into())],
        serde_json::to_vec(&json!({"offset": 1, "limit": 2})).unwrap(),
    );
    let mut exchange = Exchange::start(config.clone(), request, 0, &mut fleet.host);
    while let Some((token, call)) = fleet.host.in_flight.pop() {
        let body: Value = serde_json::from_slice(call.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"offset": 0, "limit": 100000}),
            "nodes list every field"
        );
        let results = sent
            .iter()
            .find(|(id, _)| cluster_name(id) == call.cluster)
            .map(|(_, r)| r.clone())
            .unwrap();
        let total = results.len();
        let reply = json_reply(
            200,
            json!({"results": results, "offset": 0, "limit": 100000, "total": total}),
        );
        exchange.on_reply(token, reply, &mut fleet.host);
    }
    let (status, body) = fleet.host.answer().unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"results": [field("title"), field("year")], "offset": 1, "limit": 2, "total": 3})
    );
}

#[test]
fn a_task_deleted_on_the_control_plane_is_not_found_here_either() {
    let config = with_control_plane(&three_nodes());
    let mut fleet = Fleet::new(&config);
    let (status, body) = fleet.add_documents(&config, movies(3));
    assert_eq!(status, 202);
    let uid = body["taskUid"].as_u64().unwrap();
    // The control plane had the task, then deleted it: its 404 is the answer.
    let request = Request::new("GET", &format!("/tasks/{uid}"), Vec::new(), Vec::new());
    let mut exchange = Exchange::start(config.clone(), request, 0, &mut fleet.host);
    while let Some((token, call)) = fleet.host.in_flight.pop() {
        assert_eq!(
            call.cluster,
            miroir_topology::CONTROL_PLANE_CLUSTER,
            "no node is asked"
        );
        let reply = json_reply(
            404,
            json!({"message": format!("Task `{uid}` not found."), "code": "task_not_found", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#task_not_found"}),
        );
        exchange.on_reply(token, reply, &mut fleet.host);
    }
    let (status, body) = fleet.host.answer().unwrap();
    assert_eq!(status, 404);
    assert_eq!(body["code"], "task_not_found");
}

#[test]
fn a_single_nodes_own_default_keys_are_not_listed_beside_the_clusters() {
    let config = config(&[("n0", "g")], 8, 1);
    let mut fleet = Fleet::new(&config);
    let cluster = miroir_topology::keys::DEFAULT_KEYS[3].body();
    let own = json!({"uid": "0b3b5e4e-0000-4000-8000-000000000000", "name": "Default Search API Key", "actions": ["search"]});
    fleet.node("n0").keys = vec![own, cluster.clone()];
    let (status, body) = fleet.run(&config, "GET", "/keys", &[], Value::Null);
    assert_eq!(status, 200);
    assert_eq!(body["total"], 1, "{body}");
    assert_eq!(body["results"][0]["uid"], cluster["uid"]);
}

// Issue 10 (hardening): bounded work per request, Miroir's fields kept out of clients' hands,
// static task reads with the client's credentials.

impl Fleet {
    /// [`Fleet::run`] with a raw body.
    fn run_bytes(
        &mut self,
        config: &Rc<FilterConfig>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let request = Request::new(method, path, headers, body);
        self.host.response = None;
        let mut exchange = Exchange::start(config.clone(), request, 0, &mut self.host);
        while let Some((token, call)) = self.host.in_flight.pop() {
            let reply = self
                .nodes
                .get_mut(&call.cluster)
                .map(|n| n.handle(&call))
                .unwrap_or(Reply::Failed);
            exchange.on_reply(token, reply, &mut self.host);
        }
        self.host.answer().unwrap()
    }
}

#[test]
fn a_multi_search_past_the_query_cap_reaches_no_node() {
    let config = three_nodes();
    let cap = miroir_topology::limits::MAX_MULTI_SEARCH_QUERIES;
    for federation in [Value::Null, json!({})] {
        let queries: Vec<Value> = (0..=cap).map(|_| json!({"indexUid": "movies"})).collect();
        let mut body = json!({ "queries": queries });
        if !federation.is_null() {
            body["federation"] = federation;
        }
        let mut fleet = ready_fleet(&config);
        let (status, error) = fleet.run(&config, "POST", "/multi-search", &[], body);
        assert_eq!(status, 400, "{error}");
        assert_eq!(error["code"], "miroir_too_many_search_queries");
        assert!(error["message"].as_str().unwrap().contains(&format!(
            "at most {cap} queries, but this one holds {}",
            cap + 1
        )));
        assert!(fleet.host.sent.is_empty(), "no node was asked");
    }
    // At the cap, the queries run.
    let queries: Vec<Value> = (0..cap).map(|_| json!({"indexUid": "movies"})).collect();
    let mut fleet = ready_fleet(&config);
    let (status, _) = fleet.run(
        &config,
        "POST",
        "/multi-search",
        &[],
        json!({ "queries": queries }),
    );
    assert_eq!(status, 200);
}

#[test]
fn a_document_listing_past_the_window_cap_reaches_no_node() {
    let config = three_nodes();
    let cap = miroir_topology::limits::MAX_DOCUMENTS_WINDOW;
    let cases = [
        (
            "GET",
            format!("/indexes/movies/documents?offset={cap}&limit=1"),
            Value::Null,
        ),
        (
            "POST",
            "/indexes/movies/documents/fetch".to_string(),
            json!({"offset": cap - 10, "limit": 11}),
        ),
        (
            "POST",
            "/indexes/movies/documents/fetch".to_string(),
            json!({"offset": u64::MAX, "limit": u64::MAX}),
        ),
    ];
    for (method, path, body) in cases {
        let mut fleet = ready_fleet(&config);
        let (status, error) = fleet.run(&config, method, &path, &[], body);
        assert_eq!(status, 400, "{path}: {error}");
        assert_eq!(error["code"], "miroir_documents_window_too_large");
        assert!(fleet.host.sent.is_empty(), "no node was asked");
    }
    let mut fleet = ready_fleet(&config);
    let path = format!("/indexes/movies/documents?offset={}&limit=10", cap - 10);
    let (_, _) = fleet.run(&config, "GET", &path, &[], Value::Null);
    let asked = fleet
        .host
        .sent
        .iter()
        .filter(|c| c.path.ends_with("/documents/fetch"))
        .count();
    assert_eq!(asked, 3, "a window at the cap is listed");
}

#[test]
fn a_csv_past_the_row_cap_is_refused_before_anything_is_written() {
    let config = three_nodes();
    let cap = miroir_topology::limits::MAX_CSV_ROWS;
    let mut csv = String::from("id\n");
    for i in 0..=cap {
        csv.push_str(&i.to_string());
        csv.push('\n');
    }
    let mut fleet = ready_fleet(&config);
    let headers = [("content-type", "text/csv"), ("authorization", "Bearer k")];
    let (status, error) = fleet.run_bytes(
        &config,
        "POST",
        "/indexes/movies/documents",
        &headers,
        csv.into_bytes(),
    );
    assert_eq!(status, 413, "{error}");
    assert_eq!(error["code"], "miroir_too_many_csv_rows");
    assert!(
        fleet.host.sent.iter().all(|c| c.method == "GET"),
        "nothing was written"
    );
}

#[test]
fn large_bodies_past_the_workers_budget_get_503_with_retry_after() {
    use crate::request::limits::Admission;
    use miroir_topology::limits::{LARGE_BODY_BYTES, MAX_BUFFERED_BODY_BYTES};
    let config = three_nodes();
    let mut host = MockHost::default();
    let admit = |size: u64, host: &mut MockHost| match admit_body(&config, size, host) {
        Admission::Admitted(lease) => Ok(lease),
        Admission::Refused => Err(()),
    };
    assert!(admit(10, &mut host).unwrap().is_none());
    let first = admit(MAX_BUFFERED_BODY_BYTES / 2, &mut host).unwrap();
    let second = admit(MAX_BUFFERED_BODY_BYTES / 2, &mut host).unwrap();
    assert_eq!(host.responses, 0);
    assert!(admit(LARGE_BODY_BYTES, &mut host).is_err());
    let (status, error) = host.answer().unwrap();
    assert_eq!(status, 503);
    assert_eq!(error["code"], "miroir_too_many_large_bodies");
    assert_eq!(error["type"], "system");
    assert_eq!(host.header("retry-after"), Some("10"));
    // Small bodies still pass, and a finished request gives its room back.
    assert!(admit(10, &mut host).is_ok());
    drop((first, second));
    assert!(admit(LARGE_BODY_BYTES, &mut host).unwrap().is_some());
}

#[test]
fn settings_naming_miroirs_fields_reach_no_node() {
    let config = three_nodes();
    let cases = [
        (
            "PATCH",
            "/indexes/movies/settings",
            json!({"searchableAttributes": ["title", "_miroir_shard"]}),
        ),
        (
            "PATCH",
            "/indexes/movies/settings",
            json!({"rankingRules": ["words", "_miroir_seq:asc"]}),
        ),
        (
            "PATCH",
            "/indexes/movies/settings",
            json!({"filterableAttributes": ["genre", {"attributePatterns": ["_miroir_*"]}]}),
        ),
        (
            "PATCH",
            "/indexes/movies/settings",
            json!({"distinctAttribute": "_miroir_shard"}),
        ),
        (
            "PUT",
            "/indexes/movies/settings/displayed-attributes",
            json!(["title", "_miroir_seq"]),
        ),
        (
            "PUT",
            "/indexes/movies/settings/sortable-attributes",
            json!(["_miroir_seq"]),
        ),
        (
            "PUT",
            "/indexes/movies/settings/ranking-rules",
            json!(["_miroir_seq:desc"]),
        ),
    ];
    for (method, path, body) in cases {
        let mut fleet = ready_fleet(&config);
        let (status, error) = fleet.run(&config, method, path, &[], body.clone());
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["code"], "miroir_reserved_field", "{body}");
        assert!(fleet.host.sent.is_empty(), "{body}");
    }
    let mut fleet = ready_fleet(&config);
    let (status, _) = fleet.run(
        &config,
        "PATCH",
        "/indexes/movies/settings",
        &[],
        json!({"displayedAttributes": ["*"], "rankingRules": ["words", "year:desc"]}),
    );
    assert_eq!(status, 202);
}

#[test]
fn a_document_edition_mentioning_miroirs_fields_reaches_no_node() {
    let config = three_nodes();
    let mut fleet = ready_fleet(&config);
    let (status, error) = fleet.run(
        &config,
        "POST",
        "/indexes/movies/documents/edit",
        &[],
        json!({"function": "doc._miroir_shard = \"....\""}),
    );
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["code"], "miroir_reserved_field");
    assert!(fleet.host.sent.is_empty());
}

/// A node refusing a filter on the stand-in of `_miroir_shard` as Meilisearch 1.50 does (the
/// nodes hold `_miroir_shard` filterable, so it is listed).
fn refuse_stand_in_filter(call: &Call) -> Reply {
    if call.method == "GET" {
        return json_reply(200, json!({}));
    }
    let sent = String::from_utf8_lossy(call.body.as_deref().unwrap_or_default()).to_string();
    assert!(
        !sent.contains("\"_miroir_shard = 1\""),
        "sent as the client wrote it: {sent}"
    );
    let inside = if call.path == "/multi-search" {
        "Inside `.queries[0]`: "
    } else {
        ""
    };
    json_reply(
        400,
        json!({"message": format!("{inside}Index `movies`: Attribute `_miroir-shard` is not filterable. Available filterable attribute patterns are: `_miroir_shard`, `genre`.\n2:15 \"_miroir-shard\" = \"1\""), "code": "invalid_search_filter", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#invalid_search_filter"}),
    )
}

#[test]
fn a_client_filter_naming_miroirs_fields_is_refused_as_one_node_refuses_it() {
    let config = three_nodes();
    let one_node = "Index `movies`: Attribute `_miroir_shard` is not filterable. Available filterable attribute patterns are: `genre`.\n2:15 \"_miroir_shard\" = \"1\"";
    let cases = [
        (
            "/indexes/movies/search",
            json!({"filter": "_miroir_shard = 1"}),
            "",
        ),
        (
            "/indexes/movies/facet-search",
            json!({"facetName": "genre", "filter": "_miroir_shard = 1"}),
            "",
        ),
        (
            "/indexes/movies/documents/fetch",
            json!({"filter": ["_miroir_shard = 1"]}),
            "",
        ),
        (
            "/multi-search",
            json!({"queries": [{"indexUid": "movies", "filter": "_miroir_shard = 1"}]}),
            "Inside `.queries[0]`: ",
        ),
        (
            "/multi-search",
            json!({"federation": {}, "queries": [{"indexUid": "movies", "filter": "_miroir_shard = 1"}]}),
            "Inside `.queries[0]`: ",
        ),
    ];
    for (path, body, inside) in cases {
        let mut host = MockHost::default();
        let request = Request::new("POST", path, vec![], serde_json::to_vec(&body).unwrap());
        let mut exchange = Exchange::start(config.clone(), request, 0, &mut host);
        while let Some((token, call)) = host.in_flight.pop() {
            exchange.on_reply(token, refuse_stand_in_filter(&call), &mut host);
        }
        let (status, error) = host.answer().unwrap();
        assert_eq!(status, 400, "{path}");
        assert_eq!(error["message"], format!("{inside}{one_node}"), "{path}");
    }
    // A deletion by filter reaches the nodes with the stand-in, which no node holds.
    let mut fleet = ready_fleet(&config);
    fleet.run(
        &config,
        "POST",
        "/indexes/movies/documents/delete",
        &[],
        json!({"filter": "_miroir_shard = \"....\""}),
    );
    let deletions: Vec<&Call> = fleet
        .host
        .sent
        .iter()
        .filter(|c| c.path.ends_with("/documents/delete"))
        .collect();
    assert_eq!(deletions.len(), 3);
    for call in deletions {
        let sent: Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
        assert_eq!(sent["filter"], "_miroir-shard = \"....\"");
    }
}

#[test]
fn a_static_task_read_carries_the_clients_key_and_a_hidden_task_is_not_found() {
    let mut plugin = three_nodes().to_plugin();
    plugin.node_api_key = Some("miroir-lookups".into());
    let config = Rc::new(FilterConfig::compile(plugin));
    let mut fleet = ready_fleet(&config);
    let (_, enqueued) = fleet.add_documents(&config, movies(30));
    let uid = enqueued["taskUid"].as_u64().unwrap();
    let path = format!("/tasks/{uid}");
    let scoped = [("authorization", "Bearer scoped-to-other-index")];

    let mut host = MockHost::default();
    let request = Request::new(
        "GET",
        &path,
        vec![("authorization".into(), scoped[0].1.into())],
        vec![],
    );
    std::mem::swap(&mut host.shared, &mut fleet.host.shared);
    let mut exchange = Exchange::start(config.clone(), request, 0, &mut host);
    let mut asked = 0;
    while let Some((token, call)) = host.in_flight.pop() {
        asked += 1;
        let auth = call.headers.iter().find(|(k, _)| k == "authorization");
        assert_eq!(
            auth.map(|(_, v)| v.as_str()),
            Some("Bearer scoped-to-other-index"),
            "the node task is read with the client's key"
        );
        // What a Meilisearch node answers a key that cannot see the task's index.
        let node_uid = call.path.rsplit('/').next().unwrap().to_string();
        exchange.on_reply(
            token,
            json_reply(404, json!({"message": format!("Task `{node_uid}` not found."), "code": "task_not_found", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#task_not_found"})),
            &mut host,
        );
    }
    assert!(asked > 0);
    assert_eq!(
        host.answer(),
        Some((
            404,
            json!({"message": format!("Task `{uid}` not found."), "code": "task_not_found", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#task_not_found"})
        ))
    );
}

/// Three nodes of group `g`, RF 1, with every shard of `n0` being moved to `n3` (a copy being
/// filled), and group `h` being filled from nothing: the map a job sets up before it copies.
fn moving_config() -> (Rc<FilterConfig>, Vec<u32>) {
    use miroir_topology::{CopyState, ShardCopy};
    let base = config(
        &[
            ("n0", "g"),
            ("n1", "g"),
            ("n2", "g"),
            ("n3", "g"),
            ("h0", "h"),
        ],
        8,
        1,
    );
    let mut topology = base.topology.clone();
    let mut moved = Vec::new();
    let g = topology.shard_map.groups.get_mut("g").unwrap();
    for (shard, copies) in g.iter_mut().enumerate() {
        if copies[0].node == "n3" {
            copies[0].node = "n0".into();
        }
        if copies[0].node == "n0" {
            moved.push(shard as u32);
            copies.push(ShardCopy {
                node: "n3".into(),
                state: CopyState::Copying,
            });
        }
    }
    for copies in topology.shard_map.groups.get_mut("h").unwrap() {
        copies[0].state = CopyState::Copying;
    }
    topology.validate().unwrap();
    (
        Rc::new(FilterConfig::compile(PluginConfig::new(topology))),
        moved,
    )
}

#[test]
fn a_write_needs_the_copy_being_filled_too() {
    let (config, moved) = moving_config();
    let id = (0..1000)
        .find(|i| moved.contains(&config.topology.shard_for_key(&i.to_string())))
        .unwrap();
    let mut fleet = Fleet::new(&config);
    for node in config.topology.nodes.iter() {
        fleet.node(&node.id).index = Some(Some("id".into()));
    }
    let doc = json!([{"id": id, "title": "moving"}]);
    assert_eq!(fleet.add_documents(&config, doc.clone()).0, 202);
    for node in ["n0", "n3", "h0"] {
        assert_eq!(fleet.node(node).docs.len(), 1, "{node} took the write");
    }
    // n3 answers the lookup, then fails the document write.
    let (status, body) = fleet.add_documents_failing(
        &config,
        &doc,
        |call| call.method == "POST" && call.cluster == cluster_name("n3"),
        || Reply::Failed,
    );
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (503, "miroir_write_unavailable"),
        "a copy being filled that misses a write would serve reads without it"
    );
}

#[test]
fn searches_read_active_copies_of_complete_groups_only() {
    let (config, moved) = moving_config();
    let mut fleet = Fleet::new(&config);
    for node in config.topology.nodes.iter() {
        fleet.node(&node.id).index = Some(Some("id".into()));
    }
    assert_eq!(fleet.add_documents(&config, movies(40)).0, 202);
    for _ in 0..6 {
        fleet.host.sent.clear();
        let (status, body) = fleet.run(
            &config,
            "POST",
            "/indexes/movies/search",
            &[],
            json!({"q": "movie", "limit": 100}),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["estimatedTotalHits"], 40);
        let asked: Vec<&str> = fleet.host.sent.iter().map(|c| c.cluster.as_str()).collect();
        assert!(
            !asked.contains(&cluster_name("n3").as_str()) && !asked.contains(&cluster_name("h0").as_str()),
            "asked {asked:?}; shards {moved:?} are still being copied to n3, group h is being filled"
        );
    }
}

/// A browser's preflight is answered by the filter as Meilisearch answers it: no node, no key.
#[test]
fn a_preflight_is_answered_without_any_node_or_key() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    let headers = [
        ("origin", "http://localhost:8080"),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization, content-type",
        ),
    ];
    let (status, _) = fleet.run(
        &config,
        "OPTIONS",
        "/indexes/movies/search",
        &headers,
        Value::Null,
    );
    assert_eq!(status, 200);
    assert!(fleet.host.sent.is_empty());
    assert_eq!(fleet.host.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        fleet.host.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(fleet.host.header("access-control-max-age"), Some("86400"));
    assert_eq!(fleet.host.header("content-type"), None);
    assert_eq!(fleet.host.response.as_ref().unwrap().2, b"");

    // Before any topology too.
    let mut host = MockHost::default();
    let request = Request::new(
        "OPTIONS",
        "/health",
        vec![("access-control-request-method".into(), "GET".into())],
        Vec::new(),
    );
    Exchange::not_configured(&request, &mut host);
    assert_eq!(host.response.as_ref().unwrap().0, 200);
    assert_eq!(host.header("access-control-allow-origin"), Some("*"));
}

/// Every answer carries Meilisearch's CORS headers: the filter's own, errors, relayed node errors.
#[test]
fn every_answer_carries_meilisearchs_cors_headers() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    let origin = [("origin", "http://localhost:8080")];
    let vary = crate::request::cors::VARY;
    for (method, path) in [("GET", "/health"), ("POST", "/chats/x/settings")] {
        fleet.run(&config, method, path, &origin, Value::Null);
        assert_eq!(
            fleet.host.header("access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        assert_eq!(fleet.host.header("vary"), Some(vary), "{path}");
    }
    // A node's own refusal, relayed.
    let (status, _) = fleet.run(
        &config,
        "POST",
        "/indexes/missing/search",
        &origin,
        json!({"q": "x"}),
    );
    assert_eq!(status, 404);
    assert_eq!(fleet.host.header("access-control-allow-origin"), Some("*"));
    // Without `Origin`: `vary` only.
    fleet.run(&config, "GET", "/health", &[], Value::Null);
    assert_eq!(fleet.host.header("access-control-allow-origin"), None);
    assert_eq!(fleet.host.header("vary"), Some(vary));
    // Not configured yet.
    let mut host = MockHost::default();
    let request = Request::new(
        "GET",
        "/health",
        vec![("origin".into(), "x".into())],
        Vec::new(),
    );
    Exchange::not_configured(&request, &mut host);
    assert_eq!(host.response.as_ref().unwrap().0, 503);
    assert_eq!(host.header("access-control-allow-origin"), Some("*"));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A compressed batch is decoded before it is read: the nodes get plain documents, each on its
/// owner, and no `content-encoding`.
#[test]
fn a_gzip_batch_is_decoded_then_sharded() {
    let config = three_nodes();
    let mut fleet = Fleet::new(&config);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
    }
    let docs = serde_json::to_vec(&movies(30)).unwrap();
    let (status, body) = fleet.run_bytes(
        &config,
        "POST",
        "/indexes/movies/documents",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        gzip(&docs),
    );
    assert_eq!(status, 202, "{body}");
    let stored: usize = ["n0", "n1", "n2"]
        .iter()
        .map(|id| fleet.node(id).docs.len())
        .sum();
    assert_eq!(stored, 30);
    assert!(fleet
        .host
        .sent
        .iter()
        .all(|c| c.headers.iter().all(|(k, _)| k != "content-encoding")));

    // A corrupt body reaches no node and is refused as Meilisearch refuses it.
    let sent = fleet.host.sent.len();
    let (status, body) = fleet.run_bytes(
        &config,
        "POST",
        "/indexes/movies/documents",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("origin", "http://localhost:8080"),
        ],
        b"\x1f\x8b\x08\x00garbage".to_vec(),
    );
    assert_eq!(
        (status, body["code"].as_str(), body["message"].as_str()),
        (
            400,
            Some("bad_request"),
            Some("The provided payload is incomplete and cannot be parsed")
        )
    );
    assert_eq!(fleet.host.header("access-control-allow-origin"), Some("*"));
    assert_eq!(fleet.host.sent.len(), sent);
    let (status, body) = fleet.run_bytes(
        &config,
        "POST",
        "/indexes/movies/search",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        b"garbage".to_vec(),
    );
    assert_eq!(status, 400);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Error that occur during reading payload: "));
}

#[test]
fn the_request_id_and_trace_context_reach_every_node_and_the_control_plane() {
    let config = with_control_plane(&three_nodes());
    let mut fleet = Fleet::new(&config);
    for id in ["n0", "n1", "n2"] {
        fleet.node(id).index = Some(Some("id".into()));
    }
    let trace = [
        ("x-request-id", "5f1c6c0e-req"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("tracestate", "vendor=1"),
    ];
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(trace);
    let (status, body) = fleet.run(
        &config,
        "POST",
        "/indexes/movies/documents",
        &headers,
        movies(30),
    );
    assert_eq!(status, 202, "{body}");
    let to_nodes: Vec<&Call> = fleet
        .host
        .sent
        .iter()
        .filter(|c| c.cluster != miroir_topology::CONTROL_PLANE_CLUSTER)
        .collect();
    let to_control_plane: Vec<&Call> = fleet
        .host
        .sent
        .iter()
        .filter(|c| c.cluster == miroir_topology::CONTROL_PLANE_CLUSTER)
        .collect();
    assert!(!to_nodes.is_empty() && !to_control_plane.is_empty());
    for call in to_nodes.iter().chain(&to_control_plane) {
        for (name, value) in trace {
            assert!(
                call.headers.contains(&(name.into(), value.into())),
                "{} {} lacks {name}: {:?}",
                call.method,
                call.path,
                call.headers
            );
        }
    }
}

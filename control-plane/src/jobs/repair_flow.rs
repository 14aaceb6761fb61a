//! A repair end to end: the leader's tick finds an out-of-sync copy on a healthy node, repairs
//! it from the in-sync copy (documents, settings, an index the cluster deleted) and puts it back
//! in the in-sync set. The nodes are fakes holding documents (what the shard copy reads and
//! writes), processing every write at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::{Json, Router};
use miroir_topology::reserved::encode_shard;
use miroir_topology::{
    canonical_key, CopyState, Node, NodeState, ShardCopy, ShardMap, Topology, SHARD_FIELD,
};
use serde_json::{json, Value};

use super::runner::{load, tick};
use super::{JobKind, JobState};
use crate::store::SharedStore;
use crate::testutil::{TempDir, MASTER_KEY};

#[derive(Default)]
struct Index {
    primary_key: String,
    created_at: String,
    settings: Value,
    documents: BTreeMap<String, Value>,
}

#[derive(Default)]
struct State0 {
    indexes: BTreeMap<String, Index>,
    keys: Vec<Value>,
    tasks: u64,
    /// Counted as a miss of this node on the first document write it receives (a client write
    /// that missed it during the repair).
    miss_on_write: Option<(SharedStore, String)>,
}

#[derive(Clone, Default)]
struct DocNode(Arc<Mutex<State0>>);

fn ok(v: Value) -> (StatusCode, Json<Value>) {
    (StatusCode::OK, Json(v))
}

fn not_found() -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": "not found", "code": "not_found", "type": "invalid_request"})),
    )
}

/// The shard stamps a `_miroir_shard IN ["…", …]` filter lists.
fn stamps(filter: &str) -> Vec<String> {
    filter
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn page(items: Vec<Value>) -> Value {
    json!({"total": items.len(), "results": items})
}

async fn handle(
    State(node): State<DocNode>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let mut miss = None;
    let answer = {
        let mut guard = node.0.lock().unwrap();
        let s: &mut State0 = &mut guard;
        let task = |s: &mut State0| {
            s.tasks += 1;
            ok(json!({"taskUid": s.tasks}))
        };
        match (method.as_str(), parts.as_slice()) {
            ("GET", ["health"]) => ok(json!({"status": "available"})),
            ("GET", ["tasks"]) => {
                let pending = uri.query().unwrap_or("").contains("statuses");
                let last = (s.tasks > 0 && !pending).then(|| json!({"uid": s.tasks}));
                ok(page(last.into_iter().collect()))
            }
            ("GET", ["tasks", uid]) => ok(json!({"uid": uid.parse::<u64>().unwrap_or(0), "status": "succeeded"})),
            ("GET", ["keys"]) => ok(page(s.keys.clone())),
            ("GET", ["keys", uid]) => match s.keys.iter().find(|k| k["uid"] == *uid) {
                Some(k) => ok(k.clone()),
                None => not_found(),
            },
            ("POST", ["keys"]) => {
                s.keys.push(body.clone());
                (StatusCode::CREATED, Json(body))
            }
            ("GET", ["indexes"]) => ok(page(
                s.indexes
                    .iter()
                    .map(|(uid, i)| json!({"uid": uid, "primaryKey": i.primary_key, "createdAt": i.created_at}))
                    .collect(),
            )),
            ("POST", ["indexes"]) => {
                let uid = body["uid"].as_str().unwrap_or_default().to_string();
                s.indexes.insert(
                    uid,
                    Index {
                        primary_key: body["primaryKey"].as_str().unwrap_or_default().into(),
                        created_at: crate::time::now(),
                        settings: json!({}),
                        documents: BTreeMap::new(),
                    },
                );
                task(s)
            }
            (verb, ["indexes", uid, rest @ ..]) => {
                let Some(index) = s.indexes.get_mut(*uid) else {
                    return not_found();
                };
                match (verb, rest) {
                    ("GET", []) => ok(json!({"uid": uid, "primaryKey": index.primary_key})),
                    ("DELETE", []) => {
                        s.indexes.remove(*uid);
                        task(s)
                    }
                    ("GET", ["settings"]) => ok(index.settings.clone()),
                    ("GET", ["settings", "embedders"]) => ok(json!({})),
                    ("PATCH", ["settings"]) => {
                        if let (Some(have), Some(new)) =
                            (index.settings.as_object_mut(), body.as_object())
                        {
                            have.extend(new.clone());
                        }
                        task(s)
                    }
                    ("POST", ["documents", "fetch"]) => {
                        let wanted = stamps(body["filter"].as_str().unwrap_or_default());
                        let docs: Vec<Value> = index
                            .documents
                            .values()
                            .filter(|d| {
                                d[SHARD_FIELD]
                                    .as_str()
                                    .is_some_and(|s| wanted.iter().any(|w| w == s))
                            })
                            .cloned()
                            .collect();
                        ok(page(docs))
                    }
                    ("POST", ["documents"]) => {
                        for doc in body.as_array().into_iter().flatten() {
                            if let Some(id) = canonical_key(&doc[index.primary_key.as_str()]) {
                                index.documents.insert(id, doc.clone());
                            }
                        }
                        miss = s.miss_on_write.take();
                        task(s)
                    }
                    ("POST", ["documents", "delete-batch"]) => {
                        for id in body.as_array().into_iter().flatten() {
                            if let Some(id) = canonical_key(id) {
                                index.documents.remove(&id);
                            }
                        }
                        task(s)
                    }
                    _ => not_found(),
                }
            }
            _ => not_found(),
        }
    };
    if let Some((store, id)) = miss {
        store.count_miss(&id).await.expect("count a miss");
    }
    answer
}

impl DocNode {
    async fn start() -> (DocNode, String) {
        let node = DocNode::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let router = Router::new().fallback(handle).with_state(node.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        (node, address)
    }

    fn index(&self, uid: &str, created_at: &str, settings: Value) {
        self.0.lock().unwrap().indexes.insert(
            uid.into(),
            Index {
                primary_key: "id".into(),
                created_at: created_at.into(),
                settings,
                documents: BTreeMap::new(),
            },
        );
    }

    fn put(&self, uid: &str, shard: u32, id: u64, title: &str) {
        let doc = json!({"id": id, "title": title, SHARD_FIELD: encode_shard(shard)});
        let mut s = self.0.lock().unwrap();
        let index = s.indexes.get_mut(uid).expect("index");
        index.documents.insert(id.to_string(), doc);
    }

    fn documents(&self, uid: &str) -> BTreeMap<String, Value> {
        self.0.lock().unwrap().indexes[uid].documents.clone()
    }
}

struct Setup {
    app: Arc<crate::app::App>,
    a: DocNode,
    b: DocNode,
    _dir: TempDir,
}

/// Nodes a and b, one group, RF 2, two shards; b's copy of shard 0 is out of sync and differs
/// from a's (a document changed, one missing, one extra), b still has an index the cluster
/// deleted and lacks a setting.
async fn setup() -> Setup {
    let (a, a_address) = DocNode::start().await;
    let (b, b_address) = DocNode::start().await;
    let old = "2026-01-01T00:00:00Z";
    a.index(
        "movies",
        old,
        json!({"filterableAttributes": [SHARD_FIELD, "genre"]}),
    );
    b.index(
        "movies",
        old,
        json!({"filterableAttributes": [SHARD_FIELD]}),
    );
    b.index("deleted", old, json!({}));
    a.put("movies", 0, 1, "one");
    a.put("movies", 0, 2, "two");
    a.put("movies", 1, 3, "three");
    b.put("movies", 0, 1, "one, before a write b missed");
    b.put("movies", 0, 9, "deleted while b missed it");
    b.put("movies", 1, 3, "three");

    let dir = TempDir::new("repair");
    let node = |id: &str, address: &str| Node {
        id: id.into(),
        address: address.into(),
        group: "g".into(),
        state: NodeState::Active,
    };
    let topology = Topology {
        epoch: 1,
        shards: 2,
        replication_factor: 2,
        nodes: vec![node("a", &a_address), node("b", &b_address)],
        shard_map: ShardMap {
            groups: [(
                "g".to_string(),
                vec![
                    vec![
                        ShardCopy::active("a"),
                        ShardCopy {
                            node: "b".into(),
                            state: CopyState::OutOfSync,
                        },
                    ],
                    vec![ShardCopy::active("a"), ShardCopy::active("b")],
                ],
            )]
            .into(),
            ..ShardMap::default()
        },
    };
    topology.validate().expect("valid");
    let config = crate::config::Config {
        master_key: Some(MASTER_KEY.into()),
        // The activation waits for the write path's latency: these make it 1.6 s.
        node_timeout_ms: 1_000,
        control_plane_timeout_ms: 100,
        store: format!("embedded:{}", dir.path().display()),
        ..Default::default()
    };
    let store = crate::store::open(&config.store).await.expect("store");
    assert!(store.cas_topology(None, &topology).await.expect("stored"));
    let publisher = crate::publisher::MemoryPublisher::new();
    let app = crate::app::App::new(config, store, Arc::new(publisher));
    app.leader.store(true, std::sync::atomic::Ordering::Relaxed);
    Setup {
        app,
        a,
        b,
        _dir: dir,
    }
}

/// Ticks until the repair job is over; the job.
async fn repaired(app: &crate::app::App) -> super::Job {
    for _ in 0..50 {
        tick(app).await.expect("tick");
        let jobs = load(app).await.expect("jobs");
        if let Some(job) = jobs.iter().find(|j| j.state.is_finished()) {
            return job.clone();
        }
    }
    panic!("the repair did not finish");
}

fn shard0(docs: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    docs.iter()
        .filter(|(_, d)| d[SHARD_FIELD] == encode_shard(0))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[tokio::test]
async fn the_leader_repairs_an_out_of_sync_copy_and_puts_it_back_in_sync() {
    let s = setup().await;
    let job = repaired(&s.app).await;
    assert_eq!(job.kind, JobKind::Repair);
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.moves.len(), 1);
    assert_eq!(
        (job.moves[0].shard, job.moves[0].to.clone()),
        (0, vec!["b".to_string()])
    );
    assert!(job.moves[0].from.is_empty());

    let t = s.app.store.load_topology().await.unwrap().unwrap();
    assert_eq!(t.epoch, 2, "one epoch: the activation");
    assert!(t
        .shard_map
        .copies("g", 0)
        .iter()
        .all(|c| c.state == CopyState::Active));
    let (a, b) = (s.a.documents("movies"), s.b.documents("movies"));
    assert_eq!(shard0(&b), shard0(&a), "the copy equals its source");
    assert_eq!(b["3"]["title"], "three", "shard 1 left alone");
    {
        let bs = s.b.0.lock().unwrap();
        assert!(
            !bs.indexes.contains_key("deleted"),
            "the index the cluster deleted is gone"
        );
        assert_eq!(
            bs.indexes["movies"].settings["filterableAttributes"],
            json!([SHARD_FIELD, "genre"])
        );
    }
    assert!(s.a.0.lock().unwrap().indexes.contains_key("movies"));
    let metrics = s.app.metrics.render();
    assert!(metrics.contains("miroir_repairs_total 1"), "{metrics}");
    assert!(
        metrics.contains("miroir_copies{state=\"outOfSync\"} 0"),
        "{metrics}"
    );

    // Nothing left to repair: no other job starts.
    tick(&s.app).await.unwrap();
    assert_eq!(load(&s.app).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_write_missed_during_the_repair_leaves_the_copy_to_the_next_repair() {
    let s = setup().await;
    // The first document the copy writes to b comes with a client write b missed.
    s.b.0.lock().unwrap().miss_on_write = Some((s.app.store.clone(), "b".into()));
    let mut job = repaired(&s.app).await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert!(
        job.reason.as_deref().unwrap_or("").contains("\"b\""),
        "{job:?}"
    );
    assert_eq!(s.app.store.misses("b").await.unwrap(), 1);
    let out = |t: &Topology| t.shard_map.copies("g", 0)[1].state == CopyState::OutOfSync;
    assert!(out(&s.app.store.load_topology().await.unwrap().unwrap()));

    // The next repair waits a minute after a failure…
    tick(&s.app).await.unwrap();
    assert_eq!(load(&s.app).await.unwrap().len(), 1);
    // …then copies again and succeeds.
    job.finished_at = Some(crate::time::format(
        crate::time::now_nanos() - 61 * 1_000_000_000,
    ));
    let text = serde_json::to_string(&job).unwrap();
    s.app.store.put_job(&job.id, &text).await.unwrap();
    tick(&s.app).await.unwrap();
    let jobs = load(&s.app).await.unwrap();
    assert_eq!(jobs.len(), 2);
    for _ in 0..20 {
        tick(&s.app).await.unwrap();
    }
    let jobs = load(&s.app).await.unwrap();
    let second = jobs.iter().find(|j| j.id != job.id).unwrap();
    assert_eq!(second.state, JobState::Succeeded, "{second:?}");
    assert!(!out(&s.app.store.load_topology().await.unwrap().unwrap()));
    assert_eq!(
        shard0(&s.b.documents("movies")),
        shard0(&s.a.documents("movies"))
    );
}

#[tokio::test]
async fn a_copy_on_a_failed_node_waits() {
    let s = setup().await;
    s.app
        .change_topology(|t| {
            let mut t = t.clone();
            t.nodes[1].state = NodeState::Failed;
            Ok(t)
        })
        .await
        .unwrap();
    tick(&s.app).await.unwrap();
    assert!(
        load(&s.app).await.unwrap().is_empty(),
        "no repair for a failed node"
    );
}

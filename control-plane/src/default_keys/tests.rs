use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::*;
use crate::testutil::{Cluster, FakeNode, TempDir, MASTER_KEY, TASKS_ONLY_KEY};

/// The node's default keys (the control plane may also have given it the filter's own key).
fn keys(node: &FakeNode) -> Vec<Value> {
    let defaults: Vec<&str> = DEFAULT_KEYS.iter().map(|k| k.uid).collect();
    node.keys
        .lock()
        .expect("lock")
        .iter()
        .filter(|k| k["uid"].as_str().is_some_and(|uid| defaults.contains(&uid)))
        .cloned()
        .collect()
}

fn posts(node: &FakeNode) -> usize {
    node.key_posts.lock().expect("lock").len()
}

async fn record(cluster: &Cluster) -> Vec<String> {
    load_record(&cluster.app)
        .await
        .expect("record")
        .nodes
        .into_keys()
        .collect()
}

fn metric(cluster: &Cluster, node: &str, result: &str) -> u64 {
    cluster
        .app
        .metrics
        .default_keys
        .get_or_create(&labels(&[("node", node), ("result", result)]))
        .get()
}

async fn set_state(cluster: &Cluster, id: &str, state: NodeState) {
    cluster
        .app
        .change_topology(|current| {
            let mut next = current.clone();
            for node in &mut next.nodes {
                if node.id == id {
                    node.state = state;
                }
            }
            Ok(next)
        })
        .await
        .expect("topology change");
}

/// `GET /keys` of a fresh Meilisearch 1.50.0 started with a master key (uids, values and dates
/// left out), newest first.
#[test]
fn the_keys_are_meilisearch_1_50s() {
    let meilisearch = json!([
        {"name": "Default Search API Key", "description": "Use it to search from the frontend",
         "actions": ["search"], "indexes": ["*"], "expiresAt": null},
        {"name": "Default Admin API Key",
         "description": "Use it for anything that is not a search operation. Caution! Do not expose it on a public frontend",
         "actions": ["*"], "indexes": ["*"], "expiresAt": null},
        {"name": "Default Read-Only Admin API Key",
         "description": "Use it to read information across the whole database. Caution! Do not expose this key on a public frontend",
         "actions": ["*.get", "keys.get"], "indexes": ["*"], "expiresAt": null},
        {"name": "Default Chat API Key", "description": "Use it to chat and search from the frontend",
         "actions": ["chatCompletions", "search"], "indexes": ["*"], "expiresAt": null},
    ]);
    let ours: Vec<Value> = DEFAULT_KEYS
        .iter()
        .rev()
        .map(|k| {
            let mut body = k.body();
            body.as_object_mut().expect("object").remove("uid");
            body
        })
        .collect();
    assert_eq!(json!(ours), meilisearch);
    let mut uids: Vec<&str> = DEFAULT_KEYS.iter().map(|k| k.uid).collect();
    uids.dedup();
    assert_eq!(uids.len(), 4);
    for uid in uids {
        assert!(uuid::Uuid::parse_str(uid).is_ok_and(|u| u.hyphenated().to_string() == uid));
    }
}

#[tokio::test]
async fn every_node_gets_the_same_keys() {
    let cluster = Cluster::start(3).await;
    let mut state = Provisioner::new();
    assert_eq!(round(&cluster.app, &mut state).await.expect("round"), 3);
    let first = keys(&cluster.nodes[0]);
    assert_eq!(first.len(), 4);
    for (key, wanted) in first.iter().zip(DEFAULT_KEYS.iter()) {
        assert_eq!(key["uid"], wanted.uid, "created in Meilisearch's order");
        assert!(wanted.matches(key));
        assert_eq!(key["key"], format!("hmac({MASTER_KEY},{})", wanted.uid));
    }
    for node in &cluster.nodes[1..] {
        assert_eq!(keys(node), first, "same uids, bodies and values everywhere");
    }
    let posted = cluster.nodes[2].key_posts.lock().expect("lock").clone();
    let bodies: Vec<Value> = DEFAULT_KEYS.iter().map(DefaultKey::body).collect();
    assert_eq!(posted, bodies);
    assert_eq!(record(&cluster).await, ["n0", "n1", "n2"]);
    assert_eq!(metric(&cluster, "n1", "created"), 4);
}

#[tokio::test]
async fn asking_again_changes_nothing() {
    let cluster = Cluster::start(2).await;
    let mut state = Provisioner::new();
    round(&cluster.app, &mut state).await.expect("round");
    let before: Vec<Vec<Value>> = cluster.nodes.iter().map(keys).collect();

    // Done nodes are not asked again, by this leader or the next one.
    assert_eq!(round(&cluster.app, &mut state).await.expect("round"), 0);
    let mut next_leader = Provisioner::new();
    assert_eq!(
        round(&cluster.app, &mut next_leader).await.expect("round"),
        0
    );
    assert_eq!(posts(&cluster.nodes[0]), 4);

    // A lost store: the keys are found (409, same body), not made twice.
    cluster
        .app
        .store
        .put_setting(SETTING, "{}")
        .await
        .expect("forget");
    let mut after_loss = Provisioner::new();
    assert_eq!(
        round(&cluster.app, &mut after_loss).await.expect("round"),
        2
    );
    assert_eq!(posts(&cluster.nodes[0]), 8);
    assert_eq!(metric(&cluster, "n0", "exists"), 4);
    let after: Vec<Vec<Value>> = cluster.nodes.iter().map(keys).collect();
    assert_eq!(after, before);
    assert_eq!(record(&cluster).await, ["n0", "n1"]);

    // A key renamed on a node is left as it is (reported).
    cluster.nodes[1].keys.lock().expect("lock")[3]["name"] = json!("Frontend");
    cluster
        .app
        .store
        .put_setting(SETTING, "{}")
        .await
        .expect("forget");
    round(&cluster.app, &mut Provisioner::new())
        .await
        .expect("round");
    assert_eq!(metric(&cluster, "n1", "mismatch"), 1);
    assert_eq!(keys(&cluster.nodes[1])[3]["name"], "Frontend");
    assert_eq!(record(&cluster).await, ["n0", "n1"]);
}

#[tokio::test]
async fn a_node_that_was_down_gets_them_later() {
    let cluster = Cluster::start(3).await;
    cluster.nodes[1].keys_down.store(true, Ordering::Relaxed);
    cluster.nodes[2].keys_down.store(true, Ordering::Relaxed);
    let mut state = Provisioner::new();
    assert_eq!(round(&cluster.app, &mut state).await.expect("round"), 1);
    assert_eq!(record(&cluster).await, ["n0"]);
    assert!(keys(&cluster.nodes[1]).is_empty());
    assert_eq!(metric(&cluster, "n1", "unavailable"), 1);

    // n1: failed by the health checks, back up, active again: asked at once.
    set_state(&cluster, "n1", NodeState::Failed).await;
    cluster.nodes[1].keys_down.store(false, Ordering::Relaxed);
    round(&cluster.app, &mut state).await.expect("round");
    assert!(
        keys(&cluster.nodes[1]).is_empty(),
        "a failed node is not asked"
    );
    set_state(&cluster, "n1", NodeState::Active).await;
    assert_eq!(round(&cluster.app, &mut state).await.expect("round"), 1);
    assert_eq!(keys(&cluster.nodes[1]), keys(&cluster.nodes[0]));

    // n2: up again without the health checks noticing: asked again after its retry delay.
    cluster.nodes[2].keys_down.store(false, Ordering::Relaxed);
    let mut rounds = 0;
    while !record(&cluster).await.contains(&"n2".to_string()) {
        rounds += 1;
        assert!(rounds < 100, "n2 never retried");
        tokio::time::sleep(Duration::from_millis(50)).await;
        round(&cluster.app, &mut state).await.expect("round");
    }
    assert_eq!(keys(&cluster.nodes[2]), keys(&cluster.nodes[0]));
    assert_eq!(record(&cluster).await, ["n0", "n1", "n2"]);
}

#[tokio::test]
async fn a_node_that_joins_gets_them() {
    let cluster = Cluster::start(1).await;
    let mut state = Provisioner::new();
    round(&cluster.app, &mut state).await.expect("round");
    let joining = FakeNode::start(MASTER_KEY).await;
    let (status, body) = cluster
        .admin(
            "POST",
            "/_miroir/nodes",
            Some(json!({"id": "n9", "address": joining.address, "group": "g0", "weight": 0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(round(&cluster.app, &mut state).await.expect("round"), 1);
    assert_eq!(keys(&joining), keys(&cluster.nodes[0]));
    assert_eq!(record(&cluster).await, ["n0", "n9"]);
}

#[tokio::test]
async fn a_node_key_that_cannot_create_keys() {
    let base = Cluster::start(2).await;
    let dir = TempDir::new("default-keys");
    let mut config = base.app.config.clone();
    config.master_key = None;
    config.node_api_key = Some(TASKS_ONLY_KEY.into());
    config.store = format!("embedded:{}", dir.path().display());
    let cluster = Cluster::with(config, base.nodes.clone(), dir).await;
    let mut state = Provisioner::new();
    assert_eq!(round(&cluster.app, &mut state).await.expect("round"), 0);
    assert!(state.refusal_logged);
    assert_eq!(metric(&cluster, "n0", "refused"), 1);
    assert!(keys(&cluster.nodes[0]).is_empty());
    assert!(record(&cluster).await.is_empty());

    // Without a node key nothing is asked.
    let dir = TempDir::new("default-keys");
    let mut config = base.app.config.clone();
    config.master_key = None;
    config.node_api_key = None;
    config.store = format!("embedded:{}", dir.path().display());
    let cluster = Cluster::with(config, base.nodes.clone(), dir).await;
    assert_eq!(
        round(&cluster.app, &mut Provisioner::new())
            .await
            .expect("round"),
        0
    );
    assert_eq!(posts(&cluster.nodes[0]), 0);
}

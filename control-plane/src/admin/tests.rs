//! The admin routes with a fake fleet (`MemoryPublisher`) and fake nodes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use miroir_topology::{NodeState, CONTROL_PLANE_CLUSTER};
use serde_json::{json, Value};

use crate::health::{check_round, HealthTracker};
use crate::publisher::{EnvoyAck, Publisher};
use crate::testutil::{Cluster, ADMIN_KEY, FILTER_TOKEN, MASTER_KEY};

#[tokio::test]
async fn the_admin_key_is_required() {
    let cluster = Cluster::start(1).await;
    let (status, body) = cluster.call("GET", "/_miroir/topology", &[], None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("missing_authorization_header"))
    );
    let (status, body) = cluster
        .call(
            "GET",
            "/_miroir/topology",
            &[("authorization", "Bearer nope")],
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("invalid_api_key"))
    );
    assert_eq!(body["type"], "auth");
    let (status, _) = cluster.call("GET", "/metrics", &[], None).await;
    assert_eq!(status, 401);
    let (status, _) = cluster.admin("GET", "/_miroir/topology", None).await;
    assert_eq!(status, 200);
    let _ = ADMIN_KEY;
}

#[tokio::test]
async fn topology_and_shards() {
    let cluster = Cluster::start(3).await;
    let (status, topology) = cluster.admin("GET", "/_miroir/topology", None).await;
    assert_eq!(status, 200, "{topology}");
    assert_eq!(topology["epoch"], 1);
    assert_eq!(topology["shards"], 8);
    assert_eq!(topology["nodes"].as_array().map(Vec::len), Some(3));
    assert_eq!(topology["nodes"][0]["draining"], false);

    let (status, shards) = cluster.admin("GET", "/_miroir/shards", None).await;
    assert_eq!(status, 200, "{shards}");
    let stored = cluster
        .app
        .store
        .load_topology()
        .await
        .expect("load")
        .expect("topology");
    for shard in 0..8u32 {
        let owners: Vec<String> = stored
            .owners(shard, "g0")
            .iter()
            .map(|n| n.id.clone())
            .collect();
        assert_eq!(
            shards["shards"][shard as usize]["owners"]["g0"],
            json!(owners)
        );
    }

    // The startup rollout carries the control-plane reference for the filter.
    let rolled = cluster.publisher.rollouts();
    assert_eq!(rolled.len(), 1);
    let reference = rolled[0].control_plane.clone().expect("control plane");
    assert_eq!(reference.cluster, CONTROL_PLANE_CLUSTER);
    assert_eq!(reference.token, FILTER_TOKEN);
    // The filter gets its own key (derived from the master key like Meilisearch's keys), never
    // the master key.
    let filter_key = crate::filter_key::value(MASTER_KEY);
    assert_eq!(rolled[0].node_api_key.as_deref(), Some(filter_key.as_str()));
    assert_ne!(rolled[0].node_api_key.as_deref(), Some(MASTER_KEY));
    assert_eq!(filter_key.len(), 64);
}

#[tokio::test]
async fn nodes_are_added_removed_and_drained() {
    let cluster = Cluster::start(2).await;
    let (status, body) = cluster
        .admin(
            "POST",
            "/_miroir/nodes",
            Some(json!({"id": "n9", "address": "127.0.0.1:7799", "group": "g0", "weight": 0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["topology"]["epoch"], 2);
    assert_eq!(
        cluster.publisher.current().map(|c| c.topology.epoch),
        Some(2)
    );

    let (status, body) = cluster
        .admin(
            "POST",
            "/_miroir/nodes",
            Some(json!({"id": "n9", "address": "127.0.0.1:7799", "group": "g0", "weight": 0})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("miroir_node_already_exists"))
    );
    let (status, body) = cluster
        .admin(
            "POST",
            "/_miroir/nodes",
            Some(json!({"id": "n8", "address": "nowhere", "group": "g0", "weight": 0})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("miroir_invalid_topology"))
    );

    // n9 holds nothing (weight 0): draining it moves nothing and is done at once.
    let (status, body) = cluster.admin("POST", "/_miroir/nodes/n9/drain", None).await;
    assert_eq!(status, 200, "{body}");
    let (_, topology) = cluster.admin("GET", "/_miroir/topology", None).await;
    let n9 = topology["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["id"] == "n9")
        .cloned();
    assert_eq!(n9.map(|n| n["draining"].clone()), Some(json!(true)));

    let (status, body) = cluster.admin("DELETE", "/_miroir/nodes/n9", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = cluster.admin("DELETE", "/_miroir/nodes/n9", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("miroir_node_not_found"))
    );
    // n0 holds copies: it must be drained first.
    let (status, body) = cluster.admin("DELETE", "/_miroir/nodes/n0", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("miroir_node_not_drained"))
    );
    // A node that takes copies is a job.
    let (status, body) = cluster
        .admin(
            "POST",
            "/_miroir/nodes",
            Some(json!({"id": "n7", "address": "127.0.0.1:7797", "group": "g0"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["job"]["kind"], "addNode");
    assert!(body["job"]["moves"]
        .as_array()
        .expect("moves")
        .iter()
        .all(|m| m["to"] == json!(["n7"])));
    let id = body["job"]["id"].as_str().expect("id").to_string();
    let (status, listed) = cluster.admin("GET", "/_miroir/jobs", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["results"][0]["id"], id.as_str());
    // One job at a time.
    let (status, body) = cluster.admin("POST", "/_miroir/nodes/n1/drain", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("miroir_job_running"))
    );
    let (status, body) = cluster
        .admin("POST", &format!("/_miroir/jobs/{id}/cancel"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "canceled");
    let (status, body) = cluster
        .admin("POST", &format!("/_miroir/jobs/{id}/resume"), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("miroir_job_finished"))
    );
}

#[tokio::test]
async fn a_nack_is_reported_with_envoys_message() {
    let cluster = Cluster::start(1).await;
    cluster.publisher.nack_next("wasm: failed to load");
    let (status, body) = cluster
        .admin(
            "POST",
            "/_miroir/nodes",
            Some(json!({"id": "n5", "address": "127.0.0.1:7705", "group": "g0", "weight": 0})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("miroir_rollout_rejected"))
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("wasm: failed to load")),
        "{body}"
    );

    cluster.publisher.nack_next("bad module");
    let (status, body) = cluster
        .admin(
            "PUT",
            "/_miroir/filter",
            Some(json!({"wasm": "/opt/miroir/new.wasm"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        cluster
            .app
            .store
            .get_setting("wasm")
            .await
            .expect("setting"),
        None
    );

    let (status, body) = cluster
        .admin(
            "PUT",
            "/_miroir/filter",
            Some(json!({"wasm": {"uri": "http://cp/f.wasm", "sha256": "ab"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(cluster.publisher.wasm().is_some());
    assert!(cluster
        .app
        .store
        .get_setting("wasm")
        .await
        .expect("setting")
        .is_some());
}

/// Issue 12: readiness is the store and a known leader; an Envoy that lags is reported in the
/// body, never a 503 (a probe would take the control plane out of its Service mid-rollout).
#[tokio::test]
async fn ready_reports_the_fleet_lag_without_failing() {
    let cluster = Cluster::start(1).await;
    let (status, body) = cluster.call("GET", "/_miroir/ready", &[], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["leader"], true, "{body}");
    assert!(body["leaderId"].is_string(), "{body}");
    assert_eq!(body["fleet"]["converged"], true, "{body}");
    cluster.publisher.set_envoys(vec![
        EnvoyAck {
            node_id: "envoy-a".into(),
            epoch: Some(0),
        },
        EnvoyAck {
            node_id: "envoy-b".into(),
            epoch: None,
        },
    ]);
    let (status, body) = cluster.call("GET", "/_miroir/ready", &[], None).await;
    assert_eq!(
        status, 200,
        "an Envoy behind is no reason to be unready: {body}"
    );
    assert_eq!(body["epoch"], 1, "{body}");
    assert_eq!(body["envoys"], 2, "{body}");
    assert_eq!(
        body["fleet"],
        json!({"behind": 2, "behindEnvoys": ["envoy-a", "envoy-b"],
               "epochs": {"0": 1, "none": 1}, "converged": false}),
        "{body}"
    );
    // The next rollout reaches both: the fleet has converged.
    let (status, _) = cluster
        .admin(
            "POST",
            "/_miroir/nodes",
            Some(json!({"id": "n5", "address": "127.0.0.1:7705", "group": "g0", "weight": 0})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = cluster.call("GET", "/_miroir/ready", &[], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["fleet"],
        json!({"behind": 0, "behindEnvoys": [], "epochs": {"2": 2}, "converged": true}),
        "{body}"
    );
    let (status, fleet) = cluster.admin("GET", "/_miroir/fleet", None).await;
    assert_eq!(status, 200);
    assert_eq!(fleet["epoch"], 2);
    assert_eq!(fleet["fleet"]["envoys"][0]["nodeId"], "envoy-a");

    // No leader known (this replica lost the lease; the embedded store names no other holder):
    // not ready, while live still answers, without a key.
    cluster.app.leader.store(false, Ordering::Relaxed);
    let (status, body) = cluster.call("GET", "/_miroir/ready", &[], None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("miroir_not_ready")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("leader")),
        "{body}"
    );
    let (status, body) = cluster.call("GET", "/_miroir/live", &[], None).await;
    assert_eq!((status, body), (200, json!({"status": "live"})));
}

/// A store that does not answer: not ready, and live all the same.
#[tokio::test]
async fn an_unreachable_store_is_not_ready_but_live() {
    let server = crate::testutil::RedisServer::start();
    let store: crate::store::SharedStore = Arc::new(
        crate::store::redis::RedisStore::connect(&server.url)
            .await
            .expect("connect"),
    );
    let topology = crate::config::InitialTopology {
        epoch: 1,
        shards: 2,
        replication_factor: 1,
        min_copies: None,
        unavailable_shards: None,
        nodes: vec![miroir_topology::Node {
            id: "n0".into(),
            address: "127.0.0.1:1".into(),
            group: "g0".into(),
            state: miroir_topology::NodeState::Active,
        }],
    };
    assert!(store
        .cas_topology(None, &topology.topology())
        .await
        .expect("stored"));
    let app = crate::app::App::new(
        crate::config::Config::default(),
        store.clone(),
        Arc::new(crate::publisher::MemoryPublisher::new()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, crate::routes::router(app)).await;
    });
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let reply = http.get(url).send().await.expect("answer");
            let status = reply.status().as_u16();
            (status, reply.json::<Value>().await.expect("json"))
        }
    };
    // Another replica holds the lease: a leader is known, so this follower is ready.
    assert!(store
        .leader_acquire("cp-other", std::time::Duration::from_secs(30))
        .await
        .expect("lease"));
    let (status, body) = get("/_miroir/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["leader"], &body["leaderId"]),
        (&json!(false), &json!("cp-other"))
    );
    drop(server);
    let (status, body) = get("/_miroir/ready").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("miroir_not_ready")),
        "{body}"
    );
    assert_eq!(get("/_miroir/live").await.0, 200);
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let cluster = Cluster::start(1).await;
    let response = cluster
        .http
        .get(format!("{}/metrics", cluster.base))
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("text");
    for needle in [
        "miroir_topology_epoch 1",
        "miroir_leader 1",
        "miroir_rollouts_total{result=\"ok\"} 1",
        "miroir_nodes{state=\"active\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }
}

#[tokio::test]
async fn health_checks_fail_and_recover_a_node() {
    let cluster = Cluster::start(2).await;
    let mut tracker = HealthTracker::new(&cluster.app.config.health);
    let threshold = cluster.app.config.health.unhealthy_threshold;
    cluster.nodes[1].healthy.store(false, Ordering::Relaxed);
    for _ in 1..threshold {
        assert_eq!(
            check_round(&cluster.app, &mut tracker)
                .await
                .expect("round"),
            0
        );
    }
    assert_eq!(
        check_round(&cluster.app, &mut tracker)
            .await
            .expect("round"),
        1
    );
    let topology = cluster
        .app
        .store
        .load_topology()
        .await
        .expect("load")
        .expect("t");
    assert_eq!(topology.epoch, 2);
    assert_eq!(
        topology.node("n1").map(|n| n.state),
        Some(NodeState::Failed)
    );
    assert_eq!(
        topology.node("n0").map(|n| n.state),
        Some(NodeState::Active)
    );
    assert_eq!(
        cluster.publisher.current().map(|c| c.topology),
        Some(topology)
    );

    cluster.nodes[1].healthy.store(true, Ordering::Relaxed);
    let mut changed = 0;
    for _ in 0..cluster.app.config.health.healthy_threshold {
        changed += check_round(&cluster.app, &mut tracker)
            .await
            .expect("round");
    }
    assert_eq!(changed, 1);
    let topology = cluster
        .app
        .store
        .load_topology()
        .await
        .expect("load")
        .expect("t");
    assert_eq!(
        (topology.epoch, topology.node("n1").map(|n| n.state)),
        (3, Some(NodeState::Active))
    );
}

#[tokio::test]
async fn a_restart_resumes_without_a_new_epoch() {
    let cluster = Cluster::start(1).await;
    let (status, _) = cluster
        .admin(
            "POST",
            "/_miroir/nodes",
            Some(json!({"id": "n5", "address": "127.0.0.1:7705", "group": "g0", "weight": 0})),
        )
        .await;
    assert_eq!(status, 200);
    let before = cluster.publisher.current().expect("current");
    let config = cluster.app.config.clone();
    let store_spec = config.store.clone();
    let Cluster {
        app,
        dir,
        nodes,
        server,
        http,
        ..
    } = cluster;
    server.abort();
    drop((app, http));
    // The embedded store is one file owned by one process: wait until the old handle is gone.
    let mut restarted = None;
    for _ in 0..500 {
        match crate::store::open(&store_spec).await {
            Ok(store) => {
                drop(store);
                restarted = Some(Cluster::with(config.clone(), nodes.clone(), dir).await);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    let restarted = restarted.expect("store reopened");
    let after = restarted.publisher.current().expect("current");
    assert_eq!(after, before, "same model, same epoch");
    let stored = restarted
        .app
        .store
        .load_topology()
        .await
        .expect("load")
        .expect("t");
    assert_eq!(stored.epoch, 2);
}

#[tokio::test]
async fn replicas_share_the_topology_through_redis() {
    let server = crate::testutil::RedisServer::start();
    let a = Cluster::start(1).await;
    let mut config = a.app.config.clone();
    config.store = server.url.clone();
    let replica = |config: crate::config::Config, nodes| async move {
        Cluster::with(config, nodes, crate::testutil::TempDir::new("replica")).await
    };
    let one = replica(config.clone(), a.nodes.clone()).await;
    let two = replica(config, a.nodes.clone()).await;
    let (status, body) = one
        .admin(
            "POST",
            "/_miroir/nodes",
            Some(json!({"id": "n7", "address": "127.0.0.1:7707", "group": "g0", "weight": 0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The other replica's xDS server follows the store.
    assert_eq!(two.publisher.current().map(|c| c.topology.epoch), Some(1));
    two.app.sync_from_store().await.expect("sync");
    assert_eq!(two.publisher.current().map(|c| c.topology.epoch), Some(2));
    let (_, topology) = two.admin("GET", "/_miroir/topology", None).await;
    assert_eq!(topology["epoch"], 2);
    // Uids are shared too.
    let first = one
        .filter(
            "/_miroir/internal/uid-leases",
            json!({"envoy": "e1", "count": 3}),
        )
        .await
        .1;
    let second = two
        .filter(
            "/_miroir/internal/uid-leases",
            json!({"envoy": "e2", "count": 3}),
        )
        .await
        .1;
    assert_eq!(
        second["first"].as_u64(),
        first["last"].as_u64().map(|l| l + 1)
    );
}

/// Issue 10: a rollout that timed out (an Envoy did not acknowledge in time) is handed over
/// again, and completes once the fleet acknowledges; before, it stayed half done until the next
/// topology change.
#[tokio::test]
async fn a_rollout_that_timed_out_is_retried() {
    let cluster = Cluster::start(1).await;
    let before = cluster.publisher.rollouts().len();
    cluster.publisher.time_out_next(1);
    let (status, body) = cluster
        .admin(
            "POST",
            "/_miroir/nodes",
            Some(json!({"id": "n9", "address": "127.0.0.1:7799", "group": "g0", "weight": 0})),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "miroir_rollout_incomplete");
    assert_eq!(cluster.publisher.rollouts().len(), before + 1);
    crate::testutil::eventually("the timed-out rollout to be retried and done", || async {
        cluster.app.sync_from_store().await.expect("sync");
        cluster.publisher.current().map(|c| c.topology.epoch) == Some(2)
    })
    .await;
    assert_eq!(cluster.publisher.rollouts().len(), before + 2);
    // Done: not handed over again.
    cluster.app.sync_from_store().await.expect("sync");
    assert_eq!(cluster.publisher.rollouts().len(), before + 2);
}

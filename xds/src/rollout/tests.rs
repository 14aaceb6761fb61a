use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use miroir_topology::{Node, NodeState, PluginConfig, Topology};

use super::*;
use crate::fleet::{EnvoyView, NackView, TypeView};
use crate::resources::{self, ListenerTimeouts};
use crate::{HealthCheckOptions, ResourceOptions, WasmSource};

fn options() -> ResourceOptions {
    ResourceOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
        wasm: WasmSource::Local(PathBuf::from("/opt/miroir/miroir_filter.wasm")),
        control_plane_http: "127.0.0.1:7701".into(),
        health: HealthCheckOptions::default(),
        node_timeout_ms: 5_000,
    }
}

fn config(epoch: u64, ids: &[&str]) -> PluginConfig {
    PluginConfig {
        topology: Topology {
            epoch,
            shards: 4,
            shard_map: Default::default(),
            replication_factor: 1,
            nodes: ids
                .iter()
                .enumerate()
                .map(|(i, id)| Node {
                    id: (*id).into(),
                    address: format!("10.0.0.{}:7700", i + 1),
                    group: "g".into(),
                    state: NodeState::Active,
                })
                .collect(),
        },
        node_timeout_ms: 5_000,
        node_api_key: None,
        control_plane: None,
        indexes: Default::default(),
    }
}

fn plan(current: Option<&Snapshot>, config: &PluginConfig) -> Rollout {
    let built = resources::build(config, &options()).unwrap();
    let listeners = TypeResources::new([resources::listener(
        options().listen,
        ListenerTimeouts::for_node_timeout(5_000),
    )]);
    Rollout::plan(current, &built, &listeners)
}

/// An Envoy subscribed to CDS, LDS and ECDS, holding the versions of `snapshot`.
fn envoy(id: &str, snapshot: Option<&Snapshot>) -> EnvoyView {
    let mut types = BTreeMap::new();
    for type_url in [CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ECDS_TYPE_URL] {
        types.insert(
            type_url.to_string(),
            TypeView {
                acked_version: snapshot
                    .and_then(|s| s.version(type_url))
                    .map(str::to_string),
                ..Default::default()
            },
        );
    }
    EnvoyView {
        node_id: id.into(),
        cluster: "miroir".into(),
        connected_since_ms: 0,
        epoch: None,
        types,
    }
}

fn ack(envoy: &mut EnvoyView, snapshot: &Snapshot, type_url: &str) {
    envoy.types.get_mut(type_url).unwrap().acked_version =
        snapshot.version(type_url).map(str::to_string);
}

fn ack_all(envoy: &mut EnvoyView, snapshot: &Snapshot) {
    for type_url in [CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ECDS_TYPE_URL] {
        ack(envoy, snapshot, type_url);
    }
}

fn fleet(envoys: &[&EnvoyView]) -> FleetView {
    FleetView {
        envoys: envoys.iter().map(|e| (*e).clone()).collect(),
    }
}

fn cluster_names(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .get(CLUSTER_TYPE_URL)
        .unwrap()
        .names()
        .map(str::to_string)
        .collect()
}

fn expect_apply(action: Action, expected: RolloutStep) -> Snapshot {
    match action {
        Action::Apply { step, snapshot } if step == expected => snapshot,
        other => panic!("expected Apply({expected:?}), got {other:?}"),
    }
}

#[test]
fn steps_add_clusters_then_switch_the_filter_then_prune() {
    let first = plan(None, &config(1, &["a", "b"]));
    let current = first.final_snapshot().unwrap().clone();
    let rollout = plan(Some(&current), &config(2, &["b", "c"]));
    let [s1, s2, s3] = rollout.steps() else {
        panic!("three steps")
    };
    assert_eq!(
        cluster_names(&s1.snapshot),
        [
            "miroir-control-plane",
            "miroir-node-a",
            "miroir-node-b",
            "miroir-node-c"
        ]
    );
    assert_eq!(
        s1.snapshot.version(ECDS_TYPE_URL),
        current.version(ECDS_TYPE_URL),
        "step 1 keeps the old filter config"
    );
    assert!(s2
        .snapshot
        .version(ECDS_TYPE_URL)
        .unwrap()
        .starts_with("epoch-2-"));
    assert_eq!(cluster_names(&s2.snapshot), cluster_names(&s1.snapshot));
    assert_eq!(
        cluster_names(&s3.snapshot),
        ["miroir-control-plane", "miroir-node-b", "miroir-node-c"]
    );
    assert_eq!(
        s3.snapshot.version(ECDS_TYPE_URL),
        s2.snapshot.version(ECDS_TYPE_URL)
    );
    assert_eq!(s1.gate, [CLUSTER_TYPE_URL, LISTENER_TYPE_URL]);
    assert_eq!(s2.gate, [ECDS_TYPE_URL]);
    assert_eq!(s3.gate, [CLUSTER_TYPE_URL, LISTENER_TYPE_URL]);
}

#[test]
fn the_first_rollout_has_no_filter_config_before_step_2() {
    let rollout = plan(None, &config(1, &["a"]));
    assert!(rollout.steps()[0].snapshot.get(ECDS_TYPE_URL).is_none());
    assert!(rollout.steps()[1].snapshot.get(ECDS_TYPE_URL).is_some());
}

#[test]
fn with_no_envoy_every_step_completes_at_once() {
    let mut rollout = plan(None, &config(1, &["a"]));
    let empty = FleetView::default();
    expect_apply(rollout.start(), RolloutStep::Clusters);
    rollout.applied(0);
    expect_apply(rollout.on_fleet(&empty), RolloutStep::Filter);
    rollout.applied(0);
    expect_apply(rollout.on_fleet(&empty), RolloutStep::Prune);
    rollout.applied(0);
    assert_eq!(
        rollout.on_fleet(&empty),
        Action::Done {
            acked_by: Vec::new()
        }
    );
}

#[test]
fn each_step_waits_for_every_subscribed_envoy() {
    let old = plan(None, &config(1, &["a"]))
        .final_snapshot()
        .unwrap()
        .clone();
    let mut e1 = envoy("e1", Some(&old));
    let mut e2 = envoy("e2", Some(&old));
    e2.types.get_mut(LISTENER_TYPE_URL).unwrap().acked_version = Some("older".into());
    let mut rollout = plan(Some(&old), &config(2, &["b", "c"]));
    let s1 = expect_apply(rollout.start(), RolloutStep::Clusters);
    // Before the driver confirms the cache holds it, nothing is evaluated.
    expect_apply(rollout.on_fleet(&fleet(&[&e1, &e2])), RolloutStep::Clusters);
    rollout.applied(10);
    assert_eq!(
        rollout.on_fleet(&fleet(&[&e1, &e2])),
        Action::Wait {
            step: RolloutStep::Clusters,
            waiting_for: vec!["e1".into(), "e2".into()]
        }
    );
    ack(&mut e1, &s1, CLUSTER_TYPE_URL);
    ack(&mut e1, &s1, LISTENER_TYPE_URL);
    ack(&mut e2, &s1, CLUSTER_TYPE_URL);
    assert_eq!(
        rollout.on_fleet(&fleet(&[&e1, &e2])),
        Action::Wait {
            step: RolloutStep::Clusters,
            waiting_for: vec!["e2".into()]
        },
        "e2 has the clusters, not yet the listener"
    );
    ack(&mut e2, &s1, LISTENER_TYPE_URL);
    let s2 = expect_apply(rollout.on_fleet(&fleet(&[&e1, &e2])), RolloutStep::Filter);
    rollout.applied(11);
    ack_all(&mut e1, &s2);
    ack_all(&mut e2, &s2);
    let s3 = expect_apply(rollout.on_fleet(&fleet(&[&e1, &e2])), RolloutStep::Prune);
    rollout.applied(12);
    ack_all(&mut e1, &s3);
    assert!(matches!(
        rollout.on_fleet(&fleet(&[&e1, &e2])),
        Action::Wait { .. }
    ));
    ack_all(&mut e2, &s3);
    assert_eq!(
        rollout.on_fleet(&fleet(&[&e1, &e2])),
        Action::Done {
            acked_by: vec!["e1".into(), "e2".into()]
        }
    );
}

#[test]
fn envoys_not_subscribed_to_a_type_are_not_waited_for() {
    let mut rollout = plan(None, &config(1, &["a"]));
    let mut only_cds = envoy("e1", None);
    only_cds.types.remove(LISTENER_TYPE_URL);
    only_cds.types.remove(ECDS_TYPE_URL);
    let s1 = expect_apply(rollout.start(), RolloutStep::Clusters);
    rollout.applied(0);
    ack(&mut only_cds, &s1, CLUSTER_TYPE_URL);
    expect_apply(rollout.on_fleet(&fleet(&[&only_cds])), RolloutStep::Filter);
}

#[test]
fn a_nack_stops_the_rollout_and_restores_the_previous_step() {
    let old = plan(None, &config(1, &["a"]))
        .final_snapshot()
        .unwrap()
        .clone();
    let mut e1 = envoy("e1", Some(&old));
    let mut rollout = plan(Some(&old), &config(2, &["a", "b"]));
    let s1 = expect_apply(rollout.start(), RolloutStep::Clusters);
    rollout.applied(5);
    ack_all(&mut e1, &s1);
    let s2 = expect_apply(rollout.on_fleet(&fleet(&[&e1])), RolloutStep::Filter);
    rollout.applied(6);
    let bad = s2.version(ECDS_TYPE_URL).unwrap().to_string();
    e1.types.get_mut(ECDS_TYPE_URL).unwrap().last_nack = Some(NackView {
        version: bad.clone(),
        message: "Unable to create Wasm plugin miroir".into(),
        at_ms: 1,
        seq: 7,
    });
    match rollout.on_fleet(&fleet(&[&e1])) {
        Action::Fail {
            restore: Some(restore),
            error:
                RolloutError::Nack {
                    step,
                    envoy,
                    type_url,
                    version,
                    message,
                },
        } => {
            assert_eq!(
                restore, s1,
                "back to step 1: old filter, clusters old ∪ new"
            );
            assert_eq!(step, RolloutStep::Filter);
            assert_eq!(envoy, "e1");
            assert_eq!(type_url, ECDS_TYPE_URL);
            assert_eq!(version, bad);
            assert_eq!(message, "Unable to create Wasm plugin miroir");
        }
        other => panic!("expected a NACK failure, got {other:?}"),
    }
    assert!(
        matches!(rollout.on_fleet(&fleet(&[&e1])), Action::Done { .. }),
        "finished"
    );
}

#[test]
fn a_nack_older_than_the_step_is_history() {
    let mut rollout = plan(None, &config(1, &["a"]));
    let mut e1 = envoy("e1", None);
    let s1 = expect_apply(rollout.start(), RolloutStep::Clusters);
    rollout.applied(20);
    e1.types.get_mut(CLUSTER_TYPE_URL).unwrap().last_nack = Some(NackView {
        version: s1.version(CLUSTER_TYPE_URL).unwrap().into(),
        message: "from an earlier attempt".into(),
        at_ms: 1,
        seq: 20,
    });
    assert!(matches!(
        rollout.on_fleet(&fleet(&[&e1])),
        Action::Wait { .. }
    ));
}

#[test]
fn a_disconnected_envoy_is_not_waited_for() {
    let mut rollout = plan(None, &config(1, &["a"]));
    let e1 = envoy("e1", None);
    let mut e2 = envoy("e2", None);
    let s1 = expect_apply(rollout.start(), RolloutStep::Clusters);
    rollout.applied(0);
    ack_all(&mut e2, &s1);
    assert!(matches!(
        rollout.on_fleet(&fleet(&[&e1, &e2])),
        Action::Wait { waiting_for, .. } if waiting_for == ["e1"]
    ));
    // e1's stream closed: it left the fleet.
    expect_apply(rollout.on_fleet(&fleet(&[&e2])), RolloutStep::Filter);
}

#[test]
fn a_timeout_keeps_the_step_in_the_cache() {
    let mut rollout = plan(None, &config(1, &["a"]));
    let e1 = envoy("e1", None);
    expect_apply(rollout.start(), RolloutStep::Clusters);
    rollout.applied(0);
    assert_eq!(
        rollout.on_timeout(&fleet(&[&e1])),
        Action::Fail {
            restore: None,
            error: RolloutError::Timeout {
                step: RolloutStep::Clusters,
                waiting_for: vec!["e1".into()]
            }
        }
    );
}

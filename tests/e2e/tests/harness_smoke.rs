//! The harness itself: a cluster comes up behind the filter, topology pushes reach Envoy, and a
//! configuration the filter cannot parse is rejected while the old one keeps serving.

use std::time::Duration;

use miroir_e2e::{Cluster, Spec, ECDS_STAT_PREFIX};

#[test]
fn cluster_starts_and_takes_topology_pushes() {
    let cluster = Cluster::start(
        "harness_smoke",
        Spec::new(&[("a1", "a"), ("a2", "a"), ("b1", "b")], 4, 1),
    );
    assert_eq!(cluster.node_ids(), ["a1", "a2", "b1"]);
    assert!(cluster.master_key().len() >= 16);
    let version = format!("{ECDS_STAT_PREFIX}version_text");
    assert_eq!(cluster.envoy_stat_text(&version).as_deref(), Some("1"));

    // The filter answers /health itself; the guard route would answer 503.
    let health = cluster.client().without_auth().get("/health");
    assert_eq!(health.status, 200, "{}", health.text());
    for id in cluster.node_ids() {
        let reply = cluster.node_client(&id).get("/health");
        assert_eq!(reply.status, 200, "node {id}: {}", reply.text());
    }

    let mut next = cluster.topology();
    next.epoch = 2;
    cluster.push_topology_and_wait(&next).unwrap();
    assert_eq!(cluster.envoy_stat_text(&version).as_deref(), Some("2"));
    assert_eq!(cluster.topology().epoch, 2);

    let before = cluster.ecds_outcomes();
    cluster.push_raw_filter_config("this is not JSON");
    let outcome = cluster.wait_for_ecds_outcome(before);
    assert!(outcome.is_err(), "a non-JSON config must be rejected");
    assert_eq!(cluster.envoy_stat_text(&version).as_deref(), Some("2"));
    cluster.wait_for_stat(
        &format!("{ECDS_STAT_PREFIX}update_rejected"),
        |n| n >= 1,
        Duration::from_secs(5),
    );
    assert_eq!(cluster.client().get("/health").status, 200);

    cluster.wait_all_nodes_idle();
}

#[test]
fn single_node_has_no_envoy() {
    let cluster = Cluster::single_node("harness_single_node");
    assert!(!cluster.has_envoy());
    let reply = cluster.client().get("/health");
    assert_eq!(reply.status, 200, "{}", reply.text());
    cluster.wait_all_nodes_idle();
}

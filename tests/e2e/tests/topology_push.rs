//! Scenario 6: a topology the filter refuses is rejected by Envoy, and the previous one keeps
//! serving.

mod support;

use std::time::Duration;

use miroir_e2e::{Cluster, ECDS_STAT_PREFIX};
use serde_json::json;
use support::{add_in_batches, corpus, create_movies, three_nodes};

#[test]
fn an_invalid_topology_is_rejected_and_the_old_one_keeps_serving() {
    let cluster = Cluster::start("topology_push", three_nodes(1));
    let client = cluster.client();
    create_movies(&client);
    add_in_batches(&client, &corpus(100), 100);
    let search = || client.post("/indexes/movies/search", &json!({"q": "kw0042"}));
    assert_eq!(search().header("x-miroir-topology-epoch"), Some("1"));

    // Valid JSON that the filter's validation refuses: replication factor above the group size.
    let original = cluster.topology();
    let mut invalid = original.clone();
    invalid.epoch = 2;
    invalid.replication_factor = 5;
    let before = cluster.ecds_outcomes();
    cluster.push_topology(&invalid);
    assert!(
        cluster.wait_for_ecds_outcome(before).is_err(),
        "Envoy accepted an invalid topology"
    );
    cluster.wait_for_stat(
        &format!("{ECDS_STAT_PREFIX}update_rejected"),
        |n| n >= 1,
        Duration::from_secs(10),
    );

    for _ in 0..20 {
        let reply = search();
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-miroir-topology-epoch"), Some("1"));
        assert_eq!(reply.json()["hits"][0]["id"], 42);
    }

    // A valid push still goes through afterwards, so the rejection above was the filter's doing.
    let mut valid = original;
    valid.epoch = 3;
    cluster.push_topology_and_wait(&valid).unwrap();
    let reply = search();
    assert_eq!(reply.header("x-miroir-topology-epoch"), Some("3"));
    assert_eq!(reply.json()["hits"][0]["id"], 42);
}

/// A control plane whose store was rolled back would push an older topology: the filter refuses
/// any epoch below the one it runs, and the newer topology keeps serving.
#[test]
fn an_older_epoch_is_refused() {
    let cluster = Cluster::start("topology_push_older_epoch", three_nodes(1));
    let client = cluster.client();
    create_movies(&client);
    let mut newer = cluster.topology();
    newer.epoch = 5;
    cluster.push_topology_and_wait(&newer).unwrap();
    let epoch = || {
        client
            .get("/indexes/movies")
            .header("x-miroir-topology-epoch")
            .map(str::to_string)
    };
    assert_eq!(epoch().as_deref(), Some("5"));

    let mut older = newer.clone();
    older.epoch = 4;
    assert!(
        cluster.push_topology_and_wait(&older).is_err(),
        "Envoy accepted epoch 4 after epoch 5"
    );
    for _ in 0..10 {
        assert_eq!(epoch().as_deref(), Some("5"));
    }
    // The same epoch again, or a newer one, is accepted.
    newer.epoch = 6;
    cluster.push_topology_and_wait(&newer).unwrap();
    assert_eq!(epoch().as_deref(), Some("6"));
}

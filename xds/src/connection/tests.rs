use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;

use super::*;
use crate::cache::{Resource, SnapshotCache, TypeResources};
use crate::ECDS_TYPE_URL;

fn res(name: &str, version: &str) -> Resource {
    Resource {
        name: name.into(),
        version: version.into(),
        body: Any {
            type_url: "t".into(),
            value: name.as_bytes().to_vec(),
        },
    }
}

/// A cache whose default snapshot has clusters `names` at `version` and one filter config.
fn set(cache: &mut SnapshotCache, version: &str, names: &[&str]) -> Snapshot {
    let snapshot = Snapshot::new()
        .with(
            CLUSTER_TYPE_URL,
            TypeResources::with_version(
                format!("cds-{version}"),
                names.iter().map(|n| res(n, version)),
            ),
        )
        .with(
            ECDS_TYPE_URL,
            TypeResources::with_version(format!("ecds-{version}"), [res("miroir", version)]),
        );
    (*cache.set_default(snapshot)).clone()
}

fn request(type_url: &str, version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn first(type_url: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(Node {
            id: "envoy-1".into(),
            cluster: "miroir".into(),
            ..Default::default()
        }),
        ..request(type_url, "", "")
    }
}

fn nack(type_url: &str, held: &str, nonce: &str, message: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        error_detail: Some(Status {
            code: 3,
            message: message.into(),
            details: vec![],
        }),
        ..request(type_url, held, nonce)
    }
}

fn ecds(version: &str, nonce: &str, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        ..request(ECDS_TYPE_URL, version, nonce)
    }
}

#[test]
fn first_request_identifies_the_node_and_gets_everything() {
    let mut cache = SnapshotCache::new();
    let snap = set(&mut cache, "1", &["a", "b"]);
    let mut conn = Connection::new();
    assert_eq!(conn.group_for(&first(CLUSTER_TYPE_URL)), "miroir");
    let out = conn.handle_request(first(CLUSTER_TYPE_URL), Some(&snap));
    assert_eq!(out.responses.len(), 1);
    let response = &out.responses[0];
    assert_eq!(response.version_info, "cds-1");
    assert_eq!(response.type_url, CLUSTER_TYPE_URL);
    assert_eq!(response.resources.len(), 2, "empty names: wildcard");
    assert!(!response.nonce.is_empty());
    assert_eq!(
        out.events[0],
        Event::Identified(NodeInfo {
            id: "envoy-1".into(),
            cluster: "miroir".into()
        })
    );
    assert!(
        matches!(&out.events[1], Event::Subscribed { type_url, .. } if type_url == CLUSTER_TYPE_URL)
    );
    assert!(matches!(&out.events[2], Event::Sent { version, .. } if version == "cds-1"));
    assert_eq!(conn.node().map(|n| n.id.as_str()), Some("envoy-1"));
}

#[test]
fn ack_then_update_then_ack() {
    let mut cache = SnapshotCache::new();
    let s1 = set(&mut cache, "1", &["a"]);
    let mut conn = Connection::new();
    let n1 = conn
        .handle_request(first(CLUSTER_TYPE_URL), Some(&s1))
        .responses[0]
        .nonce
        .clone();
    let out = conn.handle_request(request(CLUSTER_TYPE_URL, "cds-1", &n1), Some(&s1));
    assert!(out.responses.is_empty(), "it has the current version");
    assert_eq!(
        out.events,
        [Event::Ack {
            type_url: CLUSTER_TYPE_URL.into(),
            version: "cds-1".into()
        }]
    );
    // The ACK left a watch open: an update is pushed right away.
    let s2 = set(&mut cache, "2", &["a", "b"]);
    let out = conn.handle_snapshot(Some(&s2));
    assert_eq!(out.responses.len(), 1);
    assert_eq!(out.responses[0].version_info, "cds-2");
    assert_ne!(out.responses[0].nonce, n1);
    // Nothing else changed: nothing more is sent.
    assert!(conn.handle_snapshot(Some(&s2)).responses.is_empty());
}

#[test]
fn an_update_waits_for_the_ack_of_the_previous_response() {
    let mut cache = SnapshotCache::new();
    let s1 = set(&mut cache, "1", &["a"]);
    let mut conn = Connection::new();
    let n1 = conn
        .handle_request(first(CLUSTER_TYPE_URL), Some(&s1))
        .responses[0]
        .nonce
        .clone();
    let s2 = set(&mut cache, "2", &["b"]);
    assert!(
        conn.handle_snapshot(Some(&s2)).responses.is_empty(),
        "no request is waiting: the response to it is in flight"
    );
    let out = conn.handle_request(request(CLUSTER_TYPE_URL, "cds-1", &n1), Some(&s2));
    assert_eq!(out.responses.len(), 1);
    assert_eq!(out.responses[0].version_info, "cds-2");
}

#[test]
fn stale_nonces_are_ignored() {
    let mut cache = SnapshotCache::new();
    let s1 = set(&mut cache, "1", &["a"]);
    let mut conn = Connection::new();
    let n1 = conn
        .handle_request(first(CLUSTER_TYPE_URL), Some(&s1))
        .responses[0]
        .nonce
        .clone();
    conn.handle_request(request(CLUSTER_TYPE_URL, "cds-1", &n1), Some(&s1));
    let s2 = set(&mut cache, "2", &["a"]);
    let n2 = conn.handle_snapshot(Some(&s2)).responses[0].nonce.clone();
    // A late request answering the first response: neither an ACK of cds-2 nor a new watch.
    let out = conn.handle_request(request(CLUSTER_TYPE_URL, "cds-1", &n1), Some(&s2));
    assert!(out.responses.is_empty());
    assert_eq!(
        out.events,
        [Event::StaleNonce {
            type_url: CLUSTER_TYPE_URL.into(),
            nonce: n1
        }]
    );
    // Unknown nonce on a type never sent: stale too.
    let out = conn.handle_request(ecds("", "42", &["miroir"]), Some(&s2));
    assert!(matches!(&out.events[..], [Event::StaleNonce { .. }]));
    // The real ACK still counts.
    let out = conn.handle_request(request(CLUSTER_TYPE_URL, "cds-2", &n2), Some(&s2));
    assert!(matches!(&out.events[..], [Event::Ack { version, .. }] if version == "cds-2"));
}

#[test]
fn a_nacked_version_is_not_sent_again_until_the_cache_sets_it_again() {
    let mut cache = SnapshotCache::new();
    let s1 = set(&mut cache, "1", &["a"]);
    let mut conn = Connection::new();
    conn.handle_request(first(CLUSTER_TYPE_URL), Some(&s1));
    let n1 = conn
        .handle_request(ecds("", "", &["miroir"]), Some(&s1))
        .responses[0]
        .nonce
        .clone();
    conn.handle_request(ecds("ecds-1", &n1, &["miroir"]), Some(&s1));
    let bad = set(&mut cache, "bad", &["a"]);
    let nb = conn.handle_snapshot(Some(&bad)).responses;
    let nb = nb
        .iter()
        .find(|r| r.type_url == ECDS_TYPE_URL)
        .unwrap()
        .nonce
        .clone();
    // NACK: same version requested (what the Envoy keeps), with the reason.
    let out = conn.handle_request(
        DiscoveryRequest {
            resource_names: vec!["miroir".into()],
            ..nack(
                ECDS_TYPE_URL,
                "ecds-1",
                &nb,
                "Unable to create Wasm plugin miroir",
            )
        },
        Some(&bad),
    );
    assert!(
        out.responses.is_empty(),
        "the rejected version is not resent"
    );
    assert_eq!(
        out.events,
        [Event::Nack {
            type_url: ECDS_TYPE_URL.into(),
            version: "ecds-bad".into(),
            message: "Unable to create Wasm plugin miroir".into()
        }]
    );
    assert!(conn.handle_snapshot(Some(&bad)).responses.is_empty());
    // Rolled back to what the Envoy has: nothing to send.
    let back = set(&mut cache, "1", &["a"]);
    let out = conn.handle_snapshot(Some(&back));
    assert!(out.responses.iter().all(|r| r.type_url != ECDS_TYPE_URL));
    // Set again on purpose (a retry): sent again.
    let retry = set(&mut cache, "bad", &["a"]);
    let out = conn.handle_snapshot(Some(&retry));
    assert!(out
        .responses
        .iter()
        .any(|r| r.type_url == ECDS_TYPE_URL && r.version_info == "ecds-bad"));
}

#[test]
fn a_nack_while_a_newer_version_is_cached_gets_the_newer_one() {
    let mut cache = SnapshotCache::new();
    let s1 = set(&mut cache, "1", &["a"]);
    let mut conn = Connection::new();
    let n1 = conn
        .handle_request(first(CLUSTER_TYPE_URL), Some(&s1))
        .responses[0]
        .nonce
        .clone();
    let s2 = set(&mut cache, "2", &["a"]);
    let out = conn.handle_request(nack(CLUSTER_TYPE_URL, "", &n1, "bad cluster"), Some(&s2));
    assert!(matches!(&out.events[0], Event::Nack { version, .. } if version == "cds-1"));
    assert_eq!(out.responses.len(), 1);
    assert_eq!(out.responses[0].version_info, "cds-2");
}

#[test]
fn named_subscriptions_get_their_names_and_changes_are_answered() {
    let mut cache = SnapshotCache::new();
    let snap = set(&mut cache, "1", &["a", "b"]);
    let mut conn = Connection::new();
    conn.handle_request(first(CLUSTER_TYPE_URL), Some(&snap));
    let out = conn.handle_request(ecds("", "", &["miroir", "unknown"]), Some(&snap));
    assert_eq!(out.responses.len(), 1);
    assert_eq!(out.responses[0].resources.len(), 1, "only what exists");
    let nonce = out.responses[0].nonce.clone();
    // Same version, other names: answered anyway.
    let out = conn.handle_request(ecds("ecds-1", &nonce, &["miroir"]), Some(&snap));
    assert!(
        matches!(&out.events[..], [Event::Ack { .. }, Event::Subscribed { names, .. }, Event::Sent { .. }] if names == &["miroir".to_string()])
    );
    assert_eq!(out.responses.len(), 1);
    assert_eq!(out.responses[0].version_info, "ecds-1");
    let nonce = out.responses[0].nonce.clone();
    // Nothing named any more: unsubscribed, nothing sent.
    let out = conn.handle_request(ecds("ecds-1", &nonce, &[]), Some(&snap));
    assert!(out.responses.is_empty());
    assert!(matches!(
        &out.events[..],
        [Event::Ack { .. }, Event::Unsubscribed { .. }]
    ));
}

#[test]
fn a_reconnecting_envoy_is_not_resent_what_it_has() {
    let mut cache = SnapshotCache::new();
    let snap = set(&mut cache, "1", &["a"]);
    let mut conn = Connection::new();
    let out = conn.handle_request(
        DiscoveryRequest {
            version_info: "cds-1".into(),
            ..first(CLUSTER_TYPE_URL)
        },
        Some(&snap),
    );
    assert!(out.responses.is_empty());
    assert!(out.events.contains(&Event::Ack {
        type_url: CLUSTER_TYPE_URL.into(),
        version: "cds-1".into()
    }));
    // Reconnecting with an older version: the current one is sent.
    let mut conn = Connection::new();
    let out = conn.handle_request(
        DiscoveryRequest {
            version_info: "cds-0".into(),
            ..first(CLUSTER_TYPE_URL)
        },
        Some(&snap),
    );
    assert_eq!(out.responses[0].version_info, "cds-1");
}

#[test]
fn requests_before_any_snapshot_wait_for_one() {
    let mut cache = SnapshotCache::new();
    let mut conn = Connection::new();
    let out = conn.handle_request(first(CLUSTER_TYPE_URL), None);
    assert!(out.responses.is_empty());
    let snap = set(&mut cache, "1", &["a"]);
    let out = conn.handle_snapshot(Some(&snap));
    assert_eq!(out.responses.len(), 1);
    // A type the snapshot lacks waits as well.
    let out = conn.handle_request(request(LISTENER_TYPE_URL, "", ""), Some(&snap));
    assert!(out.responses.is_empty());
}

use super::*;
use crate::connection::NodeInfo;
use crate::ECDS_TYPE_URL;

fn identified(id: &str) -> Event {
    Event::Identified(NodeInfo {
        id: id.into(),
        cluster: "miroir".into(),
    })
}

#[test]
fn events_build_the_view() {
    let mut fleet = Fleet::new();
    fleet.apply(1, 100, &identified("e1"), 100);
    fleet.apply(
        1,
        100,
        &Event::Subscribed {
            type_url: ECDS_TYPE_URL.into(),
            names: vec!["miroir".into()],
        },
        101,
    );
    fleet.apply(
        1,
        100,
        &Event::Sent {
            type_url: ECDS_TYPE_URL.into(),
            version: "epoch-3-0123456789abcdef".into(),
            nonce: "1".into(),
        },
        102,
    );
    let view = fleet.view();
    assert_eq!(view.envoys.len(), 1);
    assert_eq!(view.envoys[0].epoch, None, "sent is not acked");
    fleet.apply(
        1,
        100,
        &Event::Ack {
            type_url: ECDS_TYPE_URL.into(),
            version: "epoch-3-0123456789abcdef".into(),
        },
        103,
    );
    let before_nack = fleet.seq();
    fleet.apply(
        1,
        100,
        &Event::Nack {
            type_url: ECDS_TYPE_URL.into(),
            version: "epoch-4-fedcba9876543210".into(),
            message: "Unable to create Wasm plugin miroir".into(),
        },
        104,
    );
    let view = fleet.view();
    let e1 = &view.envoys[0];
    assert_eq!(e1.node_id, "e1");
    assert_eq!(e1.cluster, "miroir");
    assert_eq!(e1.connected_since_ms, 100);
    assert_eq!(e1.epoch, Some(3), "a NACK keeps the acked epoch");
    let ecds = &e1.types[ECDS_TYPE_URL];
    let nack = ecds.last_nack.as_ref().unwrap();
    assert_eq!(nack.version, "epoch-4-fedcba9876543210");
    assert_eq!(nack.at_ms, 104);
    assert!(nack.seq > before_nack);

    let json = serde_json::to_value(&view).unwrap();
    let e = &json["envoys"][0];
    assert_eq!(e["nodeId"], "e1");
    assert_eq!(e["connectedSinceMs"], 100);
    assert_eq!(e["epoch"], 3);
    let t = &e["types"][ECDS_TYPE_URL];
    assert_eq!(t["ackedVersion"], "epoch-3-0123456789abcdef");
    assert_eq!(
        t["lastNack"]["message"],
        "Unable to create Wasm plugin miroir"
    );
    assert!(t["lastNack"].get("seq").is_none());
}

#[test]
fn a_disconnected_envoy_leaves_the_fleet() {
    let mut fleet = Fleet::new();
    fleet.apply(1, 1, &identified("e1"), 1);
    fleet.apply(2, 2, &identified("e2"), 2);
    let seq = fleet.seq();
    fleet.disconnect(1);
    assert!(
        fleet.seq() > seq,
        "rollouts waiting on the fleet look again"
    );
    let ids: Vec<String> = fleet.view().envoys.into_iter().map(|e| e.node_id).collect();
    assert_eq!(ids, ["e2"]);
    fleet.disconnect(1);
    assert_eq!(fleet.len(), 1);
}

#[test]
fn unsubscribed_types_are_dropped() {
    let mut fleet = Fleet::new();
    fleet.apply(
        1,
        1,
        &Event::Subscribed {
            type_url: ECDS_TYPE_URL.into(),
            names: vec!["miroir".into()],
        },
        1,
    );
    fleet.apply(
        1,
        1,
        &Event::Unsubscribed {
            type_url: ECDS_TYPE_URL.into(),
        },
        2,
    );
    assert!(fleet.view().envoys[0].types.is_empty());
}

//! Helpers shared by the fuzz targets: the input framing (docs/fuzzing.md) and the topologies
//! the filter is driven with.
//!
//! An input is sections separated by a NUL byte, so a seed is written by hand (or by
//! `tools/fuzz-seeds.py`) from real request and response bodies, and the fuzzer mutates each
//! part on its own.

use std::rc::Rc;

use miroir_filter::config::FilterConfig;
use miroir_topology::{ControlPlaneRef, Node, NodeState, PluginConfig, Topology};

/// The input's NUL-separated sections (an empty input is one empty section).
pub fn sections(data: &[u8]) -> Vec<&[u8]> {
    data.split(|b| *b == 0).collect()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `name: value` lines (name lower-cased by `Request::new`).
pub fn headers(bytes: &[u8]) -> Vec<(String, String)> {
    text(bytes)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

fn node(id: &str, group: &str, state: NodeState) -> Node {
    Node {
        id: id.into(),
        address: "127.0.0.1:1".into(),
        group: group.into(),
        state,
    }
}

/// A handful of fleets: one node, one group of three, two groups (replication factor 2, a failed
/// node), with and without a control plane. `choice` picks one.
pub fn topology(choice: u8) -> Rc<FilterConfig> {
    let (shards, rf, nodes, control_plane) = match choice % 5 {
        0 => (1, 1, vec![node("n0", "g", NodeState::Active)], false),
        1 => (
            16,
            1,
            vec![
                node("n0", "g", NodeState::Active),
                node("n1", "g", NodeState::Active),
                node("n2", "g", NodeState::Active),
            ],
            false,
        ),
        2 => (
            16,
            1,
            vec![
                node("n0", "g", NodeState::Active),
                node("n1", "g", NodeState::Active),
                node("n2", "g", NodeState::Active),
            ],
            true,
        ),
        3 => (
            8,
            2,
            vec![
                node("a0", "a", NodeState::Active),
                node("a1", "a", NodeState::Failed),
                node("a2", "a", NodeState::Active),
                node("b0", "b", NodeState::Active),
                node("b1", "b", NodeState::Active),
            ],
            true,
        ),
        _ => (
            64,
            1,
            vec![
                node("a0", "a", NodeState::Active),
                node("b0", "b", NodeState::Failed),
                node("b1", "b", NodeState::Active),
            ],
            false,
        ),
    };
    let mut config = PluginConfig::new(Topology {
        epoch: 7,
        shards,
        shard_map: Default::default(),
        replication_factor: rf,
        nodes,
    });
    if control_plane {
        config.control_plane = Some(ControlPlaneRef {
            cluster: miroir_topology::CONTROL_PLANE_CLUSTER.into(),
            authority: "cp:7701".into(),
            token: "filter-secret".into(),
            timeout_ms: 2000,
        });
    }
    Rc::new(FilterConfig::compile(config))
}

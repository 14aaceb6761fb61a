//! Which node a scattered read asks for which shards.

use std::collections::BTreeMap;

use crate::config::FilterConfig;

/// One active owner of every shard wanted, in the replica group the request's turn reads from;
/// a shard with no active owner there is asked of an owner in another group.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ScatterPlan {
    pub(crate) group: String,
    /// Node id → the shards it is asked for (ascending).
    pub(crate) assignments: BTreeMap<String, Vec<u32>>,
    /// Wanted shards with no in-sync owner anywhere (ascending).
    pub(crate) unavailable: Vec<u32>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unplannable {
    NoGroup,
}

/// The plan of request number `turn` over the shards `wanted` accepts.
pub(crate) fn scatter_plan(
    config: &FilterConfig,
    turn: u64,
    wanted: impl Fn(u32) -> bool,
) -> Result<ScatterPlan, Unplannable> {
    let (group, covering) = config.covering(turn).ok_or(Unplannable::NoGroup)?;
    let mut assignments = covering.assignments;
    for shards in assignments.values_mut() {
        shards.retain(|s| wanted(*s));
    }
    assignments.retain(|_, shards| !shards.is_empty());
    let mut unavailable = Vec::new();
    for shard in covering.unavailable.into_iter().filter(|s| wanted(*s)) {
        let Some(node) = config.replacement(shard, group, |_| true) else {
            unavailable.push(shard);
            continue;
        };
        let shards = assignments.entry(node.id.clone()).or_default();
        shards.push(shard);
        shards.sort_unstable();
    }
    unavailable.sort_unstable();
    Ok(ScatterPlan {
        group: group.to_string(),
        assignments,
        unavailable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use miroir_topology::{Node, NodeState, PluginConfig, Topology};

    fn config(states: &[(&str, &str, NodeState)]) -> FilterConfig {
        FilterConfig::compile(PluginConfig::new(Topology {
            epoch: 1,
            shards: 8,
            shard_map: Default::default(),
            replication_factor: 1,
            nodes: states
                .iter()
                .map(|(id, group, state)| Node {
                    id: (*id).into(),
                    address: "x:1".into(),
                    group: (*group).into(),
                    state: *state,
                })
                .collect(),
        }))
    }

    #[test]
    fn every_wanted_shard_is_asked_once_and_failed_owners_are_replaced_from_another_group() {
        use NodeState::{Active, Failed};
        let two_groups = config(&[
            ("a", "g1", Active),
            ("b", "g1", Failed),
            ("c", "g2", Active),
        ]);
        // Turn 0 reads g1, where b's shards have no active owner: c (g2) serves them.
        let plan = scatter_plan(&two_groups, 0, |_| true).unwrap();
        assert_eq!(plan.group, "g1");
        let mut all: Vec<u32> = plan.assignments.values().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
        assert!(!plan.assignments.contains_key("b"));
        let only_three = scatter_plan(&two_groups, 0, |s| s == 3).unwrap();
        assert_eq!(only_three.assignments.values().flatten().count(), 1);
        // The only owner, marked failed by the control plane, is still asked: this Envoy may
        // reach it.
        let alone = config(&[("a", "g1", Failed)]);
        let plan = scatter_plan(&alone, 0, |_| true).unwrap();
        assert_eq!(plan.assignments.keys().collect::<Vec<_>>(), ["a"]);
        // A shard whose only copy is out of sync has no owner at all.
        let mut topology = alone.topology.clone().with_explicit_map().unwrap();
        topology.shard_map.groups.get_mut("g1").unwrap()[2][0].state =
            miroir_topology::CopyState::OutOfSync;
        let out_of_sync = FilterConfig::compile(PluginConfig::new(topology));
        assert_eq!(
            scatter_plan(&out_of_sync, 0, |_| true).unwrap().unavailable,
            [2]
        );
    }
}

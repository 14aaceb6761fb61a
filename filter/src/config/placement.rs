//! Who holds and who serves every shard, computed once per epoch from the topology's shard map,
//! so that a request only looks answers up.

use std::collections::BTreeMap;

use miroir_topology::{rotation, CoveringSet, Node, NodeState, Topology};

/// One replica group's tables. Node references are indices into `Topology::nodes`.
#[derive(Debug)]
pub(crate) struct GroupTable {
    pub(crate) name: String,
    /// Shard → its active copies in this group, in map order.
    owners: Vec<Vec<usize>>,
    /// Every shard has an active copy here: the group serves searches.
    complete: bool,
    /// The covering sets searches rotate through: the one for request number `turn` is at
    /// `turn % coverings.len()` (the least common multiple of the active owner counts).
    coverings: Vec<CoveringSet>,
    /// The node holding every shard of this group, with every shard active on it: a read it
    /// answers alone needs no merge.
    sole: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct Placement {
    /// In group name order.
    groups: Vec<GroupTable>,
    /// Shard → every node that must store it: its copies in every group.
    write_targets: Vec<Vec<usize>>,
    /// Positions in `groups` of the complete groups (all of them when none is).
    readable: Vec<usize>,
    /// The nodes that answer reads every node agrees on (indexes, settings, keys): not marked
    /// failed and holding no copy out of sync (all nodes when none is).
    agreeing: Vec<usize>,
}

/// The least common multiple of the active owner counts of a group's shards, bounded so that a
/// pathological replication factor cannot make the table large: past the bound the rotation is
/// computed per request instead (never seen with RF ≤ 8, where the multiple is at most 840).
const MAX_COVERINGS: usize = 1024;

impl Placement {
    pub(crate) fn compile(topology: &Topology) -> Placement {
        let index: BTreeMap<&str, usize> = topology
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let position = |n: &Node| index.get(n.id.as_str()).copied().unwrap_or(0);
        let groups: Vec<GroupTable> = topology
            .group_names()
            .into_iter()
            .map(|name| {
                let owners: Vec<Vec<usize>> = (0..topology.shards)
                    .map(|shard| {
                        topology
                            .owners(shard, name)
                            .into_iter()
                            .map(position)
                            .collect()
                    })
                    .collect();
                let period = owners
                    .iter()
                    .map(|o| o.iter().filter(|i| is_active(topology, **i)).count().max(1))
                    .try_fold(1usize, |acc, n| {
                        let lcm = lcm(acc, n);
                        (lcm <= MAX_COVERINGS).then_some(lcm)
                    })
                    .unwrap_or(0);
                let coverings = (0..period)
                    .map(|turn| topology.covering_set(name, turn as u64))
                    .collect();
                let sole = sole_holder(topology, &owners);
                GroupTable {
                    name: name.to_string(),
                    owners,
                    complete: topology.is_complete(name),
                    coverings,
                    sole,
                }
            })
            .collect();
        let write_targets = (0..topology.shards)
            .map(|shard| {
                topology
                    .write_targets(shard)
                    .into_iter()
                    .map(position)
                    .collect()
            })
            .collect();
        let mut readable: Vec<usize> = (0..groups.len())
            .filter(|i| groups.get(*i).is_some_and(|g| g.complete))
            .collect();
        if readable.is_empty() {
            readable = (0..groups.len()).collect();
        }
        let out_of_sync = topology
            .map()
            .out_of_sync_nodes()
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
        let mut agreeing: Vec<usize> = (0..topology.nodes.len())
            .filter(|i| is_active(topology, *i))
            .filter(|i| {
                topology
                    .nodes
                    .get(*i)
                    .is_some_and(|n| !out_of_sync.contains(&n.id))
            })
            .collect();
        if agreeing.is_empty() {
            agreeing = (0..topology.nodes.len()).collect();
        }
        Placement {
            groups,
            write_targets,
            readable,
            agreeing,
        }
    }

    pub(crate) fn groups(&self) -> &[GroupTable] {
        &self.groups
    }

    /// The group request number `turn` reads from, and its position: the complete groups take
    /// turns (a group being filled serves no searches).
    pub(crate) fn group_for(&self, turn: u64) -> Option<(usize, &GroupTable)> {
        let at = *self.readable.get(rotation(turn, self.readable.len()))?;
        self.groups.get(at).map(|g| (at, g))
    }

    pub(crate) fn agreeing(&self) -> &[usize] {
        &self.agreeing
    }

    pub(crate) fn write_targets(&self, shard: u32) -> &[usize] {
        self.write_targets
            .get(shard as usize)
            .map_or(&[], Vec::as_slice)
    }
}

impl GroupTable {
    pub(crate) fn owners_of(&self, shard: u32) -> &[usize] {
        self.owners.get(shard as usize).map_or(&[], Vec::as_slice)
    }

    /// One active owner of every shard for request number `turn`, rotating over the replicas.
    pub(crate) fn covering(&self, topology: &Topology, turn: u64) -> CoveringSet {
        match self.coverings.get(rotation(turn, self.coverings.len())) {
            Some(set) => set.clone(),
            None => topology.covering_set(&self.name, turn),
        }
    }

    pub(crate) fn sole(&self) -> Option<usize> {
        self.sole
    }
}

fn is_active(topology: &Topology, node: usize) -> bool {
    topology
        .nodes
        .get(node)
        .is_some_and(|n| n.state == NodeState::Active)
}

/// The group's node that owns every shard, if one does and it is active.
fn sole_holder(topology: &Topology, owners: &[Vec<usize>]) -> Option<usize> {
    let first = *owners.first()?.iter().find(|i| is_active(topology, **i))?;
    let holds_all = owners.iter().all(|o| {
        let active: Vec<usize> = o
            .iter()
            .copied()
            .filter(|i| is_active(topology, *i))
            .collect();
        active == [first]
    });
    holds_all.then_some(first)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a.checked_rem(b).unwrap_or(0))
    }
}

fn lcm(a: usize, b: usize) -> usize {
    a.checked_div(gcd(a, b))
        .and_then(|q| q.checked_mul(b))
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;
    use miroir_topology::Node;

    fn topology(rf: u32, states: &[(&str, &str, NodeState)]) -> Topology {
        Topology {
            epoch: 1,
            shards: 12,
            shard_map: Default::default(),
            replication_factor: rf,
            nodes: states
                .iter()
                .map(|(id, group, state)| Node {
                    id: (*id).into(),
                    address: format!("{id}:7700"),
                    group: (*group).into(),
                    state: *state,
                })
                .collect(),
        }
    }

    #[test]
    fn coverings_are_the_topologys_for_every_turn() {
        use NodeState::{Active, Failed};
        let t = topology(
            3,
            &[
                ("a", "g1", Active),
                ("b", "g1", Active),
                ("c", "g1", Failed),
                ("d", "g1", Active),
                ("e", "g2", Active),
                ("f", "g2", Active),
            ],
        );
        let placement = Placement::compile(&t);
        for turn in 0..50u64 {
            for g in placement.groups() {
                assert_eq!(
                    g.covering(&t, turn),
                    t.covering_set(&g.name, turn),
                    "{turn} {}",
                    g.name
                );
            }
        }
        for shard in 0..12 {
            let expected: Vec<&str> = t
                .write_targets(shard)
                .iter()
                .map(|n| n.id.as_str())
                .collect();
            let compiled: Vec<&str> = placement
                .write_targets(shard)
                .iter()
                .map(|i| t.nodes[*i].id.as_str())
                .collect();
            assert_eq!(compiled, expected);
        }
    }

    #[test]
    fn a_group_of_one_active_node_holding_everything_is_its_sole_holder() {
        use NodeState::{Active, Failed};
        let t = topology(
            1,
            &[
                ("a", "g1", Active),
                ("b", "g2", Active),
                ("c", "g2", Active),
            ],
        );
        let placement = Placement::compile(&t);
        assert_eq!(placement.groups()[0].sole(), Some(0));
        assert_eq!(placement.groups()[1].sole(), None);
        let failed = topology(1, &[("a", "g1", Failed)]);
        assert_eq!(Placement::compile(&failed).groups()[0].sole(), None);
    }
}

//! A job's epochs as pure functions of the stored topology: each step is computed from the
//! topology as it is when the step runs (health checks may have changed node states meanwhile),
//! and applying a step twice gives the same topology, so a resumed job may redo its last step.

use std::collections::BTreeMap;

use miroir_topology::{CopyState, ShardCopy, ShardMap, Topology, TopologyError};

use super::{Edit, Job, Move, MovePhase};

/// `current` with the job's non-map changes applied (nodes added, weights, replication).
pub fn edited(current: &Topology, edit: &Edit) -> Topology {
    let mut next = current.explicit();
    for node in &edit.add_nodes {
        if next.node(&node.id).is_none() {
            next.nodes.push(node.clone());
        }
    }
    for (node, weight) in &edit.weights {
        if *weight == 1 {
            next.shard_map.weights.remove(node);
        } else {
            next.shard_map.weights.insert(node.clone(), *weight);
        }
    }
    for (group, rf) in &edit.replication {
        if *rf == next.replication_factor {
            next.shard_map.replication.remove(group);
        } else {
            next.shard_map.replication.insert(group.clone(), *rf);
        }
    }
    next
}

/// The moves that take `current`'s copies (those not leaving) to the balanced placement of
/// `current` edited by `edit`.
pub fn propose(current: &Topology, edit: &Edit) -> Result<Vec<Move>, TopologyError> {
    let next = edited(current, edit);
    let target = next.balanced()?;
    Ok(moves(current, &target))
}

fn moves(current: &Topology, target: &ShardMap) -> Vec<Move> {
    let current = &current.explicit();
    let mut out = Vec::new();
    for (group, shards) in &target.groups {
        for (shard, wanted) in shards.iter().enumerate() {
            let shard = shard as u32;
            let held: Vec<&str> = current
                .shard_map
                .copies(group, shard)
                .iter()
                .filter(|c| c.state != CopyState::Leaving)
                .map(|c| c.node.as_str())
                .collect();
            let to: Vec<String> = wanted
                .iter()
                .filter(|c| !held.contains(&c.node.as_str()))
                .map(|c| c.node.clone())
                .collect();
            let from: Vec<String> = held
                .iter()
                .filter(|n| !wanted.iter().any(|c| c.node == **n))
                .map(|n| n.to_string())
                .collect();
            if !to.is_empty() || !from.is_empty() {
                out.push(Move {
                    group: group.clone(),
                    shard,
                    from,
                    to,
                    phase: MovePhase::Pending,
                    documents_copied: 0,
                });
            }
        }
    }
    out
}

fn shards_of<'a>(map: &'a mut ShardMap, group: &str, count: u32) -> &'a mut Vec<Vec<ShardCopy>> {
    map.groups
        .entry(group.to_string())
        .or_insert_with(|| vec![Vec::new(); count as usize])
}

/// The copies of a move's shard, where its group has them.
fn copies_mut<'a>(map: &'a mut ShardMap, m: &Move) -> Option<&'a mut Vec<ShardCopy>> {
    map.groups
        .get_mut(&m.group)
        .and_then(|shards| shards.get_mut(m.shard as usize))
}

/// Writes reach the new copies too (`copying`); reads are unchanged.
pub fn staged(current: &Topology, job: &Job) -> Topology {
    let mut next = edited(current, &job.edit);
    let count = next.shards;
    for m in &job.moves {
        let Some(copies) =
            shards_of(&mut next.shard_map, &m.group, count).get_mut(m.shard as usize)
        else {
            continue;
        };
        for node in &m.to {
            if !copies.iter().any(|c| c.node == *node) {
                copies.push(ShardCopy {
                    node: node.clone(),
                    state: CopyState::Copying,
                });
            }
        }
    }
    next
}

/// Reads move to the new copies; the old ones keep taking writes (Envoys still on the previous
/// epoch read them) until the clean-up.
pub fn cut_over(current: &Topology, job: &Job) -> Topology {
    let mut next = current.clone();
    for m in &job.moves {
        let Some(copies) = copies_mut(&mut next.shard_map, m) else {
            continue;
        };
        for copy in copies.iter_mut() {
            if m.to.contains(&copy.node) {
                copy.state = CopyState::Active;
            } else if m.from.contains(&copy.node) {
                copy.state = CopyState::Leaving;
            }
        }
    }
    next
}

/// The old copies leave the map.
pub fn cleaned_up(current: &Topology, job: &Job) -> Topology {
    let mut next = current.clone();
    for m in &job.moves {
        if let Some(copies) = copies_mut(&mut next.shard_map, m) {
            copies.retain(|c| !(m.from.contains(&c.node) && c.state == CopyState::Leaving));
        }
    }
    next
}

/// The stage undone: the job's copies still being filled leave the map (so writes no longer
/// wait for a node that does not answer, or for a canceled job), except one that is its shard's
/// only copy in the group (a copy rebuilding a lost one: without it the shard would have none).
/// A group whose every copy is the job's (a group being added) leaves the topology with its nodes.
pub fn withdrawn(current: &Topology, job: &Job) -> Topology {
    let mut next = current.clone();
    let filling = |m: &Move, c: &ShardCopy| m.to.contains(&c.node) && c.state == CopyState::Copying;
    let new_groups: Vec<String> = next
        .shard_map
        .groups
        .iter()
        .filter(|(group, shards)| {
            shards.iter().enumerate().all(|(shard, copies)| {
                copies.iter().all(|c| {
                    job.moves
                        .iter()
                        .any(|m| m.group == **group && m.shard as usize == shard && filling(m, c))
                })
            })
        })
        .map(|(g, _)| g.clone())
        .collect();
    for group in &new_groups {
        next.shard_map.groups.remove(group);
        next.shard_map.replication.remove(group);
        next.nodes.retain(|n| n.group != *group);
    }
    for m in &job.moves {
        if let Some(copies) = copies_mut(&mut next.shard_map, m) {
            if copies.iter().any(|c| !filling(m, c)) {
                copies.retain(|c| !filling(m, c));
            }
        }
    }
    let ids: Vec<String> = next.nodes.iter().map(|n| n.id.clone()).collect();
    next.shard_map.weights.retain(|n, _| ids.contains(n));
    next
}

/// Per node, the shards whose documents it must delete once the clean-up epoch is acknowledged.
pub fn leftovers(job: &Job) -> BTreeMap<String, Vec<u32>> {
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for m in &job.moves {
        for node in &m.from {
            out.entry(node.clone()).or_default().push(m.shard);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobKind;
    use miroir_topology::{Node, NodeState};

    fn node(id: &str, group: &str) -> Node {
        Node {
            id: id.into(),
            address: format!("{id}:7700"),
            group: group.into(),
            state: NodeState::Active,
        }
    }

    fn three() -> Topology {
        Topology {
            epoch: 1,
            shards: 64,
            replication_factor: 1,
            nodes: vec![node("n0", "g"), node("n1", "g"), node("n2", "g")],
            shard_map: ShardMap::default(),
        }
        .with_explicit_map()
        .unwrap()
    }

    fn job(current: &Topology, edit: Edit) -> Job {
        let moves = propose(current, &edit).unwrap();
        Job::new("job-1".into(), JobKind::AddNode, edit, moves, "now".into())
    }

    #[test]
    fn adding_a_node_goes_through_copying_then_leaving_then_gone() {
        let current = three();
        let job = job(
            &current,
            Edit {
                add_nodes: vec![node("n3", "g")],
                ..Edit::default()
            },
        );
        assert_eq!(job.moves.len(), 16);
        assert!(job
            .moves
            .iter()
            .all(|m| m.to == ["n3"] && m.from.len() == 1));

        let staged = staged(&current, &job);
        staged.validate().unwrap();
        let m = &job.moves[0];
        assert!(staged.owners(m.shard, "g").iter().all(|n| n.id != "n3"));
        assert!(staged.write_targets(m.shard).iter().any(|n| n.id == "n3"));
        assert_eq!(
            staged,
            super::staged(&staged, &job),
            "staging twice changes nothing"
        );

        let cut = cut_over(&staged, &job);
        cut.validate().unwrap();
        let owners: Vec<&str> = cut
            .owners(m.shard, "g")
            .iter()
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(owners, ["n3"]);
        assert_eq!(
            cut.write_targets(m.shard).len(),
            2,
            "the old copy still takes writes"
        );

        let done = cleaned_up(&cut, &job);
        done.validate().unwrap();
        assert!(done.shard_map.is_settled());
        assert_eq!(
            done.shard_map
                .load("g")
                .values()
                .copied()
                .collect::<Vec<_>>(),
            [16; 4]
        );
        assert_eq!(leftovers(&job).values().map(Vec::len).sum::<usize>(), 16);
        // Once there, nothing more to do.
        assert!(propose(&done, &Edit::default()).unwrap().is_empty());
    }

    #[test]
    fn a_new_group_is_filled_then_withdrawn_whole() {
        let current = three();
        let edit = Edit {
            add_nodes: vec![node("h0", "h"), node("h1", "h")],
            ..Edit::default()
        };
        let job = job(&current, edit);
        assert_eq!(job.moves.len(), 64);
        let staged = staged(&current, &job);
        staged.validate().unwrap();
        assert!(!staged.is_complete("h"));
        let back = withdrawn(&staged, &job);
        back.validate().unwrap();
        assert_eq!(back.nodes, current.nodes);
        assert_eq!(back.shard_map, current.shard_map);
    }

    #[test]
    fn a_replication_factor_goes_up_by_copies_and_down_by_leaving_copies() {
        let current = three();
        let up = job(
            &current,
            Edit {
                replication: [("g".to_string(), 2)].into(),
                ..Edit::default()
            },
        );
        assert_eq!(up.moves.len(), 64);
        assert!(up
            .moves
            .iter()
            .all(|m| m.from.is_empty() && m.to.len() == 1));
        let two = cleaned_up(&cut_over(&staged(&current, &up), &up), &up);
        two.validate().unwrap();
        assert_eq!(two.replication_of("g"), 2);
        assert!((0..64).all(|s| two.owners(s, "g").len() == 2));

        let down = job(
            &two,
            Edit {
                replication: [("g".to_string(), 1)].into(),
                ..Edit::default()
            },
        );
        assert!(down
            .moves
            .iter()
            .all(|m| m.to.is_empty() && m.from.len() == 1));
        let cut = cut_over(&staged(&two, &down), &down);
        cut.validate().unwrap();
        assert!(
            (0..64).all(|s| cut.owners(s, "g").len() == 1),
            "reads leave first"
        );
        assert!(
            (0..64).all(|s| cut.write_targets(s).len() == 2),
            "writes until clean-up"
        );
        let one = cleaned_up(&cut, &down);
        assert!((0..64).all(|s| one.write_targets(s).len() == 1));
        let load = one.shard_map.load("g");
        assert!(load.values().max().unwrap() - load.values().min().unwrap() <= 1);
    }

    #[test]
    fn a_withdrawal_keeps_a_shards_only_copy() {
        let mut current = three();
        let only = &mut current.shard_map.groups.get_mut("g").unwrap()[0];
        only[0].state = CopyState::Copying;
        let node = only[0].node.clone();
        let job = Job::new(
            "job-1".into(),
            JobKind::RestoreReplication,
            Edit::default(),
            vec![Move {
                group: "g".into(),
                shard: 0,
                from: Vec::new(),
                to: vec![node.clone()],
                phase: MovePhase::Pending,
                documents_copied: 0,
            }],
            "now".into(),
        );
        let back = withdrawn(&current, &job);
        back.validate().unwrap();
        assert_eq!(back.shard_map.copies("g", 0)[0].node, node);
    }

    #[test]
    fn draining_moves_every_copy_off_the_node() {
        let current = three();
        let job = job(
            &current,
            Edit {
                weights: [("n1".to_string(), 0)].into(),
                ..Edit::default()
            },
        );
        assert!(job.moves.iter().all(|m| m.from == ["n1"]));
        let done = cleaned_up(&cut_over(&staged(&current, &job), &job), &job);
        done.validate().unwrap();
        assert!(!done.shard_map.load("g").contains_key("n1"));
        assert_eq!(done.weight_of("n1"), 0);
    }
}

//! The in-sync sets: for every shard, the copies that hold every acknowledged write. A write
//! that an in-sync copy missed is acknowledged only once that copy is out of the set in the
//! store (docs/architecture.md, "Replication"); the filter asks for it when it registers the
//! write's task, and this is where the registration does it.

use axum::http::StatusCode;
use miroir_topology::tasks::Missed;
use miroir_topology::{CopyState, Topology};

use crate::app::{no_topology, App};
use crate::error::ApiError;

/// Compare-and-set attempts before a registration gives up on a topology other replicas keep
/// changing (each attempt re-reads it).
const ATTEMPTS: usize = 8;

/// Takes every in-sync copy that missed the write out of the in-sync set, in the store, or
/// refuses the write: when a shard would be left with fewer than `minCopies` in-sync copies that
/// took it (another write marked the copies that took this one meanwhile), or a copy a job is
/// filling missed it. Returns whether the stored topology changed (it must then be rolled out).
pub async fn record(app: &App, missed: &Missed) -> Result<bool, ApiError> {
    // Counted first: a repair that verified a copy before this write reached it sees the count
    // move and does not put the copy back in the set (jobs/runner.rs).
    for node in &missed.nodes {
        app.store.count_miss(node).await.map_err(ApiError::store)?;
    }
    // No `topology_lock`: a rollout holds it for as long as the fleet takes to acknowledge, and
    // the write waits here; the store's compare-and-set is what orders changes.
    for _ in 0..ATTEMPTS {
        let current = app
            .store
            .load_topology()
            .await
            .map_err(ApiError::store)?
            .ok_or_else(no_topology)?;
        let verdict = missed.verdict(&current);
        if !verdict.short.is_empty() {
            return Err(write_unavailable(&current, &verdict.short, &missed.nodes));
        }
        if verdict.to_mark.is_empty() {
            return Ok(false);
        }
        let mut next = marked(&current, &verdict.to_mark);
        next.epoch = current.epoch.saturating_add(1);
        if app
            .store
            .cas_topology(Some(current.epoch), &next)
            .await
            .map_err(ApiError::store)?
        {
            app.observe_topology(&next);
            let mut by_node: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
            for (_, shard, node) in &verdict.to_mark {
                by_node.entry(node).or_default().push(*shard);
            }
            for (node, shards) in by_node {
                tracing::warn!(
                    epoch = next.epoch,
                    node,
                    ?shards,
                    "copies missed a write: out of the in-sync set"
                );
            }
            return Ok(true);
        }
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "miroir_write_unavailable",
        "system",
        "The copies that missed the write could not be recorded out of sync: the topology kept changing. Retrying the same request is safe.",
    ))
}

/// `current` with the listed copies out of the in-sync set.
pub fn marked(current: &Topology, copies: &[(String, u32, String)]) -> Topology {
    let mut next = current.explicit();
    for (group, shard, node) in copies {
        let found = next
            .shard_map
            .groups
            .get_mut(group)
            .and_then(|shards| shards.get_mut(*shard as usize))
            .and_then(|copies| copies.iter_mut().find(|c| c.node == *node));
        if let Some(copy) = found {
            if copy.state == CopyState::Active {
                copy.state = CopyState::OutOfSync;
            }
        }
    }
    next
}

/// `current` with the copies of `node`, back after the health checks had marked it failed, out
/// of the in-sync set wherever another in-sync copy on a node not marked failed can repair them:
/// nothing tells a node that kept its disk from one restored from an old copy or started empty,
/// and a repair copies only what differs. A copy that is its shard's last in-sync one stays in
/// sync (there is nothing to repair it from).
pub fn back_from_failure(current: &Topology, node: &str) -> Topology {
    let mut next = current.explicit();
    let healthy = |id: &str| {
        id != node
            && current
                .node(id)
                .is_some_and(|n| n.state == miroir_topology::NodeState::Active)
    };
    for shard in 0..next.shards {
        let elsewhere = next.shard_map.groups.values().any(|shards| {
            shards.get(shard as usize).is_some_and(|copies| {
                copies
                    .iter()
                    .any(|c| c.state == CopyState::Active && healthy(&c.node))
            })
        });
        if !elsewhere {
            continue;
        }
        for shards in next.shard_map.groups.values_mut() {
            for copy in shards.get_mut(shard as usize).into_iter().flatten() {
                if copy.node == node && copy.state == CopyState::Active {
                    copy.state = CopyState::OutOfSync;
                }
            }
        }
    }
    next
}

fn write_unavailable(topology: &Topology, shards: &[u32], nodes: &[String]) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "miroir_write_unavailable",
        "system",
        format!(
            "Shard(s) {shards:?} have fewer than minCopies ({}) in-sync copies that took the write (missed by {}). It may have been applied on the nodes that took it; retrying the same request is safe.",
            topology.shard_map.min_copies(),
            nodes
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use miroir_topology::{Node, NodeState, ShardMap};

    fn topology(rf: u32, min_copies: Option<u32>) -> Topology {
        let nodes = ["a", "b", "c"]
            .iter()
            .map(|id| Node {
                id: (*id).into(),
                address: format!("{id}:7700"),
                group: "g".into(),
                state: NodeState::Active,
            })
            .collect();
        Topology {
            epoch: 3,
            shards: 6,
            replication_factor: rf,
            nodes,
            shard_map: ShardMap {
                min_copies,
                ..ShardMap::default()
            },
        }
        .with_explicit_map()
        .expect("placeable")
    }

    fn missed(nodes: &[&str], shards: Option<Vec<u32>>) -> Missed {
        Missed {
            epoch: 3,
            shards,
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn a_missed_copy_leaves_the_set_while_another_took_the_write() {
        let t = topology(2, None);
        let verdict = missed(&["a"], None).verdict(&t);
        assert!(verdict.short.is_empty(), "{verdict:?}");
        let a_copies = (0..6)
            .filter(|s| t.copies(*s, "g").iter().any(|(n, _)| n.id == "a"))
            .count();
        assert_eq!(verdict.to_mark.len(), a_copies);
        let next = marked(&t, &verdict.to_mark);
        for shard in 0..6 {
            let owners: Vec<&str> = next
                .owners(shard, "g")
                .iter()
                .map(|n| n.id.as_str())
                .collect();
            assert!(!owners.contains(&"a"), "{shard}: {owners:?}");
            assert!(!owners.is_empty(), "{shard} kept an in-sync copy");
        }
        // The copies already out of sync are not marked again; the rule still holds for b and c.
        assert!(missed(&["a"], None).verdict(&next).to_mark.is_empty());
    }

    #[test]
    fn a_write_that_only_out_of_sync_copies_took_is_refused() {
        let t = topology(2, None);
        let after_a = marked(&t, &missed(&["a"], None).verdict(&t).to_mark);
        // A second write missed b and c but a took it: a is out of sync, so no in-sync copy
        // of the shards a shares with b or c holds this write.
        let verdict = missed(&["b", "c"], None).verdict(&after_a);
        assert!(!verdict.short.is_empty());
    }

    #[test]
    fn a_node_back_from_failure_is_repaired_unless_its_copies_are_the_last() {
        let mut t = topology(2, None);
        t.nodes[1].state = NodeState::Failed;
        let back = back_from_failure(&t, "a");
        for shard in 0..6 {
            for (node, state) in back.copies(shard, "g") {
                let others_healthy = t.copies(shard, "g").iter().any(|(n, _)| n.id == "c");
                let expected = if node.id == "a" && others_healthy {
                    CopyState::OutOfSync
                } else {
                    CopyState::Active
                };
                assert_eq!(state, expected, "shard {shard} on {}", node.id);
            }
        }
        // RF 1: every copy is the last one.
        let one = topology(1, None);
        assert_eq!(back_from_failure(&one, "a"), one);
    }

    #[test]
    fn min_copies_counts_in_sync_copies_that_took_the_write() {
        let t = topology(3, Some(2));
        assert!(missed(&["a"], Some(vec![0, 1]))
            .verdict(&t)
            .short
            .is_empty());
        assert_eq!(
            missed(&["a", "b"], Some(vec![0, 1])).verdict(&t).short,
            vec![0, 1]
        );
        // Shards the write did not touch are not judged.
        assert!(missed(&["a"], Some(vec![])).verdict(&t).to_mark.is_empty());
    }
}

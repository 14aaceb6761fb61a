//! Repair: out-of-sync copies (they missed an acknowledged write, `in_sync.rs`) made equal to an
//! in-sync copy and put back in the in-sync set, as a job the leader starts by itself.
//!
//! When no job is unfinished and the stored topology has `outOfSync` copies on nodes the health
//! checks find active, the leader starts one repair for all of them (a copy on a failed node
//! waits until its node is active again). Its phases: `prepare` (the node's indexes, settings,
//! keys and experimental features made the reference's, indexes and keys the reference does not
//! have deleted from it: `reconcile.rs`) →
//! `copy` (every copy synced from an active copy, `shard_copy.rs`) → `activate` (the copies
//! `active` again, one epoch) → `done`. The copies take writes all along, so there is no stage,
//! cut-over nor clean-up; a repair stopped, paused or canceled leaves them out of sync.
//!
//! The miss counters (`Store::misses`) tell whether a write missed a node the repair relies on
//! while it ran. A write's registration counts its misses first, then reads the topology and
//! marks the in-sync copies that missed it (`in_sync::record`). The repair reads the count of
//! every node it relies on (repaired nodes, nodes copied from) before the copy starts; once the
//! copy is verified it waits for the write path's longest latency ([`settle`]: a write that
//! landed on a repaired copy before a copy round overwrote it with a source that missed it has
//! been registered by then), reads the counts again (one moved: nothing is activated, the job
//! fails and the next repair copies again), activates the copies (one epoch), and reads the
//! repaired nodes' counts once more: a miss counted before that read, by a registration that
//! read the topology before the activation, was not marked, so the copies of a node whose count
//! moved are taken out again. A miss counted after it comes from a registration that reads the
//! topology after the activation, and marks the copy itself. What is left: reads of a copy taken
//! out again until that epoch reaches the Envoys, and a write held longer than [`settle`]
//! between a node's answer and its registration.

use miroir_topology::{CopyState, NodeState, Topology};

use super::runner::source;
use super::{Job, JobKind, JobState, Move, MovePhase};

/// After a failed repair, the next one waits this long (a node refusing the same call again).
pub const RETRY_AFTER_FAILURE_S: i128 = 60;
/// After an operator canceled a repair, the leader starts none for this long (room for the
/// operator's own change, e.g. removing the node).
pub const RETRY_AFTER_CANCEL_S: i128 = 600;
/// How long a write may take from reaching a node to its registration at the control plane:
/// the filter waits for every node's answer (up to the node timeout, which the filter shares
/// with the control plane), then registers (up to its control-plane timeout), plus a margin.
pub fn settle(node_timeout_ms: u64, control_plane_timeout_ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(
        node_timeout_ms
            .saturating_add(control_plane_timeout_ms)
            .saturating_add(500),
    )
}

/// The copies a repair covers: every `outOfSync` copy on an active node whose shard has an
/// active copy on an active node to copy from, one move each (`to`: the node, `from`: none).
pub fn repairs(topology: &Topology) -> Vec<Move> {
    let mut out = Vec::new();
    for (group, shards) in &topology.shard_map.groups {
        for (shard, copies) in shards.iter().enumerate() {
            let shard = shard as u32;
            for copy in copies {
                if copy.state != CopyState::OutOfSync
                    || topology.node(&copy.node).map(|n| n.state) != Some(NodeState::Active)
                {
                    continue;
                }
                let m = Move {
                    group: group.clone(),
                    shard,
                    from: Vec::new(),
                    to: vec![copy.node.clone()],
                    phase: MovePhase::Pending,
                    documents_copied: 0,
                };
                if source(topology, &m).is_some() {
                    out.push(m);
                } else {
                    // Asked every tick: not a warning (`miroir_copies{state="outOfSync"}` shows it).
                    tracing::debug!(
                        group,
                        shard,
                        node = copy.node,
                        "out-of-sync copy without an active copy to repair it from"
                    );
                }
            }
        }
    }
    out
}

/// Sets the repair's copies on `nodes` (all if `None`) that are `from` to `to` (the others are
/// left as they are).
fn set(
    current: &Topology,
    job: &Job,
    nodes: Option<&[String]>,
    from: CopyState,
    to: CopyState,
) -> Topology {
    let mut next = current.clone();
    for m in &job.moves {
        let Some(copies) = next
            .shard_map
            .groups
            .get_mut(&m.group)
            .and_then(|shards| shards.get_mut(m.shard as usize))
        else {
            continue;
        };
        for copy in copies.iter_mut() {
            let on = nodes.is_none_or(|n| n.contains(&copy.node));
            if m.to.contains(&copy.node) && on && copy.state == from {
                copy.state = to;
            }
        }
    }
    next
}

/// The repaired copies back in the in-sync set.
pub fn activated(current: &Topology, job: &Job) -> Topology {
    set(current, job, None, CopyState::OutOfSync, CopyState::Active)
}

/// The repaired copies on `nodes` out of the in-sync set again: a write missed those nodes as
/// the repair activated their copies.
pub fn deactivated(current: &Topology, job: &Job, nodes: &[String]) -> Topology {
    set(
        current,
        job,
        Some(nodes),
        CopyState::Active,
        CopyState::OutOfSync,
    )
}

/// The nodes whose miss count moved since the copy started (`before`), given the counts now.
pub fn moved(
    before: &std::collections::BTreeMap<String, u64>,
    now: &[(String, u64)],
) -> Vec<String> {
    now.iter()
        .filter(|(node, count)| before.get(node).is_some_and(|b| b != count))
        .map(|(node, _)| node.clone())
        .collect()
}

/// Whether the leader may start a repair now (Unix ns): not while a job is unfinished, nor soon
/// after the last repair failed or was canceled.
pub fn may_start(jobs: &[Job], now: i128) -> bool {
    if super::runner::unfinished(jobs).is_some() {
        return false;
    }
    let last = jobs
        .iter()
        .filter(|j| j.kind == JobKind::Repair)
        .filter_map(|j| {
            let at = crate::time::parse(j.finished_at.as_deref()?)?.0;
            Some((at, j.state))
        })
        .max_by_key(|(at, _)| *at);
    let wait = match last {
        Some((_, JobState::Failed)) => RETRY_AFTER_FAILURE_S,
        Some((_, JobState::Canceled)) => RETRY_AFTER_CANCEL_S,
        _ => return true,
    };
    last.is_some_and(|(at, _)| now - at >= wait * 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use miroir_topology::{Node, ShardCopy, ShardMap};
    use std::collections::BTreeMap;

    fn node(id: &str, group: &str, state: NodeState) -> Node {
        Node {
            id: id.into(),
            address: format!("{id}:7700"),
            group: group.into(),
            state,
        }
    }

    /// Two groups of two nodes, RF 1, four shards: g/0 on a, g/1 on b, h/0 on c, h/1 on d…
    fn topology() -> Topology {
        let copies = |a: &str, b: &str| {
            vec![
                vec![ShardCopy::active(a)],
                vec![ShardCopy::active(b)],
                vec![ShardCopy::active(a)],
                vec![ShardCopy::active(b)],
            ]
        };
        Topology {
            epoch: 4,
            shards: 4,
            replication_factor: 1,
            nodes: vec![
                node("a", "g", NodeState::Active),
                node("b", "g", NodeState::Active),
                node("c", "h", NodeState::Active),
                node("d", "h", NodeState::Active),
            ],
            shard_map: ShardMap {
                groups: [
                    ("g".to_string(), copies("a", "b")),
                    ("h".to_string(), copies("c", "d")),
                ]
                .into(),
                ..ShardMap::default()
            },
        }
    }

    fn out_of_sync(t: &mut Topology, group: &str, shard: usize) {
        t.shard_map.groups.get_mut(group).unwrap()[shard][0].state = CopyState::OutOfSync;
    }

    fn job(moves: Vec<Move>) -> Job {
        Job::new(
            "job-1".into(),
            JobKind::Repair,
            Default::default(),
            moves,
            "now".into(),
        )
    }

    #[test]
    fn a_repair_covers_out_of_sync_copies_on_active_nodes_that_have_a_source() {
        let mut t = topology();
        assert!(repairs(&t).is_empty());
        out_of_sync(&mut t, "g", 0); // a: h/0 on c is a source
        out_of_sync(&mut t, "g", 2); // a again
        out_of_sync(&mut t, "h", 1); // d: its node failed
        t.nodes[3].state = NodeState::Failed;
        out_of_sync(&mut t, "g", 3); // b: h/3 is d's, failed: no source
        let covered: Vec<(String, u32, Vec<String>)> = repairs(&t)
            .into_iter()
            .map(|m| {
                assert!(m.from.is_empty());
                (m.group, m.shard, m.to)
            })
            .collect();
        assert_eq!(
            covered,
            [
                ("g".to_string(), 0, vec!["a".to_string()]),
                ("g".to_string(), 2, vec!["a".to_string()]),
            ]
        );
        // Once d is back, its copy is covered, and b's has a source again.
        t.nodes[3].state = NodeState::Active;
        assert_eq!(repairs(&t).len(), 4);
    }

    #[test]
    fn a_source_is_never_an_out_of_sync_copy() {
        let mut t = topology();
        out_of_sync(&mut t, "g", 0);
        out_of_sync(&mut t, "h", 0);
        assert!(repairs(&t).is_empty(), "no in-sync copy of shard 0 is left");
        let m = &job(vec![Move {
            group: "g".into(),
            shard: 1,
            from: vec![],
            to: vec!["x".into()],
            phase: MovePhase::Pending,
            documents_copied: 0,
        }])
        .moves[0];
        assert_eq!(source(&t, m).map(|n| n.id), Some("b".to_string()));
    }

    #[test]
    fn activation_puts_the_copies_back_and_deactivation_takes_them_out_again() {
        let mut t = topology();
        out_of_sync(&mut t, "g", 0);
        out_of_sync(&mut t, "h", 1);
        let job = job(repairs(&t));
        assert_eq!(job.moves.len(), 2);
        let active = activated(&t, &job);
        active.validate().unwrap();
        assert_eq!(active.shard_map, topology().shard_map);
        assert_eq!(
            activated(&active, &job),
            active,
            "activating twice changes nothing"
        );
        let both = ["a".to_string(), "d".to_string()];
        let again = deactivated(&active, &job, &both);
        assert_eq!(again, t);
        assert_eq!(deactivated(&again, &job, &both), again);
        // Only the nodes named.
        let one = deactivated(&active, &job, &both[1..]);
        assert_eq!(one.shard_map.copies("g", 0)[0].state, CopyState::Active);
        assert_eq!(one.shard_map.copies("h", 1)[0].state, CopyState::OutOfSync);
        // Only the repair's copies move: another copy marked meanwhile stays out of sync.
        let mut marked = t.clone();
        out_of_sync(&mut marked, "h", 2);
        let after = activated(&marked, &job);
        assert_eq!(
            after.shard_map.copies("h", 2)[0].state,
            CopyState::OutOfSync
        );
        assert_eq!(after.shard_map.copies("g", 0)[0].state, CopyState::Active);
        // And deactivation leaves the other active copies alone.
        assert_eq!(
            deactivated(&topology(), &job, &both)
                .shard_map
                .copies("g", 1)[0]
                .state,
            CopyState::Active
        );
    }

    #[test]
    fn a_count_that_moved_is_named() {
        let before: BTreeMap<String, u64> = [("a".to_string(), 3), ("c".to_string(), 0)].into();
        let now = [
            ("a".to_string(), 3),
            ("c".to_string(), 1),
            ("z".to_string(), 9),
        ];
        assert_eq!(moved(&before, &now), ["c"]);
        assert!(moved(&before, &now[..1]).is_empty());
    }

    #[test]
    fn repairs_wait_after_a_failure_or_a_cancel() {
        let s = 1_000_000_000i128;
        let t0 = crate::time::parse("2026-01-01T00:00:00Z").unwrap().0;
        let finished = |state: JobState, kind: JobKind| {
            let mut j = job(vec![]);
            j.kind = kind;
            j.state = state;
            j.finished_at = Some(crate::time::format(t0));
            j
        };
        assert!(may_start(&[], t0));
        let ok = [finished(JobState::Succeeded, JobKind::Repair)];
        assert!(may_start(&ok, t0));
        let failed = [finished(JobState::Failed, JobKind::Repair)];
        assert!(!may_start(&failed, t0 + 59 * s));
        assert!(may_start(&failed, t0 + 60 * s));
        let canceled = [finished(JobState::Canceled, JobKind::Repair)];
        assert!(!may_start(&canceled, t0 + 599 * s));
        assert!(may_start(&canceled, t0 + 600 * s));
        // Other kinds do not hold repairs back; an unfinished job does.
        assert!(may_start(
            &[finished(JobState::Failed, JobKind::AddNode)],
            t0
        ));
        let mut running = job(vec![]);
        running.kind = JobKind::AddNode;
        assert!(!may_start(&[running], t0));
    }
}

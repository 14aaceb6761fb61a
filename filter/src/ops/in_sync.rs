//! The in-sync rule that ends every write (docs/architecture.md, "Replication"): a write some
//! copies missed is acknowledged only if, for every shard it touched, at least `minCopies`
//! in-sync copies took it, every copy a job is filling or replacing took it, and the in-sync
//! copies that missed it leave the in-sync set first, which the control plane records when it
//! registers the write's task. Without a control plane to record that, every in-sync copy must
//! take the write.

use std::collections::BTreeMap;

use miroir_topology::tasks::Missed;
use miroir_topology::Topology;

use crate::error::MeiliError;
use crate::host::{Host, Reply};
use crate::ops::fanout::Answer;
use crate::ops::{enqueued, Step};
use crate::plan::calls::Ctx;
use crate::tasks::TaskRecord;

/// Header of a write acknowledged below full replication: which shards, how many copies took it.
pub(crate) const DEGRADED_HEADER: &str = "x-miroir-degraded";

/// On `GET /tasks/{uid}` (from the control plane): the nodes the task's change has not reached
/// yet, out of sync until repaired.
pub(crate) const OUT_OF_SYNC_HEADER: &str = "x-miroir-out-of-sync-nodes";

/// The nodes a write did not reach, each with why (for the error a client reads).
#[derive(Default)]
pub(crate) struct Misses(BTreeMap<String, String>);

impl Misses {
    pub(crate) fn add(&mut self, node: &str, why: impl Into<String>) {
        self.0.entry(node.to_string()).or_insert_with(|| why.into());
    }

    pub(crate) fn contains(&self, node: &str) -> bool {
        self.0.contains_key(node)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(node, why)| format!("`{node}` ({why})"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The end of a write that reached its nodes, `misses` excepted: `shards` are those it touched
/// (`None`: every shard), `replies` those the client's summarized task is taken from.
pub(crate) fn conclude(
    ctx: &Ctx,
    host: &mut dyn Host,
    record: TaskRecord,
    replies: &[(String, Reply)],
    shards: Option<Vec<u32>>,
    misses: &Misses,
) -> Step {
    if misses.is_empty() {
        return enqueued(record, replies, None);
    }
    let topology = &ctx.config.topology;
    let missed = Missed {
        epoch: topology.epoch,
        shards,
        nodes: misses.0.keys().cloned().collect(),
    };
    let verdict = missed.verdict(topology);
    if !verdict.short.is_empty() {
        host.count(crate::metrics::WRITES_UNAVAILABLE, 1);
        return Step::Answer(
            MeiliError::unavailable(
                "miroir_write_unavailable",
                format!(
                    "Shard(s) {} have fewer than minCopies ({}) in-sync copies that took the write: {} did not. It may have been applied on the nodes that took it; retrying the same request is safe.",
                    ranges(&verdict.short),
                    topology.shard_map.min_copies(),
                    misses.describe()
                ),
            )
            .into(),
        );
    }
    if !verdict.to_mark.is_empty() && ctx.config.control_plane.is_none() {
        host.count(crate::metrics::WRITES_UNAVAILABLE, 1);
        return Step::Answer(
            MeiliError::unavailable(
                "miroir_write_unavailable",
                format!(
                    "In-sync copies missed the write ({}) and no control plane is configured to take them out of the in-sync set, so every copy must take it. It may have been applied on the nodes that took it; retrying the same request is safe.",
                    misses.describe()
                ),
            )
            .into(),
        );
    }
    host.log_warn(&format!(
        "write acknowledged below full replication; missed by {}",
        misses.describe()
    ));
    host.count(crate::metrics::WRITES_DEGRADED, 1);
    let degraded = degraded(topology, &missed);
    let pending = Unsynced {
        needs_mark: !verdict.to_mark.is_empty(),
        missed,
        degraded,
    };
    enqueued(record, replies, Some(pending))
}

/// What a write that left copies behind tells its registration.
pub(crate) struct Unsynced {
    pub(crate) missed: Missed,
    /// An in-sync copy missed it: without the control plane's mark it is not acknowledged. When
    /// only copies already out of sync missed it, a leased uid may acknowledge it (the control
    /// plane learns nothing then: see docs/architecture.md for that window).
    pub(crate) needs_mark: bool,
    /// The answer's [`DEGRADED_HEADER`].
    pub(crate) degraded: String,
}

/// What [`DEGRADED_HEADER`] says: for each (copies that took it, copies) pair, the shards, e.g.
/// `1/2 copies: shards 0-3,7`.
pub(crate) fn degraded(topology: &Topology, missed: &Missed) -> String {
    let map = topology.map();
    let every: Vec<u32>;
    let shards = match &missed.shards {
        Some(list) => list.as_slice(),
        None => {
            every = (0..topology.shards).collect();
            &every
        }
    };
    let mut by_ratio: BTreeMap<(usize, usize), Vec<u32>> = BTreeMap::new();
    for &shard in shards {
        let copies: Vec<&str> = map
            .groups
            .keys()
            .flat_map(|g| map.copies(g, shard))
            .map(|c| c.node.as_str())
            .collect();
        let took = copies
            .iter()
            .filter(|n| !missed.nodes.iter().any(|m| m == *n))
            .count();
        if took < copies.len() {
            by_ratio
                .entry((took, copies.len()))
                .or_default()
                .push(shard);
        }
    }
    by_ratio
        .iter()
        .map(|((took, of), shards)| format!("{took}/{of} copies: shards {}", ranges(shards)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `[0, 1, 2, 5]` → `0-2,5`.
pub(crate) fn ranges(shards: &[u32]) -> String {
    let mut sorted = shards.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(u32, u32)> = None;
    for s in sorted {
        run = match run {
            Some((first, last)) if last.checked_add(1) == Some(s) => Some((first, s)),
            Some((first, last)) => {
                parts.push(span(first, last));
                Some((s, s))
            }
            None => Some((s, s)),
        };
    }
    if let Some((first, last)) = run {
        parts.push(span(first, last));
    }
    parts.join(",")
}

fn span(first: u32, last: u32) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

/// The answer of a write whose registration could not record its misses.
pub(crate) fn unrecorded(missed: &Missed, why: &str) -> Answer {
    MeiliError::unavailable(
        "miroir_write_unavailable",
        format!(
            "In-sync copies on {} missed the write, and the control plane could not take them out of the in-sync set ({why}), so the write is not acknowledged. It may have been applied on the nodes that took it; retrying the same request is safe.",
            missed
                .nodes
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_lists_read_as_ranges() {
        assert_eq!(ranges(&[5, 0, 1, 2, 9, 10]), "0-2,5,9-10");
        assert_eq!(ranges(&[3]), "3");
        assert_eq!(ranges(&[]), "");
    }
}

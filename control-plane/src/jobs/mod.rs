//! Jobs: topology changes that move shard copies between nodes while clients write and search.
//!
//! A job is a record in the store that the leader drives one step at a time, saving it after
//! each, so a restarted control plane (or the replica that takes the lease over) resumes where it
//! stopped. Its phases, for every copy it moves (docs/operations.md):
//! `prepare` (new nodes get the cluster's indexes, settings and keys) → `stage` (an epoch where
//! writes reach the new copies too, acknowledged by the fleet before anything is copied) → `copy`
//! (each shard copied and verified, `shard_copy.rs`) → `cutOver` (an epoch where reads use the new
//! copies, the old ones only take writes) → `cleanUp` (an epoch without the old copies, then their
//! documents deleted) → `done`.
//!
//! A repair (`repair.rs`) puts out-of-sync copies back in the in-sync set: `prepare` → `copy` →
//! `activate` → `done` (the copies already take writes, so there is no stage, cut-over nor
//! clean-up).

pub mod anti_entropy;
pub mod plan;
pub mod reconcile;
pub mod repair;
#[cfg(test)]
mod repair_flow;
pub mod runner;
pub mod shard_copy;

use miroir_topology::Node;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobKind {
    AddNode,
    DrainNode,
    AddGroup,
    SetReplicationFactor,
    RestoreReplication,
    /// Out-of-sync copies made equal to an in-sync copy and put back in the in-sync set; started
    /// by the leader itself (`repair.rs`).
    Repair,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobState {
    Running,
    /// By an operator, or by the runner when a node it needs does not answer (then resumed by
    /// the runner once the node answers again).
    Paused,
    Succeeded,
    Failed,
    Canceled,
}

impl JobState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Canceled
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Prepare,
    Stage,
    Copy,
    /// A repair's copies back in the in-sync set (`active`).
    Activate,
    CutOver,
    CleanUp,
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MovePhase {
    Pending,
    Copying,
    Done,
}

/// One shard of one group: the nodes that gain a copy and those that lose theirs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Move {
    pub group: String,
    pub shard: u32,
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub phase: MovePhase,
    #[serde(default)]
    pub documents_copied: u64,
}

/// What the job changes besides the map, applied in the `stage` epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Edit {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_nodes: Vec<Node>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replication: BTreeMap<String, u32>,
}

/// Why a paused job waits: the runner resumes a job paused for an unreachable node by itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PauseCause {
    Operator,
    NodeUnavailable { node: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub state: JobState,
    pub phase: Phase,
    /// Why the job is paused, failed or canceled.
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_cause: Option<PauseCause>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub edit: Edit,
    pub moves: Vec<Move>,
    pub shards_done: usize,
    pub shards_total: usize,
    pub documents_copied: u64,
    /// Seconds spent in the `copy` phase, summed over the runs that drove it.
    #[serde(default)]
    pub copy_seconds: f64,
    pub documents_per_second: Option<f64>,
    pub eta_seconds: Option<f64>,
    #[serde(default)]
    pub errors: Vec<String>,
    /// Every Envoy seen in the fleet since the job started, with when it was last seen (Unix
    /// ms): each of the job's epochs waits for all of them, connected or reconnecting, until
    /// one has been gone for [`crate::fleet_reports::GONE_MS`].
    #[serde(default)]
    pub fleet: BTreeMap<String, i128>,
    /// A repair: the writes each node (repaired or copied from) had missed when the copy started
    /// (`Store::misses`); a count that moved by the activation means a write missed a copy the
    /// repair relied on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub misses: BTreeMap<String, u64>,
}

impl Job {
    pub fn new(id: String, kind: JobKind, edit: Edit, moves: Vec<Move>, now: String) -> Job {
        let total = moves.len();
        Job {
            id,
            kind,
            state: JobState::Running,
            phase: Phase::Prepare,
            reason: None,
            pause_cause: None,
            created_at: now.clone(),
            updated_at: now,
            finished_at: None,
            edit,
            moves,
            shards_done: 0,
            shards_total: total,
            documents_copied: 0,
            copy_seconds: 0.0,
            documents_per_second: None,
            eta_seconds: None,
            errors: Vec::new(),
            fleet: BTreeMap::new(),
            misses: BTreeMap::new(),
        }
    }

    /// Recomputes the progress fields from the moves and the time spent copying.
    pub fn refresh_progress(&mut self) {
        self.shards_done = self
            .moves
            .iter()
            .filter(|m| m.phase == MovePhase::Done)
            .count();
        self.documents_copied = self.moves.iter().map(|m| m.documents_copied).sum();
        self.documents_per_second =
            (self.copy_seconds > 0.0).then(|| self.documents_copied as f64 / self.copy_seconds);
        self.eta_seconds = if self.phase > Phase::Copy {
            Some(0.0)
        } else if self.shards_done > 0 && self.copy_seconds > 0.0 {
            let per_shard = self.copy_seconds / self.shards_done as f64;
            Some(per_shard * (self.shards_total - self.shards_done) as f64)
        } else {
            None
        };
    }
}

//! What a rollout tells its caller and the fleet view: its steps, its outcome, its status.

use std::fmt;

use serde::Serialize;

/// The three make-before-break steps of a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RolloutStep {
    /// Clusters old ∪ new (and the listener), so the new filter config only names known clusters.
    Clusters,
    /// The filter configuration (ECDS) with the new topology.
    Filter,
    /// Clusters no longer used are removed.
    Prune,
}

impl RolloutStep {
    pub const ALL: [RolloutStep; 3] = [
        RolloutStep::Clusters,
        RolloutStep::Filter,
        RolloutStep::Prune,
    ];

    /// 1-based, as in the docs.
    pub fn number(self) -> u8 {
        match self {
            RolloutStep::Clusters => 1,
            RolloutStep::Filter => 2,
            RolloutStep::Prune => 3,
        }
    }
}

impl fmt::Display for RolloutStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            RolloutStep::Clusters => "clusters (old and new)",
            RolloutStep::Filter => "filter configuration",
            RolloutStep::Prune => "removal of unused clusters",
        };
        write!(f, "step {} ({name})", self.number())
    }
}

/// A completed rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutReport {
    pub epoch: u64,
    /// The ECDS version every connected Envoy acknowledged (`epoch-<n>-<hash16>`).
    pub ecds_version: String,
    /// The final cluster (CDS) version.
    pub cds_version: String,
    /// The final listener (LDS) version.
    pub lds_version: String,
    /// Node ids of the Envoys that acknowledged the last step (empty: none was connected).
    pub acked_by: Vec<String>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum RolloutError {
    /// An Envoy rejected a step. The step's resources were withdrawn from the cache, so every
    /// Envoy returns to (or stays on) what it ran before the step.
    #[serde(rename_all = "camelCase")]
    Nack {
        step: RolloutStep,
        /// `node.id` of the rejecting Envoy.
        envoy: String,
        type_url: String,
        version: String,
        /// Envoy's `error_detail.message`.
        message: String,
    },
    /// Some Envoys did not acknowledge a step in time. The step's resources stay in the cache
    /// (they are a superset of what was there), so late Envoys still converge.
    #[serde(rename_all = "camelCase")]
    Timeout {
        step: RolloutStep,
        /// Node ids still not acknowledging.
        waiting_for: Vec<String>,
    },
    /// The configuration cannot be turned into Envoy resources.
    #[serde(rename_all = "camelCase")]
    Invalid { message: String },
}

impl fmt::Display for RolloutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RolloutError::Nack {
                step,
                envoy,
                type_url,
                version,
                message,
            } => write!(
                f,
                "{step}: Envoy {envoy} rejected {type_url} version {version}: {message}"
            ),
            RolloutError::Timeout { step, waiting_for } => write!(
                f,
                "{step}: not acknowledged in time by {}",
                waiting_for.join(", ")
            ),
            RolloutError::Invalid { message } => write!(f, "invalid configuration: {message}"),
        }
    }
}

impl std::error::Error for RolloutError {}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum RolloutStatus {
    /// No rollout running; `epoch` is the one in the cache (what new Envoys get).
    #[default]
    Idle,
    #[serde(rename_all = "camelCase")]
    InProgress {
        epoch: u64,
        step: RolloutStep,
        /// 1-based step number, for display.
        step_number: u8,
        /// Node ids whose ACK the step is waiting for.
        waiting_for: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    StoppedByNack {
        epoch: u64,
        step: RolloutStep,
        envoy: String,
        type_url: String,
        version: String,
        message: String,
    },
    #[serde(rename_all = "camelCase")]
    TimedOut {
        epoch: u64,
        step: RolloutStep,
        waiting_for: Vec<String>,
    },
}

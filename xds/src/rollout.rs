//! A rollout as a pure state machine over the cache: make before break.
//!
//! 1. clusters old ∪ new (and a listener whose timeouts suit both configurations);
//! 2. the filter configuration (ECDS) with the new topology, which only names clusters every
//!    Envoy acknowledged in step 1 (dispatching to an unknown cluster fails the call);
//! 3. clusters no longer used are removed, and the listener gets its final timeouts.
//!
//! Each step is gated on an ACK of the step's version, for each type it changes, from every
//! connected Envoy subscribed to that type. An Envoy that disconnects leaves the fleet and is not
//! waited for; one that connects mid-rollout gets the current step and is waited for. A NACK of
//! the step's version stops the rollout and asks for the cache to go back to what it was before
//! the step. With no Envoy connected every gate is open at once.

use crate::cache::{Snapshot, TypeResources};
use crate::resources::Built;
use crate::{
    FleetView, RolloutError, RolloutStep, CLUSTER_TYPE_URL, ECDS_TYPE_URL, LISTENER_TYPE_URL,
};

#[derive(Clone, Debug, PartialEq)]
pub struct PlannedStep {
    pub step: RolloutStep,
    /// The whole snapshot the cache holds during this step.
    pub snapshot: Snapshot,
    /// The types whose version this step waits to see acknowledged.
    pub gate: Vec<&'static str>,
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Put `snapshot` in the cache, then report [`Rollout::applied`] and the fleet.
    Apply {
        step: RolloutStep,
        snapshot: Snapshot,
    },
    /// Nothing to do until the fleet changes (or the step times out).
    Wait {
        step: RolloutStep,
        waiting_for: Vec<String>,
    },
    /// Every step is acknowledged.
    Done { acked_by: Vec<String> },
    /// Stop. If `restore` is set, put it back in the cache first.
    Fail {
        restore: Option<Snapshot>,
        error: RolloutError,
    },
}

#[derive(Clone, Debug)]
pub struct Rollout {
    baseline: Snapshot,
    steps: Vec<PlannedStep>,
    index: usize,
    /// The fleet's event counter when the current step was applied: older NACKs are history.
    applied_seq: Option<u64>,
    finished: bool,
}

impl Rollout {
    /// Plans the steps from what the cache holds now (`current`, `None` before the first
    /// rollout) to `target`. `transitional_listeners` is the listener of step 1, sized for both
    /// the old and new configuration.
    pub fn plan(
        current: Option<&Snapshot>,
        target: &Built,
        transitional_listeners: &TypeResources,
    ) -> Self {
        let baseline = current.cloned().unwrap_or_default();
        let clusters_union = match baseline.get(CLUSTER_TYPE_URL) {
            Some(old) => old.union(&target.clusters),
            None => target.clusters.clone(),
        };
        // The listener's name never changes, so "old ∪ new" is the transitional listener alone.
        let step1 = baseline
            .clone()
            .with(CLUSTER_TYPE_URL, clusters_union)
            .with(LISTENER_TYPE_URL, transitional_listeners.clone());
        let step2 = step1.clone().with(ECDS_TYPE_URL, target.filter.clone());
        let step3 = step2
            .clone()
            .with(CLUSTER_TYPE_URL, target.clusters.clone())
            .with(LISTENER_TYPE_URL, target.listeners.clone());
        let steps = vec![
            PlannedStep {
                step: RolloutStep::Clusters,
                snapshot: step1,
                gate: vec![CLUSTER_TYPE_URL, LISTENER_TYPE_URL],
            },
            PlannedStep {
                step: RolloutStep::Filter,
                snapshot: step2,
                gate: vec![ECDS_TYPE_URL],
            },
            PlannedStep {
                step: RolloutStep::Prune,
                snapshot: step3,
                gate: vec![CLUSTER_TYPE_URL, LISTENER_TYPE_URL],
            },
        ];
        Rollout {
            baseline,
            steps,
            index: 0,
            applied_seq: None,
            finished: false,
        }
    }

    pub fn steps(&self) -> &[PlannedStep] {
        &self.steps
    }

    /// The step under way.
    pub fn step(&self) -> RolloutStep {
        self.current().map_or(RolloutStep::Prune, |s| s.step)
    }

    /// The snapshot the cache ends with.
    pub fn final_snapshot(&self) -> Option<&Snapshot> {
        self.steps.last().map(|s| &s.snapshot)
    }

    fn current(&self) -> Option<&PlannedStep> {
        self.steps.get(self.index)
    }

    /// The first action: apply step 1.
    pub fn start(&mut self) -> Action {
        self.apply_current()
    }

    fn apply_current(&mut self) -> Action {
        self.applied_seq = None;
        match self.current() {
            Some(step) => Action::Apply {
                step: step.step,
                snapshot: step.snapshot.clone(),
            },
            None => {
                self.finished = true;
                Action::Done {
                    acked_by: Vec::new(),
                }
            }
        }
    }

    /// The driver put the current step's snapshot in the cache when the fleet's event counter
    /// was `fleet_seq`.
    pub fn applied(&mut self, fleet_seq: u64) {
        self.applied_seq = Some(fleet_seq);
    }

    /// Re-evaluates the current step's gate against the fleet.
    pub fn on_fleet(&mut self, fleet: &FleetView) -> Action {
        if self.finished {
            return Action::Done {
                acked_by: acked_by(fleet),
            };
        }
        let Some(step) = self.current() else {
            self.finished = true;
            return Action::Done {
                acked_by: acked_by(fleet),
            };
        };
        let Some(applied_seq) = self.applied_seq else {
            // Not in the cache yet: nobody can have acknowledged it.
            return Action::Apply {
                step: step.step,
                snapshot: step.snapshot.clone(),
            };
        };
        let mut waiting_for = Vec::new();
        for envoy in &fleet.envoys {
            for type_url in &step.gate {
                let Some(status) = envoy.types.get(*type_url) else {
                    continue;
                };
                let Some(target) = step.snapshot.version(type_url) else {
                    continue;
                };
                if status.acked_version.as_deref() == Some(target) {
                    continue;
                }
                if let Some(nack) = &status.last_nack {
                    if nack.version == target && nack.seq > applied_seq {
                        let restore = self.before_current();
                        let error = RolloutError::Nack {
                            step: step.step,
                            envoy: envoy.node_id.clone(),
                            type_url: (*type_url).to_string(),
                            version: nack.version.clone(),
                            message: nack.message.clone(),
                        };
                        self.finished = true;
                        return Action::Fail {
                            restore: Some(restore),
                            error,
                        };
                    }
                }
                if !waiting_for.contains(&envoy.node_id) {
                    waiting_for.push(envoy.node_id.clone());
                }
            }
        }
        if !waiting_for.is_empty() {
            return Action::Wait {
                step: step.step,
                waiting_for,
            };
        }
        self.index += 1;
        if self.index >= self.steps.len() {
            self.finished = true;
            return Action::Done {
                acked_by: acked_by(fleet),
            };
        }
        self.apply_current()
    }

    /// The step's time is up. The cache keeps the step: it only adds to what was there, so
    /// Envoys still catching up converge on their own.
    pub fn on_timeout(&mut self, fleet: &FleetView) -> Action {
        let step = self.step();
        let waiting_for = match self.on_fleet(fleet) {
            Action::Wait { waiting_for, .. } => waiting_for,
            other => return other,
        };
        self.finished = true;
        Action::Fail {
            restore: None,
            error: RolloutError::Timeout { step, waiting_for },
        }
    }

    fn before_current(&self) -> Snapshot {
        match self.index.checked_sub(1).and_then(|i| self.steps.get(i)) {
            Some(previous) => previous.snapshot.clone(),
            None => self.baseline.clone(),
        }
    }
}

fn acked_by(fleet: &FleetView) -> Vec<String> {
    let mut ids: Vec<String> = fleet.envoys.iter().map(|e| e.node_id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests;

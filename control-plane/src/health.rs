//! Active health checks of the nodes (leader only): a node failing `unhealthyThreshold`
//! consecutive checks is marked failed, one passing `healthyThreshold` consecutive checks is
//! active again; each change is a new epoch rolled out to the fleet.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use miroir_topology::NodeState;

use crate::app::{pause, App};
use crate::config::HealthConfig;
use crate::error::ApiError;
use crate::metrics::labels;
use crate::nodes;

/// Consecutive results per node: the pure decision part, tested without a network.
#[derive(Clone, Debug)]
pub struct HealthTracker {
    unhealthy_threshold: u32,
    healthy_threshold: u32,
    /// Node → (consecutive failures, consecutive successes).
    streaks: HashMap<String, (u32, u32)>,
}

impl HealthTracker {
    pub fn new(config: &HealthConfig) -> Self {
        HealthTracker {
            unhealthy_threshold: config.unhealthy_threshold.max(1),
            healthy_threshold: config.healthy_threshold.max(1),
            streaks: HashMap::new(),
        }
    }

    /// Records one check of `node` (currently `state`); returns the state it must move to.
    pub fn observe(&mut self, node: &str, state: NodeState, ok: bool) -> Option<NodeState> {
        let (failures, successes) = self.streaks.entry(node.to_string()).or_default();
        if ok {
            *failures = 0;
            *successes = successes.saturating_add(1);
            (state == NodeState::Failed && *successes >= self.healthy_threshold)
                .then_some(NodeState::Active)
        } else {
            *successes = 0;
            *failures = failures.saturating_add(1);
            (state == NodeState::Active && *failures >= self.unhealthy_threshold)
                .then_some(NodeState::Failed)
        }
    }

    /// Drops nodes no longer in the topology.
    pub fn retain(&mut self, present: impl Fn(&str) -> bool) {
        self.streaks.retain(|node, _| present(node));
    }
}

/// Checks every node once and applies the resulting state changes as one new epoch.
pub async fn check_round(app: &App, tracker: &mut HealthTracker) -> Result<usize, ApiError> {
    let Some(topology) = app.store.load_topology().await.map_err(ApiError::store)? else {
        return Ok(0);
    };
    let timeout = Duration::from_millis(app.config.health.timeout_ms);
    let mut checks = tokio::task::JoinSet::new();
    for node in &topology.nodes {
        let (http, id, address, state) = (
            app.http.clone(),
            node.id.clone(),
            node.address.clone(),
            node.state,
        );
        checks.spawn(async move { (id, state, nodes::healthy(&http, &address, timeout).await) });
    }
    let mut changes: Vec<(String, NodeState)> = Vec::new();
    while let Some(joined) = checks.join_next().await {
        let Ok((id, state, ok)) = joined else {
            continue;
        };
        app.metrics
            .health_checks
            .get_or_create(&labels(&[
                ("node", &id),
                ("result", if ok { "ok" } else { "fail" }),
            ]))
            .inc();
        if let Some(next) = tracker.observe(&id, state, ok) {
            changes.push((id, next));
        }
    }
    tracker.retain(|id| topology.node(id).is_some());
    if changes.is_empty() {
        return Ok(0);
    }
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    tracing::warn!(?changes, "node health changed");
    let count = changes.len();
    let change = app
        .change_topology(|current| {
            let mut next = current.clone();
            for node in &mut next.nodes {
                if let Some((_, state)) = changes.iter().find(|(id, _)| *id == node.id) {
                    node.state = *state;
                }
            }
            for (id, state) in &changes {
                if *state == NodeState::Active {
                    next = crate::in_sync::back_from_failure(&next, id);
                }
            }
            Ok(next)
        })
        .await?;
    if let Err(e) = change.rollout {
        tracing::warn!(epoch = change.topology.epoch, error = %e, "health change not fully rolled out");
    }
    Ok(count)
}

/// The leader's health-check loop.
pub async fn run(app: Arc<App>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tracker = HealthTracker::new(&app.config.health);
    let interval = Duration::from_millis(app.config.health.interval_ms);
    loop {
        if app.is_leader() {
            if let Err(e) = check_round(&app, &mut tracker).await {
                tracing::warn!(error = %e, "health check round failed");
            }
        } else {
            // A replica that becomes leader starts counting afresh.
            tracker.retain(|_| false);
        }
        if !pause(&mut shutdown, interval).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> HealthTracker {
        HealthTracker::new(&HealthConfig {
            interval_ms: 1,
            timeout_ms: 1,
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        })
    }

    #[test]
    fn fails_after_n_consecutive_failures() {
        let mut t = tracker();
        let active = NodeState::Active;
        assert_eq!(t.observe("n0", active, false), None);
        assert_eq!(t.observe("n0", active, false), None);
        assert_eq!(t.observe("n0", active, true), None, "a success resets");
        assert_eq!(t.observe("n0", active, false), None);
        assert_eq!(t.observe("n0", active, false), None);
        assert_eq!(t.observe("n0", active, false), Some(NodeState::Failed));
        // Already failed: no further change while it keeps failing.
        assert_eq!(t.observe("n0", NodeState::Failed, false), None);
        assert_eq!(
            t.observe("n1", active, false),
            None,
            "nodes are counted apart"
        );
    }

    #[test]
    fn recovers_after_m_consecutive_successes() {
        let mut t = tracker();
        let failed = NodeState::Failed;
        assert_eq!(t.observe("n0", failed, true), None);
        assert_eq!(t.observe("n0", failed, false), None, "a failure resets");
        assert_eq!(t.observe("n0", failed, true), None);
        assert_eq!(t.observe("n0", failed, true), Some(NodeState::Active));
        assert_eq!(t.observe("n0", NodeState::Active, true), None);
    }
}

//! Active health checks of the nodes (leader only): a node failing `unhealthyThreshold`
//! consecutive checks is marked failed, one passing `healthyThreshold` consecutive checks is
//! active again; each change is a new epoch rolled out to the fleet.
//!
//! Each check of an active node also tells whether it still has the database it had at the last
//! check ([`same_database`]): a node restarted from another disk faster than the checks count it
//! failed is treated as one back from a failure (its copies out of the in-sync set, repaired).

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
    /// Node → its newest task at the last check (`None`: it had none).
    databases: HashMap<String, Option<TaskMark>>,
    /// Nodes found on another database whose copies are not out of the in-sync set yet (kept
    /// until a topology change records it: the database check does not fire twice).
    replaced: std::collections::BTreeSet<String>,
}

/// A node task as a node's database keeps it: uids only grow on one database, and a task keeps
/// the time it was enqueued at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskMark {
    pub uid: u64,
    pub enqueued_at: String,
}

impl TaskMark {
    fn of(task: &serde_json::Value) -> Option<TaskMark> {
        Some(TaskMark {
            uid: task.get("uid")?.as_u64()?,
            enqueued_at: task.get("enqueuedAt")?.as_str()?.to_string(),
        })
    }
}

/// Whether the database a node answers from now is the one `seen` (its newest task at the last
/// check) came from, given its newest task now and its newest task at or before `seen`'s uid.
/// A task an operator deleted is not a new database (a deletion is itself a newer task).
pub fn same_database(
    seen: Option<&TaskMark>,
    latest: Option<&TaskMark>,
    at_seen: Option<&TaskMark>,
) -> bool {
    let Some(seen) = seen else {
        return true;
    };
    let Some(latest) = latest else {
        return false;
    };
    if latest.uid < seen.uid {
        return false;
    }
    let at_seen = if latest.uid == seen.uid {
        Some(latest)
    } else {
        at_seen
    };
    match at_seen {
        Some(task) if task.uid == seen.uid => task.enqueued_at == seen.enqueued_at,
        _ => true,
    }
}

/// The node's newest task, and its newest task at or before `seen`'s uid when it is newer;
/// `None` when the node could not be read.
async fn task_marks(
    http: &reqwest::Client,
    address: &str,
    auth: Option<&str>,
    timeout: Duration,
    seen: Option<&TaskMark>,
) -> Option<(Option<TaskMark>, Option<TaskMark>)> {
    let newest = |path: String| async move {
        let page = nodes::send(http.get(nodes::url(address, &path)), auth, timeout)
            .await
            .ok()?;
        Some(page["results"].get(0).and_then(TaskMark::of))
    };
    let latest = newest("/tasks?limit=1".into()).await?;
    let at_seen = match (seen, &latest) {
        (Some(seen), Some(latest)) if latest.uid > seen.uid => {
            newest(format!("/tasks?limit=1&from={}", seen.uid)).await?
        }
        _ => None,
    };
    Some((latest, at_seen))
}

impl HealthTracker {
    pub fn new(config: &HealthConfig) -> Self {
        HealthTracker {
            unhealthy_threshold: config.unhealthy_threshold.max(1),
            healthy_threshold: config.healthy_threshold.max(1),
            streaks: HashMap::new(),
            databases: HashMap::new(),
            replaced: Default::default(),
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

    /// Records the node's newest task; whether its database is still the one of the last
    /// record ([`same_database`]).
    pub fn observe_database(
        &mut self,
        node: &str,
        latest: Option<TaskMark>,
        at_seen: Option<TaskMark>,
    ) -> bool {
        let seen = self.databases.get(node).and_then(Option::as_ref);
        let same = same_database(seen, latest.as_ref(), at_seen.as_ref());
        self.databases.insert(node.to_string(), latest);
        same
    }

    /// The node's newest task at the last check, if recorded.
    pub fn seen(&self, node: &str) -> Option<TaskMark> {
        self.databases.get(node).cloned().flatten()
    }

    /// Drops nodes no longer in the topology.
    pub fn retain(&mut self, present: impl Fn(&str) -> bool) {
        self.streaks.retain(|node, _| present(node));
        self.databases.retain(|node, _| present(node));
        self.replaced.retain(|node| present(node));
    }
}

/// Checks every node once and applies the resulting state changes as one new epoch.
pub async fn check_round(app: &App, tracker: &mut HealthTracker) -> Result<usize, ApiError> {
    let Some(topology) = app.store.load_topology().await.map_err(ApiError::store)? else {
        return Ok(0);
    };
    let timeout = Duration::from_millis(app.config.health.timeout_ms);
    let mut checks = tokio::task::JoinSet::new();
    let auth = app.node_authorization(None);
    for node in &topology.nodes {
        let (http, id, address, state, auth) = (
            app.http.clone(),
            node.id.clone(),
            node.address.clone(),
            node.state,
            auth.clone(),
        );
        let seen = tracker.seen(&id);
        checks.spawn(async move {
            let ok = nodes::healthy(&http, &address, timeout).await;
            let marks = if ok && state == NodeState::Active {
                task_marks(&http, &address, auth.as_deref(), timeout, seen.as_ref()).await
            } else {
                None
            };
            (id, state, ok, marks)
        });
    }
    let mut changes: Vec<(String, NodeState)> = Vec::new();
    while let Some(joined) = checks.join_next().await {
        let Ok((id, state, ok, marks)) = joined else {
            continue;
        };
        if let Some((latest, at_seen)) = marks {
            if !tracker.observe_database(&id, latest, at_seen) {
                app.metrics.disks_replaced.inc();
                tracker.replaced.insert(id.clone());
            }
        }
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
    let replaced: Vec<String> = tracker.replaced.iter().cloned().collect();
    if changes.is_empty() && replaced.is_empty() {
        return Ok(0);
    }
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    if !changes.is_empty() {
        tracing::warn!(?changes, "node health changed");
    }
    if !replaced.is_empty() {
        tracing::warn!(
            nodes = ?replaced,
            "nodes answer from another database than at the last check (task history changed)"
        );
    }
    let count = changes.len() + replaced.len();
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
            for id in &replaced {
                next = crate::in_sync::back_from_failure(&next, id);
            }
            Ok(next)
        })
        .await?;
    // Stored: the next round need not take those copies out again.
    tracker.replaced.clear();
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

    fn mark(uid: u64, at: &str) -> TaskMark {
        TaskMark {
            uid,
            enqueued_at: at.into(),
        }
    }

    #[test]
    fn a_database_is_known_by_its_task_history() {
        let seen = mark(7, "t7");
        let same = |latest: Option<TaskMark>, at_seen: Option<TaskMark>| {
            same_database(Some(&seen), latest.as_ref(), at_seen.as_ref())
        };
        assert!(same(Some(mark(7, "t7")), None), "nothing new");
        assert!(
            same(Some(mark(9, "t9")), Some(mark(7, "t7"))),
            "newer tasks"
        );
        assert!(
            same(Some(mark(9, "t9")), Some(mark(5, "t5"))),
            "the task seen was deleted since"
        );
        assert!(!same(Some(mark(3, "t3")), None), "an older database");
        assert!(!same(None, None), "an empty one");
        assert!(
            !same(Some(mark(7, "other")), None),
            "another with as many tasks"
        );
        assert!(
            !same(Some(mark(9, "t9")), Some(mark(7, "other"))),
            "another with more"
        );
        assert!(same_database(None, None, None), "nothing seen yet");
        let mut t = tracker();
        assert!(t.observe_database("n0", Some(mark(7, "t7")), None));
        assert!(t.observe_database("n0", Some(mark(8, "t8")), Some(mark(7, "t7"))));
        assert!(!t.observe_database("n0", Some(mark(2, "t2")), None));
        assert!(
            t.observe_database("n0", Some(mark(3, "t3")), Some(mark(2, "t2"))),
            "the new database is the one seen from then on"
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

//! The whole fleet's epochs, across control-plane replicas. Each replica's xDS server sees only
//! the Envoys connected to it, so every replica writes what its Envoys acknowledged to the store
//! every [`PERIOD`], and a job's next step waits until every Envoy of every replica that reported
//! recently took the epoch (a rollout by the leader only waits for the leader's own Envoys).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::app::{pause, App};

const PERIOD: Duration = Duration::from_millis(500);
/// A report older than this is a replica that stopped (its Envoys reconnect to another one).
const STALE_MS: i128 = 3_000;

#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Envoy node id → the epoch it acknowledged (none yet: `None`).
    pub envoys: Vec<(String, Option<u64>)>,
    pub reported_at_ms: i128,
}

fn now_ms() -> i128 {
    crate::time::now_nanos() / 1_000_000
}

fn own(app: &App) -> Report {
    Report {
        envoys: app
            .publisher
            .fleet()
            .envoys
            .iter()
            .map(|e| (e.node_id.clone(), e.epoch))
            .collect(),
        reported_at_ms: now_ms(),
    }
}

pub async fn run(
    app: std::sync::Arc<App>,
    replica: String,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let text = serde_json::to_string(&own(&app)).unwrap_or_default();
        if let Err(e) = app.store.put_fleet_report(&replica, &text).await {
            tracing::debug!(error = %e, "fleet report not stored");
        }
        if !pause(&mut stopped, PERIOD).await {
            return;
        }
    }
}

/// An Envoy missing from every view for this long has left the fleet (scaled down, or cut off:
/// it then serves its last epoch, docs/operations.md).
pub const GONE_MS: i128 = 60_000;

/// Every Envoy of the fleet with the epoch it acknowledged: this replica's as its xDS server sees
/// them now, the other replicas' from their recent reports.
pub async fn views(app: &App) -> Result<Vec<(String, Option<u64>)>, String> {
    let replica = app.config.replica_name();
    let reports = app.store.fleet_reports().await.map_err(|e| e.to_string())?;
    let now = now_ms();
    let mut envoys = own(app).envoys;
    for (name, text) in reports {
        if name == replica {
            continue;
        }
        if let Ok(report) = serde_json::from_str::<Report>(&text) {
            if now - report.reported_at_ms <= STALE_MS {
                envoys.extend(report.envoys);
            }
        }
    }
    Ok(envoys)
}

/// The Envoys of `known` (updated with `seen` at `now`, those unseen for [`GONE_MS`] dropped)
/// that have not acknowledged `epoch`.
fn late(
    known: &mut BTreeMap<String, i128>,
    seen: &[(String, Option<u64>)],
    epoch: u64,
    now: i128,
) -> Vec<String> {
    for (envoy, _) in seen {
        known.insert(envoy.clone(), now);
    }
    known.retain(|_, last| now - *last <= GONE_MS);
    known
        .keys()
        .filter(|e| {
            !seen
                .iter()
                .any(|(id, acked)| id == *e && acked.is_some_and(|a| a >= epoch))
        })
        .cloned()
        .collect()
}

/// Waits, at most `timeout`, until every Envoy in `known` (Envoy → last seen, Unix ms; updated
/// here with every Envoy seen) and every Envoy seen now acknowledged `epoch`. An Envoy unseen for
/// [`GONE_MS`] is dropped from `known`.
pub async fn wait_for(
    app: &App,
    known: &mut BTreeMap<String, i128>,
    epoch: u64,
    timeout: Duration,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    loop {
        let seen = views(app).await?;
        let late = late(known, &seen, epoch, now_ms());
        if late.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            let names: Vec<&str> = late.iter().map(|s| s.as_str()).collect();
            return Err(format!(
                "{} Envoy(s) have not acknowledged epoch {epoch} (a reconnecting Envoy is waited for up to {} s): {}",
                late.len(),
                GONE_MS / 1000,
                names.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envoy_that_is_reconnecting_is_waited_for_until_it_is_gone() {
        let mut known: BTreeMap<String, i128> = [("e1".to_string(), 0)].into();
        let acked = |e: &str, epoch: u64| (e.to_string(), Some(epoch));
        // e1 connected and behind, e2 new and on the epoch.
        assert_eq!(
            late(&mut known, &[acked("e1", 2), acked("e2", 3)], 3, 100),
            ["e1"]
        );
        assert_eq!(
            known.len(),
            2,
            "a newly seen Envoy is waited for from now on"
        );
        // e1 reconnecting: seen by no replica, still waited for.
        assert_eq!(late(&mut known, &[acked("e2", 3)], 3, 200), ["e1"]);
        // Back and on the epoch.
        assert!(late(&mut known, &[acked("e1", 3), acked("e2", 3)], 3, 300).is_empty());
        // Gone for longer than GONE_MS: no longer waited for.
        assert!(late(&mut known, &[acked("e2", 4)], 4, 300 + GONE_MS + 1).is_empty());
        assert!(!known.contains_key("e1"));
        // An Envoy that has acknowledged nothing yet is behind (and e2, not seen this time).
        assert_eq!(
            late(
                &mut known,
                &[("e3".to_string(), None)],
                1,
                300 + GONE_MS + 2
            ),
            ["e2", "e3"]
        );
    }
}

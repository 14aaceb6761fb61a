//! The whole fleet's epochs, across control-plane replicas. Each replica's xDS server sees only
//! the Envoys connected to it, so every replica writes what its Envoys acknowledged to the store
//! every [`PERIOD`], and a job's next step waits until every Envoy of every replica that reported
//! recently took the epoch (a rollout by the leader only waits for the leader's own Envoys).

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

/// The Envoys (as `replica/envoy`) that have not acknowledged `epoch`: this replica's as its xDS
/// server sees them now, the others' from their recent reports.
pub async fn behind(app: &App, replica: &str, epoch: u64) -> Result<Vec<String>, String> {
    let reports = app.store.fleet_reports().await.map_err(|e| e.to_string())?;
    let now = now_ms();
    let mut late = Vec::new();
    let mut views: Vec<(String, Report)> = vec![(replica.to_string(), own(app))];
    for (name, text) in reports {
        if name == replica {
            continue;
        }
        if let Ok(report) = serde_json::from_str::<Report>(&text) {
            if now - report.reported_at_ms <= STALE_MS {
                views.push((name, report));
            }
        }
    }
    for (name, report) in views {
        for (envoy, acked) in report.envoys {
            if acked.is_none_or(|e| e < epoch) {
                late.push(format!("{name}/{envoy}"));
            }
        }
    }
    Ok(late)
}

/// Waits until every Envoy of the fleet acknowledged `epoch`, at most `timeout`.
pub async fn wait_for(
    app: &App,
    replica: &str,
    epoch: u64,
    timeout: Duration,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    loop {
        let late = behind(app, replica, epoch).await?;
        if late.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(format!(
                "{} Envoy(s) have not acknowledged epoch {epoch}: {}",
                late.len(),
                late.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

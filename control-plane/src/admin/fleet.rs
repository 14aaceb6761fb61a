//! Fleet routes: liveness and readiness, the Envoys and their rollout, the filter binary, metrics.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::Instrument;

use super::authorize;
use crate::app::{rollout_failure, App, WASM_SETTING};
use crate::config::WasmSpec;
use crate::error::ApiError;
use crate::publisher::EnvoyAck;

fn not_ready(reason: String) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "miroir_not_ready",
        "system",
        reason,
    )
}

/// `GET /_miroir/live` (no key: for liveness probes): the process runs and its HTTP server
/// answers. Nothing else is checked: a store or fleet problem must not get the process restarted.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "live"}))
}

/// `GET /_miroir/ready` (no key: for readiness probes): this replica can serve. The store
/// answers, a topology is stored, and a leader is known (this replica, or the lease's holder).
/// Envoys that lag are reported (`fleet`), never a reason for a 503: every Envoy lags during a
/// rollout, and the control plane taken out of its Service then would stall it.
pub async fn ready(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    async move {
        app.store
            .ping()
            .await
            .map_err(|e| not_ready(format!("The store is unreachable: {e}")))?;
        let topology = app
            .store
            .load_topology()
            .await
            .map_err(|e| not_ready(format!("The store is unreachable: {e}")))?
            .ok_or_else(|| not_ready("No topology is stored yet.".into()))?;
        let leader = app.is_leader();
        let leader_id = if leader {
            Some(app.config.replica_name())
        } else {
            app.store
                .leader_owner()
                .await
                .map_err(|e| not_ready(format!("The store is unreachable: {e}")))?
        };
        let Some(leader_id) = leader_id else {
            return Err(not_ready(
                "No leader is known yet: no replica holds the leader lease.".into(),
            ));
        };
        let envoys = app.publisher.fleet().envoys;
        Ok(Json(json!({
            "status": "ready",
            "epoch": topology.epoch,
            "envoys": envoys.len(),
            "leader": leader,
            "leaderId": leader_id,
            "fleet": fleet_lag(&envoys, topology.epoch),
        })))
    }
    .instrument(tracing::info_span!("ready"))
    .await
}

/// How far this replica's Envoys are from `epoch`: how many lag and which, and how many
/// acknowledged each epoch (`none`: nothing acknowledged yet).
fn fleet_lag(envoys: &[EnvoyAck], epoch: u64) -> Value {
    let behind: Vec<&str> = envoys
        .iter()
        .filter(|e| e.epoch != Some(epoch))
        .map(|e| e.node_id.as_str())
        .collect();
    let mut epochs = std::collections::BTreeMap::<String, usize>::new();
    for envoy in envoys {
        let key = envoy
            .epoch
            .map_or_else(|| "none".to_string(), |e| e.to_string());
        *epochs.entry(key).or_default() += 1;
    }
    json!({
        "behind": behind.len(),
        "behindEnvoys": behind,
        "epochs": epochs,
        "converged": behind.is_empty(),
    })
}

/// `GET /_miroir/fleet`: the xDS server's view of every Envoy, and the rollout status.
pub async fn fleet(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    async move {
        authorize(&app, &headers)?;
        let epoch = app
            .store
            .load_topology()
            .await
            .map_err(ApiError::store)?
            .map(|t| t.epoch);
        let fleet = app.publisher.fleet();
        Ok(Json(json!({
            "epoch": epoch,
            "servedEpoch": app.publisher.current().map(|c| c.topology.epoch),
            "leader": app.is_leader(),
            "fleet": fleet.view,
            "rollout": app.publisher.rollout_status(),
        })))
    }
    .instrument(tracing::info_span!("fleet"))
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterRequest {
    wasm: WasmSpec,
}

/// `PUT /_miroir/filter` `{"wasm": "<path>"}` or `{"wasm": {"uri", "sha256"}}`: upgrades the
/// filter on every Envoy. Kept in the store once every Envoy took it, so a restart keeps it.
pub async fn put_filter(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    async move {
        authorize(&app, &headers)?;
        let request: FilterRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid("bad_request", format!("Invalid JSON body: {e}")))?;
        let _guard = app.topology_lock.lock().await;
        let report = app
            .set_wasm(request.wasm.clone())
            .await
            .map_err(|e| rollout_failure(&e, "The filter binary"))?;
        let text =
            serde_json::to_string(&request.wasm).map_err(|e| ApiError::internal(e.to_string()))?;
        app.store
            .put_setting(WASM_SETTING, &text)
            .await
            .map_err(ApiError::store)?;
        Ok(Json(json!({"wasm": request.wasm, "rollout": report})))
    }
    .instrument(tracing::info_span!("put_filter"))
    .await
}

/// `GET /_miroir/indexes`: the index registry.
pub async fn indexes(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    async move {
        authorize(&app, &headers)?;
        let indexes = app.store.list_indexes().await.map_err(ApiError::store)?;
        // A node with a copy out of sync may lack any acknowledged change, of any index, until
        // it is repaired (docs/architecture.md, "Replication").
        let behind: Vec<String> = match app.store.load_topology().await {
            Ok(Some(t)) => t
                .shard_map
                .out_of_sync_nodes()
                .into_iter()
                .map(str::to_string)
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(ApiError::store(e)),
        };
        let results: Vec<Value> = indexes
            .iter()
            .map(|index| {
                let mut entry = serde_json::to_value(index).unwrap_or_else(|_| json!({}));
                entry["nodesBehind"] = json!(behind);
                entry
            })
            .collect();
        Ok(Json(json!({"results": results, "total": results.len()})))
    }
    .instrument(tracing::info_span!("indexes"))
    .await
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    async move {
        authorize(&app, &headers)?;
        app.metrics.leader.set(i64::from(app.is_leader()));
        app.metrics
            .envoys
            .set(app.publisher.fleet().envoys.len() as i64);
        match app.store.list_indexes().await {
            Ok(indexes) => app.metrics.observe_indexes(&indexes),
            Err(e) => tracing::warn!(error = %e, "index registry not read for the metrics"),
        }
        Ok((
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            app.metrics.render(),
        )
            .into_response())
    }
    .instrument(tracing::info_span!("metrics"))
    .await
}

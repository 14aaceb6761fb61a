//! Topology routes: read it, its shard placement, and change its nodes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use miroir_topology::{Node, NodeState, Topology};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::Instrument;

use super::authorize;
use crate::app::{no_topology, rollout_failure, App, Change};
use crate::error::ApiError;

async fn stored(app: &App) -> Result<Topology, ApiError> {
    app.store
        .load_topology()
        .await
        .map_err(ApiError::store)?
        .ok_or_else(no_topology)
}

async fn topology_view(app: &App, topology: &Topology) -> Result<Value, ApiError> {
    let draining = app.store.draining().await.map_err(ApiError::store)?;
    let nodes: Vec<Value> = topology
        .nodes
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "address": n.address,
                "group": n.group,
                "state": n.state,
                "draining": draining.contains(&n.id),
            })
        })
        .collect();
    Ok(json!({
        "epoch": topology.epoch,
        "shards": topology.shards,
        "replicationFactor": topology.replication_factor,
        "nodes": nodes,
    }))
}

/// `GET /_miroir/topology`.
pub async fn get_topology(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    async move {
        authorize(&app, &headers)?;
        let topology = stored(&app).await?;
        Ok(Json(topology_view(&app, &topology).await?))
    }
    .instrument(tracing::info_span!("get_topology"))
    .await
}

/// `GET /_miroir/shards`: every shard's owners in every replica group.
pub async fn get_shards(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    async move {
        authorize(&app, &headers)?;
        let topology = stored(&app).await?;
        let groups = topology.group_names();
        let shards: Vec<Value> = (0..topology.shards)
            .map(|shard| {
                let owners: serde_json::Map<String, Value> = groups
                    .iter()
                    .map(|g| {
                        let ids: Vec<&str> = topology
                            .owners(shard, g)
                            .into_iter()
                            .map(|n| n.id.as_str())
                            .collect();
                        (g.to_string(), json!(ids))
                    })
                    .collect();
                json!({"shard": shard, "owners": owners})
            })
            .collect();
        Ok(Json(json!({
            "epoch": topology.epoch,
            "replicationFactor": topology.replication_factor,
            "groups": groups,
            "shards": shards,
        })))
    }
    .instrument(tracing::info_span!("get_shards"))
    .await
}

/// The answer to a topology change: the new topology and its rollout, or the rollout's failure
/// (the new epoch is stored either way; the fleet keeps its last accepted configuration).
async fn answer(app: &App, change: Change) -> Result<Json<Value>, ApiError> {
    let view = topology_view(app, &change.topology).await?;
    match change.rollout {
        Ok(report) => Ok(Json(json!({"topology": view, "rollout": report}))),
        Err(e) => Err(rollout_failure(
            &e,
            &format!("Topology epoch {}", change.topology.epoch),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNode {
    id: String,
    address: String,
    group: String,
}

/// `POST /_miroir/nodes` `{id, address, group}`.
pub async fn add_node(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    async move {
        authorize(&app, &headers)?;
        let node: NewNode = serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid("bad_request", format!("Invalid JSON body: {e}")))?;
        // The filter's key before the filter may call the node (best effort: the background
        // loop retries an unreachable node).
        if let Err(e) = crate::filter_key::ensure(&app, &node.id, &node.address).await {
            tracing::warn!(node = node.id, error = %e, "filter key not created yet on the new node");
        }
        let change = app
            .change_topology(|current| {
                if current.node(&node.id).is_some() {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "miroir_node_already_exists",
                        "invalid_request",
                        format!("Node `{}` already exists.", node.id),
                    ));
                }
                let mut next = current.clone();
                next.nodes.push(Node {
                    id: node.id.clone(),
                    address: node.address.clone(),
                    group: node.group.clone(),
                    state: NodeState::Active,
                });
                Ok(next)
            })
            .await?;
        answer(&app, change).await
    }
    .instrument(tracing::info_span!("add_node"))
    .await
}

fn node_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "miroir_node_not_found",
        "invalid_request",
        format!("Node `{id}` not found."),
    )
}

/// `DELETE /_miroir/nodes/{id}`.
pub async fn remove_node(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let span = tracing::info_span!("remove_node", node = %id);
    async move {
        authorize(&app, &headers)?;
        let change = app
            .change_topology(|current| {
                if current.node(&id).is_none() {
                    return Err(node_not_found(&id));
                }
                let mut next = current.clone();
                next.nodes.retain(|n| n.id != id);
                Ok(next)
            })
            .await?;
        if let Err(e) = app.store.set_draining(&id, false).await {
            tracing::warn!(node = %id, error = %e, "draining marker not cleared");
        }
        answer(&app, change).await
    }
    .instrument(span)
    .await
}

/// `POST /_miroir/nodes/{id}/drain`: records the intent. Placement does not change yet (moving
/// the data comes with rebalancing); the topology without the node must be valid.
pub async fn drain_node(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let span = tracing::info_span!("drain_node", node = %id);
    async move {
        authorize(&app, &headers)?;
        let topology = stored(&app).await?;
        if topology.node(&id).is_none() {
            return Err(node_not_found(&id));
        }
        let mut without = topology.clone();
        without.nodes.retain(|n| n.id != id);
        without.validate().map_err(|e| {
            ApiError::invalid(
                "miroir_invalid_topology",
                format!("Node `{id}` cannot be drained: without it, {e}"),
            )
        })?;
        app.store
            .set_draining(&id, true)
            .await
            .map_err(ApiError::store)?;
        let draining = app.store.draining().await.map(|d| d.len()).unwrap_or(0);
        app.metrics
            .nodes
            .get_or_create(&crate::metrics::labels(&[("state", "draining")]))
            .set(draining as i64);
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({"node": id, "draining": true, "epoch": topology.epoch})),
        ))
    }
    .instrument(span)
    .await
}

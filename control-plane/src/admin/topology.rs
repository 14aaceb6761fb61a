//! Topology routes: read it, its shard placement, and change its nodes.

use std::sync::Arc;

use axum::body::Bytes;
use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use miroir_topology::{CopyState, Node, NodeState, ShardCopy, Topology, UnavailableShards};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::Instrument;

use super::authorize;
use super::jobs::{self, stored};
use crate::app::{rollout_failure, App, Change};
use crate::error::ApiError;
use crate::jobs::plan::{edited, propose};
use crate::jobs::{Edit, JobKind, Move, MovePhase};

async fn topology_view(_app: &App, topology: &Topology) -> Result<Value, ApiError> {
    let nodes: Vec<Value> = topology
        .nodes
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "address": n.address,
                "group": n.group,
                "state": n.state,
                "draining": topology.weight_of(&n.id) == 0,
                "weight": topology.weight_of(&n.id),
            })
        })
        .collect();
    Ok(json!({
        "epoch": topology.epoch,
        "shards": topology.shards,
        "replicationFactor": topology.replication_factor,
        "replication": topology.group_names().into_iter().map(|g| (g.to_string(), json!(topology.replication_of(g)))).collect::<serde_json::Map<String, Value>>(),
        "minCopies": topology.shard_map.min_copies(),
        "unavailableShards": topology.shard_map.unavailable_shards.unwrap_or_default(),
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
                let copies: serde_json::Map<String, Value> = groups
                    .iter()
                    .map(|g| {
                        let list: Vec<Value> = topology
                            .copies(shard, g)
                            .into_iter()
                            .map(|(n, state)| json!({"node": n.id, "state": state}))
                            .collect();
                        (g.to_string(), json!(list))
                    })
                    .collect();
                json!({"shard": shard, "owners": owners, "copies": copies})
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
    #[serde(default)]
    weight: Option<u32>,
}

fn bad_body(e: serde_json::Error) -> ApiError {
    ApiError::invalid("bad_request", format!("Invalid JSON body: {e}"))
}

fn node_exists(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "miroir_node_already_exists",
        "invalid_request",
        format!("Node `{id}` already exists."),
    )
}

/// `POST /_miroir/nodes` `{id, address, group, weight?}`: a job that adds the node and moves its
/// share of the group's copies to it (202 with the job).
pub async fn add_node(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    async move {
        authorize(&app, &headers)?;
        let node: NewNode = serde_json::from_slice(&body).map_err(bad_body)?;
        let topology = stored(&app).await?;
        if topology.node(&node.id).is_some() {
            return Err(node_exists(&node.id));
        }
        let mut edit = Edit {
            add_nodes: vec![Node {
                id: node.id.clone(),
                address: node.address.clone(),
                group: node.group.clone(),
                state: NodeState::Active,
            }],
            ..Edit::default()
        };
        if let Some(w) = node.weight {
            edit.weights.insert(node.id.clone(), w);
        }
        change_or_job(&app, JobKind::AddNode, edit).await
    }
    .instrument(tracing::info_span!("add_node"))
    .await
}

/// A change that moves no shard copy (a node of weight 0 joins, a node without copies drains) is
/// applied at once: 200 with the topology and its rollout. Any other is a job: 202 with the job.
async fn change_or_job(
    app: &App,
    kind: JobKind,
    edit: Edit,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    jobs::no_job_running(app).await?;
    let topology = stored(app).await?;
    let moves = propose(&topology, &edit).map_err(|e| {
        ApiError::invalid("miroir_invalid_topology", format!("Invalid topology: {e}"))
    })?;
    if moves.is_empty() {
        let change = app
            .change_topology(|current| Ok(edited(current, &edit)))
            .await?;
        return answer(app, change).await.map(|j| (StatusCode::OK, j));
    }
    let job = jobs::start(app, kind, edit, Vec::new()).await?;
    Ok(jobs::accepted(&job))
}

fn group_not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "miroir_group_not_found",
        "invalid_request",
        format!("Group `{name}` not found."),
    )
}

fn node_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "miroir_node_not_found",
        "invalid_request",
        format!("Node `{id}` not found."),
    )
}

#[derive(Deserialize, Default)]
pub struct RemoveQuery {
    #[serde(default)]
    force: bool,
}

/// `DELETE /_miroir/nodes/{id}[?force=true]`: a drained node leaves the topology (200). An
/// undrained one is refused unless forced; forced, its copies are gone and a job restores the
/// replication factor from the copies left (202 with the job).
pub async fn remove_node(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<RemoveQuery>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let span = tracing::info_span!("remove_node", node = %id, force = query.force);
    async move {
        authorize(&app, &headers)?;
        jobs::no_job_running(&app).await?;
        let topology = stored(&app).await?;
        let Some(node) = topology.node(&id).cloned() else {
            return Err(node_not_found(&id));
        };
        if topology.groups().get(node.group.as_str()).map_or(0, Vec::len) <= 1 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "miroir_last_node_of_group",
                "invalid_request",
                format!(
                    "Node `{id}` is the last node of group `{}`: remove the group instead (`DELETE /_miroir/groups/{}`).",
                    node.group, node.group
                ),
            ));
        }
        let held = topology.shard_map.load(&node.group).get(id.as_str()).copied().unwrap_or(0);
        if held > 0 && !query.force {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "miroir_node_not_drained",
                "invalid_request",
                format!(
                    "Node `{id}` still holds {held} shard copies: drain it first (`POST /_miroir/nodes/{id}/drain`), or remove it with `?force=true` to rebuild its copies from the others."
                ),
            ));
        }
        let (lost, placeholders) = orphaned_copies(&topology, &node);
        let change = app
            .change_topology(|current| {
                let mut next = current.clone();
                next.nodes.retain(|n| n.id != id);
                next.shard_map.weights.remove(&id);
                if let Some(shards) = next.shard_map.groups.get_mut(&node.group) {
                    for (shard, copies) in shards.iter_mut().enumerate() {
                        copies.retain(|c| c.node != id);
                        if let Some((holder, state)) = placeholders.get(&(shard as u32)) {
                            copies.push(ShardCopy { node: holder.clone(), state: *state });
                        }
                    }
                }
                Ok(next)
            })
            .await?;
        if held == 0 {
            return answer(&app, change).await.map(|j| (StatusCode::OK, j));
        }
        let extra: Vec<Move> = placeholders
            .iter()
            .filter(|(_, (_, state))| *state == CopyState::Copying)
            .map(|(shard, (holder, _))| Move {
                group: node.group.clone(),
                shard: *shard,
                from: Vec::new(),
                to: vec![holder.clone()],
                phase: MovePhase::Pending,
                documents_copied: 0,
            })
            .collect();
        let mut job = jobs::start(&app, JobKind::RestoreReplication, Edit::default(), extra).await?;
        if !lost.is_empty() {
            job.errors.push(format!(
                "shards {lost:?} of group `{}` had their only copy on `{id}` and no other group holds them: they are empty now",
                node.group
            ));
            crate::jobs::runner::save(&app, &mut job).await?;
        }
        Ok(jobs::accepted(&job))
    }
    .instrument(span)
    .await
}

/// For a node removed by force: the shards whose only copy in its group it held get a new copy
/// on the group's least loaded other node, `copying` from another group that holds the shard, or
/// `active` and empty where none does (those shards are lost, and listed).
fn orphaned_copies(
    topology: &Topology,
    node: &Node,
) -> (Vec<u32>, BTreeMap<u32, (String, CopyState)>) {
    let mut load = topology.shard_map.load(&node.group);
    let others: Vec<&Node> = topology
        .nodes
        .iter()
        .filter(|n| n.group == node.group && n.id != node.id && topology.weight_of(&n.id) > 0)
        .collect();
    let (mut lost, mut placed) = (Vec::new(), BTreeMap::new());
    for shard in 0..topology.shards {
        let copies = topology.shard_map.copies(&node.group, shard);
        if copies.iter().any(|c| c.node != node.id) || copies.is_empty() {
            continue;
        }
        let Some(holder) = others
            .iter()
            .min_by_key(|n| (load.get(n.id.as_str()).copied().unwrap_or(0), n.id.clone()))
        else {
            continue;
        };
        *load.entry(holder.id.as_str()).or_default() += 1;
        let elsewhere = topology
            .group_names()
            .into_iter()
            .any(|g| g != node.group && !topology.owners(shard, g).is_empty());
        let state = if elsewhere {
            CopyState::Copying
        } else {
            lost.push(shard);
            CopyState::Active
        };
        placed.insert(shard, (holder.id.clone(), state));
    }
    (lost, placed)
}

/// `POST /_miroir/nodes/{id}/drain`: a job that moves every copy the node holds to the other nodes
/// of its group (its weight becomes 0); once done, `DELETE /_miroir/nodes/{id}` removes it.
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
        let edit = Edit {
            weights: [(id.clone(), 0)].into(),
            ..Edit::default()
        };
        change_or_job(&app, JobKind::DrainNode, edit)
            .await
            .map_err(|e| e.prefixed(&format!("Node `{id}` cannot be drained: ")))
    }
    .instrument(span)
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    name: String,
    nodes: Vec<GroupNode>,
    #[serde(default, rename = "replicationFactor")]
    replication_factor: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupNode {
    id: String,
    address: String,
}

/// `POST /_miroir/groups` `{name, nodes: [{id, address}], replicationFactor?}`: a job that fills a
/// new replica group with every index, setting, key and shard; it serves reads once complete.
pub async fn add_group(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    async move {
        authorize(&app, &headers)?;
        let group: NewGroup = serde_json::from_slice(&body).map_err(bad_body)?;
        let topology = stored(&app).await?;
        if topology.groups().contains_key(group.name.as_str()) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "miroir_group_already_exists",
                "invalid_request",
                format!("Group `{}` already exists.", group.name),
            ));
        }
        let mut edit = Edit::default();
        for n in &group.nodes {
            if topology.node(&n.id).is_some() {
                return Err(node_exists(&n.id));
            }
            edit.add_nodes.push(Node {
                id: n.id.clone(),
                address: n.address.clone(),
                group: group.name.clone(),
                state: NodeState::Active,
            });
        }
        if let Some(rf) = group.replication_factor {
            edit.replication.insert(group.name.clone(), rf);
        }
        let job = jobs::start(&app, JobKind::AddGroup, edit, Vec::new()).await?;
        Ok(jobs::accepted(&job))
    }
    .instrument(tracing::info_span!("add_group"))
    .await
}

/// `DELETE /_miroir/groups/{name}`: the group stops serving at once; its nodes keep their data
/// (for the operator to dispose of).
pub async fn remove_group(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let span = tracing::info_span!("remove_group", group = %name);
    async move {
        authorize(&app, &headers)?;
        jobs::no_job_running(&app).await?;
        let topology = stored(&app).await?;
        if !topology.groups().contains_key(name.as_str()) {
            return Err(group_not_found(&name));
        }
        let others_complete = topology
            .group_names()
            .into_iter()
            .any(|g| g != name && topology.is_complete(g));
        if !others_complete {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "miroir_last_group",
                "invalid_request",
                format!("Group `{name}` is the only complete replica group: removing it would lose the data."),
            ));
        }
        let change = app
            .change_topology(|current| {
                let mut next = current.clone();
                let leaving: Vec<String> = next
                    .nodes
                    .iter()
                    .filter(|n| n.group == name)
                    .map(|n| n.id.clone())
                    .collect();
                next.nodes.retain(|n| n.group != name);
                next.shard_map.groups.remove(&name);
                next.shard_map.replication.remove(&name);
                next.shard_map.weights.retain(|n, _| !leaving.contains(n));
                Ok(next)
            })
            .await?;
        answer(&app, change).await
    }
    .instrument(span)
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Replication {
    replication_factor: u32,
}

/// `PUT /_miroir/groups/{name}/replication-factor` `{replicationFactor}`: a job that adds copies
/// (up) or drops them once reads left them (down).
pub async fn set_replication(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let span = tracing::info_span!("set_replication", group = %name);
    async move {
        authorize(&app, &headers)?;
        let wanted: Replication = serde_json::from_slice(&body).map_err(bad_body)?;
        let topology = stored(&app).await?;
        if !topology.groups().contains_key(name.as_str()) {
            return Err(group_not_found(&name));
        }
        if wanted.replication_factor == 0 {
            return Err(ApiError::invalid(
                "miroir_invalid_topology",
                "replicationFactor must be at least 1".to_string(),
            ));
        }
        let edit = Edit {
            replication: [(name.clone(), wanted.replication_factor)].into(),
            ..Edit::default()
        };
        let job = jobs::start(&app, JobKind::SetReplicationFactor, edit, Vec::new()).await?;
        Ok(jobs::accepted(&job))
    }
    .instrument(span)
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReplicationPolicy {
    #[serde(default)]
    min_copies: Option<u32>,
    #[serde(default)]
    unavailable_shards: Option<UnavailableShards>,
}

/// `PATCH /_miroir/replication` `{minCopies?, unavailableShards?}`: how many in-sync copies of
/// every shard a write must reach before it is acknowledged, and what a search answers when no
/// copy of a shard answers. A new epoch, no job: nothing moves.
pub async fn set_replication_policy(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    async move {
        authorize(&app, &headers)?;
        let wanted: ReplicationPolicy = serde_json::from_slice(&body).map_err(bad_body)?;
        let change = app
            .change_topology(|current| {
                let mut next = current.clone();
                if let Some(min) = wanted.min_copies {
                    next.shard_map.min_copies = (min != 1).then_some(min);
                }
                if let Some(policy) = wanted.unavailable_shards {
                    next.shard_map.unavailable_shards =
                        (policy != UnavailableShards::Error).then_some(policy);
                }
                Ok(next)
            })
            .await?;
        answer(&app, change).await
    }
    .instrument(tracing::info_span!("set_replication_policy"))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use miroir_topology::ShardMap;

    fn topology(groups: &[(&str, &[&str])]) -> Topology {
        let nodes = groups
            .iter()
            .flat_map(|(g, ids)| {
                ids.iter().map(|id| Node {
                    id: id.to_string(),
                    address: format!("{id}:7700"),
                    group: g.to_string(),
                    state: NodeState::Active,
                })
            })
            .collect();
        Topology {
            epoch: 1,
            shards: 16,
            replication_factor: 1,
            nodes,
            shard_map: ShardMap::default(),
        }
        .with_explicit_map()
        .expect("placeable")
    }

    #[test]
    fn a_lost_nodes_only_copies_are_rebuilt_from_another_group_or_reported_lost() {
        let t = topology(&[("a", &["a0", "a1"]), ("b", &["b0"])]);
        let lost = t.node("a0").expect("a0").clone();
        let (gone, placed) = orphaned_copies(&t, &lost);
        assert!(gone.is_empty(), "group b holds every shard");
        let held = t.shard_map.load("a")["a0"];
        assert_eq!(placed.len(), held);
        assert!(placed
            .values()
            .all(|(n, state)| n == "a1" && *state == CopyState::Copying));

        let single = topology(&[("a", &["a0", "a1"])]);
        let (gone, placed) = orphaned_copies(&single, &lost);
        assert_eq!(gone.len(), held, "no other copy anywhere: lost");
        assert!(placed
            .values()
            .all(|(_, state)| *state == CopyState::Active));
    }
}

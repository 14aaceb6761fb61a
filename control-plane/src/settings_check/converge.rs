//! Schema anti-entropy: a node whose primary key or settings of an index differ from what a
//! strict majority of the nodes hold is brought to the majority's, by the leader's anti-entropy
//! pass. A settings change a node accepted (202) and then failed to apply, or one made on a node
//! directly, would otherwise last until the next change of that index; the in-sync rule only
//! sees a node that did not take a change at all.
//!
//! Only a difference seen twice alike, the write path's longest latency apart, with every node
//! read both times and no schema change of the index pending on any node, is acted on: a change
//! on its way reaches every node by then, and nodes process their queues at their own pace. A
//! node holding the index with another primary key is left as it is (a primary key cannot be
//! changed under documents); one lacking the index gets it created with the majority's key.

use std::time::Duration;

use super::{check, record, Comparison};
use crate::app::App;
use crate::jobs::shard_copy::Calls;
use crate::nodes;
use crate::store::CheckStatus;
use miroir_topology::{NodeState, Topology};

/// Whether `c` names nodes a strict majority disagrees with, every node having been read.
pub fn convergeable(c: &Comparison) -> bool {
    c.status == CheckStatus::Inconsistent
        && c.unreachable.is_empty()
        && c.reference.is_some()
        && c.agreeing.len() > c.disagreeing.len()
}

/// Compares `index` across the nodes, twice `settle` apart, and brings the nodes that differ
/// from the majority to its primary key and settings. The nodes changed.
pub async fn converge(
    app: &App,
    topology: &Topology,
    index: &str,
    settle: Duration,
) -> Result<Vec<String>, String> {
    let auth = app.node_authorization(None);
    let timeout = Duration::from_millis(app.config.health.timeout_ms);
    let Some(first) = check(app, topology, index, auth.as_deref(), timeout).await else {
        return Ok(Vec::new());
    };
    if first.status == CheckStatus::Consistent {
        // A difference recorded earlier (and converged since) is cleared.
        if recorded(app, index).await == Some(CheckStatus::Inconsistent) {
            record(
                app,
                topology,
                index,
                recorded_task(app, index).await,
                &first,
            )
            .await;
        }
        return Ok(Vec::new());
    }
    if !convergeable(&first) {
        return Ok(Vec::new());
    }
    tokio::time::sleep(settle).await;
    let Some(second) = check(app, topology, index, auth.as_deref(), timeout).await else {
        return Ok(Vec::new());
    };
    if !convergeable(&second)
        || second.disagreeing != first.disagreeing
        || second.reference != first.reference
    {
        return Ok(Vec::new());
    }
    let Some(reference) = second.reference.as_ref() else {
        return Ok(Vec::new());
    };
    let calls = Calls { app, pacer: None };
    let mut changed = Vec::new();
    for id in &second.disagreeing {
        let Some(node) = topology.node(id) else {
            continue;
        };
        if node.state != NodeState::Active {
            continue;
        }
        let held = nodes::index_schema(&app.http, &node.address, auth.as_deref(), index, timeout)
            .await
            .map_err(|e| format!("{id}: {e}"))?;
        let primary_key = &reference["primaryKey"];
        match &held {
            Some(value) if value["primaryKey"] != *primary_key => {
                tracing::warn!(
                    node = id,
                    index,
                    found = %value["primaryKey"],
                    wanted = %primary_key,
                    "the node's index has another primary key than the majority's (left as it is)"
                );
                continue;
            }
            Some(_) => {}
            None => {
                let create = serde_json::json!({"uid": index, "primaryKey": primary_key});
                calls
                    .write(node, reqwest::Method::POST, "/indexes", &create)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        calls
            .write(
                node,
                reqwest::Method::PATCH,
                &format!("/indexes/{index}/settings"),
                &reference["settings"],
            )
            .await
            .map_err(|e| e.to_string())?;
        tracing::warn!(
            node = id,
            index,
            "index settings differed from the majority's: brought to them"
        );
        app.metrics.anti_entropy_settings_repaired.inc();
        changed.push(id.clone());
    }
    if !changed.is_empty() {
        if let Some(after) = check(app, topology, index, auth.as_deref(), timeout).await {
            record(
                app,
                topology,
                index,
                recorded_task(app, index).await,
                &after,
            )
            .await;
        }
    }
    Ok(changed)
}

async fn recorded(app: &App, index: &str) -> Option<CheckStatus> {
    let entry = app.store.get_index(index).await.ok()??;
    entry.settings.map(|s| s.status)
}

/// The task the index's last check was made for (its record keeps pointing there).
async fn recorded_task(app: &App, index: &str) -> u32 {
    let entry = app.store.get_index(index).await.ok().flatten();
    entry.and_then(|e| e.settings).map_or(0, |s| s.task_uid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn comparison(agreeing: &[&str], disagreeing: &[&str], unreachable: &[&str]) -> Comparison {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Comparison {
            status: if disagreeing.is_empty() {
                CheckStatus::Consistent
            } else {
                CheckStatus::Inconsistent
            },
            agreeing: names(agreeing),
            disagreeing: names(disagreeing),
            unreachable: names(unreachable),
            reference: Some(Value::Null),
        }
    }

    #[test]
    fn only_a_strict_majority_of_nodes_all_read_is_followed() {
        assert!(convergeable(&comparison(&["a", "b"], &["c"], &[])));
        assert!(!convergeable(&comparison(&["a"], &["b"], &[])), "a tie");
        assert!(
            !convergeable(&comparison(&["a", "b"], &["c"], &["d"])),
            "a node not read may hold the majority's other side"
        );
        assert!(!convergeable(&comparison(&["a", "b", "c"], &[], &[])));
        let mut deleted = comparison(&["a", "b"], &["c"], &[]);
        deleted.reference = None;
        assert!(
            !convergeable(&deleted),
            "the majority lacks the index: a deletion is not settings"
        );
    }
}

//! Schema changes recorded before they are sent. The filter records a settings change, an
//! index's creation, update or deletion (`POST /_miroir/internal/intents`) before any node sees
//! it, and its task's registration closes the record. A record left open (the Envoy stopped on
//! the way, or the registration never came) is the change the nodes may hold only in part: once
//! the filter cannot be working on it any more, the leader takes it to every active node
//! itself, in its phases' order, as the filter would have. These kinds of change leave a node
//! as they found it when applied a second time ([`INTENT_KINDS`]), so the nodes that took it
//! already are not hurt. A record that a later change of the same index superseded is not
//! replayed (it would undo the later one): the settings convergence after it decides
//! ([`crate::settings_check::converge`]).
//!
//! A change is recorded only for a client whose key may make it (checked as Meilisearch checks
//! it: actions, indexes, expiry), since the leader replays it with its own key.

use std::sync::Arc;
use std::time::Duration;

use miroir_topology::tasks::{
    Intent, IntentCall, IntentRecorded, Missed, COMPLETED_KINDS, INTENT_KINDS, KEY_CREATION,
    KEY_DELETION, KEY_UPDATE,
};
use miroir_topology::{Node, NodeState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::{pause, App};
use crate::config::secret_eq;
use crate::error::ApiError;
use crate::metrics::labels;
use crate::nodes::{self, NodeError};
use crate::store::IntentRecord;
use crate::tasks::scope::Scope;

/// What the store keeps of an intent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredIntent {
    /// When it was recorded, Unix milliseconds.
    pub at_ms: u64,
    pub change: Intent,
    /// The client's key may make the change: the leader may send it with its own key.
    #[serde(default)]
    pub may_send: bool,
}

/// The API key action a kind of change needs.
fn action(kind: &str) -> Option<&'static str> {
    match kind {
        "settingsUpdate" => Some("settings.update"),
        "indexCreation" => Some("indexes.create"),
        "indexUpdate" => Some("indexes.update"),
        "indexDeletion" => Some("indexes.delete"),
        KEY_CREATION => Some("keys.create"),
        KEY_UPDATE => Some("keys.update"),
        KEY_DELETION => Some("keys.delete"),
        "indexSwap" => Some("indexes.swap"),
        "documentDeletion" => Some("documents.delete"),
        "documentEdition" => Some("documents.*"),
        _ => None,
    }
}

/// Records `change` made with the client's `authorization`; `intent: null` when the key may
/// not make it (the nodes will refuse it) or could not be checked.
pub async fn record(
    app: &App,
    authorization: Option<&str>,
    change: Intent,
) -> Result<IntentRecorded, ApiError> {
    let replayed = INTENT_KINDS.contains(&change.kind.as_str());
    let completed = COMPLETED_KINDS.contains(&change.kind.as_str());
    let Some(action) = action(&change.kind).filter(|_| replayed || completed) else {
        return Err(ApiError::invalid(
            "bad_request",
            format!("`{}` changes are not recorded as intents.", change.kind),
        ));
    };
    // An API key's actions on keys are not limited to indexes.
    let index =
        (!is_key(&change.kind) && !change.target.is_empty()).then_some(change.target.as_str());
    let may_send = authorized(app, authorization, action, index).await;
    // A change completed by the in-sync rule is recorded whoever asked: what the leader does
    // with it is mark nodes, which any change may cause.
    if !may_send && !completed {
        return Ok(IntentRecorded { intent: None });
    }
    let stored = StoredIntent {
        at_ms: now_ms(),
        change,
        may_send,
    };
    let json = serde_json::to_string(&stored)
        .map_err(|e| ApiError::invalid("bad_request", e.to_string()))?;
    let id = app
        .store
        .record_intent(&stored.change.target, &json)
        .await
        .map_err(ApiError::store)?;
    Ok(IntentRecorded { intent: Some(id) })
}

/// Closes the intent a registered task carried.
pub async fn close(app: &App, id: u64) {
    if let Err(e) = app.store.close_intent(id).await {
        tracing::warn!(intent = id, error = %e, "intent not closed (it will be replayed)");
    }
}

fn is_key(kind: &str) -> bool {
    matches!(kind, KEY_CREATION | KEY_UPDATE | KEY_DELETION)
}

fn now_ms() -> u64 {
    u64::try_from(crate::time::now_nanos() / 1_000_000).unwrap_or(0)
}

/// Whether `authorization` may make a change needing `action` (on `index`): Meilisearch's rule
/// (the master key; or an API key whose actions and indexes grant it and that has not expired).
async fn authorized(
    app: &App,
    authorization: Option<&str>,
    action: &str,
    index: Option<&str>,
) -> bool {
    let Some(master) = app.config.master_key.as_deref().filter(|k| !k.is_empty()) else {
        // Without the master key the control plane cannot read keys, and replays with none.
        return true;
    };
    let Some(key) = authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
    else {
        return false;
    };
    if secret_eq(master, key) {
        return true;
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    let Ok(Some(topology)) = app.store.load_topology().await else {
        return false;
    };
    let master = format!("Bearer {master}");
    for node in topology
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Active)
    {
        match nodes::get_key(
            &app.http,
            &node.address,
            Some(&master),
            key,
            app.read_timeout(),
        )
        .await
        {
            Ok(definition) => {
                let scope = Scope::from_key(&definition);
                return scope.allows(action)
                    && index.is_none_or(|i| scope.index_allowed(i))
                    && !expired(&definition);
            }
            Err(NodeError::Status(_)) => return false,
            Err(NodeError::Unavailable(_)) => continue,
        }
    }
    false
}

fn expired(key: &Value) -> bool {
    match key.get("expiresAt").and_then(Value::as_str) {
        Some(at) => crate::time::parse(at).is_none_or(|(at, _)| at <= crate::time::now_nanos()),
        None => false,
    }
}

/// How long after its recording an intent may still be on its way through the filter: each
/// phase waits for the nodes at most `nodeTimeoutMs`, the registration `controlPlaneTimeoutMs`.
pub fn grace(intent: &Intent, node_timeout_ms: u64, control_plane_timeout_ms: u64) -> Duration {
    let phases = intent.phases.len() as u64 + 1;
    Duration::from_millis(
        phases.saturating_mul(node_timeout_ms) + 2 * control_plane_timeout_ms + 1_000,
    )
}

/// What replaying an intent came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Every active node answered every phase, some taking it (a node's refusal is its answer:
    /// one that holds the key already refuses its creation).
    Applied,
    /// Every node refused it (4xx): a change the nodes do not take.
    Refused(String),
    /// A node did not answer: tried again later.
    Unavailable(String),
}

/// The leader's loop: replays the intents left open past their [`grace`].
pub async fn run(app: Arc<App>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    loop {
        if !pause(&mut stopped, Duration::from_secs(1)).await {
            return;
        }
        if !app.is_leader() {
            continue;
        }
        if let Err(e) = replay_due(&app).await {
            tracing::warn!(error = %e, "intents not replayed");
        }
    }
}

/// Replays (or drops, when superseded) every open intent past its grace; how many were closed.
pub async fn replay_due(app: &App) -> Result<usize, String> {
    let open = app.store.open_intents().await.map_err(|e| e.to_string())?;
    if open.is_empty() {
        return Ok(0);
    }
    let topology = match app.store.load_topology().await {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(0),
        Err(e) => return Err(e.to_string()),
    };
    let now = now_ms();
    let mut closed = 0;
    for record in open {
        let Ok(stored) = serde_json::from_str::<StoredIntent>(&record.intent) else {
            tracing::warn!(intent = record.id, "unreadable intent dropped");
            close(app, record.id).await;
            continue;
        };
        let due = stored.at_ms.saturating_add(
            u64::try_from(
                grace(
                    &stored.change,
                    app.config.node_timeout_ms,
                    app.config.control_plane_timeout_ms,
                )
                .as_millis(),
            )
            .unwrap_or(u64::MAX),
        );
        if now < due {
            continue;
        }
        let outcome = if COMPLETED_KINDS.contains(&stored.change.kind.as_str()) {
            match complete(app, &topology.nodes, &stored).await {
                Ok(outcome) => outcome,
                Err(why) => {
                    tracing::info!(intent = record.id, why, "intent not completed yet");
                    continue;
                }
            }
        } else if superseded(&record) || changed_since(app, &stored.change, stored.at_ms).await? {
            "superseded"
        } else {
            match replay(app, &topology.nodes, &stored.change).await {
                Replay::Applied => "applied",
                Replay::Refused(why) => {
                    tracing::warn!(intent = record.id, why, "intent refused by a node");
                    "refused"
                }
                Replay::Unavailable(why) => {
                    tracing::info!(intent = record.id, why, "intent not replayed yet");
                    continue;
                }
            }
        };
        tracing::warn!(
            intent = record.id,
            index = record.index,
            kind = stored.change.kind,
            outcome,
            "a change left unfinished by the filter"
        );
        app.metrics
            .intents_replayed
            .get_or_create(&labels(&[("result", outcome)]))
            .inc();
        close(app, record.id).await;
        if INTENT_KINDS.contains(&stored.change.kind.as_str()) && !is_key(&stored.change.kind) {
            // Whatever the nodes hold of it now, the next convergence round compares them.
            app.suspect_settings(&record.index);
        }
        closed += 1;
    }
    Ok(closed)
}

/// How far before its recording a node's task for an intent may have been enqueued (the nodes'
/// clocks are not the control plane's).
const CLOCK_SKEW_MS: u64 = 10_000;

/// Completes a change the in-sync rule completes ([`COMPLETED_KINDS`]): reads which active nodes
/// hold a task of its kind (and index) enqueued since it was recorded; those that do not leave
/// the in-sync set (the repair brings them the change from those that do), or, where that would
/// leave a shard without an in-sync copy that took it, get the change sent if the client's key
/// may make it. `Err`: a node could not be read, tried again later.
async fn complete(
    app: &App,
    nodes: &[Node],
    stored: &StoredIntent,
) -> Result<&'static str, String> {
    let since = i128::from(stored.at_ms.saturating_sub(CLOCK_SKEW_MS)) * 1_000_000;
    let change = &stored.change;
    let mut took = Vec::new();
    let mut missed = Vec::new();
    let authorization = app.node_authorization(None);
    for node in nodes.iter().filter(|n| n.state == NodeState::Active) {
        let mut path = format!("/tasks?types={}&limit=20", change.kind);
        if !change.target.is_empty() && change.kind != "indexSwap" {
            path.push_str(&format!("&indexUids={}", change.target));
        }
        let listed = nodes::send(
            app.http.get(nodes::url(&node.address, &path)),
            authorization.as_deref(),
            app.read_timeout(),
        )
        .await
        .map_err(|e| format!("node `{}`: {e}", node.id))?;
        let holds = listed["results"].as_array().into_iter().flatten().any(|t| {
            t["enqueuedAt"]
                .as_str()
                .and_then(crate::time::parse)
                .is_some_and(|(at, _)| at >= since)
        });
        if holds {
            took.push(node.id.clone());
        } else {
            missed.push(node.clone());
        }
    }
    if took.is_empty() {
        return Ok("untaken");
    }
    if missed.is_empty() {
        return Ok("applied");
    }
    let mark = Missed {
        epoch: 0,
        shards: None,
        nodes: missed.iter().map(|n| n.id.clone()).collect(),
    };
    match crate::in_sync::record(app, &mark).await {
        Ok(marked) => {
            if marked {
                if let Err(e) = app.sync_from_store().await {
                    tracing::warn!(error = %e, "rolling out in-sync marks");
                }
            }
            Ok("marked")
        }
        Err(_) if stored.may_send => match replay(app, &missed, change).await {
            Replay::Unavailable(why) => Err(why),
            _ => Ok("sent"),
        },
        Err(e) => {
            tracing::warn!(
                kind = change.kind,
                nodes = ?mark.nodes,
                error = %e,
                "a change some nodes missed could not be completed"
            );
            Ok("untaken")
        }
    }
}

/// A later change of the same index was recorded: replaying this one would undo it.
fn superseded(record: &IntentRecord) -> bool {
    record.latest > record.id
}

/// A schema task registered after `at_ms` changed the intent's index (a swap, a rename, a
/// deletion, another settings change: not recorded as intents, or recorded and closed):
/// replaying the intent now would apply it to what the index became. Documents written since
/// change no schema.
async fn changed_since(app: &App, change: &Intent, at_ms: u64) -> Result<bool, String> {
    if is_key(&change.kind) {
        return Ok(false);
    }
    let since = i128::from(at_ms) * 1_000_000;
    let tasks = app.store.all_tasks().await.map_err(|e| e.to_string())?;
    Ok(tasks.iter().rev().any(|task| {
        let later = crate::time::parse(&task.registered_at).is_some_and(|(at, _)| at > since);
        let schema = matches!(
            task.record.kind.as_str(),
            "settingsUpdate" | "indexCreation" | "indexUpdate" | "indexSwap" | "indexDeletion"
        );
        schema && later && crate::tasks::scope::task_indexes(task).contains(&change.target)
    }))
}

/// Sends the intent's phases to every active node, phase after phase.
pub async fn replay(app: &App, nodes: &[Node], change: &Intent) -> Replay {
    let authorization = app.node_authorization(None);
    let mut took = false;
    let mut refusal = String::new();
    for phase in &change.phases {
        for node in nodes.iter().filter(|n| n.state == NodeState::Active) {
            if phase
                .nodes
                .as_ref()
                .is_some_and(|only| !only.contains(&node.id))
            {
                continue;
            }
            match send(app, node, phase, authorization.as_deref()).await {
                Ok(_) => took = true,
                Err(NodeError::Status(r)) if r.status.is_client_error() => {
                    refusal = format!("node `{}` answered {}", node.id, r.status);
                }
                Err(e) => return Replay::Unavailable(format!("node `{}`: {e}", node.id)),
            }
        }
    }
    if took {
        Replay::Applied
    } else {
        Replay::Refused(refusal)
    }
}

async fn send(
    app: &App,
    node: &Node,
    call: &IntentCall,
    authorization: Option<&str>,
) -> Result<Value, NodeError> {
    let method = reqwest::Method::from_bytes(call.method.as_bytes())
        .map_err(|e| NodeError::Unavailable(e.to_string()))?;
    let mut request = app
        .http
        .request(method, nodes::url(&node.address, &call.path));
    if let Some(body) = &call.body {
        request = request.json(body);
    }
    nodes::send(request, authorization, app.node_timeout()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Cluster, MASTER_KEY, TASKS_ONLY_KEY};
    use serde_json::json;

    fn settings_change(ranking: &[&str]) -> Intent {
        Intent {
            kind: "settingsUpdate".into(),
            target: "movies".into(),
            phases: vec![IntentCall {
                method: "PATCH".into(),
                path: "/indexes/movies/settings".into(),
                body: Some(json!({ "rankingRules": ranking })),
                nodes: None,
            }],
        }
    }

    /// Records `change` as if the filter had, `age_ms` ago.
    async fn recorded(cluster: &Cluster, change: Intent, age_ms: u64) -> u64 {
        let stored = StoredIntent {
            at_ms: now_ms() - age_ms,
            change,
            may_send: true,
        };
        let json = serde_json::to_string(&stored).unwrap();
        cluster
            .app
            .store
            .record_intent("movies", &json)
            .await
            .unwrap()
    }

    fn ranking_on(cluster: &Cluster, i: usize) -> Value {
        cluster.nodes[i].indexes.lock().unwrap()["movies"].1["rankingRules"].clone()
    }

    async fn cluster() -> Cluster {
        let cluster = Cluster::start(3).await;
        for node in &cluster.nodes {
            node.set_index("movies", "id", json!({"rankingRules": ["words"]}));
        }
        cluster
    }

    #[tokio::test]
    async fn only_a_key_that_may_make_the_change_has_it_recorded() {
        let cluster = cluster().await;
        let post = |auth: Option<String>| {
            let cluster = &cluster;
            async move {
                let mut headers = vec![("x-miroir-token", crate::testutil::FILTER_TOKEN)];
                let auth = auth.unwrap_or_default();
                if !auth.is_empty() {
                    headers.push(("authorization", auth.as_str()));
                }
                let body = serde_json::to_value(settings_change(&["typo"])).unwrap();
                cluster
                    .call("POST", "/_miroir/internal/intents", &headers, Some(body))
                    .await
            }
        };
        let (status, body) = post(Some(format!("Bearer {MASTER_KEY}"))).await;
        assert_eq!(status, 201, "{body}");
        assert!(body["intent"].is_u64(), "{body}");
        let (status, body) = post(Some(format!("Bearer {TASKS_ONLY_KEY}"))).await;
        assert_eq!(
            (status, &body),
            (201, &json!({"intent": null})),
            "no settings.update"
        );
        let (status, body) = post(None).await;
        assert_eq!((status, &body), (201, &json!({"intent": null})), "no key");
        assert_eq!(cluster.app.store.open_intents().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_change_left_unfinished_is_taken_to_every_node_once_its_grace_passed() {
        let cluster = cluster().await;
        // The filter stopped after n0 took it.
        cluster.nodes[0].set_index("movies", "id", json!({"rankingRules": ["typo"]}));
        let fresh = recorded(&cluster, settings_change(&["typo"]), 0).await;
        assert_eq!(
            replay_due(&cluster.app).await.unwrap(),
            0,
            "still within its grace"
        );
        assert_eq!(ranking_on(&cluster, 1), json!(["words"]));

        cluster.app.store.close_intent(fresh).await.unwrap();
        recorded(&cluster, settings_change(&["typo"]), 3_600_000).await;
        assert_eq!(replay_due(&cluster.app).await.unwrap(), 1);
        for i in 0..3 {
            assert_eq!(ranking_on(&cluster, i), json!(["typo"]), "node {i}");
        }
        assert!(cluster.app.store.open_intents().await.unwrap().is_empty());
        assert!(cluster.app.take_settings_suspects().contains("movies"));
    }

    #[tokio::test]
    async fn a_change_a_later_one_superseded_is_not_replayed() {
        let cluster = cluster().await;
        recorded(&cluster, settings_change(&["typo"]), 3_600_000).await;
        // The client's next change of the index, still on its way.
        recorded(&cluster, settings_change(&["exactness"]), 0).await;
        assert_eq!(replay_due(&cluster.app).await.unwrap(), 1);
        for i in 0..3 {
            assert_eq!(ranking_on(&cluster, i), json!(["words"]), "node {i}");
        }
        assert_eq!(cluster.app.store.open_intents().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_change_registered_since_on_the_index_supersedes_it() {
        let cluster = cluster().await;
        recorded(&cluster, settings_change(&["typo"]), 3_600_000).await;
        // A swap of the index since (recorded as no intent, registered as a task).
        cluster.nodes[0].put(crate::testutil::node_task(0, "enqueued", 0));
        let (status, body) = cluster
            .filter(
                "/_miroir/internal/tasks",
                json!({"record": {"type": "indexSwap",
                                  "details": {"swaps": [{"indexes": ["movies", "films"]}]},
                                  "nodeTasks": [{"node": "n0", "group": "g0", "taskUid": 0}]}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(replay_due(&cluster.app).await.unwrap(), 1);
        for i in 0..3 {
            assert_eq!(ranking_on(&cluster, i), json!(["words"]), "node {i}");
        }
        assert!(cluster.app.store.open_intents().await.unwrap().is_empty());
    }

    fn deletion_by_filter() -> Intent {
        Intent {
            kind: "documentDeletion".into(),
            target: "movies".into(),
            phases: vec![IntentCall {
                method: "POST".into(),
                path: "/indexes/movies/documents/delete".into(),
                body: Some(json!({"filter": "genre = drama"})),
                nodes: None,
            }],
        }
    }

    /// Node `i` shows a task of `kind` on `movies` enqueued now.
    fn took(cluster: &Cluster, i: usize, kind: &str) {
        let node = &cluster.nodes[i];
        let uid = node.tasks.lock().unwrap().len() as u64 + 100;
        let mut task = crate::testutil::node_task(uid, "succeeded", 0);
        task["type"] = json!(kind);
        task["indexUid"] = json!("movies");
        task["enqueuedAt"] = json!(crate::time::now());
        node.put(task);
    }

    #[tokio::test]
    async fn a_deletion_some_nodes_missed_takes_them_out_of_the_in_sync_set() {
        let cluster = Cluster::start_replicated(3, 2).await;
        recorded(&cluster, deletion_by_filter(), 3_600_000).await;
        took(&cluster, 0, "documentDeletion");
        took(&cluster, 1, "documentDeletion");
        assert_eq!(replay_due(&cluster.app).await.unwrap(), 1);
        let topology = cluster.app.store.load_topology().await.unwrap().unwrap();
        let map = topology.map();
        let behind: Vec<&str> = map.out_of_sync_nodes().into_iter().collect();
        assert_eq!(behind, ["n2"], "the repair brings n2 the deletion");
        assert!(cluster.app.store.open_intents().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_deletion_no_node_or_every_node_took_marks_nothing() {
        let cluster = Cluster::start_replicated(3, 2).await;
        recorded(&cluster, deletion_by_filter(), 3_600_000).await;
        assert_eq!(
            replay_due(&cluster.app).await.unwrap(),
            1,
            "no node took it"
        );
        recorded(&cluster, deletion_by_filter(), 3_600_000).await;
        for i in 0..3 {
            took(&cluster, i, "documentDeletion");
        }
        assert_eq!(
            replay_due(&cluster.app).await.unwrap(),
            1,
            "every node took it"
        );
        let topology = cluster.app.store.load_topology().await.unwrap().unwrap();
        assert!(topology.map().out_of_sync_nodes().is_empty());
    }

    #[tokio::test]
    async fn a_registered_change_closes_its_intent() {
        let cluster = cluster().await;
        let id = recorded(&cluster, settings_change(&["typo"]), 3_600_000).await;
        cluster.nodes[0].put(crate::testutil::node_task(0, "enqueued", 0));
        let (status, body) = cluster
            .filter(
                "/_miroir/internal/tasks",
                json!({"record": {"indexUid": "movies", "type": "settingsUpdate", "intent": id,
                                  "nodeTasks": [{"node": "n0", "group": "g0", "taskUid": 0}]}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert!(cluster.app.store.open_intents().await.unwrap().is_empty());
        assert_eq!(replay_due(&cluster.app).await.unwrap(), 0);
        assert_eq!(
            ranking_on(&cluster, 1),
            json!(["words"]),
            "nothing replayed"
        );
    }
}

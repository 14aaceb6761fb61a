//! The comparison alone, then the checks a finished task triggers, against fake nodes: what
//! `GET /tasks/{uid}`, `GET /_miroir/indexes` and `/metrics` show.

use std::sync::atomic::Ordering;

use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use super::*;
use crate::testutil::{node_task, Cluster, MASTER_KEY};

fn held(pk: &str, ranking: &[&str]) -> Read {
    Read::Held(json!({"primaryKey": pk, "settings": {"rankingRules": ranking}}))
}

fn reads(list: Vec<(&str, Read)>) -> Vec<(String, Read)> {
    list.into_iter().map(|(n, r)| (n.to_string(), r)).collect()
}

#[test]
fn identical_nodes_are_consistent() {
    let c = compare(&reads(vec![
        ("n0", held("id", &["words"])),
        ("n1", held("id", &["words"])),
    ]))
    .expect("compared");
    assert_eq!(c.status, CheckStatus::Consistent);
    assert_eq!(c.agreeing, vec!["n0", "n1"]);
    assert!(c.disagreeing.is_empty());
}

#[test]
fn the_minority_disagrees() {
    let c = compare(&reads(vec![
        ("n0", held("id", &["typo"])),
        ("n1", held("id", &["words"])),
        ("n2", held("id", &["words"])),
        ("n3", Read::Missing),
    ]))
    .expect("compared");
    assert_eq!(c.status, CheckStatus::Inconsistent);
    assert_eq!(c.agreeing, vec!["n1", "n2"]);
    assert_eq!(c.disagreeing, vec!["n0", "n3"]);
    assert_eq!(
        c.reference,
        Some(json!({"primaryKey": "id", "settings": {"rankingRules": ["words"]}}))
    );
    // A different primary key is a difference too; on a tie the first node's side wins.
    let c = compare(&reads(vec![
        ("n0", held("id", &["words"])),
        ("n1", held("uid", &["words"])),
    ]))
    .expect("compared");
    assert_eq!(
        (c.agreeing, c.disagreeing),
        (vec!["n0".into()], vec!["n1".into()])
    );
}

#[test]
fn an_unreadable_node_leaves_it_unverified_unless_others_already_disagree() {
    let c = compare(&reads(vec![
        ("n0", held("id", &["words"])),
        ("n1", Read::Unreachable),
        ("n2", held("id", &["words"])),
    ]))
    .expect("compared");
    assert_eq!(c.status, CheckStatus::Unverified);
    assert_eq!(c.unreachable, vec!["n1"]);
    assert!(c.disagreeing.is_empty());

    let c = compare(&reads(vec![
        ("n0", held("id", &["words"])),
        ("n1", Read::Unreachable),
        ("n2", held("id", &["typo"])),
    ]))
    .expect("compared");
    assert_eq!(c.status, CheckStatus::Inconsistent);
    assert_eq!(c.disagreeing, vec!["n2"]);

    let c = compare(&reads(vec![("n0", Read::Unreachable)])).expect("compared");
    assert_eq!(c.status, CheckStatus::Unverified);
}

#[test]
fn an_index_no_node_has_is_not_compared() {
    assert_eq!(
        compare(&reads(vec![
            ("n0", Read::Missing),
            ("n1", Read::Unreachable)
        ])),
        None
    );
}

fn stored(kind: &str, index: Option<&str>, details: Value) -> StoredTask {
    StoredTask {
        uid: 1,
        record: miroir_topology::tasks::TaskRecord::new(index.map(str::to_string), kind),
        registered_at: "2026-11-21T10:00:00Z".into(),
        node_objects: BTreeMap::new(),
        task: json!({"details": details}),
        terminal: true,
        disagreeing_nodes: Vec::new(),
        deletes: None,
        behind: Vec::new(),
    }
}

#[test]
fn the_indexes_a_task_changed() {
    let renamed = stored("indexUpdate", Some("a"), json!({"newIndexUid": "b"}));
    assert_eq!(
        changed_indexes(&renamed),
        (vec!["a".into(), "b".into()], false)
    );
    let swap = stored(
        "indexSwap",
        None,
        json!({"swaps": [{"indexes": ["a", "b"]}, {"indexes": ["c", "d"], "rename": false}]}),
    );
    assert_eq!(changed_indexes(&swap).0, vec!["a", "b", "c", "d"]);
    let addition = stored("documentAdditionOrUpdate", Some("a"), json!({}));
    assert_eq!(changed_indexes(&addition), (vec!["a".into()], true));
    let deletion = stored("documentDeletion", Some("a"), json!({}));
    assert_eq!(changed_indexes(&deletion).0, Vec::<String>::new());
}

fn settings(ranking: &[&str]) -> Value {
    json!({"rankingRules": ranking, "filterableAttributes": ["_miroir_shard"]})
}

/// Every node holds `movies` with `settings`, except those listed in `other`.
async fn cluster(nodes: usize, other: &[(usize, Value)]) -> Cluster {
    let cluster = Cluster::start(nodes).await;
    for (i, node) in cluster.nodes.iter().enumerate() {
        let held = other
            .iter()
            .find(|(n, _)| *n == i)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| settings(&["words"]));
        node.set_index("movies", "id", held);
    }
    cluster
}

/// A change of `kind` on `index` that reached node task `node_uid` on every node, enqueued.
async fn change(cluster: &Cluster, kind: &str, index: &str, node_uid: u64) -> u64 {
    let mut node_tasks = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let mut task = node_task(node_uid, "enqueued", 0);
        task["type"] = json!(kind);
        task["indexUid"] = json!(index);
        node.put(task);
        node_tasks.push(json!({"node": format!("n{i}"), "group": "g0", "taskUid": node_uid}));
    }
    let (status, body) = cluster
        .filter(
            "/_miroir/internal/tasks",
            json!({"record": {"indexUid": index, "type": kind, "nodeTasks": node_tasks}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["taskUid"].as_u64().expect("taskUid")
}

fn finish(cluster: &Cluster, node_uid: u64) {
    for node in &cluster.nodes {
        node.set_status(node_uid, "succeeded");
    }
}

async fn read_task(cluster: &Cluster, uid: u64) -> (Value, Option<String>) {
    let auth = format!("Bearer {MASTER_KEY}");
    let (status, headers, task) = cluster
        .exchange(
            "GET",
            &format!("/tasks/{uid}"),
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(status, 200, "{task}");
    (task, header(&headers))
}

fn header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-miroir-disagreeing-nodes")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The index's `settings` in `GET /_miroir/indexes` (`null` when absent).
async fn check_of(cluster: &Cluster, index: &str) -> Value {
    let (status, body) = cluster.admin("GET", "/_miroir/indexes", None).await;
    assert_eq!(status, 200, "{body}");
    body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["uid"] == index)
        .map(|e| e["settings"].clone())
        .unwrap_or(Value::Null)
}

/// Samples of `/metrics` whose series starts with `prefix`.
/// The `/metrics` samples starting with `prefix`, but counters that counted nothing yet (every
/// known result's counter is there from the start, at 0).
async fn samples(cluster: &Cluster, prefix: &str) -> Vec<String> {
    let auth = format!("Bearer {}", crate::testutil::ADMIN_KEY);
    let response = cluster
        .http
        .get(format!("{}/metrics", cluster.base))
        .header("authorization", auth)
        .send()
        .await
        .expect("metrics");
    let text = response.text().await.expect("text");
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter(|l| !(l.contains("_total") && l.ends_with(" 0")))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn nodes_that_agree_make_the_index_consistent() {
    let cluster = cluster(3, &[]).await;
    let uid = change(&cluster, "settingsUpdate", "movies", 0).await;
    let (task, disagreeing) = read_task(&cluster, uid).await;
    assert_eq!(
        (task["status"].as_str(), disagreeing),
        (Some("enqueued"), None)
    );
    assert_eq!(
        check_of(&cluster, "movies").await,
        Value::Null,
        "not finished: not checked"
    );

    finish(&cluster, 0);
    let (task, disagreeing) = read_task(&cluster, uid).await;
    assert_eq!(
        (task["status"].as_str(), disagreeing),
        (Some("succeeded"), None)
    );
    let check = check_of(&cluster, "movies").await;
    assert_eq!(check["status"], "consistent", "{check}");
    assert_eq!(check["taskUid"], json!(uid));
    assert_eq!(check["disagreeingNodes"], json!([]));
    assert!(check["checkedAt"].is_string(), "{check}");
    assert_eq!(
        samples(&cluster, "miroir_index_settings").await,
        vec![
            "miroir_index_settings_consistent{index=\"movies\"} 1",
            "miroir_index_settings_checks_total{result=\"consistent\"} 1",
        ]
    );
}

#[tokio::test]
async fn a_node_with_other_settings_is_reported() {
    let cluster = cluster(3, &[(1, settings(&["typo", "words"]))]).await;
    let uid = change(&cluster, "settingsUpdate", "movies", 0).await;
    finish(&cluster, 0);
    // The read that first sees the task finished carries the check's finding.
    let (task, disagreeing) = read_task(&cluster, uid).await;
    assert_eq!(task["status"], "succeeded");
    assert_eq!(disagreeing.as_deref(), Some("n1"));
    let check = check_of(&cluster, "movies").await;
    assert_eq!(check["status"], "inconsistent", "{check}");
    assert_eq!(check["disagreeingNodes"], json!(["n1"]));
    assert_eq!(
        samples(&cluster, "miroir_index_settings").await,
        vec![
            "miroir_index_settings_consistent{index=\"movies\"} 0",
            "miroir_index_settings_checks_total{result=\"inconsistent\"} 1",
        ]
    );
    // Read again: the same answer, without a second check.
    let (again, disagreeing) = read_task(&cluster, uid).await;
    assert_eq!((again, disagreeing.as_deref()), (task.clone(), Some("n1")));

    // Repaired, then changed again (finished as the poller sees it): consistent.
    cluster.nodes[1].set_index("movies", "id", settings(&["words"]));
    let next = change(&cluster, "settingsUpdate", "movies", 1).await;
    finish(&cluster, 1);
    crate::tasks::registry::poll_pending(&cluster.app)
        .await
        .expect("poll");
    let check = check_of(&cluster, "movies").await;
    assert_eq!(
        (check["status"].as_str(), check["taskUid"].as_u64()),
        (Some("consistent"), Some(next))
    );
    assert_eq!(read_task(&cluster, next).await.1, None);
    assert_eq!(
        read_task(&cluster, uid).await.1.as_deref(),
        Some("n1"),
        "what that check found"
    );
    assert!(samples(&cluster, "miroir_index_settings_consistent")
        .await
        .contains(&"miroir_index_settings_consistent{index=\"movies\"} 1".to_string()));
}

#[tokio::test]
async fn an_unreadable_node_leaves_the_check_unverified() {
    let cluster = cluster(3, &[]).await;
    cluster.nodes[2]
        .indexes_broken
        .store(true, Ordering::Relaxed);
    let uid = change(&cluster, "settingsUpdate", "movies", 0).await;
    finish(&cluster, 0);
    assert_eq!(read_task(&cluster, uid).await.1, None);
    let check = check_of(&cluster, "movies").await;
    assert_eq!(check["status"], "unverified", "{check}");
    assert_eq!(check["unreachableNodes"], json!(["n2"]));
    assert_eq!(
        samples(&cluster, "miroir_index_settings").await,
        vec!["miroir_index_settings_checks_total{result=\"unverified\"} 1"],
        "no gauge: nothing is known"
    );

    // n2 is back, with other settings: inconsistent. Unreadable again: still inconsistent, as
    // only a check that reads every node may clear it.
    cluster.nodes[2]
        .indexes_broken
        .store(false, Ordering::Relaxed);
    cluster.nodes[2].set_index("movies", "id", settings(&["typo"]));
    let found = change(&cluster, "settingsUpdate", "movies", 1).await;
    finish(&cluster, 1);
    assert_eq!(read_task(&cluster, found).await.1.as_deref(), Some("n2"));
    cluster.nodes[2]
        .indexes_broken
        .store(true, Ordering::Relaxed);
    let later = change(&cluster, "settingsUpdate", "movies", 2).await;
    finish(&cluster, 2);
    assert_eq!(read_task(&cluster, later).await.1, None);
    let check = check_of(&cluster, "movies").await;
    assert_eq!(
        (check["status"].as_str(), check["taskUid"].as_u64()),
        (Some("inconsistent"), Some(found))
    );
}

#[tokio::test]
async fn a_later_change_still_pending_on_a_node_defers_the_check() {
    // n0 already applied a second change that n1 and n2 still have enqueued.
    let cluster = cluster(3, &[(0, settings(&["typo"]))]).await;
    let uid = change(&cluster, "settingsUpdate", "movies", 0).await;
    finish(&cluster, 0);
    for node in &cluster.nodes[1..] {
        let mut task = node_task(1, "enqueued", 0);
        task["type"] = json!("settingsUpdate");
        node.put(task);
    }
    assert_eq!(read_task(&cluster, uid).await.1, None);
    assert_eq!(check_of(&cluster, "movies").await, Value::Null);
    assert!(samples(&cluster, "miroir_index_settings").await.is_empty());
}

#[tokio::test]
async fn document_additions_check_only_an_index_never_checked() {
    let cluster = cluster(2, &[]).await;
    let first = change(&cluster, "documentAdditionOrUpdate", "movies", 0).await;
    finish(&cluster, 0);
    assert_eq!(read_task(&cluster, first).await.1, None);
    let check = check_of(&cluster, "movies").await;
    assert_eq!(
        (check["status"].as_str(), check["taskUid"].as_u64()),
        (Some("consistent"), Some(first))
    );

    cluster.nodes[1].set_index("movies", "id", settings(&["typo"]));
    let second = change(&cluster, "documentAdditionOrUpdate", "movies", 1).await;
    finish(&cluster, 1);
    assert_eq!(
        read_task(&cluster, second).await.1,
        None,
        "not checked again"
    );
    assert_eq!(
        check_of(&cluster, "movies").await["taskUid"].as_u64(),
        Some(first)
    );
}

#[tokio::test]
async fn a_node_unlike_a_strict_majority_is_brought_to_its_settings() {
    let three = cluster(3, &[(1, settings(&["typo", "words"]))]).await;
    let topology = three.app.store.load_topology().await.unwrap().unwrap();
    let changed = super::converge::converge(&three.app, &topology, "movies", Duration::ZERO)
        .await
        .expect("converge");
    assert_eq!(changed, ["n1"]);
    let read = |i: usize| {
        let node = &three.nodes[i];
        node.indexes.lock().unwrap()["movies"].1.clone()
    };
    assert_eq!(read(1), read(0));
    assert!(
        samples(&three, "miroir_anti_entropy_settings_repaired_total")
            .await
            .contains(&"miroir_anti_entropy_settings_repaired_total 1".to_string())
    );
    // Nothing left to do.
    let again = super::converge::converge(&three.app, &topology, "movies", Duration::ZERO)
        .await
        .expect("converge");
    assert!(again.is_empty(), "{again:?}");

    // Two nodes that differ: no majority to follow.
    let tie = cluster(2, &[(1, settings(&["typo", "words"]))]).await;
    let topology = tie.app.store.load_topology().await.unwrap().unwrap();
    let changed = super::converge::converge(&tie.app, &topology, "movies", Duration::ZERO)
        .await
        .expect("converge");
    assert!(changed.is_empty(), "{changed:?}");
}

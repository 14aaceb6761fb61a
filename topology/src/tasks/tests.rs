use serde_json::json;

use super::*;

fn task(status: &str, indexed: Option<u64>) -> Value {
    let done = matches!(status, "succeeded" | "failed");
    json!({"status": status,
           "details": {"receivedDocuments": 7, "indexedDocuments": indexed},
           "enqueuedAt": "2026-11-22T00:00:01Z", "startedAt": "2026-11-22T00:00:02Z",
           "finishedAt": if done { json!("2026-11-22T00:00:03Z") } else { json!(null) },
           "duration": if done { json!("PT0.5S") } else { json!(null) },
           "error": if status == "failed" { json!({"code": "invalid_document_id"}) } else { json!(null) }})
}

fn record(copies: u32) -> TaskRecord {
    let nt = |node: &str, group: &str| NodeTask {
        node: node.into(),
        group: group.into(),
        task_uid: 1,
    };
    TaskRecord {
        index_uid: Some("movies".into()),
        kind: "documentAdditionOrUpdate".into(),
        details: [("receivedDocuments".to_string(), json!(10))]
            .into_iter()
            .collect(),
        copies,
        node_tasks: vec![nt("a1", "a"), nt("a2", "a"), nt("b1", "b")],
        custom_metadata: None,
        shares: Vec::new(),
        primary_key: None,
        intent: None,
    }
}

fn status(tasks: &[(&str, Value)]) -> String {
    let tasks: Vec<(String, Value)> = tasks
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    aggregate(0, &record(1), &tasks)["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_status_is_the_least_finished_of_the_node_tasks() {
    let ok = task("succeeded", Some(1));
    assert_eq!(
        status(&[("a1", ok.clone()), ("a2", ok.clone())]),
        "succeeded"
    );
    assert_eq!(status(&[("a1", task("enqueued", None))]), "enqueued");
    assert_eq!(
        status(&[("a1", ok.clone()), ("a2", task("enqueued", None))]),
        "processing"
    );
    assert_eq!(
        status(&[("a1", ok.clone()), ("a2", task("failed", Some(0)))]),
        "failed"
    );
    assert_eq!(
        status(&[("a1", ok), ("a2", task("canceled", None))]),
        "canceled"
    );
}

#[test]
fn a_node_that_gave_no_task_counts_for_its_share() {
    // RF 2 over a1, a2, a3: 10 documents, 20 copies sent; a3 was down and the write was
    // acknowledged without it.
    let share = |node: &str, documents: u64| NodeShare {
        node: node.into(),
        group: "a".into(),
        documents,
    };
    let mut r = record(2);
    r.node_tasks.retain(|t| t.group == "a");
    r.shares = vec![share("a1", 7), share("a2", 6), share("a3", 7)];
    let tasks = vec![
        ("a1".to_string(), task("succeeded", Some(7))),
        ("a2".to_string(), task("succeeded", Some(6))),
    ];
    let t = aggregate(4, &r, &tasks);
    assert_eq!(t["details"]["indexedDocuments"], 10, "{t}");
    // Every node answered: the shares change nothing.
    r.node_tasks.push(NodeTask {
        node: "a3".into(),
        group: "a".into(),
        task_uid: 1,
    });
    let all = vec![
        ("a1".to_string(), task("succeeded", Some(7))),
        ("a2".to_string(), task("succeeded", Some(6))),
        ("a3".to_string(), task("succeeded", Some(7))),
    ];
    assert_eq!(aggregate(4, &r, &all)["details"]["indexedDocuments"], 10);
}

#[test]
fn counts_come_from_one_group_divided_by_its_copies() {
    // RF 2 in group a: both nodes hold every document of the batch.
    let tasks = vec![
        ("a1".to_string(), task("succeeded", Some(10))),
        ("a2".to_string(), task("succeeded", Some(10))),
        ("b1".to_string(), task("succeeded", Some(10))),
    ];
    let t = aggregate(3, &record(2), &tasks);
    assert_eq!(t["details"]["indexedDocuments"], 10);
    // The request's own count wins over the nodes' partial ones.
    assert_eq!(t["details"]["receivedDocuments"], 10);
    assert_eq!(t["uid"], 3);
    assert_eq!(t["finishedAt"], "2026-11-22T00:00:03Z");
    assert_eq!(t["duration"], "PT0.5S");
}

#[test]
fn counts_stay_null_until_the_task_ends() {
    let tasks = vec![
        ("a1".to_string(), task("succeeded", Some(10))),
        ("a2".to_string(), task("processing", None)),
    ];
    let t = aggregate(3, &record(2), &tasks);
    assert_eq!(t["details"]["indexedDocuments"], Value::Null);
    assert_eq!(
        (t["finishedAt"].clone(), t["duration"].clone()),
        (Value::Null, Value::Null)
    );
}

#[test]
fn a_failed_task_carries_the_node_error() {
    let tasks = vec![
        ("a1".to_string(), task("succeeded", Some(5))),
        ("a2".to_string(), task("failed", Some(0))),
    ];
    assert_eq!(
        aggregate(0, &record(1), &tasks)["error"]["code"],
        "invalid_document_id"
    );
}

#[test]
fn registrations_round_trip_in_camel_case() {
    let reg = TaskRegistration {
        task_uid: Some(4),
        record: record(2),
        missed: None,
    };
    let text = serde_json::to_string(&reg).unwrap();
    assert!(
        text.contains("\"taskUid\":4") && text.contains("\"nodeTasks\""),
        "{text}"
    );
    assert_eq!(
        serde_json::from_str::<TaskRegistration>(&text).unwrap(),
        reg
    );
}

#[test]
fn details_come_from_the_tasks_of_the_records_kind() {
    let mut setup = task("succeeded", None);
    setup["type"] = json!("settingsUpdate");
    setup["details"] = json!({"filterableAttributes": ["_miroir_shard"]});
    let mut write = task("succeeded", Some(10));
    write["type"] = json!("documentAdditionOrUpdate");
    let t = aggregate(
        1,
        &record(1),
        &[("a1".to_string(), setup), ("a1".to_string(), write)],
    );
    assert_eq!(t["details"].get("filterableAttributes"), None);
    assert_eq!(t["details"]["indexedDocuments"], 10);
}

#[test]
fn custom_metadata_is_shown_as_meilisearch_shows_it() {
    let kind = |t: Value| {
        let mut t = t;
        t["type"] = json!("documentAdditionOrUpdate");
        t
    };
    let plain = vec![("a1".to_string(), kind(task("succeeded", Some(1))))];
    assert!(aggregate(0, &record(1), &plain)
        .get("customMetadata")
        .is_none());
    let mut tagged = kind(task("succeeded", Some(1)));
    tagged["customMetadata"] = json!("");
    let from_node = aggregate(0, &record(1), &[("a1".to_string(), tagged)]);
    assert_eq!(from_node["customMetadata"], "", "given empty stays empty");
    let mut with_meta = record(1);
    with_meta.custom_metadata = Some("batch-42".into());
    let object = aggregate(0, &with_meta, &plain);
    assert_eq!(object["customMetadata"], "batch-42");
    assert_eq!(
        object
            .as_object()
            .and_then(|o| o.keys().next_back())
            .map(String::as_str),
        Some("customMetadata"),
        "last, as in Meilisearch's task view"
    );
    let registration: TaskRegistration =
        serde_json::from_value(json!({"record": {"indexUid": null, "type": "indexCreation",
                                                  "nodeTasks": [], "customMetadata": "x"}}))
        .expect("parse");
    assert_eq!(registration.record.custom_metadata.as_deref(), Some("x"));
    assert!(serde_json::to_value(record(1))
        .expect("json")
        .get("customMetadata")
        .is_none());
}

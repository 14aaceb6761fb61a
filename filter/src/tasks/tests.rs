use serde_json::json;

use super::*;
use crate::mock::MockHost;

fn task(status: &str, received: u64) -> Value {
    json!({"status": status, "details": {"receivedDocuments": received, "indexedDocuments": null},
           "enqueuedAt": "2026-11-22T00:00:01Z", "startedAt": "2026-11-22T00:00:02Z",
           "finishedAt": if status == "succeeded" || status == "failed" { json!("2026-11-22T00:00:03Z") } else { json!(null) },
           "duration": "PT0.5S", "error": if status == "failed" { json!({"code": "invalid_document_id"}) } else { json!(null) }})
}

#[test]
fn uids_increase_and_records_round_trip() {
    let mut host = MockHost::default();
    let record = TaskRecord {
        index_uid: Some("movies".into()),
        kind: "settingsUpdate".into(),
        nodes: [("n0".to_string(), vec![4, 5])].into(),
    };
    assert_eq!(register(&mut host, &record), Some(0));
    assert_eq!(register(&mut host, &record), Some(1));
    assert_eq!(lookup(&host, 1), Some(record));
    assert_eq!(lookup(&host, 2), None);
}

#[test]
fn the_status_is_the_least_finished_of_the_node_tasks() {
    let record = TaskRecord::default();
    let status = |tasks: &[Value]| {
        aggregate(0, &record, tasks)["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        status(&[task("succeeded", 1), task("succeeded", 2)]),
        "succeeded"
    );
    assert_eq!(
        status(&[task("enqueued", 1), task("enqueued", 2)]),
        "enqueued"
    );
    assert_eq!(
        status(&[task("succeeded", 1), task("enqueued", 2)]),
        "processing"
    );
    assert_eq!(status(&[task("succeeded", 1), task("failed", 2)]), "failed");
    let failed = aggregate(0, &record, &[task("succeeded", 1), task("failed", 2)]);
    assert_eq!(failed["error"]["code"], "invalid_document_id");
    let done = aggregate(3, &record, &[task("succeeded", 1), task("succeeded", 2)]);
    assert_eq!(done["details"]["receivedDocuments"], 3);
    assert_eq!(done["finishedAt"], "2026-11-22T00:00:03Z");
    let pending = aggregate(3, &record, &[task("enqueued", 1)]);
    assert_eq!(
        (pending["finishedAt"].clone(), pending["duration"].clone()),
        (Value::Null, Value::Null)
    );
}

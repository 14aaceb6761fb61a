//! The built `miroirctl` against a fake admin server: output and exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test scaffolding: a failure is a panic

mod fake;

use std::collections::HashMap;

use fake::{miroirctl, Fake, Script};
use serde_json::{json, Value};

fn job(id: &str, kind: &str, state: &str, phase: &str, done: u64, total: u64) -> Value {
    json!({
        "id": id, "kind": kind, "state": state, "phase": phase, "reason": null,
        "createdAt": "2026-05-01T10:00:00Z", "updatedAt": "2026-05-01T10:00:05Z",
        "shardsDone": done, "shardsTotal": total,
        "documentsCopied": done * 1000, "documentsPerSecond": 1500.0, "etaSeconds": 90.0,
        "errors": [], "moves": []
    })
}

fn with(mut job: Value, fields: Value) -> Value {
    for (k, v) in fields.as_object().unwrap() {
        job[k] = v.clone();
    }
    job
}

fn canned(entries: &[(&str, u16, Value)]) -> HashMap<String, (u16, Value)> {
    entries
        .iter()
        .map(|(k, s, v)| (k.to_string(), (*s, v.clone())))
        .collect()
}

#[test]
fn help_and_version() {
    let help = miroirctl(&["--help"], &[]);
    assert_eq!(help.code, Some(0), "{help:?}");
    for word in [
        "node",
        "group",
        "rf",
        "jobs",
        "status",
        "--url",
        "--admin-key",
    ] {
        assert!(
            help.stdout.contains(word),
            "--help lacks {word}: {}",
            help.stdout
        );
    }
    assert!(help.stdout.contains("MIROIR_URL"));
    let version = miroirctl(&["--version"], &[]);
    assert_eq!(version.code, Some(0));
    assert_eq!(
        version.stdout.trim(),
        format!("miroirctl {}", env!("CARGO_PKG_VERSION"))
    );
    let sub = miroirctl(&["jobs", "watch", "--help"], &[]);
    assert_eq!(sub.code, Some(0));
    assert!(sub.stdout.contains("--interval"));
    let wrong = miroirctl(&["node", "add", "n1"], &[]);
    assert_eq!(wrong.code, Some(2), "{wrong:?}");
}

#[test]
fn jobs_is_a_table() {
    let fake = Fake::start(Script {
        lists: vec![json!({"results": [
            job("job-1", "addNode", "succeeded", "done", 8, 8),
            with(job("job-2", "drainNode", "running", "copying", 3, 8), json!({"somethingNew": [1]})),
        ]})],
        ..Script::default()
    });
    let run = fake.run(&["jobs"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    for column in [
        "ID",
        "KIND",
        "STATE",
        "PHASE",
        "SHARDS",
        "DOCUMENTS",
        "DOCS/S",
        "ETA",
    ] {
        assert!(lines[0].contains(column));
    }
    assert!(lines[1].starts_with("job-1  addNode    succeeded  done     8/8     8,000"));
    assert!(lines[2]
        .starts_with("job-2  drainNode  running    copying  3/8     3,000      1,500/s  1m30s"));

    let json_run = fake.run(&["--json", "jobs"]);
    assert_eq!(json_run.code, Some(0));
    let parsed: Value = serde_json::from_str(&json_run.stdout).unwrap();
    assert_eq!(parsed["results"][1]["id"], "job-2");
}

#[test]
fn jobs_show_has_the_moves() {
    let mut jobs = HashMap::new();
    jobs.insert(
        "job-2".to_string(),
        vec![with(
            job("job-2", "drainNode", "running", "copying", 1, 2),
            json!({"moves": [
                {"group": "a", "shard": 5, "from": ["n1"], "to": ["n4"], "phase": "copying", "documentsCopied": 1000},
                {"group": "a", "shard": 9, "from": ["n1"], "to": ["n2"], "phase": "done", "documentsCopied": 2000}
            ]}),
        )],
    );
    let fake = Fake::start(Script {
        jobs,
        ..Script::default()
    });
    let run = fake.run(&["jobs", "show", "job-2"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.starts_with("Job job-2 (drainNode)\n"));
    assert!(run.stdout.contains("shards:    1/2 done"));
    assert!(run.stdout.contains("moves (2):"));
    assert!(run
        .stdout
        .contains("a      5      n1 -> n4    copying  1,000"));
    assert!(run
        .stdout
        .contains("a      9      n1 -> n2    done     2,000"));

    let missing = fake.run(&["jobs", "show", "job-404"]);
    assert_eq!(missing.code, Some(1));
    assert!(missing
        .stderr
        .contains("Nothing at GET /_miroir/jobs/job-404."));
}

#[test]
fn watching_a_job_until_it_succeeds() {
    let states = vec![
        job("job-1", "addNode", "running", "planning", 0, 4),
        job("job-1", "addNode", "running", "copying", 2, 4),
        with(
            job("job-1", "addNode", "paused", "copying", 2, 4),
            json!({"reason": "disk full on n4"}),
        ),
        job("job-1", "addNode", "running", "cutover", 3, 4),
        with(
            job("job-1", "addNode", "succeeded", "done", 4, 4),
            json!({"documentsPerSecond": null, "etaSeconds": null}),
        ),
    ];
    let mut jobs = HashMap::new();
    jobs.insert("job-1".to_string(), states);
    let fake = Fake::start(Script {
        jobs,
        ..Script::default()
    });
    let run = fake.run(&["jobs", "watch", "job-1", "--interval", "10ms"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            "job-1 addNode 0/4 shards, running/planning, 0 documents, 1,500/s, ETA 1m30s",
            "job-1 addNode 2/4 shards, running/copying, 2,000 documents, 1,500/s, ETA 1m30s",
            "job-1 addNode 2/4 shards, paused: disk full on n4",
            "job-1 addNode 3/4 shards, running/cutover, 3,000 documents, 1,500/s, ETA 1m30s",
            "job-1 succeeded: 4/4 shards, 4,000 documents copied",
        ],
        "{}",
        run.stdout
    );
    assert_eq!(fake.job_polls("job-1"), 5);
}

#[test]
fn watching_every_job_until_one_fails() {
    let fake = Fake::start(Script {
        lists: vec![
            json!({"results": [
                job("job-1", "addNode", "succeeded", "done", 4, 4),
                job("job-2", "drainNode", "running", "copying", 1, 2),
            ]}),
            json!({"results": [
                job("job-1", "addNode", "succeeded", "done", 4, 4),
                job("job-2", "drainNode", "running", "cutover", 2, 2),
                job("job-3", "setReplicationFactor", "running", "planning", 0, 3),
            ]}),
            json!({"results": [
                job("job-1", "addNode", "succeeded", "done", 4, 4),
                job("job-2", "drainNode", "succeeded", "done", 2, 2),
                with(job("job-3", "setReplicationFactor", "failed", "copying", 1, 3), json!({
                    "reason": "node-9 unreachable",
                    "errors": ["copy of shard 3 to node-9 failed: connection refused"]
                })),
            ]}),
        ],
        ..Script::default()
    });
    let run = fake.run(&["jobs", "watch", "--interval", "10ms"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(!run.stdout.contains("job-1"), "{}", run.stdout);
    assert!(run
        .stdout
        .contains("job-2 drainNode 1/2 shards, running/copying"));
    assert!(run
        .stdout
        .contains("job-3 setReplicationFactor 0/3 shards, running/planning"));
    assert!(run.stdout.contains("job-2 succeeded: 2/2 shards"));
    assert!(run.stdout.contains(
        "job-3 failed: node-9 unreachable\n  error: copy of shard 3 to node-9 failed: connection refused\n"
    ));
    assert_eq!(fake.list_polls(), 3);
}

#[test]
fn watching_when_nothing_runs() {
    let fake = Fake::start(Script {
        lists: vec![json!({"results": [job("job-1", "addNode", "canceled", "copying", 1, 4)]})],
        ..Script::default()
    });
    let run = fake.run(&["jobs", "watch"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "No unfinished job to watch.\n");
}

#[test]
fn a_canceled_job_fails_the_watch() {
    let mut jobs = HashMap::new();
    jobs.insert(
        "job-5".to_string(),
        vec![
            job("job-5", "removeNode", "running", "copying", 0, 1),
            with(
                job("job-5", "removeNode", "canceled", "copying", 0, 1),
                json!({"reason": "canceled by the operator"}),
            ),
        ],
    );
    let fake = Fake::start(Script {
        jobs,
        ..Script::default()
    });
    let run = fake.run(&["jobs", "watch", "job-5", "--interval", "10ms"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run
        .stdout
        .ends_with("job-5 canceled: canceled by the operator\n"));
}

#[test]
fn node_add_prints_the_job() {
    let fake = Fake::start(Script {
        key: Some("secret".into()),
        canned: canned(&[(
            "POST /_miroir/nodes",
            202,
            json!({"job": job("job-7", "addNode", "running", "planning", 0, 16)}),
        )]),
        ..Script::default()
    });
    let run = fake.run(&[
        "--admin-key",
        "secret",
        "node",
        "add",
        "node-4",
        "10.0.0.4:7700",
        "--group",
        "a",
        "--weight",
        "2",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("Job job-7 (addNode) accepted"));
    assert!(run.stdout.contains("miroirctl jobs watch job-7"));
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].target, "/_miroir/nodes");
    assert_eq!(requests[0].authorization.as_deref(), Some("Bearer secret"));
    assert_eq!(
        requests[0].body,
        json!({"id": "node-4", "address": "10.0.0.4:7700", "group": "a", "weight": 2})
    );
}

#[test]
fn node_add_then_watch() {
    let mut jobs = HashMap::new();
    jobs.insert(
        "job-7".to_string(),
        vec![
            job("job-7", "addNode", "running", "copying", 1, 2),
            job("job-7", "addNode", "succeeded", "done", 2, 2),
        ],
    );
    let fake = Fake::start(Script {
        jobs,
        canned: canned(&[(
            "POST /_miroir/nodes",
            202,
            json!({"job": job("job-7", "addNode", "running", "planning", 0, 2)}),
        )]),
        ..Script::default()
    });
    let run = fake.run(&[
        "node",
        "add",
        "n4",
        "h4:7700",
        "--group",
        "a",
        "--watch",
        "--interval",
        "10ms",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("Job job-7 (addNode) accepted"));
    assert!(run.stdout.contains("job-7 addNode 1/2 shards"));
    assert!(run
        .stdout
        .ends_with("job-7 succeeded: 2/2 shards, 2,000 documents copied\n"));
    assert_eq!(fake.requests()[0].body.get("weight"), None);
}

#[test]
fn an_error_answer_exits_1_with_its_message() {
    let fake = Fake::start(Script {
        key: Some("secret".into()),
        lists: vec![json!({"results": []})],
        ..Script::default()
    });
    let run = fake.run(&["jobs"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains(
        "error: The Authorization header is missing. It must use the bearer authorization method."
    ));
    assert!(run.stderr.contains("code: missing_authorization"));
    assert!(run.stderr.contains("MIROIR_ADMIN_KEY"));

    let wrong = fake.run(&["--admin-key", "nope", "jobs"]);
    assert_eq!(wrong.code, Some(1));
    assert!(wrong.stderr.contains("The provided API key is invalid."));
    assert!(wrong.stderr.contains("code: invalid_api_key"));

    let from_env = miroirctl(
        &["jobs"],
        &[("MIROIR_URL", &fake.url), ("MIROIR_ADMIN_KEY", "secret")],
    );
    assert_eq!(from_env.code, Some(0), "{from_env:?}");
    assert_eq!(from_env.stdout, "No jobs.\n");
}

#[test]
fn an_unreachable_server_exits_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = miroirctl(
        &["--url", &format!("http://127.0.0.1:{port}"), "status"],
        &[],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains(&format!(
        "error: cannot reach http://127.0.0.1:{port}/_miroir/topology"
    )));
}

#[test]
fn every_change_calls_its_route() {
    let accepted =
        |id: &str, kind: &str| json!({"job": job(id, kind, "running", "planning", 0, 1)});
    let fake = Fake::start(Script {
        canned: canned(&[
            (
                "POST /_miroir/nodes/n%201/drain",
                202,
                accepted("job-1", "drainNode"),
            ),
            (
                "DELETE /_miroir/nodes/n2?force=true",
                200,
                json!({"topology": {"epoch": 9, "shards": 16, "nodes": [{"id": "n1"}]}}),
            ),
            (
                "DELETE /_miroir/nodes/n3",
                202,
                accepted("job-2", "removeNode"),
            ),
            ("POST /_miroir/groups", 202, accepted("job-3", "addGroup")),
            (
                "DELETE /_miroir/groups/b",
                200,
                json!({"topology": {"epoch": 10, "shards": 16, "nodes": []}}),
            ),
            (
                "PUT /_miroir/groups/a/replication-factor",
                202,
                accepted("job-4", "setReplicationFactor"),
            ),
            (
                "POST /_miroir/jobs/job-4/pause",
                200,
                with(
                    job("job-4", "setReplicationFactor", "paused", "copying", 0, 1),
                    json!({"reason": "operator"}),
                ),
            ),
            (
                "POST /_miroir/jobs/job-4/resume",
                200,
                job("job-4", "setReplicationFactor", "running", "copying", 0, 1),
            ),
            (
                "POST /_miroir/jobs/job-4/cancel",
                200,
                job("job-4", "setReplicationFactor", "canceled", "copying", 0, 1),
            ),
            (
                "PATCH /_miroir/replication",
                200,
                json!({"topology": {"epoch": 11, "shards": 16, "nodes": [], "minCopies": 2}}),
            ),
        ]),
        ..Script::default()
    });
    let cases: &[(&[&str], &str)] = &[
        (&["node", "drain", "n 1"], "Job job-1 (drainNode) accepted"),
        (
            &["node", "remove", "n2", "--force"],
            "Done: topology epoch 9, 1 nodes, 16 shards.",
        ),
        (&["node", "remove", "n3"], "Job job-2 (removeNode) accepted"),
        (
            &[
                "group",
                "add",
                "b",
                "--node",
                "n5=10.0.1.5:7700",
                "--node",
                "n6=10.0.1.6:7700",
            ],
            "Job job-3 (addGroup) accepted",
        ),
        (&["group", "remove", "b"], "Done: topology epoch 10"),
        (
            &["rf", "set", "3", "--group", "a"],
            "Job job-4 (setReplicationFactor) accepted",
        ),
        (
            &["jobs", "pause", "job-4"],
            "job-4 is paused/copying: operator",
        ),
        (&["jobs", "resume", "job-4"], "job-4 is running/copying"),
        (&["jobs", "cancel", "job-4"], "job-4 is canceled/copying"),
        (
            &[
                "replication",
                "--min-copies",
                "2",
                "--unavailable-shards",
                "partial",
            ],
            "Done: topology epoch 11",
        ),
    ];
    for (args, expected) in cases {
        let run = fake.run(args);
        assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
        assert!(run.stdout.contains(expected), "{args:?}: {}", run.stdout);
    }
    let requests = fake.requests();
    let group_add = requests
        .iter()
        .find(|r| r.target == "/_miroir/groups" && r.method == "POST")
        .unwrap();
    assert_eq!(
        group_add.body,
        json!({"name": "b", "nodes": [
            {"id": "n5", "address": "10.0.1.5:7700"},
            {"id": "n6", "address": "10.0.1.6:7700"}
        ]})
    );
    let rf = requests.iter().find(|r| r.method == "PUT").unwrap();
    assert_eq!(rf.body, json!({"replicationFactor": 3}));
    let policy = requests.iter().find(|r| r.method == "PATCH").unwrap();
    assert_eq!(
        policy.body,
        json!({"minCopies": 2, "unavailableShards": "partial"})
    );
    assert!(requests.iter().all(|r| r.authorization.is_none()));
}

fn topology() -> Value {
    json!({"epoch": 12, "shards": 4, "replicationFactor": 1, "nodes": [
        {"id": "n1", "address": "10.0.0.1:7700", "group": "a", "state": "active", "draining": false},
        {"id": "n2", "address": "10.0.0.2:7700", "group": "a", "state": "active", "draining": false},
        {"id": "n3", "address": "10.0.1.3:7700", "group": "b", "state": "active", "draining": false}
    ]})
}

#[test]
fn status_shows_balance_copies_and_fleet() {
    let fake = Fake::start(Script {
        canned: canned(&[
            ("GET /_miroir/topology", 200, topology()),
            (
                "GET /_miroir/shards",
                200,
                json!({"epoch": 12, "groups": ["a", "b"], "shards": [
                    {"shard": 0, "owners": {"a": ["n1"], "b": ["n3"]},
                     "copies": {"a": [{"node": "n1", "state": "active"}], "b": [{"node": "n3", "state": "active"}]}},
                    {"shard": 1, "owners": {"a": ["n2"], "b": ["n3"]},
                     "copies": {"a": [{"node": "n1", "state": "retiring"}, {"node": "n2", "state": "copying"}],
                                "b": [{"node": "n3", "state": "active"}]}},
                    {"shard": 2, "owners": {"a": ["n1"], "b": ["n3"]}},
                    {"shard": 3, "owners": {"a": ["n1"], "b": ["n3"]}}
                ]}),
            ),
            (
                "GET /_miroir/fleet",
                200,
                json!({"epoch": 12, "servedEpoch": 12, "leader": true,
                "fleet": {"envoys": [{"nodeId": "envoy-a", "cluster": "c", "epoch": 12},
                                     {"nodeId": "envoy-b", "cluster": "c", "epoch": 11}]},
                "rollout": {"state": "idle"}}),
            ),
        ]),
        ..Script::default()
    });
    let run = fake.run(&["status"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let out = &run.stdout;
    assert!(
        out.starts_with("Topology epoch 12: 4 shards, replication factor 1, 3 nodes in 2 groups\n"),
        "{out}"
    );
    assert!(
        out.contains("a      n1    10.0.0.1:7700  active  no        3\n"),
        "{out}"
    );
    assert!(out.contains("a      n2    10.0.0.2:7700  active  no        1\n"));
    assert!(out.contains("b      n3    10.0.1.3:7700  active  no        4\n"));
    assert!(out.contains("Balance (shards per node): a min 1 / max 3; b min 4 / max 4\n"));
    assert!(out.contains(
        "Copies not active (2):\n  shard 1 in a: n1 retiring\n  shard 1 in a: n2 copying\n"
    ));
    assert!(out.contains("Fleet: epoch 12, served 12, leader, rollout idle, 2 Envoys\n"));
    assert!(out.contains("  epoch 12: 1 (envoy-a)\n  epoch 11 (behind): 1 (envoy-b)\n"));
}

#[test]
fn status_from_an_older_server() {
    let fake = Fake::start(Script {
        canned: canned(&[
            ("GET /_miroir/topology", 200, topology()),
            (
                "GET /_miroir/shards",
                200,
                json!({"epoch": 12, "replicationFactor": 1, "groups": ["a", "b"], "shards": [
                    {"shard": 0, "owners": {"a": ["n1"], "b": ["n3"]}},
                    {"shard": 1, "owners": {"a": ["n2"], "b": ["n3"]}}
                ]}),
            ),
        ]),
        ..Script::default()
    });
    let run = fake.run(&["status"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run
        .stdout
        .contains("Balance (shards per node): a min 1 / max 1; b min 2 / max 2\n"));
    assert!(run.stdout.contains("Copies not active: none\n"));
    assert!(run
        .stdout
        .contains("Fleet: unavailable (Nothing at GET /_miroir/fleet.)\n"));
}

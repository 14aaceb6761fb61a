//! Webhooks through a real Envoy: the control plane keeps them and calls each once per finished
//! global task, with Meilisearch's payload (gzip NDJSON of task objects), never once per node.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use miroir_e2e::{Fleet, FleetOptions, Spec};
use serde_json::{json, Value};
use support::wait_task;

/// One request a webhook received: its headers (lower-case names) and its body, decompressed.
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

/// A webhook receiver on a free loopback port, answering 200 to every request.
fn receiver() -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a webhook receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let (sent, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.trim_end().split_once(':') {
                    headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
                }
            }
            let length = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut raw = vec![0; length];
            let _ = reader.read_exact(&mut raw);
            let gzip = headers
                .iter()
                .any(|(n, v)| n == "content-encoding" && v == "gzip");
            let body = if gzip {
                let mut text = String::new();
                let _ = flate2::read::GzDecoder::new(raw.as_slice()).read_to_string(&mut text);
                text
            } else {
                String::from_utf8_lossy(&raw).into_owned()
            };
            let mut stream = reader.into_inner();
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
            if sent.send(Received { headers, body }).is_err() {
                return;
            }
        }
    });
    (url, received)
}

#[test]
fn a_finished_task_reaches_every_webhook_once() {
    let fleet = Fleet::start(
        "webhooks_once",
        Spec::new(&[("n0", "g0"), ("n1", "g0"), ("n2", "g0")], 8, 1),
        FleetOptions::default(),
    );
    let client = fleet.client(0);
    let (url, received) = receiver();
    let (status, hook) = client
        .post(
            "/webhooks",
            &json!({"url": url, "headers": {"x-secret": "s3"}}),
        )
        .pair();
    assert_eq!(status, 201, "{hook}");
    let (_, list) = client.get("/webhooks").pair();
    assert_eq!(list["results"][0]["uuid"], hook["uuid"], "{list}");

    // A write that touches every node: one global task, so one notification.
    let docs: Vec<Value> = (0..40)
        .map(|i| json!({"id": i, "title": format!("t{i}")}))
        .collect();
    let (status, created) = client.post("/indexes/books/documents", &json!(docs)).pair();
    assert_eq!(status, 202, "{created}");
    let task = wait_task(&client, &created);
    let uid = created["taskUid"].as_u64().expect("taskUid");

    let mut notified = Vec::new();
    while let Ok(request) = received.recv_timeout(Duration::from_secs(10)) {
        let tasks: Vec<Value> = request
            .body
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert!(
            request
                .headers
                .iter()
                .any(|(n, v)| n == "x-secret" && v == "s3"),
            "the webhook's own headers are sent"
        );
        notified.extend(tasks);
        if notified.iter().any(|t| t["uid"] == uid) {
            // Wait a little for a second, duplicate call (one per node would be a bug).
            while let Ok(more) = received.recv_timeout(Duration::from_secs(3)) {
                notified.extend(
                    more.body
                        .lines()
                        .filter_map(|l| serde_json::from_str(l).ok()),
                );
            }
            break;
        }
    }
    let ours: Vec<&Value> = notified.iter().filter(|t| t["uid"] == uid).collect();
    assert_eq!(ours.len(), 1, "once per task, not per node: {notified:?}");
    assert_eq!(ours[0]["status"], "succeeded");
    assert_eq!(
        ours[0]["details"], task["details"],
        "the global task, not a node's"
    );
}

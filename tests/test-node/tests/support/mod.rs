//! What the in-process HTTP tests share: a test node on `127.0.0.1:0`, a minimal HTTP client,
//! the recorded Meilisearch fixtures and comparisons that ignore run-dependent values.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const MASTER_KEY: &str = "test-node-master-key-0123456789";

pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("MEILISEARCH_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/fixtures/meilisearch-1.50"))
}

pub fn fixture(name: &str) -> Value {
    let path = fixtures_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub struct Node {
    pub addr: std::net::SocketAddr,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Node {
    pub async fn start() -> Self {
        Self::start_with(Some(MASTER_KEY)).await
    }

    pub async fn start_with(master_key: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(miroir_test_node::serve(
            listener,
            master_key.map(String::from),
        ));
        Node { addr }
    }

    /// A minimal HTTP/1.1 client: one request per connection, read until close.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Reply {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(req.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8(buf).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(
            !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "{head}"
        );
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap()
        };
        Reply { status, body }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_as(MASTER_KEY, method, path, body).await
    }

    /// A request authenticated with `key` (an empty key sends no `Authorization` header).
    pub async fn call_as(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut headers = Vec::new();
        if !key.is_empty() {
            headers.push(("Authorization".to_string(), format!("Bearer {key}")));
        }
        let bytes = match body {
            Some(b) => {
                headers.push(("Content-Type".into(), "application/json".into()));
                serde_json::to_vec(&b).unwrap()
            }
            None => Vec::new(),
        };
        self.raw(method, path, &headers, &bytes).await
    }

    /// Sends a recorded request as the recording client did.
    pub async fn replay(&self, name: &str) -> (Reply, Value) {
        let f = fixture(name);
        let token = (name == "auth-invalid-key").then_some("not-the-master-key");
        let reply = self.send_fixture(&f, token).await;
        (reply, f["response"].clone())
    }

    /// Sends a fixture's request; `bearer` replaces the recorded `Authorization` value (a tenant
    /// token signed for this node, say).
    pub async fn send_fixture(&self, f: &Value, bearer: Option<&str>) -> Reply {
        let req = &f["request"];
        let mut headers: Vec<(String, String)> = req["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().unwrap().replace("<master key>", MASTER_KEY);
                (k.clone(), v)
            })
            .collect();
        if let Some(bearer) = bearer {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
            headers.push(("Authorization".into(), format!("Bearer {bearer}")));
        }
        let body = match &req["body"] {
            Value::Null => Vec::new(),
            Value::String(s) => {
                // The recording client sent form-encoded when no type was given.
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                {
                    headers.push((
                        "Content-Type".into(),
                        "application/x-www-form-urlencoded".into(),
                    ));
                }
                s.as_bytes().to_vec()
            }
            other => {
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                {
                    headers.push(("Content-Type".into(), "application/json".into()));
                }
                serde_json::to_vec(other).unwrap()
            }
        };
        self.raw(
            req["method"].as_str().unwrap(),
            req["path"].as_str().unwrap(),
            &headers,
            &body,
        )
        .await
    }

    pub async fn wait_task(&self, uid: u64) -> Value {
        for _ in 0..500 {
            let r = self.call("GET", &format!("/tasks/{uid}"), None).await;
            if matches!(
                r.body["status"].as_str(),
                Some("succeeded" | "failed" | "canceled")
            ) {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("task {uid} did not finish");
    }
}

pub const VOLATILE: &[&str] = &[
    "enqueuedAt",
    "startedAt",
    "finishedAt",
    "duration",
    "createdAt",
    "updatedAt",
    "requestUid",
    "processingTimeMs",
    "rawDocumentDbSize",
    "avgDocumentSize",
    "databaseSize",
    "usedDatabaseSize",
    "lastUpdate",
];

/// Replaces run-dependent values so two bodies can be compared with `==`.
pub fn scrub(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        if VOLATILE.contains(&k.as_str()) {
                            json!("<volatile>")
                        } else {
                            scrub(v)
                        },
                    )
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(scrub).collect()),
        other => other.clone(),
    }
}

pub fn assert_same(name: &str, reply: &Reply, expected: &Value) {
    assert_eq!(
        reply.status as u64,
        expected["status"].as_u64().unwrap(),
        "{name}: status, body {}",
        reply.body
    );
    assert_eq!(scrub(&reply.body), scrub(&expected["body"]), "{name}: body");
}

/// Same key order as Meilisearch, at every level of objects (arrays compared element-wise).
pub fn assert_same_shape(name: &str, actual: &Value, expected: &Value) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            let ak: Vec<&String> = a.keys().collect();
            let ek: Vec<&String> = e.keys().collect();
            assert_eq!(ak, ek, "{name}: keys");
            for (k, ev) in e {
                assert_same_shape(&format!("{name}.{k}"), &a[k], ev);
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "{name}: array length");
            for (i, (x, y)) in a.iter().zip(e).enumerate() {
                assert_same_shape(&format!("{name}[{i}]"), x, y);
            }
        }
        _ => {}
    }
}

pub fn hit_ids(body: &Value) -> Vec<Value> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].clone())
        .collect()
}

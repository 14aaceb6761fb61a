//! A fake admin server on an ephemeral port: canned answers, and job states that advance one
//! step per poll. Runs on its own thread (its own Tokio runtime) so tests run the real binary
//! with blocking calls.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test scaffolding: a failure is a panic

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};

/// A request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub body: Value,
    pub authorization: Option<String>,
}

#[derive(Default)]
pub struct Script {
    /// The admin key the fake requires, if any.
    pub key: Option<String>,
    /// `GET /_miroir/jobs`, one answer per poll (the last one stays).
    pub lists: Vec<Value>,
    /// `GET /_miroir/jobs/{id}`, one answer per poll of that job (the last one stays).
    pub jobs: HashMap<String, Vec<Value>>,
    /// Any other request: `"METHOD /path?query"` → status and body.
    pub canned: HashMap<String, (u16, Value)>,
}

#[derive(Default)]
struct Inner {
    script: Script,
    list_polls: usize,
    job_polls: HashMap<String, usize>,
    requests: Vec<Recorded>,
}

type Shared = Arc<Mutex<Inner>>;

pub struct Fake {
    pub url: String,
    inner: Shared,
}

fn step(answers: &[Value], polls: &mut usize) -> Value {
    let i = (*polls).min(answers.len().saturating_sub(1));
    *polls += 1;
    answers.get(i).cloned().unwrap_or(Value::Null)
}

fn meili_error(status: StatusCode, code: &str, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({
            "message": message,
            "code": code,
            "type": kind,
            "link": format!("https://docs.meilisearch.com/errors#{code}"),
        })),
    )
        .into_response()
}

async fn handle(
    State(inner): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let target = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    inner.requests.push(Recorded {
        method: method.to_string(),
        target: target.clone(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        authorization: authorization.clone(),
    });
    if let Some(key) = &inner.script.key {
        match authorization.as_deref() {
            None => return meili_error(
                StatusCode::UNAUTHORIZED,
                "missing_authorization",
                "auth",
                "The Authorization header is missing. It must use the bearer authorization method.",
            ),
            Some(a) if a != format!("Bearer {key}") => {
                return meili_error(
                    StatusCode::FORBIDDEN,
                    "invalid_api_key",
                    "auth",
                    "The provided API key is invalid.",
                )
            }
            Some(_) => {}
        }
    }
    let path = uri.path();
    if method == Method::GET && path == "/_miroir/jobs" && !inner.script.lists.is_empty() {
        let Inner {
            script, list_polls, ..
        } = &mut *inner;
        return Json(step(&script.lists, list_polls)).into_response();
    }
    if method == Method::GET {
        if let Some(id) = path.strip_prefix("/_miroir/jobs/") {
            if inner.script.jobs.contains_key(id) {
                let Inner {
                    script, job_polls, ..
                } = &mut *inner;
                let polls = job_polls.entry(id.to_string()).or_default();
                return Json(step(&script.jobs[id], polls)).into_response();
            }
        }
    }
    if let Some((status, body)) = inner.script.canned.get(&format!("{method} {target}")) {
        return (StatusCode::from_u16(*status).unwrap(), Json(body.clone())).into_response();
    }
    meili_error(
        StatusCode::NOT_FOUND,
        "miroir_not_found",
        "invalid_request",
        &format!("Nothing at {method} {target}."),
    )
}

impl Fake {
    pub fn start(script: Script) -> Fake {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let inner: Shared = Arc::new(Mutex::new(Inner {
            script,
            ..Inner::default()
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Fake { url, inner }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// How many times `GET /_miroir/jobs` was answered.
    pub fn list_polls(&self) -> usize {
        self.inner.lock().unwrap().list_polls
    }

    /// How many times `GET /_miroir/jobs/{id}` was answered.
    pub fn job_polls(&self, id: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .job_polls
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// Runs `miroirctl --url <fake> <args>`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["--url", self.url.as_str()];
        all.extend_from_slice(args);
        miroirctl(&all, &[])
    }
}

/// What a run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the built binary with `args` and extra environment, without the caller's `MIROIR_*`
/// variables or proxies; killed after 60 s.
pub fn miroirctl(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_miroirctl"));
    command
        .args(args)
        .env_remove("MIROIR_URL")
        .env_remove("MIROIR_ADMIN_KEY")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("miroirctl {args:?} did not end within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

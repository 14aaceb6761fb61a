//! One Meilisearch node (real, or the in-memory test double) in its own scratch directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::http::Client;
use crate::paths;
use crate::ports::free_port;
use crate::process::ChildProcess;
use crate::wait::{poll, try_poll, WaitError, DEFAULT_TIMEOUT};

/// Which binary plays a node. Chosen once per run from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Meilisearch(PathBuf),
    TestNode(PathBuf),
}

impl NodeKind {
    /// Real Meilisearch if `MEILISEARCH_BIN` is set, else `miroir-test-node`.
    pub fn from_env() -> NodeKind {
        match paths::meilisearch_bin() {
            Some(bin) => NodeKind::Meilisearch(bin),
            None => NodeKind::TestNode(paths::test_node_bin()),
        }
    }

    pub fn binary(&self) -> &Path {
        match self {
            NodeKind::Meilisearch(bin) | NodeKind::TestNode(bin) => bin,
        }
    }

    pub fn is_real_meilisearch(&self) -> bool {
        matches!(self, NodeKind::Meilisearch(_))
    }

    fn command(&self, dir: &Path, port: u16, master_key: &str) -> Command {
        let db = dir.join("db");
        let http_addr = format!("127.0.0.1:{port}");
        let mut command = match self {
            NodeKind::Meilisearch(bin) => {
                let mut c = Command::new(bin);
                c.arg("--db-path")
                    .arg(&db)
                    .args(["--http-addr", &http_addr, "--master-key", master_key])
                    .args(["--no-analytics", "--env", "development"])
                    .args(["--max-indexing-threads", "1"])
                    .args(["--max-indexing-memory", "256MiB"])
                    .arg("--dump-dir")
                    .arg(dir.join("dumps"))
                    .arg("--snapshot-dir")
                    .arg(dir.join("snapshots"));
                c
            }
            NodeKind::TestNode(bin) => {
                let mut c = Command::new(bin);
                c.args(["--http-addr", &http_addr, "--master-key", master_key])
                    .arg("--db-path")
                    .arg(&db)
                    .arg("--no-analytics");
                c
            }
        };
        // Meilisearch reads ./config.toml and MEILI_* variables: neither may leak in.
        command.current_dir(dir);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("MEILI_") {
                command.env_remove(name);
            }
        }
        command
    }
}

/// A node process. Its port and database survive [`Node::kill`] + [`Node::start`], so a
/// restarted node is the same node at the same address.
#[derive(Debug)]
pub struct Node {
    pub id: String,
    pub group: String,
    kind: NodeKind,
    dir: PathBuf,
    port: u16,
    master_key: String,
    process: Option<ChildProcess>,
}

impl Node {
    /// Starts a node in `dir` on a fresh port and waits until it is available.
    pub fn launch(id: &str, group: &str, kind: &NodeKind, dir: PathBuf, master_key: &str) -> Node {
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut node = Node {
            id: id.to_string(),
            group: group.to_string(),
            kind: kind.clone(),
            dir,
            port: 0,
            master_key: master_key.to_string(),
            process: None,
        };
        // The port is free when picked but not reserved: retry if someone took it meanwhile.
        let mut last = String::new();
        for _ in 0..3 {
            node.port = free_port();
            match node.try_start() {
                Ok(()) => return node,
                Err(Retry(why)) => last = why,
            }
        }
        panic!("node {id} did not start: its port was taken 3 times in a row; last: {last}")
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url(), Some(&self.master_key))
    }

    /// The running process's id (`None` once killed).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.exited().is_none())
    }

    /// SIGKILL: the node vanishes mid-request, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGSTOP: the node hangs (connections accepted, never answered) until [`Node::resume`].
    pub fn pause(&self) {
        if let Some(process) = &self.process {
            process.signal("STOP");
        }
    }

    /// SIGCONT after [`Node::pause`].
    pub fn resume(&self) {
        if let Some(process) = &self.process {
            process.signal("CONT");
        }
    }

    /// Keeps a copy of the stopped node's database as `name` (a backup an operator may restore).
    pub fn save_database(&mut self, name: &str) {
        assert!(!self.is_running(), "node {} runs: stop it first", self.id);
        let saved = self.dir.join(format!("db.{name}"));
        let _ = std::fs::remove_dir_all(&saved);
        copy_tree(&self.dir.join("db"), &saved);
    }

    /// Puts the database saved as `name` back in place of the stopped node's.
    pub fn restore_database(&mut self, name: &str) {
        assert!(!self.is_running(), "node {} runs: stop it first", self.id);
        let db = self.dir.join("db");
        let _ = std::fs::remove_dir_all(&db);
        copy_tree(&self.dir.join(format!("db.{name}")), &db);
    }

    /// (Re)starts the node on its port with its database; waits until it is available.
    pub fn start(&mut self) {
        if self.is_running() {
            return;
        }
        if let Err(Retry(why)) = self.try_start() {
            panic!("node {} did not restart: {why}", self.id)
        }
    }

    fn try_start(&mut self) -> Result<(), Retry> {
        self.kill();
        let command = self.kind.command(&self.dir, self.port, &self.master_key);
        let name = format!("node {}", self.id);
        let mut process = ChildProcess::spawn(&name, command, &self.log_path());
        let client = self.client().without_auth();
        match try_poll(
            DEFAULT_TIMEOUT,
            || process.check_alive(),
            || health(&client),
        ) {
            Ok(()) => {
                self.process = Some(process);
                Ok(())
            }
            // The port can be taken between picking and binding it: only that is worth a retry.
            Err(WaitError::Aborted(why)) if why.to_ascii_lowercase().contains("in use") => {
                Err(Retry(why))
            }
            Err(WaitError::Aborted(why)) => panic!(
                "{name} did not start ({}; stale? `make test` rebuilds it): {why}",
                self.kind.binary().display()
            ),
            Err(WaitError::TimedOut(last)) => panic!(
                "timed out after {DEFAULT_TIMEOUT:?} waiting for {name} at {} to be available; \
                 last: {last}; see {}",
                self.url(),
                self.log_path().display()
            ),
        }
    }
}

/// The node process died while starting because its port was taken.
#[derive(Debug)]
struct Retry(String);

fn health(client: &Client) -> Result<(), String> {
    let reply = client.try_send("GET", "/health", None)?;
    let available = reply.try_json().is_some_and(|v| v["status"] == "available");
    if reply.status == 200 && available {
        Ok(())
    } else {
        Err(format!("GET /health: {} {}", reply.status, reply.text()))
    }
}

/// Waits until the node at `node_url` has no enqueued or processing task (works on real
/// Meilisearch too). Bounded by [`DEFAULT_TIMEOUT`].
pub fn wait_for_tasks(node_url: &str, key: &str) {
    wait_for_tasks_within(node_url, key, DEFAULT_TIMEOUT)
}

pub fn wait_for_tasks_within(node_url: &str, key: &str, timeout: Duration) {
    let client = Client::new(node_url, Some(key));
    poll(
        &format!("{node_url} to finish its tasks"),
        timeout,
        "see the node's node.log",
        || {
            let reply =
                client.try_send("GET", "/tasks?statuses=enqueued,processing&limit=1", None)?;
            let body = reply.try_json().unwrap_or(Value::Null);
            match body["total"].as_u64() {
                Some(0) if reply.status == 200 => Ok(()),
                _ => Err(format!("GET /tasks: {} {}", reply.status, reply.text())),
            }
        },
    )
}

/// `cp -a from to`: a directory tree copied as it is (a node's database has no symlinks out).
fn copy_tree(from: &Path, to: &Path) {
    if !from.exists() {
        // The test node keeps nothing on disk: an empty database is what it restarts with.
        std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
        return;
    }
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap_or_else(|e| panic!("cp -a {} {}: {e}", from.display(), to.display()));
    assert!(
        status.success(),
        "cp -a {} {}: {status}",
        from.display(),
        to.display()
    );
}

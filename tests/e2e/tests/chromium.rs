//! Issue 12, in headless Chromium (Debian's `/usr/bin/chromium`, driven by `playwright-core`
//! from tests/browser/, both installed by `make setup`):
//!
//! - the control plane's page, `/_miroir/ui`, against a running fleet: it asks for the admin key,
//!   refuses a wrong one, then shows the nodes, their copies by state and the shard map as
//!   `/_miroir/shards` has them, an Envoy's epoch and NACK, a job's progress live (without a
//!   reload) up to its end, and a node down with its copies out of sync, then repaired.
//!   Screenshots of the page in the middle of the job (`ui.png`) and with the node down
//!   (`ui-out-of-sync.png`) are written to the test's directory, and to `MIROIR_UI_SCREENSHOTS`
//!   when set (how docs/ui.png is made: docs/ui.md);
//! - a page that uses the official `meilisearch` npm client, served from another origin than
//!   Miroir's, creates an index, adds documents and searches through Envoy.
//!
//! A missing Chromium, Node.js or `tests/browser/node_modules` fails the test: nothing is skipped.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use miroir_e2e::{paths, Cluster, Fleet, FleetOptions, Spec};
use serde_json::{json, Value};
use support::load::{admin, job_started, log_tail, prepare, progress, try_job, SHARDS};
use support::three_nodes;

fn chromium_bin() -> PathBuf {
    std::env::var_os("CHROMIUM_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn browser_dir() -> PathBuf {
    paths::workspace_dir().join("tests/browser")
}

/// Everything the drivers need, or a failure saying how to get it.
fn require_browser_tools() {
    let chromium = chromium_bin();
    assert!(
        chromium.exists(),
        "Chromium not found at {} (set CHROMIUM_BIN, or run `make setup`, which installs \
         Debian's chromium and chromium-driver)",
        chromium.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "Node.js (`node`) is needed to drive Chromium: {node:?}"
    );
    for package in ["playwright-core", "meilisearch"] {
        let dir = browser_dir().join("node_modules").join(package);
        assert!(
            dir.exists(),
            "{} not found (`make setup` runs `npm ci` in tests/browser)",
            dir.display()
        );
    }
}

/// `node <script>` in tests/browser, in a process group of its own: dropping it closes its
/// stdin (the driver then closes Chromium), and SIGKILLs the group after 5 s, so neither Node nor
/// Chromium outlives the test, also when the test panics.
struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    log: PathBuf,
}

impl Driver {
    fn spawn(script: &str, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Driver {
        require_browser_tools();
        let log = dir.join(format!("{script}.log"));
        let stderr = std::fs::File::create(&log).expect("driver log");
        let mut command = Command::new("node");
        command
            .arg(script)
            .args(args)
            .current_dir(browser_dir())
            .env("CHROMIUM_BIN", chromium_bin())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .process_group(0);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node {script}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Driver {
            stdin: child.stdin.take(),
            child,
            lines,
            log,
        }
    }

    /// The driver's next line, as JSON.
    fn answer(&mut self, what: &str, timeout: Duration) -> Value {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {line}")),
            Err(e) => panic!(
                "{what}: no answer from the driver ({e}); its log ({}):\n{}",
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ),
        }
    }

    /// Sends one command and returns its answer; panics on a failed command, or on anything the
    /// page threw or logged as an error.
    fn call(&mut self, command: Value) -> Value {
        let what = command.to_string();
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{what}: the driver is gone ({e})"));
        let answer = self.answer(&what, Duration::from_secs(60));
        assert_eq!(answer["ok"], true, "{what}: {answer}");
        assert_eq!(
            answer["pageErrors"],
            json!([]),
            "{what}: the page reported errors"
        );
        answer
    }

    fn state(&mut self) -> Value {
        self.call(json!({"op": "state"}))["state"].clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The group: Node and every Chromium process it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies per node and state in `GET /_miroir/shards`.
fn copies_by_node(shards: &Value) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for shard in shards["shards"].as_array().into_iter().flatten() {
        for list in shard["copies"].as_object().into_iter().flatten() {
            for copy in list.1.as_array().into_iter().flatten() {
                let node = copy["node"].as_str().unwrap_or_default().to_string();
                let state = copy["state"].as_str().unwrap_or_default().to_string();
                *counts.entry(node).or_default().entry(state).or_default() += 1;
            }
        }
    }
    counts
}

/// A count the page shows.
fn number(cell: &Value) -> Option<u64> {
    cell.as_str()?.parse().ok()
}

/// The page's node rows and shard map against the API, read just before: names, groups,
/// health, copies by state (rows and map cells), epoch.
fn page_matches_api(fleet: &Fleet, shown: &Value) -> Result<(), String> {
    let cp = admin(fleet);
    let topology = cp.get("/_miroir/topology").json();
    let shards = cp.get("/_miroir/shards").json();
    let counts = copies_by_node(&shards);
    let summary_epoch = shown["summary"]["epoch"].as_str().unwrap_or_default();
    if summary_epoch.parse::<u64>().ok() != topology["epoch"].as_u64() {
        return Err(format!(
            "epoch shown {summary_epoch}, stored {}",
            topology["epoch"]
        ));
    }
    let rows: BTreeMap<&str, &Value> = shown["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (r["node"].as_str().unwrap_or_default(), r))
        .collect();
    let nodes = topology["nodes"].as_array().cloned().unwrap_or_default();
    let ids: Vec<&str> = nodes.iter().filter_map(|n| n["id"].as_str()).collect();
    if rows.keys().copied().collect::<Vec<_>>() != {
        let mut sorted = ids.clone();
        sorted.sort();
        sorted
    } {
        return Err(format!("nodes shown {:?}, stored {ids:?}", rows.keys()));
    }
    for node in &nodes {
        let id = node["id"].as_str().unwrap_or_default();
        let row = rows[id];
        if row["id"] != id || row["group"] != node["group"] || row["address"] != node["address"] {
            return Err(format!("row of {id}: {row}, stored {node}"));
        }
        let health = row["health"].as_str().unwrap_or_default();
        if !health.starts_with(node["state"].as_str().unwrap_or("?")) {
            return Err(format!("{id} shown {health}, stored {}", node["state"]));
        }
        let of = |state: &str| counts.get(id).and_then(|c| c.get(state)).copied();
        let total: u64 = counts.get(id).map(|c| c.values().sum()).unwrap_or(0);
        if number(&row["copies"]) != Some(total) {
            return Err(format!(
                "{id}: {} copies shown, {total} stored",
                row["copies"]
            ));
        }
        for state in ["active", "copying", "leaving", "outOfSync"] {
            let stored = of(state).unwrap_or(0);
            if number(&row[state]) != Some(stored) {
                return Err(format!(
                    "{id}: {} {state} shown, {stored} stored",
                    row[state]
                ));
            }
            let cells = shown["map"][node["group"].as_str().unwrap_or_default()][id][state]
                .as_u64()
                .unwrap_or(0);
            if cells != stored {
                return Err(format!(
                    "{id}: {cells} {state} cells in the map, {stored} stored"
                ));
            }
        }
    }
    Ok(())
}

/// The page's row of job `id`, if shown.
fn job_row<'a>(shown: &'a Value, id: &str) -> Option<&'a Value> {
    shown["jobs"]
        .as_array()?
        .iter()
        .find(|j| j["job"].as_str() == Some(id))
}

/// `k / n` of a progress cell (`"3 / 32 shards (9%)"`).
fn shards_shown(row: &Value) -> (u64, u64) {
    let text = row["progress"].as_str().unwrap_or_default();
    let mut numbers = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().unwrap_or(0));
    let done = numbers
        .next()
        .unwrap_or_else(|| panic!("progress `{text}`"));
    let total = numbers
        .next()
        .unwrap_or_else(|| panic!("progress `{text}`"));
    (done, total)
}

/// A PNG of the whole page in the test's directory, copied to `$MIROIR_UI_SCREENSHOTS/<name>`
/// when that is set (docs/ui.md: how docs/ui.png is made).
fn screenshot(driver: &mut Driver, fleet: &Fleet, name: &str) {
    let path = fleet.dir().join(name);
    driver.call(json!({"op": "screenshot", "path": path}));
    println!("screenshot: {}", path.display());
    if let Some(dir) = std::env::var_os("MIROIR_UI_SCREENSHOTS").filter(|d| !d.is_empty()) {
        let to = PathBuf::from(dir).join(name);
        std::fs::copy(&path, &to)
            .unwrap_or_else(|e| panic!("copy the screenshot to {}: {e}", to.display()));
        println!("screenshot copied to {}", to.display());
    }
}

#[test]
fn the_operators_page_shows_the_cluster_and_a_job_live() {
    require_browser_tools();
    let spec = Spec::new(&[("n0", "g0"), ("n1", "g0"), ("n2", "g0")], SHARDS, 2);
    // A copy slow enough for the page to show the job in the middle of it.
    let options = FleetOptions {
        copy_concurrency: 1,
        copy_documents_per_second: 500,
        ..FleetOptions::default()
    };
    let mut fleet = Fleet::start("chromium_ui", spec, options);
    prepare(&fleet, 6_000);
    // A filter binary every Envoy rejects: a NACK the page shows.
    let garbage = fleet.dir().join("garbage.wasm");
    std::fs::write(&garbage, b"not a WebAssembly module").expect("garbage.wasm");
    let (status, body) = admin(&fleet)
        .put("/_miroir/filter", &json!({"wasm": garbage}))
        .pair();
    assert_eq!(status, 409, "PUT /_miroir/filter: {body}");

    let mut page = Driver::spawn("ui-driver.mjs", fleet.dir(), &[], &[]);
    let url = format!("{}/_miroir/ui", fleet.control_plane(0).url());
    // The page holds nothing without the key: it asks for it.
    let opened = page.call(json!({"op": "open", "url": url}));
    assert_eq!(opened["login"], true, "{opened}");
    let shown = page.state();
    assert!(
        shown["nodes"] == json!([]) && shown["dashboard"] == false,
        "{shown}"
    );
    let refused = page.call(json!({"op": "login", "key": "not-the-admin-key"}))["state"].clone();
    assert_eq!(refused["login"], true, "{refused}");
    assert!(
        refused["loginError"]
            .as_str()
            .is_some_and(|e| e.contains("invalid")),
        "{refused}"
    );
    let shown = page.call(json!({"op": "login", "key": fleet.admin_key()}))["state"].clone();
    assert_eq!(
        (&shown["login"], &shown["dashboard"]),
        (&json!(false), &json!(true)),
        "{shown}"
    );
    fleet.eventually("the page to show the nodes and copies stored", || {
        page_matches_api(&fleet, &page.state())
    });
    // The Envoy, at the stored epoch, with the NACK of the rejected binary (Envoy's message).
    let envoy = fleet.envoy_id(0);
    let nack = fleet.control_plane(0).fleet()["rollout"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!nack.is_empty(), "no NACK in /_miroir/fleet");
    let shown = fleet.eventually("the page to show the Envoy and its NACK", || {
        let shown = page.state();
        let row = shown["envoys"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["envoy"] == envoy.as_str()).cloned())
            .ok_or_else(|| format!("no row for {envoy}: {}", shown["envoys"]))?;
        let nacks = row["nacks"].as_str().unwrap_or_default();
        (row["epoch"] == shown["summary"]["epoch"] && nacks.contains(&nack))
            .then_some(shown.clone())
            .ok_or_else(|| format!("{row}, NACK `{nack}`"))
    });
    assert!(
        shown["rollout"]
            .as_str()
            .is_some_and(|r| r.contains("stopped") && r.contains(&envoy)),
        "{}",
        shown["rollout"]
    );
    assert_eq!(shown["jobs"], json!([]), "no job yet");

    // A 4th node: a job whose progress the page follows by itself.
    let address = fleet.launch_node("n3", "g0");
    let reply = admin(&fleet).post(
        "/_miroir/nodes",
        &json!({"id": "n3", "address": address, "group": "g0"}),
    );
    let job = job_started(&fleet, "POST /_miroir/nodes n3", &reply);
    let refreshed_before = page.state()["refreshes"].as_u64().unwrap_or(0);
    let mut seen: Vec<(u64, u64, String, String)> = Vec::new();
    let mut shot = false;
    let deadline = Instant::now() + Duration::from_secs(300);
    let last = loop {
        let shown = page.state();
        if let Some(row) = job_row(&shown, &job) {
            let (done, total) = shards_shown(row);
            let state = row["state"].as_str().unwrap_or_default().to_string();
            let phase = row["phase"].as_str().unwrap_or_default().to_string();
            if seen.last().map(|s| (s.0, &s.2, &s.3)) != Some((done, &state, &phase)) {
                println!("page: job {job} {state}/{phase} {done}/{total}");
                seen.push((done, total, state.clone(), phase.clone()));
            }
            let n3_copying = shown["map"]["g0"]["n3"]["copying"].as_u64().unwrap_or(0);
            if !shot && state == "running" && phase == "copy" && done > 0 && n3_copying > 0 {
                screenshot(&mut page, &fleet, "ui.png");
                shot = true;
            }
            if matches!(state.as_str(), "succeeded" | "failed" | "canceled") {
                break shown;
            }
        }
        assert!(
            Instant::now() < deadline,
            "job {job} not finished on the page after 300 s; seen {seen:?}; job: {:?}\n{}",
            try_job(&fleet, &job).map(|j| progress(&j)),
            log_tail(&fleet)
        );
        std::thread::sleep(Duration::from_millis(150));
    };
    let stored = try_job(&fleet, &job).expect("the job");
    let row = job_row(&last, &job).expect("the job's row");
    assert_eq!(row["state"], "succeeded", "{row}; {}", progress(&stored));
    assert_eq!(
        (row["kind"].as_str(), row["phase"].as_str()),
        (Some("addNode"), Some("done"))
    );
    assert_eq!(row["documents"], stored["documentsCopied"].to_string());
    let total = stored["shardsTotal"].as_u64().unwrap_or(0);
    assert!(total > 0, "{stored}");
    assert!(
        seen.iter().all(|s| s.1 == total) && seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "the page's shard count went back or changed its total: {seen:?}"
    );
    assert!(
        seen.iter().any(|s| s.0 > 0 && s.0 < total) && seen.last().map(|s| s.0) == Some(total),
        "the page should count shards up to {total} while the job runs: {seen:?}"
    );
    assert!(shot, "no screenshot in the middle of the copy: {seen:?}");
    assert!(
        last["refreshes"].as_u64().unwrap_or(0) > refreshed_before + 2,
        "the page did not refresh by itself"
    );
    fleet.eventually("the page to show the 4 nodes' copies", || {
        page_matches_api(&fleet, &page.state())
    });

    // A node down, a write it misses: its copies out of sync, the node failed; then back, the
    // leader's repair, shown as a job, and every copy active again.
    fleet.kill_node("n1");
    let docs: Vec<Value> = (100_000..100_300)
        .map(|id| json!({"id": id, "title": format!("written while n1 is down {id}")}))
        .collect();
    let (status, enqueued) = fleet
        .client(0)
        .post("/indexes/movies/documents", &Value::Array(docs))
        .pair();
    assert_eq!(status, 202, "{enqueued}");
    support::wait_task(&fleet.client(0), &enqueued);
    let shown = fleet.eventually("the page to show n1 failed and out of sync", || {
        let shown = page.state();
        page_matches_api(&fleet, &shown)?;
        let row = shown["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["node"] == "n1").cloned())
            .unwrap_or_default();
        (row["health"] == "failed" && row["outOfSync"] != "0")
            .then_some(shown)
            .ok_or_else(|| format!("n1: {row}"))
    });
    println!("page: n1 {}", shown["nodes"]);
    screenshot(&mut page, &fleet, "ui-out-of-sync.png");
    fleet.restart_node("n1");
    fleet.eventually_within(
        "the page to show the repair done and n1 in sync",
        Duration::from_secs(180),
        || {
            let shown = page.state();
            page_matches_api(&fleet, &shown)?;
            let repaired = shown["jobs"].as_array().is_some_and(|jobs| {
                jobs.iter()
                    .any(|j| j["kind"] == "repair" && j["state"] == "succeeded")
            });
            let in_sync = shown["nodes"].as_array().is_some_and(|n| {
                n.iter()
                    .all(|n| n["outOfSync"] == "0" && n["health"] != "failed")
            });
            (repaired && in_sync)
                .then_some(())
                .ok_or_else(|| format!("jobs {}, nodes {}", shown["jobs"], shown["nodes"]))
        },
    );
}

#[test]
fn the_official_js_client_indexes_and_searches_from_a_page_of_another_origin() {
    require_browser_tools();
    let cluster = Cluster::start("chromium_sdk", three_nodes(2));
    let host = cluster.envoy_url();
    let shot = cluster.dir().join("sdk.png");
    let mut driver = Driver::spawn(
        "sdk.mjs",
        cluster.dir(),
        &[
            ("MIROIR_URL", &host),
            ("MIROIR_KEY", cluster.master_key()),
            ("MIROIR_INDEX", "movies"),
        ],
        &[&shot.to_string_lossy()],
    );
    let result = driver.answer("the page", Duration::from_secs(120));
    assert_eq!(result["ok"], true, "{result:#}");
    assert_eq!(result["pageErrors"], json!([]), "{result:#}");
    let page_origin = result["pageOrigin"].as_str().unwrap_or_default();
    assert!(
        page_origin.starts_with("http://localhost:") && !host.starts_with(page_origin),
        "the page ({page_origin}) must be of another origin than Miroir ({host})"
    );
    let set_up = &result["setUp"];
    let types: Vec<&str> = set_up["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            assert_eq!(t["status"], "succeeded", "{t}");
            t["type"].as_str().unwrap_or_default()
        })
        .collect();
    assert_eq!(
        types,
        [
            "indexCreation",
            "settingsUpdate",
            "documentAdditionOrUpdate"
        ]
    );
    assert_eq!(set_up["dramas"], json!([1, 3, 6, 7]), "{set_up}");
    assert_eq!(set_up["dramaTotal"], 4, "{set_up}");
    assert_eq!(set_up["genreFacet"], json!({"drama": 4}), "{set_up}");
    assert_eq!(
        set_up["document"],
        json!({"id": 7, "title": "The Mirror"}),
        "{set_up}"
    );
    assert_eq!(set_up["numberOfDocuments"], 8, "{set_up}");
    // Typed in the search box.
    let hits: Vec<u64> = result["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["id"].as_u64())
        .collect();
    let mut sorted = hits.clone();
    sorted.sort();
    assert_eq!(sorted, [7, 8], "{}", result["hits"]);
    // Every request went to Envoy carrying the page's origin (a CORS request), writes and
    // searches among them; the answers reached the page, so each passed Chromium's CORS check.
    let requests = result["requests"].as_array().cloned().unwrap_or_default();
    assert!(
        requests.iter().all(|r| r["origin"] == page_origin),
        "{requests:#?}"
    );
    for expected in [
        "POST /indexes",
        "POST /indexes/movies/documents",
        "POST /indexes/movies/search",
    ] {
        assert!(
            requests.iter().any(|r| r["request"] == expected),
            "no {expected} in {requests:#?}"
        );
    }
    for r in &requests {
        println!(
            "the page sent {} ×{} (Origin {})",
            r["request"], r["times"], r["origin"]
        );
    }
}

//! `make bench`'s migration scenario (`--only migration`): what adding a 4th node costs.
//!
//! 1. The baseline: one fresh node alone (no Envoy, not in any topology) indexes the corpus in
//!    batches of 1000, all enqueued at once, until every task succeeded (documents/s).
//! 2. A fleet of 3 nodes (one group, 64 shards, RF 1) behind the control plane and one Envoy
//!    indexes the same documents through Envoy; then a warm-up and `searches` searches of the
//!    query mix from one client: latency before any migration.
//! 3. A 4th node is started and added (`POST /_miroir/nodes`); one client keeps searching (the
//!    same mix, back to back) while the job runs, until the job succeeded. The job is polled
//!    every 50 ms, so its phases' wall times are known to that precision.
//! 4. `searches` more searches on the 4 nodes (after), every node's `numberOfDocuments`, and the
//!    document batches of the new node and of the baseline's (Meilisearch's `GET /batches`).
//!
//! Reported beside the goals, never asserted: the job's copy throughput (`documentsCopied` /
//! `copySeconds`) against the node's own indexing throughput (≥ 0.8×), search p50/p99 during
//! the job against before it (≤ 1.3×), and `documentsCopied` against the optimum (the
//! documents the new node holds at the end).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use miroir_e2e::{paths, wait_for_tasks, Client, Cluster, Fleet, FleetOptions, LogLevels, Spec};
use serde_json::{json, Value};

use super::{corpus, fail, index_corpus, latency, query_mix, search, try_search, Latency, INDEX};

/// Default documents when `--docs` is not given (the latency scenario's default is smaller).
pub const DEFAULT_DOCS: usize = 20_000;
const SHARDS: u32 = 64;
const GOAL_COPY_RATIO: f64 = 0.8;
const GOAL_LATENCY_RATIO: f64 = 1.3;
/// How often the job is polled.
const POLL: Duration = Duration::from_millis(50);
/// The longest a job may take before the bench gives up.
const JOB_TIMEOUT: Duration = Duration::from_secs(1800);
/// The longest a job may stay paused (for a node that does not answer) before the bench gives
/// up, in seconds.
const PAUSE_TIMEOUT: f64 = 120.0;

pub struct Settings {
    pub docs: usize,
    pub warmup: usize,
    pub searches: usize,
    pub queries: usize,
    pub levels: LogLevels,
}

/// Searches of one window: latency of those answered with 200, and the others by kind.
pub struct Window {
    pub latency: Latency,
    pub failed: Vec<(String, usize)>,
}

impl Window {
    fn of(samples: &[(f64, Result<f64, String>)]) -> Window {
        let mut failed: Vec<(String, usize)> = Vec::new();
        let mut ok = Vec::new();
        for (_, outcome) in samples {
            match outcome {
                Ok(ms) => ok.push(*ms),
                Err(kind) => match failed.iter_mut().find(|(k, _)| k == kind) {
                    Some((_, n)) => *n += 1,
                    None => failed.push((kind.clone(), 1)),
                },
            }
        }
        Window {
            latency: latency(ok),
            failed,
        }
    }

    fn failures(&self) -> String {
        if self.failed.is_empty() {
            return "0".into();
        }
        let kinds: Vec<String> = self
            .failed
            .iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect();
        kinds.join(", ")
    }
}

/// Batches of document writes a node processed, and the time it spent in them.
pub struct Batches {
    pub batches: usize,
    pub tasks: u64,
    pub seconds: f64,
}

pub struct Migration {
    pub docs: usize,
    pub control_plane: PathBuf,
    /// The node alone: seconds and documents/s.
    pub baseline: (f64, f64),
    /// Through Envoy into the 3 nodes: seconds and documents/s.
    pub fleet_indexing: (f64, f64),
    pub before: Window,
    /// From `POST /_miroir/nodes` until the job was seen `succeeded`.
    pub during: Window,
    /// While the job was seen in its `copy` phase.
    pub during_copy: Option<Window>,
    pub after: Window,
    /// The job as last read.
    pub job: Value,
    /// Each phase (`state/phase` unless running) and when the poll first saw it (seconds after
    /// the POST).
    pub phases: Vec<(String, f64)>,
    /// Every reason the job gave (a pause's), with when it was first seen.
    pub pauses: Vec<String>,
    pub job_seconds: f64,
    /// `numberOfDocuments` of the index on every node at the end, read on the node.
    pub holdings: Vec<(String, u64)>,
    /// `estimatedTotalHits` of a placeholder search through Envoy at the end.
    pub visible: Option<u64>,
    /// The new node's document batches (Meilisearch's `GET /batches`; `None` where the node
    /// has no such route).
    pub target_batches: Option<Batches>,
    /// The same on the node alone of the baseline.
    pub baseline_batches: Option<Batches>,
    /// `/proc/loadavg`'s 1-minute figure at the start and at the end of the scenario (what
    /// else ran on the machine).
    pub load: (Option<f64>, Option<f64>),
}

impl Migration {
    /// Wall time of the copy phase as the polls saw it.
    fn copy_wall(&self) -> Option<f64> {
        let start = self.phase_seen("copy")?;
        let end = ["cutOver", "cleanUp", "done"]
            .iter()
            .find_map(|p| self.phase_seen(p))?;
        Some(end - start)
    }

    fn phase_seen(&self, phase: &str) -> Option<f64> {
        self.phases
            .iter()
            .find(|(p, _)| p == phase)
            .map(|(_, t)| *t)
    }

    /// The documents the new node holds: what an optimal job copies.
    fn optimum(&self) -> u64 {
        self.holdings
            .iter()
            .find(|(id, _)| id == "n3")
            .map_or(0, |(_, n)| *n)
    }
}

/// When `MIROIR_CONTROL_PLANE_BIN` is unset, uses the release build next to this binary if
/// there is one (`cargo build --release -p miroir-control-plane`), before the harness's
/// default (the debug build). Call before any thread starts.
pub fn prefer_release_control_plane() {
    if std::env::var_os("MIROIR_CONTROL_PLANE_BIN").is_some_and(|v| !v.is_empty()) {
        return;
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("miroir-control-plane")));
    if let Some(bin) = sibling.filter(|b| b.exists()) {
        std::env::set_var("MIROIR_CONTROL_PLANE_BIN", bin);
    }
}

/// The control plane's binary, or why there is none.
pub fn control_plane_binary() -> Result<PathBuf, String> {
    let bin = std::env::var_os("MIROIR_CONTROL_PLANE_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::target_dir().join("debug/miroir-control-plane"));
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "no miroir-control-plane at {} (`cargo build --release -p miroir-control-plane`, \
             or set MIROIR_CONTROL_PLANE_BIN)",
            bin.display()
        ))
    }
}

/// Stops the searching thread (a scope waits for it), then fails.
fn stop_and_fail<T>(stop: &AtomicBool, why: String) -> T {
    stop.store(true, Ordering::Relaxed);
    fail(&why)
}

fn job_id(reply: &Value) -> Option<String> {
    let id = &reply["job"]["id"];
    id.as_str()
        .map(str::to_string)
        .or_else(|| id.as_u64().map(|n| n.to_string()))
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Seconds of an ISO 8601 duration as Meilisearch writes them (`PT0.123S`, `PT1M2.5S`).
fn iso_seconds(duration: &str) -> Option<f64> {
    let rest = duration.strip_prefix("PT")?;
    let (mut total, mut number) = (0.0, String::new());
    for c in rest.chars() {
        let unit = match c {
            'H' => 3600.0,
            'M' => 60.0,
            'S' => 1.0,
            _ => {
                number.push(c);
                continue;
            }
        };
        total += number.parse::<f64>().ok()? * unit;
        number.clear();
    }
    number.is_empty().then_some(total)
}

/// The node's batches that added or updated documents (`GET /batches`).
pub fn document_batches(client: &Client) -> Option<Batches> {
    let reply = client.try_send("GET", "/batches?limit=10000", None).ok()?;
    let body = reply.try_json().filter(|_| reply.status == 200)?;
    let mut out = Batches {
        batches: 0,
        tasks: 0,
        seconds: 0.0,
    };
    for batch in body["results"].as_array()? {
        if batch["stats"]["types"]
            .get("documentAdditionOrUpdate")
            .is_none()
        {
            continue;
        }
        out.batches += 1;
        out.tasks += batch["stats"]["totalNbTasks"].as_u64().unwrap_or(0);
        out.seconds += batch["duration"].as_str().and_then(iso_seconds)?;
    }
    Some(out)
}

pub fn node_documents(client: &Client) -> u64 {
    let (status, stats) = client.get(&format!("/indexes/{INDEX}/stats")).pair();
    match (status, stats["numberOfDocuments"].as_u64()) {
        (200, Some(n)) => n,
        _ => fail(&format!("GET /indexes/{INDEX}/stats: {status} {stats}")),
    }
}

/// `n` searches of the mix from one client, back to back, starting at query `from`.
fn searches(client: &Client, mix: &[Value], from: usize, n: usize) -> Window {
    let samples: Vec<(f64, Result<f64, String>)> = (0..n)
        .map(|i| {
            (
                0.0,
                try_search(client, &mix[(from + i) % mix.len()]).map_err(|e| e.0),
            )
        })
        .collect();
    Window::of(&samples)
}

/// A node's own indexing throughput, the baseline of a copy: one fresh node alone (no Envoy,
/// in no topology) indexes `docs` ([`index_corpus`]: batches of 1000, all enqueued at once,
/// until every task succeeded). Returns the seconds and documents/s, and the node's document
/// batches.
pub fn node_alone(name: &str, docs: &[Value]) -> ((f64, f64), Option<Batches>) {
    let node = Cluster::single_node(name);
    let seconds = index_corpus(&node.client(), docs);
    (
        (seconds, docs.len() as f64 / seconds),
        document_batches(&node.client()),
    )
}

pub fn run(s: &Settings) -> Migration {
    let control_plane = control_plane_binary().unwrap_or_else(|e| fail(&e));
    let load_before = load_average();
    let docs = corpus::documents(s.docs);
    let mix = query_mix(s.queries);

    // 1. The node alone, on an otherwise idle machine (nothing else of the bench runs).
    let (baseline, baseline_batches) = node_alone("bench_migration_node", &docs);
    println!(
        "migration: one node alone indexed {} documents in {:.2} s = {:.0} documents/s",
        docs.len(),
        baseline.0,
        baseline.1
    );

    // 2. Three nodes through Envoy.
    let mut fleet = Fleet::start(
        "bench_migration",
        Spec::new(&[("n0", "g0"), ("n1", "g0"), ("n2", "g0")], SHARDS, 1),
        FleetOptions {
            envoy_log_levels: s.levels,
            ..FleetOptions::default()
        },
    );
    let client = fleet.client(0);
    let seconds = index_corpus(&client, &docs);
    let fleet_indexing = (seconds, docs.len() as f64 / seconds);
    println!(
        "migration: 3 nodes through Envoy indexed them in {seconds:.2} s = {:.0} documents/s",
        fleet_indexing.1
    );
    for id in fleet.node_ids() {
        wait_for_tasks(
            &format!("http://{}", fleet.node_address(&id)),
            fleet.master_key(),
        );
    }
    for i in 0..s.warmup {
        search(&client, &mix[i % mix.len()]);
    }
    let before = searches(&client, &mix, 0, s.searches);
    println!(
        "migration: before, {} searches answered: p50 {:.2} ms, p99 {:.2} ms; not 200: {}",
        before.latency.n,
        before.latency.p50,
        before.latency.p99,
        before.failures()
    );

    // 3. The 4th node, added while one client searches.
    let address = fleet.launch_node("n3", "g0");
    let stop = AtomicBool::new(false);
    let (job, phases, pauses, job_seconds, samples) = std::thread::scope(|scope| {
        let t0 = Instant::now();
        let searcher = {
            let (client, mix, stop) = (client.clone(), &mix, &stop);
            scope.spawn(move || {
                let mut samples = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let outcome = try_search(&client, &mix[i % mix.len()]).map_err(|e| e.0);
                    samples.push((t0.elapsed().as_secs_f64(), outcome));
                    i += 1;
                }
                samples
            })
        };
        let reply = fleet.admin().post(
            "/_miroir/nodes",
            &json!({"id": "n3", "address": address, "group": "g0"}),
        );
        let id = match (
            reply.status,
            job_id(&reply.try_json().unwrap_or(Value::Null)),
        ) {
            (202, Some(id)) => id,
            _ => stop_and_fail(
                &stop,
                format!("POST /_miroir/nodes n3: {} {}", reply.status, reply.text()),
            ),
        };
        println!("migration: job {id} started");
        let mut phases: Vec<(String, f64)> = Vec::new();
        let mut pauses: Vec<String> = Vec::new();
        let mut paused_since: Option<f64> = None;
        let job = loop {
            let reply = fleet
                .admin()
                .try_send("GET", &format!("/_miroir/jobs/{id}"), None);
            let job = match reply {
                Ok(r) if r.status == 200 => r.try_json().unwrap_or(Value::Null),
                Ok(r) => stop_and_fail(
                    &stop,
                    format!("GET /_miroir/jobs/{id}: {} {}", r.status, r.text()),
                ),
                Err(e) => stop_and_fail(&stop, format!("GET /_miroir/jobs/{id}: {e}")),
            };
            let now = t0.elapsed().as_secs_f64();
            let state = job["state"].as_str().unwrap_or("?");
            if let Some(label) = note_phase("migration", now, &job, &mut phases) {
                if let Some(reason) = job["reason"].as_str() {
                    pauses.push(format!("{label} at {now:.2} s: {reason}"));
                }
            }
            // A job paused for a node resumes by itself once the node answers again.
            paused_since = match (state, paused_since) {
                ("paused", None) => Some(now),
                ("paused", since) => since,
                _ => None,
            };
            match state {
                "succeeded" => break job,
                "failed" | "canceled" => {
                    stop_and_fail(&stop, format!("job {id} did not succeed: {job:#}"))
                }
                _ if paused_since.is_some_and(|since| now - since > PAUSE_TIMEOUT) => {
                    stop_and_fail(
                        &stop,
                        format!("job {id} paused for over {PAUSE_TIMEOUT} s: {job:#}"),
                    )
                }
                _ if t0.elapsed() > JOB_TIMEOUT => stop_and_fail(
                    &stop,
                    format!("job {id} still running after {JOB_TIMEOUT:?}: {job:#}"),
                ),
                _ => std::thread::sleep(POLL),
            }
        };
        let job_seconds = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let samples = searcher
            .join()
            .unwrap_or_else(|_| fail("the searching thread panicked"));
        (job, phases, pauses, job_seconds, samples)
    });
    let during = Window::of(&samples);

    // 4. After: every node idle, what each holds, and the same searches over 4 nodes.
    let ids = fleet.node_ids();
    for id in &ids {
        wait_for_tasks(
            &format!("http://{}", fleet.node_address(id)),
            fleet.master_key(),
        );
    }
    let holdings: Vec<(String, u64)> = ids
        .iter()
        .map(|id| (id.clone(), node_documents(&fleet.node_client(id))))
        .collect();
    let target_batches = document_batches(&fleet.node_client("n3"));
    let visible = client
        .post(&format!("/indexes/{INDEX}/search"), &json!({"limit": 0}))
        .try_json()
        .and_then(|v| v["estimatedTotalHits"].as_u64());
    let after = searches(&client, &mix, 0, s.searches);
    drop(fleet);

    let mut migration = Migration {
        docs: s.docs,
        control_plane,
        baseline,
        fleet_indexing,
        before,
        during,
        during_copy: None,
        after,
        job,
        phases,
        pauses,
        job_seconds,
        holdings,
        visible,
        target_batches,
        baseline_batches,
        load: (load_before, load_average()),
    };
    if let (Some(start), Some(wall)) = (migration.phase_seen("copy"), migration.copy_wall()) {
        let in_copy: Vec<_> = samples
            .into_iter()
            .filter(|(t, _)| *t >= start && *t <= start + wall)
            .collect();
        migration.during_copy = Some(Window::of(&in_copy));
    }
    migration
}

fn within(ok: bool) -> &'static str {
    if ok {
        "within"
    } else {
        "over"
    }
}

pub fn report(m: &Migration) -> (String, Value) {
    let (base_seconds, base_rate) = m.baseline;
    let copy_ratio = m.copy_rate() / base_rate;
    let p50_ratio = m.during.latency.p50 / m.before.latency.p50;
    let p99_ratio = m.during.latency.p99 / m.before.latency.p99;
    let optimum = m.optimum();
    let moved_ratio = m.copied() as f64 / optimum.max(1) as f64;
    let copy_wall = m
        .copy_wall()
        .map_or("—".into(), |w| format!("{w:.2} s (polled every 50 ms)"));
    let mut md = format!(
        "### Migration: adding a 4th node (3 → 4 nodes, one group, {SHARDS} shards, RF 1, {} \
         documents)\n\n",
        m.docs
    );
    md.push_str(&format!(
        "Goals (printed, not asserted):\n\n\
         | measure | baseline | during the migration | ratio | goal | |\n\
         |---|---|---|---|---|---|\n\
         | copy throughput | one node alone indexes {} documents in {base_seconds:.2} s = \
         {base_rate:.0} documents/s | {} documents copied in {:.2} s (`copySeconds`) = {:.0} \
         documents/s | {copy_ratio:.2}× | ≥ {GOAL_COPY_RATIO}× | {} |\n\
         | search p50 | before: {:.2} ms | during the job: {:.2} ms | {p50_ratio:.2}× | \
         ≤ {GOAL_LATENCY_RATIO}× | {} |\n\
         | search p99 | before: {:.2} ms | during the job: {:.2} ms | {p99_ratio:.2}× | \
         ≤ {GOAL_LATENCY_RATIO}× | {} |\n\
         | documents moved | optimum: n3 holds {optimum} | `documentsCopied` {} | \
         {moved_ratio:.3}× | 1× | {} |\n",
        m.docs,
        m.copied(),
        m.copy_seconds(),
        m.copy_rate(),
        within(copy_ratio >= GOAL_COPY_RATIO),
        m.before.latency.p50,
        m.during.latency.p50,
        within(p50_ratio <= GOAL_LATENCY_RATIO),
        m.before.latency.p99,
        m.during.latency.p99,
        within(p99_ratio <= GOAL_LATENCY_RATIO),
        m.copied(),
        within(m.copied() <= optimum),
    ));
    md.push_str(
        "\nSearches (the query mix, one client, back to back; through Envoy):\n\n\
         | window | searches | p50 (ms) | p90 (ms) | p99 (ms) | mean (ms) | p50 ratio | \
         p99 ratio | not 200 |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut rows = vec![
        ("before (3 nodes)", &m.before),
        ("during the job", &m.during),
    ];
    if let Some(copy) = &m.during_copy {
        rows.push(("during its copy phase", copy));
    }
    rows.push(("after (4 nodes)", &m.after));
    for (name, w) in &rows {
        let l = &w.latency;
        md.push_str(&format!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}× | {:.2}× | {} |\n",
            l.n,
            l.p50,
            l.p90,
            l.p99,
            l.mean,
            l.p50 / m.before.latency.p50,
            l.p99 / m.before.latency.p99,
            w.failures()
        ));
    }
    let phases: Vec<String> = m
        .phases
        .iter()
        .map(|(p, t)| format!("{p} {t:.2} s"))
        .collect();
    let holdings: Vec<String> = m
        .holdings
        .iter()
        .map(|(id, n)| format!("{id} {n}"))
        .collect();
    if let (Some(b), Some(base)) = (&m.target_batches, &m.baseline_batches) {
        md.push_str(&format!(
            "\nWhere the time goes (Meilisearch's `GET /batches`, document batches only): the new \
             node wrote the copied documents in {} batches ({} tasks), {:.2} s of processing in \
             all = {:.0}% of `copySeconds`, {:.0} documents per second of processing; the node \
             alone indexed its {} tasks in {} batches, {:.2} s of processing, {:.0} documents \
             per second of processing.\n",
            b.batches,
            b.tasks,
            b.seconds,
            100.0 * b.seconds / m.copy_seconds(),
            m.copied() as f64 / b.seconds,
            base.tasks,
            base.batches,
            base.seconds,
            m.docs as f64 / base.seconds,
        ));
    }
    md.push_str(&format!(
        "\nJob {}: {} of {} shards moved in {:.2} s (POST to `succeeded`); phases first seen \
         at {}; copy phase wall time {copy_wall}. Indexing through Envoy into the 3 nodes: \
         {:.0} documents/s ({:.2}× the node alone). Documents per node at the end (each node's \
         stats): {}; a placeholder search through Envoy counts {}. Control plane: {}. Load average \
         (1 min) at the start and the end: {} and {}.\n",
        m.job["id"]
            .as_str()
            .map_or(m.job["id"].to_string(), str::to_string),
        m.job["shardsDone"],
        m.job["shardsTotal"],
        m.job_seconds,
        phases.join(", "),
        m.fleet_indexing.1,
        m.fleet_indexing.1 / base_rate,
        holdings.join(", "),
        m.visible.map_or("—".into(), |n| n.to_string()),
        m.control_plane.display(),
        m.load.0.map_or("—".into(), |l| format!("{l:.2}")),
        m.load.1.map_or("—".into(), |l| format!("{l:.2}")),
    ));
    if !m.pauses.is_empty() {
        md.push_str(&format!(
            "\nWhat the job said on the way: {}.\n",
            m.pauses.join("; ")
        ));
    }

    let window = |w: &Window| {
        json!({
            "searches": w.latency.n, "p50_ms": w.latency.p50, "p90_ms": w.latency.p90,
            "p99_ms": w.latency.p99, "mean_ms": w.latency.mean,
            "failed": w.failed.iter().map(|(k, n)| json!({"kind": k, "count": n}))
                .collect::<Vec<_>>(),
        })
    };
    let batches =
        |b: &Batches| json!({"batches": b.batches, "tasks": b.tasks, "seconds": b.seconds});
    let json = json!({
        "documents": m.docs,
        "shards": SHARDS,
        "control_plane": m.control_plane.display().to_string(),
        "baseline": {"seconds": base_seconds, "documents_per_second": base_rate},
        "fleet_indexing": {
            "seconds": m.fleet_indexing.0, "documents_per_second": m.fleet_indexing.1,
        },
        "job": m.job,
        "job_seconds": m.job_seconds,
        "reasons": m.pauses,
        "phases": m.phases.iter().map(|(p, t)| json!({"phase": p, "seen_at_seconds": t}))
            .collect::<Vec<_>>(),
        "copy_wall_seconds": m.copy_wall(),
        "copy_documents_per_second": m.copy_rate(),
        "copy_ratio": copy_ratio,
        "search": {
            "before": window(&m.before),
            "during": window(&m.during),
            "during_copy": m.during_copy.as_ref().map(window),
            "after": window(&m.after),
            "p50_ratio": p50_ratio,
            "p99_ratio": p99_ratio,
        },
        "holdings": m.holdings.iter().map(|(id, n)| json!({"node": id, "documents": n}))
            .collect::<Vec<_>>(),
        "optimum": optimum,
        "moved_ratio": moved_ratio,
        "visible_through_envoy": m.visible,
        "target_batches": m.target_batches.as_ref().map(batches),
        "baseline_batches": m.baseline_batches.as_ref().map(batches),
        "load_average_1m": {"start": m.load.0, "end": m.load.1},
        "goals": {
            "copy_ratio_min": GOAL_COPY_RATIO,
            "latency_ratio_max": GOAL_LATENCY_RATIO,
        },
    });
    (md, json)
}

/// Records and prints a job's progress line when its phase changed since the last one in
/// `phases` (a running job's phase, else `state/phase`, e.g. `paused/stage`); the new label.
pub fn note_phase(
    bench: &str,
    now: f64,
    job: &Value,
    phases: &mut Vec<(String, f64)>,
) -> Option<String> {
    let (state, phase) = (
        job["state"].as_str().unwrap_or("?"),
        job["phase"].as_str().unwrap_or("?"),
    );
    let label = match state {
        "running" | "succeeded" => phase.to_string(),
        _ => format!("{state}/{phase}"),
    };
    if phases.last().is_some_and(|(p, _)| *p == label) {
        return None;
    }
    println!(
        "{bench}: {now:.2} s: {state}/{phase}, shards {}/{}, documents {}{}",
        job["shardsDone"],
        job["shardsTotal"],
        job["documentsCopied"],
        job["reason"]
            .as_str()
            .map_or(String::new(), |r| format!(", reason: {r}"))
    );
    phases.push((label.clone(), now));
    Some(label)
}

/// What a finished copy job's record says of its copy (`GET /_miroir/jobs/{id}`).
pub trait CopyJob {
    fn job(&self) -> &Value;

    fn copied(&self) -> u64 {
        self.job()["documentsCopied"].as_u64().unwrap_or(0)
    }

    fn copy_seconds(&self) -> f64 {
        self.job()["copySeconds"].as_f64().unwrap_or(f64::NAN)
    }

    fn copy_rate(&self) -> f64 {
        self.copied() as f64 / self.copy_seconds()
    }
}

impl CopyJob for Migration {
    fn job(&self) -> &Value {
        &self.job
    }
}

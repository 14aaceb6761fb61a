//! `make bench`'s replication scenario (`--only replication`): what one copy down costs the
//! writes, and how fast its node is repaired once back.
//!
//! 1. The baseline: one fresh node alone (no Envoy, in no topology) indexes `docs` documents
//!    (`bench_migration::node_alone`: batches of 1000, all enqueued at once, until every task
//!    succeeded): the node's own indexing throughput. Then another fresh node alone takes
//!    the warm-up and the single-document writes of step 2 directly, for context.
//! 2. A fleet of 3 nodes (one group, 64 shards, RF 2, `minCopies` 1) behind the control plane
//!    and one Envoy; the index created through Envoy. **All copies up**: a warm-up (one batch of
//!    1000 and `warmup` single documents, awaited), then `writes` single-document writes one
//!    after the other, each timed from the request to its `202` (the acknowledgement, not the
//!    task's end), then `docs` new documents in batches of 1000, all enqueued at once, until
//!    every task succeeded (what an SDK's `addDocuments` + `waitForTask` sees).
//! 3. n2 is killed (SIGKILL) and the bench waits until the health checks mark it `failed`; the
//!    same warm-up, then until every copy n2 holds is `outOfSync` and the Envoy serves that
//!    epoch; then the same writes: **one copy down**. Every acknowledgement carries
//!    `x-miroir-degraded` there (counted).
//! 4. n2 is restarted; the leader starts a `repair` by itself. The job is polled every 50 ms
//!    until it succeeded: its copy throughput is `documentsCopied` / `copySeconds` (the `copy`
//!    phase alone; the `activate` phase waits about nodeTimeoutMs + controlPlaneTimeoutMs +
//!    0.5 s on purpose, so the fleet runs with a node timeout of 2 s), against the node's own
//!    indexing throughput. What n2 missed (its `numberOfDocuments` after the repair minus
//!    before the kill) is the optimum the job's `documentsCopied` is set against.
//! 5. The same writes again with every copy back (**up again**): the index is then larger than
//!    in step 2, so this brackets how much of a down/up ratio is only the index's growth.
//!    Then every node's `numberOfDocuments`: the sum must be twice the documents written.
//!
//! Ratios are printed, never asserted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use miroir_e2e::{corpus, Client, Cluster, Fleet, FleetOptions, LogLevels, Spec};
use serde_json::{json, Value};

use super::migration::{
    control_plane_binary, document_batches, load_average, node_alone, node_documents, note_phase,
    Batches, CopyJob,
};
use super::{create_index, fail, percentile, wait_task, BATCH, INDEX};

/// Default documents when `--docs` is not given.
pub const DEFAULT_DOCS: usize = 20_000;
/// Default single-document writes per state (`--replication-writes`).
pub const DEFAULT_WRITES: usize = 500;
const SHARDS: u32 = 64;
const REPLICATION_FACTOR: u32 = 2;
/// The node killed and repaired.
const DOWN: &str = "n2";
/// The filter's and the control plane's deadline for a node: the repair's activation waits
/// for it (plus the control-plane timeout and 0.5 s).
const NODE_TIMEOUT_MS: u64 = 2_000;
const POLL: Duration = Duration::from_millis(50);
/// The longest the bench waits for the repair to start and to succeed.
const JOB_TIMEOUT: Duration = Duration::from_secs(1800);
/// The longest the bench waits for a state of the fleet (a node failed, copies out of sync).
const STATE_TIMEOUT: Duration = Duration::from_secs(120);
/// Ids of the warm-up and single-document writes of state `k`: `SINGLES + k * SINGLES_STRIDE`
/// on (the batches' documents are the corpus's `k * docs ..`).
const SINGLES: usize = 10_000_000;
const SINGLES_STRIDE: usize = 1_000_000;

pub struct Settings {
    pub docs: usize,
    pub writes: usize,
    pub warmup: usize,
    pub levels: LogLevels,
}

/// Milliseconds of single-document writes, each to its `202`.
pub struct WriteLatency {
    pub n: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
    /// Answers that carried `x-miroir-degraded`.
    pub degraded: usize,
    /// One of those headers, as an example.
    pub example: Option<String>,
}

/// `docs` documents in batches of 1000, all enqueued at once, until every task succeeded.
pub struct Throughput {
    pub docs: usize,
    pub seconds: f64,
    /// From the first POST until the last batch was acknowledged.
    pub accept_seconds: f64,
    pub degraded: usize,
}

impl Throughput {
    fn rate(&self) -> f64 {
        self.docs as f64 / self.seconds
    }
}

/// One state of the fleet, measured the same way each time.
pub struct Writes {
    pub singles: WriteLatency,
    pub batches: Throughput,
}

pub struct Replication {
    pub docs: usize,
    pub control_plane: PathBuf,
    /// The node alone: seconds and documents/s.
    pub own: (f64, f64),
    pub own_batches: Option<Batches>,
    /// Single-document writes straight into a node alone.
    pub direct: WriteLatency,
    pub up: Writes,
    pub down: Writes,
    pub after: Writes,
    /// Seconds from the kill until the topology said `failed`.
    pub failed_after: f64,
    /// n2's copies, and how many were `outOfSync` when the down writes started.
    pub down_copies: (usize, usize),
    /// The repair as last read.
    pub job: Value,
    /// Each phase (`state/phase` unless running) and when a poll first saw it, in seconds
    /// after the restart began.
    pub phases: Vec<(String, f64)>,
    /// Seconds after the restart began: the node available, the job first seen, the job
    /// seen `succeeded`, no copy out of sync any more.
    pub restarted: f64,
    pub job_seen: f64,
    pub job_done: f64,
    pub in_sync: f64,
    /// n2's `numberOfDocuments` before the kill and after the repair.
    pub down_node: (u64, u64),
    /// n2's document batches written by the repair (after minus before the kill).
    pub repair_batches: Option<Batches>,
    /// Documents written through Envoy in all, and what each node holds at the end.
    pub written: u64,
    pub holdings: Vec<(String, u64)>,
    /// `estimatedTotalHits` of a placeholder search through Envoy at the end.
    pub visible: Option<u64>,
    pub load: (Option<f64>, Option<f64>),
}

impl CopyJob for Replication {
    fn job(&self) -> &Value {
        &self.job
    }
}

impl Replication {
    fn phase_seen(&self, phase: &str) -> Option<f64> {
        self.phases
            .iter()
            .find(|(p, _)| p == phase)
            .map(|(_, t)| *t)
    }

    /// Wall time between two phases as the polls saw them.
    fn between(&self, from: &str, to: &[&str]) -> Option<f64> {
        let start = self.phase_seen(from)?;
        let end = to.iter().find_map(|p| self.phase_seen(p))?;
        Some(end - start)
    }

    /// What n2 missed while down: what an optimal repair copies.
    fn missed(&self) -> u64 {
        self.down_node.1.saturating_sub(self.down_node.0)
    }
}

/// Single-document writes of `ids`, one after the other, each timed to its answer (`202`);
/// then every task awaited.
fn single_writes(client: &Client, ids: std::ops::Range<usize>) -> WriteLatency {
    let path = format!("/indexes/{INDEX}/documents");
    let mut ms = Vec::with_capacity(ids.len());
    let mut uids = Vec::with_capacity(ids.len());
    let (mut degraded, mut example) = (0, None);
    for id in ids {
        let body = serde_json::to_vec(&[corpus::document(id)]).unwrap_or_default();
        let start = Instant::now();
        let reply = client
            .try_send("POST", &path, Some(("application/json", &body)))
            .unwrap_or_else(|e| fail(&format!("single write {id}: {e}")));
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
        let (status, enqueued) = reply.pair();
        match (status, enqueued["taskUid"].as_u64()) {
            (202, Some(uid)) => uids.push(uid),
            _ => fail(&format!("single write {id}: {status} {enqueued}")),
        }
        if let Some(h) = reply.header("x-miroir-degraded") {
            degraded += 1;
            example.get_or_insert_with(|| h.to_string());
        }
    }
    for uid in uids {
        let task = wait_task(client, uid);
        if task["status"] != "succeeded" {
            fail(&format!("single write task: {task}"));
        }
    }
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    WriteLatency {
        n: ms.len(),
        p50: percentile(&ms, 50.0),
        p95: percentile(&ms, 95.0),
        p99: percentile(&ms, 99.0),
        mean: ms.iter().sum::<f64>() / ms.len().max(1) as f64,
        degraded,
        example,
    }
}

/// `docs` in batches of 1000, all enqueued at once, then every task awaited.
fn batch_writes(client: &Client, docs: &[Value]) -> Throughput {
    let path = format!("/indexes/{INDEX}/documents");
    let bodies: Vec<Vec<u8>> = docs
        .chunks(BATCH)
        .map(|c| serde_json::to_vec(c).unwrap_or_default())
        .collect();
    let start = Instant::now();
    let mut uids = Vec::with_capacity(bodies.len());
    let mut degraded = 0;
    for body in &bodies {
        let reply = client.send("POST", &path, Some(("application/json", body)));
        let (status, enqueued) = reply.pair();
        match (status, enqueued["taskUid"].as_u64()) {
            (202, Some(uid)) => uids.push(uid),
            _ => fail(&format!("document batch: {status} {enqueued}")),
        }
        degraded += usize::from(reply.header("x-miroir-degraded").is_some());
    }
    let accept_seconds = start.elapsed().as_secs_f64();
    for uid in uids {
        let task = wait_task(client, uid);
        if task["status"] != "succeeded" {
            fail(&format!("document batch task: {task}"));
        }
    }
    Throughput {
        docs: docs.len(),
        seconds: start.elapsed().as_secs_f64(),
        accept_seconds,
        degraded,
    }
}

/// Documents `from..from + n` of the corpus.
fn documents(from: usize, n: usize) -> Vec<Value> {
    (from..from + n).map(corpus::document).collect()
}

/// State `k`'s warm-up: one batch of 1000 (it reaches every shard) and `warmup` single
/// documents, awaited.
fn warm_up(client: &Client, k: usize, warmup: usize) {
    let first = SINGLES + k * SINGLES_STRIDE;
    batch_writes(client, &documents(first, BATCH));
    single_writes(client, first + BATCH..first + BATCH + warmup);
}

/// The warm-up's single documents and the single-document writes of state 0, straight into a
/// fresh node alone.
fn direct_singles(s: &Settings) -> WriteLatency {
    let node = Cluster::single_node("bench_replication_direct");
    let client = node.client();
    create_index(&client);
    let first = SINGLES + BATCH;
    single_writes(&client, first..first + s.warmup);
    single_writes(&client, first + s.warmup..first + s.warmup + s.writes)
}

/// State `k`'s measured writes: `writes` single documents, then `docs` in batches.
fn measure(client: &Client, k: usize, s: &Settings, name: &str) -> Writes {
    let first = SINGLES + k * SINGLES_STRIDE + BATCH + s.warmup;
    let singles = single_writes(client, first..first + s.writes);
    println!(
        "replication: {name}: {} single-document writes: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} \
         ms; degraded {}",
        singles.n, singles.p50, singles.p95, singles.p99, singles.degraded
    );
    let batches = batch_writes(client, &documents(k * s.docs, s.docs));
    println!(
        "replication: {name}: {} documents in batches of {BATCH} in {:.2} s = {:.0} \
         documents/s (all acknowledged after {:.2} s); degraded {}",
        batches.docs,
        batches.seconds,
        batches.rate(),
        batches.accept_seconds,
        batches.degraded
    );
    Writes { singles, batches }
}

fn get(fleet: &Fleet, path: &str) -> Result<Value, String> {
    let reply = fleet.admin().try_send("GET", path, None)?;
    match reply.status {
        200 => reply
            .try_json()
            .ok_or_else(|| format!("GET {path}: not JSON")),
        status => Err(format!("GET {path}: {status} {}", reply.text())),
    }
}

/// `state` of node `id` in the stored topology.
fn node_state(fleet: &Fleet, id: &str) -> Result<String, String> {
    let topology = get(fleet, "/_miroir/topology")?;
    topology["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["id"] == id)
        .and_then(|n| n["state"].as_str().map(str::to_string))
        .ok_or_else(|| format!("no node {id} in the topology"))
}

/// `(epoch, copies of node id, those out of sync, copies out of sync anywhere)`.
fn copies(fleet: &Fleet, id: &str) -> Result<(u64, usize, usize, usize), String> {
    let map = get(fleet, "/_miroir/shards")?;
    let (mut on, mut on_out, mut out) = (0, 0, 0);
    for shard in map["shards"].as_array().into_iter().flatten() {
        for list in shard["copies"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            for copy in list.as_array().into_iter().flatten() {
                let out_of_sync = copy["state"] == "outOfSync";
                out += usize::from(out_of_sync);
                if copy["node"] == id {
                    on += 1;
                    on_out += usize::from(out_of_sync);
                }
            }
        }
    }
    Ok((map["epoch"].as_u64().unwrap_or(0), on, on_out, out))
}

/// Waits until `probe` gives `Some`, polling every 50 ms.
fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>, String>,
) -> T {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match probe() {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(e) => last = e,
        }
        if start.elapsed() > timeout {
            fail(&format!("{what}: not after {timeout:?}; last: {last}"));
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until the Envoy's filter serves `epoch` or later.
fn wait_envoy_epoch(client: &Client, epoch: u64) {
    wait_until("the Envoy at the copies' epoch", STATE_TIMEOUT, || {
        let reply = client.try_send("GET", "/health", None)?;
        let at = reply
            .header("x-miroir-topology-epoch")
            .and_then(|e| e.parse::<u64>().ok())
            .unwrap_or(0);
        Ok((at >= epoch).then_some(()))
    })
}

fn every_node_idle(fleet: &Fleet) {
    for id in fleet.node_ids() {
        miroir_e2e::wait_for_tasks(
            &format!("http://{}", fleet.node_address(&id)),
            fleet.master_key(),
        );
    }
}

pub fn run(s: &Settings) -> Replication {
    let control_plane = control_plane_binary().unwrap_or_else(|e| fail(&e));
    let load_before = load_average();

    // 1. The node alone, on an otherwise idle machine.
    let (own, own_batches) = node_alone("bench_replication_node", &documents(0, s.docs));
    println!(
        "replication: one node alone indexed {} documents in {:.2} s = {:.0} documents/s",
        s.docs, own.0, own.1
    );
    let direct = direct_singles(s);
    println!(
        "replication: one node alone, direct: {} single-document writes: p50 {:.2} ms, p95 \
         {:.2} ms, p99 {:.2} ms",
        direct.n, direct.p50, direct.p95, direct.p99
    );

    // 2. Three nodes, RF 2, every copy up.
    let mut fleet = Fleet::start(
        "bench_replication",
        Spec::new(
            &[("n0", "g0"), ("n1", "g0"), (DOWN, "g0")],
            SHARDS,
            REPLICATION_FACTOR,
        ),
        FleetOptions {
            envoy_log_levels: s.levels,
            node_timeout_ms: NODE_TIMEOUT_MS,
            ..FleetOptions::default()
        },
    );
    let client = fleet.client(0);
    create_index(&client);
    warm_up(&client, 0, s.warmup);
    let up = measure(&client, 0, s, "every copy up");

    // 3. One copy down.
    every_node_idle(&fleet);
    let before_kill = node_documents(&fleet.node_client(DOWN));
    let batches_before = document_batches(&fleet.node_client(DOWN));
    let killed = Instant::now();
    fleet.kill_node(DOWN);
    wait_until(&format!("{DOWN} marked failed"), STATE_TIMEOUT, || {
        Ok((node_state(&fleet, DOWN)? == "failed").then_some(()))
    });
    let failed_after = killed.elapsed().as_secs_f64();
    println!("replication: {DOWN} killed, marked failed after {failed_after:.2} s");
    warm_up(&client, 1, s.warmup);
    let (epoch, on, on_out) = wait_until(
        &format!("every copy of {DOWN} out of sync"),
        STATE_TIMEOUT,
        || {
            let (epoch, on, on_out, _) = copies(&fleet, DOWN)?;
            Ok((on > 0 && on_out == on).then_some((epoch, on, on_out)))
        },
    );
    wait_envoy_epoch(&client, epoch);
    println!("replication: {on_out} of {on} copies of {DOWN} out of sync (epoch {epoch})");
    let down = measure(&client, 1, s, "one copy down");

    // 4. The node back, and its repair.
    let t0 = Instant::now();
    fleet.restart_node(DOWN);
    let restarted = t0.elapsed().as_secs_f64();
    println!("replication: {DOWN} restarted, available after {restarted:.2} s");
    let id = wait_until("a repair job", JOB_TIMEOUT, || {
        let jobs = get(&fleet, "/_miroir/jobs")?;
        Ok(jobs["results"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| j["kind"] == "repair")
            .and_then(|j| j["id"].as_str().map(str::to_string)))
    });
    let job_seen = t0.elapsed().as_secs_f64();
    println!("replication: {job_seen:.2} s: repair {id} seen");
    let mut phases: Vec<(String, f64)> = Vec::new();
    let job = wait_until(&format!("repair {id} to succeed"), JOB_TIMEOUT, || {
        let job = get(&fleet, &format!("/_miroir/jobs/{id}"))?;
        let now = t0.elapsed().as_secs_f64();
        let state = job["state"].as_str().unwrap_or("?");
        note_phase("replication", now, &job, &mut phases);
        match state {
            "succeeded" => Ok(Some(job)),
            "failed" | "canceled" => fail(&format!("repair {id} did not succeed: {job:#}")),
            _ => Ok(None),
        }
    });
    let job_done = t0.elapsed().as_secs_f64();
    let epoch = wait_until("every copy back in sync", STATE_TIMEOUT, || {
        let (epoch, _, _, out) = copies(&fleet, DOWN)?;
        Ok((out == 0).then_some(epoch))
    });
    let in_sync = t0.elapsed().as_secs_f64();
    wait_envoy_epoch(&client, epoch);
    every_node_idle(&fleet);
    let after_repair = node_documents(&fleet.node_client(DOWN));
    let repair_batches = match (document_batches(&fleet.node_client(DOWN)), batches_before) {
        (Some(now), Some(before)) => Some(Batches {
            batches: now.batches.saturating_sub(before.batches),
            tasks: now.tasks.saturating_sub(before.tasks),
            seconds: now.seconds - before.seconds,
        }),
        _ => None,
    };

    // 5. Every copy up again, over a larger index.
    warm_up(&client, 2, s.warmup);
    let after = measure(&client, 2, s, "every copy up again");
    every_node_idle(&fleet);
    let holdings: Vec<(String, u64)> = fleet
        .node_ids()
        .iter()
        .map(|id| (id.clone(), node_documents(&fleet.node_client(id))))
        .collect();
    let visible = client
        .post(&format!("/indexes/{INDEX}/search"), &json!({"limit": 0}))
        .try_json()
        .and_then(|v| v["estimatedTotalHits"].as_u64());
    drop(fleet);

    Replication {
        docs: s.docs,
        control_plane,
        own,
        own_batches,
        direct,
        up,
        down,
        after,
        failed_after,
        down_copies: (on, on_out),
        job,
        phases,
        restarted,
        job_seen,
        job_done,
        in_sync,
        down_node: (before_kill, after_repair),
        repair_batches,
        written: (3 * (s.docs + BATCH + s.warmup + s.writes)) as u64,
        holdings,
        visible,
        load: (load_before, load_average()),
    }
}

fn seconds(t: Option<f64>) -> String {
    t.map_or("—".into(), |t| format!("{t:.2} s"))
}

pub fn report(r: &Replication) -> (String, Value) {
    let (own_seconds, own_rate) = r.own;
    let (up, down, after) = (&r.up, &r.down, &r.after);
    let repair_ratio = r.copy_rate() / own_rate;
    let throughput_ratio = down.batches.rate() / up.batches.rate();
    let mut md = format!(
        "### Replication: one copy down (3 nodes, one group, {SHARDS} shards, RF \
         {REPLICATION_FACTOR}, {} documents per batch measurement, {} single-document writes)\n\n",
        r.docs, up.singles.n
    );
    md.push_str(
        "Writes through Envoy (single documents one after the other, timed to their `202`; \
         batches of 1000 all enqueued at once, until every task succeeded):\n\n\
         | measure | one node alone, direct (context) | every copy up | one copy down | down / up \
         | up again, after the repair | up again / up |\n|---|---|---|---|---|---|---|\n",
    );
    let row = |md: &mut String,
               name: &str,
               direct: Option<f64>,
               f: &dyn Fn(&Writes) -> f64,
               digits: usize| {
        md.push_str(&format!(
            "| {name} | {} | {:.digits$} | {:.digits$} | {:.2}× | {:.digits$} | {:.2}× |\n",
            direct.map_or("—".into(), |d| format!("{d:.digits$}")),
            f(up),
            f(down),
            f(down) / f(up),
            f(after),
            f(after) / f(up),
        ));
    };
    let d = &r.direct;
    row(
        &mut md,
        "single write p50 (ms)",
        Some(d.p50),
        &|w| w.singles.p50,
        2,
    );
    row(
        &mut md,
        "single write p95 (ms)",
        Some(d.p95),
        &|w| w.singles.p95,
        2,
    );
    row(
        &mut md,
        "single write p99 (ms)",
        Some(d.p99),
        &|w| w.singles.p99,
        2,
    );
    row(
        &mut md,
        "single write mean (ms)",
        Some(d.mean),
        &|w| w.singles.mean,
        2,
    );
    row(
        &mut md,
        &format!("batch throughput (documents/s, {} documents)", r.docs),
        Some(own_rate),
        &|w| w.batches.rate(),
        0,
    );
    row(
        &mut md,
        "batches all acknowledged after (s)",
        None,
        &|w| w.batches.accept_seconds,
        2,
    );
    md.push_str(&format!(
        "| answers with `x-miroir-degraded` | — | {} of {} | {} of {} | | {} of {} | |\n",
        up.singles.degraded + up.batches.degraded,
        up.singles.n + r.docs.div_ceil(BATCH),
        down.singles.degraded + down.batches.degraded,
        down.singles.n + r.docs.div_ceil(BATCH),
        after.singles.degraded + after.batches.degraded,
        after.singles.n + r.docs.div_ceil(BATCH),
    ));
    md.push_str(&format!(
        "\nRepair of {DOWN} (printed, not asserted):\n\n\
         | baseline | repair | ratio |\n|---|---|---|\n\
         | one node alone indexes {} documents in {own_seconds:.2} s = {own_rate:.0} \
         documents/s | {} documents copied in {:.2} s (`copySeconds`) = {:.0} documents/s | \
         {repair_ratio:.2}× |\n",
        r.docs,
        r.copied(),
        r.copy_seconds(),
        r.copy_rate(),
    ));
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|(p, t)| format!("{p} {t:.2} s"))
        .collect();
    md.push_str(&format!(
        "\nAfter the restart began: {DOWN} available at {:.2} s, the repair {} first seen at \
         {:.2} s, its phases first seen at {} (polled every 50 ms), `succeeded` at {:.2} s, no \
         copy out of sync at {:.2} s. Copy phase wall time {}; activation {} (it waits \
         nodeTimeoutMs {NODE_TIMEOUT_MS} + controlPlaneTimeoutMs + 0.5 s on purpose). {DOWN} \
         missed {} documents while down (it held {} before the kill, {} after the repair): \
         `documentsCopied` is {:.3}× that.",
        r.restarted,
        r.job["id"]
            .as_str()
            .map_or(r.job["id"].to_string(), str::to_string),
        r.job_seen,
        phases.join(", "),
        r.job_done,
        r.in_sync,
        seconds(r.between("copy", &["activate", "done"])),
        seconds(r.between("activate", &["done"])),
        r.missed(),
        r.down_node.0,
        r.down_node.1,
        r.copied() as f64 / r.missed().max(1) as f64,
    ));
    if let (Some(b), Some(base)) = (&r.repair_batches, &r.own_batches) {
        md.push_str(&format!(
            " {DOWN} wrote the repair in {} document batches ({} tasks), {:.2} s of processing = \
             {:.0}% of `copySeconds`; the node alone indexed its {} tasks in {} batches, {:.2} s \
             of processing.",
            b.batches,
            b.tasks,
            b.seconds,
            100.0 * b.seconds / r.copy_seconds(),
            base.tasks,
            base.batches,
            base.seconds,
        ));
    }
    let holdings: Vec<String> = r
        .holdings
        .iter()
        .map(|(id, n)| format!("{id} {n}"))
        .collect();
    let held: u64 = r.holdings.iter().map(|(_, n)| n).sum();
    md.push_str(&format!(
        "\n\nWhen the down writes started, {} of {DOWN}'s {} copies were `outOfSync` ({DOWN} \
         marked `failed` {:.2} s after the kill). Example `x-miroir-degraded`: `{}`. Documents \
         written through Envoy: {}; per node at the end (each node's stats): {} = {held} = \
         {:.3}× RF × written; a placeholder search through Envoy counts {}. Control plane: {}. \
         Load average (1 min) at the start and the end: {} and {}.\n",
        r.down_copies.1,
        r.down_copies.0,
        r.failed_after,
        down.singles.example.as_deref().unwrap_or("—"),
        r.written,
        holdings.join(", "),
        held as f64 / (u64::from(REPLICATION_FACTOR) * r.written) as f64,
        r.visible.map_or("—".into(), |n| n.to_string()),
        r.control_plane.display(),
        r.load.0.map_or("—".into(), |l| format!("{l:.2}")),
        r.load.1.map_or("—".into(), |l| format!("{l:.2}")),
    ));

    let writes = |w: &Writes| {
        json!({
            "singles": {
                "writes": w.singles.n, "p50_ms": w.singles.p50, "p95_ms": w.singles.p95,
                "p99_ms": w.singles.p99, "mean_ms": w.singles.mean,
                "degraded": w.singles.degraded,
            },
            "batches": {
                "documents": w.batches.docs, "seconds": w.batches.seconds,
                "documents_per_second": w.batches.rate(),
                "accept_seconds": w.batches.accept_seconds, "degraded": w.batches.degraded,
            },
        })
    };
    let batches =
        |b: &Batches| json!({"batches": b.batches, "tasks": b.tasks, "seconds": b.seconds});
    let json = json!({
        "documents": r.docs,
        "shards": SHARDS,
        "replication_factor": REPLICATION_FACTOR,
        "node_timeout_ms": NODE_TIMEOUT_MS,
        "control_plane": r.control_plane.display().to_string(),
        "own_indexing": {"seconds": own_seconds, "documents_per_second": own_rate},
        "direct_singles": {
            "writes": r.direct.n, "p50_ms": r.direct.p50, "p95_ms": r.direct.p95,
            "p99_ms": r.direct.p99, "mean_ms": r.direct.mean,
        },
        "up": writes(up),
        "down": writes(down),
        "up_again": writes(after),
        "ratios_down_over_up": {
            "single_p50": down.singles.p50 / up.singles.p50,
            "single_p95": down.singles.p95 / up.singles.p95,
            "batch_throughput": throughput_ratio,
        },
        "ratios_up_again_over_up": {
            "single_p50": after.singles.p50 / up.singles.p50,
            "single_p95": after.singles.p95 / up.singles.p95,
            "batch_throughput": after.batches.rate() / up.batches.rate(),
        },
        "failed_after_seconds": r.failed_after,
        "down_copies": {"copies": r.down_copies.0, "out_of_sync": r.down_copies.1},
        "repair": {
            "job": r.job,
            "phases": r.phases.iter().map(|(p, t)| json!({"phase": p, "seen_at_seconds": t}))
                .collect::<Vec<_>>(),
            "restarted_seconds": r.restarted,
            "job_seen_seconds": r.job_seen,
            "job_succeeded_seconds": r.job_done,
            "in_sync_seconds": r.in_sync,
            "copy_wall_seconds": r.between("copy", &["activate", "done"]),
            "activate_wall_seconds": r.between("activate", &["done"]),
            "documents_copied": r.copied(),
            "copy_seconds": r.copy_seconds(),
            "documents_per_second": r.copy_rate(),
            "ratio_to_own_indexing": repair_ratio,
            "missed": r.missed(),
            "batches": r.repair_batches.as_ref().map(batches),
        },
        "own_batches": r.own_batches.as_ref().map(batches),
        "written": r.written,
        "holdings": r.holdings.iter().map(|(id, n)| json!({"node": id, "documents": n}))
            .collect::<Vec<_>>(),
        "visible_through_envoy": r.visible,
        "load_average_1m": {"start": r.load.0, "end": r.load.1},
    });
    (md, json)
}

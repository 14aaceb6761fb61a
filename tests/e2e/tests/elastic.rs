//! Issue 14 end to end: topology changes are jobs that move shard copies while clients write and
//! search. Every scenario runs a real control plane (embedded store; two replicas on Redis for the
//! leader change), an Envoy on the ADS bootstrap and the nodes, and asserts what a user sees:
//! every write acknowledged, every search answered, complete and without duplicates while the job
//! runs; afterwards each document stored once per replica group, on the node `/_miroir/shards`
//! names for its shard.
//!
//! `MIROIR_ELASTIC_DOCS` sets the corpus of the add and drain scenarios (`make test-elastic-full`
//! runs them with 20,000); unset, they stay quick enough for `make test`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use miroir_e2e::{Client, Fleet, FleetOptions, Spec, StoreKind};
use miroir_topology::reserved::decode_shard;
use miroir_topology::{shard_for_key, SHARD_FIELD};
use serde_json::{json, Value};
use support::write;

const SHARDS: u32 = 64;
/// Documents written before the change (what the job has to copy), unless `MIROIR_ELASTIC_DOCS`
/// says otherwise for the add and drain scenarios (see [`elastic_docs`]).
const PRELOAD: u64 = 2_000;
/// Batches the writer sends during the change, and their size for a [`PRELOAD`] corpus:
/// `NEW_PER_BATCH` new documents and `UPDATES_PER_BATCH` replacements of preloaded ones.
const LOAD_BATCHES: u64 = 20;
const NEW_PER_BATCH: u64 = 160;
const UPDATES_PER_BATCH: u64 = 40;
/// A search's least `limit` (and the index's `pagination.maxTotalHits`); [`search_limit`] raises
/// it above a larger `MIROIR_ELASTIC_DOCS` corpus.
const SEARCH_LIMIT: u64 = 20_000;
/// A job's bound with the default corpus: generous, the runs share 2 cores ([`job_timeout`]
/// grows it with `MIROIR_ELASTIC_DOCS`).
const JOB_TIMEOUT: Duration = Duration::from_secs(420);

/// The documents the add and drain scenarios preload: `MIROIR_ELASTIC_DOCS`, else [`PRELOAD`].
/// The writer's batches during the change scale with it (20 batches of 8% new documents and 2%
/// updates each: 2,000 gives 160 + 40 per batch, 20,000 gives 1,600 + 400).
fn elastic_docs() -> u64 {
    match std::env::var("MIROIR_ELASTIC_DOCS") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u64>() {
            Ok(n) if n >= 100 => n,
            _ => panic!("MIROIR_ELASTIC_DOCS=`{v}`: expected a number of documents, at least 100"),
        },
        _ => PRELOAD,
    }
}

/// (new documents, updates) per batch of the writer for a corpus of `docs`.
fn batch_shape(docs: u64) -> (u64, u64) {
    (
        NEW_PER_BATCH * docs / PRELOAD,
        UPDATES_PER_BATCH * docs / PRELOAD,
    )
}

/// Above every corpus a scenario builds: the largest preload and everything its writer adds.
fn search_limit() -> u64 {
    let docs = elastic_docs();
    SEARCH_LIMIT.max(docs + LOAD_BATCHES * batch_shape(docs).0)
}

/// [`JOB_TIMEOUT`], plus a second per 20 documents above [`PRELOAD`] with a larger corpus.
fn job_timeout() -> Duration {
    JOB_TIMEOUT + Duration::from_secs(elastic_docs().saturating_sub(PRELOAD) / 20)
}
/// `documentsCopied` may exceed the documents the new copies hold by this much.
const COPY_SLACK: f64 = 1.05;

fn one_group(nodes: &[&str], group: &str) -> Spec {
    let pairs: Vec<(&str, &str)> = nodes.iter().map(|n| (*n, group)).collect();
    Spec::new(&pairs, SHARDS, 1)
}

fn start(name: &str, spec: Spec) -> Fleet {
    Fleet::start(name, spec, FleetOptions::default())
}

/// The options of a test that acts in the middle of a copy: one unit at a time, at a pace that
/// leaves seconds between units whatever the machine (a job's copy is otherwise over in one).
fn slow_copy() -> FleetOptions {
    FleetOptions {
        copy_concurrency: 1,
        copy_documents_per_second: 500,
        ..FleetOptions::default()
    }
}

const GENRES: [&str; 3] = ["drama", "comedy", "action"];

fn document(id: u64, version: u64) -> Value {
    json!({
        "id": id,
        "title": format!("doc kw{id:05} v{version}"),
        "genre": GENRES[(id % 3) as usize],
        "year": 1950 + (id * 13) % 70,
    })
}

/// `movies`, every hit reachable by one search (`maxTotalHits`), then `count` documents.
fn prepare(fleet: &Fleet, count: u64) -> Arc<Ledger> {
    let client = fleet.client(0);
    write(
        &client,
        "POST",
        "/indexes",
        &json!({"uid": "movies", "primaryKey": "id"}),
    );
    write(
        &client,
        "PATCH",
        "/indexes/movies/settings",
        &json!({"filterableAttributes": ["genre", "year"],
                "pagination": {"maxTotalHits": search_limit()}}),
    );
    let ledger = Arc::new(Ledger::default());
    let docs: Vec<Value> = (0..count).map(|id| document(id, 0)).collect();
    for chunk in docs.chunks(2_000) {
        write(
            &client,
            "POST",
            "/indexes/movies/documents",
            &Value::Array(chunk.to_vec()),
        );
        ledger.ack(chunk);
    }
    ledger
}

/// The writer's batches: new documents after `first_new`, and new versions of preloaded ones.
fn load_batches(first_new: u64, preloaded: u64) -> Vec<Vec<Value>> {
    load_batches_of(first_new, preloaded, (NEW_PER_BATCH, UPDATES_PER_BATCH))
}

/// [`load_batches`] of `(new, updates)` documents each.
fn load_batches_of(first_new: u64, preloaded: u64, (new, updates): (u64, u64)) -> Vec<Vec<Value>> {
    (0..LOAD_BATCHES)
        .map(|b| {
            let fresh = (0..new).map(|i| document(first_new + b * new + i, 0));
            let updated =
                (0..updates).map(|i| document((b * updates + i) * 7 % preloaded.max(1), b + 1));
            fresh.chain(updated).collect()
        })
        .collect()
}

/// The writer's batches for a corpus of `docs` preloaded documents ([`elastic_docs`]).
fn scaled_load(docs: u64) -> Vec<Vec<Value>> {
    load_batches_of(docs, docs, batch_shape(docs))
}

/// What the client was told: every acknowledged document (its task succeeded) and its title.
#[derive(Default)]
struct Ledger {
    acked: Mutex<BTreeMap<u64, String>>,
}

impl Ledger {
    fn ack(&self, docs: &[Value]) {
        let mut acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        for doc in docs {
            if let (Some(id), Some(title)) = (doc["id"].as_u64(), doc["title"].as_str()) {
                acked.insert(id, title.to_string());
            }
        }
    }

    fn snapshot(&self) -> BTreeMap<u64, String> {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn ids(&self) -> BTreeSet<u64> {
        self.acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }
}

/// `GET /tasks/{uid}` until it is finished; `Err` unless it succeeded (or a request failed).
/// With `outage`, a 503 `miroir_control_plane_unavailable` (the filter cannot read a task it did
/// not number itself while the control plane is down) is counted there and the read retried.
fn await_task(
    client: &Client,
    enqueued: &Value,
    outage: Option<&mut u64>,
) -> Result<Value, String> {
    let mut outage = outage;
    let uid = enqueued["taskUid"]
        .as_u64()
        .ok_or_else(|| format!("no taskUid in {enqueued}"))?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (status, task) = client
            .try_send("GET", &format!("/tasks/{uid}"), None)
            .map_err(|e| format!("GET /tasks/{uid}: {e}"))?
            .pair();
        let unavailable = status == 503 && task["code"] == "miroir_control_plane_unavailable";
        if let (true, Some(count)) = (unavailable, outage.as_deref_mut()) {
            *count += 1;
            if Instant::now() > deadline {
                return Err(format!("GET /tasks/{uid}: {status} {task}"));
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if status != 200 {
            return Err(format!("GET /tasks/{uid}: {status} {task}"));
        }
        match task["status"].as_str() {
            Some("succeeded") => return Ok(task),
            Some("failed") | Some("canceled") => return Err(format!("task {uid}: {task}")),
            _ if Instant::now() > deadline => return Err(format!("task {uid} still {task}")),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[derive(Debug, Default)]
struct WriterReport {
    batches: usize,
    failures: Vec<String>,
    /// When each acknowledged batch was acknowledged.
    acked_at: Vec<Instant>,
    /// Task reads refused while the control plane was down (with `tolerate_outage`).
    refused_task_reads: u64,
}

/// Writes its batches one after the other, each awaited as an SDK does.
fn start_writer(
    client: Client,
    ledger: Arc<Ledger>,
    batches: Vec<Vec<Value>>,
    tolerate_outage: bool,
) -> std::thread::JoinHandle<WriterReport> {
    std::thread::spawn(move || {
        let mut report = WriterReport::default();
        for batch in batches {
            report.batches += 1;
            let body = Value::Array(batch.clone());
            let reply = match client.try_send(
                "POST",
                "/indexes/movies/documents",
                Some((
                    "application/json",
                    &serde_json::to_vec(&body).unwrap_or_default(),
                )),
            ) {
                Ok(reply) => reply,
                Err(e) => {
                    report.failures.push(format!("POST documents: {e}"));
                    continue;
                }
            };
            let (status, enqueued) = reply.pair();
            if status != 202 {
                report
                    .failures
                    .push(format!("POST documents: {status} {}", reply.text()));
                continue;
            }
            let outage = tolerate_outage.then_some(&mut report.refused_task_reads);
            match await_task(&client, &enqueued, outage) {
                Ok(_) => {
                    ledger.ack(&batch);
                    report.acked_at.push(Instant::now());
                }
                Err(e) => report.failures.push(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        report
    })
}

#[derive(Debug, Default)]
struct SearchReport {
    searches: u64,
    failed: u64,
    /// The first failures, in full.
    failures: Vec<String>,
}

/// Searches through `client` until stopped: each search must answer 200 with every document
/// acknowledged before it was sent, and no document twice.
struct Searcher {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<SearchReport>,
}

impl Searcher {
    fn start(client: Client, ledger: Arc<Ledger>) -> Searcher {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (flag, counter) = (stop.clone(), count.clone());
        let handle = std::thread::spawn(move || {
            let mut report = SearchReport::default();
            while !flag.load(Ordering::Relaxed) {
                let before = ledger.ids();
                let outcome = search_every_id(&client).and_then(|hits| {
                    check_hits(&hits, &before)?;
                    Ok(())
                });
                report.searches += 1;
                counter.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = outcome {
                    report.failed += 1;
                    if report.failures.len() < 10 {
                        report.failures.push(e);
                    }
                }
            }
            report
        });
        Searcher {
            stop,
            count,
            handle,
        }
    }

    /// Waits until `n` more searches ran (so some ran after whatever just happened).
    fn wait_for_more(&self, fleet: &Fleet, n: u64) {
        let target = self.count.load(Ordering::Relaxed) + n;
        fleet.eventually_within(
            &format!("{n} more searches"),
            Duration::from_secs(120),
            || {
                let now = self.count.load(Ordering::Relaxed);
                (now >= target)
                    .then_some(())
                    .ok_or_else(|| format!("{now} of {target}"))
            },
        );
    }

    fn finish(self) -> SearchReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the search thread panicked")
    }
}

/// A search every document matches, with a limit above the corpus: the ids of its hits.
fn search_every_id(client: &Client) -> Result<Vec<u64>, String> {
    let body = json!({"q": "", "limit": search_limit(), "attributesToRetrieve": ["id"]});
    let reply = client.try_send(
        "POST",
        "/indexes/movies/search",
        Some((
            "application/json",
            &serde_json::to_vec(&body).unwrap_or_default(),
        )),
    )?;
    let hits = reply
        .try_json()
        .and_then(|b| b["hits"].as_array().cloned())
        .filter(|_| reply.status == 200)
        .ok_or_else(|| {
            let text = reply.text();
            format!("search: {} {}", reply.status, &text[..text.len().min(400)])
        })?;
    hits.iter()
        .map(|h| {
            h["id"]
                .as_u64()
                .ok_or_else(|| format!("a hit without id: {h}"))
        })
        .collect()
}

/// No id twice, none of `expected` missing.
fn check_hits(hits: &[u64], expected: &BTreeSet<u64>) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    let twice: Vec<u64> = hits
        .iter()
        .copied()
        .filter(|id| !seen.insert(*id))
        .collect();
    let missing: Vec<u64> = expected.difference(&seen).copied().collect();
    if twice.is_empty() && missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} hits: {} ids twice (e.g. {:?}), {} acknowledged ids missing (e.g. {:?})",
        hits.len(),
        twice.len(),
        &twice[..twice.len().min(8)],
        missing.len(),
        &missing[..missing.len().min(8)]
    ))
}

/// Searches and writes running together.
struct Load {
    writer: std::thread::JoinHandle<WriterReport>,
    searcher: Searcher,
}

impl Load {
    fn start(fleet: &Fleet, ledger: &Arc<Ledger>, batches: Vec<Vec<Value>>) -> Load {
        Load::start_with(fleet, ledger, batches, false)
    }

    /// `tolerate_outage`: the control plane goes down meanwhile (see [`await_task`]).
    fn start_with(
        fleet: &Fleet,
        ledger: &Arc<Ledger>,
        batches: Vec<Vec<Value>>,
        tolerate_outage: bool,
    ) -> Load {
        let searcher = Searcher::start(fleet.client(0), ledger.clone());
        let writer = start_writer(fleet.client(0), ledger.clone(), batches, tolerate_outage);
        Load { writer, searcher }
    }

    /// Lets the writer finish, runs a few more searches, and checks both saw no failure.
    fn finish(self, fleet: &Fleet, job_window: (Instant, Instant)) {
        let writes = self.writer.join().expect("the writer panicked");
        self.searcher.wait_for_more(fleet, 3);
        let searches = self.searcher.finish();
        let during = writes
            .acked_at
            .iter()
            .filter(|t| **t >= job_window.0 && **t <= job_window.1)
            .count();
        println!(
            "{} load: {} batches written ({} acknowledged while the job ran), {} failed \
             ({} task reads refused while the control plane was down); {} searches, {} failed",
            label(fleet),
            writes.batches,
            during,
            writes.failures.len(),
            writes.refused_task_reads,
            searches.searches,
            searches.failed
        );
        assert!(
            writes.failures.is_empty(),
            "{} of {} write batches failed: {:?}",
            writes.failures.len(),
            writes.batches,
            writes.failures
        );
        assert_searches_ok(&searches);
    }
}

fn assert_searches_ok(searches: &SearchReport) {
    assert!(
        searches.searches >= 3,
        "only {} searches ran",
        searches.searches
    );
    assert_eq!(
        searches.failed, 0,
        "{} of {} searches failed; first ones: {:#?}",
        searches.failed, searches.searches, searches.failures
    );
}

// ---------------------------------------------------------------------------------------------
// Jobs and the shard map, through the admin API.

/// The last lines of every control plane's log, for failure messages.
fn log_tail(fleet: &Fleet) -> String {
    (0..fleet.control_plane_count())
        .map(|i| {
            let cp = fleet.control_plane(i);
            let text = std::fs::read_to_string(cp.log_path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            format!(
                "--- {} ({}):\n{}",
                cp.replica_id(),
                cp.log_path().display(),
                lines[lines.len().saturating_sub(40)..].join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The admin API clients reach: the first control plane still up (the survivor once a replica
/// was killed).
fn admin(fleet: &Fleet) -> Client {
    fleet
        .control_plane(fleet.first_started_control_plane())
        .admin()
}

/// `GET /_miroir/topology` of that control plane.
fn topology(fleet: &Fleet) -> Value {
    fleet
        .control_plane(fleet.first_started_control_plane())
        .topology()
}

/// A 202 `{"job": Job}` answer's job id.
fn job_started(fleet: &Fleet, what: &str, reply: &miroir_e2e::Reply) -> String {
    let (status, body) = reply.pair();
    assert_eq!(
        status,
        202,
        "{what}: {}\ncontrol plane log:\n{}",
        reply.text(),
        log_tail(fleet)
    );
    let id = body["job"]["id"]
        .as_str()
        .map(str::to_string)
        .or_else(|| body["job"]["id"].as_u64().map(|n| n.to_string()))
        .unwrap_or_else(|| panic!("{what}: no job id in {body}"));
    println!("{} {what}: job {id} started: {}", label(fleet), body["job"]);
    id
}

/// The scenario's name (its log directory), to tell interleaved output apart.
fn label(fleet: &Fleet) -> String {
    fleet
        .dir()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn try_job(fleet: &Fleet, id: &str) -> Result<Value, String> {
    let reply = admin(fleet).try_send("GET", &format!("/_miroir/jobs/{id}"), None)?;
    match reply.pair() {
        (200, job) => Ok(job),
        (status, _) => Err(format!("GET /_miroir/jobs/{id}: {status} {}", reply.text())),
    }
}

fn progress(job: &Value) -> String {
    format!(
        "{}/{} shards {}/{} documents {} ({} /s, eta {} s){}",
        job["state"].as_str().unwrap_or("?"),
        job["phase"].as_str().unwrap_or("?"),
        job["shardsDone"],
        job["shardsTotal"],
        job["documentsCopied"],
        job["documentsPerSecond"],
        job["etaSeconds"],
        match job["reason"].as_str() {
            Some(r) => format!(", reason: {r}"),
            None => String::new(),
        }
    )
}

/// Polls the job until `done` says so, printing each change of its progress; panics (with the
/// job and the control plane's log) if it fails or is canceled. The control plane may be down
/// for a while: an unanswered poll is retried.
fn watch_job(
    fleet: &Fleet,
    id: &str,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&Value) -> bool,
) -> Value {
    let mut last = String::new();
    let deadline = Instant::now() + timeout;
    loop {
        match try_job(fleet, id) {
            Ok(job) => {
                let now = progress(&job);
                if now != last {
                    println!("{} job {id}: {now}", label(fleet));
                    last = now;
                }
                if done(&job) {
                    return job;
                }
                if matches!(job["state"].as_str(), Some("failed") | Some("canceled")) {
                    panic!(
                        "job {id} ended while waiting for {what}: {job:#}\ncontrol plane log:\n{}",
                        log_tail(fleet)
                    );
                }
            }
            Err(e) => last = e,
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for job {id} to reach {what}; last: {last}\n\
             control plane log:\n{}",
            log_tail(fleet)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_job_succeeded(fleet: &Fleet, id: &str) -> Value {
    let job = watch_job(fleet, id, "succeeded", job_timeout(), |j| {
        j["state"] == "succeeded"
    });
    assert_eq!(job["phase"], "done", "{job:#}");
    assert_eq!(job["shardsDone"], job["shardsTotal"], "{job:#}");
    let listed = admin(fleet).get("/_miroir/jobs").json();
    assert!(
        listed["results"].as_array().is_some_and(|r| r
            .iter()
            .any(|j| j["id"] == job["id"] && j["state"] == "succeeded")),
        "GET /_miroir/jobs does not list job {id} as succeeded: {listed}"
    );
    job
}

/// A job that never stopped on an error.
fn assert_no_errors(job: &Value) {
    assert!(
        job["errors"].as_array().is_none_or(Vec::is_empty),
        "the job met errors: {job:#}"
    );
}

/// Waits until the running job is in its `copy` phase with at least `shards` shards copied;
/// panics if it got past it first (the corpus is too small for the scenario to mean anything).
fn wait_mid_copy(fleet: &Fleet, id: &str, shards: u64) -> Value {
    let what = format!("phase copy with {shards} shards copied");
    let job = watch_job(fleet, id, &what, job_timeout(), |j| {
        let copying = j["phase"] == "copy" && j["state"] == "running";
        let past = !matches!(j["phase"].as_str(), Some("prepare" | "stage" | "copy"));
        past || (copying && j["shardsDone"].as_u64().unwrap_or(0) >= shards)
    });
    let done = job["shardsDone"].as_u64().unwrap_or(0);
    assert!(
        job["phase"] == "copy" && done < job["shardsTotal"].as_u64().unwrap_or(0),
        "job {id} went past its copy phase before the test could act (more documents needed): \
         {job:#}"
    );
    job
}

/// `GET /_miroir/shards`, read.
#[derive(Debug)]
struct ShardMap {
    epoch: u64,
    /// (group, shard) → owners.
    owners: BTreeMap<(String, u32), Vec<String>>,
    /// (group, shard) → (node, state) of every copy.
    copies: BTreeMap<(String, u32), Vec<(String, String)>>,
    raw: Value,
}

impl ShardMap {
    fn groups(&self) -> BTreeSet<String> {
        self.owners.keys().map(|(g, _)| g.clone()).collect()
    }

    /// Shards `node` owns in `group`.
    fn shards_of(&self, group: &str, node: &str) -> BTreeSet<u32> {
        self.owners
            .iter()
            .filter(|((g, _), owners)| g == group && owners.iter().any(|o| o == node))
            .map(|((_, s), _)| *s)
            .collect()
    }

    /// Whether `node` appears anywhere: as an owner or as a copy in any state.
    fn mentions(&self, node: &str) -> bool {
        self.owners.values().flatten().any(|n| n == node)
            || self.copies.values().flatten().any(|(n, _)| n == node)
    }
}

fn try_shard_map(fleet: &Fleet) -> Result<ShardMap, String> {
    let reply = admin(fleet).try_send("GET", "/_miroir/shards", None)?;
    let raw = match reply.pair() {
        (200, raw) => raw,
        (status, _) => return Err(format!("GET /_miroir/shards: {status} {}", reply.text())),
    };
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect()
    };
    let mut owners = BTreeMap::new();
    let mut copies = BTreeMap::new();
    for entry in raw["shards"].as_array().into_iter().flatten() {
        let shard = entry["shard"]
            .as_u64()
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| format!("a shard without its number: {entry}"))?;
        for (group, nodes) in entry["owners"].as_object().into_iter().flatten() {
            owners.insert((group.clone(), shard), ids(nodes));
        }
        // A server that lists no copies: its owners' copies, active (as `miroirctl` reads it).
        if entry.get("copies").is_none() {
            for (group, nodes) in entry["owners"].as_object().into_iter().flatten() {
                let active = ids(nodes).into_iter().map(|n| (n, "active".to_string()));
                copies.insert((group.clone(), shard), active.collect());
            }
        }
        for (group, list) in entry["copies"].as_object().into_iter().flatten() {
            let list: Vec<(String, String)> = list
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    (
                        c["node"].as_str().unwrap_or("?").to_string(),
                        c["state"].as_str().unwrap_or("active").to_string(),
                    )
                })
                .collect();
            copies.insert((group.clone(), shard), list);
        }
    }
    Ok(ShardMap {
        epoch: raw["epoch"].as_u64().unwrap_or(0),
        owners,
        copies,
        raw,
    })
}

fn shard_map(fleet: &Fleet) -> ShardMap {
    try_shard_map(fleet).unwrap_or_else(|e| panic!("{e}"))
}

/// Node id → its group, from `GET /_miroir/topology`.
fn topology_nodes(fleet: &Fleet) -> BTreeMap<String, String> {
    let topology = topology(fleet);
    topology["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            Some((
                n["id"].as_str()?.to_string(),
                n["group"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// A stored document: its id, its `_miroir_shard` (decoded), its title.
#[derive(Debug)]
struct Stored {
    id: u64,
    shard: Option<u32>,
    title: String,
}

/// Every document of `movies` node `id` holds, read from the node itself (its tasks finished
/// first: the job's deletions are tasks too).
fn stored_on(fleet: &Fleet, node: &str) -> Vec<Stored> {
    let client = fleet.node_client(node);
    miroir_e2e::wait_for_tasks_within(
        client.base_url(),
        fleet.master_key(),
        Duration::from_secs(180),
    );
    let (status, page) = client.get("/indexes/movies/documents?limit=1000000").pair();
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "documents of {node}: {page}");
    page["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| Stored {
            id: d["id"].as_u64().unwrap_or(u64::MAX),
            shard: d[SHARD_FIELD].as_str().and_then(decode_shard),
            title: d["title"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

fn shard_of(id: u64) -> u32 {
    shard_for_key(&id.to_string(), SHARDS)
}

/// What the nodes hold once a job is done.
struct Holdings {
    map: ShardMap,
    /// Node → documents it stores.
    stored: BTreeMap<String, Vec<Stored>>,
}

impl Holdings {
    fn count(&self, node: &str) -> usize {
        self.stored.get(node).map_or(0, Vec::len)
    }

    /// Documents stored on the nodes whose shard is in `shards`.
    fn in_shards(&self, shards: &BTreeSet<u32>) -> usize {
        self.stored
            .values()
            .flatten()
            .filter(|d| d.shard.is_some_and(|s| shards.contains(&s)))
            .count()
    }
}

/// The state after a job, node by node: the map is settled (every copy active, one owner per
/// shard and group, the owners its copies); every acknowledged document is stored exactly once
/// in every group, on the owner of its shard there, with the last title acknowledged; no node
/// stores a document of a shard it does not own.
fn check_holdings(fleet: &Fleet, acked: &BTreeMap<u64, String>) -> Holdings {
    let map = shard_map(fleet);
    let nodes = topology_nodes(fleet);
    let groups = map.groups();
    let mut problems = Vec::new();
    for group in &groups {
        for shard in 0..SHARDS {
            let key = (group.clone(), shard);
            let owners = map.owners.get(&key).cloned().unwrap_or_default();
            let copies = map.copies.get(&key).cloned().unwrap_or_default();
            if owners.len() != 1 {
                problems.push(format!("shard {shard} of {group}: owners {owners:?}"));
            }
            let active: Vec<String> = copies
                .iter()
                .filter(|(_, state)| state == "active")
                .map(|(n, _)| n.clone())
                .collect();
            if copies.len() != active.len() || active != owners {
                problems.push(format!(
                    "shard {shard} of {group}: copies {copies:?}, owners {owners:?}"
                ));
            }
        }
    }
    let stored: BTreeMap<String, Vec<Stored>> = nodes
        .keys()
        .map(|n| (n.clone(), stored_on(fleet, n)))
        .collect();
    // (group, id) → the nodes storing it.
    let mut holders: BTreeMap<(String, u64), Vec<String>> = BTreeMap::new();
    for (node, docs) in &stored {
        let group = &nodes[node];
        for doc in docs {
            let shard = shard_of(doc.id);
            if doc.shard != Some(shard) {
                problems.push(format!(
                    "document {} on {node} has {SHARD_FIELD} {:?}, its shard is {shard}",
                    doc.id, doc.shard
                ));
            }
            let owners = map.owners.get(&(group.clone(), shard));
            if !owners.is_some_and(|o| o.contains(node)) {
                problems.push(format!(
                    "document {} (shard {shard}) is on {node}, {group}'s owners are {owners:?}",
                    doc.id
                ));
            }
            match acked.get(&doc.id) {
                Some(title) if *title != doc.title => problems.push(format!(
                    "document {} on {node} is `{}`, the last acknowledged write was `{title}`",
                    doc.id, doc.title
                )),
                _ => {}
            }
            holders
                .entry((group.clone(), doc.id))
                .or_default()
                .push(node.clone());
        }
    }
    for group in &groups {
        for id in acked.keys() {
            let on = holders
                .get(&(group.clone(), *id))
                .cloned()
                .unwrap_or_default();
            if on.len() != 1 {
                problems.push(format!("document {id} is stored in {group} on {on:?}"));
            }
        }
    }
    let total: usize = stored.values().map(Vec::len).sum();
    println!(
        "{} holdings at epoch {}: {}",
        label(fleet),
        map.epoch,
        stored
            .iter()
            .map(|(n, d)| format!(
                "{n} ({}) {} documents, {} shards",
                nodes[n],
                d.len(),
                map.shards_of(&nodes[n], n).len()
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    assert!(
        problems.is_empty(),
        "{} problems with {} acknowledged documents ({total} stored), e.g.:\n{}\n\
         /_miroir/shards: {}",
        problems.len(),
        acked.len(),
        problems[..problems.len().min(20)].join("\n"),
        map.raw
    );
    Holdings { map, stored }
}

/// Every node of `group` owns between ⌊64/n⌋ and ⌈64/n⌉ shards.
fn assert_balanced(holdings: &Holdings, group: &str, nodes: &[&str]) {
    let n = nodes.len() as u32;
    let (low, high) = (SHARDS / n, SHARDS.div_ceil(n));
    for node in nodes {
        let owned = holdings.map.shards_of(group, node).len() as u32;
        assert!(
            (low..=high).contains(&owned),
            "{node} owns {owned} shards of {group}, expected {low}..={high}: {}",
            holdings.map.raw
        );
    }
}

/// `documentsCopied` against the least a job could copy (`optimum`), both printed.
fn assert_copied_near_optimum(job: &Value, optimum: usize) {
    let copied = job["documentsCopied"].as_u64().unwrap_or(0);
    println!(
        "documents copied {copied}, optimum {optimum} (ratio {:.3})",
        copied as f64 / optimum.max(1) as f64
    );
    assert!(copied > 0, "the job copied nothing: {job:#}");
    assert!(
        copied as f64 <= COPY_SLACK * optimum as f64,
        "the job copied {copied} documents, the optimum is {optimum}: {job:#}"
    );
}

fn add_node(fleet: &Fleet, id: &str, address: &str, group: &str) -> String {
    let reply = admin(fleet).post(
        "/_miroir/nodes",
        &json!({"id": id, "address": address, "group": group}),
    );
    job_started(fleet, &format!("POST /_miroir/nodes {id}"), &reply)
}

/// After the load: one last search sees exactly the acknowledged documents.
fn assert_search_sees(fleet: &Fleet, acked: &BTreeMap<u64, String>) {
    let hits = search_every_id(&fleet.client(0)).unwrap_or_else(|e| panic!("{e}"));
    let expected: BTreeSet<u64> = acked.keys().copied().collect();
    check_hits(&hits, &expected).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hits.len(), acked.len(), "documents nobody acknowledged");
}

// ---------------------------------------------------------------------------------------------

/// The moved shards' documents that were there before the change (ids below `docs`): what the
/// job had to copy at least (writes during the change reach the new copies by themselves), next
/// to what it copied.
fn print_preloaded_share(job: &Value, holdings: &Holdings, shards: &BTreeSet<u32>, docs: u64) {
    let share = holdings
        .stored
        .values()
        .flatten()
        .filter(|d| d.id < docs && d.shard.is_some_and(|s| shards.contains(&s)))
        .count();
    let copied = job["documentsCopied"].as_u64().unwrap_or(0);
    println!(
        "documents copied {copied}; preloaded documents of the {} moved shards {share} \
         (ratio {:.3})",
        shards.len(),
        copied as f64 / share.max(1) as f64
    );
}

/// What a scenario over [`elastic_docs`] documents wrote, and how long it took.
fn print_corpus(fleet: &Fleet, docs: u64, acked: usize, started: Instant) {
    let (new, updates) = batch_shape(docs);
    println!(
        "{} corpus: {docs} documents preloaded, then {LOAD_BATCHES} batches of {new} new and \
         {updates} updated documents; {acked} acknowledged documents in the end; the scenario \
         took {:?}",
        label(fleet),
        started.elapsed()
    );
}

/// Scenario 1: a fourth node joins while a client writes and searches; it gets a quarter of the
/// shards, copied from their old owners, and nothing is lost, duplicated or copied twice.
#[test]
fn adding_a_fourth_node_under_load_loses_nothing() {
    let started = Instant::now();
    let docs = elastic_docs();
    let mut fleet = start("elastic_add_node", one_group(&["n0", "n1", "n2"], "g0"));
    let ledger = prepare(&fleet, docs);
    let load = Load::start(&fleet, &ledger, scaled_load(docs));
    std::thread::sleep(Duration::from_millis(500));

    let address = fleet.launch_node("n3", "g0");
    let began = Instant::now();
    let job = add_node(&fleet, "n3", &address, "g0");
    let done = wait_job_succeeded(&fleet, &job);
    let ended = Instant::now();
    println!("job {job} took {:?}: {}", ended - began, progress(&done));
    assert_eq!(done["kind"], "addNode", "{done:#}");
    assert_no_errors(&done);
    load.finish(&fleet, (began, ended));

    let acked = ledger.snapshot();
    assert_search_sees(&fleet, &acked);
    let holdings = check_holdings(&fleet, &acked);
    assert_balanced(&holdings, "g0", &["n0", "n1", "n2", "n3"]);
    assert_copied_near_optimum(&done, holdings.count("n3"));
    let moved = holdings.map.shards_of("g0", "n3");
    print_preloaded_share(&done, &holdings, &moved, docs);
    print_corpus(&fleet, docs, acked.len(), started);
}

/// Scenario 2: a node drained under load gives its copies to the others; it cannot be removed
/// before, and can be after.
#[test]
fn draining_and_removing_a_node_under_load() {
    let started = Instant::now();
    let docs = elastic_docs();
    let fleet = start("elastic_drain", one_group(&["n0", "n1", "n2", "n3"], "g0"));
    let ledger = prepare(&fleet, docs);
    let before = shard_map(&fleet);
    let n1_shards = before.shards_of("g0", "n1");
    assert!(!n1_shards.is_empty(), "{}", before.raw);

    let not_drained = |when: &str| {
        let (status, body) = admin(&fleet).delete("/_miroir/nodes/n1").pair();
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("miroir_node_not_drained")),
            "DELETE /_miroir/nodes/n1 {when}: {body}"
        );
    };
    not_drained("before a drain");

    let load = Load::start(&fleet, &ledger, scaled_load(docs));
    std::thread::sleep(Duration::from_millis(500));
    let began = Instant::now();
    let reply = admin(&fleet).send("POST", "/_miroir/nodes/n1/drain", None);
    let job = job_started(&fleet, "POST /_miroir/nodes/n1/drain", &reply);
    // While it drains (unless it is already done).
    let (status, body) = admin(&fleet).delete("/_miroir/nodes/n1").pair();
    let removed_early = status == 200;
    if removed_early {
        let state = try_job(&fleet, &job).map(|j| j["state"].clone());
        assert_eq!(
            state,
            Ok(json!("succeeded")),
            "DELETE /_miroir/nodes/n1 answered 200 while the drain ran: {body}"
        );
        println!("the drain was over before the DELETE during it");
    } else {
        // Refused as undrained, or as a topology change while a job runs.
        assert!(
            status == 409
                && matches!(
                    body["code"].as_str(),
                    Some("miroir_node_not_drained" | "miroir_job_running")
                ),
            "DELETE /_miroir/nodes/n1 during the drain: {status} {body}"
        );
    }
    let done = wait_job_succeeded(&fleet, &job);
    let ended = Instant::now();
    println!("job {job} took {:?}: {}", ended - began, progress(&done));
    assert_eq!(done["kind"], "drainNode", "{done:#}");
    assert_no_errors(&done);
    assert!(
        !shard_map(&fleet).mentions("n1"),
        "n1 still holds copies after its drain: {}",
        shard_map(&fleet).raw
    );
    if !removed_early {
        let (status, body) = admin(&fleet).delete("/_miroir/nodes/n1").pair();
        assert_eq!(status, 200, "DELETE /_miroir/nodes/n1 once drained: {body}");
    }
    assert!(
        !topology_nodes(&fleet).contains_key("n1"),
        "{}",
        topology(&fleet)
    );
    load.finish(&fleet, (began, ended));

    let acked = ledger.snapshot();
    assert_search_sees(&fleet, &acked);
    let holdings = check_holdings(&fleet, &acked);
    assert!(
        !holdings.map.mentions("n1"),
        "n1 in the shard map: {}",
        holdings.map.raw
    );
    assert_balanced(&holdings, "g0", &["n0", "n2", "n3"]);
    let left_on_n1 = stored_on(&fleet, "n1");
    assert!(
        left_on_n1.is_empty(),
        "n1 still stores {} documents after its drain, e.g. {:?}",
        left_on_n1.len(),
        &left_on_n1[..left_on_n1.len().min(10)]
    );
    assert_copied_near_optimum(&done, holdings.in_shards(&n1_shards));
    print_preloaded_share(&done, &holdings, &n1_shards, docs);
    print_corpus(&fleet, docs, acked.len(), started);
}

/// `upstream_rq_total` of each node's Envoy cluster (requests Envoy sent it; not its health
/// checks).
fn requests_to(fleet: &Fleet, nodes: &[&str]) -> u64 {
    nodes
        .iter()
        .map(|n| fleet.envoy_stat(0, &format!("cluster.miroir-node-{n}.upstream_rq_total")))
        .sum()
}

/// Runs `n` searches that must each see every acknowledged document.
fn searches_see_everything(fleet: &Fleet, ledger: &Ledger, n: usize) {
    let expected = ledger.ids();
    for i in 0..n {
        let hits = search_every_id(&fleet.client(0)).unwrap_or_else(|e| panic!("search {i}: {e}"));
        check_hits(&hits, &expected).unwrap_or_else(|e| panic!("search {i}: {e}"));
    }
}

/// Scenario 3: a second replica group is filled under load and serves reads only once complete;
/// then the first group is deleted and reads stop going to it at once.
#[test]
fn a_new_group_serves_reads_only_once_complete() {
    let mut fleet = start("elastic_new_group", one_group(&["n0", "n1"], "g0"));
    let ledger = prepare(&fleet, PRELOAD);
    let load = Load::start(&fleet, &ledger, load_batches(PRELOAD, PRELOAD));
    std::thread::sleep(Duration::from_millis(500));

    let n2 = fleet.launch_node("n2", "g1");
    let n3 = fleet.launch_node("n3", "g1");
    let began = Instant::now();
    let reply = admin(&fleet).post(
        "/_miroir/groups",
        &json!({"name": "g1", "nodes": [{"id": "n2", "address": n2}, {"id": "n3", "address": n3}]}),
    );
    let job = job_started(&fleet, "POST /_miroir/groups g1", &reply);
    // Until the job cuts over, no copy of g1 is active (so no read goes to it).
    let mut snapshots = 0;
    let done = loop {
        let map = try_shard_map(&fleet);
        let current = try_job(&fleet, &job).unwrap_or_else(|e| panic!("{e}"));
        if let Ok(map) = map {
            snapshots += 1;
            let phase = current["phase"].as_str().unwrap_or("?");
            let before_cut_over = matches!(phase, "prepare" | "stage" | "copy");
            let active: Vec<String> = map
                .copies
                .iter()
                .filter(|((g, _), _)| g == "g1")
                .flat_map(|((_, s), cs)| {
                    cs.iter()
                        .filter(|(_, state)| state == "active")
                        .map(move |(n, _)| format!("{s}@{n}"))
                })
                .collect();
            assert!(
                !before_cut_over || active.is_empty(),
                "g1 copies {active:?} are active while the job is in its {phase} phase: {}\n{current:#}",
                map.raw
            );
        }
        match current["state"].as_str() {
            Some("succeeded") => break current,
            Some("failed") | Some("canceled") => panic!(
                "job {job} ended: {current:#}\ncontrol plane log:\n{}",
                log_tail(&fleet)
            ),
            _ => {}
        }
        assert!(
            began.elapsed() < job_timeout(),
            "job {job} still {}\ncontrol plane log:\n{}",
            progress(&current),
            log_tail(&fleet)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(done["state"], "succeeded");
    let done = wait_job_succeeded(&fleet, &job);
    let ended = Instant::now();
    println!(
        "job {job}: {snapshots} shard maps read while it ran; {}",
        progress(&done)
    );
    assert_eq!(done["kind"], "addGroup", "{done:#}");
    assert_no_errors(&done);
    load.finish(&fleet, (began, ended));

    let acked = ledger.snapshot();
    let holdings = check_holdings(&fleet, &acked);
    assert_eq!(
        holdings.map.groups(),
        BTreeSet::from(["g0".to_string(), "g1".to_string()])
    );
    assert_balanced(&holdings, "g1", &["n2", "n3"]);
    assert_copied_near_optimum(&done, holdings.count("n2") + holdings.count("n3"));

    // Both groups answer searches now (Envoy sends nothing else to the nodes meanwhile).
    let before = (
        requests_to(&fleet, &["n0", "n1"]),
        requests_to(&fleet, &["n2", "n3"]),
    );
    searches_see_everything(&fleet, &ledger, 30);
    let after = (
        requests_to(&fleet, &["n0", "n1"]),
        requests_to(&fleet, &["n2", "n3"]),
    );
    println!("requests to g0, g1 over 30 searches: {before:?} → {after:?}");
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "both groups should answer searches: requests to (g0, g1) {before:?} → {after:?}"
    );

    let (status, body) = admin(&fleet).delete("/_miroir/groups/g0").pair();
    assert_eq!(
        status,
        200,
        "DELETE /_miroir/groups/g0: {body}\ncontrol plane log:\n{}",
        log_tail(&fleet)
    );
    let map = shard_map(&fleet);
    assert_eq!(
        map.groups(),
        BTreeSet::from(["g1".to_string()]),
        "{}",
        map.raw
    );
    // Reads stop at once: the answer came once the fleet serves the new epoch.
    let g0_before = requests_to(&fleet, &["n0", "n1"]);
    searches_see_everything(&fleet, &ledger, 20);
    let g0_after = requests_to(&fleet, &["n0", "n1"]);
    assert!(
        g0_after <= g0_before,
        "g0 got {} requests after its deletion",
        g0_after - g0_before
    );
    fleet.wait_envoys_at_epoch(map.epoch);
    assert_search_sees(&fleet, &acked);
}

/// Documents for the scenarios that act in the middle of a copy: enough that it lasts.
const LARGE_PRELOAD: u64 = 12_000;

/// Scenario 4: the control plane is killed in the middle of a job's copy and restarted on its
/// store; the job resumes and completes, searches and writes carry on throughout.
#[test]
fn a_job_survives_a_control_plane_restart() {
    let mut fleet = Fleet::start(
        "elastic_cp_restart",
        one_group(&["n0", "n1", "n2"], "g0"),
        slow_copy(),
    );
    let ledger = prepare(&fleet, LARGE_PRELOAD);
    let batches = load_batches(LARGE_PRELOAD, LARGE_PRELOAD);
    let load = Load::start_with(&fleet, &ledger, batches, true);

    let address = fleet.launch_node("n3", "g0");
    let began = Instant::now();
    let job = add_node(&fleet, "n3", &address, "g0");
    let copying = wait_mid_copy(&fleet, &job, 2);
    fleet.control_plane_mut(0).kill();
    println!(
        "control plane killed during the copy: {}",
        progress(&copying)
    );
    std::thread::sleep(Duration::from_secs(2));
    fleet.control_plane_mut(0).restart();
    let resumed = try_job(&fleet, &job).unwrap_or_else(|e| panic!("after the restart: {e}"));
    println!("after the restart: {}", progress(&resumed));
    assert_ne!(resumed["state"], "failed", "{resumed:#}");
    // Resumed, not started over: the shards copied before the restart stay copied.
    assert!(
        resumed["shardsDone"].as_u64() >= copying["shardsDone"].as_u64(),
        "before the restart {}, after {}",
        progress(&copying),
        progress(&resumed)
    );
    let done = wait_job_succeeded(&fleet, &job);
    let ended = Instant::now();
    println!("job {job} took {:?}: {}", ended - began, progress(&done));
    load.finish(&fleet, (began, ended));

    let acked = ledger.snapshot();
    assert_search_sees(&fleet, &acked);
    let holdings = check_holdings(&fleet, &acked);
    assert_balanced(&holdings, "g0", &["n0", "n1", "n2", "n3"]);
    let copied = done["documentsCopied"].as_u64().unwrap_or(0);
    println!(
        "documents copied {copied}, n3 holds {} (a resumed copy may redo a shard)",
        holdings.count("n3")
    );
}

/// Scenario 5: the node a job copies to dies mid-copy: the job pauses saying why, and completes
/// once the node is back. Searches never go to the new node meanwhile, so they all succeed.
#[test]
fn a_dead_target_pauses_the_job_then_it_completes() {
    let mut fleet = Fleet::start(
        "elastic_dead_target",
        one_group(&["n0", "n1", "n2"], "g0"),
        slow_copy(),
    );
    let ledger = prepare(&fleet, LARGE_PRELOAD);
    let searcher = Searcher::start(fleet.client(0), ledger.clone());

    let address = fleet.launch_node("n3", "g0");
    let job = add_node(&fleet, "n3", &address, "g0");
    wait_mid_copy(&fleet, &job, 2);
    fleet.kill_node("n3");
    let paused = watch_job(&fleet, &job, "paused", job_timeout(), |j| {
        j["state"] == "paused"
    });
    let reason = paused["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("n3"),
        "the reason does not name n3: {paused:#}"
    );
    // It stays paused while n3 is down.
    std::thread::sleep(Duration::from_secs(2));
    let still = try_job(&fleet, &job).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(still["state"], "paused", "{still:#}");

    fleet.restart_node("n3");
    let done = wait_job_succeeded(&fleet, &job);
    println!(
        "job {job}: {}, errors met: {}",
        progress(&done),
        done["errors"]
    );
    searcher.wait_for_more(&fleet, 3);
    assert_searches_ok(&searcher.finish());

    // A write after the job reaches the new placement too.
    let late: Vec<Value> = (0..50).map(|i| document(LARGE_PRELOAD + i, 0)).collect();
    write(
        &fleet.client(0),
        "POST",
        "/indexes/movies/documents",
        &json!(late),
    );
    ledger.ack(&late);
    let acked = ledger.snapshot();
    assert_search_sees(&fleet, &acked);
    let holdings = check_holdings(&fleet, &acked);
    assert_balanced(&holdings, "g0", &["n0", "n1", "n2", "n3"]);
}

/// The control planes that say they lead (`None` if one does not answer).
fn leaders(fleet: &Fleet) -> Result<Vec<usize>, String> {
    let mut leaders = Vec::new();
    for i in 0..fleet.control_plane_count() {
        match fleet.control_plane(i).is_leader() {
            Some(true) => leaders.push(i),
            Some(false) => {}
            None => return Err(format!("control plane {i} did not answer")),
        }
    }
    Ok(leaders)
}

/// Scenario 6: two control-plane replicas on Redis; the leader is killed in the middle of a job's
/// copy. The other takes the lease, reads the job from the store and completes it; its Envoy moves
/// to the survivor (its bootstrap knows both), and searches and writes carry on throughout.
#[test]
fn a_job_survives_a_leader_change_on_redis() {
    let mut fleet = Fleet::start(
        "elastic_leader_change",
        one_group(&["n0", "n1", "n2"], "g0"),
        FleetOptions {
            store: StoreKind::Redis,
            control_planes: 2,
            // Started below, connected to the leader first: a job's rollouts wait for the Envoys
            // of the replica driving it.
            envoys: 0,
            ..slow_copy()
        },
    );
    let leader = fleet.eventually("exactly one leader", || match leaders(&fleet)?.as_slice() {
        [one] => Ok(*one),
        other => Err(format!("leaders: {other:?}")),
    });
    let survivor = 1 - leader;
    let envoy = fleet.start_failover_envoy(&[leader, survivor]);
    assert_eq!(envoy, 0);
    fleet.wait_fleet_acked(leader, 1);
    println!("control plane {leader} leads; the Envoy is connected to it");

    let ledger = prepare(&fleet, LARGE_PRELOAD);
    let batches = load_batches(LARGE_PRELOAD, LARGE_PRELOAD);
    let load = Load::start_with(&fleet, &ledger, batches, true);

    let address = fleet.launch_node("n3", "g0");
    let began = Instant::now();
    let job = add_node(&fleet, "n3", &address, "g0");
    let copying = wait_mid_copy(&fleet, &job, 2);
    assert_eq!(
        leaders(&fleet),
        Ok(vec![leader]),
        "the leader changed before the kill"
    );
    let killed_at = Instant::now();
    fleet.control_plane_mut(leader).kill();
    println!(
        "leader (control plane {leader}) killed during the copy: {}",
        progress(&copying)
    );
    assert_eq!(fleet.first_started_control_plane(), survivor);
    fleet.eventually_within(
        "the surviving replica to take the lease",
        Duration::from_secs(120),
        || match fleet.control_plane(survivor).is_leader() {
            Some(true) => Ok(()),
            other => Err(format!("leader: {other:?}")),
        },
    );
    println!(
        "control plane {survivor} leads {:?} after the kill",
        killed_at.elapsed()
    );
    // Read through the survivor (the only one left): resumed, not started over.
    let resumed = try_job(&fleet, &job).unwrap_or_else(|e| panic!("after the takeover: {e}"));
    println!("after the takeover: {}", progress(&resumed));
    assert_ne!(resumed["state"], "failed", "{resumed:#}");
    assert!(
        resumed["shardsDone"].as_u64() >= copying["shardsDone"].as_u64(),
        "before the takeover {}, after {}",
        progress(&copying),
        progress(&resumed)
    );
    let done = wait_job_succeeded(&fleet, &job);
    let ended = Instant::now();
    println!("job {job} took {:?}: {}", ended - began, progress(&done));
    assert_eq!(done["kind"], "addNode", "{done:#}");
    load.finish(&fleet, (began, ended));

    // The Envoy follows the survivor now.
    let map = shard_map(&fleet);
    let view = fleet.wait_fleet_acked(survivor, map.epoch);
    println!(
        "the survivor's fleet at epoch {}: {}",
        map.epoch, view["fleet"]
    );
    fleet.wait_envoys_at_epoch(map.epoch);

    let acked = ledger.snapshot();
    assert_search_sees(&fleet, &acked);
    let holdings = check_holdings(&fleet, &acked);
    assert_balanced(&holdings, "g0", &["n0", "n1", "n2", "n3"]);
    println!(
        "documents copied {}, n3 holds {} (a resumed copy may redo a shard)",
        done["documentsCopied"],
        holdings.count("n3")
    );
}

/// `miroirctl`: `MIROIRCTL_BIN`, else `<target>/debug/miroirctl` (`make build` builds it).
fn miroirctl_bin() -> std::path::PathBuf {
    let path = std::env::var_os("MIROIRCTL_BIN")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| miroir_e2e::paths::target_dir().join("debug/miroirctl"));
    assert!(
        path.exists(),
        "miroirctl not found at {} (set MIROIRCTL_BIN or run `make build`, which builds it)",
        path.display()
    );
    path
}

/// util-linux `script` on `PATH` (it runs a command in a pseudo-terminal).
fn script_bin() -> std::path::PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("script"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("util-linux `script` not found on PATH (apt-get install bsdutils)")
        })
}

/// `text` without its ANSI escape sequences (CSI `ESC [ … final`, and other `ESC x` pairs).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // A CSI runs to its final byte; any other escape is two characters.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// Every `<done>/<total> shards` a line of the terminal shows for `job`.
fn bar_frames(screen: &str, job: &str) -> Vec<(u64, u64, String)> {
    screen
        .split(['\r', '\n'])
        .filter(|line| line.contains(job))
        .filter_map(|line| {
            let before = &line[..line.find(" shards")?];
            let counts = before.rsplit(' ').next()?;
            let (done, total) = counts.split_once('/')?;
            Some((
                done.parse().ok()?,
                total.parse().ok()?,
                line.trim().to_string(),
            ))
        })
        .collect()
}

/// A child process SIGKILLed if the test ends before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Scenario 7: an operator watches a job with `miroirctl jobs watch <id>` in a terminal: a progress
/// bar names the job and counts its shards up to the total, and the command exits 0 once the job
/// succeeded.
#[test]
fn miroirctl_jobs_watch_shows_progress() {
    let (ctl, script) = (miroirctl_bin(), script_bin());
    let mut fleet = start("elastic_ctl_watch", one_group(&["n0", "n1", "n2"], "g0"));
    let ledger = prepare(&fleet, LARGE_PRELOAD);
    let address = fleet.launch_node("n3", "g0");
    let job = add_node(&fleet, "n3", &address, "g0");

    // As typed in a terminal of 120 columns.
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let cp = fleet.control_plane(0);
    let command = format!(
        "stty cols 120 rows 40; exec {} --url {} --admin-key {} jobs watch {}",
        quote(&ctl.to_string_lossy()),
        quote(&cp.url()),
        quote(fleet.admin_key()),
        quote(&job)
    );
    let typescript = fleet.dir().join("miroirctl-watch.typescript");
    let stdout = fleet.dir().join("miroirctl-watch.out");
    let out = std::fs::File::create(&stdout).expect("miroirctl-watch.out");
    let err = out.try_clone().expect("miroirctl-watch.out");
    let mut child = KillOnDrop(
        std::process::Command::new(&script)
            .arg("-qefc")
            .arg(&command)
            .arg(&typescript)
            .env("TERM", "xterm-256color")
            .env_remove("MIROIR_URL")
            .env_remove("MIROIR_ADMIN_KEY")
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", script.display())),
    );
    let status =
        fleet.eventually_within(
            "`miroirctl jobs watch` to exit",
            job_timeout(),
            || match child.0.try_wait() {
                Ok(Some(status)) => Ok(status),
                Ok(None) => Err(format!("still running; job: {:?}", try_job(&fleet, &job))),
                Err(e) => Err(e.to_string()),
            },
        );
    let raw = std::fs::read_to_string(&typescript).unwrap_or_default();
    let screen = strip_ansi(&raw);
    let done = wait_job_succeeded(&fleet, &job);
    let frames = bar_frames(&screen, &job);
    println!(
        "miroirctl jobs watch {job}: {status}, {} progress frames, last: {:?}",
        frames.len(),
        frames.last().map(|f| &f.2)
    );
    let context = format!("terminal ({}):\n{screen}", typescript.display());
    assert!(status.success(), "miroirctl exited {status}; {context}");
    let total = done["shardsTotal"].as_u64().unwrap_or(0);
    assert!(total > 0, "{done:#}");
    assert!(
        frames
            .iter()
            .all(|(d, t, line)| *t == total && *d <= total && line.contains('[')),
        "a progress line with another total than {total}, or no bar; {context}"
    );
    let shown: BTreeSet<u64> = frames.iter().map(|(d, _, _)| *d).collect();
    assert!(
        shown.len() >= 2 && shown.first() < Some(&total) && shown.last() == Some(&total),
        "the bar should count shards up to {total}, it showed {shown:?}; {context}"
    );
    assert!(
        frames.windows(2).all(|w| w[0].0 <= w[1].0),
        "the shard count went back; {context}"
    );
    let last = &frames[frames.len() - 1].2;
    assert!(
        last.contains("addNode") && last.contains("succeeded"),
        "the last progress line does not say the job succeeded: `{last}`; {context}"
    );

    // The job it watched did what it says.
    let acked = ledger.snapshot();
    let holdings = check_holdings(&fleet, &acked);
    assert_balanced(&holdings, "g0", &["n0", "n1", "n2", "n3"]);
}

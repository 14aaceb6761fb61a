//! The load the elastic and replication scenarios put on a cluster while it changes: a writer
//! whose acknowledged documents a ledger records, a searcher that checks every search returns
//! each of them once, and what the nodes hold afterwards, read from the nodes themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use miroir_e2e::{Client, Fleet};
use miroir_topology::reserved::decode_shard;
use miroir_topology::{shard_for_key, SHARD_FIELD};
use serde_json::{json, Value};

use super::write;

pub const SHARDS: u32 = 64;
/// Documents written before the change (what the job has to copy), unless `MIROIR_ELASTIC_DOCS`
/// says otherwise for the add and drain scenarios (see [`elastic_docs`]).
pub const PRELOAD: u64 = 2_000;
/// Batches the writer sends during the change, and their size for a [`PRELOAD`] corpus:
/// `NEW_PER_BATCH` new documents and `UPDATES_PER_BATCH` replacements of preloaded ones.
pub const LOAD_BATCHES: u64 = 20;
pub const NEW_PER_BATCH: u64 = 160;
pub const UPDATES_PER_BATCH: u64 = 40;
/// A search's least `limit` (and the index's `pagination.maxTotalHits`); [`search_limit`] raises
/// it above a larger `MIROIR_ELASTIC_DOCS` corpus.
pub const SEARCH_LIMIT: u64 = 20_000;
/// A job's bound with the default corpus: generous, the runs share 2 cores ([`job_timeout`]
/// grows it with `MIROIR_ELASTIC_DOCS`).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(420);

/// The documents the add and drain scenarios preload: `MIROIR_ELASTIC_DOCS`, else [`PRELOAD`].
/// The writer's batches during the change scale with it (20 batches of 8% new documents and 2%
/// updates each: 2,000 gives 160 + 40 per batch, 20,000 gives 1,600 + 400).
pub fn elastic_docs() -> u64 {
    match std::env::var("MIROIR_ELASTIC_DOCS") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u64>() {
            Ok(n) if n >= 100 => n,
            _ => panic!("MIROIR_ELASTIC_DOCS=`{v}`: expected a number of documents, at least 100"),
        },
        _ => PRELOAD,
    }
}

/// (new documents, updates) per batch of the writer for a corpus of `docs`.
pub fn batch_shape(docs: u64) -> (u64, u64) {
    (
        NEW_PER_BATCH * docs / PRELOAD,
        UPDATES_PER_BATCH * docs / PRELOAD,
    )
}

/// Above every corpus a scenario builds: the largest preload and everything its writer adds.
pub fn search_limit() -> u64 {
    let docs = elastic_docs();
    SEARCH_LIMIT.max(docs + LOAD_BATCHES * batch_shape(docs).0)
}

/// [`JOB_TIMEOUT`], plus a second per 20 documents above [`PRELOAD`] with a larger corpus.
pub fn job_timeout() -> Duration {
    JOB_TIMEOUT + Duration::from_secs(elastic_docs().saturating_sub(PRELOAD) / 20)
}

pub const GENRES: [&str; 3] = ["drama", "comedy", "action"];

pub fn document(id: u64, version: u64) -> Value {
    json!({
        "id": id,
        "title": format!("doc kw{id:05} v{version}"),
        "genre": GENRES[(id % 3) as usize],
        "year": 1950 + (id * 13) % 70,
    })
}

/// `movies`, every hit reachable by one search (`maxTotalHits`), then `count` documents.
pub fn prepare(fleet: &Fleet, count: u64) -> Arc<Ledger> {
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
    write_acked(&client, &ledger, &docs);
    ledger
}

/// Writes `docs` to `movies` in batches of 2,000, each awaited, and records them acknowledged.
pub fn write_acked(client: &Client, ledger: &Ledger, docs: &[Value]) {
    for chunk in docs.chunks(2_000) {
        write(
            client,
            "POST",
            "/indexes/movies/documents",
            &Value::Array(chunk.to_vec()),
        );
        ledger.ack(chunk);
    }
}

/// The writer's batches: new documents after `first_new`, and new versions of preloaded ones.
pub fn load_batches(first_new: u64, preloaded: u64) -> Vec<Vec<Value>> {
    load_batches_of(first_new, preloaded, (NEW_PER_BATCH, UPDATES_PER_BATCH))
}

/// [`load_batches`] of `(new, updates)` documents each.
pub fn load_batches_of(
    first_new: u64,
    preloaded: u64,
    (new, updates): (u64, u64),
) -> Vec<Vec<Value>> {
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
pub fn scaled_load(docs: u64) -> Vec<Vec<Value>> {
    load_batches_of(docs, docs, batch_shape(docs))
}

/// What the client was told: every acknowledged document (its task succeeded) and its title.
#[derive(Default)]
pub struct Ledger {
    pub acked: Mutex<BTreeMap<u64, String>>,
}

impl Ledger {
    pub fn ack(&self, docs: &[Value]) {
        let mut acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        for doc in docs {
            if let (Some(id), Some(title)) = (doc["id"].as_u64(), doc["title"].as_str()) {
                acked.insert(id, title.to_string());
            }
        }
    }

    /// Documents deleted by an acknowledged write.
    pub fn forget(&self, ids: &[u64]) {
        let mut acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            acked.remove(id);
        }
    }

    pub fn snapshot(&self) -> BTreeMap<u64, String> {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn ids(&self) -> BTreeSet<u64> {
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
pub fn await_task(
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
pub struct WriterReport {
    pub batches: usize,
    pub failures: Vec<String>,
    /// When each acknowledged batch was acknowledged.
    pub acked_at: Vec<Instant>,
    /// Task reads refused while the control plane was down (with `tolerate_outage`).
    pub refused_task_reads: u64,
}

/// Writes its batches one after the other, each awaited as an SDK does.
pub fn start_writer(
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
pub struct SearchReport {
    pub searches: u64,
    pub failed: u64,
    /// The first failures, in full.
    pub failures: Vec<String>,
}

/// Searches through `client` until stopped: each search must answer 200 with every document
/// acknowledged before it was sent, and no document twice.
pub struct Searcher {
    pub stop: Arc<AtomicBool>,
    pub count: Arc<AtomicU64>,
    pub handle: std::thread::JoinHandle<SearchReport>,
}

impl Searcher {
    pub fn start(client: Client, ledger: Arc<Ledger>) -> Searcher {
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
    pub fn wait_for_more(&self, fleet: &Fleet, n: u64) {
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

    pub fn finish(self) -> SearchReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the search thread panicked")
    }
}

/// A search every document matches, with a limit above the corpus: the ids of its hits.
pub fn search_every_id(client: &Client) -> Result<Vec<u64>, String> {
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
pub fn check_hits(hits: &[u64], expected: &BTreeSet<u64>) -> Result<(), String> {
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
pub struct Load {
    pub writer: std::thread::JoinHandle<WriterReport>,
    pub searcher: Searcher,
}

impl Load {
    pub fn start(fleet: &Fleet, ledger: &Arc<Ledger>, batches: Vec<Vec<Value>>) -> Load {
        Load::start_with(fleet, ledger, batches, false)
    }

    /// `tolerate_outage`: the control plane goes down meanwhile (see [`await_task`]).
    pub fn start_with(
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
    pub fn finish(self, fleet: &Fleet, job_window: (Instant, Instant)) {
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

pub fn assert_searches_ok(searches: &SearchReport) {
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
pub fn log_tail(fleet: &Fleet) -> String {
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
pub fn admin(fleet: &Fleet) -> Client {
    fleet
        .control_plane(fleet.first_started_control_plane())
        .admin()
}

/// `GET /_miroir/topology` of that control plane.
pub fn topology(fleet: &Fleet) -> Value {
    fleet
        .control_plane(fleet.first_started_control_plane())
        .topology()
}

/// A 202 `{"job": Job}` answer's job id.
pub fn job_started(fleet: &Fleet, what: &str, reply: &miroir_e2e::Reply) -> String {
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
pub fn label(fleet: &Fleet) -> String {
    fleet
        .dir()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn try_job(fleet: &Fleet, id: &str) -> Result<Value, String> {
    let reply = admin(fleet).try_send("GET", &format!("/_miroir/jobs/{id}"), None)?;
    match reply.pair() {
        (200, job) => Ok(job),
        (status, _) => Err(format!("GET /_miroir/jobs/{id}: {status} {}", reply.text())),
    }
}

pub fn progress(job: &Value) -> String {
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
pub fn watch_job(
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

pub fn wait_job_succeeded(fleet: &Fleet, id: &str) -> Value {
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
pub fn assert_no_errors(job: &Value) {
    assert!(
        job["errors"].as_array().is_none_or(Vec::is_empty),
        "the job met errors: {job:#}"
    );
}

/// Waits until the running job is in its `copy` phase with at least `shards` shards copied;
/// panics if it got past it first (the corpus is too small for the scenario to mean anything).
pub fn wait_mid_copy(fleet: &Fleet, id: &str, shards: u64) -> Value {
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
pub struct ShardMap {
    pub epoch: u64,
    /// (group, shard) → owners.
    pub owners: BTreeMap<(String, u32), Vec<String>>,
    /// (group, shard) → (node, state) of every copy.
    pub copies: BTreeMap<(String, u32), Vec<(String, String)>>,
    pub raw: Value,
}

impl ShardMap {
    pub fn groups(&self) -> BTreeSet<String> {
        self.owners.keys().map(|(g, _)| g.clone()).collect()
    }

    /// Shards `node` owns in `group`.
    pub fn shards_of(&self, group: &str, node: &str) -> BTreeSet<u32> {
        self.owners
            .iter()
            .filter(|((g, _), owners)| g == group && owners.iter().any(|o| o == node))
            .map(|((_, s), _)| *s)
            .collect()
    }

    /// Whether `node` appears anywhere: as an owner or as a copy in any state.
    pub fn mentions(&self, node: &str) -> bool {
        self.owners.values().flatten().any(|n| n == node)
            || self.copies.values().flatten().any(|(n, _)| n == node)
    }
}

pub fn try_shard_map(fleet: &Fleet) -> Result<ShardMap, String> {
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

pub fn shard_map(fleet: &Fleet) -> ShardMap {
    try_shard_map(fleet).unwrap_or_else(|e| panic!("{e}"))
}

/// Node id → its group, from `GET /_miroir/topology`.
pub fn topology_nodes(fleet: &Fleet) -> BTreeMap<String, String> {
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
pub struct Stored {
    pub id: u64,
    pub shard: Option<u32>,
    pub title: String,
}

/// Every document of `movies` node `id` holds, read from the node itself (its tasks finished
/// first: the job's deletions are tasks too).
pub fn stored_on(fleet: &Fleet, node: &str) -> Vec<Stored> {
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

pub fn shard_of(id: u64) -> u32 {
    shard_for_key(&id.to_string(), SHARDS)
}

/// What the nodes hold once a job is done.
pub struct Holdings {
    pub map: ShardMap,
    /// Node → documents it stores.
    pub stored: BTreeMap<String, Vec<Stored>>,
}

impl Holdings {
    pub fn count(&self, node: &str) -> usize {
        self.stored.get(node).map_or(0, Vec::len)
    }

    /// Documents stored on the nodes whose shard is in `shards`.
    pub fn in_shards(&self, shards: &BTreeSet<u32>) -> usize {
        self.stored
            .values()
            .flatten()
            .filter(|d| d.shard.is_some_and(|s| shards.contains(&s)))
            .count()
    }
}

/// The state after a job or a repair, node by node: the map is settled (every copy active, as
/// many owners per shard and group as the group's replication factor, the owners its copies);
/// every acknowledged document is stored on exactly the owners of its shard in every group, with
/// the last title acknowledged; no node stores a document of a shard it does not own.
pub fn check_holdings(fleet: &Fleet, acked: &BTreeMap<u64, String>) -> Holdings {
    let map = shard_map(fleet);
    let nodes = topology_nodes(fleet);
    let replication = topology(fleet)["replication"].clone();
    let rf = |group: &str| replication[group].as_u64().unwrap_or(1) as usize;
    let groups = map.groups();
    let mut problems = Vec::new();
    for group in &groups {
        for shard in 0..SHARDS {
            let key = (group.clone(), shard);
            let owners = map.owners.get(&key).cloned().unwrap_or_default();
            let copies = map.copies.get(&key).cloned().unwrap_or_default();
            if owners.len() != rf(group) {
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
            if on.len() != rf(group) {
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

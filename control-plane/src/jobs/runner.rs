//! The leader drives the unfinished job one step at a time, saving it after every step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use miroir_topology::{CopyState, Node, NodeState, Topology};

use super::plan::{cleaned_up, cut_over, leftovers, staged, withdrawn};
use futures_util::StreamExt;

use super::shard_copy::{self, Calls, CopyError, Index, Pacer};
use super::{reconcile, repair, Job, JobKind, JobState, Move, MovePhase, PauseCause, Phase};
use crate::app::{pause, App};
use crate::error::ApiError;

const TICK: Duration = Duration::from_millis(300);

pub async fn run(app: Arc<App>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    loop {
        if app.is_leader() {
            if let Err(e) = tick(&app).await {
                tracing::warn!(error = %e, "jobs");
            }
        }
        if !pause(&mut stopped, TICK).await {
            return;
        }
    }
}

pub async fn load(app: &App) -> Result<Vec<Job>, ApiError> {
    let stored = app.store.list_jobs().await.map_err(ApiError::store)?;
    Ok(stored
        .into_iter()
        .filter_map(|(id, text)| match serde_json::from_str::<Job>(&text) {
            Ok(job) => Some(job),
            Err(e) => {
                tracing::warn!(job = id, error = %e, "unreadable job record");
                None
            }
        })
        .collect())
}

/// The runner's save: a pause or cancel an operator stored since the runner read the job wins
/// over the runner's `running`.
async fn persist(app: &App, job: &mut Job) -> Result<(), ApiError> {
    if job.state == JobState::Running {
        interrupted(app, job).await;
    }
    save(app, job).await
}

pub async fn save(app: &App, job: &mut Job) -> Result<(), ApiError> {
    job.updated_at = crate::time::now();
    job.refresh_progress();
    let text = serde_json::to_string(job).map_err(|e| ApiError::internal(e.to_string()))?;
    app.store
        .put_job(&job.id, &text)
        .await
        .map_err(ApiError::store)?;
    app.metrics
        .job_moves_left
        .set(job.shards_total.saturating_sub(job.shards_done) as i64);
    Ok(())
}

/// The job not yet over, if any: at most one runs at a time. A canceled job is over once its
/// copies are withdrawn.
pub fn unfinished(jobs: &[Job]) -> Option<&Job> {
    jobs.iter().find(|j| {
        !j.state.is_finished() || (j.state == JobState::Canceled && j.finished_at.is_none())
    })
}

/// One step of the leader's work: drives the unfinished job, or starts a repair of the
/// out-of-sync copies on active nodes when there is none ([`start_repair`]).
pub async fn tick(app: &App) -> Result<(), String> {
    let jobs = load(app).await.map_err(|e| e.to_string())?;
    let Some(job) = unfinished(&jobs).cloned() else {
        return start_repair(app, &jobs).await.map(|_| ());
    };
    let mut job = job;
    match job.state {
        JobState::Running => drive(app, &mut job).await,
        JobState::Canceled => {
            // A canceled repair leaves its copies out of sync: nothing to withdraw.
            if job.kind != JobKind::Repair {
                apply(app, |t| withdrawn(t, &job)).await?;
            }
            app.metrics.job_shard_lag.clear();
            job.finished_at = Some(crate::time::now());
            persist(app, &mut job).await.map_err(|e| e.to_string())
        }
        JobState::Paused => {
            if let Some(PauseCause::NodeUnavailable { node }) = &job.pause_cause {
                let address = node_of(app, &job, node).await.map(|n| n.address);
                if let Some(address) = address {
                    if crate::nodes::healthy(&app.http, &address, app.read_timeout()).await {
                        tracing::info!(job = job.id, node, "node answers again: job resumed");
                        job.state = JobState::Running;
                        job.reason = None;
                        job.pause_cause = None;
                        save(app, &mut job).await.map_err(|e| e.to_string())?;
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Starts a repair of every out-of-sync copy on an active node (`repair::repairs`), unless a
/// job is unfinished or the last repair failed or was canceled shortly before
/// (`repair::may_start`). Returns the job started.
pub async fn start_repair(app: &App, jobs: &[Job]) -> Result<Option<Job>, String> {
    if !repair::may_start(jobs, crate::time::now_nanos()) {
        return Ok(None);
    }
    let topology = current(app).await?;
    let moves = repair::repairs(&topology);
    if moves.is_empty() {
        return Ok(None);
    }
    let number = app
        .store
        .next_job_number()
        .await
        .map_err(|e| e.to_string())?;
    let mut job = Job::new(
        format!("job-{number}"),
        JobKind::Repair,
        super::Edit::default(),
        moves,
        crate::time::now(),
    );
    let now = crate::time::now_nanos() / 1_000_000;
    for (envoy, _) in crate::fleet_reports::views(app).await? {
        job.fleet.insert(envoy, now);
    }
    save(app, &mut job).await.map_err(|e| e.to_string())?;
    tracing::info!(
        job = job.id,
        copies = job.shards_total,
        nodes = ?targets(&job),
        "repair of out-of-sync copies started"
    );
    Ok(Some(job))
}

/// The stored topology (an error when none is stored).
pub(crate) async fn current(app: &App) -> Result<Topology, String> {
    app.store
        .load_topology()
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no topology stored".to_string())
}

/// Stores `step(current)` as the next epoch (unless it is already stored: a resumed step) and
/// returns once every Envoy acknowledged it.
async fn apply(app: &App, step: impl Fn(&Topology) -> Topology) -> Result<Topology, String> {
    let now = current(app).await?;
    let next = step(&now);
    let stored = if next.nodes == now.nodes && next.shard_map == now.shard_map {
        app.rollout(&now).await.map_err(|e| e.to_string())?;
        now
    } else {
        let change = app
            .change_topology(|t| Ok(step(t)))
            .await
            .map_err(|e| e.to_string())?;
        change.rollout.map_err(|e| {
            format!(
                "epoch {} not acknowledged by every Envoy yet: {e}",
                change.topology.epoch
            )
        })?;
        change.topology
    };
    Ok(stored)
}

/// [`apply`], then waits until every Envoy the job knows acknowledged the epoch
/// ([`crate::fleet_reports::wait_for`]): the rollout waited only for this replica's connected
/// Envoys, and one reconnecting (to a restarted control plane, say) is still reading.
async fn apply_to_fleet(
    app: &App,
    job: &mut Job,
    step: impl Fn(&Topology, &Job) -> Topology,
) -> Result<Topology, String> {
    let snapshot = job.clone();
    let stored = apply(app, |t| step(t, &snapshot)).await?;
    let timeout = Duration::from_millis(app.config.rollout_ack_timeout_ms);
    crate::fleet_reports::wait_for(app, &mut job.fleet, stored.epoch, timeout).await?;
    Ok(stored)
}

/// A node by id: in the topology, or one the job adds.
async fn node_of(app: &App, job: &Job, id: &str) -> Option<Node> {
    if let Ok(t) = current(app).await {
        if let Some(n) = t.node(id) {
            return Some(n.clone());
        }
    }
    job.edit.add_nodes.iter().find(|n| n.id == id).cloned()
}

/// Stores `step(current)` as the next epoch (unless it is already stored) and rolls it out
/// without waiting for the fleet: a repair's activation only adds readable copies, which an
/// Envoy still on the previous epoch does without.
async fn store_epoch(app: &App, step: impl Fn(&Topology) -> Topology) -> Result<Topology, String> {
    let now = current(app).await?;
    let next = step(&now);
    if next.nodes == now.nodes && next.shard_map == now.shard_map {
        return Ok(now);
    }
    let change = app
        .change_topology(|t| Ok(step(t)))
        .await
        .map_err(|e| e.to_string())?;
    if let Err(e) = change.rollout {
        tracing::info!(epoch = change.topology.epoch, error = %e, "epoch stored, rollout incomplete");
    }
    Ok(change.topology)
}

/// Whether every copy `node` holds is in sync (none `outOfSync`).
fn in_sync(topology: &Topology, node: &str) -> bool {
    topology
        .shard_map
        .groups
        .values()
        .flatten()
        .flatten()
        .all(|c| c.node != node || c.state != CopyState::OutOfSync)
}

/// An active node to read indexes and settings from: one whose copies are all in sync, in a
/// group serving reads, else one whose copies are all in sync, else one in a group serving reads
/// (each time the first in the topology's order).
pub(crate) fn reference(topology: &Topology, avoid: &[String]) -> Option<Node> {
    let candidates: Vec<&Node> = topology
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Active && !avoid.contains(&n.id))
        .collect();
    let complete = |n: &Node| topology.is_complete(&n.group);
    let synced = |n: &Node| in_sync(topology, &n.id);
    candidates
        .iter()
        .find(|n| synced(n) && complete(n))
        .or_else(|| candidates.iter().find(|n| synced(n)))
        .or_else(|| candidates.iter().find(|n| complete(n)))
        .map(|n| (*n).clone())
}

/// An active copy of the move's shard to copy from: in its group, else in another. Never a copy
/// out of sync, being filled or leaving (only active copies are owners).
pub(crate) fn source(topology: &Topology, m: &Move) -> Option<Node> {
    let same = topology.owners(m.shard, &m.group);
    let others = topology
        .group_names()
        .into_iter()
        .filter(|g| *g != m.group)
        .flat_map(|g| topology.owners(m.shard, g));
    same.into_iter()
        .chain(others)
        .find(|n| n.state == NodeState::Active && !m.to.contains(&n.id))
        .cloned()
}

/// Re-reads the job's state: an operator may have paused or canceled it meanwhile.
async fn interrupted(app: &App, job: &mut Job) -> bool {
    let Ok(Some(text)) = app.store.get_job(&job.id).await else {
        return false;
    };
    let Ok(stored) = serde_json::from_str::<Job>(&text) else {
        return false;
    };
    if stored.state != JobState::Running {
        job.state = stored.state;
        job.reason = stored.reason;
        job.pause_cause = stored.pause_cause;
        return true;
    }
    false
}

async fn drive(app: &App, job: &mut Job) -> Result<(), String> {
    let span = tracing::info_span!("job", id = %job.id, kind = ?job.kind);
    let _entered = span.enter();
    loop {
        if interrupted(app, job).await {
            return persist(app, job).await.map_err(|e| e.to_string());
        }
        app.metrics.job_phase.set(job.phase as i64);
        let repairing = job.kind == JobKind::Repair;
        let step = match job.phase {
            Phase::Prepare if repairing => prepare(app, job).await.map(|_| {
                // Copied afresh, with the miss counts read again before the copy.
                recopy(job);
                Phase::Copy
            }),
            Phase::Prepare => prepare(app, job).await.map(|_| Phase::Stage),
            Phase::Stage => match apply_to_fleet(app, job, staged).await {
                Ok(_) => {
                    // Anything copied before a withdrawal may have missed writes since.
                    for m in &mut job.moves {
                        m.phase = MovePhase::Pending;
                    }
                    Ok(Phase::Copy)
                }
                Err(e) => return waiting(app, job, e).await,
            },
            Phase::Copy => match copy(app, job).await {
                Ok(true) if repairing => Ok(Phase::Activate),
                Ok(true) => Ok(Phase::CutOver),
                Ok(false) => return persist(app, job).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            },
            Phase::Activate => match activate(app, job).await {
                Ok(Activation::Done) => Ok(Phase::Done),
                Ok(Activation::Missed(why)) => {
                    // The next repair (`repair::may_start`) copies what is out of sync again.
                    tracing::warn!("{why}");
                    job.state = JobState::Failed;
                    job.reason = Some(why);
                    job.finished_at = Some(crate::time::now());
                    return persist(app, job).await.map_err(|e| e.to_string());
                }
                Err(e) => return waiting(app, job, e).await,
            },
            Phase::CutOver => match apply_to_fleet(app, job, cut_over).await {
                Ok(_) => Ok(Phase::CleanUp),
                Err(e) => return waiting(app, job, e).await,
            },
            Phase::CleanUp => match apply_to_fleet(app, job, cleaned_up).await {
                Ok(t) => clean_up(app, job, &t).await.map(|_| Phase::Done),
                Err(e) => return waiting(app, job, e).await,
            },
            Phase::Done => {
                app.metrics.job_shard_lag.clear();
                job.state = JobState::Succeeded;
                job.reason = None;
                job.finished_at = Some(crate::time::now());
                tracing::info!(documents = job.documents_copied, "job succeeded");
                return persist(app, job).await.map_err(|e| e.to_string());
            }
        };
        match step {
            Ok(next) => {
                tracing::info!(from = ?job.phase, to = ?next, "job phase");
                job.phase = next;
                persist(app, job).await.map_err(|e| e.to_string())?;
            }
            Err(e) => return stopped(app, job, e).await,
        }
    }
}

/// A rollout not acknowledged yet: the step is retried on the next tick.
async fn waiting(app: &App, job: &mut Job, why: String) -> Result<(), String> {
    tracing::warn!(phase = ?job.phase, error = %why, "job waits for the fleet");
    job.reason = Some(why);
    persist(app, job).await.map_err(|e| e.to_string())
}

/// A node failed the job's calls: its new copies are withdrawn (writes stop waiting for them),
/// and the job pauses until the node answers (unavailable) or fails (refused).
async fn stopped(app: &App, job: &mut Job, e: CopyError) -> Result<(), String> {
    // Not a node the job fills (the store, or a source copy: the next try picks another active
    // copy once health checks fail this one): the step is retried as it is.
    if e.unavailable && !targets(job).contains(&e.node) {
        return waiting(app, job, e.to_string()).await;
    }
    tracing::warn!(phase = ?job.phase, error = %e, "job stopped");
    if matches!(job.phase, Phase::Prepare | Phase::Stage | Phase::Copy) {
        // A repair withdraws nothing: its copies stay out of sync (taking writes, best effort).
        if job.kind != JobKind::Repair {
            if let Err(w) = apply(app, |t| withdrawn(t, job)).await {
                tracing::warn!(error = %w, "new copies not withdrawn yet");
            }
        }
        // From the start: a node that comes back may have come back empty (a lost disk), and
        // preparing a node that has everything changes nothing.
        job.phase = Phase::Prepare;
    }
    job.errors.push(format!("{}: {e}", crate::time::now()));
    if job.errors.len() > 20 {
        job.errors.remove(0);
    }
    if e.unavailable {
        job.state = JobState::Paused;
        job.pause_cause = Some(PauseCause::NodeUnavailable {
            node: e.node.clone(),
        });
        job.reason = Some(format!(
            "node `{}` does not answer ({}); the job resumes when it does",
            e.node, e.message
        ));
    } else {
        job.state = JobState::Failed;
        job.reason = Some(e.to_string());
        job.finished_at = Some(crate::time::now());
    }
    persist(app, job).await.map_err(|e| e.to_string())
}

fn targets(job: &Job) -> Vec<String> {
    let mut ids: Vec<String> = job.moves.iter().flat_map(|m| m.to.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

async fn prepare(app: &App, job: &Job) -> Result<(), CopyError> {
    let topology = current(app).await.map_err(|e| CopyError {
        node: String::new(),
        unavailable: true,
        message: e,
    })?;
    let ids = targets(job);
    let Some(reference) = reference(&topology, &ids) else {
        if job.kind == JobKind::Repair {
            return Err(unavailable("no active node to repair from".into()));
        }
        return Ok(());
    };
    let calls = Calls { app, pacer: None };
    for id in &ids {
        let Some(node) = node_of(app, job, id).await else {
            continue;
        };
        crate::filter_key::ensure(app, &node.id, &node.address)
            .await
            .map_err(|e| CopyError {
                node: node.id.clone(),
                unavailable: true,
                message: format!("filter key not created: {e}"),
            })?;
        reconcile::node(&calls, &reference, &node).await?;
        if job.kind == JobKind::Repair {
            // The node may have missed an index's deletion while its copies were out of sync.
            reconcile::prune(&calls, &reference, &node).await?;
        }
    }
    Ok(())
}

/// Shards copied by one pass of the shard copy: large write tasks, and at most this share of an
/// index (8 of 64 shards) held in memory per copy.
const SHARDS_PER_COPY: usize = 8;

/// Shards of one group copied together from one source node to one target node.
struct Unit {
    group: String,
    source: Node,
    target: Node,
    shards: Vec<u32>,
}

/// Copies every move not done yet, `jobs.copyConcurrency` units at a time; `false` when an
/// operator paused or canceled the job meanwhile (the phase stays `copy`).
async fn copy(app: &App, job: &mut Job) -> Result<bool, CopyError> {
    let pacer = Pacer::new(app.config.jobs.copy_documents_per_second);
    let calls = Calls {
        app,
        pacer: Some(&pacer),
    };
    let topology = current(app).await.map_err(unavailable)?;
    let Some(reference) = reference(&topology, &targets(job)) else {
        if job.kind == JobKind::Repair {
            // Nothing verified: the copies must not be activated.
            return Err(unavailable("no active node to repair from".into()));
        }
        return Ok(true);
    };
    let indexes = reconcile::indexes(&calls, &reference).await?;
    let (units, mut left) = units(&topology, job)?;
    if job.kind == JobKind::Repair {
        // Before anything is copied: the writes every node the repair relies on missed so far.
        let mut read = false;
        for id in units.iter().flat_map(|u| [&u.source.id, &u.target.id]) {
            if !job.misses.contains_key(id) {
                let count = app
                    .store
                    .misses(id)
                    .await
                    .map_err(|e| unavailable(e.to_string()))?;
                job.misses.insert(id.clone(), count);
                read = true;
            }
        }
        if read {
            persist(app, job)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            if job.state != JobState::Running {
                return Ok(false);
            }
        }
    }
    for (at, m) in job.moves.iter_mut().enumerate() {
        if m.phase != MovePhase::Done && !left.contains_key(&at) {
            m.phase = MovePhase::Done;
        }
    }
    let (calls, indexes) = (&calls, &indexes);
    let mut copies = futures_util::stream::iter(units.into_iter().map(|unit| async move {
        let copied = copy_unit(app, calls, indexes, &unit).await;
        (unit, copied)
    }))
    .buffer_unordered(app.config.jobs.copy_concurrency.max(1));
    let (base, started) = (job.copy_seconds, Instant::now());
    while let Some((unit, copied)) = copies.next().await {
        let copied = copied?;
        for (shard, n) in copied {
            app.metrics.job_documents_copied.inc_by(n);
            let Some(at) = job.moves.iter().position(|m| {
                m.group == unit.group && m.shard == shard && m.to.contains(&unit.target.id)
            }) else {
                continue;
            };
            if let Some(m) = job.moves.get_mut(at) {
                m.documents_copied += n;
                let remaining = left.entry(at).or_insert(1);
                *remaining = remaining.saturating_sub(1);
                m.phase = if *remaining == 0 {
                    MovePhase::Done
                } else {
                    MovePhase::Copying
                };
            }
        }
        job.copy_seconds = base + started.elapsed().as_secs_f64();
        persist(app, job)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if job.state != JobState::Running {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The moves not done yet as units (by group, source and target, at most [`SHARDS_PER_COPY`]
/// shards each), and per move the units it waits for.
fn units(topology: &Topology, job: &Job) -> Result<(Vec<Unit>, BTreeMap<usize, usize>), CopyError> {
    let mut grouped: BTreeMap<(String, String, String), Vec<u32>> = BTreeMap::new();
    let mut left: BTreeMap<usize, usize> = BTreeMap::new();
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for (at, m) in job.moves.iter().enumerate() {
        if m.phase == MovePhase::Done || m.to.is_empty() {
            continue;
        }
        let Some(from) = source(topology, m) else {
            return Err(unavailable(format!(
                "shard {} has no active copy to copy from",
                m.shard
            )));
        };
        for target in &m.to {
            let Some(node) = topology
                .node(target)
                .or_else(|| job.edit.add_nodes.iter().find(|n| n.id == *target))
            else {
                continue;
            };
            nodes.insert(node.id.clone(), node.clone());
            nodes.insert(from.id.clone(), from.clone());
            grouped
                .entry((m.group.clone(), from.id.clone(), node.id.clone()))
                .or_default()
                .push(m.shard);
            *left.entry(at).or_default() += 1;
        }
    }
    let mut units = Vec::new();
    for ((group, source, target), shards) in grouped {
        let (Some(source), Some(target)) = (nodes.get(&source), nodes.get(&target)) else {
            continue;
        };
        for chunk in shards.chunks(SHARDS_PER_COPY) {
            units.push(Unit {
                group: group.clone(),
                source: source.clone(),
                target: target.clone(),
                shards: chunk.to_vec(),
            });
        }
    }
    Ok((units, left))
}

fn unavailable(message: String) -> CopyError {
    CopyError {
        node: String::new(),
        unavailable: true,
        message,
    }
}

/// One unit: every index's shards copied; the documents written per shard.
async fn copy_unit(
    app: &App,
    calls: &Calls<'_>,
    indexes: &[Index],
    unit: &Unit,
) -> Result<BTreeMap<u32, u64>, CopyError> {
    let lag = |shard: u32, n: usize| {
        app.metrics
            .job_shard_lag
            .get_or_create(&crate::metrics::labels(&[
                ("group", &unit.group),
                ("shard", &shard.to_string()),
                ("node", &unit.target.id),
            ]))
            .set(n as i64);
    };
    let mut copied: BTreeMap<u32, u64> = BTreeMap::new();
    for index in indexes {
        let written =
            shard_copy::sync(calls, index, &unit.shards, &unit.source, &unit.target, lag).await?;
        for (shard, n) in written {
            *copied.entry(shard).or_default() += n;
        }
    }
    for shard in &unit.shards {
        copied.entry(*shard).or_default();
    }
    Ok(copied)
}

/// The documents of moved shards are deleted from the nodes that gave them up (every scattered
/// query already restricts each node to its picked shards, so until then nothing counts twice).
async fn clean_up(app: &App, job: &Job, topology: &Topology) -> Result<(), CopyError> {
    let calls = Calls { app, pacer: None };
    let Some(reference) = reference(topology, &[]) else {
        return Ok(());
    };
    let indexes = reconcile::indexes(&calls, &reference).await?;
    let (calls, indexes) = (&calls, &indexes);
    // Every node at once: each deletion waits a settle time before its check.
    let deletions = leftovers(job).into_iter().filter_map(|(id, shards)| {
        let node = topology.node(&id)?;
        if node.state != NodeState::Active {
            tracing::warn!(node = id, "left documents of moved shards on a failed node");
            return None;
        }
        Some(async move {
            for index in indexes {
                shard_copy::delete_shards(calls, node, &index.uid, &shards).await?;
            }
            Ok::<(), CopyError>(())
        })
    });
    for outcome in futures_util::future::join_all(deletions).await {
        outcome?;
    }
    Ok(())
}

/// A repair copies every copy afresh: the miss counts are read again before the copy, and what
/// was copied before (maybe from a copy that missed a write since) is verified again.
fn recopy(job: &mut Job) {
    for m in &mut job.moves {
        m.phase = MovePhase::Pending;
    }
    job.misses.clear();
}

/// How a repair's activation ended.
enum Activation {
    /// The copies are in sync again.
    Done,
    /// A write missed a node the repair relied on: the copies it may lack are out of sync (the
    /// next repair copies them again).
    Missed(String),
}

/// The miss counts of `nodes`, now.
async fn counts<'a>(
    app: &App,
    nodes: impl Iterator<Item = &'a String>,
) -> Result<Vec<(String, u64)>, String> {
    let mut out = Vec::new();
    for node in nodes {
        let count = app.store.misses(node).await.map_err(|e| e.to_string())?;
        out.push((node.clone(), count));
    }
    Ok(out)
}

/// A repair's copies back in the in-sync set, unless a write missed a node the repair relied on
/// since its copy started (`repair.rs` has the whole argument):
///
/// 1. wait for the write path's longest latency, so that every write a copy round may have
///    overwritten on a repaired node has been registered (its misses counted);
/// 2. every node's count (repaired nodes and sources): one that moved activates nothing;
/// 3. the activation epoch;
/// 4. the repaired nodes' counts again: a node whose count moved has its copies taken out again
///    (a source's miss from now on does not matter: nothing overwrites the copies any more, and
///    taking them out could leave a shard without an in-sync copy).
async fn activate(app: &App, job: &mut Job) -> Result<Activation, String> {
    tokio::time::sleep(repair::settle(
        app.config.node_timeout_ms,
        app.config.control_plane_timeout_ms,
    ))
    .await;
    let before = counts(app, job.misses.keys()).await?;
    let moved = repair::moved(&job.misses, &before);
    if !moved.is_empty() {
        return Ok(Activation::Missed(format!(
            "a write missed node(s) {moved:?} during the repair: the copies stay out of sync"
        )));
    }
    store_epoch(app, |t| repair::activated(t, job)).await?;
    let repaired = targets(job);
    let after = counts(app, repaired.iter()).await?;
    let moved = repair::moved(&job.misses, &after);
    let back = job
        .moves
        .iter()
        .filter(|m| m.to.iter().all(|n| !moved.contains(n)))
        .count();
    app.metrics.repairs.inc_by(back as u64);
    if moved.is_empty() {
        tracing::info!(copies = back, "repaired copies back in sync");
        return Ok(Activation::Done);
    }
    store_epoch(app, |t| repair::deactivated(t, job, &moved)).await?;
    Ok(Activation::Missed(format!(
        "a write missed node(s) {moved:?} as the repair activated their copies: those are out of sync again ({back} copies repaired)"
    )))
}

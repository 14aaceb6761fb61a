//! Anti-entropy: the leader compares the in-sync copies of every shard in the background and
//! makes them equal where they differ, so a difference no write path saw (a node whose disk was
//! swapped or restored faster than the health checks noticed, two writes of one id applied in
//! different orders on two copies, a document changed on a node directly) does not last.
//!
//! A pass, every `antiEntropy.intervalMs` while no job runs: for every index and shard with two
//! or more in-sync copies on active nodes, each copy's documents are read (pages filtered by
//! `_miroir_shard`, at most `antiEntropy.documentsPerSecond`) into a summary of id → version and
//! content digest. Ids the summaries disagree on are read again by id after the write path's
//! longest latency ([`super::repair::settle`]): a write still on its way has reached every copy
//! by then, or has taken the copy that missed it out of the set. Only a difference seen the same
//! both times is resolved, by [`resolve`], and written to the copies that differ.
//!
//! Each pass first compares every index's primary key and settings across the nodes and brings
//! a node that differs from a strict majority to the majority's
//! ([`crate::settings_check::converge`]): a node that accepted a settings change and failed it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use miroir_topology::reserved::version_of;
use miroir_topology::{CopyState, Node, NodeState, Topology};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::reconcile;
use super::runner::{self, reference};
use super::shard_copy::{digest, Calls, CopyError, Index, Pacer};
use crate::app::App;

/// `antiEntropy` in the control plane's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AntiEntropyConfig {
    /// Pause between two passes (0: no anti-entropy).
    pub interval_ms: u64,
    /// Ceiling on the documents a pass reads per second, every copy counted (0: none).
    pub documents_per_second: u64,
}

impl Default for AntiEntropyConfig {
    fn default() -> Self {
        AntiEntropyConfig {
            interval_ms: 600_000,
            documents_per_second: 5_000,
        }
    }
}

/// Ids of one shard resolved per pass at most; the rest waits for the next pass.
const MAX_DIFFERENCES: usize = 10_000;

/// What a copy holds of one document: its version (none before versions were stamped) and a
/// digest of its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    pub version: Option<u64>,
    pub digest: u64,
}

impl Held {
    pub fn of(doc: &Value) -> Held {
        Held {
            version: version_of(doc),
            digest: digest(&without_generated_embeddings(doc)),
        }
    }
}

/// `doc` without the embeddings its node generated itself (`_vectors.<embedder>.regenerate`):
/// each node computes its own, and two computations need not agree to the last bit, so they are
/// no difference between copies (user-provided embeddings are compared).
fn without_generated_embeddings(doc: &Value) -> std::borrow::Cow<'_, Value> {
    let generated = |v: &Value| v.get("regenerate").and_then(Value::as_bool) == Some(true);
    match doc.get("_vectors").and_then(Value::as_object) {
        Some(vectors) if vectors.values().any(generated) => {
            let mut doc = doc.clone();
            if let Some(Value::Object(vectors)) = doc.get_mut("_vectors") {
                vectors.retain(|_, v| !generated(v));
            }
            std::borrow::Cow::Owned(doc)
        }
        _ => std::borrow::Cow::Borrowed(doc),
    }
}

/// One copy's shard: id → what it holds.
pub type Summary = HashMap<String, Held>;

/// The ids the copies do not all hold alike (held by some only, or with different contents).
pub fn differing(summaries: &[Summary]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some((first, rest)) = summaries.split_first() else {
        return out;
    };
    for (id, held) in first {
        if rest.iter().any(|s| s.get(id) != Some(held)) {
            out.insert(id.clone());
        }
    }
    for summary in rest {
        for id in summary.keys() {
            if !first.contains_key(id) {
                out.insert(id.clone());
            }
        }
    }
    out
}

/// What every copy must hold of one id, from what each holds (`None`: absent).
#[derive(Clone, Debug, PartialEq)]
pub enum Resolution {
    /// The latest write: the highest version, then the highest digest (any fixed order makes
    /// every copy converge; versions from two Envoys' clocks can tie).
    Keep(Value),
    /// Most copies do not hold it: the copies that do missed its deletion.
    Delete,
}

/// The copies disagree on one id: which version wins. A document held by as many copies as lack
/// it is kept: two writes racing, a deletion and a replacement, were each applied last on some
/// copy, and either order is one the clients could have seen; a kept document can be deleted
/// again, a lost one cannot be written back.
pub fn resolve(held: &[Option<&Value>]) -> Resolution {
    let present: Vec<&Value> = held.iter().flatten().copied().collect();
    if present.len() * 2 < held.len() {
        return Resolution::Delete;
    }
    let winner = present
        .into_iter()
        .max_by_key(|doc| (version_of(doc).unwrap_or(0), digest(doc)));
    match winner {
        Some(doc) => Resolution::Keep(doc.clone()),
        None => Resolution::Delete,
    }
}

/// The writes that make one copy what the resolutions say.
#[derive(Debug, Default, PartialEq)]
pub struct Fix {
    pub upserts: Vec<Value>,
    pub deletes: Vec<String>,
}

impl Fix {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }
}

/// Per copy (in `held`'s order), the writes that bring it to `resolution` for the id.
pub fn fixes(id: &str, held: &[Option<&Value>], resolution: &Resolution, out: &mut [Fix]) {
    for (copy, fix) in held.iter().zip(out.iter_mut()) {
        match (resolution, copy) {
            (Resolution::Keep(doc), Some(have)) if digest(have) == digest(doc) => {}
            (Resolution::Keep(doc), _) => fix.upserts.push(doc.clone()),
            (Resolution::Delete, Some(_)) => fix.deletes.push(id.to_string()),
            (Resolution::Delete, None) => {}
        }
    }
}

/// The in-sync copies of `shard` on active nodes, every group's, each node once.
pub fn in_sync_copies(topology: &Topology, shard: u32) -> Vec<Node> {
    let explicit = topology.explicit();
    let mut out: Vec<Node> = Vec::new();
    for shards in explicit.shard_map.groups.values() {
        for copy in shards.get(shard as usize).into_iter().flatten() {
            if copy.state != CopyState::Active || out.iter().any(|n| n.id == copy.node) {
                continue;
            }
            if let Some(node) = topology
                .node(&copy.node)
                .filter(|n| n.state == NodeState::Active)
            {
                out.push(node.clone());
            }
        }
    }
    out
}

/// What one pass found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Shards whose copies were compared.
    pub shards: u64,
    /// Documents read, every copy counted.
    pub documents: u64,
    /// Ids whose copies differed twice alike, and were resolved.
    pub repaired: u64,
    /// Ids that differed once but not the second time (a write on its way).
    pub in_flight: u64,
    /// Nodes whose settings of an index were brought to the majority's.
    pub settings_repaired: u64,
}

/// A shard whose copies differ: the index, the copies, and the ids with what each copy held.
struct Suspect {
    index: Index,
    shard: u32,
    copies: Vec<Node>,
    first: BTreeMap<String, Vec<Option<Held>>>,
}

/// The leader's loop: a pass every `antiEntropy.intervalMs`, and between passes the indexes a
/// settings check found differing ([`App::suspect_settings`]) converged as soon as they are.
pub async fn run(app: Arc<App>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let interval = Duration::from_millis(app.config.anti_entropy.interval_ms);
    if interval.is_zero() {
        return;
    }
    let mut next_pass = tokio::time::Instant::now() + interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_pass) => {}
            _ = app.settings_suspected() => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        let suspects = app.take_settings_suspects();
        let due = tokio::time::Instant::now() >= next_pass;
        if due {
            next_pass = tokio::time::Instant::now() + interval;
        }
        if !app.is_leader() {
            continue;
        }
        if !suspects.is_empty() {
            if let Err(e) = converge_suspects(&app, &suspects).await {
                tracing::warn!(error = %e, "index settings not converged");
            }
        }
        if !due {
            continue;
        }
        match pass(&app).await {
            Ok(Some(outcome)) => {
                tracing::info!(
                    shards = outcome.shards,
                    documents = outcome.documents,
                    repaired = outcome.repaired,
                    in_flight = outcome.in_flight,
                    settings_repaired = outcome.settings_repaired,
                    "anti-entropy pass"
                );
            }
            Ok(None) => {}
            Err(e) => {
                app.metrics
                    .anti_entropy_passes
                    .get_or_create(&crate::metrics::labels(&[("result", "error")]))
                    .inc();
                tracing::warn!(error = %e, "anti-entropy pass stopped");
            }
        }
        next_pass = tokio::time::Instant::now() + interval;
    }
}

/// Converges the settings of `indexes` (a settings check found them differing), unless a job
/// runs: it brings its nodes to a reference itself.
async fn converge_suspects(app: &App, indexes: &BTreeSet<String>) -> Result<(), String> {
    let jobs = runner::load(app).await.map_err(|e| e.to_string())?;
    if runner::unfinished(&jobs).is_some() {
        return Ok(());
    }
    let topology = runner::current(app).await?;
    let settle = super::repair::settle(
        app.config.node_timeout_ms,
        app.config.control_plane_timeout_ms,
    );
    for index in indexes {
        crate::settings_check::converge::converge(app, &topology, index, settle).await?;
    }
    Ok(())
}

/// One pass over every index and shard; `None` when a job runs (it changes copies on purpose).
pub async fn pass(app: &App) -> Result<Option<Outcome>, String> {
    let jobs = runner::load(app).await.map_err(|e| e.to_string())?;
    if runner::unfinished(&jobs).is_some() {
        return Ok(None);
    }
    let topology = runner::current(app).await?;
    let pacer = Pacer::new(app.config.anti_entropy.documents_per_second);
    let calls = Calls {
        app,
        pacer: Some(&pacer),
    };
    let Some(reference) = reference(&topology, &[]) else {
        return Ok(None);
    };
    let indexes = reconcile::indexes(&calls, &reference)
        .await
        .map_err(|e| e.to_string())?;
    let mut outcome = Outcome::default();
    let settle = super::repair::settle(
        app.config.node_timeout_ms,
        app.config.control_plane_timeout_ms,
    );
    for index in &indexes {
        let changed =
            crate::settings_check::converge::converge(app, &topology, &index.uid, settle).await?;
        outcome.settings_repaired += changed.len() as u64;
    }
    let mut suspects = Vec::new();
    for index in &indexes {
        for shard in 0..topology.shards {
            let copies = in_sync_copies(&topology, shard);
            if copies.len() < 2 {
                continue;
            }
            let mut summaries = Vec::with_capacity(copies.len());
            for node in &copies {
                let summary = summarize(&calls, node, index, shard)
                    .await
                    .map_err(|e| e.to_string())?;
                outcome.documents += summary.len() as u64;
                summaries.push(summary);
            }
            outcome.shards += 1;
            let ids = differing(&summaries);
            if ids.is_empty() {
                continue;
            }
            let first = ids
                .into_iter()
                .take(MAX_DIFFERENCES)
                .map(|id| {
                    let held = summaries.iter().map(|s| s.get(&id).copied()).collect();
                    (id, held)
                })
                .collect();
            suspects.push(Suspect {
                index: index.clone(),
                shard,
                copies,
                first,
            });
        }
    }
    if !suspects.is_empty() {
        tokio::time::sleep(settle).await;
        // Copies a write marked out of sync meanwhile are the repair's, not anti-entropy's.
        let now = runner::current(app).await?;
        for suspect in suspects {
            let still: Vec<String> = in_sync_copies(&now, suspect.shard)
                .iter()
                .map(|n| n.id.clone())
                .collect();
            if suspect.copies.iter().any(|n| !still.contains(&n.id)) {
                continue;
            }
            settle_suspect(&calls, &suspect, &mut outcome)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let m = &app.metrics;
    m.anti_entropy_passes
        .get_or_create(&crate::metrics::labels(&[("result", "ok")]))
        .inc();
    m.anti_entropy_documents_read.inc_by(outcome.documents);
    m.anti_entropy_documents_repaired.inc_by(outcome.repaired);
    Ok(Some(outcome))
}

/// Reads the suspect's ids again, resolves those that differ as they did the first time, and
/// writes the resolutions to the copies that differ.
async fn settle_suspect(
    calls: &Calls<'_>,
    suspect: &Suspect,
    outcome: &mut Outcome,
) -> Result<(), CopyError> {
    let index = &suspect.index;
    for node in &suspect.copies {
        calls.barrier(node, &index.uid).await?;
    }
    let mut out: Vec<Fix> = suspect.copies.iter().map(|_| Fix::default()).collect();
    for (id, first) in &suspect.first {
        let mut docs = Vec::with_capacity(suspect.copies.len());
        for node in &suspect.copies {
            docs.push(document(calls, node, index, id).await?);
        }
        let again: Vec<Option<Held>> = docs.iter().map(|d| d.as_ref().map(Held::of)).collect();
        if again != *first {
            outcome.in_flight += 1;
            continue;
        }
        let held: Vec<Option<&Value>> = docs.iter().map(Option::as_ref).collect();
        fixes(id, &held, &resolve(&held), &mut out);
        outcome.repaired += 1;
    }
    for (node, fix) in suspect.copies.iter().zip(out) {
        if fix.is_empty() {
            continue;
        }
        tracing::warn!(
            index = index.uid,
            shard = suspect.shard,
            node = node.id,
            written = fix.upserts.len(),
            deleted = fix.deletes.len(),
            "anti-entropy: copy differed from the others, made equal"
        );
        let uid = &index.uid;
        if !fix.upserts.is_empty() {
            let path = format!("/indexes/{uid}/documents?primaryKey={}", index.primary_key);
            calls
                .write(
                    node,
                    reqwest::Method::POST,
                    &path,
                    &Value::Array(fix.upserts),
                )
                .await?;
        }
        if !fix.deletes.is_empty() {
            let path = format!("/indexes/{uid}/documents/delete-batch");
            calls
                .write(node, reqwest::Method::POST, &path, &json!(fix.deletes))
                .await?;
        }
    }
    Ok(())
}

/// One copy's summary of one shard.
async fn summarize(
    calls: &Calls<'_>,
    node: &Node,
    index: &Index,
    shard: u32,
) -> Result<Summary, CopyError> {
    let mut summary = Summary::new();
    calls
        .each_document(node, index, &[shard], true, |id, doc| {
            summary.insert(id, Held::of(&doc));
        })
        .await?;
    Ok(summary)
}

/// One document of a copy, by id (`None`: the copy does not hold it).
async fn document(
    calls: &Calls<'_>,
    node: &Node,
    index: &Index,
    id: &str,
) -> Result<Option<Value>, CopyError> {
    // Meilisearch ids are made of characters a path takes as they are.
    let path = format!(
        "/indexes/{}/documents/{id}?retrieveVectors={}",
        index.uid, index.vectors
    );
    calls.find(node, &path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: u32, t: &str, version: Option<u64>) -> Value {
        let mut d = json!({"id": id, "t": t});
        if let Some(v) = version {
            d["_miroir_version"] = json!(miroir_topology::reserved::encode_seq(v));
        }
        d
    }

    fn summary(docs: &[Value]) -> Summary {
        docs.iter()
            .map(|d| (d["id"].to_string(), Held::of(d)))
            .collect()
    }

    #[test]
    fn copies_differ_on_ids_held_by_some_or_held_otherwise() {
        let a = summary(&[
            doc(1, "x", Some(5)),
            doc(2, "y", Some(6)),
            doc(3, "z", None),
        ]);
        let b = summary(&[
            doc(1, "x", Some(5)),
            doc(2, "y", Some(9)),
            doc(4, "w", None),
        ]);
        let ids: Vec<String> = differing(&[a.clone(), b]).into_iter().collect();
        assert_eq!(ids, ["2", "3", "4"]);
        assert!(differing(&[a.clone(), a]).is_empty());
        assert!(differing(&[]).is_empty());
    }

    #[test]
    fn the_latest_version_wins_whatever_order_the_copies_come_in() {
        let older = doc(1, "old", Some(5));
        let newer = doc(1, "new", Some(9));
        for held in [[Some(&older), Some(&newer)], [Some(&newer), Some(&older)]] {
            assert_eq!(resolve(&held), Resolution::Keep(newer.clone()));
        }
        // Without versions (written before them), or tied: one fixed choice on every order.
        let (p, q) = (doc(1, "p", None), doc(1, "q", None));
        assert_eq!(
            resolve(&[Some(&p), Some(&q)]),
            resolve(&[Some(&q), Some(&p)])
        );
    }

    #[test]
    fn a_document_most_copies_lack_is_deleted_and_one_half_hold_is_kept() {
        let d = doc(1, "x", Some(5));
        assert_eq!(resolve(&[Some(&d), None, None]), Resolution::Delete);
        assert_eq!(resolve(&[Some(&d), None]), Resolution::Keep(d.clone()));
        assert_eq!(
            resolve(&[Some(&d), Some(&d), None]),
            Resolution::Keep(d.clone())
        );
    }

    #[test]
    fn embeddings_a_node_generated_itself_are_no_difference() {
        let with = |embedding: f64, regenerate: bool| json!({"id": 1, "_vectors": {"e": {"embeddings": [[embedding]], "regenerate": regenerate}}});
        assert_eq!(Held::of(&with(0.1, true)), Held::of(&with(0.2, true)));
        assert_ne!(Held::of(&with(0.1, false)), Held::of(&with(0.2, false)));
    }

    #[test]
    fn only_the_copies_that_differ_are_written() {
        let (older, newer) = (doc(1, "old", Some(5)), doc(1, "new", Some(9)));
        let held = [Some(&older), Some(&newer), None];
        let mut out = vec![Fix::default(), Fix::default(), Fix::default()];
        fixes("1", &held, &resolve(&held), &mut out);
        assert_eq!(out[0].upserts, std::slice::from_ref(&newer));
        assert!(out[1].is_empty(), "{:?}", out[1]);
        assert_eq!(out[2].upserts, [newer]);
        let gone = [Some(&older), None, None];
        let mut out = vec![Fix::default(), Fix::default(), Fix::default()];
        fixes("1", &gone, &resolve(&gone), &mut out);
        assert_eq!(out[0].deletes, ["1"]);
        assert!(out[1].is_empty() && out[2].is_empty());
    }
}

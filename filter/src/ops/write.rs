use miroir_topology::Node;
use serde_json::json;

use crate::error::MeiliError;
use crate::host::{Host, Reply};
use crate::ops::phases::{Phase, Phases, Progress};
use crate::ops::Step;
use crate::plan::calls::Ctx;
use crate::plan::partition::{Partition, Stamps};
use crate::request::documents::{self, Batch};
use crate::request::encode_query;
use crate::tasks::TaskRecord;

use super::broadcast::shard_field_filterable;
use super::in_sync::Misses;
use super::lookup::IndexLookup;
use super::routed::RoutedWrite;
use super::*;

/// A document batch: learn the index's primary key, create the index where it is missing, then
/// send each node its documents.
pub(crate) struct Write {
    index: String,
    merge: bool,
    /// Where each document lies in the client's body, which stays in `ctx.request`.
    batch: Batch,
    phase: WritePhase,
    /// Every document's shard, once the primary key is known and the batch valid.
    pending: Option<Routed>,
    record: TaskRecord,
    /// Nodes that missed the index's creation (or its lookup, when the index is created): left
    /// out of the documents.
    missed: Misses,
}

pub(crate) struct Routed {
    primary_key: String,
    /// The index had no primary key: every node learns it, those without documents too (one
    /// Meilisearch infers it once; a node left without it would report `primaryKey: null`).
    teach_primary_key: bool,
    /// Each document's shard, in batch order.
    shards: Vec<u32>,
    stamps: Stamps,
}

pub(crate) enum WritePhase {
    /// Nothing asked yet.
    Parsed,
    /// The registry's primary key, checked at the nodes the documents go to.
    Check(IndexLookup),
    /// Every node asked where the index exists and what its primary key is.
    Lookup(IndexLookup),
    Setup(Phases),
    Documents(RoutedWrite),
}

impl Write {
    pub(crate) fn start(
        ctx: &Ctx,
        index: String,
        merge: bool,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
        let delimiter = ctx.request.query_param("csvDelimiter");
        let batch = documents::parse_batch(
            ctx.request.header("content-type"),
            delimiter.as_deref(),
            &ctx.request.body,
        )?;
        let mut write = Write {
            index: index.clone(),
            merge,
            batch,
            phase: WritePhase::Parsed,
            pending: None,
            record: TaskRecord::new(Some(index), "documentAdditionOrUpdate"),
            missed: Misses::default(),
        };
        if let Some(check) = write.check_registry(ctx, host) {
            write.phase = WritePhase::Check(check);
            return Ok((write, Step::Wait));
        }
        let step = write.look_up(ctx, host);
        Ok((write, step))
    }

    /// With the primary key the control plane's registry gives the index, routes the batch and
    /// asks only the nodes its documents go to whether they hold the index with that key: a node
    /// holding none of the batch's shards is not on the write's path, however it fares. `None`:
    /// no such key, or the batch does not validate with it (the index's own key decides).
    fn check_registry(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Option<IndexLookup> {
        let primary_key = ctx.config.registry_primary_key(&self.index)?.to_string();
        let topology = &ctx.config.topology;
        let shards = documents::validate(&self.batch, &ctx.request.body, &primary_key, |id| {
            topology.shard_for_key(&id)
        })
        .ok()?;
        let mut targets: Vec<&Node> = Vec::new();
        let distinct: std::collections::BTreeSet<u32> = shards.iter().copied().collect();
        for shard in distinct {
            for node in topology.write_targets(shard) {
                if !targets.iter().any(|t| t.id == node.id) {
                    targets.push(node);
                }
            }
        }
        if targets.is_empty() {
            return None;
        }
        self.route_documents(host, primary_key, shards);
        Some(IndexLookup::send_to(
            ctx,
            &self.index,
            targets.into_iter(),
            host,
        ))
    }

    /// Asks every node where the index exists and what its primary key is.
    fn look_up(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        host.count(crate::metrics::INDEX_LOOKUPS, 1);
        self.pending = None;
        self.phase = WritePhase::Lookup(IndexLookup::send(ctx, &self.index, host));
        self.after_lookup_if_complete(ctx, host)
    }

    fn after_check(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        let WritePhase::Check(check) = &mut self.phase else {
            return Step::Wait;
        };
        let confirmed = match (check.result(), &self.pending) {
            (None, _) => return Step::Wait,
            (Some(Ok(found)), Some(routed)) => IndexLookup::confirms(&found, &routed.primary_key),
            _ => false,
        };
        if confirmed {
            // A node that did not answer is in the write for the shards it holds only: its
            // part is sent anyway, and succeeds or fails alone.
            self.send_documents(ctx, host)
        } else {
            // The registry this Envoy holds is behind the nodes (the index was deleted,
            // re-created or swapped): the nodes decide.
            self.look_up(ctx, host)
        }
    }

    pub(crate) fn on_reply(
        &mut self,
        ctx: &Ctx,
        token: u32,
        reply: Reply,
        host: &mut dyn Host,
    ) -> Step {
        match &mut self.phase {
            WritePhase::Parsed => Step::Wait,
            WritePhase::Check(check) => {
                if !check.accept(token, reply) {
                    return Step::Wait;
                }
                self.after_check(ctx, host)
            }
            WritePhase::Lookup(lookup) => {
                if !lookup.accept(token, reply) {
                    return Step::Wait;
                }
                self.after_lookup_if_complete(ctx, host)
            }
            WritePhase::Setup(phases) => {
                let progress = phases.on_reply(token, reply, host);
                self.after_setup(ctx, progress, host)
            }
            WritePhase::Documents(write) => write.on_reply(ctx, token, reply, host),
        }
    }

    pub(crate) fn after_lookup_if_complete(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        let WritePhase::Lookup(lookup) = &mut self.phase else {
            return Step::Wait;
        };
        let (missing, index_pk, unreachable) = match lookup.result() {
            None => return Step::Wait,
            Some(Err(problem)) => return Step::Answer(problem),
            Some(Ok(found)) => (found.missing, found.primary_key, found.unreachable),
        };
        let index_pk_was_unset = index_pk.is_none();
        let primary_key = match index_pk.or_else(|| ctx.request.query_param("primaryKey")) {
            Some(pk) => pk,
            None => match documents::infer_primary_key(&self.batch, &ctx.request.body) {
                Ok(pk) => pk,
                Err(e) => return Step::Answer(e.into()),
            },
        };
        let topology = &ctx.config.topology;
        let shards = documents::validate(&self.batch, &ctx.request.body, &primary_key, |id| {
            topology.shard_for_key(&id)
        });
        let shards = match shards {
            Ok(shards) => shards,
            Err(e) => {
                host.count(crate::metrics::BATCHES_REJECTED, 1);
                return Step::Answer(e.into());
            }
        };
        self.route_documents(host, primary_key.clone(), shards);
        if let Some(routed) = &mut self.pending {
            routed.teach_primary_key = index_pk_was_unset;
        }
        if missing.is_empty() {
            // The index exists, so a node that did not answer is in the write only for the
            // shards it holds: its part (sent anyway) succeeds or fails alone, and a node that
            // holds none of them is not on the write's path at all.
            return self.send_documents(ctx, host);
        }
        // Where the index is created, a node that did not answer may lack it: it is left out
        // of the whole write, and every copy it holds missed it.
        // Meilisearch would create the index implicitly, without `_miroir_shard` filterable.
        let missing_nodes: Vec<&Node> = ctx.nodes().filter(|n| missing.contains(&n.id)).collect();
        let create = json!({"uid": self.index, "primaryKey": primary_key});
        let creation: Phase = missing_nodes
            .iter()
            .map(|n| {
                (
                    n.id.clone(),
                    ctx.json_call(n, "POST", "/indexes".into(), &create),
                )
            })
            .collect();
        let settings = shard_field_filterable(ctx, missing_nodes.into_iter(), &self.index);
        let (phases, progress) = Phases::start(vec![creation, settings], unreachable, host);
        self.phase = WritePhase::Setup(phases);
        self.after_setup(ctx, progress, host)
    }

    fn after_setup(&mut self, ctx: &Ctx, progress: Progress, host: &mut dyn Host) -> Step {
        let WritePhase::Setup(phases) = &mut self.phase else {
            return Step::Wait;
        };
        match progress {
            Progress::Finished => {
                for phase in &phases.finished {
                    record_tasks(&mut self.record, phase);
                }
                self.missed = std::mem::take(&mut phases.missed);
                self.send_documents(ctx, host)
            }
            other => other.into(),
        }
    }

    pub(crate) fn route_documents(
        &mut self,
        host: &mut dyn Host,
        primary_key: String,
        shards: Vec<u32>,
    ) {
        // A replacement is a new document (one node gives it its old internal id, though; see
        // docs/api-compatibility.md). A partial update keeps the sequence number it had.
        let stamps = Stamps {
            first: crate::plan::insertion::allocate(host, shards.len() as u64),
            seq: !self.merge,
        };
        self.record
            .details
            .insert("receivedDocuments".into(), json!(shards.len()));
        self.record.primary_key = Some(primary_key.clone());
        self.pending = Some(Routed {
            primary_key,
            teach_primary_key: false,
            shards,
            stamps,
        });
    }

    pub(crate) fn send_documents(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        let Some(routed) = self.pending.take() else {
            return Step::Answer(MeiliError::internal("documents were not routed").into());
        };
        let mut query: Vec<(String, String)> = ctx
            .request
            .query_pairs()
            .into_iter()
            .filter(|(k, _)| k != "primaryKey")
            .collect();
        query.push(("primaryKey".into(), routed.primary_key));
        let path = format!("/indexes/{}/documents?{}", self.index, encode_query(&query));
        let method = if self.merge { "PUT" } else { "POST" };

        let batch = std::mem::take(&mut self.batch);
        let topology = &ctx.config.topology;
        let mut record = std::mem::take(&mut self.record);
        let missed = std::mem::take(&mut self.missed);
        let left_out: Vec<String> = ctx
            .nodes()
            .filter(|n| missed.contains(&n.id))
            .map(|n| n.id.clone())
            .collect();
        let split = Partition::new(
            topology,
            &batch,
            &ctx.request.body,
            &routed.shards,
            routed.stamps,
        );
        for node in split.nodes().filter_map(|id| topology.node(id)) {
            record.share(node, split.documents_for(&node.id) as u64);
        }
        let mut write = RoutedWrite::new(routed.shards.iter().copied(), missed, record);
        // One buffer for every node's body in turn: Envoy copies a call's body when it is
        // dispatched, so a batch never costs more than its largest part next to the client's body.
        let mut body = Vec::with_capacity(split.largest());
        for node_id in split.nodes() {
            let Some(node) = topology.node(node_id) else {
                continue;
            };
            if left_out.contains(node_id) {
                continue;
            }
            body.clear();
            let content_type = split.write(node_id, &mut body);
            let call = ctx.call_with(node, method, path.clone(), content_type, body);
            write.send_part(host, &call, node_id.clone());
            body = call.body.unwrap_or_default();
        }
        let without_documents: Vec<&Node> = if routed.teach_primary_key {
            ctx.nodes()
                .filter(|n| !split.nodes().any(|id| *id == n.id) && !left_out.contains(&n.id))
                .collect()
        } else if split.nodes().next().is_none() {
            // An empty batch still makes a task on one node, as on Meilisearch.
            ctx.nodes()
                .filter(|n| !left_out.contains(&n.id))
                .take(1)
                .collect()
        } else {
            Vec::new()
        };
        for node in without_documents {
            let empty = batch.empty_part();
            let call = ctx.call_with(node, method, path.clone(), empty.content_type, empty.body);
            write.send_part(host, &call, node.id.clone());
        }
        let step = write.all_sent(ctx, host);
        self.phase = WritePhase::Documents(write);
        step
    }
}

use std::collections::BTreeMap;

use miroir_topology::Node;
use serde_json::json;

use crate::ctx::Ctx;
use crate::documents::{self, Batch, Part};
use crate::error::MeiliError;
use crate::exchange::Step;
use crate::host::{Host, Reply};
use crate::request::encode_query;
use crate::sequence::{Phase, Progress, Sequence};
use crate::tasks::TaskRecord;

use super::broadcast::shard_field_filterable;
use super::lookup::IndexLookup;
use super::routed::RoutedWrite;
use super::*;

/// A document batch: learn the index's primary key, create the index where it is missing, then
/// send each node its documents.
pub(crate) struct Write {
    index: String,
    merge: bool,
    batch: Batch,
    phase: WritePhase,
    /// Documents split per node once the primary key is known.
    pending: Option<Routed>,
    record: TaskRecord,
}

pub(crate) struct Routed {
    primary_key: String,
    per_node: BTreeMap<String, Part>,
    /// What a node gets when the batch routed to none (it still makes a task).
    empty: Part,
    shards_of: Vec<u32>,
}

pub(crate) enum WritePhase {
    Lookup(IndexLookup),
    Setup(Sequence),
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
        let lookup = IndexLookup::send(ctx, &index, host);
        let mut write = Write {
            index: index.clone(),
            merge,
            batch,
            phase: WritePhase::Lookup(lookup),
            pending: None,
            record: TaskRecord::new(Some(index), "documentAdditionOrUpdate"),
        };
        let step = write.after_lookup_if_complete(ctx, host);
        Ok((write, step))
    }

    pub(crate) fn on_reply(
        &mut self,
        ctx: &Ctx,
        token: u32,
        reply: Reply,
        host: &mut dyn Host,
    ) -> Step {
        match &mut self.phase {
            WritePhase::Lookup(lookup) => {
                if !lookup.accept(token, reply) {
                    return Step::Wait;
                }
                self.after_lookup_if_complete(ctx, host)
            }
            WritePhase::Setup(sequence) => match sequence.on_reply(token, reply, host) {
                Progress::Finished => {
                    for phase in &sequence.finished {
                        record_tasks(&mut self.record, phase);
                    }
                    self.send_documents(ctx, host)
                }
                other => other.into(),
            },
            WritePhase::Documents(write) => write.on_reply(token, reply, host),
        }
    }

    pub(crate) fn after_lookup_if_complete(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        let WritePhase::Lookup(lookup) = &mut self.phase else {
            return Step::Wait;
        };
        let (missing, index_pk) = match lookup.result() {
            None => return Step::Wait,
            Some(Err(problem)) => return Step::Answer(problem),
            Some(Ok(found)) => (found.missing, found.primary_key),
        };
        let primary_key = match index_pk.or_else(|| ctx.request.query_param("primaryKey")) {
            Some(pk) => pk,
            None => match documents::infer_primary_key(&self.batch) {
                Ok(pk) => pk,
                Err(e) => return Step::Answer(e.into()),
            },
        };
        let ids = match documents::validate(&self.batch, &primary_key) {
            Ok(ids) => ids,
            Err(e) => {
                host.count("miroir_batches_rejected", 1);
                return Step::Answer(e.into());
            }
        };
        self.route_documents(ctx, host, primary_key.clone(), ids);
        if missing.is_empty() {
            return self.send_documents(ctx, host);
        }
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
        let (sequence, progress) = Sequence::start(vec![creation, settings], host);
        let finished = matches!(progress, Progress::Finished);
        self.phase = WritePhase::Setup(sequence);
        if finished {
            return self.send_documents(ctx, host);
        }
        progress.into()
    }

    pub(crate) fn route_documents(
        &mut self,
        ctx: &Ctx,
        host: &mut dyn Host,
        primary_key: String,
        ids: Vec<String>,
    ) {
        let batch = std::mem::replace(&mut self.batch, Batch::Json(Vec::new()));
        let empty = batch.empty_part();
        // A replacement is a new document (one node gives it its old internal id, though; see
        // docs/api-compatibility.md). A partial update keeps the sequence number it had.
        let first_seq = (!self.merge).then(|| crate::seq::allocate(host, ids.len() as u64));
        self.record
            .details
            .insert("receivedDocuments".into(), json!(ids.len()));
        self.pending = Some(Routed {
            primary_key,
            empty,
            per_node: documents::partition(&ctx.config.topology, batch, &ids, first_seq),
            shards_of: ids
                .iter()
                .map(|id| ctx.config.topology.shard_for_key(id))
                .collect(),
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

        let mut per_node = routed.per_node;
        if per_node.is_empty() {
            // An empty batch still makes a task on one node, as on Meilisearch.
            if let Some(first) = ctx.nodes().next() {
                per_node.insert(first.id.clone(), routed.empty);
            }
        }
        let calls = per_node
            .into_iter()
            .filter_map(|(node_id, part)| {
                let node = ctx.config.topology.node(&node_id)?;
                let call = ctx.call_with(node, method, path.clone(), part.content_type, part.body);
                Some((node_id, call))
            })
            .collect();
        let record = std::mem::take(&mut self.record);
        let (write, step) = RoutedWrite::send(ctx, host, calls, routed.shards_of, record);
        self.phase = WritePhase::Documents(write);
        step
    }
}

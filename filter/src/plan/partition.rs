//! A validated batch split per node. Each node's body is written when it is sent, from the
//! client's bytes, so only one node's body exists at a time next to the client's.

use std::collections::BTreeMap;

use miroir_topology::reserved::{encode_seq, encode_shard};
use miroir_topology::{Topology, SEQ_FIELD, SHARD_FIELD, VERSION_FIELD};
use serde_json::Value;

use crate::request::documents::json::{self, Span};
use crate::request::documents::{Batch, Layout};

/// The numbers a batch's documents are stamped with: consecutive from `first`, in batch order,
/// as versions always and as sequence numbers when the write replaces documents (a partial
/// update keeps the sequence number the document had).
#[derive(Clone, Copy, Debug)]
pub struct Stamps {
    pub first: u64,
    pub seq: bool,
}

/// Which node takes which documents, in batch order (so later operations on the same id still
/// win on every node, as on one Meilisearch). Every document is stamped with its shard and its
/// [`Stamps`].
pub struct Partition<'a> {
    batch: &'a Batch,
    body: &'a [u8],
    shards: &'a [u32],
    stamps: Stamps,
    /// Shard → its write targets, and `"_miroir_shard":"…"` for it.
    targets: BTreeMap<u32, (Vec<String>, String)>,
    /// Node → the most its JSON body can take (exact but for `{}`); 0 for CSV.
    sizes: BTreeMap<String, usize>,
}

impl<'a> Partition<'a> {
    /// `shards` are the documents' shards, in batch order (see [`crate::request::documents::validate`]).
    pub fn new(
        topology: &Topology,
        batch: &'a Batch,
        body: &'a [u8],
        shards: &'a [u32],
        stamps: Stamps,
    ) -> Self {
        let mut targets: BTreeMap<u32, (Vec<String>, String)> = BTreeMap::new();
        for shard in shards {
            targets.entry(*shard).or_insert_with(|| {
                let nodes = topology
                    .write_targets(*shard)
                    .iter()
                    .map(|n| n.id.clone())
                    .collect();
                (nodes, member(SHARD_FIELD, encode_shard(*shard)))
            });
        }
        // `[` and `]` around a JSON array.
        let brackets = if let Batch::Json { .. } = batch { 2 } else { 0 };
        let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
        for (nodes, _) in targets.values() {
            for node in nodes {
                sizes.entry(node.clone()).or_insert(brackets);
            }
        }
        if let Batch::Json { documents, .. } = batch {
            // `,` and each number's member (sequence numbers and versions have one width).
            let number_len = member(SEQ_FIELD, encode_seq(0)).len().saturating_add(1);
            let seq_len = number_len
                .saturating_mul(if stamps.seq { 2 } else { 1 })
                .saturating_add(VERSION_FIELD.len().saturating_sub(SEQ_FIELD.len()));
            for (shard, span) in shards.iter().zip(documents) {
                let Some((nodes, stamp)) = targets.get(shard) else {
                    continue;
                };
                // The document, `,` before the stamp, the stamp, then `,` or a newline.
                let size = span
                    .end
                    .saturating_sub(span.start)
                    .saturating_add(1)
                    .saturating_add(stamp.len())
                    .saturating_add(seq_len)
                    .saturating_add(1);
                for node in nodes {
                    if let Some(total) = sizes.get_mut(node) {
                        *total = total.saturating_add(size);
                    }
                }
            }
        }
        Partition {
            batch,
            body,
            shards,
            stamps,
            targets,
            sizes,
        }
    }

    /// The nodes that take at least one document, in id order.
    pub fn nodes(&self) -> impl Iterator<Item = &String> {
        self.sizes.keys()
    }

    /// A capacity that holds any node's JSON body without growing.
    pub fn largest(&self) -> usize {
        self.sizes.values().copied().max().unwrap_or(0)
    }

    /// Appends `node`'s body to `out`; returns its content type.
    pub fn write(&self, node: &str, out: &mut Vec<u8>) -> &'static str {
        match self.batch {
            Batch::Json { layout, documents } => {
                self.write_json(node, *layout, documents, out);
                layout.content_type()
            }
            Batch::Csv {
                delimiter,
                header,
                rows,
            } => {
                self.write_csv(node, *delimiter, header, rows, out);
                "text/csv"
            }
        }
    }

    /// How many documents `node` takes.
    pub fn documents_for(&self, node: &str) -> usize {
        self.taken_by(node).count()
    }

    /// The documents `node` takes: their position in the batch, with their shard's stamp.
    fn taken_by<'s>(&'s self, node: &'s str) -> impl Iterator<Item = (usize, &'s String)> + 's {
        self.shards
            .iter()
            .enumerate()
            .filter_map(move |(position, shard)| {
                let (nodes, stamp) = self.targets.get(shard)?;
                nodes.iter().any(|n| n == node).then_some((position, stamp))
            })
    }

    fn version(&self, position: usize) -> String {
        encode_seq(self.stamps.first.saturating_add(position as u64))
    }

    fn seq(&self, position: usize) -> Option<String> {
        self.stamps.seq.then(|| self.version(position))
    }

    fn write_json(&self, node: &str, layout: Layout, documents: &[Span], out: &mut Vec<u8>) {
        if layout == Layout::Array {
            out.push(b'[');
        }
        for (n, (position, stamp)) in self.taken_by(node).enumerate() {
            let Some(span) = documents.get(position) else {
                continue;
            };
            if layout == Layout::Array && n > 0 {
                out.push(b',');
            }
            // Miroir's attributes go last, as they did when documents were maps: a node
            // numbers attributes in order of first appearance.
            let before_close = span.end.saturating_sub(1);
            out.extend_from_slice(self.body.get(span.start..before_close).unwrap_or_default());
            if !json::is_empty(self.body, *span) {
                out.push(b',');
            }
            out.extend_from_slice(stamp.as_bytes());
            if let Some(seq) = self.seq(position) {
                out.push(b',');
                out.extend_from_slice(member(SEQ_FIELD, seq).as_bytes());
            }
            out.push(b',');
            out.extend_from_slice(member(VERSION_FIELD, self.version(position)).as_bytes());
            out.push(b'}');
            if layout == Layout::Lines {
                out.push(b'\n');
            }
        }
        if layout == Layout::Array {
            out.push(b']');
        }
    }

    fn write_csv(
        &self,
        node: &str,
        delimiter: u8,
        header: &csv::StringRecord,
        rows: &[csv::StringRecord],
        out: &mut Vec<u8>,
    ) {
        let mut writer = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .from_writer(out);
        let stamped: &[&str] = if self.stamps.seq {
            &[SHARD_FIELD, SEQ_FIELD, VERSION_FIELD]
        } else {
            &[SHARD_FIELD, VERSION_FIELD]
        };
        let _ = writer.write_record(header.iter().chain(stamped.iter().copied()));
        for (position, _) in self.taken_by(node) {
            let (Some(row), Some(shard)) = (rows.get(position), self.shards.get(position)) else {
                continue;
            };
            let shard = encode_shard(*shard);
            let (seq, version) = (self.seq(position), self.version(position));
            let stamp = std::iter::once(shard.as_str())
                .chain(seq.as_deref())
                .chain(std::iter::once(version.as_str()));
            let _ = writer.write_record(row.iter().chain(stamp));
        }
        let _ = writer.flush();
    }
}

/// `"name":value` as JSON.
fn member(name: &str, value: String) -> String {
    format!("{}:{}", Value::from(name), Value::from(value))
}

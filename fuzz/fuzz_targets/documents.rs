//! A document batch (JSON, NDJSON or CSV) through validation and the per-node split, as a write
//! does it; every node's part must read back as a batch of its format (what a node's route accepts).
//!
//! Input: `<topology byte><seq byte>` then NUL-separated sections: content type, `csvDelimiter`
//! (empty: none), `primaryKey` (empty: inferred), body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use miroir_filter::plan::partition::{Partition, Stamps};
use miroir_filter::request::documents::{self, Batch};
use miroir_fuzz::{sections, text, topology};

fuzz_target!(|data: &[u8]| {
    let (Some(&choice), Some(&seq)) = (data.first(), data.get(1)) else {
        return;
    };
    let parts = sections(&data[2..]);
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let content_type = text(part(0));
    let delimiter = (!part(1).is_empty()).then(|| text(part(1)));
    let body = part(3);
    let Ok(batch) = documents::parse_batch(Some(&content_type), delimiter.as_deref(), body) else {
        return;
    };
    let _ = batch.empty_part();
    let primary_key = if part(2).is_empty() {
        match documents::infer_primary_key(&batch, body) {
            Ok(pk) => pk,
            Err(_) => return,
        }
    } else {
        text(part(2))
    };
    let config = topology(choice);
    let topology = &config.topology;
    let Ok(shards) =
        documents::validate(&batch, body, &primary_key, |id| topology.shard_for_key(&id))
    else {
        return;
    };
    assert_eq!(shards.len(), batch.len());
    let stamps = Stamps {
        first: u64::from(seq) << 40,
        seq: seq & 1 == 1,
    };
    let split = Partition::new(topology, &batch, body, &shards, stamps);
    let mut out = Vec::with_capacity(split.largest());
    let mut written = 0;
    for node in split.nodes() {
        out.clear();
        let content_type = split.write(node, &mut out);
        // A node reads its part the way the filter read the client's batch (Meilisearch's route:
        // syntax only, so a lone surrogate in a value passes both).
        let delimiter = match &batch {
            Batch::Csv { delimiter, .. } => Some((*delimiter as char).to_string()),
            Batch::Json { layout, .. } => {
                assert_eq!(content_type, layout.content_type());
                None
            }
        };
        let count = match documents::parse_batch(Some(content_type), delimiter.as_deref(), &out) {
            Ok(part) => {
                assert_eq!(
                    std::mem::discriminant(&part),
                    std::mem::discriminant(&batch),
                    "a node's part changed format"
                );
                part.len()
            }
            Err(e) => panic!(
                "a node's part does not read back: {e:?}\n{}",
                String::from_utf8_lossy(&out)
            ),
        };
        written += count;
    }
    // Every document goes to at least one node (its shard's write targets).
    assert!(
        written >= batch.len(),
        "{written} written of {}",
        batch.len()
    );
});

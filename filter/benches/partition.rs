//! A document batch read, validated and split for 3 nodes (~20 MB of NDJSON, ~1 KB documents),
//! against a baseline measured in the same run: parsing the same bytes into `serde_json::Value`s,
//! which is what reading the batch cost before documents were kept as the client's bytes.
//! `make bench` turns the estimates into a ratio (tools/bench-report.py).

#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use miroir_filter::plan::partition::{Partition, Stamps};
use miroir_filter::request::documents::{parse_batch, validate};
use miroir_topology::{Node, NodeState, Topology};
use serde_json::{json, Value};

const WORDS: [&str; 12] = [
    "mirror", "river", "city", "storm", "winter", "garden", "night", "road", "light", "ocean",
    "shadow", "forest",
];

/// About `bytes` of NDJSON: documents with numbers, an array, a nested object and a long text.
fn ndjson(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 2048);
    let mut i = 0usize;
    while out.len() < bytes {
        let word = |k: usize| {
            WORDS
                .get((i * 7 + k * 3) % WORDS.len())
                .copied()
                .unwrap_or("")
        };
        let notes: Vec<&str> = (0..140).map(word).collect();
        let doc = json!({
            "id": i, "title": format!("{} {} {i}", word(1), word(2)), "year": 1950 + i % 70,
            "rating": (i % 100) as f64 / 10.0, "genres": [word(3), word(4)],
            "director": {"name": word(5), "born": 1900 + i % 90}, "available": i.is_multiple_of(2),
            "notes": notes.join(" "),
        });
        out.extend_from_slice(doc.to_string().as_bytes());
        out.push(b'\n');
        i += 1;
    }
    out
}

fn three_nodes() -> Topology {
    Topology {
        epoch: 1,
        shards: 64,
        shard_map: Default::default(),
        replication_factor: 1,
        nodes: ["n0", "n1", "n2"]
            .iter()
            .map(|id| Node {
                id: id.to_string(),
                address: "h:1".into(),
                group: "g".into(),
                state: NodeState::Active,
            })
            .collect(),
    }
}

/// What a write does with a batch before the first node call: every node's body, one at a time
/// in one buffer. Returns the bytes written, so nothing is optimized away.
fn parse_validate_partition(topology: &Topology, body: &[u8]) -> usize {
    let Ok(batch) = parse_batch(Some("application/x-ndjson"), None, body) else {
        return 0;
    };
    let Ok(shards) = validate(&batch, body, "id", |id| topology.shard_for_key(&id)) else {
        return 0;
    };
    let split = Partition::new(
        topology,
        &batch,
        body,
        &shards,
        Stamps {
            first: 1,
            seq: true,
        },
    );
    let mut buffer = Vec::with_capacity(split.largest());
    let mut written = 0;
    for node in split.nodes() {
        buffer.clear();
        split.write(node, &mut buffer);
        written += buffer.len();
    }
    written
}

fn baseline_parse(body: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .filter_map(Result::ok)
        .collect()
}

fn bench(c: &mut Criterion) {
    let topology = three_nodes();
    let body = ndjson(20_000_000);
    let mut group = c.benchmark_group("partition");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_with_input(
        BenchmarkId::new("baseline-parse", "20MB"),
        &body,
        |b, body| b.iter(|| baseline_parse(body)),
    );
    group.bench_with_input(
        BenchmarkId::new("parse-validate-partition", "20MB"),
        &body,
        |b, body| b.iter(|| parse_validate_partition(&topology, body)),
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The search merge for 3 and 12 shards, against a baseline measured in the same run: parsing
//! the same node responses into values (what the merge cost when it built them). `make bench` turns the
//! estimates into ratios (tools/bench-report.py).

#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use miroir_filter::merge::facets::Faceting;
use miroir_filter::merge::hits::NodeAnswer;
use miroir_filter::merge::search::merge;
use miroir_filter::request::search_params::Pagination;
use serde_json::{json, Map, Value};

/// One node's answer to `limit: 20` with scores, ranking details (when the merge needs them:
/// `details`) and two facets.
fn node_response(node: usize, details: bool) -> Vec<u8> {
    let hits: Vec<Value> = (0..20)
        .map(|i| {
            let words = 1.0 - (i as f64) / 40.0;
            let genre = ["drama", "comedy", "action"].get(i % 3).copied().unwrap_or("drama");
            let mut hit = json!({
                "id": node * 1000 + i, "title": format!("a title of some length {node} {i}"),
                "genre": genre, "year": 1950 + (i * 7 + node) % 70,
                "_miroir_shard": node, "_rankingScore": words,
                "_rankingScoreDetails": {
                    "words": {"order": 0, "matchingWords": 1, "maxMatchingWords": 1, "score": words},
                    "typo": {"order": 1, "typoCount": 0, "maxTypoCount": 1, "score": 1.0},
                    "proximity": {"order": 2, "score": 1.0},
                    "attributeRank": {"order": 3, "score": 1.0},
                    "wordPosition": {"order": 4, "score": 0.9},
                    "exactness": {"order": 5, "matchType": "noExactMatch", "score": 0.33}}
            });
            if !details {
                if let Some(fields) = hit.as_object_mut() {
                    fields.shift_remove("_rankingScoreDetails");
                }
            }
            hit
        })
        .collect();
    let years: Map<String, Value> = (0..70)
        .map(|y| ((1950 + y).to_string(), json!(y % 5 + 1)))
        .collect();
    serde_json::to_vec(&json!({
        "hits": hits, "query": "title", "processingTimeMs": 3, "limit": 20, "offset": 0,
        "estimatedTotalHits": 1234, "facetDistribution": {"genre": {"action": 3, "comedy": 4, "drama": 5}, "year": years},
        "facetStats": {"year": {"min": 1950.0, "max": 2019.0}}, "requestUid": "0192"
    }))
    .unwrap_or_default()
}

/// The answers as the merge reads them: every field but the hits as values, hits as bytes.
fn read(bodies: &[Vec<u8>]) -> Vec<NodeAnswer> {
    bodies.iter().filter_map(|b| NodeAnswer::parse(b)).collect()
}

fn parse(bodies: &[Vec<u8>]) -> Vec<Map<String, Value>> {
    bodies
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect()
}

fn bench(c: &mut Criterion) {
    let client: Map<String, Value> = json!({"q": "title", "facets": ["genre", "year"]})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let pagination = Pagination::Offset {
        offset: 0,
        limit: 20,
    };
    let faceting = Faceting::default();
    let mut group = c.benchmark_group("merge");
    for (shards, details) in [(3usize, true), (3, false), (12, true)] {
        let bodies: Vec<Vec<u8>> = (0..shards).map(|n| node_response(n, details)).collect();
        let name = |what: &str| match details {
            true => what.to_string(),
            false => format!("{what}-score-only"),
        };
        group.throughput(Throughput::Elements(shards as u64));
        group.bench_with_input(
            BenchmarkId::new(name("baseline-parse"), shards),
            &bodies,
            |b, bodies| b.iter(|| parse(bodies)),
        );
        group.bench_with_input(
            BenchmarkId::new(name("parse-merge-serialize"), shards),
            &bodies,
            |b, bodies| b.iter(|| merge(&client, pagination, read(bodies), &faceting, None)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

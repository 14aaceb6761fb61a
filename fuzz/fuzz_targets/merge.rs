//! Search bodies and node answers into the merges: search, facet search, federated
//! multi-search, `/similar`, document lists, index stats, task aggregation, node error scrubbing.
//!
//! Input: `<merge byte><topology byte>` then NUL-separated sections: the client's body (JSON),
//! settings (JSON: faceting, index settings or a task record), then one node answer per section.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use miroir_filter::merge::facets::{self, Faceting};
use miroir_filter::merge::{documents, node_error, stats};
use miroir_filter::merge::{federated, hits, search, similar};
use miroir_filter::request::search_params;
use miroir_fuzz::{sections, topology};
use serde_json::{Map, Value};

fn object(bytes: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let (Some(&which), Some(&choice)) = (data.first(), data.get(1)) else {
        return;
    };
    let parts = sections(&data[2..]);
    let client = object(parts.first().copied().unwrap_or_default());
    let settings: Value = parts
        .get(1)
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null);
    let answers: Vec<&[u8]> = parts.get(2..).unwrap_or_default().to_vec();
    let responses: Vec<Map<String, Value>> = answers.iter().map(|b| object(b)).collect();
    let config = topology(choice);
    let topology = &config.topology;
    match which % 8 {
        0 => {
            let faceting = if which & 8 == 0 {
                Faceting::from_settings(&settings)
            } else {
                Faceting::from_index_settings(&settings)
            };
            if let Ok(pagination) = search_params::parse_pagination(&client) {
                let distinct_total = (which & 16 != 0).then_some(u64::from(choice));
                // As the filter reads them (hits kept as bytes), and as values (the distinct path).
                let pages = answers
                    .iter()
                    .filter_map(|b| hits::NodeAnswer::parse(b))
                    .collect();
                let _ = search::merge(&client, pagination, pages, &faceting, distinct_total);
                let values = responses
                    .into_iter()
                    .map(hits::NodeAnswer::from_map)
                    .collect();
                let _ = search::merge(&client, pagination, values, &faceting, distinct_total);
            }
        }
        1 => {
            let _ =
                facets::merge_facet_hits(&client, responses, &Faceting::from_settings(&settings));
        }
        2 => {
            let faceting: BTreeMap<String, Faceting> = settings
                .as_object()
                .map(|indexes| {
                    indexes
                        .iter()
                        .map(|(uid, s)| (uid.clone(), Faceting::from_index_settings(s)))
                        .collect()
                })
                .unwrap_or_default();
            let _ = federated::faceted_indexes(&client);
            if let Some(pagination) = federated::pagination(&client) {
                let _ = federated::merge(&client, pagination, responses, &faceting);
            }
        }
        3 => {
            if let Some(plan) = similar::Plan::new(client, topology) {
                let _ = plan.probe();
                let _ = plan.embedding(&settings);
                let embedding = settings.get("embedding").cloned();
                let (body, window) = plan.search(embedding);
                let _ = similar::node_body(&body, window, &[0, 1]);
                let max_total_hits = settings.get("maxTotalHits").and_then(Value::as_u64);
                let _ = similar::merge(window, responses, max_total_hits);
            }
        }
        4 => {
            let _ = documents::window(&client);
            let _ = documents::node_body(&client, &[0, 3]);
            let _ = documents::merge(&client, responses);
        }
        5 => {
            let bodies: Vec<(String, Value)> = topology
                .nodes
                .iter()
                .zip(answers.iter())
                .map(|(n, b)| {
                    (
                        n.id.clone(),
                        serde_json::from_slice(b).unwrap_or(Value::Null),
                    )
                })
                .collect();
            let answered: Vec<&str> = bodies.iter().map(|(n, _)| n.as_str()).collect();
            if let Some(counting) = stats::counting(topology, &answered) {
                let _ = stats::combine(&counting, which & 8 != 0, which & 16 != 0, bodies);
            }
        }
        6 => {
            let Ok(record) = serde_json::from_value(settings) else {
                return;
            };
            let node_tasks: Vec<(String, Value)> = topology
                .nodes
                .iter()
                .cycle()
                .zip(answers.iter())
                .map(|(n, b)| {
                    (
                        n.id.clone(),
                        serde_json::from_slice(b).unwrap_or(Value::Null),
                    )
                })
                .collect();
            let _ = miroir_topology::tasks::aggregate(u32::from(choice), &record, &node_tasks);
        }
        _ => {
            for answer in answers {
                let _ = node_error::scrub(answer.to_vec());
                let _ = node_error::scrub_message(&String::from_utf8_lossy(answer));
            }
        }
    }
});

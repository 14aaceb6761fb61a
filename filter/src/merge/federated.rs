//! Federated multi-search over shards. Every node runs the whole federated request restricted to
//! its shards (each query's filter ANDed with the node's shards) and returns its first
//! `offset+limit` merged hits; those lists are merged again as one node's federated merge would
//! order them: rule by rule within a query, by weighted ranking score across queries, then by
//! query position, then by insertion order.

use std::collections::BTreeMap;

use miroir_topology::reserved::seq_of;
use miroir_topology::SEQ_FIELD;
use serde_json::{json, Map, Value};

use crate::merge::facets::{merge_facet_stats, sum_facets, FacetCounts, Faceting};
use crate::merge::search::{
    compare_rules, compare_seq, is_semantic, merge_runs, page_fields, retain_distinct, rule_names,
    rules_of, runs_by, strip_internal, Rule, Shown,
};
use crate::plan::search_body::restrict_filter;
use crate::request::search_params::Pagination;

/// The federation's pagination, or `None` when it is invalid (the nodes word the error).
pub fn pagination(client: &Map<String, Value>) -> Option<Pagination> {
    let federation = client.get("federation")?.as_object()?;
    crate::request::search_params::parse_pagination(federation).ok()
}

/// The request one node gets.
pub fn node_body(
    client: &Map<String, Value>,
    pagination: Option<Pagination>,
    shards: &[u32],
) -> Map<String, Value> {
    let mut body = client.clone();
    let distinct = federation_distinct(client);
    if let Some(Value::Array(queries)) = body.get_mut("queries") {
        for query in queries.iter_mut().filter_map(Value::as_object_mut) {
            let filter = restrict_filter(query.get("filter"), shards);
            query.insert("filter".into(), filter);
            query.insert("showRankingScoreDetails".into(), json!(true));
            if let Some(Value::Array(retrieve)) = query.get_mut("attributesToRetrieve") {
                for attr in distinct.iter().cloned().chain([SEQ_FIELD.to_string()]) {
                    if !retrieve
                        .iter()
                        .any(|a| a.as_str() == Some("*") || a.as_str() == Some(attr.as_str()))
                    {
                        retrieve.push(json!(attr));
                    }
                }
            }
        }
    }
    if let (Some(pagination), Some(Value::Object(federation))) =
        (pagination, body.get_mut("federation"))
    {
        let (skip, keep) = pagination.window();
        let wanted = skip.saturating_add(keep);
        for field in ["offset", "limit", "page", "hitsPerPage"] {
            federation.shift_remove(field);
        }
        match pagination {
            Pagination::Offset { .. } => {
                federation.insert("offset".into(), json!(0));
                federation.insert("limit".into(), json!(wanted));
            }
            Pagination::Pages { .. } => {
                federation.insert("page".into(), json!(1));
                federation.insert("hitsPerPage".into(), json!(wanted));
            }
        }
    }
    body
}

/// The indexes named in `federation.facetsByIndex`: their settings order and cut their facets.
pub fn faceted_indexes(client: &Map<String, Value>) -> Vec<String> {
    client
        .get("federation")
        .and_then(|f| f.get("facetsByIndex"))
        .and_then(Value::as_object)
        .map(|by_index| by_index.keys().cloned().collect())
        .unwrap_or_default()
}

fn federation_distinct(client: &Map<String, Value>) -> Option<String> {
    client
        .get("federation")?
        .get("distinct")?
        .as_str()
        .map(str::to_string)
}

/// One index's facet counts and stats, summed over nodes.
type IndexFacets = (BTreeMap<String, FacetCounts>, Map<String, Value>);

struct Candidate {
    weighted: f64,
    query: u64,
    rules: Vec<Rule>,
    seq: Option<u64>,
    position: usize,
    node: usize,
    hit: Value,
}

/// What each query asked to see of the ranking, by query position.
fn shown(client: &Map<String, Value>) -> Vec<Shown> {
    client
        .get("queries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|q| {
            let asked = |f: &str| q.get(f).and_then(Value::as_bool).unwrap_or(false);
            Shown {
                score: asked("showRankingScore"),
                details: asked("showRankingScoreDetails"),
            }
        })
        .collect()
}

/// Merges the nodes' federated answers; `faceting` holds the settings of the indexes in
/// `facetsByIndex` (defaults for an index it lacks).
pub fn merge(
    client: &Map<String, Value>,
    pagination: Pagination,
    responses: Vec<Map<String, Value>>,
    faceting: &BTreeMap<String, Faceting>,
) -> Value {
    let mut candidates = Vec::new();
    let mut processing_time = 0u64;
    let mut estimated_total = 0u64;
    let mut total_hits = 0u64;
    let mut by_index: BTreeMap<String, IndexFacets> = BTreeMap::new();
    let mut merged_facets: BTreeMap<String, FacetCounts> = BTreeMap::new();
    let mut merged_stats = Map::new();
    let (mut has_merged_facets, mut has_merged_stats) = (false, false);

    let mut template = responses.first().cloned().unwrap_or_default();
    for (node, mut response) in responses.into_iter().enumerate() {
        if let Some(Value::Array(hits)) = response.remove("hits") {
            for (position, hit) in hits.into_iter().enumerate() {
                let federation = hit.get("_federation");
                let number = |f: &str| federation.and_then(|x| x.get(f));
                candidates.push(Candidate {
                    weighted: number("weightedRankingScore")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                    query: number("queriesPosition")
                        .and_then(Value::as_u64)
                        .unwrap_or(u64::MAX),
                    rules: rules_of(&hit),
                    seq: seq_of(&hit),
                    position,
                    node,
                    hit,
                });
            }
        }
        let number = |field: &str| response.get(field).and_then(Value::as_u64).unwrap_or(0);
        processing_time = processing_time.max(number("processingTimeMs"));
        estimated_total = estimated_total.saturating_add(number("estimatedTotalHits"));
        total_hits = total_hits.saturating_add(number("totalHits"));
        if let Some(Value::Object(indexes)) = response.get("facetsByIndex") {
            for (index, facets) in indexes {
                let entry = by_index.entry(index.clone()).or_default();
                if let Some(Value::Object(distribution)) = facets.get("distribution") {
                    sum_facets(&mut entry.0, distribution);
                }
                if let Some(Value::Object(stats)) = facets.get("stats") {
                    merge_facet_stats(&mut entry.1, stats);
                }
            }
        }
        if let Some(Value::Object(distribution)) = response.get("facetDistribution") {
            has_merged_facets = true;
            sum_facets(&mut merged_facets, distribution);
        }
        if let Some(Value::Object(stats)) = response.get("facetStats") {
            has_merged_stats = true;
            merge_facet_stats(&mut merged_stats, stats);
        }
    }

    // Each query's hits in rule order, then the queries merged by weighted score (as
    // Meilisearch merges them): every order used is total.
    let tie = |a: &Candidate, b: &Candidate| {
        a.query
            .cmp(&b.query)
            .then_with(|| compare_seq(a.seq, b.seq))
            .then(a.position.cmp(&b.position))
            .then(a.node.cmp(&b.node))
    };
    let runs = runs_by(
        candidates,
        |c| (c.query, rule_names(&c.rules)),
        |a, b| {
            compare_rules(&a.rules, &b.rules)
                .unwrap_or_else(|| b.weighted.total_cmp(&a.weighted))
                .then_with(|| tie(a, b))
        },
    );
    let mut candidates = merge_runs(runs, |c| c.weighted, tie);
    if let Some(attr) = federation_distinct(client) {
        retain_distinct(&mut candidates, &attr, |c| &c.hit);
    }
    let shown = shown(client);
    let (skip, keep) = pagination.window();
    let page: Vec<Candidate> = candidates
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(usize::try_from(keep).unwrap_or(usize::MAX))
        .collect();
    let semantic_hits = page.iter().filter(|c| is_semantic(&c.rules)).count();
    let hits: Vec<Value> = page
        .into_iter()
        .map(|c| {
            let show = usize::try_from(c.query)
                .ok()
                .and_then(|q| shown.get(q).copied())
                .unwrap_or(Shown {
                    score: false,
                    details: false,
                });
            strip_internal(c.hit, show)
        })
        .collect();

    template.insert("hits".into(), Value::Array(hits));
    template.insert("processingTimeMs".into(), json!(processing_time));
    page_fields(
        &mut template,
        pagination,
        (estimated_total, total_hits),
        semantic_hits,
    );
    if template.contains_key("facetsByIndex") {
        let indexes: Map<String, Value> = by_index
            .into_iter()
            .map(|(index, (counts, stats))| {
                let mut distribution: Map<String, Value> = counts
                    .into_iter()
                    .map(|(attr, c)| (attr, Value::Object(c.into_map())))
                    .collect();
                faceting
                    .get(&index)
                    .cloned()
                    .unwrap_or_default()
                    .order(&mut distribution);
                (index, json!({"distribution": distribution, "stats": stats}))
            })
            .collect();
        template.insert("facetsByIndex".into(), Value::Object(indexes));
    }
    if has_merged_facets {
        let max = client
            .get("federation")
            .and_then(|f| f.get("mergeFacets"))
            .and_then(|m| m.get("maxValuesPerFacet"))
            .and_then(Value::as_u64)
            .and_then(|m| usize::try_from(m).ok());
        let distribution: Map<String, Value> = merged_facets
            .into_iter()
            .map(|(attr, c)| {
                // Meilisearch refuses to merge facets the indexes order differently: any index
                // asking for the attribute tells its order.
                let by_count = faceting
                    .iter()
                    .filter(|(index, _)| asks(client, index, &attr))
                    .any(|(_, f)| f.by_count(&attr));
                (
                    attr,
                    Value::Object(order_merged(c.into_map(), by_count, max)),
                )
            })
            .collect();
        template.insert("facetDistribution".into(), Value::Object(distribution));
    }
    if has_merged_stats {
        template.insert("facetStats".into(), Value::Object(merged_stats));
    }
    Value::Object(template)
}

/// Whether `facetsByIndex` asks the index for the attribute.
fn asks(client: &Map<String, Value>, index: &str, attr: &str) -> bool {
    client
        .get("federation")
        .and_then(|f| f.get("facetsByIndex"))
        .and_then(|f| f.get(index))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|pattern| crate::plan::search_body::pattern_covers(pattern, attr))
}

/// `mergeFacets` orders values by their text, bytewise (so "10" before "9"), or by count, and
/// cuts only when the request gives a `maxValuesPerFacet`.
fn order_merged(
    counts: Map<String, Value>,
    by_count: bool,
    max: Option<usize>,
) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = counts.into_iter().collect();
    entries.sort_by(|(a, ca), (b, cb)| {
        if by_count {
            cb.as_u64().cmp(&ca.as_u64()).then_with(|| a.cmp(b))
        } else {
            a.cmp(b)
        }
    });
    if let Some(max) = max {
        entries.truncate(max);
    }
    entries.into_iter().collect()
}

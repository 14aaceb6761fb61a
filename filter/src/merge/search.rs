//! A scattered search's answers merged into the page one node holding every document would give:
//! hits in its ranking order, totals summed, facets summed (`facets`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use miroir_topology::reserved::{self, seq_of};
use serde_json::{json, Map, Value};

use super::facets::{merge_facet_stats, sum_facets, FacetCounts, Faceting};
pub(crate) use super::hits::Shown;
use super::hits::{write_answer, Detail, Details, Hit, NodeAnswer, Ordered};
use crate::plan::search_body::distinct_of;
use crate::request::search_params::Pagination;
use serde::Deserialize;

/// Keeps the first item (in merged order) of each distinct value, as one node's distinct rule:
/// an item is dropped when a kept one holds one of its values (arrays hold several). Hits
/// without the attribute are all kept, as Meilisearch does.
pub(crate) fn retain_distinct<T>(items: &mut Vec<T>, attr: &str, hit: impl Fn(&T) -> &Value) {
    let mut seen = std::collections::BTreeSet::new();
    items.retain(|item| {
        let values = distinct_values(hit(item), attr);
        if values.iter().any(|v| seen.contains(v)) {
            return false;
        }
        seen.extend(values);
        true
    });
}

/// The facet values of a (possibly dotted) attribute in a hit, normalized as Meilisearch
/// compares facet values. Hits without any are all kept, as Meilisearch does.
pub(crate) fn distinct_values(hit: &Value, attr: &str) -> Vec<String> {
    distinct_leaves(hit, attr)
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

/// Each facet value of the attribute in a hit: its normalized key (`distinct_values`) and its
/// text as written in the document (numbers as JSON writes them), for a filter to name it.
pub(crate) fn distinct_leaves(hit: &Value, attr: &str) -> Vec<(String, String)> {
    fn collect(value: &Value, path: &[&str], out: &mut Vec<(String, String)>) {
        match (value, path.split_first()) {
            (Value::Array(items), _) => items.iter().for_each(|v| collect(v, path, out)),
            (Value::Object(fields), Some((first, rest))) => {
                if let Some(v) = fields.get(*first) {
                    collect(v, rest, out);
                }
            }
            (Value::String(s), None) => {
                out.push((format!("s:{}", s.trim().to_lowercase()), s.clone()))
            }
            (Value::Number(n), None) => {
                out.push((format!("n:{}", n.as_f64().unwrap_or(0.0)), n.to_string()))
            }
            (Value::Bool(b), None) => out.push((format!("s:{b}"), b.to_string())),
            _ => {}
        }
    }
    let mut out = Vec::new();
    // A flattened key (`"a.b": ...`) is found as such first.
    match hit.get(attr) {
        Some(value) => collect(value, &[], &mut out),
        None => collect(hit, &attr.split('.').collect::<Vec<_>>(), &mut out),
    }
    out
}

pub(crate) struct Candidate<H = Value> {
    pub(crate) score: f64,
    /// Insertion order, the tie-break of one node.
    pub(crate) seq: Option<u64>,
    /// Ranking-rule entries in rule order, when the node sent them.
    pub(crate) rules: Vec<Rule>,
    pub(crate) position: usize,
    pub(crate) node: usize,
    pub(crate) hit: H,
}

impl Candidate<Hit> {
    /// The `position`-th hit of the `node`-th answer, kept as the node wrote it.
    fn of_hit(hit: Hit, position: usize, node: usize) -> Self {
        let ranking = hit.ranking();
        Candidate {
            score: ranking.score,
            seq: ranking.seq,
            rules: ranking.details.map(ordered_rules).unwrap_or_default(),
            position,
            node,
            hit,
        }
    }
}

impl Candidate {
    /// The `position`-th hit of the `node`-th response.
    pub(crate) fn new(hit: Value, position: usize, node: usize) -> Self {
        Candidate {
            score: hit
                .get("_rankingScore")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
            seq: seq_of(&hit),
            rules: rules_of(&hit),
            position,
            node,
            hit,
        }
    }
}

/// One entry of a hit's `_rankingScoreDetails`, read once for the comparisons that order hits.
pub(crate) struct Rule {
    pub(crate) name: String,
    descending: bool,
    similarity: Option<f64>,
    distance: Option<f64>,
    /// A sort rule's value; `None` also when the entry has none.
    value: Option<Value>,
    has_value: bool,
    score: Option<f64>,
}

impl Rule {
    fn new(name: String, detail: Detail) -> Rule {
        Rule {
            descending: name.ends_with(":desc"),
            name,
            similarity: detail.similarity,
            distance: detail.distance,
            has_value: detail.value.is_some(),
            value: detail.value,
            score: detail.score,
        }
    }
}

/// A hit's `_rankingScoreDetails` entries in ranking-rule order.
pub(crate) fn rules_of(hit: &Value) -> Vec<Rule> {
    hit.get("_rankingScoreDetails")
        .and_then(|d| Details::deserialize(d).ok())
        .map(ordered_rules)
        .unwrap_or_default()
}

/// Ranking details' entries in ranking-rule order.
fn ordered_rules(Ordered(details): Details) -> Vec<Rule> {
    let mut rules: Vec<(u64, Rule)> = details
        .into_iter()
        .map(|(rule, d)| (d.order.unwrap_or(u64::MAX), Rule::new(rule, d)))
        .collect();
    rules.sort_by_key(|(order, _)| *order);
    rules.into_iter().map(|(_, rule)| rule).collect()
}

/// Whether a hit came from the semantic side of a search (its similarity replaced the rules).
pub(crate) fn is_semantic(rules: &[Rule]) -> bool {
    rules.iter().any(|rule| rule.name == "vectorSort")
}

/// Orders two hits as one node's bucket sort would: the first rule that tells them apart
/// decides. `None` when they were ranked by different rules and cannot be compared this way.
pub(crate) fn compare_rules(a: &[Rule], b: &[Rule]) -> Option<Ordering> {
    if a.is_empty() || a.len() != b.len() {
        return None;
    }
    for (ra, rb) in a.iter().zip(b) {
        if ra.name != rb.name {
            return None;
        }
        let ordering = compare_rule(ra, rb);
        if ordering != Ordering::Equal {
            return Some(ordering);
        }
    }
    Some(Ordering::Equal)
}

/// Less is better (comes first).
fn compare_rule(a: &Rule, b: &Rule) -> Ordering {
    // Vector similarity: higher first.
    if let (Some(x), Some(y)) = (a.similarity, b.similarity) {
        return y.total_cmp(&x);
    }
    // Geo sort: by distance in the rule's direction.
    if let (Some(x), Some(y)) = (a.distance, b.distance) {
        let ascending = x.total_cmp(&y);
        return if a.descending {
            ascending.reverse()
        } else {
            ascending
        };
    }
    // A sort rule, from the query's `sort` or the index's `attr:asc|desc` rules.
    if a.has_value || b.has_value {
        return compare_sort_values(a.value.as_ref(), b.value.as_ref(), a.descending);
    }
    // A relevancy rule: its local score, higher first.
    match (a.score, b.score) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        _ => Ordering::Equal,
    }
}

/// Exact ties in insertion order, as one node orders them by internal document id. Documents
/// without a number (written by a partial update that created them) come after the others.
pub(crate) fn compare_seq(a: Option<u64>, b: Option<u64>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Numbers before strings, documents without the value last, whatever the direction.
pub(crate) fn compare_sort_values(
    a: Option<&Value>,
    b: Option<&Value>,
    descending: bool,
) -> Ordering {
    fn class(v: Option<&Value>) -> u8 {
        match v {
            Some(Value::Number(_)) => 0,
            Some(Value::String(_)) => 1,
            _ => 2,
        }
    }
    let by_class = class(a).cmp(&class(b));
    if by_class != Ordering::Equal {
        return by_class;
    }
    let within = match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        _ => Ordering::Equal,
    };
    if descending {
        within.reverse()
    } else {
        within
    }
}

/// Orders the nodes' hits as `merge` describes.
///
/// Hits ranked by the same rules (one node's bucket sort order: the first rule that tells two
/// apart decides) are ordered by those rules; hits ranked by other rules (the keyword and the
/// semantic side of a hybrid search) cannot be compared rule by rule, so each side is ordered on
/// its own and the sides are merged by weighted score, as Meilisearch merges them. Every order
/// used is total: a sort given an inconsistent order may panic.
pub(crate) fn rank<H>(client: &Map<String, Value>, candidates: &mut Vec<Candidate<H>>) {
    // A hybrid search ranks semantic hits at `score × semanticRatio` against keyword hits at
    // `score × (1 − semanticRatio)`, a semantic hit first on a tie; each hit still shows its own
    // unweighted score.
    let ratio = client.get("hybrid").filter(|h| h.is_object()).map(|h| {
        h.get("semanticRatio")
            .and_then(Value::as_f64)
            .unwrap_or(0.5)
    });
    let weighted = |c: &Candidate<H>| match ratio {
        Some(r) if is_semantic(&c.rules) => c.score * r,
        Some(r) => c.score * (1.0 - r),
        None => c.score,
    };
    let within = |a: &Candidate<H>, b: &Candidate<H>| {
        compare_rules(&a.rules, &b.rules)
            .unwrap_or_else(|| weighted(b).total_cmp(&weighted(a)))
            .then_with(|| compare_seq(a.seq, b.seq))
            .then(a.position.cmp(&b.position))
            .then(a.node.cmp(&b.node))
    };
    let runs = runs_by(std::mem::take(candidates), |c| rule_names(&c.rules), within);
    *candidates = merge_runs(runs, weighted, |a, b| {
        is_semantic(&b.rules)
            .cmp(&is_semantic(&a.rules))
            .then_with(|| compare_seq(a.seq, b.seq))
            .then(a.position.cmp(&b.position))
            .then(a.node.cmp(&b.node))
    });
}

/// The names of the rules a hit was ranked by, in order: hits with the same names compare rule
/// by rule.
pub(crate) fn rule_names(rules: &[Rule]) -> Vec<String> {
    rules.iter().map(|rule| rule.name.clone()).collect()
}

/// `items` split by `signature` (in order of first appearance), each run sorted by `order`.
pub(crate) fn runs_by<T, K: PartialEq>(
    items: Vec<T>,
    signature: impl Fn(&T) -> K,
    order: impl Fn(&T, &T) -> Ordering,
) -> Vec<Vec<T>> {
    let mut runs: Vec<(K, Vec<T>)> = Vec::new();
    for item in items {
        let key = signature(&item);
        match runs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, run)) => run.push(item),
            None => runs.push((key, vec![item])),
        }
    }
    runs.into_iter()
        .map(|(_, mut run)| {
            run.sort_by(&order);
            run
        })
        .collect()
}

/// Merges runs, each in rank order, into one: at every step the run head with the highest `key`
/// comes next, `tie` deciding between equal keys. No comparator spans two runs' inner orders, so
/// the result is well defined whatever the runs hold.
pub(crate) fn merge_runs<T>(
    runs: Vec<Vec<T>>,
    key: impl Fn(&T) -> f64,
    tie: impl Fn(&T, &T) -> Ordering,
) -> Vec<T> {
    let total = runs.iter().map(Vec::len).sum();
    let mut runs: Vec<std::collections::VecDeque<T>> = runs.into_iter().map(Into::into).collect();
    let mut merged = Vec::with_capacity(total);
    loop {
        let best = runs
            .iter()
            .enumerate()
            .filter_map(|(i, run)| run.front().map(|head| (i, head)))
            .min_by(|(_, a), (_, b)| key(b).total_cmp(&key(a)).then_with(|| tie(a, b)))
            .map(|(i, _)| i);
        let Some(item) = best
            .and_then(|i| runs.get_mut(i))
            .and_then(|run| run.pop_front())
        else {
            return merged;
        };
        merged.push(item);
    }
}

/// Merges the nodes' responses (in a fixed node order) into the client's page.
///
/// Hits are ordered rule by rule as one node ranks them (by `_rankingScore` descending where the
/// details cannot be compared), exact ties by insertion order (`_miroir_seq`). What is still
/// equal keeps each node's own order and interleaves nodes by position: this order restricted to one node is that node's order, so every
/// node's first `offset+limit` hits contain the global page and successive pages neither repeat
/// nor skip a hit.
///
/// `distinct_total`: the number of distinct hits over every node, when the search is distinct
/// (`distinct_count`); the nodes' totals are summed otherwise.
pub fn merge(
    client: &Map<String, Value>,
    pagination: Pagination,
    responses: Vec<NodeAnswer>,
    faceting: &Faceting,
    distinct_total: Option<u64>,
) -> Vec<u8> {
    let asked = |field: &str| client.get(field).and_then(Value::as_bool).unwrap_or(false);
    let show = Shown {
        score: asked("showRankingScore"),
        details: asked("showRankingScoreDetails"),
    };
    let mut candidates = Vec::new();
    let mut processing_time = 0u64;
    let mut estimated_total = 0u64;
    let mut total_hits = 0u64;
    let mut facets: BTreeMap<String, FacetCounts> = BTreeMap::new();
    let mut facet_stats: Map<String, Value> = Map::new();
    let mut has_facets = false;
    let mut has_facet_stats = false;

    let mut template = responses
        .first()
        .map(|r| r.fields.clone())
        .unwrap_or_default();
    for (node, answer) in responses.into_iter().enumerate() {
        let response = answer.fields;
        for (position, hit) in answer.hits.into_iter().enumerate() {
            candidates.push(Candidate::of_hit(hit, position, node));
        }
        let number = |field: &str| response.get(field).and_then(Value::as_u64).unwrap_or(0);
        processing_time = processing_time.max(number("processingTimeMs"));
        estimated_total = estimated_total.saturating_add(number("estimatedTotalHits"));
        total_hits = total_hits.saturating_add(number("totalHits"));
        if let Some(Value::Object(distribution)) = response.get("facetDistribution") {
            has_facets = true;
            sum_facets(&mut facets, distribution);
        }
        if let Some(Value::Object(stats)) = response.get("facetStats") {
            has_facet_stats = true;
            merge_facet_stats(&mut facet_stats, stats);
        }
    }

    rank(client, &mut candidates);
    let distinct = distinct_of(client);
    if let Some(attr) = &distinct {
        retain_distinct(&mut candidates, attr, |c| c.hit.value());
    }
    // A distinct attribute retrieved only for this merge is not shown.
    let hide = distinct.filter(|attr| {
        client
            .get("attributesToRetrieve")
            .and_then(Value::as_array)
            .is_some_and(|r| {
                !r.iter()
                    .any(|a| a.as_str() == Some("*") || a.as_str() == Some(attr.as_str()))
            })
    });
    if let Some(total) = distinct_total {
        (estimated_total, total_hits) = (total, total);
    }
    // One node ranks no hit past `maxTotalHits`, but its totals are not capped: a live 1.50 node
    // with 63,666 documents answers `totalHits: 63666` (../shared/notes/meilisearch.md), although
    // older sources cap `number_of_hits`.
    if let Some(max) = faceting.max_total_hits {
        candidates.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    }
    let (skip, keep) = pagination.window();
    let page: Vec<Candidate<Hit>> = candidates
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(usize::try_from(keep).unwrap_or(usize::MAX))
        .collect();
    // Meilisearch counts the semantic hits of the page it returns.
    let semantic_hits = page.iter().filter(|c| is_semantic(&c.rules)).count();

    if !template.contains_key("hits") {
        template.insert("hits".into(), Value::Null);
    }
    template.insert("processingTimeMs".into(), json!(processing_time));
    page_fields(
        &mut template,
        pagination,
        (estimated_total, total_hits),
        semantic_hits,
    );
    if has_facets {
        let mut facets: Map<String, Value> = facets
            .into_iter()
            .map(|(attribute, counts)| (attribute, Value::Object(counts.into_map())))
            .collect();
        faceting.order(&mut facets);
        template.insert("facetDistribution".into(), Value::Object(facets));
    }
    if has_facet_stats {
        template.insert("facetStats".into(), Value::Object(facet_stats));
    }
    write_answer(
        &template,
        page.iter().map(|c| &c.hit),
        show,
        hide.as_deref(),
    )
}

/// The page's pagination fields and totals, as one node words them for the client's pagination.
/// `semanticHitCount` only where the nodes gave one.
pub(crate) fn page_fields(
    template: &mut Map<String, Value>,
    pagination: Pagination,
    (estimated_total, total_hits): (u64, u64),
    semantic_hits: usize,
) {
    match pagination {
        Pagination::Offset { offset, limit } => {
            template.insert("limit".into(), json!(limit));
            template.insert("offset".into(), json!(offset));
            template.insert("estimatedTotalHits".into(), json!(estimated_total));
        }
        Pagination::Pages {
            page,
            hits_per_page,
        } => {
            let total_pages = if hits_per_page == 0 {
                0
            } else {
                total_hits.div_ceil(hits_per_page)
            };
            template.insert("hitsPerPage".into(), json!(hits_per_page));
            template.insert("page".into(), json!(page));
            template.insert("totalPages".into(), json!(total_pages));
            template.insert("totalHits".into(), json!(total_hits));
        }
    }
    if template.contains_key("semanticHitCount") {
        template.insert("semanticHitCount".into(), json!(semantic_hits));
    }
}

pub(crate) fn strip_internal(mut hit: Value, show: Shown) -> Value {
    if let Value::Object(fields) = &mut hit {
        reserved::strip(fields);
        if !show.score {
            fields.shift_remove("_rankingScore");
        }
        if !show.details {
            fields.shift_remove("_rankingScoreDetails");
        }
        for nested in ["_formatted", "_matchesPosition"] {
            if let Some(Value::Object(inner)) = fields.get_mut(nested) {
                reserved::strip(inner);
            }
        }
    }
    hit
}

/// [`merge`] over answers read as values, into a value: what the tests compare.
#[cfg(test)]
pub(crate) fn merge_values(
    client: &Map<String, Value>,
    pagination: Pagination,
    responses: Vec<Map<String, Value>>,
    faceting: &Faceting,
    distinct_total: Option<u64>,
) -> Value {
    let answers = responses.into_iter().map(NodeAnswer::from_map).collect();
    let body = merge(client, pagination, answers, faceting, distinct_total);
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests;

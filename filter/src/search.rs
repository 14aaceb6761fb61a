//! Scatter a search over one owner of every shard, then merge the pages the way one node holding
//! every document would order them.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use miroir_topology::reserved::{self, seq_of};
use miroir_topology::SEQ_FIELD;
use serde_json::{json, Map, Value};

use crate::error::MeiliError;

pub mod distinct_count;
pub mod distinct_hits;
pub mod federated;
pub mod followup;
pub mod refine;
pub mod similar;

/// The client's pagination: offset/limit (estimated totals) or page/hitsPerPage (exhaustive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pagination {
    Offset { offset: u64, limit: u64 },
    Pages { page: u64, hits_per_page: u64 },
}

impl Pagination {
    /// How many merged hits to skip, then keep.
    fn window(self) -> (u64, u64) {
        match self {
            Pagination::Offset { offset, limit } => (offset, limit),
            Pagination::Pages {
                page,
                hits_per_page,
            } => (
                page.saturating_sub(1).saturating_mul(hits_per_page),
                if page == 0 { 0 } else { hits_per_page },
            ),
        }
    }
}

fn positive_integer(
    body: &Map<String, Value>,
    field: &str,
    code: &'static str,
) -> Result<Option<u64>, MeiliError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64()),
        Some(other) => Err(MeiliError::bad_request(
            code,
            format!("Invalid value type at `.{field}`: expected a positive integer, but found {}: `{other}`", describe(other)),
        )),
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() => "a negative integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn parse_pagination(body: &Map<String, Value>) -> Result<Pagination, MeiliError> {
    let offset = positive_integer(body, "offset", "invalid_search_offset")?;
    let limit = positive_integer(body, "limit", "invalid_search_limit")?;
    let page = positive_integer(body, "page", "invalid_search_page")?;
    let hits_per_page = positive_integer(body, "hitsPerPage", "invalid_search_hits_per_page")?;
    if page.is_some() || hits_per_page.is_some() {
        return Ok(Pagination::Pages {
            page: page.unwrap_or(1),
            hits_per_page: hits_per_page.unwrap_or(20),
        });
    }
    Ok(Pagination::Offset {
        offset: offset.unwrap_or(0),
        limit: limit.unwrap_or(20),
    })
}

/// How a `GET /search` parameter maps to the POST body.
enum GetParam {
    Text,
    List,
    Integer,
    Float,
    Bool,
}

/// In the order Meilisearch 1.50's unknown-parameter error lists them (recorded from the binary).
const GET_PARAMS: &[(&str, GetParam)] = &[
    ("q", GetParam::Text),
    ("offset", GetParam::Integer),
    ("limit", GetParam::Integer),
    ("page", GetParam::Integer),
    ("hitsPerPage", GetParam::Integer),
    ("attributesToRetrieve", GetParam::List),
    ("attributesToCrop", GetParam::List),
    ("cropLength", GetParam::Integer),
    ("cropMarker", GetParam::Text),
    ("attributesToHighlight", GetParam::List),
    ("highlightPreTag", GetParam::Text),
    ("highlightPostTag", GetParam::Text),
    ("showMatchesPosition", GetParam::Bool),
    ("filter", GetParam::Text),
    ("sort", GetParam::List),
    ("distinct", GetParam::Text),
    ("facets", GetParam::List),
    ("matchingStrategy", GetParam::Text),
    ("attributesToSearchOn", GetParam::List),
    ("rankingScoreThreshold", GetParam::Float),
    ("locales", GetParam::List),
    ("hybridEmbedder", GetParam::Text),
    ("hybridSemanticRatio", GetParam::Float),
    ("vector", GetParam::List),
    ("retrieveVectors", GetParam::Bool),
    ("personalizeUserContext", GetParam::Text),
    ("useNetwork", GetParam::Bool),
    ("showRankingScore", GetParam::Bool),
    ("showRankingScoreDetails", GetParam::Bool),
    ("showPerformanceDetails", GetParam::Bool),
];

/// `GET /indexes/{uid}/search` parameters as the equivalent POST body, with Meilisearch's errors.
pub fn query_from_get(pairs: &[(String, String)]) -> Result<Map<String, Value>, MeiliError> {
    let mut body = Map::new();
    let mut hybrid = Map::new();
    for (name, raw) in pairs {
        let Some((_, kind)) = GET_PARAMS.iter().find(|(n, _)| n == name) else {
            let accepted: Vec<&str> = GET_PARAMS.iter().map(|(n, _)| *n).collect();
            return Err(MeiliError::unknown_parameter(name, &accepted));
        };
        let code = invalid_search_code(name);
        let invalid = |what: &str| {
            MeiliError::bad_request(
                code,
                format!("Invalid value in parameter `{name}`: could not parse `{raw}` as {what}"),
            )
        };
        let value = match kind {
            GetParam::Text => json!(raw),
            GetParam::List if name == "vector" => {
                let floats: Result<Vec<f64>, _> =
                    raw.split(',').map(|v| v.trim().parse::<f64>()).collect();
                json!(floats.map_err(|_| invalid("a list of floats"))?)
            }
            GetParam::List => json!(raw
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect::<Vec<_>>()),
            GetParam::Integer => json!(raw
                .parse::<u64>()
                .map_err(|_| invalid("a positive integer"))?),
            GetParam::Float => json!(raw.parse::<f64>().map_err(|_| invalid("a float"))?),
            GetParam::Bool => json!(raw.parse::<bool>().map_err(|_| invalid("a boolean"))?),
        };
        match name.as_str() {
            "hybridEmbedder" => {
                hybrid.insert("embedder".into(), value);
            }
            "hybridSemanticRatio" => {
                hybrid.insert("semanticRatio".into(), value);
            }
            "personalizeUserContext" => {
                body.insert("personalize".into(), json!({"userContext": value}));
            }
            _ => {
                body.insert(name.clone(), value);
            }
        }
    }
    if !hybrid.is_empty() {
        body.insert("hybrid".into(), Value::Object(hybrid));
    }
    Ok(body)
}

/// Meilisearch's `invalid_search_*` code of a parameter (`hitsPerPage` → `invalid_search_hits_per_page`).
fn invalid_search_code(name: &str) -> &'static str {
    match name {
        "offset" => "invalid_search_offset",
        "limit" => "invalid_search_limit",
        "page" => "invalid_search_page",
        "hitsPerPage" => "invalid_search_hits_per_page",
        "cropLength" => "invalid_search_crop_length",
        "rankingScoreThreshold" => "invalid_search_ranking_score_threshold",
        "hybridSemanticRatio" => "invalid_search_semantic_ratio",
        "vector" => "invalid_search_vector",
        "retrieveVectors" => "invalid_search_retrieve_vectors",
        "showMatchesPosition" => "invalid_search_show_matches_position",
        "showRankingScore" => "invalid_search_show_ranking_score",
        "showRankingScoreDetails" => "invalid_search_show_ranking_score_details",
        "showPerformanceDetails" => "invalid_search_show_performance_details",
        "useNetwork" => "invalid_search_use_network",
        _ => "bad_request",
    }
}

/// The filter that keeps a node to the shards it was picked for. Without it a node holding other
/// shards too (replicas, migrations) would count their hits, facets and totals a second time.
pub use miroir_topology::reserved::shard_filter;

/// ANDs the shard restriction with the client's filter (a string, or an array whose outer level
/// is AND), as an element of its own: Meilisearch parses each element alone, so a syntax error in
/// the client's filter reads as for that filter alone (errors quoting the whole filter are
/// reworded by `node_error`).
pub fn restrict_filter(client: Option<&Value>, shards: &[u32]) -> Value {
    let own = Value::String(shard_filter(shards));
    // Reserved names in the client's filter are sent as stand-ins no node holds filterable.
    let substituted = client.map(crate::reserved_refs::substitute);
    match substituted.as_ref() {
        None | Some(Value::Null) => own,
        Some(Value::Array(items)) => {
            let mut all = items.clone();
            all.push(own);
            Value::Array(all)
        }
        Some(Value::String(filter)) => Value::Array(vec![json!(filter), own]),
        // Not a filter: every node refuses it, in the words it uses for a filter of that type
        // (inside an array it would name other expected types).
        Some(other) => other.clone(),
    }
}

/// The body sent to one node: the first `offset+limit` hits from offset 0 with their scores, so
/// the merge can pick the global page.
pub fn node_body(
    client: &Map<String, Value>,
    pagination: Pagination,
    shards: &[u32],
) -> Map<String, Value> {
    let mut body = client.clone();
    let (skip, keep) = pagination.window();
    let wanted = skip.saturating_add(keep);
    match pagination {
        Pagination::Offset { .. } => {
            body.insert("offset".into(), json!(0));
            body.insert("limit".into(), json!(wanted));
        }
        Pagination::Pages { .. } => {
            body.insert("page".into(), json!(1));
            body.insert("hitsPerPage".into(), json!(wanted));
        }
    }
    body.insert("showRankingScore".into(), json!(true));
    // Sort values and custom `attr:asc|desc` rules are not in the score: the merge compares the
    // nodes' hits rule by rule, as each node ranked them.
    body.insert("showRankingScoreDetails".into(), json!(true));
    let filter = restrict_filter(client.get("filter"), shards);
    body.insert("filter".into(), filter);
    // The merge needs each hit's distinct value to drop duplicates across shards, and its
    // sequence number to break exact ties.
    let needed = distinct_of(client)
        .into_iter()
        .chain([SEQ_FIELD.to_string()]);
    retrieve_also(&mut body, needed);
    body
}

/// A search's body for one node (`node_body`), also asking for the facet distribution of its
/// distinct attribute: which values each node holds is what an exact total needs
/// (`distinct_count`). `distinct` requires the attribute to be filterable, so this is allowed.
pub fn search_node_body(
    client: &Map<String, Value>,
    pagination: Pagination,
    shards: &[u32],
) -> Map<String, Value> {
    let mut body = node_body(client, pagination, shards);
    if let Some(attr) = distinct_of(client) {
        if !asks_facet(client, &attr) {
            match body.get_mut("facets") {
                Some(Value::Array(facets)) => facets.push(json!(attr)),
                // Not a list: the nodes refuse it, in their own words.
                Some(_) => {}
                None => {
                    body.insert("facets".into(), json!([attr]));
                }
            }
        }
    }
    body
}

/// Whether the client's `facets` name the attribute, or a pattern that covers it.
pub(crate) fn asks_facet(client: &Map<String, Value>, attr: &str) -> bool {
    client
        .get("facets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|pattern| pattern_covers(pattern, attr))
}

/// Meilisearch's attribute patterns: `*` stands for any run of characters.
fn pattern_covers(pattern: &str, attr: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = attr.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.split_once(part) {
            Some((_, after)) => rest = after,
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether the index's `filterableAttributes` let a search filter on (and facet by) the attribute:
/// the first rule whose pattern covers it, or one of its parent objects, decides.
pub fn is_filterable(settings: &Value, attr: &str) -> bool {
    let covers = |pattern: &str| {
        pattern_covers(pattern, attr)
            || attr
                .strip_prefix(pattern)
                .is_some_and(|rest| rest.starts_with('.'))
    };
    for rule in settings
        .get("filterableAttributes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match rule {
            Value::String(pattern) if covers(pattern) => return true,
            Value::Object(rule) => {
                let patterns = rule.get("attributePatterns").and_then(Value::as_array);
                if !patterns
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(covers)
                {
                    continue;
                }
                let filter = rule.get("features").and_then(|f| f.get("filter"));
                let allowed = |op: &str| filter.and_then(|f| f.get(op)).and_then(Value::as_bool);
                // Meilisearch's default for a pattern rule: equality on, comparison off.
                return allowed("equality").unwrap_or(true)
                    || allowed("comparison").unwrap_or(false);
            }
            _ => {}
        }
    }
    false
}

/// The client's search without what only shapes hits (pagination, formatting, scores, facets,
/// distinct): the base of the follow-up searches that only count.
pub(crate) fn counting_base(client: &Map<String, Value>) -> Map<String, Value> {
    const SHAPING: &[&str] = &[
        "offset",
        "limit",
        "page",
        "hitsPerPage",
        "attributesToRetrieve",
        "retrieveVectors",
        "attributesToCrop",
        "cropLength",
        "cropMarker",
        "attributesToHighlight",
        "highlightPreTag",
        "highlightPostTag",
        "showMatchesPosition",
        "showRankingScore",
        "showRankingScoreDetails",
        "showPerformanceDetails",
        "sort",
        "facets",
        "distinct",
    ];
    client
        .iter()
        .filter(|(k, _)| !SHAPING.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Adds attributes to a query's `attributesToRetrieve` list, when it names some and not `*`.
pub(crate) fn retrieve_also(
    body: &mut Map<String, Value>,
    needed: impl IntoIterator<Item = String>,
) {
    if let Some(Value::Array(retrieve)) = body.get_mut("attributesToRetrieve") {
        for attr in needed {
            if !retrieve
                .iter()
                .any(|a| a.as_str() == Some("*") || a.as_str() == Some(attr.as_str()))
            {
                retrieve.push(json!(attr));
            }
        }
    }
}

/// The query's `distinct` attribute.
pub(crate) fn distinct_of(client: &Map<String, Value>) -> Option<String> {
    client
        .get("distinct")
        .and_then(Value::as_str)
        .map(str::to_string)
}

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

/// A facet search as sent to one node: the client's, limited to the node's shards.
pub fn facet_node_body(client: &Map<String, Value>, shards: &[u32]) -> Map<String, Value> {
    let mut body = client.clone();
    body.insert(
        "filter".into(),
        restrict_filter(client.get("filter"), shards),
    );
    body
}

/// Sums the nodes' facet hits by value, then orders and cuts them like one node would.
pub fn merge_facet_hits(
    client: &Map<String, Value>,
    responses: Vec<Map<String, Value>>,
    faceting: &Faceting,
) -> Value {
    let facet = client
        .get("facetName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut counts = FacetCounts::default();
    let mut processing_time = 0u64;
    let mut template = responses.first().cloned().unwrap_or_default();
    for response in &responses {
        processing_time = processing_time.max(
            response
                .get("processingTimeMs")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        );
        for hit in response
            .get("facetHits")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(value), Some(count)) = (
                hit.get("value").and_then(Value::as_str),
                hit.get("count").and_then(Value::as_u64),
            ) else {
                continue;
            };
            counts.add(value, count);
        }
    }
    let mut ordered = Map::from_iter([(facet.clone(), Value::Object(counts.into_map()))]);
    faceting.order(&mut ordered);
    let hits: Vec<Value> = match ordered.shift_remove(&facet) {
        Some(Value::Object(values)) => values
            .into_iter()
            .map(|(value, count)| json!({"value": value, "count": count}))
            .collect(),
        _ => Vec::new(),
    };
    template.insert("facetHits".into(), Value::Array(hits));
    template.insert("processingTimeMs".into(), json!(processing_time));
    Value::Object(template)
}

struct Candidate {
    score: f64,
    /// Insertion order, the tie-break of one node.
    seq: Option<u64>,
    /// Ranking-rule entries in rule order, when the node sent them.
    rules: Vec<(String, Value)>,
    position: usize,
    node: usize,
    hit: Value,
}

impl Candidate {
    /// The `position`-th hit of the `node`-th response.
    fn new(hit: Value, position: usize, node: usize) -> Self {
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

/// A hit's `_rankingScoreDetails` entries in ranking-rule order.
fn rules_of(hit: &Value) -> Vec<(String, Value)> {
    let Some(Value::Object(details)) = hit.get("_rankingScoreDetails") else {
        return Vec::new();
    };
    let mut rules: Vec<(u64, String, Value)> = details
        .iter()
        .map(|(rule, d)| {
            (
                d.get("order").and_then(Value::as_u64).unwrap_or(u64::MAX),
                rule.clone(),
                d.clone(),
            )
        })
        .collect();
    rules.sort_by_key(|(order, _, _)| *order);
    rules.into_iter().map(|(_, rule, d)| (rule, d)).collect()
}

/// Whether a hit came from the semantic side of a search (its similarity replaced the rules).
fn is_semantic(rules: &[(String, Value)]) -> bool {
    rules.iter().any(|(rule, _)| rule == "vectorSort")
}

/// Orders two hits as one node's bucket sort would: the first rule that tells them apart
/// decides. `None` when they were ranked by different rules and cannot be compared this way.
fn compare_rules(a: &[(String, Value)], b: &[(String, Value)]) -> Option<Ordering> {
    if a.is_empty() || a.len() != b.len() {
        return None;
    }
    for ((rule_a, da), (rule_b, db)) in a.iter().zip(b) {
        if rule_a != rule_b {
            return None;
        }
        let ordering = compare_rule(rule_a, da, db);
        if ordering != Ordering::Equal {
            return Some(ordering);
        }
    }
    Some(Ordering::Equal)
}

/// Less is better (comes first).
fn compare_rule(rule: &str, a: &Value, b: &Value) -> Ordering {
    let number = |v: &Value, field: &str| v.get(field).and_then(Value::as_f64);
    // Vector similarity: higher first.
    if let (Some(x), Some(y)) = (number(a, "similarity"), number(b, "similarity")) {
        return y.total_cmp(&x);
    }
    // Geo sort: by distance in the rule's direction.
    if let (Some(x), Some(y)) = (number(a, "distance"), number(b, "distance")) {
        let ascending = x.total_cmp(&y);
        return if rule.ends_with(":desc") {
            ascending.reverse()
        } else {
            ascending
        };
    }
    // A sort rule, from the query's `sort` or the index's `attr:asc|desc` rules.
    if a.get("value").is_some() || b.get("value").is_some() {
        return compare_sort_values(a.get("value"), b.get("value"), rule.ends_with(":desc"));
    }
    // A relevancy rule: its local score, higher first.
    match (number(a, "score"), number(b, "score")) {
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
fn rank(client: &Map<String, Value>, candidates: &mut Vec<Candidate>) {
    // A hybrid search ranks semantic hits at `score × semanticRatio` against keyword hits at
    // `score × (1 − semanticRatio)`, a semantic hit first on a tie; each hit still shows its own
    // unweighted score.
    let ratio = client.get("hybrid").filter(|h| h.is_object()).map(|h| {
        h.get("semanticRatio")
            .and_then(Value::as_f64)
            .unwrap_or(0.5)
    });
    let weighted = |c: &Candidate| match ratio {
        Some(r) if is_semantic(&c.rules) => c.score * r,
        Some(r) => c.score * (1.0 - r),
        None => c.score,
    };
    let within = |a: &Candidate, b: &Candidate| {
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
pub(crate) fn rule_names(rules: &[(String, Value)]) -> Vec<String> {
    rules.iter().map(|(name, _)| name.clone()).collect()
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
    responses: Vec<Map<String, Value>>,
    faceting: &Faceting,
    distinct_total: Option<u64>,
) -> Value {
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

    let mut template = responses.first().cloned().unwrap_or_default();
    for (node, mut response) in responses.into_iter().enumerate() {
        if let Some(Value::Array(hits)) = response.remove("hits") {
            for (position, hit) in hits.into_iter().enumerate() {
                candidates.push(Candidate::new(hit, position, node));
            }
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
        retain_distinct(&mut candidates, attr, |c| &c.hit);
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
    let page: Vec<Candidate> = candidates
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(usize::try_from(keep).unwrap_or(usize::MAX))
        .collect();
    // Meilisearch counts the semantic hits of the page it returns.
    let semantic_hits = page.iter().filter(|c| is_semantic(&c.rules)).count();
    let hits: Vec<Value> = page
        .into_iter()
        .map(|c| {
            let mut hit = strip_internal(c.hit, show);
            if let (Some(attr), Value::Object(fields)) = (&hide, &mut hit) {
                fields.shift_remove(attr);
            }
            hit
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
    Value::Object(template)
}

/// The page's pagination fields and totals, as one node words them for the client's pagination.
/// `semanticHitCount` only where the nodes gave one.
fn page_fields(
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

/// What the client asked to see of the ranking.
#[derive(Clone, Copy)]
struct Shown {
    score: bool,
    details: bool,
}

fn strip_internal(mut hit: Value, show: Shown) -> Value {
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

/// The index settings a merge follows: `faceting` (how merged facet values are ordered and cut),
/// `pagination.maxTotalHits` and `displayedAttributes`.
#[derive(Clone, Debug, PartialEq)]
pub struct Faceting {
    pub max_values_per_facet: usize,
    /// `pagination.maxTotalHits`: one node never ranks past it.
    pub max_total_hits: Option<u64>,
    /// Attribute (or `*`) → `alpha` or `count`.
    pub sort_facet_values_by: Map<String, Value>,
    /// `displayedAttributes`; `None` for all.
    pub displayed: Option<Vec<String>>,
}

impl Default for Faceting {
    fn default() -> Self {
        Faceting {
            max_values_per_facet: 100,
            max_total_hits: None,
            sort_facet_values_by: Map::from_iter([("*".to_string(), json!("alpha"))]),
            displayed: None,
        }
    }
}

/// Meilisearch's default `pagination.maxTotalHits`.
pub const DEFAULT_MAX_TOTAL_HITS: u64 = 1000;

impl Faceting {
    /// From `GET /indexes/{uid}/settings` (the whole settings); defaults for what it lacks.
    pub fn from_index_settings(settings: &Value) -> Self {
        let mut faceting = settings
            .get("faceting")
            .map(Faceting::from_settings)
            .unwrap_or_default();
        faceting.max_total_hits = settings
            .get("pagination")
            .and_then(|p| p.get("maxTotalHits"))
            .and_then(Value::as_u64);
        faceting.displayed = settings
            .get("displayedAttributes")
            .and_then(Value::as_array)
            .filter(|list| !list.iter().any(|a| a.as_str() == Some("*")))
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            });
        faceting
    }

    /// Whether hits show the attribute (itself, or an object holding it, is displayed).
    pub fn shows(&self, attr: &str) -> bool {
        self.displayed.as_ref().is_none_or(|list| {
            list.iter().any(|d| {
                attr == d
                    || attr
                        .strip_prefix(d.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
        })
    }

    /// From `GET /indexes/{uid}/settings/faceting`; defaults for what it lacks.
    pub fn from_settings(settings: &Value) -> Self {
        let mut faceting = Faceting::default();
        if let Some(max) = settings.get("maxValuesPerFacet").and_then(Value::as_u64) {
            faceting.max_values_per_facet = usize::try_from(max).unwrap_or(usize::MAX);
        }
        if let Some(Value::Object(sort)) = settings.get("sortFacetValuesBy") {
            faceting.sort_facet_values_by = sort.clone();
        }
        faceting
    }

    /// Orders each attribute's summed values as one node would, and keeps the first
    /// `maxValuesPerFacet`. `alpha`: numbers numerically, then strings; `count`: see
    /// [`count_order`].
    pub(crate) fn by_count(&self, attribute: &str) -> bool {
        self.sort_facet_values_by
            .get(attribute)
            .or_else(|| self.sort_facet_values_by.get("*"))
            .and_then(Value::as_str)
            == Some("count")
    }

    fn order(&self, facets: &mut Map<String, Value>) {
        for (attribute, values) in facets.iter_mut() {
            let Value::Object(counts) = values else {
                continue;
            };
            let by_count = self.by_count(attribute);
            let mut entries: Vec<(String, Value)> = std::mem::take(counts).into_iter().collect();
            entries.sort_by(|(a, ca), (b, cb)| {
                if by_count {
                    count_order((a, ca.as_u64().unwrap_or(0)), (b, cb.as_u64().unwrap_or(0)))
                } else {
                    facet_value_order(a, b)
                }
            });
            entries.truncate(self.max_values_per_facet);
            *counts = entries.into_iter().collect();
        }
    }
}

/// Meilisearch's `count` order (milli walks its facet tree with a max-heap keyed by count, then
/// by value, numbers before strings): number values first, then most frequent first, equal
/// counts by descending value.
pub(crate) fn count_order((a, count_a): (&str, u64), (b, count_b): (&str, u64)) -> Ordering {
    let numeric = |v: &str| facet_number(v).is_some();
    numeric(b)
        .cmp(&numeric(a))
        .then(count_b.cmp(&count_a))
        .then_with(|| facet_value_order(b, a))
}

/// A facet value that is a number: JSON numbers are finite, so `"nan"` or `"inf"` (which Rust
/// would parse) are strings.
fn facet_number(value: &str) -> Option<f64> {
    value.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Numeric facet values (which nodes send as strings) before strings, numbers numerically and
/// strings by their normalized (lower-case) form, as Meilisearch's facet databases are laid out.
fn facet_value_order(a: &str, b: &str) -> Ordering {
    match (facet_number(a), facet_number(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a
            .to_lowercase()
            .cmp(&b.to_lowercase())
            .then_with(|| a.cmp(b)),
    }
}

/// Facet counts summed over nodes. Meilisearch treats values equal once normalized (trimmed,
/// lower-cased) as one and shows the first spelling it met; nodes may each have met another.
#[derive(Default)]
struct FacetCounts {
    /// Normalized value → (first spelling, count).
    values: BTreeMap<String, (String, u64)>,
}

/// A facet value as Meilisearch compares them: trimmed and lower-cased (numbers, which nodes
/// write as text, are unaffected).
pub(crate) fn facet_key(value: &str) -> String {
    value.trim().to_lowercase()
}

impl FacetCounts {
    fn add(&mut self, value: &str, count: u64) {
        let entry = self
            .values
            .entry(facet_key(value))
            .or_insert_with(|| (value.to_string(), 0));
        entry.1 = entry.1.saturating_add(count);
    }

    fn into_map(self) -> Map<String, Value> {
        self.values
            .into_values()
            .map(|(value, count)| (value, json!(count)))
            .collect()
    }
}

/// Adds one node's facet distribution.
fn sum_facets(total: &mut BTreeMap<String, FacetCounts>, distribution: &Map<String, Value>) {
    for (attribute, values) in distribution {
        // `facets: ["*"]` names every filterable attribute, `_miroir_shard` included.
        let Value::Object(values) = values else {
            continue;
        };
        if reserved::is_reserved(attribute) {
            continue;
        }
        let counts = total.entry(attribute.clone()).or_default();
        for (value, count) in values {
            counts.add(value, count.as_u64().unwrap_or(0));
        }
    }
}

fn merge_facet_stats(total: &mut Map<String, Value>, stats: &Map<String, Value>) {
    for (attribute, range) in stats {
        let (Some(min), Some(max)) = (
            range.get("min").and_then(Value::as_f64),
            range.get("max").and_then(Value::as_f64),
        ) else {
            continue;
        };
        let merged = match total.get(attribute) {
            Some(existing) => {
                let old_min = existing.get("min").and_then(Value::as_f64).unwrap_or(min);
                let old_max = existing.get("max").and_then(Value::as_f64).unwrap_or(max);
                json!({"min": old_min.min(min), "max": old_max.max(max)})
            }
            None => json!({"min": min, "max": max}),
        };
        total.insert(attribute.clone(), merged);
    }
}

#[cfg(test)]
mod tests;

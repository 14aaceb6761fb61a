//! The bodies a scattered search sends: the client's search restricted to the node's shards,
//! widened to the first `offset+limit` hits with what the merge needs to rank them.

use miroir_topology::SEQ_FIELD;
use serde_json::{json, Map, Value};

use crate::request::search_params::Pagination;

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
    let substituted = client.map(crate::request::reserved_refs::substitute);
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

/// The client's filter restricted to the node's shards, ANDed with one more condition.
pub(crate) fn with_condition(
    client_filter: Option<&Value>,
    shards: &[u32],
    condition: String,
) -> Value {
    match restrict_filter(client_filter, shards) {
        Value::Array(mut all) => {
            all.push(Value::String(condition));
            Value::Array(all)
        }
        own => json!([own, condition]),
    }
}

/// The body sent to one node: the first `offset+limit` hits from offset 0 with their scores, so
/// the merge can pick the global page.
pub fn node_body(
    client: &Map<String, Value>,
    pagination: Pagination,
    shards: &[u32],
) -> Map<String, Value> {
    node_body_ranked(client, pagination, shards, true)
}

/// [`node_body`], with the hits' ranking details only when `details` (see [`needs_details`]).
fn node_body_ranked(
    client: &Map<String, Value>,
    pagination: Pagination,
    shards: &[u32],
    details: bool,
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
    if details {
        body.insert("showRankingScoreDetails".into(), json!(true));
    }
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
    ranked_by_values: bool,
) -> Map<String, Value> {
    let details = needs_details(client, ranked_by_values);
    let mut body = node_body_ranked(client, pagination, shards, details);
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

/// Whether the merge needs the hits' ranking details to order them as one node: when they were
/// ranked by values (the query's `sort`, or the index's `attr:asc|desc` rules, whose order the
/// score leaves out: `ranked_by_values`), by similarity on one side of a hybrid or vector search,
/// or for distinct's follow-up rounds. Otherwise the ranking score alone orders hits as one node's
/// bucket sort: milli's score encodes the rules' ranks lexicographically over the same maximum
/// ranks on every node (same query, same settings), so it never reverses two buckets.
pub fn needs_details(client: &Map<String, Value>, ranked_by_values: bool) -> bool {
    let given = |field: &str| client.get(field).is_some_and(|v| !v.is_null());
    ranked_by_values
        || given("sort")
        || given("hybrid")
        || given("vector")
        || given("distinct")
        || client
            .get("showRankingScoreDetails")
            .and_then(Value::as_bool)
            .unwrap_or(false)
}

/// Whether an index's settings rank by document values (`attr:asc|desc` rules), or are unknown.
pub fn ranks_by_values(settings: &Value) -> bool {
    match settings.get("rankingRules").and_then(Value::as_array) {
        Some(rules) => rules
            .iter()
            .any(|r| r.as_str().is_none_or(|r| r.contains(':'))),
        None => true,
    }
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
pub(crate) fn pattern_covers(pattern: &str, attr: &str) -> bool {
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

/// A facet search as sent to one node: the client's, limited to the node's shards.
pub fn facet_node_body(client: &Map<String, Value>, shards: &[u32]) -> Map<String, Value> {
    let mut body = client.clone();
    body.insert(
        "filter".into(),
        restrict_filter(client.get("filter"), shards),
    );
    body
}

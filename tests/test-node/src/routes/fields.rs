//! `POST /indexes/{uid}/fields`: every field of the index (sorted by name), with what the
//! settings make of it, as Meilisearch 1.50 answers (recorded in
//! `tests/test-node/fixtures/meilisearch-1.50/fields-*.json`).

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{json_body, ok, validate_index_uid};
use crate::error::Result;
use crate::params;
use crate::settings::{pattern_covers, Settings};
use crate::state::{Index, SharedState};

const FILTER_FIELDS: &[&str] = &[
    "attributePatterns",
    "displayed",
    "searchable",
    "sortable",
    "distinct",
    "rankingRule",
    "filterable",
];

/// The `filterable` view of a field: the first `filterableAttributes` rule covering it decides.
fn filterable(settings: &Settings, name: &str) -> Value {
    let sort_by = if settings.facet_sorted_by_count(name) {
        "count"
    } else {
        "alpha"
    };
    let rules = settings.get("filterableAttributes");
    let rule = rules.as_array().into_iter().flatten().find(|r| match r {
        Value::String(p) => pattern_covers(p, name),
        Value::Object(o) => o
            .get("attributePatterns")
            .and_then(Value::as_array)
            .is_some_and(|ps| {
                ps.iter()
                    .filter_map(Value::as_str)
                    .any(|p| pattern_covers(p, name))
            }),
        _ => false,
    });
    let (facet_search, equality, comparison) = match rule {
        None => (false, false, false),
        Some(Value::Object(o)) => {
            let features = o.get("features");
            let flag =
                |v: Option<&Value>, default: bool| v.and_then(Value::as_bool).unwrap_or(default);
            let filter = features.and_then(|f| f.get("filter"));
            (
                flag(features.and_then(|f| f.get("facetSearch")), false),
                flag(filter.and_then(|f| f.get("equality")), true),
                flag(filter.and_then(|f| f.get("comparison")), false),
            )
        }
        Some(_) => (true, true, true),
    };
    json!({
        "enabled": equality || comparison,
        "sortBy": sort_by,
        "facetSearch": facet_search,
        "equality": equality,
        "comparison": comparison,
    })
}

fn locales(settings: &Settings, name: &str) -> Value {
    let rules = settings.get("localizedAttributes");
    let rule = rules.as_array().into_iter().flatten().find(|r| {
        r.get("attributePatterns")
            .and_then(Value::as_array)
            .is_some_and(|ps| {
                ps.iter()
                    .filter_map(Value::as_str)
                    .any(|p| pattern_covers(p, name))
            })
    });
    rule.and_then(|r| r.get("locales").cloned())
        .unwrap_or_else(|| json!([]))
}

fn field_view(index: &Index, name: &str) -> Value {
    let s = &index.settings;
    let covered =
        |list: Option<Vec<String>>| list.is_none_or(|l| l.iter().any(|p| pattern_covers(p, name)));
    let ranking_rule = s
        .ranking_rules()
        .iter()
        .any(|r| r == &format!("{name}:asc") || r == &format!("{name}:desc"));
    json!({
        "name": name,
        "displayed": {"enabled": covered(s.displayed())},
        "searchable": {"enabled": name != "_vectors" && covered(s.searchable())},
        "sortable": {"enabled": s.is_sortable(name)},
        "distinct": {"enabled": s.distinct_attribute().as_deref() == Some(name)},
        "rankingRule": {"enabled": ranking_rule},
        "filterable": filterable(s, name),
        "localized": {"locales": locales(s, name)},
    })
}

fn keep(view: &Value, filter: &Map<String, Value>) -> bool {
    if let Some(Value::Array(patterns)) = filter.get("attributePatterns") {
        let name = view["name"].as_str().unwrap_or_default();
        if !patterns
            .iter()
            .filter_map(Value::as_str)
            .any(|p| pattern_covers(p, name))
        {
            return false;
        }
    }
    FILTER_FIELDS[1..].iter().all(|k| match filter.get(*k) {
        Some(Value::Bool(want)) => view[*k]["enabled"].as_bool() == Some(*want),
        _ => true,
    })
}

pub async fn list(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    validate_index_uid(&uid)?;
    let body = json_body(&headers, &body)?;
    let map = params::object(&body, &["offset", "limit", "filter"])?;
    let offset = params::opt_usize(map, "offset", "invalid_index_offset")?.unwrap_or(0);
    let limit = params::opt_usize(map, "limit", "invalid_index_limit")?.unwrap_or(20);
    let filter = match map.get("filter") {
        None | Some(Value::Null) => Map::new(),
        Some(f) => {
            let f = params::object(f, FILTER_FIELDS)?;
            for key in &FILTER_FIELDS[1..] {
                params::opt_bool(f, key, "invalid_index_fields_filter")?;
            }
            params::opt_string_list(
                f,
                "attributePatterns",
                "invalid_index_fields_filter_attribute_patterns",
            )?;
            f.clone()
        }
    };
    let store = state.lock();
    let index = store.index(&uid)?;
    let names: BTreeSet<&str> = index
        .docs
        .values()
        .flat_map(|d| d.keys().map(String::as_str))
        .collect();
    let views: Vec<Value> = names
        .into_iter()
        .map(|n| field_view(index, n))
        .filter(|v| keep(v, &filter))
        .collect();
    let total = views.len();
    let results: Vec<Value> = views.into_iter().skip(offset).take(limit).collect();
    Ok(ok(
        json!({"results": results, "offset": offset, "limit": limit, "total": total}),
    ))
}

//! Dynamic search rules (`/dynamic-search-rules`, experimental `dynamicSearchRules`): stored
//! and listed with Meilisearch 1.50's validation; they do not change search results here.

use serde_json::{json, Map, Value};

use crate::error::MeiliError;
use crate::params::type_error;
use crate::state::Store;

const RULE_FIELDS: &[&str] = &[
    "description",
    "precedence",
    "active",
    "conditions",
    "actions",
];

fn unknown_inside(
    code: &'static str,
    field: &str,
    location: &str,
    expected: &[&str],
) -> MeiliError {
    let inside = if location.is_empty() {
        String::new()
    } else {
        format!(" inside `{location}`")
    };
    MeiliError::invalid(
        code,
        format!(
            "Unknown field `{field}`{inside}: expected one of {}",
            crate::params::backticked(expected)
        ),
    )
}

fn missing_inside(code: &'static str, field: &str, location: &str) -> MeiliError {
    MeiliError::invalid(code, format!("Missing field `{field}` inside `{location}`"))
}

fn object<'a>(
    code: &'static str,
    value: &'a Value,
    location: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, MeiliError> {
    let Value::Object(map) = value else {
        return Err(type_error(code, location, "an object", value));
    };
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(unknown_inside(code, k, location, allowed));
    }
    Ok(map)
}

fn string_at(code: &'static str, value: &Value, location: &str) -> Result<(), MeiliError> {
    match value {
        Value::String(_) | Value::Null => Ok(()),
        other => Err(type_error(code, location, "a string", other)),
    }
}

fn conditions(value: &Value) -> Result<(), MeiliError> {
    const CODE: &str = "invalid_dynamic_search_rule_conditions";
    if value.is_null() {
        return Ok(());
    }
    let map = object(CODE, value, ".conditions", &["time", "query"])?;
    if let Some(query) = map.get("query").filter(|v| !v.is_null()) {
        let q = object(CODE, query, ".conditions.query", &["isEmpty", "words"])?;
        if let Some(v) = q.get("isEmpty").filter(|v| !v.is_null() && !v.is_boolean()) {
            return Err(type_error(
                CODE,
                ".conditions.query.isEmpty",
                "a boolean",
                v,
            ));
        }
        if let Some(v) = q.get("words") {
            string_at(CODE, v, ".conditions.query.words")?;
        }
    }
    if let Some(time) = map.get("time").filter(|v| !v.is_null()) {
        let t = object(CODE, time, ".conditions.time", &["start", "end"])?;
        for (k, v) in t {
            string_at(CODE, v, &format!(".conditions.time.{k}"))?;
        }
    }
    Ok(())
}

fn actions(value: &Value) -> Result<(), MeiliError> {
    const CODE: &str = "invalid_dynamic_search_rule_actions";
    if value.is_null() {
        return Ok(());
    }
    let Value::Array(items) = value else {
        return Err(type_error(CODE, ".actions", "an array", value));
    };
    for (i, item) in items.iter().enumerate() {
        let at = format!(".actions[{i}]");
        let map = object(CODE, item, &at, &["selector", "action"])?;
        let selector = map
            .get("selector")
            .ok_or_else(|| missing_inside(CODE, "selector", &at))?;
        let sel_at = format!("{at}.selector");
        let sel = object(CODE, selector, &sel_at, &["indexUid", "id"])?;
        // 1.50 reports a missing `id` before a missing `indexUid`.
        for field in ["id", "indexUid"] {
            match sel.get(field) {
                None => return Err(missing_inside(CODE, field, &sel_at)),
                Some(Value::String(_)) => {}
                Some(other) => {
                    return Err(type_error(
                        CODE,
                        &format!("{sel_at}.{field}"),
                        "a string",
                        other,
                    ))
                }
            }
        }
        let action = map
            .get("action")
            .ok_or_else(|| missing_inside(CODE, "action", &at))?;
        let act_at = format!("{at}.action");
        let act = object(CODE, action, &act_at, &["type", "position"])?;
        if act.get("type") != Some(&json!("pin")) {
            return Err(MeiliError::invalid(
                CODE,
                format!("Invalid value at `{act_at}`: Incorrect tag value"),
            ));
        }
        match act.get("position") {
            None => return Err(missing_inside(CODE, "position", &act_at)),
            Some(Value::Number(n)) if n.is_u64() => {}
            Some(other) => {
                return Err(type_error(
                    CODE,
                    &format!("{act_at}.position"),
                    "a positive integer",
                    other,
                ))
            }
        }
    }
    Ok(())
}

/// Checks a `PATCH /dynamic-search-rules/{uid}` body; the body is the task's `rule` detail.
pub fn validate_patch(body: &Value) -> Result<Map<String, Value>, MeiliError> {
    let Value::Object(map) = body else {
        return Err(type_error("bad_request", "", "an object", body));
    };
    if let Some(k) = map.keys().find(|k| !RULE_FIELDS.contains(&k.as_str())) {
        return Err(unknown_inside("bad_request", k, "", RULE_FIELDS));
    }
    if let Some(v) = map.get("description") {
        string_at("invalid_dynamic_search_rule_description", v, ".description")?;
    }
    match map.get("precedence") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.is_u64() => {}
        Some(other) => {
            return Err(type_error(
                "invalid_dynamic_search_rule_priority",
                ".precedence",
                "a positive integer",
                other,
            ))
        }
    }
    match map.get("active") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(other) => {
            return Err(type_error(
                "invalid_dynamic_search_rule_active",
                ".active",
                "a boolean",
                other,
            ))
        }
    }
    if let Some(v) = map.get("conditions") {
        conditions(v)?;
    }
    if let Some(v) = map.get("actions") {
        actions(v)?;
    }
    Ok(map.clone())
}

/// The stored rule as Meilisearch shows it.
pub fn view(uid: &str, rule: &Map<String, Value>) -> Value {
    let mut m = Map::new();
    m.insert("uid".into(), json!(uid));
    for key in ["description", "precedence"] {
        if let Some(v) = rule.get(key).filter(|v| !v.is_null()) {
            m.insert(key.into(), v.clone());
        }
    }
    m.insert(
        "active".into(),
        rule.get("active").cloned().unwrap_or(json!(true)),
    );
    m.insert(
        "conditions".into(),
        rule.get("conditions").cloned().unwrap_or(json!({})),
    );
    m.insert(
        "actions".into(),
        rule.get("actions").cloned().unwrap_or(json!([])),
    );
    Value::Object(m)
}

/// Runs a `dsrUpdate` task: upserts the patch (a `null` field goes back to its default) or,
/// without one, deletes the rule.
pub fn apply(store: &mut Store, uid: &str, patch: Option<Map<String, Value>>) {
    let Some(patch) = patch else {
        store.dsr.retain(|(u, _)| u != uid);
        return;
    };
    let position = match store.dsr.iter().position(|(u, _)| u == uid) {
        Some(p) => p,
        None => {
            store.dsr.push((uid.to_string(), Map::new()));
            store.dsr.len() - 1
        }
    };
    let rule = &mut store.dsr[position].1;
    for (k, v) in patch {
        if v.is_null() {
            rule.remove(&k);
        } else {
            rule.insert(k, v);
        }
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The list filter's `query`: a word search of the descriptions where, as with Meilisearch's
/// default `last` matching strategy, the first query word must match (no prefix, no typo).
pub fn query_matches(query: &str, rule: &Map<String, Value>) -> bool {
    let q = words(query);
    let Some(first) = q.first() else {
        return true;
    };
    let description = rule
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    words(description).contains(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_needs_the_first_word() {
        let rule = json!({"description": "Black Friday products"});
        let rule = rule.as_object().unwrap();
        assert!(query_matches("black zzz", rule));
        assert!(query_matches("Friday Black", rule));
        assert!(query_matches("black-fr", rule));
        assert!(!query_matches("zzz black", rule));
        assert!(!query_matches("blac", rule));
        assert!(query_matches("", rule));
    }
}

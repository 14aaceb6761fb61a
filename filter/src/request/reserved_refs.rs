//! Client requests that name Miroir's fields (`_miroir_shard`, `_miroir_seq`).
//!
//! - Settings naming them (as attributes, patterns or ranking rules) and `documents/edit`
//!   functions mentioning them are refused before any node sees them: a client could otherwise
//!   make them searchable, sortable, ranked by, or rewrite a document's shard.
//! - A client filter naming them must behave as on one Meilisearch, where no such field exists:
//!   refused as not filterable, or (under a pattern such as `*`) matching as a missing field. The
//!   nodes hold `_miroir_shard` filterable, so the client's filter is sent with each reserved name
//!   replaced by a stand-in of the same length that no document holds and no setting makes
//!   filterable (settings naming it are refused too). The node then answers exactly as one
//!   Meilisearch: its error quotes the stand-in at the same positions, and
//!   [`crate::merge::node_error`] writes the reserved name back.

use miroir_topology::reserved::STAND_INS;
use serde_json::{Map, Value};

use crate::error::MeiliError;

/// Every name a client must not name in settings: the reserved fields and their stand-ins.
fn protected() -> impl Iterator<Item = &'static str> {
    STAND_INS
        .iter()
        .flat_map(|(field, stand_in)| [*field, *stand_in])
}

/// Meilisearch's attribute patterns: `*` at the start and/or the end.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(rest) => match rest.strip_suffix('*') {
            Some(middle) => name.contains(middle),
            None => name.ends_with(rest),
        },
        None => match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => pattern == name,
        },
    }
}

/// The protected name a settings string names: an attribute, a pattern other than `*` alone
/// covering one, or a ranking rule / sort `attr:asc|desc`.
fn named(text: &str) -> Option<&'static str> {
    let attribute = text
        .strip_suffix(":asc")
        .or_else(|| text.strip_suffix(":desc"))
        .unwrap_or(text);
    if attribute == "*" {
        return None;
    }
    protected().find(|name| pattern_matches(attribute, name))
}

/// Settings keys that name attributes, with their sub-route.
const ATTRIBUTE_SETTINGS: [(&str, &str); 8] = [
    ("searchableAttributes", "searchable-attributes"),
    ("displayedAttributes", "displayed-attributes"),
    ("sortableAttributes", "sortable-attributes"),
    ("filterableAttributes", "filterable-attributes"),
    ("rankingRules", "ranking-rules"),
    ("distinctAttribute", "distinct-attribute"),
    ("localizedAttributes", "localized-attributes"),
    ("faceting", "faceting"),
];

/// The first protected name among a setting's strings (and, for `faceting`, the attributes of
/// `sortFacetValuesBy`).
fn first_named(value: &Value) -> Option<(&'static str, String)> {
    match value {
        Value::String(s) => named(s).map(|n| (n, s.clone())),
        Value::Array(items) => items.iter().find_map(first_named),
        Value::Object(map) => map.iter().find_map(|(key, v)| {
            let in_key = match v {
                // `sortFacetValuesBy: {attr: "count"}`, and a map's keys generally.
                Value::String(_) => named(key).map(|n| (n, key.clone())),
                _ => None,
            };
            in_key.or_else(|| first_named(v))
        }),
        _ => None,
    }
}

/// Refuses a settings change (the whole object, or the body of sub-route `sub`) naming a reserved
/// field.
pub fn check_settings(sub: Option<&str>, body: &Value) -> Result<(), MeiliError> {
    for (key, route) in ATTRIBUTE_SETTINGS {
        let value = match (sub, body) {
            (None, Value::Object(settings)) => settings.get(key),
            (Some(s), _) if s == route => Some(body),
            _ => None,
        };
        if let Some((field, text)) = value.and_then(first_named) {
            return Err(MeiliError::bad_request(
                "miroir_reserved_field",
                format!(
                    "`{key}` cannot name `{text}`: `{field}` is an attribute Miroir manages (reserved)."
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses a `documents/edit` whose function mentions `_miroir_`. Conservative: the function is a
/// Rhai program, and no cheaper check than the text tells whether it reads or writes Miroir's
/// fields (`doc._miroir_shard = ...`, `doc["_miroir_" + "shard"]` is not caught, see the docs).
pub fn check_edit(body: &Map<String, Value>) -> Result<(), MeiliError> {
    let mentions = body
        .get("function")
        .and_then(Value::as_str)
        .is_some_and(|f| f.contains("_miroir_"));
    if mentions {
        return Err(MeiliError::bad_request(
            "miroir_reserved_field",
            "The `function` of a document edition cannot mention `_miroir_`: `_miroir_shard`, `_miroir_seq` and `_miroir_version` are attributes Miroir manages (reserved).",
        ));
    }
    Ok(())
}

/// Whether a client filter (string or array) names a reserved field anywhere.
pub fn names_reserved(filter: &Value) -> bool {
    match filter {
        Value::String(s) => STAND_INS.iter().any(|(field, _)| s.contains(field)),
        Value::Array(items) => items.iter().any(names_reserved),
        _ => false,
    }
}

/// The client's filter with every reserved name replaced by its stand-in. A quoted value spelling
/// a reserved name is replaced too (no client value has a reason to).
pub fn substitute(filter: &Value) -> Value {
    match filter {
        Value::String(s) => Value::String(substitute_text(s)),
        Value::Array(items) => Value::Array(items.iter().map(substitute).collect()),
        other => other.clone(),
    }
}

fn substitute_text(text: &str) -> String {
    STAND_INS
        .iter()
        .fold(text.to_string(), |t, (field, stand_in)| {
            t.replace(field, stand_in)
        })
}

/// A node's message with the stand-ins written back as the reserved names the client wrote.
pub fn restore(message: &str) -> Option<String> {
    miroir_topology::reserved::restore_stand_ins(message)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn settings_naming_reserved_fields_are_refused() {
        let refused = [
            json!({"searchableAttributes": ["title", "_miroir_shard"]}),
            json!({"rankingRules": ["words", "_miroir_seq:asc"]}),
            json!({"sortableAttributes": ["_miroir_*"]}),
            json!({"filterableAttributes": [{"attributePatterns": ["_miroir_seq"]}]}),
            json!({"distinctAttribute": "_miroir_shard"}),
            json!({"displayedAttributes": ["*_shard"]}),
            json!({"faceting": {"sortFacetValuesBy": {"_miroir_shard": "count"}}}),
            json!({"filterableAttributes": ["_miroir-shard"]}),
        ];
        for body in refused {
            let e = check_settings(None, &body).unwrap_err();
            assert_eq!((e.status, e.code), (400, "miroir_reserved_field"), "{body}");
        }
        assert!(check_settings(Some("ranking-rules"), &json!(["_miroir_seq:desc"])).is_err());
        let accepted = [
            json!({"displayedAttributes": ["*"], "searchableAttributes": ["*"]}),
            json!({"rankingRules": ["words", "typo", "year:desc"], "distinctAttribute": null}),
            json!({"filterableAttributes": [{"attributePatterns": ["tags.*"], "features": {"facetSearch": true}}]}),
            json!({"faceting": {"sortFacetValuesBy": {"*": "alpha"}}}),
            json!({"synonyms": {"_miroir_shard": ["x"]}}),
        ];
        for body in accepted {
            assert!(check_settings(None, &body).is_ok(), "{body}");
        }
        assert!(check_settings(Some("searchable-attributes"), &json!(["title"])).is_ok());
    }

    #[test]
    fn filters_are_sent_with_stand_ins_and_errors_restored() {
        let filter = json!(["genre = a", ["_miroir_seq = 2", "_miroir_shard EXISTS"]]);
        assert!(names_reserved(&filter));
        assert!(!names_reserved(&json!("genre = a")));
        let sent = substitute(&filter);
        assert_eq!(
            sent,
            json!(["genre = a", ["_miroir-seq = 2", "_miroir-shard EXISTS"]])
        );
        assert_eq!(
            restore("Attribute `_miroir-shard` is not filterable.\n2:15 \"_miroir-shard\" = \"1\"")
                .as_deref(),
            Some("Attribute `_miroir_shard` is not filterable.\n2:15 \"_miroir_shard\" = \"1\"")
        );
        assert_eq!(restore("Attribute `a` is not filterable."), None);
    }
}

//! Index settings: Meilisearch's full settings object with its defaults, partial updates
//! (`null` resets a setting) and the validation Meilisearch does before enqueuing the task.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::error::MeiliError;
use crate::params::{describe, string_list, type_error, unknown_field};

/// Every setting in the order `GET /indexes/{uid}/settings` prints them.
pub const KEYS: &[&str] = &[
    "displayedAttributes",
    "searchableAttributes",
    "filterableAttributes",
    "sortableAttributes",
    "rankingRules",
    "stopWords",
    "nonSeparatorTokens",
    "separatorTokens",
    "dictionary",
    "synonyms",
    "distinctAttribute",
    "proximityPrecision",
    "typoTolerance",
    "faceting",
    "pagination",
    "embedders",
    "searchCutoffMs",
    "localizedAttributes",
    "facetSearch",
    "prefixSearch",
];

pub const DEFAULT_RANKING_RULES: &[&str] = &[
    "words",
    "typo",
    "proximity",
    "attributeRank",
    "sort",
    "wordPosition",
    "exactness",
];

pub fn default_value(key: &str) -> Value {
    match key {
        "displayedAttributes" | "searchableAttributes" => json!(["*"]),
        "filterableAttributes"
        | "sortableAttributes"
        | "stopWords"
        | "nonSeparatorTokens"
        | "separatorTokens"
        | "dictionary" => json!([]),
        "rankingRules" => json!(DEFAULT_RANKING_RULES),
        "synonyms" | "embedders" => json!({}),
        "proximityPrecision" => json!("byWord"),
        "typoTolerance" => json!({
            "enabled": true,
            "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9},
            "disableOnWords": [],
            "disableOnAttributes": [],
            "disableOnNumbers": false
        }),
        "faceting" => json!({"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}}),
        "pagination" => json!({"maxTotalHits": 1000}),
        "facetSearch" => json!(true),
        "prefixSearch" => json!("indexingTime"),
        _ => Value::Null,
    }
}

/// Sub-routes under `/indexes/{uid}/settings/` and whether they update with PATCH (else PUT).
pub fn sub_route(name: &str) -> Option<(&'static str, bool)> {
    Some(match name {
        "displayed-attributes" => ("displayedAttributes", false),
        "searchable-attributes" => ("searchableAttributes", false),
        "filterable-attributes" => ("filterableAttributes", false),
        "sortable-attributes" => ("sortableAttributes", false),
        "ranking-rules" => ("rankingRules", false),
        "stop-words" => ("stopWords", false),
        "non-separator-tokens" => ("nonSeparatorTokens", false),
        "separator-tokens" => ("separatorTokens", false),
        "dictionary" => ("dictionary", false),
        "synonyms" => ("synonyms", false),
        "distinct-attribute" => ("distinctAttribute", false),
        "proximity-precision" => ("proximityPrecision", false),
        "typo-tolerance" => ("typoTolerance", true),
        "faceting" => ("faceting", true),
        "pagination" => ("pagination", true),
        "embedders" => ("embedders", true),
        "search-cutoff-ms" => ("searchCutoffMs", false),
        "localized-attributes" => ("localizedAttributes", false),
        "facet-search" => ("facetSearch", false),
        "prefix-search" => ("prefixSearch", false),
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings(Map<String, Value>);

impl Default for Settings {
    fn default() -> Self {
        Self(
            KEYS.iter()
                .map(|k| (k.to_string(), default_value(k)))
                .collect(),
        )
    }
}

impl Settings {
    pub fn to_json(&self) -> Value {
        Value::Object(self.0.clone())
    }

    pub fn get(&self, key: &str) -> Value {
        self.0.get(key).cloned().unwrap_or(Value::Null)
    }

    fn strings(&self, key: &str) -> Vec<String> {
        match self.0.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `None` means every field (`["*"]`).
    pub fn displayed(&self) -> Option<Vec<String>> {
        let list = self.strings("displayedAttributes");
        (!list.iter().any(|a| a == "*")).then_some(list)
    }

    /// `None` means every field, in document order, all with the same weight.
    pub fn searchable(&self) -> Option<Vec<String>> {
        let list = self.strings("searchableAttributes");
        (!list.iter().any(|a| a == "*")).then_some(list)
    }

    /// Filterable attribute patterns: plain strings, or the `attributePatterns` of object rules
    /// whose filter features are not switched off.
    pub fn filterable_patterns(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(Value::Array(rules)) = self.0.get("filterableAttributes") {
            for rule in rules {
                match rule {
                    Value::String(s) => out.push(s.clone()),
                    Value::Object(obj) => {
                        let filter = obj.get("features").and_then(|f| f.get("filter"));
                        let disabled = filter.is_some_and(|f| {
                            f.get("equality") == Some(&Value::Bool(false))
                                && f.get("comparison") == Some(&Value::Bool(false))
                        });
                        if !disabled {
                            if let Some(Value::Array(patterns)) = obj.get("attributePatterns") {
                                out.extend(
                                    patterns.iter().filter_map(|p| p.as_str().map(String::from)),
                                );
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// Meilisearch's facet-search check: the first `filterableAttributes` rule matching the
    /// attribute decides. A plain string enables facet search; an object rule needs
    /// `features.facetSearch: true`. `Err(Some(i))` when rule `i` matched without it, `Err(None)`
    /// when no rule matched.
    pub fn facet_search_rule(&self, attribute: &str) -> Result<(), Option<usize>> {
        let Some(Value::Array(rules)) = self.0.get("filterableAttributes") else {
            return Err(None);
        };
        for (i, rule) in rules.iter().enumerate() {
            match rule {
                Value::String(p) if pattern_covers(p, attribute) => return Ok(()),
                Value::Object(obj) => {
                    let matched = obj
                        .get("attributePatterns")
                        .and_then(Value::as_array)
                        .is_some_and(|ps| {
                            ps.iter()
                                .filter_map(Value::as_str)
                                .any(|p| pattern_covers(p, attribute))
                        });
                    if matched {
                        return if Self::rule_enables_facet_search(rule) {
                            Ok(())
                        } else {
                            Err(Some(i))
                        };
                    }
                }
                _ => {}
            }
        }
        Err(None)
    }

    fn rule_enables_facet_search(rule: &Value) -> bool {
        match rule {
            Value::String(_) => true,
            other => {
                other.get("features").and_then(|f| f.get("facetSearch")) == Some(&Value::Bool(true))
            }
        }
    }

    /// The patterns of the rules that enable facet search, sorted and deduplicated.
    pub fn facet_searchable_patterns(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        if let Some(Value::Array(rules)) = self.0.get("filterableAttributes") {
            for rule in rules.iter().filter(|r| Self::rule_enables_facet_search(r)) {
                match rule {
                    Value::String(p) => {
                        out.insert(p.clone());
                    }
                    other => {
                        if let Some(Value::Array(ps)) = other.get("attributePatterns") {
                            out.extend(ps.iter().filter_map(|p| p.as_str().map(String::from)));
                        }
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    pub fn facet_search_enabled(&self) -> bool {
        self.0.get("facetSearch") != Some(&Value::Bool(false))
    }

    pub fn is_filterable(&self, attribute: &str) -> bool {
        self.filterable_patterns()
            .iter()
            .any(|p| pattern_covers(p, attribute))
    }

    pub fn sortable(&self) -> Vec<String> {
        self.strings("sortableAttributes")
    }

    pub fn is_sortable(&self, attribute: &str) -> bool {
        self.sortable()
            .iter()
            .any(|s| s == attribute || attribute.starts_with(&format!("{s}.")))
    }

    pub fn ranking_rules(&self) -> Vec<String> {
        self.strings("rankingRules")
    }

    pub fn max_values_per_facet(&self) -> usize {
        self.0
            .get("faceting")
            .and_then(|f| f.get("maxValuesPerFacet"))
            .and_then(Value::as_u64)
            .unwrap_or(100) as usize
    }

    /// `true` when facet values of `attribute` are ordered by count rather than alphabetically.
    pub fn facet_sorted_by_count(&self, attribute: &str) -> bool {
        let Some(Value::Object(by)) = self
            .0
            .get("faceting")
            .and_then(|f| f.get("sortFacetValuesBy"))
        else {
            return false;
        };
        by.get(attribute)
            .or_else(|| by.get("*"))
            .and_then(Value::as_str)
            == Some("count")
    }

    pub fn max_total_hits(&self) -> usize {
        self.0
            .get("pagination")
            .and_then(|p| p.get("maxTotalHits"))
            .and_then(Value::as_u64)
            .unwrap_or(1000) as usize
    }

    pub fn distinct_attribute(&self) -> Option<String> {
        self.0
            .get("distinctAttribute")
            .and_then(Value::as_str)
            .map(String::from)
    }

    /// Applies a validated patch (see [`validate`]); `null` resets to the default and the nested
    /// objects (`faceting`, `pagination`, `typoTolerance`) merge key by key like Meilisearch.
    pub fn apply(&mut self, patch: &Map<String, Value>) {
        for (key, value) in patch {
            let new = match value {
                Value::Null => default_value(key),
                Value::Object(sub)
                    if matches!(key.as_str(), "faceting" | "pagination" | "typoTolerance") =>
                {
                    let defaults = default_value(key);
                    let mut merged = match self.0.get(key) {
                        Some(Value::Object(cur)) => cur.clone(),
                        _ => Map::new(),
                    };
                    for (k, v) in sub {
                        let v = if v.is_null() {
                            defaults.get(k).cloned().unwrap_or(Value::Null)
                        } else {
                            v.clone()
                        };
                        merged.insert(k.clone(), v);
                    }
                    Value::Object(merged)
                }
                Value::Object(sub) if key == "embedders" => {
                    let mut merged = match self.0.get(key) {
                        Some(Value::Object(cur)) => cur.clone(),
                        _ => Map::new(),
                    };
                    for (name, conf) in sub {
                        match conf {
                            Value::Object(fields) => {
                                let entry = merged
                                    .entry(name.clone())
                                    .or_insert_with(|| Value::Object(Map::new()));
                                if let Value::Object(existing) = entry {
                                    for (k, v) in fields {
                                        if v.is_null() {
                                            existing.remove(k);
                                        } else {
                                            existing.insert(k.clone(), v.clone());
                                        }
                                    }
                                }
                            }
                            _ => {
                                merged.remove(name);
                            }
                        }
                    }
                    Value::Object(merged)
                }
                other => other.clone(),
            };
            self.0.insert(key.clone(), new);
        }
    }
}

/// Filterable patterns may end or start with `*`; a field also covers its nested sub-fields.
pub fn pattern_covers(pattern: &str, attribute: &str) -> bool {
    if pattern == "*" || pattern == attribute || attribute.starts_with(&format!("{pattern}.")) {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return attribute.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return attribute.ends_with(suffix);
    }
    false
}

fn code_for(key: &str) -> &'static str {
    match key {
        "displayedAttributes" => "invalid_settings_displayed_attributes",
        "searchableAttributes" => "invalid_settings_searchable_attributes",
        "filterableAttributes" => "invalid_settings_filterable_attributes",
        "sortableAttributes" => "invalid_settings_sortable_attributes",
        "rankingRules" => "invalid_settings_ranking_rules",
        "stopWords" => "invalid_settings_stop_words",
        "nonSeparatorTokens" => "invalid_settings_non_separator_tokens",
        "separatorTokens" => "invalid_settings_separator_tokens",
        "dictionary" => "invalid_settings_dictionary",
        "synonyms" => "invalid_settings_synonyms",
        "distinctAttribute" => "invalid_settings_distinct_attribute",
        "proximityPrecision" => "invalid_settings_proximity_precision",
        "typoTolerance" => "invalid_settings_typo_tolerance",
        "faceting" => "invalid_settings_faceting",
        "pagination" => "invalid_settings_pagination",
        "embedders" => "invalid_settings_embedders",
        "searchCutoffMs" => "invalid_settings_search_cutoff_ms",
        "localizedAttributes" => "invalid_settings_localized_attributes",
        "facetSearch" => "invalid_settings_facet_search",
        "prefixSearch" => "invalid_settings_prefix_search",
        _ => "bad_request",
    }
}

/// Validates a full settings body (`PATCH /settings`) and returns the normalized patch, which is
/// also what the task's `details` echo.
pub fn validate(body: &Value) -> Result<Map<String, Value>, MeiliError> {
    let Value::Object(map) = body else {
        return Err(MeiliError::bad_request(format!(
            "Invalid value type: expected an object, but found {}",
            describe(body)
        )));
    };
    let mut out = Map::new();
    for (key, value) in map {
        if !KEYS.contains(&key.as_str()) {
            return Err(unknown_field(key, KEYS));
        }
        out.insert(key.clone(), validate_one(key, value, &format!(".{key}"))?);
    }
    Ok(out)
}

/// Validates the body of a settings sub-route, whose location in messages is the root.
pub fn validate_single(key: &str, value: &Value) -> Result<Map<String, Value>, MeiliError> {
    let mut out = Map::new();
    out.insert(key.to_string(), validate_one(key, value, "")?);
    Ok(out)
}

fn validate_one(key: &str, value: &Value, location: &str) -> Result<Value, MeiliError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let code = code_for(key);
    let loc = if location.is_empty() { "." } else { location };
    match key {
        "displayedAttributes" | "searchableAttributes" => {
            let list = string_list(value, loc, code)?;
            Ok(if list.iter().any(|a| a == "*") {
                json!(["*"])
            } else {
                json!(list)
            })
        }
        // Meilisearch keeps these as sets, so they come back sorted and deduplicated.
        "sortableAttributes" | "stopWords" | "nonSeparatorTokens" | "separatorTokens"
        | "dictionary" => {
            let set: BTreeSet<String> = string_list(value, loc, code)?.into_iter().collect();
            Ok(json!(set))
        }
        "filterableAttributes" => {
            let Value::Array(items) = value else {
                return Err(type_error(code, loc, "an array", value));
            };
            for (i, item) in items.iter().enumerate() {
                if !matches!(item, Value::String(_) | Value::Object(_)) {
                    return Err(type_error(
                        code,
                        &format!("{location}[{i}]"),
                        "a string or an object",
                        item,
                    ));
                }
            }
            Ok(value.clone())
        }
        "rankingRules" => {
            let list = string_list(value, loc, code)?;
            for (i, rule) in list.iter().enumerate() {
                if !valid_ranking_rule(rule) {
                    return Err(MeiliError::invalid(
                        code,
                        format!(
                            "Invalid value at `{location}[{i}]`: `{rule}` ranking rule is invalid. Valid ranking rules are words, typo, sort, proximity, attribute, exactness and custom ranking rules."
                        ),
                    ));
                }
            }
            Ok(json!(list))
        }
        "embedders" => validate_embedders(value, location),
        "synonyms" | "typoTolerance" => match value {
            Value::Object(_) => Ok(value.clone()),
            other => Err(type_error(code, loc, "an object", other)),
        },
        "faceting" => {
            let Value::Object(obj) = value else {
                return Err(type_error(code, loc, "an object", value));
            };
            for (k, v) in obj {
                match k.as_str() {
                    "maxValuesPerFacet" if v.is_null() || v.is_u64() => {}
                    "maxValuesPerFacet" => {
                        return Err(type_error(
                            code,
                            &format!("{location}.{k}"),
                            "a positive integer",
                            v,
                        ))
                    }
                    "sortFacetValuesBy" => {
                        if let Value::Object(by) = v {
                            for (attr, order) in by {
                                if !matches!(order.as_str(), Some("alpha" | "count")) {
                                    return Err(MeiliError::invalid(
                                        code,
                                        format!("Unknown value `{}` at `{location}.sortFacetValuesBy.{attr}`: expected one of `alpha`, `count`", order.as_str().unwrap_or_default()),
                                    ));
                                }
                            }
                        } else if !v.is_null() {
                            return Err(type_error(
                                code,
                                &format!("{location}.{k}"),
                                "an object",
                                v,
                            ));
                        }
                    }
                    _ => {
                        return Err(unknown_field(
                            k,
                            &["maxValuesPerFacet", "sortFacetValuesBy"],
                        ))
                    }
                }
            }
            Ok(value.clone())
        }
        "pagination" => {
            let Value::Object(obj) = value else {
                return Err(type_error(code, loc, "an object", value));
            };
            for (k, v) in obj {
                if k != "maxTotalHits" {
                    return Err(unknown_field(k, &["maxTotalHits"]));
                }
                if !(v.is_null() || v.is_u64()) {
                    return Err(type_error(
                        code,
                        &format!("{location}.{k}"),
                        "a positive integer",
                        v,
                    ));
                }
            }
            Ok(value.clone())
        }
        "distinctAttribute" => match value {
            Value::String(_) => Ok(value.clone()),
            other => Err(type_error(code, loc, "a string", other)),
        },
        "proximityPrecision" | "prefixSearch" => {
            let allowed: &[&str] = if key == "proximityPrecision" {
                &["byWord", "byAttribute"]
            } else {
                &["indexingTime", "disabled"]
            };
            match value.as_str() {
                Some(s) if allowed.contains(&s) => Ok(value.clone()),
                Some(s) => Err(MeiliError::invalid(
                    code,
                    format!(
                        "Unknown value `{s}` at `{loc}`: expected one of {}",
                        crate::params::backticked(allowed)
                    ),
                )),
                None => Err(type_error(code, loc, "a string", value)),
            }
        }
        "searchCutoffMs" if value.is_u64() => Ok(value.clone()),
        "searchCutoffMs" => Err(type_error(code, loc, "a positive integer", value)),
        "facetSearch" if value.is_boolean() => Ok(value.clone()),
        "facetSearch" => Err(type_error(code, loc, "a boolean", value)),
        "localizedAttributes" if value.is_array() => Ok(value.clone()),
        "localizedAttributes" => Err(type_error(code, loc, "an array", value)),
        _ => Ok(value.clone()),
    }
}

const EMBEDDER_SOURCES: &[&str] = &[
    "openAi",
    "huggingFace",
    "ollama",
    "userProvided",
    "rest",
    "composite",
];

const EMBEDDER_FIELDS: &[&str] = &[
    "source",
    "model",
    "revision",
    "pooling",
    "apiKey",
    "dimensions",
    "binaryQuantized",
    "documentTemplate",
    "documentTemplateMaxBytes",
    "url",
    "indexingFragments",
    "searchFragments",
    "request",
    "response",
    "headers",
    "searchEmbedder",
    "indexingEmbedder",
    "distribution",
];

/// `embedders`: an object of embedder name to settings (or `null` to remove one). Types are
/// checked here; what a source requires is checked when the task runs ([`check_embedders`]).
fn validate_embedders(value: &Value, location: &str) -> Result<Value, MeiliError> {
    const CODE: &str = "invalid_settings_embedders";
    let loc = if location.is_empty() { "." } else { location };
    let Value::Object(map) = value else {
        return Err(type_error(CODE, loc, "an object", value));
    };
    for (name, conf) in map {
        let at = format!("{location}.{name}");
        let fields = match conf {
            Value::Null => continue,
            Value::Object(fields) => fields,
            other => return Err(type_error(CODE, &at, "an object", other)),
        };
        for (k, v) in fields {
            if !EMBEDDER_FIELDS.contains(&k.as_str()) {
                let e = unknown_field(k, EMBEDDER_FIELDS);
                return Err(MeiliError::invalid(
                    CODE,
                    e.message.replacen(
                        &format!("Unknown field `{k}`"),
                        &format!("Unknown field `{k}` inside `{at}`"),
                        1,
                    ),
                ));
            }
            match k.as_str() {
                "source" => match v.as_str() {
                    Some(s) if EMBEDDER_SOURCES.contains(&s) => {}
                    Some(s) => {
                        return Err(MeiliError::invalid(
                            CODE,
                            format!(
                                "Unknown value `{s}` at `{at}.source`: expected one of {}",
                                crate::params::backticked(EMBEDDER_SOURCES)
                            ),
                        ))
                    }
                    None if v.is_null() => {}
                    None => return Err(type_error(CODE, &format!("{at}.source"), "a string", v)),
                },
                "dimensions" if !(v.is_null() || v.is_u64()) => {
                    return Err(type_error(
                        CODE,
                        &format!("{at}.dimensions"),
                        "a positive integer",
                        v,
                    ))
                }
                "binaryQuantized" if !(v.is_null() || v.is_boolean()) => {
                    return Err(type_error(
                        CODE,
                        &format!("{at}.binaryQuantized"),
                        "a boolean",
                        v,
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(value.clone())
}

/// What the engine checks when a settings task runs: a `userProvided` embedder needs non-zero
/// `dimensions`. The message is Meilisearch's, without the `Index \`uid\`: ` prefix.
pub fn check_embedders(settings: &Settings) -> Result<(), MeiliError> {
    let Some(Value::Object(map)) = settings.0.get("embedders") else {
        return Ok(());
    };
    for (name, conf) in map {
        let source = conf
            .get("source")
            .and_then(Value::as_str)
            .unwrap_or("openAi");
        let dimensions = conf.get("dimensions").and_then(Value::as_u64);
        if dimensions == Some(0) {
            return Err(MeiliError::invalid(
                "invalid_settings_embedders",
                format!("`.embedders.{name}.dimensions`: `dimensions` cannot be zero"),
            ));
        }
        if source == "userProvided" && dimensions.is_none() {
            return Err(MeiliError::invalid(
                "invalid_settings_embedders",
                format!("`.embedders.{name}`: Missing field `dimensions` (note: this field is mandatory for source `userProvided`)"),
            ));
        }
    }
    Ok(())
}

pub fn valid_ranking_rule(rule: &str) -> bool {
    const BUILT_IN: &[&str] = &[
        "words",
        "typo",
        "proximity",
        "attribute",
        "attributeRank",
        "wordPosition",
        "sort",
        "exactness",
    ];
    if BUILT_IN.contains(&rule) {
        return true;
    }
    match rule.rsplit_once(':') {
        Some((field, "asc" | "desc")) => !field.is_empty() && !field.contains(char::is_whitespace),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_normalizes_and_resets() {
        let patch = validate(&json!({
            "filterableAttributes": ["genres", "year"],
            "sortableAttributes": ["year", "rating", "title", "year"],
            "distinctAttribute": null
        }))
        .unwrap();
        assert_eq!(
            patch["sortableAttributes"],
            json!(["rating", "title", "year"])
        );
        let mut s = Settings::default();
        s.apply(&patch);
        assert_eq!(s.get("filterableAttributes"), json!(["genres", "year"]));
        assert!(s.is_filterable("genres") && !s.is_filterable("title"));
        s.apply(&validate(&json!({"faceting": {"maxValuesPerFacet": 2}})).unwrap());
        assert_eq!(s.max_values_per_facet(), 2);
        assert_eq!(
            s.get("faceting")["sortFacetValuesBy"],
            json!({"*": "alpha"})
        );
        s.apply(&validate(&json!({"filterableAttributes": null})).unwrap());
        assert_eq!(s.get("filterableAttributes"), json!([]));
    }

    #[test]
    fn rejects_bad_settings() {
        let e = validate(&json!({"bogus": 1})).unwrap_err();
        assert_eq!(e.code, "bad_request");
        let e = validate(&json!({"rankingRules": ["words", "nope"]})).unwrap_err();
        assert_eq!(e.code, "invalid_settings_ranking_rules");
        let e = validate(&json!({"filterableAttributes": "x"})).unwrap_err();
        assert_eq!(e.code, "invalid_settings_filterable_attributes");
        assert!(valid_ranking_rule("rating:desc") && valid_ranking_rule("attribute"));
    }

    #[test]
    fn patterns() {
        assert!(pattern_covers("doggos", "doggos.age"));
        assert!(pattern_covers("doggos.*", "doggos.age"));
        assert!(pattern_covers("*", "x"));
        assert!(!pattern_covers("dog", "doggos"));
    }
}

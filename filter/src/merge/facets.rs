//! Facet values summed over nodes and ordered, counted and cut as one node would: the facet
//! distribution of a search and the hits of a facet search.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use miroir_topology::reserved;
use serde_json::{json, Map, Value};

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

    pub(crate) fn order(&self, facets: &mut Map<String, Value>) {
        for (attribute, values) in facets.iter_mut() {
            let Value::Object(counts) = values else {
                continue;
            };
            let by_count = self.by_count(attribute);
            // Each value's sort key is computed once, not at every comparison.
            let mut entries: Vec<(SortKey, u64, String, Value)> = std::mem::take(counts)
                .into_iter()
                .map(|(value, count)| {
                    (
                        SortKey::of(&value),
                        count.as_u64().unwrap_or(0),
                        value,
                        count,
                    )
                })
                .collect();
            entries.sort_by(|(ka, ca, a, _), (kb, cb, b, _)| {
                if by_count {
                    keyed_count_order((ka, a, *ca), (kb, b, *cb))
                } else {
                    keyed_value_order((ka, a), (kb, b))
                }
            });
            entries.truncate(self.max_values_per_facet);
            *counts = entries.into_iter().map(|(_, _, v, c)| (v, c)).collect();
        }
    }
}

/// Meilisearch's `count` order (milli walks its facet tree with a max-heap keyed by count, then
/// by value, numbers before strings): number values first, then most frequent first, equal
/// counts by descending value.
pub(crate) fn count_order((a, count_a): (&str, u64), (b, count_b): (&str, u64)) -> Ordering {
    keyed_count_order((&SortKey::of(a), a, count_a), (&SortKey::of(b), b, count_b))
}

fn keyed_count_order(
    (ka, a, count_a): (&SortKey, &str, u64),
    (kb, b, count_b): (&SortKey, &str, u64),
) -> Ordering {
    kb.number
        .is_some()
        .cmp(&ka.number.is_some())
        .then(count_b.cmp(&count_a))
        .then_with(|| keyed_value_order((kb, b), (ka, a)))
}

/// How a facet value sorts: as a number, or by its lower-case form.
struct SortKey {
    number: Option<f64>,
    folded: Option<String>,
}

impl SortKey {
    fn of(value: &str) -> SortKey {
        let number = facet_number(value);
        SortKey {
            number,
            folded: number.is_none().then(|| value.to_lowercase()),
        }
    }
}

/// A facet value that is a number: JSON numbers are finite, so `"nan"` or `"inf"` (which Rust
/// would parse) are strings.
fn facet_number(value: &str) -> Option<f64> {
    value.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Numeric facet values (which nodes send as strings) before strings, numbers numerically and
/// strings by their normalized (lower-case) form, as Meilisearch's facet databases are laid out.
fn keyed_value_order((ka, a): (&SortKey, &str), (kb, b): (&SortKey, &str)) -> Ordering {
    match (ka.number, kb.number) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => ka.folded.cmp(&kb.folded).then_with(|| a.cmp(b)),
    }
}

/// Facet counts summed over nodes. Meilisearch treats values equal once normalized (trimmed,
/// lower-cased) as one and shows the first spelling it met; nodes may each have met another.
#[derive(Default)]
pub(crate) struct FacetCounts {
    /// Normalized value → (first spelling, count).
    values: BTreeMap<String, (String, u64)>,
}

/// A facet value as Meilisearch compares them: trimmed and lower-cased (numbers, which nodes
/// write as text, are unaffected).
pub(crate) fn facet_key(value: &str) -> String {
    value.trim().to_lowercase()
}

impl FacetCounts {
    pub(crate) fn add(&mut self, value: &str, count: u64) {
        let entry = self
            .values
            .entry(facet_key(value))
            .or_insert_with(|| (value.to_string(), 0));
        entry.1 = entry.1.saturating_add(count);
    }

    pub(crate) fn into_map(self) -> Map<String, Value> {
        self.values
            .into_values()
            .map(|(value, count)| (value, json!(count)))
            .collect()
    }
}

/// Adds one node's facet distribution.
pub(crate) fn sum_facets(
    total: &mut BTreeMap<String, FacetCounts>,
    distribution: &Map<String, Value>,
) {
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

pub(crate) fn merge_facet_stats(total: &mut Map<String, Value>, stats: &Map<String, Value>) {
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

//! Search: parameters (POST body and GET query string), candidate selection, bucket-sort
//! ordering, pagination, facets and the response shape.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Map, Value};

use crate::documents::{project, values_at};
use crate::error::MeiliError;
use crate::filter::{self, Filter};
use crate::hybrid::{self, HybridQuery, SearchKind};
use crate::params::{self, type_error};
use crate::ranking::{self, is_relevancy_rule, MatchingStrategy, Query, Rank};
use crate::state::{Document, Index};
use crate::time::uuid_v7;
use crate::vectors;

pub const FIELDS: &[&str] = &[
    "q",
    "offset",
    "limit",
    "page",
    "hitsPerPage",
    "attributesToRetrieve",
    "attributesToCrop",
    "cropLength",
    "cropMarker",
    "attributesToHighlight",
    "highlightPreTag",
    "highlightPostTag",
    "showMatchesPosition",
    "filter",
    "sort",
    "distinct",
    "facets",
    "matchingStrategy",
    "attributesToSearchOn",
    "rankingScoreThreshold",
    "locales",
    "hybrid",
    "vector",
    "retrieveVectors",
    "media",
    "personalize",
    "useNetwork",
    "showRankingScore",
    "showRankingScoreDetails",
    "showPerformanceDetails",
];

const GET_PARAMS: &[&str] = &[
    "q",
    "offset",
    "limit",
    "page",
    "hitsPerPage",
    "attributesToRetrieve",
    "attributesToCrop",
    "cropLength",
    "cropMarker",
    "attributesToHighlight",
    "highlightPreTag",
    "highlightPostTag",
    "showMatchesPosition",
    "filter",
    "sort",
    "distinct",
    "facets",
    "matchingStrategy",
    "attributesToSearchOn",
    "rankingScoreThreshold",
    "locales",
    "hybridEmbedder",
    "hybridSemanticRatio",
    "vector",
    "retrieveVectors",
    "personalizeUserContext",
    "useNetwork",
    "showRankingScore",
    "showRankingScoreDetails",
    "showPerformanceDetails",
];

#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub q: Option<String>,
    pub offset: Option<usize>,
    pub limit: Option<usize>,
    pub page: Option<usize>,
    pub hits_per_page: Option<usize>,
    pub attributes_to_retrieve: Option<Vec<String>>,
    pub filter: Option<Value>,
    pub sort: Option<Vec<String>>,
    pub facets: Option<Vec<String>>,
    pub distinct: Option<String>,
    pub matching_strategy: MatchingStrategy,
    pub attributes_to_search_on: Option<Vec<String>>,
    pub show_ranking_score: bool,
    pub show_ranking_score_details: bool,
    pub ranking_score_threshold: Option<f64>,
    pub vector: Option<Vec<f32>>,
    pub hybrid: Option<HybridQuery>,
    pub retrieve_vectors: bool,
}

fn strategy(value: &str, location: &str) -> Result<MatchingStrategy, MeiliError> {
    match value {
        "last" => Ok(MatchingStrategy::Last),
        "all" => Ok(MatchingStrategy::All),
        "frequency" => Ok(MatchingStrategy::Frequency),
        other => Err(MeiliError::invalid(
            "invalid_search_matching_strategy",
            format!("Unknown value `{other}` at `{location}`: expected one of `last`, `all`, `frequency`"),
        )),
    }
}

fn threshold_error() -> MeiliError {
    MeiliError::invalid(
        "invalid_search_ranking_score_threshold",
        "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.",
    )
}

impl SearchQuery {
    pub fn from_body(body: &Value) -> Result<Self, MeiliError> {
        let map = params::object(body, FIELDS)?;
        let mut q = SearchQuery {
            q: params::opt_string(map, "q", "invalid_search_q")?,
            offset: params::opt_usize(map, "offset", "invalid_search_offset")?,
            limit: params::opt_usize(map, "limit", "invalid_search_limit")?,
            page: params::opt_usize(map, "page", "invalid_search_page")?,
            hits_per_page: params::opt_usize(map, "hitsPerPage", "invalid_search_hits_per_page")?,
            attributes_to_retrieve: params::opt_string_list(
                map,
                "attributesToRetrieve",
                "invalid_search_attributes_to_retrieve",
            )?,
            filter: map.get("filter").filter(|v| !v.is_null()).cloned(),
            sort: params::opt_string_list(map, "sort", "invalid_search_sort")?,
            facets: params::opt_string_list(map, "facets", "invalid_search_facets")?,
            distinct: params::opt_string(map, "distinct", "invalid_search_distinct")?,
            attributes_to_search_on: params::opt_string_list(
                map,
                "attributesToSearchOn",
                "invalid_search_attributes_to_search_on",
            )?,
            show_ranking_score: params::opt_bool(
                map,
                "showRankingScore",
                "invalid_search_show_ranking_score",
            )?
            .unwrap_or(false),
            show_ranking_score_details: params::opt_bool(
                map,
                "showRankingScoreDetails",
                "invalid_search_show_ranking_score_details",
            )?
            .unwrap_or(false),
            ..Default::default()
        };
        // Accepted for compatibility; highlighting and cropping are not implemented.
        params::opt_string_list(
            map,
            "attributesToHighlight",
            "invalid_search_attributes_to_highlight",
        )?;
        params::opt_string_list(map, "attributesToCrop", "invalid_search_attributes_to_crop")?;
        params::opt_bool(
            map,
            "showMatchesPosition",
            "invalid_search_show_matches_position",
        )?;
        if let Some(s) =
            params::opt_string(map, "matchingStrategy", "invalid_search_matching_strategy")?
        {
            q.matching_strategy = strategy(&s, ".matchingStrategy")?;
        }
        match map.get("rankingScoreThreshold") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => {
                let t = n.as_f64().unwrap_or(-1.0);
                if !(0.0..=1.0).contains(&t) {
                    return Err(threshold_error());
                }
                q.ranking_score_threshold = Some(t);
            }
            Some(other) => {
                return Err(type_error(
                    "invalid_search_ranking_score_threshold",
                    ".rankingScoreThreshold",
                    "a number",
                    other,
                ))
            }
        }
        q.vector = match map.get("vector") {
            None | Some(Value::Null) => None,
            Some(v) => Some(vectors::parse_vector(
                v,
                ".vector",
                "invalid_search_vector",
            )?),
        };
        q.hybrid = match map.get("hybrid") {
            None | Some(Value::Null) => None,
            Some(h) => Some(HybridQuery::from_json(h)?),
        };
        q.retrieve_vectors =
            params::opt_bool(map, "retrieveVectors", "invalid_search_retrieve_vectors")?
                .unwrap_or(false);
        Ok(q)
    }

    /// The GET form: comma-separated lists, a string filter, everything else parsed from text.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, MeiliError> {
        let mut body = Map::new();
        let param = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let hybrid =
            HybridQuery::from_query(param("hybridEmbedder"), param("hybridSemanticRatio"))?;
        let mut vector = None;
        for (key, raw) in pairs {
            let value = match key.as_str() {
                "q" | "filter" | "distinct" | "matchingStrategy" | "cropMarker"
                | "highlightPreTag" | "highlightPostTag" => json!(raw),
                "offset" | "limit" | "page" | "hitsPerPage" | "cropLength" => {
                    let code = match key.as_str() {
                        "offset" => "invalid_search_offset",
                        "limit" => "invalid_search_limit",
                        "page" => "invalid_search_page",
                        "hitsPerPage" => "invalid_search_hits_per_page",
                        _ => "invalid_search_crop_length",
                    };
                    json!(params::query_usize(key, raw, code)?)
                }
                "retrieveVectors" => {
                    json!(params::query_bool(
                        key,
                        raw,
                        "invalid_search_retrieve_vectors"
                    )?)
                }
                "showRankingScore"
                | "showRankingScoreDetails"
                | "showMatchesPosition"
                | "showPerformanceDetails" => {
                    json!(params::query_bool(key, raw, "bad_request")?)
                }
                "vector" => {
                    let mut v = Vec::new();
                    for item in params::comma_list(raw) {
                        v.push(item.parse::<f32>().map_err(|_| {
                            MeiliError::invalid(
                                "invalid_search_vector",
                                format!("Invalid value in parameter `vector`: could not parse `{item}` as a float"),
                            )
                        })?);
                    }
                    vector = Some(v);
                    continue;
                }
                "hybridEmbedder" | "hybridSemanticRatio" => continue,
                "attributesToRetrieve"
                | "attributesToCrop"
                | "attributesToHighlight"
                | "sort"
                | "facets"
                | "attributesToSearchOn"
                | "locales" => json!(params::comma_list(raw)),
                "rankingScoreThreshold" => match raw.parse::<f64>() {
                    Ok(t) => json!(t),
                    Err(_) => return Err(threshold_error()),
                },
                "personalizeUserContext" | "useNetwork" => continue,
                other => return Err(params::unknown_parameter(other, GET_PARAMS)),
            };
            body.insert(key.clone(), value);
        }
        if vector.is_some() && hybrid.is_none() {
            return Err(MeiliError::invalid(
                "missing_search_hybrid",
                "`hybridEmbedder` is mandatory when `vector` is present",
            ));
        }
        let mut q = Self::from_body(&Value::Object(body))?;
        q.hybrid = hybrid;
        q.vector = vector;
        Ok(q)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    Number(f64),
    Text(String),
    Missing,
}

impl SortValue {
    fn of(doc: &Document, attr: &str) -> Self {
        let mut values = Vec::new();
        values_at(doc, attr, &mut values);
        match values.first() {
            Some(Value::Number(n)) => n.as_f64().map_or(SortValue::Missing, SortValue::Number),
            Some(Value::String(s)) => SortValue::Text(s.to_lowercase()),
            Some(Value::Bool(b)) => SortValue::Text(b.to_string()),
            _ => SortValue::Missing,
        }
    }

    /// Numbers before strings in both directions, documents without a value last.
    pub fn cmp(&self, other: &Self, desc: bool) -> Ordering {
        let class = |v: &SortValue| match v {
            SortValue::Number(_) => 0,
            SortValue::Text(_) => 1,
            SortValue::Missing => 2,
        };
        let by_value = match (self, other) {
            (SortValue::Number(a), SortValue::Number(b)) => {
                a.partial_cmp(b).unwrap_or(Ordering::Equal)
            }
            (SortValue::Text(a), SortValue::Text(b)) => a.cmp(b),
            _ => return class(self).cmp(&class(other)),
        };
        if desc {
            by_value.reverse()
        } else {
            by_value
        }
    }
}

/// One ranking rule's verdict on a hit, in rule order.
#[derive(Debug, Clone)]
pub enum Key {
    Rank(Rank),
    Sort(SortValue, bool),
    /// `vectorSort`: the similarity, `None` for a document without an embedding (last).
    Vector(Option<f32>),
}

/// A matching document with what ranks it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub docid: u32,
    pub doc: &'a Document,
    pub keys: Vec<Key>,
    pub details: Map<String, Value>,
    /// `_rankingScore`: the folded relevancy ranks, or the similarity of a semantic hit.
    pub score: f64,
}

fn compare(a: &Candidate, b: &Candidate) -> Ordering {
    for (x, y) in a.keys.iter().zip(&b.keys) {
        let o = match (x, y) {
            (Key::Rank(x), Key::Rank(y)) => x.cmp_desc(*y),
            (Key::Sort(x, desc), Key::Sort(y, _)) => x.cmp(y, *desc),
            (Key::Vector(x), Key::Vector(y)) => match (x, y) {
                (Some(x), Some(y)) => y.partial_cmp(x).unwrap_or(Ordering::Equal),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
            _ => Ordering::Equal,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.docid.cmp(&b.docid)
}

fn parse_sort(index: &Index, sort: &[String]) -> Result<Vec<(String, bool)>, MeiliError> {
    let mut out = Vec::new();
    for s in sort {
        let parsed = match s.rsplit_once(':') {
            Some((attr, "asc")) if !attr.is_empty() => (attr.to_string(), false),
            Some((attr, "desc")) if !attr.is_empty() => (attr.to_string(), true),
            _ => {
                return Err(MeiliError::invalid(
                    "invalid_search_sort",
                    format!("Invalid value at `.sort[{}]`: Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `{s}`.", out.len()),
                ))
            }
        };
        if parsed.0.starts_with("_geo") {
            return Err(MeiliError::invalid(
                "invalid_search_sort",
                "Geo sorting is not supported by the miroir test node.",
            ));
        }
        if !index.settings.is_sortable(&parsed.0) {
            let sortable = index.settings.sortable();
            let detail = if sortable.is_empty() {
                "This index does not have configured sortable attributes.".to_string()
            } else {
                format!(
                    "Available sortable attributes are: `{}`.",
                    sortable.join(", ")
                )
            };
            return Err(MeiliError::invalid(
                "invalid_search_sort",
                format!(
                    "Index `{}`: Attribute `{}` is not sortable. {detail}",
                    index.uid, parsed.0
                ),
            ));
        }
        out.push(parsed);
    }
    if !out.is_empty() && !index.settings.ranking_rules().iter().any(|r| r == "sort") {
        return Err(MeiliError::invalid(
            "invalid_search_sort",
            format!("Index `{}`: You must specify where `sort` is listed in the rankingRules setting to use the sort parameter at search time.", index.uid),
        ));
    }
    Ok(out)
}

pub fn parse_filter(
    index: &Index,
    value: Option<&Value>,
    code: &'static str,
) -> Result<Option<Filter>, MeiliError> {
    let Some(value) = value else { return Ok(None) };
    let parsed = filter::from_json(value).map_err(|m| MeiliError::invalid(code, m))?;
    if let Some(f) = &parsed {
        f.check_filterable(&index.uid, &index.settings)
            .map_err(|m| MeiliError::invalid(code, m))?;
    }
    Ok(parsed)
}

fn facet_names(
    index: &Index,
    facets: &[String],
    docs: &[&Document],
) -> Result<Vec<String>, MeiliError> {
    let mut names = Vec::new();
    let mut invalid = Vec::new();
    for facet in facets {
        if facet.contains('*') {
            let mut fields: Vec<String> = Vec::new();
            for doc in docs {
                for key in doc.keys() {
                    if crate::settings::pattern_covers(facet, key)
                        && index.settings.is_filterable(key)
                        && !fields.contains(key)
                    {
                        fields.push(key.clone());
                    }
                }
            }
            fields.sort();
            names.extend(fields);
        } else if index.settings.is_filterable(facet) {
            names.push(facet.clone());
        } else {
            invalid.push(facet.clone());
        }
    }
    if invalid.is_empty() {
        return Ok(names);
    }
    invalid.sort();
    let invalid: Vec<&str> = invalid.iter().map(String::as_str).collect();
    let message = not_filterable(index, &invalid, ("Attribute", "Attributes"));
    Err(MeiliError::invalid(
        "invalid_search_facets",
        format!(
            "Index `{}`: Invalid facet distribution: {message}",
            index.uid
        ),
    ))
}

/// `Attribute `x` is not filterable. Available filterable attributes patterns are: ...` (or
/// `Pattern`), as Meilisearch words a facet that no filterable pattern covers.
fn not_filterable(index: &Index, invalid: &[&str], (one_noun, many_noun): (&str, &str)) -> String {
    let mut patterns = index.settings.filterable_patterns();
    patterns.sort();
    patterns.dedup();
    let available = if patterns.is_empty() {
        "This index does not have configured filterable attributes.".to_string()
    } else {
        format!(
            "Available filterable attributes patterns are: `{}`.",
            patterns.join(", ")
        )
    };
    match invalid {
        [one] => format!("{one_noun} `{one}` is not filterable. {available}"),
        many => format!(
            "{many_noun} `{}` are not filterable. {available}",
            many.join(", ")
        ),
    }
}

/// `/search` checks each requested facet, wildcards included, as a name that a filterable
/// pattern must cover (Meilisearch 1.50: `facets: ["*"]` is refused unless `*` is filterable),
/// before expanding patterns.
fn check_facet_patterns(index: &Index, facets: &[String]) -> Result<(), MeiliError> {
    let mut invalid: Vec<&str> = facets
        .iter()
        .filter(|f| !index.settings.is_filterable(f))
        .map(String::as_str)
        .collect();
    if invalid.is_empty() {
        return Ok(());
    }
    invalid.sort();
    invalid.dedup();
    let message = not_filterable(index, &invalid, ("Pattern", "Patterns"));
    Err(MeiliError::invalid(
        "invalid_search_facets",
        format!("Invalid facet distribution: {message}"),
    ))
}

fn facet_number_text(n: f64) -> String {
    format!("{n}")
}

fn facets(
    index: &Index,
    names: &[String],
    docs: &[&Document],
) -> (Map<String, Value>, Map<String, Value>) {
    let mut distribution = Map::new();
    let mut stats = Map::new();
    let max_values = index.settings.max_values_per_facet();
    for name in names {
        let values = FacetValues::of(name, docs);
        // Numbers come before strings in either order.
        let numbers = values.numbers.len();
        let mut entries: Vec<(String, u64)> = values
            .numbers
            .into_iter()
            .map(|(k, c)| (facet_number_text(k.0), c))
            .chain(values.strings.into_values())
            .collect();
        if index.settings.facet_sorted_by_count(name) {
            sort_by_count(&mut entries[..numbers]);
            sort_by_count(&mut entries[numbers..]);
        }
        entries.truncate(max_values);
        distribution.insert(
            name.clone(),
            Value::Object(entries.into_iter().map(|(k, c)| (k, json!(c))).collect()),
        );
        if let Some((min, max)) = values.range {
            stats.insert(name.clone(), json!({"min": min, "max": max}));
        }
    }
    (distribution, stats)
}

/// Meilisearch's `count` order of values given in their alphabetical (or numeric) order: most
/// frequent first, equal counts by descending value (milli pops them from a max-heap keyed by
/// count, then value).
fn sort_by_count(entries: &mut [(String, u64)]) {
    entries.reverse();
    entries.sort_by_key(|e| std::cmp::Reverse(e.1));
}

/// The values of one facet among some documents, each counted once per document.
struct FacetValues {
    /// Numeric order.
    numbers: BTreeMap<OrderedF64, u64>,
    /// Keyed by the normalized (trimmed, lowercased) value, which is the alphabetical order of
    /// Meilisearch's facet databases; a value keeps the spelling first seen.
    strings: BTreeMap<String, (String, u64)>,
    /// Smallest and largest number.
    range: Option<(f64, f64)>,
}

impl FacetValues {
    fn of(name: &str, docs: &[&Document]) -> Self {
        let mut numbers: BTreeMap<OrderedF64, u64> = BTreeMap::new();
        let mut strings: BTreeMap<String, (String, u64)> = BTreeMap::new();
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for doc in docs {
            let mut values = Vec::new();
            values_at(doc, name, &mut values);
            let mut seen = HashSet::new();
            for v in values {
                match v {
                    Value::Number(n) => {
                        let Some(f) = n.as_f64() else { continue };
                        min = min.min(f);
                        max = max.max(f);
                        if seen.insert(format!("n{f}")) {
                            *numbers.entry(OrderedF64(f)).or_default() += 1;
                        }
                    }
                    Value::String(_) | Value::Bool(_) => {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        let key = normalize_facet(&text);
                        if seen.insert(format!("s{key}")) {
                            strings.entry(key).or_insert((text, 0)).1 += 1;
                        }
                    }
                    _ => {}
                }
            }
        }
        FacetValues {
            numbers,
            strings,
            range: min.is_finite().then_some((min, max)),
        }
    }
}

fn normalize_facet(text: &str) -> String {
    text.trim().to_lowercase()
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedF64(f64);
impl Eq for OrderedF64 {}
impl PartialOrd for OrderedF64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrderedF64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn sort_detail(doc: &Document, attr: &str, displayed: Option<&[String]>, order: usize) -> Value {
    let visible = displayed.is_none_or(|d| {
        d.iter()
            .any(|f| f == attr || attr.starts_with(&format!("{f}.")))
    });
    let value = if !visible {
        json!("<hidden>")
    } else {
        let mut values = Vec::new();
        values_at(doc, attr, &mut values);
        match values.first() {
            Some(Value::Number(n)) => json!(n.as_f64()),
            Some(v) => (*v).clone(),
            None => Value::Null,
        }
    };
    json!({"order": order, "value": value})
}

/// The documents matching a query (`q`, `filter`, matching strategy, attributes to search on and
/// ranking score threshold), in ranking order, before `distinct` and pagination. Search and facet
/// search share it.
fn ranked<'a>(index: &'a Index, query: &SearchQuery) -> Result<Vec<Candidate<'a>>, MeiliError> {
    ranked_with(index, query, Relevance::Keyword)
}

/// What orders documents before the sort rules: the query words, or the similarity to a vector
/// (Meilisearch replaces the relevancy rules with one `vectorSort` rule, at the first of them).
#[derive(Clone, Copy)]
pub enum Relevance<'v> {
    Keyword,
    Vector {
        embedder: &'v vectors::Embedder,
        target: &'v [f32],
    },
}

/// Like [`ranked`], for either kind of relevance. A vector search matches every document the
/// filter keeps; documents without an embedding come last.
pub fn ranked_with<'a>(
    index: &'a Index,
    query: &SearchQuery,
    relevance: Relevance,
) -> Result<Vec<Candidate<'a>>, MeiliError> {
    let filter = parse_filter(index, query.filter.as_ref(), "invalid_search_filter")?;
    let sort = parse_sort(index, query.sort.as_deref().unwrap_or_default())?;
    if let Some(d) = &query.distinct {
        if !index.settings.is_filterable(d) {
            return Err(MeiliError::invalid(
                "invalid_search_distinct",
                format!("Index `{}`: Attribute `{d}` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes patterns are: `{}`.", index.uid, index.settings.filterable_patterns().join(", ")),
            ));
        }
    }
    let q_text = query.q.clone().unwrap_or_default();
    let parsed = Query::parse(&q_text);
    let searchable = match (&query.attributes_to_search_on, index.settings.searchable()) {
        (Some(on), Some(all)) => Some(
            all.into_iter()
                .filter(|a| on.contains(a))
                .collect::<Vec<_>>(),
        ),
        (Some(on), None) if !on.iter().any(|a| a == "*") => Some(on.clone()),
        (_, s) => s,
    };
    let weights = searchable.as_ref().map_or(1, Vec::len);
    let displayed = index.settings.displayed();
    let rules = index.settings.ranking_rules();

    let mut candidates = Vec::new();
    for (docid, doc) in &index.docs {
        if filter.as_ref().is_some_and(|f| !f.matches(doc)) {
            continue;
        }
        let similarity = match relevance {
            Relevance::Keyword => None,
            Relevance::Vector { embedder, target } => {
                Some(vectors::best_similarity(embedder, &[target.to_vec()], doc))
            }
        };
        let matched = if parsed.is_placeholder() || similarity.is_some() {
            None
        } else {
            let attrs = ranking::searchable_text(doc, searchable.as_deref());
            match ranking::match_document(&parsed, &attrs, weights, query.matching_strategy) {
                Some(m) => Some(m),
                None => continue,
            }
        };
        let mut keys = Vec::new();
        let mut details = Map::new();
        let mut ranks = Vec::new();
        for rule in &rules {
            let order = details.len();
            if let (true, Some(sim)) = (is_relevancy_rule(rule), similarity) {
                if !details.contains_key("vectorSort") {
                    keys.push(Key::Vector(sim));
                    details.insert("vectorSort".into(), hybrid::vector_detail(order, sim));
                }
            } else if is_relevancy_rule(rule) {
                if let Some((rank, detail)) = matched.as_ref().and_then(|m| m.rule(rule, order)) {
                    keys.push(Key::Rank(rank));
                    ranks.push(rank);
                    details.insert(rule.clone(), detail);
                }
            } else if rule == "sort" {
                for (attr, desc) in &sort {
                    let order = details.len();
                    keys.push(Key::Sort(SortValue::of(doc, attr), *desc));
                    let name = format!("{attr}:{}", if *desc { "desc" } else { "asc" });
                    details.insert(name, sort_detail(doc, attr, displayed.as_deref(), order));
                }
            } else if let Some((attr, dir)) = rule.rsplit_once(':') {
                let desc = dir == "desc";
                keys.push(Key::Sort(SortValue::of(doc, attr), desc));
                details.insert(
                    rule.clone(),
                    sort_detail(doc, attr, displayed.as_deref(), order),
                );
            }
        }
        let score = match similarity {
            Some(sim) => sim.map_or(0.0, f64::from),
            None => Rank::global_score(ranks),
        };
        if query.ranking_score_threshold.is_some_and(|t| score < t) {
            continue;
        }
        candidates.push(Candidate {
            docid: *docid,
            doc,
            keys,
            details,
            score,
        });
    }
    candidates.sort_by(compare);
    Ok(candidates)
}

/// What a search found: the requested window of hits, and the matching documents behind the
/// totals and facets.
pub struct Outcome<'a> {
    pub hits: Vec<Candidate<'a>>,
    /// Every matching document (after `distinct`), by internal id.
    pub matched: BTreeMap<u32, &'a Document>,
    /// `Some` for semantic and hybrid searches.
    pub semantic_hit_count: Option<u32>,
    /// The query vector, when a semantic search used one.
    pub query_vector: Option<Vec<f32>>,
    pub kind: SearchKind,
    /// `estimatedTotalHits` when it is not `matched.len()`: with `distinct` outside exhaustive
    /// pagination (see `distinct_estimate`).
    pub estimated_total: Option<usize>,
}

/// Keeps the best-ranked document of each value of `attr`, as Meilisearch's distinct rule does
/// with facet values: a kept document excludes every document sharing any of its values (one
/// per array element), and documents without a value all stay.
fn apply_distinct(candidates: &mut Vec<Candidate>, attr: Option<&str>) {
    let Some(attr) = attr else { return };
    let mut seen = HashSet::new();
    candidates.retain(|c| {
        let values = distinct_values(c.doc, attr);
        if values.iter().any(|v| seen.contains(v)) {
            return false;
        }
        seen.extend(values);
        true
    });
}

/// Meilisearch's estimate of the matches of a `distinct` search outside exhaustive pagination:
/// the bucket sort stops once it holds `wanted` hits, and only the documents that share a value
/// with one of those hits have been excluded by then (`distinct_single_docid`), so the estimate
/// is every candidate before `distinct` minus those. `before` is the ranked list before
/// `distinct`, `kept` after.
fn distinct_estimate(before: &[Candidate], kept: &[Candidate], attr: &str, wanted: usize) -> usize {
    let first: HashSet<u32> = kept.iter().take(wanted).map(|c| c.docid).collect();
    let values: HashSet<String> = kept
        .iter()
        .take(wanted)
        .flat_map(|c| distinct_values(c.doc, attr))
        .collect();
    let excluded = before
        .iter()
        .filter(|c| !first.contains(&c.docid))
        .filter(|c| {
            distinct_values(c.doc, attr)
                .iter()
                .any(|v| values.contains(v))
        })
        .count();
    before.len() - excluded
}

/// A document's facet values of `attr` (array elements each), as the distinct rule compares
/// them: numbers as numbers, strings and booleans normalized; `null` is no value.
pub fn distinct_values(doc: &Document, attr: &str) -> Vec<String> {
    let mut leaves = Vec::new();
    values_at(doc, attr, &mut leaves);
    leaves
        .into_iter()
        .filter_map(|v| match v {
            Value::Number(n) => n.as_f64().map(|f| format!("n{f}")),
            Value::String(s) => Some(format!("s{}", normalize_facet(s))),
            Value::Bool(b) => Some(format!("s{b}")),
            _ => None,
        })
        .collect()
}

/// Runs a search and keeps the hits `from..from + count` (already limited by `maxTotalHits`).
pub fn execute<'a>(
    index: &'a Index,
    query: &SearchQuery,
    from: usize,
    count: usize,
) -> Result<Outcome<'a>, MeiliError> {
    let kind = hybrid::search_kind(
        index,
        query.q.as_deref(),
        query.hybrid.as_ref(),
        query.vector.as_deref(),
    )?;
    let distinct = query
        .distinct
        .clone()
        .or_else(|| index.settings.distinct_attribute());
    let distinct = distinct.as_deref();
    let target = || {
        query
            .vector
            .clone()
            .ok_or_else(|| hybrid::cannot_embed(query.q.as_deref().unwrap_or_default()))
    };
    let window = |list: Vec<Candidate<'a>>| -> Vec<Candidate<'a>> {
        list.into_iter().skip(from).take(count).collect()
    };
    let exhaustive = query.page.is_some() || query.hits_per_page.is_some();
    let estimate = |before: &[Candidate<'a>], kept: &[Candidate<'a>]| -> Option<usize> {
        let attr = distinct.filter(|_| !exhaustive)?;
        Some(distinct_estimate(
            before,
            kept,
            attr,
            from.saturating_add(count),
        ))
    };
    let docs = |list: &[Candidate<'a>]| -> BTreeMap<u32, &'a Document> {
        list.iter().map(|c| (c.docid, c.doc)).collect()
    };
    match &kind {
        SearchKind::KeywordOnly => {
            let before = ranked(index, query)?;
            let mut list = before.clone();
            apply_distinct(&mut list, distinct);
            let estimated_total = estimate(&before, &list);
            let matched = docs(&list);
            Ok(Outcome {
                hits: window(list),
                matched,
                semantic_hit_count: None,
                query_vector: None,
                kind,
                estimated_total,
            })
        }
        SearchKind::SemanticOnly { embedder } => {
            let target = target()?;
            let mut list = ranked_with(
                index,
                query,
                Relevance::Vector {
                    embedder,
                    target: &target,
                },
            )?;
            let before = list.clone();
            apply_distinct(&mut list, distinct);
            let estimated_total = estimate(&before, &list);
            let matched = docs(&list);
            let hits = window(list);
            Ok(Outcome {
                semantic_hit_count: Some(hits.len() as u32),
                hits,
                matched,
                query_vector: Some(target),
                kind,
                estimated_total,
            })
        }
        SearchKind::Hybrid {
            embedder,
            semantic_ratio,
        } => {
            let mut keyword = ranked(index, query)?;
            apply_distinct(&mut keyword, distinct);
            let mut matched = docs(&keyword);
            let wanted = from.saturating_add(count);
            // Without a vector the query text would be embedded; a user-provided embedder
            // cannot, and Meilisearch then answers with the keyword results.
            let target = match &query.vector {
                Some(t) if !hybrid::keyword_good_enough(&keyword, wanted, *semantic_ratio) => t,
                _ => {
                    return Ok(Outcome {
                        hits: window(keyword),
                        matched,
                        semantic_hit_count: Some(0),
                        query_vector: None,
                        kind,
                        estimated_total: None,
                    })
                }
            };
            let mut semantic = ranked_with(index, query, Relevance::Vector { embedder, target })?;
            apply_distinct(&mut semantic, distinct);
            matched.extend(docs(&semantic));
            keyword.truncate(wanted);
            semantic.truncate(wanted);
            let (hits, n) =
                hybrid::merge(semantic, keyword, *semantic_ratio, from, count, distinct);
            Ok(Outcome {
                hits,
                matched,
                semantic_hit_count: Some(n),
                query_vector: Some(target.clone()),
                kind,
                estimated_total: None,
            })
        }
    }
}

/// How a search shows one hit: the retrieved attributes, `_vectors` when asked for, and the
/// scores when asked for.
pub fn render_hit(index: &Index, query: &SearchQuery, c: &Candidate) -> Map<String, Value> {
    let displayed = index.settings.displayed();
    let mut hit = project(
        c.doc,
        query.attributes_to_retrieve.as_deref(),
        displayed.as_deref(),
    );
    vectors::attach(&mut hit, c.doc, &index.settings, query.retrieve_vectors);
    hit
}

/// Adds `_rankingScore` and `_rankingScoreDetails` as asked for.
pub fn add_scores(hit: &mut Map<String, Value>, query: &SearchQuery, c: &Candidate) {
    if query.show_ranking_score {
        hit.insert("_rankingScore".into(), json!(c.score));
    }
    if query.show_ranking_score_details {
        hit.insert(
            "_rankingScoreDetails".into(),
            Value::Object(c.details.clone()),
        );
    }
}

/// The offset and number of hits a query asks for (`page`/`hitsPerPage` or `offset`/`limit`),
/// limited so that no hit beyond `maxTotalHits` is returned.
pub fn window(index: &Index, query: &SearchQuery) -> (usize, usize) {
    let max_total_hits = index.settings.max_total_hits();
    let (from, count) = if query.page.is_some() || query.hits_per_page.is_some() {
        let page = query.page.unwrap_or(1);
        let per_page = query.hits_per_page.unwrap_or(20);
        if page == 0 {
            (0, 0)
        } else {
            ((page - 1).saturating_mul(per_page), per_page)
        }
    } else {
        (query.offset.unwrap_or(0), query.limit.unwrap_or(20))
    };
    let from = from.min(max_total_hits);
    (from, count.min(max_total_hits - from))
}

pub fn search(index: &Index, query: &SearchQuery) -> Result<Value, MeiliError> {
    let started = std::time::Instant::now();
    let (from, count) = window(index, query);
    let outcome = execute(index, query, from, count)?;
    let q_text = query.q.clone().unwrap_or_default();
    let total = outcome.matched.len();
    let exhaustive = query.page.is_some() || query.hits_per_page.is_some();

    let hits: Vec<Value> = outcome
        .hits
        .iter()
        .map(|c| {
            let mut hit = render_hit(index, query, c);
            add_scores(&mut hit, query, c);
            Value::Object(hit)
        })
        .collect();

    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    out.insert("query".into(), json!(q_text));
    if query.retrieve_vectors {
        if let Some(v) = &outcome.query_vector {
            out.insert("queryVector".into(), json!(v));
        }
    }
    out.insert(
        "processingTimeMs".into(),
        json!(started.elapsed().as_millis() as u64),
    );
    if exhaustive {
        let per_page = query.hits_per_page.unwrap_or(20);
        out.insert("hitsPerPage".into(), json!(per_page));
        out.insert("page".into(), json!(query.page.unwrap_or(1)));
        out.insert(
            "totalPages".into(),
            json!(total
                .checked_div(per_page)
                .map_or(0, |p| p + usize::from(total % per_page != 0))),
        );
        out.insert("totalHits".into(), json!(total));
    } else {
        out.insert("limit".into(), json!(query.limit.unwrap_or(20)));
        out.insert("offset".into(), json!(query.offset.unwrap_or(0)));
        out.insert(
            "estimatedTotalHits".into(),
            json!(outcome.estimated_total.unwrap_or(total)),
        );
    }
    if let Some(requested) = &query.facets {
        check_facet_patterns(index, requested)?;
        let docs: Vec<&Document> = outcome.matched.values().copied().collect();
        let (distribution, stats) = facets_of(index, requested, &docs)?;
        out.insert("facetDistribution".into(), Value::Object(distribution));
        out.insert("facetStats".into(), Value::Object(stats));
    }
    out.insert("requestUid".into(), json!(uuid_v7()));
    if let Some(n) = outcome.semantic_hit_count {
        out.insert("semanticHitCount".into(), json!(n));
    }
    Ok(Value::Object(out))
}

/// `facetDistribution` and `facetStats`.
pub type Facets = (Map<String, Value>, Map<String, Value>);

/// `facetDistribution` and `facetStats` of some documents.
pub fn facets_of(
    index: &Index,
    requested: &[String],
    docs: &[&Document],
) -> Result<Facets, MeiliError> {
    let names = facet_names(index, requested, docs)?;
    Ok(facets(index, &names, docs))
}

/// Fields `POST /indexes/{uid}/facet-search` reads. Meilisearch deliberately ignores any other
/// field, so that clients can send their search parameters along.
const FACET_SEARCH_QUERY_FIELDS: &[&str] = &[
    "q",
    "filter",
    "matchingStrategy",
    "attributesToSearchOn",
    "rankingScoreThreshold",
    "locales",
    "hybrid",
    "vector",
    "media",
];

#[derive(Debug, Clone, Default)]
pub struct FacetSearchQuery {
    pub facet_name: String,
    pub facet_query: Option<String>,
    pub search: SearchQuery,
}

impl FacetSearchQuery {
    pub fn from_body(body: &Value) -> Result<Self, MeiliError> {
        let Value::Object(map) = body else {
            return Err(MeiliError::bad_request(format!(
                "Invalid value type: expected an object, but found {}",
                params::describe(body)
            )));
        };
        let facet_query = params::opt_string(map, "facetQuery", "invalid_facet_search_query")?;
        let facet_name = match map.get("facetName") {
            None => {
                return Err(MeiliError::invalid(
                    "missing_facet_search_facet_name",
                    "Missing field `facetName`",
                ))
            }
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(type_error(
                    "invalid_facet_search_facet_name",
                    ".facetName",
                    "a string",
                    other,
                ))
            }
        };
        params::opt_bool(
            map,
            "exhaustiveFacetCount",
            "invalid_facet_search_exhaustive_facet_count",
        )?;
        params::opt_bool(map, "useNetwork", "invalid_search_use_network")?;
        let search_fields: Map<String, Value> = map
            .iter()
            .filter(|(k, _)| FACET_SEARCH_QUERY_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let search = SearchQuery::from_body(&Value::Object(search_fields))?;
        params::opt_string_list(map, "locales", "invalid_search_locales")?;
        Ok(Self {
            facet_name,
            facet_query,
            search,
        })
    }
}

/// `POST /indexes/{uid}/facet-search`: the string values of `facetName` among the documents the
/// query matches, whose normalized form starts with the normalized `facetQuery`, counted like
/// the facet distribution, ordered by the index's `sortFacetValuesBy` and cut to
/// `maxValuesPerFacet`.
pub fn facet_search(index: &Index, query: &FacetSearchQuery) -> Result<Value, MeiliError> {
    let started = std::time::Instant::now();
    parse_filter(index, query.search.filter.as_ref(), "invalid_search_filter")?;
    if !index.settings.facet_search_enabled() {
        return Err(MeiliError::invalid(
            "facet_search_disabled",
            "The facet search is disabled for this index",
        ));
    }
    let name = &query.facet_name;
    if let Err(rule) = index.settings.facet_search_rule(name) {
        let patterns = index.settings.facet_searchable_patterns();
        let (visible, hidden) = match index.settings.displayed() {
            None => (patterns, false),
            Some(displayed) => {
                let total = patterns.len();
                let visible: Vec<String> = patterns
                    .into_iter()
                    .filter(|p| displayed.iter().any(|d| d == p))
                    .collect();
                let hidden = visible.len() != total;
                (visible, hidden)
            }
        };
        let detail = match (visible.is_empty(), rule) {
            (_, Some(i)) => format!("Note: this attribute matches rule #{i} in filterableAttributes, but this rule does not enable facetSearch.\nHint: enable facetSearch in rule #{i} by adding `\"facetSearch\": true` to the rule.\nHint: prepend another rule matching {name} with facetSearch: true before rule #{i}"),
            (true, None) => "This index does not have configured facet-searchable attributes. To make it facet-searchable add it to the `filterableAttributes` index settings.".to_string(),
            (false, None) => format!(
                "Available facet-searchable attributes patterns are: `{}{}`. To make it facet-searchable add it to the `filterableAttributes` index settings.",
                visible.join(", "),
                if hidden { ", <..hidden-attributes>" } else { "" }
            ),
        };
        return Err(MeiliError::invalid(
            "invalid_facet_search_facet_name",
            format!(
                "Index `{}`: Attribute `{name}` is not facet-searchable. {detail}",
                index.uid
            ),
        ));
    }
    let candidates = ranked(index, &query.search)?;
    let docs: Vec<&Document> = candidates.iter().map(|c| c.doc).collect();
    let prefix = query
        .facet_query
        .as_deref()
        .map(normalize_facet)
        .unwrap_or_default();
    let mut hits: Vec<(String, u64)> = FacetValues::of(name, &docs)
        .strings
        .into_iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .map(|(_, v)| v)
        .collect();
    if index.settings.facet_sorted_by_count(name) {
        sort_by_count(&mut hits);
    }
    hits.truncate(index.settings.max_values_per_facet());
    Ok(json!({
        "facetHits": hits
            .into_iter()
            .map(|(value, count)| json!({"value": value, "count": count}))
            .collect::<Vec<_>>(),
        "facetQuery": query.facet_query,
        "processingTimeMs": started.elapsed().as_millis() as u64,
    }))
}

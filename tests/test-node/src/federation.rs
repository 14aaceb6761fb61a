//! Federated multi-search (`POST /multi-search` with `federation`), as Meilisearch's
//! `perform_federated_search` does it.
//!
//! - Queries are grouped by index (indexes in uid order) and each runs for `offset + limit` hits
//!   (page mode: `page × hitsPerPage`), limited by the index's `maxTotalHits`.
//! - Inside an index, the queries' lists are merged by weighted score, then the lower query
//!   position on a tie; a document reached by several queries is kept once, from the query that
//!   ranks it first. The index's total is the number of distinct documents its queries matched.
//! - Indexes are merged the same way; totals are summed; the window is cut last.
//! - Two hits compare rule group by rule group on their weighted values (relevancy groups and
//!   vector similarities as `score × weight`, equal within `f64::EPSILON`; sort values in their
//!   direction); when the groups do not line up, on `weightedRankingScore`
//!   (`_rankingScore × weight`).
//! - `semanticHitCount` is present when any query is semantic or hybrid, and counts the hits of
//!   the page that a vector ranked.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Map, Value};

use crate::error::MeiliError;
use crate::hybrid::{compare_sort, score_values, ScoreValue};
use crate::params::{self, type_error};
use crate::search::{self, Candidate, Facets, Key, SearchQuery};
use crate::state::{Document, Index, Store};
use crate::time::uuid_v7;

const FEDERATION_FIELDS: &[&str] = &[
    "limit",
    "offset",
    "page",
    "hitsPerPage",
    "facetsByIndex",
    "mergeFacets",
    "distinct",
    "showPerformanceDetails",
];

/// The `federation` object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Federation {
    pub limit: usize,
    pub offset: usize,
    pub page: Option<usize>,
    pub hits_per_page: Option<usize>,
    pub facets_by_index: BTreeMap<String, Option<Vec<String>>>,
    /// `Some(maxValuesPerFacet)` when `mergeFacets` is set.
    pub merge_facets: Option<Option<usize>>,
    pub distinct: Option<String>,
}

impl Federation {
    pub fn from_json(value: &Value) -> Result<Self, MeiliError> {
        let Value::Object(map) = value else {
            return Err(type_error("bad_request", ".federation", "an object", value));
        };
        if let Some(k) = map
            .keys()
            .find(|k| !FEDERATION_FIELDS.contains(&k.as_str()))
        {
            let e = params::unknown_field(k, FEDERATION_FIELDS);
            return Err(MeiliError::bad_request(e.message.replacen(
                &format!("Unknown field `{k}`"),
                &format!("Unknown field `{k}` inside `.federation`"),
                1,
            )));
        }
        let usize_at = |key: &str, code: &'static str| -> Result<Option<usize>, MeiliError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64().map(|v| v as usize)),
                Some(other) => Err(type_error(
                    code,
                    &format!(".federation.{key}"),
                    "a positive integer",
                    other,
                )),
            }
        };
        let mut f = Federation {
            limit: usize_at("limit", "invalid_search_limit")?.unwrap_or(20),
            offset: usize_at("offset", "invalid_search_offset")?.unwrap_or(0),
            page: usize_at("page", "invalid_search_page")?,
            hits_per_page: usize_at("hitsPerPage", "invalid_search_hits_per_page")?,
            ..Default::default()
        };
        match map.get("facetsByIndex") {
            None | Some(Value::Null) => {}
            Some(Value::Object(by)) => {
                for (uid, facets) in by {
                    crate::routes::validate_index_uid(uid).map_err(|e| {
                        MeiliError::invalid(
                            "invalid_index_uid",
                            format!(
                                "Invalid value at `.federation.facetsByIndex.{uid}`: {}",
                                e.message
                            ),
                        )
                    })?;
                    let list = match facets {
                        Value::Null => None,
                        other => Some(params::string_list(
                            other,
                            &format!(".federation.facetsByIndex.{uid}"),
                            "invalid_multi_search_facets_by_index",
                        )?),
                    };
                    f.facets_by_index.insert(uid.clone(), list);
                }
            }
            Some(other) => {
                return Err(type_error(
                    "invalid_multi_search_facets_by_index",
                    ".federation.facetsByIndex",
                    "an object",
                    other,
                ))
            }
        }
        match map.get("mergeFacets") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                if let Some(k) = m.keys().find(|k| k.as_str() != "maxValuesPerFacet") {
                    return Err(MeiliError::invalid(
                        "invalid_multi_search_merge_facets",
                        format!("Unknown field `{k}` inside `.federation.mergeFacets`: expected one of `maxValuesPerFacet`"),
                    ));
                }
                let max = match m.get("maxValuesPerFacet") {
                    None | Some(Value::Null) => None,
                    Some(Value::Number(n)) if n.is_u64() => n.as_u64().map(|v| v as usize),
                    Some(other) => {
                        return Err(type_error(
                            "invalid_multi_search_max_values_per_facet",
                            ".federation.mergeFacets.maxValuesPerFacet",
                            "a positive integer",
                            other,
                        ))
                    }
                };
                f.merge_facets = Some(max);
            }
            Some(other) => {
                return Err(type_error(
                    "invalid_multi_search_merge_facets",
                    ".federation.mergeFacets",
                    "an object",
                    other,
                ))
            }
        }
        f.distinct = match map.get("distinct") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(other) => {
                return Err(type_error(
                    "invalid_multi_search_distinct",
                    ".federation.distinct",
                    "a string",
                    other,
                ))
            }
        };
        params::opt_bool(
            map,
            "showPerformanceDetails",
            "invalid_multi_search_show_performance_details",
        )?;
        Ok(f)
    }

    fn paginated(&self) -> bool {
        self.page.is_some() || self.hits_per_page.is_some()
    }

    /// How many merged hits are needed, and the window `(skip, take)` cut from them.
    fn window(&self) -> (usize, usize, usize) {
        match (self.page, self.hits_per_page) {
            (None, None) => (self.offset + self.limit, self.offset, self.limit),
            (None, Some(h)) => (h, 0, h),
            (Some(0), _) => (0, 0, 0),
            (Some(p), None) => (20 * p, (p - 1) * 20, 20),
            (Some(p), Some(h)) => (h * p, (p - 1) * h, h),
        }
    }
}

/// `federationOptions`.
#[derive(Debug, Clone, PartialEq)]
pub struct FederationOptions {
    pub weight: f64,
    pub remote: Option<String>,
    pub query_position: Option<usize>,
}

impl FederationOptions {
    pub fn from_json(value: &Value, i: usize) -> Result<Self, MeiliError> {
        let at = format!(".queries[{i}].federationOptions");
        let Value::Object(map) = value else {
            return Err(type_error("bad_request", &at, "an object", value));
        };
        const FIELDS: &[&str] = &["weight", "remote", "queryPosition"];
        if let Some(k) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            let e = params::unknown_field(k, FIELDS);
            return Err(MeiliError::bad_request(e.message.replacen(
                &format!("Unknown field `{k}`"),
                &format!("Unknown field `{k}` inside `{at}`"),
                1,
            )));
        }
        let weight = match map.get("weight") {
            None | Some(Value::Null) => 1.0,
            Some(Value::Number(n)) => {
                let w = n.as_f64().unwrap_or(-1.0);
                if w < 0.0 {
                    return Err(MeiliError::invalid(
                        "invalid_multi_search_weight",
                        format!("Invalid value at `{at}.weight`: the value of `weight` is invalid, expected a positive float (>= 0.0)."),
                    ));
                }
                w
            }
            Some(other) => {
                return Err(type_error(
                    "invalid_multi_search_weight",
                    &format!("{at}.weight"),
                    "a number",
                    other,
                ))
            }
        };
        let remote = match map.get("remote") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(type_error(
                    "invalid_multi_search_remote",
                    &format!("{at}.remote"),
                    "a string",
                    other,
                ))
            }
        };
        let query_position = match map.get("queryPosition") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.is_u64() => n.as_u64().map(|v| v as usize),
            Some(other) => {
                return Err(type_error(
                    "invalid_multi_search_query_position",
                    &format!("{at}.queryPosition"),
                    "a positive integer",
                    other,
                ))
            }
        };
        Ok(Self {
            weight,
            remote,
            query_position,
        })
    }
}

/// One query of a federated search, parsed.
#[derive(Debug, Clone)]
pub struct FederatedQuery {
    pub index_uid: String,
    pub query: SearchQuery,
    pub options: FederationOptions,
}

fn feature_not_enabled(action: &str) -> MeiliError {
    MeiliError::invalid(
        "feature_not_enabled",
        format!("{action} requires enabling the `network` experimental feature. See https://github.com/orgs/meilisearch/discussions/805"),
    )
}

/// The checks Meilisearch makes on each query before running any (in query order).
fn check_query(
    i: usize,
    q: &FederatedQuery,
    federation: &Federation,
    network: bool,
) -> Result<(), MeiliError> {
    let pagination = [
        ("offset", q.query.offset.is_some()),
        ("limit", q.query.limit.is_some()),
        ("page", q.query.page.is_some()),
        ("hitsPerPage", q.query.hits_per_page.is_some()),
    ]
    .into_iter()
    .find(|(_, set)| *set);
    if let Some((field, _)) = pagination {
        return Err(MeiliError::invalid(
            "invalid_multi_search_query_pagination",
            format!("Inside `.queries[{i}]`: Using pagination options is not allowed in federated queries.\n - Hint: remove `{field}` from query #{i} or remove `federation` from the request\n - Hint: pass `federation.limit` and `federation.offset` for pagination in federated search"),
        ));
    }
    if let Some(facets) = q.query.facets.as_ref().filter(|f| !f.is_empty()) {
        return Err(MeiliError::invalid(
            "invalid_multi_search_query_facets",
            format!("Inside `.queries[{i}]`: Using facet options is not allowed in federated queries.\n - Hint: remove `facets` from query #{i} or remove `federation` from the request\n - Hint: pass `federation.facetsByIndex.{}: {facets:?}` for facets in federated search", q.index_uid),
        ));
    }
    if q.query.distinct.is_some() && federation.distinct.is_some() {
        return Err(MeiliError::invalid(
            "invalid_multi_search_query_distinct",
            format!("Inside `.queries[{i}]`: Using `distinct` is not allowed in federated queries when `federation.distinct` is set.\n - Hint: remove `distinct` from query #{i} or remove `distinct` from the federation"),
        ));
    }
    if q.options.remote.is_some() && !network {
        return Err(feature_not_enabled("Performing a remote federated search"));
    }
    if q.options.query_position.is_some() && !network {
        return Err(feature_not_enabled(
            "Using `federationOptions.queryPosition`",
        ));
    }
    Ok(())
}

/// One rule group's weighted value (Meilisearch's `WeightedScoreValue`).
#[derive(Debug, Clone, PartialEq)]
enum Weighted {
    Score(f64),
    Vector(f64),
    Sort(crate::search::SortValue, bool),
}

/// A hit on its way through the merges.
struct Hit {
    docid: u32,
    query_index: usize,
    values: Vec<Weighted>,
    weighted_score: f64,
    from_vector: bool,
    distinct: Vec<String>,
    rendered: Map<String, Value>,
}

fn weighted_values(c: &Candidate, weight: f64) -> Vec<Weighted> {
    let mut vector_groups = c.keys.iter().filter_map(|k| match k {
        Key::Vector(_) => Some(()),
        _ => None,
    });
    let has_vector = vector_groups.next().is_some();
    score_values(c)
        .into_iter()
        .map(|v| match v {
            ScoreValue::Score(s) if has_vector => Weighted::Vector(s * weight),
            ScoreValue::Score(s) => Weighted::Score(s * weight),
            ScoreValue::Sort { value, desc } => Weighted::Sort(value, desc),
        })
        .collect()
}

/// `Some` when both hits' rule groups line up, else `None` (compare the global scores).
fn compare_partial(left: &[Weighted], right: &[Weighted]) -> Option<Ordering> {
    let mut l = left.iter();
    let mut r = right.iter();
    loop {
        match (l.next(), r.next()) {
            (None, None) => return Some(Ordering::Equal),
            (
                Some(Weighted::Score(a) | Weighted::Vector(a)),
                Some(Weighted::Score(b) | Weighted::Vector(b)),
            ) => {
                if (a - b).abs() <= f64::EPSILON {
                    continue;
                }
                return a.partial_cmp(b);
            }
            (Some(Weighted::Sort(a, desc)), Some(Weighted::Sort(b, other_desc)))
                if desc == other_desc =>
            {
                match compare_sort(a, b, *desc) {
                    Ordering::Equal => continue,
                    o => return Some(o),
                }
            }
            _ => return None,
        }
    }
}

/// `true` when `a` goes before `b`.
fn before(a: &Hit, b: &Hit) -> bool {
    let o = compare_partial(&a.values, &b.values).unwrap_or_else(|| {
        a.weighted_score
            .partial_cmp(&b.weighted_score)
            .unwrap_or(Ordering::Equal)
    });
    match o {
        Ordering::Greater => true,
        Ordering::Equal => a.query_index < b.query_index,
        Ordering::Less => false,
    }
}

/// A k-way merge of lists each already in order.
fn kmerge(lists: Vec<Vec<Hit>>) -> Vec<Hit> {
    let mut lists: Vec<std::collections::VecDeque<Hit>> =
        lists.into_iter().map(Into::into).collect();
    let mut out = Vec::new();
    loop {
        let mut best: Option<usize> = None;
        for (i, list) in lists.iter().enumerate() {
            let Some(head) = list.front() else { continue };
            best = match best {
                Some(b) if !before(head, &lists[b][0]) => Some(b),
                _ => Some(i),
            };
        }
        let Some(b) = best else { break };
        if let Some(hit) = lists[b].pop_front() {
            out.push(hit);
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Order {
    Alpha,
    Count,
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Order::Alpha => "alphanumerically",
            Order::Count => "by count",
        })
    }
}

fn order_of(index: &Index, facet: &str) -> Order {
    if index.settings.facet_sorted_by_count(facet) {
        Order::Count
    } else {
        Order::Alpha
    }
}

/// Facets of one index, with federation's error wording.
fn index_facets(
    index: &Index,
    facets: &[String],
    docs: &[&Document],
    note: &str,
) -> Result<Facets, MeiliError> {
    search::facets_of(index, facets, docs).map_err(|e| {
        let message = e
            .message
            .strip_prefix(&format!("Index `{}`: ", index.uid))
            .unwrap_or(&e.message)
            .to_string();
        MeiliError::invalid(
            "invalid_multi_search_facets",
            format!(
                "Inside `.federation.facetsByIndex.{}`: {message}{note}",
                index.uid
            ),
        )
    })
}

fn sorted_map(m: Map<String, Value>) -> Map<String, Value> {
    let sorted: BTreeMap<String, Value> = m.into_iter().collect();
    sorted.into_iter().collect()
}

/// Runs a federated search over the node's indexes.
pub fn federated_search(
    store: &Store,
    queries: &[FederatedQuery],
    federation: &Federation,
    network: bool,
) -> Result<Value, MeiliError> {
    let started = std::time::Instant::now();
    for (i, q) in queries.iter().enumerate() {
        check_query(i, q, federation, network)?;
    }
    let (required, skip, take) = federation.window();

    let mut by_index: BTreeMap<&str, Vec<(usize, &FederatedQuery)>> = BTreeMap::new();
    for (i, q) in queries.iter().enumerate() {
        let position = q.options.query_position.unwrap_or(i);
        by_index
            .entry(&q.index_uid)
            .or_default()
            .push((position, q));
    }

    let mut facets_by_index = federation.facets_by_index.clone();
    let merge = federation.merge_facets.is_some();
    // facet -> (first index, its order), to refuse merging values ordered differently.
    let mut facet_order: BTreeMap<String, (String, Order)> = BTreeMap::new();
    let check_order = |facet_order: &mut BTreeMap<String, (String, Order)>,
                       index: &Index,
                       facets: &Option<Vec<String>>,
                       note: &str|
     -> Result<(), MeiliError> {
        if !merge {
            return Ok(());
        }
        for facet in facets.iter().flatten() {
            let order = order_of(index, facet);
            let (first, first_order) = facet_order
                .entry(facet.clone())
                .or_insert_with(|| (index.uid.clone(), order));
            if *first_order != order {
                return Err(MeiliError::invalid(
                    "invalid_multi_search_facet_order",
                    format!("Inside `.federation.facetsByIndex.{uid}`: Inconsistent order for values in facet `{facet}`: index `{first}` orders {first_order}, but index `{uid}` orders {order}.\n - Hint: Remove `federation.mergeFacets` or change `faceting.sortFacetValuesBy` to be consistent in settings.{note}", uid = index.uid),
                ));
            }
        }
        Ok(())
    };

    let mut total = 0usize;
    let mut semantic_hit_count: Option<u32> = None;
    let mut query_vectors: BTreeMap<usize, Vec<f32>> = BTreeMap::new();
    let mut per_index_hits: Vec<Vec<Hit>> = Vec::new();
    let mut computed_facets: BTreeMap<String, Facets> = BTreeMap::new();

    for (uid, list) in &by_index {
        let first = list.first().map_or(0, |(i, _)| *i);
        let index = store.indexes.get(*uid).ok_or_else(|| {
            MeiliError::invalid(
                "index_not_found",
                format!("Inside `.queries[{first}]`: Index `{uid}` not found."),
            )
        })?;
        let facets = facets_by_index.remove(*uid).flatten().map(Some);
        let note = format!("\n - Note: index `{uid}` used in `.queries[{first}]`");
        check_order(&mut facet_order, index, &facets.clone().flatten(), &note)?;
        let wanted = required.min(index.settings.max_total_hits());
        let mut lists = Vec::new();
        let mut candidates: BTreeMap<u32, &Document> = BTreeMap::new();
        for (position, q) in list {
            let mut query = q.query.clone();
            if let Some(d) = &federation.distinct {
                query.distinct = Some(d.clone());
            }
            let outcome = search::execute(index, &query, 0, wanted).map_err(|e| {
                MeiliError::new(
                    e.status,
                    e.code,
                    format!("Inside `.queries[{position}]`: {}", e.message),
                )
            })?;
            if !outcome.kind.is_keyword() {
                semantic_hit_count.get_or_insert(0);
            }
            if query.retrieve_vectors {
                if let Some(v) = outcome.query_vector.clone() {
                    query_vectors.insert(*position, v);
                }
            }
            candidates.extend(outcome.matched.iter().map(|(k, v)| (*k, *v)));
            let weight = q.options.weight;
            let hits: Vec<Hit> = outcome
                .hits
                .iter()
                .map(|c| {
                    let weighted_score = c.score * weight;
                    let mut rendered = search::render_hit(index, &query, c);
                    rendered.insert(
                        "_federation".into(),
                        json!({
                            "indexUid": uid,
                            "queriesPosition": position,
                            "weightedRankingScore": weighted_score,
                        }),
                    );
                    search::add_scores(&mut rendered, &query, c);
                    Hit {
                        docid: c.docid,
                        query_index: *position,
                        values: weighted_values(c, weight),
                        weighted_score,
                        from_vector: c.keys.iter().any(|k| matches!(k, Key::Vector(_))),
                        distinct: federation
                            .distinct
                            .as_deref()
                            .map(|d| search::distinct_values(c.doc, d))
                            .unwrap_or_default(),
                        rendered,
                    }
                })
                .collect();
            lists.push(hits);
        }
        let mut seen = HashSet::new();
        let mut seen_values: HashSet<String> = HashSet::new();
        let mut merged = Vec::new();
        for hit in kmerge(lists) {
            if !seen.insert(hit.docid) {
                continue;
            }
            if federation.distinct.is_some() {
                if hit.distinct.iter().any(|v| seen_values.contains(v)) {
                    candidates.remove(&hit.docid);
                    continue;
                }
                seen_values.extend(hit.distinct.iter().cloned());
            }
            merged.push(hit);
        }
        merged.truncate(wanted);
        total += candidates.len();
        if let Some(Some(requested)) = &facets {
            let docs: Vec<&Document> = candidates.values().copied().collect();
            computed_facets.insert(
                uid.to_string(),
                index_facets(index, requested, &docs, &note)?,
            );
        }
        per_index_hits.push(merged);
    }

    // Indexes named in `facetsByIndex` but used by no query must exist and accept the facets.
    for (uid, facets) in &facets_by_index {
        let note = format!("\n - Note: index `{uid}` is not used in queries");
        let index = store.indexes.get(uid).ok_or_else(|| {
            MeiliError::invalid(
                "index_not_found",
                format!("Inside `.federation.facetsByIndex.{uid}`: Index `{uid}` not found.{note}"),
            )
        })?;
        check_order(&mut facet_order, index, facets, &note)?;
        if let Some(requested) = facets {
            index_facets(index, requested, &[], &note)?;
        }
    }

    let mut seen_values: HashSet<String> = HashSet::new();
    let mut page = Vec::new();
    let mut position = 0usize;
    for hit in kmerge(per_index_hits) {
        if federation.distinct.is_some() {
            if hit.distinct.iter().any(|v| seen_values.contains(v)) {
                total = total.saturating_sub(1);
                continue;
            }
            seen_values.extend(hit.distinct.iter().cloned());
        }
        if position >= skip && page.len() < take {
            page.push(hit);
        }
        position += 1;
    }
    if let Some(n) = semantic_hit_count.as_mut() {
        *n = page.iter().filter(|h| h.from_vector).count() as u32;
    }

    let mut out = Map::new();
    out.insert(
        "hits".into(),
        Value::Array(
            page.into_iter()
                .map(|h| Value::Object(h.rendered))
                .collect(),
        ),
    );
    out.insert(
        "processingTimeMs".into(),
        json!(started.elapsed().as_millis() as u64),
    );
    if federation.paginated() {
        let per_page = federation.hits_per_page.unwrap_or(20);
        out.insert("hitsPerPage".into(), json!(per_page));
        out.insert("page".into(), json!(federation.page.unwrap_or(1)));
        out.insert(
            "totalPages".into(),
            json!((total + per_page.saturating_sub(1))
                .checked_div(per_page)
                .unwrap_or(0)),
        );
        out.insert("totalHits".into(), json!(total));
    } else {
        out.insert("limit".into(), json!(federation.limit));
        out.insert("offset".into(), json!(federation.offset));
        out.insert("estimatedTotalHits".into(), json!(total));
    }
    if queries.iter().any(|q| q.query.retrieve_vectors) {
        let vectors: Map<String, Value> = query_vectors
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        out.insert("queryVectors".into(), Value::Object(vectors));
    }
    if let Some(n) = semantic_hit_count {
        out.insert("semanticHitCount".into(), json!(n));
    }
    match federation.merge_facets {
        Some(max_values) if !computed_facets.is_empty() => {
            let (distribution, stats) = merge_facets(computed_facets, &facet_order, max_values);
            out.insert("facetDistribution".into(), Value::Object(distribution));
            out.insert("facetStats".into(), Value::Object(stats));
        }
        Some(_) => {}
        None if !computed_facets.is_empty() => {
            let by_index: Map<String, Value> = computed_facets
                .into_iter()
                .map(|(uid, (distribution, stats))| {
                    (
                        uid,
                        json!({
                            "distribution": Value::Object(sorted_map(distribution)),
                            "stats": Value::Object(sorted_map(stats)),
                        }),
                    )
                })
                .collect();
            out.insert("facetsByIndex".into(), Value::Object(by_index));
        }
        None => {}
    }
    out.insert("requestUid".into(), json!(uuid_v7()));
    Ok(Value::Object(out))
}

/// `mergeFacets`: counts summed per value over the indexes, stats widened, then each facet's
/// values ordered (`alpha`: by value text, bytewise; `count`: most frequent first) and cut to
/// `maxValuesPerFacet` when given.
fn merge_facets(
    by_index: BTreeMap<String, Facets>,
    order: &BTreeMap<String, (String, Order)>,
    max_values: Option<usize>,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut distribution: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    let mut stats: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (dist, st) in by_index.into_values() {
        for (facet, values) in dist {
            let entry = distribution.entry(facet).or_default();
            for (value, count) in values.as_object().into_iter().flatten() {
                let count = count.as_u64().unwrap_or(0);
                match entry.iter_mut().find(|(v, _)| v == value) {
                    Some((_, c)) => *c += count,
                    None => entry.push((value.clone(), count)),
                }
            }
        }
        for (facet, s) in st {
            let (min, max) = (
                s["min"].as_f64().unwrap_or(f64::INFINITY),
                s["max"].as_f64().unwrap_or(f64::NEG_INFINITY),
            );
            let e = stats.entry(facet).or_insert((min, max));
            e.0 = e.0.min(min);
            e.1 = e.1.max(max);
        }
    }
    let mut out = Map::new();
    for (facet, mut values) in distribution {
        match order.get(&facet).map_or(Order::Alpha, |(_, o)| *o) {
            Order::Alpha => values.sort_by(|a, b| a.0.cmp(&b.0)),
            Order::Count => values.sort_by_key(|v| std::cmp::Reverse(v.1)),
        }
        if let Some(max) = max_values {
            values.truncate(max);
        }
        out.insert(
            facet,
            Value::Object(values.into_iter().map(|(v, c)| (v, json!(c))).collect()),
        );
    }
    let stats = stats
        .into_iter()
        .map(|(f, (min, max))| (f, json!({"min": min, "max": max})))
        .collect();
    (out, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn federation_object() {
        let f = Federation::from_json(&json!({"limit": 4, "mergeFacets": {}})).unwrap();
        assert_eq!((f.limit, f.offset, f.merge_facets), (4, 0, Some(None)));
        assert_eq!(f.window(), (4, 0, 4));
        let f = Federation::from_json(&json!({"page": 2, "hitsPerPage": 3})).unwrap();
        assert_eq!(f.window(), (6, 3, 3));
        let e = Federation::from_json(&json!({"bogus": 1})).unwrap_err();
        assert!(e
            .message
            .starts_with("Unknown field `bogus` inside `.federation`: expected one of `limit`"));
        let e = FederationOptions::from_json(&json!({"weight": -1}), 2).unwrap_err();
        assert_eq!(e.code, "invalid_multi_search_weight");
    }

    #[test]
    fn partial_comparison() {
        use Weighted::*;
        assert_eq!(
            compare_partial(&[Score(0.5)], &[Vector(0.4)]),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare_partial(&[Score(0.5)], &[Score(0.5)]),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare_partial(
                &[Sort(crate::search::SortValue::Number(1.0), false)],
                &[Score(0.5)]
            ),
            None
        );
    }
}

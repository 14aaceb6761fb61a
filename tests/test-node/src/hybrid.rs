//! Semantic and hybrid search: which kind of search a query is (Meilisearch's `search_kind`),
//! the `hybrid` parameter, and the merge of keyword and semantic results.
//!
//! A hybrid search runs the keyword search for `offset + limit` hits. When it found that many
//! and every one scores at least `0.45 / (1 - semanticRatio)`, it is "good enough" and answered
//! alone (`semanticHitCount: 0`). Otherwise the semantic search runs for `offset + limit` hits
//! too, and both lists are merged: each hit's score values are weighted (keyword by
//! `1 - semanticRatio`, semantic by `semanticRatio`) and compared rule group by rule group; on a
//! tie the semantic hit goes first; a document already taken is skipped. The page is cut after
//! that, and `semanticHitCount` counts the page's hits that came from the semantic list. Hits
//! keep their own, unweighted `_rankingScore`.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::error::MeiliError;
use crate::params::{describe, type_error, unknown_field};
use crate::search::{Candidate, Key, SortValue};
use crate::state::Index;
use crate::vectors::{self, Embedder};

/// `hybrid: {embedder, semanticRatio}`.
#[derive(Debug, Clone, PartialEq)]
pub struct HybridQuery {
    pub embedder: String,
    pub semantic_ratio: f32,
}

pub const DEFAULT_SEMANTIC_RATIO: f32 = 0.5;

fn semantic_ratio_error(location: &str) -> MeiliError {
    MeiliError::invalid(
        "invalid_search_semantic_ratio",
        format!("Invalid value at `{location}`: the value of `semanticRatio` is invalid, expected a float between `0.0` and `1.0`."),
    )
}

impl HybridQuery {
    /// Parses the POST form, with deserr's messages.
    pub fn from_json(value: &Value) -> Result<Self, MeiliError> {
        const CODE: &str = "invalid_search_hybrid_query";
        let Value::Object(map) = value else {
            return Err(type_error(CODE, ".hybrid", "an object", value));
        };
        if let Some(k) = map
            .keys()
            .find(|k| !["semanticRatio", "embedder"].contains(&k.as_str()))
        {
            let e = unknown_field(k, &["semanticRatio", "embedder"]);
            return Err(MeiliError::invalid(
                CODE,
                e.message.replacen(
                    &format!("Unknown field `{k}`"),
                    &format!("Unknown field `{k}` inside `.hybrid`"),
                    1,
                ),
            ));
        }
        let semantic_ratio = match map.get("semanticRatio") {
            None => DEFAULT_SEMANTIC_RATIO,
            Some(Value::Number(n)) => {
                let r = n.as_f64().unwrap_or(-1.0) as f32;
                if !(0.0..=1.0).contains(&r) {
                    return Err(semantic_ratio_error(".hybrid.semanticRatio"));
                }
                r
            }
            Some(other) => {
                return Err(type_error(
                    "invalid_search_semantic_ratio",
                    ".hybrid.semanticRatio",
                    "a number",
                    other,
                ))
            }
        };
        let embedder = match map.get("embedder") {
            Some(Value::String(s)) => s.clone(),
            None => {
                return Err(MeiliError::invalid(
                    CODE,
                    "Missing field `embedder` inside `.hybrid`",
                ))
            }
            Some(other) => {
                return Err(MeiliError::invalid(
                    "invalid_search_embedder",
                    format!(
                        "Invalid value type at `.hybrid.embedder`: expected a string, but found {}",
                        describe(other)
                    ),
                ))
            }
        };
        Ok(Self {
            embedder,
            semantic_ratio,
        })
    }

    /// The GET form: `hybridEmbedder` and `hybridSemanticRatio`.
    pub fn from_query(
        embedder: Option<&str>,
        ratio: Option<&str>,
    ) -> Result<Option<Self>, MeiliError> {
        let semantic_ratio = match ratio {
            None => None,
            Some(raw) => match raw.parse::<f32>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Some(r),
                _ => return Err(semantic_ratio_error("hybridSemanticRatio")),
            },
        };
        match (embedder, semantic_ratio) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(MeiliError::invalid(
                "invalid_search_hybrid_query",
                "`hybridEmbedder` is mandatory when `hybridSemanticRatio` is present",
            )),
            (Some(e), r) => Ok(Some(Self {
                embedder: e.to_string(),
                semantic_ratio: r.unwrap_or(DEFAULT_SEMANTIC_RATIO),
            })),
        }
    }
}

/// What a search runs, as Meilisearch's `search_kind` decides it.
#[derive(Debug, Clone)]
pub enum SearchKind {
    KeywordOnly,
    SemanticOnly {
        embedder: Embedder,
    },
    Hybrid {
        embedder: Embedder,
        semantic_ratio: f32,
    },
}

impl SearchKind {
    pub fn is_keyword(&self) -> bool {
        matches!(self, SearchKind::KeywordOnly)
    }
}

fn resolve_embedder(
    index: &Index,
    name: &str,
    vector: Option<&[f32]>,
) -> Result<Embedder, MeiliError> {
    let all = vectors::embedders(&index.settings);
    let embedder = vectors::embedder(&all, name)
        .cloned()
        .ok_or_else(|| vectors::embedder_not_found("invalid_search_embedder", name))?;
    if let Some(v) = vector {
        vectors::check_dimensions(&embedder, v)?;
    }
    Ok(embedder)
}

/// Meilisearch's case analysis, in its order: `vector` needs `hybrid`; `semanticRatio: 0` is a
/// keyword search; no query text and no vector is a placeholder (keyword) search;
/// `semanticRatio: 1` or no query text is semantic; otherwise hybrid.
pub fn search_kind(
    index: &Index,
    q: Option<&str>,
    hybrid: Option<&HybridQuery>,
    vector: Option<&[f32]>,
) -> Result<SearchKind, MeiliError> {
    let has_text = q.is_some_and(|q| !q.trim().is_empty());
    match (hybrid, vector) {
        (None, Some(_)) => Err(MeiliError::invalid(
            "missing_search_hybrid",
            "Invalid request: missing `hybrid` parameter when `vector` or `media` are present.",
        )),
        (Some(h), _) if h.semantic_ratio == 0.0 => Ok(SearchKind::KeywordOnly),
        (_, None) if !has_text => Ok(SearchKind::KeywordOnly),
        (None, None) => Ok(SearchKind::KeywordOnly),
        (Some(h), v) if h.semantic_ratio == 1.0 || !has_text => Ok(SearchKind::SemanticOnly {
            embedder: resolve_embedder(index, &h.embedder, v)?,
        }),
        (Some(h), v) => Ok(SearchKind::Hybrid {
            embedder: resolve_embedder(index, &h.embedder, v)?,
            semantic_ratio: h.semantic_ratio,
        }),
    }
}

/// A `userProvided` embedder cannot embed query text: the semantic part of a search without
/// `vector` fails like this on Meilisearch.
pub fn cannot_embed(q: &str) -> MeiliError {
    MeiliError::invalid(
        "vector_embedding_error",
        format!("Error while generating embeddings: user error: attempt to embed the following text in a configuration where embeddings must be user provided: {q:?}"),
    )
}

/// One rule group's contribution to the order of a hit, as Meilisearch's `score_values`:
/// consecutive relevancy ranks merged into one score, a vector similarity as a score, and sort
/// values.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreValue {
    Score(f64),
    Sort { value: SortValue, desc: bool },
}

pub fn score_values(c: &Candidate) -> Vec<ScoreValue> {
    let mut out = Vec::new();
    let mut pending: Vec<crate::ranking::Rank> = Vec::new();
    let flush = |pending: &mut Vec<crate::ranking::Rank>, out: &mut Vec<ScoreValue>| {
        if !pending.is_empty() {
            out.push(ScoreValue::Score(crate::ranking::Rank::global_score(
                pending.drain(..),
            )));
        }
    };
    for key in &c.keys {
        match key {
            Key::Rank(r) => pending.push(*r),
            Key::Vector(s) => {
                flush(&mut pending, &mut out);
                out.push(ScoreValue::Score(s.map_or(0.0, f64::from)));
            }
            Key::Sort(v, desc) => {
                flush(&mut pending, &mut out);
                out.push(ScoreValue::Sort {
                    value: v.clone(),
                    desc: *desc,
                });
            }
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// `Greater` when `left` ranks before `right`: sort values in their direction (numbers before
/// strings, missing last).
pub fn compare_sort(left: &SortValue, right: &SortValue, desc: bool) -> Ordering {
    left.cmp(right, desc).reverse()
}

/// Meilisearch's `compare_scores` for hybrid merging: `Greater` when `left` ranks first.
pub fn compare_weighted(
    left: &[ScoreValue],
    left_ratio: f32,
    right: &[ScoreValue],
    right_ratio: f32,
) -> Ordering {
    let mut l = left.iter();
    let mut r = right.iter();
    loop {
        match (l.next(), r.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(ScoreValue::Score(a)), Some(ScoreValue::Score(b))) => {
                let a = a * f64::from(left_ratio);
                let b = b * f64::from(right_ratio);
                if (a - b).abs() <= f64::EPSILON {
                    continue;
                }
                return a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            }
            (
                Some(ScoreValue::Sort { value: a, desc }),
                Some(ScoreValue::Sort { value: b, .. }),
            ) => match compare_sort(a, b, *desc) {
                Ordering::Equal => continue,
                o => return o,
            },
            (Some(ScoreValue::Score(x)), Some(_)) => {
                return if *x == 0.0 {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (Some(_), Some(ScoreValue::Score(x))) => {
                return if *x == 0.0 {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
        }
    }
}

/// Whether the keyword results make the semantic search unnecessary (Meilisearch's
/// `results_good_enough`): at least `wanted` hits, each scoring `score * (1 - ratio) >= 0.45`.
pub fn keyword_good_enough(keyword: &[Candidate], wanted: usize, semantic_ratio: f32) -> bool {
    const GOOD_ENOUGH_SCORE: f64 = 0.45;
    keyword.len() >= wanted
        && keyword
            .iter()
            .take(wanted)
            .all(|c| c.score * f64::from(1.0 - semantic_ratio) >= GOOD_ENOUGH_SCORE)
}

/// Merges the semantic and keyword lists (each already cut to `from + count`), skipping a
/// document seen before (and, with `distinct`, a document whose value was seen), then keeps the
/// window. Returns the window and how many of its hits came from the semantic list.
pub fn merge<'a>(
    semantic: Vec<Candidate<'a>>,
    keyword: Vec<Candidate<'a>>,
    semantic_ratio: f32,
    from: usize,
    count: usize,
    distinct: Option<&str>,
) -> (Vec<Candidate<'a>>, u32) {
    let sem: Vec<(Vec<ScoreValue>, Candidate)> = semantic
        .into_iter()
        .map(|c| (score_values(&c), c))
        .collect();
    let key: Vec<(Vec<ScoreValue>, Candidate)> =
        keyword.into_iter().map(|c| (score_values(&c), c)).collect();
    let mut sem = sem.into_iter().peekable();
    let mut key = key.into_iter().peekable();
    let mut seen = std::collections::HashSet::new();
    let mut seen_values = std::collections::HashSet::new();
    let mut kept = Vec::new();
    loop {
        let take_semantic = match (sem.peek(), key.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((a, _)), Some((b, _))) => {
                compare_weighted(a, semantic_ratio, b, 1.0 - semantic_ratio).is_ge()
            }
        };
        let next = if take_semantic {
            sem.next()
        } else {
            key.next()
        };
        let Some((_, c)) = next else { break };
        if !seen.insert(c.docid) {
            continue;
        }
        if let Some(attr) = distinct {
            let values = crate::search::distinct_values(c.doc, attr);
            if values.iter().any(|v| seen_values.contains(v)) {
                continue;
            }
            seen_values.extend(values);
        }
        kept.push((take_semantic, c));
    }
    let window: Vec<(bool, Candidate)> = kept.into_iter().skip(from).take(count).collect();
    let semantic_hits = window.iter().filter(|(s, _)| *s).count() as u32;
    (window.into_iter().map(|(_, c)| c).collect(), semantic_hits)
}

/// The `vectorSort` entry of `_rankingScoreDetails`.
pub fn vector_detail(order: usize, similarity: Option<f32>) -> Value {
    let mut m = Map::new();
    m.insert("order".into(), order.into());
    m.insert("similarity".into(), serde_json::json!(similarity));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hybrid_parameter_errors_follow_meilisearch() {
        let e = HybridQuery::from_json(&json!({"semanticRatio": 0.3})).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                "invalid_search_hybrid_query",
                "Missing field `embedder` inside `.hybrid`"
            )
        );
        let e = HybridQuery::from_json(&json!({"embedder": "e", "semanticRatio": 2})).unwrap_err();
        assert_eq!(e.code, "invalid_search_semantic_ratio");
        let h = HybridQuery::from_json(&json!({"embedder": "e"})).unwrap();
        assert_eq!(h.semantic_ratio, 0.5);
        let e = HybridQuery::from_query(None, Some("0.2")).unwrap_err();
        assert_eq!(e.code, "invalid_search_hybrid_query");
    }

    #[test]
    fn weighted_comparison() {
        let a = [ScoreValue::Score(0.99)];
        let b = [ScoreValue::Score(0.98)];
        assert_eq!(compare_weighted(&a, 0.5, &b, 0.5), Ordering::Greater);
        assert_eq!(compare_weighted(&a, 0.2, &b, 0.8), Ordering::Less);
        assert_eq!(compare_weighted(&a, 0.5, &a, 0.5), Ordering::Equal);
    }
}

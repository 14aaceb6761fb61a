//! `POST|GET /indexes/{uid}/similar`: the documents whose embeddings are closest to those of a
//! given document, as Meilisearch's `Similar` search finds them.
//!
//! The universe is every document the filter keeps, minus the target. Only documents with an
//! embedding for the embedder are hits, by similarity, ties by internal id. Meilisearch keeps a
//! document's n-th embedding in the embedder's n-th vector store and looks for the target's n-th
//! embedding's neighbours in that store only, so a document is as similar as its best embedding
//! compared with the target's embedding of the same rank. `rankingScoreThreshold` stops at the
//! first hit below it, and then the total counts only the documents seen so far.
//! `estimatedTotalHits` is the universe (capped at `maxTotalHits`, as Meilisearch does for this
//! route), including documents without embeddings.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::documents::{normalize_id, project};
use crate::error::MeiliError;
use crate::params::{self, type_error};
use crate::search::parse_filter;
use crate::state::{Document, Index};
use crate::vectors;

const FIELDS: &[&str] = &[
    "id",
    "offset",
    "limit",
    "filter",
    "embedder",
    "attributesToRetrieve",
    "retrieveVectors",
    "showRankingScore",
    "showRankingScoreDetails",
    "showPerformanceDetails",
    "rankingScoreThreshold",
];

#[derive(Debug, Clone, PartialEq)]
pub struct SimilarQuery {
    pub id: String,
    pub offset: usize,
    pub limit: usize,
    pub filter: Option<Value>,
    pub embedder: String,
    pub attributes_to_retrieve: Option<Vec<String>>,
    pub retrieve_vectors: bool,
    pub show_ranking_score: bool,
    pub show_ranking_score_details: bool,
    pub ranking_score_threshold: Option<f64>,
}

fn invalid_id() -> MeiliError {
    MeiliError::invalid(
        "invalid_similar_id",
        "Invalid value at `.id`: the value of `id` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes.",
    )
}

fn threshold_error() -> MeiliError {
    MeiliError::invalid(
        "invalid_similar_ranking_score_threshold",
        "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.",
    )
}

impl SimilarQuery {
    pub fn from_body(body: &Value) -> Result<Self, MeiliError> {
        let map = params::object(body, FIELDS)?;
        let id = match map.get("id") {
            None => return Err(MeiliError::bad_request("Missing field `id`")),
            Some(v) => normalize_id(v).ok_or_else(invalid_id)?,
        };
        let offset = params::opt_usize(map, "offset", "invalid_similar_offset")?.unwrap_or(0);
        let limit = params::opt_usize(map, "limit", "invalid_similar_limit")?.unwrap_or(20);
        let filter = map.get("filter").filter(|f| !f.is_null()).cloned();
        let embedder = match map.get("embedder") {
            None => return Err(MeiliError::bad_request("Missing field `embedder`")),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(type_error(
                    "invalid_similar_embedder",
                    ".embedder",
                    "a string",
                    other,
                ))
            }
        };
        let attributes_to_retrieve = params::opt_string_list(
            map,
            "attributesToRetrieve",
            "invalid_similar_attributes_to_retrieve",
        )?;
        let flag = |key: &str, code: &'static str| {
            params::opt_bool(map, key, code).map(Option::unwrap_or_default)
        };
        let retrieve_vectors = flag("retrieveVectors", "invalid_similar_retrieve_vectors")?;
        let show_ranking_score = flag("showRankingScore", "invalid_similar_show_ranking_score")?;
        let show_ranking_score_details = flag(
            "showRankingScoreDetails",
            "invalid_similar_show_ranking_score_details",
        )?;
        flag(
            "showPerformanceDetails",
            "invalid_similar_show_performance_details",
        )?;
        let ranking_score_threshold = match map.get("rankingScoreThreshold") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => {
                let t = n.as_f64().unwrap_or(-1.0);
                if !(0.0..=1.0).contains(&t) {
                    return Err(threshold_error());
                }
                Some(t)
            }
            Some(other) => {
                return Err(type_error(
                    "invalid_similar_ranking_score_threshold",
                    ".rankingScoreThreshold",
                    "a number",
                    other,
                ))
            }
        };
        Ok(Self {
            id,
            offset,
            limit,
            filter,
            embedder,
            attributes_to_retrieve,
            retrieve_vectors,
            show_ranking_score,
            show_ranking_score_details,
            ranking_score_threshold,
        })
    }

    /// The GET form: text parameters, comma lists, a string filter.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, MeiliError> {
        let mut body = Map::new();
        for (key, raw) in pairs {
            let value = match key.as_str() {
                "id" | "embedder" => json!(raw),
                // Meilisearch reads a filter that parses as JSON (an array) as JSON.
                "filter" => serde_json::from_str(raw).unwrap_or_else(|_| json!(raw)),
                "offset" | "limit" => {
                    let code = if key == "offset" {
                        "invalid_similar_offset"
                    } else {
                        "invalid_similar_limit"
                    };
                    json!(params::query_usize(key, raw, code)?)
                }
                "attributesToRetrieve" => json!(params::comma_list(raw)),
                "retrieveVectors" => json!(params::query_bool(
                    key,
                    raw,
                    "invalid_similar_retrieve_vectors"
                )?),
                "showRankingScore" => json!(params::query_bool(
                    key,
                    raw,
                    "invalid_similar_show_ranking_score"
                )?),
                "showRankingScoreDetails" => json!(params::query_bool(
                    key,
                    raw,
                    "invalid_similar_show_ranking_score_details"
                )?),
                "showPerformanceDetails" => json!(params::query_bool(
                    key,
                    raw,
                    "invalid_similar_show_performance_details"
                )?),
                "rankingScoreThreshold" => match raw.parse::<f64>() {
                    Ok(t) if (0.0..=1.0).contains(&t) => json!(t),
                    _ => return Err(threshold_error()),
                },
                other => return Err(params::unknown_parameter(other, FIELDS)),
            };
            body.insert(key.clone(), value);
        }
        for required in ["id", "embedder"] {
            if !body.contains_key(required) {
                return Err(MeiliError::bad_request(format!(
                    "Missing parameter `{required}`"
                )));
            }
        }
        Self::from_body(&Value::Object(body))
    }
}

pub fn similar(index: &Index, query: &SimilarQuery) -> Result<Value, MeiliError> {
    let started = std::time::Instant::now();
    let all = vectors::embedders(&index.settings);
    let embedder = vectors::embedder(&all, &query.embedder)
        .ok_or_else(|| vectors::embedder_not_found("invalid_similar_embedder", &query.embedder))?;
    let target_doc = index.get(&query.id).ok_or_else(|| {
        MeiliError::invalid(
            "not_found_similar_id",
            format!("Document `{}` not found.", query.id),
        )
    })?;
    let filter = parse_filter(index, query.filter.as_ref(), "invalid_similar_filter")?;
    let target_id = index.external_ids.get(&query.id).copied();
    let targets = vectors::embeddings(target_doc, &embedder.name);

    let mut candidates: BTreeSet<u32> = BTreeSet::new();
    let mut ranked: Vec<(u32, &Document, f32)> = Vec::new();
    for (docid, doc) in &index.docs {
        if Some(*docid) == target_id || filter.as_ref().is_some_and(|f| !f.matches(doc)) {
            continue;
        }
        candidates.insert(*docid);
        if let Some(s) = paired_similarity(embedder, &targets, doc) {
            ranked.push((*docid, doc, s));
        }
    }
    ranked.sort_by(|a, b| {
        b.2.partial_cmp(&a.2)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.0.cmp(&b.0))
    });

    let displayed = index.settings.displayed();
    let mut seen: BTreeSet<u32> = BTreeSet::new();
    let mut hits = Vec::new();
    for (docid, doc, sim) in ranked {
        seen.insert(docid);
        if seen.len() <= query.offset {
            continue;
        }
        if hits.len() >= query.limit {
            break;
        }
        let score = f64::from(sim);
        if query.ranking_score_threshold.is_some_and(|t| score < t) {
            candidates.remove(&docid);
            candidates.retain(|d| seen.contains(d));
            break;
        }
        let mut hit = project(
            doc,
            query.attributes_to_retrieve.as_deref(),
            displayed.as_deref(),
        );
        vectors::attach(&mut hit, doc, &index.settings, query.retrieve_vectors);
        if query.show_ranking_score {
            hit.insert("_rankingScore".into(), json!(score));
        }
        if query.show_ranking_score_details {
            let mut details = Map::new();
            details.insert(
                "vectorSort".into(),
                crate::hybrid::vector_detail(0, Some(sim)),
            );
            hit.insert("_rankingScoreDetails".into(), Value::Object(details));
        }
        hits.push(Value::Object(hit));
    }
    let total = candidates.len().min(index.settings.max_total_hits());
    Ok(json!({
        "hits": hits,
        "id": query.id,
        "processingTimeMs": started.elapsed().as_millis() as u64,
        "limit": query.limit,
        "offset": query.offset,
        "estimatedTotalHits": total,
    }))
}

/// The best similarity between the target's n-th embedding and the document's n-th, shifted by
/// the embedder's distribution; `None` when no rank has both.
fn paired_similarity(
    embedder: &vectors::Embedder,
    targets: &[Vec<f32>],
    doc: &Document,
) -> Option<f32> {
    targets
        .iter()
        .zip(vectors::embeddings(doc, &embedder.name))
        .filter(|(t, v)| t.len() == v.len())
        .map(|(t, v)| vectors::similarity(t, &v))
        .reduce(f32::max)
        .map(|s| embedder.shift(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_follow_meilisearch() {
        let e = SimilarQuery::from_body(&json!({"id": 1})).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("bad_request", "Missing field `embedder`")
        );
        let e = SimilarQuery::from_body(&json!({"id": ["x"], "embedder": "e"})).unwrap_err();
        assert_eq!(e.code, "invalid_similar_id");
        let e = SimilarQuery::from_body(&json!({"id": 1, "embedder": null})).unwrap_err();
        assert_eq!(
            e.message,
            "Invalid value type at `.embedder`: expected a string, but found null"
        );
        let e = SimilarQuery::from_query(&[("id".into(), "1".into())]).unwrap_err();
        assert_eq!(e.message, "Missing parameter `embedder`");
        let e = SimilarQuery::from_query(&[
            ("id".into(), "1".into()),
            ("embedder".into(), "e".into()),
            ("offset".into(), "doggo".into()),
        ])
        .unwrap_err();
        assert_eq!(e.code, "invalid_similar_offset");
        let q = SimilarQuery::from_body(&json!({"id": 7, "embedder": "e"})).unwrap();
        assert_eq!((q.id.as_str(), q.limit, q.offset), ("7", 20, 0));
        let pairs = |filter: &str| {
            vec![
                ("id".to_string(), "1".to_string()),
                ("embedder".to_string(), "e".to_string()),
                ("filter".to_string(), filter.to_string()),
            ]
        };
        let q = SimilarQuery::from_query(&pairs(r#"["a = 1", "b = 2"]"#)).unwrap();
        assert_eq!(q.filter, Some(json!(["a = 1", "b = 2"])), "JSON is JSON");
        let q = SimilarQuery::from_query(&pairs("a = 1")).unwrap();
        assert_eq!(q.filter, Some(json!("a = 1")));
    }

    #[test]
    fn embeddings_are_compared_rank_by_rank() {
        let mut index = Index::new("i", Some("id".into()), std::time::SystemTime::UNIX_EPOCH);
        let embedders = json!({"embedders": {"e": {"source": "userProvided", "dimensions": 2}}});
        index.settings.apply(embedders.as_object().unwrap());
        let docs = [
            json!({"id": 0, "_vectors": {"e": [[1.0, 0.0], [0.0, 1.0]]}}),
            // Its only embedding equals the target's second: Meilisearch never compares them.
            json!({"id": 1, "_vectors": {"e": [[0.0, 1.0]]}}),
            json!({"id": 2, "_vectors": {"e": [[1.0, 1.0]]}}),
            json!({"id": 3, "_vectors": {"e": [[-1.0, 0.0], [0.0, 1.0]]}}),
        ];
        for doc in docs {
            let id = doc["id"].to_string();
            index.put(id, doc.as_object().unwrap().clone());
        }
        let query =
            SimilarQuery::from_body(&json!({"id": 0, "embedder": "e", "showRankingScore": true}))
                .unwrap();
        let answer = similar(&index, &query).unwrap();
        let ranked: Vec<(u64, f64)> = answer["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["id"].as_u64().unwrap(),
                    h["_rankingScore"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(ranked[0], (3, 1.0), "second embeddings equal");
        assert_eq!(ranked[1].0, 2);
        assert_eq!(ranked[2], (1, 0.5), "first embeddings orthogonal");
    }
}

//! `/indexes/{uid}/similar` over shards.
//!
//! One node ranks every document that has an embedding by its similarity to the target
//! document's embedding (Meilisearch's `Similar`), leaving the target out. Only the target's
//! shard holds the target, so that shard is asked with `/similar` itself, restricted to the
//! shard: it leaves the target out and counts its documents exactly as one node does. Every
//! other shard is searched with the target's embedding as `vector` (a semantic-only search),
//! which scores each document with the same similarity. The lists are merged by similarity,
//! then by insertion order (one node's tie-break); `rankingScoreThreshold` and the total are
//! applied to the merged list, as one node applies them to its own.

use miroir_topology::reserved;
use miroir_topology::{canonical_key, Topology, SEQ_FIELD};
use serde_json::{json, Map, Value};

use crate::error::{ErrorType, MeiliError};
use crate::merge::search::compare_seq;
use crate::plan::search_body::{restrict_filter, retrieve_also};
use crate::request::search_params::Pagination;

/// Meilisearch's `pagination.maxTotalHits` when the index's settings could not be read.
const DEFAULT_MAX_TOTAL_HITS: u64 = 1000;

/// What the merge needs of the client's request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// The target's shard, answered by `/similar` itself and left out of the scatter.
    pub shard: u32,
    pub offset: u64,
    pub limit: u64,
    pub threshold: Option<f64>,
    pub show_score: bool,
    pub show_details: bool,
    /// Hits each searched node returns: `offset + limit`, or none when the target has no
    /// embedding (one node then finds nothing, and only the totals are needed).
    pub wanted: u64,
}

/// A `/similar` request whose parameters Miroir can read, in its POST form.
pub struct Plan {
    /// The target's id, canonical.
    pub id: String,
    pub embedder: String,
    pub window: Window,
    client: Map<String, Value>,
}

/// `GET /indexes/{uid}/similar` parameters as the POST body, read as Meilisearch reads them
/// (`filter` is JSON when it parses as JSON, else a string). `None` when one does not read: the
/// node then words the error.
pub fn query_from_get(pairs: &[(String, String)]) -> Option<Map<String, Value>> {
    let mut body = Map::new();
    for (name, raw) in pairs {
        let value = match name.as_str() {
            "id" | "embedder" => json!(raw),
            "offset" | "limit" => json!(raw.parse::<u64>().ok()?),
            "attributesToRetrieve" => json!(raw
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect::<Vec<_>>()),
            "retrieveVectors"
            | "showRankingScore"
            | "showRankingScoreDetails"
            | "showPerformanceDetails" => json!(raw.parse::<bool>().ok()?),
            "filter" => serde_json::from_str(raw).unwrap_or_else(|_| json!(raw)),
            "rankingScoreThreshold" => json!(threshold(raw.parse::<f64>().ok()?)?),
            _ => return None,
        };
        if body.insert(name.clone(), value).is_some() {
            return None;
        }
    }
    Some(body)
}

fn threshold(t: f64) -> Option<f64> {
    (0.0..=1.0).contains(&t).then_some(t)
}

/// The target's id as the request names it, however malformed the rest is.
pub fn target_id(client: &Map<String, Value>) -> Option<String> {
    client.get("id").and_then(canonical_key)
}

impl Plan {
    /// `None` when a parameter Miroir changes or needs does not have Meilisearch's type: the
    /// request then goes to a node unchanged, which refuses it in Meilisearch's words.
    pub fn new(client: Map<String, Value>, topology: &Topology) -> Option<Plan> {
        let id = target_id(&client)?;
        // Ids Meilisearch refuses are left to the node's own error; the others are safe in a path.
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        let embedder = client.get("embedder")?.as_str()?.to_string();
        let count = |field: &str, default: u64| match client.get(field) {
            None | Some(Value::Null) => Some(default),
            Some(v) => v.as_u64(),
        };
        let flag = |field: &str| match client.get(field) {
            None | Some(Value::Null) => Some(false),
            Some(v) => v.as_bool(),
        };
        let offset = count("offset", 0)?;
        let limit = count("limit", 20)?;
        let threshold = match client.get("rankingScoreThreshold") {
            None | Some(Value::Null) => None,
            Some(v) => Some(threshold(v.as_f64()?)?),
        };
        let (show_score, show_details) =
            (flag("showRankingScore")?, flag("showRankingScoreDetails")?);
        let listed = match client.get("attributesToRetrieve") {
            None | Some(Value::Null) => true,
            Some(Value::Array(items)) => items.iter().all(Value::is_string),
            Some(_) => false,
        };
        let filter_shaped = matches!(
            client.get("filter"),
            None | Some(Value::Null | Value::String(_) | Value::Array(_))
        );
        if !listed || !filter_shaped {
            return None;
        }
        let window = Window {
            shard: topology.shard_for_key(&id),
            offset,
            limit,
            threshold,
            show_score,
            show_details,
            wanted: offset.saturating_add(limit),
        };
        Some(Plan {
            id,
            embedder,
            window,
            client,
        })
    }

    /// The request the target's shard gets: the client's, for its first `offset + limit` hits
    /// with their scores and sequence numbers, without the threshold (applied after the merge,
    /// where the total depends on where it cuts), restricted to the shard.
    pub fn probe(&self) -> Map<String, Value> {
        let mut body = self.client.clone();
        body.insert("offset".into(), json!(0));
        body.insert("limit".into(), json!(self.window.wanted));
        body.shift_remove("rankingScoreThreshold");
        body.insert("showRankingScore".into(), json!(true));
        body.insert("showRankingScoreDetails".into(), json!(true));
        let filter = restrict_filter(self.client.get("filter"), &[self.window.shard]);
        body.insert("filter".into(), filter);
        retrieve_also(&mut body, [SEQ_FIELD.to_string()]);
        body
    }

    /// Where the target's embeddings are read.
    pub fn embedding_path(&self, index: &str) -> String {
        format!(
            "/indexes/{index}/documents/{}?retrieveVectors=true",
            self.id
        )
    }

    /// The target's first embedding for the embedder, from the document read with
    /// `retrieveVectors` (`None`: it has none). Meilisearch compares the target's n-th embedding
    /// with the other documents' n-th; documents with one embedding only meet the first.
    pub fn embedding(&self, document: &Value) -> Result<Option<Value>, MeiliError> {
        let Some(entry) = document.get("_vectors").and_then(|v| v.get(&self.embedder)) else {
            return Err(MeiliError::new(
                501,
                "miroir_not_supported",
                ErrorType::InvalidRequest,
                format!(
                    "Miroir cannot find documents similar to `{}` on other shards: its `{}` embedding cannot be read, as `_vectors` is not among the index's `displayedAttributes`.",
                    self.id, self.embedder
                ),
            ));
        };
        let embeddings = match entry {
            Value::Object(fields) => fields.get("embeddings").unwrap_or(&Value::Null),
            other => other,
        };
        Ok(match embeddings.as_array().map(Vec::as_slice) {
            Some([Value::Array(first), ..]) => Some(Value::Array(first.clone())),
            Some(flat @ [Value::Number(_), ..]) => Some(Value::Array(flat.to_vec())),
            _ => None,
        })
    }

    /// The search every other shard gets, and the window merged from it. Without an embedding,
    /// a search for no hits: only the shards' totals are needed.
    pub fn search(&self, embedding: Option<Value>) -> (Map<String, Value>, Window) {
        let mut query = Map::new();
        let mut window = self.window;
        match embedding {
            Some(vector) => {
                query.insert("vector".into(), vector);
                query.insert(
                    "hybrid".into(),
                    json!({"embedder": self.embedder, "semanticRatio": 1.0}),
                );
            }
            None => window.wanted = 0,
        }
        for field in ["filter", "attributesToRetrieve", "retrieveVectors"] {
            if let Some(value) = self.client.get(field).filter(|v| !v.is_null()) {
                query.insert(field.into(), value.clone());
            }
        }
        (query, window)
    }
}

/// The search one node gets, from offset 0.
pub fn node_body(
    search: &Map<String, Value>,
    window: Window,
    shards: &[u32],
) -> Map<String, Value> {
    let pagination = Pagination::Offset {
        offset: 0,
        limit: window.wanted,
    };
    crate::plan::search_body::node_body(search, pagination, shards)
}

/// A hit with the similarity it was ranked by.
struct Ranked {
    similarity: f64,
    /// As the node wrote it, shown unchanged.
    shown_similarity: Value,
    seq: Option<u64>,
    position: usize,
    node: usize,
    hit: Map<String, Value>,
}

fn rule_before_similarity() -> MeiliError {
    MeiliError::new(
        501,
        "miroir_not_supported",
        ErrorType::InvalidRequest,
        "Miroir cannot find similar documents across shards in an index whose ranking rules put a custom sort rule before the relevancy rules: the other shards' vector searches rank by that rule first.",
    )
}

/// Merges the target shard's `/similar` answer (first) with the other shards' searches into
/// one node's `/similar` answer.
///
/// Hits without a similarity (documents without an embedding, which a vector search lists
/// last) are not similar to anything. `estimatedTotalHits` counts every document the filter
/// keeps but the target, capped at `maxTotalHits`; when `rankingScoreThreshold` cuts the page,
/// it counts the documents ranked before the cut instead, as Meilisearch does.
pub fn merge(
    window: Window,
    responses: Vec<Map<String, Value>>,
    max_total_hits: Option<u64>,
) -> Result<Value, MeiliError> {
    // One node's total is already capped; a sum must be capped again.
    let cap = max_total_hits.or((responses.len() > 1).then_some(DEFAULT_MAX_TOTAL_HITS));
    let mut ranked = Vec::new();
    let mut total = 0u64;
    let mut processing_time = 0u64;
    let mut template = None;
    for (node, mut response) in responses.into_iter().enumerate() {
        let hits = response.get_mut("hits").map(Value::take);
        for (position, hit) in hits.into_iter().flat_map(array_items).enumerate() {
            let Value::Object(hit) = hit else {
                continue;
            };
            let Some(sort) = hit
                .get("_rankingScoreDetails")
                .and_then(|d| d.get("vectorSort"))
            else {
                continue;
            };
            if sort.get("order").and_then(Value::as_u64) != Some(0) {
                return Err(rule_before_similarity());
            }
            let shown_similarity = sort.get("similarity").cloned().unwrap_or(Value::Null);
            let Some(similarity) = shown_similarity.as_f64() else {
                continue;
            };
            ranked.push(Ranked {
                similarity,
                shown_similarity,
                seq: hit
                    .get(SEQ_FIELD)
                    .and_then(Value::as_str)
                    .and_then(reserved::decode_seq),
                position,
                node,
                hit,
            });
        }
        let number = |field: &str| response.get(field).and_then(Value::as_u64).unwrap_or(0);
        total = total.saturating_add(number("estimatedTotalHits"));
        processing_time = processing_time.max(number("processingTimeMs"));
        template.get_or_insert(response);
    }
    ranked.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then_with(|| compare_seq(a.seq, b.seq))
            .then(a.position.cmp(&b.position))
            .then(a.node.cmp(&b.node))
    });
    let skip = usize::try_from(window.offset).unwrap_or(usize::MAX);
    let keep = usize::try_from(window.limit).unwrap_or(usize::MAX);
    // The threshold is checked on the page only: hits before it score higher anyway.
    let cut = window.threshold.and_then(|t| {
        ranked
            .iter()
            .enumerate()
            .skip(skip)
            .take(keep)
            .find(|(_, r)| r.similarity < t)
            .map(|(i, _)| i)
    });
    if let Some(at) = cut {
        ranked.truncate(at);
        total = u64::try_from(at).unwrap_or(u64::MAX);
    }
    if let Some(cap) = cap {
        total = total.min(cap);
    }
    let hits: Vec<Value> = ranked
        .into_iter()
        .skip(skip)
        .take(keep)
        .map(|r| shown(r, window))
        .collect();
    let mut answer = template.unwrap_or_default();
    answer.insert("hits".into(), Value::Array(hits));
    answer.insert("processingTimeMs".into(), json!(processing_time));
    answer.insert("limit".into(), json!(window.limit));
    answer.insert("offset".into(), json!(window.offset));
    answer.insert("estimatedTotalHits".into(), json!(total));
    Ok(Value::Object(answer))
}

fn array_items(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

/// A hit as `/similar` shows it: the similarity is its only ranking detail.
fn shown(ranked: Ranked, window: Window) -> Value {
    let mut hit = ranked.hit;
    reserved::strip(&mut hit);
    if !window.show_score {
        hit.shift_remove("_rankingScore");
    }
    if window.show_details {
        hit.insert(
            "_rankingScoreDetails".into(),
            json!({"vectorSort": {"order": 0, "similarity": ranked.shown_similarity}}),
        );
    } else {
        hit.shift_remove("_rankingScoreDetails");
    }
    Value::Object(hit)
}

#[cfg(test)]
mod tests;

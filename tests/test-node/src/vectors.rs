//! User-provided embeddings: the `embedders` setting, the `_vectors` field of documents, and the
//! similarity Meilisearch derives from a cosine distance.
//!
//! Only `userProvided` embedders are functional: documents carry their embeddings in
//! `_vectors.<embedder>`, searches carry theirs in `vector`. Meilisearch's vector store computes
//! a cosine distance `(1 - cos) / 2` in `f32` and reports `similarity = 1 - distance`, so the
//! similarity is `(1 + cos) / 2`, in [0, 1]. A document with several embeddings is as similar as
//! its closest one.

use serde_json::{json, Map, Value};

use crate::error::MeiliError;
use crate::settings::Settings;
use crate::state::Document;

pub const VECTORS_FIELD: &str = "_vectors";

/// One configured embedder.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedder {
    pub name: String,
    pub source: String,
    pub dimensions: Option<usize>,
    /// `distribution: {mean, sigma}` shifts similarities, as in Meilisearch.
    pub distribution: Option<(f32, f32)>,
}

impl Embedder {
    /// Meilisearch's `DistributionShift::shift`: an affine map that sends `mean` to 0.5 and
    /// `mean ± sigma` to 0.5 ± 0.4, clamped to ]0, 1] (`f32::EPSILON` at the bottom).
    pub fn shift(&self, score: f32) -> f32 {
        match self.distribution {
            None => score,
            Some((mean, sigma)) => {
                let factor = 0.4 / sigma;
                let offset = 0.5 - factor * mean;
                let shifted = factor * score + offset;
                if shifted <= 0.0 {
                    f32::EPSILON
                } else {
                    shifted.min(1.0)
                }
            }
        }
    }
}

/// The embedders of an index, by name order.
pub fn embedders(settings: &Settings) -> Vec<Embedder> {
    let Value::Object(map) = settings.get("embedders") else {
        return Vec::new();
    };
    map.iter()
        .map(|(name, conf)| Embedder {
            name: name.clone(),
            source: conf
                .get("source")
                .and_then(Value::as_str)
                .unwrap_or("openAi")
                .to_string(),
            dimensions: conf
                .get("dimensions")
                .and_then(Value::as_u64)
                .map(|d| d as usize),
            distribution: conf.get("distribution").and_then(|d| {
                let mean = d.get("mean")?.as_f64()? as f32;
                let sigma = d.get("sigma")?.as_f64()? as f32;
                Some((mean, sigma))
            }),
        })
        .collect()
}

pub fn embedder<'a>(all: &'a [Embedder], name: &str) -> Option<&'a Embedder> {
    all.iter().find(|e| e.name == name)
}

/// Meilisearch's wording for an embedder the index does not have (`invalid_search_embedder`,
/// `invalid_similar_embedder`).
pub fn embedder_not_found(code: &'static str, name: &str) -> MeiliError {
    MeiliError::invalid(code, format!("Cannot find embedder with name `{name}`."))
}

pub fn check_dimensions(embedder: &Embedder, vector: &[f32]) -> Result<(), MeiliError> {
    match embedder.dimensions {
        Some(expected) if expected != vector.len() => Err(MeiliError::invalid(
            "invalid_vector_dimensions",
            format!(
                "Invalid vector dimensions: expected: `{expected}`, found: `{}`.",
                vector.len()
            ),
        )),
        _ => Ok(()),
    }
}

/// What a document says for one embedder in `_vectors`.
#[derive(Debug, Clone, PartialEq)]
pub enum Provided {
    /// No `_vectors.<name>` key at all.
    Missing,
    /// `null`, or `{"embeddings": null, ...}`: explicitly no embedding.
    OptOut,
    Embeddings(Vec<Vec<f32>>),
}

fn number(v: &Value) -> Option<f32> {
    v.as_f64().map(|f| f as f32)
}

/// Parses `_vectors.<name>` with Meilisearch's accepted forms: an array of floats, an array of
/// arrays of floats, or `{"embeddings": ..., "regenerate": bool}`. Errors are the text after
/// "Bad embedder configuration in the document with id: `x`. ".
pub fn parse_provided(doc: &Document, name: &str) -> Result<Provided, String> {
    let Some(Value::Object(vectors)) = doc.get(VECTORS_FIELD) else {
        return Ok(Provided::Missing);
    };
    let Some(value) = vectors.get(name) else {
        return Ok(Provided::Missing);
    };
    let path = format!("._vectors.{name}");
    let embeddings = match value {
        Value::Null => return Ok(Provided::OptOut),
        Value::Array(_) => value,
        Value::Object(obj) => {
            match obj.get("regenerate") {
                Some(Value::Bool(_)) => {}
                None => return Err(format!("Missing field `{path}.regenerate`\n  - note: `{path}` must be an array of floats, an array of arrays of floats, or an object with field `regenerate`")),
                Some(other) => return Err(format!("Invalid value type at `{path}.regenerate`: expected a boolean, but found {}", crate::params::describe(other))),
            }
            match obj.get("embeddings") {
                None | Some(Value::Null) => return Ok(Provided::OptOut),
                Some(e @ Value::Array(_)) => e,
                Some(other) => {
                    return Err(format!(
                        "Invalid value type at `{path}.embeddings`: expected null or an array, but found {}",
                        crate::params::describe(other)
                    ))
                }
            }
        }
        other => {
            return Err(format!(
            "Invalid value type at `{path}`: expected an array, an object or null, but found {}",
            crate::params::describe(other)
        ))
        }
    };
    let at = if matches!(value, Value::Object(_)) {
        format!("{path}.embeddings")
    } else {
        path
    };
    let items = embeddings.as_array().cloned().unwrap_or_default();
    match items.first() {
        None => Ok(Provided::Embeddings(Vec::new())),
        Some(Value::Array(_)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let Value::Array(inner) = item else {
                    return Err(format!(
                        "Invalid value type at `{at}[{i}]`: expected an array, but found {}",
                        crate::params::describe(item)
                    ));
                };
                let mut vector = Vec::new();
                for (j, x) in inner.iter().enumerate() {
                    vector.push(number(x).ok_or_else(|| {
                        format!(
                            "Invalid value type at `{at}[{i}][{j}]`: expected a number, but found {}",
                            crate::params::describe(x)
                        )
                    })?);
                }
                out.push(vector);
            }
            Ok(Provided::Embeddings(out))
        }
        Some(Value::Number(_)) => {
            let mut vector = Vec::new();
            for (i, x) in items.iter().enumerate() {
                vector.push(number(x).ok_or_else(|| {
                    format!(
                        "Invalid value type at `{at}[{i}]`: expected a number, but found {}",
                        crate::params::describe(x)
                    )
                })?);
            }
            Ok(Provided::Embeddings(vec![vector]))
        }
        Some(other) => Err(format!(
            "Invalid value type at `{at}[0]`: expected a number or an array, but found {}",
            crate::params::describe(other)
        )),
    }
}

/// The embeddings a stored document has for an embedder (empty when none).
pub fn embeddings(doc: &Document, name: &str) -> Vec<Vec<f32>> {
    match parse_provided(doc, name) {
        Ok(Provided::Embeddings(e)) => e,
        _ => Vec::new(),
    }
}

/// Cosine similarity mapped as Meilisearch does: `1 - (1 - cos) / 2`, computed in `f32`.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    let norms = na * nb;
    let distance = if norms > f32::EPSILON {
        let cos = (dot / norms).clamp(-1.0, 1.0);
        (1.0 - cos) / 2.0
    } else {
        0.0
    };
    1.0 - distance
}

/// The best similarity between any of `targets` and any embedding of the document, shifted by
/// the embedder's distribution; `None` when the document has no embedding.
pub fn best_similarity(embedder: &Embedder, targets: &[Vec<f32>], doc: &Document) -> Option<f32> {
    let mine = embeddings(doc, &embedder.name);
    let mut best: Option<f32> = None;
    for t in targets {
        for v in &mine {
            if v.len() != t.len() {
                continue;
            }
            let s = similarity(t, v);
            best = Some(best.map_or(s, |b| b.max(s)));
        }
    }
    best.map(|s| embedder.shift(s))
}

/// Checks the `_vectors` of documents about to be indexed: its shape, the dimensions of every
/// embedding, and that every `userProvided` embedder gets embeddings or an explicit `null`.
/// Messages are Meilisearch's (prefixed with the index, as task errors from the engine are).
pub fn check_documents(
    index_uid: &str,
    settings: &Settings,
    docs: &[(String, Document)],
) -> Result<(), MeiliError> {
    let all = embedders(settings);
    for (id, doc) in docs {
        match doc.get(VECTORS_FIELD) {
            None | Some(Value::Object(_)) => {}
            // Meilisearch 1.50 fails such a task with serde's words and an internal error.
            Some(other) => {
                let found = match other {
                    Value::String(_) => format!("string {other}"),
                    Value::Array(_) => "sequence".to_string(),
                    Value::Bool(b) => format!("boolean `{b}`"),
                    Value::Number(n) => format!("integer `{n}`"),
                    _ => "null".to_string(),
                };
                return Err(MeiliError::internal(format!(
                    "Index `{index_uid}`: invalid type: {found}, expected a map"
                )));
            }
        }
        for e in &all {
            match parse_provided(doc, &e.name) {
                Err(message) => {
                    return Err(MeiliError::invalid(
                        "invalid_vectors_type",
                        format!("Index `{index_uid}`: Bad embedder configuration in the document with id: `{id}`. {message}"),
                    ))
                }
                Ok(Provided::Embeddings(list)) => {
                    for (i, v) in list.iter().enumerate() {
                        if let Some(expected) = e.dimensions.filter(|d| *d != v.len()) {
                            return Err(MeiliError::invalid(
                                "invalid_vector_dimensions",
                                format!("Index `{index_uid}`: Invalid vector dimensions in document with id `{id}` in `._vectors.{}`.\n  - note: embedding #{i} has dimensions {}\n  - note: embedder `{}` requires {expected}", e.name, v.len(), e.name),
                            ));
                        }
                    }
                }
                Ok(_) => {}
            }
        }
    }
    for e in all.iter().filter(|e| e.source == "userProvided") {
        let missing: Vec<&(String, Document)> = docs
            .iter()
            .filter(|(_, d)| parse_provided(d, &e.name) == Ok(Provided::Missing))
            .collect();
        let Some((first, first_doc)) = missing.first() else {
            continue;
        };
        let others = if missing.len() > 1 {
            format!(" and at least {} other document(s)", missing.len() - 1)
        } else {
            String::new()
        };
        let misspelt = missing
            .iter()
            .filter(|(_, d)| d.contains_key("_vector"))
            .count();
        let hint = if misspelt > 0 && first_doc.contains_key("_vector") {
            format!("try replacing `_vector` by `_vectors` in {misspelt} document(s).")
        } else {
            format!("opt-out for a document with `_vectors.{}: null`", e.name)
        };
        return Err(MeiliError::invalid(
            "vector_embedding_error",
            format!(
                "Index `{index_uid}`: While embedding documents for embedder `{name}`: no vectors provided for document `{first}`{others}\n- Note: `{name}` has `source: userProvided`, so documents must provide embeddings as an array in `_vectors.{name}`.\n- Hint: {hint}",
                name = e.name
            ),
        ));
    }
    Ok(())
}

/// `_vectors` as `retrieveVectors` shows it: every configured embedder as
/// `{"embeddings": [[...]], "regenerate": false}` (user-provided embeddings are never
/// regenerated), and any other key of the document's `_vectors` as it was sent.
pub fn retrieved(doc: &Document, settings: &Settings) -> Value {
    let mut out = Map::new();
    if let Some(Value::Object(raw)) = doc.get(VECTORS_FIELD) {
        for (k, v) in raw {
            out.insert(k.clone(), v.clone());
        }
    }
    for e in embedders(settings) {
        let list: Vec<Value> = embeddings(doc, &e.name)
            .into_iter()
            .map(|v| Value::Array(v.into_iter().map(|x| json!(x)).collect()))
            .collect();
        out.insert(
            e.name.clone(),
            json!({"embeddings": list, "regenerate": e.source != "userProvided"}),
        );
    }
    Value::Object(out)
}

/// Whether `_vectors` may be shown: every field is displayed, or `_vectors` is listed.
pub fn displayed(settings: &Settings) -> bool {
    settings
        .displayed()
        .is_none_or(|d| d.iter().any(|f| f == VECTORS_FIELD))
}

/// Adds `_vectors` to a projected hit or document when asked for and displayed.
pub fn attach(hit: &mut Document, doc: &Document, settings: &Settings, retrieve: bool) {
    if retrieve && displayed(settings) {
        hit.insert(VECTORS_FIELD.into(), retrieved(doc, settings));
    }
}

/// `numberOfEmbeddings` and `numberOfEmbeddedDocuments` of the index statistics.
pub fn counts<'a>(settings: &Settings, docs: impl Iterator<Item = &'a Document>) -> (usize, usize) {
    let all = embedders(settings);
    let (mut embeddings_total, mut embedded) = (0, 0);
    for doc in docs {
        let n: usize = all.iter().map(|e| embeddings(doc, &e.name).len()).sum();
        embeddings_total += n;
        embedded += usize::from(n > 0);
    }
    (embeddings_total, embedded)
}

/// Parses a query vector (`vector`), with the given error code.
pub fn parse_vector(
    value: &Value,
    location: &str,
    code: &'static str,
) -> Result<Vec<f32>, MeiliError> {
    let Value::Array(items) = value else {
        return Err(crate::params::type_error(code, location, "an array", value));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, x)| {
            number(x).ok_or_else(|| {
                crate::params::type_error(code, &format!("{location}[{i}]"), "a number", x)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(v: Value) -> Document {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn similarity_matches_meilisearch_scores() {
        // Recorded by Meilisearch's own tests: query [1, 1] against [2, 3], [1, 2] and [1, 3].
        let q = [1.0, 1.0];
        assert!((similarity(&q, &[2.0, 3.0]) as f64 - 0.990290343761444).abs() < 1e-6);
        assert!((similarity(&q, &[1.0, 2.0]) as f64 - 0.974341630935669).abs() < 1e-6);
        assert!((similarity(&q, &[1.0, 3.0]) as f64 - 0.9472135901451112).abs() < 1e-6);
        assert_eq!(similarity(&q, &[0.0, 0.0]), 1.0);
    }

    #[test]
    fn provided_forms() {
        let d = doc(json!({"_vectors": {
            "a": [1, 2], "b": [[1, 2], [3, 4]], "c": null,
            "d": {"embeddings": [5, 6], "regenerate": false}, "e": {"embeddings": [1]}
        }}));
        assert_eq!(
            parse_provided(&d, "a"),
            Ok(Provided::Embeddings(vec![vec![1.0, 2.0]]))
        );
        assert_eq!(
            parse_provided(&d, "b"),
            Ok(Provided::Embeddings(vec![vec![1.0, 2.0], vec![3.0, 4.0]]))
        );
        assert_eq!(parse_provided(&d, "c"), Ok(Provided::OptOut));
        assert_eq!(
            parse_provided(&d, "d"),
            Ok(Provided::Embeddings(vec![vec![5.0, 6.0]]))
        );
        assert!(parse_provided(&d, "e")
            .unwrap_err()
            .starts_with("Missing field `._vectors.e.regenerate`"));
        assert_eq!(parse_provided(&d, "zzz"), Ok(Provided::Missing));
    }

    #[test]
    fn distribution_shift_is_meilisearchs() {
        let e = Embedder {
            name: "d".into(),
            source: "userProvided".into(),
            dimensions: Some(2),
            distribution: Some((0.998, 0.01)),
        };
        // Meilisearch's test: 0.990290343761444 shifts to 0.19161224365234375.
        assert!((e.shift(0.990_290_34) as f64 - 0.19161224365234375).abs() < 1e-4);
        assert_eq!(e.shift(0.5), f32::EPSILON);
    }
}

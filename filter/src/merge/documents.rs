//! `GET /indexes/{uid}/documents` and `POST .../documents/fetch` over shards: every node lists
//! its own documents from offset 0, and the pages are merged.

use std::cmp::Ordering;

use miroir_topology::reserved::{self, seq_of};
use miroir_topology::SEQ_FIELD;
use serde_json::{json, Map, Value};

use crate::error::MeiliError;
use crate::merge::search::{compare_seq, compare_sort_values};
use crate::plan::search_body::restrict_filter;

/// The GET form's parameters as the fetch body (comma lists become arrays).
pub fn fetch_from_get(pairs: &[(String, String)]) -> Result<Map<String, Value>, MeiliError> {
    let mut body = Map::new();
    for (name, raw) in pairs {
        let list = || {
            json!(raw
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect::<Vec<_>>())
        };
        let number = |code: &'static str| {
            raw.parse::<u64>().map(|n| json!(n)).map_err(|_| {
                MeiliError::bad_request(code, format!("Invalid value in parameter `{name}`: could not parse `{raw}` as a positive integer"))
            })
        };
        let value = match name.as_str() {
            "offset" => number("invalid_document_offset")?,
            "limit" => number("invalid_document_limit")?,
            "fields" | "ids" | "sort" => list(),
            "filter" => json!(raw),
            "retrieveVectors" | "useNetwork" => json!(raw == "true"),
            // In the order Meilisearch 1.50's error lists them.
            _ => {
                return Err(MeiliError::unknown_parameter(
                    name,
                    &[
                        "offset",
                        "limit",
                        "fields",
                        "retrieveVectors",
                        "ids",
                        "filter",
                        "sort",
                        "useNetwork",
                    ],
                ))
            }
        };
        body.insert(name.clone(), value);
    }
    Ok(body)
}

/// The client's window: `(offset, limit)`, Meilisearch's defaults 0 and 20.
pub fn window(client: &Map<String, Value>) -> (u64, u64) {
    let get = |f: &str, d: u64| client.get(f).and_then(Value::as_u64).unwrap_or(d);
    (get("offset", 0), get("limit", 20))
}

/// `attr:asc|desc` entries of the client's `sort`.
fn sort_spec(client: &Map<String, Value>) -> Vec<(String, bool)> {
    client
        .get("sort")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| match s.rsplit_once(':') {
            Some((attr, dir)) => (attr.to_string(), dir == "desc"),
            None => (s.to_string(), false),
        })
        .collect()
}

/// The fetch sent to one node: from offset 0, limited to its shards, with the sort attributes
/// retrieved so the merge can order by them.
pub fn node_body(client: &Map<String, Value>, shards: &[u32]) -> Map<String, Value> {
    let mut body = client.clone();
    let (offset, limit) = window(client);
    body.insert("offset".into(), json!(0));
    body.insert("limit".into(), json!(offset.saturating_add(limit)));
    body.insert(
        "filter".into(),
        restrict_filter(client.get("filter"), shards),
    );
    if let Some(Value::Array(fields)) = body.get_mut("fields") {
        let sort = sort_spec(client).into_iter().map(|(attr, _)| attr);
        for attr in sort.chain([SEQ_FIELD.to_string()]) {
            if !fields
                .iter()
                .any(|f| f.as_str() == Some(attr.as_str()) || f.as_str() == Some("*"))
            {
                fields.push(json!(attr));
            }
        }
    }
    body
}

/// Merges the nodes' pages (in a fixed node order): by the client's sort, then in insertion order
/// (`_miroir_seq`), as one node lists documents by internal id, then by position in each node's
/// list, interleaving nodes, so that consecutive pages neither repeat nor skip.
pub fn merge(client: &Map<String, Value>, responses: Vec<Map<String, Value>>) -> Value {
    let (offset, limit) = window(client);
    let sort = sort_spec(client);
    let requested: Option<Vec<String>> = client.get("fields").and_then(Value::as_array).map(|f| {
        f.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    });
    let mut total = 0u64;
    let mut documents: Vec<(usize, usize, Value)> = Vec::new();
    for (node, mut response) in responses.into_iter().enumerate() {
        total = total.saturating_add(response.get("total").and_then(Value::as_u64).unwrap_or(0));
        if let Some(Value::Array(results)) = response.remove("results") {
            documents.extend(
                results
                    .into_iter()
                    .enumerate()
                    .map(|(position, doc)| (position, node, doc)),
            );
        }
    }
    documents.sort_by(|(pa, na, a), (pb, nb, b)| {
        sort.iter()
            .map(|(attr, desc)| compare_sort_values(a.get(attr), b.get(attr), *desc))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
            .then_with(|| compare_seq(seq_of(a), seq_of(b)))
            .then(pa.cmp(pb))
            .then(na.cmp(nb))
    });
    let results: Vec<Value> = documents
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(|(_, _, mut doc)| {
            if let Value::Object(fields) = &mut doc {
                reserved::strip(fields);
                // Sort attributes the client did not ask for were only fetched to merge.
                if let Some(requested) = &requested {
                    if !requested.iter().any(|f| f == "*") {
                        fields.retain(|k, _| requested.contains(k));
                    }
                }
            }
            doc
        })
        .collect();
    json!({"results": results, "offset": offset, "limit": limit, "total": total})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn pages_follow_the_sort_and_hide_what_was_only_fetched_to_merge() {
        let client = obj(json!({"offset": 1, "limit": 3, "sort": ["year:desc"], "fields": ["id"]}));
        let body = node_body(&client, &[2, 5]);
        assert_eq!(body["fields"], json!(["id", "year", "_miroir_seq"]));
        assert_eq!(
            (body["offset"].clone(), body["limit"].clone()),
            (json!(0), json!(4))
        );
        assert_eq!(
            body["filter"],
            miroir_topology::reserved::shard_filter(&[2, 5])
        );
        let node = |docs: Value, total: u64| {
            obj(json!({"results": docs, "offset": 0, "limit": 4, "total": total}))
        };
        let merged = merge(
            &client,
            vec![
                node(
                    json!([{"id": 1, "year": 2020, "_miroir_shard": 2}, {"id": 2, "year": 1990, "_miroir_shard": 2}]),
                    2,
                ),
                node(
                    json!([{"id": 3, "year": 2010}, {"id": 4, "year": 2000}, {"id": 5}]),
                    3,
                ),
            ],
        );
        assert_eq!(
            merged,
            json!({"results": [{"id": 3}, {"id": 4}, {"id": 2}], "offset": 1, "limit": 3, "total": 5})
        );
    }

    #[test]
    fn get_parameters_become_a_fetch() {
        let pairs = vec![
            ("fields".to_string(), "id,title".to_string()),
            ("limit".to_string(), "5".to_string()),
            ("filter".to_string(), "a = 1".to_string()),
        ];
        assert_eq!(
            Value::Object(fetch_from_get(&pairs).unwrap()),
            json!({"fields": ["id", "title"], "limit": 5, "filter": "a = 1"})
        );
        let bad = vec![("limit".to_string(), "x".to_string())];
        assert_eq!(
            fetch_from_get(&bad).unwrap_err().code,
            "invalid_document_limit"
        );
        let unknown = vec![("sortBy".to_string(), "year".to_string())];
        assert_eq!(
            fetch_from_get(&unknown).unwrap_err().message,
            "Unknown parameter `sortBy`: expected one of `offset`, `limit`, `fields`, `retrieveVectors`, `ids`, `filter`, `sort`, `useNetwork`"
        );
    }
}

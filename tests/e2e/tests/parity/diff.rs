//! Comparing two answers: volatile fields stripped, then the first differing JSON path.

use serde_json::Value;

/// Fields that legitimately differ between any two answers, removed at every depth.
pub const VOLATILE: [&str; 2] = ["processingTimeMs", "requestUid"];

/// `value` without [`VOLATILE`] keys, recursively.
pub fn strip(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
        other => other.clone(),
    }
}

/// The first place where `got` differs from `want`: its path (`.hits[3].id`), and both
/// values there (`None`: absent). Object keys are compared as a set (JSON objects are
/// unordered); arrays element by element, then by length; numbers as serde_json renders
/// them (`1` is not `1.0`).
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    pub path: String,
    pub want: Option<Value>,
    pub got: Option<Value>,
}

pub fn first_difference(want: &Value, got: &Value) -> Option<Difference> {
    walk(want, got, String::new())
}

fn walk(want: &Value, got: &Value, path: String) -> Option<Difference> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (key, wv) in w {
                let sub = format!("{path}.{key}");
                match g.get(key) {
                    None => {
                        return Some(Difference {
                            path: sub,
                            want: Some(wv.clone()),
                            got: None,
                        })
                    }
                    Some(gv) => {
                        if let Some(d) = walk(wv, gv, sub) {
                            return Some(d);
                        }
                    }
                }
            }
            g.iter()
                .find(|(key, _)| !w.contains_key(key.as_str()))
                .map(|(key, gv)| Difference {
                    path: format!("{path}.{key}"),
                    want: None,
                    got: Some(gv.clone()),
                })
        }
        (Value::Array(w), Value::Array(g)) => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                if let Some(d) = walk(wv, gv, format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            if w.len() != g.len() {
                let i = w.len().min(g.len());
                return Some(Difference {
                    path: format!("{path}[{i}] (length {} vs {})", w.len(), g.len()),
                    want: w.get(i).cloned(),
                    got: g.get(i).cloned(),
                });
            }
            None
        }
        _ if want == got => None,
        _ => Some(Difference {
            path: if path.is_empty() {
                "(root)".into()
            } else {
                path
            },
            want: Some(want.clone()),
            got: Some(got.clone()),
        }),
    }
}

/// The path with array indices replaced by `[*]`: a mismatch *class* (`.hits[*].id`).
pub fn class_of(path: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[*]");
            }
            ']' if in_index => in_index = false,
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    // "(length a vs b)" suffixes vary per query.
    if let Some(at) = out.find(" (length") {
        out = format!("{} (length)", &out[..at]);
    }
    // Facet values vary per query too: `.facetDistribution.year.*`.
    if let Some(at) = out.find("facetDistribution.") {
        let facet_start = at + "facetDistribution.".len();
        if let Some(dot) = out[facet_start..].find('.') {
            out = format!("{}.*", &out[..facet_start + dot]);
        }
    }
    out
}

/// A value on one line, cut to `max` characters.
pub fn compact(value: Option<&Value>, max: usize) -> String {
    let text = match value {
        None => "<absent>".to_string(),
        Some(v) => v.to_string(),
    };
    if text.chars().count() <= max {
        text
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// For a hits mismatch: do both answers hold the same hits, only in another order?
pub fn same_hits_other_order(want: &Value, got: &Value) -> bool {
    let sorted = |v: &Value| -> Option<Vec<String>> {
        let mut hits: Vec<String> = v.as_array()?.iter().map(|h| h.to_string()).collect();
        hits.sort();
        Some(hits)
    };
    want != got && sorted(want).is_some() && sorted(want) == sorted(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_first_differing_path() {
        let a = json!({"hits": [{"id": 1}, {"id": 2}], "processingTimeMs": 3});
        let b = json!({"hits": [{"id": 1}, {"id": 3}], "processingTimeMs": 9});
        assert_eq!(
            first_difference(&strip(&a), &strip(&b)).unwrap().path,
            ".hits[1].id"
        );
        assert_eq!(class_of(".hits[1].id"), ".hits[*].id");
        assert_eq!(
            class_of(".results[2].facetDistribution.year.1955"),
            ".results[*].facetDistribution.year.*"
        );
        // Strict: `1` and `1.0` are rendered differently, a client can tell them apart.
        assert!(first_difference(&json!({"a": 1.0}), &json!({"a": 1})).is_some());
        let d = first_difference(&json!([1, 2]), &json!([1])).unwrap();
        assert_eq!(class_of(&d.path), "[*] (length)");
    }
}

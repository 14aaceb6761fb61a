//! A small subset of Liquid for `POST /render-template`: literal text and `{{ doc.a.b }}`
//! output tags over an inline document, rendered as Liquid renders JSON values.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// A variable and its path of indexes.
    Output(String, Vec<String>),
}

/// Splits a template into text and `{{ path }}` tags; tags `{% %}` and filters are refused.
pub fn parse(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "liquid: unterminated output tag `{{`".to_string())?;
        let expr = after[..close].trim();
        let mut path = expr.split('.').map(str::trim);
        let variable = path.next().unwrap_or_default();
        let indexes: Vec<String> = path.map(String::from).collect();
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        };
        if !valid(variable) || !indexes.iter().all(|i| valid(i)) {
            return Err(format!(
                "liquid: the miroir test node only renders `{{{{ variable.path }}}}` tags, not `{{{{{expr}}}}}`"
            ));
        }
        parts.push(Part::Output(variable.to_string(), indexes));
        rest = &after[close + 2..];
    }
    if rest.contains("{%") {
        return Err("liquid: the miroir test node does not support `{% %}` tags".into());
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

/// Liquid's rendering of a value: arrays and objects are concatenated, `nil` is empty.
fn to_text(value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Array(items) => items.iter().for_each(|v| to_text(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push_str(k);
                to_text(v, out);
            }
        }
        other => out.push_str(&other.to_string()),
    }
}

pub fn render(parts: &[Part], doc: &Value) -> Result<String, String> {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Output(variable, path) => {
                if variable != "doc" {
                    return Err(format!("liquid: Unknown variable\n  with:\n    requested variable={variable}\n    available variables=doc, fields\n"));
                }
                let mut value = doc;
                let mut name = variable.clone();
                for index in path {
                    let next = match value {
                        Value::Object(map) => map.get(index),
                        Value::Array(items) => {
                            index.parse::<usize>().ok().and_then(|i| items.get(i))
                        }
                        _ => None,
                    };
                    match next {
                        Some(v) => value = v,
                        None => {
                            let available = match value {
                                Value::Object(map) => {
                                    map.keys().cloned().collect::<Vec<_>>().join(", ")
                                }
                                _ => String::new(),
                            };
                            return Err(format!("liquid: Unknown index\n  with:\n    variable={name}\n    requested index={index}\n    available indexes={available}\n"));
                        }
                    }
                    name = format!("{name}.{index}");
                }
                to_text(value, &mut out);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_as_recorded_from_meilisearch() {
        let parts =
            parse("{{doc.a.b}}|{{ doc.n }}|{{doc.arr}}|{{doc.a}}|{{doc.t}}|{{doc.f}}|{{doc.z}}")
                .unwrap();
        let doc =
            json!({"a": {"b": "x"}, "n": 3.5, "arr": [1, "b"], "t": true, "f": null, "z": "é"});
        assert_eq!(render(&parts, &doc).unwrap(), "x|3.5|1b|bx|true||é");
        let parts = parse("Rendered on {{doc.missing}}").unwrap();
        let err = render(&parts, &json!({"a": 1, "n": 2})).unwrap_err();
        assert_eq!(err, "liquid: Unknown index\n  with:\n    variable=doc\n    requested index=missing\n    available indexes=a, n\n");
        assert!(parse("{{doc.id").is_err());
    }
}

//! Request-body validation in the words Meilisearch's deserializer (deserr) uses, so that
//! clients see the same `bad_request` / `invalid_*` messages.

use serde_json::{Map, Value};

use crate::error::MeiliError;

/// How deserr names the kind of a JSON value in "expected X, but found Y" messages.
pub fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_string(),
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() => "a positive integer",
        Value::Number(n) if n.is_i64() => "a negative integer",
        Value::Number(_) => "a float",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("{kind}: `{value}`")
}

pub fn type_error(code: &'static str, location: &str, expected: &str, found: &Value) -> MeiliError {
    MeiliError::invalid(
        code,
        format!(
            "Invalid value type at `{location}`: expected {expected}, but found {}",
            describe(found)
        ),
    )
}

pub fn unknown_field(field: &str, expected: &[&str]) -> MeiliError {
    MeiliError::bad_request(format!(
        "Unknown field `{field}`: {}expected one of {}",
        did_you_mean(field, expected),
        backticked(expected)
    ))
}

pub fn unknown_parameter(param: &str, expected: &[&str]) -> MeiliError {
    MeiliError::bad_request(format!(
        "Unknown parameter `{param}`: {}expected one of {}",
        did_you_mean(param, expected),
        backticked(expected)
    ))
}

/// deserr's suggestion: the closest expected name (Damerau-Levenshtein) within a typo budget
/// that grows with the received name's length; the first of equally close names wins.
fn did_you_mean(received: &str, expected: &[&str]) -> String {
    let budget = match received.len() {
        0..=3 => return String::new(),
        4..=7 => 1,
        8..=12 => 2,
        13..=17 => 3,
        18..=24 => 4,
        _ => 5,
    };
    expected
        .iter()
        .map(|e| (e, strsim::damerau_levenshtein(received, e)))
        .filter(|(_, distance)| *distance <= budget)
        .min_by_key(|(_, distance)| *distance)
        .map(|(e, _)| format!("did you mean `{e}`? "))
        .unwrap_or_default()
}

pub fn backticked(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The body must be a JSON object whose keys are all in `allowed`.
pub fn object<'a>(body: &'a Value, allowed: &[&str]) -> Result<&'a Map<String, Value>, MeiliError> {
    let Value::Object(map) = body else {
        return Err(MeiliError::bad_request(format!(
            "Invalid value type: expected an object, but found {}",
            describe(body)
        )));
    };
    if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(unknown_field(key, allowed));
    }
    Ok(map)
}

pub fn opt_usize(
    map: &Map<String, Value>,
    key: &str,
    code: &'static str,
) -> Result<Option<usize>, MeiliError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64().map(|v| v as usize)),
        Some(other) => Err(type_error(
            code,
            &format!(".{key}"),
            "a positive integer",
            other,
        )),
    }
}

pub fn opt_bool(
    map: &Map<String, Value>,
    key: &str,
    code: &'static str,
) -> Result<Option<bool>, MeiliError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(type_error(code, &format!(".{key}"), "a boolean", other)),
    }
}

pub fn opt_string(
    map: &Map<String, Value>,
    key: &str,
    code: &'static str,
) -> Result<Option<String>, MeiliError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(type_error(code, &format!(".{key}"), "a string", other)),
    }
}

pub fn opt_string_list(
    map: &Map<String, Value>,
    key: &str,
    code: &'static str,
) -> Result<Option<Vec<String>>, MeiliError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => string_list(value, &format!(".{key}"), code).map(Some),
    }
}

pub fn string_list(
    value: &Value,
    location: &str,
    code: &'static str,
) -> Result<Vec<String>, MeiliError> {
    let Value::Array(items) = value else {
        return Err(type_error(code, location, "an array", value));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(type_error(
                code,
                &format!("{location}[{i}]"),
                "a string",
                other,
            )),
        })
        .collect()
}

/// Query-string integer, with the message Meilisearch gives for unparsable parameters.
pub fn query_usize(param: &str, raw: &str, code: &'static str) -> Result<usize, MeiliError> {
    raw.parse().map_err(|_| {
        MeiliError::invalid(
            code,
            format!("Invalid value in parameter `{param}`: could not parse `{raw}` as a positive integer"),
        )
    })
}

pub fn query_bool(param: &str, raw: &str, code: &'static str) -> Result<bool, MeiliError> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(MeiliError::invalid(
            code,
            format!("Invalid value in parameter `{param}`: could not parse `{raw}` as a boolean, expected either `true` or `false`"),
        )),
    }
}

/// Comma-separated query lists; empty items are dropped like Meilisearch's `CS<T>`.
pub fn comma_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_follow_deserr() {
        let e = type_error(
            "invalid_search_limit",
            ".limit",
            "a positive integer",
            &json!("x"),
        );
        assert_eq!(
            e.message,
            "Invalid value type at `.limit`: expected a positive integer, but found a string: `\"x\"`"
        );
        let e = object(&json!({"q": "x", "bogus": 1}), &["q", "limit"]).unwrap_err();
        assert_eq!(
            e.message,
            "Unknown field `bogus`: expected one of `q`, `limit`"
        );
        assert_eq!(e.code, "bad_request");
    }
}

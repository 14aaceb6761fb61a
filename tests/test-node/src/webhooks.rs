//! `/webhooks`: stored as in Meilisearch 1.50 (at most 20, at most 200 headers each, headers
//! patched key by key with `null` removing one, `Authorization` values redacted when shown).
//! Nothing is ever called: the node has no network.

use serde_json::{json, Map, Value};

use crate::error::MeiliError;
use crate::params::{type_error, unknown_field};

pub const MAX_WEBHOOKS: usize = 20;
pub const MAX_HEADERS: usize = 200;

#[derive(Debug, Clone)]
pub struct Webhook {
    pub uuid: String,
    pub url: String,
    /// In insertion order.
    pub headers: Vec<(String, String)>,
}

/// Meilisearch's `hide_secret`: keeps a few leading characters depending on the length.
pub fn hide_secret(secret: &str, offset: usize) -> String {
    let Some(len) = secret.len().checked_sub(offset) else {
        return secret.to_string();
    };
    let keep = match len {
        0..=9 => 0,
        10..=19 => 2,
        20..=29 => 3,
        _ => 5,
    };
    let marker = match len {
        0..=9 => "XXX...",
        10..=19 => "XXXX...",
        20..=29 => "XXXXX...",
        _ => "XXXXXX...",
    };
    let cut = offset + keep;
    match secret.get(..cut) {
        Some(head) => format!("{head}{marker}"),
        None => secret.to_string(),
    }
}

impl Webhook {
    pub fn view(&self) -> Value {
        let headers: Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let shown = if k.eq_ignore_ascii_case("authorization") {
                    if v.starts_with("Bearer ") {
                        hide_secret(v, "Bearer ".len())
                    } else {
                        hide_secret(v, 0)
                    }
                } else {
                    v.clone()
                };
                (k.clone(), json!(shown))
            })
            .collect();
        json!({"uuid": self.uuid, "isEditable": true, "url": self.url, "headers": headers})
    }
}

fn url_error(message: String) -> MeiliError {
    MeiliError::invalid("invalid_webhook_url", message)
}

/// An absolute URL: a scheme (`[A-Za-z][A-Za-z0-9+.-]*:`), and a host for the special
/// schemes, with the `url` crate's messages.
fn check_url(url: &str) -> Result<(), MeiliError> {
    let Some((scheme, rest)) = url.split_once(':').filter(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
    }) else {
        return Err(url_error(format!(
            "Invalid URL `{url}`: relative URL without a base"
        )));
    };
    let special = ["http", "https", "ws", "wss", "ftp"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s));
    let host = rest.trim_start_matches(['/', '\\']);
    let host = host.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    if special && host.split(':').next().unwrap_or_default().is_empty() {
        return Err(url_error(format!("Invalid URL `{url}`: empty host")));
    }
    Ok(())
}

/// Applies a POST or PATCH body to `hook` (a new one starts empty).
pub fn apply(hook: &mut Webhook, body: &Value) -> Result<(), MeiliError> {
    let Value::Object(map) = body else {
        return Err(type_error("bad_request", "", "an object", body));
    };
    if let Some(k) = map.keys().find(|k| *k != "url" && *k != "headers") {
        return Err(unknown_field(k, &["url", "headers"]));
    }
    match map.get("url") {
        Some(Value::String(url)) => hook.url = url.clone(),
        Some(Value::Null) => hook.url.clear(),
        None => {}
        Some(other) => return Err(type_error("invalid_webhook_url", ".url", "a string", other)),
    }
    match map.get("headers") {
        None => {}
        Some(Value::Null) => hook.headers.clear(),
        Some(Value::Object(headers)) => {
            for (name, value) in headers {
                match value {
                    Value::Null => hook.headers.retain(|(k, _)| k != name),
                    Value::String(v) => match hook.headers.iter_mut().find(|(k, _)| k == name) {
                        Some(entry) => entry.1 = v.clone(),
                        None => hook.headers.push((name.clone(), v.clone())),
                    },
                    other => {
                        return Err(type_error(
                            "invalid_webhook_headers",
                            &format!(".headers.{name}"),
                            "a string",
                            other,
                        ))
                    }
                }
            }
        }
        Some(other) => {
            return Err(type_error(
                "invalid_webhook_headers",
                ".headers",
                "an object",
                other,
            ))
        }
    }
    if hook.url.is_empty() {
        return Err(url_error(format!(
            "The URL for the webhook `{}` is missing.",
            hook.uuid
        )));
    }
    check_url(&hook.url)?;
    if hook.headers.len() > MAX_HEADERS {
        return Err(MeiliError::invalid(
            "invalid_webhook_headers",
            format!("Too many headers for the webhook `{}`. Please limit the number of headers to {MAX_HEADERS}. Hint: To remove an already defined header set its value to `null`", hook.uuid),
        ));
    }
    for (name, value) in &hook.headers {
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(MeiliError::invalid(
                "invalid_webhook_headers",
                format!("Invalid header name `{name}`: invalid HTTP header name"),
            ));
        }
        if axum::http::HeaderValue::from_str(value).is_err() {
            return Err(MeiliError::invalid(
                "invalid_webhook_headers",
                format!("Invalid header value `{name}`: failed to parse header value"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_as_meilisearch_does() {
        assert_eq!(hide_secret("Bearer abcdefghijkl", 7), "Bearer abXXXX...");
        assert_eq!(hide_secret("abc", 0), "XXX...");
        assert_eq!(hide_secret(&"a".repeat(25), 0), "aaaXXXXX...");
        assert_eq!(hide_secret(&"a".repeat(40), 0), "aaaaaXXXXXX...");
    }
}

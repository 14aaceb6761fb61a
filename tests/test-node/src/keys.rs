//! API keys: Meilisearch's key model and default keys, the key value derivation, validation of
//! `POST /keys` and `PATCH /keys/{key}` bodies, and action and index matching.

use std::time::SystemTime;

use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use uuid::Uuid;

use crate::error::MeiliError;
use crate::params::{backticked, type_error, unknown_field};
use crate::time::{parse_expiration, rfc3339};

/// Every action name, in the order of Meilisearch's `Action` enum (the order of the "expected
/// one of" list in `invalid_api_key_actions` errors).
pub const ACTIONS: &[&str] = &[
    "*",
    "search",
    "documents.*",
    "documents.add",
    "documents.get",
    "documents.delete",
    "indexes.*",
    "indexes.create",
    "indexes.get",
    "indexes.update",
    "indexes.delete",
    "indexes.swap",
    "tasks.*",
    "tasks.cancel",
    "tasks.delete",
    "tasks.get",
    "settings.*",
    "settings.get",
    "settings.update",
    "stats.*",
    "stats.get",
    "metrics.*",
    "metrics.get",
    "dumps.*",
    "dumps.create",
    "snapshots.*",
    "snapshots.create",
    "version",
    "keys.create",
    "keys.get",
    "keys.update",
    "keys.delete",
    "experimental.get",
    "experimental.update",
    "export",
    "network.get",
    "network.update",
    "chatCompletions",
    "chats.*",
    "chats.get",
    "chats.delete",
    "chatsSettings.*",
    "chatsSettings.get",
    "chatsSettings.update",
    "*.get",
    "webhooks.get",
    "webhooks.update",
    "webhooks.delete",
    "webhooks.create",
    "webhooks.*",
    "indexes.compact",
    "tasks.compact",
    "fields.post",
    "dynamicSearchRules.*",
    "dynamicSearchRules.get",
    "dynamicSearchRules.create",
    "dynamicSearchRules.update",
    "dynamicSearchRules.delete",
];

/// Actions granted by `*.get` (Meilisearch's `Action::is_read`). `keys.get` is deliberately not
/// one of them, and neither is `chatCompletions`.
const READ_ACTIONS: &[&str] = &[
    "search",
    "documents.get",
    "export",
    "indexes.get",
    "tasks.get",
    "settings.get",
    "stats.get",
    "metrics.get",
    "version",
    "experimental.get",
    "network.get",
    "chats.get",
    "chatsSettings.get",
    "webhooks.get",
    "dynamicSearchRules.get",
];

/// The key value: lowercase hex of HMAC-SHA256 keyed with the master key's raw bytes, over the
/// uid in lowercase hyphenated form (`generate_key_as_hexa` in meilisearch-auth's `store.rs`).
pub fn generate_key(master_key: &str, uid: &str) -> String {
    let uid = Uuid::parse_str(uid)
        .map(|u| u.hyphenated().to_string())
        .unwrap_or_else(|_| uid.to_ascii_lowercase());
    let mut mac = Hmac::<Sha256>::new_from_slice(master_key.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(uid.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a key holding `granted` may perform `action`.
pub fn action_grants(granted: &str, action: &str) -> bool {
    match granted {
        "*" => true,
        "*.get" => READ_ACTIONS.contains(&action),
        g => {
            g == action
                || g.strip_suffix(".*").is_some_and(|family| {
                    action
                        .strip_prefix(family)
                        .is_some_and(|rest| rest.starts_with('.'))
                })
        }
    }
}

/// Index uid patterns: `*`, an exact uid, or a `prefix*`.
pub fn pattern_matches(pattern: &str, index: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => index.starts_with(prefix),
        None => pattern == index,
    }
}

fn valid_index_pattern(pattern: &str) -> bool {
    let uid = pattern.strip_suffix('*').unwrap_or(pattern);
    pattern == "*"
        || (!uid.is_empty()
            && uid.len() <= 400
            && uid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// Lowercase hyphenated.
    pub uid: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub actions: Vec<String>,
    pub indexes: Vec<String>,
    pub expires_at: Option<SystemTime>,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

impl ApiKey {
    /// Meilisearch's `KeyView`, fields in its order.
    pub fn view(&self, master_key: &str) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "key": generate_key(master_key, &self.uid),
            "uid": self.uid,
            "actions": self.actions,
            "indexes": self.indexes,
            "expiresAt": self.expires_at.map(rfc3339),
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at),
        })
    }

    pub fn is_index_authorized(&self, index: &str) -> bool {
        self.indexes.iter().any(|p| pattern_matches(p, index))
    }

    /// Meilisearch's `is_key_authorized`: the key holds the action on the index (or, without an
    /// index, on any index) and has not expired.
    pub fn is_authorized(&self, action: &str, index: Option<&str>, now: SystemTime) -> bool {
        let has_action = self.actions.iter().any(|a| action_grants(a, action));
        let has_index = match index {
            Some(index) => self.is_index_authorized(index),
            None => !self.indexes.is_empty(),
        };
        has_action && has_index && self.expires_at.is_none_or(|exp| now < exp)
    }

    /// The key's index patterns, sorted, as Meilisearch lists them in errors.
    pub fn sorted_indexes(&self) -> Vec<String> {
        let mut indexes = self.indexes.clone();
        indexes.sort();
        indexes.dedup();
        indexes
    }
}

fn default_key(name: &str, description: &str, actions: &[&str], now: SystemTime) -> ApiKey {
    ApiKey {
        uid: Uuid::new_v4().hyphenated().to_string(),
        name: Some(name.to_string()),
        description: Some(description.to_string()),
        actions: actions.iter().map(|a| a.to_string()).collect(),
        indexes: vec!["*".to_string()],
        expires_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// The keys Meilisearch creates on first start with a master key, in creation order.
pub fn default_keys(now: SystemTime) -> Vec<ApiKey> {
    let tick = |n: u32| now + std::time::Duration::from_nanos(u64::from(n) * 1000);
    vec![
        default_key(
            "Default Chat API Key",
            "Use it to chat and search from the frontend",
            &["chatCompletions", "search"],
            tick(0),
        ),
        default_key(
            "Default Admin API Key",
            "Use it for anything that is not a search operation. Caution! Do not expose it on a public frontend",
            &["*"],
            tick(1),
        ),
        default_key(
            "Default Search API Key",
            "Use it to search from the frontend",
            &["search"],
            tick(2),
        ),
        default_key(
            "Default Read-Only Admin API Key",
            "Use it to read information across the whole database. Caution! Do not expose this key on a public frontend",
            &["*.get", "keys.get"],
            tick(3),
        ),
    ]
}

const CREATE_FIELDS: &[&str] = &[
    "description",
    "name",
    "uid",
    "actions",
    "indexes",
    "expiresAt",
];
const PATCH_FIELDS: &[&str] = &["description", "name"];

fn object(body: &Value) -> Result<&Map<String, Value>, MeiliError> {
    match body {
        Value::Object(map) => Ok(map),
        other => Err(MeiliError::bad_request(format!(
            "Invalid value type: expected an object, but found {}",
            crate::params::describe(other)
        ))),
    }
}

fn opt_text(value: &Value, field: &str, code: &'static str) -> Result<Option<String>, MeiliError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(type_error(code, &format!(".{field}"), "a string", other)),
    }
}

/// A `POST /keys` body, checked field by field in the body's order like deserr, then the missing
/// required fields.
pub fn parse_create(body: &Value, now: SystemTime) -> Result<ApiKey, MeiliError> {
    let map = object(body)?;
    let mut key = ApiKey {
        uid: String::new(),
        name: None,
        description: None,
        actions: Vec::new(),
        indexes: Vec::new(),
        expires_at: None,
        created_at: now,
        updated_at: now,
    };
    let (mut actions, mut indexes, mut expires) = (false, false, false);
    for (field, value) in map {
        match field.as_str() {
            "description" => {
                key.description = opt_text(value, field, "invalid_api_key_description")?
            }
            "name" => key.name = opt_text(value, field, "invalid_api_key_name")?,
            "uid" => {
                let Value::String(s) = value else {
                    return Err(type_error("invalid_api_key_uid", ".uid", "a string", value));
                };
                let uid = Uuid::parse_str(s).map_err(|e| {
                    MeiliError::invalid(
                        "invalid_api_key_uid",
                        format!("Invalid value at `.uid`: {e}"),
                    )
                })?;
                key.uid = uid.hyphenated().to_string();
            }
            "actions" => {
                let code = "invalid_api_key_actions";
                let Value::Array(items) = value else {
                    return Err(type_error(code, ".actions", "an array", value));
                };
                for (i, item) in items.iter().enumerate() {
                    let location = format!(".actions[{i}]");
                    let Value::String(s) = item else {
                        return Err(type_error(code, &location, "a string", item));
                    };
                    if !ACTIONS.contains(&s.as_str()) {
                        return Err(MeiliError::invalid(
                            code,
                            format!(
                                "Unknown value `{s}` at `{location}`: expected one of {}",
                                backticked(ACTIONS)
                            ),
                        ));
                    }
                    key.actions.push(s.clone());
                }
                actions = true;
            }
            "indexes" => {
                let code = "invalid_api_key_indexes";
                let Value::Array(items) = value else {
                    return Err(type_error(code, ".indexes", "an array", value));
                };
                for (i, item) in items.iter().enumerate() {
                    let location = format!(".indexes[{i}]");
                    let Value::String(s) = item else {
                        return Err(type_error(code, &location, "a string", item));
                    };
                    if !valid_index_pattern(s) {
                        return Err(MeiliError::invalid(
                            code,
                            format!("Invalid value at `{location}`: `{s}` is not a valid index uid pattern. Index uid patterns can be an integer or a string containing only alphanumeric characters, hyphens (-), underscores (_), and optionally end with a star (*)."),
                        ));
                    }
                    key.indexes.push(s.clone());
                }
                indexes = true;
            }
            "expiresAt" => {
                let code = "invalid_api_key_expires_at";
                key.expires_at = match value {
                    Value::Null => None,
                    Value::String(s) => match parse_expiration(s) {
                        Some(t) if t > SystemTime::now() => Some(t),
                        _ => return Err(MeiliError::invalid(
                            code,
                            format!("Invalid value at `.expiresAt`: `{s}` is not a valid date. It should follow the RFC 3339 format to represents a date or datetime in the future or specified as a null value. e.g. 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'.\n"),
                        )),
                    },
                    other => return Err(type_error(code, ".expiresAt", "a string", other)),
                };
                expires = true;
            }
            other => return Err(unknown_field(other, CREATE_FIELDS)),
        }
    }
    for (present, field, code) in [
        (actions, "actions", "missing_api_key_actions"),
        (indexes, "indexes", "missing_api_key_indexes"),
        (expires, "expiresAt", "missing_api_key_expires_at"),
    ] {
        if !present {
            return Err(MeiliError::invalid(
                code,
                format!("Missing field `{field}`"),
            ));
        }
    }
    if key.uid.is_empty() {
        key.uid = Uuid::new_v4().hyphenated().to_string();
    }
    Ok(key)
}

/// A `PATCH /keys/{key}` body: `name` and `description` only (`null` clears them); the other
/// key fields are immutable. Returns the new (name, description), `None` meaning "unchanged".
#[allow(clippy::type_complexity)]
pub fn parse_patch(
    body: &Value,
) -> Result<(Option<Option<String>>, Option<Option<String>>), MeiliError> {
    let map = object(body)?;
    let (mut name, mut description) = (None, None);
    for (field, value) in map {
        match field.as_str() {
            "description" => {
                description = Some(opt_text(value, field, "invalid_api_key_description")?)
            }
            "name" => name = Some(opt_text(value, field, "invalid_api_key_name")?),
            other => {
                let code = match other {
                    "uid" => "immutable_api_key_uid",
                    "actions" => "immutable_api_key_actions",
                    "indexes" => "immutable_api_key_indexes",
                    "expiresAt" => "immutable_api_key_expires_at",
                    "createdAt" => "immutable_api_key_created_at",
                    "updatedAt" => "immutable_api_key_updated_at",
                    _ => return Err(unknown_field(other, PATCH_FIELDS)),
                };
                return Err(MeiliError::invalid(
                    code,
                    format!(
                        "Immutable field `{other}`: expected one of {}",
                        backticked(PATCH_FIELDS)
                    ),
                ));
            }
        }
    }
    Ok((name, description))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_is_hmac_sha256_of_the_hyphenated_uid() {
        // Computed independently: `printf %s 6062abda-a5aa-4414-ac91-ecd7944c0f8d |
        //   openssl dgst -sha256 -hmac test-node-master-key-0123456789`.
        let uid = "6062abda-a5aa-4414-ac91-ecd7944c0f8d";
        let expected = "2e0d5389073f3f8f3f6eba5781e8ec524852972f73f0737033cc8b07d07a9b72";
        assert_eq!(
            generate_key("test-node-master-key-0123456789", uid),
            expected
        );
        // Any spelling of the uid derives the same value.
        assert_eq!(
            generate_key(
                "test-node-master-key-0123456789",
                "6062ABDAA5AA4414AC91ECD7944C0F8D"
            ),
            expected
        );
        // RFC 4231 test case 2, to pin the HMAC itself.
        assert_eq!(
            generate_key("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn actions_and_indexes_match_like_meilisearch() {
        assert!(action_grants("*", "keys.create"));
        assert!(action_grants("documents.*", "documents.add"));
        assert!(!action_grants("documents.*", "search"));
        assert!(action_grants("*.get", "settings.get"));
        assert!(!action_grants("*.get", "keys.get"));
        assert!(!action_grants("*.get", "documents.add"));
        assert!(!action_grants("search", "documents.get"));
        assert!(pattern_matches("*", "movies"));
        assert!(pattern_matches("mov*", "movies"));
        assert!(!pattern_matches("movies", "movies2"));
        assert!(valid_index_pattern("products_*"));
        assert!(!valid_index_pattern("good doggo"));
    }

    #[test]
    fn expired_keys_and_foreign_indexes_are_refused() {
        let now = SystemTime::now();
        let mut key = parse_create(
            &json!({"actions": ["documents.*"], "indexes": ["mov*"], "expiresAt": "2999-01-01"}),
            now,
        )
        .unwrap();
        assert!(key.is_authorized("documents.add", Some("movies"), now));
        assert!(key.is_authorized("documents.get", None, now));
        assert!(!key.is_authorized("documents.add", Some("books"), now));
        assert!(!key.is_authorized("search", Some("movies"), now));
        key.expires_at = Some(now - std::time::Duration::from_secs(1));
        assert!(!key.is_authorized("documents.add", Some("movies"), now));
    }

    #[test]
    fn create_body_is_validated_in_order() {
        let now = SystemTime::now();
        let key = parse_create(
            &json!({"actions": ["search"], "indexes": ["movies"], "expiresAt": null}),
            now,
        )
        .unwrap();
        assert_eq!(key.uid.len(), 36);
        assert_eq!(&key.uid[14..15], "4");
        let e = parse_create(&json!({"indexes": ["x"], "expiresAt": null}), now).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("missing_api_key_actions", "Missing field `actions`")
        );
        let e = parse_create(
            &json!({"actions": ["doc.add"], "indexes": [], "expiresAt": null}),
            now,
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_api_key_actions");
        assert!(e
            .message
            .starts_with("Unknown value `doc.add` at `.actions[0]`: expected one of `*`, `search`, `documents.*`"));
        let e = parse_create(
            &json!({"actions": [], "indexes": [], "expiresAt": "2000-01-01"}),
            now,
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_api_key_expires_at");
        let e = parse_create(
            &json!({"uid": "nope", "actions": [], "indexes": [], "expiresAt": null}),
            now,
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_api_key_uid");
        assert!(e.message.starts_with("Invalid value at `.uid`: "));
        let e = parse_patch(&json!({"actions": ["*"]})).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                "immutable_api_key_actions",
                "Immutable field `actions`: expected one of `description`, `name`"
            )
        );
    }
}

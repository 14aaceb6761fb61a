//! Tenant tokens: JWTs signed HS256/384/512 with an API key's value, claims
//! `{"searchRules": [...] | {index: {"filter": ...} | null}, "apiKeyUid": uuid, "exp"?: unix}`.
//! They are accepted on the `search` action only, as in Meilisearch; their rules restrict the
//! indexes and add a filter to every search on an index.
//!
//! The checks follow Meilisearch 1.50 (recorded in `tests/test-node/fixtures/meilisearch-1.50/
//! tenant-*.json`): a bearer that is not three dot-separated parts is an invalid API key; the
//! header and claims must decode (`Could not decode tenant token, <jsonwebtoken error>.`); the
//! signature is checked with the key value derived from `apiKeyUid` (whether or not the key
//! exists: `InvalidSignature`); then the expiry (`Tenant token expired. ...`), then the parent
//! key (it must exist, hold `search` on the index and not be expired: an invalid API key), then
//! the rules' indexes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::MeiliError;
use crate::keys::pattern_matches;

/// A token's `searchRules`.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchRules {
    /// `["books", "movies*"]`: those indexes, no filter.
    Set(Vec<String>),
    /// `{"books": {"filter": ...} | null}`.
    Map(Vec<(String, Option<Value>)>),
}

impl SearchRules {
    fn patterns(&self) -> Vec<&str> {
        match self {
            Self::Set(set) => set.iter().map(String::as_str).collect(),
            Self::Map(map) => map.iter().map(|(p, _)| p.as_str()).collect(),
        }
    }

    /// The index patterns, sorted, as the "allowed indexes" of an error.
    pub fn allowed_indexes(&self) -> Vec<String> {
        let mut out: Vec<String> = self.patterns().into_iter().map(String::from).collect();
        out.sort();
        out.dedup();
        out
    }

    pub fn is_index_authorized(&self, index: &str) -> bool {
        self.patterns().iter().any(|p| pattern_matches(p, index))
    }

    /// The filter the rules add to a search on `index`: the exact rule, else the most specific
    /// (longest) matching pattern.
    pub fn filter_for(&self, index: &str) -> Option<Value> {
        let Self::Map(map) = self else { return None };
        map.iter()
            .filter(|(p, _)| pattern_matches(p, index))
            .max_by_key(|(p, _)| (p == index, p.len()))
            .and_then(|(_, f)| f.clone())
    }
}

/// Meilisearch's `fuse_filters`: the query's filter AND the rule's, as a filter array.
pub fn fuse_filters(query: Option<Value>, rule: Option<Value>) -> Option<Value> {
    match (query, rule) {
        (q, None) => q,
        (None, r) => r,
        (Some(Value::Array(mut q)), Some(Value::Array(r))) => {
            q.extend(r);
            Some(Value::Array(q))
        }
        (Some(Value::Array(mut q)), Some(r)) => {
            q.push(r);
            Some(Value::Array(q))
        }
        (Some(q), Some(Value::Array(mut r))) => {
            r.insert(0, q);
            Some(Value::Array(r))
        }
        (Some(q), Some(r)) => Some(Value::Array(vec![q, r])),
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRules {
    Set(Vec<String>),
    Map(Map<String, Value>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Claims {
    search_rules: RawRules,
    exp: Option<i64>,
    api_key_uid: String,
}

/// A token's claims once its signature checked out.
#[derive(Debug, Clone)]
pub struct Token {
    pub search_rules: SearchRules,
    pub exp: Option<i64>,
    pub api_key_uid: String,
}

/// What stops a bearer from being a usable tenant token.
#[derive(Debug)]
pub enum TokenError {
    /// Not shaped like a JWT: the caller answers as for an unknown API key.
    NotAToken,
    /// `Could not decode tenant token, <reason>.`
    Decode(String),
}

fn cannot_decode(reason: impl std::fmt::Display) -> TokenError {
    TokenError::Decode(reason.to_string())
}

fn b64(part: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| cannot_decode(format!("Base64 error: {e}")))
}

fn signature(alg: &str, key: &[u8], input: &[u8]) -> Option<Vec<u8>> {
    fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &[u8]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .expect("HMAC accepts keys of any length");
        m.update(input);
        m.finalize().into_bytes().to_vec()
    }
    match alg {
        "HS256" => Some(mac::<Hmac<sha2::Sha256>>(key, input)),
        "HS384" => Some(mac::<Hmac<sha2::Sha384>>(key, input)),
        "HS512" => Some(mac::<Hmac<sha2::Sha512>>(key, input)),
        _ => None,
    }
}

/// Decodes `token` and checks its signature with `key_of(apiKeyUid)`, as jsonwebtoken does for
/// Meilisearch (HS256/384/512 only, no registered claim required).
pub fn decode(token: &str, key_of: impl Fn(&str) -> String) -> Result<Token, TokenError> {
    let (message, sig) = token.rsplit_once('.').ok_or(TokenError::NotAToken)?;
    let (header, payload) = message.rsplit_once('.').ok_or(TokenError::NotAToken)?;
    let header: Header = serde_json::from_slice(&b64(header)?)
        .map_err(|e| cannot_decode(format!("JSON error: {e}")))?;
    if !matches!(header.alg.as_str(), "HS256" | "HS384" | "HS512") {
        return Err(cannot_decode("InvalidAlgorithm"));
    }
    let claims: Claims = serde_json::from_slice(&b64(payload)?)
        .map_err(|e| cannot_decode(format!("JSON error: {e}")))?;
    let key = key_of(&claims.api_key_uid);
    let expected = signature(&header.alg, key.as_bytes(), message.as_bytes())
        .ok_or_else(|| cannot_decode("InvalidAlgorithm"))?;
    let given = b64(sig)?;
    if !constant_time_eq(&given, &expected) {
        return Err(cannot_decode("InvalidSignature"));
    }
    let search_rules = match claims.search_rules {
        RawRules::Set(set) => SearchRules::Set(set),
        RawRules::Map(map) => SearchRules::Map(
            map.into_iter()
                .map(|(index, rule)| {
                    let filter = match rule {
                        Value::Object(mut o) => o.remove("filter").filter(|f| !f.is_null()),
                        _ => None,
                    };
                    (index, filter)
                })
                .collect(),
        ),
    };
    Ok(Token {
        search_rules,
        exp: claims.exp,
        api_key_uid: claims.api_key_uid,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn decode_error(reason: &str) -> MeiliError {
    MeiliError::new(
        axum::http::StatusCode::FORBIDDEN,
        "invalid_api_key",
        format!("Could not decode tenant token, {reason}."),
    )
}

pub fn expired(exp: i64, now: i64) -> MeiliError {
    MeiliError::new(
        axum::http::StatusCode::FORBIDDEN,
        "invalid_api_key",
        format!("Tenant token expired. Was valid up to `{exp}` and we're now `{now}`."),
    )
}

pub fn unauthorized_index(index: &str, rules: &SearchRules) -> MeiliError {
    MeiliError::new(
        axum::http::StatusCode::FORBIDDEN,
        "invalid_api_key",
        format!(
            "The provided tenant token cannot acces the index `{index}`, allowed indexes are {:?}.",
            rules.allowed_indexes()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sign(header: &Value, claims: &Value, key: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = signature(
            header["alg"].as_str().unwrap(),
            key.as_bytes(),
            input.as_bytes(),
        );
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.unwrap()))
    }

    #[test]
    fn tokens_decode_as_meilisearch_reads_them() {
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let claims = json!({"searchRules": {"books": {"filter": "genre = horror"}, "m*": null}, "apiKeyUid": "u"});
        let token = sign(&header, &claims, "secret");
        let t = decode(&token, |_| "secret".into()).unwrap();
        assert_eq!(
            t.search_rules.filter_for("books"),
            Some(json!("genre = horror"))
        );
        assert_eq!(t.search_rules.filter_for("movies"), None);
        assert!(t.search_rules.is_index_authorized("movies"));
        assert!(!t.search_rules.is_index_authorized("vecs"));
        assert!(matches!(
            decode(&token, |_| "other".into()),
            Err(TokenError::Decode(m)) if m == "InvalidSignature"
        ));
        assert!(matches!(
            decode("not-a-token", |_| String::new()),
            Err(TokenError::NotAToken)
        ));
        assert!(matches!(
            decode("a.b.c", |_| String::new()),
            Err(TokenError::Decode(m)) if m == "Base64 error: Invalid input length: 1"
        ));
        // Recorded: `{"searchRules":["books"],"exp":1796116835}` lacks the key uid.
        let token = sign(
            &header,
            &json!({"searchRules": ["books"], "exp": 1796116835}),
            "k",
        );
        assert!(matches!(
            decode(&token, |_| "k".into()),
            Err(TokenError::Decode(m)) if m == "JSON error: missing field `apiKeyUid` at line 1 column 42"
        ));
    }

    #[test]
    fn rule_filters_are_anded_with_the_query_filter() {
        assert_eq!(
            fuse_filters(None, Some(json!("a = 1"))),
            Some(json!("a = 1"))
        );
        assert_eq!(
            fuse_filters(Some(json!("b = 2")), Some(json!("a = 1"))),
            Some(json!(["b = 2", "a = 1"]))
        );
        assert_eq!(
            fuse_filters(
                Some(json!(["b = 2", ["c = 3", "d = 4"]])),
                Some(json!("a = 1"))
            ),
            Some(json!(["b = 2", ["c = 3", "d = 4"], "a = 1"]))
        );
        assert_eq!(
            fuse_filters(Some(json!("b = 2")), None),
            Some(json!("b = 2"))
        );
    }
}

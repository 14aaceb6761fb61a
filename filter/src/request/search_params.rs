//! The search parameters Miroir reads itself: the client's pagination, and `GET /search`'s query
//! string as the equivalent POST body (what Meilisearch 1.50 accepts, in its words when it refuses).

use serde_json::{json, Map, Value};

use crate::error::MeiliError;

/// The client's pagination: offset/limit (estimated totals) or page/hitsPerPage (exhaustive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pagination {
    Offset { offset: u64, limit: u64 },
    Pages { page: u64, hits_per_page: u64 },
}

impl Pagination {
    /// How many merged hits to skip, then keep.
    pub(crate) fn window(self) -> (u64, u64) {
        match self {
            Pagination::Offset { offset, limit } => (offset, limit),
            Pagination::Pages {
                page,
                hits_per_page,
            } => (
                page.saturating_sub(1).saturating_mul(hits_per_page),
                if page == 0 { 0 } else { hits_per_page },
            ),
        }
    }
}

fn positive_integer(
    body: &Map<String, Value>,
    field: &str,
    code: &'static str,
) -> Result<Option<u64>, MeiliError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64()),
        Some(other) => Err(MeiliError::bad_request(
            code,
            format!("Invalid value type at `.{field}`: expected a positive integer, but found {}: `{other}`", describe(other)),
        )),
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() => "a negative integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn parse_pagination(body: &Map<String, Value>) -> Result<Pagination, MeiliError> {
    let offset = positive_integer(body, "offset", "invalid_search_offset")?;
    let limit = positive_integer(body, "limit", "invalid_search_limit")?;
    let page = positive_integer(body, "page", "invalid_search_page")?;
    let hits_per_page = positive_integer(body, "hitsPerPage", "invalid_search_hits_per_page")?;
    if page.is_some() || hits_per_page.is_some() {
        return Ok(Pagination::Pages {
            page: page.unwrap_or(1),
            hits_per_page: hits_per_page.unwrap_or(20),
        });
    }
    Ok(Pagination::Offset {
        offset: offset.unwrap_or(0),
        limit: limit.unwrap_or(20),
    })
}

/// How a `GET /search` parameter maps to the POST body.
enum GetParam {
    Text,
    List,
    Integer,
    Float,
    Bool,
}

/// In the order Meilisearch 1.50's unknown-parameter error lists them (recorded from the binary).
const GET_PARAMS: &[(&str, GetParam)] = &[
    ("q", GetParam::Text),
    ("offset", GetParam::Integer),
    ("limit", GetParam::Integer),
    ("page", GetParam::Integer),
    ("hitsPerPage", GetParam::Integer),
    ("attributesToRetrieve", GetParam::List),
    ("attributesToCrop", GetParam::List),
    ("cropLength", GetParam::Integer),
    ("cropMarker", GetParam::Text),
    ("attributesToHighlight", GetParam::List),
    ("highlightPreTag", GetParam::Text),
    ("highlightPostTag", GetParam::Text),
    ("showMatchesPosition", GetParam::Bool),
    ("filter", GetParam::Text),
    ("sort", GetParam::List),
    ("distinct", GetParam::Text),
    ("facets", GetParam::List),
    ("matchingStrategy", GetParam::Text),
    ("attributesToSearchOn", GetParam::List),
    ("rankingScoreThreshold", GetParam::Float),
    ("locales", GetParam::List),
    ("hybridEmbedder", GetParam::Text),
    ("hybridSemanticRatio", GetParam::Float),
    ("vector", GetParam::List),
    ("retrieveVectors", GetParam::Bool),
    ("personalizeUserContext", GetParam::Text),
    ("useNetwork", GetParam::Bool),
    ("showRankingScore", GetParam::Bool),
    ("showRankingScoreDetails", GetParam::Bool),
    ("showPerformanceDetails", GetParam::Bool),
];

/// `GET /indexes/{uid}/search` parameters as the equivalent POST body, with Meilisearch's errors.
pub fn query_from_get(pairs: &[(String, String)]) -> Result<Map<String, Value>, MeiliError> {
    let mut body = Map::new();
    let mut hybrid = Map::new();
    for (name, raw) in pairs {
        let Some((_, kind)) = GET_PARAMS.iter().find(|(n, _)| n == name) else {
            let accepted: Vec<&str> = GET_PARAMS.iter().map(|(n, _)| *n).collect();
            return Err(MeiliError::unknown_parameter(name, &accepted));
        };
        let code = invalid_search_code(name);
        let invalid = |what: &str| {
            MeiliError::bad_request(
                code,
                format!("Invalid value in parameter `{name}`: could not parse `{raw}` as {what}"),
            )
        };
        let value = match kind {
            GetParam::Text => json!(raw),
            GetParam::List if name == "vector" => {
                let floats: Result<Vec<f64>, _> =
                    raw.split(',').map(|v| v.trim().parse::<f64>()).collect();
                json!(floats.map_err(|_| invalid("a list of floats"))?)
            }
            GetParam::List => json!(raw
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect::<Vec<_>>()),
            GetParam::Integer => json!(raw
                .parse::<u64>()
                .map_err(|_| invalid("a positive integer"))?),
            GetParam::Float => json!(raw.parse::<f64>().map_err(|_| invalid("a float"))?),
            GetParam::Bool => json!(raw.parse::<bool>().map_err(|_| invalid("a boolean"))?),
        };
        match name.as_str() {
            "hybridEmbedder" => {
                hybrid.insert("embedder".into(), value);
            }
            "hybridSemanticRatio" => {
                hybrid.insert("semanticRatio".into(), value);
            }
            "personalizeUserContext" => {
                body.insert("personalize".into(), json!({"userContext": value}));
            }
            _ => {
                body.insert(name.clone(), value);
            }
        }
    }
    if !hybrid.is_empty() {
        body.insert("hybrid".into(), Value::Object(hybrid));
    }
    Ok(body)
}

/// Meilisearch's `invalid_search_*` code of a parameter (`hitsPerPage` → `invalid_search_hits_per_page`).
fn invalid_search_code(name: &str) -> &'static str {
    match name {
        "offset" => "invalid_search_offset",
        "limit" => "invalid_search_limit",
        "page" => "invalid_search_page",
        "hitsPerPage" => "invalid_search_hits_per_page",
        "cropLength" => "invalid_search_crop_length",
        "rankingScoreThreshold" => "invalid_search_ranking_score_threshold",
        "hybridSemanticRatio" => "invalid_search_semantic_ratio",
        "vector" => "invalid_search_vector",
        "retrieveVectors" => "invalid_search_retrieve_vectors",
        "showMatchesPosition" => "invalid_search_show_matches_position",
        "showRankingScore" => "invalid_search_show_ranking_score",
        "showRankingScoreDetails" => "invalid_search_show_ranking_score_details",
        "showPerformanceDetails" => "invalid_search_show_performance_details",
        "useNetwork" => "invalid_search_use_network",
        _ => "bad_request",
    }
}

use serde_json::{json, Map, Value};

use super::*;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// Three nodes' full result lists with many equal scores.
fn node_lists() -> Vec<Vec<Value>> {
    let scores = [
        [0.9, 0.9, 0.5, 0.5, 0.5, 0.1],
        [0.9, 0.7, 0.5, 0.5, 0.2, 0.1],
        [1.0, 0.5, 0.5, 0.5, 0.5, 0.5],
    ];
    scores
        .iter()
        .enumerate()
        .map(|(n, list)| {
            list.iter()
                .enumerate()
                .map(|(i, s)| json!({"id": format!("{n}-{i}"), "_rankingScore": s, "_miroir_shard": n}))
                .collect()
        })
        .collect()
}

fn page(lists: &[Vec<Value>], offset: u64, limit: u64) -> Vec<String> {
    let pagination = Pagination::Offset { offset, limit };
    let wanted = (offset + limit) as usize;
    let responses = lists
        .iter()
        .map(|hits| {
            let total = hits.len();
            obj(json!({"hits": hits.iter().take(wanted).cloned().collect::<Vec<_>>(), "query": "", "processingTimeMs": 1, "limit": wanted, "offset": 0, "estimatedTotalHits": total}))
        })
        .collect();
    let merged = merge(&obj(json!({})), pagination, responses);
    merged["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn pages_partition_the_merged_order() {
    let lists = node_lists();
    let everything = page(&lists, 0, 100);
    assert_eq!(everything.len(), 18);
    assert_eq!(everything[0], "2-0", "highest score first");
    for limit in 1..6 {
        let mut walked = Vec::new();
        let mut offset = 0;
        while offset < 18 {
            walked.extend(page(&lists, offset, limit));
            offset += limit;
        }
        assert_eq!(
            walked, everything,
            "paging by {limit} neither repeats nor skips"
        );
    }
}

#[test]
fn totals_add_up_and_internal_fields_are_stripped() {
    let responses = vec![
        obj(
            json!({"hits": [{"id": 1, "_rankingScore": 0.5, "_miroir_shard": 0}], "query": "q", "processingTimeMs": 3, "limit": 20, "offset": 0, "estimatedTotalHits": 4, "facetDistribution": {"genre": {"b": 1, "a": 2}}, "facetStats": {"year": {"min": 1990.0, "max": 2000.0}}, "requestUid": "u"}),
        ),
        obj(
            json!({"hits": [{"id": 2, "_rankingScore": 0.7, "_miroir_shard": 1}], "query": "q", "processingTimeMs": 9, "limit": 20, "offset": 0, "estimatedTotalHits": 5, "facetDistribution": {"genre": {"c": 4, "a": 1}}, "facetStats": {"year": {"min": 1985.0, "max": 1999.0}}, "requestUid": "v"}),
        ),
    ];
    let merged = merge(
        &obj(json!({"showRankingScore": true})),
        Pagination::Offset {
            offset: 0,
            limit: 20,
        },
        responses,
    );
    assert_eq!(
        merged["hits"],
        json!([{"id": 2, "_rankingScore": 0.7}, {"id": 1, "_rankingScore": 0.5}])
    );
    assert_eq!(merged["estimatedTotalHits"], 9);
    assert_eq!(merged["processingTimeMs"], 9);
    assert_eq!(
        merged["facetDistribution"],
        json!({"genre": {"a": 3, "b": 1, "c": 4}})
    );
    assert_eq!(
        merged["facetStats"],
        json!({"year": {"min": 1985.0, "max": 2000.0}})
    );
    let keys: Vec<&String> = merged.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "hits",
            "query",
            "processingTimeMs",
            "limit",
            "offset",
            "estimatedTotalHits",
            "facetDistribution",
            "facetStats",
            "requestUid"
        ]
    );
}

#[test]
fn exhaustive_pagination_counts_pages() {
    let responses = vec![
        obj(
            json!({"hits": [], "query": "", "processingTimeMs": 0, "hitsPerPage": 4, "page": 1, "totalPages": 1, "totalHits": 3}),
        ),
        obj(
            json!({"hits": [], "query": "", "processingTimeMs": 0, "hitsPerPage": 4, "page": 1, "totalPages": 2, "totalHits": 5}),
        ),
    ];
    let merged = merge(
        &obj(json!({"page": 2, "hitsPerPage": 2})),
        Pagination::Pages {
            page: 2,
            hits_per_page: 2,
        },
        responses,
    );
    assert_eq!(
        (
            merged["totalHits"].clone(),
            merged["totalPages"].clone(),
            merged["page"].clone()
        ),
        (json!(8), json!(4), json!(2))
    );
}

#[test]
fn pagination_parameters_are_validated() {
    assert_eq!(
        parse_pagination(&obj(json!({}))).unwrap(),
        Pagination::Offset {
            offset: 0,
            limit: 20
        }
    );
    assert_eq!(
        parse_pagination(&obj(json!({"hitsPerPage": 5}))).unwrap(),
        Pagination::Pages {
            page: 1,
            hits_per_page: 5
        }
    );
    let err = parse_pagination(&obj(json!({"limit": -1}))).unwrap_err();
    assert_eq!((err.status, err.code), (400, "invalid_search_limit"));
    let body = node_body(
        &obj(json!({"page": 3, "hitsPerPage": 10, "filter": [["a = 1", "b = 2"]]})),
        parse_pagination(&obj(json!({"page": 3, "hitsPerPage": 10}))).unwrap(),
        &[2, 5],
    );
    assert_eq!(body["page"], 1);
    assert_eq!(body["hitsPerPage"], 30);
    assert_eq!(
        body["filter"],
        json!([["a = 1", "b = 2"], "_miroir_shard IN [2, 5]"])
    );
}

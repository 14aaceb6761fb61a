use serde_json::{json, Map, Value};

use super::*;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn limits(facet_values: usize, asked: u64, displayed: bool) -> Limits {
    Limits {
        facet_values,
        asked,
        list_size: 1000,
        displayed,
    }
}

fn studio_hits(studios: &[Option<&str>]) -> Vec<Value> {
    studios
        .iter()
        .map(|s| match s {
            Some(s) => json!({"studio": s}),
            None => json!({}),
        })
        .collect()
}

#[test]
fn values_on_several_nodes_count_once() {
    // Node 0 holds studios a, b and two documents without one; node 1 holds b, c.
    let n0 = obj(
        json!({"hits": studio_hits(&[Some("a")]), "estimatedTotalHits": 6,
        "facetDistribution": {"studio": {"a": 3, "b": 1}}}),
    );
    let n1 = obj(
        json!({"hits": studio_hits(&[Some("b")]), "estimatedTotalHits": 7,
        "facetDistribution": {"studio": {"B": 2, "c": 5}}}),
    );
    let census = Census::new("studio", &limits(100, 1, true), &[&n0, &n1]);
    assert_eq!(census.to_list(), Vec::<usize>::new());
    // a, b, c and two documents without a studio.
    assert_eq!(census.total(), 5);
}

#[test]
fn a_cut_facet_list_is_completed_by_the_hits_a_node_returned_in_full() {
    let n0 = obj(
        json!({"hits": studio_hits(&[Some("a"), Some("b"), None]), "estimatedTotalHits": 3,
        "facetDistribution": {"studio": {"a": 1}}}),
    );
    let n1 = obj(
        json!({"hits": studio_hits(&[Some("a")]), "estimatedTotalHits": 1,
        "facetDistribution": {"studio": {"a": 1}}}),
    );
    let census = Census::new("studio", &limits(1, 20, true), &[&n0, &n1]);
    assert!(census.to_list().is_empty());
    assert_eq!(census.total(), 3, "a, b, and one document without a studio");
}

#[test]
fn a_node_with_more_values_is_listed_then_counted() {
    let n0 = obj(
        json!({"hits": studio_hits(&[Some("a")]), "estimatedTotalHits": 90,
        "facetDistribution": {"studio": {"a": 1}}}),
    );
    let n1 = obj(json!({"hits": [], "estimatedTotalHits": 0, "facetDistribution": {"studio": {}}}));
    let mut census = Census::new("studio", &limits(1, 1, true), &[&n0, &n1]);
    assert_eq!(census.to_list(), vec![0]);
    assert_eq!(
        census.total(),
        90,
        "until listed: the sum, less nothing seen twice"
    );
    census.accept_list(
        0,
        &obj(json!({"hits": studio_hits(&[Some("a"), Some("c"), None]), "totalHits": 3})),
    );
    assert_eq!(census.total(), 3, "a, c, and one document without a studio");
}

#[test]
fn a_hidden_attribute_is_counted_from_facets_only() {
    let n0 = obj(json!({"hits": [{"id": 1}], "estimatedTotalHits": 40,
        "facetDistribution": {"studio": {"a": 1, "b": 1}}}));
    let n1 = obj(json!({"hits": [{"id": 2}], "estimatedTotalHits": 40,
        "facetDistribution": {"studio": {"b": 1, "c": 1}}}));
    let census = Census::new("studio", &limits(2, 1, false), &[&n0, &n1]);
    assert!(census.to_list().is_empty(), "hits cannot show it");
    assert_eq!(census.total(), 79, "the sum less `b`, seen on both");
}

#[test]
fn numbers_in_hits_match_their_facet_keys() {
    let n0 = obj(json!({"hits": [{"year": 1995}, {"year": 2001.5}], "estimatedTotalHits": 2}));
    let n1 = obj(json!({"hits": [], "estimatedTotalHits": 5,
        "facetDistribution": {"year": {"1995": 4, "2001.5": 1}}}));
    let census = Census::new("year", &limits(100, 20, true), &[&n0, &n1]);
    assert_eq!(census.total(), 2);
}

#[test]
fn several_values_in_a_document_fall_back_to_the_sum() {
    let n0 = obj(
        json!({"hits": [{"genres": ["a", "b"]}], "estimatedTotalHits": 1,
        "facetDistribution": {"genres": {"a": 1, "b": 1}}}),
    );
    let n1 = obj(json!({"hits": [{"genres": ["a"]}], "estimatedTotalHits": 1,
        "facetDistribution": {"genres": {"a": 1}}}));
    let census = Census::new("genres", &limits(100, 20, true), &[&n0, &n1]);
    assert!(census.to_list().is_empty());
    assert_eq!(census.total(), 2);
}

#[test]
fn a_node_with_more_distinct_hits_than_it_lists_leaves_the_sum() {
    let limits = Limits {
        facet_values: 2,
        asked: 1,
        list_size: 3,
        displayed: true,
    };
    let n0 = obj(
        json!({"hits": studio_hits(&[Some("a")]), "estimatedTotalHits": 9,
        "facetDistribution": {"studio": {"a": 1, "b": 1}}}),
    );
    let n1 = obj(
        json!({"hits": [], "estimatedTotalHits": 1, "facetDistribution": {"studio": {"a": 1}}}),
    );
    let mut census = Census::new("studio", &limits, &[&n0, &n1]);
    assert_eq!(census.to_list(), vec![0]);
    // A node lists at most `maxTotalHits` hits.
    census.accept_list(
        0,
        &obj(json!({"hits": studio_hits(&[Some("a"), Some("b"), Some("c")]), "totalHits": 5})),
    );
    assert_eq!(census.total(), 5, "5 + 1, less `a`, seen on both");
}

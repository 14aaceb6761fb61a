//! Miroir's fields hidden from an answer one node gave alone (a read it answers unchanged):
//! one Meilisearch holding the index has no `_miroir_shard` or `_miroir_seq`.

use miroir_topology::reserved;
use serde_json::{Map, Value};

use crate::merge::hits::{write_answer, NodeAnswer, Shown};

/// [`hide_reserved`] for a single search's answer, without building its hits: they are written
/// out as the node sent them, Miroir's fields removed. `None` for any other answer.
pub(crate) fn hide_reserved_in_search(body: &[u8]) -> Option<Vec<u8>> {
    let mut page = NodeAnswer::parse(body)?;
    let single_search = page.fields.contains_key("hits")
        && !page.fields.contains_key("results")
        && !page.fields.contains_key("facetsByIndex");
    if !single_search {
        return None;
    }
    hide_in_facets(&mut page.fields);
    // The client's own request: its ranking fields are shown as the node wrote them.
    let shown = Shown {
        score: true,
        details: true,
    };
    Some(write_answer(&page.fields, page.hits.iter(), shown, None))
}

/// Hides Miroir's fields wherever a read's answer shows document fields: hits (with their
/// `_formatted` and `_matchesPosition`), listed documents, facet distributions and stats, at the
/// top level and in each result of a multi-search.
pub(crate) fn hide_reserved(answer: &mut Value) {
    let Some(map) = answer.as_object_mut() else {
        return;
    };
    hide_in_facets(map);
    if let Some(Value::Array(hits)) = map.get_mut("hits") {
        hits.iter_mut().for_each(hide_in_hit);
    }
    if let Some(Value::Object(by_index)) = map.get_mut("facetsByIndex") {
        for facets in by_index.values_mut().filter_map(Value::as_object_mut) {
            hide_in_facets(facets);
        }
    }
    if let Some(Value::Array(results)) = map.get_mut("results") {
        for result in results.iter_mut() {
            let is_search = result.get("hits").is_some();
            if is_search {
                hide_reserved(result);
            } else if let Some(document) = result.as_object_mut() {
                reserved::strip(document);
            }
        }
    }
}

fn hide_in_hit(hit: &mut Value) {
    let Some(hit) = hit.as_object_mut() else {
        return;
    };
    reserved::strip(hit);
    for key in ["_formatted", "_matchesPosition"] {
        if let Some(Value::Object(inner)) = hit.get_mut(key) {
            reserved::strip(inner);
        }
    }
}

fn hide_in_facets(map: &mut Map<String, Value>) {
    for key in ["facetDistribution", "facetStats"] {
        if let Some(Value::Object(facets)) = map.get_mut(key) {
            reserved::strip(facets);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_search_answer_is_hidden_from_without_building_its_hits() {
        let shard = reserved::SHARD_FIELD;
        let seq = reserved::SEQ_FIELD;
        let mut answer = json!({
            "hits": [{"id": 1, shard: "....", "title": "a", seq: "..", "_formatted": {"id": "1", shard: "...."},
                      "_matchesPosition": {shard: []}, "_rankingScore": 0.5}],
            "query": "a", "processingTimeMs": 1, "limit": 20, "offset": 0, "estimatedTotalHits": 1,
            "facetDistribution": {"genre": {"a": 1}, shard: {"....": 1}},
            "facetStats": {shard: {"min": 0, "max": 1}},
        });
        let bytes = serde_json::to_vec(&answer).unwrap();
        let hidden = hide_reserved_in_search(&bytes).unwrap();
        hide_reserved(&mut answer);
        assert_eq!(
            hidden,
            serde_json::to_vec(&answer).unwrap(),
            "byte for byte"
        );
    }

    #[test]
    fn hides_reserved_fields_in_every_place_a_read_shows_them() {
        let shard = reserved::SHARD_FIELD;
        let seq = reserved::SEQ_FIELD;
        let mut answer = json!({
            "hits": [{"id": 1, shard: "....", seq: "..", "_formatted": {"id": "1", shard: "...."},
                      "_matchesPosition": {shard: []}}],
            "facetDistribution": {"genre": {"a": 1}, shard: {"....": 1}},
            "facetStats": {shard: {"min": 0, "max": 1}},
            "results": [{"hits": [{"id": 2, seq: "."}], "facetDistribution": {shard: {}}},
                        {"id": 3, shard: "...."}],
            "facetsByIndex": {"movies": {"distribution": {}, "facetDistribution": {shard: {}}}},
        });
        let bytes = serde_json::to_vec(&answer).unwrap();
        hide_reserved(&mut answer);
        assert_eq!(
            hide_reserved_in_search(&bytes),
            None,
            "not a single search's answer"
        );
        assert_eq!(
            answer,
            json!({
                "hits": [{"id": 1, "_formatted": {"id": "1"}, "_matchesPosition": {}}],
                "facetDistribution": {"genre": {"a": 1}},
                "facetStats": {},
                "results": [{"hits": [{"id": 2}], "facetDistribution": {}}, {"id": 3}],
                "facetsByIndex": {"movies": {"distribution": {}, "facetDistribution": {}}},
            })
        );
    }
}

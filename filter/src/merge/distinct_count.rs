//! The number of hits of a search with `distinct`, across shards.
//!
//! Each node applies `distinct` to its own shards, so a value held on several shards is one hit
//! on each and the nodes' totals add up to more than one node's. For an attribute with at most
//! one value per document, one node's count (exhaustive in page mode) is the number of distinct
//! values among the matching documents plus the matching documents without a value (each its own
//! hit). Miroir learns each node's values from, in order:
//! - the node's facet distribution of the attribute, asked along with the search: complete when
//!   it lists fewer than `maxValuesPerFacet` values; the documents without a value are then the
//!   node's total less the listed counts (both are over the same documents);
//! - the node's hits, when the attribute is displayed and the node returned fewer hits than it
//!   was asked for (so it returned every distinct hit it has);
//! - one more request: the node's distinct hits up to `maxTotalHits` showing only the attribute,
//!   in page mode so that its total is exact; complete when that total fits.
//!
//! So the total is exact unless a node holds more values than it lists (`maxValuesPerFacet` in
//! its facets, and `maxTotalHits` hits, or none when the attribute is not displayed); it is then
//! the nodes' totals summed less the values seen on several nodes. With several values in a
//! document, it is the nodes' totals summed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::merge::facets::facet_key;
use crate::merge::search::distinct_values;

#[derive(Debug)]
pub struct Census {
    attribute: String,
    nodes: Vec<Node>,
    /// A document holds several values: the count is no longer a count of values.
    multi: bool,
    /// How many distinct hits one request can list (`maxTotalHits`).
    list_size: u64,
}

#[derive(Debug, Default)]
struct Node {
    /// The node's own count.
    total: u64,
    /// Values seen on the node (all of them once `valueless` is known).
    values: BTreeSet<String>,
    /// Matching documents without a value, once every value of the node is known.
    valueless: Option<u64>,
    /// Listing the node's distinct hits could tell what is missing.
    listable: bool,
}

/// What bounds the census.
pub struct Limits {
    /// `maxValuesPerFacet`.
    pub facet_values: usize,
    /// How many hits each node was asked for (after its `maxTotalHits`).
    pub asked: u64,
    /// `maxTotalHits`: how many hits one request can list.
    pub list_size: u64,
    /// The attribute shows in hits.
    pub displayed: bool,
}

/// The node's count, in whichever pagination it answered.
fn total_of(response: &Map<String, Value>) -> u64 {
    response
        .get("totalHits")
        .or_else(|| response.get("estimatedTotalHits"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// A hit's values of the attribute, keyed like facet distribution values (numbers as Meilisearch
/// writes them, strings normalized).
fn hit_values(hit: &Value, attribute: &str) -> Vec<String> {
    distinct_values(hit, attribute)
        .into_iter()
        .map(|v| v.get(2..).unwrap_or_default().to_string())
        .collect()
}

impl Census {
    pub fn new(attribute: &str, limits: &Limits, responses: &[&Map<String, Value>]) -> Self {
        let mut census = Census {
            attribute: attribute.to_string(),
            nodes: Vec::new(),
            multi: false,
            list_size: limits.list_size,
        };
        for response in responses {
            let total = total_of(response);
            let hits = response
                .get("hits")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let facet = response
                .get("facetDistribution")
                .and_then(|d| d.get(attribute))
                .and_then(Value::as_object);
            let mut node = Node {
                total,
                values: BTreeSet::new(),
                valueless: None,
                listable: limits.displayed && census.list_size > hits.len() as u64,
            };
            if limits.displayed {
                let valueless = census.read_hits(&mut node, hits);
                if (hits.len() as u64) < limits.asked {
                    node.valueless = Some(valueless);
                }
            }
            if let Some(facet) = facet {
                node.values.extend(facet.keys().map(|v| facet_key(v)));
                if facet.len() < limits.facet_values {
                    let listed = facet
                        .values()
                        .filter_map(Value::as_u64)
                        .fold(0u64, u64::saturating_add);
                    // Counts above the total: some document holds several values.
                    census.multi |= listed > total;
                    node.valueless = Some(total.saturating_sub(listed));
                }
            }
            census.nodes.push(node);
        }
        census
    }

    /// Adds the hits' values to the node's; returns how many hits had none.
    fn read_hits(&mut self, node: &mut Node, hits: &[Value]) -> u64 {
        let mut valueless = 0u64;
        for hit in hits {
            let values = hit_values(hit, &self.attribute);
            self.multi |= values.len() > 1;
            if values.is_empty() {
                valueless = valueless.saturating_add(1);
            }
            node.values.extend(values);
        }
        valueless
    }

    /// The nodes whose distinct hits are worth listing.
    pub fn to_list(&self) -> Vec<usize> {
        if self.multi {
            return Vec::new();
        }
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.valueless.is_none() && n.listable)
            .map(|(i, _)| i)
            .collect()
    }

    /// The search that lists a node's distinct hits: the client's search restricted like the
    /// node's, in page mode, showing only the attribute.
    pub fn list_query(&self, probe_base: &Map<String, Value>) -> Map<String, Value> {
        let mut query = probe_base.clone();
        query.insert("distinct".into(), Value::from(self.attribute.as_str()));
        query.insert("page".into(), Value::from(1));
        query.insert("hitsPerPage".into(), Value::from(self.list_size));
        query.insert(
            "attributesToRetrieve".into(),
            Value::from(vec![self.attribute.as_str()]),
        );
        query
    }

    /// A node's answer to `list_query`.
    pub fn accept_list(&mut self, node: usize, response: &Map<String, Value>) {
        let hits = response
            .get("hits")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let total = total_of(response);
        let Some(mut entry) = self.nodes.get_mut(node).map(std::mem::take) else {
            return;
        };
        let valueless = self.read_hits(&mut entry, &hits);
        // Exhaustive, unlike the estimate an offset/limit search gives.
        entry.total = total;
        entry.listable = false;
        if hits.len() as u64 >= total {
            entry.valueless = Some(valueless);
        }
        if let Some(slot) = self.nodes.get_mut(node) {
            *slot = entry;
        }
    }

    /// The number of distinct hits over every node.
    pub fn total(&self) -> u64 {
        let summed = self
            .nodes
            .iter()
            .fold(0u64, |sum, n| sum.saturating_add(n.total));
        if self.multi {
            return summed;
        }
        let values: BTreeSet<&String> = self.nodes.iter().flat_map(|n| &n.values).collect();
        let valueless = self
            .nodes
            .iter()
            .filter_map(|n| n.valueless)
            .fold(0u64, u64::saturating_add);
        if self.nodes.iter().all(|n| n.valueless.is_some()) {
            return (values.len() as u64).saturating_add(valueless);
        }
        let mut holders: BTreeMap<&String, u64> = BTreeMap::new();
        for value in self.nodes.iter().flat_map(|n| &n.values) {
            let held = holders.entry(value).or_default();
            *held = held.saturating_add(1);
        }
        let repeated = holders
            .values()
            .fold(0u64, |sum, h| sum.saturating_add(h.saturating_sub(1)));
        summed.saturating_sub(repeated)
    }
}

#[cfg(test)]
mod tests;

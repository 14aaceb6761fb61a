//! The rounds a scattered search may need after the nodes' first answers: exact facet counts in
//! `count` order (`refine`), the number of distinct hits (`distinct_count`) and the hits of a
//! search distinct on an attribute with several values per document (`distinct_hits`).
//! `FollowUp` turns their questions into node calls and the answers back into what they learn;
//! the scatter sends the calls, and merges once no question is left, from the first answers
//! completed here.
//!
//! Every follow-up call repeats the client's search on the same node, restricted to the same
//! shards, with an extra filter: the counting ones without the hits, so they count the same
//! documents.

use std::collections::BTreeMap;

use miroir_topology::reserved;
use serde_json::{json, Map, Value};

use super::distinct_count::{Census, Limits};
use super::distinct_hits::DistinctHits;
use super::refine::{probe_filter, Probe, Race};
use crate::merge::facets::{Faceting, DEFAULT_MAX_TOTAL_HITS};
use crate::plan::search_body::{
    asks_facet, counting_base, distinct_of, restrict_filter, with_condition,
};
use crate::request::search_params::Pagination;

/// What was scattered.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Search(Pagination),
    FacetSearch,
    Federated,
}

/// A call to make: `POST path` with `body`, to the node that answered for `slot`.
#[derive(Debug)]
pub struct Call {
    pub slot: usize,
    pub path: String,
    pub body: Value,
}

/// One attribute's race, in one index (a federated search spans several).
struct Entry {
    index: String,
    attribute: String,
    race: Race,
}

/// What a call asks.
enum Question {
    /// A probe of one entry's race.
    Probe(usize, Probe),
    /// The node's distinct hits, for the census.
    List,
    /// The node's hits again, for `distinct_hits`.
    Hits,
}

pub struct FollowUp {
    kind: Kind,
    index: String,
    client: Map<String, Value>,
    /// Each slot's shards.
    shards: Vec<Vec<u32>>,
    entries: Vec<Entry>,
    census: Option<Census>,
    hits: Option<DistinctHits>,
    /// A facet Miroir asked for the census only: not shown to the client.
    added_facet: Option<String>,
    /// The round in flight: each call's slot and questions.
    round: Vec<(usize, Vec<Question>)>,
    rounds: u8,
}

/// A facet distribution of one attribute (`{value: count}`) as a list.
fn listed(distribution: Option<&Value>) -> Option<Vec<(String, u64)>> {
    distribution.and_then(Value::as_object).map(|values| {
        values
            .iter()
            .map(|(v, c)| (v.clone(), c.as_u64().unwrap_or(0)))
            .collect()
    })
}

/// A facet search's `facetHits` as a list.
fn facet_hits(hits: Option<&Value>) -> Option<Vec<(String, u64)>> {
    hits.and_then(Value::as_array).map(|hits| {
        hits.iter()
            .filter_map(|h| {
                Some((
                    h.get("value")?.as_str()?.to_string(),
                    h.get("count")?.as_u64()?,
                ))
            })
            .collect()
    })
}

/// Whether any of the queries is hybrid: each node then decides alone which documents its
/// semantic half adds, so a count asked again need not be over the same documents.
fn hybrid(queries: &[&Map<String, Value>]) -> bool {
    queries.iter().any(|q| q.contains_key("hybrid"))
}

impl FollowUp {
    /// From the first answers, one per slot (each with its shards).
    pub fn start(
        kind: Kind,
        index: &str,
        client: &Map<String, Value>,
        faceting: &dyn Fn(&str) -> Faceting,
        slots: &[(&[u32], &Map<String, Value>)],
    ) -> Self {
        let mut follow = FollowUp {
            kind,
            index: index.to_string(),
            client: client.clone(),
            shards: slots.iter().map(|(s, _)| s.to_vec()).collect(),
            entries: Vec::new(),
            census: None,
            hits: None,
            added_facet: None,
            round: Vec::new(),
            rounds: 0,
        };
        let responses: Vec<&Map<String, Value>> = slots.iter().map(|(_, r)| *r).collect();
        match kind {
            Kind::Search(pagination) => {
                let settings = faceting(index);
                match distinct_of(client) {
                    Some(attr) => {
                        let (skip, keep) = pagination.window();
                        let cap = settings.max_total_hits.unwrap_or(u64::MAX);
                        let limits = Limits {
                            facet_values: settings.max_values_per_facet,
                            asked: skip.saturating_add(keep).min(cap),
                            list_size: settings.max_total_hits.unwrap_or(DEFAULT_MAX_TOTAL_HITS),
                            displayed: settings.shows(&attr),
                        };
                        follow.census = Some(Census::new(&attr, &limits, &responses));
                        follow.hits = DistinctHits::start(
                            client,
                            &attr,
                            pagination,
                            settings.max_total_hits,
                            limits.list_size,
                            &responses,
                        );
                        if !asks_facet(client, &attr) {
                            follow.added_facet = Some(attr);
                        }
                    }
                    // With `distinct`, a node counts facets over the hits it kept: a count asked
                    // again with a narrower filter may keep other hits.
                    None if !hybrid(&[client]) => {
                        let lists = responses
                            .iter()
                            .map(|r| r.get("facetDistribution"))
                            .collect::<Vec<_>>();
                        follow.add_races(index, &settings, &lists);
                    }
                    None => {}
                }
            }
            Kind::FacetSearch => {
                let settings = faceting(index);
                let attribute = client
                    .get("facetName")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if settings.by_count(attribute) && !hybrid(&[client]) {
                    let lists: Vec<_> = responses
                        .iter()
                        .map(|r| facet_hits(r.get("facetHits")))
                        .collect();
                    follow.add_race(index, attribute, &settings, &lists);
                }
            }
            Kind::Federated => {
                let queries: Vec<&Map<String, Value>> = client
                    .get("queries")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .collect();
                let distinct = client
                    .get("federation")
                    .and_then(|f| f.get("distinct"))
                    .is_some_and(|d| !d.is_null());
                if !distinct && !hybrid(&queries) {
                    let mut indexes: Vec<&String> = responses
                        .iter()
                        .filter_map(|r| r.get("facetsByIndex").and_then(Value::as_object))
                        .flat_map(|by_index| by_index.keys())
                        .collect();
                    indexes.sort();
                    indexes.dedup();
                    for index in indexes {
                        let lists: Vec<_> = responses
                            .iter()
                            .map(|r| {
                                r.get("facetsByIndex")
                                    .and_then(|f| f.get(index.as_str()))
                                    .and_then(|f| f.get("distribution"))
                            })
                            .collect();
                        follow.add_races(index, &faceting(index), &lists);
                    }
                }
            }
        }
        follow
    }

    /// A race for each attribute in `count` order some node cut.
    fn add_races(&mut self, index: &str, settings: &Faceting, distributions: &[Option<&Value>]) {
        let mut attributes: Vec<&String> = distributions
            .iter()
            .flatten()
            .filter_map(|d| d.as_object())
            .flat_map(|d| d.keys())
            .filter(|a| !reserved::is_reserved(a))
            .collect();
        attributes.sort();
        attributes.dedup();
        for attribute in attributes {
            if !settings.by_count(attribute) {
                continue;
            }
            let lists: Vec<_> = distributions
                .iter()
                .map(|d| listed(d.and_then(|d| d.get(attribute.as_str()))))
                .collect();
            self.add_race(index, attribute, settings, &lists);
        }
    }

    fn add_race(
        &mut self,
        index: &str,
        attribute: &str,
        settings: &Faceting,
        lists: &[Option<Vec<(String, u64)>>],
    ) {
        let race = Race::new(settings.max_values_per_facet, lists);
        if race.is_cut() {
            self.entries.push(Entry {
                index: index.to_string(),
                attribute: attribute.to_string(),
                race,
            });
        }
    }

    /// The next round's calls; none when nothing is left to ask.
    pub fn next_round(&mut self) -> Vec<Call> {
        let mut by_slot: BTreeMap<usize, Vec<Question>> = BTreeMap::new();
        for (e, entry) in self.entries.iter_mut().enumerate() {
            for (slot, probe) in entry.race.probes() {
                by_slot
                    .entry(slot)
                    .or_default()
                    .push(Question::Probe(e, probe));
            }
        }
        if self.rounds == 0 {
            for slot in self.census.iter().flat_map(Census::to_list) {
                by_slot.entry(slot).or_default().push(Question::List);
            }
        }
        for slot in self.hits.iter_mut().flat_map(DistinctHits::next_round) {
            by_slot.entry(slot).or_default().push(Question::Hits);
        }
        self.rounds = self.rounds.saturating_add(1);
        self.round.clear();
        let mut calls = Vec::new();
        for (slot, questions) in by_slot {
            match self.kind {
                // A node answers all of a round's searches in one multi-search.
                Kind::Search(_) => {
                    let queries: Vec<Value> = questions
                        .iter()
                        .map(|q| Value::Object(self.search_query(slot, q)))
                        .collect();
                    calls.push(Call {
                        slot,
                        path: "/multi-search".into(),
                        body: json!({ "queries": queries }),
                    });
                    self.round.push((slot, questions));
                }
                Kind::FacetSearch | Kind::Federated => {
                    for question in questions {
                        if let Some(call) = self.call(slot, &question) {
                            calls.push(call);
                            self.round.push((slot, vec![question]));
                        }
                    }
                }
            }
        }
        calls
    }

    fn probe_condition(&self, entry: usize, probe: &Probe) -> String {
        let attribute = self
            .entries
            .get(entry)
            .map(|e| e.attribute.as_str())
            .unwrap_or_default();
        probe_filter(attribute, probe)
    }

    /// One query of a search's multi-search.
    fn search_query(&self, slot: usize, question: &Question) -> Map<String, Value> {
        let shards = self.shards.get(slot).map(Vec::as_slice).unwrap_or_default();
        let mut query = counting_base(&self.client);
        query.insert("indexUid".into(), json!(self.index));
        match question {
            Question::Probe(entry, probe) => {
                let condition = self.probe_condition(*entry, probe);
                let filter = with_condition(self.client.get("filter"), shards, condition);
                query.insert("filter".into(), filter);
                let attribute = self.entries.get(*entry).map(|e| e.attribute.clone());
                query.insert("facets".into(), json!([attribute]));
                // No hits, in the client's pagination mode (which decides how a node counts).
                match self.kind {
                    Kind::Search(Pagination::Pages { .. }) => {
                        query.insert("page".into(), json!(1));
                        query.insert("hitsPerPage".into(), json!(0));
                    }
                    _ => {
                        query.insert("limit".into(), json!(0));
                    }
                }
                query
            }
            Question::List => {
                let filter = restrict_filter(self.client.get("filter"), shards);
                query.insert("filter".into(), filter);
                match &self.census {
                    Some(census) => census.list_query(&query),
                    None => query,
                }
            }
            Question::Hits => {
                let mut query = match &self.hits {
                    Some(hits) => hits.query(slot, shards),
                    None => Map::new(),
                };
                query.insert("indexUid".into(), json!(self.index));
                query
            }
        }
    }

    /// A facet search's or a federated search's call for one probe.
    fn call(&self, slot: usize, question: &Question) -> Option<Call> {
        let Question::Probe(entry, probe) = question else {
            return None;
        };
        let shards = self.shards.get(slot).map(Vec::as_slice).unwrap_or_default();
        let condition = self.probe_condition(*entry, probe);
        match self.kind {
            Kind::FacetSearch => {
                let mut body = self.client.clone();
                let filter = with_condition(self.client.get("filter"), shards, condition);
                body.insert("filter".into(), filter);
                Some(Call {
                    slot,
                    path: format!("/indexes/{}/facet-search", self.index),
                    body: Value::Object(body),
                })
            }
            Kind::Federated => {
                let entry = self.entries.get(*entry)?;
                let queries: Vec<Value> = self
                    .client
                    .get("queries")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .filter(|q| q.get("indexUid").and_then(Value::as_str) == Some(&entry.index))
                    .map(|q| {
                        let mut query = counting_base(q);
                        let filter = with_condition(q.get("filter"), shards, condition.clone());
                        query.insert("filter".into(), filter);
                        Value::Object(query)
                    })
                    .collect();
                let federation = json!({
                    "limit": 0,
                    "facetsByIndex": { entry.index.clone(): [entry.attribute.clone()] },
                });
                Some(Call {
                    slot,
                    path: "/multi-search".into(),
                    body: json!({ "federation": federation, "queries": queries }),
                })
            }
            Kind::Search(_) => None,
        }
    }

    /// The answer to call `call` of the round in flight; `None` if the node gave none.
    pub fn accept(&mut self, call: usize, body: Option<&[u8]>) {
        let Some((slot, questions)) = self
            .round
            .get_mut(call)
            .map(|(s, q)| (*s, std::mem::take(q)))
        else {
            return;
        };
        let answer: Option<Value> = body.and_then(|b| serde_json::from_slice(b).ok());
        let answers: Vec<Option<Value>> = match (self.kind, answer) {
            (Kind::Search(_), Some(Value::Object(mut multi))) => match multi.remove("results") {
                Some(Value::Array(results)) => results.into_iter().map(Some).collect(),
                _ => Vec::new(),
            },
            (Kind::Search(_), _) => Vec::new(),
            (_, answer) => vec![answer],
        };
        for (i, question) in questions.iter().enumerate() {
            let answer = answers.get(i).cloned().flatten();
            match question {
                Question::Probe(e, probe) => {
                    let list = answer.as_ref().and_then(|a| self.listed_in(*e, a));
                    if let Some(entry) = self.entries.get_mut(*e) {
                        entry.race.accept(slot, probe, list.as_deref());
                    }
                }
                Question::List => {
                    if let (Some(census), Some(Value::Object(answer))) = (&mut self.census, answer)
                    {
                        census.accept_list(slot, &answer);
                    }
                }
                Question::Hits => {
                    if let Some(hits) = &mut self.hits {
                        hits.accept(slot, answer.as_ref());
                    }
                }
            }
        }
    }

    /// An entry's attribute values in a node's answer to a probe.
    fn listed_in(&self, entry: usize, answer: &Value) -> Option<Vec<(String, u64)>> {
        let entry = self.entries.get(entry)?;
        match self.kind {
            Kind::Search(_) => listed(
                answer
                    .get("facetDistribution")
                    .and_then(|d| d.get(&entry.attribute)),
            ),
            Kind::FacetSearch => facet_hits(answer.get("facetHits")),
            Kind::Federated => listed(
                answer
                    .get("facetsByIndex")
                    .and_then(|f| f.get(&entry.index))
                    .and_then(|f| f.get("distribution"))
                    .and_then(|d| d.get(&entry.attribute)),
            ),
        }
    }

    /// Whether the hits of a distinct search may differ from one node's: its rounds ran out.
    /// Reported once.
    pub fn take_unsettled(&mut self) -> bool {
        self.hits.as_mut().is_some_and(DistinctHits::take_unsettled)
    }

    /// Completes the first answers with what the rounds learned (each node's counts of the
    /// values it had cut, the hits of a distinct search), hides the facet asked for the census
    /// only, and gives the number of distinct hits when the search is distinct.
    pub fn finish(self, responses: &mut [Map<String, Value>]) -> Option<u64> {
        for entry in &self.entries {
            for (slot, value, count) in entry.race.learned() {
                let Some(response) = responses.get_mut(slot) else {
                    continue;
                };
                add_count(self.kind, response, entry, value, count);
            }
        }
        let known = self.hits.and_then(|hits| hits.finish(responses));
        if let Some(attribute) = &self.added_facet {
            let shown = self.client.contains_key("facets");
            for response in responses.iter_mut() {
                for field in ["facetDistribution", "facetStats"] {
                    if !shown {
                        response.shift_remove(field);
                    } else if let Some(Value::Object(facets)) = response.get_mut(field) {
                        facets.shift_remove(attribute);
                    }
                }
            }
        }
        known.or_else(|| self.census.map(|c| c.total()))
    }
}

/// Adds a node's count of a value it had cut to its answer, where the merge sums it.
fn add_count(
    kind: Kind,
    response: &mut Map<String, Value>,
    entry: &Entry,
    value: String,
    count: u64,
) {
    let distribution = match kind {
        Kind::Search(_) => response.get_mut("facetDistribution"),
        Kind::Federated => response
            .get_mut("facetsByIndex")
            .and_then(|f| f.get_mut(&entry.index))
            .and_then(|f| f.get_mut("distribution")),
        Kind::FacetSearch => {
            if let Some(Value::Array(hits)) = response.get_mut("facetHits") {
                hits.push(json!({"value": value, "count": count}));
            }
            return;
        }
    };
    if let Some(Value::Object(distribution)) = distribution {
        let values = distribution
            .entry(entry.attribute.clone())
            .or_insert_with(|| json!({}));
        if let Value::Object(values) = values {
            values.insert(value, json!(count));
        }
    }
}

#[cfg(test)]
mod tests;

//! The hits of a search with `distinct` on an attribute holding several values per document (an
//! array), made one node's by follow-up rounds.
//!
//! One node walks its ranking and keeps a document when no document it kept before holds one of
//! its values (milli's distinct rule: a kept document excludes every document sharing any of its
//! values). Each node applies the rule to its own shards only. A node can then keep a document D
//! that the global order drops (a better document on another shard holds one of D's values);
//! D's other values still exclude documents on D's node, which the global order may keep: the
//! merge never sees them. And one kept document can drop several hits of a node, so the merged
//! page can be short although the node holds more.
//!
//! Why the rounds end at one node's page. Let G be the global order and K the documents one node
//! keeps. Node j searched its shards without the documents holding an excluded value and
//! returned its first hits R_j; C is every hit known (the latest R_j, and the documents proven
//! in K that the exclusions now hide), M the rule applied to C in G order. Let c be the earliest
//! of the last hits of the nodes that returned as many hits as asked (they may hold more), and
//! call a hit f of some R_j *leaky* when M drops it and one of its values is held by no M
//! document before f. Along G, every document d up to c and before the first leaky hit is in K
//! exactly when it is in M (induction on d):
//! - d in C: M keeps it exactly when no earlier M document shares a value; those are the earlier
//!   K documents, and this is the rule that defines K.
//! - d hidden by an exclusion: it holds a value of a document proven in K other than itself (that
//!   one is in C), and no two K documents share a value: d is in neither.
//! - d otherwise hidden: its node ranked it before its last hit, so the node's rule dropped it
//!   for an earlier hit f of R_j sharing a value u. If M keeps f, f is in K and d is not. Else f
//!   is not leaky (f is before d): an M document before f holds u, is in K, and d is not.
//!
//! So the M documents up to c and before the first leaky hit are K's: *proven*. The next round
//! excludes their values, which hides the first leaky hit (it holds a value of the proven
//! document that made M drop it, which its node did not exclude yet) and shows what it hid; a
//! node that may hold more is asked for more hits when the proven documents do not fill the
//! page. The page is one node's once its last document is proven (or, short, when no node may
//! hold more and no hit is leaky). Each round is one request per node that needs it; after
//! `MAX_ROUNDS` the answer is what the merge has, and the search is counted as unsettled.
//!
//! Without a hit holding several values no hit can be leaky and a node's dropped hits are never
//! more than the values that dropped them, so nothing is asked.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::refine::quoted;
use crate::merge::search::{distinct_leaves, rank, Candidate};
use crate::plan::search_body::node_body;
use crate::plan::search_body::with_condition;
use crate::request::search_params::Pagination;

/// Rounds after the first answers.
pub const MAX_ROUNDS: u8 = 6;

#[derive(Debug)]
pub struct DistinctHits {
    attribute: String,
    /// The client's search without its pagination and facets.
    base: Map<String, Value>,
    /// How many merged hits the page needs (`offset + limit`, at most `maxTotalHits`).
    wanted: usize,
    /// `maxTotalHits`: a node returns no more hits.
    cap: u64,
    slots: Vec<Slot>,
    /// Values of proven documents (normalized key, text), in the order they were proven.
    excluded: Vec<(String, String)>,
    rounds: u8,
    /// The page could not be proven: the rounds ran out, or the nodes that could prove it
    /// failed meanwhile.
    unsettled: bool,
}

#[derive(Debug)]
struct Slot {
    /// Proven documents that the node's latest search excluded.
    kept: Vec<Value>,
    /// The node's latest hits, each marked once proven.
    hits: Vec<(Value, bool)>,
    /// How many hits the latest search asked for.
    asked: u64,
    /// How many of `excluded` the latest search excluded.
    excluding: usize,
    /// The search in flight: its window and exclusions.
    pending: Option<(u64, usize)>,
    failed: bool,
}

/// Where the known hits stand.
struct Assessment {
    settled: bool,
    /// Every document one node keeps is known: how many there are.
    complete: Option<usize>,
    /// Per slot: whether it may hold more than it returned, and the rank of its last hit.
    ends: Vec<(bool, Option<usize>)>,
    /// `(slot, hit)` of the proven hits.
    proven: Vec<(usize, usize)>,
    /// Ranked: `(slot, hit)` of each leaky hit up to `c`.
    leaky: Vec<(usize, usize)>,
    /// The page is short of proven documents: the rank of the last one it needs (if known).
    short: Option<Option<usize>>,
    /// How many proven documents the page still lacks.
    missing: u64,
}

/// A hit's distinct values without repeats.
fn leaves(hit: &Value, attribute: &str) -> Vec<(String, String)> {
    let mut seen = BTreeSet::new();
    distinct_leaves(hit, attribute)
        .into_iter()
        .filter(|(key, _)| seen.insert(key.clone()))
        .collect()
}

impl DistinctHits {
    /// From the first answers (one per slot, each asked for `offset + limit` hits), when some hit
    /// holds several values of the distinct attribute; `None` otherwise.
    pub fn start(
        client: &Map<String, Value>,
        attribute: &str,
        pagination: Pagination,
        max_total_hits: Option<u64>,
        cap: u64,
        responses: &[&Map<String, Value>],
    ) -> Option<Self> {
        fn hits_of<'r>(r: &&'r Map<String, Value>) -> &'r [Value] {
            r.get("hits")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
        }
        let several = responses
            .iter()
            .flat_map(hits_of)
            .any(|hit| leaves(hit, attribute).len() > 1);
        let (skip, keep) = pagination.window();
        let asked = skip.saturating_add(keep);
        let wanted = asked.min(max_total_hits.unwrap_or(u64::MAX));
        if !several || wanted == 0 {
            return None;
        }
        let mut base = client.clone();
        for field in ["offset", "limit", "page", "hitsPerPage", "facets"] {
            base.shift_remove(field);
        }
        Some(DistinctHits {
            attribute: attribute.to_string(),
            base,
            wanted: usize::try_from(wanted).unwrap_or(usize::MAX),
            cap,
            slots: responses
                .iter()
                .map(|r| Slot {
                    kept: Vec::new(),
                    hits: hits_of(r).iter().map(|h| (h.clone(), false)).collect(),
                    asked,
                    excluding: 0,
                    pending: None,
                    failed: false,
                })
                .collect(),
            excluded: Vec::new(),
            rounds: 0,
            unsettled: false,
        })
    }

    fn assess(&self) -> Assessment {
        let mut candidates = Vec::new();
        // Which slot and hit each candidate is (`None`: a proven document the node now hides).
        for (s, slot) in self.slots.iter().enumerate() {
            for (position, hit) in slot.kept.iter().enumerate() {
                candidates.push(Candidate::new(hit.clone(), position, s));
            }
            for (h, (hit, _)) in slot.hits.iter().enumerate() {
                candidates.push(Candidate::new(
                    hit.clone(),
                    slot.kept.len().saturating_add(h),
                    s,
                ));
            }
        }
        rank(&self.base, &mut candidates);
        let which = |c: &Candidate| {
            let kept = self.slots.get(c.node).map_or(0, |s| s.kept.len());
            (c.node, c.position.checked_sub(kept))
        };
        let mut ends: Vec<(bool, Option<usize>)> = self
            .slots
            .iter()
            .map(|s| {
                let window = s.asked.min(self.cap);
                (window > 0 && s.hits.len() as u64 >= window, None)
            })
            .collect();
        for (r, c) in candidates.iter().enumerate() {
            if let (s, Some(h)) = which(c) {
                if let Some(end) = ends.get_mut(s) {
                    if h.checked_add(1) == self.slots.get(s).map(|s| s.hits.len()) {
                        end.1 = Some(r);
                    }
                }
            }
        }
        let cut = ends
            .iter()
            .filter(|(more, _)| *more)
            .filter_map(|(_, last)| *last)
            .min()
            .unwrap_or(usize::MAX);

        let mut held = BTreeSet::new();
        let mut kept_ranks = Vec::new();
        let mut leaky = Vec::new();
        let mut first_leak = usize::MAX;
        for (r, c) in candidates.iter().enumerate() {
            let keys: Vec<String> = leaves(&c.hit, &self.attribute)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            if keys.iter().any(|k| held.contains(k)) {
                let leaks = keys.iter().any(|k| !held.contains(k));
                if let (s, Some(h)) = which(c) {
                    if leaks && r <= cut {
                        first_leak = first_leak.min(r);
                        leaky.push((s, h));
                    }
                }
            } else {
                held.extend(keys);
                kept_ranks.push(r);
            }
        }
        let last_needed = kept_ranks.get(self.wanted.saturating_sub(1)).copied();
        let settled = match last_needed {
            Some(last) => last <= cut && last < first_leak,
            None => cut == usize::MAX && first_leak == usize::MAX,
        };
        let proven: Vec<(usize, usize)> = kept_ranks
            .iter()
            .filter(|r| **r <= cut && **r < first_leak)
            .filter_map(|r| candidates.get(*r))
            .filter_map(|c| match which(c) {
                (s, Some(h)) => Some((s, h)),
                _ => None,
            })
            .collect();
        let within = kept_ranks.iter().filter(|r| **r <= cut).count();
        let complete = (cut == usize::MAX && first_leak == usize::MAX).then_some(kept_ranks.len());
        let short = match last_needed {
            Some(last) if last <= cut => None,
            other => Some(other),
        };
        Assessment {
            settled,
            complete,
            ends,
            proven,
            leaky,
            short,
            missing: self.wanted.saturating_sub(within) as u64,
        }
    }

    /// The slots to ask again; none once the page is one node's or the rounds ran out.
    pub fn next_round(&mut self) -> Vec<usize> {
        let assessment = self.assess();
        if assessment.settled {
            return Vec::new();
        }
        if self.rounds >= MAX_ROUNDS {
            self.unsettled = true;
            return Vec::new();
        }
        for (s, h) in &assessment.proven {
            let Some((hit, proven)) = self.slots.get_mut(*s).and_then(|s| s.hits.get_mut(*h))
            else {
                continue;
            };
            *proven = true;
            for leaf in leaves(hit, &self.attribute) {
                if !self.excluded.iter().any(|(k, _)| *k == leaf.0) {
                    self.excluded.push(leaf);
                }
            }
        }
        let mut asked = Vec::new();
        for (s, slot) in self.slots.iter_mut().enumerate() {
            if slot.failed {
                continue;
            }
            let fresh: BTreeSet<&String> = self
                .excluded
                .iter()
                .skip(slot.excluding)
                .map(|(k, _)| k)
                .collect();
            let touched = |hit: &Value| {
                leaves(hit, &self.attribute)
                    .iter()
                    .any(|(k, _)| fresh.contains(k))
            };
            let leaks = assessment
                .leaky
                .iter()
                .filter(|(ls, _)| *ls == s)
                .filter_map(|(_, h)| slot.hits.get(*h))
                .any(|(hit, _)| touched(hit));
            let (more, last) = assessment.ends.get(s).copied().unwrap_or((false, None));
            let before_needed = |needed: Option<usize>| match (last, needed) {
                (Some(last), Some(needed)) => last < needed,
                _ => true,
            };
            let grows = match assessment.short {
                Some(needed) if more && before_needed(needed) => {
                    let window = slot.asked.min(self.cap);
                    let larger = window
                        .saturating_add(assessment.missing.max(1))
                        .min(self.cap);
                    (larger > window || slot.hits.iter().any(|(hit, _)| touched(hit)))
                        .then_some(larger)
                }
                _ => None,
            };
            if leaks || grows.is_some() {
                slot.pending = Some((grows.unwrap_or(slot.asked), self.excluded.len()));
                asked.push(s);
            }
        }
        if asked.is_empty() {
            self.unsettled = true;
        } else {
            self.rounds = self.rounds.saturating_add(1);
        }
        asked
    }

    /// The search of the round in flight for a slot, restricted to its shards.
    pub fn query(&self, slot: usize, shards: &[u32]) -> Map<String, Value> {
        let (window, excluding) = self
            .slots
            .get(slot)
            .and_then(|s| s.pending)
            .unwrap_or((0, 0));
        let pagination = Pagination::Offset {
            offset: 0,
            limit: window,
        };
        let mut body = node_body(&self.base, pagination, shards);
        let values: Vec<String> = self
            .excluded
            .iter()
            .take(excluding)
            .map(|(_, text)| quoted(text))
            .collect();
        if !values.is_empty() {
            let condition = format!("{} NOT IN [{}]", quoted(&self.attribute), values.join(", "));
            body.insert(
                "filter".into(),
                with_condition(self.base.get("filter"), shards, condition),
            );
        }
        body
    }

    /// A slot's answer to `query`; `None` if its node gave none.
    pub fn accept(&mut self, slot: usize, answer: Option<&Value>) {
        let attribute = self.attribute.as_str();
        let Some(slot) = self.slots.get_mut(slot) else {
            return;
        };
        let Some((window, excluding)) = slot.pending.take() else {
            return;
        };
        let Some(hits) = answer.and_then(|a| a.get("hits")).and_then(Value::as_array) else {
            slot.failed = true;
            return;
        };
        // The proven hits holding a value are excluded now: the node no longer returns them.
        // One without a value it still does.
        let previous = std::mem::take(&mut slot.hits);
        slot.kept.extend(
            previous
                .into_iter()
                .filter(|(h, proven)| *proven && !distinct_leaves(h, attribute).is_empty())
                .map(|(h, _)| h),
        );
        slot.hits = hits.iter().map(|h| (h.clone(), false)).collect();
        slot.asked = window;
        slot.excluding = excluding;
    }

    /// Whether the answer may differ from one node's (reported once).
    pub fn take_unsettled(&mut self) -> bool {
        std::mem::take(&mut self.unsettled)
    }

    /// Replaces each first answer's hits with what the rounds know, for the merge. Gives the
    /// number of distinct hits when every document one node keeps is known: one node's total
    /// then, whose ranking walked through them all (it counts what it did not exclude).
    pub fn finish(self, responses: &mut [Map<String, Value>]) -> Option<u64> {
        let total = self.assess().complete.map(|n| n as u64);
        for (slot, response) in self.slots.into_iter().zip(responses.iter_mut()) {
            let hits: Vec<Value> = slot
                .kept
                .into_iter()
                .chain(slot.hits.into_iter().map(|(h, _)| h))
                .collect();
            response.insert("hits".into(), json!(hits));
        }
        total
    }
}

#[cfg(test)]
mod tests;

//! Facet counts in `count` order, made exact across shards.
//!
//! Each node lists only its own first `maxValuesPerFacet` values (by count), so summing the lists
//! counts a value short on every node that cut it, and misses a value every node cut. A `Race`
//! holds what the nodes said about one attribute and decides what to ask them next, in the
//! manner of Fagin's threshold algorithm:
//!
//! - a node that listed fewer than `maxValuesPerFacet` values listed them all; a node that listed
//!   exactly that many holds any value it did not list at most as many times as its smallest
//!   listed count (its *bound*);
//! - the *last place* is the `maxValuesPerFacet`-th largest count known so far (known counts only
//!   grow, so the final last place is at least this);
//! - a value whose known count plus the bounds of the nodes it is unknown on reaches the last
//!   place could still be listed: those nodes are asked for its exact count;
//! - when the bounds of all cutting nodes add up to the last place, a value nobody listed could
//!   still be listed: those nodes are also asked for their *next values*, their first by count
//!   among the ones nobody listed, which are then counted like the others. The smallest count of
//!   a node's next values bounds what it holds of the values still unseen (with one value per
//!   document; with several, the next values are counted over the documents holding no seen
//!   value, so this bound can be short).
//!
//! Next values are asked for while their bound reaches the last place and the previous round
//! changed the list (a value entered it, or the order moved), for at most `MAX_ROUNDS` rounds
//! after the first answers; then the values seen are counted once more and the list is final.
//! So the list can differ from one node's only by a value that no node had among its values
//! asked for, when the rounds ran out or a round left the list as it was.

use std::collections::BTreeMap;

use crate::merge::facets::facet_key;

/// What to ask one node about one attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The exact counts of these values (spelled as a node listed them).
    Count(Vec<String>),
    /// The node's first values (by count) among all but these.
    Next(Vec<String>),
}

/// One attribute's values on every node.
#[derive(Debug)]
pub struct Race {
    /// `maxValuesPerFacet`.
    k: usize,
    /// Per node: `Some(bound)` when it cut its list, `None` when it listed every value it has.
    bounds: Vec<Option<u64>>,
    /// Per node: the most it holds of a value still unseen, `None` when it holds none.
    frontier: Vec<Option<u64>>,
    /// By normalized value.
    values: BTreeMap<String, Tally>,
    /// Rounds asked so far.
    rounds: u8,
    /// The list when the previous round was asked.
    previous_list: Vec<String>,
}

#[derive(Debug)]
struct Tally {
    spelling: String,
    /// What each node holds of the value.
    held: Vec<Held>,
}

#[derive(Clone, Debug, Default)]
struct Held {
    /// The exact count, once known.
    count: Option<u64>,
    /// In the node's own list (which the merge sums anyway).
    listed: bool,
    /// A lower bound while the count is not known (from the node's next values).
    floor: u64,
    /// A count answer that could not tell (it was cut): asked again alone.
    unclear: bool,
}

/// Rounds after the first answers; the last one only counts.
pub const MAX_ROUNDS: u8 = 6;

impl Race {
    /// From each node's list of `(value, count)` for the attribute (`None`: the node listed none).
    pub fn new(k: usize, lists: &[Option<Vec<(String, u64)>>]) -> Self {
        let bounds: Vec<Option<u64>> = lists
            .iter()
            .map(|list| {
                let list = list.as_deref().unwrap_or_default();
                (k > 0 && list.len() >= k).then(|| list.iter().map(|(_, c)| *c).min().unwrap_or(0))
            })
            .collect();
        let mut race = Race {
            k,
            frontier: bounds.clone(),
            bounds,
            values: BTreeMap::new(),
            rounds: 0,
            previous_list: Vec::new(),
        };
        for (node, list) in lists.iter().enumerate() {
            for (value, count) in list.as_deref().unwrap_or_default() {
                if let Some(held) = race.tally(value).held.get_mut(node) {
                    held.count = Some(*count);
                    held.listed = true;
                }
            }
        }
        race
    }

    /// Whether any node cut its list: otherwise the sums are exact already.
    pub fn is_cut(&self) -> bool {
        self.bounds.iter().any(Option::is_some)
    }

    fn tally(&mut self, value: &str) -> &mut Tally {
        // A node that listed everything holds none of the values it did not list.
        let held = self
            .bounds
            .iter()
            .map(|b| Held {
                count: b.is_none().then_some(0),
                ..Held::default()
            })
            .collect();
        self.values
            .entry(facet_key(value))
            .or_insert_with(|| Tally {
                spelling: value.to_string(),
                held,
            })
    }

    fn lower(tally: &Tally) -> u64 {
        tally
            .held
            .iter()
            .map(|h| h.count.unwrap_or(h.floor))
            .fold(0, u64::saturating_add)
    }

    fn upper(&self, tally: &Tally) -> u64 {
        tally
            .held
            .iter()
            .zip(&self.bounds)
            .map(|(h, bound)| h.count.or(*bound).unwrap_or(0))
            .fold(0, u64::saturating_add)
    }

    /// The values listed as known so far (in `count` order), with their counts.
    fn list(&self) -> Vec<(u64, &String)> {
        let mut list: Vec<(u64, &String)> = self
            .values
            .iter()
            .map(|(key, tally)| (Race::lower(tally), key))
            .collect();
        list.sort_by(|(ca, a), (cb, b)| crate::merge::facets::count_order((a, *ca), (b, *cb)));
        list.truncate(self.k);
        list
    }

    /// The `k`-th largest known count: no value below it can be listed.
    fn last_place(&self) -> u64 {
        match self.list() {
            list if list.len() < self.k => 0,
            list => list.last().map_or(0, |(count, _)| *count),
        }
    }

    /// The next round's questions, by node; empty when nothing could change the list.
    pub fn probes(&mut self) -> Vec<(usize, Probe)> {
        if self.rounds >= MAX_ROUNDS || !self.is_cut() || self.k == 0 {
            return Vec::new();
        }
        self.rounds = self.rounds.saturating_add(1);
        let last = self.last_place();
        let list: Vec<String> = self.list().into_iter().map(|(_, k)| k.clone()).collect();
        let moved = list != self.previous_list;
        self.previous_list = list;
        let mut probes = Vec::new();
        for (node, bound) in self.bounds.iter().enumerate() {
            if bound.is_none() {
                continue;
            }
            let mut batch = Vec::new();
            for tally in self.values.values() {
                let Some(held) = tally.held.get(node) else {
                    continue;
                };
                if held.count.is_some() || self.upper(tally) < last {
                    continue;
                }
                if held.unclear {
                    probes.push((node, Probe::Count(vec![tally.spelling.clone()])));
                } else {
                    batch.push(tally.spelling.clone());
                }
            }
            for chunk in batch.chunks(self.k) {
                probes.push((node, Probe::Count(chunk.to_vec())));
            }
        }
        let unseen = self
            .frontier
            .iter()
            .flatten()
            .fold(0u64, |sum, count| sum.saturating_add(*count));
        if moved && unseen >= last && self.rounds < MAX_ROUNDS {
            let seen: Vec<String> = self.values.values().map(|t| t.spelling.clone()).collect();
            for (node, frontier) in self.frontier.iter().enumerate() {
                if frontier.is_some() {
                    probes.push((node, Probe::Next(seen.clone())));
                }
            }
        }
        probes
    }

    /// A node's answer to a probe: its list for the attribute, `None` if it gave none.
    pub fn accept(&mut self, node: usize, probe: &Probe, answer: Option<&[(String, u64)]>) {
        let Some(answer) = answer else { return };
        let answered: BTreeMap<String, u64> =
            answer.iter().map(|(v, c)| (facet_key(v), *c)).collect();
        match probe {
            Probe::Count(asked) => {
                // Values other than the asked ones appear for documents with several values; they
                // can push an asked value out of a cut answer.
                let complete = answer.len() < self.k;
                for value in asked {
                    let Some(held) = self
                        .values
                        .get_mut(&facet_key(value))
                        .and_then(|t| t.held.get_mut(node))
                    else {
                        continue;
                    };
                    match answered.get(&facet_key(value)) {
                        Some(count) => held.count = Some(*count),
                        None if complete => held.count = Some(0),
                        None => held.unclear = asked.len() > 1,
                    }
                }
            }
            Probe::Next(_) => {
                if let Some(frontier) = self.frontier.get_mut(node) {
                    *frontier = (answer.len() >= self.k)
                        .then(|| answer.iter().map(|(_, c)| *c).min().unwrap_or(0));
                }
                for (value, count) in answer {
                    if self.values.contains_key(&facet_key(value)) {
                        continue;
                    }
                    if let Some(held) = self.tally(value).held.get_mut(node) {
                        held.floor = *count;
                    }
                }
            }
        }
    }

    /// What each node did not list but holds: `(node, value, count)`, for the merge to add.
    pub fn learned(&self) -> Vec<(usize, String, u64)> {
        let mut out = Vec::new();
        for tally in self.values.values() {
            for (node, held) in tally.held.iter().enumerate() {
                let count = held.count.unwrap_or(held.floor);
                if !held.listed && count > 0 {
                    out.push((node, tally.spelling.clone(), count));
                }
            }
        }
        out
    }
}

/// A filter string value, quoted so that any text reads as itself.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The filter a probe adds to the client's: documents holding one of the values, or none of them.
pub fn probe_filter(attribute: &str, probe: &Probe) -> String {
    let (values, operator) = match probe {
        Probe::Count(values) => (values, "IN"),
        Probe::Next(values) => (values, "NOT IN"),
    };
    let list: Vec<String> = values.iter().map(|v| quoted(v)).collect();
    format!("{} {operator} [{}]", quoted(attribute), list.join(", "))
}

#[cfg(test)]
mod tests;

//! What the admin REST answers, read leniently: every field has a default, `null` reads as the
//! default, unknown fields are ignored, and enumerations stay strings, so the CLI keeps working
//! while the server grows.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `null` (or a missing field, with `#[serde(default)]`) reads as `T::default()`.
fn nullable<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// A count that may come as an integer, a float or `null`.
fn count<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    Ok(match Value::deserialize(de)? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .unwrap_or(0),
        _ => 0,
    })
}

/// A rate or a duration: a number, or `null` when the server does not know it yet.
fn float<'de, D: Deserializer<'de>>(de: D) -> Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(de)? {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        _ => None,
    })
}

/// Text that may come as a string, a number, or anything else (shown as JSON); `null` is `None`.
fn text<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(de)? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

/// A list of texts; an element that is not a string is shown as JSON (an error object's
/// `message` when it has one).
fn texts<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(de)? {
        Value::Array(items) => items.into_iter().map(value_text).collect(),
        Value::Null => Vec::new(),
        other => vec![value_text(other)],
    })
}

fn value_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Object(ref o) => match o.get("message") {
            Some(Value::String(m)) => m.clone(),
            _ => v.to_string(),
        },
        other => other.to_string(),
    }
}

/// Node ids: strings (a number is taken as its text).
fn ids<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    texts(de)
}

/// A rebalancing job (`GET /_miroir/jobs/{id}`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Job {
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    #[serde(deserialize_with = "nullable")]
    pub kind: String,
    #[serde(deserialize_with = "nullable")]
    pub state: String,
    #[serde(deserialize_with = "nullable")]
    pub phase: String,
    #[serde(deserialize_with = "text")]
    pub reason: Option<String>,
    #[serde(deserialize_with = "text")]
    pub created_at: Option<String>,
    #[serde(deserialize_with = "text")]
    pub updated_at: Option<String>,
    #[serde(deserialize_with = "count")]
    pub shards_done: u64,
    #[serde(deserialize_with = "count")]
    pub shards_total: u64,
    #[serde(deserialize_with = "count")]
    pub documents_copied: u64,
    #[serde(deserialize_with = "float")]
    pub documents_per_second: Option<f64>,
    #[serde(deserialize_with = "float")]
    pub eta_seconds: Option<f64>,
    #[serde(deserialize_with = "texts")]
    pub errors: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub moves: Vec<Move>,
}

/// How a job ended, once it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// `failed` or `canceled`.
    Failed,
}

impl Job {
    pub fn outcome(&self) -> Option<Outcome> {
        match self.state.as_str() {
            "succeeded" => Some(Outcome::Succeeded),
            "failed" | "canceled" | "cancelled" => Some(Outcome::Failed),
            _ => None,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.outcome().is_some()
    }

    /// `state/phase`, or the state alone when there is no phase (or it repeats the state).
    pub fn state_phase(&self) -> String {
        if self.phase.is_empty() || self.phase == self.state {
            self.state.clone()
        } else {
            format!("{}/{}", self.state, self.phase)
        }
    }
}

/// One shard's move inside a job.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Move {
    #[serde(deserialize_with = "nullable")]
    pub group: String,
    #[serde(deserialize_with = "count")]
    pub shard: u64,
    #[serde(deserialize_with = "ids")]
    pub from: Vec<String>,
    #[serde(deserialize_with = "ids")]
    pub to: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub phase: String,
    #[serde(deserialize_with = "count")]
    pub documents_copied: u64,
}

/// `GET /_miroir/jobs`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct JobList {
    #[serde(deserialize_with = "nullable")]
    pub results: Vec<Job>,
}

/// `GET /_miroir/topology`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Topology {
    #[serde(deserialize_with = "count")]
    pub epoch: u64,
    #[serde(deserialize_with = "count")]
    pub shards: u64,
    /// A number today; per group (`{"<group>": n}`) if the server grows that way.
    pub replication_factor: Value,
    #[serde(deserialize_with = "nullable")]
    pub nodes: Vec<TopologyNode>,
    /// In-sync copies a write must reach (absent from older servers).
    pub min_copies: Value,
    /// `error` or `partial` (absent from older servers).
    pub unavailable_shards: Value,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopologyNode {
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    #[serde(deserialize_with = "nullable")]
    pub address: String,
    #[serde(deserialize_with = "nullable")]
    pub group: String,
    #[serde(deserialize_with = "nullable")]
    pub state: String,
    #[serde(deserialize_with = "nullable")]
    pub draining: bool,
}

/// `GET /_miroir/shards`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Shards {
    #[serde(deserialize_with = "count")]
    pub epoch: u64,
    #[serde(deserialize_with = "ids")]
    pub groups: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub shards: Vec<Shard>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Shard {
    #[serde(deserialize_with = "count")]
    pub shard: u64,
    /// Per group, the nodes the placement gives the shard to.
    #[serde(deserialize_with = "nullable")]
    pub owners: BTreeMap<String, Vec<Value>>,
    /// Per group, the copies that exist and their state; absent from older servers.
    pub copies: Option<BTreeMap<String, Vec<ShardCopy>>>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ShardCopy {
    #[serde(deserialize_with = "text")]
    pub node: Option<String>,
    #[serde(deserialize_with = "text")]
    pub state: Option<String>,
}

impl Shard {
    /// The owners of the shard in `group`, as node ids.
    pub fn owners_in(&self, group: &str) -> Vec<String> {
        self.owners
            .get(group)
            .map(|ids| ids.iter().cloned().map(value_text).collect())
            .unwrap_or_default()
    }

    /// The shard's copies in `group` with their state; without `copies`, its owners, `active`.
    pub fn copies_in(&self, group: &str) -> Vec<(String, String)> {
        match &self.copies {
            Some(copies) => copies
                .get(group)
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            (
                                c.node.clone().unwrap_or_else(|| "?".into()),
                                c.state.clone().unwrap_or_else(|| "?".into()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            None => self
                .owners_in(group)
                .into_iter()
                .map(|n| (n, "active".to_string()))
                .collect(),
        }
    }

    /// Every group the shard names, in its owners or its copies.
    pub fn group_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.owners.keys().cloned().collect();
        if let Some(copies) = &self.copies {
            names.extend(copies.keys().cloned());
        }
        names.sort();
        names.dedup();
        names
    }
}

/// Reads `value` as `T`; lenient types make this fail only on a wrong top-level shape.
pub fn parse<T: for<'de> Deserialize<'de>>(value: &Value) -> Result<T, String> {
    T::deserialize(value).map_err(|e| format!("unexpected answer from the server: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_job_reads_leniently() {
        let job: Job = parse(&json!({
            "id": "job-3", "kind": "addNode", "state": "running", "phase": "copying",
            "reason": null, "shardsDone": 2, "shardsTotal": 8.0, "documentsCopied": null,
            "documentsPerSecond": 12.5, "etaSeconds": null, "errors": ["x", {"message": "y"}, 3],
            "moves": [{"group": "a", "shard": 5, "from": ["n1"], "to": ["n4"], "phase": "copying",
                       "documentsCopied": 10, "extra": true}],
            "somethingNew": {"a": 1}
        }))
        .unwrap();
        assert_eq!(job.id, "job-3");
        assert_eq!(job.shards_total, 8);
        assert_eq!(job.documents_copied, 0);
        assert_eq!(job.documents_per_second, Some(12.5));
        assert_eq!(job.eta_seconds, None);
        assert_eq!(job.errors, vec!["x", "y", "3"]);
        assert_eq!(job.moves.len(), 1);
        assert_eq!(job.moves[0].to, vec!["n4"]);
        assert_eq!(job.state_phase(), "running/copying");
        assert!(!job.is_finished());
    }

    #[test]
    fn an_empty_object_is_a_default_job() {
        let job: Job = parse(&json!({})).unwrap();
        assert_eq!(job, Job::default());
        assert_eq!(job.state_phase(), "");
    }

    #[test]
    fn outcomes() {
        let with = |state: &str| Job {
            state: state.into(),
            ..Job::default()
        };
        assert_eq!(with("succeeded").outcome(), Some(Outcome::Succeeded));
        assert_eq!(with("failed").outcome(), Some(Outcome::Failed));
        assert_eq!(with("canceled").outcome(), Some(Outcome::Failed));
        assert_eq!(with("paused").outcome(), None);
        assert_eq!(with("running").outcome(), None);
    }

    #[test]
    fn copies_fall_back_to_owners() {
        let old: Shard = parse(&json!({"shard": 1, "owners": {"a": ["n1", "n2"]}})).unwrap();
        assert_eq!(
            old.copies_in("a"),
            vec![
                ("n1".into(), "active".into()),
                ("n2".into(), "active".into())
            ]
        );
        let new: Shard = parse(&json!({
            "shard": 1, "owners": {"a": ["n1"]},
            "copies": {"a": [{"node": "n1", "state": "active"}, {"node": "n3", "state": "copying"}]}
        }))
        .unwrap();
        assert_eq!(new.copies_in("a")[1], ("n3".into(), "copying".into()));
        assert_eq!(new.group_names(), vec!["a"]);
    }
}

//! Text for people: tables, numbers, durations, jobs and the cluster's status. Pure functions of
//! what the server answered, so they are tested without a server.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::model::{Job, Outcome, Shards, Topology};

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Documents per second: `-` when unknown, one decimal under 100, a rounded count above.
pub fn rate(per_second: Option<f64>) -> String {
    match per_second {
        Some(r) if r.is_finite() && r >= 0.0 => {
            if r < 100.0 {
                format!("{r:.1}/s")
            } else {
                format!("{}/s", count(r.round() as u64))
            }
        }
        _ => "-".into(),
    }
}

/// A remaining time: `45s`, `3m05s`, `2h03m`, `4d02h`; `-` when unknown.
pub fn eta(seconds: Option<f64>) -> String {
    let Some(s) = seconds.filter(|s| s.is_finite() && *s >= 0.0) else {
        return "-".into();
    };
    let s = s.ceil() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Left-aligned columns two spaces apart; no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 < columns {
                out.push_str(&format!("{cell:<w$}  "));
            } else {
                out.push_str(cell);
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

/// `GET /_miroir/jobs` as a table.
pub fn jobs_table(jobs: &[Job]) -> String {
    if jobs.is_empty() {
        return "No jobs.\n".into();
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                or_dash(&j.id),
                or_dash(&j.kind),
                or_dash(&j.state),
                or_dash(&j.phase),
                format!("{}/{}", j.shards_done, j.shards_total),
                count(j.documents_copied),
                rate(j.documents_per_second),
                if j.is_finished() {
                    "-".into()
                } else {
                    eta(j.eta_seconds)
                },
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "KIND",
            "STATE",
            "PHASE",
            "SHARDS",
            "DOCUMENTS",
            "DOCS/S",
            "ETA",
        ],
        &rows,
    )
}

fn ids(list: &[String]) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list.join(",")
    }
}

/// One job in full, with a line per move.
pub fn job_detail(job: &Job) -> String {
    let mut out = format!("Job {} ({})\n", or_dash(&job.id), or_dash(&job.kind));
    let mut field = |name: &str, value: String| out.push_str(&format!("  {name:<10} {value}\n"));
    field("state:", or_dash(&job.state));
    field("phase:", or_dash(&job.phase));
    if let Some(reason) = &job.reason {
        field("reason:", reason.clone());
    }
    if let Some(at) = &job.created_at {
        field("created:", at.clone());
    }
    if let Some(at) = &job.updated_at {
        field("updated:", at.clone());
    }
    field(
        "shards:",
        format!("{}/{} done", job.shards_done, job.shards_total),
    );
    let mut documents = format!("{} copied", count(job.documents_copied));
    if !job.is_finished() {
        documents.push_str(&format!(
            ", {}, ETA {}",
            rate(job.documents_per_second),
            eta(job.eta_seconds)
        ));
    }
    field("documents:", documents);
    if !job.errors.is_empty() {
        out.push_str("  errors:\n");
        for e in &job.errors {
            out.push_str(&format!("    - {e}\n"));
        }
    }
    if job.moves.is_empty() {
        out.push_str("  moves: none\n");
    } else {
        out.push_str(&format!("  moves ({}):\n", job.moves.len()));
        let rows: Vec<Vec<String>> = job
            .moves
            .iter()
            .map(|m| {
                vec![
                    or_dash(&m.group),
                    m.shard.to_string(),
                    format!("{} -> {}", ids(&m.from), ids(&m.to)),
                    or_dash(&m.phase),
                    count(m.documents_copied),
                ]
            })
            .collect();
        let moves = table(
            &["GROUP", "SHARD", "FROM -> TO", "PHASE", "DOCUMENTS"],
            &rows,
        );
        for line in moves.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}

/// What a progress bar says next to its shard count.
pub fn progress_message(job: &Job) -> String {
    if job.state == "paused" {
        return match job.reason.as_deref() {
            Some(reason) if !reason.is_empty() => format!("paused: {reason}"),
            _ => "paused".into(),
        };
    }
    let mut parts = vec![or_dash(&job.state_phase())];
    parts.push(format!("{} documents", count(job.documents_copied)));
    if !job.is_finished() {
        parts.push(rate(job.documents_per_second));
        parts.push(format!("ETA {}", eta(job.eta_seconds)));
    }
    parts.join(", ")
}

/// A bar's label: the job's id and kind.
pub fn progress_prefix(job: &Job) -> String {
    format!("{} {}", or_dash(&job.id), or_dash(&job.kind))
}

/// A job's progress as one plain line (`jobs watch` when stdout is not a terminal).
pub fn progress_line(job: &Job) -> String {
    format!(
        "{} {}/{} shards, {}",
        progress_prefix(job),
        job.shards_done,
        job.shards_total,
        progress_message(job)
    )
}

/// How a finished job ended: one line, then its errors.
pub fn outcome(job: &Job) -> String {
    let id = or_dash(&job.id);
    let mut out = match job.outcome() {
        Some(Outcome::Succeeded) => format!(
            "{id} succeeded: {}/{} shards, {} documents copied",
            job.shards_done,
            job.shards_total,
            count(job.documents_copied)
        ),
        _ => match job.reason.as_deref() {
            Some(reason) if !reason.is_empty() => format!("{id} {}: {reason}", job.state),
            _ => format!("{id} {}", job.state),
        },
    };
    out.push('\n');
    for e in &job.errors {
        out.push_str(&format!("  error: {e}\n"));
    }
    out
}

/// What a finished job's progress bar says.
pub fn bar_outcome(job: &Job) -> String {
    match job.outcome() {
        Some(Outcome::Succeeded) => {
            format!(
                "succeeded, {} documents copied",
                count(job.documents_copied)
            )
        }
        _ => match job.reason.as_deref() {
            Some(reason) if !reason.is_empty() => format!("{}: {reason}", job.state),
            _ => job.state.clone(),
        },
    }
}

/// The answer to a change (`node add`, `rf set`, ...): the job it started, or what it did.
pub fn accepted(answer: &Value) -> String {
    if let Some(job) = answer.get("job") {
        let job: Job = crate::model::parse(job).unwrap_or_default();
        let mut out = format!(
            "Job {} ({}) accepted: {}.\n",
            or_dash(&job.id),
            or_dash(&job.kind),
            or_dash(&job.state_phase())
        );
        if !job.id.is_empty() {
            out.push_str(&format!("Watch it with: miroirctl jobs watch {}\n", job.id));
        }
        return out;
    }
    if let Some(topology) = answer.get("topology") {
        let t: Topology = crate::model::parse(topology).unwrap_or_default();
        return format!(
            "Done: topology epoch {}, {} nodes, {} shards.\n",
            t.epoch,
            t.nodes.len(),
            t.shards
        );
    }
    match answer {
        Value::Null => "Done.\n".into(),
        Value::Object(o) if o.is_empty() => "Done.\n".into(),
        other => format!("Done: {other}\n"),
    }
}

/// A job after `pause`, `resume` or `cancel`.
pub fn job_state(job: &Job) -> String {
    let mut out = format!("{} is {}", or_dash(&job.id), or_dash(&job.state_phase()));
    if let Some(reason) = job.reason.as_deref().filter(|r| !r.is_empty()) {
        out.push_str(&format!(": {reason}"));
    }
    out.push('\n');
    out
}

fn replication(rf: &Value) -> String {
    match rf {
        Value::Null => "-".into(),
        Value::Object(groups) => groups
            .iter()
            .map(|(g, n)| format!("{g}={}", plain(n)))
            .collect::<Vec<_>>()
            .join(", "),
        other => plain(other),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How many copies of not-`active` shards `status` lists before it summarizes.
const INACTIVE_SHOWN: usize = 30;

/// `status`: the topology, shards per node per group with their balance, the copies that are
/// not `active`, and the fleet's epochs. `shards` and `fleet` are the error text when they could
/// not be read.
pub fn status(
    topology: &Topology,
    shards: Result<&Shards, &str>,
    fleet: Result<&Value, &str>,
) -> String {
    let mut groups: BTreeSet<String> = topology.nodes.iter().map(|n| n.group.clone()).collect();
    if let Ok(s) = shards {
        groups.extend(s.groups.iter().cloned());
        for shard in &s.shards {
            groups.extend(shard.group_names());
        }
    }
    let mut out = format!(
        "Topology epoch {}: {} shards, replication factor {}, {} nodes in {} groups\n",
        topology.epoch,
        topology.shards,
        replication(&topology.replication_factor),
        topology.nodes.len(),
        groups.len()
    );
    if !topology.min_copies.is_null() || !topology.unavailable_shards.is_null() {
        out.push_str(&format!(
            "Writes need {} in-sync copies; searches without a shard: {}\n",
            or_dash(&plain(&topology.min_copies)),
            or_dash(&plain(&topology.unavailable_shards))
        ));
    }
    out.push('\n');

    // Shards held per (group, node), from the placement (or the copies when a group has no
    // owners listed).
    let mut held: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut inactive: Vec<String> = Vec::new();
    if let Ok(s) = shards {
        for shard in &s.shards {
            for group in shard.group_names() {
                let nodes = if shard.owners.contains_key(&group) {
                    shard.owners_in(&group)
                } else {
                    shard
                        .copies_in(&group)
                        .into_iter()
                        .map(|(n, _)| n)
                        .collect()
                };
                for node in nodes {
                    *held.entry((group.clone(), node)).or_default() += 1;
                }
                for (node, state) in shard.copies_in(&group) {
                    if state != "active" {
                        inactive.push(format!("shard {} in {group}: {node} {state}", shard.shard));
                    }
                }
            }
        }
    }

    let mut rows = Vec::new();
    let mut balance = Vec::new();
    for group in &groups {
        let mut members: Vec<(String, String, String, bool)> = topology
            .nodes
            .iter()
            .filter(|n| &n.group == group)
            .map(|n| {
                (
                    n.id.clone(),
                    or_dash(&n.address),
                    or_dash(&n.state),
                    n.draining,
                )
            })
            .collect();
        for (g, node) in held.keys() {
            if g == group && !members.iter().any(|m| &m.0 == node) {
                members.push((node.clone(), "-".into(), "not in topology".into(), false));
            }
        }
        let mut counts = Vec::new();
        let mut excluded = false;
        for (id, address, state, draining) in members {
            let n = held.get(&(group.clone(), id.clone())).copied().unwrap_or(0);
            if draining {
                excluded = true;
            } else {
                counts.push(n);
            }
            let shown = if shards.is_ok() {
                n.to_string()
            } else {
                "?".into()
            };
            rows.push(vec![
                group.clone(),
                id,
                address,
                state,
                if draining { "yes" } else { "no" }.into(),
                shown,
            ]);
        }
        if shards.is_ok() {
            let spread = match (counts.iter().min(), counts.iter().max()) {
                (Some(min), Some(max)) => format!("min {min} / max {max}"),
                _ => "no nodes".into(),
            };
            balance.push(if excluded {
                format!("{group} {spread} (draining nodes excluded)")
            } else {
                format!("{group} {spread}")
            });
        }
    }
    if rows.is_empty() {
        out.push_str("No nodes.\n");
    } else {
        out.push_str(&table(
            &["GROUP", "NODE", "ADDRESS", "STATE", "DRAINING", "SHARDS"],
            &rows,
        ));
    }
    out.push('\n');

    match shards {
        Ok(s) => {
            if s.epoch != 0 && s.epoch != topology.epoch {
                out.push_str(&format!(
                    "Shards were read at epoch {} (topology at {}).\n",
                    s.epoch, topology.epoch
                ));
            }
            if !balance.is_empty() {
                out.push_str(&format!(
                    "Balance (shards per node): {}\n",
                    balance.join("; ")
                ));
            }
            if inactive.is_empty() {
                out.push_str("Copies not active: none\n");
            } else {
                out.push_str(&format!("Copies not active ({}):\n", inactive.len()));
                for line in inactive.iter().take(INACTIVE_SHOWN) {
                    out.push_str(&format!("  {line}\n"));
                }
                if inactive.len() > INACTIVE_SHOWN {
                    out.push_str(&format!(
                        "  ... and {} more\n",
                        inactive.len() - INACTIVE_SHOWN
                    ));
                }
            }
        }
        Err(e) => out.push_str(&format!("Shards: unavailable ({e})\n")),
    }

    match fleet {
        Ok(f) => out.push_str(&fleet_summary(f, Some(topology.epoch))),
        Err(e) => out.push_str(&format!("Fleet: unavailable ({e})\n")),
    }
    out
}

/// How many Envoy ids a fleet line names before it summarizes.
const ENVOYS_SHOWN: usize = 8;

/// `GET /_miroir/fleet`, compactly: the epochs, then the Envoys per acknowledged epoch. Unknown
/// shapes are shown as (shortened) JSON.
pub fn fleet_summary(fleet: &Value, topology_epoch: Option<u64>) -> String {
    let envoys = fleet
        .get("fleet")
        .and_then(|f| f.get("envoys"))
        .or_else(|| fleet.get("envoys"))
        .and_then(Value::as_array);
    let mut head = Vec::new();
    if let Some(e) = fleet.get("epoch").filter(|e| !e.is_null()) {
        head.push(format!("epoch {}", plain(e)));
    }
    if let Some(e) = fleet.get("servedEpoch") {
        head.push(format!(
            "served {}",
            if e.is_null() { "none".into() } else { plain(e) }
        ));
    }
    if let Some(l) = fleet.get("leader").and_then(Value::as_bool) {
        head.push(if l { "leader" } else { "not the leader" }.into());
    }
    if let Some(r) = fleet.get("rollout") {
        let state = r.get("state").unwrap_or(r);
        if !state.is_null() && !state.is_object() {
            head.push(format!("rollout {}", plain(state)));
        }
    }
    let Some(envoys) = envoys else {
        if head.is_empty() {
            let mut text = fleet.to_string();
            if text.len() > 200 {
                text = text.chars().take(200).collect::<String>() + "...";
            }
            return format!("Fleet: {text}\n");
        }
        return format!("Fleet: {}\n", head.join(", "));
    };
    head.push(match envoys.len() {
        0 => "no Envoy connected".into(),
        1 => "1 Envoy".into(),
        n => format!("{n} Envoys"),
    });
    let mut out = format!("Fleet: {}\n", head.join(", "));
    let mut by_epoch: BTreeMap<Option<u64>, Vec<String>> = BTreeMap::new();
    for envoy in envoys {
        let id = ["nodeId", "id", "node", "name"]
            .iter()
            .find_map(|k| envoy.get(*k).filter(|v| !v.is_null()))
            .map(plain)
            .unwrap_or_else(|| "?".into());
        let epoch = envoy.get("epoch").and_then(Value::as_u64);
        by_epoch.entry(epoch).or_default().push(id);
    }
    for (epoch, ids) in by_epoch.iter().rev() {
        let label = match epoch {
            Some(e) => format!("epoch {e}"),
            None => "no epoch acknowledged".into(),
        };
        let behind = match (epoch, topology_epoch) {
            (Some(e), Some(t)) if *e == t => "",
            (_, Some(_)) => " (behind)",
            _ => "",
        };
        let mut names = ids
            .iter()
            .take(ENVOYS_SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if ids.len() > ENVOYS_SHOWN {
            names.push_str(&format!(", +{} more", ids.len() - ENVOYS_SHOWN));
        }
        out.push_str(&format!("  {label}{behind}: {} ({names})\n", ids.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{parse, Move};
    use serde_json::json;

    fn job() -> Job {
        Job {
            id: "job-3".into(),
            kind: "addNode".into(),
            state: "running".into(),
            phase: "copying".into(),
            shards_done: 3,
            shards_total: 8,
            documents_copied: 12_345,
            documents_per_second: Some(1234.4),
            eta_seconds: Some(65.0),
            ..Job::default()
        }
    }

    #[test]
    fn counts() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn rates() {
        assert_eq!(rate(None), "-");
        assert_eq!(rate(Some(f64::NAN)), "-");
        assert_eq!(rate(Some(12.25)), "12.2/s");
        assert_eq!(rate(Some(1234.6)), "1,235/s");
    }

    #[test]
    fn etas() {
        assert_eq!(eta(None), "-");
        assert_eq!(eta(Some(-1.0)), "-");
        assert_eq!(eta(Some(0.0)), "0s");
        assert_eq!(eta(Some(44.2)), "45s");
        assert_eq!(eta(Some(65.0)), "1m05s");
        assert_eq!(eta(Some(7380.0)), "2h03m");
        assert_eq!(eta(Some(3.0 * 86400.0 + 7200.0)), "3d02h");
    }

    #[test]
    fn tables_align_without_trailing_spaces() {
        let t = table(
            &["A", "LONG", "C"],
            &[
                vec!["xyz".into(), "1".into(), "".into()],
                vec!["".into(), "22".into(), "z".into()],
            ],
        );
        assert_eq!(t, "A    LONG  C\nxyz  1\n     22    z\n");
    }

    #[test]
    fn the_jobs_table() {
        let mut done = job();
        done.id = "job-2".into();
        done.state = "succeeded".into();
        done.phase = "done".into();
        done.shards_done = 8;
        let t = jobs_table(&[done, job()]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID     KIND     STATE      PHASE    SHARDS"));
        assert!(lines[0].ends_with("DOCUMENTS  DOCS/S   ETA"));
        assert!(lines[1].starts_with("job-2  addNode  succeeded  done     8/8"));
        assert!(lines[1].ends_with("-"));
        assert!(lines[2].contains("3/8"));
        assert!(lines[2].contains("12,345"));
        assert!(lines[2].contains("1,234/s"));
        assert!(lines[2].ends_with("1m05s"));
        assert_eq!(jobs_table(&[]), "No jobs.\n");
    }

    #[test]
    fn a_job_in_full() {
        let mut j = job();
        j.reason = Some("operator asked".into());
        j.created_at = Some("2026-01-01T00:00:00Z".into());
        j.errors = vec!["shard 4: node n9 unreachable".into()];
        j.moves = vec![
            Move {
                group: "a".into(),
                shard: 4,
                from: vec!["n1".into()],
                to: vec!["n4".into()],
                phase: "copying".into(),
                documents_copied: 2000,
            },
            Move {
                group: "b".into(),
                shard: 12,
                from: vec![],
                to: vec!["n5".into(), "n6".into()],
                phase: "pending".into(),
                documents_copied: 0,
            },
        ];
        let text = job_detail(&j);
        assert!(text.starts_with("Job job-3 (addNode)\n"));
        assert!(text.contains("  state:     running\n"));
        assert!(text.contains("  reason:    operator asked\n"));
        assert!(text.contains("  created:   2026-01-01T00:00:00Z\n"));
        assert!(text.contains("  shards:    3/8 done\n"));
        assert!(text.contains("  documents: 12,345 copied, 1,234/s, ETA 1m05s\n"));
        assert!(text.contains("    - shard 4: node n9 unreachable\n"));
        assert!(text.contains("  moves (2):\n"));
        assert!(text.contains("    a      4      n1 -> n4    copying  2,000\n"));
        assert!(text.contains("    b      12     - -> n5,n6  pending  0\n"));
        assert!(!text.contains("updated:"));
    }

    #[test]
    fn progress() {
        let j = job();
        assert_eq!(
            progress_message(&j),
            "running/copying, 12,345 documents, 1,234/s, ETA 1m05s"
        );
        assert_eq!(
            progress_line(&j),
            "job-3 addNode 3/8 shards, running/copying, 12,345 documents, 1,234/s, ETA 1m05s"
        );
        let mut paused = j.clone();
        paused.state = "paused".into();
        paused.reason = Some("disk full on n4".into());
        assert_eq!(progress_message(&paused), "paused: disk full on n4");
        paused.reason = None;
        assert_eq!(progress_message(&paused), "paused");
        let mut done = j;
        done.state = "succeeded".into();
        done.phase = "succeeded".into();
        assert_eq!(progress_message(&done), "succeeded, 12,345 documents");
    }

    #[test]
    fn outcomes() {
        let mut j = job();
        j.state = "succeeded".into();
        j.shards_done = 8;
        assert_eq!(
            outcome(&j),
            "job-3 succeeded: 8/8 shards, 12,345 documents copied\n"
        );
        j.state = "failed".into();
        j.reason = Some("node n4 unreachable".into());
        j.errors = vec!["shard 2: timeout".into()];
        assert_eq!(
            outcome(&j),
            "job-3 failed: node n4 unreachable\n  error: shard 2: timeout\n"
        );
        assert_eq!(bar_outcome(&j), "failed: node n4 unreachable");
        j.state = "canceled".into();
        j.reason = None;
        j.errors.clear();
        assert_eq!(outcome(&j), "job-3 canceled\n");
        assert_eq!(bar_outcome(&j), "canceled");
        j.state = "succeeded".into();
        assert_eq!(bar_outcome(&j), "succeeded, 12,345 documents copied");
    }

    #[test]
    fn accepted_changes() {
        let text = accepted(
            &json!({"job": {"id": "job-7", "kind": "addNode", "state": "running", "phase": "planning"}}),
        );
        assert_eq!(
            text,
            "Job job-7 (addNode) accepted: running/planning.\nWatch it with: miroirctl jobs watch job-7\n"
        );
        let text =
            accepted(&json!({"topology": {"epoch": 9, "shards": 64, "nodes": [{"id": "a"}]}}));
        assert_eq!(text, "Done: topology epoch 9, 1 nodes, 64 shards.\n");
        assert_eq!(accepted(&Value::Null), "Done.\n");
        assert_eq!(
            accepted(&json!({"node": "n1"})),
            "Done: {\"node\":\"n1\"}\n"
        );
    }

    #[test]
    fn job_states() {
        let mut j = job();
        j.state = "paused".into();
        j.phase = String::new();
        j.reason = Some("operator".into());
        assert_eq!(job_state(&j), "job-3 is paused: operator\n");
    }

    fn topology() -> Topology {
        parse(&json!({
            "epoch": 7, "shards": 4, "replicationFactor": 1,
            "nodes": [
                {"id": "n1", "address": "10.0.0.1:7700", "group": "a", "state": "active", "draining": false},
                {"id": "n2", "address": "10.0.0.2:7700", "group": "a", "state": "active", "draining": false},
                {"id": "n3", "address": "10.0.0.3:7700", "group": "b", "state": "failed", "draining": true},
                {"id": "n4", "address": "10.0.0.4:7700", "group": "b", "state": "active", "draining": false}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn status_shows_the_replication_policy() {
        let mut t = topology();
        t.min_copies = json!(2);
        t.unavailable_shards = json!("partial");
        let text = status(&t, Err("down"), Err("down"));
        assert!(
            text.contains("Writes need 2 in-sync copies; searches without a shard: partial\n"),
            "{text}"
        );
        assert!(!status(&topology(), Err("down"), Err("down")).contains("Writes need"));
    }

    #[test]
    fn status_with_copies() {
        let shards: Shards = parse(&json!({
            "epoch": 7, "groups": ["a", "b"],
            "shards": [
                {"shard": 0, "owners": {"a": ["n1"], "b": ["n4"]},
                 "copies": {"a": [{"node": "n1", "state": "active"}],
                            "b": [{"node": "n4", "state": "active"}, {"node": "n3", "state": "retiring"}]}},
                {"shard": 1, "owners": {"a": ["n2"], "b": ["n4"]},
                 "copies": {"a": [{"node": "n2", "state": "copying"}], "b": [{"node": "n4", "state": "active"}]}},
                {"shard": 2, "owners": {"a": ["n1"], "b": ["n4"]}},
                {"shard": 3, "owners": {"a": ["n1"], "b": ["n3"]}}
            ]
        }))
        .unwrap();
        let fleet = json!({"epoch": 7, "servedEpoch": 7, "leader": true, "rollout": {"state": "idle"},
            "fleet": {"envoys": [{"nodeId": "envoy-1", "epoch": 7}, {"nodeId": "envoy-2", "epoch": 6}]}});
        let text = status(&topology(), Ok(&shards), Ok(&fleet));
        assert!(text.starts_with(
            "Topology epoch 7: 4 shards, replication factor 1, 4 nodes in 2 groups\n\n"
        ));
        assert!(text.contains("GROUP  NODE  ADDRESS        STATE   DRAINING  SHARDS\n"));
        assert!(text.contains("a      n1    10.0.0.1:7700  active  no        3\n"));
        assert!(text.contains("a      n2    10.0.0.2:7700  active  no        1\n"));
        assert!(text.contains("b      n3    10.0.0.3:7700  failed  yes       1\n"));
        assert!(text.contains("b      n4    10.0.0.4:7700  active  no        3\n"));
        assert!(text.contains(
            "Balance (shards per node): a min 1 / max 3; b min 3 / max 3 (draining nodes excluded)\n"
        ));
        assert!(text.contains(
            "Copies not active (2):\n  shard 0 in b: n3 retiring\n  shard 1 in a: n2 copying\n"
        ));
        assert!(text.contains("Fleet: epoch 7, served 7, leader, rollout idle, 2 Envoys\n"));
        assert!(text.contains("  epoch 7: 1 (envoy-1)\n  epoch 6 (behind): 1 (envoy-2)\n"));
    }

    #[test]
    fn status_without_shards_or_fleet() {
        let text = status(&topology(), Err("HTTP 503"), Err("HTTP 404"));
        assert!(text.contains("a      n1    10.0.0.1:7700  active  no        ?\n"));
        assert!(text.contains("Shards: unavailable (HTTP 503)\n"));
        assert!(text.contains("Fleet: unavailable (HTTP 404)\n"));
        assert!(!text.contains("Balance"));
    }

    #[test]
    fn status_names_owners_outside_the_topology() {
        let shards: Shards =
            parse(&json!({"shards": [{"shard": 0, "owners": {"a": ["n1", "ghost"]}}]})).unwrap();
        let text = status(&topology(), Ok(&shards), Ok(&json!({})));
        assert!(text.contains("a      ghost  -              not in topology  no        1\n"));
        assert!(text.contains("Copies not active: none\n"));
        assert!(text.contains("Fleet: {}\n"));
    }

    #[test]
    fn replication_per_group() {
        let mut t = topology();
        t.replication_factor = json!({"a": 2, "b": 3});
        let text = status(&t, Err("x"), Err("y"));
        assert!(text.contains("replication factor a=2, b=3,"));
    }

    #[test]
    fn fleets_of_other_shapes() {
        assert_eq!(
            fleet_summary(&json!({"envoys": [{"id": "e1"}]}), Some(3)),
            "Fleet: 1 Envoy\n  no epoch acknowledged (behind): 1 (e1)\n"
        );
        assert_eq!(
            fleet_summary(
                &json!({"epoch": null, "servedEpoch": null, "fleet": {"envoys": []}}),
                None
            ),
            "Fleet: served none, no Envoy connected\n"
        );
        let many: Vec<Value> = (0..10)
            .map(|i| json!({"nodeId": format!("e{i}"), "epoch": 2}))
            .collect();
        let text = fleet_summary(&json!({"fleet": {"envoys": many}}), Some(2));
        assert!(text.ends_with("  epoch 2: 10 (e0, e1, e2, e3, e4, e5, e6, e7, +2 more)\n"));
        assert_eq!(fleet_summary(&json!([1, 2]), None), "Fleet: [1,2]\n");
    }
}

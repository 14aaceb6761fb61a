//! Changes every node applies (index and settings changes, deletion by filter, clearing): the
//! same request to every node, phase after phase, answered with one task.

use miroir_topology::tasks::{Intent, IntentCall, COMPLETED_KINDS, INTENT_KINDS};
use miroir_topology::{Node, SEQ_FIELD, SHARD_FIELD};
use serde_json::{json, Value};

use crate::error::MeiliError;
use crate::host::{Host, Reply};
use crate::ops::phases::{Phase, Phases, Progress};
use crate::ops::Step;
use crate::plan::calls::Ctx;
use crate::tasks::TaskRecord;

use super::fanout::{first_problem, outcome, Fanout};
use super::in_sync::{self, Misses};
use super::lookup::IndexLookup;
use super::*;

pub(crate) struct Broadcast {
    stage: Stage,
    kind: &'static str,
    index_uid: Option<String>,
    /// The change's record with the control plane, made before any node saw it.
    intent: Option<u64>,
}

enum Stage {
    /// `POST /indexes` first learns where the index exists already: `_miroir_shard` is made
    /// filterable only where the index is new, never over a client's existing settings.
    Lookup {
        lookup: IndexLookup,
        body: Value,
        uid: String,
    },
    /// The change is recorded with the control plane ([`Intent`]) before its phases are sent.
    Recording {
        call: Fanout<()>,
        phases: Vec<Phase>,
        missed: Misses,
    },
    Running(Phases),
}

impl Broadcast {
    /// The client's request, unchanged, to every node.
    pub(crate) fn change(
        ctx: &Ctx,
        kind: &'static str,
        index_uid: Option<String>,
        host: &mut dyn Host,
    ) -> (Self, Step) {
        if let Some(index) = &index_uid {
            crate::config::settings_cache::forget(host, index);
        }
        let body = match kind {
            "documentDeletion" | "documentEdition" => with_stand_ins(ctx.raw_body()),
            _ => ctx.raw_body(),
        };
        let phase = every_node(ctx, ctx.request_method(), ctx.path_and_query(), body);
        Self::run(ctx, vec![phase], kind, index_uid, host)
    }

    pub(crate) fn create_index(ctx: &Ctx, host: &mut dyn Host) -> Result<(Self, Step), MeiliError> {
        let body = ctx.body_object()?;
        let Some(uid) = body.get("uid").and_then(Value::as_str).map(str::to_string) else {
            // Let the nodes word the error about a missing or malformed uid: it is theirs.
            return Ok(Self::change(ctx, "indexCreation", None, host));
        };
        let lookup = IndexLookup::send(ctx, &uid, host);
        let mut op = Broadcast {
            stage: Stage::Lookup {
                lookup,
                body: Value::Object(body),
                uid: uid.clone(),
            },
            kind: "indexCreation",
            index_uid: Some(uid),
            intent: None,
        };
        let step = op.after_lookup_if_complete(ctx, host);
        Ok((op, step))
    }

    /// Settings changes, keeping `_miroir_shard` filterable whatever the client sends.
    pub(crate) fn settings(
        ctx: &Ctx,
        index: String,
        sub: Option<&str>,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
        let method = ctx.request_method();
        let path = ctx.path_and_query();
        let settings_path = format!("/indexes/{index}/settings");
        if method != "DELETE" {
            // A body that is not JSON is the nodes' to refuse.
            if let Ok(body) = ctx.body_json() {
                crate::request::reserved_refs::check_settings(sub, &body)?;
            }
        }
        crate::config::settings_cache::forget(host, &index);
        let phases = match (method, sub) {
            ("PATCH", None) => {
                let mut body = ctx.body_object()?;
                if let Some(filterable) = body.get_mut("filterableAttributes") {
                    keep_shard_field(filterable);
                }
                if let Some(displayed) = body.get_mut("displayedAttributes") {
                    keep_seq_field(displayed);
                }
                vec![every_node_json(ctx, "PATCH", path, &Value::Object(body))]
            }
            // A reset would make `_miroir_shard` unfilterable: make it filterable again after.
            ("DELETE", None) => vec![
                every_node(ctx, "DELETE", path, None),
                shard_field_filterable(ctx, ctx.nodes(), &index),
            ],
            ("PUT", Some("filterable-attributes")) => {
                let mut body = ctx.body_json()?;
                keep_shard_field(&mut body);
                vec![every_node_json(ctx, "PUT", path, &body)]
            }
            ("PUT", Some("displayed-attributes")) => {
                let mut body = ctx.body_json()?;
                keep_seq_field(&mut body);
                vec![every_node_json(ctx, "PUT", path, &body)]
            }
            ("DELETE", Some("filterable-attributes")) => vec![every_node_json(
                ctx,
                "PUT",
                format!("{settings_path}/filterable-attributes"),
                &json!([SHARD_FIELD]),
            )],
            _ => vec![every_node(ctx, method, path, ctx.raw_body())],
        };
        Ok(Self::run(ctx, phases, "settingsUpdate", Some(index), host))
    }

    fn run(
        ctx: &Ctx,
        phases: Vec<Phase>,
        kind: &'static str,
        index_uid: Option<String>,
        host: &mut dyn Host,
    ) -> (Self, Step) {
        let mut op = Broadcast {
            stage: Stage::Recording {
                call: Fanout::new(),
                phases: Vec::new(),
                missed: Misses::default(),
            },
            kind,
            index_uid,
            intent: None,
        };
        let step = op.begin(ctx, phases, Misses::default(), host);
        (op, step)
    }

    /// Records the change with the control plane first when it is one to record, then sends
    /// its phases.
    fn begin(
        &mut self,
        ctx: &Ctx,
        phases: Vec<Phase>,
        missed: Misses,
        host: &mut dyn Host,
    ) -> Step {
        if let (Some(control_plane), Some(intent)) = (
            &ctx.config.control_plane,
            intent_of(ctx, self.kind, self.index_uid.as_deref(), &phases),
        ) {
            let request = super::intent::record(ctx, control_plane, &intent);
            let mut call = Fanout::new();
            call.send(host, &request, ());
            if !call.is_complete() {
                self.stage = Stage::Recording {
                    call,
                    phases,
                    missed,
                };
                return Step::Wait;
            }
        }
        self.send_phases(ctx, phases, missed, host)
    }

    fn send_phases(
        &mut self,
        ctx: &Ctx,
        phases: Vec<Phase>,
        missed: Misses,
        host: &mut dyn Host,
    ) -> Step {
        let (phases, progress) = Phases::start(phases, missed, host);
        self.stage = Stage::Running(phases);
        self.step(ctx, progress, host)
    }

    pub(crate) fn on_reply(
        &mut self,
        ctx: &Ctx,
        token: u32,
        reply: Reply,
        host: &mut dyn Host,
    ) -> Step {
        match &mut self.stage {
            Stage::Lookup { lookup, .. } => {
                if !lookup.accept(token, reply) {
                    return Step::Wait;
                }
                self.after_lookup_if_complete(ctx, host)
            }
            Stage::Recording {
                call,
                phases,
                missed,
            } => {
                if !call.accept(token, reply) {
                    return Step::Wait;
                }
                // Not recorded (the control plane unreachable, or the key may not make the
                // change): sent all the same, as without a control plane.
                self.intent = call
                    .replies
                    .first()
                    .and_then(|(_, reply)| super::intent::recorded(reply));
                let (phases, missed) = (std::mem::take(phases), std::mem::take(missed));
                self.send_phases(ctx, phases, missed, host)
            }
            Stage::Running(phases) => {
                let progress = phases.on_reply(token, reply, host);
                self.step(ctx, progress, host)
            }
        }
    }

    fn after_lookup_if_complete(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        let Stage::Lookup { lookup, body, uid } = &mut self.stage else {
            return Step::Wait;
        };
        let (missing, unreachable) = match lookup.result() {
            None => return Step::Wait,
            Some(Err(problem)) => return Step::Answer(problem),
            Some(Ok(found)) => (found.missing, found.unreachable),
        };
        let creation = every_node_json(ctx, "POST", "/indexes".into(), body);
        let filterable =
            shard_field_filterable(ctx, ctx.nodes().filter(|n| missing.contains(&n.id)), uid);
        self.begin(ctx, vec![creation, filterable], unreachable, host)
    }

    fn step(&mut self, ctx: &Ctx, progress: Progress, host: &mut dyn Host) -> Step {
        let Stage::Running(phases) = &self.stage else {
            return Step::Wait;
        };
        match progress {
            Progress::Finished => {
                let mut record = TaskRecord::new(self.index_uid.clone(), self.kind);
                record.intent = self.intent;
                for phase in &phases.finished {
                    record_tasks(&mut record, phase);
                }
                let first = phases.finished.first().cloned().unwrap_or_default();
                let took_any = first.iter().any(|(_, reply)| {
                    matches!(outcome(reply), crate::ops::fanout::Outcome::Success(_))
                });
                if !phases.missed.is_empty() && !changes_data(self.kind) {
                    // A dump or snapshot without a node's is incomplete, and there is nothing
                    // for a repair to bring that node: every node must take it.
                    return Step::Answer(
                        MeiliError::unavailable(
                            "miroir_node_unavailable",
                            format!("Node(s) {} did not answer.", phases.missed.describe()),
                        )
                        .into(),
                    );
                }
                if !took_any {
                    // No node answered: nothing to acknowledge, nothing to repair.
                    return Step::Answer(first_problem(&first).unwrap_or_else(|| {
                        MeiliError::unavailable(
                            "miroir_write_unavailable",
                            "No node took the change. Retrying the same request is safe.",
                        )
                        .into()
                    }));
                }
                in_sync::conclude(ctx, host, record, &first, None, &phases.missed)
            }
            other => other.into(),
        }
    }
}

/// The change as the control plane records it: each phase's call, which is the same for every
/// node it goes to. `None` for a change not recorded (neither [`INTENT_KINDS`] nor
/// [`COMPLETED_KINDS`]: dumps, snapshots), or one whose body is not JSON (the nodes refuse it).
fn intent_of(ctx: &Ctx, kind: &str, index_uid: Option<&str>, phases: &[Phase]) -> Option<Intent> {
    if !INTENT_KINDS.contains(&kind) && !COMPLETED_KINDS.contains(&kind) {
        return None;
    }
    let every: Vec<&str> = ctx.nodes().map(|n| n.id.as_str()).collect();
    let mut calls = Vec::new();
    for phase in phases {
        let Some((_, first)) = phase.first() else {
            continue;
        };
        let body = match &first.body {
            Some(bytes) if !bytes.is_empty() => Some(serde_json::from_slice(bytes).ok()?),
            _ => None,
        };
        let nodes: Vec<String> = phase.iter().map(|(node, _)| node.clone()).collect();
        calls.push(IntentCall {
            method: first.method.to_string(),
            path: first.path.clone(),
            body,
            nodes: (nodes.len() != every.len()).then_some(nodes),
        });
    }
    Some(Intent {
        kind: kind.to_string(),
        // A swap names its indexes in its body.
        target: index_uid.unwrap_or_default().to_string(),
        phases: calls,
    })
}

/// Whether a change of this kind changes what the nodes hold (a dump or a snapshot does not).
fn changes_data(kind: &str) -> bool {
    !matches!(kind, "dumpCreation" | "snapshotCreation")
}

fn every_node(ctx: &Ctx, method: &'static str, path: String, body: Option<Vec<u8>>) -> Phase {
    ctx.nodes()
        .map(|n| {
            (
                n.id.clone(),
                ctx.call(n, method, path.clone(), body.clone()),
            )
        })
        .collect()
}

fn every_node_json(ctx: &Ctx, method: &'static str, path: String, body: &Value) -> Phase {
    every_node(
        ctx,
        method,
        path,
        Some(serde_json::to_vec(body).unwrap_or_default()),
    )
}

/// The settings phase that makes `_miroir_shard` filterable on `nodes`.
pub(crate) fn shard_field_filterable<'a>(
    ctx: &Ctx,
    nodes: impl Iterator<Item = &'a Node>,
    index: &str,
) -> Phase {
    let body = json!({"filterableAttributes": [SHARD_FIELD]});
    nodes
        .map(|n| {
            (
                n.id.clone(),
                ctx.json_call(n, "PATCH", format!("/indexes/{index}/settings"), &body),
            )
        })
        .collect()
}

/// A client's displayed attributes plus `_miroir_seq`, which the merge retrieves to break ties.
/// `["*"]` (or anything that is not a list) already displays it.
/// A deletion or edition body whose `filter` names a reserved field, with the stand-ins the
/// nodes refuse (or match) as one Meilisearch would the field ([`crate::request::reserved_refs`]).
fn with_stand_ins(body: Option<Vec<u8>>) -> Option<Vec<u8>> {
    let bytes = body?;
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&bytes) else {
        return Some(bytes);
    };
    match map.get("filter") {
        Some(filter) if crate::request::reserved_refs::names_reserved(filter) => {
            let substituted = crate::request::reserved_refs::substitute(filter);
            map.insert("filter".into(), substituted);
            serde_json::to_vec(&map).ok().or(Some(bytes))
        }
        _ => Some(bytes),
    }
}

pub(crate) fn keep_seq_field(displayed: &mut Value) {
    if let Value::Array(items) = displayed {
        let shown = |name: &str| items.iter().any(|i| i.as_str() == Some(name));
        if !shown("*") && !shown(SEQ_FIELD) {
            items.push(json!(SEQ_FIELD));
        }
    }
}

/// A client's filterable attributes plus `_miroir_shard`, which searches need on every node.
pub(crate) fn keep_shard_field(filterable: &mut Value) {
    let has_field = |items: &Vec<Value>| {
        items.iter().any(|item| {
            item.as_str() == Some(SHARD_FIELD)
                || item
                    .get("attributePatterns")
                    .and_then(Value::as_array)
                    .is_some_and(|p| p.iter().any(|x| x.as_str() == Some(SHARD_FIELD)))
        })
    };
    match filterable {
        Value::Array(items) if !has_field(items) => items.push(json!(SHARD_FIELD)),
        Value::Array(_) => {}
        other => *other = json!([SHARD_FIELD]),
    }
}

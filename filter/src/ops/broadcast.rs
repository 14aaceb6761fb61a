use std::collections::BTreeMap;

use miroir_topology::{Node, SHARD_FIELD};
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::error::MeiliError;
use crate::exchange::Step;
use crate::host::{Host, Reply};
use crate::sequence::{Phase, Progress, Sequence};
use crate::tasks::TaskRecord;

use super::*;

/// Index creation and settings: the same change on every node, phase after phase.
pub(crate) struct Broadcast {
    sequence: Sequence,
    /// Phases whose node tasks the client's task stands for.
    kind: &'static str,
    index_uid: Option<String>,
}

impl Broadcast {
    pub(crate) fn create_index(ctx: &Ctx, host: &mut dyn Host) -> Result<(Self, Step), MeiliError> {
        let body = ctx.body_object()?;
        let uid = body.get("uid").and_then(Value::as_str).map(str::to_string);
        let mut phases: Vec<Phase> = vec![ctx
            .nodes()
            .map(|n| {
                (
                    n.id.clone(),
                    ctx.json_call(n, "POST", "/indexes".into(), &Value::Object(body.clone())),
                )
            })
            .collect()];
        if let Some(uid) = &uid {
            phases.push(shard_field_filterable(ctx, ctx.nodes(), uid));
        }
        let (sequence, progress) = Sequence::start(phases, host);
        let op = Broadcast {
            sequence,
            kind: "indexCreation",
            index_uid: uid,
        };
        Ok((op, progress.into()))
    }

    pub(crate) fn settings(
        ctx: &Ctx,
        index: String,
        host: &mut dyn Host,
    ) -> Result<(Self, Step), MeiliError> {
        let mut body = ctx.body_object()?;
        if let Some(filterable) = body.get_mut("filterableAttributes") {
            keep_shard_field(filterable);
        }
        let body = Value::Object(body);
        let path = format!("/indexes/{index}/settings");
        let phase: Phase = ctx
            .nodes()
            .map(|n| (n.id.clone(), ctx.json_call(n, "PATCH", path.clone(), &body)))
            .collect();
        let (sequence, progress) = Sequence::start(vec![phase], host);
        let op = Broadcast {
            sequence,
            kind: "settingsUpdate",
            index_uid: Some(index),
        };
        Ok((op, progress.into()))
    }

    pub(crate) fn on_reply(
        &mut self,
        _ctx: &Ctx,
        token: u32,
        reply: Reply,
        host: &mut dyn Host,
    ) -> Step {
        match self.sequence.on_reply(token, reply, host) {
            Progress::Finished => {
                let mut record = TaskRecord {
                    index_uid: self.index_uid.clone(),
                    kind: self.kind.into(),
                    nodes: BTreeMap::new(),
                };
                for phase in &self.sequence.finished {
                    record_tasks(&mut record, phase);
                }
                let first = self.sequence.finished.first().cloned().unwrap_or_default();
                Step::Answer(enqueued_answer(host, &record, &first))
            }
            other => other.into(),
        }
    }
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

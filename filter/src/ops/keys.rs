//! API keys. Meilisearch derives a key's value from the master key and the key's `uid`, so
//! creating a key with the same `uid` on every node (sharing one master key) gives one value
//! everywhere, and the client's key then works on every node, which enforces it itself. A node
//! that misses a key's change is repaired to the others' keys (control-plane/src/jobs/reconcile.rs).

use serde_json::{json, Value};
use xxhash_rust::xxh3::xxh3_128;

use miroir_topology::tasks::{
    Intent, IntentCall, Missed, KEYS_TARGET, KEY_CREATION, KEY_DELETION, KEY_UPDATE,
};

use crate::error::MeiliError;
use crate::host::{Host, Reply};
use crate::ops::fanout::{first_problem, outcome, Answer, Fanout, Outcome};
use crate::ops::in_sync;
use crate::ops::Step;
use crate::plan::calls::Ctx;
use crate::tasks::control_plane;

/// The same request to every node; the first node's answer once all of them succeeded, or once
/// the control plane recorded the nodes that did not answer out of sync (their repair brings
/// them the change), under the in-sync rule writes follow.
pub(crate) struct Everywhere {
    nodes: Vec<String>,
    fanout: Fanout<String>,
    /// The answer to give once the control plane recorded who missed the change (the call's
    /// token), with what was missed.
    held: Option<(u32, Answer, Missed)>,
    /// A key's change being recorded with the control plane before any node sees it: the
    /// call's token, and the body to send the nodes then.
    recording: Option<(u32, Option<Vec<u8>>)>,
    /// The change's record, closed once the nodes answered (a key's change has no task whose
    /// registration would close it).
    intent: Option<u64>,
    closing: Option<u32>,
}

impl Everywhere {
    pub(crate) fn start(ctx: &Ctx, body: Option<Vec<u8>>, host: &mut dyn Host) -> (Self, Step) {
        let mut op = Everywhere {
            nodes: Vec::new(),
            fanout: Fanout::new(),
            held: None,
            recording: None,
            intent: None,
            closing: None,
        };
        if let (Some(control_plane), Some(intent)) =
            (&ctx.config.control_plane, key_intent(ctx, body.as_deref()))
        {
            let call = super::intent::record(ctx, control_plane, &intent);
            if let Ok(token) = host.dispatch(&call) {
                op.recording = Some((token, body));
                return (op, Step::Wait);
            }
        }
        op.send(ctx, body, host);
        let step = op.answer_if_complete(ctx, host);
        (op, step)
    }

    fn send(&mut self, ctx: &Ctx, body: Option<Vec<u8>>, host: &mut dyn Host) {
        for node in ctx.nodes() {
            let call = ctx.call(
                node,
                ctx.request_method(),
                ctx.path_and_query(),
                body.clone(),
            );
            self.fanout.send(host, &call, node.id.clone());
            self.nodes.push(node.id.clone());
        }
    }

    /// `POST /keys` with the client's `uid`, or one Miroir makes up.
    pub(crate) fn create_key(ctx: &Ctx, host: &mut dyn Host) -> Result<(Self, Step), MeiliError> {
        let mut body = ctx.body_object()?;
        if body.get("uid").is_none_or(Value::is_null) {
            let seed = format!(
                "{}:{}:{}",
                host.now_ms(),
                ctx.turn,
                String::from_utf8_lossy(&ctx.request.body)
            );
            body.insert("uid".into(), json!(uuid_v4(xxh3_128(seed.as_bytes()))));
        }
        let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
        Ok(Self::start(ctx, Some(bytes), host))
    }

    pub(crate) fn on_reply(
        &mut self,
        ctx: &Ctx,
        token: u32,
        reply: Reply,
        host: &mut dyn Host,
    ) -> Step {
        if let Some((awaited, _)) = &self.recording {
            if *awaited != token {
                return Step::Wait;
            }
            let Some((_, body)) = self.recording.take() else {
                return Step::Wait;
            };
            // Not recorded (the control plane unreachable, or the key may not make the change):
            // sent all the same.
            self.intent = super::intent::recorded(&reply);
            self.send(ctx, body, host);
            return self.answer_if_complete(ctx, host);
        }
        if self.closing == Some(token) {
            self.closing = None;
            self.intent = None;
            return self.answer_if_complete(ctx, host);
        }
        if let Some((awaited, _, _)) = &self.held {
            if *awaited != token {
                return Step::Wait;
            }
            let Some((_, answer, missed)) = self.held.take() else {
                return Step::Wait;
            };
            return match &reply {
                Reply::Response { status, .. } if (200..300).contains(status) => {
                    host.count(crate::metrics::WRITES_DEGRADED, 1);
                    let degraded = in_sync::degraded(&ctx.config.topology, &missed);
                    Step::Answer(answer.with_header(in_sync::DEGRADED_HEADER, degraded))
                }
                _ => {
                    host.count(crate::metrics::WRITES_UNAVAILABLE, 1);
                    Step::Answer(in_sync::unrecorded(&missed, "it did not record them"))
                }
            };
        }
        if !self.fanout.accept(token, reply) {
            return Step::Wait;
        }
        self.answer_if_complete(ctx, host)
    }

    fn answer_if_complete(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        if !self.fanout.is_complete() || self.closing.is_some() {
            return Step::Wait;
        }
        if let (Some(intent), Some(control_plane)) = (self.intent, &ctx.config.control_plane) {
            let call = super::intent::close(ctx, control_plane, intent);
            self.intent = None;
            if let Ok(token) = host.dispatch(&call) {
                self.closing = Some(token);
                return Step::Wait;
            }
        }
        let replies = std::mem::take(&mut self.fanout.replies);
        let unavailable: Vec<String> = replies
            .iter()
            .filter(|(_, r)| matches!(outcome(r), Outcome::Unavailable(_)))
            .map(|(n, _)| n.clone())
            .collect();
        let refused = replies
            .iter()
            .any(|(_, r)| matches!(outcome(r), Outcome::Refused { .. }));
        let first = self.nodes.iter().find_map(|node| {
            replies
                .iter()
                .find(|(n, r)| n == node && matches!(outcome(r), Outcome::Success(_)))
                .map(|(_, reply)| reply)
        });
        let answer = match first.map(|reply| (reply, outcome(reply))) {
            Some((Reply::Response { status, .. }, Outcome::Success(body))) => {
                Answer::relay(*status, body.to_vec())
            }
            _ => {
                return Step::Answer(
                    first_problem(&replies)
                        .unwrap_or_else(|| MeiliError::internal("no node answered").into()),
                )
            }
        };
        if unavailable.is_empty() {
            return Step::Answer(answer);
        }
        let missed = Missed {
            epoch: ctx.config.topology.epoch,
            shards: None,
            nodes: unavailable,
        };
        let control_plane = match &ctx.config.control_plane {
            Some(cp) if !refused && missed.verdict(&ctx.config.topology).short.is_empty() => cp,
            // Every node must take it: no one can record the others out of sync, or that would
            // leave a shard without an in-sync copy.
            _ => {
                return Step::Answer(
                    first_problem(&replies)
                        .unwrap_or_else(|| MeiliError::internal("no node answered").into()),
                )
            }
        };
        let call = control_plane::call(
            control_plane,
            "POST",
            control_plane::MISSED_PATH.into(),
            ctx.request.trace_headers(),
            serde_json::to_vec(&missed).ok(),
        );
        match host.dispatch(&call) {
            Ok(token) => {
                self.held = Some((token, answer, missed));
                Step::Wait
            }
            Err(_) => {
                host.count(crate::metrics::WRITES_UNAVAILABLE, 1);
                Step::Answer(in_sync::unrecorded(&missed, "unreachable"))
            }
        }
    }
}

/// A key's change as the control plane records it: `None` for another change sent everywhere
/// (experimental features), or a body that is not JSON (the nodes refuse it).
fn key_intent(ctx: &Ctx, body: Option<&[u8]>) -> Option<Intent> {
    let path = ctx.request.path.trim_end_matches('/');
    let kind = match (ctx.request_method(), path.strip_prefix("/keys")) {
        ("POST", Some("")) => KEY_CREATION,
        ("PATCH", Some(rest)) if rest.starts_with('/') => KEY_UPDATE,
        ("DELETE", Some(rest)) if rest.starts_with('/') => KEY_DELETION,
        _ => return None,
    };
    let body = match body {
        Some(bytes) if !bytes.is_empty() => Some(serde_json::from_slice(bytes).ok()?),
        _ => None,
    };
    Some(Intent {
        kind: kind.to_string(),
        target: KEYS_TARGET.to_string(),
        phases: vec![IntentCall {
            method: ctx.request_method().to_string(),
            path: ctx.path_and_query(),
            body,
            nodes: None,
        }],
    })
}

/// A version-4 UUID (random bits from `bits`), hyphenated as Meilisearch expects.
fn uuid_v4(bits: u128) -> String {
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    let part = |from: usize, to: usize| hex.get(from..to).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let uuid = uuid_v4(xxh3_128(b"seed"));
        assert_eq!(uuid.len(), 36);
        let parts: Vec<&str> = uuid.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{uuid}");
        assert!(
            matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b')),
            "{uuid}"
        );
        assert_ne!(uuid, uuid_v4(xxh3_128(b"other seed")));
    }
}

//! API keys. Meilisearch derives a key's value from the master key and the key's `uid`, so
//! creating a key with the same `uid` on every node (sharing one master key) gives one value
//! everywhere, and the client's key then works on every node, which enforces it itself.

use serde_json::{json, Value};
use xxhash_rust::xxh3::xxh3_128;

use crate::error::MeiliError;
use crate::host::{Host, Reply};
use crate::ops::fanout::{first_problem, outcome, Answer, Fanout, Outcome};
use crate::ops::Step;
use crate::plan::calls::Ctx;

/// The same request to every node; the first node's answer once all of them succeeded.
pub(crate) struct Everywhere {
    nodes: Vec<String>,
    fanout: Fanout<String>,
}

impl Everywhere {
    pub(crate) fn start(ctx: &Ctx, body: Option<Vec<u8>>, host: &mut dyn Host) -> (Self, Step) {
        let mut fanout = Fanout::new();
        let mut nodes = Vec::new();
        for node in ctx.nodes() {
            let call = ctx.call(
                node,
                ctx.request_method(),
                ctx.path_and_query(),
                body.clone(),
            );
            fanout.send(host, &call, node.id.clone());
            nodes.push(node.id.clone());
        }
        let mut op = Everywhere { nodes, fanout };
        let step = op.answer_if_complete();
        (op, step)
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

    pub(crate) fn on_reply(&mut self, token: u32, reply: Reply) -> Step {
        if !self.fanout.accept(token, reply) {
            return Step::Wait;
        }
        self.answer_if_complete()
    }

    fn answer_if_complete(&mut self) -> Step {
        if !self.fanout.is_complete() {
            return Step::Wait;
        }
        let replies = std::mem::take(&mut self.fanout.replies);
        if let Some(problem) = first_problem(&replies) {
            return Step::Answer(problem);
        }
        let first = self.nodes.iter().find_map(|node| {
            replies
                .iter()
                .find(|(n, _)| n == node)
                .map(|(_, reply)| reply)
        });
        match first.map(|reply| (reply, outcome(reply))) {
            Some((Reply::Response { status, .. }, Outcome::Success(body))) => {
                Step::Answer(Answer::relay(*status, body.to_vec()))
            }
            _ => Step::Answer(MeiliError::internal("no node answered").into()),
        }
    }
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

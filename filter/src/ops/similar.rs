//! `POST|GET /indexes/{uid}/similar`: the target's shard first, then every other shard.
//!
//! An owner of the target's shard answers `/similar` for that shard (its refusals are
//! Meilisearch's own: unknown embedder, missing document, bad parameters) and, alongside, gives
//! the target's embedding; the other shards are then searched with it
//! ([`crate::merge::similar`]).

use miroir_topology::Node;
use serde_json::{Map, Value};

use crate::error::MeiliError;
use crate::host::{Call, Host, Reply};
use crate::merge::similar::{self, Plan};
use crate::ops::fanout::Answer;
use crate::ops::read::{FirstAnswer, Hide};
use crate::ops::scatter::Scatter;
use crate::ops::Step;
use crate::plan::calls::Ctx;

pub(crate) struct Similar {
    index: String,
    phase: Phase,
}

enum Phase {
    Probe(Box<Probe>),
    Scatter(Box<Scatter>),
    Done,
}

/// The calls to the target's shard, each failing over to the shard's other owners.
struct Probe {
    /// `None` when Miroir cannot read the request: it then goes to a node as it came, for the
    /// node to refuse it.
    plan: Option<Plan>,
    similar: Read,
    /// The target's embedding.
    embedding: Option<Read>,
}

struct Read {
    op: FirstAnswer,
    answer: Option<Answer>,
}

impl Read {
    fn start(candidates: Vec<(String, Call)>, host: &mut dyn Host) -> Self {
        let (op, step) = FirstAnswer::start(candidates, Hide::Nothing, host);
        Read {
            op,
            answer: answer_of(step),
        }
    }

    fn on_reply(&mut self, token: u32, reply: &Reply, host: &mut dyn Host) {
        if self.answer.is_none() {
            // A token this read did not send leaves it unchanged.
            self.answer = answer_of(self.op.on_reply(token, reply.clone(), host));
        }
    }
}

fn answer_of(step: Step) -> Option<Answer> {
    match step {
        Step::Answer(answer) => Some(answer),
        _ => None,
    }
}

impl Similar {
    pub(crate) fn start(ctx: &Ctx, index: &str, get: bool, host: &mut dyn Host) -> (Self, Step) {
        let client = if get {
            similar::query_from_get(&ctx.request.query_pairs())
        } else if is_json(ctx) {
            ctx.body_object().ok()
        } else {
            None
        };
        let topology = &ctx.config.topology;
        let probe = match client.map(|c| (similar::target_id(&c), Plan::new(c, topology))) {
            Some((_, Some(plan))) => {
                let owners = ctx.config.shard_readers(plan.window.shard, ctx.turn);
                let path = format!("/indexes/{index}/similar");
                let body = Value::Object(plan.probe());
                let calls = owners
                    .iter()
                    .map(|n| (n.id.clone(), ctx.json_call(n, "POST", path.clone(), &body)))
                    .collect();
                let reads = owners
                    .iter()
                    .map(|n| (n.id.clone(), ctx.lookup_call(n, plan.embedding_path(index))))
                    .collect();
                Probe {
                    similar: Read::start(calls, host),
                    embedding: Some(Read::start(reads, host)),
                    plan: Some(plan),
                }
            }
            unread => {
                let id = match unread {
                    Some((id, _)) => id,
                    None if get => ctx.request.query_param("id"),
                    None => None,
                };
                let nodes = match id {
                    Some(id) => ctx
                        .config
                        .shard_readers(topology.shard_for_key(&id), ctx.turn),
                    None => ctx.config.nodes_in_read_order(ctx.turn),
                };
                let calls = nodes
                    .into_iter()
                    .map(|n| (n.id.clone(), as_sent(ctx, n)))
                    .collect();
                Probe {
                    similar: Read::start(calls, host),
                    embedding: None,
                    plan: None,
                }
            }
        };
        let mut op = Similar {
            index: index.to_string(),
            phase: Phase::Probe(Box::new(probe)),
        };
        let step = op.probed(ctx, host);
        (op, step)
    }

    pub(crate) fn on_reply(
        &mut self,
        ctx: &Ctx,
        token: u32,
        reply: Reply,
        host: &mut dyn Host,
    ) -> Step {
        match &mut self.phase {
            Phase::Scatter(scatter) => scatter.on_reply(ctx, token, reply, host),
            Phase::Probe(probe) => {
                probe.similar.on_reply(token, &reply, host);
                if let Some(read) = &mut probe.embedding {
                    read.on_reply(token, &reply, host);
                }
                self.probed(ctx, host)
            }
            Phase::Done => Step::Wait,
        }
    }

    /// Once the target's shard answered: its refusal is the answer, else the other shards are
    /// searched.
    fn probed(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        let Phase::Probe(probe) = &self.phase else {
            return Step::Wait;
        };
        let pending = |read: &Read| read.answer.is_none();
        if pending(&probe.similar) || probe.embedding.as_ref().is_some_and(pending) {
            return Step::Wait;
        }
        let Phase::Probe(probe) = std::mem::replace(&mut self.phase, Phase::Done) else {
            return Step::Wait;
        };
        match probe.scatter(ctx, &self.index, host) {
            Ok((scatter, step)) => {
                self.phase = Phase::Scatter(Box::new(scatter));
                step
            }
            Err(answer) => Step::Answer(answer),
        }
    }
}

impl Probe {
    fn scatter(
        self,
        ctx: &Ctx,
        index: &str,
        host: &mut dyn Host,
    ) -> Result<(Scatter, Step), Answer> {
        let similar = self.similar.answer.unwrap_or_else(|| internal("no answer"));
        let Some(plan) = self.plan else {
            return Err(if similar.status < 300 {
                internal("a node accepted a `/similar` request Miroir could not read")
            } else {
                similar
            });
        };
        if similar.status != 200 {
            return Err(similar);
        }
        let read = self
            .embedding
            .and_then(|r| r.answer)
            .unwrap_or_else(|| internal("no answer"));
        if read.status >= 500 {
            return Err(read);
        }
        if read.status != 200 {
            return Err(MeiliError::internal(format!(
                "Miroir could not read the embedding of document `{}` to search the other shards; the node answered {}: {}. Miroir reads it with its `nodeApiKey`, which needs the `documents.get` action.",
                plan.id,
                read.status,
                String::from_utf8_lossy(&read.body)
            ))
            .into());
        }
        let answered: Map<String, Value> =
            serde_json::from_slice(&similar.body).map_err(|_| internal("unreadable answer"))?;
        let document: Value =
            serde_json::from_slice(&read.body).map_err(|_| internal("unreadable document"))?;
        let embedding = plan.embedding(&document).map_err(Answer::from)?;
        let (search, window) = plan.search(embedding);
        Scatter::similar(ctx, index, search, window, answered, host).map_err(Answer::from)
    }
}

fn internal(what: &str) -> Answer {
    MeiliError::internal(format!("/similar: {what}.")).into()
}

/// Meilisearch reads a POST body as JSON only under a JSON content type.
fn is_json(ctx: &Ctx) -> bool {
    ctx.request.header("content-type").is_some_and(|t| {
        t.trim()
            .to_ascii_lowercase()
            .starts_with("application/json")
    })
}

/// The client's request as it came, for a node to word its refusal.
fn as_sent(ctx: &Ctx, node: &Node) -> Call {
    let mut call = ctx.call(node, ctx.request_method(), ctx.path_and_query(), None);
    if let Some(body) = ctx.raw_body() {
        if let Some(content_type) = ctx.request.header("content-type") {
            call.headers
                .push(("content-type".into(), content_type.to_string()));
        }
        call.body = Some(body);
    }
    call
}

#[cfg(test)]
mod tests;

//! Where an index exists and what its primary key is, asked of every node before a change that
//! depends on it (creating the index, routing documents by primary key). A node that does not
//! answer is left out of the change (it missed it; the in-sync rule decides whether the write is
//! acknowledged without it) rather than failing it.

use serde_json::Value;

use miroir_topology::Node;

use crate::host::{Host, Reply};
use crate::ops::fanout::{first_problem, outcome, Answer, Fanout, Outcome};
use crate::ops::in_sync::Misses;
use crate::plan::calls::Ctx;

/// `GET /indexes/{uid}` in flight on every node.
pub(crate) struct IndexLookup(Fanout<String>);

/// What the nodes said.
pub(crate) struct Found {
    /// Nodes without the index.
    pub missing: Vec<String>,
    /// The primary key of the index where it exists and has one (the first node's).
    pub primary_key: Option<String>,
    /// Nodes holding the index gave different primary keys (or some none).
    pub primary_keys_differ: bool,
    /// Nodes that did not answer, with why.
    pub unreachable: Misses,
}

impl IndexLookup {
    pub(crate) fn send(ctx: &Ctx, index: &str, host: &mut dyn Host) -> Self {
        Self::send_to(ctx, index, ctx.nodes(), host)
    }

    /// The lookup asked of `nodes` only.
    pub(crate) fn send_to<'a>(
        ctx: &Ctx,
        index: &str,
        nodes: impl Iterator<Item = &'a Node>,
        host: &mut dyn Host,
    ) -> Self {
        let mut fanout = Fanout::new();
        for node in nodes {
            fanout.send(
                host,
                &ctx.lookup_call(node, format!("/indexes/{index}")),
                node.id.clone(),
            );
        }
        IndexLookup(fanout)
    }

    /// Records a reply; false if the token is not one of the lookup's.
    pub(crate) fn accept(&mut self, token: u32, reply: Reply) -> bool {
        self.0.accept(token, reply)
    }

    /// Every node asked holds the index, those that answered all with `primary_key`.
    pub(crate) fn confirms(found: &Found, primary_key: &str) -> bool {
        found.missing.is_empty()
            && !found.primary_keys_differ
            && found.primary_key.as_deref() == Some(primary_key)
    }

    /// Once every node answered: what they said, or the error to answer the client with.
    pub(crate) fn result(&mut self) -> Option<Result<Found, Answer>> {
        if !self.0.is_complete() {
            return None;
        }
        let mut found = Found {
            missing: Vec::new(),
            primary_key: None,
            primary_keys_differ: false,
            unreachable: Misses::default(),
        };
        let mut first_holder = true;
        let mut others = Vec::new();
        let mut answered = false;
        let mut replies = std::mem::take(&mut self.0.replies);
        replies.sort_by(|a, b| a.0.cmp(&b.0));
        for (node, reply) in replies {
            match &reply {
                Reply::Response {
                    status: 404, body, ..
                } if super::is_index_not_found(body) => found.missing.push(node),
                Reply::Response {
                    status: 200, body, ..
                } => {
                    let primary_key = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
                        v.get("primaryKey")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    });
                    if first_holder {
                        found.primary_key = primary_key;
                        first_holder = false;
                    } else if found.primary_key.is_none() {
                        found.primary_keys_differ = true;
                        found.primary_key = primary_key;
                    } else if primary_key != found.primary_key {
                        found.primary_keys_differ = true;
                    }
                }
                _ => match outcome(&reply) {
                    Outcome::Unavailable(why) => {
                        found.unreachable.add(&node, why);
                        others.push((node, reply));
                        continue;
                    }
                    _ => others.push((node, reply)),
                },
            }
            answered = true;
        }
        let refusal = others
            .iter()
            .find(|(_, reply)| matches!(outcome(reply), Outcome::Refused { .. }));
        Some(match refusal {
            Some((node, reply)) => Err(first_problem(&[(node.clone(), reply.clone())])
                .unwrap_or_else(|| {
                    crate::error::MeiliError::internal("the index lookup failed").into()
                })),
            None if !answered => Err(first_problem(&others).unwrap_or_else(|| {
                crate::error::MeiliError::internal("no node answered the index lookup").into()
            })),
            None => Ok(found),
        })
    }
}

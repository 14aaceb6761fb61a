//! Sends a scattered search's follow-up rounds (`merge::follow_up`) to the nodes that answered
//! its first round, each restricted to the same shards as before.
//!
//! A follow-up call that fails teaches nothing: the merge then uses what the first answers said
//! (a count stays short), and the client still gets its answer.

use miroir_topology::limits::MAX_FOLLOW_UP_ROUNDS;
use serde_json::{Map, Value};

use crate::host::{Host, Reply};
use crate::merge::follow_up::FollowUp;
use crate::ops::fanout::{outcome, Fanout, Outcome};
use crate::plan::calls::Ctx;

pub(crate) struct Rounds {
    logic: FollowUp,
    /// The round in flight, tagged by call.
    fanout: Fanout<usize>,
    /// Rounds sent so far, at most `MAX_FOLLOW_UP_ROUNDS`.
    sent: u32,
}

impl Rounds {
    /// Sends the first round; `nodes` holds the node behind each slot.
    pub(crate) fn start(ctx: &Ctx, host: &mut dyn Host, logic: FollowUp, nodes: &[String]) -> Self {
        let mut rounds = Rounds {
            logic,
            fanout: Fanout::new(),
            sent: 0,
        };
        rounds.send_next(ctx, host, nodes);
        rounds
    }

    /// Asks the next round's questions; false when none is left.
    fn send_next(&mut self, ctx: &Ctx, host: &mut dyn Host, nodes: &[String]) -> bool {
        loop {
            // Each kind of round stops on its own well before; this bounds their sum.
            if self.sent >= MAX_FOLLOW_UP_ROUNDS {
                host.count(crate::metrics::SEARCH_FOLLOW_UP_ROUNDS_EXHAUSTED, 1);
                return false;
            }
            self.sent = self.sent.saturating_add(1);
            let calls = self.logic.next_round();
            if calls.is_empty() {
                if self.logic.take_unsettled() {
                    host.count(crate::metrics::SEARCH_DISTINCT_UNSETTLED, 1);
                }
                return false;
            }
            self.fanout = Fanout::new();
            for (tag, call) in calls.into_iter().enumerate() {
                let node = nodes
                    .get(call.slot)
                    .and_then(|id| ctx.config.topology.node(id));
                match node {
                    Some(node) => {
                        let call = ctx.json_call(node, "POST", call.path, &call.body);
                        self.fanout.send(host, &call, tag);
                    }
                    None => self.logic.accept(tag, None),
                }
            }
            if !self.absorb(host) {
                return true;
            }
        }
    }

    /// Feeds the round's replies to the logic once all are in; true when the round is over.
    fn absorb(&mut self, host: &mut dyn Host) -> bool {
        if !self.fanout.is_complete() {
            return false;
        }
        for (tag, reply) in std::mem::take(&mut self.fanout.replies) {
            match outcome(&reply) {
                Outcome::Success(body) => self.logic.accept(tag, Some(body)),
                Outcome::Refused { status, .. } => {
                    host.log_warn(&format!("a follow-up search was refused ({status})"));
                    self.logic.accept(tag, None);
                }
                Outcome::Unavailable(why) => {
                    host.log_warn(&format!("a follow-up search failed ({why})"));
                    self.logic.accept(tag, None);
                }
            }
        }
        true
    }

    pub(crate) fn owns(&self, token: u32) -> bool {
        self.fanout.owns(token)
    }

    /// A reply to one of the round's calls; true once no round is left.
    pub(crate) fn on_reply(
        &mut self,
        ctx: &Ctx,
        host: &mut dyn Host,
        token: u32,
        reply: Reply,
        nodes: &[String],
    ) -> bool {
        if !self.fanout.accept(token, reply) || !self.absorb(host) {
            return false;
        }
        !self.send_next(ctx, host, nodes)
    }

    /// Whether a round is still out.
    pub(crate) fn pending(&self) -> bool {
        !self.fanout.is_complete()
    }

    /// The first answers completed, and the number of distinct hits when the search is distinct.
    pub(crate) fn finish(self, responses: &mut [Map<String, Value>]) -> Option<u64> {
        self.logic.finish(responses)
    }
}

#[cfg(test)]
mod tests;

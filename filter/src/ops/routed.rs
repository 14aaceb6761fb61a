//! A write whose parts go to different nodes by shard (document batches, deletions by id):
//! acknowledged once, for every touched shard, a majority of its active copies and every copy a
//! job is filling or replacing took their part.

use std::collections::BTreeMap;

use crate::error::MeiliError;
use crate::host::{Call, Host, Reply};
use crate::ops::fanout::{outcome, Answer, Fanout, Outcome};
use crate::ops::Step;
use crate::plan::calls::Ctx;
use crate::tasks::TaskRecord;

use super::{enqueued, record_tasks};

pub(crate) struct RoutedWrite {
    fanout: Fanout<String>,
    /// Shard → its active copies (a majority must take the write) and its other copies (all
    /// must), for the quorum.
    shards: BTreeMap<u32, (Vec<String>, Vec<String>)>,
    record: TaskRecord,
}

impl RoutedWrite {
    /// Sends each node its call; `shards` are the shards the write touches.
    pub(crate) fn send(
        ctx: &Ctx,
        host: &mut dyn Host,
        calls: Vec<(String, Call)>,
        shards: impl IntoIterator<Item = u32>,
        record: TaskRecord,
    ) -> (Self, Step) {
        let mut write = RoutedWrite::new(ctx, shards, record);
        for (node, call) in calls {
            write.send_part(host, &call, node);
        }
        let step = write.all_sent(host);
        (write, step)
    }

    /// A write touching `shards`, whose parts [`Self::send_part`] sends one by one (so that a
    /// part's body can be dropped before the next one is built).
    pub(crate) fn new(
        ctx: &Ctx,
        shards: impl IntoIterator<Item = u32>,
        record: TaskRecord,
    ) -> Self {
        let shards = shards
            .into_iter()
            .map(|s| {
                let (serving, pending) = ctx.config.write_quorum(s);
                let ids = |nodes: Vec<&miroir_topology::Node>| {
                    nodes.into_iter().map(|n| n.id.clone()).collect()
                };
                (s, (ids(serving), ids(pending)))
            })
            .collect();
        RoutedWrite {
            fanout: Fanout::new(),
            shards,
            record,
        }
    }

    pub(crate) fn send_part(&mut self, host: &mut dyn Host, call: &Call, node: String) {
        self.fanout.send(host, call, node);
    }

    /// Once every part is sent: the answer, if no reply is awaited.
    pub(crate) fn all_sent(&mut self, host: &mut dyn Host) -> Step {
        self.conclude_if_complete(host)
    }

    pub(crate) fn on_reply(&mut self, token: u32, reply: Reply, host: &mut dyn Host) -> Step {
        if !self.fanout.accept(token, reply) {
            return Step::Wait;
        }
        self.conclude_if_complete(host)
    }

    fn conclude_if_complete(&mut self, host: &mut dyn Host) -> Step {
        if !self.fanout.is_complete() {
            return Step::Wait;
        }
        let replies = std::mem::take(&mut self.fanout.replies);
        let mut accepted = Vec::new();
        let mut unavailable = Vec::new();
        let mut sorted: Vec<&(String, Reply)> = replies.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (node, reply) in sorted {
            match outcome(reply) {
                Outcome::Success(_) => accepted.push(node.clone()),
                Outcome::Refused { status, body } => {
                    return Step::Answer(Answer::relay(status, body.to_vec()))
                }
                Outcome::Unavailable(why) => unavailable.push(format!("`{node}` ({why})")),
            }
        }
        let short: Vec<u32> = self
            .shards
            .iter()
            .filter(|(_, (serving, pending))| {
                let acks = serving.iter().filter(|t| accepted.contains(t)).count();
                acks.saturating_mul(2) <= serving.len()
                    || pending.iter().any(|t| !accepted.contains(t))
            })
            .map(|(shard, _)| *shard)
            .collect();
        if !short.is_empty() || accepted.is_empty() {
            host.count("miroir_write_quorum_failures", 1);
            return Step::Answer(
                MeiliError::unavailable(
                    "miroir_write_quorum_not_met",
                    format!(
                        "The write did not reach a majority of the owners of shard(s) {short:?}: {}. It may have been applied on the nodes that answered; retrying the same request is safe.",
                        unavailable.join(", ")
                    ),
                )
                .into(),
            );
        }
        if !unavailable.is_empty() {
            host.log_warn(&format!(
                "write accepted by quorum; missed {}",
                unavailable.join(", ")
            ));
        }
        record_tasks(&mut self.record, &replies);
        enqueued(std::mem::take(&mut self.record), &replies)
    }
}

//! A write whose parts go to different nodes by shard (document batches, deletions by id),
//! acknowledged by the in-sync rule ([`in_sync`]).

use crate::error::MeiliError;
use crate::host::{Call, Host, Reply};
use crate::ops::fanout::{outcome, Answer, Fanout, Outcome};
use crate::ops::in_sync::{self, Misses};
use crate::ops::Step;
use crate::plan::calls::Ctx;
use crate::tasks::TaskRecord;

use super::record_tasks;

pub(crate) struct RoutedWrite {
    fanout: Fanout<String>,
    /// The shards the write touches.
    shards: Vec<u32>,
    /// Nodes that missed an earlier step of the write (the index's creation): their copies of
    /// every shard missed it.
    missed_before: Misses,
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
        let mut write = RoutedWrite::new(shards, Misses::default(), record);
        for (node, call) in calls {
            write.send_part(host, &call, node);
        }
        let step = write.all_sent(ctx, host);
        (write, step)
    }

    /// A write touching `shards`, whose parts [`Self::send_part`] sends one by one (so that a
    /// part's body can be dropped before the next one is built).
    pub(crate) fn new(
        shards: impl IntoIterator<Item = u32>,
        missed_before: Misses,
        record: TaskRecord,
    ) -> Self {
        let mut shards: Vec<u32> = shards.into_iter().collect();
        shards.sort_unstable();
        shards.dedup();
        RoutedWrite {
            fanout: Fanout::new(),
            shards,
            missed_before,
            record,
        }
    }

    pub(crate) fn send_part(&mut self, host: &mut dyn Host, call: &Call, node: String) {
        self.fanout.send(host, call, node);
    }

    /// Once every part is sent: the answer, if no reply is awaited.
    pub(crate) fn all_sent(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        self.conclude_if_complete(ctx, host)
    }

    pub(crate) fn on_reply(
        &mut self,
        ctx: &Ctx,
        token: u32,
        reply: Reply,
        host: &mut dyn Host,
    ) -> Step {
        if !self.fanout.accept(token, reply) {
            return Step::Wait;
        }
        self.conclude_if_complete(ctx, host)
    }

    fn conclude_if_complete(&mut self, ctx: &Ctx, host: &mut dyn Host) -> Step {
        if !self.fanout.is_complete() {
            return Step::Wait;
        }
        let replies = std::mem::take(&mut self.fanout.replies);
        let mut misses = std::mem::take(&mut self.missed_before);
        let whole = !misses.is_empty();
        let mut took_any = false;
        let mut sorted: Vec<&(String, Reply)> = replies.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (node, reply) in sorted {
            match outcome(reply) {
                Outcome::Success(_) => took_any = true,
                Outcome::Refused { status, body } => {
                    return Step::Answer(Answer::relay(status, body.to_vec()))
                }
                Outcome::Unavailable(why) => misses.add(node, why),
            }
        }
        if !took_any {
            host.count(crate::metrics::WRITES_UNAVAILABLE, 1);
            return Step::Answer(
                MeiliError::unavailable(
                    "miroir_write_unavailable",
                    "No node took the write. Retrying the same request is safe.",
                )
                .into(),
            );
        }
        record_tasks(&mut self.record, &replies);
        let shards = (!whole).then(|| self.shards.clone());
        in_sync::conclude(
            ctx,
            host,
            std::mem::take(&mut self.record),
            &replies,
            shards,
            &misses,
        )
    }
}

//! Phases of calls run one after another. A node processes its tasks in enqueue order, so sending
//! phase N+1 only after every node acknowledged phase N (e.g. create the index, then make
//! `_miroir_shard` filterable, then add documents) orders them on every node without waiting for
//! the tasks themselves. A node that does not answer a phase is left out of the later ones (it
//! missed the change; the control plane repairs it) and the write ends by the in-sync rule.

use std::collections::VecDeque;

use crate::host::{Call, Host, Reply};
use crate::ops::fanout::{outcome, Answer, Fanout, Outcome};
use crate::ops::in_sync::Misses;

pub type Phase = Vec<(String, Call)>;

pub struct Phases {
    remaining: VecDeque<Phase>,
    current: Fanout<String>,
    in_phase: bool,
    /// Replies of every finished phase, in phase order.
    pub finished: Vec<Vec<(String, Reply)>>,
    /// Nodes that did not answer a phase, with why.
    pub missed: Misses,
}

pub enum Progress {
    Waiting,
    Finished,
    /// A node refused; later phases were not sent.
    Failed(Answer),
}

impl Phases {
    /// `missed`: nodes already known to have missed the change, left out of every phase.
    pub fn start(phases: Vec<Phase>, missed: Misses, host: &mut dyn Host) -> (Self, Progress) {
        let mut phases = Phases {
            remaining: phases.into(),
            current: Fanout::new(),
            in_phase: false,
            finished: Vec::new(),
            missed,
        };
        let progress = phases.advance(host);
        (phases, progress)
    }

    pub fn on_reply(&mut self, token: u32, reply: Reply, host: &mut dyn Host) -> Progress {
        if !self.current.accept(token, reply) {
            return Progress::Waiting;
        }
        self.advance(host)
    }

    /// Moves past every completed phase, sending the next one.
    fn advance(&mut self, host: &mut dyn Host) -> Progress {
        while self.current.is_complete() {
            if self.in_phase {
                let mut replies = std::mem::take(&mut self.current.replies);
                replies.sort_by(|a, b| a.0.cmp(&b.0));
                for (node, reply) in &replies {
                    match outcome(reply) {
                        Outcome::Success(_) => {}
                        Outcome::Refused { status, body } => {
                            return Progress::Failed(Answer::relay(status, body.to_vec()))
                        }
                        Outcome::Unavailable(why) => self.missed.add(node, why),
                    }
                }
                self.finished.push(replies);
            }
            let Some(phase) = self.remaining.pop_front() else {
                return Progress::Finished;
            };
            self.in_phase = true;
            for (node, call) in phase {
                if !self.missed.contains(&node) {
                    self.current.send(host, &call, node);
                }
            }
        }
        Progress::Waiting
    }
}

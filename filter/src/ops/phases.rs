//! Phases of calls run one after another. A node processes its tasks in enqueue order, so sending
//! phase N+1 only after every node acknowledged phase N (e.g. create the index, then make
//! `_miroir_shard` filterable, then add documents) orders them on every node without waiting for
//! the tasks themselves.

use std::collections::VecDeque;

use crate::host::{Call, Host, Reply};
use crate::ops::fanout::{first_problem, Answer, Fanout};

pub type Phase = Vec<(String, Call)>;

pub struct Phases {
    remaining: VecDeque<Phase>,
    current: Fanout<String>,
    in_phase: bool,
    /// Replies of every finished phase, in phase order.
    pub finished: Vec<Vec<(String, Reply)>>,
}

pub enum Progress {
    Waiting,
    Finished,
    /// A node refused or was unavailable; later phases were not sent.
    Failed(Answer),
}

impl Phases {
    pub fn start(phases: Vec<Phase>, host: &mut dyn Host) -> (Self, Progress) {
        let mut phases = Phases {
            remaining: phases.into(),
            current: Fanout::new(),
            in_phase: false,
            finished: Vec::new(),
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
                let replies = std::mem::take(&mut self.current.replies);
                if let Some(problem) = first_problem(&replies) {
                    return Progress::Failed(problem);
                }
                self.finished.push(replies);
            }
            let Some(phase) = self.remaining.pop_front() else {
                return Progress::Finished;
            };
            self.in_phase = true;
            for (node, call) in phase {
                self.current.send(host, &call, node);
            }
        }
        Progress::Waiting
    }
}

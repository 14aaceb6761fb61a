//! One client request from start to answer: a state machine fed by call replies. It owns no I/O;
//! every effect goes through [`Host`].

use std::rc::Rc;

use miroir_topology::PluginConfig;
use serde_json::json;

use crate::ctx::Ctx;
use crate::error::MeiliError;
use crate::fanout::Answer;
use crate::host::{Host, Reply};
use crate::ops::broadcast::Broadcast;
use crate::ops::scatter::Scatter;
use crate::ops::task_read::TaskRead;
use crate::ops::write::Write;
use crate::request::Request;
use crate::route::{route, Route};
use crate::sequence::Progress;

pub struct Exchange {
    ctx: Ctx,
    state: State,
}

enum State {
    Answered,
    Broadcast(Broadcast),
    Write(Box<Write>),
    Search(Box<Scatter>),
    TaskRead(TaskRead),
}

impl Exchange {
    pub fn start(
        config: Rc<PluginConfig>,
        request: Request,
        seq: u64,
        host: &mut dyn Host,
    ) -> Exchange {
        let ctx = Ctx {
            config,
            request,
            seq,
        };
        let mut exchange = Exchange {
            ctx,
            state: State::Answered,
        };
        let step = exchange.begin(host);
        exchange.settle(step, host);
        exchange
    }

    pub fn on_reply(&mut self, token: u32, reply: Reply, host: &mut dyn Host) {
        let step = match &mut self.state {
            State::Answered => return,
            State::Broadcast(op) => op.on_reply(&self.ctx, token, reply, host),
            State::Write(op) => op.on_reply(&self.ctx, token, reply, host),
            State::Search(op) => op.on_reply(&self.ctx, token, reply, host),
            State::TaskRead(op) => op.on_reply(token, reply),
        };
        self.settle(step, host);
    }

    pub fn is_answered(&self) -> bool {
        matches!(self.state, State::Answered)
    }

    fn begin(&mut self, host: &mut dyn Host) -> Step {
        let request = &self.ctx.request;
        match route(&request.method, &request.path) {
            Route::Health => {
                host.count("miroir_requests_health", 1);
                Step::Answer(Answer::Json {
                    status: 200,
                    body: json!({"status": "available"}),
                })
            }
            Route::Search { index } => {
                host.count("miroir_requests_search", 1);
                self.enter(Scatter::start(&self.ctx, &index, host), |s| {
                    State::Search(Box::new(s))
                })
            }
            Route::AddDocuments { index, merge } => {
                host.count("miroir_requests_documents", 1);
                self.enter(Write::start(&self.ctx, index, merge, host), |w| {
                    State::Write(Box::new(w))
                })
            }
            Route::CreateIndex => {
                host.count("miroir_requests_indexes", 1);
                self.enter(Broadcast::create_index(&self.ctx, host), State::Broadcast)
            }
            Route::UpdateSettings { index } => {
                host.count("miroir_requests_settings", 1);
                self.enter(
                    Broadcast::settings(&self.ctx, index, host),
                    State::Broadcast,
                )
            }
            Route::GetTask { uid } => {
                host.count("miroir_requests_tasks", 1);
                self.enter(TaskRead::start(&self.ctx, &uid, host), State::TaskRead)
            }
            Route::Unsupported => {
                host.count("miroir_requests_unsupported", 1);
                Step::Answer(MeiliError::not_supported(&request.method, &request.path).into())
            }
        }
    }

    fn enter<T>(
        &mut self,
        started: Result<(T, Step), MeiliError>,
        wrap: impl FnOnce(T) -> State,
    ) -> Step {
        match started {
            Ok((op, step)) => {
                self.state = wrap(op);
                step
            }
            Err(e) => Step::Answer(e.into()),
        }
    }

    fn settle(&mut self, step: Step, host: &mut dyn Host) {
        let Step::Answer(answer) = step else { return };
        self.state = State::Answered;
        let epoch = self.ctx.config.topology.epoch.to_string();
        let headers = [
            ("content-type", "application/json"),
            ("x-miroir-topology-epoch", epoch.as_str()),
        ];
        match answer {
            Answer::Json { status, body } => {
                if status >= 400 {
                    host.count("miroir_responses_error", 1);
                }
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                host.respond(status, &headers, &bytes);
            }
            Answer::Relay { status, body } => {
                host.count("miroir_responses_error", 1);
                host.respond(status, &headers, &body);
            }
        }
    }
}

pub enum Step {
    Wait,
    Answer(Answer),
}

impl From<Progress> for Step {
    fn from(p: Progress) -> Self {
        match p {
            Progress::Failed(answer) => Step::Answer(answer),
            Progress::Waiting | Progress::Finished => Step::Wait,
        }
    }
}

#[cfg(test)]
mod tests;

//! `jobs watch`: poll one job, or every unfinished job and the ones that start meanwhile, until
//! they end. A terminal gets one progress bar per job; anything else one plain line per change.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::{Client, Error};
use crate::model::{parse, Job, JobList, Outcome};
use crate::{out, render};

/// How long the server may stay unreachable before watching gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

/// What changed between two looks at the jobs.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A job is watched from now on (it may already be finished: `Ended` follows).
    Started(Job),
    Changed(Job),
    Ended(Job),
    /// A watched job the server no longer knows.
    Gone(String),
}

struct Watched {
    job: Job,
    finished: bool,
}

/// Which jobs are watched and how they moved; no I/O.
pub struct Tracker {
    /// Every job (the list), rather than one.
    all: bool,
    looked: bool,
    /// Jobs already finished at the first look, which `all` leaves alone.
    ignored: HashSet<String>,
    watched: Vec<Watched>,
}

impl Tracker {
    pub fn new(all: bool) -> Self {
        Tracker {
            all,
            looked: false,
            ignored: HashSet::new(),
            watched: Vec::new(),
        }
    }

    /// A look at the jobs: the list (`all`), or the one job.
    pub fn observe(&mut self, jobs: &[Job]) -> Vec<Event> {
        let mut events = Vec::new();
        for job in jobs {
            if let Some(w) = self.watched.iter_mut().find(|w| w.job.id == job.id) {
                if w.finished || w.job == *job {
                    continue;
                }
                w.job = job.clone();
                if job.is_finished() {
                    w.finished = true;
                    events.push(Event::Ended(job.clone()));
                } else {
                    events.push(Event::Changed(job.clone()));
                }
            } else if self.ignored.contains(&job.id) {
                continue;
            } else if self.all && !self.looked && job.is_finished() {
                self.ignored.insert(job.id.clone());
            } else {
                let finished = job.is_finished();
                self.watched.push(Watched {
                    job: job.clone(),
                    finished,
                });
                events.push(Event::Started(job.clone()));
                if finished {
                    events.push(Event::Ended(job.clone()));
                }
            }
        }
        self.looked = true;
        events
    }

    /// Watched, unfinished jobs that a look at the list did not show (to fetch one by one).
    pub fn missing(&self, jobs: &[Job]) -> Vec<String> {
        self.watched
            .iter()
            .filter(|w| !w.finished && !jobs.iter().any(|j| j.id == w.job.id))
            .map(|w| w.job.id.clone())
            .collect()
    }

    /// The server no longer knows `id`: stop watching it.
    pub fn gone(&mut self, id: &str) -> Vec<Event> {
        match self.watched.iter_mut().find(|w| w.job.id == id) {
            Some(w) if !w.finished => {
                w.finished = true;
                vec![Event::Gone(id.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// Every watched job ended (vacuously so when there was none at the first look).
    pub fn done(&self) -> bool {
        self.looked && self.watched.iter().all(|w| w.finished)
    }

    /// The watched jobs that ended `failed` or `canceled`.
    pub fn failures(&self) -> Vec<&Job> {
        self.watched
            .iter()
            .filter(|w| w.finished && w.job.outcome() == Some(Outcome::Failed))
            .map(|w| &w.job)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }
}

/// Where events are shown.
trait Sink {
    fn event(&mut self, event: &Event);
    fn warn(&mut self, message: &str);
    /// After the last event: what is left to say.
    fn finish(&mut self, tracker: &Tracker);
}

/// One plain line per change (stdout is not a terminal).
#[derive(Default)]
struct Lines {
    last: HashMap<String, String>,
}

impl Sink for Lines {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Started(job) | Event::Changed(job) => {
                let line = render::progress_line(job);
                if self.last.get(&job.id) != Some(&line) {
                    out::line(&line);
                    self.last.insert(job.id.clone(), line);
                }
            }
            Event::Ended(job) => out::print(&render::outcome(job)),
            Event::Gone(id) => out::line(&format!("{id} is no longer known to the server")),
        }
    }

    fn warn(&mut self, message: &str) {
        eprintln!("warning: {message}");
    }

    fn finish(&mut self, _: &Tracker) {}
}

/// One JSON job per line and change (`--json`).
struct JsonLines;

impl Sink for JsonLines {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Started(job) | Event::Changed(job) | Event::Ended(job) => {
                out::line(&serde_json::to_string(job).unwrap_or_default())
            }
            Event::Gone(id) => out::line(&serde_json::json!({"id": id, "gone": true}).to_string()),
        }
    }

    fn warn(&mut self, message: &str) {
        eprintln!("warning: {message}");
    }

    fn finish(&mut self, _: &Tracker) {}
}

/// Bars' labels are padded to this width so that most bars line up.
const PREFIX_WIDTH: usize = 28;

/// A progress bar per job (stdout is a terminal).
struct Bars {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    style: ProgressStyle,
}

impl Bars {
    fn new() -> Self {
        let style = ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} shards  {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: HashMap::new(),
            style,
        }
    }

    /// The message first: each setter redraws, and a bar drawn between the two would show the
    /// new count beside the old phase.
    fn update(bar: &ProgressBar, job: &Job) {
        bar.set_message(render::progress_message(job));
        bar.set_length(job.shards_total);
        bar.set_position(job.shards_done);
    }
}

impl Sink for Bars {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Started(job) => {
                let bar = self.multi.add(ProgressBar::new(job.shards_total));
                bar.set_style(self.style.clone());
                bar.set_prefix(format!("{:<PREFIX_WIDTH$}", render::progress_prefix(job)));
                Self::update(&bar, job);
                self.bars.insert(job.id.clone(), bar);
            }
            Event::Changed(job) => {
                if let Some(bar) = self.bars.get(&job.id) {
                    Self::update(bar, job);
                }
            }
            Event::Ended(job) => {
                if let Some(bar) = self.bars.get(&job.id) {
                    let message = render::bar_outcome(job);
                    bar.set_message(message.clone());
                    bar.set_length(job.shards_total);
                    bar.set_position(job.shards_done);
                    if job.outcome() == Some(Outcome::Succeeded) {
                        bar.finish_with_message(message);
                    } else {
                        bar.abandon_with_message(message);
                    }
                }
            }
            Event::Gone(id) => {
                if let Some(bar) = self.bars.get(id) {
                    bar.abandon_with_message("no longer known to the server");
                }
            }
        }
    }

    fn warn(&mut self, message: &str) {
        self.multi.suspend(|| eprintln!("warning: {message}"));
    }

    fn finish(&mut self, tracker: &Tracker) {
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
        for job in tracker.failures() {
            out::print(&render::outcome(job));
        }
    }
}

/// One look: the job, or the list and any watched job it no longer shows (fetched alone; the
/// ids the server answers 404 for are returned apart).
fn look(
    client: &Client,
    id: Option<&str>,
    tracker: &Tracker,
) -> Result<(Vec<Job>, Vec<String>), Error> {
    if let Some(id) = id {
        let job: Job = parse(&client.get(&["_miroir", "jobs", id])?).map_err(Error::Decode)?;
        return Ok((vec![job], Vec::new()));
    }
    let mut jobs = parse::<JobList>(&client.get(&["_miroir", "jobs"])?)
        .map_err(Error::Decode)?
        .results;
    let mut gone = Vec::new();
    for missing in tracker.missing(&jobs) {
        match client.get(&["_miroir", "jobs", &missing]) {
            Ok(v) => jobs.push(parse(&v).map_err(Error::Decode)?),
            Err(Error::Api { status: 404, .. }) => gone.push(missing),
            Err(e) => return Err(e),
        }
    }
    Ok((jobs, gone))
}

/// Watches until every watched job ended: success when all succeeded, failure when one failed
/// or was canceled.
pub fn run(
    client: &Client,
    id: Option<&str>,
    interval: Duration,
    json: bool,
) -> Result<ExitCode, Error> {
    let mut sink: Box<dyn Sink> = if json {
        Box::new(JsonLines)
    } else if std::io::stdout().is_terminal() {
        Box::new(Bars::new())
    } else {
        Box::new(Lines::default())
    };
    let mut tracker = Tracker::new(id.is_none());
    let mut unreachable_since: Option<Instant> = None;
    loop {
        match look(client, id, &tracker) {
            Ok((jobs, gone)) => {
                unreachable_since = None;
                let mut events = tracker.observe(&jobs);
                for id in gone {
                    events.extend(tracker.gone(&id));
                }
                for event in &events {
                    sink.event(event);
                }
            }
            Err(e) if e.is_transport() => match unreachable_since {
                None => {
                    sink.warn(&format!("{e}; retrying"));
                    unreachable_since = Some(Instant::now());
                }
                Some(since) if since.elapsed() > GIVE_UP_AFTER => {
                    sink.finish(&tracker);
                    return Err(e);
                }
                Some(_) => {}
            },
            Err(e) => {
                sink.finish(&tracker);
                return Err(e);
            }
        }
        if tracker.done() {
            break;
        }
        std::thread::sleep(interval);
    }
    sink.finish(&tracker);
    if tracker.is_empty() && !json {
        out::line("No unfinished job to watch.");
    }
    Ok(if tracker.failures().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, state: &str, done: u64) -> Job {
        Job {
            id: id.into(),
            kind: "addNode".into(),
            state: state.into(),
            shards_done: done,
            shards_total: 4,
            ..Job::default()
        }
    }

    #[test]
    fn one_job_until_it_succeeds() {
        let mut t = Tracker::new(false);
        assert!(!t.done());
        assert_eq!(
            t.observe(&[job("j1", "running", 0)]),
            vec![Event::Started(job("j1", "running", 0))]
        );
        assert!(t.observe(&[job("j1", "running", 0)]).is_empty());
        assert_eq!(
            t.observe(&[job("j1", "running", 2)]),
            vec![Event::Changed(job("j1", "running", 2))]
        );
        assert!(!t.done());
        assert_eq!(
            t.observe(&[job("j1", "succeeded", 4)]),
            vec![Event::Ended(job("j1", "succeeded", 4))]
        );
        assert!(t.done());
        assert!(t.failures().is_empty());
    }

    #[test]
    fn one_finished_job_is_still_reported() {
        let mut t = Tracker::new(false);
        let failed = job("j1", "failed", 1);
        assert_eq!(
            t.observe(std::slice::from_ref(&failed)),
            vec![Event::Started(failed.clone()), Event::Ended(failed.clone())]
        );
        assert!(t.done());
        assert_eq!(t.failures(), vec![&failed]);
    }

    #[test]
    fn every_job_leaves_the_finished_ones_and_takes_new_ones() {
        let mut t = Tracker::new(true);
        let events = t.observe(&[job("old", "succeeded", 4), job("j2", "running", 1)]);
        assert_eq!(events, vec![Event::Started(job("j2", "running", 1))]);
        let events = t.observe(&[
            job("old", "succeeded", 4),
            job("j2", "running", 1),
            job("j3", "paused", 0),
        ]);
        assert_eq!(events, vec![Event::Started(job("j3", "paused", 0))]);
        t.observe(&[job("j2", "succeeded", 4), job("j3", "running", 1)]);
        assert!(!t.done());
        // A job that starts and ends between two looks is still watched.
        let events = t.observe(&[job("j3", "canceled", 1), job("j4", "succeeded", 4)]);
        assert_eq!(
            events,
            vec![
                Event::Ended(job("j3", "canceled", 1)),
                Event::Started(job("j4", "succeeded", 4)),
                Event::Ended(job("j4", "succeeded", 4)),
            ]
        );
        assert!(t.done());
        assert_eq!(t.failures(), vec![&job("j3", "canceled", 1)]);
    }

    #[test]
    fn nothing_to_watch_is_done_at_once() {
        let mut t = Tracker::new(true);
        assert!(t.observe(&[job("old", "failed", 0)]).is_empty());
        assert!(t.done());
        assert!(t.is_empty());
        assert!(t.failures().is_empty());
    }

    #[test]
    fn jobs_that_leave_the_list() {
        let mut t = Tracker::new(true);
        t.observe(&[job("j1", "running", 0), job("j2", "running", 0)]);
        assert_eq!(
            t.missing(&[job("j1", "running", 1)]),
            vec!["j2".to_string()]
        );
        assert_eq!(t.gone("j2"), vec![Event::Gone("j2".into())]);
        assert!(t.gone("j2").is_empty());
        t.observe(&[job("j1", "succeeded", 4)]);
        assert!(t.done());
        assert!(t.failures().is_empty());
    }
}

//! The airlock's screens (`b` bundle, `i` import, `r` resume): their state, their keys,
//! and the answers of the jobs that run them. No I/O: the jobs run off the UI task
//! (`crate::exec::airlock`), asked for by [`AirlockEffect`]s.

use std::path::PathBuf;

use ratatui::crossterm::event::KeyEvent;

use super::jobs::JobEvent;
use super::{Action, AppState, Effect, Overlay};
use crate::airlock::bundle::Outcome;
use crate::airlock::import::Imported;
use crate::airlock::launch::{Launch, Refused};
use crate::airlock::resume::ResumeReport;

/// Job ids of airlock jobs start here.
const JOB_ID_BASE: u64 = 0x4149_0000;

/// Which airlock job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AirlockJob {
    Bundle,
    Import,
    Resume,
}

impl AirlockJob {
    pub fn name(self) -> &'static str {
        match self {
            AirlockJob::Bundle => "bundle",
            AirlockJob::Import => "import",
            AirlockJob::Resume => "resume",
        }
    }
}

/// What the console asks the airlock runner to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AirlockEffect {
    /// Run a job (`id` for the job list).
    Run { job: AirlockJob, id: u64 },
    /// Start `[resume] command` from `checkpoint` (checked again for a training process).
    Launch { experiment: String, checkpoint: PathBuf },
}

/// A report from an airlock job.
#[derive(Debug, Clone)]
pub enum AirlockMsg {
    Progress { job: AirlockJob, id: u64, text: String, done: u64, total: u64 },
    Bundle { id: u64, result: Result<Box<Outcome>, String> },
    Import { id: u64, result: Result<Box<Imported>, String> },
    Resume { id: u64, result: Result<Box<ResumeReport>, String> },
    Launched(Result<Launch, Refused>),
}

/// One job's screen state.
#[derive(Debug, Clone)]
pub struct JobView<T> {
    pub id: u64,
    pub running: bool,
    /// The current step, in words.
    pub step: String,
    pub done: u64,
    pub total: u64,
    pub result: Option<Result<T, String>>,
    pub scroll: usize,
}

impl<T> Default for JobView<T> {
    fn default() -> Self {
        Self { id: 0, running: false, step: String::new(), done: 0, total: 0, result: None, scroll: 0 }
    }
}

impl<T> JobView<T> {
    fn start(&mut self, id: u64) {
        self.id = id;
        self.running = true;
        self.step = "starting…".into();
        self.done = 0;
        self.total = 0;
        self.scroll = 0;
    }
}

/// The resume screen's state beyond its job.
#[derive(Debug, Clone, Default)]
pub struct ResumeView {
    pub job: JobView<Box<ResumeReport>>,
    /// "Start the command?" is open.
    pub confirming: bool,
    /// A launch was asked for and has not answered yet.
    pub launching: bool,
    pub launch: Option<Result<Launch, Refused>>,
}

/// The airlock's state.
#[derive(Debug, Clone, Default)]
pub struct AirlockState {
    pub bundle: JobView<Box<Outcome>>,
    pub import: JobView<Box<Imported>>,
    pub resume: ResumeView,
    jobs_started: u64,
}

impl AirlockState {
    fn next_id(&mut self) -> u64 {
        self.jobs_started += 1;
        JOB_ID_BASE + self.jobs_started
    }
}

fn run(state: &mut AppState, job: AirlockJob) -> Vec<Effect> {
    let id = state.airlock.next_id();
    let a = &mut state.airlock;
    let running = match job {
        AirlockJob::Bundle => &mut a.bundle.running,
        AirlockJob::Import => &mut a.import.running,
        AirlockJob::Resume => &mut a.resume.job.running,
    };
    if *running {
        return vec![];
    }
    match job {
        AirlockJob::Bundle => a.bundle.start(id),
        AirlockJob::Import => a.import.start(id),
        AirlockJob::Resume => {
            a.resume.job.start(id);
            a.resume.confirming = false;
            a.resume.launch = None;
        }
    }
    state.jobs.apply(JobEvent::Started { id, name: job.name().to_string() }, state.now);
    vec![Effect::Airlock(AirlockEffect::Run { job, id })]
}

/// `b`, `i`, `r`: open the screen and start its job (unless it is running: then the
/// screen shows its progress).
pub fn open(state: &mut AppState, job: AirlockJob) -> Vec<Effect> {
    state.overlay = match job {
        AirlockJob::Bundle => Overlay::Bundle,
        AirlockJob::Import => Overlay::Import,
        AirlockJob::Resume => Overlay::Resume,
    };
    run(state, job)
}

fn progress_of(state: &mut AppState, job: AirlockJob) -> (&mut u64, &mut bool, &mut String, &mut u64, &mut u64) {
    let a = &mut state.airlock;
    match job {
        AirlockJob::Bundle => {
            (&mut a.bundle.id, &mut a.bundle.running, &mut a.bundle.step, &mut a.bundle.done, &mut a.bundle.total)
        }
        AirlockJob::Import => {
            (&mut a.import.id, &mut a.import.running, &mut a.import.step, &mut a.import.done, &mut a.import.total)
        }
        AirlockJob::Resume => (
            &mut a.resume.job.id,
            &mut a.resume.job.running,
            &mut a.resume.job.step,
            &mut a.resume.job.done,
            &mut a.resume.job.total,
        ),
    }
}

/// A job reported.
pub fn on_msg(state: &mut AppState, msg: AirlockMsg) -> Vec<Effect> {
    let now = state.now;
    match msg {
        AirlockMsg::Progress { job, id, text, done, total } => {
            let (cur, running, step, d, t) = progress_of(state, job);
            if *cur != id || !*running {
                return vec![];
            }
            *step = text.clone();
            (*d, *t) = (done, total);
            state.jobs.apply(JobEvent::Progress { id, done, total, text }, now);
            vec![]
        }
        AirlockMsg::Bundle { id, result } => {
            let v = &mut state.airlock.bundle;
            v.running = false;
            let ev = match &result {
                Ok(o) => match o.as_ref() {
                    Outcome::Built(b) => JobEvent::Done {
                        id,
                        summary: format!("{} {}{}", b.path, crate::util::bytes(b.size), upload_words(&b.upload)),
                    },
                    Outcome::Refused(r) => {
                        JobEvent::Failed { id, error: r.headline().trim_start_matches("not bundled: ").to_string() }
                    }
                },
                Err(e) => JobEvent::Failed { id, error: e.clone() },
            };
            v.result = Some(result);
            state.jobs.apply(ev, now);
            // A queued bundle shows in the Uploads panel at the next ledger read.
            vec![Effect::RefreshNow]
        }
        AirlockMsg::Import { id, result } => {
            let v = &mut state.airlock.import;
            v.running = false;
            let ev = match &result {
                Ok(i) if i.appended => JobEvent::Done { id, summary: format!("{} → {}", i.source, i.journal) },
                Ok(i) => JobEvent::Done { id, summary: format!("{} already in {}", i.source, i.journal) },
                Err(e) => JobEvent::Failed { id, error: e.clone() },
            };
            v.result = Some(result);
            state.jobs.apply(ev, now);
            vec![]
        }
        AirlockMsg::Resume { id, result } => {
            let v = &mut state.airlock.resume.job;
            v.running = false;
            let ev = match &result {
                Ok(r) => match &r.winner {
                    Some(w) => JobEvent::Done { id, summary: format!("{} ({})", w.shown, w.level) },
                    None => JobEvent::Failed { id, error: r.headline() },
                },
                Err(e) => JobEvent::Failed { id, error: e.clone() },
            };
            v.result = Some(result);
            state.jobs.apply(ev, now);
            vec![Effect::RefreshNow]
        }
        AirlockMsg::Launched(result) => {
            let r = &mut state.airlock.resume;
            r.launching = false;
            let fx = match &result {
                Ok(l) => {
                    state.notice = Some(format!("training resumed (pid {}), output → {}", l.pid, l.log));
                    // The Log panel follows the resumed run.
                    vec![Effect::SwitchLog(PathBuf::from(&l.log_path))]
                }
                Err(_) => vec![],
            };
            r.launch = Some(result);
            fx
        }
    }
}

fn upload_words(u: &crate::airlock::bundle::Upload) -> String {
    match u {
        crate::airlock::bundle::Upload::Queued { .. } => " · queued on L2".into(),
        crate::airlock::bundle::Upload::NotRequested => String::new(),
        crate::airlock::bundle::Upload::NotQueued { .. } => " · not queued".into(),
    }
}

/// The checkpoint the resume screen offers, and its experiment.
pub fn offered(state: &AppState) -> Option<(String, PathBuf)> {
    let r = state.airlock.resume.job.result.as_ref()?.as_ref().ok()?;
    let w = r.winner.as_ref()?;
    Some((r.experiment.clone(), PathBuf::from(&w.path)))
}

fn scroll(v: &mut usize, action: Action) {
    *v = match action {
        Action::Up => v.saturating_sub(1),
        Action::Down => *v + 1,
        Action::PageUp => v.saturating_sub(10),
        Action::PageDown => *v + 10,
        _ => *v,
    }
    .min(10_000);
}

/// Keys while an airlock screen is open.
pub fn on_key(state: &mut AppState, key: &KeyEvent) -> Vec<Effect> {
    let job = match state.overlay {
        Overlay::Bundle => AirlockJob::Bundle,
        Overlay::Import => AirlockJob::Import,
        _ => AirlockJob::Resume,
    };
    if job == AirlockJob::Resume && state.airlock.resume.confirming {
        if state.keymap.is(key, Action::Confirm) {
            state.airlock.resume.confirming = false;
            let Some((experiment, checkpoint)) = offered(state) else { return vec![] };
            state.airlock.resume.launching = true;
            state.airlock.resume.launch = None;
            return vec![Effect::Airlock(AirlockEffect::Launch { experiment, checkpoint })];
        }
        if state.keymap.is(key, Action::Deny) || state.keymap.action(key) == Some(Action::Cancel) {
            state.airlock.resume.confirming = false;
        }
        return vec![];
    }
    // Dialog answers are not in the main keymap: ask for them first (as the prune screen does).
    let action = if state.keymap.is(key, Action::Confirm) { Some(Action::Confirm) } else { state.keymap.action(key) };
    let Some(action) = action else { return vec![] };
    match action {
        Action::Cancel => {
            state.overlay = Overlay::None;
            vec![]
        }
        Action::Bundle | Action::Import | Action::Resume => {
            let same = matches!(
                (action, job),
                (Action::Bundle, AirlockJob::Bundle)
                    | (Action::Import, AirlockJob::Import)
                    | (Action::Resume, AirlockJob::Resume)
            );
            if same {
                state.overlay = Overlay::None;
                return vec![];
            }
            super::on_action(state, action)
        }
        Action::Quit => super::on_action(state, Action::Quit),
        Action::Refresh => run(state, job),
        Action::Up | Action::Down | Action::PageUp | Action::PageDown => {
            let a = &mut state.airlock;
            match job {
                AirlockJob::Bundle => scroll(&mut a.bundle.scroll, action),
                AirlockJob::Import => scroll(&mut a.import.scroll, action),
                AirlockJob::Resume => scroll(&mut a.resume.job.scroll, action),
            }
            vec![]
        }
        Action::Confirm if job == AirlockJob::Resume => {
            let r = &mut state.airlock.resume;
            if r.job.running || r.launching || offered(state).is_none() {
                return vec![];
            }
            if state.config.resume.command.trim().is_empty() {
                state.airlock.resume.launch = Some(Err(Refused::NoCommand));
                return vec![];
            }
            state.airlock.resume.confirming = true;
            vec![]
        }
        _ => vec![],
    }
}

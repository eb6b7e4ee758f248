//! The application state and `update`: every change to what the screen shows happens here,
//! from one [`Msg`] at a time, with no I/O. Effects that need I/O are returned for the
//! executor (`exec`) to carry out.

pub mod airlock;
pub mod alerts;
pub mod checklist;
pub mod detail;
pub mod disk;
pub mod gpu;
pub mod hints;
pub mod jobs;
pub mod keymap;
pub mod log;
pub mod logview;
pub mod prune;
pub mod report;
pub mod uploads;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::config::Config;
pub use crate::keys::action;
pub use crate::keys::action::Action;
use crate::workspace::HostInfo;
pub use disk::DiskPanel;
pub use gpu::GpuPanel;
pub use jobs::{JobEvent, JobInfo, Jobs};
use keymap::KeyMap;
pub use log::LogPanel;
pub use uploads::UploadsPanel;

/// The panels of the main screen, in focus order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    Gpu,
    Disk,
    Log,
    Uploads,
}

impl Panel {
    pub const ALL: [Panel; 4] = [Panel::Gpu, Panel::Disk, Panel::Log, Panel::Uploads];

    pub fn title(self) -> &'static str {
        match self {
            Panel::Gpu => "GPU",
            Panel::Disk => "Disk",
            Panel::Log => "Log",
            Panel::Uploads => "Uploads",
        }
    }

    fn step(self, forward: bool) -> Panel {
        let i = Panel::ALL.iter().position(|p| *p == self).unwrap_or(0);
        let n = Panel::ALL.len();
        Panel::ALL[if forward { (i + 1) % n } else { (i + n - 1) % n }]
    }
}

/// The modal state: what is drawn over the panels, and so what takes the keys. Every
/// key goes through one dispatch on it (`on_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// The main screen: keys go through the keymap to the focused panel.
    None,
    Help,
    /// "A job is running: quit anyway?"
    ConfirmQuit,
    /// Details of one GPU process: full command, start time, VRAM history.
    GpuDetails {
        gpu: u32,
        pid: u32,
    },
    /// "Send SIGTERM to this process?"
    ConfirmKill {
        pid: u32,
        start_ticks: Option<u64>,
        name: String,
    },
    /// The upload queue (Enter on the Uploads panel).
    UploadQueue,
    /// The prune plan screen (`p`).
    Prune,
    /// The pre-shutdown checklist (`x`).
    Checklist,
    /// `/` on the Log panel: the search query being typed.
    LogSearch {
        query: String,
    },
    /// `L`: the log switcher, with this candidate selected.
    LogSwitcher {
        selected: usize,
    },
    /// The bundle screen (`b`): progress, the refusal list, or the bundle built.
    Bundle,
    /// The import screen (`i`): progress and the journal entry.
    Import,
    /// The resume screen (`r`): each level's candidates, the winner and why.
    Resume,
    /// The whole text of a log line, the last error or an upload (Enter).
    Detail(Box<detail::Detail>),
}

/// Everything a message can tell the app.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A key press from the terminal.
    Key(KeyEvent),
    /// The terminal was resized.
    Resize(u16, u16),
    /// Time passed; the state's clock moves to this instant.
    Tick(SystemTime),
    /// A whole filesystem sample from the disk collector.
    Disk(crate::disk::DiskSample),
    /// A whole sample of every GPU from the GPU collector.
    Gpu(crate::gpu::GpuSample),
    /// The host's CPU, RAM and swap.
    Host(crate::host::HostSample),
    /// The answer to [`Effect::TerminateProcess`].
    ProcessTerminated { pid: u32, result: Result<(), String> },
    /// A whole sample from the log collector.
    Log(Box<crate::logtail::LogSample>),
    /// The logs that could be followed, newest first.
    LogCandidates(Vec<crate::logtail::discover::LogCandidate>),
    /// A reading of the sync ledger (status and queue).
    Sync(Box<crate::sync::SyncSample>),
    /// An event from the sync engine this console runs.
    SyncEvent(crate::sync::SyncEvent),
    /// The sync ledger could not be read at all, in words.
    SyncUnreadable(String),
    /// The process was asked to stop (SIGTERM, SIGHUP): quit now, cleanly.
    Terminate(String),
    /// A checkpoint inventory and workspace usage sample.
    Checkpoints(Box<crate::checkpoints::CheckpointsSample>),
    /// A prune plan asked for with [`Effect::PlanPrune`].
    PrunePlan(Box<crate::checkpoints::PrunePlan>),
    /// Progress of the prune job.
    Prune(crate::checkpoints::PruneProgress),
    /// A checklist gathered for [`Effect::Checklist`].
    Checklist(Box<crate::checklist::Report>),
    /// The shutdown runner reported.
    Shutdown(checklist::ShutdownEvent),
    /// The VM's external address (or why it is not known).
    ExternalIp(Result<String, String>),
    /// An airlock job (bundle, import, resume) reported.
    Airlock(airlock::AirlockMsg),
    /// A whole report of the protocol's rules from the rules collector.
    Rules(Box<crate::rules::RulesReport>),
}

impl Msg {
    /// Whether a change this message makes is drawn at once. A periodic collector
    /// sample's is not: it waits for the next tick (at most `refresh_ms`), so that samples
    /// arriving at different moments cost one frame per tick, not one frame each. Input
    /// and answers to something the user did are drawn at once. The tick draws only when
    /// a change waits for it or the clock changed some text (`tui::run_loop`).
    pub fn draws_at_once(&self) -> bool {
        match self {
            Msg::Key(_)
            | Msg::Resize(..)
            | Msg::ProcessTerminated { .. }
            | Msg::Terminate(_)
            | Msg::PrunePlan(_)
            | Msg::Checklist(_)
            | Msg::Shutdown(_)
            | Msg::ExternalIp(_)
            | Msg::Airlock(_) => true,
            Msg::Tick(_)
            | Msg::Disk(_)
            | Msg::Gpu(_)
            | Msg::Host(_)
            | Msg::Log(_)
            | Msg::LogCandidates(_)
            | Msg::Sync(_)
            | Msg::SyncEvent(_)
            | Msg::SyncUnreadable(_)
            | Msg::Checkpoints(_)
            | Msg::Rules(_)
            | Msg::Prune(_) => false,
        }
    }
}

/// What `update` asks the executor (`exec`) to do: everything that needs I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The console is leaving (the loop ends once `should_quit` is set): a running prune
    /// stops before its next item.
    Quit,
    /// Sample every collector now.
    RefreshNow,
    /// Send SIGTERM to this process (the user confirmed); answer with `Msg::ProcessTerminated`.
    TerminateProcess { pid: u32, start_ticks: Option<u64> },
    /// Follow this log instead.
    SwitchLog(PathBuf),
    /// Send a command to the sync engine (this console's, or the daemon's via the ledger).
    Sync(crate::sync::Command),
    /// Build a prune plan off the UI task (answered by [`Msg::PrunePlan`]).
    PlanPrune { allow_unconfirmed: bool },
    /// Run the plan on the prune screen as a background job.
    RunPrune,
    /// Plan and run an automatic prune (a disk crossed critical; never with the override).
    AutoPrune,
    /// Stop the running prune before its next item (the item in hand is finished).
    CancelPrune,
    /// Gather the checklist off the UI task (answered by [`Msg::Checklist`]); `live` also
    /// checks copies on their remotes and runs the extra commands.
    Checklist { live: bool },
    /// Check every item again and, when every failing one is among `overrides`, record the
    /// decision and run the shutdown command (answered by [`Msg::Shutdown`]).
    Shutdown { overrides: std::collections::BTreeSet<String> },
    /// Run an airlock job, or start the resumed training (answered by [`Msg::Airlock`]).
    Airlock(airlock::AirlockEffect),
}

/// Everything the screen shows. `ui::render` only reads it.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The state's clock: ages, uptimes and stalls are computed from it.
    pub now: SystemTime,
    pub host: HostInfo,
    pub workspace_root: PathBuf,
    pub config: Config,
    pub keymap: KeyMap,
    pub focus: Panel,
    /// The focused panel fills the screen (`z`); the focus keys move the zoom.
    pub zoomed: bool,
    pub overlay: Overlay,
    pub disk: DiskPanel,
    pub gpu: GpuPanel,
    pub log: LogPanel,
    pub uploads: UploadsPanel,
    pub jobs: Jobs,
    pub prune: prune::PruneState,
    /// The pre-shutdown checklist screen.
    pub checklist: checklist::ChecklistState,
    /// The bundle, import and resume screens.
    pub airlock: airlock::AirlockState,
    /// Idleness, folded from GPU samples.
    pub idle: crate::checklist::idle::IdleTracker,
    /// The VM's external address, when it could be learned.
    pub external_ip: Option<String>,
    /// The protocol's rules, from the rules collector (None until the first report).
    pub rules: Option<crate::rules::RulesReport>,
    /// The host's CPU, RAM and swap, last read.
    pub host_usage: Option<crate::host::HostSample>,
    /// A one-line message for the footer (for example why the console is stopping).
    pub notice: Option<String>,
    /// The answer to the last key that has one, shown in the footer's place until it
    /// expires ([`STATUS_TTL`]): every size shows it.
    pub status: Option<StatusLine>,
    /// The terminal bell's view of new problems (`alerts`); the loop rings when
    /// `alerts.bells` grows.
    pub alerts: alerts::Alerts,
    /// Shown in the header when the console runs on the throwaway demo workspace.
    pub demo: bool,
    pub should_quit: bool,
    /// The terminal size last reported.
    pub size: (u16, u16),
    /// First row of the help overlay shown (it scrolls when the keys do not fit).
    pub help_scroll: usize,
    /// Sizes of what the last frame drew, for keys that move by a page.
    pub viewport: Viewport,
    /// Counts the updates that changed what the screen shows (every message but the tick
    /// and samples equal, as drawn, to what is shown): the loop draws again only when it
    /// moved or the clock changed some text (`ui::clock`).
    pub generation: u64,
}

/// How long the answer to a key stays in the status line.
pub const STATUS_TTL: Duration = Duration::from_secs(6);

/// The answer to a key: what happened, and when (the state's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    pub text: String,
    pub at: SystemTime,
    /// Said as a refusal or failure (drawn in red), not as done.
    pub error: bool,
}

/// Sizes of what the last frame drew, set by the loop after each frame (`ui::viewport`):
/// `update` reads them, never the layout code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    /// Text rows of the Log panel.
    pub log_rows: usize,
    /// Text columns of the Log panel (where long lines wrap or are cut).
    pub log_cols: usize,
    /// How far the open detail view can scroll (its wrapped rows past the window).
    pub detail_max_scroll: usize,
}

impl Viewport {
    /// The Log panel's window, for the view model.
    pub fn log_page(&self) -> logview::Page {
        logview::Page { rows: self.log_rows, cols: self.log_cols }
    }
}

impl Default for Viewport {
    fn default() -> Self {
        Self { log_rows: 10, log_cols: 76, detail_max_scroll: 0 }
    }
}

impl AppState {
    /// Answer a key in the status line (replacing the previous answer).
    pub fn say(&mut self, text: impl Into<String>, error: bool) {
        self.status = Some(StatusLine { text: text.into(), at: self.now, error });
    }

    /// The status line's answer while it has not expired.
    pub fn status_line(&self) -> Option<&StatusLine> {
        self.status.as_ref().filter(|s| self.now.duration_since(s.at).is_ok_and(|d| d < STATUS_TTL))
    }

    /// A fresh state. The keymap must already be valid (config validation checks it).
    pub fn new(config: Config, host: HostInfo, workspace_root: PathBuf, now: SystemTime) -> Self {
        let keymap = KeyMap::new(&config.keys)
            .unwrap_or_else(|_| KeyMap::new(&Default::default()).expect("the built-in keymap is valid"));
        let disk = DiskPanel::new((&config.disk).into());
        let gpu = GpuPanel::new(&config.gpu, workspace_root.clone());
        let log = LogPanel::new(config.log.clone());
        Self {
            now,
            host,
            workspace_root,
            config,
            keymap,
            focus: Panel::Gpu,
            zoomed: false,
            overlay: Overlay::None,
            disk,
            gpu,
            log,
            uploads: UploadsPanel::default(),
            jobs: Jobs::default(),
            prune: Default::default(),
            checklist: Default::default(),
            airlock: Default::default(),
            idle: Default::default(),
            external_ip: None,
            rules: None,
            host_usage: None,
            notice: None,
            status: None,
            alerts: Default::default(),
            demo: false,
            should_quit: false,
            size: (80, 24),
            help_scroll: 0,
            viewport: Viewport::default(),
            generation: 0,
        }
    }

    /// Seconds since the Unix epoch on the state's clock.
    pub fn now_unix(&self) -> u64 {
        self.now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    /// The search query being typed on the Log panel, if `/` was pressed.
    pub fn log_search_input(&self) -> Option<&str> {
        match &self.overlay {
            Overlay::LogSearch { query } => Some(query),
            _ => None,
        }
    }

    /// The candidate selected in the log switcher, when it is open.
    pub fn log_switcher(&self) -> Option<usize> {
        match self.overlay {
            Overlay::LogSwitcher { selected } => Some(selected),
            _ => None,
        }
    }

    /// How long the machine has been up, on the state's clock.
    pub fn uptime(&self) -> Duration {
        Duration::from_secs(self.now_unix().saturating_sub(self.host.boot_time_unix))
    }
}

/// Folds one message into the state and says what the executor must do. Bumps
/// [`AppState::generation`] when the message changes what the screen shows.
pub fn update(state: &mut AppState, msg: Msg) -> Vec<Effect> {
    let shown = Shown::before(state, &msg);
    // Whatever message it came with, a new answer or notice is something to draw.
    let said = (state.status.as_ref().map(|s| (s.text.clone(), s.at)), state.notice.clone());
    let effects = fold(state, msg);
    if shown.changed(state) || said != (state.status.as_ref().map(|s| (s.text.clone(), s.at)), state.notice.clone()) {
        state.generation = state.generation.wrapping_add(1);
    }
    effects
}

/// What a message can change on screen, taken before it is folded in, to compare after.
/// The periodic samples are compared as drawn (a host reading at the precision shown, a
/// sample without its timestamp); anything else counts as a change. The tick changes
/// nothing by itself: text drawn from the clock is `ui::clock`'s business.
enum Shown {
    Changed,
    Unchanged,
    Disk(Option<crate::disk::DiskSample>, std::collections::BTreeMap<String, crate::disk::growth::DiskForecast>),
    Host(Option<String>),
}

impl Shown {
    fn before(state: &AppState, msg: &Msg) -> Self {
        let same = |b: bool| if b { Shown::Unchanged } else { Shown::Changed };
        match msg {
            Msg::Tick(_) => Shown::Unchanged,
            // The growth forecast (time to full) moves with the history as well.
            Msg::Disk(_) => Shown::Disk(state.disk.sample.clone(), state.prune.forecasts.clone()),
            Msg::Host(_) => Shown::Host(state.host_usage.as_ref().map(host_shown)),
            // With GPUs, each sample moves the history sparklines: a change. Without, the
            // panel shows the NVML status, and the idle tracker hears nothing new.
            Msg::Gpu(s) => same(
                s.gpus.is_empty()
                    && state.gpu.sample.as_ref().is_some_and(|old| old.gpus.is_empty() && old.nvml == s.nvml),
            ),
            // An upload in flight moves (its rate, its ETA): only a quiet ledger is unchanged.
            Msg::Sync(s) => same(
                state.uploads.unreadable.is_none()
                    && state.uploads.live.is_empty()
                    && state.uploads.sample.as_ref() == Some(&**s),
            ),
            Msg::SyncUnreadable(why) => same(state.uploads.unreadable.as_ref() == Some(why)),
            Msg::LogCandidates(list) => same(&state.log.candidates == list),
            Msg::Rules(r) => same(state.rules.as_ref().is_some_and(|old| {
                let mut r = (**r).clone();
                r.taken_unix = old.taken_unix;
                *old == r
            })),
            Msg::ExternalIp(ip) => same(state.external_ip.as_ref() == ip.as_ref().ok()),
            _ => Shown::Changed,
        }
    }

    fn changed(self, state: &AppState) -> bool {
        match self {
            Shown::Changed => true,
            Shown::Unchanged => false,
            Shown::Disk(sample, forecasts) => state.disk.sample != sample || state.prune.forecasts != forecasts,
            Shown::Host(text) => state.host_usage.as_ref().map(host_shown) != text,
        }
    }
}

/// A host reading at every precision the GPU panel draws it (`ui::gpu::host_line`, its
/// long and short forms).
fn host_shown(h: &crate::host::HostSample) -> String {
    let g = |b: u64| b as f64 / (1u64 << 30) as f64;
    format!(
        "{:?} {:?} {:.1}/{:.1} {:.0}/{:.0} {:.0}% {:.1}/{:.1} {:.0}",
        h.memory_level(),
        h.cpu_pct.map(|c| format!("{c:.0}")),
        g(h.memory_used_bytes()),
        g(h.memory_total_bytes),
        g(h.memory_used_bytes()),
        g(h.memory_total_bytes),
        h.memory_pct(),
        g(h.swap_used_bytes),
        g(h.swap_total_bytes),
        g(h.swap_total_bytes)
    )
}

fn fold(state: &mut AppState, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Tick(now) => {
            state.now = now;
            if state.status_line().is_none() {
                state.status = None;
            }
            alerts::observe(state, false, false);
            checklist::on_tick(state)
        }
        Msg::Resize(w, h) => {
            state.size = (w, h);
            vec![]
        }
        Msg::Disk(sample) => {
            let fx = state.prune.on_disk(&sample, state.now, &state.config);
            let first = state.disk.sample.is_none();
            state.disk.apply(sample, state.now);
            alerts::observe(state, false, first);
            fx
        }
        Msg::Checkpoints(sample) => {
            prune::on_checkpoints(state, *sample);
            vec![]
        }
        Msg::Host(sample) => {
            state.host_usage = Some(sample);
            vec![]
        }
        Msg::Gpu(sample) => {
            state.gpu.apply(sample, &state.config.gpu);
            checklist::on_gpu(state);
            vec![]
        }
        Msg::ProcessTerminated { pid, result } => gpu::on_terminated(state, pid, result),
        Msg::Log(sample) => {
            // A log's first sample and its backfill are its history, not news.
            let history = sample.reset || !sample.backfill.done;
            state.log.apply(*sample, state.now);
            alerts::observe(state, history, false);
            vec![]
        }
        Msg::LogCandidates(list) => {
            state.log.candidates = list;
            if let Overlay::LogSwitcher { selected } = &mut state.overlay {
                *selected = (*selected).min(state.log.candidates.len().saturating_sub(1));
            }
            vec![]
        }
        Msg::PrunePlan(plan) => {
            prune::on_plan(state, *plan);
            vec![]
        }
        Msg::Prune(progress) => prune::on_progress(state, progress),
        Msg::Sync(sample) => {
            state.uploads.apply_sample(*sample, state.now);
            // What `s` or `R` did, once the ledger shows the passes they asked for.
            if let Some((text, error)) = state.uploads.take_answer(state.now_unix() as i64) {
                state.say(text, error);
            }
            vec![]
        }
        Msg::SyncEvent(ev) => {
            state.uploads.apply_event(ev, state.now);
            vec![]
        }
        Msg::SyncUnreadable(why) => {
            state.uploads.unreadable = Some(why);
            vec![]
        }
        Msg::Terminate(why) => {
            state.notice = Some(format!("stopping: {why}"));
            state.should_quit = true;
            vec![Effect::Quit]
        }
        Msg::Checklist(report) => {
            checklist::on_report(state, *report);
            vec![]
        }
        Msg::Shutdown(ev) => {
            checklist::on_shutdown(state, ev);
            vec![]
        }
        Msg::ExternalIp(ip) => {
            state.external_ip = ip.ok();
            vec![]
        }
        Msg::Airlock(m) => airlock::on_msg(state, m),
        Msg::Rules(report) => {
            state.rules = Some(*report);
            vec![]
        }
        Msg::Key(key) => on_key(state, &key),
    }
}

/// Every key: one dispatch on the modal state.
fn on_key(state: &mut AppState, key: &KeyEvent) -> Vec<Effect> {
    // A terminal sends Esc as a bare ESC byte, and Alt+K as ESC then `K`. When Esc and a
    // key arrive in one read (typed fast over SSH, or sent by tmux), crossterm reports
    // Alt+key. If nothing is bound to that Alt chord, it was Esc followed by the key.
    if key.modifiers.contains(KeyModifiers::ALT)
        && matches!(key.code, KeyCode::Char(_))
        && state.keymap.action(key).is_none()
    {
        let mut effects = on_key(state, &KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
        let mut plain = *key;
        plain.modifiers.remove(KeyModifiers::ALT);
        effects.extend(on_key(state, &plain));
        return effects;
    }
    match state.overlay {
        Overlay::Prune => prune::on_key(state, key),
        Overlay::Checklist => checklist::on_key(state, key),
        Overlay::Bundle | Overlay::Import | Overlay::Resume => airlock::on_key(state, key),
        Overlay::ConfirmQuit => on_confirm_quit_key(state, key),
        Overlay::ConfirmKill { .. } => gpu::on_confirm_kill_key(state, key),
        Overlay::Help => on_help_key(state, key),
        Overlay::LogSearch { .. } => log::on_search_key(state, key),
        Overlay::LogSwitcher { .. } => log::on_switcher_key(state, key),
        Overlay::Detail(_) => detail::on_key(state, key),
        Overlay::None | Overlay::GpuDetails { .. } | Overlay::UploadQueue => match state.keymap.action(key) {
            Some(action) => on_action(state, action),
            None => vec![],
        },
    }
}

/// "A job is running: quit anyway?"
fn on_confirm_quit_key(state: &mut AppState, key: &KeyEvent) -> Vec<Effect> {
    if state.keymap.is(key, Action::Confirm) {
        state.should_quit = true;
        return vec![Effect::Quit];
    }
    if state.keymap.is(key, Action::Deny) || state.keymap.action(key) == Some(Action::Cancel) {
        state.overlay = Overlay::None;
    }
    vec![]
}

/// The help is modal: it scrolls, closes, or quits; nothing changes underneath.
fn on_help_key(state: &mut AppState, key: &KeyEvent) -> Vec<Effect> {
    match state.keymap.action(key) {
        Some(a @ (Action::Up | Action::Down | Action::PageUp | Action::PageDown)) => {
            state.help_scroll = match a {
                Action::Up => state.help_scroll.saturating_sub(1),
                Action::Down => state.help_scroll + 1,
                Action::PageUp => state.help_scroll.saturating_sub(10),
                _ => state.help_scroll + 10,
            }
            .min(Action::ALL.len().saturating_sub(1));
            vec![]
        }
        Some(a @ (Action::Help | Action::Cancel | Action::Quit)) => on_action(state, a),
        _ => vec![],
    }
}

fn uploads_action(state: &mut AppState, action: Action) -> Vec<Effect> {
    use crate::sync::Command;
    let on_uploads = state.focus == Panel::Uploads || state.overlay == Overlay::UploadQueue;
    match action {
        Action::SyncNow => {
            let text = if state.uploads.ask("sync", state.now_unix() as i64) {
                "sync requested on every level: the answer comes when each pass ends"
            } else {
                "sync requested on every level"
            };
            state.say(text, false);
            vec![Effect::Sync(Command::SyncNow(None))]
        }
        Action::RetryFailed => {
            // Say what the ledger last said, not what the key hopes for.
            let failed = state.uploads.sample.as_ref().map(|s| s.status.levels.iter().map(|l| l.failed).sum::<u64>());
            match failed {
                Some(0) => {
                    state.say("no failed uploads to retry", false);
                    vec![]
                }
                Some(n) => {
                    state.say(format!("{n} failed upload{} queued again", if n == 1 { "" } else { "s" }), false);
                    state.uploads.ask("retry", state.now_unix() as i64);
                    vec![Effect::Sync(Command::RetryFailed(None))]
                }
                None => {
                    state.say("retry of failed uploads requested (the ledger is not read yet)", false);
                    vec![Effect::Sync(Command::RetryFailed(None))]
                }
            }
        }
        Action::CancelUpload if !on_uploads => {
            let key = state.keymap.first_key(Action::FocusUploads).unwrap_or_else(|| "tab".into());
            state.say(format!("focus the Uploads panel ({key}) to cancel an upload"), true);
            vec![]
        }
        Action::CancelUpload => match state.uploads.cancel_target(state.overlay == Overlay::UploadQueue) {
            Some((path, level)) => {
                state.say(format!("cancelling {level} {path}"), false);
                vec![Effect::Sync(Command::Cancel { path, level })]
            }
            None => {
                state.say("no upload in flight: nothing to cancel", true);
                vec![]
            }
        },
        // In the queue, Enter opens the selected row's whole story (a failure's reason);
        // Esc closes the queue.
        Action::Details if state.overlay == Overlay::UploadQueue => {
            let row = state.uploads.sample.as_ref().and_then(|s| s.queue.get(state.uploads.queue_scroll));
            match row.map(detail::of_upload) {
                Some(d) => detail::open(state, d),
                None => state.say("the upload queue is empty: nothing to open", false),
            }
            vec![]
        }
        // On the panel, Enter opens the queue with the first failure selected, so its
        // reason is one more Enter away.
        Action::Details if on_uploads => {
            let queue = state.uploads.sample.as_ref().map(|s| s.queue.as_slice()).unwrap_or(&[]);
            if let Some(i) = queue.iter().position(|e| e.state == crate::sync::ledger::UploadState::Failed) {
                state.uploads.queue_scroll = i;
            }
            state.overlay = Overlay::UploadQueue;
            vec![]
        }
        _ => vec![],
    }
}

/// Applies an action as if its key had been pressed.
pub fn on_action(state: &mut AppState, action: Action) -> Vec<Effect> {
    match action {
        Action::Quit => {
            // A job, or an upload of this console's own engine, stops when the console does.
            if state.jobs.running().next().is_some() || !state.uploads.own_uploads().is_empty() {
                state.overlay = Overlay::ConfirmQuit;
                vec![]
            } else {
                state.should_quit = true;
                vec![Effect::Quit]
            }
        }
        Action::Help => {
            state.overlay = if state.overlay == Overlay::Help { Overlay::None } else { Overlay::Help };
            state.help_scroll = 0;
            vec![]
        }
        Action::Cancel => {
            // Esc closes what is open; with nothing open, it leaves the zoom.
            if state.overlay == Overlay::None {
                state.zoomed = false;
            }
            state.overlay = Overlay::None;
            vec![]
        }
        Action::Zoom => {
            state.zoomed = !state.zoomed;
            vec![]
        }
        Action::FocusGpu | Action::FocusDisk | Action::FocusLog | Action::FocusUploads => {
            state.focus = match action {
                Action::FocusGpu => Panel::Gpu,
                Action::FocusDisk => Panel::Disk,
                Action::FocusLog => Panel::Log,
                _ => Panel::Uploads,
            };
            vec![]
        }
        // Dialog answers outside a dialog mean nothing.
        Action::Confirm | Action::Deny => vec![],
        Action::FocusNext | Action::FocusPrev => {
            state.focus = state.focus.step(action == Action::FocusNext);
            vec![]
        }
        Action::Up | Action::Down | Action::PageUp | Action::PageDown => {
            if state.overlay == Overlay::UploadQueue {
                state.uploads.scroll(action);
            } else {
                match state.focus {
                    Panel::Disk => state.disk.scroll(action),
                    Panel::Gpu => state.gpu.scroll(action),
                    _ => {}
                }
            }
            log::scroll(state, action);
            vec![]
        }
        // Enter opens what the focused panel has: the upload queue (in it, a row's
        // detail), the whole text of a log line or error, or a GPU process.
        Action::Details if state.focus == Panel::Uploads || state.overlay == Overlay::UploadQueue => {
            uploads_action(state, action)
        }
        Action::Details if state.focus == Panel::Log && state.overlay == Overlay::None => log::on_details(state),
        Action::Details => gpu::on_details(state),
        Action::KillProcess => gpu::on_kill(state),
        Action::GpuSort => gpu::on_sort(state),
        Action::Refresh => {
            state.say("sampling every collector now (GPUs, disks, log, ledger, checkpoints)", false);
            vec![Effect::RefreshNow]
        }
        Action::LogFollow
        | Action::LogTop
        | Action::LogEnd
        | Action::LogSearch
        | Action::LogNextMatch
        | Action::LogPrevMatch
        | Action::LogErrorsOnly
        | Action::LogWrap
        | Action::LogLeft
        | Action::LogRight
        | Action::LogSwitch => log::on_action(state, action),
        Action::SyncNow | Action::RetryFailed | Action::CancelUpload => uploads_action(state, action),
        Action::Prune => prune::open(state),
        Action::StopPrune => prune::stop(state),
        Action::Checklist => checklist::open(state),
        Action::Bundle => airlock::open(state, airlock::AirlockJob::Bundle),
        Action::Import => airlock::open(state, airlock::AirlockJob::Import),
        Action::Resume => airlock::open(state, airlock::AirlockJob::Resume),
        // Only meaningful on the prune screen and the checklist.
        Action::IncludeUnsynced | Action::Shutdown | Action::OverrideItem => vec![],
    }
}

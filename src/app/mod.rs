//! The application state and `update`: every change to what the screen shows happens here,
//! from one [`Msg`] at a time, with no I/O. Effects that need I/O are returned to the loop.

pub mod action;
pub mod disk;
pub mod jobs;
pub mod keymap;
pub mod prune;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossterm::event::KeyEvent;

use crate::config::Config;
use crate::workspace::HostInfo;
pub use action::Action;
pub use disk::DiskPanel;
pub use jobs::{JobEvent, JobInfo, Jobs};
use keymap::KeyMap;

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

/// What is drawn over the panels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    /// "A job is running: quit anyway?"
    ConfirmQuit,
    /// The prune plan screen (`p`).
    Prune,
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
    /// A background job reported.
    Job(JobEvent),
    /// The process was asked to stop (SIGTERM, SIGHUP): quit now, cleanly.
    Terminate(String),
    /// A checkpoint inventory and workspace usage sample.
    Checkpoints(Box<crate::checkpoints::CheckpointsSample>),
    /// A prune plan asked for with [`Effect::PlanPrune`].
    PrunePlan(Box<crate::checkpoints::PrunePlan>),
    /// Progress of the prune job.
    Prune(crate::checkpoints::PruneProgress),
}

/// What `update` asks the loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Leave the console.
    Quit,
    /// Sample every collector now.
    RefreshNow,
    /// Build a prune plan off the UI task (answered by [`Msg::PrunePlan`]).
    PlanPrune { allow_unconfirmed: bool },
    /// Run the plan on the prune screen as a background job.
    RunPrune,
    /// Plan and run an automatic prune (a disk crossed critical; never with the override).
    AutoPrune,
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
    pub overlay: Overlay,
    pub disk: DiskPanel,
    pub jobs: Jobs,
    pub prune: prune::PruneState,
    /// A one-line message for the footer (for example why the console is stopping).
    pub notice: Option<String>,
    /// Shown in the header when the console runs on the throwaway demo workspace.
    pub demo: bool,
    pub should_quit: bool,
    /// The terminal size last reported.
    pub size: (u16, u16),
}

impl AppState {
    /// A fresh state. The keymap must already be valid (config validation checks it).
    pub fn new(config: Config, host: HostInfo, workspace_root: PathBuf, now: SystemTime) -> Self {
        let keymap = KeyMap::new(&config.keys)
            .unwrap_or_else(|_| KeyMap::new(&Default::default()).expect("the built-in keymap is valid"));
        let disk = DiskPanel::new((&config.disk).into());
        Self {
            now,
            host,
            workspace_root,
            config,
            keymap,
            focus: Panel::Gpu,
            overlay: Overlay::None,
            disk,
            jobs: Jobs::default(),
            prune: Default::default(),
            notice: None,
            demo: false,
            should_quit: false,
            size: (80, 24),
        }
    }

    /// Seconds since the Unix epoch on the state's clock.
    pub fn now_unix(&self) -> u64 {
        self.now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    /// How long the machine has been up, on the state's clock.
    pub fn uptime(&self) -> Duration {
        Duration::from_secs(self.now_unix().saturating_sub(self.host.boot_time_unix))
    }
}

/// Folds one message into the state and says what the loop must do.
pub fn update(state: &mut AppState, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Tick(now) => {
            state.now = now;
            vec![]
        }
        Msg::Resize(w, h) => {
            state.size = (w, h);
            vec![]
        }
        Msg::Disk(sample) => {
            let fx = state.prune.on_disk(&sample, state.now, &state.config);
            state.disk.apply(sample, state.now);
            fx
        }
        Msg::Checkpoints(sample) => {
            prune::on_checkpoints(state, *sample);
            vec![]
        }
        Msg::PrunePlan(plan) => {
            prune::on_plan(state, *plan);
            vec![]
        }
        Msg::Prune(progress) => prune::on_progress(state, progress),
        Msg::Job(ev) => {
            state.jobs.apply(ev, state.now);
            vec![]
        }
        Msg::Terminate(why) => {
            state.notice = Some(format!("stopping: {why}"));
            state.should_quit = true;
            vec![Effect::Quit]
        }
        Msg::Key(key) => on_key(state, &key),
    }
}

fn on_key(state: &mut AppState, key: &KeyEvent) -> Vec<Effect> {
    if state.overlay == Overlay::Prune {
        return prune::on_key(state, key);
    }
    if state.overlay == Overlay::ConfirmQuit {
        if state.keymap.is(key, Action::Confirm) {
            state.should_quit = true;
            return vec![Effect::Quit];
        }
        if state.keymap.is(key, Action::Deny) || state.keymap.action(key) == Some(Action::Cancel) {
            state.overlay = Overlay::None;
        }
        return vec![];
    }
    let Some(action) = state.keymap.action(key) else {
        return vec![];
    };
    on_action(state, action)
}

/// Applies an action as if its key had been pressed.
pub fn on_action(state: &mut AppState, action: Action) -> Vec<Effect> {
    match action {
        Action::Quit => {
            if state.jobs.running().next().is_some() {
                state.overlay = Overlay::ConfirmQuit;
                vec![]
            } else {
                state.should_quit = true;
                vec![Effect::Quit]
            }
        }
        Action::Help => {
            state.overlay = if state.overlay == Overlay::Help { Overlay::None } else { Overlay::Help };
            vec![]
        }
        Action::Cancel => {
            state.overlay = Overlay::None;
            vec![]
        }
        // Dialog answers outside a dialog mean nothing.
        Action::Confirm | Action::Deny => vec![],
        Action::FocusNext | Action::FocusPrev => {
            state.focus = state.focus.step(action == Action::FocusNext);
            vec![]
        }
        Action::Up | Action::Down | Action::PageUp | Action::PageDown => {
            if state.focus == Panel::Disk {
                state.disk.scroll(action);
            }
            vec![]
        }
        Action::Refresh => vec![Effect::RefreshNow],
        Action::Prune => prune::open(state),
        // Only meaningful on the prune screen.
        Action::IncludeUnsynced => vec![],
    }
}

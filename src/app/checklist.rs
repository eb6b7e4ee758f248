//! The checklist screen's state (`x`), overrides typed by name, the shutdown request and
//! its answer, the idle tracker fed by GPU samples, and the external address. No I/O:
//! gathering and the shutdown run off the UI task, asked for by effects.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::{Action, AppState, Effect, Overlay};
use crate::checklist::idle::{self, IdleStatus};
use crate::checklist::shutdown::Outcome;
use crate::checklist::{Report, Status};

/// Where a shutdown request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShutdownProgress {
    /// Checking every item again before running the command.
    Checking,
    Started {
        pid: u32,
        overridden: Vec<String>,
    },
    Exited {
        pid: u32,
        code: Option<i32>,
    },
}

/// A report from the shutdown runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShutdownEvent {
    /// The fresh check and what came of it.
    Decided { report: Box<Report>, outcome: Outcome },
    /// The command ended (`None`: killed by a signal).
    Exited { pid: u32, code: Option<i32> },
}

/// The checklist screen.
#[derive(Debug, Clone, Default)]
pub struct ChecklistState {
    pub report: Option<Report>,
    /// A gather is in flight.
    pub gathering: bool,
    /// When the last gather was asked for (the state's clock).
    pub last_request: Option<SystemTime>,
    /// Failing items the user typed the names of.
    pub overrides: BTreeSet<String>,
    /// Some while the user types item names.
    pub typing: Option<String>,
    /// A shutdown waits for them to finish typing the overrides.
    pub shutdown_after_typing: bool,
    /// "Shut down now?" is open.
    pub confirming: bool,
    pub message: Option<String>,
    pub scroll: usize,
    pub shutdown: Option<ShutdownProgress>,
}

impl ChecklistState {
    /// Failing items not overridden.
    pub fn unresolved(&self) -> Vec<String> {
        self.report
            .iter()
            .flat_map(|r| r.items.iter())
            .filter(|i| i.status == Status::Fail && !self.overrides.contains(&i.name))
            .map(|i| i.name.clone())
            .collect()
    }
}

/// `x`: open the checklist and gather everything now (remote checks and extra commands too).
pub fn open(state: &mut AppState) -> Vec<Effect> {
    state.overlay = Overlay::Checklist;
    let c = &mut state.checklist;
    c.overrides.clear();
    c.typing = None;
    c.confirming = false;
    c.shutdown_after_typing = false;
    c.scroll = 0;
    c.message = None;
    request(state, true)
}

fn request(state: &mut AppState, live: bool) -> Vec<Effect> {
    state.checklist.gathering = true;
    state.checklist.last_request = Some(state.now);
    vec![Effect::Checklist { live }]
}

/// The clock moved: the open screen checks again every `checklist.refresh`.
pub fn on_tick(state: &mut AppState) -> Vec<Effect> {
    if state.overlay != Overlay::Checklist || state.checklist.gathering {
        return vec![];
    }
    let due = state
        .checklist
        .last_request
        .is_none_or(|t| state.now.duration_since(t).unwrap_or_default() >= state.config.checklist.refresh);
    if due { request(state, false) } else { vec![] }
}

/// A gathered report arrived.
pub fn on_report(state: &mut AppState, report: Report) {
    let c = &mut state.checklist;
    c.gathering = false;
    c.scroll = c.scroll.min(report.items.len().saturating_sub(1));
    c.report = Some(report);
    if c.confirming && !c.unresolved().is_empty() {
        c.confirming = false;
        c.message = Some(format!("not shutting down: {} now failing", c.unresolved().join(", ")));
    }
}

/// The shutdown runner reported.
pub fn on_shutdown(state: &mut AppState, ev: ShutdownEvent) {
    let c = &mut state.checklist;
    match ev {
        ShutdownEvent::Decided { report, outcome } => {
            c.gathering = false;
            c.report = Some(*report);
            c.message = Some(match &outcome {
                Outcome::Started { pid, overridden } => {
                    c.shutdown = Some(ShutdownProgress::Started { pid: *pid, overridden: overridden.clone() });
                    let over = if overridden.is_empty() {
                        String::new()
                    } else {
                        format!(" with {} overridden", overridden.join(", "))
                    };
                    state.notice = Some(format!("shutting down{over} (pid {pid})"));
                    format!(
                        "shutdown command started{over} (pid {pid}); recorded in the ledger; output in .opsconsole/shutdown-command.log"
                    )
                }
                Outcome::Refused { failing } => {
                    c.shutdown = None;
                    format!("not shut down: {} failing on the fresh check (override with its name)", failing.join(", "))
                }
                Outcome::NoCommand => {
                    c.shutdown = None;
                    no_command_text()
                }
                Outcome::Failed(e) => {
                    c.shutdown = None;
                    format!("not shut down: {e}")
                }
            });
        }
        ShutdownEvent::Exited { pid, code } => {
            c.shutdown = Some(ShutdownProgress::Exited { pid, code });
            let text = match code {
                Some(0) => "the shutdown command finished (exit 0): the machine is going down".to_string(),
                Some(n) => format!("the shutdown command FAILED (exit {n}): see .opsconsole/shutdown-command.log"),
                None => "the shutdown command was killed: see .opsconsole/shutdown-command.log".to_string(),
            };
            state.notice = Some(text.clone());
            c.message = Some(text);
        }
    }
}

fn no_command_text() -> String {
    "no shutdown command: set [shutdown] command in opsconsole.toml (e.g. \"sudo shutdown -h now\")".into()
}

fn close(state: &mut AppState) {
    state.overlay = Overlay::None;
    let c = &mut state.checklist;
    c.overrides.clear();
    c.typing = None;
    c.confirming = false;
    c.shutdown_after_typing = false;
}

/// Names typed: each failing item named is overridden.
fn apply_typed(state: &mut AppState, typed: &str) {
    let c = &mut state.checklist;
    let Some(report) = &c.report else { return };
    let mut notes = Vec::new();
    let mut added = Vec::new();
    for name in typed.split(|ch: char| ch.is_whitespace() || ch == ',').filter(|n| !n.is_empty()) {
        match report.item(name) {
            Some(i) if i.status == Status::Fail => {
                if c.overrides.insert(name.to_string()) {
                    added.push(name.to_string());
                }
            }
            Some(_) => notes.push(format!("`{name}` does not fail")),
            None => notes.push(format!("no item is named `{name}`")),
        }
    }
    if !added.is_empty() {
        notes.insert(0, format!("overridden: {} (recorded if you shut down)", added.join(", ")));
    }
    c.message = Some(if notes.is_empty() { "nothing overridden".into() } else { notes.join("; ") });
}

fn ask_shutdown(state: &mut AppState) -> Vec<Effect> {
    let c = &mut state.checklist;
    if state.config.shutdown.command.trim().is_empty() {
        c.message = Some(no_command_text());
        return vec![];
    }
    if matches!(c.shutdown, Some(ShutdownProgress::Checking | ShutdownProgress::Started { .. })) {
        c.message = Some("a shutdown is already under way".into());
        return vec![];
    }
    if c.report.is_none() {
        c.message = Some("still checking…".into());
        return vec![];
    }
    let unresolved = c.unresolved();
    if unresolved.is_empty() {
        c.confirming = true;
        c.message = None;
    } else {
        c.typing = Some(String::new());
        c.shutdown_after_typing = true;
        c.message = Some(format!("failing: {} — type each name to accept what it loses", unresolved.join(", ")));
    }
    vec![]
}

fn confirm(state: &mut AppState) -> Vec<Effect> {
    let c = &mut state.checklist;
    c.confirming = false;
    c.shutdown = Some(ShutdownProgress::Checking);
    c.gathering = true;
    c.message = Some("checking every item again before shutting down…".into());
    vec![Effect::Shutdown { overrides: c.overrides.clone() }]
}

/// Keys while the checklist is open.
pub fn on_key(state: &mut AppState, key: &KeyEvent) -> Vec<Effect> {
    if let Some(typed) = state.checklist.typing.as_mut() {
        // A control chord (ctrl-c) is not text: it leaves the prompt.
        let control = key.modifiers.contains(ratatui::crossterm::event::KeyModifiers::CONTROL);
        match key.code {
            _ if control => {
                state.checklist.typing = None;
                state.checklist.shutdown_after_typing = false;
            }
            KeyCode::Esc => {
                state.checklist.typing = None;
                state.checklist.shutdown_after_typing = false;
            }
            KeyCode::Backspace => {
                typed.pop();
            }
            KeyCode::Enter => {
                let text = std::mem::take(typed);
                state.checklist.typing = None;
                apply_typed(state, &text);
                if std::mem::take(&mut state.checklist.shutdown_after_typing) {
                    let left = state.checklist.unresolved();
                    if left.is_empty() {
                        state.checklist.confirming = true;
                    } else {
                        let m = state.checklist.message.take().unwrap_or_default();
                        state.checklist.message = Some(format!("{m}; still failing: {}", left.join(", ")));
                    }
                }
            }
            KeyCode::Char(ch) if typed.chars().count() < 200 => typed.push(ch),
            _ => {}
        }
        return vec![];
    }
    if state.checklist.confirming {
        if state.keymap.is(key, Action::Confirm) {
            return confirm(state);
        }
        if state.keymap.is(key, Action::Deny) || state.keymap.action(key) == Some(Action::Cancel) {
            state.checklist.confirming = false;
            state.checklist.message = Some("not shut down".into());
        }
        return vec![];
    }
    let Some(action) = state.keymap.action(key) else { return vec![] };
    let n = state.checklist.report.as_ref().map_or(0, |r| r.items.len());
    let c = &mut state.checklist;
    match action {
        Action::Cancel | Action::Checklist => {
            close(state);
            vec![]
        }
        Action::Quit => super::on_action(state, Action::Quit),
        Action::Up => {
            c.scroll = c.scroll.saturating_sub(1);
            vec![]
        }
        Action::Down => {
            c.scroll = (c.scroll + 1).min(n.saturating_sub(1));
            vec![]
        }
        Action::PageUp => {
            c.scroll = c.scroll.saturating_sub(10);
            vec![]
        }
        Action::PageDown => {
            c.scroll = (c.scroll + 10).min(n.saturating_sub(1));
            vec![]
        }
        Action::Refresh => {
            c.message = Some("checking again (remote copies and extra commands too)…".into());
            request(state, true)
        }
        Action::OverrideItem => {
            if c.report.as_ref().is_some_and(|r| r.ok) {
                c.message = Some("every item passes: nothing to override".into());
            } else {
                c.typing = Some(String::new());
            }
            vec![]
        }
        Action::Shutdown => ask_shutdown(state),
        // The fixes the screen names work from here.
        Action::SyncNow | Action::RetryFailed => {
            let mut fx = super::on_action(state, action);
            state.checklist.message = state.status_line().map(|s| s.text.clone());
            fx.extend(request(state, false));
            fx
        }
        Action::Prune => {
            close(state);
            super::prune::open(state)
        }
        _ => vec![],
    }
}

/// Fold a GPU sample into the idle tracker.
pub fn on_gpu(state: &mut AppState) {
    let Some(sample) = &state.gpu.sample else { return };
    let activity = idle::activity(sample, state.log.writer_alive, &state.config.idle);
    let at = UNIX_EPOCH + Duration::from_millis(sample.taken_at_unix_ms);
    // Until the checkpoint scan has come in, nothing is known about the last activity.
    let floor = state.prune.sample.as_ref().map(|ck| {
        let writes = ck
            .checkpoints
            .iter()
            .map(|k| k.mtime)
            .chain(state.log.candidates.iter().filter(|c| c.exists).map(|c| c.modified));
        idle::floor(state.host.boot_time_unix, writes)
    });
    state.idle.observe(at, activity, floor.flatten());
}

/// The idle report now.
pub fn idle_status(state: &AppState) -> IdleStatus {
    let tier = state.gpu.machine_tier.as_ref().map(|t| t.name.as_str());
    state.idle.status(state.now, &state.config.idle, tier)
}

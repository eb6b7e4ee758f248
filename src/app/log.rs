//! The Log panel's state: the followed log's lines (scroll, search, errors-only), its
//! metrics and health, the candidate logs, and the keys that act on them. No I/O.

use std::path::PathBuf;
use std::time::SystemTime;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::logview::LogView;
use super::{Action, AppState, Effect, Overlay, Panel};
use crate::logtail::collector::BackfillProgress;
use crate::logtail::discover::LogCandidate;
use crate::logtail::{Health, LogConfig, LogSample, MetricsState, RunStatus, TailNote};

#[derive(Debug, Clone)]
pub struct LogPanel {
    pub config: LogConfig,
    pub view: LogView,
    /// The followed log; `None` until the collector found one.
    pub path: Option<PathBuf>,
    pub size_bytes: Option<u64>,
    pub metrics: MetricsState,
    pub health: Health,
    pub backfill: BackfillProgress,
    /// A newer log (a new run) the user may switch to.
    pub newer_log: Option<PathBuf>,
    /// Why the log cannot be read, if it cannot.
    pub error: Option<String>,
    /// Whether a process has the log open for writing (the training run).
    pub writer_alive: Option<bool>,
    /// The processes writing the log; `None` until looked or when `/proc` cannot tell.
    pub writers: Option<Vec<u32>>,
    /// When following this log began (the state's clock).
    pub since: Option<SystemTime>,
    /// The last rotation or truncation seen, and when.
    pub last_event: Option<(TailNote, SystemTime)>,
    /// Logs that could be followed, newest first (from the collector).
    pub candidates: Vec<LogCandidate>,
}

impl LogPanel {
    pub fn new(config: LogConfig) -> Self {
        Self {
            view: LogView::new(config.buffer_lines),
            metrics: MetricsState::new(config.chart_points),
            config,
            path: None,
            size_bytes: None,
            health: Health::default(),
            backfill: BackfillProgress::default(),
            newer_log: None,
            error: None,
            writer_alive: None,
            writers: None,
            since: None,
            last_event: None,
            candidates: Vec::new(),
        }
    }

    /// Fold a collector sample in.
    pub fn apply(&mut self, s: LogSample, now: SystemTime) {
        if s.reset || self.path.as_ref() != Some(&s.path) {
            self.view.clear();
            self.since = Some(now);
            self.last_event = None;
            self.path = Some(s.path.clone());
        }
        if let Some(n) = s.notes.iter().rev().find(|n| matches!(n, TailNote::Rotated | TailNote::Truncated)) {
            self.last_event = Some((n.clone(), now));
        }
        self.view.push(s.new_lines);
        self.view.partial = s.partial;
        self.size_bytes = s.size_bytes;
        self.metrics = s.metrics;
        self.health = s.health;
        self.backfill = s.backfill;
        self.newer_log = s.newer_log;
        self.error = s.error;
        self.writer_alive = s.writer_alive;
        self.writers = s.writers;
    }

    /// Running or stopped, how it ended when the log says, and how long ago the last
    /// line came (the run-state line).
    pub fn run(&self, now: SystemTime) -> RunStatus {
        RunStatus::new(self.writers.as_deref(), self.view.last_texts(20), self.health.last_line_at, now)
    }

    /// No new line for `log.stall_after` while a process still writes the log.
    pub fn stalled(&self, now: SystemTime) -> bool {
        match (self.since, self.writer_alive) {
            (Some(since), Some(true)) => self.health.stalled(now, since, true, self.config.stall_after),
            _ => false,
        }
    }

    /// How long no line came, when stalled.
    pub fn quiet_for(&self, now: SystemTime) -> Option<std::time::Duration> {
        let last = self.health.last_line_at.or(self.since)?;
        now.duration_since(last).ok()
    }

    /// The `log` part of `status --json`, from what the panel holds.
    pub fn status(&self, now: SystemTime) -> crate::logtail::LogStatus {
        match &self.path {
            Some(p) => crate::logtail::LogStatus {
                metrics: self.run(now).shown_metrics(&self.metrics.latest),
                run: self.run(now),
                ..crate::logtail::LogStatus::new(
                    p,
                    self.size_bytes,
                    self.view.last_text().map(str::to_string),
                    &self.health,
                    self.stalled(now),
                )
            },
            None => crate::logtail::LogStatus::default(),
        }
    }
}

/// Keys while the search prompt is open: characters are the query, `enter` searches,
/// `esc` leaves without searching.
pub fn on_search_key(state: &mut AppState, key: &KeyEvent) -> Vec<Effect> {
    let Overlay::LogSearch { query } = &mut state.overlay else { return vec![] };
    match key.code {
        KeyCode::Esc => state.overlay = Overlay::None,
        KeyCode::Enter => {
            let q = std::mem::take(query);
            state.overlay = Overlay::None;
            let page = state.viewport.log_page();
            state.log.view.search(&q, page);
        }
        KeyCode::Backspace => {
            query.pop();
        }
        KeyCode::Char(c)
            if !key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) && query.chars().count() < 200 =>
        {
            query.push(c);
        }
        _ => {}
    }
    vec![]
}

/// Keys while the log switcher is open: move, pick (`enter`), close; `q` still quits.
pub fn on_switcher_key(state: &mut AppState, key: &KeyEvent) -> Vec<Effect> {
    let Overlay::LogSwitcher { selected } = state.overlay else { return vec![] };
    let n = state.log.candidates.len();
    match state.keymap.action(key) {
        Some(Action::Up) => state.overlay = Overlay::LogSwitcher { selected: selected.saturating_sub(1) },
        Some(Action::Down) => {
            state.overlay = Overlay::LogSwitcher { selected: (selected + 1).min(n.saturating_sub(1)) }
        }
        Some(Action::Cancel) | Some(Action::LogSwitch) => state.overlay = Overlay::None,
        Some(Action::Quit) => return super::on_action(state, Action::Quit),
        _ if state.keymap.is(key, Action::Confirm) => {
            state.overlay = Overlay::None;
            if let Some(c) = state.log.candidates.get(selected)
                && state.log.path.as_ref() != Some(&c.path)
            {
                return vec![Effect::SwitchLog(c.path.clone())];
            }
        }
        _ => {}
    }
    vec![]
}

/// The log actions.
pub fn on_action(state: &mut AppState, action: Action) -> Vec<Effect> {
    let page = state.viewport.log_page();
    let log = &mut state.log;
    match action {
        Action::LogFollow => log.view.toggle_follow(page),
        Action::LogTop => log.view.to_top(),
        Action::LogEnd => log.view.to_end(),
        Action::LogSearch => state.overlay = Overlay::LogSearch { query: String::new() },
        Action::LogNextMatch => {
            log.view.next_match(page);
        }
        Action::LogPrevMatch => {
            log.view.prev_match(page);
        }
        Action::LogErrorsOnly => log.view.toggle_errors_only(),
        Action::LogWrap => {
            log.view.toggle_wrap();
            let text = if log.view.wrap { "log: long lines wrap" } else { "log: long lines are cut with …" };
            state.say(text, false);
        }
        Action::LogLeft | Action::LogRight if state.focus == Panel::Log => {
            if log.view.wrap {
                let key = state.keymap.first_key(Action::LogWrap).unwrap_or_default();
                state.say(format!("log: lines wrap, nothing to scroll sideways ({key} cuts them instead)"), false);
            } else {
                log.view.scroll_sideways(action == Action::LogRight, page);
            }
        }
        Action::LogSwitch => {
            // The newer log first when one is offered, else the one followed.
            let want = log.newer_log.as_ref().or(log.path.as_ref());
            let i = want.and_then(|p| log.candidates.iter().position(|c| &c.path == p)).unwrap_or(0);
            state.overlay = Overlay::LogSwitcher { selected: i };
            return vec![Effect::RefreshNow];
        }
        _ => {}
    }
    vec![]
}

/// Up / down / page keys when the Log panel has focus: `↑`/`↓` move the line cursor
/// (the first `↑` pauses on the newest line), the page keys scroll by a window.
pub fn scroll(state: &mut AppState, action: Action) {
    if state.focus != Panel::Log {
        return;
    }
    let page = state.viewport.log_page();
    let v = &mut state.log.view;
    match action {
        Action::Up => v.cursor_up(page),
        Action::Down => v.cursor_down(page),
        Action::PageUp => v.scroll_up(page.rows.max(1), page),
        Action::PageDown => v.scroll_down(page.rows.max(1), page),
        _ => {}
    }
}

/// Enter on the Log panel: the whole text of the line under the cursor (paused: `↑`,
/// a search match, `g`); while following, the last error when the log has one (the red
/// `✖` line), else the newest line.
pub fn on_details(state: &mut AppState) -> Vec<Effect> {
    let log = &state.log;
    let file = log.path.as_deref().map(|p| p.strip_prefix(&state.workspace_root).unwrap_or(p).display().to_string());
    let Some(file) = file else {
        state.say("no log followed yet: nothing to open", false);
        return vec![];
    };
    let page = state.viewport.log_page();
    let line = match log.view.cursor() {
        Some(seq) => log.view.line(seq),
        None => None,
    };
    let detail = match (line, &log.health.last_error) {
        (Some(l), _) => line_detail(l, &file, log.config.max_line_bytes),
        (None, Some(e)) if log.view.following() => {
            let n = log.health.error_count();
            // The whole line when the log still holds it (the summary keeps its head).
            let head = e.message.trim_end_matches('…');
            let mut text = log
                .view
                .last_texts(log.view.len())
                .rev()
                .find(|t| t.trim().starts_with(head))
                .map(|t| t.trim().to_string())
                .unwrap_or_else(|| e.message.clone());
            if let Some(h) = &e.hint {
                text.push_str(&format!("\n\nhint: {h}"));
            }
            let title =
                format!("Last error in {file}: {} ({n} error{} so far)", e.kind.label(), if n == 1 { "" } else { "s" });
            super::detail::Detail::new(title, text)
        }
        (None, _) => match log.view.visible(page).last() {
            Some(l) => line_detail(l, &file, log.config.max_line_bytes),
            None => {
                state.say("the log has no line to open yet", false);
                return vec![];
            }
        },
    };
    super::detail::open(state, detail);
    vec![]
}

fn line_detail(l: &super::logview::ViewLine, file: &str, cap: usize) -> super::detail::Detail {
    let mut title = format!("Line {} read from {file}", l.seq + 1);
    if let Some(kind) = l.line.error {
        title.push_str(&format!(" · {}", kind.label()));
    }
    let mut text = super::logview::printable(&l.line.text);
    if l.line.truncated {
        text.push_str(&format!(
            "\n\n(the line was longer than log.max_line_bytes = {cap}: only its head is kept, the rest is in the file)"
        ));
    }
    super::detail::Detail::new(title, text)
}

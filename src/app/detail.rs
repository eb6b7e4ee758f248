//! The detail view: the whole text of something the screen had to cut (a log line, the
//! last error, an upload's failure), wrapped in an overlay that scrolls. Enter opens it
//! from the Log panel and the upload queue; Esc, Enter or `q` close it. No I/O: the text
//! is copied when it opens, so a line that later leaves the log's buffer stays readable.

use ratatui::crossterm::event::{KeyEvent, KeyModifiers};

use super::{Action, AppState, Effect, Overlay};
use crate::sync::ledger::{LedgerEntry, UploadState};

/// What the detail view shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    /// What it is: `Line 1234 read from logs/train.log`, `Last error: CUDA OOM`, …
    pub title: String,
    /// The whole text; `\n` separates paragraphs, each wrapped to the overlay's width.
    pub text: String,
    /// First wrapped row shown.
    pub scroll: usize,
    /// What closing it returns to (the upload queue it was opened from, or nothing).
    pub under: Overlay,
}

impl Detail {
    pub fn new(title: impl Into<String>, text: impl Into<String>) -> Self {
        Self { title: title.into(), text: text.into(), scroll: 0, under: Overlay::None }
    }
}

/// Opens the detail view over what is open now (closing it goes back there).
pub fn open(state: &mut AppState, mut detail: Detail) {
    detail.under = std::mem::replace(&mut state.overlay, Overlay::None);
    state.overlay = Overlay::Detail(Box::new(detail));
}

/// The detail of one upload queue row: where it goes, its state, and the whole reason it
/// failed.
pub fn of_upload(e: &LedgerEntry) -> Detail {
    let state = match e.state {
        UploadState::Pending => "pending".to_string(),
        UploadState::Uploading => format!(
            "uploading: {} of {} ({:.0}%)",
            crate::util::bytes(e.bytes_done),
            crate::util::bytes(e.bytes_total),
            (e.bytes_done as f64 * 100.0 / e.bytes_total.max(1) as f64).floor()
        ),
        UploadState::Failed if e.permanent => format!(
            "failed after {} attempt{}: waits for you (fix the cause, then R retries)",
            e.attempts,
            if e.attempts == 1 { "" } else { "s" }
        ),
        UploadState::Failed => {
            format!("failed {} time{}: retried by itself", e.attempts, if e.attempts == 1 { "" } else { "s" })
        }
        UploadState::Confirmed => "stored and confirmed on the remote".to_string(),
    };
    let mut text = format!(
        "file: {}\nlevel: {} → remote '{}'\nsize: {}\nstate: {state}",
        e.path,
        e.level,
        e.remote,
        crate::util::bytes(e.bytes_total)
    );
    if let Some(err) = &e.last_error {
        let label = if e.state == UploadState::Failed { "reason" } else { "last error" };
        text.push_str(&format!("\n\n{label}: {err}"));
    }
    Detail::new(format!("Upload {} {} → {}", e.level, e.path, e.remote), text)
}

/// Keys while the detail view is open: it scrolls, and Esc, Enter or `q` close it
/// (`ctrl-c` still quits).
pub fn on_key(state: &mut AppState, key: &KeyEvent) -> Vec<Effect> {
    let max = state.viewport.detail_max_scroll;
    let Overlay::Detail(d) = &mut state.overlay else { return vec![] };
    match state.keymap.action(key) {
        Some(Action::Up) => d.scroll = d.scroll.saturating_sub(1),
        Some(Action::Down) => d.scroll = (d.scroll + 1).min(max),
        Some(Action::PageUp) => d.scroll = d.scroll.saturating_sub(10),
        Some(Action::PageDown) => d.scroll = (d.scroll + 10).min(max),
        Some(Action::LogTop) => d.scroll = 0,
        Some(Action::LogEnd) => d.scroll = max,
        Some(Action::Quit) if key.modifiers.contains(KeyModifiers::CONTROL) => {
            return super::on_action(state, Action::Quit);
        }
        Some(Action::Cancel | Action::Details | Action::Quit) => {
            let under = std::mem::replace(&mut d.under, Overlay::None);
            state.overlay = under;
        }
        _ => {}
    }
    vec![]
}

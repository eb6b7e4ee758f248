//! Drawing. `render` is a pure function of [`AppState`]: it reads, never changes, and does
//! no I/O. One file per panel or screen.

mod airlock;
mod border;
mod checklist;
pub mod clock;
mod detail;
mod disk;
mod footer;
mod gpu;
mod header;
mod help;
mod log;
mod popup;
mod prune;
mod rules;
pub mod screen;
mod text;
mod uploads;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::BorderType;
pub use screen::Frame;

use crate::app::{AppState, Overlay, Panel, Viewport};
use crate::disk::Level;

/// Where each panel goes on a body of the given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PanelAreas {
    pub gpu: Rect,
    pub disk: Rect,
    pub log: Rect,
    pub uploads: Rect,
}

/// Lays the four panels out: GPU and Disk side by side on top when the terminal is wide
/// enough, the log below, the uploads at the bottom; on narrow terminals they stack.
pub fn layout(body: Rect) -> PanelAreas {
    if body.width >= 70 {
        let top = (body.height * 2 / 5).clamp(6, 14);
        let uploads = (body.height / 5).clamp(4, 8);
        let [top_row, log, uploads] =
            Layout::vertical([Constraint::Length(top), Constraint::Min(3), Constraint::Length(uploads)]).areas(body);
        let [gpu, disk] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top_row);
        PanelAreas { gpu, disk, log, uploads }
    } else {
        let [gpu, disk, log, uploads] = Layout::vertical([
            Constraint::Ratio(1, 4),
            Constraint::Ratio(1, 4),
            Constraint::Ratio(1, 3),
            Constraint::Min(3),
        ])
        .areas(body);
        PanelAreas { gpu, disk, log, uploads }
    }
}

/// Where each panel goes for this state: [`layout`], or, zoomed, the focused panel on the
/// whole body and the others nowhere (an empty rectangle: not drawn).
pub fn panel_areas(state: &AppState, body: Rect) -> PanelAreas {
    if !state.zoomed {
        return layout(body);
    }
    let none = Rect { x: body.x, y: body.y, width: 0, height: 0 };
    let mut a = PanelAreas { gpu: none, disk: none, log: none, uploads: none };
    match state.focus {
        Panel::Gpu => a.gpu = body,
        Panel::Disk => a.disk = body,
        Panel::Log => a.log = body,
        Panel::Uploads => a.uploads = body,
    }
    a
}

/// The sizes `update` needs from the layout (rows of the Log panel, for paging), for the
/// state as it would be drawn now. The loop stores them after each frame.
pub fn viewport(state: &AppState) -> Viewport {
    let page = log::log_page(state);
    Viewport { log_rows: page.rows, log_cols: page.cols, detail_max_scroll: detail::max_scroll(state) }
}

/// Draws the whole screen. Afterwards [`clock::next_change`] says when its time-derived
/// text (ages, the uptime, the status line's expiry) reads differently.
pub fn render(state: &AppState, frame: &mut Frame) {
    clock::reset();
    // The job screens show progress and ages of their own: drawn at every tick while open.
    if matches!(
        state.overlay,
        Overlay::Prune | Overlay::Checklist | Overlay::Bundle | Overlay::Import | Overlay::Resume
    ) || state.jobs.running().next().is_some()
    {
        clock::every_tick(state.now);
    }
    let area = frame.area();
    let [header, body, footer] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0), Constraint::Length(1)]).areas(area);
    header::render(state, frame, header);
    let areas = panel_areas(state, body);
    let drawn = |r: Rect| r.width > 0 && r.height > 0;
    if drawn(areas.gpu) {
        gpu::render(state, frame, areas.gpu);
    }
    if drawn(areas.disk) {
        disk::render(state, frame, areas.disk);
    }
    if drawn(areas.log) {
        log::render(state, frame, areas.log);
    }
    if drawn(areas.uploads) {
        uploads::render(state, frame, areas.uploads);
    }
    footer::render(state, frame, footer);
    log::render_switcher(state, frame, area);
    match state.overlay {
        Overlay::None => {}
        Overlay::Help => help::render(state, frame, area),
        Overlay::ConfirmQuit => popup::confirm_quit(state, frame, area),
        Overlay::GpuDetails { gpu, pid } => gpu::details(state, frame, area, gpu, pid),
        Overlay::ConfirmKill { .. } => gpu::confirm_kill(state, frame, area),
        Overlay::UploadQueue => uploads::queue(state, frame, area),
        Overlay::Prune => prune::render_plan(state, frame, body),
        Overlay::Checklist => checklist::render(state, frame, body),
        // Drawn by the Log panel (the prompt) and `render_switcher` above.
        Overlay::LogSearch { .. } | Overlay::LogSwitcher { .. } => {}
        Overlay::Bundle => airlock::render_bundle(state, frame, body),
        Overlay::Import => airlock::render_import(state, frame, body),
        Overlay::Resume => airlock::render_resume(state, frame, body),
        Overlay::Detail(ref d) => detail::render(d, frame, area),
    }
}

/// The border of a panel, highlighted when focused.
pub(crate) fn panel_block(state: &AppState, panel: Panel, mut title: String) -> border::PanelBorder {
    let focused = state.focus == panel;
    if focused && state.zoomed {
        let key = state.keymap.first_key(crate::app::Action::Zoom).unwrap_or_else(|| "esc".into());
        title = format!("{} · zoomed, {key} back ", title.trim_end());
    }
    let style = if focused { Style::new().fg(Color::Cyan) } else { Style::new().fg(Color::DarkGray) };
    border::PanelBorder::new(
        if focused { BorderType::Thick } else { BorderType::Plain },
        style,
        Style::new().add_modifier(Modifier::BOLD),
    )
    .title(title)
}

/// The colour of a disk level.
pub(crate) fn level_style(level: Level) -> Style {
    match level {
        Level::Ok => Style::new().fg(Color::Green),
        Level::Warn => Style::new().fg(Color::Yellow),
        Level::Critical => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Level::Full => Style::new().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
    }
}

/// Dim text for labels and explanations.
/// `words` joined by single spaces into lines: the first at most `first` cells, the rest
/// at most `rest` (a word longer than a line stands alone on its line: the caller cuts it
/// with `…`). The screens'
/// one word wrapper; each caller decides how to cut what does not fit.
pub(crate) fn wrap_words<'a>(words: impl Iterator<Item = &'a str>, first: usize, rest: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in words {
        let room = if lines.is_empty() { first } else { rest };
        // Display widths: a CJK word takes two cells a character.
        let len = unicode_width::UnicodeWidthStr::width(cur.as_str());
        if len > 0 && len + 1 + unicode_width::UnicodeWidthStr::width(word) > room {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

pub(crate) fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// A rectangle of at most `w` x `h` centred in `area`.
pub(crate) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_words_counts_display_cells() {
        use unicode_width::UnicodeWidthStr;
        let lines = wrap_words("実験 データ 重み ファイル".split(' '), 8, 8);
        assert_eq!(lines, ["実験", "データ", "重み", "ファイル"]);
        assert!(lines.iter().all(|l| l.width() <= 8), "{lines:?}");
        assert_eq!(wrap_words("a bb ccc".split(' '), 4, 4), ["a bb", "ccc"]);
    }
}

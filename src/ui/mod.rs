//! Drawing. `render` is a pure function of [`AppState`]: it reads, never changes, and does
//! no I/O. One file per panel or screen.

mod airlock;
mod border;
mod checklist;
pub mod clock;
mod detail;
mod disk;
mod drawn;
mod footer;
mod gpu;
mod header;
mod help;
mod log;
mod popup;
mod prune;
mod rules;
pub mod screen;
pub mod term;
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

/// A part of the screen that a frame can draw alone (`Screen::draw_parts`): the header
/// and footer rows, each panel, and what is drawn over them (overlays, the log switcher),
/// which only whole frames draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Header,
    Gpu,
    Disk,
    Log,
    Uploads,
    Footer,
    Overlay,
}

impl Part {
    pub const COUNT: usize = 7;
    pub const ALL: [Part; Part::COUNT] =
        [Part::Header, Part::Gpu, Part::Disk, Part::Log, Part::Uploads, Part::Footer, Part::Overlay];
}

/// A set of [`Part`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Parts(u8);

impl Parts {
    pub const NONE: Parts = Parts(0);
    pub const ALL: Parts = Parts((1 << Part::COUNT) - 1);

    pub const fn of(part: Part) -> Parts {
        Parts(1 << part as u8)
    }

    pub fn has(self, part: Part) -> bool {
        self.0 & (1 << part as u8) != 0
    }
}

impl std::ops::BitOr for Parts {
    type Output = Parts;
    fn bitor(self, o: Parts) -> Parts {
        Parts(self.0 | o.0)
    }
}

impl std::ops::BitOrAssign for Parts {
    fn bitor_assign(&mut self, o: Parts) {
        self.0 |= o.0;
    }
}

/// The parts of the screen whose text a message can change, when `update` says it changed
/// something shown (`AppState::generation`). Samples change their panel; the header and
/// footer, which read a little of everything (the disk level, a stalled log, the rules,
/// the status line), are in every frame. Anything else (keys, resizes, jobs) can change
/// the whole screen. A part left out here that a message does change is a panel that
/// stays stale: builds with debug assertions check every frame drawn in parts against the
/// whole frame (`Screen::draw_parts`).
pub fn parts_of(msg: &crate::app::Msg) -> Parts {
    use crate::app::Msg;
    let frame = Parts::of(Part::Header) | Parts::of(Part::Footer);
    frame
        | match msg {
            Msg::Tick(_) => Parts::NONE,
            Msg::Gpu(_) | Msg::Host(_) => Parts::of(Part::Gpu),
            Msg::Disk(_) | Msg::Checkpoints(_) | Msg::Rules(_) => Parts::of(Part::Disk),
            Msg::Log(_) | Msg::LogCandidates(_) => Parts::of(Part::Log),
            Msg::Sync(_) | Msg::SyncUnreadable(_) | Msg::SyncEvent(_) => Parts::of(Part::Uploads),
            _ => Parts::ALL,
        }
}

/// Whether the next frame must be drawn whole: something is drawn over the panels (an
/// overlay, the log switcher), or a job is running (its progress and age change at every
/// tick, in the footer and on its screen).
pub fn whole_frame(state: &AppState) -> bool {
    !matches!(state.overlay, Overlay::None) || state.jobs.running().next().is_some()
}

/// The header row, the panels' body and the footer row of a screen of `area`.
fn rows(area: Rect) -> [Rect; 3] {
    Layout::vertical([Constraint::Length(1), Constraint::Min(0), Constraint::Length(1)]).areas(area)
}

/// Where each part is drawn on a screen of `area`, in [`Part`]'s order (the overlays:
/// over all of it).
pub fn part_areas(state: &AppState, area: Rect) -> [Rect; Part::COUNT] {
    let [header, body, footer] = rows(area);
    let p = panel_areas(state, body);
    [header, p.gpu, p.disk, p.log, p.uploads, footer, area]
}

/// A part's drawing function.
type PartRender = fn(&AppState, &mut Frame, Rect);

/// Draws the whole screen. Afterwards [`clock::next_change`] says when its time-derived
/// text (ages, the uptime, the status line's expiry) reads differently.
pub fn render(state: &AppState, frame: &mut Frame) {
    render_parts(state, frame, Parts::ALL);
}

/// Draws the given parts of the screen, each whole, and nothing else (the overlays only
/// with [`Parts::ALL`]). [`clock::next_change_of`] then says when each part's
/// time-derived text reads differently.
pub fn render_parts(state: &AppState, frame: &mut Frame, parts: Parts) {
    draw_parts(state, frame, parts);
    clock::end();
}

fn draw_parts(state: &AppState, frame: &mut Frame, parts: Parts) {
    let area = frame.area();
    let areas = part_areas(state, area);
    let draws: [(Part, PartRender); 6] = [
        (Part::Header, header::render),
        (Part::Gpu, gpu::render),
        (Part::Disk, disk::render),
        (Part::Log, log::render),
        (Part::Uploads, uploads::render),
        (Part::Footer, footer::render),
    ];
    for (part, draw) in draws {
        if parts.has(part) {
            clock::begin(part);
            let r = areas[part as usize];
            if r.width > 0 && r.height > 0 {
                draw(state, frame, r);
            }
        }
    }
    if !parts.has(Part::Overlay) {
        return;
    }
    clock::begin(Part::Overlay);
    let [_, body, _] = rows(area);
    // The job screens show progress and ages of their own: drawn at every tick while open.
    if matches!(
        state.overlay,
        Overlay::Prune | Overlay::Checklist | Overlay::Bundle | Overlay::Import | Overlay::Resume
    ) || state.jobs.running().next().is_some()
    {
        clock::every_tick(state.now);
    }
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
    if whole_frame(state) {
        // Drawn over the panels: what they drew is not what the terminal shows.
        drawn::forget();
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

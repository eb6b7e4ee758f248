use super::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph};

use crate::app::{Action, AppState};

/// "A job is still running: quit anyway?"
pub fn confirm_quit(state: &AppState, frame: &mut Frame, area: Rect) {
    let running: Vec<_> = state.jobs.running().collect();
    let uploads = state.uploads.own_uploads();
    let head = match (running.is_empty(), uploads.is_empty()) {
        (true, false) => "An upload is in flight. Quitting stops it.",
        (false, false) => "Jobs and uploads are running. Quitting stops them.",
        _ => "A job is still running. Quitting stops it.",
    };
    let mut lines = vec![Line::styled(head, Style::new().add_modifier(Modifier::BOLD))];
    for job in running.iter().take(3) {
        lines.push(Line::raw(crate::util::ellipsize(&format!("  · {}", job.name), 46)));
    }
    for up in uploads.iter().take(3) {
        let pct = (up.bytes_done as f64 * 100.0 / up.bytes_total.max(1) as f64).floor();
        let name = up.path.rsplit('/').next().unwrap_or(&up.path);
        lines.push(Line::raw(crate::util::ellipsize(&format!("  · {} {name} {pct:.0}%", up.level), 46)));
    }
    if !uploads.is_empty() {
        lines.push(Line::styled("  It resumes where it stopped next time.", super::dim()));
    }
    let yes = state.keymap.first_key(Action::Confirm).unwrap_or_else(|| "y".into());
    let no = state.keymap.first_key(Action::Deny).unwrap_or_else(|| "n".into());
    lines.push(Line::raw(""));
    lines.push(Line::styled(format!("{yes} quit anyway · {no} keep running"), Style::new().fg(Color::Yellow)));
    let popup = super::centered(area, 50, lines.len() as u16 + 2);
    // A terminal narrower than the dialog: each line ends with `…`, never clipped.
    let width = popup.width.saturating_sub(2) as usize;
    let lines: Vec<Line> = lines
        .into_iter()
        .map(|l| {
            let text: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
            if unicode_width::UnicodeWidthStr::width(text.as_str()) <= width {
                l
            } else {
                Line::styled(crate::util::ellipsize(&text, width), l.style)
            }
        })
        .collect();
    let block = Block::bordered().title(" Quit? ").border_style(Style::new().fg(Color::Yellow));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}

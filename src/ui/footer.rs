use super::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::AppState;
use crate::app::hints::{Hint, footer_hints};
use crate::app::jobs::JobStatus;

pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    // The answer to the last key takes the footer's row until it expires: every size
    // shows it, and the key hints come back after.
    if let Some(st) = state.status_line() {
        super::clock::at(state.now, st.at + crate::app::STATUS_TTL);
        let style = if st.error {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
        };
        let mark = if st.error { "✗ " } else { "› " };
        let text = crate::util::ellipsize(&format!(" {mark}{}", st.text), area.width as usize);
        frame.render_widget(Paragraph::new(Line::styled(text, style)), area);
        return;
    }
    let key = Style::new().fg(Color::Black).bg(Color::Cyan).add_modifier(Modifier::BOLD);
    let hints = footer_hints(state);
    let width = area.width as usize;
    let cost = |h: &Hint| h.keys.chars().count() + 2 + h.label.chars().count() + 3;
    // On the main screen the way to every other key (help) stays, whatever else is cut.
    let help = if hints.dialog { None } else { hints.global.first().filter(|h| h.label == "help") };
    let reserve = help.map_or(0, cost);
    let mut used = 0;
    let mut chosen: Vec<&Hint> = Vec::new();
    let mut full = false;
    for h in hints.all() {
        let keep = help.is_some_and(|x| std::ptr::eq(x, h));
        let room = if keep { width } else { width.saturating_sub(reserve) };
        if keep || (!full && used + cost(h) <= room) {
            used += cost(h);
            chosen.push(h);
        } else {
            // Cut at the first hint that does not fit: the order is the priority.
            full = true;
        }
    }
    let mut spans = Vec::new();
    for h in chosen {
        spans.push(Span::styled(format!(" {} ", h.keys), key));
        spans.push(Span::raw(format!(" {}  ", h.label)));
    }
    let right = match (&state.notice, state.jobs.latest()) {
        (Some(n), _) => n.clone(),
        (None, Some(job)) => match &job.status {
            JobStatus::Running { done, total, text } if *total > 0 => {
                format!("{}: {}% {}", job.name, done * 100 / total, text)
            }
            JobStatus::Running { text, .. } => format!("{}: {}", job.name, text),
            JobStatus::Done(s) => format!("{}: {}", job.name, s),
            JobStatus::Failed(e) => format!("{} failed: {}", job.name, e),
        },
        (None, None) => String::new(),
    };
    let used: usize = spans.iter().map(|s| s.width()).sum();
    let room = width.saturating_sub(used + 1);
    if room > 3 && !right.is_empty() {
        let text = crate::util::ellipsize(&right, room);
        let pad = room - text.chars().count();
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(Span::styled(text, Style::new().fg(Color::Yellow)));
    }
    super::text::put_lines_kept(frame.buffer_mut(), area, &[Line::from(spans)]);
}

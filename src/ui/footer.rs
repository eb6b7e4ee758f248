use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::jobs::JobStatus;
use crate::app::{Action, AppState};

/// The actions named in the footer, in order.
const FOOTER: &[(Action, &str)] = &[
    (Action::Help, "help"),
    (Action::FocusNext, "focus"),
    (Action::SyncNow, "sync"),
    (Action::Prune, "prune"),
    (Action::Refresh, "refresh"),
    (Action::Quit, "quit"),
];

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
    let mut spans = Vec::new();
    for (action, label) in FOOTER {
        if let Some(k) = state.keymap.first_key(*action) {
            spans.push(Span::styled(format!(" {k} "), key));
            spans.push(Span::raw(format!(" {label}  ")));
        }
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
    let room = (area.width as usize).saturating_sub(used + 1);
    if room > 3 && !right.is_empty() {
        let text = crate::util::ellipsize(&right, room);
        let pad = room - text.chars().count();
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(Span::styled(text, Style::new().fg(Color::Yellow)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

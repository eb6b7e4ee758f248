use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::{Action, AppState};
use crate::disk::Level;
use crate::util;

pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    let base = Style::new().bg(Color::Blue).fg(Color::White);
    let mut spans = vec![
        Span::styled(" host ", base),
        Span::styled(state.host.hostname.clone(), base.add_modifier(Modifier::BOLD)),
        Span::styled(" · tier n/a", base),
        Span::styled(format!(" · up {}", util::duration(state.uptime())), base),
    ];
    if state.demo {
        spans.push(Span::styled(" · DEMO", base.fg(Color::Yellow).add_modifier(Modifier::BOLD)));
    }
    if let Some(s) = &state.disk.sample {
        let worst = s.worst();
        if worst >= Level::Warn {
            spans.push(Span::styled(
                format!(" · disk {}", worst.as_str()),
                super::level_style(worst).add_modifier(Modifier::REVERSED),
            ));
        }
    }
    let help = state.keymap.first_key(Action::Help).map(|k| format!("{k} help ")).unwrap_or_default();
    let used: usize = spans.iter().map(|s| s.width()).sum();
    let pad = (area.width as usize).saturating_sub(used + help.chars().count());
    spans.push(Span::styled(" ".repeat(pad), base));
    spans.push(Span::styled(help, base));
    frame.render_widget(Paragraph::new(Line::from(spans)).style(base), area);
}

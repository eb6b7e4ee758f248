use super::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use crate::app::AppState;
use crate::util;

/// The help overlay, generated from the keymap so it always matches the keys in force.
/// Wide terminals get two columns; when the keys still do not fit, the list scrolls (the
/// last line says how much more there is).
pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    let rows = state.keymap.help_rows();
    let key_w = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(4).min(16);
    let text_w = rows.iter().map(|(_, a)| a.help().chars().count()).max().unwrap_or(20);
    let row_w = key_w + 2 + text_w;
    let max_w = area.width.saturating_sub(2) as usize;
    // Two columns only where both fit without cutting a description.
    let cols = if 2 * row_w + 4 + 4 <= max_w && rows.len() > 12 { 2 } else { 1 };
    let per_col = rows.len().div_ceil(cols);
    let avail = (area.height.saturating_sub(2) as usize).saturating_sub(3).max(1);
    let visible = per_col.min(avail);
    let scroll = state.help_scroll.min(per_col.saturating_sub(visible));
    let want_w = (row_w * cols + 4 * (cols - 1) + 2) as u16;
    let popup = super::centered(area, want_w.min(max_w as u16), (visible + 3) as u16);
    let block =
        Block::bordered().title(" Keys · config [keys] in opsconsole.toml ").border_style(Style::new().fg(Color::Cyan));
    let inner = block.inner(popup);
    let col_w = ((inner.width as usize).saturating_sub(4 * (cols - 1)) / cols).max(8);
    let key_style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let mut lines: Vec<Line> = Vec::new();
    for r in scroll..scroll + visible {
        let mut spans = Vec::new();
        for c in 0..cols {
            let Some((keys, action)) = rows.get(c * per_col + r) else { continue };
            let keys = util::ellipsize(keys, key_w);
            let help = util::ellipsize(action.help(), col_w.saturating_sub(key_w + 2));
            let used = key_w + 2 + help.chars().count();
            spans.push(Span::styled(format!("{keys:>key_w$}  "), key_style));
            spans.push(Span::raw(help));
            if c + 1 < cols {
                spans.push(Span::raw(" ".repeat(col_w.saturating_sub(used) + 4)));
            }
        }
        lines.push(Line::from(spans));
    }
    let below = per_col - scroll - visible;
    let footer = match (scroll, below) {
        (0, 0) => "esc or ? closes".to_string(),
        (_, 0) => format!("↑ {scroll} above (up/k) · esc or ? closes"),
        (0, b) => format!("↓ {b} more (down/j, pagedown) · esc or ? closes"),
        (a, b) => format!("↑ {a} above · ↓ {b} more · esc or ? closes"),
    };
    lines.push(Line::styled(util::ellipsize(&footer, inner.width as usize), super::dim()));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use crate::app::AppState;
use crate::util;

/// The help overlay, generated from the keymap so it always matches the keys in force.
pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    let rows = state.keymap.help_rows();
    let key_w = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(4).min(16);
    let row_w = rows.iter().map(|(_, a)| a.help().chars().count()).max().unwrap_or(20) + key_w + 3;
    let avail_h = area.height.saturating_sub(4).max(1) as usize;
    let cols = rows.len().div_ceil(avail_h).max(1);
    let per_col = rows.len().div_ceil(cols);
    let want_w = (row_w * cols + 2 * (cols - 1) + 4) as u16;
    let popup = super::centered(area, want_w.min(area.width.saturating_sub(2)), (per_col + 3) as u16);
    let block =
        Block::bordered().title(" Keys · config [keys] in opsconsole.toml ").border_style(Style::new().fg(Color::Cyan));
    let inner = block.inner(popup);
    let col_w = ((inner.width as usize).saturating_sub(2 * (cols - 1)) / cols).max(8);
    let key_style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let mut lines: Vec<Line> = Vec::new();
    for r in 0..per_col {
        let mut spans = Vec::new();
        for c in 0..cols {
            let Some((keys, action)) = rows.get(c * per_col + r) else { continue };
            let keys = util::ellipsize(keys, key_w);
            let help = util::ellipsize(action.help(), col_w.saturating_sub(key_w + 2));
            let used = key_w + 2 + help.chars().count();
            spans.push(Span::styled(format!("{keys:>key_w$}  "), key_style));
            spans.push(Span::raw(help));
            if c + 1 < cols {
                spans.push(Span::raw(" ".repeat(col_w.saturating_sub(used) + 2)));
            }
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::styled("esc or ? closes", super::dim()));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}

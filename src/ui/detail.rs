//! The detail view: a whole text the screen had to cut, wrapped in an overlay that
//! scrolls, with what it is in the title.

use super::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph};

use crate::app::detail::Detail;
use crate::app::{AppState, Overlay};
use crate::util;

/// `s` in rows of at most `cols` cells, every character kept (indentation too), broken
/// at spaces where possible (`util::wrap_cells`); the space a row breaks at is not drawn.
pub(crate) fn wrap_exact(s: &str, cols: usize) -> Vec<String> {
    util::wrap_cells(s, cols).into_iter().map(|r| r.trim_end_matches(' ').to_string()).collect()
}

/// Where the overlay goes on a screen `area`, its text rows, and how many fit.
fn geometry(d: &Detail, area: Rect) -> (Rect, Vec<String>, usize) {
    let w = area.width.saturating_sub(4).min(110);
    let cols = w.saturating_sub(2) as usize;
    let rows: Vec<String> = d.text.split('\n').flat_map(|p| wrap_exact(p, cols)).collect();
    // The text, the hint row, the border.
    let h = (rows.len() as u16 + 3).min(area.height.saturating_sub(2)).max(3.min(area.height));
    let popup = super::centered(area, w, h);
    let fit = (popup.height as usize).saturating_sub(3);
    (popup, rows, fit)
}

/// How far the open detail view scrolls on the state's terminal.
pub(super) fn max_scroll(state: &AppState) -> usize {
    let Overlay::Detail(d) = &state.overlay else { return 0 };
    let (w, h) = state.size;
    let (_, rows, fit) = geometry(d, Rect { x: 0, y: 0, width: w, height: h });
    rows.len().saturating_sub(fit)
}

pub fn render(d: &Detail, frame: &mut Frame, area: Rect) {
    let (popup, rows, fit) = geometry(d, area);
    let cols = popup.width.saturating_sub(2) as usize;
    let scroll = d.scroll.min(rows.len().saturating_sub(fit));
    let mut lines: Vec<Line> = rows.iter().skip(scroll).take(fit).map(|r| Line::raw(r.clone())).collect();
    while lines.len() < fit {
        lines.push(Line::raw(""));
    }
    let hint = if rows.len() > fit {
        format!(
            "rows {}–{} of {} · ↑/↓ pgup/pgdn scroll · esc, enter or q close",
            scroll + 1,
            (scroll + fit).min(rows.len()),
            rows.len()
        )
    } else {
        "esc, enter or q close".to_string()
    };
    lines.push(Line::styled(util::ellipsize(&hint, cols), super::dim()));
    let title = util::ellipsize(&d.title, cols.saturating_sub(2));
    let block = Block::bordered().title(format!(" {title} ")).border_style(Style::new().fg(Color::Cyan));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_spaces_and_keeps_every_character() {
        assert_eq!(wrap_exact("", 10), [""]);
        assert_eq!(wrap_exact("CUDA out of memory. Tried", 12), ["CUDA out of", "memory.", "Tried"]);
        // A word longer than the row is cut across rows, nothing lost.
        let v = "'learning_rate': 2.6999999999999995e-4";
        let rows = wrap_exact(v, 10);
        assert!(rows.iter().all(|r| unicode_width::UnicodeWidthStr::width(r.as_str()) <= 10), "{rows:?}");
        assert_eq!(rows.concat().replace(' ', ""), v.replace(' ', ""));
        // Indentation stays (a traceback frame).
        assert_eq!(wrap_exact("  File x", 20), ["  File x"]);
        // Wide characters are never split.
        let rows = wrap_exact("実験データ重み", 5);
        assert_eq!(rows, ["実験", "デー", "タ重", "み"]);
    }
}

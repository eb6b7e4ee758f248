//! A panel's border and titles drawn straight into the buffer. `Block::render` first
//! patches its style over every cell of its area (a no-op for the panels' default style,
//! but ~10 instructions a cell: 8% of a console's instructions beside a run, measured
//! with callgrind), then draws what `PanelBorder` draws here. The titles still go through
//! `Line::render`, as the block renders them.

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Style;
use ratatui::symbols::border;
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Widget};

/// A bordered panel: `Block::bordered()` with a border type and style, titles on the top
/// and bottom rows (left- or right-aligned), and one style patched under every title.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelBorder {
    border_type: BorderType,
    border_style: Style,
    titles_style: Style,
    /// (on the bottom row, the line): in the order given.
    titles: Vec<(bool, Line<'static>)>,
}

impl PanelBorder {
    pub fn new(border_type: BorderType, border_style: Style, titles_style: Style) -> Self {
        Self { border_type, border_style, titles_style, titles: Vec::new() }
    }

    /// A title on the top row.
    pub fn title(mut self, title: impl Into<Line<'static>>) -> Self {
        self.titles.push((false, title.into()));
        self
    }

    /// A title on the bottom row.
    pub fn title_bottom(mut self, title: impl Into<Line<'static>>) -> Self {
        self.titles.push((true, title.into()));
        self
    }

    /// What is left inside the border.
    pub fn inner(&self, area: Rect) -> Rect {
        Block::bordered().inner(area)
    }

    /// The same border as a `Block`, for a `Paragraph` that wraps (the rare screens).
    pub fn to_block(&self) -> Block<'static> {
        let mut block = Block::bordered()
            .border_type(self.border_type)
            .border_style(self.border_style)
            .title_style(self.titles_style);
        for (bottom, line) in &self.titles {
            block = if *bottom { block.title_bottom(line.clone()) } else { block.title(line.clone()) };
        }
        block
    }

    /// Draws what `Widget::render(&self.to_block(), area, buf)` draws.
    pub fn render(&self, area: Rect, buf: &mut Buffer) {
        let area = area.intersection(buf.area);
        if area.is_empty() || !super::drawn::border(area, self) {
            return;
        }
        let set: border::Set = self.border_type.to_border_set();
        let (left, top) = (area.left(), area.top());
        let (right, bottom) = (area.right() - 1, area.bottom() - 1);
        // Each row's cells through one slice (`buf[(x, y)]` works every cell's place out
        // again, with its checks).
        for y in top..=bottom {
            let row = super::text::row_mut(buf, left, y, area.width);
            row[0].set_symbol(set.vertical_left).set_style(self.border_style);
            row[row.len() - 1].set_symbol(set.vertical_right).set_style(self.border_style);
        }
        for (y, symbol) in [(top, set.horizontal_top), (bottom, set.horizontal_bottom)] {
            for cell in super::text::row_mut(buf, left, y, area.width) {
                cell.set_symbol(symbol).set_style(self.border_style);
            }
        }
        for (x, y, symbol) in [
            (right, bottom, set.bottom_right),
            (right, top, set.top_right),
            (left, bottom, set.bottom_left),
            (left, top, set.top_left),
        ] {
            buf[(x, y)].set_symbol(symbol).set_style(self.border_style);
        }
        for bottom_row in [false, true] {
            // The titles' row between the corners; left-aligned titles first, then the
            // right-aligned ones from the right edge, as the block orders them.
            let row = Rect {
                x: left.saturating_add(1),
                y: if bottom_row { bottom } else { top },
                width: area.width.saturating_sub(2),
                height: 1,
            };
            let mut room = row;
            for line in self.row_titles(bottom_row, false) {
                if room.is_empty() {
                    break;
                }
                let width = line_width(line);
                let title_area = Rect { width: width.min(room.width), ..room };
                buf.set_style(title_area, self.titles_style);
                line.render(title_area, buf);
                let advance = width.saturating_add(1);
                room.x = room.x.saturating_add(advance);
                room.width = room.width.saturating_sub(advance);
            }
            let mut room = row;
            for line in self.row_titles(bottom_row, true).rev() {
                if room.is_empty() {
                    break;
                }
                let width = line_width(line);
                let title_area = Rect {
                    x: room.right().saturating_sub(width).max(room.left()),
                    width: width.min(room.width),
                    ..room
                };
                buf.set_style(title_area, self.titles_style);
                line.render(title_area, buf);
                room.width = room.width.saturating_sub(width).saturating_sub(1);
            }
        }
    }

    fn row_titles(&self, bottom_row: bool, right: bool) -> impl DoubleEndedIterator<Item = &Line<'static>> {
        self.titles.iter().filter(move |(b, _)| *b == bottom_row).map(|(_, l)| l).filter(move |l| {
            debug_assert!(l.alignment != Some(Alignment::Center), "centred titles are not drawn");
            (l.alignment == Some(Alignment::Right)) == right
        })
    }
}

fn line_width(line: &Line) -> u16 {
    line.width().min(u16::MAX as usize) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::{Color, Modifier};
    use ratatui::text::Span;

    fn both(border: &PanelBorder, area: Rect, whole: Rect) -> (Buffer, Buffer) {
        let mut by_block = Buffer::empty(whole);
        border.to_block().render(area, &mut by_block);
        let mut by_border = Buffer::empty(whole);
        border.render(area, &mut by_border);
        (by_block, by_border)
    }

    fn panels() -> Vec<PanelBorder> {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let focused = PanelBorder::new(BorderType::Thick, Style::new().fg(Color::Cyan), bold);
        let plain = PanelBorder::new(BorderType::Plain, Style::new().fg(Color::DarkGray), bold);
        vec![
            plain.clone(),
            focused.clone().title(" GPU · 1 · by VRAM "),
            plain.clone().title(" Log · experiments/v1/logs/train.log · following "),
            focused
                .clone()
                .title(" Log ")
                .title_bottom(Line::from(vec![
                    Span::raw(" /eval_loss · "),
                    Span::styled("match 2/5", Style::new().fg(Color::Yellow)),
                ]))
                .title_bottom(Line::from(" ← 12 cols · wrap ").right_aligned()),
            plain
                .title(" 日本語 ")
                .title_bottom(Line::from("a very long right title that will not fit").right_aligned()),
        ]
    }

    /// Every panel's border, at sizes from nothing to wide, in a bigger buffer and at its
    /// edge, the same cell for cell (styles included) as the block draws it.
    #[test]
    fn a_panel_border_draws_what_its_block_draws() {
        let whole = Rect::new(0, 0, 60, 12);
        for border in panels() {
            for (w, h) in [(0, 0), (1, 1), (2, 2), (3, 3), (5, 2), (12, 4), (40, 6), (60, 12)] {
                for (x, y) in [(0, 0), (60 - w.min(60), 12 - h.min(12))] {
                    let area = Rect::new(x, y, w, h);
                    let (a, b) = both(&border, area, whole);
                    assert_eq!(a, b, "{w}x{h} at {x},{y}: {border:?}");
                }
            }
            // An area running past the buffer is cut to it, as the block cuts it.
            let (a, b) = both(&border, Rect::new(50, 8, 30, 10), whole);
            assert_eq!(a, b);
            assert_eq!(border.inner(Rect::new(3, 2, 20, 6)), border.to_block().inner(Rect::new(3, 2, 20, 6)));
        }
    }
}

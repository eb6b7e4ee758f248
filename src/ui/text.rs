//! Text into the frame's buffer without `Paragraph`'s per-cell machinery, for the text
//! every frame draws (the log's rows, the panels' lines, the header and footer).

use std::cell::RefCell;

use ratatui::buffer::{Buffer, Cell, CellWidth};
use ratatui::layout::{Alignment, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget, Wrap};

use super::border::PanelBorder;

/// Writes `lines` into `area`, one row each, cut at its width: what
/// `Paragraph::new(lines)` draws there (each grapheme of nonzero width in its line's style
/// patched with its span's; one wider than the area left out, one that does not fit in
/// what is left of the row ending it), with a short way
/// for the printable ASCII most log lines are, which are one cell per byte. The log's
/// rows are most of the cells of a frame, and the paragraph's way (graphemes, widths and
/// styles per cell, through iterator adapters) was a third of a frame's cost, and the other
/// panels' text a quarter of what was left (docs/performance.md). A line aligned other than
/// left goes through the paragraph.
pub fn put_lines(buf: &mut Buffer, area: Rect, lines: &[Line]) {
    if lines.iter().any(|l| l.alignment.is_some_and(|a| a != Alignment::Left)) {
        Paragraph::new(lines.to_vec()).render(area, buf);
        return;
    }
    // Cells are found through each row's slice: `buf[(x, y)]` checks and works out every
    // cell's place again (a tenth of a frame's cost when every cell went through it).
    let area = area.intersection(buf.area);
    for (row, line) in lines.iter().take(area.height as usize).enumerate() {
        let y = area.y + row as u16;
        let cells = row_mut(buf, area.x, y, area.width);
        let mut x: u16 = 0;
        'row: for span in &line.spans {
            let text: &str = &span.content;
            if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                let style = line.style.patch(span.style);
                for b in text.bytes() {
                    if x >= area.width {
                        break 'row;
                    }
                    cells[x as usize].set_char(char::from(b)).set_style(style);
                    x += 1;
                }
                continue;
            }
            for g in span.styled_graphemes(line.style) {
                let w = g.symbol.cell_width();
                if w > area.width {
                    continue;
                }
                if x.saturating_add(w) > area.width {
                    break 'row;
                }
                if w == 0 {
                    continue;
                }
                cells[x as usize].set_symbol(g.symbol).set_style(g.style);
                x += w;
            }
        }
    }
}

/// The text [`put_wrapped`] drew last: where, what, and the cells of the rows it drew.
struct Wrapped {
    area: Rect,
    lines: Vec<Line<'static>>,
    /// The area's rows down to the last one the text reached, row after row.
    cells: Vec<Cell>,
}

thread_local! {
    static WRAPPED: RefCell<Option<Wrapped>> = const { RefCell::new(None) };
}

/// `Paragraph::new(lines).wrap(Wrap { trim: true })` drawn on `area`, which must be blank
/// (as a frame's buffer is before anything is drawn there). The cells it drew are kept, and
/// the same lines on the same area are copied from them next time instead of wrapped again:
/// a machine without a GPU shows why on every frame, and wrapping that text was a fifteenth
/// of a frame's cost (docs/performance.md, "The frame diff").
pub fn put_wrapped(buf: &mut Buffer, area: Rect, lines: &[Line<'static>]) {
    let area = area.intersection(buf.area);
    if area.is_empty() {
        return;
    }
    WRAPPED.with_borrow_mut(|kept| {
        if let Some(k) = kept.as_ref().filter(|k| k.area == area && k.lines == lines) {
            put_cells(buf, area, &k.cells);
            return;
        }
        Paragraph::new(lines.to_vec()).wrap(Wrap { trim: true }).render(area, buf);
        let reached = (0..area.height)
            .rev()
            .find(|&r| row_mut(buf, area.x, area.y + r, area.width).iter().any(|c| *c != Cell::EMPTY))
            .map_or(0, |r| r + 1);
        let cells = cells_of(buf, Rect { height: reached, ..area });
        *kept = Some(Wrapped { area, lines: lines.to_vec(), cells });
    });
}

/// The cells of `area` (within `buf`'s area), row after row: what drew there, to put back
/// with [`put_cells`] when the same thing is drawn there again.
pub(super) fn cells_of(buf: &mut Buffer, area: Rect) -> Vec<Cell> {
    let mut cells = Vec::with_capacity(area.area() as usize);
    for y in area.y..area.bottom() {
        cells.extend_from_slice(row_mut(buf, area.x, y, area.width));
    }
    cells
}

/// Puts back on `area`, from its first row down, the cells [`cells_of`] took there.
pub(super) fn put_cells(buf: &mut Buffer, area: Rect, cells: &[Cell]) {
    for (r, row) in cells.chunks(area.width as usize).enumerate() {
        row_mut(buf, area.x, area.y + r as u16, area.width).clone_from_slice(row);
    }
}

/// The `width` cells of row `y` from column `x` on, which must lie within `buf`'s area.
pub(super) fn row_mut(buf: &mut Buffer, x: u16, y: u16, width: u16) -> &mut [Cell] {
    let start = buf.index_of(x, y);
    &mut buf.content[start..start + width as usize]
}

/// `Paragraph::new(lines).block(border.to_block())` drawn the short way: the border, then
/// the lines in what it leaves inside.
pub fn put_block_lines(buf: &mut Buffer, area: Rect, block: &PanelBorder, lines: &[Line]) {
    block.render(area, buf);
    let inner = block.inner(area);
    put_lines_kept(buf, inner, lines);
    // The rows below the lines are blank, and recorded so: nothing else draws inside a
    // panel drawn this way.
    if super::drawn::active() {
        let inner = inner.intersection(buf.area);
        let first = inner.y.saturating_add(u16::try_from(lines.len()).unwrap_or(u16::MAX).min(inner.height));
        for y in first..inner.bottom() {
            super::drawn::row(Rect { y, height: 1, ..inner }, &Line::default());
        }
    }
}

/// [`put_lines`], each row kept as the terminal shows it when it is the line drawn there
/// last (`super::drawn`; in a frame drawn in parts).
pub fn put_lines_kept(buf: &mut Buffer, area: Rect, lines: &[Line]) {
    if !super::drawn::active() {
        return put_lines(buf, area, lines);
    }
    let area = area.intersection(buf.area);
    for (i, line) in lines.iter().take(area.height as usize).enumerate() {
        let row = Rect { y: area.y + i as u16, height: 1, ..area };
        if super::drawn::row(row, line) {
            put_lines(buf, row, std::slice::from_ref(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::{Color, Modifier, Style};
    use ratatui::text::Span;
    use ratatui::widgets::BorderType;

    /// Both ways into buffers of the same size.
    fn both(lines: &[Line<'static>], width: u16, height: u16) -> (Buffer, Buffer) {
        let area = Rect::new(1, 1, width, height);
        let whole = Rect::new(0, 0, width + 2, height + 2);
        let mut by_paragraph = Buffer::empty(whole);
        Paragraph::new(lines.to_vec()).render(area, &mut by_paragraph);
        let mut by_put = Buffer::empty(whole);
        put_lines(&mut by_put, area, lines);
        (by_paragraph, by_put)
    }

    #[test]
    fn put_lines_draws_what_a_paragraph_draws() {
        let red = Style::new().fg(Color::Red);
        let lines = vec![
            Line::from(vec![Span::raw("step 10 | loss "), Span::styled("2.31", red)]),
            Line::from("日本語のログ行 and ascii after"),
            Line::from("a line longer than the area is wide, cut at its edge"),
            Line::from(vec![Span::raw("e\u{301}mojis 👍🏽 here"), Span::styled(" tail", red)])
                .patch_style(Style::new().add_modifier(Modifier::REVERSED)),
            Line::from("zero\u{200b}width and 表 at the edge: 12345678901表"),
        ];
        for width in [1, 5, 20, 33, 80] {
            let (a, b) = both(&lines, width, 4);
            assert_eq!(a, b, "width {width}");
        }
    }

    /// A right-aligned or centred line is drawn as the paragraph draws it.
    #[test]
    fn aligned_lines_go_through_the_paragraph() {
        let lines = vec![Line::from("left"), Line::from("right").right_aligned(), Line::from("mid").centered()];
        let (a, b) = both(&lines, 12, 3);
        assert_eq!(a, b);
        assert_eq!(b[(12, 2)].symbol(), "t", "right-aligned ends at the edge");
    }

    /// The block, then the lines inside it, as `Paragraph::block` draws them.
    #[test]
    fn put_block_lines_draws_what_a_paragraph_with_its_block_draws() {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let block = PanelBorder::new(BorderType::Thick, Style::new().fg(Color::Cyan), bold).title(" Disk ");
        let lines = vec![
            Line::from(vec![Span::raw("/ 71% "), Span::styled("████░░", Style::new().fg(Color::Green))]),
            Line::from("a row longer than the inside of the block is wide"),
        ];
        for (w, h) in [(30, 5), (8, 3), (2, 2)] {
            let area = Rect::new(0, 0, w, h);
            let mut by_paragraph = Buffer::empty(area);
            Paragraph::new(lines.clone()).block(block.to_block()).render(area, &mut by_paragraph);
            let mut by_put = Buffer::empty(area);
            put_block_lines(&mut by_put, area, &block, &lines);
            assert_eq!(by_paragraph, by_put, "{w}x{h}");
        }
    }

    /// The header's way: the area in a base style, then the line patched over it, as
    /// `Paragraph::style` draws it.
    #[test]
    fn a_base_style_then_put_lines_is_a_styled_paragraph() {
        let base = Style::new().fg(Color::White).bg(Color::DarkGray);
        let line = Line::from(vec![
            Span::raw(" host vm "),
            Span::styled("tier1", Style::new().fg(Color::Green)),
            Span::raw(" ·"),
        ]);
        let area = Rect::new(0, 0, 30, 1);
        let mut by_paragraph = Buffer::empty(area);
        Paragraph::new(line.clone()).style(base).render(area, &mut by_paragraph);
        let mut by_put = Buffer::empty(area);
        by_put.set_style(area, base);
        put_lines(&mut by_put, area, &[line]);
        assert_eq!(by_paragraph, by_put);
        assert_eq!(by_put[(10, 0)].fg, Color::Green);
        assert_eq!(by_put[(10, 0)].bg, Color::DarkGray);
    }

    proptest::proptest! {
        #[test]
        fn put_lines_agrees_with_a_paragraph_on_any_text(
            rows in proptest::collection::vec(
                proptest::collection::vec(("[ -~]{0,12}|[a-zé日本語👍\u{301}\u{200b} ]{0,8}", 0u8..3), 0..4),
                0..6,
            ),
            width in 1u16..40,
            height in 1u16..6,
        ) {
            let styles = [Style::new(), Style::new().fg(Color::Yellow), Style::new().add_modifier(Modifier::BOLD)];
            let lines: Vec<Line<'static>> = rows
                .into_iter()
                .map(|spans| Line::from(spans.into_iter().map(|(t, s)| Span::styled(t, styles[s as usize])).collect::<Vec<_>>()))
                .collect();
            let (a, b) = both(&lines, width, height);
            proptest::prop_assert_eq!(a, b);
        }
    }
}

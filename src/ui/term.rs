//! The console's terminal backend: crossterm's, with a frame's cells written the short way.
//!
//! `CrosstermBackend::draw` writes every cell's symbol as a crossterm `Print` command,
//! which goes through the formatting machinery and an adapter from `fmt::Write` to
//! `io::Write` for one to four bytes; beside a run that was a seventh of everything a
//! console did (callgrind, docs/performance.md "Frames drawn in parts"). [`write_cells`]
//! writes the same bytes, the symbol's as they are: cursor moves, colours and attributes
//! are still crossterm's commands, in the same order and on the same changes (a property
//! test holds it to `CrosstermBackend`'s output).

use std::io::{self, Write};

use ratatui::backend::{Backend, ClearType, CrosstermBackend, IntoCrossterm, WindowSize};
use ratatui::buffer::Cell;
use ratatui::crossterm::cursor::MoveTo;
use ratatui::crossterm::queue;
use ratatui::crossterm::style::{
    Attribute, Color as Ansi, Colors, SetAttribute, SetBackgroundColor, SetColors, SetForegroundColor,
    SetUnderlineColor,
};
use ratatui::layout::{Position, Size};
use ratatui::style::{Color, Modifier};

/// Crossterm's backend on `W`, drawing with [`write_cells`].
pub struct Term<W: Write>(CrosstermBackend<W>);

impl<W: Write> Term<W> {
    pub fn new(writer: W) -> Self {
        Self(CrosstermBackend::new(writer))
    }
}

impl<W: Write> super::super::tui::Bell for Term<W> {
    fn bell(&mut self) -> io::Result<()> {
        self.0.bell()
    }
}

impl<W: Write> Backend for Term<W> {
    type Error = io::Error;

    fn draw<'a, I: Iterator<Item = (u16, u16, &'a Cell)>>(&mut self, content: I) -> io::Result<()> {
        // The backend writes what it is given to its writer as it is.
        write_cells(&mut self.0, content)
    }
    fn hide_cursor(&mut self) -> io::Result<()> {
        self.0.hide_cursor()
    }
    fn show_cursor(&mut self) -> io::Result<()> {
        self.0.show_cursor()
    }
    fn get_cursor_position(&mut self) -> io::Result<Position> {
        self.0.get_cursor_position()
    }
    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        self.0.set_cursor_position(position)
    }
    fn clear(&mut self) -> io::Result<()> {
        self.0.clear()
    }
    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        self.0.clear_region(clear_type)
    }
    /// The terminal's size, read from the output's descriptor: one `ioctl` a frame
    /// (crossterm's `size` opens `/dev/tty`, asks, and closes it again: three system calls
    /// and a path lookup at every frame). Where the output is not a terminal, crossterm's.
    fn size(&self) -> io::Result<Size> {
        match rustix::termios::tcgetwinsize(std::io::stdout()) {
            Ok(ws) if ws.ws_col > 0 && ws.ws_row > 0 => Ok(Size::new(ws.ws_col, ws.ws_row)),
            _ => self.0.size(),
        }
    }
    fn window_size(&mut self) -> io::Result<WindowSize> {
        self.0.window_size()
    }
    fn flush(&mut self) -> io::Result<()> {
        Backend::flush(&mut self.0)
    }
}

/// Writes `content`'s cells to `w` as `CrosstermBackend::draw` does: the cursor moved where
/// a cell does not follow the one before on its row, attributes and colours set where they
/// change, the symbol, and everything reset at the end.
pub fn write_cells<'a>(w: &mut impl Write, content: impl Iterator<Item = (u16, u16, &'a Cell)>) -> io::Result<()> {
    let (mut fg, mut bg, mut underline) = (Color::Reset, Color::Reset, Color::Reset);
    let mut modifier = Modifier::empty();
    let mut last: Option<(u16, u16)> = None;
    for (x, y, cell) in content {
        if !matches!(last, Some((lx, ly)) if x == lx + 1 && y == ly) {
            queue!(w, MoveTo(x, y))?;
        }
        last = Some((x, y));
        if cell.modifier != modifier {
            attributes(w, modifier, cell.modifier)?;
            modifier = cell.modifier;
        }
        if cell.fg != fg || cell.bg != bg {
            queue!(w, SetColors(Colors::new(cell.fg.into_crossterm(), cell.bg.into_crossterm())))?;
            (fg, bg) = (cell.fg, cell.bg);
        }
        if cell.underline_color != underline {
            queue!(w, SetUnderlineColor(cell.underline_color.into_crossterm()))?;
            underline = cell.underline_color;
        }
        w.write_all(cell.symbol().as_bytes())?;
    }
    queue!(
        w,
        SetForegroundColor(Ansi::Reset),
        SetBackgroundColor(Ansi::Reset),
        SetUnderlineColor(Ansi::Reset),
        SetAttribute(Attribute::Reset),
    )
}

fn set(w: &mut impl Write, a: Attribute) -> io::Result<()> {
    queue!(w, SetAttribute(a))
}

/// The attributes to go from `from` to `to`: those removed turned off (bold and dim
/// together, by the normal intensity, then set again if one stays), then those added.
fn attributes(w: &mut impl Write, from: Modifier, to: Modifier) -> io::Result<()> {
    let removed = from - to;
    if removed.contains(Modifier::REVERSED) {
        set(w, Attribute::NoReverse)?;
    }
    let intensity = removed.intersects(Modifier::BOLD | Modifier::DIM);
    if intensity {
        set(w, Attribute::NormalIntensity)?;
        if to.contains(Modifier::DIM) {
            set(w, Attribute::Dim)?;
        }
        if to.contains(Modifier::BOLD) {
            set(w, Attribute::Bold)?;
        }
    }
    for (m, off) in [
        (Modifier::ITALIC, Attribute::NoItalic),
        (Modifier::UNDERLINED, Attribute::NoUnderline),
        (Modifier::CROSSED_OUT, Attribute::NotCrossedOut),
        (Modifier::HIDDEN, Attribute::NoHidden),
    ] {
        if removed.contains(m) {
            set(w, off)?;
        }
    }
    if removed.intersects(Modifier::SLOW_BLINK | Modifier::RAPID_BLINK) {
        set(w, Attribute::NoBlink)?;
    }
    let added = to - from;
    for (m, on) in [
        (Modifier::REVERSED, Attribute::Reverse),
        (Modifier::BOLD, Attribute::Bold),
        (Modifier::ITALIC, Attribute::Italic),
        (Modifier::UNDERLINED, Attribute::Underlined),
        (Modifier::DIM, Attribute::Dim),
        (Modifier::CROSSED_OUT, Attribute::CrossedOut),
        (Modifier::HIDDEN, Attribute::Hidden),
        (Modifier::SLOW_BLINK, Attribute::SlowBlink),
        (Modifier::RAPID_BLINK, Attribute::RapidBlink),
    ] {
        // Bold and dim added are set with the intensity above when it was reset.
        if added.contains(m) && !(intensity && (m == Modifier::BOLD || m == Modifier::DIM)) {
            set(w, on)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SYMBOLS: &[&str] = &["a", " ", "é", "世", "👍", "─", "⣿", "ab"];
    const COLORS: &[Color] =
        &[Color::Reset, Color::Red, Color::DarkGray, Color::Rgb(1, 2, 3), Color::Indexed(7), Color::LightYellow];

    fn arb_cell() -> impl Strategy<Value = Cell> {
        (0..SYMBOLS.len(), 0..COLORS.len(), 0..COLORS.len(), prop::sample::select(vec![0usize, 0, 0, 2]), 0u16..0x200)
            .prop_map(|(s, fg, bg, ul, m)| {
                let mut c = Cell::EMPTY;
                c.set_symbol(SYMBOLS[s]);
                c.fg = COLORS[fg];
                c.bg = COLORS[bg];
                c.underline_color = COLORS[ul];
                c.modifier = Modifier::from_bits_truncate(m);
                c
            })
    }

    /// A writer whose bytes the test reads after the backend wrote them.
    #[derive(Clone, Default)]
    struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// The bytes crossterm's own backend writes for the same cells, moves and styles.
        #[test]
        fn the_bytes_are_crosstermbackends(cells in prop::collection::vec((0u16..6, 0u16..3, arb_cell()), 0..40)) {
            let mut cells = cells;
            cells.sort_by_key(|(x, y, _)| (*y, *x));
            let theirs = Shared::default();
            CrosstermBackend::new(theirs.clone()).draw(cells.iter().map(|(x, y, c)| (*x, *y, c))).expect("draw");
            let theirs = theirs.0.borrow().clone();
            let mut ours = Vec::new();
            write_cells(&mut ours, cells.iter().map(|(x, y, c)| (*x, *y, c))).expect("draw");
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }
}

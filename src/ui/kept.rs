//! Parts of a frame kept from the frame before. A frame is drawn whole (ratatui starts
//! each from blank cells), and a console beside a training run draws one a second because
//! the trainer's progress bar moves; most of the screen is the same as the second before.
//! Two parts cost more to draw than the rest of their panels together: the loss chart
//! (points to braille dots, axes, labels) and the wrapped text of the GPU panel on a
//! machine without a driver. [`draw_kept`] draws such a part once and, while its inputs
//! (a hash of everything the drawing reads) and the cells under it are unchanged, puts
//! back the cells that drawing made instead of drawing again.
//!
//! Only for drawing that reads nothing but what its key covers: no clock (an age or a
//! countdown must record its next change, `ui::clock`, on every frame) and no state not
//! hashed into the key; and that writes only inside its area.

use std::cell::RefCell;
use std::hash::{DefaultHasher, Hash, Hasher};

use ratatui::buffer::{Buffer, Cell};
use ratatui::layout::Rect;

/// What one part looked like the last time it was drawn.
struct Kept {
    name: &'static str,
    key: u64,
    area: Rect,
    /// The cells under the area before drawing; `None`: all blank (the usual case, kept
    /// without a copy).
    before: Option<Vec<Cell>>,
    /// The cells drawing left there.
    after: Vec<Cell>,
}

thread_local! {
    static KEPT: RefCell<Vec<Kept>> = const { RefCell::new(Vec::new()) };
}

/// A key for [`draw_kept`]: a hash of everything the drawing reads.
pub(super) fn key(parts: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// Draws `area` of `buf` with `draw`, or puts back what `draw` drew there the last time
/// the part `name` was drawn, if that was with the same `key`, the same area and the same
/// cells under it. See the module's doc for what `draw` may read.
pub(super) fn draw_kept(buf: &mut Buffer, area: Rect, name: &'static str, key: u64, draw: impl FnOnce(&mut Buffer)) {
    let area = area.intersection(buf.area);
    if area.is_empty() {
        draw(buf);
        return;
    }
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        if let Some(k) = kept.iter().find(|k| k.name == name && k.key == key && k.area == area)
            && same_under(buf, area, k.before.as_deref())
        {
            put(buf, area, &k.after);
            return;
        }
        let before = cells(buf, area);
        let before = (!before.iter().all(|c| *c == Cell::EMPTY)).then_some(before);
        draw(buf);
        let after = cells(buf, area);
        kept.retain(|k| k.name != name);
        kept.push(Kept { name, key, area, before, after });
    });
}

/// The rows of `area` in `buf`, one after the other.
fn rows(buf: &Buffer, area: Rect) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    (area.top()..area.bottom()).map(move |y| {
        let start = buf.index_of(area.left(), y);
        start..start + usize::from(area.width)
    })
}

fn cells(buf: &Buffer, area: Rect) -> Vec<Cell> {
    rows(buf, area).flat_map(|r| buf.content[r].iter().cloned()).collect()
}

/// Are the cells under `area` those kept (`None`: all blank)?
fn same_under(buf: &Buffer, area: Rect, before: Option<&[Cell]>) -> bool {
    let width = usize::from(area.width);
    rows(buf, area).enumerate().all(|(i, r)| match before {
        None => buf.content[r].iter().all(|c| *c == Cell::EMPTY),
        Some(b) => buf.content[r] == b[i * width..(i + 1) * width],
    })
}

fn put(buf: &mut Buffer, area: Rect, after: &[Cell]) {
    let width = usize::from(area.width);
    let all: Vec<std::ops::Range<usize>> = rows(buf, area).collect();
    for (i, r) in all.into_iter().enumerate() {
        buf.content[r].clone_from_slice(&after[i * width..(i + 1) * width]);
    }
}

#[cfg(test)]
mod tests {
    use ratatui::style::{Color, Style};
    use ratatui::widgets::{Paragraph, Widget, Wrap};

    use super::*;

    fn text(s: &str) -> Paragraph<'_> {
        Paragraph::new(s).wrap(Wrap { trim: true }).style(Style::new().fg(Color::Yellow))
    }

    /// Drawn through the keeper, every frame has the cells a plain drawing makes; the
    /// drawing runs again only when the key, the area or the cells under it change.
    #[test]
    fn kept_cells_are_those_a_drawing_makes_and_drawing_runs_only_on_a_change() {
        let full = Rect::new(0, 0, 30, 8);
        let mut draws = 0;
        let mut frame = |s: &str, area: Rect, under: Option<Color>| {
            let mut kept = Buffer::empty(full);
            let mut plain = Buffer::empty(full);
            if let Some(c) = under {
                kept.set_style(full, Style::new().bg(c));
                plain.set_style(full, Style::new().bg(c));
            }
            draw_kept(&mut kept, area, "test", key(s), |b| {
                draws += 1;
                text(s).render(area, b);
            });
            text(s).render(area, &mut plain);
            assert_eq!(kept, plain, "{s:?} at {area:?}");
        };
        let area = Rect::new(2, 1, 20, 5);
        frame("NVML could not be loaded: libnvidia-ml.so.1 is missing", area, None);
        frame("NVML could not be loaded: libnvidia-ml.so.1 is missing", area, None);
        frame("NVML could not be loaded: libnvidia-ml.so.1 is missing", area, None);
        // The text changes, then the area, then what lies under it.
        frame("cpu 12% · ram 3.1 GB", area, None);
        frame("cpu 12% · ram 3.1 GB", Rect::new(2, 1, 18, 5), None);
        frame("cpu 12% · ram 3.1 GB", Rect::new(2, 1, 18, 5), Some(Color::Blue));
        frame("cpu 12% · ram 3.1 GB", Rect::new(2, 1, 18, 5), Some(Color::Blue));
        assert_eq!(draws, 4, "drawn at the first frame and at each of the three changes");
    }

    /// Parts are kept apart by name, and an area partly outside the buffer is clipped.
    #[test]
    fn parts_are_kept_by_name_and_clipped_to_the_buffer() {
        let full = Rect::new(0, 0, 10, 4);
        let mut buf = Buffer::empty(full);
        draw_kept(&mut buf, Rect::new(0, 0, 10, 1), "a", key("a"), |b| {
            Paragraph::new("aaaa").render(Rect::new(0, 0, 10, 1), b)
        });
        draw_kept(&mut buf, Rect::new(0, 2, 10, 9), "b", key("b"), |b| {
            Paragraph::new("bbbb").render(Rect::new(0, 2, 10, 2), b)
        });
        let mut again = Buffer::empty(full);
        let mut ran = false;
        draw_kept(&mut again, Rect::new(0, 0, 10, 1), "a", key("a"), |_| ran = true);
        draw_kept(&mut again, Rect::new(0, 2, 10, 9), "b", key("b"), |_| ran = true);
        assert!(!ran, "both kept");
        assert_eq!(again, buf);
    }
}

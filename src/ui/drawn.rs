//! What the panels drew where, from frame to frame. A row of text ([`row`], through
//! `text::put_lines_kept`) or a panel's border ([`border`]) drawn the same on the same
//! cells as the terminal shows it is kept as shown in a frame drawn in parts
//! ([`super::screen::keep`]): neither drawn nor compared again. Beside a run a frame draws
//! the panels in which something changed, and in them a few rows changed (the progress
//! bar, the values, an age); the rest of those panels, their borders, the header and the
//! footer are as they were.
//!
//! A record stands for what the terminal shows only while nothing else can have drawn
//! there. The screen brackets each frame with [`begin`] and [`end`] (outside, as in the
//! debug builds' second, whole drawing of a frame, nothing is recorded or kept); at the
//! end, the records inside what the frame drew that it did not draw again are dropped
//! (the panel drew something else there), and a frame that drew something over the panels
//! (an overlay, a job's screen) drops every record ([`forget`]).

use std::collections::HashMap;

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::border::PanelBorder;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Row(Rect),
    Border(Rect),
}

impl Key {
    fn area(self) -> Rect {
        match self {
            Key::Row(r) | Key::Border(r) => r,
        }
    }
}

enum What {
    Row(Line<'static>),
    Border(PanelBorder),
}

#[derive(Default)]
struct Drawn {
    /// The frame being drawn: its number, and the parts it draws (`None`: all of it).
    frame: Option<(u64, Option<Vec<Rect>>)>,
    frames: u64,
    /// What is on screen where, and the last frame that drew it.
    shown: HashMap<Key, (u64, What)>,
}

thread_local! {
    static DRAWN: std::cell::RefCell<Drawn> = std::cell::RefCell::new(Drawn::default());
}

/// A frame starts: the whole screen (`None`) or only `parts` will be drawn.
pub(super) fn begin(parts: Option<&[Rect]>) {
    DRAWN.with_borrow_mut(|d| {
        d.frames += 1;
        d.frame = Some((d.frames, parts.map(<[Rect]>::to_vec)));
    });
}

/// The frame is drawn: records of what it drew over and did not draw again are dropped.
pub(super) fn end() {
    DRAWN.with_borrow_mut(|d| {
        let Some((n, parts)) = d.frame.take() else { return };
        match parts {
            None => d.shown.retain(|_, (at, _)| *at == n),
            Some(parts) => d.shown.retain(|k, (at, _)| *at == n || !parts.iter().any(|p| p.intersects(k.area()))),
        }
    });
}

/// Something is drawn over the panels in this frame: nothing recorded says what the
/// terminal shows any more.
pub(super) fn forget() {
    DRAWN.with_borrow_mut(|d| {
        if d.frame.is_some() {
            d.shown.clear();
        }
    });
}

/// Whether a frame is being drawn (records are taken and used).
pub(super) fn active() -> bool {
    DRAWN.with_borrow(|d| d.frame.is_some())
}

/// `line` is to be drawn on the one-row `area`: whether it must be (`false`: the terminal
/// shows it there already, and the row is kept).
pub(super) fn row(area: Rect, line: &Line<'_>) -> bool {
    DRAWN.with_borrow_mut(|d| {
        let Some((n, _)) = d.frame else { return true };
        let key = Key::Row(area);
        if let Some((at, What::Row(shown))) = d.shown.get_mut(&key)
            && &*shown == line
        {
            *at = n;
            if super::screen::keeping() {
                super::screen::keep(area);
                return false;
            }
            return true;
        }
        d.shown.insert(key, (n, What::Row(owned(line))));
        true
    })
}

/// `border` is to be drawn around `area`: whether it must be (`false`: the terminal shows
/// it there already, and its four edges are kept).
pub(super) fn border(area: Rect, border: &PanelBorder) -> bool {
    DRAWN.with_borrow_mut(|d| {
        let Some((n, _)) = d.frame else { return true };
        let key = Key::Border(area);
        if let Some((at, What::Border(shown))) = d.shown.get_mut(&key)
            && shown == border
        {
            *at = n;
            if super::screen::keeping() {
                for edge in edges(area) {
                    super::screen::keep(edge);
                }
                return false;
            }
            return true;
        }
        d.shown.insert(key, (n, What::Border(border.clone())));
        true
    })
}

/// The top and bottom rows and the left and right columns between them.
fn edges(a: Rect) -> impl Iterator<Item = Rect> {
    let inner = a.height.saturating_sub(2);
    [
        Rect { height: a.height.min(1), ..a },
        Rect { y: a.bottom().saturating_sub(1), height: a.height.min(1), ..a },
        Rect { y: a.y.saturating_add(1), width: a.width.min(1), height: inner, ..a },
        Rect { x: a.right().saturating_sub(1), y: a.y.saturating_add(1), width: a.width.min(1), height: inner },
    ]
    .into_iter()
    .filter(|r| !r.is_empty())
}

fn owned(line: &Line<'_>) -> Line<'static> {
    Line {
        style: line.style,
        alignment: line.alignment,
        spans: line.spans.iter().map(|s| Span::styled(s.content.to_string(), s.style)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeping<T>(f: impl FnOnce() -> T) -> (T, Vec<Rect>) {
        super::super::screen::keeping_for_test(f)
    }

    #[test]
    fn a_row_drawn_again_the_same_is_kept_and_one_that_changed_is_drawn() {
        let r = Rect::new(1, 2, 10, 1);
        begin(None);
        assert!(row(r, &Line::from("step 1")), "nothing recorded: drawn");
        end();
        begin(Some(&[Rect::new(0, 0, 20, 5)]));
        let (draw, kept) = keeping(|| row(r, &Line::from("step 1")));
        assert!(!draw);
        assert_eq!(kept, vec![r]);
        let (draw, kept) = keeping(|| row(Rect::new(1, 3, 10, 1), &Line::from("new")));
        assert!(draw && kept.is_empty());
        end();
        // Changed: drawn, and recorded as what is shown now.
        begin(Some(&[Rect::new(0, 0, 20, 5)]));
        assert!(keeping(|| row(r, &Line::from("step 2"))).0);
        end();
        begin(Some(&[Rect::new(0, 0, 20, 5)]));
        assert!(!keeping(|| row(r, &Line::from("step 2"))).0);
        end();
    }

    #[test]
    fn a_record_the_panel_did_not_draw_again_is_dropped_and_one_outside_the_parts_stays() {
        let (a, b) = (Rect::new(0, 1, 10, 1), Rect::new(0, 8, 10, 1));
        begin(None);
        row(a, &Line::from("a"));
        row(b, &Line::from("b"));
        end();
        // A frame draws the part holding `a` and draws something else there.
        begin(Some(&[Rect::new(0, 0, 10, 5)]));
        end();
        begin(Some(&[Rect::new(0, 0, 10, 10)]));
        assert!(keeping(|| row(a, &Line::from("a"))).0, "dropped: drawn again");
        assert!(!keeping(|| row(b, &Line::from("b"))).0, "untouched: still shown");
        end();
        // Something drawn over the panels: nothing is kept after it.
        begin(None);
        row(a, &Line::from("a"));
        forget();
        end();
        begin(Some(&[Rect::new(0, 0, 10, 10)]));
        assert!(keeping(|| row(a, &Line::from("a"))).0);
        end();
    }

    #[test]
    fn outside_a_frame_nothing_is_recorded_or_kept() {
        let r = Rect::new(0, 20, 10, 1);
        assert!(row(r, &Line::from("x")));
        forget();
        begin(Some(&[Rect::new(0, 20, 10, 1)]));
        assert!(keeping(|| row(r, &Line::from("x"))).0, "not recorded outside a frame");
        end();
        // A border: kept by its four edges.
        let area = Rect::new(0, 30, 10, 4);
        let b = PanelBorder::new(
            ratatui::widgets::BorderType::Plain,
            ratatui::style::Style::new(),
            ratatui::style::Style::new(),
        )
        .title("t");
        begin(None);
        assert!(border(area, &b));
        end();
        begin(Some(&[area]));
        let (draw, kept) = keeping(|| border(area, &b));
        assert!(!draw);
        assert_eq!(
            kept,
            vec![Rect::new(0, 30, 10, 1), Rect::new(0, 33, 10, 1), Rect::new(0, 31, 1, 2), Rect::new(9, 31, 1, 2)]
        );
        assert!(keeping(|| border(area, &b.clone().title("u"))).0, "another title: drawn");
        end();
    }
}

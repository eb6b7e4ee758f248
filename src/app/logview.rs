//! The Log panel's view model, without drawing: the kept lines, follow / pause, a line
//! cursor, scrolling (down the log, and sideways), wrapping, search with next / previous
//! match, and an errors-only filter.

use std::collections::VecDeque;

use crate::logtail::lines::LogLine;
use crate::util;

/// A kept line and its number since the log was opened.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewLine {
    pub seq: u64,
    pub line: LogLine,
}

/// The window the lines are drawn in: its text rows, and its columns (which only count
/// when lines wrap; 0 when unknown). A bare row count converts into a page that does not
/// wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub rows: usize,
    pub cols: usize,
}

impl From<usize> for Page {
    fn from(rows: usize) -> Self {
        Self { rows, cols: 0 }
    }
}

/// What a cut line is drawn with at its end.
pub const CUT_MARK: &str = " …(cut)";

/// A line as the screen shows it: control characters as spaces (one byte for one byte,
/// so search ranges stay valid) and, for a line cut at the reader's cap, [`CUT_MARK`].
pub fn display_text(line: &LogLine) -> String {
    let mut s = printable(&line.text);
    if line.truncated {
        s.push_str(CUT_MARK);
    }
    s
}

/// Control characters shown as spaces, one byte for one byte.
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() && c.is_ascii() { ' ' } else { c }).collect()
}

/// How far one sideways step moves, in cells.
pub const HSCROLL_STEP: usize = 8;

/// Scroll and search state of the Log panel.
#[derive(Debug, Clone, PartialEq)]
pub struct LogView {
    lines: VecDeque<ViewLine>,
    capacity: usize,
    next_seq: u64,
    /// `None`: following the end. `Some(seq)`: paused, this line at the top.
    top: Option<u64>,
    /// The selected line while paused (`↑`/`↓` move it; Enter opens it). `None` while
    /// following.
    cursor: Option<u64>,
    pub errors_only: bool,
    /// Long lines wrap onto as many rows as they need (else they are cut with `…`).
    pub wrap: bool,
    /// Cells scrolled sideways (only without wrapping).
    hscroll: usize,
    search: Option<String>,
    /// The kept lines the search matches, in order (kept as lines come and go, so the
    /// search status costs nothing per frame however long the buffer).
    matches: VecDeque<u64>,
    /// The line of the current match.
    current_match: Option<u64>,
    /// The unfinished last line (a progress bar), shown below the lines.
    pub partial: Option<String>,
}

impl LogView {
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 0,
            top: None,
            cursor: None,
            errors_only: false,
            wrap: false,
            hscroll: 0,
            search: None,
            matches: VecDeque::new(),
            current_match: None,
            partial: None,
        }
    }

    /// Forget every line (a new log). How the lines are drawn (wrapping) stays.
    pub fn clear(&mut self) {
        let wrap = self.wrap;
        *self = Self::new(self.capacity);
        self.wrap = wrap;
    }

    pub fn push(&mut self, lines: impl IntoIterator<Item = LogLine>) {
        for line in lines {
            if self.search.is_some() && self.is_match(&line.text) {
                self.matches.push_back(self.next_seq);
            }
            if self.lines.len() >= self.capacity {
                self.lines.pop_front();
            } else if self.lines.len() == self.lines.capacity() {
                // Doubling, but never past the buffer's size: a full buffer of 10,000
                // lines holds 10,000 slots (400 KB), not doubling's 16,384 (655 KB).
                let want = (self.lines.len() * 2).max(64).min(self.capacity);
                self.lines.reserve_exact(want - self.lines.len());
            }
            self.lines.push_back(ViewLine { seq: self.next_seq, line });
            self.next_seq += 1;
        }
        let first = self.lines.front().map_or(0, |l| l.seq);
        while self.matches.front().is_some_and(|&m| m < first) {
            self.matches.pop_front();
        }
        let first = self.lines.front().map(|l| l.seq);
        if let (Some(top), Some(first)) = (self.top, first)
            && top < first
        {
            self.top = Some(first);
        }
        if let (Some(c), Some(first)) = (self.cursor, first)
            && c < first
        {
            self.cursor = Some(first);
            self.snap_cursor();
        }
        if let (Some(m), Some(first)) = (self.current_match, first)
            && m < first
        {
            self.current_match = None;
        }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The newest complete line's text.
    pub fn last_text(&self) -> Option<&str> {
        self.lines.back().map(|l| l.line.text.as_str())
    }

    /// The texts of the last `n` kept lines, oldest first.
    pub fn last_texts(&self, n: usize) -> impl DoubleEndedIterator<Item = &str> {
        self.lines.iter().skip(self.lines.len().saturating_sub(n)).map(|l| l.line.text.as_str())
    }

    /// A kept line by its number.
    pub fn line(&self, seq: u64) -> Option<&ViewLine> {
        let first = self.lines.front()?.seq;
        self.lines.get(usize::try_from(seq.checked_sub(first)?).ok()?)
    }

    pub fn following(&self) -> bool {
        self.top.is_none()
    }

    /// The selected line while paused.
    pub fn cursor(&self) -> Option<u64> {
        self.cursor
    }

    /// Cells scrolled sideways (0 while wrapping).
    pub fn hscroll(&self) -> usize {
        if self.wrap { 0 } else { self.hscroll }
    }

    fn shown(&self, l: &ViewLine) -> bool {
        !self.errors_only || l.line.error.is_some()
    }

    fn shown_lines(&self) -> Vec<&ViewLine> {
        self.lines.iter().filter(|l| self.shown(l)).collect()
    }

    fn shown_seqs(&self) -> Vec<u64> {
        self.lines.iter().filter(|l| self.shown(l)).map(|l| l.seq).collect()
    }

    /// Rows a line takes in `page`: one, or, wrapping, as many as its text needs.
    pub fn rows_of(&self, l: &ViewLine, page: Page) -> usize {
        if self.wrap && page.cols > 0 { util::wrap_cells(&display_text(&l.line), page.cols).len().max(1) } else { 1 }
    }

    /// The first index from which the shown lines to the end fit in the page (the last
    /// line at least): where following puts the top.
    fn last_top(&self, shown: &[&ViewLine], page: Page) -> usize {
        if !self.wrap || page.cols == 0 {
            return shown.len().saturating_sub(page.rows);
        }
        let mut used = 0;
        let mut i = shown.len();
        while i > 0 {
            let r = self.rows_of(shown[i - 1], page);
            if used + r > page.rows && i < shown.len() {
                break;
            }
            used += r;
            i -= 1;
        }
        i
    }

    /// How many shown lines from index `i` fit in the page (one at least, if any is left).
    fn fit_from(&self, shown: &[&ViewLine], i: usize, page: Page) -> usize {
        if !self.wrap || page.cols == 0 {
            return shown.len().saturating_sub(i).min(page.rows);
        }
        let mut used = 0;
        let mut n = 0;
        for l in &shown[i.min(shown.len())..] {
            let r = self.rows_of(l, page);
            if used + r > page.rows && n > 0 {
                break;
            }
            used += r;
            n += 1;
            if used >= page.rows {
                break;
            }
        }
        n
    }

    fn top_index(&self, shown: &[&ViewLine], page: Page) -> usize {
        let last = self.last_top(shown, page);
        match self.top {
            None => last,
            Some(top) => shown.partition_point(|l| l.seq < top).min(last),
        }
    }

    /// The lines to draw in a window `page` high (and wide, when wrapping).
    pub fn visible(&self, page: impl Into<Page>) -> Vec<&ViewLine> {
        let page = page.into();
        if self.top.is_some() {
            return self.visible_listing(page);
        }
        // Following (the case at every frame beside a run): the last shown lines that fit
        // (the last one at least), found from the end. Listing every kept line first cost
        // a frame the whole buffer (10,000 lines by default) once it filled.
        let mut out: Vec<&ViewLine> = Vec::with_capacity(page.rows.min(self.lines.len()));
        let mut used = 0;
        for l in self.lines.iter().rev().filter(|l| self.shown(l)) {
            let r = self.rows_of(l, page);
            if used + r > page.rows && !out.is_empty() {
                break;
            }
            used += r;
            out.push(l);
            if used >= page.rows {
                break;
            }
        }
        out.reverse();
        out
    }

    /// [`LogView::visible`] from the list of every shown line.
    fn visible_listing(&self, page: Page) -> Vec<&ViewLine> {
        let shown = self.shown_lines();
        let start = self.top_index(&shown, page);
        let n = self.fit_from(&shown, start, page);
        shown[start..start + n].to_vec()
    }

    /// `f`: pause following (keeping the current window, the cursor on its last line) or
    /// resume it.
    pub fn toggle_follow(&mut self, page: impl Into<Page>) {
        let page = page.into();
        if self.top.is_some() {
            self.top = None;
            self.cursor = None;
        } else {
            let vis: Vec<u64> = self.visible(page).iter().map(|l| l.seq).collect();
            self.top = vis.first().copied();
            self.cursor = vis.last().copied();
        }
    }

    /// Scroll up by `n` shown lines (pauses following); the cursor stays in the window.
    pub fn scroll_up(&mut self, n: usize, page: impl Into<Page>) {
        let page = page.into();
        let shown = self.shown_lines();
        if shown.is_empty() {
            self.top = None;
            self.cursor = None;
            return;
        }
        let cur = self.top_index(&shown, page);
        self.top = Some(shown[cur.saturating_sub(n)].seq);
        self.keep_cursor_in(page);
    }

    /// Scroll down by `n`; reaching the end resumes following.
    pub fn scroll_down(&mut self, n: usize, page: impl Into<Page>) {
        let page = page.into();
        if self.top.is_none() {
            return;
        }
        let shown = self.shown_lines();
        let cur = self.top_index(&shown, page);
        let target = cur + n;
        if target >= self.last_top(&shown, page) {
            self.top = None;
            self.cursor = None;
        } else {
            self.top = Some(shown[target].seq);
            self.keep_cursor_in(page);
        }
    }

    /// `↑`: while following, pause with the cursor on the newest line shown; paused, move
    /// the cursor up one line (the window follows it).
    pub fn cursor_up(&mut self, page: impl Into<Page>) {
        let page = page.into();
        if self.top.is_none() {
            self.toggle_follow(page);
            return;
        }
        let shown = self.shown_seqs();
        let Some(c) = self.cursor_index(&shown) else { return };
        let seq = shown[c.saturating_sub(1)];
        self.cursor = Some(seq);
        self.reveal(seq, page);
    }

    /// `↓`: move the cursor down one line; from the last line, follow the end again.
    pub fn cursor_down(&mut self, page: impl Into<Page>) {
        let page = page.into();
        if self.top.is_none() {
            return;
        }
        let shown = self.shown_seqs();
        let Some(c) = self.cursor_index(&shown) else { return };
        match shown.get(c + 1) {
            Some(&seq) => {
                self.cursor = Some(seq);
                self.reveal(seq, page);
            }
            None => {
                self.top = None;
                self.cursor = None;
            }
        }
    }

    /// Where the cursor is among the shown lines (the nearest shown line when its own is
    /// hidden or gone); the last visible line when there is no cursor.
    fn cursor_index(&self, shown: &[u64]) -> Option<usize> {
        if shown.is_empty() {
            return None;
        }
        let c = self.cursor?;
        Some(shown.partition_point(|&s| s < c).min(shown.len() - 1))
    }

    /// Scroll just enough that line `seq` is in the window.
    fn reveal(&mut self, seq: u64, page: Page) {
        if self.visible(page).iter().any(|l| l.seq == seq) {
            return;
        }
        let shown = self.shown_lines();
        let i = shown.partition_point(|l| l.seq < seq);
        let top = self.top.map_or(0, |t| shown.partition_point(|l| l.seq < t));
        if i < top {
            self.top = shown.get(i).map(|l| l.seq);
        } else {
            // The line at the bottom: go back from it while the rows fit.
            let j = self.back_by_rows(&shown, i, page.rows, page);
            self.top = shown.get(j).map(|l| l.seq);
        }
    }

    /// The smallest index `j <= i` such that lines `j..=i` take at most `budget` rows (`i`
    /// itself always).
    fn back_by_rows(&self, shown: &[&ViewLine], i: usize, budget: usize, page: Page) -> usize {
        let Some(l) = shown.get(i) else { return i };
        let mut used = self.rows_of(l, page);
        let mut j = i;
        while j > 0 {
            let r = self.rows_of(shown[j - 1], page);
            if used + r > budget {
                break;
            }
            used += r;
            j -= 1;
        }
        j
    }

    /// After the window moved: a cursor above it goes to its first line, one below it
    /// (or none) to its last.
    fn keep_cursor_in(&mut self, page: Page) {
        let vis: Vec<u64> = self.visible(page).iter().map(|l| l.seq).collect();
        let (Some(&first), Some(&last)) = (vis.first(), vis.last()) else {
            self.cursor = None;
            return;
        };
        self.cursor = Some(match self.cursor {
            Some(c) if c < first => first,
            Some(c) if c > last => last,
            Some(c) => c,
            None => last,
        });
        self.snap_cursor();
    }

    /// A cursor on a line the filter hides moves to the nearest shown line.
    fn snap_cursor(&mut self) {
        let Some(c) = self.cursor else { return };
        let shown = self.shown_seqs();
        if shown.is_empty() {
            self.cursor = None;
        } else if shown.binary_search(&c).is_err() {
            let i = shown.partition_point(|&s| s < c);
            self.cursor = Some(shown[i.min(shown.len() - 1)]);
        }
    }

    pub fn to_top(&mut self) {
        self.top = Some(self.lines.front().map_or(0, |l| l.seq));
        self.cursor = self.shown_seqs().first().copied();
    }

    pub fn to_end(&mut self) {
        self.top = None;
        self.cursor = None;
    }

    pub fn toggle_errors_only(&mut self) {
        self.errors_only = !self.errors_only;
        self.snap_cursor();
        if self.top.is_some() && self.cursor.is_none() {
            self.top = None;
        }
    }

    /// `w`: wrap long lines, or cut them (with `…`) again. Wrapping forgets the sideways
    /// scroll.
    pub fn toggle_wrap(&mut self) {
        self.wrap = !self.wrap;
        self.hscroll = 0;
    }

    /// `←`/`→`: scroll sideways by [`HSCROLL_STEP`] cells, not past the point where the
    /// longest line shown in `page` ends at the right edge. Nothing while wrapping.
    /// Whether it moved.
    pub fn scroll_sideways(&mut self, right: bool, page: Page) -> bool {
        if self.wrap {
            return false;
        }
        let before = self.hscroll;
        if right {
            let max = self.max_hscroll(page);
            self.hscroll = (self.hscroll + HSCROLL_STEP).min(max);
        } else {
            self.hscroll = self.hscroll.saturating_sub(HSCROLL_STEP);
        }
        self.hscroll != before
    }

    /// The furthest sideways scroll that still shows something of the widest line in the
    /// window: its end at the right edge (one cell is the `…` at the left).
    pub fn max_hscroll(&self, page: Page) -> usize {
        use unicode_width::UnicodeWidthStr;
        let widest = self.visible(page).iter().map(|l| display_text(&l.line).width()).max().unwrap_or(0);
        (widest + 1).saturating_sub(page.cols.max(1))
    }

    /// Which of the search's matches is current, and how many there are among the shown
    /// lines: `(Some(2), 5)` for "match 2/5"; `(None, n)` before a match is chosen.
    pub fn match_position(&self) -> (Option<usize>, usize) {
        if self.search.is_none() {
            return (None, 0);
        }
        let mut total = 0;
        let mut at = None;
        for &m in &self.matches {
            if self.errors_only && !self.line(m).is_some_and(|l| self.shown(l)) {
                continue;
            }
            total += 1;
            if Some(m) == self.current_match {
                at = Some(total);
            }
        }
        (at, total)
    }

    /// Start a search (case-insensitive unless the query has capitals) and jump to the
    /// last match, as `/` does in a pager reading upwards from the end.
    pub fn search(&mut self, query: &str, page: impl Into<Page>) -> bool {
        self.matches.clear();
        if query.is_empty() {
            self.search = None;
            self.current_match = None;
            return false;
        }
        self.search = Some(query.to_string());
        self.current_match = None;
        self.matches = self.lines.iter().filter(|l| self.is_match(&l.line.text)).map(|l| l.seq).collect();
        self.prev_match(page)
    }

    pub fn query(&self) -> Option<&str> {
        self.search.as_deref()
    }

    pub fn current_match(&self) -> Option<u64> {
        self.current_match
    }

    /// `n`: the next match below the current one.
    pub fn next_match(&mut self, page: impl Into<Page>) -> bool {
        let from = self.current_match.map_or(0, |m| m + 1);
        let found = self
            .lines
            .iter()
            .filter(|l| l.seq >= from && self.shown(l))
            .find(|l| self.is_match(&l.line.text))
            .map(|l| l.seq);
        self.jump(found, page.into())
    }

    /// `N`: the previous match above the current one.
    pub fn prev_match(&mut self, page: impl Into<Page>) -> bool {
        let before = self.current_match.unwrap_or(u64::MAX);
        let found = self
            .lines
            .iter()
            .rev()
            .filter(|l| l.seq < before && self.shown(l))
            .find(|l| self.is_match(&l.line.text))
            .map(|l| l.seq);
        self.jump(found, page.into())
    }

    fn jump(&mut self, found: Option<u64>, page: Page) -> bool {
        let Some(seq) = found else { return false };
        self.current_match = Some(seq);
        self.cursor = Some(seq);
        // Put the match in the middle of the window, paused, the cursor on it.
        let shown = self.shown_lines();
        let i = shown.partition_point(|l| l.seq < seq);
        let j = self.back_by_rows(&shown, i, page.rows / 2 + 1, page);
        self.top = shown.get(j).map(|l| l.seq);
        true
    }

    fn smart_case(&self) -> bool {
        self.search.as_ref().is_some_and(|q| q.chars().any(char::is_uppercase))
    }

    fn is_match(&self, text: &str) -> bool {
        !self.match_ranges(text).is_empty()
    }

    /// Byte ranges of the search query in `text`, for highlighting.
    pub fn match_ranges(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        let Some(q) = self.search.as_deref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if self.smart_case() {
            out.extend(text.match_indices(q).map(|(i, m)| i..i + m.len()));
        } else if text.is_ascii() && q.is_ascii() {
            let hay = text.to_ascii_lowercase();
            let needle = q.to_ascii_lowercase();
            out.extend(hay.match_indices(&needle).map(|(i, m)| i..i + m.len()));
        } else {
            // Compare char by char so ranges stay on `text`'s own boundaries.
            let needle: Vec<char> = q.chars().flat_map(char::to_lowercase).collect();
            let chars: Vec<(usize, char)> = text.char_indices().collect();
            let mut i = 0;
            while i < chars.len() {
                let mut k = 0;
                let mut j = i;
                while k < needle.len() && j < chars.len() {
                    let lower: Vec<char> = chars[j].1.to_lowercase().collect();
                    if needle.get(k..k + lower.len()) != Some(&lower[..]) {
                        break;
                    }
                    k += lower.len();
                    j += 1;
                }
                if k == needle.len() && j > i {
                    let end = chars.get(j).map_or(text.len(), |c| c.0);
                    out.push(chars[i].0..end);
                    i = j;
                } else {
                    i += 1;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buffer keeps its newest `capacity` lines, and never holds room for more: a
    /// full buffer's slots are its size, not the next power of two.
    #[test]
    fn a_full_buffer_holds_its_size_and_no_more_room() {
        for cap in [1, 5, 100, 10_000] {
            let mut v = LogView::new(cap);
            for batch in 0..3 {
                v.push((0..cap + 7).map(|i| LogLine::new(format!("{batch}:{i}"))));
                assert_eq!(v.lines.len(), cap);
                assert!(v.lines.capacity() <= cap.max(64), "cap {cap}: room for {}", v.lines.capacity());
                assert_eq!(v.lines.back().map(|l| l.line.text.as_str()), Some(format!("{batch}:{}", cap + 6).as_str()));
                assert_eq!(v.lines.front().map(|l| l.seq), Some(((batch + 1) * (cap + 7) - cap) as u64));
            }
        }
    }
    use crate::logtail::health::ErrorKind;

    fn view(n: usize) -> LogView {
        let mut v = LogView::new(1000);
        v.push((0..n).map(|i| LogLine::new(format!("line {i}"))));
        v
    }

    fn seqs(v: &LogView, h: impl Into<Page>) -> Vec<u64> {
        v.visible(h).iter().map(|l| l.seq).collect()
    }

    #[test]
    fn follows_the_end_until_paused() {
        let mut v = view(10);
        assert_eq!(seqs(&v, 3), [7, 8, 9]);
        v.toggle_follow(3);
        v.push([LogLine::new("new")]);
        assert_eq!(seqs(&v, 3), [7, 8, 9]);
        v.toggle_follow(3);
        assert_eq!(seqs(&v, 3), [8, 9, 10]);
    }

    #[test]
    fn scroll_top_end() {
        let mut v = view(10);
        v.scroll_up(4, 3);
        assert_eq!(seqs(&v, 3), [3, 4, 5]);
        assert!(!v.following());
        v.scroll_down(2, 3);
        assert_eq!(seqs(&v, 3), [5, 6, 7]);
        v.scroll_down(5, 3);
        assert!(v.following());
        v.to_top();
        assert_eq!(seqs(&v, 3), [0, 1, 2]);
        v.scroll_up(5, 3);
        assert_eq!(seqs(&v, 3), [0, 1, 2]);
        v.to_end();
        assert_eq!(seqs(&v, 3), [7, 8, 9]);
    }

    #[test]
    fn capacity_drops_oldest_and_keeps_anchor_valid() {
        let mut v = LogView::new(5);
        v.push((0..5).map(|i| LogLine::new(format!("{i}"))));
        v.to_top();
        v.push((5..8).map(|i| LogLine::new(format!("{i}"))));
        assert_eq!(v.len(), 5);
        assert_eq!(seqs(&v, 2), [3, 4]);
    }

    #[test]
    fn search_next_prev_and_highlight() {
        let mut v = view(30);
        assert!(!v.search("LINE 2", 5), "smart case: capitals match exactly");
        assert_eq!(v.query(), Some("LINE 2"));
        assert!(v.search("line 2", 5));
        // Last match first (line 29), then upwards.
        assert_eq!(v.current_match(), Some(29));
        assert!(v.prev_match(5));
        assert_eq!(v.current_match(), Some(28));
        assert!(v.next_match(5));
        assert_eq!(v.current_match(), Some(29));
        assert!(!v.next_match(5));
        assert!(v.visible(5).iter().any(|l| l.seq == 29));
        assert_eq!(v.match_ranges("a Line 25 line 2"), vec![2..8, 10..16]);
        assert!(!v.search("Line", 5));
        assert!(!v.search("ÄB", 5));
        let mut u = LogView::new(10);
        u.push([LogLine::new("xäbc")]);
        u.search("äb", 3);
        assert_eq!(u.match_ranges("XÄBC"), vec![1..4]);
    }

    #[test]
    fn errors_only_filter() {
        let mut v = view(5);
        let mut e = LogLine::new("RuntimeError: CUDA out of memory");
        e.error = Some(ErrorKind::CudaOom);
        v.push([e]);
        v.push([LogLine::new("after")]);
        v.toggle_errors_only();
        assert_eq!(seqs(&v, 10), [5]);
        v.toggle_errors_only();
        assert_eq!(seqs(&v, 3), [4, 5, 6]);
    }

    #[test]
    fn cursor_moves_and_the_window_follows_it() {
        let mut v = view(10);
        v.cursor_up(3);
        assert!(!v.following());
        assert_eq!((v.cursor(), seqs(&v, 3)), (Some(9), vec![7, 8, 9]), "the first ↑ pauses on the newest line");
        v.cursor_up(3);
        v.cursor_up(3);
        v.cursor_up(3);
        assert_eq!((v.cursor(), seqs(&v, 3)), (Some(6), vec![6, 7, 8]), "the window scrolls to keep it");
        v.cursor_down(3);
        assert_eq!((v.cursor(), seqs(&v, 3)), (Some(7), vec![6, 7, 8]));
        v.to_top();
        assert_eq!(v.cursor(), Some(0));
        v.cursor_up(3);
        assert_eq!(v.cursor(), Some(0), "not above the first line");
        for _ in 0..9 {
            v.cursor_down(3);
        }
        assert_eq!((v.cursor(), v.following()), (Some(9), false));
        v.cursor_down(3);
        assert!(v.following() && v.cursor().is_none(), "↓ past the last line follows again");
        // Paging keeps the cursor in the window.
        v.scroll_up(5, 3);
        let vis = seqs(&v, 3);
        assert!(vis.contains(&v.cursor().expect("a cursor when paused")), "{vis:?} {:?}", v.cursor());
    }

    #[test]
    fn errors_only_moves_the_cursor_to_a_shown_line() {
        let mut v = view(5);
        let mut e = LogLine::new("Traceback (most recent call last):");
        e.error = Some(ErrorKind::Traceback);
        v.push([e]);
        v.push((0..5).map(|i| LogLine::new(format!("after {i}"))));
        v.to_top();
        assert_eq!(v.cursor(), Some(0));
        v.toggle_errors_only();
        assert_eq!(v.cursor(), Some(5), "the nearest error line");
    }

    #[test]
    fn wrapping_fits_whole_lines_in_the_rows() {
        let mut v = LogView::new(100);
        v.push((0..6).map(|i| LogLine::new(if i % 2 == 0 { "x".repeat(25) } else { format!("short {i}") })));
        v.toggle_wrap();
        let page = Page { rows: 5, cols: 10 };
        // From the end: `short 5` (1 row), 25 x (3 rows), `short 3` (1 row) = 5 rows.
        assert_eq!(seqs(&v, page), [3, 4, 5]);
        let rows: usize = v.visible(page).iter().map(|l| v.rows_of(l, page)).sum();
        assert_eq!(rows, 5);
        // Scrolling is in lines; the end is reached when the last lines fit.
        v.scroll_up(1, page);
        assert_eq!(seqs(&v, page), [2, 3]);
        v.scroll_down(1, page);
        assert!(v.following());
        // A line taller than the window shows alone.
        let mut big = LogView::new(10);
        big.wrap = true;
        big.push([LogLine::new("y".repeat(100))]);
        assert_eq!(seqs(&big, Page { rows: 3, cols: 10 }), [0]);
        // Without columns (a bare row count) nothing wraps.
        assert_eq!(seqs(&v, 5), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn sideways_scroll_stops_at_the_widest_line() {
        let mut v = LogView::new(10);
        v.push([LogLine::new("a".repeat(30)), LogLine::new("short")]);
        let page = Page { rows: 5, cols: 10 };
        assert!(!v.scroll_sideways(false, page), "not left of column one");
        assert!(v.scroll_sideways(true, page));
        assert_eq!(v.hscroll(), HSCROLL_STEP);
        while v.scroll_sideways(true, page) {}
        // 30 cells, 10 columns, one for the `…`: cells 21..30 show.
        assert_eq!(v.hscroll(), 21);
        v.toggle_wrap();
        assert_eq!(v.hscroll(), 0);
        assert!(!v.scroll_sideways(true, page), "nothing to scroll while wrapping");
    }

    #[test]
    fn match_position_counts_shown_matches() {
        let mut v = view(30);
        assert_eq!(v.match_position(), (None, 0));
        v.search("line 2", 5);
        // line 2, 20..29: eleven matches, the last one current.
        assert_eq!(v.match_position(), (Some(11), 11));
        v.prev_match(5);
        assert_eq!(v.match_position(), (Some(10), 11));
        assert_eq!(v.cursor(), v.current_match(), "the cursor goes to the match");
        v.search("nothing like it", 5);
        assert_eq!(v.match_position(), (None, 0));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8, bool),
        Follow,
        Up(u8),
        Down(u8),
        Top,
        End,
        Search(String),
        Next,
        Prev,
        ErrorsOnly,
        CursorUp,
        CursorDown,
        Wrap,
        Sideways(bool),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (any::<u8>(), any::<bool>()).prop_map(|(n, e)| Op::Push(n, e)),
            Just(Op::Follow),
            any::<u8>().prop_map(Op::Up),
            any::<u8>().prop_map(Op::Down),
            Just(Op::Top),
            Just(Op::End),
            "[a-cA-Cé ]{0,3}".prop_map(Op::Search),
            Just(Op::Next),
            Just(Op::Prev),
            Just(Op::ErrorsOnly),
            Just(Op::CursorUp),
            Just(Op::CursorDown),
            Just(Op::Wrap),
            any::<bool>().prop_map(Op::Sideways),
        ]
    }

    proptest::proptest! {
        /// Any sequence of keys and lines keeps the window within its height, in order,
        /// made of kept lines that pass the filter, and a current match that matches.
        #[test]
        fn any_sequence_keeps_the_view_consistent(
            ops in proptest::collection::vec(op(), 0..60),
            h in 1usize..12,
            cols in 1usize..30,
        ) {
            let mut v = LogView::new(50);
            let page = Page { rows: h, cols };
            let mut n = 0u32;
            for o in ops {
                match o {
                    Op::Push(k, e) => {
                        v.push((0..k % 20).map(|_| {
                            n += 1;
                            let long = if n.is_multiple_of(5) { " 実験 ".repeat(n as usize % 9) } else { String::new() };
                            let mut l = LogLine::new(format!("{} line {n}{long} {}", ["a", "B", "é"][n as usize % 3], n % 7));
                            if e && n.is_multiple_of(2) {
                                l.error = Some(ErrorKind::Traceback);
                            }
                            l
                        }));
                    }
                    Op::Follow => v.toggle_follow(page),
                    Op::Up(k) => v.scroll_up(k as usize, page),
                    Op::Down(k) => v.scroll_down(k as usize, page),
                    Op::Top => v.to_top(),
                    Op::End => v.to_end(),
                    Op::Search(q) => { v.search(&q, page); }
                    Op::Next => { v.next_match(page); }
                    Op::Prev => { v.prev_match(page); }
                    Op::ErrorsOnly => v.toggle_errors_only(),
                    Op::CursorUp => v.cursor_up(page),
                    Op::CursorDown => v.cursor_down(page),
                    Op::Wrap => v.toggle_wrap(),
                    Op::Sideways(right) => {
                        v.scroll_sideways(right, page);
                        if right {
                            proptest::prop_assert!(v.hscroll() <= v.max_hscroll(page), "{} past {}", v.hscroll(), v.max_hscroll(page));
                        }
                    }
                }
                let vis = v.visible(page);
                // Found from the end while following: the window the full listing gives.
                let listed: Vec<u64> = v.visible_listing(page).iter().map(|l| l.seq).collect();
                proptest::prop_assert_eq!(vis.iter().map(|l| l.seq).collect::<Vec<_>>(), listed);
                proptest::prop_assert!(vis.len() <= h);
                // Wrapping, the rows fit (a single line taller than the window excepted).
                let rows: usize = vis.iter().map(|l| v.rows_of(l, page)).sum();
                proptest::prop_assert!(rows <= h || vis.len() == 1, "{} rows in {}", rows, h);
                // Paused, the cursor is on a shown line; following, there is none.
                if v.following() {
                    proptest::prop_assert!(v.cursor().is_none());
                } else if let Some(c) = v.cursor() {
                    proptest::prop_assert!(v.lines.iter().any(|l| l.seq == c && v.shown(l)), "cursor {} hidden", c);
                }
                proptest::prop_assert!(v.len() <= 50);
                proptest::prop_assert!(vis.windows(2).all(|w| w[0].seq < w[1].seq));
                proptest::prop_assert!(vis.iter().all(|l| !v.errors_only || l.line.error.is_some()));
                if let Some(m) = v.current_match() {
                    let line = v.lines.iter().find(|l| l.seq == m);
                    proptest::prop_assert!(line.is_some_and(|l| !v.match_ranges(&l.line.text).is_empty()));
                }
                // The kept match list agrees with matching every shown line afresh.
                let brute = v.lines.iter().filter(|l| v.shown(l) && v.search.is_some() && v.is_match(&l.line.text)).count();
                proptest::prop_assert_eq!(v.match_position().1, brute);
                if v.following() && !v.wrap {
                    let shown = v.lines.iter().filter(|l| v.shown(l)).count();
                    proptest::prop_assert_eq!(vis.len(), shown.min(h));
                }
                if v.following() {
                    // Following, the newest shown line is in the window.
                    let last = v.lines.iter().rev().find(|l| v.shown(l)).map(|l| l.seq);
                    proptest::prop_assert_eq!(vis.last().map(|l| l.seq), last);
                }
            }
        }
    }
}

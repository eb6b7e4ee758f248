//! The Log panel's view model, without drawing: the kept lines, follow / pause,
//! scrolling, search with next / previous match, and an errors-only filter.

use std::collections::VecDeque;

use crate::logtail::lines::LogLine;

/// A kept line and its number since the log was opened.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewLine {
    pub seq: u64,
    pub line: LogLine,
}

/// Scroll and search state of the Log panel.
#[derive(Debug, Clone, PartialEq)]
pub struct LogView {
    lines: VecDeque<ViewLine>,
    capacity: usize,
    next_seq: u64,
    /// `None`: following the end. `Some(seq)`: paused, this line at the top.
    top: Option<u64>,
    pub errors_only: bool,
    search: Option<String>,
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
            errors_only: false,
            search: None,
            current_match: None,
            partial: None,
        }
    }

    /// Forget every line (a new log).
    pub fn clear(&mut self) {
        *self = Self::new(self.capacity);
    }

    pub fn push(&mut self, lines: impl IntoIterator<Item = LogLine>) {
        for line in lines {
            self.lines.push_back(ViewLine { seq: self.next_seq, line });
            self.next_seq += 1;
        }
        while self.lines.len() > self.capacity {
            self.lines.pop_front();
        }
        let first = self.lines.front().map(|l| l.seq);
        if let (Some(top), Some(first)) = (self.top, first)
            && top < first
        {
            self.top = Some(first);
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

    pub fn following(&self) -> bool {
        self.top.is_none()
    }

    fn shown(&self, l: &ViewLine) -> bool {
        !self.errors_only || l.line.error.is_some()
    }

    fn shown_seqs(&self) -> Vec<u64> {
        self.lines.iter().filter(|l| self.shown(l)).map(|l| l.seq).collect()
    }

    /// The lines to draw in a window `height` lines high.
    pub fn visible(&self, height: usize) -> Vec<&ViewLine> {
        let shown: Vec<&ViewLine> = self.lines.iter().filter(|l| self.shown(l)).collect();
        let start = match self.top {
            None => shown.len().saturating_sub(height),
            Some(top) => {
                let i = shown.partition_point(|l| l.seq < top);
                i.min(shown.len().saturating_sub(height))
            }
        };
        shown[start..].iter().take(height).copied().collect()
    }

    /// `f`: pause following (keeping the current window) or resume it.
    pub fn toggle_follow(&mut self, height: usize) {
        if self.top.is_some() {
            self.top = None;
        } else {
            self.top = self.visible(height).first().map(|l| l.seq);
        }
    }

    /// Scroll up by `n` shown lines (pauses following).
    pub fn scroll_up(&mut self, n: usize, height: usize) {
        let shown = self.shown_seqs();
        let cur = self.current_top_index(&shown, height);
        self.top = shown.get(cur.saturating_sub(n)).copied().or(shown.first().copied());
        if shown.is_empty() {
            self.top = None;
        }
    }

    /// Scroll down by `n`; reaching the end resumes following.
    pub fn scroll_down(&mut self, n: usize, height: usize) {
        if self.top.is_none() {
            return;
        }
        let shown = self.shown_seqs();
        let cur = self.current_top_index(&shown, height);
        let target = cur + n;
        if target + height >= shown.len() {
            self.top = None;
        } else {
            self.top = shown.get(target).copied();
        }
    }

    pub fn to_top(&mut self) {
        self.top = Some(self.lines.front().map_or(0, |l| l.seq));
    }

    pub fn to_end(&mut self) {
        self.top = None;
    }

    pub fn toggle_errors_only(&mut self) {
        self.errors_only = !self.errors_only;
    }

    fn current_top_index(&self, shown: &[u64], height: usize) -> usize {
        match self.top {
            None => shown.len().saturating_sub(height),
            Some(top) => shown.partition_point(|&s| s < top).min(shown.len().saturating_sub(height)),
        }
    }

    /// Start a search (case-insensitive unless the query has capitals) and jump to the
    /// last match, as `/` does in a pager reading upwards from the end.
    pub fn search(&mut self, query: &str, height: usize) -> bool {
        if query.is_empty() {
            self.search = None;
            self.current_match = None;
            return false;
        }
        self.search = Some(query.to_string());
        self.current_match = None;
        self.prev_match(height)
    }

    pub fn query(&self) -> Option<&str> {
        self.search.as_deref()
    }

    pub fn current_match(&self) -> Option<u64> {
        self.current_match
    }

    /// `n`: the next match below the current one.
    pub fn next_match(&mut self, height: usize) -> bool {
        let from = self.current_match.map_or(0, |m| m + 1);
        let found = self
            .lines
            .iter()
            .filter(|l| l.seq >= from && self.shown(l))
            .find(|l| self.is_match(&l.line.text))
            .map(|l| l.seq);
        self.jump(found, height)
    }

    /// `N`: the previous match above the current one.
    pub fn prev_match(&mut self, height: usize) -> bool {
        let before = self.current_match.unwrap_or(u64::MAX);
        let found = self
            .lines
            .iter()
            .rev()
            .filter(|l| l.seq < before && self.shown(l))
            .find(|l| self.is_match(&l.line.text))
            .map(|l| l.seq);
        self.jump(found, height)
    }

    fn jump(&mut self, found: Option<u64>, height: usize) -> bool {
        let Some(seq) = found else { return false };
        self.current_match = Some(seq);
        // Put the match in the middle of the window, paused.
        let shown = self.shown_seqs();
        let i = shown.partition_point(|&s| s < seq);
        self.top = shown.get(i.saturating_sub(height / 2)).copied();
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
    use crate::logtail::health::ErrorKind;

    fn view(n: usize) -> LogView {
        let mut v = LogView::new(1000);
        v.push((0..n).map(|i| LogLine::new(format!("line {i}"))));
        v
    }

    fn seqs(v: &LogView, h: usize) -> Vec<u64> {
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
        ]
    }

    proptest::proptest! {
        /// Any sequence of keys and lines keeps the window within its height, in order,
        /// made of kept lines that pass the filter, and a current match that matches.
        #[test]
        fn any_sequence_keeps_the_view_consistent(ops in proptest::collection::vec(op(), 0..60), h in 1usize..12) {
            let mut v = LogView::new(50);
            let mut n = 0u32;
            for o in ops {
                match o {
                    Op::Push(k, e) => {
                        v.push((0..k % 20).map(|_| {
                            n += 1;
                            let mut l = LogLine::new(format!("{} line {n} {}", ["a", "B", "é"][n as usize % 3], n % 7));
                            if e && n.is_multiple_of(2) {
                                l.error = Some(ErrorKind::Traceback);
                            }
                            l
                        }));
                    }
                    Op::Follow => v.toggle_follow(h),
                    Op::Up(k) => v.scroll_up(k as usize, h),
                    Op::Down(k) => v.scroll_down(k as usize, h),
                    Op::Top => v.to_top(),
                    Op::End => v.to_end(),
                    Op::Search(q) => { v.search(&q, h); }
                    Op::Next => { v.next_match(h); }
                    Op::Prev => { v.prev_match(h); }
                    Op::ErrorsOnly => v.toggle_errors_only(),
                }
                let vis = v.visible(h);
                proptest::prop_assert!(vis.len() <= h);
                proptest::prop_assert!(v.len() <= 50);
                proptest::prop_assert!(vis.windows(2).all(|w| w[0].seq < w[1].seq));
                proptest::prop_assert!(vis.iter().all(|l| !v.errors_only || l.line.error.is_some()));
                if let Some(m) = v.current_match() {
                    let line = v.lines.iter().find(|l| l.seq == m);
                    proptest::prop_assert!(line.is_some_and(|l| !v.match_ranges(&l.line.text).is_empty()));
                }
                if v.following() {
                    let shown = v.lines.iter().filter(|l| v.shown(l)).count();
                    proptest::prop_assert_eq!(vis.len(), shown.min(h));
                }
            }
        }
    }
}

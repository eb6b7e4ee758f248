//! Splitting a byte stream into display lines: `\r` progress bars collapse to their
//! latest state, invalid UTF-8 is shown lossily, and a line is kept only up to a cap.

use serde::Serialize;

use super::health::ErrorKind;

/// One complete line of the log, ready to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// The text (the last state of a `\r` progress bar, escape sequences removed).
    pub text: String,
    /// The line was longer than the cap; only its head is kept.
    pub truncated: bool,
    /// Set when the line is part of an error (traceback, OOM, NaN loss, `Killed`).
    pub error: Option<ErrorKind>,
}

impl LogLine {
    /// A plain line (tests, fixtures).
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into(), truncated: false, error: None }
    }
}

/// Turns appended bytes into [`LogLine`]s. Memory is bounded by the cap: the bytes of a
/// line past the cap are dropped as they arrive.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    cap: usize,
    buf: Vec<u8>,
    truncated: bool,
    /// A `\r` was seen; the next byte that is not `\n` starts a new state of the line.
    after_cr: bool,
    /// Bytes of the current line so far (including dropped ones).
    started: bool,
}

impl LineSplitter {
    pub fn new(cap: usize) -> Self {
        Self { cap: cap.max(1), buf: Vec::new(), truncated: false, after_cr: false, started: false }
    }

    /// Feed bytes; complete lines are appended to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<LogLine>) {
        while !data.is_empty() {
            match memchr::memchr2(b'\n', b'\r', data) {
                None => {
                    self.append(data);
                    break;
                }
                Some(i) => {
                    self.append(&data[..i]);
                    if data[i] == b'\n' {
                        out.push(self.take_line());
                    } else {
                        self.after_cr = true;
                        self.started = true;
                    }
                    data = &data[i + 1..];
                }
            }
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.started = true;
        if self.after_cr {
            self.after_cr = false;
            self.buf.clear();
            self.truncated = false;
        }
        let room = self.cap - self.buf.len();
        if bytes.len() > room {
            self.buf.extend_from_slice(&bytes[..room]);
            self.truncated = true;
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn take_line(&mut self) -> LogLine {
        let line = LogLine { text: display_text(&self.buf, self.truncated), truncated: self.truncated, error: None };
        self.buf.clear();
        if self.buf.capacity() > self.cap.max(4096) {
            self.buf.shrink_to(self.cap);
        }
        self.truncated = false;
        self.after_cr = false;
        self.started = false;
        line
    }

    /// The unfinished last line as it looks now (a progress bar's latest state), if any.
    pub fn partial(&self) -> Option<String> {
        (!self.buf.is_empty()).then(|| display_text(&self.buf, self.truncated))
    }

    /// End of the stream (rotation, deletion): an unfinished line becomes a line.
    pub fn finish(&mut self) -> Option<LogLine> {
        if self.started { Some(self.take_line()) } else { None }
    }

    /// Forget an unfinished line.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.truncated = false;
        self.after_cr = false;
        self.started = false;
    }
}

/// Bytes of a line to display text: leading NULs (left by copytruncate writers that
/// keep their offset) and terminal escape sequences removed, invalid UTF-8 replaced,
/// and a head cut in the middle of a character trimmed to the last whole one.
pub fn display_text(bytes: &[u8], truncated: bool) -> String {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let mut bytes = &bytes[start..];
    if truncated
        && let Err(e) = std::str::from_utf8(bytes)
        && e.error_len().is_none()
    {
        bytes = &bytes[..e.valid_up_to()];
    }
    if memchr::memchr(0x1b, bytes).is_some() {
        String::from_utf8_lossy(&strip_escapes(bytes)).into_owned()
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// Remove ANSI CSI (`ESC [ ... final`) and OSC (`ESC ] ... BEL|ESC \`) sequences and
/// other two-byte escapes.
fn strip_escapes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != 0x1b {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        i += 1;
        match bytes.get(i) {
            Some(b'[') => {
                i += 1;
                while i < bytes.len() && !(0x40..=0x7e).contains(&bytes[i]) {
                    i += 1;
                }
                i += 1;
            }
            Some(b']') => {
                i += 1;
                while i < bytes.len() && bytes[i] != 0x07 && bytes[i] != 0x1b {
                    i += 1;
                }
                if bytes.get(i) == Some(&0x1b) {
                    i += 1;
                }
                i += 1;
            }
            Some(_) => i += 1,
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], cap: usize) -> (Vec<String>, Option<String>) {
        let mut s = LineSplitter::new(cap);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        (out.into_iter().map(|l| l.text).collect(), s.partial())
    }

    #[test]
    fn lines_across_chunks() {
        let (lines, partial) = split(&[b"ab", b"c\nde", b"f\n", b"gh"], 100);
        assert_eq!(lines, ["abc", "def"]);
        assert_eq!(partial.as_deref(), Some("gh"));
    }

    #[test]
    fn carriage_returns_collapse() {
        let (lines, _) = split(&[b" 10%|#  | 1/10\r 20%|## | 2/10\r", b"100%|###| 10/10\n"], 100);
        assert_eq!(lines, ["100%|###| 10/10"]);
        let (lines, _) = split(&[b"windows line\r\n", b"bar\r    \r{'loss': 1.0}\n"], 100);
        assert_eq!(lines, ["windows line", "{'loss': 1.0}"]);
        let (lines, partial) = split(&[b"a\n 5%\r 6%\r"], 100);
        assert_eq!(lines, ["a"]);
        assert_eq!(partial.as_deref(), Some(" 6%"));
    }

    #[test]
    fn long_line_keeps_head_and_bounded_memory() {
        let mut s = LineSplitter::new(100);
        let mut out = Vec::new();
        let chunk = vec![b'x'; 1 << 16];
        for _ in 0..160 {
            s.push(&chunk, &mut out);
            assert!(s.buf.capacity() <= 4096);
        }
        s.push(b"\nnext\n", &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[0].truncated);
        assert_eq!(out[0].text.len(), 100);
        assert_eq!(out[1], LogLine::new("next"));
    }

    #[test]
    fn invalid_utf8_is_lossy_and_cut_char_trimmed() {
        let (lines, _) = split(&[b"ok \xff\xfe end\n"], 100);
        assert_eq!(lines, ["ok \u{fffd}\u{fffd} end"]);
        // "é" is two bytes; a cap of 2 cuts it after "a".
        let (lines, _) = split(&["aé\n".as_bytes()], 2);
        assert_eq!(lines, ["a"]);
    }

    #[test]
    fn escapes_and_leading_nuls_removed() {
        let (lines, _) = split(&[b"\x1b[32mgreen\x1b[0m ok\n\0\0\0after truncate\n"], 100);
        assert_eq!(lines, ["green ok", "after truncate"]);
    }

    #[test]
    fn finish_flushes_unterminated_line_once() {
        let mut s = LineSplitter::new(10);
        let mut out = Vec::new();
        s.push(b"tail", &mut out);
        assert_eq!(s.finish(), Some(LogLine::new("tail")));
        assert_eq!(s.finish(), None);
    }
}

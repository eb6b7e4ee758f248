//! Progress of a CLI command on stderr: `indicatif` bars on a terminal, plain lines
//! elsewhere. Whether bars are drawn is indicatif's call (its stderr target hides itself
//! when stderr is not a user-attended terminal: a pipe, a file, a journal, a test); when
//! hidden, nothing is drawn and every line goes to the plain stream instead, unchanged.
//!
//! On a terminal each transfer has its own bar (`[####------] <message>`), redrawn in
//! place at most 20 times a second; lines (`line`) print above the bars and stay in the
//! scrollback; a bar that ends is cleared and its last words printed as a line.

use std::collections::HashMap;
use std::io::Write;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Bars on a terminal, or lines on `plain` when the target is hidden.
pub struct StderrProgress {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    plain: Box<dyn Write + Send>,
}

impl StderrProgress {
    /// Drawing to stderr (hidden when stderr is not a terminal); lines to stderr.
    pub fn stderr() -> Self {
        Self::with_target(ProgressDrawTarget::stderr(), Box::new(std::io::stderr()))
    }

    /// Drawing to `target`; when it is hidden, lines go to `plain`.
    pub fn with_target(target: ProgressDrawTarget, plain: Box<dyn Write + Send>) -> Self {
        Self { multi: MultiProgress::with_draw_target(target), bars: HashMap::new(), plain }
    }

    /// Whether bars are drawn (stderr is a terminal).
    pub fn drawing(&self) -> bool {
        !self.multi.is_hidden()
    }

    /// A line of its own: above the bars on a terminal, else on the plain stream.
    pub fn line(&mut self, text: &str) {
        if self.drawing() {
            let _ = self.multi.println(text);
        } else {
            let _ = writeln!(self.plain, "{text}");
            let _ = self.plain.flush();
        }
    }

    /// Set the bar `key` (made on first use) to `done` of `total`, with `message` when
    /// given (else the last one stays). Nothing when not drawing.
    pub fn bar(&mut self, key: &str, done: u64, total: u64, message: Option<String>) {
        if !self.drawing() {
            return;
        }
        let (total, done) = (total.max(1), done.min(total.max(1)));
        if let Some(bar) = self.bars.get(key) {
            // Both calls draw (indicatif allows short bursts, then 20 frames a second); the
            // position last, so the frame left standing has both.
            if let Some(m) = message {
                bar.set_message(m);
            }
            bar.set_length(total);
            bar.set_position(done);
            return;
        }
        // Made whole before it is shown, so its first frame already has its words.
        let style =
            ProgressStyle::with_template("[{bar:20}] {wide_msg}").expect("a valid template").progress_chars("#>-");
        let bar = ProgressBar::hidden().with_style(style).with_message(message.unwrap_or_default());
        bar.set_length(total);
        bar.set_position(done);
        let bar = self.multi.add(bar);
        bar.tick();
        self.bars.insert(key.to_string(), bar);
    }

    /// Whether bar `key` is shown.
    pub fn has_bar(&self, key: &str) -> bool {
        self.bars.contains_key(key)
    }

    /// Clear bar `key` (if shown).
    pub fn end(&mut self, key: &str) {
        if let Some(bar) = self.bars.remove(key) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    /// Clear every bar (the command is done).
    pub fn finish(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let _ = self.multi.clear();
    }
}

impl Drop for StderrProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A terminal that records what is written to it.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Screen(pub Arc<Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(&format!("{s}\n"));
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str("<clear>");
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A plain stream that records what is written to it.
    #[derive(Clone, Default)]
    pub(crate) struct Plain(pub Arc<Mutex<Vec<u8>>>);

    impl Write for Plain {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Plain {
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn hidden_draws_nothing_and_prints_lines_plainly() {
        let plain = Plain::default();
        let mut p = StderrProgress::with_target(ProgressDrawTarget::hidden(), Box::new(plain.clone()));
        assert!(!p.drawing());
        p.line("L2 uploading a.pt (1 KB)");
        p.bar("a.pt", 10, 100, Some("a.pt 10%".into()));
        assert!(!p.has_bar("a.pt"), "no bar is made when nothing is drawn");
        p.line("L2 stored a.pt");
        p.finish();
        assert_eq!(plain.text(), "L2 uploading a.pt (1 KB)\nL2 stored a.pt\n");
    }

    #[test]
    fn a_terminal_gets_a_bar_and_lines_above_it_and_the_plain_stream_nothing() {
        let screen = Screen::default();
        let plain = Plain::default();
        let mut p = StderrProgress::with_target(
            ProgressDrawTarget::term_like_with_hz(Box::new(screen.clone()), 20),
            Box::new(plain.clone()),
        );
        assert!(p.drawing());
        p.line("L2 uploading a.pt (1 KB)");
        p.bar("a.pt", 50, 100, Some("L2 a.pt 50%".into()));
        assert!(p.has_bar("a.pt"));
        // Past the 20 Hz limit, so the update is drawn.
        std::thread::sleep(std::time::Duration::from_millis(60));
        p.bar("a.pt", 100, 100, Some("L2 a.pt 100%".into()));
        p.end("a.pt");
        assert!(!p.has_bar("a.pt"));
        p.line("L2 stored a.pt");
        p.finish();
        let shown = screen.0.lock().unwrap().clone();
        assert!(shown.contains("L2 uploading a.pt (1 KB)"), "{shown}");
        assert!(shown.contains("[##########>---------] L2 a.pt 50%"), "{shown}");
        assert!(shown.contains("L2 stored a.pt"), "{shown}");
        assert_eq!(plain.text(), "", "on a terminal everything goes through indicatif");
    }
}

//! The metric history of a log, read from the start in the background, fast: chunks,
//! `memchr` line splitting without copying, and cheap checks before any parsing.

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::health::Health;
use super::metrics::MetricsState;
use super::parse::MetricParser;

/// What the history holds.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillResult {
    pub metrics: MetricsState,
    pub health: Health,
    pub bytes: u64,
    pub lines: u64,
    /// Stopped early because it was cancelled.
    pub cancelled: bool,
}

/// Bytes read at a time. The buffer is resident while a history is read, so it stays
/// small: 256 KiB reads a log as fast as 4 MiB did, and a console following a 1 GiB log
/// peaks 0.5 MiB lower (docs/performance.md, "Link layout").
const CHUNK: usize = 256 << 10;

/// Folds lines of a log (as bytes) into metrics and health.
#[derive(Debug, Clone)]
pub struct HistoryFolder<'p> {
    parser: &'p MetricParser,
    pub metrics: MetricsState,
    pub health: Health,
    pub(super) cap: usize,
    pub lines: u64,
    /// One metric recorded at every step it was reported (for ranking checkpoints).
    pub tracked: Option<(String, std::collections::BTreeMap<u64, f64>)>,
}

impl<'p> HistoryFolder<'p> {
    pub fn new(parser: &'p MetricParser, chart_points: usize, cap: usize) -> Self {
        Self {
            parser,
            metrics: MetricsState::new(chart_points),
            health: Health::default(),
            cap: cap.max(1),
            lines: 0,
            tracked: None,
        }
    }

    /// Also record `metric` at every step (the latest step seen when the line has none,
    /// as for Hugging Face eval lines).
    pub fn tracking(mut self, metric: &str) -> Self {
        self.tracked = Some((metric.to_string(), Default::default()));
        self
    }

    /// One line without its `\n`. Of its `\r` states the last one is parsed and the
    /// one drawn before it (the progress bar's step before a loss line written over
    /// it); states before those only held older bar positions. Errors are looked for in
    /// the last state.
    pub fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        let line = &line[..line.len().min(self.cap)];
        if memchr::memchr(b'\r', line).is_none() {
            let bad_loss = self.metrics_of(line);
            self.health.classify(line, bad_loss);
            return;
        }
        // The last two states that are not blank (tqdm clears a bar with spaces).
        let (mut last, mut before): (Option<&[u8]>, Option<&[u8]>) = (None, None);
        let mut end = line.len();
        let starts = memchr::memrchr_iter(b'\r', line).map(|p| p + 1).chain(std::iter::once(0));
        for start in starts {
            let seg = &line[start..end];
            end = start.saturating_sub(1);
            if seg.iter().all(|c| *c == b' ') {
                continue;
            }
            if last.is_none() {
                last = Some(seg);
            } else {
                before = Some(seg);
                break;
            }
        }
        if let Some(b) = before {
            self.metrics_of(b);
        }
        let last = last.unwrap_or_default();
        let bad_loss = self.metrics_of(last);
        self.health.classify(last, bad_loss);
    }

    fn metrics_of(&mut self, seg: &[u8]) -> bool {
        match self.parser.parse(seg) {
            Some(u) => {
                self.metrics.apply(&u);
                if let Some((name, map)) = &mut self.tracked
                    && let (Some(v), Some(step)) = (u.metric(name), self.metrics.latest.step)
                {
                    map.insert(step, v);
                }
                u.has_bad_loss()
            }
            None => false,
        }
    }
}

/// A read of a log from its start that can stop and go on: bytes fed in any pieces fold
/// exactly as one read of the whole would (lines split across pieces are joined, the
/// unfinished last line is kept, up to the cap, until its `\n` comes). `status` keeps one
/// between calls (see [`super::scancache`]) and reads only what was appended.
#[derive(Debug, Clone)]
pub struct LogScan<'p> {
    pub(super) folder: HistoryFolder<'p>,
    /// Bytes fed so far.
    pub(super) bytes: u64,
    /// The first `cap` bytes of the unfinished last line.
    pub(super) carry: Vec<u8>,
    /// The whole length of the unfinished last line (0: none).
    pub(super) carry_len: u64,
}

impl<'p> LogScan<'p> {
    pub fn new(parser: &'p MetricParser, chart_points: usize, cap: usize) -> Self {
        Self { folder: HistoryFolder::new(parser, chart_points, cap), bytes: 0, carry: Vec::new(), carry_len: 0 }
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Fold the next bytes of the log.
    pub fn feed(&mut self, chunk: &[u8]) {
        let cap = self.folder.cap;
        self.bytes += chunk.len() as u64;
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            if self.carry_len > 0 {
                let room = cap.saturating_sub(self.carry.len());
                self.carry.extend_from_slice(&chunk[..nl.min(room)]);
                self.folder.line(&self.carry);
                self.carry.clear();
                self.carry_len = 0;
            } else {
                self.folder.line(&chunk[start..nl]);
            }
            start = nl + 1;
        }
        let rest = &chunk[start..];
        if !rest.is_empty() {
            let room = cap.saturating_sub(self.carry.len());
            self.carry.extend_from_slice(&rest[..rest.len().min(room)]);
            self.carry_len += rest.len() as u64;
        }
    }

    /// What the log holds so far: the unfinished last line counts as a line (unless
    /// `cancelled`).
    pub fn finish(mut self, cancelled: bool) -> BackfillResult {
        if self.carry_len > 0 && !cancelled {
            let carry = std::mem::take(&mut self.carry);
            self.folder.line(&carry);
        }
        let f = self.folder;
        BackfillResult { metrics: f.metrics, health: f.health, bytes: self.bytes, lines: f.lines, cancelled }
    }

    /// Feed everything `reader` yields, in chunks; `progress` gets the bytes fed so far
    /// after each. Stops early (returning `true`) when `cancel` is set.
    pub fn feed_from(
        &mut self,
        mut reader: impl Read,
        cancel: &AtomicBool,
        mut progress: impl FnMut(u64),
    ) -> io::Result<bool> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Ok(true);
            }
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.feed(&buf[..n]);
            progress(self.bytes);
        }
    }
}

/// Read `path` from the start up to `end` and fold every line. `progress` is called
/// with the bytes read after each chunk; `cancel` stops early.
pub fn backfill(
    path: &Path,
    end: u64,
    parser: &MetricParser,
    chart_points: usize,
    cap: usize,
    cancel: &AtomicBool,
    progress: impl FnMut(u64),
) -> io::Result<BackfillResult> {
    let file = crate::util::open_regular(path)?;
    let mut scan = LogScan::new(parser, chart_points, cap);
    let cancelled = scan.feed_from(file.take(end), cancel, progress)?;
    Ok(scan.finish(cancelled))
}

/// [`backfill`] after the files a rotation left of the log ([`super::rotated`]), so the
/// metrics last reported before the rotation (an eval loss, the learning rate) are still
/// known, and their points still charted, as when the console saw the rotation happen.
/// Health (errors, lines, bytes, progress) is the log's own: errors in a rotated file
/// are not counted again.
#[allow(clippy::too_many_arguments)]
pub fn backfill_after_rotated(
    path: &Path,
    end: u64,
    parser: &MetricParser,
    chart_points: usize,
    cap: usize,
    max_gap: std::time::Duration,
    cancel: &AtomicBool,
    progress: impl FnMut(u64),
) -> io::Result<BackfillResult> {
    // The log first: one that cannot be read is an error whatever lies beside it.
    let mut r = backfill(path, end, parser, chart_points, cap, cancel, progress)?;
    if let Some(earlier) = rotated_history(path, max_gap, |f| read_rotated(f, parser, chart_points, cap, cancel)) {
        r.metrics = r.metrics.after(&earlier);
    }
    Ok(r)
}

/// The metrics of the files a rotation left of `log`, oldest first, each read by `read`
/// and folded after the one before; `None` when there are none. A file that cannot be
/// read is skipped (and logged).
pub fn rotated_history(
    log: &Path,
    max_gap: std::time::Duration,
    mut read: impl FnMut(&super::rotated::Rotated) -> io::Result<MetricsState>,
) -> Option<MetricsState> {
    let mut acc: Option<MetricsState> = None;
    for r in super::rotated::predecessors(log, max_gap) {
        match read(&r) {
            Ok(m) => acc = Some(acc.as_ref().map_or_else(|| m.clone(), |earlier| m.after(earlier))),
            Err(e) => tracing::warn!("logtail: reading the rotated log {}: {e}", r.path.display()),
        }
    }
    acc
}

/// One rotated file's metrics, read whole (through gzip when it is compressed).
pub fn read_rotated(
    r: &super::rotated::Rotated,
    parser: &MetricParser,
    chart_points: usize,
    cap: usize,
    cancel: &AtomicBool,
) -> io::Result<MetricsState> {
    let file = crate::util::open_regular(&r.path)?;
    let mut scan = LogScan::new(parser, chart_points, cap);
    let cancelled = if r.gzip {
        scan.feed_from(flate2::read::MultiGzDecoder::new(file), cancel, |_| {})?
    } else {
        scan.feed_from(file, cancel, |_| {})?
    };
    Ok(scan.finish(cancelled).metrics)
}

/// `metric` at every step it was reported in the workspace's current log (the one the Log
/// panel follows). Read line by line from the start; empty when there is no log.
pub fn metric_by_step(
    workspace: &Path,
    cfg: &super::LogConfig,
    metric: &str,
) -> io::Result<std::collections::BTreeMap<u64, f64>> {
    use std::io::BufRead;
    let Some(log) = super::discover::select(workspace, cfg) else { return Ok(Default::default()) };
    let parser = MetricParser::new(&cfg.patterns).map_err(io::Error::other)?;
    let mut folder = HistoryFolder::new(&parser, 16, cfg.max_line_bytes).tracking(metric);
    let mut reader = io::BufReader::with_capacity(1 << 20, crate::util::open_regular(&log.path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        // A very long line is read whole here, but only its first `max_line_bytes` are parsed.
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        folder.line(&line);
    }
    Ok(folder.tracked.map(|(_, m)| m).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn backfill_reads_history_across_chunks_up_to_end() {
        let mut f = tempfile::NamedTempFile::new().expect("temp");
        let mut content = Vec::new();
        for step in 1..=200_000u64 {
            // ~60 bytes a line: the 4 MiB chunk boundary falls inside lines.
            writeln!(content, "step {step} | loss {:.4} | lr 1e-4 | tok/s 1900", 1.0 / step as f64).expect("fmt");
        }
        let end = content.len() as u64;
        content.extend_from_slice(b"step 999999 | loss 0.1\n");
        f.write_all(&content).expect("write");
        let parser = MetricParser::default();
        let mut calls = 0;
        let r =
            backfill(f.path(), end, &parser, 1000, 4096, &AtomicBool::new(false), |_| calls += 1).expect("backfill");
        assert_eq!(r.lines, 200_000);
        assert_eq!(r.bytes, end);
        assert_eq!(r.metrics.latest.step, Some(200_000));
        assert_eq!(r.metrics.loss.count(), 200_000);
        assert!(calls >= 3);
        assert_eq!(r.health.error_count(), 0);
    }

    #[test]
    fn backfill_counts_errors_and_parses_bar_segments() {
        let mut f = tempfile::NamedTempFile::new().expect("temp");
        f.write_all(
            b" 10%|#  | 10/100 [00:01<00:09, 10.00it/s]\r      \r{'loss': 2.0, 'epoch': 0.1}\n\
              Traceback (most recent call last):\n  File \"t.py\", line 1\n\
              torch.OutOfMemoryError: CUDA out of memory.\nKilled",
        )
        .expect("write");
        let parser = MetricParser::default();
        let end = f.as_file().metadata().expect("meta").len();
        let r = backfill(f.path(), end, &parser, 100, 4096, &AtomicBool::new(false), |_| {}).expect("backfill");
        assert_eq!(r.metrics.loss.points(), vec![(10.0, 2.0)]);
        assert_eq!(r.health.counts.cuda_oom, 1);
        assert_eq!(r.health.counts.killed, 1);
        assert_eq!(r.health.error_count(), 2);
    }

    #[test]
    fn metrics_from_before_a_rotation_are_still_known() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("train.log");
        // logrotate with `compress`: the oldest part gzipped.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"step 100 | loss 3.0 | lr 3e-4 | grad_norm 0.9\n").expect("gz");
        std::fs::write(dir.path().join("train.log.2.gz"), gz.finish().expect("gz")).expect("write");
        std::fs::write(
            dir.path().join("train.log.1"),
            "step 200 | loss 2.5 | eval_loss 3.909\ntorch.OutOfMemoryError: CUDA out of memory.\nstep 300 | loss 2.4",
        )
        .expect("write");
        let now = std::time::SystemTime::now();
        for (name, ago) in [("train.log.2.gz", 20), ("train.log.1", 10)] {
            let f = std::fs::File::options().write(true).open(dir.path().join(name)).expect("open");
            f.set_modified(now - std::time::Duration::from_secs(ago)).expect("mtime");
        }
        std::fs::write(&log, "step 400 | loss 2.2\n").expect("write");
        let gap = std::time::Duration::from_secs(900);
        let r =
            backfill_after_rotated(&log, 20, &MetricParser::default(), 100, 4096, gap, &AtomicBool::new(false), |_| {})
                .expect("history");
        let m = r.metrics.latest;
        assert_eq!((m.step, m.loss, m.eval_loss), (Some(400), Some(2.2), Some(3.909)));
        assert_eq!((m.learning_rate, m.grad_norm), (Some(3e-4), Some(0.9)), "from the gzipped part");
        assert_eq!(r.metrics.loss.points(), vec![(100.0, 3.0), (200.0, 2.5), (300.0, 2.4), (400.0, 2.2)]);
        // Health and the byte count are the log's own: the OOM is in a rotated file.
        assert_eq!((r.health.error_count(), r.lines, r.bytes), (0, 1, 20));
        // A rotated file that is not gzip is skipped, the rest still read.
        std::fs::write(dir.path().join("train.log.2.gz"), "not gzip").expect("write");
        let f = std::fs::File::options().write(true).open(dir.path().join("train.log.2.gz")).expect("open");
        f.set_modified(now - std::time::Duration::from_secs(20)).expect("mtime");
        let r =
            backfill_after_rotated(&log, 20, &MetricParser::default(), 100, 4096, gap, &AtomicBool::new(false), |_| {})
                .expect("history");
        assert_eq!((r.metrics.latest.eval_loss, r.metrics.latest.learning_rate), (Some(3.909), None));
        // Plain backfill reads the log alone.
        let r =
            backfill(&log, 20, &MetricParser::default(), 100, 4096, &AtomicBool::new(false), |_| {}).expect("backfill");
        assert_eq!(r.metrics.latest.eval_loss, None);
    }
}

//! The log collector: opens a log fast (last screen read backwards), fills the metric
//! history in the background, follows new lines, and sends whole [`LogSample`]s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use super::backfill::{BackfillResult, backfill_after_rotated};
use super::backread::read_last_lines;
use super::config::LogConfig;
use super::discover;
use super::health::Health;
use super::lines::LogLine;
use super::metrics::MetricsState;
use super::parse::MetricParser;
use super::tail::{FollowHandle, FollowOptions, StartAt, TailNote, Tailer, Waker, spawn_follow};

/// How far the background history read has come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillProgress {
    pub read_bytes: u64,
    pub total_bytes: u64,
    pub done: bool,
}

/// One whole update of the followed log.
#[derive(Debug, Clone)]
pub struct LogSample {
    pub path: PathBuf,
    /// The first sample of this log: its `new_lines` replace what is shown.
    pub reset: bool,
    pub new_lines: Vec<LogLine>,
    /// The unfinished last line (a progress bar's current state).
    pub partial: Option<String>,
    pub size_bytes: Option<u64>,
    pub notes: Vec<TailNote>,
    pub metrics: MetricsState,
    pub health: Health,
    pub backfill: BackfillProgress,
    /// A newer log appeared (a new run), offered to switch to.
    pub newer_log: Option<PathBuf>,
    /// Whether a process has the log open for writing (the training run or its `tee`);
    /// `None` until first checked or when `/proc` cannot tell.
    pub writer_alive: Option<bool>,
    /// The processes holding the log open for writing; `None` as for `writer_alive`.
    pub writers: Option<Vec<u32>>,
    /// The log could not be read (permissions, I/O); following goes on trying.
    pub error: Option<String>,
    /// When this sample was taken.
    pub at: SystemTime,
}

/// Folds followed lines: parses metrics, classifies errors, stamps the time.
#[derive(Debug, Clone)]
pub struct LiveFold {
    parser: MetricParser,
    pub metrics: MetricsState,
    pub health: Health,
}

impl LiveFold {
    pub fn new(parser: MetricParser, chart_points: usize) -> Self {
        Self { parser, metrics: MetricsState::new(chart_points), health: Health::default() }
    }

    /// Fold complete lines read at `now`, marking error lines.
    pub fn lines(&mut self, lines: &mut [LogLine], now: SystemTime) {
        for line in lines.iter_mut() {
            let bad = match self.parser.parse(line.text.as_bytes()) {
                Some(u) => {
                    self.metrics.apply(&u);
                    u.has_bad_loss()
                }
                None => false,
            };
            line.error = self.health.classify(line.text.as_bytes(), bad);
        }
        if !lines.is_empty() {
            self.health.last_line_at = Some(now);
        }
    }

    /// A progress bar's current state (parsed for step, rate and ETA).
    pub fn partial(&mut self, text: &str) {
        if let Some(u) = self.parser.parse(text.as_bytes()) {
            self.metrics.apply(&u);
        }
    }
}

/// The last screen of a log and what its lines say, read backwards from the end.
#[derive(Debug, Clone)]
pub struct LastScreen {
    pub lines: Vec<LogLine>,
    /// Metrics and errors of these lines only (until the history is read), with the
    /// file's modification time as the time of the last line.
    pub fold: LiveFold,
    /// Where following continues; `None` when the file could not be read (missing).
    pub end_offset: Option<u64>,
    /// The file read (device, inode).
    pub file_id: Option<(u64, u64)>,
    pub size_bytes: Option<u64>,
}

impl LastScreen {
    pub fn read(path: &Path, parser: &MetricParser, n: usize, cap: usize, chart_points: usize) -> Self {
        let mut fold = LiveFold::new(parser.clone(), chart_points);
        match read_last_lines(path, n, cap) {
            Ok(last) => {
                let mut lines = last.lines;
                let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                fold.lines(&mut lines, mtime.unwrap_or_else(SystemTime::now));
                Self {
                    lines,
                    fold,
                    end_offset: Some(last.end_offset),
                    file_id: Some(last.file_id),
                    size_bytes: Some(last.size_bytes),
                }
            }
            Err(_) => Self { lines: Vec::new(), fold, end_offset: None, file_id: None, size_bytes: None },
        }
    }

    /// As a first sample, for a screen drawn before the collector's own first sample.
    pub fn into_sample(self, path: PathBuf, at: SystemTime) -> LogSample {
        let total = self.end_offset.unwrap_or(0);
        LogSample {
            path,
            reset: true,
            new_lines: self.lines,
            partial: None,
            size_bytes: self.size_bytes,
            notes: Vec::new(),
            metrics: self.fold.metrics,
            health: self.fold.health,
            backfill: BackfillProgress { read_bytes: 0, total_bytes: total, done: total == 0 },
            newer_log: None,
            writer_alive: None,
            writers: None,
            error: None,
            at,
        }
    }
}

/// The first sample of the log the console would follow, read synchronously (the last
/// screen only) so the first frame already shows it.
pub fn first_sample(workspace: &Path, cfg: &LogConfig, screen_lines: usize) -> Option<LogSample> {
    let path = log_to_follow(workspace, cfg)?;
    let parser = MetricParser::new(&cfg.patterns).unwrap_or_default();
    let first = LastScreen::read(&path, &parser, screen_lines, cfg.max_line_bytes, cfg.chart_points);
    Some(first.into_sample(path, SystemTime::now()))
}

/// How often the follower re-checks the log's known writers: through the one descriptor
/// each held the log by (cheap; see [`crate::procfs::WriterWatch`]), so a trainer that
/// exits shows at the next check (the follower wakes at least every `log.poll_interval`).
pub const WRITERS_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often every process's descriptors are scanned for a writer of the log, at the
/// longest: a new writer of the same file is found within this, or at the first check
/// after the log grows while no writer is known (at most every
/// [`WRITERS_GREW_SCAN_EVERY`]); a new log is scanned at once.
pub const WRITERS_FULL_SCAN_EVERY: Duration = Duration::from_secs(30);
/// While no writer is known and the log grows, a full scan at most this often (a writer
/// we may not see, another user's process, would otherwise cost one at each growth).
pub const WRITERS_GREW_SCAN_EVERY: Duration = Duration::from_secs(10);

/// Collector settings.
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    pub config: LogConfig,
    /// Lines read backwards from the end when the log is opened.
    pub screen_lines: usize,
    /// Look for a newer log in this workspace every `discover_every`.
    pub workspace: Option<PathBuf>,
    pub discover_every: Duration,
    /// At most one sample per this interval.
    pub min_interval: Duration,
    /// While the log keeps growing, read it at these points (see [`FollowOptions`]).
    pub hot_at: Option<crate::util::Lead>,
}

impl CollectorOptions {
    pub fn new(config: LogConfig) -> Self {
        Self {
            config,
            screen_lines: 200,
            workspace: None,
            discover_every: Duration::from_secs(10),
            min_interval: Duration::from_millis(50),
            hot_at: None,
        }
    }
}

/// A running collector; dropping it stops following and the history read.
#[derive(Debug)]
pub struct LogCollector {
    follow: Option<FollowHandle>,
    cancel: Arc<AtomicBool>,
}

impl LogCollector {
    pub fn waker(&self) -> Option<Waker> {
        self.follow.as_ref().map(FollowHandle::waker)
    }
}

impl Drop for LogCollector {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        if let Some(f) = self.follow.take() {
            f.stop();
        }
    }
}

/// Follow `path`, sending a [`LogSample`] whenever something changes. `send` returns
/// `false` when nobody listens any more, which stops the collector.
pub fn spawn_collector<F>(path: PathBuf, opts: CollectorOptions, mut send: F) -> std::io::Result<LogCollector>
where
    F: FnMut(LogSample) -> bool + Send + 'static,
{
    let cfg = &opts.config;
    let parser = MetricParser::new(&cfg.patterns).unwrap_or_else(|e| {
        tracing::warn!("logtail: {e}; user patterns ignored");
        MetricParser::default()
    });
    let cap = cfg.max_line_bytes;
    let points = cfg.chart_points;
    let cancel = Arc::new(AtomicBool::new(false));

    // The last screen, fast.
    let first = LastScreen::read(&path, &parser, opts.screen_lines, cap, points);
    let (start, backfill_total) = match (first.end_offset, first.file_id) {
        (Some(end), Some(file_id)) => (StartAt::OffsetIn { offset: end, file_id }, end),
        _ => (StartAt::Beginning, 0),
    };
    let first_lines = first.lines;
    let preview_metrics = first.fold.metrics;
    let preview_health = first.fold.health;

    // History in the background.
    let (hist_tx, hist_rx) = mpsc::channel::<Result<BackfillResult, String>>();
    let read = Arc::new(AtomicU64::new(0));
    let waker_slot: Arc<std::sync::Mutex<Option<Waker>>> = Arc::default();
    // The history is read when there is one: the log's lines before the last screen, or
    // the files a rotation left of it (a log rotated a moment ago may still be empty).
    let max_gap = cfg.stall_after;
    let read_history = backfill_total > 0 || !super::rotated::predecessors(&path, max_gap).is_empty();
    if read_history {
        let (path, parser, cancel, read, slot) =
            (path.clone(), parser.clone(), cancel.clone(), read.clone(), waker_slot.clone());
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        std::thread::Builder::new().name("logtail-backfill".into()).spawn(move || {
            let mut last_wake = Instant::now();
            let result = backfill_after_rotated(&path, backfill_total, &parser, points, cap, max_gap, &cancel, |n| {
                read.store(n, Ordering::Relaxed);
                if last_wake.elapsed() > Duration::from_millis(250) {
                    last_wake = Instant::now();
                    if let Ok(g) = slot.lock()
                        && let Some(w) = g.as_ref()
                    {
                        w.wake();
                    }
                }
            })
            .map(|mut r| {
                r.health.last_line_at = mtime;
                r
            })
            .map_err(|e| format!("reading the history of {}: {e}", path.display()));
            let _ = hist_tx.send(result);
            if let Ok(g) = slot.lock()
                && let Some(w) = g.as_ref()
            {
                w.wake();
            }
        })?;
    }

    let tailer = Tailer::new(path.clone(), start, cap);
    let mut live = LiveFold::new(parser, points);
    let mut history: Option<(MetricsState, Health)> = None;
    // The merged series of the last sample (`MetricsState::after_reusing`).
    let mut merged = None;
    let mut backfill_done = !read_history;
    let mut pending_first = Some(first_lines);
    let mut last_partial: Option<String> = None;
    let mut last_progress = 0u64;
    let mut last_discover = Instant::now();
    let mut newer: Option<PathBuf> = None;
    let mut writer_alive: Option<bool> = None;
    let mut writers: Option<Vec<u32>> = None;
    let mut last_writer_check: Option<Instant> = None;
    let mut writer_watch = crate::procfs::WriterWatch::new(WRITERS_FULL_SCAN_EVERY, WRITERS_GREW_SCAN_EVERY)
        .sharing(crate::procfs::SHARED_MAX_AGE);
    let mut error: Option<String> = None;
    let follow_opts =
        FollowOptions { poll_interval: cfg.poll_interval, min_interval: opts.min_interval, hot_at: opts.hot_at };
    let workspace = opts.workspace.clone();
    let discover_every = opts.discover_every;
    let config = opts.config.clone();

    let handle = spawn_follow(tailer, follow_opts, move |tailer, waker| {
        let now = SystemTime::now();
        let mut changed = false;
        let mut batch = match tailer.poll() {
            Ok(b) => {
                if error.take().is_some() {
                    changed = true;
                }
                b
            }
            Err(e) => {
                let msg = format!("reading {}: {e}", tailer.path().display());
                changed |= error.as_ref() != Some(&msg);
                error = Some(msg);
                Default::default()
            }
        };
        if batch.more {
            waker.wake();
        }
        let grew = !batch.lines.is_empty() || batch.partial != last_partial;
        live.lines(&mut batch.lines, now);
        if batch.partial != last_partial {
            if let Some(p) = &batch.partial {
                live.partial(p);
            }
            last_partial = batch.partial.clone();
            changed = true;
        }
        if let Ok(r) = hist_rx.try_recv() {
            backfill_done = true;
            changed = true;
            match r {
                Ok(r) => history = Some((r.metrics, r.health)),
                Err(e) => error = Some(e),
            }
        }
        let progress = read.load(Ordering::Relaxed);
        if progress != last_progress {
            last_progress = progress;
            changed = true;
        }
        if let Some(ws) = &workspace
            && last_discover.elapsed() >= discover_every
        {
            last_discover = Instant::now();
            let n = discover::newer_than(ws, &config, tailer.path()).map(|c| c.path);
            changed |= n != newer;
            newer = n;
        }
        if last_writer_check.is_none_or(|t| t.elapsed() >= WRITERS_CHECK_EVERY) {
            let at = Instant::now();
            last_writer_check = Some(at);
            // The file the path named at this poll, from the tailer's own `stat` (none
            // when the poll failed first: who writes is then not known).
            let w = tailer.path_file().map(|f| writer_watch.writers_of_file(f, at, grew));
            changed |= w != writers;
            writer_alive = w.as_ref().map(|w| !w.is_empty());
            writers = w;
        }
        let reset = pending_first.is_some();
        let mut new_lines = pending_first.take().unwrap_or_default();
        new_lines.append(&mut batch.lines);
        changed |= reset || !new_lines.is_empty() || !batch.notes.is_empty();
        if !changed {
            return true;
        }
        let (hm, hh) = match &history {
            Some((m, h)) => (m, h),
            None => (&preview_metrics, &preview_health),
        };
        send(LogSample {
            path: tailer.path().to_path_buf(),
            reset,
            new_lines,
            partial: batch.partial,
            size_bytes: batch.size_bytes,
            notes: batch.notes,
            // The history, once read, is another `earlier` than the last screen's preview.
            metrics: live.metrics.after_reusing(hm, u64::from(history.is_some()), &mut merged),
            health: live.health.merged_after(hh),
            backfill: BackfillProgress {
                read_bytes: if backfill_done { backfill_total } else { progress },
                total_bytes: backfill_total,
                done: backfill_done,
            },
            newer_log: newer.clone(),
            writer_alive,
            writers: writers.clone(),
            error: error.clone(),
            at: now,
        })
    })?;
    if let Ok(mut g) = waker_slot.lock() {
        *g = Some(handle.waker());
        // The history may have finished before the waker was in place.
        handle.waker().wake();
    }
    Ok(LogCollector { follow: Some(handle), cancel })
}

/// The path a collector would follow for this workspace and config, if any.
pub fn log_to_follow(workspace: &Path, cfg: &LogConfig) -> Option<PathBuf> {
    discover::select(workspace, cfg).map(|c| c.path)
}

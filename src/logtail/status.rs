//! The log's part of `status --json`: `log` and `metrics`.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use super::backread::read_last_lines;
use super::config::LogConfig;
use super::discover;
use super::health::{Health, LogError};
use super::metrics::MetricsSnapshot;
use super::parse::MetricParser;
use super::scancache::{self, Fresh, ScanFrom};

/// `status --json` → `log`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogStatus {
    pub path: Option<String>,
    pub size_bytes: Option<u64>,
    pub last_line: Option<String>,
    pub stalled: bool,
    pub error_count: u64,
    pub last_error: Option<LogError>,
    /// Errors seen in the log by kind (for the metrics exporter; `error_count` is their sum).
    #[serde(skip)]
    pub error_counts: super::health::ErrorCounts,
    /// When the log file was last written (Unix seconds; for the metrics exporter).
    #[serde(skip)]
    pub modified_unix: Option<u64>,
    /// The latest metrics (`step`, `loss`, `eval_loss`, `learning_rate`, `grad_norm`, …):
    /// the same object `log --json` prints as `metrics`.
    pub metrics: MetricsStatus,
    /// Whether the run is going: the log's writers, how it ended, the last line's age.
    pub run: super::RunStatus,
}

impl LogStatus {
    pub fn new(
        path: &Path,
        size_bytes: Option<u64>,
        last_line: Option<String>,
        health: &Health,
        stalled: bool,
    ) -> Self {
        Self {
            path: Some(path.display().to_string()),
            size_bytes,
            last_line,
            stalled,
            error_count: health.error_count(),
            last_error: health.last_error.clone(),
            error_counts: health.counts,
            modified_unix: health
                .last_line_at
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            metrics: MetricsStatus::default(),
            run: super::RunStatus::default(),
        }
    }
}

/// `status --json` → `metrics` (every key `null` while unknown).
pub type MetricsStatus = MetricsSnapshot;

/// Read the workspace's log (for the CLI): last line, history, errors, stall. Stall is
/// judged by the file's modification time. With no log, everything is null. The read
/// starts where the previous call's ended when the log only grew since (the state is kept
/// in `.opsconsole/logscan/`, see [`super::scancache`]); the answers are the same.
pub fn collect_status(
    workspace: &Path,
    cfg: &LogConfig,
    now: SystemTime,
    training_alive: bool,
) -> std::io::Result<(LogStatus, MetricsStatus)> {
    let cache = super::scancache::cache_dir(workspace);
    collect_status_in(workspace, cfg, now, training_alive, Some(&cache)).map(|(s, m, _)| (s, m))
}

/// [`collect_status`] with the state kept in `cache` (`None`: read the whole log), and
/// where the read started.
pub fn collect_status_in(
    workspace: &Path,
    cfg: &LogConfig,
    now: SystemTime,
    training_alive: bool,
    cache: Option<&Path>,
) -> std::io::Result<(LogStatus, MetricsStatus, ScanFrom)> {
    let Some(c) = discover::select(workspace, cfg).filter(|c| c.exists) else {
        let path = cfg.path.as_ref().map(|p| workspace.join(p).display().to_string());
        return Ok((
            LogStatus { path, ..Default::default() },
            MetricsStatus::default(),
            ScanFrom::Start(Fresh::NoState),
        ));
    };
    let last = read_last_lines(&c.path, 1, cfg.max_line_bytes)?;
    let (parser, patterns) = match MetricParser::new(&cfg.patterns) {
        Ok(p) => (p, cfg.patterns.as_slice()),
        Err(_) => (MetricParser::default(), &[][..]),
    };
    let (mut history, from) =
        scancache::scan(cache, &c.path, c.size_bytes, &parser, patterns, cfg.chart_points, cfg.max_line_bytes)?;
    // The files a rotation left, read before the log: the eval loss reported before the
    // rotation stays known. A plain one's read is kept in the cache like the log's (it no
    // longer changes, so later calls read nothing); a gzipped one is read whole.
    let never = std::sync::atomic::AtomicBool::new(false);
    if let Some(earlier) = super::backfill::rotated_history(&c.path, cfg.stall_after, |r| {
        if r.gzip {
            super::backfill::read_rotated(r, &parser, cfg.chart_points, cfg.max_line_bytes, &never)
        } else {
            let end = std::fs::metadata(&r.path)?.len();
            scancache::scan(cache, &r.path, end, &parser, patterns, cfg.chart_points, cfg.max_line_bytes)
                .map(|(h, _)| h.metrics)
        }
    }) {
        history.metrics = history.metrics.after(&earlier);
    }
    let stalled = history.health.stalled(now, c.modified, training_alive, cfg.stall_after);
    let status = LogStatus {
        metrics: history.metrics.latest,
        modified_unix: c.modified.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs()),
        ..LogStatus::new(
            &c.path,
            Some(c.size_bytes),
            last.lines.last().map(|l| l.text.clone()),
            &history.health,
            stalled,
        )
    };
    Ok((status, history.metrics.latest, from))
}

/// [`collect_status`] for `opsconsole status` and `opsconsole log --json` (one function,
/// so both print the same `metrics`): now, with "a training process is alive"
/// meaning a process has the log open for writing. Errors reading the log leave its
/// values null (and are logged).
///
/// `log.run` says whether the run is going; once it has stopped, the rate and ETA are
/// left out (`null`): they described a run that no longer runs.
pub fn workspace_status(workspace: &Path, cfg: &LogConfig) -> (LogStatus, MetricsStatus) {
    let log = discover::select(workspace, cfg).filter(|c| c.exists);
    let writers = log.as_ref().and_then(|c| super::proc::writers_of(&c.path).ok());
    let alive = writers.as_ref().is_some_and(|w| !w.is_empty());
    let now = SystemTime::now();
    match collect_status(workspace, cfg, now, alive) {
        Ok((mut status, metrics)) => {
            let Some(c) = log else { return (status, metrics) };
            let last = read_last_lines(&c.path, 20, cfg.max_line_bytes).map(|l| l.lines).unwrap_or_default();
            status.run =
                super::RunStatus::new(writers.as_deref(), last.iter().map(|l| l.text.as_str()), Some(c.modified), now);
            let metrics = status.run.shown_metrics(&metrics);
            status.metrics = metrics;
            (status, metrics)
        }
        Err(e) => {
            tracing::warn!("status: reading the log: {e}");
            let path = discover::select(workspace, cfg).map(|c| c.path.display().to_string());
            (LogStatus { path, ..Default::default() }, MetricsStatus::default())
        }
    }
}

impl LogStatus {
    /// Lines for `opsconsole status` (text).
    pub fn to_text(&self, m: &MetricsStatus) -> String {
        let Some(path) = &self.path else {
            return "log: none found (set log.path or log.glob)\n".into();
        };
        let mut out = format!("log: {path}");
        if let Some(size) = self.size_bytes {
            out.push_str(&format!(" ({})", crate::util::bytes(size)));
        }
        if self.stalled {
            out.push_str(" · STALLED");
        }
        out.push('\n');
        if self.run.state != super::RunState::Unknown || self.run.seconds_since_last_line.is_some() {
            out.push_str(&format!("  run: {}\n", self.run.text()));
        }
        let mut vals = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                vals.push(format!("{k} {v}"));
            }
        };
        put("step", m.step.map(|v| v.to_string()));
        put("loss", m.loss.map(|v| format!("{v:.4}")));
        put("eval_loss", m.eval_loss.map(|v| format!("{v:.4}")));
        put("lr", m.learning_rate.map(|v| format!("{v:.2e}")));
        put("grad_norm", m.grad_norm.map(|v| format!("{v:.3}")));
        put("epoch", m.epoch.map(|v| format!("{v:.2}")));
        put("tok/s", m.tokens_per_second.map(|v| format!("{v:.0}")));
        put("eta", m.eta_seconds.map(|v| crate::util::duration(std::time::Duration::from_secs_f64(v.max(0.0)))));
        if !vals.is_empty() {
            out.push_str(&format!("  {}\n", vals.join(" · ")));
        }
        out.push_str(&format!("  errors {}", self.error_count));
        if let Some(e) = &self.last_error {
            out.push_str(&format!(" · last: {}: {}", e.kind.label(), e.message));
            if let Some(h) = &e.hint {
                out.push_str(&format!(" ({h})"));
            }
        }
        out.push('\n');
        out
    }
}

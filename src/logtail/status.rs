//! The log's part of `status --json`: `log` and `metrics`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use serde::Serialize;

use super::backfill::backfill;
use super::backread::read_last_lines;
use super::config::LogConfig;
use super::discover;
use super::health::{Health, LogError};
use super::metrics::MetricsSnapshot;
use super::parse::MetricParser;

/// `status --json` → `log`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogStatus {
    pub path: Option<String>,
    pub size_bytes: Option<u64>,
    pub last_line: Option<String>,
    pub stalled: bool,
    pub error_count: u64,
    pub last_error: Option<LogError>,
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
        }
    }
}

/// `status --json` → `metrics` (every key `null` while unknown).
pub type MetricsStatus = MetricsSnapshot;

/// Read the workspace's log once (for the CLI): last line, history, errors, stall.
/// Stall is judged by the file's modification time. With no log, everything is null.
pub fn collect_status(
    workspace: &Path,
    cfg: &LogConfig,
    now: SystemTime,
    training_alive: bool,
) -> std::io::Result<(LogStatus, MetricsStatus)> {
    let Some(c) = discover::select(workspace, cfg).filter(|c| c.exists) else {
        let path = cfg
            .path
            .as_ref()
            .map(|p| workspace.join(p).display().to_string());
        return Ok((
            LogStatus {
                path,
                ..Default::default()
            },
            MetricsStatus::default(),
        ));
    };
    let last = read_last_lines(&c.path, 1, cfg.max_line_bytes)?;
    let parser = MetricParser::new(&cfg.patterns).unwrap_or_default();
    let history = backfill(
        &c.path,
        c.size_bytes,
        &parser,
        cfg.chart_points,
        cfg.max_line_bytes,
        &AtomicBool::new(false),
        |_| {},
    )?;
    let stalled = history
        .health
        .stalled(now, c.modified, training_alive, cfg.stall_after);
    let status = LogStatus::new(
        &c.path,
        Some(c.size_bytes),
        last.lines.last().map(|l| l.text.clone()),
        &history.health,
        stalled,
    );
    Ok((status, history.metrics.latest))
}

//! The exporter's view of the training log, read incrementally: the console's own tailer
//! ([`Tailer`]: rotation, truncation, partial lines) and fold ([`LiveFold`]: the same
//! parser and error classes), so a sample costs the bytes written since the last one, not
//! a read of the whole log as a one-shot `status --json` does.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::logtail::{LiveFold, LogConfig, LogStatus, MetricParser, MetricsStatus, StartAt, Tailer, discover};

/// The followed log and what its lines said so far.
#[derive(Debug, Default)]
pub struct LogFollower {
    current: Option<Followed>,
}

#[derive(Debug)]
struct Followed {
    path: PathBuf,
    tailer: Tailer,
    fold: LiveFold,
    last_line: Option<String>,
}

impl LogFollower {
    /// The log the config picks now, folded up to its end: `status --json`'s `log` and
    /// `metrics`.
    pub fn status(&mut self, workspace: &Path, cfg: &LogConfig, now: SystemTime) -> (LogStatus, MetricsStatus) {
        let Some(c) = discover::select(workspace, cfg).filter(|c| c.exists) else {
            self.current = None;
            let path = cfg.path.as_ref().map(|p| workspace.join(p).display().to_string());
            return (LogStatus { path, ..Default::default() }, MetricsStatus::default());
        };
        if self.current.as_ref().is_none_or(|f| f.path != c.path) {
            // A new log (a new run, or the first sample): read it from its beginning.
            let parser = MetricParser::new(&cfg.patterns).unwrap_or_default();
            self.current = Some(Followed {
                path: c.path.clone(),
                tailer: Tailer::new(c.path.clone(), StartAt::Beginning, cfg.max_line_bytes),
                fold: LiveFold::new(parser, cfg.chart_points),
                last_line: None,
            });
        }
        let Some(f) = self.current.as_mut() else { return Default::default() };
        loop {
            match f.tailer.poll() {
                Ok(mut batch) => {
                    f.fold.lines(&mut batch.lines, now);
                    if let Some(p) = &batch.partial {
                        f.fold.partial(p);
                    }
                    if let Some(l) = batch.lines.last() {
                        f.last_line = Some(l.text.clone());
                    }
                    if !batch.more {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!("metrics: reading {}: {e}", c.path.display());
                    break;
                }
            }
        }
        let alive = crate::logtail::proc::writers_of(&c.path).is_ok_and(|w| !w.is_empty());
        let stalled = f.fold.health.stalled(now, c.modified, alive, cfg.stall_after);
        let status = LogStatus {
            metrics: f.fold.metrics.latest,
            modified_unix: c.modified.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs()),
            ..LogStatus::new(&c.path, Some(c.size_bytes), f.last_line.clone(), &f.fold.health, stalled)
        };
        (status, f.fold.metrics.latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_only_what_is_new_and_matches_a_whole_read() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig { path: Some("train.log".into()), ..Default::default() };
        let log = dir.path().join("train.log");
        std::fs::write(&log, "{'loss': 2.5, 'learning_rate': 1e-4, 'epoch': 0.1}\nstep 10/100\n").unwrap();
        let mut f = LogFollower::default();
        let now = SystemTime::now();
        let (a, _) = f.status(dir.path(), &cfg, now);
        assert_eq!(a.metrics.loss, Some(2.5));
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        writeln!(w, "{{'loss': 1.25, 'learning_rate': 5e-5, 'epoch': 0.2}}").unwrap();
        writeln!(w, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB").unwrap();
        drop(w);
        let (b, m) = f.status(dir.path(), &cfg, now);
        assert_eq!(m.loss, Some(1.25));
        assert_eq!(b.error_counts.cuda_oom, 1);
        // The same figures as the one-shot read `status --json` does.
        let (whole, whole_m) = crate::logtail::collect_status(dir.path(), &cfg, now, false).unwrap();
        assert_eq!(m, whole_m);
        assert_eq!(b.error_counts, whole.error_counts);
        assert_eq!(b.error_count, whole.error_count);
        assert_eq!(b.size_bytes, whole.size_bytes);
    }
}

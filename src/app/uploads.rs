//! The Uploads panel's state: the newest ledger sample, live progress from the engine (or,
//! beside a daemon, rates worked out from successive samples), and the queue overlay's
//! scroll position.

use std::time::{Duration, SystemTime};

use crate::sync::rate::RateWindow;
use crate::sync::{SyncEvent, SyncSample};

/// The upload in flight on one level, as last reported.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveUpload {
    pub level: String,
    pub path: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub rate_bytes_per_s: u64,
    pub at: SystemTime,
    /// From engine events (this console's engine) rather than ledger samples.
    pub from_events: bool,
    /// Beside a daemon: the ledger's progress readings of this attempt, timed by when the
    /// daemon wrote them.
    pub window: RateWindow,
}

impl LiveUpload {
    /// Seconds left at the current rate.
    pub fn eta(&self) -> Option<Duration> {
        (self.rate_bytes_per_s > 0)
            .then(|| Duration::from_secs(self.bytes_total.saturating_sub(self.bytes_done) / self.rate_bytes_per_s))
    }
}

#[derive(Debug, Clone, Default)]
pub struct UploadsPanel {
    pub sample: Option<SyncSample>,
    pub sampled_at: Option<SystemTime>,
    pub live: Vec<LiveUpload>,
    /// First queue row shown in the queue overlay.
    pub queue_scroll: usize,
    /// The newest note worth a line (a drop, a failure, a command sent).
    pub note: Option<String>,
    /// Why this console's engine cannot write the ledger ("disk full: …"), while it cannot.
    pub ledger_trouble: Option<String>,
    /// Why the ledger cannot be read at all, in words (then no sample comes).
    pub unreadable: Option<String>,
    /// `s` or `R` waiting for the passes it asked for, to say what they did.
    pub asked: Option<Asked>,
}

/// A sync command waiting for its answer from the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// "sync" or "retry".
    pub what: &'static str,
    /// When it was asked (Unix seconds, the state's clock).
    pub at_unix: i64,
    /// Levels whose pass has not ended since.
    pub waiting: Vec<String>,
    /// What the levels answered so far, and whether any answer is a failure.
    pub parts: Vec<String>,
    pub error: bool,
}

/// A command with no pass to show for it after this long is not answered any more.
pub const ASK_TTL_SECS: i64 = 15 * 60;

const EVENTS_FRESH: Duration = Duration::from_secs(3);

fn age(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or_default()
}

impl UploadsPanel {
    /// Folds a ledger sample in.
    pub fn apply_sample(&mut self, sample: SyncSample, now: SystemTime) {
        let mut live = Vec::new();
        for level in &sample.status.levels {
            let prev = self.live.iter().find(|l| l.level == level.level);
            match (&level.in_flight, prev) {
                (_, Some(p)) if p.from_events && age(now, p.at) < EVENTS_FRESH => live.push(p.clone()),
                (Some(f), prev) => {
                    // Readings of this file's attempt, at the times the daemon wrote them
                    // (a ledger read twice, or late, adds nothing; an attempt that starts
                    // lower starts the window again).
                    let mut window = match prev {
                        Some(p) if p.path == f.path && !p.from_events => p.window.clone(),
                        _ => RateWindow::new(),
                    };
                    window.push(f.updated_ms as f64 / 1000.0, f.bytes_done);
                    live.push(LiveUpload {
                        level: level.level.clone(),
                        path: f.path.clone(),
                        bytes_done: f.bytes_done,
                        bytes_total: f.bytes_total,
                        rate_bytes_per_s: window.bytes_per_s(),
                        at: now,
                        from_events: false,
                        window,
                    });
                }
                (None, _) => {}
            }
        }
        self.live = live;
        let rows = sample.queue.len();
        self.unreadable = None;
        self.sample = Some(sample);
        self.sampled_at = Some(now);
        self.queue_scroll = self.queue_scroll.min(rows.saturating_sub(1));
    }

    /// Folds an event from this console's engine in.
    pub fn apply_event(&mut self, ev: SyncEvent, now: SystemTime) {
        match ev {
            SyncEvent::Started { level, path, offset, bytes_total } => {
                self.set_live(LiveUpload {
                    level,
                    path,
                    bytes_done: offset,
                    bytes_total,
                    rate_bytes_per_s: 0,
                    at: now,
                    from_events: true,
                    window: RateWindow::new(),
                });
            }
            SyncEvent::Progress { level, path, bytes_done, bytes_total, rate_bytes_per_s } => {
                self.set_live(LiveUpload {
                    level,
                    path,
                    bytes_done,
                    bytes_total,
                    rate_bytes_per_s,
                    at: now,
                    from_events: true,
                    window: RateWindow::new(),
                });
            }
            SyncEvent::Confirmed { level, path, .. } => {
                self.live.retain(|l| !(l.level == level && l.path == path));
            }
            SyncEvent::Failed { level, path, .. } => {
                // The failure and its reason are in the ledger's failure list (the panel
                // shows them from there): not repeated as a note.
                self.live.retain(|l| !(l.level == level && l.path == path));
            }
            SyncEvent::Dropped { path, note, .. } => self.note = Some(format!("{path}: {note}")),
            SyncEvent::Requeued { level, path, reason } => self.note = Some(format!("{level} {path}: {reason}")),
            SyncEvent::Withheld { path, .. } => self.note = Some(format!("{path}: withheld as a secret")),
            SyncEvent::LedgerTrouble { why, .. } => self.ledger_trouble = Some(why),
            SyncEvent::LedgerOk => self.ledger_trouble = None,
            SyncEvent::Queued { .. } | SyncEvent::PassDone { .. } => {}
        }
    }

    /// `s` or `R` was sent at `at_unix`: answer once every enabled, configured level has
    /// ended a pass since (read from the ledger, so beside a daemon too).
    /// Whether an answer will come (some level is enabled and configured).
    pub fn ask(&mut self, what: &'static str, at_unix: i64) -> bool {
        let waiting: Vec<String> = self
            .sample
            .iter()
            .flat_map(|s| s.status.levels.iter())
            .filter(|l| l.enabled && l.remote_configured)
            // A retry passes over the levels that have failures.
            .filter(|l| what != "retry" || l.failed > 0)
            .map(|l| l.level.clone())
            .collect();
        self.asked = (!waiting.is_empty()).then_some(Asked { what, at_unix, waiting, parts: vec![], error: false });
        self.asked.is_some()
    }

    /// The answer to the pending `s` or `R`, once the last level it waits for has ended a
    /// pass: each level's outcome, failures with their reason (`sync: L2 1 failed: the
    /// folder of remote 'drive' … · L3 up to date`).
    pub fn take_answer(&mut self, now_unix: i64) -> Option<(String, bool)> {
        let asked = self.asked.as_mut()?;
        if now_unix - asked.at_unix > ASK_TTL_SECS {
            self.asked = None;
            return None;
        }
        let sample = self.sample.as_ref()?;
        let mut left = Vec::new();
        for name in std::mem::take(&mut asked.waiting) {
            let Some(l) = sample.status.levels.iter().find(|l| l.level == name) else { continue };
            if l.last_pass_unix.is_none_or(|t| t < asked.at_unix) {
                left.push(name);
                continue;
            }
            let part = if l.failed > 0 {
                asked.error = true;
                let why = l.failures.first().map(|f| format!(": {}", f.reason)).unwrap_or_default();
                format!("{name} {} failed{why}", l.failed)
            } else if l.pending_files > 0 {
                format!("{name} {} still pending", l.pending_files)
            } else if l.last_success_unix.is_some_and(|t| t >= asked.at_unix) {
                format!("{name} stored, up to date")
            } else {
                format!("{name} up to date, nothing new to store")
            };
            asked.parts.push(part);
        }
        asked.waiting = left;
        if !asked.waiting.is_empty() {
            return None;
        }
        let asked = self.asked.take()?;
        Some((format!("{}: {}", asked.what, asked.parts.join(" · ")), asked.error))
    }

    fn set_live(&mut self, up: LiveUpload) {
        match self.live.iter_mut().find(|l| l.level == up.level) {
            Some(l) => *l = up,
            None => self.live.push(up),
        }
    }

    /// Uploads this console's own engine is running (quitting stops them; a daemon's go
    /// on without the console).
    pub fn own_uploads(&self) -> Vec<&LiveUpload> {
        let own = self.sample.as_ref().is_some_and(|s| s.source == crate::sync::EngineSource::Console);
        if own { self.live.iter().collect() } else { Vec::new() }
    }

    /// The upload in flight on a level.
    pub fn in_flight(&self, level: &str) -> Option<&LiveUpload> {
        self.live.iter().find(|l| l.level == level)
    }

    /// A level's failures as they stand now: a file being uploaded again (a retry under
    /// way, which the engine's events tell before the next ledger sample does) is no longer
    /// failed, so its old reason is not shown beside its progress. The count and the
    /// failures left.
    pub fn current_failures<'a>(
        &self,
        l: &'a crate::sync::status::LevelStatus,
    ) -> (u64, Vec<&'a crate::sync::status::FailureStatus>) {
        let retrying = self.in_flight(&l.level).map(|u| u.path.as_str());
        let (gone, left): (Vec<_>, Vec<_>) = l.failures.iter().partition(|f| Some(f.path.as_str()) == retrying);
        (l.failed.saturating_sub(gone.len() as u64), left)
    }

    /// The upload `c` cancels: the selected queue row when it is uploading, else the first
    /// upload in flight.
    pub fn cancel_target(&self, queue_open: bool) -> Option<(String, String)> {
        if queue_open
            && let Some(e) = self.sample.as_ref().and_then(|s| s.queue.get(self.queue_scroll))
            && e.state == crate::sync::ledger::UploadState::Uploading
        {
            return Some((e.path.clone(), e.level.clone()));
        }
        self.live.first().map(|l| (l.path.clone(), l.level.clone()))
    }

    pub fn scroll(&mut self, action: super::Action) {
        let n = self.sample.as_ref().map_or(0, |s| s.queue.len());
        let max = n.saturating_sub(1);
        self.queue_scroll = match action {
            super::Action::Up => self.queue_scroll.saturating_sub(1),
            super::Action::Down => (self.queue_scroll + 1).min(max),
            super::Action::PageUp => self.queue_scroll.saturating_sub(10),
            super::Action::PageDown => (self.queue_scroll + 10).min(max),
            _ => self.queue_scroll,
        };
    }
}

//! Idle detection and its cost. The machine is idle while every GPU is under
//! `idle.gpu_util_below_pct` and no training process runs (no GPU compute process, nothing
//! writing the training log). After `idle.after` the header says how long, what that cost
//! at the tier's hourly price, and the key to the checklist.
//!
//! Folded from whole GPU samples (their own timestamps) with no I/O, so a fake clock
//! drives it in tests. Before the console has seen any activity, "idle since" is estimated
//! from the newest of: the boot time, the training log's last write and the newest
//! checkpoint's (a console opened on a VM idle for hours says so at once); once it has
//! seen the machine busy, it is measured.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::config::IdleConfig;
use crate::gpu::{GpuSample, NvmlStatus};

/// What one sample says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// Busy, and why ("GPU 0 at 97%", "pid 4121 on GPU 0", "a process writes the log").
    Busy(String),
    Idle,
    /// Cannot be judged (no NVML), and why.
    Unknown(String),
}

/// Judges one GPU sample (plus whether a process writes the training log).
pub fn activity(sample: &GpuSample, log_writer: Option<bool>, cfg: &IdleConfig) -> Activity {
    match &sample.nvml {
        NvmlStatus::Ok { .. } => {}
        other => return Activity::Unknown(other.describe()),
    }
    if sample.gpus.is_empty() {
        return Activity::Unknown("no GPU found".into());
    }
    if let Some(p) = sample.processes().next() {
        return Activity::Busy(format!("pid {} on GPU {}", p.pid, p.gpu_index));
    }
    for g in &sample.gpus {
        match g.utilization_pct {
            Some(u) if u >= cfg.gpu_util_below_pct => return Activity::Busy(format!("GPU {} at {u}%", g.index)),
            None => return Activity::Unknown(format!("GPU {} reports no utilization", g.index)),
            _ => {}
        }
    }
    if log_writer == Some(true) {
        return Activity::Busy("a process writes the training log".into());
    }
    Activity::Idle
}

/// Follows idleness over samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdleTracker {
    /// The first observation of the current idle streak.
    first_idle: Option<SystemTime>,
    /// The activity floor last given (used until the console has seen the machine busy).
    floor: Option<SystemTime>,
    /// The console has seen the machine busy (from then on "since" is measured).
    seen_busy: bool,
    /// Why it cannot be judged, when it cannot.
    unknown: Option<String>,
    last_busy: Option<String>,
}

impl IdleTracker {
    /// Folds one observation taken `at`. `floor` is the estimate of when activity last
    /// happened (boot, last log write, newest checkpoint), used only until the console has
    /// seen the machine busy; it may rise as those facts arrive.
    pub fn observe(&mut self, at: SystemTime, activity: Activity, floor: Option<SystemTime>) {
        match activity {
            Activity::Busy(why) => {
                self.first_idle = None;
                self.seen_busy = true;
                self.unknown = None;
                self.last_busy = Some(why);
            }
            Activity::Unknown(why) => {
                self.first_idle = None;
                self.unknown = Some(why);
            }
            Activity::Idle => {
                self.unknown = None;
                self.first_idle.get_or_insert(at);
                self.floor = floor;
            }
        }
    }

    /// Idle since, when idle now.
    pub fn since(&self) -> Option<SystemTime> {
        let first = self.first_idle?;
        Some(match self.floor.filter(|_| !self.seen_busy) {
            // Only ever earlier than the first idle observation.
            Some(f) => f.min(first),
            None => first,
        })
    }

    /// Whether `since` is an estimate (no activity seen by this console yet).
    pub fn estimated(&self) -> bool {
        !self.seen_busy && self.floor.is_some()
    }

    /// The idle report at `now` for a machine of tier `tier`.
    pub fn status(&self, now: SystemTime, cfg: &IdleConfig, tier: Option<&str>) -> IdleStatus {
        let price = tier.and_then(|t| cfg.hourly_price.get(t)).copied();
        let mut s = IdleStatus {
            state: IdleState::Busy,
            since_unix: None,
            idle_seconds: 0,
            estimated: false,
            banner: false,
            after_seconds: cfg.after.as_secs(),
            tier: tier.map(str::to_string),
            hourly_price: price,
            currency: cfg.currency.clone(),
            cost_since: None,
            reason: self.last_busy.clone().unwrap_or_default(),
        };
        if let Some(why) = &self.unknown {
            s.state = IdleState::Unknown;
            s.reason = why.clone();
            return s;
        }
        let Some(since) = self.since() else { return s };
        let idle = now.duration_since(since).unwrap_or(Duration::ZERO);
        s.state = IdleState::Idle;
        s.since_unix = Some(crate::unixtime::secs(since));
        s.idle_seconds = idle.as_secs();
        s.estimated = self.estimated();
        s.banner = idle >= cfg.after;
        s.cost_since = price.map(|p| p * idle.as_secs_f64() / 3600.0);
        s.reason = format!("every GPU under {}% and no training process", cfg.gpu_util_below_pct);
        s
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleState {
    Idle,
    Busy,
    Unknown,
}

/// `status --json` → `idle`, and what the header banner shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleStatus {
    pub state: IdleState,
    pub since_unix: Option<u64>,
    pub idle_seconds: u64,
    /// `since_unix` is estimated from the boot time and the newest log or checkpoint write.
    pub estimated: bool,
    /// Idle for `idle.after` or longer: the console shows the banner.
    pub banner: bool,
    pub after_seconds: u64,
    pub tier: Option<String>,
    /// Price of an hour of this machine (`idle.hourly_price`), when known for its tier.
    pub hourly_price: Option<f64>,
    pub currency: String,
    /// Money spent while idle: idle hours times the hourly price.
    pub cost_since: Option<f64>,
    /// Why busy or unknown, or what idle means.
    pub reason: String,
}

impl IdleStatus {
    /// "idle 1h05m · $0.92 spent" for the header.
    pub fn banner_text(&self) -> String {
        let mut t = format!("idle {}", crate::util::duration(Duration::from_secs(self.idle_seconds)));
        if let Some(c) = self.cost_since {
            t.push_str(&format!(" · {}{c:.2} spent", self.currency));
        }
        t
    }
}

/// The activity floor: the newest of the boot time and the given write times.
pub fn floor(boot_unix: u64, writes: impl IntoIterator<Item = SystemTime>) -> Option<SystemTime> {
    let boot = UNIX_EPOCH + Duration::from_secs(boot_unix);
    Some(writes.into_iter().fold(boot, |a, t| a.max(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_only_until_busy() {
        let t = |s| UNIX_EPOCH + Duration::from_secs(s);
        let cfg = IdleConfig::default();
        let mut tr = IdleTracker::default();
        tr.observe(t(10_000), Activity::Idle, Some(t(4_000)));
        assert_eq!(tr.since(), Some(t(4_000)));
        let s = tr.status(t(10_000), &cfg, Some("tier1"));
        assert!(s.banner && s.estimated);
        assert!((s.cost_since.expect("priced") - 0.85 * 6000.0 / 3600.0).abs() < 1e-9);
        tr.observe(t(10_005), Activity::Busy("GPU 0 at 97%".into()), None);
        assert_eq!(tr.since(), None);
        tr.observe(t(10_010), Activity::Idle, Some(t(4_000)));
        assert_eq!(tr.since(), Some(t(10_010)), "measured once activity was seen");
        assert!(!tr.status(t(10_010), &cfg, None).estimated);
    }
}

//! Disk guard maths: growth rate from timestamped used-bytes samples and the time until a
//! fill level is reached at that rate.
//!

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Used bytes of one filesystem at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageSample {
    pub at: SystemTime,
    pub used_bytes: u64,
}

/// How the growth rate is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrowthParams {
    /// Only samples this recent are used.
    pub window: Duration,
    /// A fall in used bytes larger than this between two samples is a deletion (a prune):
    /// the series is cut there and the fall does not count as negative growth.
    pub drop_bytes: u64,
    /// Less observed time than this gives no estimate.
    pub min_span: Duration,
}

impl Default for GrowthParams {
    fn default() -> Self {
        Self { window: Duration::from_secs(3600), drop_bytes: 64 << 20, min_span: Duration::from_secs(60) }
    }
}

fn secs(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Least-squares slope (bytes per second) of one run of samples, and its time span.
fn slope(seg: &[(f64, f64)]) -> Option<(f64, f64)> {
    if seg.len() < 2 {
        return None;
    }
    let span = seg[seg.len() - 1].0 - seg[0].0;
    if span <= 0.0 {
        return None;
    }
    let n = seg.len() as f64;
    let t0 = seg[0].0;
    let mt = seg.iter().map(|s| s.0 - t0).sum::<f64>() / n;
    let mu = seg.iter().map(|s| s.1).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, u) in seg {
        let dt = t - t0 - mt;
        num += dt * (u - mu);
        den += dt * dt;
    }
    (den > 0.0).then(|| (num / den, span))
}

/// Growth in bytes per hour over the window ending at `now`; `None` without enough
/// samples. The window is cut into runs at every drop larger than `drop_bytes`; each run's
/// least-squares slope is weighted by its duration, so a prune neither hides the growth
/// before and after it nor shows up as shrinking. Negative when the disk really shrinks.
pub fn growth_bytes_per_hour(samples: &[UsageSample], now: SystemTime, p: &GrowthParams) -> Option<f64> {
    let start = now.checked_sub(p.window).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut pts: Vec<(f64, f64)> =
        samples.iter().filter(|s| s.at >= start && s.at <= now).map(|s| (secs(s.at), s.used_bytes as f64)).collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut runs: Vec<&[(f64, f64)]> = Vec::new();
    let mut begin = 0;
    for i in 1..pts.len() {
        if pts[i - 1].1 - pts[i].1 > p.drop_bytes as f64 {
            runs.push(&pts[begin..i]);
            begin = i;
        }
    }
    runs.push(&pts[begin..]);
    let (mut weighted, mut total) = (0.0, 0.0);
    for r in runs {
        if let Some((s, span)) = slope(r) {
            weighted += s * span;
            total += span;
        }
    }
    if total < p.min_span.as_secs_f64() || total <= 0.0 {
        return None;
    }
    Some(weighted / total * 3600.0)
}

/// Seconds until the filesystem reaches `fill` (0..=1 of used + available) at `rate`
/// bytes per hour: `Some(0)` when already there, `None` when not growing.
pub fn seconds_to_fill(used: u64, available: u64, fill: f64, rate_per_hour: Option<f64>) -> Option<u64> {
    let size = used as f64 + available as f64;
    let target = if fill >= 1.0 { size } else { fill * size };
    let gap = target - used as f64;
    if gap <= 0.0 {
        return Some(0);
    }
    let rate = rate_per_hour?;
    if rate.is_nan() || rate <= 0.0 || !rate.is_finite() {
        return None;
    }
    let s = (gap / (rate / 3600.0)).ceil();
    Some(if s >= u64::MAX as f64 { u64::MAX } else { s as u64 })
}

/// Growth and time to each level for one disk, as `status --json` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct DiskForecast {
    pub growth_bytes_per_hour: Option<f64>,
    pub seconds_to_warn: Option<u64>,
    pub seconds_to_critical: Option<u64>,
    pub seconds_to_full: Option<u64>,
}

/// Forecast from samples and the current space; `warn` and `critical` are fill fractions.
/// [`forecast`] for one sampled filesystem against the configured thresholds.
pub fn forecast_disk(
    samples: &[UsageSample],
    disk: &super::DiskInfo,
    t: super::Thresholds,
    now: SystemTime,
) -> DiskForecast {
    let p = GrowthParams::default();
    forecast(samples, disk.used_bytes, disk.available_bytes, t.warn_pct / 100.0, t.critical_pct / 100.0, now, &p)
}

pub fn forecast(
    samples: &[UsageSample],
    used: u64,
    available: u64,
    warn: f64,
    critical: f64,
    now: SystemTime,
    p: &GrowthParams,
) -> DiskForecast {
    let rate = growth_bytes_per_hour(samples, now, p);
    DiskForecast {
        growth_bytes_per_hour: rate,
        seconds_to_warn: seconds_to_fill(used, available, warn, rate),
        seconds_to_critical: seconds_to_fill(used, available, critical, rate),
        seconds_to_full: seconds_to_fill(used, available, 1.0, rate),
    }
}

/// A fixed-size history of samples for one disk; old samples fall out.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageHistory {
    cap: usize,
    samples: VecDeque<UsageSample>,
}

impl UsageHistory {
    pub fn new(cap: usize) -> Self {
        Self { cap: cap.max(2), samples: VecDeque::with_capacity(cap.max(2)) }
    }

    /// Add a sample (out-of-order samples are dropped).
    pub fn push(&mut self, s: UsageSample) {
        if self.samples.back().is_some_and(|b| b.at > s.at) {
            return;
        }
        if self.samples.len() == self.cap {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    pub fn samples(&self) -> Vec<UsageSample> {
        self.samples.iter().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1 << 30;

    fn at(t0: SystemTime, s: u64) -> SystemTime {
        t0 + Duration::from_secs(s)
    }

    fn series(t0: SystemTime, pts: &[(u64, u64)]) -> Vec<UsageSample> {
        pts.iter().map(|&(s, u)| UsageSample { at: at(t0, s), used_bytes: u }).collect()
    }

    #[test]
    fn steady_growth_is_measured() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // 1 GB every 10 minutes = 6 GB/h.
        let s = series(t0, &(0..=6).map(|i| (i * 600, 10 * GB + i * GB)).collect::<Vec<_>>());
        let r = growth_bytes_per_hour(&s, at(t0, 3600), &GrowthParams::default()).unwrap();
        assert!((r - 6.0 * GB as f64).abs() < 1.0, "{r}");
    }

    #[test]
    fn a_prune_does_not_look_like_shrinking() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // +1 GB per 10 min, then 30 GB pruned at 30 min, growth continues at the same rate.
        let mut pts = vec![(0, 50 * GB), (600, 51 * GB), (1200, 52 * GB), (1800, 53 * GB)];
        pts.extend([(1860, 23 * GB), (2400, 24 * GB - GB / 10), (3000, 25 * GB - GB / 10), (3600, 26 * GB - GB / 10)]);
        let r = growth_bytes_per_hour(&series(t0, &pts), at(t0, 3600), &GrowthParams::default()).unwrap();
        assert!(r > 5.5 * GB as f64 && r < 6.5 * GB as f64, "{}", r / GB as f64);
    }

    #[test]
    fn old_samples_leave_the_window_and_too_little_gives_none() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let s = series(t0, &[(0, 0), (10, 100 * GB), (7200, 100 * GB), (7230, 100 * GB)]);
        assert_eq!(growth_bytes_per_hour(&s, at(t0, 7230), &GrowthParams::default()), None);
        let p = GrowthParams { min_span: Duration::from_secs(10), ..Default::default() };
        assert_eq!(growth_bytes_per_hour(&s, at(t0, 7230), &p), Some(0.0));
        assert_eq!(growth_bytes_per_hour(&[], at(t0, 0), &p), None);
    }

    #[test]
    fn time_to_levels() {
        // 70 GB used of 100 GB, growing 10 GB/h.
        let rate = Some(10.0 * GB as f64);
        assert_eq!(seconds_to_fill(70 * GB, 30 * GB, 0.8, rate), Some(3600));
        assert_eq!(seconds_to_fill(70 * GB, 30 * GB, 0.9, rate), Some(7200));
        assert_eq!(seconds_to_fill(70 * GB, 30 * GB, 1.0, rate), Some(10800));
        assert_eq!(seconds_to_fill(70 * GB, 30 * GB, 0.5, rate), Some(0));
        assert_eq!(seconds_to_fill(70 * GB, 30 * GB, 1.0, Some(0.0)), None);
        assert_eq!(seconds_to_fill(70 * GB, 30 * GB, 1.0, Some(-5.0)), None);
        assert_eq!(seconds_to_fill(70 * GB, 30 * GB, 1.0, None), None);
        assert_eq!(seconds_to_fill(100 * GB, 0, 1.0, None), Some(0));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let f = forecast(
            &series(t0, &[(0, 60 * GB), (3600, 70 * GB)]),
            70 * GB,
            30 * GB,
            0.8,
            0.9,
            at(t0, 3600),
            &GrowthParams::default(),
        );
        assert_eq!(f.seconds_to_warn, Some(3600));
        assert_eq!(f.seconds_to_full, Some(10800));
        let j = serde_json::to_value(f).unwrap();
        assert_eq!(j["seconds_to_full"], 10800);
    }

    #[test]
    fn history_is_bounded_and_ordered() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = UsageHistory::new(3);
        for i in 0..5 {
            h.push(UsageSample { at: at(t0, i), used_bytes: i });
        }
        h.push(UsageSample { at: at(t0, 1), used_bytes: 99 });
        let s = h.samples();
        assert_eq!(s.iter().map(|x| x.used_bytes).collect::<Vec<_>>(), vec![2, 3, 4]);
    }
}

/// Disk usage samples kept across runs in `.opsconsole/disk-history.jsonl`, so a one-shot
/// `opsconsole status` can report a growth rate: the console's checkpoint collector and
/// every `status` call append to it. Best effort: on a full disk appends fail silently.
pub mod history_file {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use serde::{Deserialize, Serialize};

    use super::UsageSample;

    /// The file is rewritten with only the last `window` of samples when it grows past this.
    pub const MAX_BYTES: u64 = 512 * 1024;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Line {
        mount: String,
        at_unix: u64,
        used_bytes: u64,
    }

    use crate::unixtime::secs as unix;

    /// Samples per mount from the last `window` before `now`, oldest first.
    pub fn load(path: &Path, now: SystemTime, window: Duration) -> BTreeMap<String, Vec<UsageSample>> {
        let mut out: BTreeMap<String, Vec<UsageSample>> = BTreeMap::new();
        let Ok(text) = std::fs::read_to_string(path) else {
            return out;
        };
        let from = unix(now).saturating_sub(window.as_secs());
        for l in text.lines() {
            let Ok(line) = serde_json::from_str::<Line>(l) else { continue };
            if line.at_unix < from || line.at_unix > unix(now) {
                continue;
            }
            out.entry(line.mount).or_default().push(UsageSample {
                at: SystemTime::UNIX_EPOCH + Duration::from_secs(line.at_unix),
                used_bytes: line.used_bytes,
            });
        }
        for v in out.values_mut() {
            v.sort_by_key(|s| s.at);
        }
        out
    }

    /// Append samples (mount, used bytes) taken at `now`; compact the file when large.
    pub fn append(path: &Path, samples: &[(String, u64)], now: SystemTime, window: Duration) -> std::io::Result<()> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        if std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_BYTES) {
            let keep = load(path, now, window);
            let mut text = String::new();
            for (mount, v) in keep {
                for s in v {
                    let l = Line { mount: mount.clone(), at_unix: unix(s.at), used_bytes: s.used_bytes };
                    text.push_str(&serde_json::to_string(&l).map_err(std::io::Error::other)?);
                    text.push('\n');
                }
            }
            let tmp = path.with_extension("jsonl.tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, path)?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let mut text = String::new();
        for (mount, used) in samples {
            let l = Line { mount: mount.clone(), at_unix: unix(now), used_bytes: *used };
            text.push_str(&serde_json::to_string(&l).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        f.write_all(text.as_bytes())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trips_and_drops_old_samples() {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join(".opsconsole/disk-history.jsonl");
            let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
            let w = Duration::from_secs(3600);
            append(&p, &[("/".into(), 10)], t0, w).unwrap();
            append(&p, &[("/".into(), 20), ("/data".into(), 5)], t0 + Duration::from_secs(600), w).unwrap();
            append(&p, &[("/".into(), 30)], t0 + Duration::from_secs(4000), w).unwrap();
            let got = load(&p, t0 + Duration::from_secs(4000), w);
            assert_eq!(got["/"].iter().map(|s| s.used_bytes).collect::<Vec<_>>(), vec![20, 30]);
            assert_eq!(got["/data"].len(), 1);
        }
    }
}

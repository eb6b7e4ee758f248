//! The host's CPU, RAM and swap (sysinfo), as nvitop and btop show them beside the GPUs:
//! a dataloader that exhausts host RAM gets the trainer `Killed` by the kernel, and this is
//! where that shows coming.

use serde::Serialize;

/// One reading of the host.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct HostSample {
    pub taken_at_unix_ms: u64,
    /// Every CPU together, percent; `None` on the first reading (usage is measured between
    /// two readings).
    pub cpu_pct: Option<f32>,
    pub cpus: usize,
    pub memory_total_bytes: u64,
    /// What programs can still get without swapping (the kernel's MemAvailable).
    pub memory_available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
}

impl HostSample {
    /// RAM in use: total less available.
    pub fn memory_used_bytes(&self) -> u64 {
        self.memory_total_bytes.saturating_sub(self.memory_available_bytes)
    }

    /// RAM in use, percent of total (0 when the total is unknown).
    pub fn memory_pct(&self) -> f64 {
        if self.memory_total_bytes == 0 {
            return 0.0;
        }
        self.memory_used_bytes() as f64 * 100.0 / self.memory_total_bytes as f64
    }

    /// How worrying the memory is: RAM at or over 90% (or swap over half used) is
    /// critical, RAM at or over 80% (or any real use of swap, over 10%) a warning.
    pub fn memory_level(&self) -> crate::disk::Level {
        use crate::disk::Level;
        let swap_pct = if self.swap_total_bytes == 0 {
            0.0
        } else {
            self.swap_used_bytes as f64 * 100.0 / self.swap_total_bytes as f64
        };
        let ram = self.memory_pct();
        if ram >= 90.0 || swap_pct > 50.0 {
            Level::Critical
        } else if ram >= 80.0 || swap_pct > 10.0 {
            Level::Warn
        } else {
            Level::Ok
        }
    }
}

/// Reads the host; keeps the state CPU usage is measured from.
pub struct HostSampler {
    sys: sysinfo::System,
    first: bool,
}

impl Default for HostSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl HostSampler {
    pub fn new() -> Self {
        Self { sys: sysinfo::System::new(), first: true }
    }

    /// Whether a reading was taken (CPU use is measured from it).
    pub fn has_reading(&self) -> bool {
        !self.first
    }

    /// A reading now.
    pub fn sample(&mut self, now: std::time::SystemTime) -> HostSample {
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        let cpu = (!self.first).then(|| self.sys.global_cpu_usage());
        self.first = false;
        HostSample {
            taken_at_unix_ms: crate::unixtime::millis(now),
            cpu_pct: cpu,
            cpus: self.sys.cpus().len(),
            memory_total_bytes: self.sys.total_memory(),
            memory_available_bytes: self.sys.available_memory(),
            swap_total_bytes: self.sys.total_swap(),
            swap_used_bytes: self.sys.used_swap(),
        }
    }
}

/// The kernel's CPU time counters, every CPU together (the `cpu` line of `/proc/stat`), in
/// clock ticks: what sysinfo measures CPU use from, counted as it counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// user, nice, system, irq, softirq and steal (guest time is inside user and nice).
    pub busy: u64,
    /// busy, idle and iowait.
    pub total: u64,
}

impl CpuTimes {
    /// The counters from `/proc/stat`'s text; `None` without a well-formed `cpu` line.
    pub fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line.split_ascii_whitespace().skip(1).map_while(|f| f.parse().ok()).collect();
        let [user, nice, system, idle, iowait, irq, softirq] = *v.get(..7)?.first_chunk()?;
        let steal = v.get(7).copied().unwrap_or(0);
        let busy = user + nice + system + irq + softirq + steal;
        Some(Self { busy, total: busy + idle + iowait })
    }

    /// This host's counters now.
    pub fn read() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// Percent of all CPUs busy between `before` and these counters; `None` when no tick
    /// passed (or the counters went back: another boot).
    pub fn usage_since(&self, before: &Self) -> Option<f32> {
        let total = self.total.checked_sub(before.total).filter(|&t| t > 0)?;
        let busy = self.busy.checked_sub(before.busy)?.min(total);
        Some((busy as f64 * 100.0 / total as f64) as f32)
    }
}

/// A one-shot `status` measures CPU use since the previous one of the same workspace when
/// that was at least this long ago (sysinfo's minimum interval)...
pub const KEPT_CPU_MIN_AGE_MS: u64 = 200;
/// ...and at most this long ago; otherwise over the minimum interval, waiting for it.
pub const KEPT_CPU_MAX_AGE_MS: u64 = 15 * 60 * 1000;

/// Where a workspace keeps the CPU counters of its last `status`:
/// `<workspace>/.opsconsole/hostcpu`.
pub fn kept_cpu_path(workspace: &std::path::Path) -> std::path::PathBuf {
    workspace.join(crate::checkpoints::roots::STATE_DIR).join("hostcpu")
}

/// Readings kept at most, each at least [`KEPT_CPU_SPACING_MS`] after the one before: calls
/// back to back (a script in a loop, `hyperfine`) still find one 0.2-0.6 s old.
const KEPT_CPU_READINGS: usize = 8;
const KEPT_CPU_SPACING_MS: u64 = 50;

/// CPU use since the newest reading kept at `path` by earlier calls that is from
/// [`KEPT_CPU_MIN_AGE_MS`] to [`KEPT_CPU_MAX_AGE_MS`] old. The counters now (`now`, taken at
/// `now_ms`) are kept with the others (unless one was kept under
/// [`KEPT_CPU_SPACING_MS`] ago). A call made every few seconds by a script or cron thus
/// costs no wait; a missing, unreadable, stale or unwritable file only means `None` (the
/// caller measures over the minimum interval).
pub fn usage_since_kept(path: &std::path::Path, now: CpuTimes, now_ms: u64) -> Option<f32> {
    let mut kept: Vec<(u64, CpuTimes)> = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            let body = t.strip_prefix("opsconsole-hostcpu 2\n")?;
            body.lines()
                .map(|l| {
                    let mut f = l.split_ascii_whitespace().map(|v| v.parse::<u64>().ok());
                    let (ms, busy, total) = (f.next()??, f.next()??, f.next()??);
                    Some((ms, CpuTimes { busy, total }))
                })
                .collect()
        })
        .unwrap_or_default();
    // Only readings from the past, oldest first.
    kept.retain(|&(ms, _)| ms <= now_ms && now_ms - ms <= KEPT_CPU_MAX_AGE_MS);
    kept.sort_by_key(|&(ms, _)| ms);
    let base = kept.iter().rev().find(|&&(ms, _)| now_ms - ms >= KEPT_CPU_MIN_AGE_MS).map(|&(_, c)| c);
    if kept.last().is_none_or(|&(ms, _)| now_ms - ms >= KEPT_CPU_SPACING_MS) {
        kept.push((now_ms, now));
    }
    let drop = kept.len().saturating_sub(KEPT_CPU_READINGS);
    kept.drain(..drop);
    let mut body = String::from("opsconsole-hostcpu 2\n");
    for (ms, c) in &kept {
        body.push_str(&format!("{ms} {} {}\n", c.busy, c.total));
    }
    let written = (|| -> std::io::Result<()> {
        use std::io::Write;
        let dir = path.parent().ok_or_else(|| std::io::Error::other("no folder"))?;
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".hostcpu-").suffix(".tmp").tempfile_in(dir)?;
        tmp.write_all(body.as_bytes())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    })();
    if let Err(e) = written {
        tracing::debug!("host: could not keep the CPU counters in {}: {e}", path.display());
    }
    now.usage_since(&base?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_counters_and_use_between_them() {
        let stat = "cpu  100 5 50 800 40 3 2 10 7 0\ncpu0 50 2 25 400 20 1 1 5 3 0\nintr 1 2\n";
        let a = CpuTimes::parse(stat).expect("cpu line");
        assert_eq!(a, CpuTimes { busy: 100 + 5 + 50 + 3 + 2 + 10, total: 170 + 800 + 40 });
        // Older kernels without steal.
        assert_eq!(CpuTimes::parse("cpu 1 2 3 4 5 6 7\n"), Some(CpuTimes { busy: 19, total: 28 }));
        assert_eq!(CpuTimes::parse("cpu 1 2 3\n"), None);
        assert_eq!(CpuTimes::parse("cpu0 1 2 3 4 5 6 7 8\n"), None, "only the all-CPU line");
        let b = CpuTimes { busy: a.busy + 30, total: a.total + 120 };
        assert_eq!(b.usage_since(&a), Some(25.0));
        assert_eq!(a.usage_since(&a), None, "no tick passed");
        assert_eq!(a.usage_since(&b), None, "counters went back");
        assert!(CpuTimes::read().is_some(), "this host has /proc/stat");
    }

    #[test]
    fn cpu_use_since_the_kept_counters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = kept_cpu_path(dir.path());
        let c = |busy: u64, total: u64| CpuTimes { busy, total };
        // Nothing kept yet: no use, the counters are kept.
        assert_eq!(usage_since_kept(&path, c(1000, 10_000), 1_000_000), None);
        assert_eq!(std::fs::read_to_string(&path).expect("kept"), "opsconsole-hostcpu 2\n1000000 1000 10000\n");
        // A second later: use since then.
        assert_eq!(usage_since_kept(&path, c(1050, 10_200), 1_001_000), Some(25.0));
        // 10 ms later: measured from the reading before (1.01 s), and not kept (under the
        // spacing).
        let u = usage_since_kept(&path, c(1051, 10_202), 1_001_010).expect("from the first reading");
        assert!((u - 51.0 * 100.0 / 202.0).abs() < 1e-3, "{u}");
        assert_eq!(std::fs::read_to_string(&path).expect("kept").lines().count(), 3);
        // Too soon after every reading kept: none.
        let other = kept_cpu_path(&dir.path().join("other"));
        assert_eq!(usage_since_kept(&other, c(1000, 10_000), 1_000_000), None);
        assert_eq!(usage_since_kept(&other, c(1010, 10_040), 1_000_100), None);
        assert_eq!(usage_since_kept(&other, c(1020, 10_080), 1_000_200), Some(25.0));
        // Calls back to back, 7 ms apart: once the first is 0.2 s old, every call measures
        // from a reading 0.2 s old or a little more, and at most eight are kept.
        let mut t = 1_001_010;
        let mut measured = 0;
        for n in 0..200u64 {
            t += 7;
            if let Some(u) = usage_since_kept(&path, c(1051 + n, 10_202 + 4 * n), t) {
                assert!((0.0..=100.0).contains(&u), "{u}");
                measured += 1;
            }
        }
        assert!(measured >= 170, "calls back to back measure: {measured} of 200");
        let kept = std::fs::read_to_string(&path).expect("kept");
        assert!(kept.lines().count() <= 1 + KEPT_CPU_READINGS, "{kept}");
        // Readings too old, or from the future (the clock went back), are not used.
        assert_eq!(usage_since_kept(&path, c(5000, 50_000), t + KEPT_CPU_MAX_AGE_MS + 1), None);
        assert_eq!(usage_since_kept(&path, c(5000, 50_000), 5), None);
        // A damaged file is no reading, and is replaced.
        std::fs::write(&path, "opsconsole-hostcpu 2\n12 x\n").expect("damage");
        assert_eq!(usage_since_kept(&path, c(1000, 10_000), 1_000_000), None);
        assert_eq!(usage_since_kept(&path, c(1050, 10_200), 1_001_000), Some(25.0));
        // A folder it cannot write to: no use, and no error.
        let blocked = dir.path().join("file-not-folder");
        std::fs::write(&blocked, "").expect("file");
        assert_eq!(usage_since_kept(&kept_cpu_path(&blocked), c(1050, 10_200), 1_001_000), None);
    }

    #[test]
    fn reads_this_host() {
        let mut s = HostSampler::new();
        let a = s.sample(std::time::SystemTime::now());
        assert_eq!(a.cpu_pct, None, "no usage from one reading");
        assert!(a.memory_total_bytes > 0 && a.memory_available_bytes <= a.memory_total_bytes, "{a:?}");
        assert!(a.swap_used_bytes <= a.swap_total_bytes.max(a.swap_used_bytes));
        // /proc/meminfo says the same total.
        let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
        let kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("MemTotal");
        assert_eq!(a.memory_total_bytes, kib * 1024);
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let b = s.sample(std::time::SystemTime::now());
        let cpu = b.cpu_pct.expect("usage from the second reading");
        assert!((0.0..=100.0).contains(&cpu), "{cpu}");
        assert!(b.cpus >= 1);
    }

    #[test]
    fn memory_levels() {
        use crate::disk::Level;
        let gib = 1u64 << 30;
        let h = |avail: u64, swap_used: u64| HostSample {
            memory_total_bytes: 64 * gib,
            memory_available_bytes: avail * gib,
            swap_total_bytes: 8 * gib,
            swap_used_bytes: swap_used * gib / 10,
            ..Default::default()
        };
        assert_eq!(h(40, 0).memory_level(), Level::Ok);
        assert_eq!(h(12, 0).memory_level(), Level::Warn); // 81%
        assert_eq!(h(6, 0).memory_level(), Level::Critical); // 90.6%
        assert_eq!(h(40, 10).memory_level(), Level::Warn); // 1 GiB of 8 swapped
        assert_eq!(h(40, 50).memory_level(), Level::Critical);
        assert_eq!(h(40, 0).memory_used_bytes(), 24 * gib);
        assert_eq!(HostSample::default().memory_pct(), 0.0);
    }
}

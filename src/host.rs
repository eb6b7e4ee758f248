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

#[cfg(test)]
mod tests {
    use super::*;

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

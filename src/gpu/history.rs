//! Fixed-length history rings per GPU (VRAM, utilization, power) and per GPU process
//! (VRAM), for sparklines and the process details popup.

use std::collections::{BTreeMap, VecDeque};

use super::config::GpuConfig;
use super::sample::GpuSample;

/// One GPU at one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPoint {
    pub at_unix_ms: u64,
    pub vram_used_bytes: Option<u64>,
    pub utilization_pct: Option<u32>,
    pub power_draw_mw: Option<u32>,
}

/// History of every GPU and every GPU process, bounded in length and in age.
#[derive(Debug, Clone)]
pub struct GpuHistory {
    len: usize,
    window_ms: u64,
    gpus: BTreeMap<u32, VecDeque<HistoryPoint>>,
    /// (gpu index, pid) -> (time, VRAM bytes).
    procs: BTreeMap<(u32, u32), VecDeque<(u64, u64)>>,
}

impl GpuHistory {
    /// Rings of `len` points covering at most `window_ms`.
    pub fn new(len: usize, window_ms: u64) -> Self {
        Self { len: len.max(2), window_ms, gpus: BTreeMap::new(), procs: BTreeMap::new() }
    }

    /// Rings sized from config: `history_minutes` at `sample_ms`.
    pub fn from_config(config: &GpuConfig) -> Self {
        Self::new(config.history_len(), config.history_minutes.saturating_mul(60_000))
    }

    /// Ring length in points.
    pub fn capacity(&self) -> usize {
        self.len
    }

    /// Fold one sample in. GPUs that vanished keep their history (they may come back);
    /// processes that ended are forgotten.
    pub fn push(&mut self, sample: &GpuSample) {
        let now = sample.taken_at_unix_ms;
        let oldest = now.saturating_sub(self.window_ms);
        for gpu in &sample.gpus {
            let ring = self.gpus.entry(gpu.index).or_default();
            push_bounded(
                ring,
                self.len,
                HistoryPoint {
                    at_unix_ms: now,
                    vram_used_bytes: gpu.memory_used_bytes,
                    utilization_pct: gpu.utilization_pct,
                    power_draw_mw: gpu.power_draw_mw,
                },
            );
            while ring.front().is_some_and(|p| p.at_unix_ms < oldest) {
                ring.pop_front();
            }
        }
        self.procs.retain(|key, _| sample.processes().any(|p| (p.gpu_index, p.pid) == *key));
        for p in sample.processes() {
            let ring = self.procs.entry((p.gpu_index, p.pid)).or_default();
            push_bounded(ring, self.len, (now, p.used_bytes.unwrap_or(0)));
            while ring.front().is_some_and(|(t, _)| *t < oldest) {
                ring.pop_front();
            }
        }
    }

    /// Points of one GPU, oldest first.
    pub fn gpu(&self, index: u32) -> impl Iterator<Item = &HistoryPoint> {
        self.gpus.get(&index).into_iter().flatten()
    }

    /// VRAM used, oldest first (missing readings as 0), for a sparkline.
    pub fn vram_series(&self, index: u32) -> Vec<u64> {
        self.gpu(index).map(|p| p.vram_used_bytes.unwrap_or(0)).collect()
    }

    /// Utilization percent, oldest first.
    pub fn utilization_series(&self, index: u32) -> Vec<u64> {
        self.gpu(index).map(|p| u64::from(p.utilization_pct.unwrap_or(0))).collect()
    }

    /// Power draw in milliwatts, oldest first; empty when the GPU never reported it.
    pub fn power_series(&self, index: u32) -> Vec<u64> {
        if self.gpu(index).all(|p| p.power_draw_mw.is_none()) {
            return Vec::new();
        }
        self.gpu(index).map(|p| u64::from(p.power_draw_mw.unwrap_or(0))).collect()
    }

    /// VRAM of one process on one GPU, (time, bytes) oldest first.
    pub fn process(&self, gpu_index: u32, pid: u32) -> impl Iterator<Item = &(u64, u64)> {
        self.procs.get(&(gpu_index, pid)).into_iter().flatten()
    }
}

fn push_bounded<T>(ring: &mut VecDeque<T>, len: usize, item: T) {
    if ring.len() == len {
        ring.pop_front();
    }
    ring.push_back(item);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::sample::{GpuDevice, GpuProcess, NvmlStatus};

    fn sample(t_ms: u64, used: u64, pids: &[u32], power: Option<u32>) -> GpuSample {
        GpuSample {
            taken_at_unix_ms: t_ms,
            nvml: NvmlStatus::Ok { driver_version: "x".into() },
            gpus: vec![GpuDevice {
                index: 0,
                name: "NVIDIA L4".into(),
                uuid: None,
                memory_used_bytes: Some(used),
                memory_total_bytes: Some(1 << 34),
                utilization_pct: Some((used % 101) as u32),
                memory_utilization_pct: None,
                temperature_c: None,
                power_draw_mw: power,
                power_limit_mw: None,
                processes: pids
                    .iter()
                    .map(|&pid| GpuProcess {
                        pid,
                        gpu_index: 0,
                        used_bytes: Some(used),
                        command: None,
                        user: None,
                        uid: None,
                        start_time_unix_s: None,
                        start_ticks: None,
                        cwd: None,
                        sm_util_pct: None,
                    })
                    .collect(),
                processes_error: None,
                error: None,
            }],
        }
    }

    #[test]
    fn fifteen_minutes_at_one_second_are_kept_and_no_more() {
        let cfg = GpuConfig::default();
        let mut h = GpuHistory::from_config(&cfg);
        for i in 0..2000u64 {
            h.push(&sample(i * 1000, i, &[7], Some(70_000)));
        }
        let v = h.vram_series(0);
        assert_eq!(v.len(), 901);
        assert_eq!(*v.last().expect("newest"), 1999);
        assert_eq!(v[0], 1999 - 900, "covers exactly 15 minutes");
        assert_eq!(h.process(0, 7).count(), 901);
        assert_eq!(h.power_series(0).len(), 901);
    }

    #[test]
    fn old_points_age_out_after_a_gap_and_ended_processes_are_dropped() {
        let mut h = GpuHistory::new(100, 60_000);
        h.push(&sample(0, 1, &[1, 2], None));
        h.push(&sample(1_000, 2, &[1], None));
        assert_eq!(h.process(0, 2).count(), 0);
        assert_eq!(h.process(0, 1).count(), 2);
        // The collector was paused for two minutes: the old points are out of the window.
        h.push(&sample(121_000, 3, &[1], None));
        assert_eq!(h.vram_series(0), vec![3]);
        assert!(h.power_series(0).is_empty(), "no power reading: no series");
    }
}

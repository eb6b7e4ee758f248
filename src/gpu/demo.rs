//! The GPU of `opsconsole demo`: no NVML, a simulated L4 whose compute process is the
//! demo's simulated trainer.

use std::path::PathBuf;

use super::sample::{GpuDevice, GpuProcess, GpuSample, NvmlStatus};

/// The demo's GPU: a simulated NVIDIA L4 whose compute process is the simulated trainer.
/// The trainer is a real process, so its command line, owner and start time come from
/// /proc as on a real machine; the VRAM, utilization, temperature and power are made up
/// (the driver version says "demo"). The job loads its model for 20 s, then trains near
/// 16 GiB with a spike to 18.5 GiB every 45 s: "near" tier 1's 20 GiB budget.
pub struct DemoGpu {
    /// The file holding the trainer's pid.
    pid_file: PathBuf,
    started: std::time::SystemTime,
    procs: super::procinfo::ProcReader,
}

impl DemoGpu {
    /// The demo GPU whose process is the one whose pid is in `pid_file`.
    pub fn new(pid_file: PathBuf, started: std::time::SystemTime) -> Self {
        Self { pid_file, started, procs: super::procinfo::ProcReader::default() }
    }

    pub fn sample(&mut self, now: std::time::SystemTime) -> crate::gpu::GpuSample {
        const GIB: f64 = (1u64 << 30) as f64;
        let t = now.duration_since(self.started).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let loading = t < 20.0;
        let job_gib = if loading {
            1.5 + 14.5 * t / 20.0
        } else {
            let spike = if (t as u64) % 45 < 5 { 2.5 } else { 0.0 };
            16.0 + 0.4 * (t / 7.0).sin() + spike
        };
        let job = (job_gib * GIB) as u64;
        let pid = std::fs::read_to_string(&self.pid_file).ok().and_then(|s| s.trim().parse::<u32>().ok());
        // A trainer that ended (stopped with K, say) frees its VRAM, as on a real GPU.
        let processes: Vec<GpuProcess> = pid
            .map(|pid| (pid, self.procs.info(pid)))
            .filter(|(_, info)| info.command.is_some())
            .map(|(pid, info)| GpuProcess::new(pid, 0, Some(job), info))
            .into_iter()
            .collect();
        let job = if processes.is_empty() { 0 } else { job };
        let warm = (t / 120.0).min(1.0);
        let util = if loading { 3 } else { 94 + ((t * 1.3) as u32 % 6) };
        GpuSample {
            taken_at_unix_ms: crate::unixtime::millis(now),
            nvml: NvmlStatus::Ok { driver_version: "demo".into() },
            gpus: vec![GpuDevice {
                index: 0,
                name: "NVIDIA L4".into(),
                uuid: None,
                memory_used_bytes: Some(job + 300 * 1024 * 1024),
                memory_total_bytes: Some(23034 * 1024 * 1024),
                utilization_pct: Some(util),
                memory_utilization_pct: Some(if loading { 1 } else { 55 + util % 7 }),
                temperature_c: Some(48 + (22.0 * warm) as u32),
                power_draw_mw: Some(if loading { 18_000 } else { 62_000 + 1_000 * (util % 10) }),
                power_limit_mw: Some(72_000),
                processes,
                processes_error: None,
                error: None,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_demo_gpu_loads_then_trains_near_the_tier1_budget() {
        let dir = tempfile::tempdir().expect("dir");
        let pid_file = dir.path().join("trainer.pid");
        fs::write(&pid_file, std::process::id().to_string()).expect("pid");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_867_200);
        let mut g = DemoGpu::new(pid_file.clone(), t0);
        let cfg = crate::gpu::GpuConfig::default();
        let mut fit = crate::gpu::FitTracker::new();
        let mut verdicts = Vec::new();
        for s in (0..120).step_by(5) {
            let sample = g.sample(t0 + Duration::from_secs(s));
            assert_eq!(sample.gpus[0].processes[0].pid, std::process::id());
            assert!(sample.gpus[0].processes[0].command.is_some(), "real /proc facts");
            verdicts.push(fit.update(&cfg, &sample, None).expect("fit").verdict);
        }
        assert_eq!(verdicts[0], crate::gpu::Verdict::Fits);
        assert_eq!(verdicts.last(), Some(&crate::gpu::Verdict::Near), "{verdicts:?}");
        // The trainer ends: no process, its VRAM is freed.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let gone = child.id();
        child.wait().expect("reap");
        fs::write(&pid_file, gone.to_string()).expect("pid");
        let sample = g.sample(t0 + Duration::from_secs(130));
        assert!(sample.gpus[0].processes.is_empty());
        assert_eq!(sample.gpus[0].memory_used_bytes, Some(300 * 1024 * 1024));
    }
}

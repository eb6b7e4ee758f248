//! Tiers: which class of machine this is, and whether the running job fits its budget.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::{GpuConfig, TierConfig, tier_regex};
use super::sample::{GpuProcess, GpuSample};

/// How a VRAM figure compares with a tier's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Under 90% of the budget.
    Fits,
    /// From 90% up to and including 100% of the budget.
    Near,
    /// Over the budget.
    Exceeds,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Fits => "fits",
            Verdict::Near => "near",
            Verdict::Exceeds => "exceeds",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `fits` under 90% of `budget`, `near` from 90% to 100%, `exceeds` above.
pub fn verdict(used_bytes: u64, budget_bytes: u64) -> Verdict {
    let used = used_bytes as u128;
    let budget = budget_bytes as u128;
    if used * 10 < budget * 9 {
        Verdict::Fits
    } else if used <= budget {
        Verdict::Near
    } else {
        Verdict::Exceeds
    }
}

/// The tier a GPU belongs to: the tiers whose pattern matches its name and whose budget
/// fits in its memory, the one whose capacity is closest to its memory. Without a memory
/// figure, the first tier whose pattern matches.
pub fn detect_tier<'a>(tiers: &'a [TierConfig], gpu_name: &str, total_bytes: Option<u64>) -> Option<&'a TierConfig> {
    let matching = tiers.iter().filter(|t| tier_regex(&t.gpu_pattern).map(|re| re.is_match(gpu_name)).unwrap_or(false));
    match total_bytes {
        None => matching.into_iter().next(),
        Some(total) => matching.filter(|t| t.budget_bytes <= total).min_by_key(|t| t.capacity_bytes.abs_diff(total)),
    }
}

/// The machine's tier: the one forced in config, else the tier of GPU 0.
pub fn machine_tier<'a>(config: &'a GpuConfig, sample: &GpuSample) -> Option<&'a TierConfig> {
    if let Some(name) = &config.tier {
        return config.tier_named(name);
    }
    let gpu = sample.gpus.first()?;
    detect_tier(&config.tiers, &gpu.name, gpu.memory_total_bytes)
}

/// Tier detection that compiles the tier patterns once and remembers each GPU model's
/// tier (names and memory of GPUs do not change while the console runs).
#[derive(Debug, Clone, Default)]
pub struct TierDetector {
    /// The tiers the answers below were computed for.
    tiers: Vec<TierConfig>,
    /// (GPU name, memory) -> tier name.
    answers: Vec<(String, Option<u64>, Option<String>)>,
}

impl TierDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// [`detect_tier`], remembered.
    pub fn detect<'a>(
        &mut self,
        tiers: &'a [TierConfig],
        gpu_name: &str,
        total_bytes: Option<u64>,
    ) -> Option<&'a TierConfig> {
        if self.tiers.as_slice() != tiers {
            self.tiers = tiers.to_vec();
            self.answers.clear();
        }
        let name = match self.answers.iter().find(|(n, t, _)| n == gpu_name && *t == total_bytes) {
            Some((_, _, tier)) => tier.clone(),
            None => {
                let tier = detect_tier(tiers, gpu_name, total_bytes).map(|t| t.name.clone());
                self.answers.push((gpu_name.to_string(), total_bytes, tier.clone()));
                tier
            }
        };
        let name = name?;
        tiers.iter().find(|t| t.name == name)
    }

    /// [`machine_tier`], remembered.
    pub fn machine_tier<'a>(&mut self, config: &'a GpuConfig, sample: &GpuSample) -> Option<&'a TierConfig> {
        if let Some(name) = &config.tier {
            return config.tier_named(name);
        }
        let gpu = sample.gpus.first()?;
        self.detect(&config.tiers, &gpu.name, gpu.memory_total_bytes)
    }
}

/// Which processes were counted as the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobScope {
    /// Processes started from the workspace (working folder or a path argument inside it).
    Workspace,
    /// No process matched the workspace: every compute process.
    AllProcesses,
    /// No compute process at all.
    NoProcesses,
    /// The device's used memory: NVML's process list does not explain it (a container or
    /// VM often sees a partial or empty list), so the whole device is judged.
    Device,
}

/// Device memory the process list may leave unexplained before the device is judged
/// instead: the driver's own reservation and contexts NVML does not list per process.
pub const UNEXPLAINED_SLACK_BYTES: u64 = 1 << 30;

/// The live job's VRAM against the current tier's budget (`status --json` `tier_fit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierFit {
    /// Tier name, e.g. `tier1`.
    pub tier: String,
    pub label: String,
    pub budget_bytes: u64,
    /// The job's VRAM now on the GPU where it holds the most (a tier's budget is per GPU).
    pub used_bytes: u64,
    /// The highest `used_bytes` since the job started.
    pub peak_bytes: u64,
    /// The peak against the budget.
    pub verdict: Verdict,
    pub scope: JobScope,
    pub pids: Vec<u32>,
    pub gpu_index: Option<u32>,
    /// One line of advice when the job exceeds its tier.
    pub advice: Option<String>,
    /// With `scope: "device"`: the device's used memory, and how much of it the listed
    /// processes account for.
    #[serde(default)]
    pub device_used_bytes: Option<u64>,
    #[serde(default)]
    pub listed_bytes: Option<u64>,
}

impl TierFit {
    /// Why the fit is judged by the device, in words (`None` unless `scope` is `device`).
    pub fn device_note(&self) -> Option<String> {
        let (Some(used), Some(listed)) = (self.device_used_bytes, self.listed_bytes) else { return None };
        (self.scope == JobScope::Device).then(|| {
            // A container or VM sees a partial list; the device's figure is the truth.
            format!(
                "NVML lists {:.1} of {} used (processes hidden here): whole GPU judged",
                listed as f64 / (1u64 << 30) as f64,
                fmt_gib(used)
            )
        })
    }
}

/// Follows the job across samples to keep its peak.
#[derive(Debug, Clone, Default)]
pub struct FitTracker {
    /// (start ticks, pid) of the job's oldest process: names the job.
    job: Option<(u64, u32)>,
    peak_bytes: u64,
    detector: TierDetector,
}

impl FitTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fold one sample in. `workspace` should be canonical (as /proc shows paths).
    /// `None` when NVML gave no GPUs or no tier applies (see [`machine_tier`]).
    pub fn update(&mut self, config: &GpuConfig, sample: &GpuSample, workspace: Option<&Path>) -> Option<TierFit> {
        if sample.gpus.is_empty() {
            return None;
        }
        let in_workspace: Vec<&GpuProcess> = match workspace {
            Some(ws) => sample.processes().filter(|p| is_in(p, ws)).collect(),
            None => Vec::new(),
        };
        let (scope, job): (JobScope, Vec<&GpuProcess>) = if !in_workspace.is_empty() {
            (JobScope::Workspace, in_workspace)
        } else {
            let all: Vec<&GpuProcess> = sample.processes().collect();
            if all.is_empty() { (JobScope::NoProcesses, all) } else { (JobScope::AllProcesses, all) }
        };

        // The job's share of each GPU; its size is the largest share.
        let mut per_gpu: Vec<(u32, u64)> = Vec::new();
        for p in &job {
            let bytes = p.used_bytes.unwrap_or(0);
            match per_gpu.iter_mut().find(|(g, _)| *g == p.gpu_index) {
                Some((_, b)) => *b += bytes,
                None => per_gpu.push((p.gpu_index, bytes)),
            }
        }
        let mut busiest = per_gpu.iter().copied().max_by_key(|&(g, b)| (b, u32::MAX - g));
        let mut used_bytes = busiest.map(|(_, b)| b).unwrap_or(0);

        // Memory the process list does not explain (hidden processes in a container or
        // VM): the device's used memory is the figure, whoever holds it.
        let unexplained = sample
            .gpus
            .iter()
            .filter_map(|g| {
                let used = g.memory_used_bytes?;
                let listed: u64 =
                    sample.processes().filter(|p| p.gpu_index == g.index).filter_map(|p| p.used_bytes).sum();
                (used.saturating_sub(listed) > UNEXPLAINED_SLACK_BYTES).then_some((g.index, used, listed))
            })
            .max_by_key(|&(g, used, _)| (used, u32::MAX - g));
        let mut scope = scope;
        let mut device = None;
        if let Some((gpu, used, listed)) = unexplained
            && used > used_bytes
        {
            scope = JobScope::Device;
            busiest = Some((gpu, used));
            used_bytes = used;
            device = Some((used, listed));
        }

        if !job.is_empty() {
            let key = job.iter().map(|p| (p.start_ticks.unwrap_or(0), p.pid)).min();
            if key != self.job {
                self.job = key;
                self.peak_bytes = 0;
            }
        }
        self.peak_bytes = self.peak_bytes.max(used_bytes);

        let busiest_gpu = busiest.and_then(|(gpu, _)| sample.gpus.iter().find(|g| g.index == gpu));
        let tier = match (&config.tier, busiest_gpu) {
            (Some(name), _) => config.tier_named(name),
            (None, Some(g)) => match self.detector.detect(&config.tiers, &g.name, g.memory_total_bytes) {
                Some(t) => Some(t),
                None => self.detector.machine_tier(config, sample),
            },
            (None, None) => self.detector.machine_tier(config, sample),
        }?;

        let v = verdict(self.peak_bytes, tier.budget_bytes);
        let mut pids: Vec<u32> = job.iter().map(|p| p.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        Some(TierFit {
            tier: tier.name.clone(),
            label: tier.display_label().to_string(),
            budget_bytes: tier.budget_bytes,
            used_bytes,
            peak_bytes: self.peak_bytes,
            verdict: v,
            scope,
            pids,
            gpu_index: busiest.map(|(g, _)| g),
            advice: advice(&config.tiers, tier, self.peak_bytes, v),
            device_used_bytes: device.map(|(u, _)| u),
            listed_bytes: device.map(|(_, l)| l),
        })
    }
}

/// True when the process was started from inside `workspace`: its working folder, or an
/// absolute path on its command line, lies inside it.
pub fn is_in(p: &GpuProcess, workspace: &Path) -> bool {
    if p.cwd.as_deref().is_some_and(|c| c.starts_with(workspace)) {
        return true;
    }
    p.command.as_deref().is_some_and(|cmd| {
        cmd.split_whitespace()
            .map(|w| w.split_once('=').map_or(w, |(_, v)| v))
            .any(|w| w.starts_with('/') && Path::new(w).starts_with(workspace))
    })
}

/// One line when a job exceeds its tier: the smallest tier whose budget holds the peak,
/// reached through an airlock bundle; or, when none does, to shrink the job.
pub fn advice(tiers: &[TierConfig], current: &TierConfig, peak_bytes: u64, v: Verdict) -> Option<String> {
    if v != Verdict::Exceeds {
        return None;
    }
    let bigger =
        tiers.iter().filter(|t| t.name != current.name && t.budget_bytes >= peak_bytes).min_by_key(|t| t.budget_bytes);
    Some(match bigger {
        Some(t) => format!(
            "move this job to {} ({}) with an airlock bundle: its peak {} is over {}'s {} budget",
            t.name,
            t.display_label(),
            fmt_gib(peak_bytes),
            current.name,
            fmt_gib(current.budget_bytes),
        ),
        None => format!(
            "shrink this job (smaller batch, gradient checkpointing, LoRA): its peak {} is over \
             every tier's budget",
            fmt_gib(peak_bytes)
        ),
    })
}

/// Bytes as GiB with one decimal ("18.5 GiB"), the unit nvidia-smi's MiB add up to.
pub fn fmt_gib(bytes: u64) -> String {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    if gib >= 100.0 { format!("{gib:.0} GiB") } else { format!("{gib:.1} GiB") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::config::GIB;
    use crate::gpu::sample::{GpuDevice, NvmlStatus};

    const L4_TOTAL: u64 = 23034 * 1024 * 1024; // what nvidia-smi reports for an L4
    const A100_80_TOTAL: u64 = 81920 * 1024 * 1024;
    const A100_40_TOTAL: u64 = 40960 * 1024 * 1024;

    fn gib_f(x: f64) -> u64 {
        (x * GIB as f64) as u64
    }

    #[test]
    fn verdict_table() {
        let cfg = GpuConfig::default();
        let l4 = detect_tier(&cfg.tiers, "NVIDIA L4", Some(L4_TOTAL)).expect("L4 tier");
        let a100 = detect_tier(&cfg.tiers, "NVIDIA A100-SXM4-80GB", Some(A100_80_TOTAL)).expect("A100 tier");
        assert_eq!(l4.name, "tier1");
        assert_eq!(a100.name, "tier2");
        let table = [
            (l4, gib_f(10.0), Verdict::Fits),
            (l4, gib_f(18.5), Verdict::Near),
            (l4, gib_f(21.0), Verdict::Exceeds),
            (a100, gib_f(60.0), Verdict::Fits),
        ];
        for (tier, used, want) in table {
            assert_eq!(verdict(used, tier.budget_bytes), want, "{} at {}", tier.name, fmt_gib(used));
        }
        // Edges: exactly 90% is near, exactly 100% is near, one byte over exceeds.
        assert_eq!(verdict(18 * GIB, 20 * GIB), Verdict::Near);
        assert_eq!(verdict(18 * GIB - 1, 20 * GIB), Verdict::Fits);
        assert_eq!(verdict(20 * GIB, 20 * GIB), Verdict::Near);
        assert_eq!(verdict(20 * GIB + 1, 20 * GIB), Verdict::Exceeds);
    }

    #[test]
    fn detection_table() {
        let cfg = GpuConfig::default();
        let cases: [(&str, Option<u64>, Option<&str>); 7] = [
            ("NVIDIA L4", Some(L4_TOTAL), Some("tier1")),
            ("NVIDIA A100-SXM4-80GB", Some(A100_80_TOTAL), Some("tier2")),
            ("NVIDIA A100 80GB PCIe", Some(A100_80_TOTAL), Some("tier2")),
            // An A100 40GB cannot hold tier2's 78 GiB budget: no tier.
            ("NVIDIA A100-SXM4-40GB", Some(A100_40_TOTAL), None),
            ("Tesla T4", Some(15360 * 1024 * 1024), None),
            // "L40S" must not pass for an L4.
            ("NVIDIA L40S", Some(46068 * 1024 * 1024), None),
            ("NVIDIA L4", None, Some("tier1")),
        ];
        for (name, total, want) in cases {
            let got = detect_tier(&cfg.tiers, name, total).map(|t| t.name.as_str());
            assert_eq!(got, want, "{name}");
        }
    }

    fn device(index: u32, name: &str, total: u64, procs: Vec<GpuProcess>) -> GpuDevice {
        GpuDevice {
            index,
            name: name.into(),
            uuid: None,
            memory_used_bytes: Some(procs.iter().filter_map(|p| p.used_bytes).sum()),
            memory_total_bytes: Some(total),
            utilization_pct: Some(90),
            memory_utilization_pct: Some(40),
            temperature_c: Some(60),
            power_draw_mw: None,
            power_limit_mw: None,
            processes: procs,
            processes_error: None,
            error: None,
        }
    }

    fn proc_(pid: u32, gpu: u32, used: u64, ticks: u64, cwd: &str, cmd: &str) -> GpuProcess {
        GpuProcess {
            pid,
            gpu_index: gpu,
            used_bytes: Some(used),
            command: Some(cmd.into()),
            user: Some("me".into()),
            uid: Some(1000),
            start_time_unix_s: Some(1_000 + ticks),
            start_ticks: Some(ticks),
            cwd: Some(cwd.into()),
            sm_util_pct: None,
        }
    }

    fn sample(gpus: Vec<GpuDevice>) -> GpuSample {
        GpuSample { taken_at_unix_ms: 0, nvml: NvmlStatus::Ok { driver_version: "550.54.15".into() }, gpus }
    }

    #[test]
    fn job_is_the_workspace_processes_and_its_peak_holds() {
        let cfg = GpuConfig::default();
        let ws = Path::new("/home/me/proj");
        let mut t = FitTracker::new();
        let s1 = sample(vec![device(
            0,
            "NVIDIA L4",
            L4_TOTAL,
            vec![
                proc_(10, 0, gib_f(12.0), 500, "/home/me/proj", "python train.py"),
                proc_(11, 0, gib_f(3.0), 400, "/tmp", "python other.py"),
            ],
        )]);
        let f1 = t.update(&cfg, &s1, Some(ws)).expect("fit");
        assert_eq!(f1.scope, JobScope::Workspace);
        assert_eq!(f1.pids, vec![10]);
        assert_eq!(f1.used_bytes, gib_f(12.0));
        assert_eq!(f1.verdict, Verdict::Fits);
        assert_eq!(f1.tier, "tier1");

        // Rises to 21 GiB: exceeds, with advice to go to tier2.
        let s2 = sample(vec![device(
            0,
            "NVIDIA L4",
            L4_TOTAL,
            vec![proc_(10, 0, gib_f(21.0), 500, "/home/me/proj", "python train.py")],
        )]);
        let f2 = t.update(&cfg, &s2, Some(ws)).expect("fit");
        assert_eq!(f2.verdict, Verdict::Exceeds);
        let advice = f2.advice.expect("advice");
        assert!(advice.contains("tier2") && advice.contains("airlock bundle"), "{advice}");

        // Falls back to 10 GiB: the peak and the verdict stay.
        let s3 = sample(vec![device(
            0,
            "NVIDIA L4",
            L4_TOTAL,
            vec![proc_(10, 0, gib_f(10.0), 500, "/home/me/proj", "python train.py")],
        )]);
        let f3 = t.update(&cfg, &s3, Some(ws)).expect("fit");
        assert_eq!(f3.used_bytes, gib_f(10.0));
        assert_eq!(f3.peak_bytes, gib_f(21.0));
        assert_eq!(f3.verdict, Verdict::Exceeds);

        // A new job (another start time) starts a new peak.
        let s4 = sample(vec![device(
            0,
            "NVIDIA L4",
            L4_TOTAL,
            vec![proc_(12, 0, gib_f(18.5), 900, "/home/me/proj", "python train.py")],
        )]);
        let f4 = t.update(&cfg, &s4, Some(ws)).expect("fit");
        assert_eq!(f4.peak_bytes, gib_f(18.5));
        assert_eq!(f4.verdict, Verdict::Near);
        assert_eq!(f4.advice, None);
    }

    #[test]
    fn without_workspace_match_all_processes_count_and_busiest_gpu_decides() {
        let cfg = GpuConfig::default();
        let mut t = FitTracker::new();
        let s = sample(vec![
            device(0, "NVIDIA L4", L4_TOTAL, vec![proc_(10, 0, gib_f(8.0), 1, "/x", "python a.py")]),
            device(
                1,
                "NVIDIA A100-SXM4-80GB",
                A100_80_TOTAL,
                vec![
                    proc_(20, 1, gib_f(30.0), 2, "/y", "python b.py"),
                    proc_(21, 1, gib_f(30.0), 3, "/y", "python c.py"),
                ],
            ),
        ]);
        let f = t.update(&cfg, &s, Some(Path::new("/home/me/proj"))).expect("fit");
        assert_eq!(f.scope, JobScope::AllProcesses);
        assert_eq!(f.gpu_index, Some(1));
        assert_eq!(f.used_bytes, gib_f(60.0));
        assert_eq!(f.tier, "tier2");
        assert_eq!(f.verdict, Verdict::Fits);
    }

    #[test]
    fn memory_the_process_list_does_not_explain_is_judged_by_the_device() {
        let cfg = GpuConfig::default();
        let ws = Path::new("/home/me/proj");
        // The case: 21 GiB used on an L4, one visible 512 MiB process.
        let mut gpu =
            device(0, "NVIDIA L4", L4_TOTAL, vec![proc_(10, 0, 512 << 20, 5, "/home/me/proj", "python t.py")]);
        gpu.memory_used_bytes = Some(gib_f(21.0));
        let f = FitTracker::new().update(&cfg, &sample(vec![gpu.clone()]), Some(ws)).expect("fit");
        assert_eq!(f.scope, JobScope::Device);
        assert_eq!(f.used_bytes, gib_f(21.0));
        assert_eq!(f.verdict, Verdict::Exceeds, "21 GiB on a 20 GiB budget never fits");
        assert_eq!((f.device_used_bytes, f.listed_bytes), (Some(gib_f(21.0)), Some(512 << 20)));
        assert!(
            f.device_note().is_some_and(|n| n.contains("NVML lists 0.5 of 21.0 GiB used")),
            "{:?}",
            f.device_note()
        );
        // An empty list: the same.
        gpu.processes.clear();
        let f = FitTracker::new().update(&cfg, &sample(vec![gpu.clone()]), Some(ws)).expect("fit");
        assert_eq!((f.scope, f.verdict), (JobScope::Device, Verdict::Exceeds));
        // The driver's own few hundred MiB do not count as hidden processes.
        let mut gpu =
            device(0, "NVIDIA L4", L4_TOTAL, vec![proc_(10, 0, gib_f(12.0), 5, "/home/me/proj", "python t.py")]);
        gpu.memory_used_bytes = Some(gib_f(12.0) + (400 << 20));
        let f = FitTracker::new().update(&cfg, &sample(vec![gpu]), Some(ws)).expect("fit");
        assert_eq!((f.scope, f.used_bytes, f.verdict), (JobScope::Workspace, gib_f(12.0), Verdict::Fits));
        assert_eq!(f.device_note(), None);
    }

    #[test]
    fn command_line_paths_and_forced_tier() {
        let mut p = proc_(1, 0, 1, 1, "/", "python /home/me/proj/train.py");
        assert!(is_in(&p, Path::new("/home/me/proj")));
        assert!(!is_in(&p, Path::new("/home/me/pro")));
        p.command = Some("accelerate launch --config_file=/home/me/proj/a.yaml x.py".into());
        assert!(is_in(&p, Path::new("/home/me/proj")));

        let cfg = GpuConfig { tier: Some("tier2".into()), ..GpuConfig::default() };
        let s = sample(vec![device(0, "Tesla T4", 16 * GIB, vec![])]);
        let f = FitTracker::new().update(&cfg, &s, None).expect("forced tier");
        assert_eq!(f.tier, "tier2");
        assert_eq!(f.scope, JobScope::NoProcesses);
        assert_eq!(f.verdict, Verdict::Fits);
        // Unknown GPU and nothing forced: no fit, no guess.
        let cfg = GpuConfig::default();
        assert_eq!(FitTracker::new().update(&cfg, &s, None), None);
        // No GPUs: no fit.
        assert_eq!(FitTracker::new().update(&cfg, &sample(vec![]), None), None);
    }

    #[test]
    fn detector_remembers_and_follows_config_changes() {
        let mut cfg = GpuConfig::default();
        let mut d = TierDetector::new();
        for _ in 0..3 {
            let t = d.detect(&cfg.tiers, "NVIDIA L4", Some(L4_TOTAL));
            assert_eq!(t.map(|t| t.name.as_str()), Some("tier1"));
        }
        assert_eq!(d.answers.len(), 1);
        cfg.tiers[0].gpu_pattern = "T4".into();
        assert_eq!(d.detect(&cfg.tiers, "NVIDIA L4", Some(L4_TOTAL)), None);
        let s = sample(vec![device(0, "NVIDIA L4", L4_TOTAL, vec![])]);
        assert_eq!(d.machine_tier(&cfg, &s), None);
        cfg.tier = Some("tier2".into());
        assert_eq!(d.machine_tier(&cfg, &s).map(|t| t.name.as_str()), Some("tier2"));
    }

    #[test]
    fn advice_when_nothing_holds_it() {
        let cfg = GpuConfig::default();
        let a = advice(&cfg.tiers, &cfg.tiers[1], 90 * GIB, Verdict::Exceeds).expect("advice");
        assert!(a.contains("every tier"), "{a}");
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// More VRAM never gives a better verdict, and the 90% / 100% lines are where the
        /// table says.
        #[test]
        fn verdict_is_monotone(budget in 1u64..(1u64 << 40), a in 0u64..(1u64 << 41), b in 0u64..(1u64 << 41)) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(verdict(lo, budget) as u8 <= verdict(hi, budget) as u8);
            let v = verdict(a, budget);
            let pct = a as f64 / budget as f64;
            if pct < 0.8999 { prop_assert_eq!(v, Verdict::Fits); }
            if (0.9001..=0.9999).contains(&pct) { prop_assert_eq!(v, Verdict::Near); }
            if pct > 1.0001 { prop_assert_eq!(v, Verdict::Exceeds); }
        }
    }
}

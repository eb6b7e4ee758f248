//! The GPU part of `opsconsole status`: one sample, the machine's tier and the tier fit.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use super::collector::GpuCollector;
use super::config::GpuConfig;
use super::sample::{GpuDevice, GpuSample, NvmlStatus};
use super::tier::{FitTracker, TierFit, fmt_gib, machine_tier};

/// NVML's state with its explanation in words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NvmlReport {
    #[serde(flatten)]
    pub status: NvmlStatus,
    pub message: String,
}

/// JSON keys `nvml`, `gpus`, `tier`, `tier_fit` of `status --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuStatus {
    pub nvml: NvmlReport,
    pub gpus: Vec<GpuDevice>,
    /// The machine's tier name, if one applies.
    pub tier: Option<String>,
    pub tier_fit: Option<TierFit>,
}

impl GpuStatus {
    /// Opens NVML, takes one sample, judges the job in `workspace` against the tier.
    pub fn collect(config: &GpuConfig, workspace: &Path, now: SystemTime) -> Self {
        let sample = GpuCollector::new(config).sample(now);
        Self::from_sample(config, &sample, workspace)
    }

    pub fn from_sample(config: &GpuConfig, sample: &GpuSample, workspace: &Path) -> Self {
        let tier_fit = FitTracker::new().update(config, sample, Some(workspace));
        Self {
            nvml: NvmlReport { status: sample.nvml.clone(), message: sample.nvml.describe() },
            gpus: sample.gpus.clone(),
            tier: machine_tier(config, sample).map(|t| t.name.clone()),
            tier_fit,
        }
    }

    /// The text form of `opsconsole status`.
    pub fn to_text(&self) -> String {
        let mut out = format!("gpus: {}", self.nvml.message);
        if let Some(t) = &self.tier {
            out.push_str(&format!(" · {t}"));
        }
        out.push('\n');
        let na = || "n/a".to_string();
        for g in &self.gpus {
            let mem = match (g.memory_used_bytes, g.memory_total_bytes) {
                (Some(u), Some(t)) => format!("{} / {}", fmt_gib(u), fmt_gib(t)),
                _ => "VRAM n/a".into(),
            };
            out.push_str(&format!(
                "  {} {:<24} {}  util {}  {}  power {}\n",
                g.index,
                g.name,
                mem,
                g.utilization_pct.map_or_else(na, |u| format!("{u}%")),
                g.temperature_c.map_or_else(na, |t| format!("{t}°C")),
                g.power_draw_mw.map_or_else(na, |p| format!("{} W", p / 1000)),
            ));
            for p in &g.processes {
                out.push_str(&format!(
                    "    pid {:<7} {:>10}  {}\n",
                    p.pid,
                    p.used_bytes.map_or_else(na, fmt_gib),
                    p.command.as_deref().unwrap_or("(ended or hidden)")
                ));
            }
        }
        if let Some(f) = &self.tier_fit {
            let scope = match f.scope {
                super::tier::JobScope::Workspace => "",
                super::tier::JobScope::AllProcesses => " (no process from the workspace: all GPU processes)",
                super::tier::JobScope::NoProcesses => " (no GPU process)",
                super::tier::JobScope::Device => " (the whole device)",
            };
            out.push_str(&format!(
                "tier fit{scope}: {} now {} · peak {} / budget {} · {}\n",
                f.tier,
                fmt_gib(f.used_bytes),
                fmt_gib(f.peak_bytes),
                fmt_gib(f.budget_bytes),
                f.verdict
            ));
            if let Some(n) = f.device_note() {
                out.push_str(&format!("  {n}\n"));
            }
            if let Some(a) = &f.advice {
                out.push_str(&format!("  {a}\n"));
            }
        }
        out
    }
}

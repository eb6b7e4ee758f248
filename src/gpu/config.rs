//! Configuration of the GPU collector and of the hardware tiers.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One GiB, the unit nvidia-smi's MiB figures add up to (an A100 80GB reports 81920 MiB).
pub const GIB: u64 = 1 << 30;

/// `[gpu]`: how the GPU collector samples and which tiers the console knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuConfig {
    /// Sample the GPUs at all. Off: the panel says "GPU sampling is off".
    pub enabled: bool,
    /// Time between two samples, in milliseconds.
    pub sample_ms: u64,
    /// Time between two reads of each process's SM utilization, in milliseconds; 0: never
    /// read it. NVML's answer to that one question costs 1.5-2.3 ms of CPU (measured on an
    /// H200 with driver 580), more than every other figure of a sample together.
    pub process_util_ms: u64,
    /// Length of the history rings (VRAM, utilization, power) in minutes.
    pub history_minutes: u64,
    /// Path of the NVML library; unset: `libnvidia-ml.so.1` through the loader's search path.
    pub lib_path: Option<PathBuf>,
    /// Force the tier by name instead of detecting it from the GPU.
    pub tier: Option<String>,
    /// The tiers, smallest first.
    pub tiers: Vec<TierConfig>,
}

/// One class of machine: a GPU model, its memory, and the budget a job may use on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Short name used in config and JSON, e.g. `tier1`.
    pub name: String,
    /// Words for people, e.g. "L4 home base".
    #[serde(default)]
    pub label: String,
    /// Case-insensitive regular expression matched against the GPU name NVML reports.
    pub gpu_pattern: String,
    /// Memory of one GPU of this tier, in bytes.
    pub capacity_bytes: u64,
    /// The most VRAM a job may use on one GPU of this tier, in bytes.
    pub budget_bytes: u64,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sample_ms: 1000,
            process_util_ms: 5000,
            history_minutes: 15,
            lib_path: None,
            tier: None,
            tiers: default_tiers(),
        }
    }
}

/// The seed protocol's tiers: tier 1 one NVIDIA L4 (22 GB, "> 20GB vRAM, DO NOT run here"),
/// tier 2 an A100 80 GB.
pub fn default_tiers() -> Vec<TierConfig> {
    vec![
        TierConfig {
            name: "tier1".into(),
            label: "L4 home base".into(),
            gpu_pattern: r"\bL4\b".into(),
            capacity_bytes: 22 * GIB,
            budget_bytes: 20 * GIB,
        },
        TierConfig {
            name: "tier2".into(),
            label: "A100 cluster".into(),
            gpu_pattern: "A100".into(),
            capacity_bytes: 80 * GIB,
            budget_bytes: 78 * GIB,
        },
    ]
}

impl GpuConfig {
    /// Problems with the values, as (dotted key, problem) pairs; empty when all is well.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !(100..=3_600_000).contains(&self.sample_ms) {
            problems.push((
                "gpu.sample_ms".into(),
                format!("{} is out of range: use 100 (0.1 s) to 3600000 (1 h)", self.sample_ms),
            ));
        }
        if self.process_util_ms != 0 && !(100..=3_600_000).contains(&self.process_util_ms) {
            problems.push((
                "gpu.process_util_ms".into(),
                format!(
                    "{} is out of range: use 100 (0.1 s) to 3600000 (1 h), or 0 to never read it",
                    self.process_util_ms
                ),
            ));
        }
        if !(1..=1440).contains(&self.history_minutes) {
            problems.push((
                "gpu.history_minutes".into(),
                format!("{} is out of range: use 1 to 1440 minutes", self.history_minutes),
            ));
        }
        if let Some(path) = &self.lib_path
            && path.as_os_str().is_empty()
        {
            problems.push(("gpu.lib_path".into(), "is empty: remove the key to use libnvidia-ml.so.1".into()));
        }
        if self.tiers.is_empty() {
            problems.push(("gpu.tiers".into(), "no tiers: give at least one [[gpu.tiers]]".into()));
        }
        for (i, tier) in self.tiers.iter().enumerate() {
            let key = |field: &str| format!("gpu.tiers[{i}].{field}");
            if tier.name.trim().is_empty() {
                problems.push((key("name"), "is empty".into()));
            } else if self.tiers[..i].iter().any(|t| t.name == tier.name) {
                problems.push((key("name"), format!("\"{}\" is used by an earlier tier", tier.name)));
            }
            if let Err(e) = tier_regex(&tier.gpu_pattern) {
                problems.push((key("gpu_pattern"), format!("is not a valid regular expression: {e}")));
            }
            if tier.capacity_bytes == 0 {
                problems.push((key("capacity_bytes"), "must be above 0".into()));
            }
            if tier.budget_bytes == 0 {
                problems.push((key("budget_bytes"), "must be above 0".into()));
            } else if tier.budget_bytes > tier.capacity_bytes {
                problems.push((
                    key("budget_bytes"),
                    format!("{} is above capacity_bytes {}", tier.budget_bytes, tier.capacity_bytes),
                ));
            }
        }
        if let Some(forced) = &self.tier
            && !self.tiers.iter().any(|t| &t.name == forced)
        {
            let names: Vec<&str> = self.tiers.iter().map(|t| t.name.as_str()).collect();
            problems.push(("gpu.tier".into(), format!("\"{forced}\" is not one of the tiers ({})", names.join(", "))));
        }
        problems
    }

    /// Length of each history ring: enough samples to cover `history_minutes`.
    pub fn history_len(&self) -> usize {
        let window_ms = self.history_minutes.saturating_mul(60_000);
        let interval = self.sample_ms.max(1);
        (window_ms.div_ceil(interval) as usize).saturating_add(1)
    }

    /// The tier with this name.
    pub fn tier_named(&self, name: &str) -> Option<&TierConfig> {
        self.tiers.iter().find(|t| t.name == name)
    }
}

impl TierConfig {
    /// The label, or the name where no label was given.
    pub fn display_label(&self) -> &str {
        if self.label.is_empty() { &self.name } else { &self.label }
    }
}

/// Compile a tier's GPU pattern, case-insensitively.
pub(crate) fn tier_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern).case_insensitive(true).size_limit(1 << 20).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_follow_the_seed() {
        let c = GpuConfig::default();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.tiers[0].budget_bytes, 20 * GIB);
        assert_eq!(c.tiers[1].capacity_bytes, 80 * GIB);
        // 15 minutes at 1 s: 900 intervals, 901 points.
        assert_eq!(c.history_len(), 901);
    }

    #[test]
    fn validation_names_each_bad_key() {
        let mut c = GpuConfig { sample_ms: 5, history_minutes: 0, tier: Some("tier9".into()), ..GpuConfig::default() };
        c.tiers[0].gpu_pattern = "(".into();
        c.tiers[1].budget_bytes = c.tiers[1].capacity_bytes + 1;
        c.tiers.push(c.tiers[0].clone());
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        for want in [
            "gpu.sample_ms",
            "gpu.history_minutes",
            "gpu.tiers[0].gpu_pattern",
            "gpu.tiers[1].budget_bytes",
            "gpu.tiers[2].name",
            "gpu.tier",
        ] {
            assert!(keys.iter().any(|k| k == want), "{want} missing in {keys:?}");
        }
    }

    #[test]
    fn toml_round_trip_and_unknown_keys_rejected() {
        let c = GpuConfig::default();
        let text = toml::to_string(&c).expect("serialize");
        let back: GpuConfig = toml::from_str(&text).expect("parse");
        assert_eq!(back, c);
        let bad = toml::from_str::<GpuConfig>("intervall_ms = 5");
        assert!(bad.is_err());
        let bad_tier = toml::from_str::<GpuConfig>(
            "[[tiers]]\nname='x'\ngpu_pattern='L4'\ncapacity_bytes=1\nbudget_bytes=1\ncolor='red'\n",
        );
        assert!(bad_tier.is_err());
    }
}

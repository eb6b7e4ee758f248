//! Rule 2, tier purpose: "Tier 1: logic debugging, mini-audits (< 5 mins), toy training
//! runs. Tier 2: full-scale training (> 1B parameters), long context." and "Don't start a
//! 2-day A100 job without testing on L4 first (mini-train)."
//!
//! On a tier-1 machine (`tiers.tier1`), a running job whose model has more than
//! `tiers.tier1_max_params` parameters (from `fit`'s readers: the run's `config.json` or
//! safetensors headers, found in the paths on its command line, else in its experiment
//! folder) or that has trained longer than `tiers.tier1_max_run` is flagged, once. Before
//! a bundle (which goes to tier 2), [`bundle_warning`] says when neither the journal nor
//! the logs show a mini-train of that experiment here.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{RunFacts, Verdict};
use crate::config::Config;
use crate::gpu::GpuSample;
use crate::logtail::config::duration_text;

/// `[tiers]`: what each tier is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TiersConfig {
    /// The `[[gpu.tiers]]` name of tier 1 (debugging, mini-audits, toy runs).
    pub tier1: String,
    /// The `[[gpu.tiers]]` name of tier 2 (full-scale training), named in advice.
    pub tier2: String,
    /// A job training longer than this on tier 1 is a full-scale run.
    #[serde(with = "duration_text")]
    pub tier1_max_run: Duration,
    /// A model with more parameters than this is full-scale training.
    pub tier1_max_params: u64,
}

impl Default for TiersConfig {
    fn default() -> Self {
        Self {
            tier1: "tier1".into(),
            tier2: "tier2".into(),
            tier1_max_run: Duration::from_secs(2 * 3600),
            tier1_max_params: 1_000_000_000,
        }
    }
}

impl TiersConfig {
    pub fn validate(&self, tiers: &[crate::gpu::TierConfig]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let names: Vec<&str> = tiers.iter().map(|t| t.name.as_str()).collect();
        let default = Self::default();
        // The default names give way to the first and last [[gpu.tiers]] (a config that
        // renamed its tiers keeps working); a name set here must exist.
        for (key, v, d) in [("tier1", &self.tier1, &default.tier1), ("tier2", &self.tier2, &default.tier2)] {
            if v != d && !names.contains(&v.as_str()) {
                out.push((
                    format!("tiers.{key}"),
                    format!("{v:?} is not a [[gpu.tiers]] name (known: {})", names.join(", ")),
                ));
            }
        }
        if self.tier1_max_run < Duration::from_secs(60) {
            out.push(("tiers.tier1_max_run".into(), "must be at least 1m".into()));
        }
        if self.tier1_max_params == 0 {
            out.push(("tiers.tier1_max_params".into(), "must be above 0".into()));
        }
        out
    }

    /// Tier 1's and tier 2's names in `tiers`: the configured ones, else the first and the
    /// last tier.
    pub fn names(&self, tiers: &[crate::gpu::TierConfig]) -> (String, String) {
        let find = |n: &str, fallback: Option<&crate::gpu::TierConfig>| {
            if tiers.iter().any(|t| t.name == n) {
                n.to_string()
            } else {
                fallback.map_or_else(|| n.to_string(), |t| t.name.clone())
            }
        };
        (find(&self.tier1, tiers.first()), find(&self.tier2, tiers.last()))
    }
}

/// `status --json` → `rules.tier_purpose`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TierRule {
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The machine's tier (null when not known).
    pub tier: Option<String>,
    /// The running model's parameter count, when found.
    pub params: Option<u64>,
    /// Which file gave it.
    pub params_source: Option<String>,
    /// How long the run has been going.
    pub running_for_s: Option<u64>,
}

impl TierRule {
    pub fn off() -> Self {
        Self { verdict: Verdict::off("tier_purpose"), ..Default::default() }
    }
}

/// `7_241_732_096` -> `7.2B`, `350_000_000` -> `350M`.
pub fn fmt_params(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        let b = f / 1e9;
        if b >= 10.0 { format!("{b:.0}B") } else { format!("{b:.1}B") }
    } else if f >= 1e6 {
        format!("{:.0}M", f / 1e6)
    } else {
        format!("{:.0}k", f / 1e3)
    }
}

/// The folders and files a model may be read from: paths on the run's command lines,
/// then the experiment folder, its `models/` and their subfolders (at most 16 each).
fn model_candidates(ws: &Path, cfg: &Config, run: &RunFacts, gpu: Option<&GpuSample>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let commands = gpu
        .into_iter()
        .flat_map(|g| g.processes())
        .filter(|p| run.pids.contains(&p.pid))
        .filter_map(|p| p.command.clone())
        .chain(run.pids.iter().filter_map(|pid| crate::checklist::gather::cmdline(*pid)));
    for cmd in commands {
        for w in cmd.split_whitespace().map(|w| w.split_once('=').map_or(w, |(_, v)| v)) {
            let p = if Path::new(w).is_absolute() { PathBuf::from(w) } else { ws.join(w) };
            let useful = p.extension().is_some_and(|e| e == "safetensors")
                || p.file_name().is_some_and(|n| n == "config.json")
                || p.join("config.json").is_file();
            if useful && p.exists() && !out.contains(&p) {
                out.push(p);
            }
        }
    }
    if let Some(exp) = &run.experiment {
        let dir = crate::airlock::in_workspace(ws, &cfg.paths.experiments).join(exp);
        for d in [dir.clone(), dir.join("models")] {
            out.push(d.clone());
            if let Ok(rd) = std::fs::read_dir(&d) {
                let mut subs: Vec<PathBuf> =
                    rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect();
                subs.sort();
                out.extend(subs.into_iter().filter(|p| p.join("config.json").is_file()).take(16));
            }
        }
    }
    out
}

/// The run's model size from `fit`'s readers: the first candidate that reads.
pub fn model_params(ws: &Path, cfg: &Config, run: &RunFacts, gpu: Option<&GpuSample>) -> Option<(u64, String)> {
    model_candidates(ws, cfg, run, gpu).into_iter().find_map(|p| {
        let info = crate::gpu::estimate::read_model(&p).ok()?;
        (info.params > 0)
            .then(|| (info.params, format!("{} ({})", crate::workspace::Workspace::at(ws).display(&p), info.source)))
    })
}

/// Why the machine's tier is not known (`gpu.tier` unset; config validation refuses one
/// that names no tier): no GPU was read, or the GPU read matches no configured tier (an
/// H100 or H200 with the default tiers).
fn unknown_tier_reason(gpu: Option<&GpuSample>) -> String {
    match gpu.and_then(|s| s.gpus.first()) {
        Some(g) => format!(
            "the machine's tier is not known: {} matches no tier in gpu.tiers (add one for it, or gpu.tier forces one)",
            g.name
        ),
        None => "the machine's tier is not known (no GPU read; gpu.tier forces one)".to_string(),
    }
}

/// Judges rule 2.
pub fn check(ws: &Path, cfg: &Config, run: &RunFacts, gpu: Option<&GpuSample>, now: SystemTime) -> TierRule {
    let t = &cfg.tiers;
    let empty = GpuSample::unavailable(0, crate::gpu::NvmlStatus::NotOpened);
    let tier = crate::gpu::tier::machine_tier(&cfg.gpu, gpu.unwrap_or(&empty)).map(|t| t.name.clone());
    let mut rule = TierRule { tier: tier.clone(), ..Default::default() };
    let Some(tier) = tier else {
        rule.verdict = Verdict::unknown(unknown_tier_reason(gpu));
        return rule;
    };
    let (tier1, tier2) = t.names(&cfg.gpu.tiers);
    if tier != tier1 {
        rule.verdict = Verdict::ok(format!("on {tier}, not tier 1 ({tier1})"));
        return rule;
    }
    if run.pids.is_empty() {
        rule.verdict = Verdict::ok(format!("no job running on tier 1 ({tier})"));
        return rule;
    }
    let running = run.started_unix.map(|s| super::unix(now).saturating_sub(s));
    rule.running_for_s = running;
    if let Some((n, source)) = model_params(ws, cfg, run, gpu) {
        rule.params = Some(n);
        rule.params_source = Some(source);
    }
    let big = rule.params.filter(|n| *n > t.tier1_max_params);
    let long = running.filter(|s| *s > t.tier1_max_run.as_secs());
    let max_run = humantime::format_duration(t.tier1_max_run).to_string();
    let ran = |s: u64| crate::util::duration(Duration::from_secs(s));
    rule.verdict = match (big, long) {
        (Some(n), long) => {
            let p = fmt_params(n);
            let also = long.map(|s| format!(", and it has trained for {}", ran(s))).unwrap_or_default();
            Verdict::flag(
                format!(
                    "the job on tier 1 has ~{p} parameters ({}){also}: full-scale training (over {}) belongs on \
                     {tier2}: bundle it (b)",
                    rule.params_source.as_deref().unwrap_or("?"),
                    fmt_params(t.tier1_max_params)
                ),
                format!("{p}-param job on tier 1: full-scale training belongs on {tier2}"),
                format!("{p} on tier 1"),
            )
        }
        (None, Some(s)) => Verdict::flag(
            format!(
                "the job has trained for {} on tier 1 (tiers.tier1_max_run {max_run}): tier 1 is for debugging, \
                 mini-audits and toy runs; full-scale runs belong on {tier2}: bundle it (b)",
                ran(s)
            ),
            format!("training {} on tier 1: full runs belong on {tier2}", ran(s)),
            format!("{} on tier 1", ran(s)),
        ),
        (None, None) => Verdict::ok(format!(
            "a toy-sized job on tier 1 ({}{})",
            rule.params.map(|n| format!("~{} parameters", fmt_params(n))).unwrap_or_else(|| "size not found".into()),
            running.map(|s| format!(", running {}", ran(s))).unwrap_or_default()
        )),
    };
    rule
}

/// Words that show a mini-train in a journal entry.
const MINI_WORDS: &[&str] = &["mini-train", "mini train", "minitrain", "toy run", "toy training", "smoke test"];

/// Before a bundle for tier 2: a warning when neither the journal nor the logs show a
/// mini-train of `experiment` on tier 1 (a local training log under the experiment folder,
/// other than an imported cluster log, counts; so does an entry naming a mini-train).
pub fn bundle_warning(ws: &Path, cfg: &Config, experiment: &str) -> Option<String> {
    if !cfg.rules.tier_purpose {
        return None;
    }
    let dir = crate::airlock::in_workspace(ws, &cfg.paths.experiments).join(experiment);
    if has_local_log(&dir, 0) {
        return None;
    }
    let j = super::journal::entries(ws, cfg, experiment);
    let text = j.text.to_ascii_lowercase();
    if MINI_WORDS.iter().any(|w| text.contains(w)) {
        return None;
    }
    Some(format!(
        "no mini-train of {experiment} on tier 1 found (no training log under {}/{experiment}/, no \"mini-train\" in \
         its journal entry): don't start a 2-day A100 job without testing on L4 first",
        cfg.paths.experiments.trim_end_matches('/')
    ))
}

/// A non-empty `*.log` under `dir` (3 levels at most) that is not an imported cluster log.
fn has_local_log(dir: &Path, depth: usize) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else { return false };
    rd.flatten().take(1000).any(|e| {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        match e.file_type() {
            Ok(t) if t.is_dir() => depth < 3 && has_local_log(&p, depth + 1),
            Ok(t) if t.is_file() => {
                name.ends_with(".log") && !name.starts_with("train_external") && e.metadata().is_ok_and(|m| m.len() > 0)
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_in_words() {
        assert_eq!(fmt_params(7_241_732_096), "7.2B");
        assert_eq!(fmt_params(70_553_706_496), "71B");
        assert_eq!(fmt_params(124_439_808), "124M");
    }
}

//! Configuration of the checkpoint inventory, the retention policy (`[checkpoints]`) and
//! pruning (`[prune]`).

use serde::{Deserialize, Serialize};

/// Which end of a metric is better for `keep_best`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BestMode {
    /// Lower is better (losses, perplexity).
    #[default]
    Min,
    /// Higher is better (accuracy, BLEU).
    Max,
}

/// `[checkpoints]`: where checkpoints live and which ones the retention policy keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointsConfig {
    /// Folders holding checkpoints, relative to the workspace (or absolute). A `*` matches
    /// one folder name. Only these folders are scanned, and nothing outside them is ever
    /// deleted.
    pub roots: Vec<String>,
    /// File name patterns that are checkpoints.
    pub patterns: Vec<String>,
    /// Treat Hugging Face `checkpoint-N/` folders as one checkpoint each.
    pub hf_folders: bool,
    /// A checkpoint whose size or modification time changed this recently counts as
    /// still being written.
    pub settle_secs: u64,
    /// Seconds between inventory and usage scans in the console.
    pub scan_secs: u64,
    /// Keep the newest N complete checkpoints of each series (at least 1).
    pub keep_last: usize,
    /// Keep every checkpoint whose step is a multiple of this (0 = off).
    pub keep_every_steps: u64,
    /// Keep the best checkpoints by this log metric, e.g. `eval_loss` ("" = off).
    pub keep_best_metric: String,
    /// `min` (lower is better) or `max`.
    pub keep_best_mode: BestMode,
    /// How many best checkpoints to keep when `keep_best_metric` is set.
    pub keep_best_count: usize,
    /// Redundancy levels a checkpoint must be confirmed on before it may be deleted
    /// (`L2`, `L3`). An empty list still needs a confirmed copy on some level other than
    /// L1: an unconfirmed checkpoint is only deleted with an explicit override.
    pub require_confirmed_on: Vec<String>,
}

impl Default for CheckpointsConfig {
    fn default() -> Self {
        Self {
            roots: vec!["checkpoints".into(), "experiments/*/checkpoints".into()],
            patterns: vec!["*.pt".into(), "*.pth".into(), "*.ckpt".into(), "*.safetensors".into(), "*.bin".into()],
            hf_folders: true,
            settle_secs: 60,
            scan_secs: 30,
            keep_last: 3,
            keep_every_steps: 0,
            keep_best_metric: String::new(),
            keep_best_mode: BestMode::Min,
            keep_best_count: 1,
            require_confirmed_on: vec!["L3".into()],
        }
    }
}

/// `[prune.logs]`: deleting old or huge log files (off by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogPruneConfig {
    /// Include old or oversized logs in prune plans.
    pub enabled: bool,
    /// Folders holding logs, relative to the workspace (or absolute); `*` matches one name.
    pub roots: Vec<String>,
    /// File name patterns that are logs.
    pub patterns: Vec<String>,
    /// A log not modified for this many days may be deleted (0 = no age limit).
    pub max_age_days: u64,
    /// A log larger than this many MiB may be deleted (0 = no size limit).
    pub max_file_mib: u64,
    /// Levels a log must be confirmed on before deletion (logs go to L2 Drive).
    pub require_confirmed_on: Vec<String>,
}

impl Default for LogPruneConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            roots: vec!["logs".into(), "experiments/*/logs".into()],
            patterns: vec!["*.log".into(), "*.log.[0-9]*".into()],
            max_age_days: 14,
            max_file_mib: 0,
            require_confirmed_on: vec!["L2".into()],
        }
    }
}

/// `[prune]`: automatic pruning and log pruning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PruneConfig {
    /// Run the prune plan by itself when a disk crosses the critical level. It never
    /// deletes unconfirmed checkpoints (no override is given automatically).
    pub auto: bool,
    /// Minimum time between two automatic prunes.
    pub auto_cooldown_secs: u64,
    /// Old log pruning.
    pub logs: LogPruneConfig,
}

impl Default for PruneConfig {
    fn default() -> Self {
        Self { auto: false, auto_cooldown_secs: 600, logs: LogPruneConfig::default() }
    }
}

/// Redundancy levels a copy can be confirmed on (L1 is the local disk itself).
pub const REMOTE_LEVELS: [&str; 2] = ["L2", "L3"];

fn check_roots(key: &str, roots: &[String], out: &mut Vec<(String, String)>) {
    for (i, root) in roots.iter().enumerate() {
        let k = key.to_string();
        let n = i + 1;
        if root.trim().is_empty() {
            out.push((k, format!("entry {n} must not be empty")));
            continue;
        }
        if let Some(why) = forbidden_root(root) {
            out.push((k.clone(), format!("entry {n} `{root}` {why}")));
            continue;
        }
        if std::path::Path::new(root).components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            out.push((k.clone(), format!("entry {n} `{root}` must not contain `..`")));
        }
        if root.contains("**") {
            out.push((k.clone(), format!("entry {n} `{root}`: `**` is not supported; use `*` for one folder name")));
        }
        for comp in root.split('/') {
            if let Err(e) = crate::glob::check(comp, crate::glob::Semantics::Name) {
                out.push((k.clone(), format!("entry {n} `{root}`: {e}")));
            }
        }
    }
}

/// Folders that can never be a root pruning deletes in: the filesystem root, the
/// system's own top-level folders, and a pattern that matches them (a root is searched
/// four levels deep).
fn forbidden_root(root: &str) -> Option<&'static str> {
    use std::path::{Component, Path};
    let p = Path::new(root.trim());
    if !p.is_absolute() {
        return None;
    }
    let normal: Vec<_> = p.components().filter(|c| matches!(c, Component::Normal(_))).collect();
    const SYSTEM: [&str; 15] = [
        "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "opt", "proc", "run", "sbin", "sys", "usr", "var",
    ];
    match normal.as_slice() {
        [] => Some("is the filesystem root: pruning would search the whole machine; name the checkpoint folder"),
        [Component::Normal(top)] if SYSTEM.iter().any(|s| std::ffi::OsStr::new(s) == *top) => {
            Some("is a system folder; name the checkpoint folder itself")
        }
        // `/*`, `/h*`, `/{usr,data}/x`: a pattern in the first folder below `/` matches
        // the system's own folders (`/*` is the filesystem root spelled as a pattern).
        [Component::Normal(top), ..] if top.to_str().is_some_and(|t| t.contains(['*', '?', '[', '{'])) => Some(
            "has a pattern in the first folder below `/`: it matches the system's own folders; name the \
             checkpoint folder",
        ),
        _ => None,
    }
}

fn check_patterns(key: &str, patterns: &[String], out: &mut Vec<(String, String)>) {
    for (i, p) in patterns.iter().enumerate() {
        let (k, n) = (key.to_string(), i + 1);
        if p.contains('/') {
            out.push((k, format!("entry {n} `{p}`: a file name pattern must not contain `/`")));
        } else if let Err(e) = crate::glob::check(p, crate::glob::Semantics::Name) {
            out.push((k, format!("entry {n}: {e}")));
        }
    }
}

fn check_levels(key: &str, levels: &[String], out: &mut Vec<(String, String)>) {
    for (i, l) in levels.iter().enumerate() {
        if !REMOTE_LEVELS.iter().any(|r| r.eq_ignore_ascii_case(l)) {
            out.push((key.to_string(), format!("entry {}: unknown level `{l}`; expected one of L2, L3", i + 1)));
        }
    }
}

impl CheckpointsConfig {
    /// Problems as (dotted key, message) pairs; empty when valid.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.roots.is_empty() {
            out.push(("checkpoints.roots".into(), "needs at least one folder".into()));
        }
        check_roots("checkpoints.roots", &self.roots, &mut out);
        check_patterns("checkpoints.patterns", &self.patterns, &mut out);
        if self.keep_last == 0 {
            out.push((
                "checkpoints.keep_last".into(),
                "must be at least 1 (the newest checkpoint is always kept)".into(),
            ));
        }
        if self.settle_secs < MIN_SETTLE_SECS {
            out.push((
                "checkpoints.settle_secs".into(),
                format!(
                    "must be at least {MIN_SETTLE_SECS}: a checkpoint modified within this many seconds counts as \
                     still being written, and {} would let one being written look finished",
                    self.settle_secs
                ),
            ));
        }
        if self.settle_secs > 86_400 {
            out.push(("checkpoints.settle_secs".into(), "must be at most 86400 (one day)".into()));
        }
        if self.scan_secs == 0 {
            out.push(("checkpoints.scan_secs".into(), "must be at least 1".into()));
        }
        if !self.keep_best_metric.is_empty() && self.keep_best_count == 0 {
            out.push(("checkpoints.keep_best_count".into(), "must be at least 1 when keep_best_metric is set".into()));
        }
        if !self.keep_best_metric.is_empty()
            && !crate::logtail::parse::RANKABLE_METRICS.contains(&self.keep_best_metric.as_str())
        {
            out.push((
                "checkpoints.keep_best_metric".into(),
                format!(
                    "unknown metric {:?}: use one of {}",
                    self.keep_best_metric,
                    crate::logtail::parse::RANKABLE_METRICS.join(", ")
                ),
            ));
        }
        check_levels("checkpoints.require_confirmed_on", &self.require_confirmed_on, &mut out);
        out
    }
}

/// The shortest settle period accepted (the demo uses it).
pub const MIN_SETTLE_SECS: u64 = 5;

impl PruneConfig {
    /// Problems as (dotted key, message) pairs; empty when valid.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.auto_cooldown_secs < 10 {
            out.push(("prune.auto_cooldown_secs".into(), "must be at least 10".into()));
        }
        let l = &self.logs;
        check_roots("prune.logs.roots", &l.roots, &mut out);
        check_patterns("prune.logs.patterns", &l.patterns, &mut out);
        check_levels("prune.logs.require_confirmed_on", &l.require_confirmed_on, &mut out);
        if l.enabled && l.max_age_days == 0 && l.max_file_mib == 0 {
            out.push(("prune.logs".into(), "enabled but neither max_age_days nor max_file_mib is set".into()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(CheckpointsConfig::default().validate().is_empty());
        assert!(PruneConfig::default().validate().is_empty());
    }

    #[test]
    fn a_bad_glob_is_named_and_checkpoint_names_keep_star_across_slash() {
        let c = CheckpointsConfig {
            roots: vec!["runs/[a".into()],
            patterns: vec!["*.{pt".into()],
            ..CheckpointsConfig::default()
        };
        let problems = c.validate();
        let roots = problems.iter().find(|(k, _)| k == "checkpoints.roots").expect("roots").1.as_str();
        assert!(roots.contains("`[a` is not a valid glob"), "{roots}");
        let pats = problems.iter().find(|(k, _)| k == "checkpoints.patterns").expect("patterns").1.as_str();
        assert!(pats.contains("`*.{pt` is not a valid glob"), "{pats}");
        // The inventory's name set keeps globset's default (issue 10: unchanged).
        let names = super::super::roots::name_set(&["*.pt".to_string()]);
        assert!(names.is_match("model.pt") && names.is_match("sub/model.pt"));
    }

    #[test]
    fn bad_values_name_their_keys() {
        let c = CheckpointsConfig {
            roots: vec!["../elsewhere".into(), "a/**/b".into()],
            patterns: vec!["x/*.pt".into()],
            keep_last: 0,
            require_confirmed_on: vec!["L1".into()],
            ..Default::default()
        };
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys.iter().filter(|k| *k == "checkpoints.roots").count(), 2);
        assert!(keys.contains(&"checkpoints.patterns".to_string()));
        assert!(keys.contains(&"checkpoints.keep_last".to_string()));
        assert!(keys.contains(&"checkpoints.require_confirmed_on".to_string()));
        let p = PruneConfig {
            auto_cooldown_secs: 1,
            logs: LogPruneConfig { enabled: true, max_age_days: 0, max_file_mib: 0, ..Default::default() },
            ..Default::default()
        };
        let keys: Vec<String> = p.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["prune.auto_cooldown_secs", "prune.logs"]);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<CheckpointsConfig>("keep_lats = 2").unwrap_err();
        assert!(err.to_string().contains("keep_lats"));
        let ok: CheckpointsConfig = toml::from_str("keep_last = 5").unwrap();
        assert_eq!(ok.keep_last, 5);
        assert_eq!(ok.roots, CheckpointsConfig::default().roots);
    }
}

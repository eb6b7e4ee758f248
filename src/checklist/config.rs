//! `[checklist]`, `[idle]`, `[shutdown]` and `[external_ip]`: what the pre-shutdown checklist
//! checks, when the machine counts as idle and what idling costs, the shutdown command, and
//! where the VM's external address is looked up.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::logtail::config::duration_text;

/// `[checklist]`: which items are checked (each on by default) and the extra commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChecklistConfig {
    /// No training process running (a GPU compute process or a writer of the training log).
    pub training: bool,
    /// Every upload level's queue empty and nothing failed.
    pub uploads: bool,
    /// The newest checkpoint confirmed on L3.
    pub weights: bool,
    /// The newest training log and the journal confirmed on L2.
    pub logs: bool,
    /// The git work tree clean and every commit pushed to its upstream.
    pub git: bool,
    /// The journal changed after the last training run ended.
    pub journal: bool,
    /// `frozen_requirements` present and not older than `requirements`.
    pub requirements: bool,
    /// Every disk below `disk.warn_pct`.
    pub disks: bool,
    /// No bundle, import, resume, prune or sync job running.
    pub jobs: bool,
    /// The requirements file, relative to the workspace root or absolute.
    pub requirements_file: String,
    /// The frozen requirements file (`pip freeze > frozen_requirements.txt`).
    pub frozen_requirements_file: String,
    /// How often the open checklist screen checks again (extra commands excepted).
    #[serde(with = "duration_text")]
    pub refresh: Duration,
    /// Extra items: a shell command each; the item passes when it exits 0.
    pub extra: Vec<ExtraItem>,
}

impl Default for ChecklistConfig {
    fn default() -> Self {
        Self {
            training: true,
            uploads: true,
            weights: true,
            logs: true,
            git: true,
            journal: true,
            requirements: true,
            disks: true,
            jobs: true,
            requirements_file: "requirements.txt".into(),
            frozen_requirements_file: "frozen_requirements.txt".into(),
            refresh: Duration::from_secs(5),
            extra: Vec::new(),
        }
    }
}

/// `[[checklist.extra]]`: one shell-command item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraItem {
    /// The item's name: shown on the screen, typed to override it, a key in `--json`.
    pub name: String,
    /// Run with `sh -c` in the workspace root.
    pub command: String,
    /// Longest it may run; then it is stopped and the item fails.
    #[serde(default = "default_extra_timeout", with = "duration_text")]
    pub timeout: Duration,
}

fn default_extra_timeout() -> Duration {
    Duration::from_secs(30)
}

/// The names of the built-in items, in screen order.
pub const BUILTIN_ITEMS: [&str; 11] = [
    "training",
    "uploads",
    "weights",
    "logs",
    "git",
    "journal",
    "estimate",
    "requirements",
    "dependencies",
    "disks",
    "jobs",
];

impl ChecklistConfig {
    /// Whether a built-in item is on.
    pub fn enabled(&self, name: &str) -> bool {
        match name {
            "training" => self.training,
            "uploads" => self.uploads,
            "weights" => self.weights,
            "logs" => self.logs,
            "git" => self.git,
            "journal" => self.journal,
            "requirements" => self.requirements,
            "disks" => self.disks,
            "jobs" => self.jobs,
            _ => true,
        }
    }

    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.refresh < Duration::from_secs(1) || self.refresh > Duration::from_secs(3600) {
            out.push(("checklist.refresh".into(), "must be between 1s and 1h".into()));
        }
        for (key, v) in [
            ("requirements_file", &self.requirements_file),
            ("frozen_requirements_file", &self.frozen_requirements_file),
        ] {
            if v.trim().is_empty() {
                out.push((format!("checklist.{key}"), "must name a file".into()));
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for (i, e) in self.extra.iter().enumerate() {
            let key = format!("checklist.extra[{i}]");
            if !valid_name(&e.name) {
                out.push((
                    format!("{key}.name"),
                    format!(
                        "{:?} is not a usable item name: use letters, digits, '-' and '_' (it is typed to override the item)",
                        e.name
                    ),
                ));
            } else if BUILTIN_ITEMS.contains(&e.name.as_str()) || seen.contains(&e.name.as_str()) {
                out.push((format!("{key}.name"), format!("{:?} is already the name of another item", e.name)));
            }
            seen.push(&e.name);
            if e.command.trim().is_empty() {
                out.push((format!("{key}.command"), "must be a shell command".into()));
            }
            if e.timeout < Duration::from_secs(1) || e.timeout > Duration::from_secs(3600) {
                out.push((format!("{key}.timeout"), "must be between 1s and 1h".into()));
            }
        }
        out
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 32 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `[idle]`: when the machine counts as idle, and what an idle hour costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdleConfig {
    /// Idle this long (every GPU under `gpu_util_below_pct`, no training process) before the
    /// header shows the idle banner.
    #[serde(with = "duration_text")]
    pub after: Duration,
    /// A GPU busier than this (percent) is in use.
    pub gpu_util_below_pct: u32,
    /// Shown before amounts of money.
    pub currency: String,
    /// What an hour of this machine costs, by tier name (`[[gpu.tiers]] name`).
    pub hourly_price: BTreeMap<String, f64>,
}

impl Default for IdleConfig {
    fn default() -> Self {
        Self {
            after: Duration::from_secs(20 * 60),
            gpu_util_below_pct: 5,
            currency: "$".into(),
            // Public on-demand list prices, us-central1: g2-standard-8 (1 x L4) and
            // a2-ultragpu-1g (1 x A100 80GB). See docs/checklist.md for the source and date.
            hourly_price: BTreeMap::from([("tier1".to_string(), 0.85), ("tier2".to_string(), 5.07)]),
        }
    }
}

impl IdleConfig {
    pub fn validate(&self, tiers: &[crate::gpu::TierConfig]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.after < Duration::from_secs(60) {
            out.push(("idle.after".into(), "must be at least 1m".into()));
        }
        if !(1..=100).contains(&self.gpu_util_below_pct) {
            out.push(("idle.gpu_util_below_pct".into(), format!("must be 1 to 100, got {}", self.gpu_util_below_pct)));
        }
        if self.currency.chars().count() > 8 {
            out.push(("idle.currency".into(), "at most 8 characters (\"$\", \"EUR \")".into()));
        }
        // The built-in prices name the built-in tiers; a config that replaces the tiers and
        // keeps those prices just has no price for its tiers. Prices written in the config
        // must name a configured tier (a typo would otherwise never apply).
        let written = self.hourly_price != Self::default().hourly_price;
        for (tier, price) in &self.hourly_price {
            if !price.is_finite() || *price < 0.0 {
                out.push((format!("idle.hourly_price.{tier}"), format!("must be a price of 0 or more, got {price}")));
            } else if written && !tiers.iter().any(|t| &t.name == tier) {
                let names: Vec<&str> = tiers.iter().map(|t| t.name.as_str()).collect();
                out.push((
                    format!("idle.hourly_price.{tier}"),
                    format!("no tier is named {tier:?} (the tiers are: {})", names.join(", ")),
                ));
            }
        }
        out
    }
}

/// `[shutdown]`: the command the checklist's shutdown runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Run with `sh -c`, detached from the console's terminal. Empty: no shutdown from the
    /// console (the checklist says what to set).
    pub command: String,
}

/// When the external address is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupMode {
    /// Only on a Google Compute Engine VM (the DMI product name says so).
    Auto,
    /// Always (a metadata server stand-in, another cloud answering the same way).
    On,
    Off,
}

/// `[external_ip]`: the VM's external address, shown in the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExternalIpConfig {
    pub lookup: LookupMode,
    /// The metadata server's URL for the address (plain `http://`).
    pub url: String,
    /// How long one lookup may take.
    #[serde(with = "duration_text")]
    pub timeout: Duration,
}

/// The GCE metadata server's answer for the first interface's external address.
pub const GCE_EXTERNAL_IP_URL: &str =
    "http://metadata.google.internal/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip";

impl Default for ExternalIpConfig {
    fn default() -> Self {
        Self { lookup: LookupMode::Auto, url: GCE_EXTERNAL_IP_URL.into(), timeout: Duration::from_millis(500) }
    }
}

impl ExternalIpConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Err(e) = super::metadata::HttpUrl::parse(&self.url) {
            out.push(("external_ip.url".into(), e));
        }
        if self.timeout < Duration::from_millis(10) || self.timeout > Duration::from_secs(30) {
            out.push(("external_ip.timeout".into(), "must be between 10ms and 30s".into()));
        }
        out
    }
}

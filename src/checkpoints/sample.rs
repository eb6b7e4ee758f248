//! One whole sample of the checkpoint inventory and the workspace usage breakdown, as the
//! collector sends it to the console and `status --json` prints it.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use super::config::{CheckpointsConfig, PruneConfig};
use super::inventory::{self, Checkpoint, Inventory, ScanOptions};
use super::ledger::ConfirmationSource;
use super::roots::Skipped;
use super::unix_secs;
use crate::disk::usage::{self, UsageBreakdown, UsageSpec};

/// The checkpoints and what takes the workspace's space, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct CheckpointsSample {
    pub taken_unix: u64,
    pub checkpoints: Vec<Checkpoint>,
    pub total_bytes: u64,
    /// Links and link roots left alone.
    pub skipped: Vec<Skipped>,
    pub usage: UsageBreakdown,
}

impl CheckpointsSample {
    pub fn writing(&self) -> usize {
        self.checkpoints.iter().filter(|c| c.writing).count()
    }
}

/// Which folders count as checkpoints, logs and data in the usage breakdown.
pub fn usage_spec(cfg: &CheckpointsConfig, prune: &PruneConfig, data: &str) -> UsageSpec {
    let mut spec = UsageSpec { checkpoints: cfg.roots.clone(), logs: prune.logs.roots.clone(), ..UsageSpec::default() };
    if !Path::new(data).is_absolute() && !spec.data.iter().any(|d| d == data) {
        spec.data.push(data.to_string());
    }
    spec
}

/// Scan the roots and the workspace once. `previous` lets size changes count as writing.
pub fn collect(
    workspace: &Path,
    cfg: &CheckpointsConfig,
    spec: &UsageSpec,
    confirm: &dyn ConfirmationSource,
    previous: Option<&Inventory>,
    now: SystemTime,
) -> (Inventory, CheckpointsSample) {
    let mut inv = inventory::scan(workspace, cfg, now, ScanOptions { previous, check_open_files: true });
    inv.apply_confirmations(confirm);
    let usage = usage::scan_usage(workspace, spec);
    let sample = CheckpointsSample {
        taken_unix: unix_secs(now),
        checkpoints: inv.checkpoints.clone(),
        total_bytes: inv.total_bytes,
        skipped: inv.skipped.clone(),
        usage,
    };
    (inv, sample)
}

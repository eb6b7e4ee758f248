//! The workspace's disk history, kept across runs in `.opsconsole/disk-history.jsonl`, for
//! growth rates and time-to-full.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::growth::UsageSample;

/// The window of disk history used for growth rates.
pub fn growth_window() -> Duration {
    crate::disk::growth::GrowthParams::default().window
}

/// The workspace's disk history, kept across runs.
fn disk_history_path(workspace: &Path) -> PathBuf {
    workspace.join(".opsconsole").join("disk-history.jsonl")
}

/// Record a disk sample in the workspace's disk history (best effort).
pub fn record_disk_history(workspace: &Path, disks: &crate::disk::DiskSample, now: SystemTime) {
    let path = disk_history_path(workspace);
    let samples: Vec<(String, u64)> = disks.disks.iter().map(|d| (d.mount.clone(), d.used_bytes)).collect();
    if let Err(e) = crate::disk::growth::history_file::append(&path, &samples, now, growth_window()) {
        tracing::debug!("disk history not written: {e}");
    }
}

/// The workspace's disk history of the last [`growth_window`], by mount point.
pub fn load(workspace: &Path, now: SystemTime) -> BTreeMap<String, Vec<UsageSample>> {
    super::growth::history_file::load(&disk_history_path(workspace), now, growth_window())
}

//! One whole sample of the checkpoint inventory and the workspace usage breakdown, as the
//! collector sends it to the console and `status --json` prints it.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use super::config::{CheckpointsConfig, PruneConfig};
use super::inventory::{self, Checkpoint, ScanOptions};
use super::ledger::ConfirmationSource;
use super::roots::{self, Skipped};
use crate::disk::usage::{self, UsageBreakdown, UsageSpec};
use crate::unixtime::secs as unix_secs;

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
    previous: Option<&[Checkpoint]>,
    now: SystemTime,
) -> CheckpointsSample {
    // One walk of the workspace serves both the usage breakdown and the inventory of the
    // roots inside it; roots elsewhere (absolute paths) are scanned on their own.
    let (roots, mut skipped) = roots::expand_roots(workspace, &cfg.roots);
    let (inside, outside): (Vec<_>, Vec<_>) = roots.into_iter().partition(|r| r.anchor == workspace);
    // Write handles from /proc are looked for beside the walk; with more than one core the
    // walk itself is shared by two threads (one collector, locked once per folder).
    let all: Vec<_> = inside.iter().chain(outside.iter()).cloned().collect();
    let two = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let walk = std::sync::Mutex::new(inventory::WalkCollector::new(cfg, inside));
    let (usage, open) = std::thread::scope(|s| {
        // What is shown may come from a scan shared with the rules and the log follower
        // (they scan on the same 30 s grid); the prune planner and executor scan afresh.
        let open = s.spawn(|| {
            let paths: Vec<&Path> = all.iter().map(|r| r.path.as_path()).collect();
            crate::checkpoints::openfiles::recent_open_for_write(&paths, crate::procfs::SHARED_MAX_AGE)
        });
        let visit = |rel: &Path, entries: &[(std::ffi::CString, crate::disk::usage::Stat)]| {
            walk.lock().unwrap_or_else(|p| p.into_inner()).visit(rel, entries);
        };
        let (mut v1, mut v2) = (visit, visit);
        let usage = usage::scan_usage_split(workspace, spec, &mut v1, if two { Some(&mut v2) } else { None });
        // A panic in the /proc scan leaves "held open" unknown here; the executor looks again.
        (usage, open.join().unwrap_or_default())
    });
    let walk = walk.into_inner().unwrap_or_else(|p| p.into_inner());
    let (mut all_roots, mut units, walk_skipped) = walk.into_parts();
    skipped.extend(walk_skipped);
    let files = roots::name_set(&cfg.patterns);
    let m = roots::UnitMatcher {
        files: &files,
        folder_unit: cfg.hf_folders.then_some(&*inventory::HF_FOLDER_RE),
        max_depth: inventory::MAX_DEPTH,
    };
    for r in &outside {
        roots::scan_root(r, &m, &mut units, &mut skipped);
    }
    all_roots.extend(outside);
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let mut inv = inventory::finish(
        workspace,
        cfg,
        all_roots,
        units,
        skipped,
        now,
        ScanOptions { previous, check_open_files: true },
        Some(open),
    );
    inv.apply_confirmations(confirm);
    CheckpointsSample {
        taken_unix: unix_secs(now),
        checkpoints: inv.checkpoints,
        total_bytes: inv.total_bytes,
        skipped: inv.skipped,
        usage,
    }
}

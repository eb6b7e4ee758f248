//! A prune plan for the workspace as it is now, and the executor's view of the world.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::confirmation_source;
use crate::checkpoints::logs::scan_logs;
use crate::checkpoints::plan::{PlanInputs, PrunePlan, build_plan};
use crate::checkpoints::{DiskSpace, ExecContext, inventory};
use crate::config::Config;

/// The `keep_best_metric` at each step, from the training log (empty when off). A
/// checkpoint whose step has no value is kept as `metric_unknown`.
fn metric_by_step(workspace: &Path, cfg: &Config) -> std::collections::BTreeMap<u64, f64> {
    let name = &cfg.checkpoints.keep_best_metric;
    if name.is_empty() {
        return Default::default();
    }
    crate::logtail::backfill::metric_by_step(workspace, &cfg.log, name).unwrap_or_else(|e| {
        tracing::warn!("reading {name} from the log for keep_best: {e}");
        Default::default()
    })
}

/// The executor's view of the world for this workspace.
pub fn exec_context(workspace: &Path, cfg: &Config) -> ExecContext {
    ExecContext {
        workspace: workspace.to_path_buf(),
        cfg: cfg.checkpoints.clone(),
        log_cfg: cfg.prune.logs.clone(),
        confirm: confirmation_source(workspace, cfg),
        metric_by_step: metric_by_step(workspace, cfg),
        clock: Arc::new(SystemTime::now),
        check_open_files: true,
    }
}

/// The filesystem the checkpoints live on: the first checkpoint root that exists, else the
/// workspace.
/// Each filesystem holding a checkpoint root or a pruned log folder (the workspace's when
/// there is none), once.
fn spaces_for(workspace: &Path, cfg: &Config) -> Vec<DiskSpace> {
    let (roots, _) = crate::checkpoints::roots::expand_roots(workspace, &cfg.checkpoints.roots);
    let (log_roots, _) = crate::checkpoints::roots::expand_roots(workspace, &cfg.prune.logs.roots);
    let mut paths: Vec<PathBuf> = roots.into_iter().chain(log_roots).map(|r| r.path).collect();
    paths.push(workspace.to_path_buf());
    let mut out: Vec<DiskSpace> = Vec::new();
    for p in paths {
        if let Ok(d) = DiskSpace::of_path(&p)
            && !out.iter().any(|o| o.dev == d.dev)
        {
            out.push(d);
        }
    }
    out
}

/// Build a prune plan for the workspace as it is now.
pub fn make_plan(workspace: &Path, cfg: &Config, allow_unconfirmed: bool, now: SystemTime) -> PrunePlan {
    let ctx = exec_context(workspace, cfg);
    let mut inv = inventory::scan(
        workspace,
        &cfg.checkpoints,
        now,
        inventory::ScanOptions { previous: None, check_open_files: true },
    );
    inv.apply_confirmations(ctx.confirm.as_ref());
    let (logs, _) = scan_logs(workspace, &cfg.prune.logs, cfg.checkpoints.settle_secs, now, true, ctx.confirm.as_ref());
    let inputs =
        PlanInputs { metric_by_step: ctx.metric_by_step.clone(), allow_unconfirmed, disks: spaces_for(workspace, cfg) };
    let mut plan = build_plan(&inv, &logs, &cfg.checkpoints, &cfg.prune.logs, &inputs, now);
    // Say why an item is not confirmed when its copy failed verification.
    for item in &mut plan.items {
        if (item.confirmed_on.is_empty() || item.reason == crate::checkpoints::Reason::Unconfirmed)
            && crate::checkpoints::inventory::has_ledger_key(&item.path)
        {
            item.note = ctx.confirm.note(&item.rel_path);
        }
    }
    plan
}

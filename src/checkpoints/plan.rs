//! Retention policy -> prune plan.
//!
//! Hard rules that no setting turns off, checked here and again by the executor just
//! before each deletion:
//! - the newest checkpoint of a series (by step, and by modification time; also the newest
//!   complete one while a newer one is still being written) is never deleted;
//! - a checkpoint still being written is never deleted;
//! - only things found inside the roots, never through a link, are ever deleted;
//! - an unconfirmed checkpoint (see [`is_confirmed`]) is deleted only with an explicit
//!   override, which the executor records before it deletes.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::config::{BestMode, CheckpointsConfig, LogPruneConfig};
use super::inventory::{Checkpoint, Inventory};
use super::ledger::is_confirmed;
use super::logs::LogFile;
use super::roots::{Unit, UnitKind};
use super::ser_path;
use crate::unixtime::secs as unix_secs;

/// Keep or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    Keep,
    Delete,
}

/// Why an item is kept or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The newest of its series (never deleted).
    Newest,
    /// Still being written (never deleted).
    Writing,
    /// Among the newest `keep_last` complete checkpoints.
    WithinKeepLast,
    /// Its step is a multiple of `keep_every_steps`.
    Milestone,
    /// Among the best by `keep_best_metric`.
    Best,
    /// `keep_best_metric` is set but its value at this step is not known, so whether it
    /// is among the best cannot be told: kept.
    MetricUnknown,
    /// Would be deleted, but has no confirmed copy where the policy requires one.
    Unconfirmed,
    /// Older than the newest `keep_last`: deleted.
    BeyondKeepLast,
    /// A log older than `prune.logs.max_age_days`.
    LogTooOld,
    /// A log larger than `prune.logs.max_file_mib`.
    LogTooLarge,
}

impl Reason {
    /// The snake_case name used in JSON and in the prune record.
    pub fn key(self) -> &'static str {
        match self {
            Reason::Newest => "newest",
            Reason::Writing => "writing",
            Reason::WithinKeepLast => "within_keep_last",
            Reason::Milestone => "milestone",
            Reason::Best => "best",
            Reason::MetricUnknown => "metric_unknown",
            Reason::Unconfirmed => "unconfirmed",
            Reason::BeyondKeepLast => "beyond_keep_last",
            Reason::LogTooOld => "log_too_old",
            Reason::LogTooLarge => "log_too_large",
        }
    }

    /// The word shown to the user.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Newest => "newest",
            Reason::Writing => "writing",
            Reason::WithinKeepLast => "within keep_last",
            Reason::Milestone => "milestone",
            Reason::Best => "best",
            Reason::MetricUnknown => "metric unknown",
            Reason::Unconfirmed => "unconfirmed",
            Reason::BeyondKeepLast => "beyond keep_last",
            Reason::LogTooOld => "log too old",
            Reason::LogTooLarge => "log too large",
        }
    }
}

/// A checkpoint or a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Checkpoint,
    Log,
}

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanItem {
    #[serde(serialize_with = "ser_path")]
    pub path: PathBuf,
    pub rel_path: String,
    pub kind: ItemKind,
    pub unit_kind: UnitKind,
    pub step: Option<u64>,
    pub bytes: u64,
    pub freeable_bytes: u64,
    pub action: PlanAction,
    pub reason: Reason,
    pub confirmed_on: Vec<String>,
    /// Deleted although unconfirmed, on the user's explicit override.
    pub unconfirmed_override: bool,
    /// Why it is not confirmed, when more is known than "not stored yet" (its stored copy
    /// failed verification and is being stored again).
    pub note: Option<String>,
    #[serde(skip)]
    pub unit: Unit,
}

/// Space on a filesystem holding roots, as `statvfs` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskSpace {
    /// A folder on it (the first root found there), to name it.
    #[serde(serialize_with = "ser_path")]
    pub path: PathBuf,
    /// Its device number (`st_dev`), which the items' own `dev` is matched against.
    pub dev: u64,
    pub used_bytes: u64,
    /// Space an unprivileged process can still use.
    pub available_bytes: u64,
}

/// One filesystem before and after the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FillProjection {
    pub disk: DiskSpace,
    /// Space the plan's deletions on this filesystem give back.
    pub bytes_to_free: u64,
    pub fill_before: f64,
    pub fill_after: f64,
}

impl DiskSpace {
    /// Fill as `df` shows it: used / (used + available), 0..=1.
    pub fn fill(&self) -> f64 {
        let size = self.used_bytes.saturating_add(self.available_bytes);
        if size == 0 { 0.0 } else { self.used_bytes as f64 / size as f64 }
    }

    /// Fill after giving back `freed` bytes.
    pub fn fill_after(&self, freed: u64) -> f64 {
        DiskSpace {
            used_bytes: self.used_bytes.saturating_sub(freed),
            available_bytes: self.available_bytes.saturating_add(freed.min(self.used_bytes)),
            ..self.clone()
        }
        .fill()
    }

    /// `statvfs` of the filesystem holding `path`.
    pub fn of_path(path: &std::path::Path) -> std::io::Result<DiskSpace> {
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(path)?.dev();
        let (_, used_bytes, available_bytes) = crate::disk::statvfs(path)?;
        Ok(DiskSpace { path: path.to_path_buf(), dev, used_bytes, available_bytes })
    }
}

/// A prune plan: every checkpoint (and over-limit log) with keep/delete and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrunePlan {
    pub created_at_unix: u64,
    pub items: Vec<PlanItem>,
    pub delete_count: usize,
    pub keep_count: usize,
    /// Apparent size of everything marked delete.
    pub bytes_to_delete: u64,
    /// Space deleting them gives back to the filesystem.
    pub bytes_to_free: u64,
    /// Deletions that need the unconfirmed override (present only when it was given).
    pub unconfirmed_deletes: usize,
    /// Items kept only because they are unconfirmed (what the override would add).
    pub kept_unconfirmed: usize,
    pub allow_unconfirmed: bool,
    /// Every filesystem holding roots, fullest first, with what the plan frees on each.
    pub filesystems: Vec<FillProjection>,
    /// The fullest of them (the one a crash loop threatens first): `filesystems[0]`.
    pub disk: Option<DiskSpace>,
    pub fill_before: Option<f64>,
    pub fill_after: Option<f64>,
}

impl PrunePlan {
    /// The projected fill in words: `disk 95.0% → 60.0%` for one filesystem, and for
    /// several each named by the folder that stands for it (relative to `workspace`).
    pub fn fill_text(&self, workspace: &Path, arrow: &str) -> Option<String> {
        let pct = |f: f64| format!("{:.1}%", f * 100.0);
        match self.filesystems.as_slice() {
            [] => None,
            [one] => Some(format!("disk {} {arrow} {}", pct(one.fill_before), pct(one.fill_after))),
            many => Some(
                many.iter()
                    .map(|f| {
                        let name = f.disk.path.strip_prefix(workspace).unwrap_or(&f.disk.path);
                        let name = if name.as_os_str().is_empty() { Path::new(".") } else { name };
                        format!("{} {} {arrow} {}", name.display(), pct(f.fill_before), pct(f.fill_after))
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        }
    }

    /// Items to delete, in the order the executor runs them: confirmed ones first (they
    /// free space without needing the record written first), oldest first.
    pub fn deletions(&self) -> Vec<&PlanItem> {
        let mut d: Vec<&PlanItem> = self.items.iter().filter(|i| i.action == PlanAction::Delete).collect();
        d.sort_by_key(|i| i.unconfirmed_override);
        d
    }
}

/// Extra inputs to planning.
#[derive(Debug, Clone, Default)]
pub struct PlanInputs {
    /// Values of `keep_best_metric` by step (from the log).
    pub metric_by_step: BTreeMap<u64, f64>,
    /// The explicit override for deleting unconfirmed items.
    pub allow_unconfirmed: bool,
    /// The filesystems holding the roots (one each), for the projected fill.
    pub disks: Vec<DiskSpace>,
}

/// Plan one inventory's checkpoints.
pub fn plan_checkpoints(inv: &Inventory, cfg: &CheckpointsConfig, inputs: &PlanInputs) -> Vec<PlanItem> {
    let mut out = Vec::with_capacity(inv.checkpoints.len());
    let keep_last = cfg.keep_last.max(1);
    for (_, series) in inv.series() {
        // `series` is oldest first.
        let mut reason: Vec<Option<Reason>> = vec![None; series.len()];
        for (i, c) in series.iter().enumerate() {
            if c.writing {
                reason[i] = Some(Reason::Writing);
            }
        }
        let mut protect_newest = |idx: Option<usize>| {
            if let Some(i) = idx
                && reason[i].is_none()
            {
                reason[i] = Some(Reason::Newest);
            }
        };
        let n = series.len();
        protect_newest(n.checked_sub(1));
        protect_newest((0..n).rev().find(|&i| !series[i].writing));
        protect_newest(newest_by_mtime(&series, |_| true));
        protect_newest(newest_by_mtime(&series, |c| !c.writing));
        // keep_last: the newest N complete checkpoints.
        let eligible: Vec<usize> = (0..n).filter(|&i| !series[i].writing).collect();
        for &i in eligible.iter().rev().take(keep_last) {
            if reason[i].is_none() {
                reason[i] = Some(Reason::WithinKeepLast);
            }
        }
        if !cfg.keep_best_metric.is_empty() && cfg.keep_best_count > 0 {
            let mut scored: Vec<(usize, f64)> = eligible
                .iter()
                .filter_map(|&i| {
                    let v = *inputs.metric_by_step.get(&series[i].step?)?;
                    v.is_finite().then_some((i, v))
                })
                .collect();
            scored.sort_by(|a, b| match cfg.keep_best_mode {
                BestMode::Min => a.1.total_cmp(&b.1),
                BestMode::Max => b.1.total_cmp(&a.1),
            });
            for &(i, _) in scored.iter().take(cfg.keep_best_count) {
                if reason[i].is_none() {
                    reason[i] = Some(Reason::Best);
                }
            }
        }
        if !cfg.keep_best_metric.is_empty() && cfg.keep_best_count > 0 {
            for &i in &eligible {
                let known = series[i].step.and_then(|s| inputs.metric_by_step.get(&s)).is_some_and(|v| v.is_finite());
                if !known && reason[i].is_none() {
                    reason[i] = Some(Reason::MetricUnknown);
                }
            }
        }
        if cfg.keep_every_steps > 0 {
            for &i in &eligible {
                if series[i].step.is_some_and(|s| s % cfg.keep_every_steps == 0) && reason[i].is_none() {
                    reason[i] = Some(Reason::Milestone);
                }
            }
        }
        if parts_of_one_checkpoint(&series) {
            // Kept whole: the newest (always kept) is one of its parts.
            let whole = if series.iter().any(|c| c.writing) { Reason::Writing } else { Reason::Newest };
            for r in reason.iter_mut().filter(|r| r.is_none()) {
                *r = Some(whole);
            }
        }
        for (i, c) in series.iter().enumerate() {
            let confirmed = is_confirmed(&c.confirmed_on, &cfg.require_confirmed_on);
            let (action, why, over) = match reason[i] {
                Some(r) => (PlanAction::Keep, r, false),
                None if confirmed => (PlanAction::Delete, Reason::BeyondKeepLast, false),
                None if inputs.allow_unconfirmed => (PlanAction::Delete, Reason::BeyondKeepLast, true),
                None => (PlanAction::Keep, Reason::Unconfirmed, false),
            };
            out.push(item_of_checkpoint(c, action, why, over));
        }
    }
    keep_shard_sets_whole(&mut out);
    out
}

/// `model-00001-of-00004.safetensors` → (its folder, step, `model-#-of-00004.safetensors`):
/// what the shards of one save share. `None` for a name that is not a shard.
fn shard_set(item: &PlanItem) -> Option<(PathBuf, Option<u64>, String)> {
    static SHARD: std::sync::LazyLock<regex::Regex> =
        // Unicode `\d`, unlike the patterns compiled at start (it is compiled only when a
        // prune is planned): a shard set it did not recognize could be split by the plan.
        std::sync::LazyLock::new(|| regex::Regex::new(r"-(\d+)-of-(\d+)").expect("static regex"));
    let name = item.path.file_name()?.to_str()?;
    let m = SHARD.captures_iter(name).last()?;
    let (all, total) = (m.get(0)?, m.get(2)?.as_str());
    let key = format!("{}-#-of-{total}{}", &name[..all.start()], &name[all.end()..]);
    Some((item.path.parent()?.to_path_buf(), item.step, key))
}

/// The shards of one checkpoint (`save_pretrained`'s `-00001-of-00004`) are kept or
/// deleted together: named without a step they fall in one run ordered by time, where
/// keep_last would leave the first shards of the newest checkpoint to delete. When any
/// shard of a set is kept, every shard is, for the same reason.
fn keep_shard_sets_whole(items: &mut [PlanItem]) {
    let mut kept: std::collections::HashMap<(PathBuf, Option<u64>, String), Reason> = Default::default();
    for i in items.iter().filter(|i| i.action == PlanAction::Keep) {
        if let Some(k) = shard_set(i) {
            kept.entry(k).or_insert(i.reason);
        }
    }
    for i in items.iter_mut().filter(|i| i.action == PlanAction::Delete) {
        if let Some(reason) = shard_set(i).and_then(|k| kept.get(&k)) {
            i.action = PlanAction::Keep;
            i.reason = *reason;
            i.unconfirmed_override = false;
        }
    }
}

/// Whether a run is the parts of one checkpoint saved as a folder: names without a step,
/// in a folder below the root (`epoch_3/model.pt`, `optimizer.pt`, `rng_state.pth`;
/// DeepSpeed's `global_step500/` with a file per rank), of more than one kind (their names
/// differ beyond their digits). Such a run is not versions ordered by time: keep_last
/// would delete the parts written first. Versions of one name (`run1/model_epoch_N.pt`,
/// one kind) stay a run.
fn parts_of_one_checkpoint(series: &[&Checkpoint]) -> bool {
    let kind = |c: &Checkpoint| -> String {
        let name = c.unit.rel_in_root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut out = String::with_capacity(name.len());
        for ch in name.chars() {
            if !(ch.is_ascii_digit() && out.ends_with('#')) {
                out.push(if ch.is_ascii_digit() { '#' } else { ch });
            }
        }
        out
    };
    series.len() > 1
        && series.iter().all(|c| c.step.is_none() && c.unit.rel_in_root.components().count() >= 2)
        && series.iter().map(|c| kind(c)).collect::<HashSet<_>>().len() > 1
}

fn newest_by_mtime(series: &[&Checkpoint], ok: impl Fn(&Checkpoint) -> bool) -> Option<usize> {
    (0..series.len()).filter(|&i| ok(series[i])).max_by(|&a, &b| series[a].mtime.cmp(&series[b].mtime).then(a.cmp(&b)))
}

fn item_of_checkpoint(c: &Checkpoint, action: PlanAction, reason: Reason, over: bool) -> PlanItem {
    PlanItem {
        path: c.path.clone(),
        rel_path: c.rel_path.clone(),
        kind: ItemKind::Checkpoint,
        unit_kind: c.kind,
        step: c.step,
        bytes: c.bytes,
        freeable_bytes: c.freeable_bytes,
        action,
        reason,
        confirmed_on: c.confirmed_on.clone(),
        unconfirmed_override: over,
        note: None,
        unit: c.unit.clone(),
    }
}

/// Plan logs: only logs over a limit appear. The newest log of each folder and any log
/// still being written are kept.
pub fn plan_logs(logs: &[LogFile], cfg: &LogPruneConfig, allow_unconfirmed: bool, now: SystemTime) -> Vec<PlanItem> {
    if !cfg.enabled {
        return Vec::new();
    }
    let mut newest_in_dir: BTreeMap<PathBuf, (SystemTime, PathBuf)> = BTreeMap::new();
    for l in logs {
        let dir = l.path.parent().map(PathBuf::from).unwrap_or_default();
        let e = newest_in_dir.entry(dir).or_insert((l.mtime, l.path.clone()));
        if (l.mtime, &l.path) > (e.0, &e.1) {
            *e = (l.mtime, l.path.clone());
        }
    }
    let newest: HashSet<&PathBuf> = newest_in_dir.values().map(|(_, p)| p).collect();
    let max_age = Duration::from_secs(cfg.max_age_days.saturating_mul(86_400));
    let max_bytes = cfg.max_file_mib.saturating_mul(1 << 20);
    let mut out = Vec::new();
    for l in logs {
        let too_old = cfg.max_age_days > 0 && now.duration_since(l.mtime).is_ok_and(|a| a > max_age);
        let too_large = cfg.max_file_mib > 0 && l.bytes > max_bytes;
        if !too_old && !too_large {
            continue;
        }
        let over_reason = if too_old { Reason::LogTooOld } else { Reason::LogTooLarge };
        let confirmed = is_confirmed(&l.confirmed_on, &cfg.require_confirmed_on);
        let (action, reason, over) = if l.writing {
            (PlanAction::Keep, Reason::Writing, false)
        } else if newest.contains(&l.path) {
            (PlanAction::Keep, Reason::Newest, false)
        } else if confirmed {
            (PlanAction::Delete, over_reason, false)
        } else if allow_unconfirmed {
            (PlanAction::Delete, over_reason, true)
        } else {
            (PlanAction::Keep, Reason::Unconfirmed, false)
        };
        out.push(PlanItem {
            path: l.path.clone(),
            rel_path: l.rel_path.clone(),
            kind: ItemKind::Log,
            unit_kind: UnitKind::File,
            step: None,
            bytes: l.bytes,
            freeable_bytes: l.freeable_bytes,
            action,
            reason,
            confirmed_on: l.confirmed_on.clone(),
            unconfirmed_override: over,
            note: None,
            unit: l.unit.clone(),
        });
    }
    out
}

/// The whole plan: checkpoints, then logs, with totals and the projected fill.
pub fn build_plan(
    inv: &Inventory,
    logs: &[LogFile],
    cfg: &CheckpointsConfig,
    log_cfg: &LogPruneConfig,
    inputs: &PlanInputs,
    now: SystemTime,
) -> PrunePlan {
    let mut items = plan_checkpoints(inv, cfg, inputs);
    // A checkpoint is pruned by the checkpoint rules only, even where `prune.logs` is
    // pointed at it (its age, size and newest-per-folder rules are not those rules).
    let logs: Vec<LogFile> = logs.iter().filter(|l| !is_checkpoint(inv, &l.path)).cloned().collect();
    items.extend(plan_logs(&logs, log_cfg, inputs.allow_unconfirmed, now));
    summarize(items, inputs, now)
}

/// Whether `path` is one of the inventory's checkpoints or inside one (a `checkpoint-N/`
/// folder).
pub fn is_checkpoint(inv: &Inventory, path: &Path) -> bool {
    inv.checkpoints.iter().any(|c| path.starts_with(&c.path))
}

/// Totals and projected fill for a list of items.
pub fn summarize(items: Vec<PlanItem>, inputs: &PlanInputs, now: SystemTime) -> PrunePlan {
    let del = |i: &&PlanItem| i.action == PlanAction::Delete;
    let bytes_to_delete = items.iter().filter(del).map(|i| i.bytes).sum();
    let bytes_to_free = items.iter().filter(del).map(|i| i.freeable_bytes).sum();
    let delete_count = items.iter().filter(del).count();
    let filesystems = project_fill(&items, &inputs.disks);
    PrunePlan {
        created_at_unix: unix_secs(now),
        delete_count,
        keep_count: items.len() - delete_count,
        bytes_to_delete,
        bytes_to_free,
        unconfirmed_deletes: items.iter().filter(|i| i.unconfirmed_override).count(),
        kept_unconfirmed: items.iter().filter(|i| i.reason == Reason::Unconfirmed).count(),
        allow_unconfirmed: inputs.allow_unconfirmed,
        filesystems: filesystems.clone(),
        disk: filesystems.first().map(|f| f.disk.clone()),
        fill_before: filesystems.first().map(|f| f.fill_before),
        fill_after: filesystems.first().map(|f| f.fill_after),
        items,
    }
}

/// Each filesystem before and after deleting what `items` marks delete: an item frees
/// space on the filesystem its own `dev` names. Fullest first.
pub fn project_fill(items: &[PlanItem], disks: &[DiskSpace]) -> Vec<FillProjection> {
    let mut out: Vec<FillProjection> = disks
        .iter()
        .map(|d| {
            let freed = items
                .iter()
                .filter(|i| i.action == PlanAction::Delete && i.unit.dev == d.dev)
                .map(|i| i.freeable_bytes)
                .sum();
            FillProjection {
                disk: d.clone(),
                bytes_to_free: freed,
                fill_before: d.fill(),
                fill_after: d.fill_after(freed),
            }
        })
        .collect();
    out.sort_by(|a, b| b.fill_before.total_cmp(&a.fill_before));
    out
}

//! Running a prune plan: a background job that re-checks every safety rule for every item
//! just before deleting it (the world may have changed since the plan was shown) and
//! reports `Started / Progress / Done / Failed`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use serde::Serialize;

use super::config::{CheckpointsConfig, LogPruneConfig};
use super::inventory::{self, ScanOptions};
use super::ledger::{ConfirmationSource, PruneEvent, PruneEventKind, PruneEventSink, is_confirmed};
use super::logs::scan_logs;
use super::plan::{ItemKind, PlanAction, PlanInputs, PlanItem, PrunePlan, Reason, plan_checkpoints, plan_logs};
use super::roots::expand_roots;
use super::{safedelete, ser_path};
use crate::unixtime::secs as unix_secs;

/// Everything the executor needs to re-check the world.
#[derive(Clone)]
pub struct ExecContext {
    pub workspace: PathBuf,
    pub cfg: CheckpointsConfig,
    pub log_cfg: LogPruneConfig,
    pub confirm: Arc<dyn ConfirmationSource + Send + Sync>,
    pub metric_by_step: BTreeMap<u64, f64>,
    /// The current time (tests move it).
    pub clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
    /// Look in `/proc` for write handles before each deletion.
    pub check_open_files: bool,
}

impl std::fmt::Debug for ExecContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecContext")
            .field("workspace", &self.workspace)
            .field("check_open_files", &self.check_open_files)
            .finish_non_exhaustive()
    }
}

/// What happened to one planned deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum ItemOutcome {
    Deleted,
    /// Not deleted because a rule says so now.
    Skipped(String),
    /// The deletion was attempted and failed.
    Failed(String),
}

/// One item's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemResult {
    #[serde(serialize_with = "ser_path")]
    pub path: PathBuf,
    pub bytes: u64,
    pub outcome: ItemOutcome,
}

/// The end of a prune job.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct PruneReport {
    pub deleted: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Space given back (sum of the deleted items' freeable bytes).
    pub freed_bytes: u64,
    pub cancelled: bool,
    /// Events that could not be written to the record (deletions still happened).
    pub record_errors: usize,
    pub items: Vec<ItemResult>,
}

impl PruneReport {
    /// `kind N (file: why)` for the skipped or failed items: the reason of the first, and
    /// how many more (their reasons are in `prune-events.jsonl`). `kind N` alone at zero.
    fn counted(&self, skipped: bool) -> String {
        let (word, n) = if skipped { ("skipped", self.skipped) } else { ("failed", self.failed) };
        let whys: Vec<(String, &str)> = self
            .items
            .iter()
            .filter_map(|i| match &i.outcome {
                ItemOutcome::Skipped(w) if skipped => Some((i, w)),
                ItemOutcome::Failed(w) if !skipped => Some((i, w)),
                _ => None,
            })
            .map(|(i, w)| {
                (i.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(), w.as_str())
            })
            .collect();
        match whys.split_first() {
            None => format!("{word} {n}"),
            Some(((file, why), [])) => format!("{word} {n} ({file}: {why})"),
            Some(((file, why), rest)) => {
                format!("{word} {n} ({file}: {why}; {} more in prune-events.jsonl)", rest.len())
            }
        }
    }

    /// One line: what was freed and deleted, and what was kept after all and why
    /// (`freed 6.7 GB · deleted 1 · skipped 1 (v68_step_100.pt: the L2 copy changed) ·
    /// failed 0`).
    pub fn summary(&self) -> String {
        format!(
            "{}freed {} · deleted {} · {} · {}",
            if self.cancelled { "stopped: " } else { "" },
            crate::util::bytes(self.freed_bytes),
            self.deleted,
            self.counted(true),
            self.counted(false)
        )
    }
}

/// Progress of a prune job, as plain values.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PruneProgress {
    Started { items: usize, bytes_to_free: u64 },
    Progress { done: usize, total: usize, freed_bytes: u64, item: ItemResult },
    Done { report: PruneReport },
    Failed { error: String },
}

fn event(item: &PlanItem, kind: PruneEventKind, reason: String, now: SystemTime) -> PruneEvent {
    PruneEvent {
        at_unix: unix_secs(now),
        kind,
        path: item.rel_path.clone(),
        bytes: item.bytes,
        reason,
        confirmed_on: item.confirmed_on.clone(),
        unconfirmed_override: item.unconfirmed_override,
    }
}

/// Re-plan the item from a fresh look at its root; `Ok(fresh item)` when it must still be
/// deleted, `Err(why not)` otherwise.
fn recheck(item: &PlanItem, plan: &PrunePlan, ctx: &ExecContext) -> Result<PlanItem, String> {
    let now = (ctx.clock)();
    let inputs = PlanInputs {
        metric_by_step: ctx.metric_by_step.clone(),
        allow_unconfirmed: plan.allow_unconfirmed,
        disks: Vec::new(),
    };
    let fresh: Vec<PlanItem> = match item.kind {
        ItemKind::Checkpoint => {
            // The root must still be a configured root reached without links.
            let (roots, _) = expand_roots(&ctx.workspace, &ctx.cfg.roots);
            let Some(root) = roots.into_iter().find(|r| r.path == item.unit.root.path) else {
                return Err("its folder is no longer a checkpoint root reached without links".into());
            };
            let mut inv = inventory::scan_roots(
                &ctx.workspace,
                &ctx.cfg,
                vec![root],
                Vec::new(),
                now,
                ScanOptions { previous: None, check_open_files: ctx.check_open_files },
            );
            inv.apply_confirmations(ctx.confirm.as_ref());
            plan_checkpoints(&inv, &ctx.cfg, &inputs)
        }
        ItemKind::Log => {
            let inv = inventory::scan(&ctx.workspace, &ctx.cfg, now, ScanOptions::default());
            if super::plan::is_checkpoint(&inv, &item.path) {
                return Err("it is a checkpoint: only the checkpoint rules delete it".into());
            }
            let (logs, _) = scan_logs(
                &ctx.workspace,
                &ctx.log_cfg,
                ctx.cfg.settle_secs,
                now,
                ctx.check_open_files,
                ctx.confirm.as_ref(),
            );
            plan_logs(&logs, &ctx.log_cfg, plan.allow_unconfirmed, now)
        }
    };
    let Some(f) = fresh.into_iter().find(|f| f.path == item.path) else {
        return Err("gone, or no longer a candidate".into());
    };
    if f.unit.dev != item.unit.dev
        || f.unit.ino != item.unit.ino
        || f.unit.kind != item.unit.kind
        || f.unit.mtime != item.unit.mtime
    {
        return Err("replaced or modified since the plan was made".into());
    }
    if f.bytes != item.bytes {
        return Err("changed size since the plan was made".into());
    }
    if f.action != PlanAction::Delete {
        return Err(format!("now kept: {}", f.reason.as_str()));
    }
    // The hard rules once more, independently of the policy code.
    if matches!(f.reason, Reason::Newest | Reason::Writing) {
        return Err(format!("now {}", f.reason.as_str()));
    }
    let required = match item.kind {
        ItemKind::Checkpoint => &ctx.cfg.require_confirmed_on,
        ItemKind::Log => &ctx.log_cfg.require_confirmed_on,
    };
    if !is_confirmed(&f.confirmed_on, required) && !plan.allow_unconfirmed {
        return Err("not confirmed and no override given".into());
    }
    // The ledger remembers; the remote decides. A confirmed copy is checked on the remote
    // each required level stores into now (without requirements: one of the levels it is
    // confirmed on); a copy that fails keeps the file, and is stored again. An item the
    // user deletes by override was not confirmed to begin with.
    if !f.unconfirmed_override {
        let levels: Vec<String> = if required.is_empty() {
            f.confirmed_on.iter().filter(|l| !l.eq_ignore_ascii_case("L1")).cloned().collect()
        } else {
            required.clone()
        };
        let mut errors = Vec::new();
        let mut verified = 0;
        for level in &levels {
            match ctx.confirm.verify(&f.rel_path, level) {
                Ok(()) => verified += 1,
                Err(why) => errors.push(format!("{level} {why}")),
            }
        }
        let ok = if required.is_empty() { verified > 0 } else { errors.is_empty() && verified > 0 };
        if !ok {
            let why = if errors.is_empty() { "no confirmed copy to verify".to_string() } else { errors.join("; ") };
            return Err(format!("kept: {why}"));
        }
    }
    let inside = match item.kind {
        ItemKind::Checkpoint => f.path.starts_with(&item.unit.root.path),
        ItemKind::Log => f.path.starts_with(&f.unit.root.path),
    };
    if !inside {
        return Err("outside its root".into());
    }
    Ok(f)
}

/// Run a plan's deletions now, on this thread. `cancel` stops before the next item.
pub fn run_plan(
    plan: &PrunePlan,
    ctx: &ExecContext,
    sink: &mut dyn PruneEventSink,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(PruneProgress),
) -> PruneReport {
    // Seen by the pre-shutdown checklist (`jobs`) from any process while this runs.
    let _marker = crate::joblock::hold(&ctx.workspace, "prune")
        .map_err(|e| tracing::warn!("prune runs without its job marker: {e}"))
        .ok();
    let todo = plan.deletions();
    let total = todo.len();
    progress(PruneProgress::Started { items: total, bytes_to_free: todo.iter().map(|i| i.freeable_bytes).sum() });
    if total > 0
        && let Err(e) = std::fs::metadata(&ctx.workspace)
    {
        let error = format!("workspace {} unreadable: {e}", ctx.workspace.display());
        progress(PruneProgress::Failed { error });
        return PruneReport::default();
    }
    let mut rep = PruneReport::default();
    for (n, item) in todo.into_iter().enumerate() {
        if cancel.load(Ordering::SeqCst) {
            rep.cancelled = true;
            break;
        }
        let now = (ctx.clock)();
        let outcome = match recheck(item, plan, ctx) {
            Err(why) => ItemOutcome::Skipped(why),
            Ok(fresh) => {
                let intent_ok = !fresh.unconfirmed_override
                    || sink
                        .record(&event(&fresh, PruneEventKind::OverrideIntent, fresh.reason.key().into(), now))
                        .is_ok();
                if !intent_ok {
                    ItemOutcome::Skipped("could not record the override first; not deleted".into())
                } else {
                    match safedelete::delete_unit(&fresh.unit) {
                        Ok(()) => {
                            rep.freed_bytes += fresh.freeable_bytes;
                            let ev = event(&fresh, PruneEventKind::Deleted, fresh.reason.key().into(), now);
                            if sink.record(&ev).is_err() {
                                rep.record_errors += 1;
                            }
                            ItemOutcome::Deleted
                        }
                        Err(e) => ItemOutcome::Failed(e.to_string()),
                    }
                }
            }
        };
        match &outcome {
            ItemOutcome::Deleted => rep.deleted += 1,
            ItemOutcome::Skipped(why) | ItemOutcome::Failed(why) => {
                if matches!(outcome, ItemOutcome::Skipped(_)) {
                    rep.skipped += 1;
                } else {
                    rep.failed += 1;
                }
                let kind = if matches!(outcome, ItemOutcome::Skipped(_)) {
                    PruneEventKind::Skipped
                } else {
                    PruneEventKind::Failed
                };
                if sink.record(&event(item, kind, why.clone(), now)).is_err() {
                    rep.record_errors += 1;
                }
            }
        }
        let result = ItemResult { path: item.path.clone(), bytes: item.bytes, outcome };
        rep.items.push(result.clone());
        progress(PruneProgress::Progress { done: n + 1, total, freed_bytes: rep.freed_bytes, item: result });
    }
    progress(PruneProgress::Done { report: rep.clone() });
    rep
}

/// Run a plan on its own thread; progress goes to `on` (e.g. a channel sender).
pub fn spawn_prune(
    plan: PrunePlan,
    ctx: ExecContext,
    mut sink: Box<dyn PruneEventSink>,
    cancel: Arc<AtomicBool>,
    mut on: impl FnMut(PruneProgress) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<PruneReport>> {
    std::thread::Builder::new()
        .name("prune".into())
        .spawn(move || run_plan(&plan, &ctx, sink.as_mut(), &cancel, &mut on))
}

//! Glue between the checkpoints domain and the console and CLI: building a plan from the
//! config, the checkpoint collector task, the prune job runner, and `opsconsole prune`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use color_eyre::eyre::Result;
use tokio::sync::mpsc;

use crate::app::Msg;
use crate::checkpoints::ledger::{PruneEvent, PruneEventKind};
use crate::checkpoints::logs::scan_logs;
use crate::checkpoints::plan::{PlanAction, PlanInputs, PrunePlan, build_plan};
use crate::checkpoints::{
    ConfirmationSource, DiskSpace, ExecContext, JsonlEventSink, NotConfirmed, PruneEventSink, PruneProgress, inventory,
    sample, unix_secs,
};
use crate::config::Config;
use crate::util;

/// Where confirmations come from: the workspace's sync ledger, when there is one, read
/// against the levels and remotes configured now. Without a ledger nothing is confirmed
/// anywhere, so only the explicit override deletes anything.
pub fn confirmation_source(workspace: &Path, cfg: &Config) -> Arc<dyn ConfirmationSource + Send + Sync> {
    if crate::sync::ledger::ledger_path(workspace).is_file() {
        // On a full disk the ledger is read from a copy: confirmations still count.
        match crate::sync::ledger::Ledger::open_for_reading(workspace) {
            Ok((ledger, read_only)) => {
                if let Some(why) = read_only {
                    tracing::warn!("{why}");
                }
                let level_remotes = cfg
                    .sync
                    .levels()
                    .iter()
                    .filter(|(_, _, l)| l.enabled && cfg.remotes.contains_key(&l.remote))
                    .map(|(n, _, l)| (n.to_string(), l.remote.clone()))
                    .collect();
                return Arc::new(LedgerConfirmations {
                    workspace: workspace.to_path_buf(),
                    ledger: std::sync::Mutex::new(ledger),
                    level_remotes,
                    remotes: cfg.remotes.clone(),
                    env: crate::sync::RemoteEnv::with_roots(workspace, &cfg.checkpoints.roots),
                });
            }
            Err(e) => tracing::warn!("the sync ledger cannot be read; treating every checkpoint as unconfirmed: {e}"),
        }
    }
    Arc::new(NotConfirmed)
}

/// Confirmations read from the sync ledger: a checkpoint is confirmed on a level when the
/// ledger holds a verified copy of exactly the bytes on disk now (every file of a folder),
/// recorded on the remote the level stores into now. Before a deletion each copy is
/// verified on that remote; a copy that fails is queued to be stored again.
struct LedgerConfirmations {
    workspace: PathBuf,
    ledger: std::sync::Mutex<crate::sync::ledger::Ledger>,
    /// (level, remote name) of each enabled level whose remote is configured.
    level_remotes: Vec<(String, String)>,
    remotes: crate::sync::RemotesConfig,
    env: crate::sync::RemoteEnv,
}

impl LedgerConfirmations {
    fn abs(&self, rel_path: &str) -> PathBuf {
        let p = Path::new(rel_path);
        if p.is_absolute() { p.to_path_buf() } else { self.workspace.join(p) }
    }

    /// Every file of the item, as ledger keys (workspace-relative).
    fn keys(&self, rel_path: &str) -> Result<Vec<String>, String> {
        let mut files = Vec::new();
        collect_files(&self.abs(rel_path), &mut files);
        if files.is_empty() {
            return Err("nothing to verify: no file found".into());
        }
        files
            .iter()
            .map(|f| {
                crate::sync::routing::relative_key(&self.workspace, f)
                    .ok_or_else(|| format!("{} is outside the workspace: no copy is recorded for it", f.display()))
            })
            .collect()
    }

    fn verify_files(&self, keys: &[String], level: &str) -> Result<(), String> {
        let Some((_, remote_name)) = self.level_remotes.iter().find(|(l, _)| l.eq_ignore_ascii_case(level)) else {
            return Err(format!("{level} has no configured remote"));
        };
        let mut ledger = self.ledger.lock().map_err(|_| "the ledger is unavailable".to_string())?;
        let mut entries = Vec::new();
        for key in keys {
            match ledger.entry(key, level).map_err(|e| e.to_string())? {
                Some(e) if e.state == crate::sync::ledger::UploadState::Confirmed && e.remote == *remote_name => {
                    entries.push(e)
                }
                Some(e) if e.state == crate::sync::ledger::UploadState::Confirmed => {
                    return Err(format!("{key} was stored on remote '{}', not on '{remote_name}'", e.remote));
                }
                _ => return Err(format!("{key} is not confirmed on {level}")),
            }
        }
        let remotes = crate::sync::engine::build_remotes_in(&self.remotes, &self.env);
        let Some(remote) = remotes.get(remote_name).cloned() else {
            return Err(format!("remote '{remote_name}' is not configured"));
        };
        // Remote calls are async: run them on a runtime of their own, on a thread of
        // their own (this may be called from a thread that is inside a runtime).
        let results: Vec<Result<Option<crate::sync::remote::RemoteObject>, String>> = std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the async runtime: {e}"))?;
                Ok::<_, String>(rt.block_on(async {
                    let mut out = Vec::new();
                    for e in &entries {
                        out.push(remote.stat(&e.path).await.map_err(|err| err.reason()));
                    }
                    out
                }))
            })
            .join()
            .unwrap_or_else(|_| Err("the verification stopped".into()))
        })?;
        let now = crate::sync::engine::now_ms();
        let mut first_error = None;
        // A folder names the file that failed; a single file is the item itself.
        let copy = |key: &str| if keys.len() > 1 { format!("the copy of {key}") } else { "the copy".to_string() };
        for (e, got) in entries.iter().zip(results) {
            let why = match got {
                // The remote could not be asked (not mounted, no access): keep the file;
                // the copy may well be fine, so it is not queued again.
                Err(err) => {
                    Some((format!("{} on remote '{remote_name}' could not be verified: {err}", copy(&e.path)), false))
                }
                Ok(obj) => crate::sync::verify::check(obj.as_ref(), e).err().map(|why| {
                    (format!("{} on remote '{remote_name}' failed verification: {why}", copy(&e.path)), true)
                }),
            };
            if let Some((why, requeue)) = why {
                if requeue {
                    let reason = format!("{why}; it is stored again");
                    if let Err(err) = ledger.requeue_unverified(&e.path, &e.level, &e.sha256, &reason, now) {
                        tracing::warn!("could not queue {} again: {err}", e.path);
                    }
                }
                first_error.get_or_insert(if requeue { format!("{why} (queued to be stored again)") } else { why });
            }
        }
        match first_error {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return };
    if meta.is_file() {
        out.push(path.to_path_buf());
    } else if meta.is_dir()
        && let Ok(rd) = std::fs::read_dir(path)
    {
        for e in rd.flatten() {
            collect_files(&e.path(), out);
        }
    }
}

impl ConfirmationSource for LedgerConfirmations {
    fn confirmed_on(&self, rel_path: &str) -> Vec<String> {
        let Ok(ledger) = self.ledger.lock() else { return Vec::new() };
        let lr: Vec<(&str, &str)> = self.level_remotes.iter().map(|(l, r)| (l.as_str(), r.as_str())).collect();
        // Any error reading the ledger means "not confirmed": it can only keep more.
        ledger.confirmed_levels(&self.workspace, Path::new(rel_path), &lr).unwrap_or_default()
    }

    fn verify(&self, rel_path: &str, level: &str) -> Result<(), String> {
        let keys = self.keys(rel_path)?;
        self.verify_files(&keys, level)
    }

    fn note(&self, rel_path: &str) -> Option<String> {
        let keys = self.keys(rel_path).ok()?;
        let ledger = self.ledger.lock().ok()?;
        ledger.unconfirmed_note(&keys).ok().flatten()
    }
}

/// Where prune events are recorded: every event in `.opsconsole/prune-events.jsonl`, and
/// each override deletion in the sync ledger's event history as well.
pub fn event_sink(workspace: &Path) -> Box<dyn PruneEventSink> {
    Box::new(LedgerEventSink { workspace: workspace.to_path_buf(), jsonl: JsonlEventSink::in_workspace(workspace) })
}

struct LedgerEventSink {
    workspace: PathBuf,
    jsonl: JsonlEventSink,
}

impl PruneEventSink for LedgerEventSink {
    fn record(&mut self, event: &PruneEvent) -> std::io::Result<()> {
        self.jsonl.record(event)?;
        if event.kind == PruneEventKind::OverrideIntent {
            // No record in the ledger, no deletion: the executor stops on this error.
            let mut ledger = crate::sync::ledger::Ledger::open(&self.workspace).map_err(std::io::Error::other)?;
            let missing: Vec<String> = ["L2", "L3"]
                .iter()
                .filter(|l| !event.confirmed_on.iter().any(|c| c.eq_ignore_ascii_case(l)))
                .map(|l| l.to_string())
                .collect();
            ledger
                .record_override_deletion(&event.path, &missing, event.at_unix as i64 * 1000)
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

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
        if item.confirmed_on.is_empty() || item.reason == crate::checkpoints::Reason::Unconfirmed {
            item.note = ctx.confirm.note(&item.rel_path);
        }
    }
    plan
}

/// Start a prune job on its own thread; progress arrives as [`Msg::Prune`].
pub fn spawn_job(
    workspace: &Path,
    cfg: &Config,
    plan: PrunePlan,
    auto: bool,
    tx: mpsc::UnboundedSender<Msg>,
) -> std::io::Result<()> {
    let ctx = exec_context(workspace, cfg);
    let mut sink = event_sink(workspace);
    if auto {
        let ev = PruneEvent {
            at_unix: unix_secs(SystemTime::now()),
            kind: PruneEventKind::AutoPrune,
            path: String::new(),
            bytes: plan.bytes_to_free,
            reason: format!("disk crossed critical; {} items to delete", plan.delete_count),
            confirmed_on: Vec::new(),
            unconfirmed_override: false,
        };
        if let Err(e) = sink.record(&ev) {
            tracing::warn!("could not record the automatic prune: {e}");
        }
    }
    let cancel = Arc::new(AtomicBool::new(false));
    crate::checkpoints::spawn_prune(plan, ctx, sink, cancel, move |p| {
        let _ = tx.send(Msg::Prune(p));
    })?;
    Ok(())
}

/// Plan on a blocking thread and send the plan back as [`Msg::PrunePlan`]; when `run_after`
/// (automatic prune), run it at once without the override.
pub fn spawn_plan(workspace: PathBuf, cfg: Config, allow_unconfirmed: bool, tx: mpsc::UnboundedSender<Msg>) {
    tokio::task::spawn_blocking(move || {
        let plan = make_plan(&workspace, &cfg, allow_unconfirmed, SystemTime::now());
        let _ = tx.send(Msg::PrunePlan(Box::new(plan)));
    });
}

/// Plan and run an automatic prune (never with the override).
pub fn spawn_auto(workspace: PathBuf, cfg: Config, tx: mpsc::UnboundedSender<Msg>) {
    tokio::task::spawn_blocking(move || {
        let plan = make_plan(&workspace, &cfg, false, SystemTime::now());
        if let Err(e) = spawn_job(&workspace, &cfg, plan, true, tx.clone()) {
            let _ = tx.send(Msg::Prune(PruneProgress::Failed { error: format!("starting the prune job: {e}") }));
        }
    });
}

/// The checkpoint collector: inventory and usage breakdown every `checkpoints.scan_secs`,
/// off the UI task.
pub fn spawn_collector(
    workspace: PathBuf,
    cfg: Config,
    tx: mpsc::UnboundedSender<Msg>,
    refresh: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(cfg.checkpoints.scan_secs.max(1));
    tokio::spawn(async move {
        let mut every = crate::util::aligned_interval(every);
        let spec = sample::usage_spec(&cfg.checkpoints, &cfg.prune, &cfg.paths.data);
        let mut previous: Option<Vec<crate::checkpoints::Checkpoint>> = None;
        loop {
            let (ws, full, c, s, prev) =
                (workspace.clone(), cfg.clone(), cfg.checkpoints.clone(), spec.clone(), previous.take());
            let disk_paths = crate::disk::watched_paths(&crate::workspace::Workspace::at(&workspace), &cfg);
            let thresholds = (&cfg.disk).into();
            let res = tokio::task::spawn_blocking(move || {
                let now = SystemTime::now();
                record_disk_history(&ws, &crate::disk::sample(&disk_paths, thresholds), now);
                // Opened for each scan: a ledger read from a copy on a full disk is read
                // normally again once space is back.
                let conf = confirmation_source(&ws, &full);
                sample::collect(&ws, &c, &s, conf.as_ref(), prev.as_deref(), now)
            })
            .await;
            match res {
                Ok(sample) => {
                    previous = Some(sample.checkpoints.clone());
                    if tx.send(Msg::Checkpoints(Box::new(sample))).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::error!("checkpoint scan failed: {e}"),
            }
            tokio::select! {
                _ = every.tick() => {}
                _ = refresh.notified() => {}
            }
        }
    })
}

/// Options of `opsconsole prune`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneOptions {
    pub dry_run: bool,
    pub yes: bool,
    pub json: bool,
    pub allow_unsynced: bool,
}

fn plan_text(plan: &PrunePlan, workspace: &Path) -> String {
    let mut out = String::new();
    // File names are the world's: control characters in them are shown, never obeyed.
    let rel = |p: &Path| util::printable(&p.strip_prefix(workspace).unwrap_or(p).display().to_string()).into_owned();
    for i in &plan.items {
        let action = match i.action {
            PlanAction::Keep => "keep",
            PlanAction::Delete if i.unconfirmed_override => "DELETE",
            PlanAction::Delete => "delete",
        };
        out.push_str(&format!(
            "  {action:<7} {:<17} {:>9}  {}\n",
            i.reason.as_str(),
            util::bytes(i.bytes),
            rel(&i.path)
        ));
        if let Some(note) = &i.note {
            out.push_str(&format!("          ↳ {note}\n"));
        }
    }
    if plan.items.is_empty() {
        out.push_str("  no checkpoints found in the configured roots\n");
    }
    out.push_str(&format!(
        "delete {} of {} items, free {}",
        plan.delete_count,
        plan.items.len(),
        util::bytes(plan.bytes_to_free)
    ));
    if let Some(fill) = plan.fill_text(workspace, "->") {
        out.push_str(&format!("; {fill}"));
    }
    out.push('\n');
    if plan.unconfirmed_deletes > 0 {
        out.push_str(&format!(
            "{} of them are NOT confirmed on another level (DELETE): this is the only copy\n",
            plan.unconfirmed_deletes
        ));
    } else if plan.kept_unconfirmed > 0 {
        out.push_str(&format!(
            "{} kept only because they are not confirmed elsewhere; --allow-unsynced deletes them too (logged)\n",
            plan.kept_unconfirmed
        ));
    }
    out
}

fn ask(prompt: &str) -> Option<String> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim().to_string())
}

/// `opsconsole prune [--dry-run] [--yes] [--json] [--allow-unsynced]`.
pub fn run_cli(workspace: &Path, cfg: &Config, opts: PruneOptions) -> Result<ExitCode> {
    let plan = make_plan(workspace, cfg, opts.allow_unsynced, SystemTime::now());
    if !opts.json {
        print!("prune plan for {}\n{}", util::printable(&workspace.display().to_string()), plan_text(&plan, workspace));
    }
    let mut run = !opts.dry_run && plan.delete_count > 0;
    if run && !opts.yes {
        if std::io::stdin().is_terminal() && !opts.json {
            let answer = if plan.unconfirmed_deletes > 0 {
                ask(&format!(
                    "{} unconfirmed items would be deleted. Type `delete` to go ahead: ",
                    plan.unconfirmed_deletes
                ))
                .is_some_and(|a| a == "delete")
            } else {
                ask(&format!("Delete {} items? [y/N] ", plan.delete_count))
                    .is_some_and(|a| a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes"))
            };
            run = answer;
        } else {
            run = false;
            if !opts.json {
                println!("not deleting: give --yes to run the plan without asking");
            }
        }
    }
    let report = if run {
        let ctx = exec_context(workspace, cfg);
        let mut sink = event_sink(workspace);
        let quiet = opts.json;
        let rep = crate::checkpoints::run_plan(&plan, &ctx, sink.as_mut(), &AtomicBool::new(false), &mut |p| {
            if let (false, PruneProgress::Progress { done, total, item, .. }) = (quiet, &p) {
                let what = match &item.outcome {
                    crate::checkpoints::ItemOutcome::Deleted => "deleted".to_string(),
                    crate::checkpoints::ItemOutcome::Skipped(w) => format!("skipped ({w})"),
                    crate::checkpoints::ItemOutcome::Failed(e) => format!("FAILED ({e})"),
                };
                eprintln!("[{done}/{total}] {}", util::printable(&format!("{what}: {}", item.path.display())));
            }
        });
        Some(rep)
    } else {
        if opts.dry_run && !opts.json {
            println!("dry run: nothing deleted");
        }
        None
    };
    if opts.json {
        let mut v = serde_json::to_value(&plan)?;
        if let (Some(obj), Some(r)) = (v.as_object_mut(), &report) {
            obj.insert("report".into(), serde_json::to_value(r)?);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if let Some(r) = &report {
        println!(
            "deleted {}, skipped {}, failed {}; freed {}",
            r.deleted,
            r.skipped,
            r.failed,
            util::bytes(r.freed_bytes)
        );
    }
    Ok(if report.as_ref().is_some_and(|r| r.failed > 0) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The console loop's side of the prune effects.
pub struct PruneRunner {
    refresh: Arc<tokio::sync::Notify>,
    collector: tokio::task::JoinHandle<()>,
}

impl PruneRunner {
    /// Start the checkpoint collector for the console.
    pub fn start(state: &crate::app::AppState, tx: &mpsc::UnboundedSender<Msg>) -> Self {
        let refresh = Arc::new(tokio::sync::Notify::new());
        let collector =
            spawn_collector(state.workspace_root.clone(), state.config.clone(), tx.clone(), refresh.clone());
        Self { refresh, collector }
    }

    /// Carry out one effect of `update`.
    pub fn on_effect(
        &self,
        effect: &crate::app::Effect,
        state: &crate::app::AppState,
        tx: &mpsc::UnboundedSender<Msg>,
    ) {
        use crate::app::Effect;
        let (ws, cfg) = (state.workspace_root.clone(), state.config.clone());
        match effect {
            Effect::RefreshNow => self.refresh.notify_waiters(),
            Effect::PlanPrune { allow_unconfirmed } => spawn_plan(ws, cfg, *allow_unconfirmed, tx.clone()),
            Effect::RunPrune => {
                let Some(plan) = state.prune.screen.plan.clone() else { return };
                if let Err(e) = spawn_job(&ws, &cfg, plan, false, tx.clone()) {
                    let _ =
                        tx.send(Msg::Prune(PruneProgress::Failed { error: format!("starting the prune job: {e}") }));
                }
            }
            Effect::AutoPrune => spawn_auto(ws, cfg, tx.clone()),
            // Carried out by the loop itself.
            Effect::Quit
            | Effect::TerminateProcess { .. }
            | Effect::SwitchLog(_)
            | Effect::Sync(_)
            | Effect::Checklist { .. }
            | Effect::Shutdown { .. }
            | Effect::Airlock(_) => {}
        }
    }

    pub fn stop(&self) {
        self.collector.abort();
    }
}

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

/// Start the console's growth history from `.opsconsole/disk-history.jsonl`.
pub fn seed_history(state: &mut crate::app::AppState) {
    let path = disk_history_path(&state.workspace_root);
    let samples = crate::disk::growth::history_file::load(&path, state.now, growth_window());
    state.prune.seed_history(samples);
}

/// For `status`: growth forecasts from the disk history (this sample included), the
/// checkpoint list and the usage breakdown.
pub fn status_extras(
    ws: &crate::workspace::Workspace,
    cfg: &Config,
    disks: &crate::disk::DiskSample,
) -> (
    std::collections::BTreeMap<String, crate::disk::growth::DiskForecast>,
    Vec<crate::checkpoints::Checkpoint>,
    crate::disk::usage::UsageBreakdown,
) {
    let now = SystemTime::now();
    record_disk_history(&ws.root, disks, now);
    let hist = crate::disk::growth::history_file::load(&disk_history_path(&ws.root), now, growth_window());
    let forecasts = disks
        .disks
        .iter()
        .map(|d| {
            let samples = hist.get(&d.mount).map(Vec::as_slice).unwrap_or_default();
            (d.mount.clone(), crate::disk::growth::forecast_disk(samples, d, (&cfg.disk).into(), now))
        })
        .collect();
    let spec = sample::usage_spec(&cfg.checkpoints, &cfg.prune, &cfg.paths.data);
    let s = sample::collect(&ws.root, &cfg.checkpoints, &spec, confirmation_source(&ws.root, cfg).as_ref(), None, now);
    (forecasts, s.checkpoints, s.usage)
}

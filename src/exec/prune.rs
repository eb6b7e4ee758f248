//! The console's prune jobs: planning off the UI task, running a plan, automatic prunes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::app::Msg;
use crate::checkpoints::ledger::{PruneEvent, PruneEventKind};
use crate::checkpoints::plan::PrunePlan;
use crate::checkpoints::{PruneProgress, unix_secs};
use crate::config::Config;
use crate::prune::{event_sink, exec_context, make_plan};

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

/// The console loop's side of the prune effects.
pub struct PruneRunner {
    refresh: Arc<tokio::sync::Notify>,
    collector: tokio::task::JoinHandle<()>,
}

impl PruneRunner {
    /// Start the checkpoint collector for the console.
    pub fn start(state: &crate::app::AppState, tx: &mpsc::UnboundedSender<Msg>) -> Self {
        let refresh = Arc::new(tokio::sync::Notify::new());
        let collector = crate::collectors::checkpoints::spawn_collector(
            state.workspace_root.clone(),
            state.config.clone(),
            tx.clone(),
            refresh.clone(),
        );
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
            | Effect::Shutdown { .. } => {}
        }
    }

    pub fn stop(&self) {
        self.collector.abort();
    }
}

//! The console's prune jobs: a plan built off the UI task, a plan run (cancellable: it
//! stops before the next item), and the automatic prune when a disk crosses critical.
//! Everything that reads the world (the ledger, the training log for `keep_best_metric`,
//! the checkpoint folders) happens on the job's blocking thread.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::app::Msg;
use crate::checkpoints::PruneProgress;
use crate::checkpoints::ledger::{PruneEvent, PruneEventKind};
use crate::checkpoints::plan::PrunePlan;
use crate::config::Config;
use crate::prune::{event_sink, exec_context, make_plan};
use crate::unixtime::secs as unix_secs;

/// A prune job running: its cancel flag and its thread.
pub struct PruneJob {
    cancel: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl PruneJob {
    /// Asks the job to stop before its next item; the item in hand is finished (and
    /// recorded) first.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the job to end (after [`Self::cancel`], within the item in hand).
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!("the prune job stopped: {e}");
        }
    }
}

/// Builds a plan on a blocking thread and sends it back as [`Msg::PrunePlan`].
pub fn plan(workspace: PathBuf, cfg: Config, allow_unconfirmed: bool, tx: mpsc::UnboundedSender<Msg>) {
    tokio::task::spawn_blocking(move || {
        let plan = make_plan(&workspace, &cfg, allow_unconfirmed, SystemTime::now());
        let _ = tx.send(Msg::PrunePlan(Box::new(plan)));
    });
}

/// Runs `plan` (the one on the prune screen), or, with `plan` `None`, plans and runs an
/// automatic prune (never with the override). Progress arrives as [`Msg::Prune`]; setting
/// `cancel` stops it before its next item.
pub fn run(
    workspace: PathBuf,
    cfg: Config,
    plan: Option<PrunePlan>,
    cancel: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<Msg>,
) -> PruneJob {
    let flag = cancel.clone();
    let task = tokio::task::spawn_blocking(move || {
        let auto = plan.is_none();
        let plan = plan.unwrap_or_else(|| make_plan(&workspace, &cfg, false, SystemTime::now()));
        // The executor's view of the world: the ledger opened, and with `keep_best_metric`
        // the training log read — seconds on a large log, so here and not on the UI task.
        let ctx = exec_context(&workspace, &cfg);
        let mut sink = event_sink(&workspace);
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
        crate::checkpoints::run_plan(&plan, &ctx, sink.as_mut(), &flag, &mut |p| {
            let _ = tx.send(Msg::Prune(p));
        });
    });
    PruneJob { cancel, task }
}

/// Says the prune could not start (no plan on the screen).
pub fn refuse(tx: &mpsc::UnboundedSender<Msg>, why: &str) {
    let _ = tx.send(Msg::Prune(PruneProgress::Failed { error: why.to_string() }));
}

//! The executor: the console's one owner of everything that does I/O. It starts the
//! collectors and this console's side of the sync engine, carries out every [`Effect`]
//! `update` returns (jobs on blocking threads, commands to the engine, a refresh of the
//! collectors), and stops them all when the console leaves: a running prune is cancelled
//! and finishes the item in hand, the engine leaves its uploads resumable.
//!
//! Jobs report on the app channel with their own messages: a prune as [`Msg::Prune`], a
//! plan as [`Msg::PrunePlan`], a checklist as [`Msg::Checklist`], the shutdown as
//! [`Msg::Shutdown`], an airlock job as [`Msg::Airlock`], a signal sent as
//! [`Msg::ProcessTerminated`]. The UI task never waits
//! on any of them.
//!
//! - `engine`: this console's sync engine, or the daemon's through the ledger;
//! - `prune`: planning, running (cancellable) and automatic prunes;
//! - `checklist`: checklist gathers and the shutdown;
//! - `airlock`: bundle, import and resume jobs (as [`Msg::Airlock`]) and the resumed
//!   training's launch.

pub mod airlock;
pub mod checklist;
pub mod engine;
pub mod prune;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::app::{AppState, Effect, Msg};
use crate::checklist::gather::LiveCache;
use crate::collectors::{CollectorSet, Collectors};

/// How long the console waits, when it leaves, for a cancelled prune to finish the item in
/// hand (a folder checkpoint is deleted file by file).
const PRUNE_STOP_WAIT: Duration = Duration::from_secs(10);

/// Whoever carries out the effects of `update` for the loop: the [`Executor`], or a
/// recorder in tests of the loop.
pub trait Effects {
    /// Carries out one effect, reading what it needs from the state. Never blocks.
    fn run(&mut self, effect: Effect, state: &AppState);
}

/// Runs the console's collectors, jobs and sync engine.
pub struct Executor {
    tx: mpsc::UnboundedSender<Msg>,
    collectors: CollectorSet,
    engine: engine::EngineLink,
    prune: Option<prune::PruneJob>,
    airlock: airlock::AirlockRunner,
    /// Answers of live checks (remote copies, extra commands), reused for a while.
    live_cache: Arc<Mutex<LiveCache>>,
}

impl Executor {
    /// Starts the collectors and the engine link; everything reports on `tx`.
    pub fn start(collectors: Collectors, engine: engine::EngineConfig, tx: mpsc::UnboundedSender<Msg>) -> Self {
        let (source_tx, source_rx) = watch::channel(None);
        let collectors = collectors.spawn(tx.clone(), source_rx);
        let engine = engine::EngineLink::start(engine, tx.clone(), source_tx);
        Self {
            tx,
            collectors,
            engine,
            prune: None,
            airlock: airlock::AirlockRunner::default(),
            live_cache: Arc::new(Mutex::new(LiveCache::default())),
        }
    }

    fn facts(state: &AppState) -> checklist::Facts {
        checklist::Facts {
            workspace: state.workspace_root.clone(),
            config: state.config.clone(),
            gpu: state.gpu.sample.clone(),
            disks: state.disk.sample.clone(),
        }
    }

    fn start_prune(&mut self, state: &AppState, plan: Option<crate::checkpoints::PrunePlan>) {
        if self.prune.as_ref().is_some_and(|j| !j.is_finished()) {
            prune::refuse(&self.tx, "a prune job is already running");
            return;
        }
        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let job = prune::run(state.workspace_root.clone(), state.config.clone(), plan, cancel, self.tx.clone());
        self.prune = Some(job);
    }

    /// Stops everything: a running prune is cancelled and given [`PRUNE_STOP_WAIT`] to
    /// finish the item in hand, airlock jobs are asked to stop (a download left part-way
    /// resumes next time), the engine stops (uploads are left resumable), the collectors
    /// end.
    pub async fn stop(mut self) {
        self.airlock.stop();
        if let Some(job) = self.prune.take() {
            job.cancel();
            if tokio::time::timeout(PRUNE_STOP_WAIT, job.wait()).await.is_err() {
                tracing::warn!("the prune job did not stop within {PRUNE_STOP_WAIT:?}");
            }
        }
        self.collectors.stop();
        self.engine.stop().await;
    }
}

impl Effects for Executor {
    fn run(&mut self, effect: Effect, state: &AppState) {
        let tx = self.tx.clone();
        match effect {
            // Leaving: nothing new starts, a running prune stops before its next item, and
            // airlock jobs stop between pieces of work.
            Effect::Quit => {
                if let Some(job) = &self.prune {
                    job.cancel();
                }
                self.airlock.stop();
            }
            Effect::RefreshNow => self.collectors.refresh_now(),
            Effect::TerminateProcess { pid, start_ticks } => {
                // Reads /proc to check the process is the one the user saw, then signals.
                tokio::task::spawn_blocking(move || {
                    let result = crate::gpu::terminate(pid, start_ticks).map_err(|e| e.to_string());
                    let _ = tx.send(Msg::ProcessTerminated { pid, result });
                });
            }
            Effect::SwitchLog(path) => self.collectors.switch_log(path),
            Effect::Sync(cmd) => self.engine.send(cmd),
            Effect::PlanPrune { allow_unconfirmed } => {
                prune::plan(state.workspace_root.clone(), state.config.clone(), allow_unconfirmed, tx)
            }
            Effect::RunPrune => match state.prune.screen.plan.clone() {
                Some(plan) => self.start_prune(state, Some(plan)),
                None => prune::refuse(&tx, "no plan to run"),
            },
            Effect::AutoPrune => self.start_prune(state, None),
            Effect::CancelPrune => match &self.prune {
                Some(job) if !job.is_finished() => job.cancel(),
                _ => {}
            },
            Effect::Checklist { live } => checklist::gather_job(Self::facts(state), live, self.live_cache.clone(), tx),
            Effect::Shutdown { overrides } => {
                checklist::shutdown_job(Self::facts(state), overrides, self.live_cache.clone(), tx)
            }
            Effect::Airlock(e) => self.airlock.on_effect(&e, state, &tx),
        }
    }
}

//! The airlock's jobs: bundle, import and resume run on threads of their own (their remote
//! calls on a runtime of their own), reporting progress (at most five times a second) and
//! their answer as [`Msg::Airlock`]; the resumed training command is started off the UI
//! task too, and reaped by a thread that waits on it (the run itself lives on in its own
//! session when the console leaves).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::airlock::Progress;
use crate::app::airlock::{AirlockEffect, AirlockJob, AirlockMsg};
use crate::app::{AppState, Msg};

/// Carries out [`AirlockEffect`]s for the executor.
#[derive(Debug, Default)]
pub struct AirlockRunner {
    /// Set when the console stops; jobs check it between pieces of work.
    cancel: Arc<AtomicBool>,
}

/// Sends progress, steps at once and bytes at most every 200 ms.
fn reporter(job: AirlockJob, id: u64, tx: mpsc::UnboundedSender<Msg>) -> impl FnMut(Progress) {
    let mut last: Option<Instant> = None;
    move |p: Progress| {
        let (text, done, total) = match p {
            Progress::Step(s) => (s, 0, 0),
            Progress::Bytes { done, total, what } => {
                let now = Instant::now();
                if done < total && last.is_some_and(|t| now.duration_since(t) < Duration::from_millis(200)) {
                    return;
                }
                last = Some(now);
                (what, done, total)
            }
        };
        let _ = tx.send(Msg::Airlock(AirlockMsg::Progress { job, id, text, done, total }));
    }
}

impl AirlockRunner {
    /// Starts the job or the launch `effect` asks for; never blocks.
    pub fn on_effect(&self, effect: &AirlockEffect, state: &AppState, tx: &mpsc::UnboundedSender<Msg>) {
        let ws = state.workspace_root.clone();
        let cfg = state.config.clone();
        let tx = tx.clone();
        let cancel = self.cancel.clone();
        let spawned = match effect.clone() {
            AirlockEffect::Run { job, id } => {
                std::thread::Builder::new().name(format!("airlock-{}", job.name())).spawn(move || {
                    let mut progress = reporter(job, id, tx.clone());
                    let msg = match job {
                        AirlockJob::Bundle => {
                            let opts = crate::airlock::bundle::BundleOptions { experiment: None, upload: true };
                            let r = crate::airlock::bundle::build(&ws, &cfg, &opts, &mut progress, &cancel);
                            AirlockMsg::Bundle { id, result: r.map(Box::new) }
                        }
                        AirlockJob::Import => {
                            let opts = crate::airlock::import::ImportOptions::default();
                            let r = crate::airlock::import::run(&ws, &cfg, &opts, &mut progress, &cancel);
                            AirlockMsg::Import { id, result: r.map(Box::new) }
                        }
                        AirlockJob::Resume => {
                            let opts = crate::airlock::resume::ResumeOptions::default();
                            let r = crate::airlock::resume::plan(&ws, &cfg, &opts, &mut progress, &cancel);
                            AirlockMsg::Resume { id, result: r.map(Box::new) }
                        }
                    };
                    let _ = tx.send(Msg::Airlock(msg));
                })
            }
            AirlockEffect::Launch { experiment, checkpoint } => {
                // The GPU sample the screen showed is seconds old at most; the log's writers
                // are looked for now.
                let gpu = state.gpu.sample.clone().filter(|s| s.nvml.is_ok());
                std::thread::Builder::new().name("airlock-launch".into()).spawn(move || {
                    match crate::airlock::launch::start(&ws, &cfg, &experiment, &checkpoint, gpu.as_ref()) {
                        Ok((launch, mut child)) => {
                            let _ = tx.send(Msg::Airlock(AirlockMsg::Launched(Ok(launch))));
                            // Reap it when it ends (it lives on in its own session if the
                            // console goes first).
                            let _ = child.wait();
                        }
                        Err(r) => {
                            let _ = tx.send(Msg::Airlock(AirlockMsg::Launched(Err(r))));
                        }
                    }
                })
            }
        };
        if let Err(e) = spawned {
            tracing::error!("cannot start an airlock job: {e}");
        }
    }

    /// Asks running jobs to stop (the console is leaving). A download left part-way
    /// resumes next time.
    pub fn stop(&self) {
        self.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

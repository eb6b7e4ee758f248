//! The rules collector: every `rules.every` (and on `ctrl-r`), judges every rule on a
//! blocking thread and sends the whole [`RulesReport`] as `Msg::Rules`. The newest GPU
//! sample comes from the GPU collector through a watch channel (NVML is never opened
//! twice).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{Notify, mpsc, watch};

use crate::app::Msg;
use crate::config::Config;
use crate::gpu::GpuSample;
use crate::rules::{Inputs, Probe, RulesReport};

/// Runs until the app channel closes. With every rule off it sends one report (each rule
/// `off`) and stops.
pub async fn run(
    workspace: PathBuf,
    cfg: Config,
    tx: mpsc::UnboundedSender<Msg>,
    refresh: Arc<Notify>,
    mut gpu: watch::Receiver<Option<GpuSample>>,
    lane: super::lane::Lane,
) {
    let mut every = crate::ticker::Ticker::on_grid(cfg.rules.every, super::LOG_LEAD);
    let cfg = Arc::new(cfg);
    loop {
        let sample = gpu.borrow_and_update().clone();
        // Before the first GPU sample the tier is not known: judge again once it comes.
        let waiting_for_gpu = sample.is_none();
        let (ws, c) = (workspace.clone(), cfg.clone());
        let report = lane
            .run(move || -> RulesReport {
                let probe = Probe { shared_scan: Some(crate::procfs::SHARED_MAX_AGE), ..Probe::default() };
                crate::rules::evaluate(
                    &ws,
                    &c,
                    &Inputs { gpu: sample.as_ref(), now: std::time::SystemTime::now(), probe: &probe },
                )
            })
            .await;
        match report {
            Ok(r) => {
                if tx.send(Msg::Rules(Box::new(r))).is_err() {
                    return;
                }
            }
            Err(e) => tracing::error!("rules collector failed: {e}"),
        }
        if !cfg.rules.any() {
            return;
        }
        tokio::select! {
            _ = every.tick() => {}
            _ = refresh.notified() => {}
            Ok(()) = gpu.changed(), if waiting_for_gpu => {}
        }
    }
}

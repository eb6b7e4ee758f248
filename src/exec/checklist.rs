//! The console's side of the checklist: gathering off the UI task, the shutdown request,
//! and the external address lookup. Answers come back as messages on the app channel.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::app::checklist::ShutdownEvent;
use crate::app::{AppState, Effect, Msg};
use crate::checklist::gather::{LiveCache, Sources, gather};
use crate::config::Config;

/// Carries out the checklist effects of `update`.
pub struct ChecklistRunner {
    cache: Arc<Mutex<LiveCache>>,
    ip_task: Option<tokio::task::JoinHandle<()>>,
}

impl ChecklistRunner {
    /// Starts the external address lookup (when enabled here).
    pub fn start(state: &AppState, tx: &mpsc::UnboundedSender<Msg>) -> Self {
        let cfg = state.config.external_ip.clone();
        let ip_task = match crate::checklist::metadata::enabled(
            &cfg,
            std::path::Path::new(crate::checklist::metadata::DMI_PRODUCT_NAME),
        ) {
            Ok(()) => {
                let tx = tx.clone();
                Some(tokio::spawn(async move {
                    // Once it is known it does not change while the VM runs; until then, try
                    // again every minute (the metadata server may not answer at boot).
                    loop {
                        let c = cfg.clone();
                        let r = tokio::task::spawn_blocking(move || crate::checklist::metadata::lookup(&c))
                            .await
                            .unwrap_or_else(|e| Err(e.to_string()));
                        let ok = r.is_ok();
                        if let Err(e) = &r {
                            tracing::info!("external address not known: {e}");
                        }
                        if tx.send(Msg::ExternalIp(r.map(|a| a.to_string()))).is_err() || ok {
                            return;
                        }
                        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    }
                }))
            }
            Err(why) => {
                tracing::debug!("external address not looked up: {why}");
                None
            }
        };
        Self { cache: Arc::new(Mutex::new(LiveCache::default())), ip_task }
    }

    /// Carries out `Effect::Checklist` and `Effect::Shutdown`.
    pub fn on_effect(&self, effect: &Effect, state: &AppState, tx: &mpsc::UnboundedSender<Msg>) {
        let ws = state.workspace_root.clone();
        let cfg = state.config.clone();
        let gpu = state.gpu.sample.clone();
        let disks = state.disk.sample.clone();
        let cache = self.cache.clone();
        let tx = tx.clone();
        match effect {
            Effect::Checklist { live } => {
                let live = *live;
                tokio::task::spawn_blocking(move || {
                    let r = run_gather(&ws, &cfg, gpu, disks, live, &cache);
                    let _ = tx.send(Msg::Checklist(Box::new(r)));
                });
            }
            Effect::Shutdown { overrides } => {
                let overrides = overrides.clone();
                tokio::task::spawn_blocking(move || {
                    // Everything again, live: the decision is made on what is true now.
                    let report = run_gather(&ws, &cfg, gpu, disks, true, &cache);
                    let (outcome, child) =
                        crate::checklist::shutdown::execute(&ws, &cfg.shutdown.command, &report, &overrides);
                    let _ = tx.send(Msg::Shutdown(ShutdownEvent::Decided { report: Box::new(report), outcome }));
                    if let Some(mut child) = child {
                        let pid = child.id();
                        let code = child.wait().ok().and_then(|s| s.code());
                        tracing::info!(pid, ?code, "the shutdown command ended");
                        let _ = tx.send(Msg::Shutdown(ShutdownEvent::Exited { pid, code }));
                    }
                });
            }
            _ => {}
        }
    }

    pub fn stop(&self) {
        if let Some(t) = &self.ip_task {
            t.abort();
        }
    }
}

fn run_gather(
    ws: &std::path::Path,
    cfg: &Config,
    gpu: Option<crate::gpu::GpuSample>,
    disks: Option<crate::disk::DiskSample>,
    live: bool,
    cache: &Mutex<LiveCache>,
) -> crate::checklist::Report {
    gather(ws, cfg, SystemTime::now(), Sources { gpu: gpu.as_ref(), disks: disks.as_ref(), live, cache: Some(cache) })
}

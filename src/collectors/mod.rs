//! Collector tasks: each samples one source off the UI task and sends whole samples on the
//! app channel.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::app::Msg;
use crate::config::Config;
use crate::disk::{self, Thresholds};
use crate::workspace::Workspace;

pub mod checkpoints;
pub mod gpu;
pub mod log;
pub mod sync;

use gpu::{GpuSource, spawn_gpu};
use sync::SyncCollector;

/// What the console samples, built from the workspace and config.
#[derive(Debug, Clone)]
pub struct Collectors {
    pub disk_paths: Vec<(String, PathBuf)>,
    pub thresholds: Thresholds,
    pub disk_every: Duration,
    pub gpu: crate::gpu::GpuConfig,
    /// `opsconsole demo`: the simulated GPU of the demo workspace at this root instead of NVML.
    pub gpu_demo: Option<PathBuf>,
    pub workspace_root: PathBuf,
    pub log: crate::logtail::LogConfig,
    /// At most one log sample per this interval: half a frame (`refresh_ms`), between 50
    /// and 500 ms. Lines are never dropped, only sent together.
    pub log_min_interval: Duration,
    pub sync: SyncCollector,
}

impl Collectors {
    pub fn new(ws: &Workspace, cfg: &Config) -> Self {
        Self {
            disk_paths: disk::watched_paths(ws, cfg),
            thresholds: (&cfg.disk).into(),
            disk_every: Duration::from_millis(cfg.disk.sample_ms),
            gpu: cfg.gpu.clone(),
            gpu_demo: None,
            workspace_root: ws.root.clone(),
            log: cfg.log.clone(),
            log_min_interval: Duration::from_millis((cfg.general.refresh_ms / 2).clamp(50, 500)),
            sync: SyncCollector {
                workspace: ws.root.clone(),
                sync: cfg.sync.clone(),
                remotes: cfg.remotes.clone(),
                checkpoint_roots: cfg.checkpoints.roots.clone(),
                every: Duration::from_secs(1),
                start_engine: true,
            },
        }
    }

    /// Starts every collector task.
    pub fn spawn(self, tx: mpsc::UnboundedSender<Msg>) -> CollectorHandles {
        let refresh = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        let source = match &self.gpu_demo {
            Some(root) => GpuSource::Demo(crate::gpu::demo::DemoGpu::new(root.clone(), std::time::SystemTime::now())),
            None => GpuSource::Nvml(Box::new(crate::gpu::GpuCollector::new(&self.gpu))),
        };
        tasks.push(spawn_gpu(self.gpu.clone(), source, tx.clone(), refresh.clone()));
        let (log_switch, switch_rx) = mpsc::unbounded_channel();
        tasks.push(tokio::spawn(log::supervise(
            self.workspace_root.clone(),
            self.log.clone(),
            self.log_min_interval,
            tx.clone(),
            refresh.clone(),
            switch_rx,
        )));
        {
            let refresh = refresh.clone();
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let mut every = crate::util::aligned_interval(self.disk_every);
                loop {
                    let paths = self.disk_paths.clone();
                    let t = self.thresholds;
                    let sample = tokio::task::spawn_blocking(move || disk::sample(&paths, t)).await;
                    match sample {
                        Ok(s) => {
                            if tx.send(Msg::Disk(s)).is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::error!("disk sampler failed: {e}"),
                    }
                    tokio::select! {
                        _ = every.tick() => {}
                        _ = refresh.notified() => {}
                    }
                }
            }));
        }
        let workspace = self.sync.workspace.clone();
        let (sync_tx, sync_task) = self.sync.spawn(tx, refresh.clone());
        tasks.push(sync_task);
        CollectorHandles { refresh, tasks, log_switch, sync_tx, workspace }
    }
}

/// Running collectors: ask them to sample now, or stop them.
pub struct CollectorHandles {
    refresh: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
    log_switch: mpsc::UnboundedSender<PathBuf>,
    sync_tx: Option<mpsc::UnboundedSender<crate::sync::Command>>,
    workspace: PathBuf,
}

impl CollectorHandles {
    /// Sends a command to this console's sync engine, or leaves it in the ledger for the
    /// daemon that runs the workspace.
    pub fn sync_command(&self, cmd: crate::sync::Command) {
        match &self.sync_tx {
            Some(tx) => {
                let _ = tx.send(cmd);
            }
            None => {
                let ws = self.workspace.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = cmd.request(&ws) {
                        tracing::warn!("leaving a sync request in the ledger: {e}");
                    }
                });
            }
        }
    }

    pub fn refresh_now(&self) {
        self.refresh.notify_waiters();
    }

    /// Follow another log.
    pub fn switch_log(&self, path: PathBuf) {
        let _ = self.log_switch.send(path);
    }

    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

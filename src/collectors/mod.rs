//! Collectors: one task per source, each sampling off the UI task (blocking work on the
//! collectors' [`lane::Lane`], one thread for all of them) and sending whole samples on
//! the app channel. They are started and
//! stopped by the executor (`exec`), which also asks them to sample at once (`ctrl-r`, a
//! job that changed the disks) and switches the followed log.
//!
//! - `gpu`: NVML, or the demo's simulated GPU, every `gpu.sample_ms`;
//! - `disk`: filesystem fill, every `disk.sample_ms`;
//! - `log`: which log to follow, and the follower of that log;
//! - `sync`: the sync ledger for the Uploads panel;
//! - `checkpoints`: the checkpoint inventory and usage, every `checkpoints.scan_secs`;
//! - `external_ip`: the VM's external address, once known;
//! - `rules`: the protocol's rules (docs/rules.md), every `rules.every`, judged with the
//!   newest GPU sample (handed over by `gpu` through a watch channel).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::app::Msg;
use crate::config::Config;
use crate::disk::Thresholds;
use crate::sync::EngineSource;
use crate::workspace::Workspace;

pub mod checkpoints;
pub mod disk;
pub mod external_ip;
pub mod gpu;
pub mod host;
pub mod lane;
pub mod log;
pub mod rules;
pub mod sync;

use gpu::{GpuSource, spawn_gpu};
use sync::SyncCollector;

/// How long before a frame's tick a growing log is read: time for the read to reach the
/// UI task before the tick draws it (a read that comes later is drawn a frame later).
pub const LOG_LEAD: Duration = Duration::from_millis(25);

/// What the console samples, built from the workspace and config.
#[derive(Debug, Clone)]
pub struct Collectors {
    pub disk_paths: Vec<(String, PathBuf)>,
    pub thresholds: Thresholds,
    pub disk_every: Duration,
    pub gpu: crate::gpu::GpuConfig,
    /// `opsconsole demo`: the simulated GPU, whose process is the trainer whose pid is in
    /// this file, instead of NVML.
    pub gpu_demo: Option<PathBuf>,
    pub workspace_root: PathBuf,
    pub log: crate::logtail::LogConfig,
    /// At most one log sample per this interval: half a frame (`refresh_ms`), between 50
    /// and 500 ms. Lines are never dropped, only sent together.
    pub log_min_interval: Duration,
    /// While the log keeps growing it is read once a frame, [`LOG_LEAD`] before the frame's
    /// tick (a trainer's progress bar changes at every write: reading it twice a frame
    /// woke two threads for a text the screen shows once).
    pub log_hot_at: Option<crate::util::Lead>,
    pub sync: SyncCollector,
    /// The whole config, for the checkpoint scan (checkpoints, prune, paths, disk, sync).
    pub config: Config,
    /// Start the checkpoint scan and the external address lookup (off in tests that drive
    /// the other collectors alone).
    pub checkpoints: bool,
}

impl Collectors {
    pub fn new(ws: &Workspace, cfg: &Config) -> Self {
        Self {
            disk_paths: crate::disk::watched_paths(ws, cfg),
            thresholds: (&cfg.disk).into(),
            disk_every: Duration::from_millis(cfg.disk.sample_ms),
            gpu: cfg.gpu.clone(),
            gpu_demo: None,
            workspace_root: ws.root.clone(),
            log: cfg.log.clone(),
            log_min_interval: Duration::from_millis((cfg.general.refresh_ms / 2).clamp(50, 500)),
            log_hot_at: Some(crate::util::Lead::new(Duration::from_millis(cfg.general.refresh_ms), LOG_LEAD)),
            sync: SyncCollector {
                workspace: ws.root.clone(),
                sync: cfg.sync.clone(),
                remotes: cfg.remotes.clone(),
                checkpoint_roots: cfg.checkpoints.roots.clone(),
                every: Duration::from_secs(1),
            },
            config: cfg.clone(),
            checkpoints: true,
        }
    }

    /// Starts every collector task. `engine` says who runs the sync engine (the executor
    /// decides it); the ledger collector waits for it.
    pub fn spawn(self, tx: mpsc::UnboundedSender<Msg>, engine: watch::Receiver<Option<EngineSource>>) -> CollectorSet {
        let refresh = Arc::new(Notify::new());
        // The blocking work of every periodic collector, on one thread (see `lane`).
        let lane = lane::Lane::new();
        let mut tasks = Vec::new();
        let source = match &self.gpu_demo {
            Some(pid_file) => {
                GpuSource::Demo(crate::gpu::demo::DemoGpu::new(pid_file.clone(), std::time::SystemTime::now()))
            }
            None => GpuSource::Nvml(Box::new(crate::gpu::GpuCollector::new(&self.gpu))),
        };
        let (gpu_seen, gpu_watch) = watch::channel(None);
        tasks.push(spawn_gpu(self.gpu.clone(), source, tx.clone(), refresh.clone(), gpu_seen, lane.clone()));
        tasks.push(tokio::spawn(rules::run(
            self.workspace_root.clone(),
            self.config.clone(),
            tx.clone(),
            refresh.clone(),
            gpu_watch,
            lane.clone(),
        )));
        tasks.push(host::spawn_host(tx.clone(), refresh.clone(), lane.clone()));
        let (log_switch, switch_rx) = mpsc::unbounded_channel();
        let mut follow = crate::logtail::collector::CollectorOptions::new(self.log.clone());
        follow.min_interval = self.log_min_interval;
        follow.hot_at = self.log_hot_at;
        tasks.push(tokio::spawn(log::supervise(
            self.workspace_root.clone(),
            follow,
            tx.clone(),
            refresh.clone(),
            switch_rx,
            lane.clone(),
        )));
        tasks.push(disk::spawn_disk(
            self.disk_paths,
            self.thresholds,
            self.disk_every,
            tx.clone(),
            refresh.clone(),
            lane.clone(),
        ));
        if self.checkpoints {
            tasks.push(checkpoints::spawn_checkpoints(
                self.workspace_root.clone(),
                self.config.clone(),
                tx.clone(),
                refresh.clone(),
                lane.clone(),
            ));
            tasks.push(external_ip::spawn_external_ip(self.config.external_ip.clone(), tx.clone()));
        }
        tasks.push(self.sync.spawn(tx, refresh.clone(), engine, lane));
        CollectorSet { refresh, tasks, log_switch }
    }
}

/// Running collectors: ask them to sample now, switch the log, or stop them.
pub struct CollectorSet {
    refresh: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
    log_switch: mpsc::UnboundedSender<PathBuf>,
}

impl CollectorSet {
    /// Every collector waiting for its next turn samples now.
    pub fn refresh_now(&self) {
        self.refresh.notify_waiters();
    }

    /// Follow another log.
    pub fn switch_log(&self, path: PathBuf) {
        let _ = self.log_switch.send(path);
    }

    /// Stops every collector task.
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

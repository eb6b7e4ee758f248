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

/// How long after the engine could not open the ledger (a full disk) it is started again.
const ENGINE_RETRY: Duration = Duration::from_secs(30);

/// What the panel says when this console's engine did not start, and whether to try again
/// later (the ledger or the lock could not be written: a full disk, in words).
fn start_failed(ws: &std::path::Path, e: crate::sync::SyncError) -> (crate::sync::EngineSource, bool) {
    use crate::sync::lock::LockError;
    use crate::sync::{EngineSource, SyncError};
    match e {
        SyncError::Locked(LockError::Held { pid, .. }) => (EngineSource::Daemon { pid: pid.unwrap_or(0) }, false),
        e @ (SyncError::Ledger(_) | SyncError::Locked(LockError::Io(..))) => {
            let reason = if crate::sync::ledger::disk_full(ws) {
                "disk full: the sync engine cannot start (0 B free on the workspace's disk); it starts again once \
                 space is freed"
                    .to_string()
            } else {
                e.to_string()
            };
            (EngineSource::Off { reason }, true)
        }
        e => (EngineSource::Off { reason: e.to_string() }, false),
    }
}

/// What the sync collector needs: the workspace and its sync config.
#[derive(Debug, Clone)]
pub struct SyncCollector {
    pub workspace: PathBuf,
    pub sync: crate::sync::SyncConfig,
    pub remotes: crate::sync::RemotesConfig,
    /// `checkpoints.roots`: a remote on their filesystem is no backup.
    pub checkpoint_roots: Vec<String>,
    pub every: Duration,
    /// Start an engine when no daemon holds the workspace (off for tests and `status`).
    pub start_engine: bool,
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
        tasks.push(spawn_host(tx.clone(), refresh.clone()));
        let (log_switch, switch_rx) = mpsc::unbounded_channel();
        tasks.push(tokio::spawn(crate::logtail::task::supervise(
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

impl SyncCollector {
    /// Starts this console's engine unless a daemon holds the workspace (or no remote is
    /// configured), then reads the ledger every `every` and forwards engine events.
    fn spawn(
        self,
        tx: mpsc::UnboundedSender<Msg>,
        refresh: Arc<Notify>,
    ) -> (Option<mpsc::UnboundedSender<crate::sync::Command>>, JoinHandle<()>) {
        use crate::sync::{EngineSource, engine};
        let configured = self.sync.levels().iter().any(|(_, _, l)| l.enabled && self.remotes.contains_key(&l.remote));
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<crate::sync::Command>();
        let mut own = None;
        // The engine could not open the ledger (a full disk): start it again later.
        let mut retry_start = None;
        let mut source = match crate::sync::lock::holder(&self.workspace) {
            Some(pid) => EngineSource::Daemon { pid },
            None if !configured => {
                EngineSource::Off { reason: "no remote configured: add [remotes.NAME] to opsconsole.toml".into() }
            }
            None if !self.start_engine => EngineSource::Off { reason: "not started".into() },
            None => {
                let env = crate::sync::RemoteEnv::with_roots(&self.workspace, &self.checkpoint_roots);
                let remotes = engine::build_remotes_in(&self.remotes, &env);
                match engine::start(&self.workspace, &self.sync, remotes, engine::Mode::Daemon) {
                    Ok(h) => {
                        own = Some(h);
                        EngineSource::Console
                    }
                    Err(e) => {
                        let (source, retry) = start_failed(&self.workspace, e);
                        retry_start = retry.then(|| std::time::Instant::now() + ENGINE_RETRY);
                        source
                    }
                }
            }
        };
        let has_engine = own.is_some();
        let task = tokio::spawn(async move {
            let mut own = own;
            let mut reader = Some(crate::sync::status::SampleReader::default());
            // Every `every` while something is queued or uploading (progress moves), five
            // times slower while the queue is empty (only a new file changes anything, and
            // `ctrl-r` or a sync key reads at once).
            let mut every = crate::util::aligned_interval(self.every);
            let mut quiet = crate::util::aligned_interval(self.every * 5);
            let mut busy = true;
            loop {
                if own.is_none() && retry_start.is_some_and(|t| std::time::Instant::now() >= t) {
                    retry_start = None;
                    source = match crate::sync::lock::holder(&self.workspace) {
                        Some(pid) => EngineSource::Daemon { pid },
                        None => {
                            let remotes = engine::build_remotes(&self.remotes, &self.workspace);
                            match engine::start(&self.workspace, &self.sync, remotes, engine::Mode::Daemon) {
                                Ok(h) => {
                                    own = Some(h);
                                    EngineSource::Console
                                }
                                Err(e) => {
                                    let (source, retry) = start_failed(&self.workspace, e);
                                    retry_start = retry.then(|| std::time::Instant::now() + ENGINE_RETRY);
                                    source
                                }
                            }
                        }
                    };
                }
                let (ws, sync, remotes, src) =
                    (self.workspace.clone(), self.sync.clone(), self.remotes.clone(), source.clone());
                let now = crate::sync::engine::now_ms();
                // The reader (and its open ledger) moves to the blocking thread and back.
                let mut r = reader.take().unwrap_or_default();
                let roots = self.checkpoint_roots.clone();
                let sample = tokio::task::spawn_blocking(move || {
                    let s = r.read(&ws, &sync, &remotes, src, now).map(|mut s| {
                        let env = crate::sync::RemoteEnv::with_roots(&ws, &roots);
                        crate::sync::status::mark_same_disk(&mut s.status, &sync, &remotes, &env);
                        s
                    });
                    (r, s)
                })
                .await
                .map(|(r, s)| {
                    reader = Some(r);
                    s
                });
                match sample {
                    Ok(Ok(s)) => {
                        busy = s.status.levels.iter().any(|l| l.pending_files > 0 || l.in_flight.is_some());
                        if tx.send(Msg::Sync(Box::new(s))).is_err() {
                            break;
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!("reading the sync ledger: {e}");
                        let why = if crate::sync::ledger::disk_full(&self.workspace) {
                            format!("disk full: the sync ledger cannot be read (0 B free): {e}")
                        } else {
                            format!("the sync ledger cannot be read: {e}")
                        };
                        if tx.send(Msg::SyncUnreadable(why)).is_err() {
                            break;
                        }
                    }
                    Err(e) => tracing::error!("sync sampler failed: {e}"),
                }
                loop {
                    tokio::select! {
                        _ = every.tick(), if busy => break,
                        _ = quiet.tick(), if !busy => break,
                        _ = refresh.notified() => break,
                        Some(cmd) = cmd_rx.recv() => {
                            if let Some(h) = &own {
                                h.send(cmd);
                            }
                        }
                        ev = async {
                            match own.as_mut() {
                                Some(h) => h.events.recv().await,
                                None => std::future::pending().await,
                            }
                        } => match ev {
                            Some(ev) => {
                                if tx.send(Msg::SyncEvent(ev)).is_err() {
                                    return;
                                }
                            }
                            None => {
                                own = None;
                                source = EngineSource::Off { reason: "the sync engine stopped".into() };
                            }
                        },
                    }
                }
            }
            if let Some(h) = own {
                let _ = h.shutdown().await;
            }
        });
        (has_engine.then_some(cmd_tx), task)
    }
}

/// The host's CPU, RAM and swap every two seconds (and on a refresh), read on a blocking
/// thread.
fn spawn_host(tx: mpsc::UnboundedSender<Msg>, refresh: Arc<Notify>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut sampler = crate::host::HostSampler::new();
        let mut every = crate::util::aligned_interval(Duration::from_secs(2));
        loop {
            let res = tokio::task::spawn_blocking(move || {
                let s = sampler.sample(std::time::SystemTime::now());
                (sampler, s)
            })
            .await;
            let Ok((s, sample)) = res else { return };
            sampler = s;
            if tx.send(Msg::Host(sample)).is_err() {
                return;
            }
            tokio::select! {
                _ = every.tick() => {}
                _ = refresh.notified() => {}
            }
        }
    })
}

/// Where GPU samples come from.
enum GpuSource {
    Nvml(Box<crate::gpu::GpuCollector>),
    Demo(crate::gpu::demo::DemoGpu),
}

impl GpuSource {
    fn sample(&mut self, now: std::time::SystemTime) -> crate::gpu::GpuSample {
        match self {
            GpuSource::Nvml(c) => c.sample(now),
            GpuSource::Demo(d) => d.sample(now),
        }
    }
}

/// The GPU collector: NVML is opened by the first sample, on a blocking thread, never on
/// the UI task; the collector moves to that thread and back for each sample.
fn spawn_gpu(
    cfg: crate::gpu::GpuConfig,
    mut collector: GpuSource,
    tx: mpsc::UnboundedSender<Msg>,
    refresh: Arc<Notify>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = crate::util::aligned_interval(Duration::from_millis(cfg.sample_ms));
        loop {
            let now = std::time::SystemTime::now();
            let res = match &mut collector {
                // No NVML loaded and not yet time to try again: no hop to a blocking thread.
                GpuSource::Nvml(c) if !c.touches_nvml(now) => {
                    let s = c.sample(now);
                    Ok((collector, s))
                }
                _ => {
                    tokio::task::spawn_blocking(move || {
                        let s = collector.sample(now);
                        (collector, s)
                    })
                    .await
                }
            };
            match res {
                Ok((c, s)) => {
                    collector = c;
                    if tx.send(Msg::Gpu(s)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!("GPU sampler failed: {e}");
                    let status = crate::gpu::NvmlStatus::Other { detail: format!("the GPU sampler stopped: {e}") };
                    let now = crate::gpu::unix_ms(std::time::SystemTime::now());
                    let _ = tx.send(Msg::Gpu(crate::gpu::GpuSample::unavailable(now, status)));
                    return;
                }
            }
            if !cfg.enabled {
                return;
            }
            tokio::select! {
                _ = every.tick() => {}
                _ = refresh.notified() => {}
            }
        }
    })
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

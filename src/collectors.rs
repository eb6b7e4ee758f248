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
        tasks.push(tokio::spawn(crate::logtail::task::supervise(
            self.workspace_root.clone(),
            self.log.clone(),
            tx.clone(),
            refresh.clone(),
            switch_rx,
        )));
        {
            let refresh = refresh.clone();
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
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
                        _ = tokio::time::sleep(self.disk_every) => {}
                        _ = refresh.notified() => {}
                    }
                }
            }));
        }
        CollectorHandles { refresh, tasks, log_switch }
    }
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
        let every = Duration::from_millis(cfg.sample_ms);
        loop {
            let res = tokio::task::spawn_blocking(move || {
                let s = collector.sample(std::time::SystemTime::now());
                (collector, s)
            })
            .await;
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
                _ = tokio::time::sleep(every) => {}
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
}

impl CollectorHandles {
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

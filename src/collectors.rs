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
}

impl Collectors {
    pub fn new(ws: &Workspace, cfg: &Config) -> Self {
        Self {
            disk_paths: disk::watched_paths(ws, cfg),
            thresholds: (&cfg.disk).into(),
            disk_every: Duration::from_millis(cfg.disk.sample_ms),
        }
    }

    /// Starts every collector task.
    pub fn spawn(self, tx: mpsc::UnboundedSender<Msg>) -> CollectorHandles {
        let refresh = Arc::new(Notify::new());
        let mut tasks = Vec::new();
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
        CollectorHandles { refresh, tasks }
    }
}

/// Running collectors: ask them to sample now, or stop them.
pub struct CollectorHandles {
    refresh: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl CollectorHandles {
    pub fn refresh_now(&self) {
        self.refresh.notify_waiters();
    }

    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

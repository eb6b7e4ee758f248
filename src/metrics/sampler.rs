//! The sampler: every `[metrics] sample_ms` it takes the figures `status --json` reports
//! (on a blocking thread, NVML opened once; the log is read from where the previous sample
//! stopped, as `status --json` does) and renders them; [`Latest`] holds the last
//! rendering for the scrapes.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::encode::{Exposition, RenderOptions, render};
use crate::config::Config;
use crate::status::StatusReport;
use crate::workspace::Workspace;

/// The latest rendering, shared between the sampler and the HTTP server. A scrape takes
/// the read lock only to clone two reference-counted buffers.
#[derive(Debug, Clone, Default)]
pub struct Latest(Arc<RwLock<Option<Arc<Exposition>>>>);

impl Latest {
    pub fn get(&self) -> Option<Arc<Exposition>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, e: Exposition) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(e));
    }
}

/// Takes samples for the exporter.
pub struct Sampler {
    ws: Workspace,
    cfg: Config,
    gpu: crate::gpu::GpuCollector,
    host: crate::host::HostSampler,
}

impl Sampler {
    pub fn new(ws: Workspace, cfg: Config) -> Self {
        let gpu = crate::gpu::GpuCollector::new(&cfg.gpu);
        Self { ws, cfg, gpu, host: crate::host::HostSampler::new() }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// One sample, rendered (blocking: disk, NVML, the log, the ledger).
    pub fn sample(&mut self) -> (StatusReport, Exposition) {
        let started = Instant::now();
        let report = crate::status::collect_with(&self.ws, &self.cfg, &mut self.gpu, &mut self.host);
        let mut opts = options(&self.ws, &self.cfg);
        opts.sample_duration_seconds = Some(started.elapsed().as_secs_f64());
        let e = render(&report, &opts);
        (report, e)
    }

    /// Samples into `latest` now and then every `[metrics] sample_ms`, each on a blocking
    /// thread, until the task is dropped.
    pub async fn run(mut self, latest: Latest) {
        let every = Duration::from_millis(self.cfg.metrics.sample_ms);
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match tokio::task::spawn_blocking(move || {
                let (_, e) = self.sample();
                (self, e)
            })
            .await
            {
                Ok((s, e)) => {
                    self = s;
                    latest.set(e);
                }
                Err(e) => {
                    tracing::error!("metrics sampler failed: {e}");
                    return;
                }
            }
        }
    }
}

/// Render options from the workspace and config.
pub fn options(ws: &Workspace, cfg: &Config) -> RenderOptions {
    let (roots, _) = crate::checkpoints::roots::expand_roots(&ws.root, &cfg.checkpoints.roots);
    RenderOptions {
        checkpoint_roots: roots.into_iter().map(|r| (r.path, r.pattern)).collect(),
        dcgm_names: cfg.metrics.dcgm_names,
        sample_duration_seconds: None,
        experiments_dir: Some(ws.root.join(&cfg.paths.experiments)),
    }
}

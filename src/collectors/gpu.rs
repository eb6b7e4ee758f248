//! The GPU collector: NVML (or the demo's simulated GPU) sampled off the UI task.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::app::Msg;

/// Where GPU samples come from.
pub(super) enum GpuSource {
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
/// the UI task; the collector moves to the lane's thread and back for each sample.
pub(super) fn spawn_gpu(
    cfg: crate::gpu::GpuConfig,
    mut collector: GpuSource,
    tx: mpsc::UnboundedSender<Msg>,
    refresh: Arc<Notify>,
    seen: tokio::sync::watch::Sender<Option<crate::gpu::GpuSample>>,
    lane: super::lane::Lane,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = crate::ticker::Ticker::on_grid(Duration::from_millis(cfg.sample_ms), super::LOG_LEAD);
        loop {
            let now = std::time::SystemTime::now();
            let res = match &mut collector {
                // No NVML loaded and not yet time to try again: no hop to a blocking thread.
                GpuSource::Nvml(c) if !c.touches_nvml(now) => {
                    let s = c.sample(now);
                    Ok((collector, s))
                }
                _ => {
                    lane.run(move || {
                        let s = collector.sample(now);
                        (collector, s)
                    })
                    .await
                }
            };
            match res {
                Ok((c, s)) => {
                    collector = c;
                    // The rules collector judges with the newest sample.
                    seen.send_replace(Some(s.clone()));
                    if tx.send(Msg::Gpu(s)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!("GPU sampler failed: {e}");
                    let status = crate::gpu::NvmlStatus::Other { detail: format!("the GPU sampler stopped: {e}") };
                    let now = crate::unixtime::millis(std::time::SystemTime::now());
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

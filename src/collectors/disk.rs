//! The disk collector: every watched filesystem's fill, every `disk.sample_ms`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::app::Msg;
use crate::disk::{self, Thresholds};

/// Samples `paths` (statvfs and the mount table, on the collectors' lane) every `every`, and
/// at once on `refresh`.
pub(super) fn spawn_disk(
    paths: Vec<(String, PathBuf)>,
    thresholds: Thresholds,
    every: Duration,
    tx: mpsc::UnboundedSender<Msg>,
    refresh: Arc<Notify>,
    lane: super::lane::Lane,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = crate::ticker::Ticker::on_grid(every, super::LOG_LEAD);
        loop {
            let paths = paths.clone();
            let sample = lane.run(move || disk::sample(&paths, thresholds)).await;
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
    })
}

//! The checkpoint collector: inventory and usage breakdown every `checkpoints.scan_secs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::app::Msg;
use crate::checkpoints::sample;
use crate::config::Config;
use crate::disk::history::record_disk_history;
use crate::prune::confirmation_source;

/// The checkpoint collector: inventory and usage breakdown every `checkpoints.scan_secs`,
/// off the UI task. Each scan also records the disks in the workspace's disk history.
pub(super) fn spawn_checkpoints(
    workspace: PathBuf,
    cfg: Config,
    tx: mpsc::UnboundedSender<Msg>,
    refresh: Arc<tokio::sync::Notify>,
    lane: super::lane::Lane,
) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(cfg.checkpoints.scan_secs.max(1));
    tokio::spawn(async move {
        let mut every = crate::ticker::Ticker::on_grid(every, super::LOG_LEAD);
        let spec = sample::usage_spec(&cfg.checkpoints, &cfg.prune, &cfg.paths.data);
        let mut previous: Option<Vec<crate::checkpoints::Checkpoint>> = None;
        loop {
            let (ws, full, c, s, prev) =
                (workspace.clone(), cfg.clone(), cfg.checkpoints.clone(), spec.clone(), previous.take());
            let res = lane
                .run(move || {
                    let now = SystemTime::now();
                    let disk_paths = crate::disk::watched_paths(&crate::workspace::Workspace::at(&ws), &full);
                    let thresholds = (&full.disk).into();
                    record_disk_history(&ws, &crate::disk::sample(&disk_paths, thresholds), now);
                    // Opened for each scan: a ledger read from a copy on a full disk is read
                    // normally again once space is back.
                    let conf = confirmation_source(&ws, &full);
                    sample::collect(&ws, &c, &s, conf.as_ref(), prev.as_deref(), now)
                })
                .await;
            match res {
                Ok(sample) => {
                    previous = Some(sample.checkpoints.clone());
                    if tx.send(Msg::Checkpoints(Box::new(sample))).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::error!("checkpoint scan failed: {e}"),
            }
            tokio::select! {
                _ = every.tick() => {}
                _ = refresh.notified() => {}
            }
        }
    })
}

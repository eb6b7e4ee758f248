//! The sync collector: the ledger read for the Uploads panel (status and queue), every
//! second while something is queued or uploading, every five seconds while nothing is.
//! Who runs the engine comes from the executor (`exec::engine`) on a watch channel.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::app::Msg;
use crate::sync::EngineSource;

/// How long the checkpoint roots expanded for the same-disk check are used before they
/// are expanded again (globs compiled, folders walked): a new root appears as seldom as a
/// new run, and the checkpoint collector rescans at this pace by default too.
const ROOTS_EVERY: Duration = Duration::from_secs(30);

/// What the sync collector needs: the workspace and its sync config.
#[derive(Debug, Clone)]
pub struct SyncCollector {
    pub workspace: PathBuf,
    pub sync: crate::sync::SyncConfig,
    pub remotes: crate::sync::RemotesConfig,
    /// `checkpoints.roots`: a remote on their filesystem is no backup.
    pub checkpoint_roots: Vec<String>,
    pub every: Duration,
}

impl SyncCollector {
    /// Reads the ledger every `every` (five times slower while the queue is empty), at once
    /// on `refresh`, and again whenever who runs the engine changes. The first read waits
    /// for that to be known.
    pub(super) fn spawn(
        self,
        tx: mpsc::UnboundedSender<Msg>,
        refresh: Arc<Notify>,
        mut source: watch::Receiver<Option<EngineSource>>,
        lane: super::lane::Lane,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut reader = Some(crate::sync::status::SampleReader::default());
            let mut env: Option<(std::time::Instant, crate::sync::RemoteEnv)> = None;
            // Every `every` while something is queued or uploading (progress moves), five
            // times slower while the queue is empty (only a new file changes anything, and
            // `ctrl-r` or a sync key reads at once).
            let mut every = crate::ticker::Ticker::on_grid(self.every, super::LOG_LEAD);
            let mut quiet = crate::ticker::Ticker::on_grid(self.every * 5, super::LOG_LEAD);
            let mut busy = true;
            loop {
                let src = match source.wait_for(Option::is_some).await {
                    Ok(s) => s.clone().unwrap_or(EngineSource::Off { reason: "not started".into() }),
                    Err(_) => return,
                };
                let (ws, sync, remotes) = (self.workspace.clone(), self.sync.clone(), self.remotes.clone());
                let now = crate::unixtime::now_ms();
                // The reader (and its open ledger) moves to the lane's thread and back, and
                // so do the checkpoint roots last expanded.
                let mut r = reader.take().unwrap_or_default();
                let roots = self.checkpoint_roots.clone();
                let last_env = env.take();
                let sample = lane
                    .run(move || {
                        let mut kept = None;
                        let s = r.read(&ws, &sync, &remotes, src, now).map(|mut s| {
                            if crate::sync::status::any_same_disk(&sync, &remotes) {
                                let (at, e) =
                                    last_env.filter(|(at, _)| at.elapsed() < ROOTS_EVERY).unwrap_or_else(|| {
                                        (std::time::Instant::now(), crate::sync::RemoteEnv::with_roots(&ws, &roots))
                                    });
                                crate::sync::status::mark_same_disk(&mut s.status, &sync, &remotes, &e);
                                kept = Some((at, e));
                            }
                            s
                        });
                        let why = s.as_ref().err().map(|e| {
                            tracing::warn!("reading the sync ledger: {e}");
                            if crate::sync::ledger::disk_full(&ws) {
                                format!("disk full: the sync ledger cannot be read (0 B free): {e}")
                            } else {
                                format!("the sync ledger cannot be read: {e}")
                            }
                        });
                        (r, kept, s.ok(), why)
                    })
                    .await;
                match sample {
                    Ok((r, kept, Some(s), _)) => {
                        reader = Some(r);
                        env = kept;
                        busy = s.status.levels.iter().any(|l| l.pending_files > 0 || l.in_flight.is_some());
                        if tx.send(Msg::Sync(Box::new(s))).is_err() {
                            return;
                        }
                    }
                    Ok((r, _, None, why)) => {
                        reader = Some(r);
                        if tx.send(Msg::SyncUnreadable(why.unwrap_or_default())).is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::error!("sync sampler failed: {e}"),
                }
                tokio::select! {
                    _ = every.tick(), if busy => {}
                    _ = quiet.tick(), if !busy => {}
                    _ = refresh.notified() => {}
                    changed = source.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
        })
    }
}

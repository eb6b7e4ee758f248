//! The sync collector: this console's engine (unless a daemon runs the workspace), the
//! ledger read for the Uploads panel, and engine events forwarded.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::app::Msg;

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

impl SyncCollector {
    /// Starts this console's engine unless a daemon holds the workspace (or no remote is
    /// configured), then reads the ledger every `every` and forwards engine events.
    pub(super) fn spawn(
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

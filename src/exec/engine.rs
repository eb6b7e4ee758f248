//! This console's side of the sync engine: it starts an engine when no daemon holds the
//! workspace (taking the lock and opening the ledger on a blocking thread), starts it again
//! after a full disk kept it from opening the ledger, forwards its events to the app, and
//! carries out sync commands: to its own engine, or left in the ledger for the daemon.
//! Who runs the engine is published on a watch channel for the ledger collector.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::Msg;
use crate::sync::lock::{LockError, Role};
use crate::sync::{Command, EngineHandle, EngineSource, RemoteEnv, RemotesConfig, SyncConfig, SyncError, engine};

/// How long after the engine could not open the ledger (a full disk) it is started again.
const ENGINE_RETRY: Duration = Duration::from_secs(30);

/// What the engine needs: the workspace and its sync config.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub workspace: PathBuf,
    pub sync: SyncConfig,
    pub remotes: RemotesConfig,
    /// `checkpoints.roots`: a remote on their filesystem is no backup.
    pub checkpoint_roots: Vec<String>,
    /// Start an engine when no daemon holds the workspace (off for tests).
    pub start_engine: bool,
}

/// The running link to the engine.
pub struct EngineLink {
    commands: mpsc::UnboundedSender<Command>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl EngineLink {
    /// Starts the link's task; the decision who runs the engine is published on `source`
    /// (`None` until made).
    pub fn start(
        cfg: EngineConfig,
        tx: mpsc::UnboundedSender<Msg>,
        source: watch::Sender<Option<EngineSource>>,
    ) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(cfg, tx, source, rx, stop.clone()));
        Self { commands, stop, task }
    }

    /// A command for the engine (this console's, or the daemon's through the ledger).
    pub fn send(&self, cmd: Command) {
        let _ = self.commands.send(cmd);
    }

    /// Stops this console's engine (uploads in flight are left resumable) and waits for it.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!("the sync engine link stopped: {e}");
        }
    }
}

/// Who runs the engine, decided off the UI task: a daemon holding the lock, this console
/// (started here), or nobody and why. The second value is whether to try again later.
fn decide(cfg: &EngineConfig) -> (EngineSource, Option<EngineHandle>, bool) {
    let configured = cfg.sync.levels().iter().any(|(_, _, l)| l.enabled && cfg.remotes.contains_key(&l.remote));
    if let Some(h) = crate::sync::lock::holder_info(&cfg.workspace) {
        return (held_by(h.pid, h.role), None, false);
    }
    if !configured {
        let reason = "no remote configured: add [remotes.NAME] to opsconsole.toml".into();
        return (EngineSource::Off { reason }, None, false);
    }
    if !cfg.start_engine {
        return (EngineSource::Off { reason: "not started".into() }, None, false);
    }
    let env = RemoteEnv::with_roots(&cfg.workspace, &cfg.checkpoint_roots);
    let remotes = engine::build_remotes_in(&cfg.remotes, &env);
    match engine::start_as(&cfg.workspace, &cfg.sync, remotes, engine::Mode::Daemon, Role::Console) {
        Ok(h) => (EngineSource::Console, Some(h), false),
        Err(e) => {
            let (source, retry) = start_failed(&cfg.workspace, e);
            (source, None, retry)
        }
    }
}

/// The engine another process runs, by what its lock records: a console's own engine is
/// not called a daemon.
fn held_by(pid: u32, role: Option<Role>) -> EngineSource {
    match role {
        Some(Role::Console) => EngineSource::OtherConsole { pid },
        _ => EngineSource::Daemon { pid },
    }
}

/// What the panel says when this console's engine did not start, and whether to try again
/// later (the ledger or the lock could not be written: a full disk, in words).
fn start_failed(ws: &Path, e: SyncError) -> (EngineSource, bool) {
    match e {
        SyncError::Locked(LockError::Held { pid, role, .. }) => (held_by(pid.unwrap_or(0), role), false),
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

async fn run(
    cfg: EngineConfig,
    tx: mpsc::UnboundedSender<Msg>,
    source: watch::Sender<Option<EngineSource>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    stop: CancellationToken,
) {
    let mut own: Option<EngineHandle> = None;
    // When to decide again (a full disk kept the engine from starting); at once the first time.
    let mut decide_at = Some(tokio::time::Instant::now());
    loop {
        if own.is_none() && decide_at.is_some_and(|t| t <= tokio::time::Instant::now()) {
            decide_at = None;
            let c = cfg.clone();
            // The lock (flock) and the ledger (open, migrations) are file I/O: never on the UI task.
            match tokio::task::spawn_blocking(move || decide(&c)).await {
                Ok((src, handle, retry)) => {
                    own = handle;
                    decide_at = retry.then(|| tokio::time::Instant::now() + ENGINE_RETRY);
                    source.send_replace(Some(src));
                }
                Err(e) => {
                    tracing::error!("starting the sync engine failed: {e}");
                    source.send_replace(Some(EngineSource::Off {
                        reason: format!("the sync engine did not start: {e}"),
                    }));
                }
            }
        }
        let retry = async {
            match decide_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = retry => {}
            cmd = commands.recv() => match cmd {
                Some(cmd) => match &own {
                    Some(h) => h.send(cmd),
                    None => request(&cfg.workspace, cmd),
                },
                None => break,
            },
            ev = async {
                match own.as_mut() {
                    Some(h) => h.events.recv().await,
                    None => std::future::pending().await,
                }
            } => match ev {
                Some(ev) => {
                    if tx.send(Msg::SyncEvent(ev)).is_err() {
                        break;
                    }
                }
                None => {
                    own = None;
                    source.send_replace(Some(EngineSource::Off { reason: "the sync engine stopped".into() }));
                }
            },
        }
    }
    if let Some(h) = own
        && let Err(e) = h.shutdown().await
    {
        tracing::warn!("the sync engine stopped with an error: {e}");
    }
}

/// Leaves a command in the ledger for the engine a daemon runs (taken within a quarter
/// second), on a blocking thread.
fn request(workspace: &Path, cmd: Command) {
    let ws = workspace.to_path_buf();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = cmd.request(&ws) {
            tracing::warn!("leaving a sync request in the ledger: {e}");
        }
    });
}

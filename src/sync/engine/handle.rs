//! Starting an engine and the handle that talks to it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::remotes::remote_root_around;
use super::{Command, Coordinator, Mode, RunSummary, SyncError, SyncEvent};
use crate::sync::config::SyncConfig;
use crate::sync::ledger::{Ledger, LedgerError};
use crate::sync::lock::{EngineLock, Role};
use crate::sync::remote::Remote;
use crate::sync::routing::Router;

/// A running engine.
pub struct EngineHandle {
    commands: mpsc::UnboundedSender<Command>,
    /// Events from the engine; drain it, or drop it to ignore them.
    pub events: mpsc::UnboundedReceiver<SyncEvent>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<RunSummary, SyncError>>>,
}

impl Drop for EngineHandle {
    /// A dropped handle stops the engine: uploads in flight end within a chunk (their
    /// cancel tokens are children of this one), so a runtime shutting down does not wait
    /// on a multi-gigabyte copy.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl EngineHandle {
    pub fn send(&self, cmd: Command) {
        let _ = self.commands.send(cmd);
    }

    /// A token that stops the engine when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stop (uploads in flight are left resumable) and wait for the engine to end.
    pub async fn shutdown(self) -> Result<RunSummary, SyncError> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Wait for the engine to end by itself (once mode) or by its shutdown token.
    pub async fn wait(mut self) -> Result<RunSummary, SyncError> {
        let Some(task) = self.task.take() else {
            return Err(SyncError::Ledger(LedgerError::Other("sync engine already awaited".into())));
        };
        match task.await {
            Ok(r) => r,
            Err(e) => Err(SyncError::Ledger(LedgerError::Other(format!("sync engine stopped: {e}")))),
        }
    }
}

/// Start an engine on a workspace: takes the workspace lock, opens the ledger, watches the
/// workspace and uploads in the background. Must be called inside a tokio runtime.
pub fn start(
    workspace: &Path,
    sync: &SyncConfig,
    remotes: BTreeMap<String, Arc<dyn Remote>>,
    mode: Mode,
) -> Result<EngineHandle, SyncError> {
    let role = if mode == Mode::Once { Role::Once } else { Role::Daemon };
    start_as(workspace, sync, remotes, mode, role)
}

/// [`start`], recording `role` in the lock (a console's own engine says `console`, so a
/// second console does not call it a daemon).
pub fn start_as(
    workspace: &Path,
    sync: &SyncConfig,
    remotes: BTreeMap<String, Arc<dyn Remote>>,
    mode: Mode,
    role: Role,
) -> Result<EngineHandle, SyncError> {
    let problems = sync.validate();
    if !problems.is_empty() {
        return Err(SyncError::Config(problems));
    }
    // A remote folder that is the workspace, holds it or is inside it is no copy at all.
    let places: Vec<(String, String)> = remotes
        .iter()
        .filter_map(|(name, r)| {
            let why = remote_root_around(r.as_ref(), workspace)?;
            Some((format!("remotes.{name}.path"), why))
        })
        .collect();
    if !places.is_empty() {
        return Err(SyncError::Config(places));
    }
    let lock = EngineLock::acquire_as(workspace, role).map_err(SyncError::Locked)?;
    let ledger = Ledger::open(workspace)?;
    let router = Router::new(sync).map_err(|e| SyncError::Config(vec![("sync".into(), e)]))?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let coordinator =
        Coordinator::new(workspace.to_path_buf(), sync.clone(), Arc::new(router), remotes, ledger, ev_tx, mode);
    let token = shutdown.clone();
    let coordinator = Coordinator { shutdown: shutdown.clone(), ..coordinator };
    let task = tokio::spawn(async move {
        let _lock = lock;
        coordinator.run(cmd_rx, token).await
    });
    Ok(EngineHandle { commands: cmd_tx, events: ev_rx, shutdown, task: Some(task) })
}

//! Background sync: the ledger, routing and schedules, the watcher, the upload engine,
//! remotes (the trait and the local-folder remote) and the one-engine-per-workspace lock.
//! No UI here: the console and the CLI read [`status::SyncStatus`] and [`SyncEvent`]s.

pub mod check;
pub mod config;
pub mod direct;
pub mod drive;
pub mod engine;
pub mod hash;
pub mod hf;
pub mod ledger;
pub mod local;
pub mod lock;
pub mod marker;
pub mod rate;
pub mod remote;
pub mod routing;
pub mod service;
pub mod status;
pub mod sums;
pub mod verify;
pub mod watcher;

use std::path::Path;

pub use config::{LevelConfig, RemoteConfig, RemotesConfig, SyncConfig};
pub use engine::{Command, EngineHandle, Mode, RemoteEnv, RunSummary, SyncError, SyncEvent};
pub use status::{EngineSource, SyncSample, SyncStatus, read_status};

/// Run one pass on every level: verify what is stored, store everything routed that is
/// not yet confirmed, then return.
pub async fn run_once(workspace: &Path, sync: &SyncConfig, remotes: &RemotesConfig) -> Result<RunSummary, SyncError> {
    run_once_in(&RemoteEnv::new(workspace), sync, remotes, |_| {}).await
}

/// [`run_once`] with the remotes bound to `env` (its checkpoint roots; `rehash` for
/// `sync --verify`), each engine event handed to `on_event` as it comes.
pub async fn run_once_in(
    env: &RemoteEnv,
    sync: &SyncConfig,
    remotes: &RemotesConfig,
    mut on_event: impl FnMut(&SyncEvent),
) -> Result<RunSummary, SyncError> {
    let workspace = env.workspace.as_path();
    let built = engine::build_remotes_in(remotes, env);
    let mut handle = engine::start(workspace, sync, built, Mode::Once)?;
    while let Some(ev) = handle.events.recv().await {
        on_event(&ev);
    }
    handle.wait().await
}

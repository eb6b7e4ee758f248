//! Commands to a running engine, and their encoding as ledger requests for the engine a
//! daemon runs.

use std::path::Path;

use super::now_ms;
use crate::sync::ledger::{Ledger, LedgerError};

/// Commands to a running engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run a pass on a level (or all) now, whatever the schedule.
    SyncNow(Option<String>),
    /// Queue failed uploads of a level (or all) again.
    RetryFailed(Option<String>),
    /// Stop an upload in flight; it is marked failed ("cancelled by you").
    Cancel { path: String, level: String },
}

impl Command {
    /// Leave this command in the workspace's ledger for the engine that runs there (a
    /// daemon started by `opsconsole sync --daemon`); it is taken within a quarter second.
    pub fn request(&self, workspace: &Path) -> Result<(), LedgerError> {
        let mut l = Ledger::open(workspace)?;
        let now = now_ms();
        match self {
            Command::SyncNow(level) => l.push_request("sync_now", level.as_deref(), None, now),
            Command::RetryFailed(level) => l.push_request("retry_failed", level.as_deref(), None, now),
            Command::Cancel { path, level } => l.push_request("cancel", Some(level), Some(path), now),
        }
    }
}

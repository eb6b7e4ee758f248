//! Why the engine could not start or stopped, and ledger trouble in words.

use std::path::Path;

use crate::sync::ledger::LedgerError;
use crate::sync::lock::LockError;

/// Why the engine could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Another engine runs on this workspace.
    #[error(transparent)]
    Locked(LockError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A config value is unusable (dotted key, problem).
    #[error("sync config: {}", .0.iter().map(|(k, p)| format!("{k}: {p}")).collect::<Vec<_>>().join("; "))]
    Config(Vec<(String, String)>),
}

/// A ledger error in words: a full disk says so.
pub fn ledger_trouble_words(ws: &Path, e: &LedgerError) -> String {
    match crate::sync::ledger::disk_full(ws) {
        true => format!(
            "disk full: the sync ledger cannot record uploads (0 B free on the workspace's disk; {e}); \
             uploads wait until space is freed"
        ),
        false => format!("the sync ledger cannot be written: {e}"),
    }
}

//! Why the engine could not start or stopped, and ledger trouble in words.

use std::path::Path;

use crate::sync::ledger::LedgerError;
use crate::sync::lock::LockError;

/// Why the engine could not start or stopped.
#[derive(Debug)]
pub enum SyncError {
    /// Another engine runs on this workspace.
    Locked(LockError),
    Ledger(LedgerError),
    /// A config value is unusable (dotted key, problem).
    Config(Vec<(String, String)>),
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Locked(e) => write!(f, "{e}"),
            SyncError::Ledger(e) => write!(f, "{e}"),
            SyncError::Config(problems) => {
                let parts: Vec<String> = problems.iter().map(|(k, p)| format!("{k}: {p}")).collect();
                write!(f, "sync config: {}", parts.join("; "))
            }
        }
    }
}

impl std::error::Error for SyncError {}

impl From<LedgerError> for SyncError {
    fn from(e: LedgerError) -> Self {
        SyncError::Ledger(e)
    }
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

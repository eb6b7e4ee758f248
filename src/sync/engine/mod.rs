//! The upload engine: one coordinator task that folds watcher observations into the
//! ledger and starts uploads, and a bounded number of upload tasks per remote. Nothing
//! here blocks its caller: commands go in on a channel, [`SyncEvent`]s come out on
//! another (progress at most four times a second per upload).

mod backoff;
mod command;
mod coordinator;
mod error;
mod handle;
mod remotes;
mod upload;

use std::time::Duration;

pub use backoff::backoff_delay;
pub use command::Command;
use coordinator::{Coordinator, db};
pub use error::{SyncError, ledger_trouble_words};
pub use handle::{EngineHandle, start, start_as};
pub use remotes::{RemoteEnv, build_remotes, build_remotes_in};
use upload::{JobDone, JobEnd};

// [commit groups] One commit per checkpoint for remotes that commit (the Hub).
mod group;

use crate::unixtime::now_ms;

/// What the engine reports. Plain values, for the console's `update` and the CLI.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncEvent {
    /// A complete file was hashed and queued on a level.
    Queued { level: String, path: String, bytes: u64 },
    /// An upload started (at `offset` when resuming; at `bytes_total` when every byte is
    /// there already, as when a local remote copied the file while it was hashed).
    Started { level: String, path: String, offset: u64, bytes_total: u64 },
    /// Throttled progress of an upload. `rate_bytes_per_s`: bytes this attempt sent over
    /// the last [`crate::sync::rate::WINDOW`] (0 until it has run
    /// [`crate::sync::rate::MIN_SPAN`]).
    Progress { level: String, path: String, bytes_done: u64, bytes_total: u64, rate_bytes_per_s: u64 },
    /// Stored and verified (`already_there`: the remote held it, nothing was sent).
    Confirmed { level: String, path: String, bytes: u64, already_there: bool },
    /// An attempt failed; `retry_in` is `None` for a permanent failure.
    Failed { level: String, path: String, reason: String, permanent: bool, retry_in: Option<Duration> },
    /// A file left the queue without being stored (deleted before upload).
    Dropped { path: String, levels: Vec<String>, note: String },
    /// A confirmed copy failed verification on its remote (missing, changed): it is
    /// queued to be stored again.
    Requeued { level: String, path: String, reason: String },
    /// A pass over a level ended; `success` when nothing is left pending or failed.
    /// `stored`: files confirmed during the pass; `confirmed`: files the level holds.
    PassDone { level: String, success: bool, stored: u64, confirmed: u64 },
    /// A file a level would take was recognised as a secret and is withheld from every
    /// level (`why` in words, never the secret).
    Withheld { path: String, why: String },
    /// The ledger could not be written (a full disk, an I/O error): uploads wait, and the
    /// engine tries again in `retry_in`. `why` is in words ("disk full: …").
    LedgerTrouble { why: String, retry_in: Duration },
    /// The ledger is written again after trouble.
    LedgerOk,
}

/// Daemon (runs until shut down, passes on schedule) or once (one pass everywhere, then
/// stops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Daemon,
    Once,
}

/// What one run did (for `run_once` and the daemon's exit line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    pub already_there: u64,
    pub dropped: u64,
    /// Confirmed copies verified on their remotes (`sync --verify`, and every pass).
    pub verified: u64,
    /// Confirmed copies found missing or changed, queued to be stored again.
    pub requeued: u64,
    /// (level, path, reason) of uploads left failed, or (`--once`) left unfinished.
    pub failed: Vec<(String, String, String)>,
    /// (path, why) of files withheld as secrets during this run.
    pub withheld: Vec<(String, String)>,
}

//! Checkpoints: inventory, retention policy, prune plans and the prune executor, plus the
//! disk-guard maths (growth rate, time to thresholds, workspace usage breakdown).
//!
//! No UI here: everything is usable from the CLI and testable alone. Anything that
//! depends on the time takes it as an argument.

pub mod config;
pub mod inventory;
pub mod ledger;
pub mod openfiles;
pub mod roots;

pub use config::{BestMode, CheckpointsConfig, LogPruneConfig, PruneConfig};
pub use inventory::{Checkpoint, Inventory, ScanOptions, WritingWhy};
pub use ledger::{ConfirmationMap, ConfirmationSource, JsonlEventSink, NotConfirmed, PruneEventSink};

use std::path::Path;
use std::time::SystemTime;

/// Serialize a path as a (lossy) string.
pub(crate) fn ser_path<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// Seconds since the Unix epoch (0 for times before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

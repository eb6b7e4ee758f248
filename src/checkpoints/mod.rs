//! Checkpoints: inventory, retention policy, prune plans and the prune executor. The
//! disk-guard maths (growth rate, time to thresholds, usage breakdown) is in
//! `crate::disk::{growth, usage}`.
//!
//! No UI here: everything is usable from the CLI and testable alone. Anything that
//! depends on the time takes it as an argument.

pub mod auto;
pub mod config;
pub mod executor;
pub mod inventory;
pub mod ledger;
pub mod logs;
pub mod openfiles;
pub mod plan;
pub mod roots;
pub mod safedelete;
pub mod sample;

pub use config::{BestMode, CheckpointsConfig, LogPruneConfig, PruneConfig};
pub use executor::{ExecContext, ItemOutcome, PruneProgress, PruneReport, run_plan, spawn_prune};
pub use inventory::{Checkpoint, Inventory, ScanOptions, WritingWhy};
pub use ledger::{ConfirmationMap, ConfirmationSource, JsonlEventSink, NotConfirmed, PruneEventSink};
pub use plan::{DiskSpace, PlanAction, PlanInputs, PlanItem, PrunePlan, Reason, build_plan};
pub use sample::CheckpointsSample;

use std::path::Path;

/// Serialize a path as a (lossy) string.
pub(crate) fn ser_path<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

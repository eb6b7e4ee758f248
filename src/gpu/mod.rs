//! GPUs: NVML sampling, per-process VRAM, history, tiers and tier fit, the VRAM estimator
//! behind `opsconsole fit`, and ending a process the user owns.
//!
//! No UI here: the collector sends whole [`GpuSample`]s; [`GpuHistory`] and [`FitTracker`]
//! fold them; [`estimate()`] is a pure function.

pub mod collector;
pub mod config;
pub mod demo;
pub mod estimate;
pub mod fit;
pub mod history;
pub mod kill;
pub mod procinfo;
pub mod report;
pub mod sample;
pub mod tier;

use std::time::{SystemTime, UNIX_EPOCH};

pub use collector::GpuCollector;
pub use config::{GpuConfig, TierConfig};
pub use estimate::{EstimateInput, FitEstimate, estimate};
pub use history::GpuHistory;
pub use kill::{TerminateError, terminate};
pub use report::GpuStatus;
pub use sample::{GpuDevice, GpuProcess, GpuSample, NvmlStatus};
pub use tier::{FitTracker, TierFit, Verdict};

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis().min(u64::MAX as u128) as u64).unwrap_or(0)
}

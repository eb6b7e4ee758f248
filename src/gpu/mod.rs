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

pub use collector::GpuCollector;
pub use config::{GpuConfig, TierConfig};
pub use estimate::{EstimateInput, FitEstimate, estimate};
pub use history::GpuHistory;
pub use kill::{TerminateError, terminate};
pub use report::GpuStatus;
pub use sample::{GpuDevice, GpuProcess, GpuSample, NvmlStatus};
pub use tier::{FitTracker, TierFit, Verdict};

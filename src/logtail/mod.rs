//! The training log: which log to follow, a follow-by-name tailer, metric parsers, the
//! metrics of a run, health (stall and errors), and the Log panel's view model.
//!
//! No UI here (`task` is the console's tokio task around the collector): the collector sends whole [`LogSample`]s, the app folds them, and the
//! panel draws [`LogView`] and the metrics.

pub mod backfill;
pub mod backread;
pub mod collector;
pub mod config;
pub mod discover;
pub mod health;
pub mod lines;
pub mod metrics;
pub mod parse;
pub mod proc;
pub mod rotated;
pub mod runstate;
pub mod scancache;
pub mod status;
pub mod tail;

pub use collector::{BackfillProgress, CollectorOptions, LiveFold, LogCollector, LogSample, spawn_collector};
pub use config::LogConfig;
pub use health::{ErrorKind, Health, LogError};
pub use lines::{LineSplitter, LogLine};
pub use metrics::{MetricsSnapshot, MetricsState, Series};
pub use parse::{MetricParser, MetricUpdate};
pub use runstate::{RunState, RunStatus};
pub use status::{LogStatus, MetricsStatus, collect_status, collect_status_in};
pub use tail::{StartAt, TailBatch, TailNote, Tailer};

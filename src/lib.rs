//! opsconsole: a terminal operations console for training ML models on rented cloud GPUs.
//!
//! Domain modules (`disk`, …) never import ratatui; `app` folds messages into state; `ui`
//! draws the state; `tui` owns the terminal.

pub mod airlock;
pub mod app;
pub mod checklist;
pub mod checkpoints;
pub mod cli;
pub mod collectors;
pub mod config;
pub mod demo;
pub mod disk;
pub mod exec;
pub mod glob;
pub mod gpu;
pub mod host;
pub mod joblock;
pub mod keys;
pub mod logging;
pub mod logtail;
pub mod metrics;
pub mod procfs;
pub mod prune;
pub mod rules;
pub mod secrets;
pub mod status;
pub mod sync;
pub mod ticker;
pub mod tui;
pub mod ui;
pub mod unixtime;
pub mod util;
pub mod workspace;

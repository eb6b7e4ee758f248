//! The console's executor: carries out what `update` asks for, off the UI task.

pub mod checklist;
pub mod prune;

//! The disk panel's state: the newest sample and the list scroll position.

use std::time::SystemTime;

use super::Action;
use crate::disk::{DiskSample, Thresholds};

#[derive(Debug, Clone)]
pub struct DiskPanel {
    pub thresholds: Thresholds,
    pub sample: Option<DiskSample>,
    pub sampled_at: Option<SystemTime>,
    /// First disk shown when there are more than fit.
    pub scroll: usize,
}

impl DiskPanel {
    pub fn new(thresholds: Thresholds) -> Self {
        Self { thresholds, sample: None, sampled_at: None, scroll: 0 }
    }

    pub fn apply(&mut self, sample: DiskSample, now: SystemTime) {
        let n = sample.disks.len();
        self.sample = Some(sample);
        self.sampled_at = Some(now);
        self.scroll = self.scroll.min(n.saturating_sub(1));
    }

    pub fn scroll(&mut self, action: Action) {
        let n = self.sample.as_ref().map_or(0, |s| s.disks.len());
        let max = n.saturating_sub(1);
        self.scroll = match action {
            Action::Up => self.scroll.saturating_sub(1),
            Action::Down => (self.scroll + 1).min(max),
            Action::PageUp => self.scroll.saturating_sub(5),
            Action::PageDown => (self.scroll + 5).min(max),
            _ => self.scroll,
        };
    }
}

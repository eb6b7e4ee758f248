//! The terminal bell: `update` decides, the terminal layer rings. A condition (a CUDA OOM
//! or `Killed`, a NaN loss, a stall, a disk at or past critical) rings once when it first
//! appears, and again only after it has cleared and come back. What was there before the
//! console watched (the log's history, the first disk sample) is taken as known.

use std::collections::BTreeSet;

use super::AppState;
use crate::disk::Level;

/// What the bell has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alerts {
    /// Conditions present at the last look (`oom`, `nan`, `stall`, `disk:/mount`).
    pub active: BTreeSet<String>,
    /// Times the bell was asked to ring. The terminal layer rings when this grows.
    pub bells: u64,
    /// What the last ring was for.
    pub last: Vec<String>,
}

/// The conditions present now.
pub fn conditions(state: &AppState) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let c = &state.log.health.counts;
    if c.cuda_oom + c.killed > 0 {
        out.insert("oom".to_string());
    }
    if c.nan_loss > 0 {
        out.insert("nan".to_string());
    }
    if state.log.stalled(state.now) {
        out.insert("stall".to_string());
    }
    for d in state.disk.sample.iter().flat_map(|s| s.disks.iter()) {
        if d.level >= Level::Critical {
            out.insert(format!("disk:{}", d.mount));
        }
    }
    out
}

/// Look again after a message. `known` says which conditions are history rather than
/// news (`log`: a log's first sample or its backfill; `disk`: the first disk sample):
/// they are recorded without ringing.
pub fn observe(state: &mut AppState, known_log: bool, known_disk: bool) {
    let now = conditions(state);
    let new: Vec<String> = now
        .iter()
        .filter(|k| !state.alerts.active.contains(*k))
        .filter(|k| {
            let disk = k.starts_with("disk:");
            !(disk && known_disk || !disk && known_log && *k != "stall")
        })
        .cloned()
        .collect();
    state.alerts.active = now;
    if !new.is_empty() && state.config.alerts.bell {
        state.alerts.bells += 1;
        state.alerts.last = new;
    }
}

//! When to prune by itself (`prune.auto`).

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::config::PruneConfig;

/// Run an automatic prune now, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", content = "why", rename_all = "snake_case")]
pub enum AutoPruneDecision {
    Run,
    Skip(String),
}

/// Decide on an automatic prune for one disk: only with `prune.auto` on, only at or above
/// the critical fill, and not again within `prune.auto_cooldown_secs` of the last run (so a
/// disk that stays critical because nothing more may be deleted does not loop). The plan
/// it runs never carries the unconfirmed override.
pub fn auto_prune_decision(
    cfg: &PruneConfig,
    fill: f64,
    critical: f64,
    last_run: Option<SystemTime>,
    now: SystemTime,
) -> AutoPruneDecision {
    if !cfg.auto {
        return AutoPruneDecision::Skip("prune.auto is off".into());
    }
    if fill < critical {
        return AutoPruneDecision::Skip("disk below critical".into());
    }
    if let Some(last) = last_run {
        let since = now.duration_since(last).unwrap_or(Duration::ZERO);
        if since < Duration::from_secs(cfg.auto_cooldown_secs) {
            let left = cfg.auto_cooldown_secs - since.as_secs();
            return AutoPruneDecision::Skip(format!("last automatic prune too recent ({left}s of cooldown left)"));
        }
    }
    AutoPruneDecision::Run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_only_when_on_critical_and_cooled_down() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let off = PruneConfig::default();
        assert!(matches!(auto_prune_decision(&off, 0.99, 0.9, None, t0), AutoPruneDecision::Skip(_)));
        let on = PruneConfig { auto: true, ..Default::default() };
        assert!(matches!(auto_prune_decision(&on, 0.89, 0.9, None, t0), AutoPruneDecision::Skip(_)));
        assert_eq!(auto_prune_decision(&on, 0.90, 0.9, None, t0), AutoPruneDecision::Run);
        let recent = t0 - Duration::from_secs(100);
        assert!(matches!(auto_prune_decision(&on, 0.95, 0.9, Some(recent), t0), AutoPruneDecision::Skip(_)));
        let old = t0 - Duration::from_secs(601);
        assert_eq!(auto_prune_decision(&on, 0.95, 0.9, Some(old), t0), AutoPruneDecision::Run);
    }
}

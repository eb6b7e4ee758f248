//! Where prune events are recorded: the workspace's JSONL history, and override deletions
//! in the sync ledger too.

use std::path::{Path, PathBuf};

use crate::checkpoints::ledger::{PruneEvent, PruneEventKind};
use crate::checkpoints::{JsonlEventSink, PruneEventSink};

/// Where prune events are recorded: every event in `.opsconsole/prune-events.jsonl`, and
/// each override deletion in the sync ledger's event history as well.
pub fn event_sink(workspace: &Path) -> Box<dyn PruneEventSink> {
    Box::new(LedgerEventSink { workspace: workspace.to_path_buf(), jsonl: JsonlEventSink::in_workspace(workspace) })
}

struct LedgerEventSink {
    workspace: PathBuf,
    jsonl: JsonlEventSink,
}

impl PruneEventSink for LedgerEventSink {
    fn record(&mut self, event: &PruneEvent) -> std::io::Result<()> {
        self.jsonl.record(event)?;
        if event.kind == PruneEventKind::OverrideIntent {
            // No record in the ledger, no deletion: the executor stops on this error.
            let mut ledger = crate::sync::ledger::Ledger::open(&self.workspace).map_err(std::io::Error::other)?;
            let missing: Vec<String> = ["L2", "L3"]
                .iter()
                .filter(|l| !event.confirmed_on.iter().any(|c| c.eq_ignore_ascii_case(l)))
                .map(|l| l.to_string())
                .collect();
            ledger
                .record_override_deletion(&event.path, &missing, event.at_unix as i64 * 1000)
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

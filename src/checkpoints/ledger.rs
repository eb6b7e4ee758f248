//! What the sync ledger tells pruning, and what pruning tells the ledger.
//!
//! `crate::prune` implements [`ConfirmationSource`] and [`PruneEventSink`] on the sync
//! ledger; [`NotConfirmed`] answers "not confirmed anywhere" where there is no ledger, and
//! [`JsonlEventSink`] appends events to `.opsconsole/prune-events.jsonl`.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Where a local file is confirmed to have a copy.
pub trait ConfirmationSource {
    /// Redundancy levels (`"L2"`, `"L3"`) holding a confirmed copy of `rel_path` (the path
    /// relative to the workspace, `/`-separated; for an absolute root, the absolute path).
    /// A folder checkpoint counts as confirmed on a level only when all its files are.
    fn confirmed_on(&self, rel_path: &str) -> Vec<String>;

    /// Right before a deletion: is the copy on `level` really there, on the remote that
    /// level stores into now, with the same size and checksum? `Err(why)` keeps the file;
    /// a source backed by a ledger also queues the copy to be stored again.
    fn verify(&self, rel_path: &str, level: &str) -> Result<(), String>;

    /// Why `rel_path` is not confirmed, when something more than "not stored yet" is known
    /// (its copy failed verification). Shown beside the plan's item.
    fn note(&self, _rel_path: &str) -> Option<String> {
        None
    }
}

/// No ledger: nothing is confirmed anywhere, so nothing is deleted without override.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotConfirmed;

impl ConfirmationSource for NotConfirmed {
    fn confirmed_on(&self, _rel_path: &str) -> Vec<String> {
        Vec::new()
    }

    fn verify(&self, _rel_path: &str, _level: &str) -> Result<(), String> {
        Err("no sync ledger: nothing is stored anywhere".into())
    }
}

/// A fixed map from relative path to levels (tests, fixtures, a ledger snapshot).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfirmationMap(pub HashMap<String, Vec<String>>);

impl ConfirmationSource for ConfirmationMap {
    fn confirmed_on(&self, rel_path: &str) -> Vec<String> {
        self.0.get(rel_path).cloned().unwrap_or_default()
    }

    /// A fixed map has no remote to ask: what it says is taken as verified.
    fn verify(&self, rel_path: &str, level: &str) -> Result<(), String> {
        if self.confirmed_on(rel_path).iter().any(|l| l.eq_ignore_ascii_case(level)) {
            Ok(())
        } else {
            Err(format!("not confirmed on {level}"))
        }
    }
}

/// Whether `confirmed_on` satisfies `required`: every required level is present, and in
/// any case at least one level other than L1 (so an empty requirement never means
/// "delete the only copy").
pub fn is_confirmed(confirmed_on: &[String], required: &[String]) -> bool {
    let remote = |l: &String| !l.eq_ignore_ascii_case("L1");
    confirmed_on.iter().any(remote) && required.iter().all(|r| confirmed_on.iter().any(|c| c.eq_ignore_ascii_case(r)))
}

/// What happened, for the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneEventKind {
    /// About to delete an unconfirmed file on the user's explicit override (written
    /// before the deletion; no record, no deletion).
    OverrideIntent,
    Deleted,
    Skipped,
    Failed,
    /// An automatic prune started because a disk crossed critical.
    AutoPrune,
}

/// One record in the prune log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneEvent {
    pub at_unix: u64,
    pub kind: PruneEventKind,
    pub path: String,
    pub bytes: u64,
    pub reason: String,
    pub confirmed_on: Vec<String>,
    pub unconfirmed_override: bool,
}

/// Where prune events go (the ledger, once it exists).
pub trait PruneEventSink: Send {
    fn record(&mut self, event: &PruneEvent) -> io::Result<()>;
}

/// Appends one JSON object per line to a file, flushed and synced per event.
#[derive(Debug, Clone)]
pub struct JsonlEventSink {
    pub path: PathBuf,
}

impl JsonlEventSink {
    /// `<workspace>/.opsconsole/prune-events.jsonl`.
    pub fn in_workspace(workspace: &Path) -> Self {
        Self { path: workspace.join(".opsconsole").join("prune-events.jsonl") }
    }
}

impl PruneEventSink for JsonlEventSink {
    fn record(&mut self, event: &PruneEvent) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut f = OpenOptions::new().create(true).append(true).open(&self.path)?;
        f.write_all(&line)?;
        f.sync_data()
    }
}

/// Keeps events in memory (tests).
#[derive(Debug, Clone, Default)]
pub struct MemoryEventSink(pub std::sync::Arc<std::sync::Mutex<Vec<PruneEvent>>>);

impl PruneEventSink for MemoryEventSink {
    fn record(&mut self, event: &PruneEvent) -> io::Result<()> {
        self.0.lock().map_err(|_| io::Error::other("event list poisoned"))?.push(event.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn confirmation_needs_every_required_level_and_some_remote() {
        assert!(is_confirmed(&s(&["L3"]), &s(&["L3"])));
        assert!(is_confirmed(&s(&["l2", "L3"]), &s(&["L3"])));
        assert!(!is_confirmed(&s(&["L2"]), &s(&["L3"])));
        assert!(!is_confirmed(&s(&[]), &s(&[])));
        assert!(!is_confirmed(&s(&["L1"]), &s(&[])));
        assert!(is_confirmed(&s(&["L2"]), &s(&[])));
    }

    #[test]
    fn jsonl_sink_appends_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = JsonlEventSink::in_workspace(dir.path());
        let ev = PruneEvent {
            at_unix: 5,
            kind: PruneEventKind::Deleted,
            path: "checkpoints/a.pt".into(),
            bytes: 3,
            reason: "beyond_keep_last".into(),
            confirmed_on: s(&["L3"]),
            unconfirmed_override: false,
        };
        sink.record(&ev).unwrap();
        sink.record(&ev).unwrap();
        let text = std::fs::read_to_string(&sink.path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["kind"], "deleted");
        assert_eq!(lines[1]["path"], "checkpoints/a.pt");
    }
}

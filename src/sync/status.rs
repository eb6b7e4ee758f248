//! What `status --json` and the Uploads panel show, read from the ledger, so a console
//! beside a running daemon shows the daemon's queue.

use std::path::Path;

use serde::Serialize;

use super::config::{RemotesConfig, SyncConfig};
use super::ledger::{EntryFilter, Ledger, LedgerEntry, LedgerError, LedgerEvent, LevelCounts, UploadState};

/// Failures listed per level at most.
const MAX_FAILURES: usize = 5;

/// Withheld files listed at most (all are counted).
const MAX_WITHHELD: usize = 20;

/// The `sync` object of `status --json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncStatus {
    /// Pid of the engine holding the workspace lock, if one runs.
    pub engine_pid: Option<u32>,
    pub levels: Vec<LevelStatus>,
    /// The newest notes from the history (dropped files, failures), newest first.
    pub recent: Vec<LedgerEvent>,
    /// How many files a level would take are withheld from every level as secrets.
    pub withheld_files: u64,
    /// The first of them by path, with why (never the secret itself).
    pub withheld: Vec<WithheldStatus>,
    /// Set when the ledger could only be read, not written (a full disk), in words:
    /// "disk full: the sync ledger is read-only until space is freed …".
    pub ledger_read_only: Option<String>,
}

/// A file withheld as a secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WithheldStatus {
    pub path: String,
    /// `private_key`, `service_account_key`, `hf_token`, … (see `secrets::SecretKind`).
    pub kind: String,
    pub why: String,
}

impl SyncStatus {
    /// "2 files withheld as secrets: a.json, .env" (`None` when nothing is withheld).
    pub fn withheld_line(&self) -> Option<String> {
        let n = self.withheld_files;
        if n == 0 {
            return None;
        }
        let names: Vec<&str> = self.withheld.iter().map(|w| w.path.as_str()).collect();
        let more = if (names.len() as u64) < n { ", …" } else { "" };
        Some(format!(
            "{n} {} withheld as {}: {}{more}",
            if n == 1 { "file" } else { "files" },
            if n == 1 { "a secret" } else { "secrets" },
            names.join(", ")
        ))
    }
}

/// One level.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelStatus {
    /// "L2" or "L3".
    pub level: String,
    /// The `[remotes.NAME]` it stores into.
    pub remote: String,
    /// False when that remote is not configured (nothing is queued for the level).
    pub remote_configured: bool,
    pub enabled: bool,
    pub interval_minutes: u64,
    pub pending_files: u64,
    pub pending_bytes: u64,
    pub confirmed_files: u64,
    /// When a file was last confirmed (stored and verified) on this level: "last ok".
    /// Null until something was stored; a pass with nothing to do does not set it.
    pub last_success_unix: Option<i64>,
    /// When a pass over the level last ended.
    pub last_pass_unix: Option<i64>,
    /// When a pass last ended with nothing left pending or failed (what `overdue` is
    /// measured from).
    pub up_to_date_unix: Option<i64>,
    /// A pass ran, nothing was ever stored on this level and nothing waits: "nothing to
    /// store".
    pub nothing_to_store: bool,
    /// The remote is on the same filesystem as the workspace or a checkpoint root,
    /// allowed by `same_disk = true`: "same disk: not a backup".
    pub same_disk: bool,
    pub overdue: bool,
    pub failed: u64,
    pub failures: Vec<FailureStatus>,
    /// The upload in progress: only while an engine holds the workspace lock.
    pub in_flight: Option<InFlightStatus>,
    /// An upload a stopped engine left unfinished; it resumes when an engine runs.
    pub interrupted: Option<InFlightStatus>,
}

/// A failed upload and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureStatus {
    pub path: String,
    pub reason: String,
    /// Waits for a retry command (otherwise retried automatically).
    pub permanent: bool,
    pub attempts: u32,
    /// When a failure that is not permanent is tried again (Unix seconds).
    pub retry_at_unix: Option<i64>,
}

/// The upload in progress (bytes as last written to the ledger).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InFlightStatus {
    pub path: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// When the engine wrote `bytes_done` (ms since the epoch): a console beside a daemon
    /// times its rate readings by it, not by when it read the ledger.
    #[serde(skip)]
    pub updated_ms: i64,
}

/// Work waiting longer than the schedule allows: something is pending or failed, and the
/// last success (or, never having succeeded, the oldest waiting file) is older than 1.25 x
/// the interval (30 minutes for a continuous level).
pub fn is_overdue(counts: &LevelCounts, interval_minutes: u64, now_ms: i64) -> bool {
    if counts.pending_files == 0 && counts.failed == 0 {
        return false;
    }
    let allowed_ms = if interval_minutes == 0 { 30 * 60_000 } else { (interval_minutes as i64).saturating_mul(75_000) };
    let since = counts.last_success_ms.or(counts.oldest_pending_ms);
    since.is_some_and(|t| now_ms - t > allowed_ms)
}

/// Build the status from an open ledger.
pub fn status_from_ledger(
    ledger: &Ledger,
    sync: &SyncConfig,
    remotes: &RemotesConfig,
    engine_pid: Option<u32>,
    now_ms: i64,
) -> Result<SyncStatus, LedgerError> {
    Ok(LedgerReading::read(ledger, sync)?.status(sync, remotes, engine_pid, now_ms))
}

/// What the status is built from, read from the ledger in one go: the status itself also
/// depends on the time (overdue), so a reading can be turned into a status again later.
#[derive(Debug, Clone)]
struct LedgerReading {
    /// Per level, in `sync.levels()` order: counts, and the rows uploading or failed.
    levels: Vec<(LevelCounts, Vec<LedgerEntry>)>,
    recent: Vec<LedgerEvent>,
    withheld: (u64, Vec<WithheldStatus>),
}

impl LedgerReading {
    fn read(ledger: &Ledger, sync: &SyncConfig) -> Result<Self, LedgerError> {
        let mut levels = Vec::new();
        for (name, _, _) in sync.levels() {
            let counts = ledger.counts(name)?;
            let entries = ledger.entries_where(Some(name), EntryFilter::UploadingOrFailed, None)?;
            levels.push((counts, entries));
        }
        let recent = ledger
            .recent_events(20)?
            .into_iter()
            .filter(|e| {
                matches!(
                    e.kind.as_str(),
                    "dropped" | "failed" | "override_delete" | "verify_failed" | "check_failed" | "withheld"
                )
            })
            .take(5)
            .collect();
        let (n, list) = ledger.withheld(MAX_WITHHELD)?;
        let withheld =
            (n, list.into_iter().map(|w| WithheldStatus { path: w.path, kind: w.kind, why: w.why }).collect());
        Ok(Self { levels, recent, withheld })
    }

    fn status(&self, sync: &SyncConfig, remotes: &RemotesConfig, engine_pid: Option<u32>, now_ms: i64) -> SyncStatus {
        let levels = sync
            .levels()
            .iter()
            .zip(&self.levels)
            .map(|((name, _, cfg), (counts, entries))| {
                level_status(name, cfg, remotes, counts, entries, engine_pid.is_some(), now_ms)
            })
            .collect();
        SyncStatus {
            engine_pid,
            levels,
            recent: self.recent.clone(),
            withheld_files: self.withheld.0,
            withheld: self.withheld.1.clone(),
            ledger_read_only: None,
        }
    }
}

fn level_status(
    name: &str,
    cfg: &super::config::LevelConfig,
    remotes: &RemotesConfig,
    counts: &LevelCounts,
    entries: &[LedgerEntry],
    engine_running: bool,
    now_ms: i64,
) -> LevelStatus {
    let uploading = entries.iter().find(|e| e.state == UploadState::Uploading).map(|e| InFlightStatus {
        path: e.path.clone(),
        bytes_done: e.bytes_done,
        bytes_total: e.bytes_total,
        updated_ms: e.updated_ms,
    });
    // "uploading" only while an engine holds the lock; a row a killed engine left in that
    // state is an interrupted upload, not one in progress.
    let (in_flight, interrupted) = if engine_running { (uploading, None) } else { (None, uploading) };
    LevelStatus {
        level: name.to_string(),
        remote: cfg.remote.clone(),
        remote_configured: remotes.contains_key(&cfg.remote),
        enabled: cfg.enabled,
        interval_minutes: cfg.interval_minutes,
        pending_files: counts.pending_files,
        pending_bytes: counts.pending_bytes,
        confirmed_files: counts.confirmed,
        last_success_unix: counts.last_confirmed_ms.map(|t| t.div_euclid(1000)),
        last_pass_unix: counts.last_pass_ms.map(|t| t.div_euclid(1000)),
        up_to_date_unix: counts.last_success_ms.map(|t| t.div_euclid(1000)),
        nothing_to_store: counts.last_pass_ms.is_some()
            && counts.last_confirmed_ms.is_none()
            && counts.confirmed == 0
            && counts.pending_files == 0
            && counts.failed == 0,
        same_disk: false,
        overdue: cfg.enabled && is_overdue(counts, cfg.interval_minutes, now_ms),
        failed: counts.failed,
        failures: entries
            .iter()
            .filter(|e| e.state == UploadState::Failed)
            .take(MAX_FAILURES)
            .map(|e| FailureStatus {
                path: e.path.clone(),
                reason: e.last_error.clone().unwrap_or_default(),
                permanent: e.permanent,
                attempts: e.attempts,
                retry_at_unix: (!e.permanent).then(|| e.next_attempt_ms.div_euclid(1000)),
            })
            .collect(),
        in_flight,
        interrupted,
    }
}

/// Whether any level stores on a local remote marked `same_disk`, the only case
/// [`mark_same_disk`] looks at (and needs the checkpoint roots for).
pub fn any_same_disk(sync: &SyncConfig, remotes: &RemotesConfig) -> bool {
    sync.levels().into_iter().any(|(_, _, cfg)| same_disk_path(remotes, &cfg.remote).is_some())
}

/// The folder of the local remote `name` when it is marked `same_disk`.
fn same_disk_path<'a>(remotes: &'a RemotesConfig, name: &str) -> Option<&'a std::path::PathBuf> {
    match remotes.get(name) {
        Some(super::config::RemoteConfig::Local { path, same_disk: true }) => Some(path),
        _ => None,
    }
}

/// Marks each level whose `same_disk` local remote shares a filesystem with the workspace
/// or a checkpoint root (`env.protected`): "same disk: not a backup".
pub fn mark_same_disk(status: &mut SyncStatus, sync: &SyncConfig, remotes: &RemotesConfig, env: &super::RemoteEnv) {
    use std::os::unix::fs::MetadataExt;
    // The protected paths' devices, asked once for every level (and only when one has a
    // remote to compare).
    let mut protected: Option<Vec<u64>> = None;
    for (l, (_, _, cfg)) in status.levels.iter_mut().zip(sync.levels()) {
        let Some(path) = same_disk_path(remotes, &cfg.remote) else {
            continue;
        };
        let root = super::config::local_root(path, &env.workspace);
        let Ok(dev) = std::fs::metadata(&root).map(|m| m.dev()) else { continue };
        let devs = protected.get_or_insert_with(|| {
            env.protected.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.dev()).collect()
        });
        l.same_disk = devs.contains(&dev);
    }
}

/// Read the status of a workspace without starting anything (and without creating a
/// ledger where none exists).
pub fn read_status(
    workspace: &Path,
    sync: &SyncConfig,
    remotes: &RemotesConfig,
    now_ms: i64,
) -> Result<SyncStatus, LedgerError> {
    let engine_pid = super::lock::holder(workspace);
    if !super::ledger::ledger_path(workspace).exists() {
        let empty = LevelCounts::default();
        return Ok(SyncStatus {
            engine_pid,
            levels: sync
                .levels()
                .iter()
                .map(|(name, _, cfg)| level_status(name, cfg, remotes, &empty, &[], engine_pid.is_some(), now_ms))
                .collect(),
            recent: Vec::new(),
            withheld_files: 0,
            withheld: Vec::new(),
            ledger_read_only: None,
        });
    }
    let (ledger, read_only) = Ledger::open_for_reading(workspace)?;
    let mut status = status_from_ledger(&ledger, sync, remotes, engine_pid, now_ms)?;
    status.ledger_read_only = read_only;
    Ok(status)
}

/// Who runs the engine the console shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineSource {
    /// This console started it.
    Console,
    /// A daemon (`opsconsole sync --daemon`) with this pid holds the workspace; the console
    /// reads its ledger and leaves commands there.
    Daemon { pid: u32 },
    /// Another console runs its own engine on this workspace (the lock says `console`):
    /// this one reads the ledger and leaves commands there, as beside a daemon.
    OtherConsole { pid: u32 },
    /// No engine runs, and why (no remote configured, an error at start).
    Off { reason: String },
}

/// One reading of the sync state for the Uploads panel: the ledger's status and queue.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSample {
    pub source: EngineSource,
    pub status: SyncStatus,
    /// Every row not yet confirmed (upload order), at most 200.
    pub queue: Vec<LedgerEntry>,
}

/// The most queue rows a sample carries (the queue overlay shows the first of them).
pub const QUEUE_ROWS: usize = 200;

/// Reads samples for the Uploads panel every second, keeping one connection to the ledger
/// between readings (opening one costs more than the reading). The connection is opened
/// again when the ledger file is replaced, and after an error.
/// When nothing was committed since the last reading (SQLite's `PRAGMA data_version`,
/// which moves when another connection commits), the last reading is reused and only the
/// time-dependent parts are computed again.
#[derive(Default)]
pub struct SampleReader {
    open: Option<(Ledger, (u64, u64))>,
    /// Who holds the engine lock, asked with the lock file kept open.
    holder: super::lock::HolderProbe,
    last: Option<(i64, LedgerReading, Vec<LedgerEntry>)>,
    /// A copy read on a full disk: why, and the ledger files' state it was taken at (it is
    /// taken again when they change, or after a while, to try a normal open).
    snapshot: Option<(String, LedgerStamp, std::time::Instant)>,
}

/// (size, mtime_ns) of the ledger file and of its `-wal`.
type LedgerStamp = [(u64, i64); 2];

fn ledger_stamp(workspace: &Path) -> LedgerStamp {
    let db = super::ledger::ledger_path(workspace);
    let wal = db.with_file_name("ledger.sqlite-wal");
    let st = |p: &Path| std::fs::metadata(p).map(|m| (m.len(), super::ledger::mtime_ns(&m))).unwrap_or_default();
    [st(&db), st(&wal)]
}

/// How long a read-only copy is shown before a normal open is tried again.
const SNAPSHOT_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

impl SampleReader {
    pub fn read(
        &mut self,
        workspace: &Path,
        sync: &SyncConfig,
        remotes: &RemotesConfig,
        source: EngineSource,
        now_ms: i64,
    ) -> Result<SyncSample, LedgerError> {
        use std::os::unix::fs::MetadataExt;
        let file = std::fs::metadata(super::ledger::ledger_path(workspace)).ok().map(|m| (m.dev(), m.ino()));
        let Some(file) = file else {
            self.open = None;
            let status = read_status(workspace, sync, remotes, now_ms)?;
            return Ok(SyncSample { source, status, queue: Vec::new() });
        };
        let stale_snapshot = self
            .snapshot
            .as_ref()
            .is_some_and(|(_, stamp, at)| *stamp != ledger_stamp(workspace) || at.elapsed() >= SNAPSHOT_RETRY);
        if stale_snapshot || self.open.as_ref().is_none_or(|(_, id)| *id != file) {
            let (ledger, read_only) = Ledger::open_for_reading(workspace)?;
            self.snapshot = read_only.map(|why| (why, ledger_stamp(workspace), std::time::Instant::now()));
            self.open = Some((ledger, file));
            self.last = None;
        }
        let read_only = self.snapshot.as_ref().map(|(why, _, _)| why.clone());
        let Some((ledger, _)) = &self.open else { unreachable!("opened above") };
        let engine_pid = self.holder.holder(workspace);
        let last = self.last.take();
        let read = || -> Result<(i64, LedgerReading, Vec<LedgerEntry>), LedgerError> {
            let version = ledger.data_version()?;
            if let Some(last) = last.filter(|(v, _, _)| *v == version) {
                return Ok(last);
            }
            let reading = LedgerReading::read(ledger, sync)?;
            let queue = ledger.entries_where(None, EntryFilter::Unfinished, Some(QUEUE_ROWS))?;
            Ok((version, reading, queue))
        };
        match read() {
            Ok((version, reading, queue)) => {
                let mut status = reading.status(sync, remotes, engine_pid, now_ms);
                status.ledger_read_only = read_only;
                let sample = SyncSample { source, status, queue: queue.clone() };
                self.last = Some((version, reading, queue));
                Ok(sample)
            }
            Err(e) => {
                self.open = None;
                self.snapshot = None;
                Err(e)
            }
        }
    }
}

/// The queue of a level (all levels when `None`) as the ledger has it, in upload order.
pub fn read_queue(workspace: &Path, level: Option<&str>) -> Result<Vec<LedgerEntry>, LedgerError> {
    if !super::ledger::ledger_path(workspace).exists() {
        return Ok(Vec::new());
    }
    Ledger::open_for_reading(workspace)?.0.entries(level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::config::RemoteConfig;

    #[test]
    fn status_counts_overdue_failures_and_in_flight() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut remotes = RemotesConfig::new();
        remotes.insert("hf".into(), RemoteConfig::Local { path: "/x".into(), same_disk: false });
        let sync = SyncConfig::default();
        let none = read_status(dir.path(), &sync, &remotes, 0).expect("status");
        assert!(!crate::sync::ledger::ledger_path(dir.path()).exists());
        assert_eq!(none.levels.len(), 2);
        assert!(!none.levels[0].remote_configured && none.levels[1].remote_configured);

        let mut l = Ledger::open(dir.path()).expect("open");
        let t0 = 1_000_000_000;
        l.track("a.pt", 100, 1, "a", None, &[("L3", "hf")], t0).expect("t");
        l.track("b.pt", 50, 2, "b", None, &[("L3", "hf")], t0).expect("t");
        l.set_uploading("b.pt", "L3", "b", 20, None, t0).expect("u");
        l.track("c.pt", 10, 3, "c", None, &[("L3", "hf")], t0).expect("t");
        l.set_failed("c.pt", "L3", "c", "quota exceeded. Fix: x", true, 0, t0).expect("f");
        drop(l);
        // 3 h 44 min later: within 1.25 x 3 h. 3 h 46 min: overdue.
        let at = |min: i64| t0 + min * 60_000;
        let s = read_status(dir.path(), &sync, &remotes, at(224)).expect("status");
        let l3 = &s.levels[1];
        assert_eq!((l3.pending_files, l3.pending_bytes, l3.failed), (2, 130, 1));
        assert!(!l3.overdue);
        // No engine holds the lock: the `uploading` row is an interrupted upload.
        assert_eq!(l3.in_flight, None);
        let interrupted = l3.interrupted.clone().expect("interrupted");
        assert_eq!((interrupted.path.as_str(), interrupted.bytes_done, interrupted.bytes_total), ("b.pt", 20, 50));
        assert!(interrupted.updated_ms > 0, "when the engine wrote it");
        {
            let _engine = crate::sync::lock::EngineLock::acquire(dir.path()).expect("lock");
            let s = read_status(dir.path(), &sync, &remotes, at(224)).expect("status");
            assert_eq!(s.levels[1].in_flight.as_ref().map(|f| f.bytes_done), Some(20), "uploading while locked");
            assert_eq!(s.levels[1].interrupted, None);
        }
        assert_eq!(l3.failures[0].reason, "quota exceeded. Fix: x");
        assert!(read_status(dir.path(), &sync, &remotes, at(226)).expect("s").levels[1].overdue);
        let json = serde_json::to_value(&s).expect("json");
        for key in [
            "remote",
            "pending_files",
            "pending_bytes",
            "last_success_unix",
            "last_pass_unix",
            "up_to_date_unix",
            "nothing_to_store",
            "same_disk",
            "overdue",
            "failed",
        ] {
            assert!(json["levels"][1].get(key).is_some(), "{key}");
        }
        assert_eq!(json["levels"][1]["in_flight"], serde_json::Value::Null);
        assert_eq!(json["levels"][1]["interrupted"]["bytes_done"], 20);
        assert_eq!(read_queue(dir.path(), Some("L3")).expect("q")[0].path, "b.pt");
    }

    #[test]
    fn the_reader_keeps_its_connection_filters_in_sqlite_and_follows_a_replaced_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut remotes = RemotesConfig::new();
        remotes.insert("hf".into(), RemoteConfig::Local { path: "/x".into(), same_disk: false });
        let sync = SyncConfig::default();
        let off = || EngineSource::Off { reason: "test".into() };
        let mut r = SampleReader::default();
        // No ledger yet: an empty queue, and none is created.
        let s = r.read(dir.path(), &sync, &remotes, off(), 0).expect("sample");
        assert!(s.queue.is_empty());
        assert!(!crate::sync::ledger::ledger_path(dir.path()).exists());

        let mut l = Ledger::open(dir.path()).expect("open");
        let t0 = 1_000_000_000;
        for i in 0..5 {
            l.track(&format!("done{i}.pt"), 10, i, "h", None, &[("L3", "hf")], t0).expect("t");
            l.set_confirmed(&format!("done{i}.pt"), "L3", "h", "id", "h", t0).expect("c");
        }
        l.track("new.pt", 10, 9, "n", None, &[("L3", "hf")], t0).expect("t");
        l.track("bad.pt", 10, 8, "b", None, &[("L3", "hf")], t0).expect("t");
        l.set_failed("bad.pt", "L3", "b", "quota exceeded", true, 0, t0).expect("f");
        let s = r.read(dir.path(), &sync, &remotes, off(), t0).expect("sample");
        let paths: Vec<&str> = s.queue.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["new.pt", "bad.pt"], "confirmed rows stay out of the queue");
        assert_eq!(s.status.levels[1].confirmed_files, 5);
        assert_eq!(s.status.levels[1].failures.len(), 1);

        // The same connection sees later writes.
        l.set_uploading("new.pt", "L3", "n", 4, None, t0).expect("u");
        let s = r.read(dir.path(), &sync, &remotes, off(), t0).expect("sample");
        assert_eq!(s.status.levels[1].interrupted.as_ref().map(|f| f.bytes_done), Some(4));
        drop(l);

        // A ledger replaced under it (restored from a backup) is opened again.
        let path = crate::sync::ledger::ledger_path(dir.path());
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let mut l = Ledger::open(dir.path()).expect("open again");
        l.track("other.pt", 10, 1, "o", None, &[("L3", "hf")], t0).expect("t");
        let s = r.read(dir.path(), &sync, &remotes, off(), t0).expect("sample");
        let paths: Vec<&str> = s.queue.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["other.pt"]);
        assert!(!s.status.levels[1].overdue);
        // Nothing committed since: the reading is reused, and the time still moves on.
        let later = r.read(dir.path(), &sync, &remotes, off(), t0 + 10 * 86_400_000).expect("sample");
        assert_eq!(later.queue, s.queue);
        assert!(later.status.levels[1].overdue, "overdue is computed for the new time");
    }

    #[test]
    fn nothing_waiting_is_never_overdue() {
        let c = LevelCounts { last_success_ms: Some(0), ..LevelCounts::default() };
        assert!(!is_overdue(&c, 90, i64::MAX / 2));
        let c = LevelCounts { pending_files: 1, last_success_ms: Some(0), ..c };
        assert!(is_overdue(&c, 90, 90 * 75_000 + 1));
        assert!(!is_overdue(&c, 90, 90 * 75_000));
    }
}

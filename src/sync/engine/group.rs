//! One commit per checkpoint, for remotes that store through commits (the Hub; see
//! [`Remote::commit_group`]). An upload job there only stages its object; the file then
//! waits here, out of the dispatch queue, until every file of its checkpoint that is routed
//! to the level is staged (or already confirmed) and nothing of it is still settling,
//! hashing or uploading. Then one commit task makes them all visible at once and confirms
//! each file only when the remote lists it afterwards with the ledger's size and SHA-256.
//! Nothing is persisted here: after a restart the remote says what it already holds (its
//! storage skips objects it has; its tree shows commits already made), so staging again
//! sends nothing and commits nothing twice.
//!
//! Kept apart from the coordinator on purpose: it calls in at a few marked places
//! (`[commit groups]`), and remotes without commits never reach this code.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Coordinator, JobDone, JobEnd, SyncError, backoff_delay, db, now_ms};
use crate::sync::ledger::{LedgerError, UploadState};
use crate::sync::remote::{ErrorKind, Remote, RemoteError, StagedFile, TransferCtx};
use crate::sync::watcher::stat_file;

/// A staged version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Staged {
    sha256: String,
    size: u64,
}

/// What a commit task did to each of its files (and a ledger write that failed for it).
pub(super) struct CommitDone {
    level: String,
    group: String,
    ends: Vec<(String, JobEnd, Option<LedgerError>)>,
}

/// Checkpoints waiting for their commit, and the commits running.
#[derive(Default)]
pub(super) struct Groups {
    /// (level, group) -> path -> staged version.
    staged: HashMap<(String, String), BTreeMap<String, Staged>>,
    /// (level, group) -> the paths its running commit covers.
    committing: HashMap<(String, String), Vec<String>>,
    pub(super) commits: JoinSet<CommitDone>,
    /// Staged files whose checkpoint cannot be committed now because a sibling failed:
    /// (level, path, sha256, reason, permanent, retry_in).
    released: Vec<(String, String, String, String, bool, Option<Duration>)>,
    cancel: CancellationToken,
}

impl Groups {
    /// Is this file staged or being committed (so not to be dispatched again)?
    pub(super) fn holds(&self, level: &str, path: &str) -> bool {
        self.staged.iter().any(|((l, _), files)| l == level && files.contains_key(path))
            || self.committing.iter().any(|((l, _), paths)| l == level && paths.iter().any(|p| p == path))
    }

    /// Anything staged or committing on this level (its pass is not over).
    pub(super) fn busy(&self, level: &str) -> bool {
        self.staged.keys().chain(self.committing.keys()).any(|(l, _)| l == level)
            || self.released.iter().any(|r| r.0 == level)
    }

    pub(super) fn idle(&self) -> bool {
        self.staged.is_empty() && self.committing.is_empty() && self.released.is_empty()
    }

    /// Stop running commits (shutdown); they end as interrupted.
    pub(super) fn stop(&self) {
        self.cancel.cancel();
    }

    fn stage(&mut self, level: &str, group: &str, path: &str, staged: Staged) {
        self.staged.entry((level.to_string(), group.to_string())).or_default().insert(path.to_string(), staged);
    }
}

fn under(group: &str, path: &str) -> bool {
    path == group || (path.starts_with(group) && path.as_bytes().get(group.len()) == Some(&b'/'))
}

/// Regular files at `abs` (a file, or every file below a folder), as (relative, size,
/// mtime_ns); links are not followed.
fn files_on_disk(ws: &Path, group: &str) -> Vec<(String, u64, i64)> {
    let mut out = Vec::new();
    let mut stack = vec![ws.join(group)];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if meta.is_file()
            && let Some(rel) = crate::sync::routing::relative_key(ws, &p)
            && let Some((size, mtime)) = stat_file(&p)
        {
            out.push((rel, size, mtime));
        }
    }
    out
}

impl Coordinator {
    /// `[commit groups]` A job staged its object: hold the file until its checkpoint is
    /// complete.
    pub(super) fn staged(&mut self, level: &str, path: &str, group: &str, sha256: String, size: u64) {
        self.groups.stage(level, group, path, Staged { sha256, size });
    }

    /// `[commit groups]` A file failed: staged siblings of its checkpoint cannot be
    /// committed now; they fail with it (and come back when it is retried).
    pub(super) fn group_member_failed(
        &mut self,
        level: &str,
        path: &str,
        reason: &str,
        permanent: bool,
        retry_in: Option<Duration>,
    ) {
        let Some(remote) = self.levels.iter().find(|l| l.name == level).and_then(|l| l.remote.clone()) else {
            return;
        };
        let Some(group) = remote.commit_group(path) else { return };
        let Some(files) = self.groups.staged.remove(&(level.to_string(), group)) else { return };
        for (p, s) in files {
            if p == path {
                continue;
            }
            let why = format!("not committed: {path} of the same checkpoint failed ({reason})");
            self.groups.released.push((level.to_string(), p, s.sha256, why, permanent, retry_in));
        }
    }

    /// `[commit groups]` Fail what failures released, then start a commit for every
    /// checkpoint whose files are all staged. Called from `dispatch`.
    pub(super) async fn start_ready_commits(&mut self) -> Result<(), SyncError> {
        let released = std::mem::take(&mut self.groups.released);
        for (level, path, sha, reason, permanent, retry_in) in released {
            let now = now_ms();
            let next = now + retry_in.map(|d| d.as_millis() as i64).unwrap_or(0);
            let (p, lv, r) = (path.clone(), level.clone(), reason.clone());
            let ledger_error =
                db(&self.ledger, move |l| l.set_failed(&p, &lv, &sha, &r, permanent, next, now)).await.err();
            let end = JobEnd::Failed { reason, permanent, retry_in };
            self.job_done(JobDone { path, level, end, ledger_error }).await?;
        }

        let waiting: Vec<(String, String)> =
            self.groups.staged.keys().filter(|k| !self.groups.committing.contains_key(*k)).cloned().collect();
        for (level, group) in waiting {
            if self.inflight.keys().any(|(p, l)| l == &level && under(&group, p))
                || self.hash_queue.iter().any(|r| under(&group, &r.path))
            {
                continue;
            }
            let ws = self.ws.clone();
            let g = group.clone();
            let on_disk = tokio::task::spawn_blocking(move || files_on_disk(&ws, &g)).await.unwrap_or_default();
            if on_disk.iter().any(|(p, _, _)| self.settler.is_watching(p)) {
                continue;
            }
            let routed: Vec<(String, u64, i64)> = on_disk
                .into_iter()
                .filter(|(p, size, _)| self.routes(p, *size).iter().any(|(l, _)| l == &level))
                .collect();
            let key = (level.clone(), group.clone());
            let staged = self.groups.staged.get(&key).cloned().unwrap_or_default();
            let lv = level.clone();
            let check = routed.clone();
            // Ready when every routed file of the checkpoint, as it is on disk now, is
            // hashed, and its row on this level is confirmed or staged with that version.
            let (ready, stale) = db(&self.ledger, move |l| {
                let mut stale = Vec::new();
                for (p, s) in &staged {
                    if l.entry(p, &lv)?.is_none_or(|e| e.sha256 != s.sha256 || e.state == UploadState::Confirmed) {
                        stale.push(p.clone());
                    }
                }
                for (p, size, mtime) in &check {
                    let Some(f) = l.file(p)? else { return Ok((false, stale)) };
                    if f.size != *size || f.mtime_ns != *mtime {
                        return Ok((false, stale));
                    }
                    let Some(e) = l.entry(p, &lv)? else { return Ok((false, stale)) };
                    if e.sha256 != f.sha256 {
                        return Ok((false, stale));
                    }
                    if e.state == UploadState::Confirmed {
                        continue;
                    }
                    if staged.get(p).is_none_or(|s| s.sha256 != e.sha256) {
                        return Ok((false, stale));
                    }
                }
                Ok((true, stale))
            })
            .await?;
            if let Some(files) = self.groups.staged.get_mut(&key) {
                for p in &stale {
                    files.remove(p);
                }
                // Staged files no longer on disk (deleted meanwhile) are not committed.
                files.retain(|p, _| routed.iter().any(|(r, _, _)| r == p));
                if files.is_empty() {
                    self.groups.staged.remove(&key);
                    continue;
                }
            }
            if ready {
                self.start_commit(level, group);
            }
        }
        Ok(())
    }

    fn start_commit(&mut self, level: String, group: String) {
        let key = (level.clone(), group.clone());
        let Some(files) = self.groups.staged.remove(&key) else { return };
        let Some(remote) = self.levels.iter().find(|l| l.name == level).and_then(|l| l.remote.clone()) else {
            return;
        };
        let staged: Vec<StagedFile> = files
            .iter()
            .map(|(p, s)| StagedFile {
                key: p.clone(),
                source: self.ws.join(p),
                size: s.size,
                sha256: s.sha256.clone(),
            })
            .collect();
        self.groups.committing.insert(key, files.keys().cloned().collect());
        let task = CommitTask {
            remote,
            ledger: self.ledger.clone(),
            level,
            group,
            files: staged,
            ctx: TransferCtx {
                cancel: self.groups.cancel.child_token(),
                limiter: None,
                bytes_done: Default::default(),
            },
            base: Duration::from_secs(self.sync.retry_base_seconds),
            max: Duration::from_secs(self.sync.retry_max_seconds),
        };
        self.groups.commits.spawn(task.run());
    }

    /// `[commit groups]` A commit task ended: report each of its files.
    pub(super) async fn commit_done(&mut self, done: CommitDone) -> Result<(), SyncError> {
        self.groups.committing.remove(&(done.level.clone(), done.group));
        for (path, end, ledger_error) in done.ends {
            self.job_done(JobDone { path, level: done.level.clone(), end, ledger_error }).await?;
        }
        Ok(())
    }
}

struct CommitTask {
    remote: Arc<dyn Remote>,
    ledger: Arc<std::sync::Mutex<crate::sync::ledger::Ledger>>,
    level: String,
    group: String,
    files: Vec<StagedFile>,
    ctx: TransferCtx,
    base: Duration,
    max: Duration,
}

impl CommitTask {
    async fn run(self) -> CommitDone {
        let result = self.remote.commit(&self.group, &self.files, &self.ctx).await;
        let mut ends = Vec::new();
        match result {
            Ok(listed) => {
                for f in &self.files {
                    let seen = listed.iter().find(|o| o.key == f.key);
                    let end = match seen {
                        Some(o) if o.size == f.size && o.sha256.as_deref() == Some(f.sha256.as_str()) => {
                            self.confirm(f, &o.id).await
                        }
                        _ => {
                            let what = match seen {
                                Some(o) => format!(
                                    "lists {} with {} bytes and checksum {}",
                                    f.key,
                                    o.size,
                                    o.sha256.as_deref().unwrap_or("none")
                                ),
                                None => format!("does not list {}", f.key),
                            };
                            let e = RemoteError::transient(format!(
                                "after the commit, remote '{}' {what}; it will be sent again",
                                self.remote.name()
                            ));
                            self.fail(f, &e).await
                        }
                    };
                    ends.push((f.key.clone(), end.0, end.1));
                }
            }
            Err(e) if e.kind == ErrorKind::Cancelled => {
                ends.extend(self.files.iter().map(|f| (f.key.clone(), JobEnd::Interrupted, None)));
            }
            Err(mut e) => {
                // A file gone or changed is found by its own job when it is tried again.
                if matches!(e.kind, ErrorKind::SourceGone | ErrorKind::SourceChanged) {
                    e.kind = ErrorKind::Transient;
                }
                for f in &self.files {
                    let (end, ledger_error) = self.fail(f, &e).await;
                    ends.push((f.key.clone(), end, ledger_error));
                }
            }
        }
        CommitDone { level: self.level, group: self.group, ends }
    }

    async fn confirm(&self, f: &StagedFile, id: &str) -> (JobEnd, Option<LedgerError>) {
        let (p, lv, sha, id) = (f.key.clone(), self.level.clone(), f.sha256.clone(), id.to_string());
        match db(&self.ledger, move |l| l.set_confirmed(&p, &lv, &sha, &id, &sha, now_ms())).await {
            Ok(_) => (JobEnd::Confirmed { already_there: false, bytes: f.size }, None),
            Err(e) => {
                let (end, _) = self.fail(f, &RemoteError::transient(e.to_string())).await;
                (end, Some(e))
            }
        }
    }

    /// Record the failure of `f`, with the backoff its attempts call for.
    async fn fail(&self, f: &StagedFile, err: &RemoteError) -> (JobEnd, Option<LedgerError>) {
        let (p, lv) = (f.key.clone(), self.level.clone());
        let attempts =
            db(&self.ledger, move |l| Ok(l.entry(&p, &lv)?.map(|e| e.attempts).unwrap_or(1))).await.unwrap_or(1).max(1);
        let permanent = err.is_permanent();
        let reason = err.reason();
        let retry_in =
            (!permanent).then(|| backoff_delay(attempts, self.base, self.max, err.retry_after, fastrand::f64()));
        let now = now_ms();
        let next = now + retry_in.map(|d| d.as_millis() as i64).unwrap_or(0);
        let (p, lv, sha, r) = (f.key.clone(), self.level.clone(), f.sha256.clone(), reason.clone());
        let ledger_error = db(&self.ledger, move |l| l.set_failed(&p, &lv, &sha, &r, permanent, next, now)).await.err();
        (JobEnd::Failed { reason, permanent, retry_in }, ledger_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_covers_its_folder_only() {
        assert!(under("out/checkpoint-5", "out/checkpoint-5/model.safetensors"));
        assert!(under("a.pt", "a.pt"));
        assert!(!under("out/checkpoint-5", "out/checkpoint-50/model.safetensors"));
    }

    #[test]
    fn held_files_are_known_by_level() {
        let mut g = Groups::default();
        g.stage("L3", "out/checkpoint-5", "out/checkpoint-5/a.bin", Staged { sha256: "x".into(), size: 1 });
        assert!(g.holds("L3", "out/checkpoint-5/a.bin"));
        assert!(!g.holds("L2", "out/checkpoint-5/a.bin"));
        assert!(g.busy("L3") && !g.busy("L2") && !g.idle());
    }
}

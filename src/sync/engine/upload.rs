//! One upload attempt of one file to one remote: check the source, store, confirm, and
//! record a failure with its retry time.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{SyncEvent, backoff_delay, db, now_ms};
use crate::sync::ledger::{Ledger, LedgerEntry, LedgerError};
use crate::sync::remote::{ErrorKind, Remote, RemoteError, TransferCtx, UploadRequest};
use crate::sync::routing::is_weights;
use crate::sync::watcher::stat_file;

pub(super) enum JobEnd {
    Confirmed {
        already_there: bool,
        bytes: u64,
    },
    /// [commit groups] The object is staged; the file waits for its checkpoint's commit.
    Staged {
        group: String,
    },
    Gone,
    Changed,
    Failed {
        reason: String,
        permanent: bool,
        retry_in: Option<Duration>,
    },
    Cancelled,
    Interrupted,
    /// Recognised as a secret just before the upload: nothing was sent.
    Withheld(crate::secrets::Finding, u64, i64),
}

pub(super) struct JobDone {
    pub(super) path: String,
    pub(super) level: String,
    pub(super) end: JobEnd,
    /// A ledger write the job needed failed (the attempt is not recorded).
    pub(super) ledger_error: Option<LedgerError>,
}

pub(super) struct Job {
    pub(super) ws: PathBuf,
    pub(super) entry: LedgerEntry,
    pub(super) remote: Arc<dyn Remote>,
    pub(super) ledger: Arc<Mutex<Ledger>>,
    pub(super) ctx: TransferCtx,
    pub(super) user_cancel: Arc<AtomicBool>,
    pub(super) events: mpsc::UnboundedSender<SyncEvent>,
    pub(super) base: Duration,
    pub(super) max: Duration,
    /// The first ledger write of this attempt that failed.
    pub(super) ledger_error: Mutex<Option<LedgerError>>,
}

impl Job {
    pub(super) async fn run(self) -> JobDone {
        let end = self.attempt().await;
        let ledger_error = self.ledger_error.lock().unwrap_or_else(|p| p.into_inner()).take();
        JobDone { path: self.entry.path.clone(), level: self.entry.level.clone(), end, ledger_error }
    }

    fn note_ledger_error(&self, e: &LedgerError) {
        let mut slot = self.ledger_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e.duplicate());
        }
    }

    async fn attempt(&self) -> JobEnd {
        let e = &self.entry;
        let src = self.ws.join(&e.path);
        match stat_file(&src) {
            None => return JobEnd::Gone,
            Some((size, mtime)) => {
                let same = (size, mtime) == (e.bytes_total, e.mtime_ns);
                let grown = !is_weights(&e.path) && size >= e.bytes_total;
                if !same && !grown {
                    return JobEnd::Changed;
                }
                // The last gate before anything leaves the machine: name and contents.
                let (ws, rel) = (self.ws.clone(), e.path.clone());
                let scan = move || {
                    if is_weights(&rel) {
                        crate::secrets::scan_in(&ws, &rel)
                    } else {
                        crate::secrets::scan_whole_in(&ws, &rel)
                    }
                };
                if let Ok(Some(finding)) = tokio::task::spawn_blocking(scan).await {
                    return JobEnd::Withheld(finding, size, mtime);
                }
            }
        }
        match self.store(&src).await {
            Ok(end) => end,
            Err(err) => self.fail(err).await,
        }
    }

    async fn store(&self, src: &Path) -> Result<JobEnd, RemoteError> {
        let e = &self.entry;
        let ledger_err = |le: LedgerError| {
            self.note_ledger_error(&le);
            RemoteError::transient(le.to_string())
        };
        // Already stored (a run killed after the upload but before the ledger said so, or
        // a copy queued again that is in fact there)?
        if let Some(obj) = self.remote.stat(&e.path).await?
            && crate::sync::verify::matches(&obj, e).is_ok()
        {
            self.confirm(&obj).await.map_err(ledger_err)?;
            return Ok(JobEnd::Confirmed { already_there: true, bytes: e.bytes_total });
        }
        let resume = self.remote.resume_point(&e.path, &e.sha256, e.session.as_deref()).await?;
        let (p, lv, sha, off, sess) =
            (e.path.clone(), e.level.clone(), e.sha256.clone(), resume.offset, resume.session.clone());
        db(&self.ledger, move |l| l.set_uploading(&p, &lv, &sha, off, sess.as_deref(), now_ms()))
            .await
            .map_err(ledger_err)?;
        self.ctx.bytes_done.store(resume.offset, Ordering::Relaxed);
        let _ = self.events.send(SyncEvent::Started {
            level: e.level.clone(),
            path: e.path.clone(),
            offset: resume.offset,
            bytes_total: e.bytes_total,
        });
        let req = UploadRequest {
            key: &e.path,
            source: src,
            size: e.bytes_total,
            sha256: &e.sha256,
            md5: e.md5.as_deref(),
            resume,
        };
        let receipt = self.remote.upload(req, &self.ctx).await?;
        // [commit groups] Staged, not yet visible: confirmed after its checkpoint's commit.
        if let Some(group) = self.remote.commit_group(&e.path) {
            return Ok(JobEnd::Staged { group });
        }
        // Verify: size and every checksum as the remote reports them.
        let obj = self.remote.stat(&e.path).await?;
        if let Err(why) = crate::sync::verify::check(obj.as_ref(), e) {
            let _ = self.remote.delete(&e.path).await;
            return Err(RemoteError::transient(format!(
                "the copy on remote '{}' did not match after upload ({why}); it will be sent again",
                self.remote.name()
            )));
        }
        let mut obj = obj.unwrap_or_else(|| crate::sync::remote::RemoteObject {
            key: e.path.clone(),
            id: receipt.remote_id.clone(),
            size: e.bytes_total,
            sha256: None,
            md5: None,
            modified_ms: None,
        });
        if obj.id.is_empty() {
            obj.id = receipt.remote_id;
        }
        self.confirm(&obj).await.map_err(ledger_err)?;
        Ok(JobEnd::Confirmed { already_there: false, bytes: e.bytes_total })
    }

    /// Record the copy as confirmed, with the remote's own id and checksum of it (SHA-256
    /// where the remote reports one, else its MD5).
    async fn confirm(&self, obj: &crate::sync::remote::RemoteObject) -> Result<(), LedgerError> {
        let e = &self.entry;
        // The remote's own checksum of the stored copy: Drive's md5Checksum, else the SHA-256
        // a local remote reads back or the Hub's LFS oid.
        let checksum = obj.md5.clone().or_else(|| obj.sha256.clone()).unwrap_or_default();
        let (p, lv, sha, id) = (e.path.clone(), e.level.clone(), e.sha256.clone(), obj.id.clone());
        db(&self.ledger, move |l| l.set_confirmed(&p, &lv, &sha, &id, &checksum, now_ms()).map(|_| ())).await
    }

    async fn fail(&self, err: RemoteError) -> JobEnd {
        let e = &self.entry;
        match err.kind {
            ErrorKind::SourceGone => return JobEnd::Gone,
            ErrorKind::SourceChanged => return JobEnd::Changed,
            ErrorKind::Cancelled if !self.user_cancel.load(Ordering::Relaxed) => {
                return JobEnd::Interrupted;
            }
            _ => {}
        }
        let now = now_ms();
        let user_cancel = err.kind == ErrorKind::Cancelled;
        let permanent = err.is_permanent() || user_cancel;
        let reason = if user_cancel {
            "cancelled by you; retry failed uploads to queue it again".to_string()
        } else {
            err.reason()
        };
        let attempts = e.attempts + 1;
        let retry_in =
            (!permanent).then(|| backoff_delay(attempts, self.base, self.max, err.retry_after, fastrand::f64()));
        let next = now + retry_in.map(|d| d.as_millis() as i64).unwrap_or(0);
        let (p, lv, sha, r) = (e.path.clone(), e.level.clone(), e.sha256.clone(), reason.clone());
        if let Err(e) = db(&self.ledger, move |l| l.set_failed(&p, &lv, &sha, &r, permanent, next, now)).await {
            self.note_ledger_error(&e);
        }
        if user_cancel { JobEnd::Cancelled } else { JobEnd::Failed { reason, permanent, retry_in } }
    }
}

//! The `Remote` trait every level stores through, its errors (transient or permanent, in
//! plain words with the fix), and the transfer context (cancel, bandwidth cap, progress).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// A boxed future, so `Remote` can be used as `dyn Remote`.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What kind of failure: decides whether the engine retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Network hiccup, 5xx, 429, I/O error: retried with backoff.
    Transient,
    /// Credentials or permissions: permanent.
    Auth,
    /// Quota exceeded: permanent.
    Quota,
    /// The remote place (folder, repo, drive) does not exist: permanent.
    NotFound,
    /// The destination is full: permanent until space returns and the user retries.
    NoSpace,
    /// The source file vanished: the upload is dropped.
    SourceGone,
    /// The source changed while it was read: it is hashed and queued again.
    SourceChanged,
    /// Cancelled by the user or by shutdown.
    Cancelled,
}

/// A remote failure: what happened, in words, and what to do about it. Never carries a
/// secret. Shown as its [`reason`](Self::reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub struct RemoteError {
    pub kind: ErrorKind,
    pub message: String,
    pub fix: Option<String>,
    /// The remote asked to wait this long (Retry-After).
    pub retry_after: Option<Duration>,
}

impl RemoteError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), fix: None, retry_after: None }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn with_retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    /// Retrying will not help until something is changed.
    pub fn is_permanent(&self) -> bool {
        matches!(self.kind, ErrorKind::Auth | ErrorKind::Quota | ErrorKind::NotFound | ErrorKind::NoSpace)
    }

    /// "message. Fix: ..." for a status line.
    pub fn reason(&self) -> String {
        match &self.fix {
            // "… not mounted? Fix: …", not "not mounted?. Fix".
            Some(fix) if self.message.ends_with(['?', '.', '!']) => format!("{} Fix: {fix}", self.message),
            Some(fix) => format!("{}. Fix: {fix}", self.message),
            None => self.message.clone(),
        }
    }

    /// Classify an I/O error met while writing to the remote at `place`.
    pub fn from_io(e: &std::io::Error, remote: &str, place: &Path) -> Self {
        let place = place.display();
        use rustix::io::Errno;
        match Errno::from_io_error(e) {
            Some(Errno::NOSPC | Errno::DQUOT) => {
                Self::new(ErrorKind::NoSpace, format!("no space left on remote '{remote}' ({place})")).with_fix(
                    "free space there or point the remote at a larger disk, then retry failed \
                 uploads (R, or restart the sync)",
                )
            }
            Some(Errno::ACCESS | Errno::PERM) => {
                Self::new(ErrorKind::Auth, format!("permission denied writing to remote '{remote}' ({place})"))
                    .with_fix("make the folder writable by this user, then retry failed uploads")
            }
            Some(Errno::ROFS) => {
                Self::new(ErrorKind::Auth, format!("remote '{remote}' ({place}) is on a read-only filesystem"))
                    .with_fix("remount it read-write or choose another path, then retry")
            }
            Some(Errno::NOENT | Errno::NOTDIR) => {
                Self::new(ErrorKind::NotFound, format!("the folder of remote '{remote}' ({place}) is missing"))
                    .with_fix("mount the drive or correct the remote's path, then retry")
            }
            _ => Self::transient(format!("I/O error on remote '{remote}' ({place}): {e}")),
        }
    }
}

/// An object as the remote reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteObject {
    /// The key (workspace-relative path) it is stored under.
    pub key: String,
    /// The remote's own id (a Drive file id, a Hub path, a local path).
    pub id: String,
    pub size: u64,
    /// Hex SHA-256 when the remote reports one.
    pub sha256: Option<String>,
    /// Hex MD5 when the remote reports one (Drive's `md5Checksum`).
    pub md5: Option<String>,
    /// When it was last modified (milliseconds since the Unix epoch), when the remote
    /// says: a local remote's mtime, Drive's `modifiedTime`; the Hub's tree does not.
    pub modified_ms: Option<i64>,
}

/// Where an upload of one version starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// Bytes the remote already holds of this version.
    pub offset: u64,
    /// Session data to keep in the ledger for a later resume.
    pub session: Option<String>,
}

/// One upload: a local file, stored under `key`.
#[derive(Debug, Clone)]
pub struct UploadRequest<'a> {
    pub key: &'a str,
    pub source: &'a Path,
    pub size: u64,
    /// Hex SHA-256 of the version being stored.
    pub sha256: &'a str,
    /// Hex MD5 of the same bytes, when the hash pass computed it (Drive confirms a copy by
    /// its `md5Checksum`); `None` when unknown.
    pub md5: Option<&'a str>,
    /// From [`Remote::resume_point`].
    pub resume: ResumePoint,
}

/// One step of `opsconsole remote check`: what was tried, whether it worked, what was
/// seen, and what to do when it did not. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckStep {
    /// What the step does ("root exists", "token", "probe file round-trips").
    pub name: String,
    pub ok: bool,
    /// What was found ("/mnt/backup, ext4, 41 GB free"; "in Shared Drive 'Team'").
    pub detail: String,
    /// The fix, when the step failed.
    pub fix: Option<String>,
}

impl CheckStep {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { name: name.into(), ok: true, detail: detail.into(), fix: None }
    }

    pub fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { name: name.into(), ok: false, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// A file whose object a committing remote holds but does not show yet: it becomes
/// visible, with its siblings, in one [`Remote::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    /// The workspace-relative key.
    pub key: String,
    /// The local file (read again only for small files the remote stores inline).
    pub source: std::path::PathBuf,
    pub size: u64,
    /// Hex SHA-256 of the version staged.
    pub sha256: String,
}

/// What a finished upload returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReceipt {
    pub remote_id: String,
}

/// A token bucket shared by all transfers of an engine.
#[derive(Debug)]
pub struct RateLimiter {
    bytes_per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(bytes_per_sec: u64) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        Self { bytes_per_sec: rate, state: Mutex::new((rate, Instant::now())) }
    }

    /// How long to wait before `n` more bytes may go, taking them from the bucket.
    pub fn reserve(&self, n: u64) -> Duration {
        let mut st = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        let (tokens, last) = *st;
        let refilled = (tokens + now.duration_since(last).as_secs_f64() * self.bytes_per_sec).min(self.bytes_per_sec);
        let left = refilled - n as f64;
        *st = (left, now);
        if left >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-left / self.bytes_per_sec) }
    }
}

/// Handed to a transfer: cancellation, the bandwidth cap, and a progress counter the
/// engine reads (so the transfer itself never waits on a channel).
#[derive(Debug, Default, Clone)]
pub struct TransferCtx {
    pub cancel: CancellationToken,
    pub limiter: Option<std::sync::Arc<RateLimiter>>,
    /// Bytes of the object the remote holds so far.
    pub bytes_done: std::sync::Arc<AtomicU64>,
}

impl TransferCtx {
    /// For blocking transfer loops: note progress, honour the cap, stop when cancelled.
    pub fn advance_blocking(&self, bytes_done: u64, delta: u64) -> Result<(), RemoteError> {
        self.bytes_done.store(bytes_done, Ordering::Relaxed);
        if let Some(l) = &self.limiter {
            let wait = l.reserve(delta);
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
        self.check_cancel()
    }

    /// For async transfer loops: as [`TransferCtx::advance_blocking`].
    pub async fn advance(&self, bytes_done: u64, delta: u64) -> Result<(), RemoteError> {
        self.bytes_done.store(bytes_done, Ordering::Relaxed);
        if let Some(l) = &self.limiter {
            let wait = l.reserve(delta);
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.cancel.cancelled() => {}
                }
            }
        }
        self.check_cancel()
    }

    fn check_cancel(&self) -> Result<(), RemoteError> {
        if self.cancel.is_cancelled() { Err(RemoteError::new(ErrorKind::Cancelled, "cancelled")) } else { Ok(()) }
    }
}

/// Where a level stores files. Keys are workspace-relative paths with `/` separators.
pub trait Remote: Send + Sync {
    /// The `[remotes.NAME]` name.
    fn name(&self) -> &str;

    /// A short description for status lines ("local /mnt/backup").
    fn describe(&self) -> String;

    /// The folder a local remote stores into (so a folder inside the workspace is never
    /// synced into itself); `None` for network remotes.
    fn local_root(&self) -> Option<&Path> {
        None
    }

    /// Where an upload of this version can start: an unfinished upload of the same
    /// version (known by `session`) resumes; anything else starts at 0.
    fn resume_point<'a>(
        &'a self,
        key: &'a str,
        sha256: &'a str,
        session: Option<&'a str>,
    ) -> BoxFut<'a, Result<ResumePoint, RemoteError>>;

    /// Store the source under `key`, from `req.resume.offset` on.
    fn upload<'a>(
        &'a self,
        req: UploadRequest<'a>,
        ctx: &'a TransferCtx,
    ) -> BoxFut<'a, Result<UploadReceipt, RemoteError>>;

    /// The stored object, with size and checksum as the remote reports them.
    fn stat<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Option<RemoteObject>, RemoteError>>;

    /// Every stored object whose key starts with `prefix` (checksums may be omitted).
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Result<Vec<RemoteObject>, RemoteError>>;

    /// Fetch `key` into `dest`, resuming a partial download left at `dest` + `.part`;
    /// the finished file is renamed into place. Returns its size.
    fn download<'a>(
        &'a self,
        key: &'a str,
        dest: &'a Path,
        ctx: &'a TransferCtx,
    ) -> BoxFut<'a, Result<u64, RemoteError>>;

    /// Remove `key` (no error when it is absent).
    fn delete<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<(), RemoteError>>;

    /// For a remote that stores a whole checkpoint as one commit (the Hub): the group
    /// `key` belongs to (a `checkpoint-N/` folder, or the file itself). When this is
    /// `Some`, [`Remote::upload`] only stages the object, and the engine calls
    /// [`Remote::commit`] once every file of the group is staged. `None` (the default):
    /// each upload is visible on its own.
    fn commit_group(&self, _key: &str) -> Option<String> {
        None
    }

    /// Make the staged `files` of `group` visible in one commit, and return them as the
    /// remote lists them afterwards (size and checksum), so the caller can verify each.
    fn commit<'a>(
        &'a self,
        _group: &'a str,
        _files: &'a [StagedFile],
        _ctx: &'a TransferCtx,
    ) -> BoxFut<'a, Result<Vec<RemoteObject>, RemoteError>> {
        Box::pin(async move {
            Err(RemoteError::new(ErrorKind::NotFound, format!("remote '{}' has no commits", self.name())))
        })
    }

    /// Throw away an unfinished upload of `key` (its source is gone, so it will never be
    /// resumed); a stored copy of `key` is left alone. No error when there is none.
    fn discard_partial<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<(), RemoteError>> {
        let _ = key;
        Box::pin(async { Ok(()) })
    }

    /// `opsconsole remote check`: every step needed to store and read back a file here
    /// (credentials, the place itself, a probe file written, read back and deleted), in
    /// order; a step that fails ends the list.
    fn check<'a>(&'a self) -> BoxFut<'a, Vec<CheckStep>>;

    /// `opsconsole remote check --init`: set the place up for this workspace (a local
    /// remote creates its root inside an existing folder and writes its identity marker;
    /// a Hub remote would create its repo, private). Returns the steps taken, in order; a
    /// step that fails ends the list. The default has nothing to set up.
    fn init<'a>(&'a self) -> BoxFut<'a, Vec<CheckStep>> {
        Box::pin(async { Vec::new() })
    }

    /// A place the engine's hash pass writes the file into as it reads it (a local remote:
    /// its partial copy of `key`, `size` bytes), so the upload that follows has nothing
    /// left to read: [`Remote::resume_point`] then starts at the end, and the upload only
    /// puts the copy in place. `None` (the default) when this remote takes no such copy.
    /// Called on a blocking thread.
    fn stage_sink(&self, key: &str, size: u64) -> Option<Box<dyn super::hash::StageSink>> {
        let _ = (key, size);
        None
    }

    /// This remote confirms a stored copy by the MD5 of its bytes (Drive's `md5Checksum`),
    /// so the engine's hash pass takes the MD5 of files routed here as well as their
    /// SHA-256 ([`UploadRequest::md5`]). The default, `false`, spares every other file the
    /// MD5 (it costs about three times the SHA-256): local and Hub copies are verified by
    /// SHA-256 alone.
    fn wants_md5(&self) -> bool {
        false
    }

    /// Stored on the same filesystem as what it protects, allowed by `same_disk = true`:
    /// the level is shown as "same disk: not a backup".
    fn same_disk(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_become_plain_reasons() {
        let p = Path::new("/mnt/b");
        let e =
            RemoteError::from_io(&std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error()), "bk", p);
        assert_eq!(e.kind, ErrorKind::NoSpace);
        assert!(e.is_permanent());
        assert!(e.reason().contains("no space left on remote 'bk' (/mnt/b). Fix: free space"));
        let e = RemoteError::from_io(&std::io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error()), "bk", p);
        assert!(!e.is_permanent());
    }

    #[test]
    fn limiter_charges_beyond_the_burst() {
        let l = RateLimiter::new(1000);
        assert_eq!(l.reserve(1000), Duration::ZERO);
        let wait = l.reserve(500);
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
    }
}

//! `DriveRemote`: a level stored in a Google Drive folder.
//!
//! Layout: a key `experiments/v68/logs/train.log` is the file `train.log` in the folder
//! `experiments/v68/logs` under `folder_id`; folders are made on demand, found again by name
//! and cached. A key already on Drive gets a new revision, never a second file.
//!
//! Upload: [`Remote::resume_point`] opens a resumable session (or asks the one kept in the
//! ledger where it stands), so the session URI is in the ledger before any byte is sent;
//! [`Remote::upload`] sends `chunk_mib` chunks from there. A broken connection, a 5xx or a
//! short rate limit is retried inside the upload from where Drive says it stands (at most the
//! chunk in flight is sent again); longer waits go back to the engine with their
//! Retry-After. The result is confirmed by Drive's `md5Checksum` and size against the MD5 of
//! exactly the bytes sent (the engine's, or one computed while sending), and then stamped:
//! `appProperties.opsconsole_sha256` and `opsconsole_md5`. `stat` trusts the SHA-256 only
//! while Drive's `md5Checksum` still equals the stamped MD5.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::api::{Api, Ctx, DriveFile, FILE_FIELDS, PROP_MD5, PROP_SHA256, SessionState, Target, Who, canonical};
use super::auth::{KeyLookup, Tokens, load_key};
use crate::sync::hash::hex;
use crate::sync::remote::{
    BoxFut, CheckStep, ErrorKind, Remote, RemoteError, RemoteObject, ResumePoint, TransferCtx, UploadReceipt,
    UploadRequest,
};

/// Failures in a row (without progress) an upload retries by itself before it hands the
/// error to the engine.
const QUICK_RETRIES: u32 = 4;
/// The longest wait an upload sits out by itself; longer ones go back to the engine (which
/// shows "retrying in ...").
const QUICK_WAIT_MAX: Duration = Duration::from_secs(10);
const MIB: f64 = 1024.0 * 1024.0;

/// A Drive remote's settings, resolved from its `[remotes.NAME]` section.
#[derive(Debug, Clone)]
pub struct DriveSettings {
    pub folder_id: String,
    pub key: KeyLookup,
    pub scope: String,
    /// Chunk size in bytes (a multiple of 256 KiB).
    pub chunk: u64,
    pub endpoint: String,
    pub subject: Option<String>,
}

impl DriveSettings {
    /// From a `kind = "drive"` section's values, with this process's environment for the
    /// key lookup.
    pub fn new(
        folder_id: &str,
        key_file: Option<&Path>,
        scope: &str,
        chunk_mib: f64,
        endpoint: &str,
        workspace: &Path,
    ) -> Self {
        Self {
            folder_id: folder_id.to_string(),
            key: KeyLookup::from_env(key_file.map(Path::to_path_buf), workspace),
            scope: scope.to_string(),
            chunk: chunk_bytes(chunk_mib),
            endpoint: endpoint.to_string(),
            subject: None,
        }
    }

    /// Act as this user (domain-wide delegation).
    pub fn acting_as(mut self, subject: Option<&str>) -> Self {
        self.subject = subject.map(str::to_string);
        self
    }
}

/// `chunk_mib` in bytes, rounded down to 256 KiB (at least one such unit).
pub fn chunk_bytes(chunk_mib: f64) -> u64 {
    let unit = 256 * 1024;
    let b = (chunk_mib.max(0.0) * MIB) as u64;
    (b / unit).max(1) * unit
}

/// What is kept in the ledger for a resumable upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Session {
    /// The session URI Drive handed out.
    uri: String,
    /// The version it uploads.
    sha256: String,
}

impl Session {
    fn parse(s: &str) -> Option<Self> {
        serde_json::from_str(s).ok()
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// MD5 and SHA-256 of the bytes sent so far.
struct Hashes {
    md5: Md5,
    sha: Sha256,
    len: u64,
}

impl Hashes {
    fn new() -> Self {
        Self { md5: Md5::new(), sha: Sha256::new(), len: 0 }
    }

    fn update(&mut self, b: &[u8]) {
        self.md5.update(b);
        self.sha.update(b);
        self.len += b.len() as u64;
    }
}

/// MD5 and SHA-256 of the bytes Drive holds, kept up in order on a worker thread while the
/// next chunk is sent.
struct Running {
    ready: Option<Hashes>,
    pending: Option<tokio::task::JoinHandle<Hashes>>,
    /// Bytes fed so far (hashed or being hashed).
    len: u64,
}

impl Running {
    fn new(h: Hashes) -> Self {
        let len = h.len;
        Self { ready: Some(h), pending: None, len }
    }

    /// The hashes of everything fed, once the worker is done.
    async fn get(&mut self) -> Result<Hashes, RemoteError> {
        if let Some(p) = self.pending.take() {
            return p.await.map_err(spawn_err);
        }
        self.ready.take().ok_or_else(|| RemoteError::transient("checksum state lost"))
    }

    /// Hash `b` after what came before, without waiting for it.
    async fn feed(&mut self, b: bytes::Bytes) -> Result<(), RemoteError> {
        let mut h = self.get().await?;
        self.len += b.len() as u64;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            h.update(&b);
            h
        }));
        Ok(())
    }
}

/// A remote that is a Google Drive folder.
pub struct DriveRemote {
    name: String,
    s: DriveSettings,
    api: tokio::sync::Mutex<Option<Arc<Api>>>,
    /// Workspace-relative folder path -> Drive folder id.
    folders: Mutex<HashMap<String, String>>,
    /// One folder creation at a time in this process.
    mkdir: tokio::sync::Mutex<()>,
    warned: AtomicBool,
}

impl std::fmt::Debug for DriveRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveRemote").field("name", &self.name).field("folder_id", &self.s.folder_id).finish()
    }
}

fn spawn_err(e: tokio::task::JoinError) -> RemoteError {
    RemoteError::transient(format!("worker stopped: {e}"))
}

fn source_err(e: &io::Error, source: &Path) -> RemoteError {
    if e.kind() == io::ErrorKind::NotFound {
        RemoteError::new(ErrorKind::SourceGone, format!("{} was deleted before it was stored", source.display()))
    } else {
        RemoteError::transient(format!("reading {}: {e}", source.display()))
    }
}

fn changed(source: &Path) -> RemoteError {
    RemoteError::new(ErrorKind::SourceChanged, format!("{} changed while it was being stored", source.display()))
}

/// Split a key into its folders and file name; refuse what is not a plain relative path.
fn split_key(key: &str) -> Result<(Vec<&str>, &str), RemoteError> {
    let parts: Vec<&str> = key.split('/').collect();
    let ok = !key.is_empty() && parts.iter().all(|p| !p.is_empty() && *p != "." && *p != "..");
    match parts.split_last() {
        Some((name, dirs)) if ok => Ok((dirs.to_vec(), name)),
        _ => Err(RemoteError::new(ErrorKind::NotFound, format!("'{key}' is not a valid name to store"))),
    }
}

/// Read exactly `n` bytes at `off` (fewer means the file shrank).
async fn read_at(file: Arc<File>, off: u64, n: usize, source: PathBuf) -> Result<Vec<u8>, RemoteError> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match file.read_at(&mut buf[got..], off + got as u64) {
                Ok(0) => return Err(changed(&source)),
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(source_err(&e, &source)),
            }
        }
        Ok(buf)
    })
    .await
    .map_err(spawn_err)?
}

/// Hash `len` bytes of a file from the start (after a resume: what was sent before).
async fn hash_prefix(file: Arc<File>, len: u64, source: PathBuf) -> Result<Hashes, RemoteError> {
    tokio::task::spawn_blocking(move || {
        let mut h = Hashes::new();
        let mut buf = vec![0u8; 1 << 20];
        while h.len < len {
            let want = (len - h.len).min(buf.len() as u64) as usize;
            match file.read_at(&mut buf[..want], h.len) {
                Ok(0) => return Err(changed(&source)),
                Ok(k) => h.update(&buf[..k]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(source_err(&e, &source)),
            }
        }
        Ok(h)
    })
    .await
    .map_err(spawn_err)?
}

/// A verification failed: the stored revision's `appProperties` no longer claim a version,
/// so nothing trusts it and a session that produced it is not resumed.
async fn mark_spent(api: &Api, id: &str, ctx: Ctx<'_>) {
    let null = serde_json::json!({ PROP_SHA256: null, PROP_MD5: null });
    let _ = api.patch_meta(id, Some(null), None, ctx).await;
}

/// Wait, unless cancelled.
async fn pause(ctx: &TransferCtx, d: Duration) -> Result<(), RemoteError> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = ctx.cancel.cancelled() => Err(RemoteError::new(ErrorKind::Cancelled, "cancelled")),
    }
}

/// Run `fut` unless cancelled first.
async fn cancellable<T>(
    ctx: &TransferCtx,
    fut: impl std::future::Future<Output = Result<T, RemoteError>>,
) -> Result<T, RemoteError> {
    tokio::select! {
        r = fut => r,
        _ = ctx.cancel.cancelled() => Err(RemoteError::new(ErrorKind::Cancelled, "cancelled")),
    }
}

impl DriveRemote {
    pub fn new(name: impl Into<String>, settings: DriveSettings) -> Self {
        Self {
            name: name.into(),
            s: settings,
            api: tokio::sync::Mutex::new(None),
            folders: Mutex::new(HashMap::new()),
            mkdir: tokio::sync::Mutex::new(()),
            warned: AtomicBool::new(false),
        }
    }

    pub fn settings(&self) -> &DriveSettings {
        &self.s
    }

    /// The API client, set up on first use: key found and checked, token flow ready.
    async fn api(&self) -> Result<Arc<Api>, RemoteError> {
        let mut g = self.api.lock().await;
        if let Some(a) = g.as_ref() {
            return Ok(a.clone());
        }
        let lookup = self.s.key.clone();
        let name = self.name.clone();
        let key = tokio::task::spawn_blocking(move || load_key(&lookup, &name)).await.map_err(spawn_err)??;
        if !self.warned.swap(true, Ordering::Relaxed) {
            for w in &key.warnings {
                tracing::warn!(remote = %self.name, "{w}");
            }
        }
        let tokens = Tokens::new(&key, &self.s.scope, self.s.subject.as_deref(), &self.name).await?;
        let who = Who {
            remote: self.name.clone(),
            folder_id: self.s.folder_id.clone(),
            client_email: key.client_email.clone(),
            scope: self.s.scope.clone(),
            subject: self.s.subject.clone(),
        };
        let api = Arc::new(Api::new(&self.s.endpoint, tokens, who)?);
        *g = Some(api.clone());
        Ok(api)
    }

    /// After a credentials failure the key is read again next time (the user may fix it).
    async fn settle<T>(&self, r: Result<T, RemoteError>) -> Result<T, RemoteError> {
        if let Err(e) = &r
            && e.kind == ErrorKind::Auth
        {
            *self.api.lock().await = None;
        }
        r
    }

    fn cached_folder(&self, path: &str) -> Option<String> {
        self.folders.lock().unwrap_or_else(|p| p.into_inner()).get(path).cloned()
    }

    fn cache_folder(&self, path: &str, id: &str) {
        self.folders.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_string(), id.to_string());
    }

    fn forget_folders(&self) {
        self.folders.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The Drive folder for `dirs` under `folder_id`: found by name (cached), created when
    /// `create` (else `None` when missing).
    async fn folder(&self, api: &Api, dirs: &[&str], create: bool) -> Result<Option<String>, RemoteError> {
        let mut parent = self.s.folder_id.clone();
        let mut path = String::new();
        for d in dirs {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(d);
            if let Some(id) = self.cached_folder(&path) {
                parent = id;
                continue;
            }
            let ctx = if parent == self.s.folder_id { Ctx::Folder } else { Ctx::File(&path) };
            let found = canonical(api.named(&parent, d, true, ctx).await?);
            let id = match found {
                Some(f) => f.id,
                None if !create => return Ok(None),
                None => self.make_folder(api, &parent, d, ctx).await?,
            };
            self.cache_folder(&path, &id);
            parent = id;
        }
        Ok(Some(parent))
    }

    /// Create a folder once: looked for again under the lock (another upload here may have
    /// made it), and after creating, the oldest of same-named folders wins (another process
    /// may have made one at the same moment); a losing copy of our own is trashed.
    async fn make_folder(&self, api: &Api, parent: &str, name: &str, ctx: Ctx<'_>) -> Result<String, RemoteError> {
        let _one = self.mkdir.lock().await;
        if let Some(f) = canonical(api.named(parent, name, true, ctx).await?) {
            return Ok(f.id);
        }
        let mine = api.create_folder(parent, name, ctx).await?;
        match canonical(api.named(parent, name, true, ctx).await?) {
            Some(winner) if winner.id != mine.id => {
                let _ = api.patch_meta(&mine.id, None, Some(true), ctx).await;
                Ok(winner.id)
            }
            _ => Ok(mine.id),
        }
    }

    /// The stored file for a key (the oldest of same-named files), if any.
    async fn find(&self, api: &Api, key: &str) -> Result<Option<DriveFile>, RemoteError> {
        let (dirs, name) = split_key(key)?;
        let Some(parent) = self.folder(api, &dirs, false).await? else { return Ok(None) };
        let ctx = if dirs.is_empty() { Ctx::Folder } else { Ctx::File(key) };
        match api.named(&parent, name, false, ctx).await {
            Ok(v) => Ok(canonical(v)),
            Err(e) if e.kind == ErrorKind::NotFound && !dirs.is_empty() => {
                // A cached folder deleted behind our back.
                self.forget_folders();
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn object(key: &str, f: &DriveFile) -> RemoteObject {
        RemoteObject {
            key: key.to_string(),
            id: f.id.clone(),
            size: f.size(),
            sha256: f.trusted_sha256(),
            md5: f.md5_checksum.clone(),
            modified_ms: f.modified_time.as_deref().and_then(super::api::parse_rfc3339_ms),
        }
    }

    /// A new resumable session for `key`: an update of the stored file, else a new file in
    /// its folder (created on demand). A folder id cached from before that no longer exists
    /// is looked up again once.
    async fn new_session(&self, api: &Api, key: &str, sha256: &str) -> Result<String, RemoteError> {
        for attempt in 0..2 {
            let r = async {
                let existing = self.find(api, key).await?;
                let (dirs, name) = split_key(key)?;
                match existing {
                    Some(f) => api.start_session(Target::Update { id: &f.id }, sha256, Ctx::Upload(key)).await,
                    None => {
                        let parent = self.folder(api, &dirs, true).await?.unwrap_or_default();
                        let ctx = if dirs.is_empty() { Ctx::Folder } else { Ctx::Upload(key) };
                        api.start_session(Target::Create { parent: &parent, name }, sha256, ctx).await
                    }
                }
            }
            .await;
            match r {
                Err(e) if e.kind == ErrorKind::NotFound && attempt == 0 && !self.folders_empty() => {
                    self.forget_folders();
                }
                r => return r,
            }
        }
        Err(RemoteError::transient("the upload could not be started"))
    }

    fn folders_empty(&self) -> bool {
        self.folders.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    async fn resume_inner(&self, key: &str, sha256: &str, session: Option<&str>) -> Result<ResumePoint, RemoteError> {
        let api = self.api().await?;
        if let Some(s) = session.and_then(Session::parse).filter(|s| s.sha256 == sha256) {
            match api.query_session(&s.uri, None, Ctx::Upload(key)).await? {
                SessionState::Committed(n) => return Ok(ResumePoint { offset: n, session: Some(s.to_json()) }),
                SessionState::Done(f) => {
                    // Finished before a restart: the upload verifies and stamps it, unless a
                    // failed verification marked it spent.
                    let f = self.complete(&api, *f, key).await?;
                    if f.prop(PROP_SHA256) == Some(sha256) {
                        return Ok(ResumePoint { offset: f.size(), session: Some(s.to_json()) });
                    }
                }
                SessionState::Expired => {}
            }
        }
        let uri = self.new_session(&api, key, sha256).await?;
        Ok(ResumePoint { offset: 0, session: Some(Session { uri, sha256: sha256.to_string() }.to_json()) })
    }

    /// A finished upload's resource with every field this remote reads.
    async fn complete(&self, api: &Api, f: DriveFile, key: &str) -> Result<DriveFile, RemoteError> {
        if f.md5_checksum.is_some() && f.size.is_some() && !f.id.is_empty() {
            return Ok(f);
        }
        match api.get(&f.id, FILE_FIELDS, Ctx::File(key)).await? {
            Some(full) => Ok(full),
            None => Err(RemoteError::transient(format!("'{key}' vanished from Drive right after its upload"))),
        }
    }

    async fn upload_inner(&self, req: &UploadRequest<'_>, ctx: &TransferCtx) -> Result<UploadReceipt, RemoteError> {
        let api = self.api().await?;
        let key = req.key;
        let uctx = Ctx::Upload(key);
        let mut rp = req.resume.clone();
        let session = match rp.session.as_deref().and_then(Session::parse).filter(|s| s.sha256 == req.sha256) {
            Some(s) => s,
            None => {
                rp = self.resume_inner(key, req.sha256, None).await?;
                rp.session.as_deref().and_then(Session::parse).ok_or_else(|| RemoteError::transient("no session"))?
            }
        };
        let total = req.size;
        let source = req.source.to_path_buf();
        let file = {
            let src = source.clone();
            tokio::task::spawn_blocking(move || File::open(&src).and_then(|f| f.metadata().map(|m| (f, m.len()))))
                .await
                .map_err(spawn_err)?
                .map_err(|e| source_err(&e, &source))?
        };
        // A log that grew since it was hashed is stored as the hashed prefix; one that shrank
        // has changed.
        if file.1 < total {
            return Err(changed(&source));
        }
        let file = Arc::new(file.0);
        let mut off = rp.offset.min(total);
        let mut hashes = match req.md5 {
            Some(_) => None,
            None if off == 0 => Some(Running::new(Hashes::new())),
            None => Some(Running::new(hash_prefix(file.clone(), off, source.clone()).await?)),
        };
        ctx.advance(off, 0).await?;
        let mut fails = 0u32;
        let mut quick_wait = Duration::from_millis(500);
        let done: DriveFile = loop {
            let n = (total - off).min(self.s.chunk) as usize;
            let chunk = bytes::Bytes::from(read_at(file.clone(), off, n, source.clone()).await?);
            let sent = if n == 0 && off > 0 {
                // Everything was sent before a restart: only the answer is missing.
                cancellable(ctx, api.query_session(&session.uri, Some(total), uctx)).await
            } else {
                cancellable(ctx, api.put_chunk(&session.uri, off, chunk.clone(), total, uctx)).await
            };
            let state = match sent {
                Ok(s) => s,
                Err(e) if e.kind == ErrorKind::Transient && fails < QUICK_RETRIES => {
                    let wait = e.retry_after.unwrap_or(quick_wait);
                    if wait > QUICK_WAIT_MAX {
                        return Err(e);
                    }
                    fails += 1;
                    quick_wait = (quick_wait * 2).min(QUICK_WAIT_MAX);
                    tracing::debug!(remote = %self.name, key, "chunk at {off} failed ({}); asking where it stands", e.message);
                    pause(ctx, wait).await?;
                    match cancellable(ctx, api.query_session(&session.uri, Some(total), uctx)).await {
                        Ok(s) => s,
                        Err(e2) if e2.kind == ErrorKind::Transient => continue,
                        Err(e2) => return Err(e2),
                    }
                }
                Err(e) => return Err(e),
            };
            match state {
                SessionState::Committed(c) => {
                    if c > total {
                        return Err(RemoteError::transient(format!(
                            "Drive says it holds {c} bytes of '{key}', more than its {total}; starting again"
                        )));
                    }
                    if c > off {
                        fails = 0;
                        quick_wait = Duration::from_millis(500);
                    } else {
                        // Nothing taken: send again, a few times at most.
                        fails += 1;
                        if fails > QUICK_RETRIES {
                            return Err(RemoteError::transient(format!(
                                "Drive keeps answering that it holds {c} bytes of '{key}' and takes no more"
                            )));
                        }
                    }
                    if let Some(h) = hashes.as_mut() {
                        if c >= off && c - off <= chunk.len() as u64 {
                            h.feed(chunk.slice(..(c - off) as usize)).await?;
                        } else {
                            h.get().await?;
                            *h = Running::new(hash_prefix(file.clone(), c, source.clone()).await?);
                        }
                    }
                    let delta = c.saturating_sub(off);
                    off = c;
                    ctx.advance(off, delta).await?;
                    if off == total && n == 0 && total > 0 {
                        // Drive holds everything but has not answered with the file: ask.
                        continue;
                    }
                }
                SessionState::Done(f) => {
                    if let Some(h) = hashes.as_mut()
                        && h.len < total
                    {
                        if off == h.len && off + chunk.len() as u64 == total {
                            h.feed(chunk.clone()).await?;
                        } else {
                            h.get().await?;
                            *h = Running::new(hash_prefix(file.clone(), total, source.clone()).await?);
                        }
                    }
                    ctx.advance(total, total.saturating_sub(off)).await?;
                    break self.complete(&api, *f, key).await?;
                }
                SessionState::Expired => {
                    return Err(RemoteError::transient(format!(
                        "the Drive upload session of '{key}' expired (they last a week); starting again from zero"
                    )));
                }
            }
        };
        let hashes = match hashes.as_mut() {
            Some(h) => Some(h.get().await?),
            None => None,
        };
        // Confirm: size and MD5 of exactly the bytes sent.
        let (md5, sha) = match (req.md5, hashes) {
            (Some(m), _) => (m.to_ascii_lowercase(), None),
            (None, Some(h)) => (hex(&h.md5.finalize()), Some(hex(&h.sha.finalize()))),
            (None, None) => return Err(RemoteError::transient("no checksum of the bytes sent")),
        };
        if done.size() != total || done.md5_checksum.as_deref().map(str::to_ascii_lowercase).as_deref() != Some(&md5) {
            mark_spent(&api, &done.id, uctx).await;
            return Err(RemoteError::transient(format!(
                "the copy of '{key}' on Drive does not match what was sent (size {} of {total}, MD5 {} instead of \
                 {md5}); it will be sent again",
                done.size(),
                done.md5_checksum.as_deref().unwrap_or("missing")
            )));
        }
        if let Some(sha) = sha
            && sha != req.sha256
        {
            mark_spent(&api, &done.id, uctx).await;
            return Err(changed(&source));
        }
        let props = serde_json::json!({ PROP_SHA256: req.sha256, PROP_MD5: md5 });
        api.patch_meta(&done.id, Some(props), None, uctx).await?;
        Ok(UploadReceipt { remote_id: done.id })
    }

    async fn stat_inner(&self, key: &str) -> Result<Option<RemoteObject>, RemoteError> {
        let api = self.api().await?;
        Ok(self.find(&api, key).await?.map(|f| Self::object(key, &f)))
    }

    async fn list_inner(&self, prefix: &str) -> Result<Vec<RemoteObject>, RemoteError> {
        let api = self.api().await?;
        // Start at the deepest folder the prefix names completely.
        let (dir, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let dirs: Vec<&str> = if dir.is_empty() { Vec::new() } else { dir.split('/').collect() };
        if dirs.iter().any(|d| d.is_empty() || *d == "." || *d == "..") {
            return Ok(Vec::new());
        }
        let Some(start) = self.folder(&api, &dirs, false).await? else { return Ok(Vec::new()) };
        let mut out: BTreeMap<String, DriveFile> = BTreeMap::new();
        let base = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let mut stack = vec![(start, base)];
        while let Some((id, at)) = stack.pop() {
            let ctx = if at.is_empty() { Ctx::Folder } else { Ctx::File(&at) };
            let mut kids = api.children(&id, "", ctx).await?;
            kids.sort_by(|a, b| (&a.created_time, &a.id).cmp(&(&b.created_time, &b.id)));
            let mut seen_dirs = std::collections::HashSet::new();
            for k in kids {
                let key = format!("{at}{}", k.name);
                if k.is_folder() {
                    // Same-named folders: the oldest is the one lookups use.
                    let sub = format!("{key}/");
                    if (sub.starts_with(prefix) || prefix.starts_with(&sub)) && seen_dirs.insert(k.name.clone()) {
                        stack.push((k.id, sub));
                    }
                } else if key.starts_with(prefix) {
                    out.entry(key).or_insert(k);
                }
            }
        }
        Ok(out.iter().map(|(k, f)| Self::object(k, f)).collect())
    }

    async fn download_inner(&self, key: &str, dest: &Path, ctx: &TransferCtx) -> Result<u64, RemoteError> {
        use tokio::io::AsyncWriteExt;
        let api = self.api().await?;
        let Some(f) = self.find(&api, key).await? else {
            return Err(RemoteError::new(ErrorKind::NotFound, format!("'{key}' is not on remote '{}'", self.name)));
        };
        let size = f.size();
        let want_md5 = f.md5_checksum.clone().map(|m| m.to_ascii_lowercase());
        let want_sha = f.trusted_sha256();
        let mut part_name = dest.as_os_str().to_owned();
        part_name.push(".part");
        let part = PathBuf::from(part_name);
        let local = |e: &io::Error, p: &Path| RemoteError::transient(format!("writing {}: {e}", p.display()));
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| local(&e, parent))?;
        }
        let mut have = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
        if have > size {
            have = 0;
        }
        let mut hashes = if have > 0 {
            let pf = Arc::new(File::open(&part).map_err(|e| local(&e, &part))?);
            hash_prefix(pf, have, part.clone()).await?
        } else {
            Hashes::new()
        };
        let out = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part)
            .await
            .map_err(|e| local(&e, &part))?;
        let mut done = have;
        if have < size {
            let ok = cancellable(ctx, api.download(&f.id, have, Ctx::File(key))).await?;
            let mut resp = ok.resp;
            let start = if ok.status == reqwest::StatusCode::PARTIAL_CONTENT {
                ok.headers
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(u64::MAX)
            } else {
                0
            };
            if start != have {
                // The server sent the whole file (or an unexpected part): start over.
                if start != 0 {
                    return Err(RemoteError::transient(format!("downloading '{key}': Drive sent the wrong range")));
                }
                hashes = Hashes::new();
                done = 0;
            }
            out.set_len(done).await.map_err(|e| local(&e, &part))?;
            let mut out = tokio::io::BufWriter::with_capacity(1 << 20, out);
            use tokio::io::AsyncSeekExt;
            out.seek(io::SeekFrom::Start(done)).await.map_err(|e| local(&e, &part))?;
            // What arrived before a failure stays in the part file for the next attempt.
            let got: Result<(), RemoteError> = async {
                loop {
                    let next = cancellable(ctx, async {
                        resp.chunk()
                            .await
                            .map_err(|e| super::api::net_error(&e, "downloading from Drive", api.endpoint()))
                    })
                    .await?;
                    let Some(bytes) = next else { return Ok(()) };
                    if done + bytes.len() as u64 > size {
                        return Err(RemoteError::transient(format!(
                            "downloading '{key}': more bytes than the file has"
                        )));
                    }
                    out.write_all(&bytes).await.map_err(|e| local(&e, &part))?;
                    hashes.update(&bytes);
                    done += bytes.len() as u64;
                    ctx.advance(done, bytes.len() as u64).await?;
                }
            }
            .await;
            out.flush().await.map_err(|e| local(&e, &part))?;
            let out = out.into_inner();
            out.sync_all().await.map_err(|e| local(&e, &part))?;
            got?;
        } else {
            out.sync_all().await.map_err(|e| local(&e, &part))?;
        }
        if done != size {
            return Err(RemoteError::transient(format!(
                "downloading '{key}' stopped at {done} of {size} bytes; it resumes from there"
            )));
        }
        let md5 = hex(&hashes.md5.finalize());
        let sha = hex(&hashes.sha.finalize());
        let md5_bad = want_md5.as_deref().is_some_and(|m| m != md5);
        let sha_bad = want_sha.as_deref().is_some_and(|s| s != sha);
        if md5_bad || sha_bad {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(RemoteError::transient(format!(
                "downloaded '{key}' does not match its checksum; it will be fetched again"
            )));
        }
        tokio::fs::rename(&part, dest).await.map_err(|e| local(&e, dest))?;
        Ok(done)
    }

    async fn delete_inner(&self, key: &str) -> Result<(), RemoteError> {
        let api = self.api().await?;
        let (dirs, name) = split_key(key)?;
        let Some(parent) = self.folder(&api, &dirs, false).await? else { return Ok(()) };
        // Every same-named copy goes (to Drive's trash, kept 30 days).
        for f in api.named(&parent, name, false, Ctx::File(key)).await? {
            match api.patch_meta(&f.id, None, Some(true), Ctx::File(key)).await {
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `remote check`: key, token, folder (and which drive), probe stored, read back, deleted.
    async fn check_inner(&self) -> Vec<CheckStep> {
        let mut steps = Vec::new();
        let fail = |steps: &mut Vec<CheckStep>, name: &str, e: RemoteError| {
            steps.push(CheckStep::fail(name, e.message, e.fix.unwrap_or_else(|| "run the check again".into())));
        };
        // 1. The key file.
        let lookup = self.s.key.clone();
        let name = self.name.clone();
        let key = match tokio::task::spawn_blocking(move || load_key(&lookup, &name)).await {
            Ok(Ok(k)) => k,
            Ok(Err(e)) => {
                fail(&mut steps, "key file", e);
                return steps;
            }
            Err(e) => {
                fail(&mut steps, "key file", spawn_err(e));
                return steps;
            }
        };
        let mut detail = format!("{} ({}), service account {}", key.path.display(), key.chosen_by, key.client_email);
        for w in &key.warnings {
            detail.push_str(&format!("; warning: {w}"));
        }
        steps.push(CheckStep::pass("key file", detail));
        *self.api.lock().await = None;
        // 2. A token.
        let api = match self.api().await {
            Ok(a) => a,
            Err(e) => {
                fail(&mut steps, "token", e);
                return steps;
            }
        };
        match api.token().await {
            Ok(_) => steps.push(CheckStep::pass(
                "token",
                format!(
                    "scope {}{} from {}",
                    self.s.scope,
                    self.s.subject.as_deref().map(|s| format!(", acting as {s}")).unwrap_or_default(),
                    super::auth::origin_of(&key.token_uri)
                ),
            )),
            Err(e) => {
                let e = self.settle::<()>(Err(e)).await.unwrap_err();
                fail(&mut steps, "token", e);
                return steps;
            }
        }
        // 3. The folder, and which drive holds it.
        let fields = "id,name,mimeType,driveId,trashed,capabilities(canAddChildren),owners(emailAddress)";
        let folder = match api.get(&self.s.folder_id, fields, Ctx::Folder).await {
            Ok(Some(f)) => f,
            Ok(None) => {
                let f = super::api::ApiFailure { status: 404, ..Default::default() };
                fail(&mut steps, "folder", super::api::classify(&f, Ctx::Folder, &api.who));
                return steps;
            }
            Err(e) => {
                fail(&mut steps, "folder", e);
                return steps;
            }
        };
        if !folder.is_folder() {
            steps.push(CheckStep::fail(
                "folder",
                format!("{} ('{}') is a file, not a folder", self.s.folder_id, folder.name),
                "set folder_id to the id of a folder (the part after /folders/ in its URL)",
            ));
            return steps;
        }
        if folder.trashed == Some(true) {
            steps.push(CheckStep::fail(
                "folder",
                format!("folder '{}' is in the Drive trash", folder.name),
                "restore it from the trash, or point folder_id at another folder",
            ));
            return steps;
        }
        let place = match &folder.drive_id {
            Some(d) => match api.drive_name(d).await.ok().flatten() {
                Some(n) => format!("in Shared Drive '{n}'"),
                None => format!("in Shared Drive {d}"),
            },
            None => {
                let owner = folder
                    .owners
                    .as_ref()
                    .and_then(|o| o.first())
                    .and_then(|o| o.email_address.clone())
                    .map(|e| format!(" of {e}"))
                    .unwrap_or_default();
                if self.s.subject.is_some() {
                    format!("in the My Drive{owner}")
                } else {
                    format!("in the My Drive{owner}, not a Shared Drive: a service account cannot store files there")
                }
            }
        };
        if folder.capabilities.as_ref().and_then(|c| c.can_add_children) == Some(false) {
            steps.push(CheckStep::fail(
                "folder",
                format!("'{}' {place}: the service account may only read it", folder.name),
                format!("give {} Content manager on the Shared Drive (or Editor on the folder)", key.client_email),
            ));
            return steps;
        }
        steps.push(CheckStep::pass("folder", format!("'{}' {place}", folder.name)));
        // 4. A probe file through the normal upload path, read back and deleted.
        let bytes: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                steps.push(CheckStep::fail("probe stored", format!("no temporary folder: {e}"), "free space in /tmp"));
                return steps;
            }
        };
        let src = dir.path().join("probe");
        if let Err(e) = std::fs::write(&src, &bytes) {
            steps.push(CheckStep::fail(
                "probe stored",
                format!("writing {}: {e}", src.display()),
                "free space in /tmp",
            ));
            return steps;
        }
        let sha = hex(&Sha256::digest(&bytes));
        let probe = format!(".opsconsole-probe-{}-{}", std::process::id(), fastrand::u64(..));
        let tctx = TransferCtx::default();
        let stored = async {
            let rp = self.resume_inner(&probe, &sha, None).await?;
            let req = UploadRequest {
                key: &probe,
                source: &src,
                size: bytes.len() as u64,
                sha256: &sha,
                md5: None,
                resume: rp,
            };
            self.upload_inner(&req, &tctx).await
        }
        .await;
        if let Err(e) = stored {
            let _ = self.delete_inner(&probe).await;
            fail(&mut steps, "probe stored", e);
            return steps;
        }
        steps.push(CheckStep::pass("probe stored", format!("{} bytes, MD5 confirmed by Drive", bytes.len())));
        let back = dir.path().join("back");
        let read = async {
            let st = self.stat_inner(&probe).await?;
            let n = self.download_inner(&probe, &back, &tctx).await?;
            Ok::<_, RemoteError>((st, n))
        }
        .await;
        let deleted = self.delete_inner(&probe).await;
        match read {
            Ok((Some(o), _))
                if o.sha256.as_deref() == Some(sha.as_str()) && std::fs::read(&back).is_ok_and(|b| b == bytes) =>
            {
                steps.push(CheckStep::pass("probe reads back", "same bytes, SHA-256 kept in appProperties"))
            }
            Ok(_) => {
                steps.push(CheckStep::fail(
                    "probe reads back",
                    "the probe read back differs from what was stored",
                    "run the check again; if it persists, something between here and Drive changes data",
                ));
                return steps;
            }
            Err(e) => {
                fail(&mut steps, "probe reads back", e);
                return steps;
            }
        }
        match deleted {
            Ok(()) => steps.push(CheckStep::pass("probe deleted", "moved to the Drive trash")),
            Err(e) => fail(&mut steps, "probe deleted", e),
        }
        steps
    }
}

impl Remote for DriveRemote {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("drive folder {}", self.s.folder_id)
    }

    /// Drive reports a stored file's `md5Checksum`: the hash pass takes the MD5 for it.
    fn wants_md5(&self) -> bool {
        true
    }

    fn resume_point<'a>(
        &'a self,
        key: &'a str,
        sha256: &'a str,
        session: Option<&'a str>,
    ) -> BoxFut<'a, Result<ResumePoint, RemoteError>> {
        Box::pin(async move { self.settle(self.resume_inner(key, sha256, session).await).await })
    }

    fn upload<'a>(
        &'a self,
        req: UploadRequest<'a>,
        ctx: &'a TransferCtx,
    ) -> BoxFut<'a, Result<UploadReceipt, RemoteError>> {
        Box::pin(async move { self.settle(self.upload_inner(&req, ctx).await).await })
    }

    fn stat<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Option<RemoteObject>, RemoteError>> {
        Box::pin(async move { self.settle(self.stat_inner(key).await).await })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Result<Vec<RemoteObject>, RemoteError>> {
        Box::pin(async move { self.settle(self.list_inner(prefix).await).await })
    }

    fn download<'a>(
        &'a self,
        key: &'a str,
        dest: &'a Path,
        ctx: &'a TransferCtx,
    ) -> BoxFut<'a, Result<u64, RemoteError>> {
        Box::pin(async move { self.settle(self.download_inner(key, dest, ctx).await).await })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<(), RemoteError>> {
        Box::pin(async move { self.settle(self.delete_inner(key).await).await })
    }

    fn check<'a>(&'a self) -> BoxFut<'a, Vec<CheckStep>> {
        Box::pin(self.check_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_folders_and_a_name() {
        assert_eq!(split_key("a/b/c.log").expect("ok"), (vec!["a", "b"], "c.log"));
        assert_eq!(split_key("j.md").expect("ok"), (vec![], "j.md"));
        for bad in ["", "/a", "a//b", "a/../b", "./a", "a/"] {
            assert!(split_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chunks_are_whole_quarter_mebibytes() {
        assert_eq!(chunk_bytes(8.0), 8 << 20);
        assert_eq!(chunk_bytes(0.25), 256 << 10);
        assert_eq!(chunk_bytes(0.3), 256 << 10);
        assert_eq!(chunk_bytes(0.0), 256 << 10);
    }

    #[test]
    fn sessions_round_trip_and_junk_is_ignored() {
        let s = Session { uri: "https://x/upload?upload_id=1".into(), sha256: "ab".into() };
        assert_eq!(Session::parse(&s.to_json()), Some(s));
        assert_eq!(Session::parse("ab12"), None, "a local remote's session is not a Drive session");
    }
}

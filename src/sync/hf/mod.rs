//! `HfRemote`: L3 on a Hugging Face Hub model repo, weights only, one commit per
//! checkpoint. An upload stages the object in the repo's LFS storage (preupload, LFS batch,
//! `basic` or `multipart`); once every file of a checkpoint (a `*.pt` file, or a whole
//! `checkpoint-N/` folder) is staged, the engine asks for one commit, which names the step
//! and the host. A file is confirmed only after that commit exists and the repo's tree
//! lists the file with its size and LFS oid (its SHA-256).
//!
//! The HTTP is `reqwest` (rustls): see `docs/sync.md` for why not the `hf-hub` crate.

pub mod api;
pub mod download;
pub mod error;
pub mod lfs;
pub mod token;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

use self::api::{CommitRefused, Hub, TreeEntry};
use self::token::{Env, ProcessEnv, Token};
use super::remote::{
    BoxFut, CheckStep, ErrorKind, Remote, RemoteError, RemoteObject, ResumePoint, StagedFile, TransferCtx,
    UploadReceipt, UploadRequest,
};
use super::routing::is_checkpoint_dir_name;

/// The Hub refuses files over 10 MiB inline in a commit; weights never go that way.
pub const INLINE_MAX: u64 = 10 * 1024 * 1024;

/// Commits allowed at once before pacing starts, and one more per this long after that
/// (the Hub allows 128 commits per hour per repo; 100 an hour leaves room for the user).
const COMMIT_BURST: u32 = 16;
const COMMIT_EVERY: Duration = Duration::from_secs(36);
/// Tries of one commit when the branch moved under it (409/412).
const COMMIT_ATTEMPTS: u32 = 6;

/// The `[remotes.NAME]` keys of a Hub remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfSettings {
    pub repo_id: String,
    pub private: bool,
    pub allow_public: bool,
    pub revision: String,
    pub path_prefix: String,
    pub endpoint: Option<String>,
}

fn name_part_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
        && !s.contains("--")
        && !s.contains("..")
}

/// (dotted key, problem) for every bad value of a Hub remote.
pub fn validate(name: &str, s: &HfSettings) -> Vec<(String, String)> {
    let key = |k: &str| format!("remotes.{name}.{k}");
    let mut out = Vec::new();
    match s.repo_id.split_once('/') {
        Some((ns, repo)) if name_part_ok(ns) && name_part_ok(repo) => {}
        _ => out.push((
            key("repo_id"),
            format!(
                "'{}' is not a Hub repo id; write it as \"namespace/name\" (letters, digits, '-', '_', '.')",
                s.repo_id
            ),
        )),
    }
    let rev = s.revision.trim();
    if rev.is_empty()
        || rev != s.revision
        || rev.contains(char::is_whitespace)
        || rev.contains("..")
        || rev.starts_with(['/', '-'])
    {
        out.push((key("revision"), format!("'{}' is not a branch name", s.revision)));
    }
    let p = s.path_prefix.as_str();
    if p.starts_with('/') || p.contains('\\') || p.split('/').any(|c| c == ".." || c == ".") {
        out.push((
            key("path_prefix"),
            format!("'{p}' must be a folder inside the repo: relative, without '..' or '.'"),
        ));
    }
    if let Some(ep) = &s.endpoint {
        let ok = reqwest::Url::parse(ep)
            .ok()
            .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && u.query().is_none());
        if !ok {
            out.push((key("endpoint"), format!("'{ep}' is not an http(s) address such as \"https://huggingface.co\"")));
        }
    }
    if !s.private && !s.allow_public {
        out.push((
            key("private"),
            "private = false would push weights to a public repo; set allow_public = true as well if that is meant"
                .into(),
        ));
    }
    out
}

/// The checkpoint a key belongs to: the path up to its first `checkpoint-N` folder, else
/// the key itself (a `*.pt` file is one checkpoint).
pub fn checkpoint_group(key: &str) -> String {
    let parts: Vec<&str> = key.split('/').collect();
    for (i, p) in parts.iter().enumerate().take(parts.len().saturating_sub(1)) {
        if is_checkpoint_dir_name(p) {
            return parts[..=i].join("/");
        }
    }
    key.to_string()
}

/// The step of a checkpoint group, from its last path component.
pub fn group_step(group: &str) -> Option<u64> {
    crate::checkpoints::inventory::parse_step(group.rsplit('/').next().unwrap_or(group))
}

/// A checkpoint as the repo holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCheckpoint {
    /// The group (workspace-relative): `out/checkpoint-500` or `checkpoints/v68_step_1200.pt`.
    pub group: String,
    pub step: u64,
    pub files: Vec<RemoteObject>,
}

/// Commits at most `burst` at once, then one per `every`.
#[derive(Debug)]
struct Pacer {
    burst: u32,
    every: Duration,
    state: Mutex<(f64, Instant)>,
}

impl Pacer {
    fn new(burst: u32, every: Duration) -> Self {
        Self { burst, every, state: Mutex::new((burst as f64, Instant::now())) }
    }

    /// Take one commit slot: `None` when granted now, else how long until one frees up.
    fn take(&self) -> Option<Duration> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(st.1).as_secs_f64() / self.every.as_secs_f64().max(1e-9);
        let tokens = (st.0 + refill).min(self.burst as f64);
        if tokens >= 1.0 {
            *st = (tokens - 1.0, now);
            None
        } else {
            *st = (tokens, now);
            Some(self.every.mul_f64(1.0 - tokens))
        }
    }
}

/// A Hub model repo as a remote.
pub struct HfRemote {
    name: String,
    settings: HfSettings,
    prefix: String,
    hub: Result<Hub, RemoteError>,
    /// The repo was found (or created) and its revision exists, in this process.
    repo_ready: tokio::sync::Mutex<bool>,
    pacer: Pacer,
    host: String,
}

impl std::fmt::Debug for HfRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfRemote").field("name", &self.name).field("repo_id", &self.settings.repo_id).finish()
    }
}

/// The endpoint a remote talks to: the config's, else `HF_ENDPOINT`, else the public Hub.
pub fn resolve_endpoint(configured: Option<&str>, env: &dyn Env) -> String {
    configured
        .map(str::to_string)
        .or_else(|| env.var("HF_ENDPOINT").filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| api::DEFAULT_ENDPOINT.to_string())
        .trim()
        .trim_end_matches('/')
        .to_string()
}

impl HfRemote {
    /// A remote reading its token from the process environment.
    pub fn new(name: impl Into<String>, settings: HfSettings) -> Self {
        Self::with_env(name, settings, Arc::new(ProcessEnv))
    }

    /// A remote reading its token (and `HF_ENDPOINT`) from `env`.
    pub fn with_env(name: impl Into<String>, settings: HfSettings, env: Arc<dyn Env + Send + Sync>) -> Self {
        let name = name.into();
        let endpoint = resolve_endpoint(settings.endpoint.as_deref(), env.as_ref());
        let hub = Hub::new(&name, &endpoint, &settings.repo_id, &settings.revision, env);
        Self {
            prefix: settings.path_prefix.trim_matches('/').to_string(),
            name,
            settings,
            hub,
            repo_ready: tokio::sync::Mutex::new(false),
            pacer: Pacer::new(COMMIT_BURST, COMMIT_EVERY),
            host: sysinfo::System::host_name().unwrap_or_else(|| "unknown-host".into()),
        }
    }

    /// Pace commits differently (tests).
    pub fn with_commit_pacing(mut self, burst: u32, every: Duration) -> Self {
        self.pacer = Pacer::new(burst, every);
        self
    }

    pub fn settings(&self) -> &HfSettings {
        &self.settings
    }

    fn hub(&self) -> Result<&Hub, RemoteError> {
        self.hub.as_ref().map_err(Clone::clone)
    }

    /// The path in the repo for a workspace-relative key.
    pub fn repo_path(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.prefix) }
    }

    /// The workspace-relative key of a path in the repo (`None` outside the prefix).
    fn key_of(&self, repo_path: &str) -> Option<String> {
        if self.prefix.is_empty() {
            Some(repo_path.to_string())
        } else {
            repo_path.strip_prefix(&self.prefix)?.strip_prefix('/').map(str::to_string)
        }
    }

    fn public_refused(&self) -> RemoteError {
        RemoteError::new(
            ErrorKind::Auth,
            format!(
                "remote '{}': Hub repo {} is public; weights are pushed only to private repos",
                self.name, self.settings.repo_id
            ),
        )
        .with_fix(format!(
            "make the repo private on the Hub (Settings > Change visibility), or set allow_public = true in \
             [remotes.{}] if the weights may be public",
            self.name
        ))
    }

    /// Find the repo, creating it (private unless `private = false`) when it is missing;
    /// refuse a public one without `allow_public`; check the revision exists. Done once
    /// per process (again after a failure). Returns whether the repo was created.
    pub async fn ensure_repo(&self) -> Result<bool, RemoteError> {
        let hub = self.hub()?;
        let token = hub.token()?;
        self.ensure_repo_with(hub, &token).await
    }

    async fn ensure_repo_with(&self, hub: &Hub, token: &Token) -> Result<bool, RemoteError> {
        let mut ready = self.repo_ready.lock().await;
        if *ready {
            return Ok(false);
        }
        let mut created = false;
        match hub.repo_info(token).await? {
            Some(info) if !info.private && !self.settings.allow_public => return Err(self.public_refused()),
            Some(_) => {}
            None => {
                created = hub.create_repo(token, self.settings.private || !self.settings.allow_public).await?;
                tracing::info!(remote = %self.name, repo = %self.settings.repo_id, "created the Hub repo");
            }
        }
        hub.head(token).await?;
        *ready = true;
        Ok(created)
    }

    async fn forget_repo(&self) {
        *self.repo_ready.lock().await = false;
    }

    /// The SHA-256 of a listed file: the LFS oid, or for a small regular file, the hash of
    /// its bytes read back.
    async fn entry_sha256(
        &self,
        hub: &Hub,
        token: &Token,
        rev: &str,
        e: &TreeEntry,
    ) -> Result<Option<String>, RemoteError> {
        if let Some(sha) = e.sha256() {
            return Ok(Some(sha.to_string()));
        }
        if e.size > INLINE_MAX {
            return Ok(None);
        }
        let resp = hub.resolve(token, rev, &e.path, 0).await?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|err| error::network(&err, &format!("reading {}", e.path), &hub.host(), &self.name))?;
        use sha2::Digest;
        Ok(Some(crate::sync::hash::hex(&sha2::Sha256::digest(&bytes))))
    }

    async fn object(
        &self,
        hub: &Hub,
        token: &Token,
        rev: &str,
        e: &TreeEntry,
    ) -> Result<Option<RemoteObject>, RemoteError> {
        let Some(key) = self.key_of(&e.path) else { return Ok(None) };
        let sha256 = self.entry_sha256(hub, token, rev, e).await?;
        Ok(Some(RemoteObject {
            key,
            id: e.path.clone(),
            size: e.lfs.as_ref().map_or(e.size, |l| l.size),
            sha256,
            md5: None,
            modified_ms: None,
        }))
    }

    async fn stat_at(&self, hub: &Hub, token: &Token, key: &str) -> Result<Option<RemoteObject>, RemoteError> {
        let path = self.repo_path(key);
        let rev = self.settings.revision.clone();
        let entries = match hub.paths_info(token, &rev, std::slice::from_ref(&path)).await {
            Ok(e) => e,
            Err(f) if f.repo_missing() || f.entry_missing() => return Ok(None),
            Err(f) => return Err(f.err),
        };
        match entries.iter().find(|e| e.is_file() && e.path == path) {
            Some(e) => self.object(hub, token, &rev, e).await,
            None => Ok(None),
        }
    }

    async fn list_at(&self, hub: &Hub, token: &Token, prefix: &str) -> Result<Vec<RemoteObject>, RemoteError> {
        let full = self.repo_path(prefix);
        let dir = match full.rfind('/') {
            Some(i) => &full[..i],
            None => "",
        };
        let entries = match hub.tree(token, &self.settings.revision, dir).await {
            Ok(e) => e,
            Err(f) if f.repo_missing() => return Ok(Vec::new()),
            Err(f) => return Err(f.err),
        };
        let mut out: Vec<RemoteObject> = entries
            .into_iter()
            .filter(|e| e.is_file())
            .filter_map(|e| {
                let key = self.key_of(&e.path)?;
                key.starts_with(prefix).then(|| RemoteObject {
                    key,
                    id: e.path.clone(),
                    size: e.lfs.as_ref().map_or(e.size, |l| l.size),
                    sha256: e.sha256().map(str::to_string),
                    md5: None,
                    modified_ms: None,
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The newest checkpoint under `prefix` (workspace-relative; "" = everything) by step,
    /// as the repo's tree lists it now (for resuming from L3).
    pub async fn newest_checkpoint(&self, prefix: &str) -> Result<Option<RemoteCheckpoint>, RemoteError> {
        let objects = self.list(prefix).await?;
        Ok(newest_of(objects))
    }

    /// Read the first 512 bytes of the source (the preupload sample).
    async fn sample(src: &Path) -> Result<Vec<u8>, RemoteError> {
        use tokio::io::AsyncReadExt;
        let f = tokio::fs::File::open(src).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                RemoteError::new(ErrorKind::SourceGone, format!("{} vanished before it was stored", src.display()))
            } else {
                RemoteError::transient(format!("reading {}: {e}", src.display()))
            }
        })?;
        let mut buf = Vec::with_capacity(512);
        f.take(512)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| RemoteError::transient(format!("reading {}: {e}", src.display())))?;
        Ok(buf)
    }

    async fn upload_at(&self, req: UploadRequest<'_>, ctx: &TransferCtx) -> Result<UploadReceipt, RemoteError> {
        let hub = self.hub()?;
        let token = hub.token()?;
        self.ensure_repo_with(hub, &token).await?;
        let path = self.repo_path(req.key);
        let sample = Self::sample(req.source).await?;
        let modes = match hub.preupload(&token, &[(path.clone(), req.size, sample)]).await {
            Ok(m) => m,
            Err(e) => {
                if e.kind == ErrorKind::NotFound {
                    self.forget_repo().await;
                }
                return Err(e);
            }
        };
        let mode = modes.iter().find(|m| m.path == path);
        if mode.is_some_and(|m| m.should_ignore) {
            return Err(RemoteError::new(
                ErrorKind::NotFound,
                format!("remote '{}': the repo's .gitignore ignores {path}, so a commit would leave it out", self.name),
            )
            .with_fix("remove the matching line from .gitignore in the repo, or exclude the file in [sync.l3]"));
        }
        let lfs = mode.is_some_and(|m| m.upload_mode == "lfs") && req.size > 0;
        if !lfs {
            if req.size > INLINE_MAX {
                return Err(RemoteError::new(
                    ErrorKind::NotFound,
                    format!(
                        "remote '{}': the Hub wants {path} ({}) stored inline in the commit, which it refuses above \
                         10 MiB; weights are never sent that way",
                        self.name,
                        crate::util::bytes(req.size)
                    ),
                )
                .with_fix(format!(
                    "track the file type with LFS in the repo's .gitattributes (e.g. `*.{} filter=lfs diff=lfs \
                     merge=lfs -text`), then retry failed uploads (R)",
                    path.rsplit('.').next().unwrap_or("bin")
                )));
            }
            // Small text files go inside the commit itself, as the official client does.
            ctx.advance(req.size, 0).await?;
            return Ok(UploadReceipt { remote_id: path });
        }
        let sent = lfs::upload(hub, &token, req.key, req.source, req.size, req.sha256, ctx).await?;
        tracing::info!(remote = %self.name, key = req.key, ?sent, "object staged on the Hub");
        Ok(UploadReceipt { remote_id: path })
    }

    /// One commit adding `files` (already staged), paced, on a fresh parent after a
    /// conflict; never a second commit when the tree already lists them.
    async fn commit_at(
        &self,
        group: &str,
        files: &[StagedFile],
        ctx: &TransferCtx,
    ) -> Result<Vec<RemoteObject>, RemoteError> {
        let hub = self.hub()?;
        let token = hub.token()?;
        self.ensure_repo_with(hub, &token).await?;
        let paths: Vec<String> = files.iter().map(|f| self.repo_path(&f.key)).collect();
        let mut conflicts = Vec::new();
        for attempt in 1..=COMMIT_ATTEMPTS {
            let (head, info) = hub.head(&token).await.map_err(RemoteError::from)?;
            if !info.private && !self.settings.allow_public {
                return Err(self.public_refused());
            }
            // What the branch holds now: a commit that landed while its answer was lost
            // is found here, and not made twice.
            let listed = self.listed(hub, &token, &head, &paths).await?;
            let mut todo = Vec::new();
            for (f, path) in files.iter().zip(&paths) {
                if !listed.iter().any(|o| &o.id == path && o.size == f.size && o.sha256.as_deref() == Some(&f.sha256)) {
                    todo.push((f, path.clone()));
                }
            }
            if todo.is_empty() {
                return Ok(listed);
            }
            self.pace(ctx).await?;
            let (body, lfs_objects) = self.commit_body(hub, &token, group, &head, &todo).await?;
            match hub.commit(&token, body).await {
                Ok(answer) => {
                    tracing::info!(remote = %self.name, group, commit = %answer.commit_oid, "committed");
                    let listed = self.listed(hub, &token, &answer.commit_oid, &paths).await?;
                    return Ok(listed);
                }
                Err(CommitRefused::Conflict(msg)) => {
                    conflicts.push(msg);
                    let wait = Duration::from_millis(250u64 << attempt.min(6));
                    tokio::select! {
                        _ = tokio::time::sleep(wait.mul_f64(0.5 + fastrand::f64() / 2.0)) => {}
                        _ = ctx.cancel.cancelled() => return Err(RemoteError::new(ErrorKind::Cancelled, "cancelled")),
                    }
                }
                Err(CommitRefused::Other(e)) if e.is_permanent() && e.kind != ErrorKind::Auth => {
                    // Refused as a bad commit: an object missing from storage (cleaned up,
                    // or never finished) is sent again rather than failing for good.
                    let missing = self.missing_objects(hub, &token, &lfs_objects).await?;
                    if !missing.is_empty() {
                        return Err(RemoteError::transient(format!(
                            "remote '{}': the Hub did not hold the content of {} when committing; it is uploaded again",
                            self.name,
                            missing.join(", ")
                        )));
                    }
                    return Err(e);
                }
                Err(CommitRefused::Other(e)) => return Err(e),
            }
        }
        Err(RemoteError::transient(format!(
            "remote '{}': the branch '{}' kept moving during {} commit tries ({}); trying again later",
            self.name,
            self.settings.revision,
            COMMIT_ATTEMPTS,
            conflicts.last().cloned().unwrap_or_default()
        )))
    }

    async fn listed(
        &self,
        hub: &Hub,
        token: &Token,
        rev: &str,
        paths: &[String],
    ) -> Result<Vec<RemoteObject>, RemoteError> {
        let entries = hub.paths_info(token, rev, paths).await.map_err(RemoteError::from)?;
        let mut out = Vec::new();
        for e in entries.iter().filter(|e| e.is_file()) {
            if let Some(o) = self.object(hub, token, rev, e).await? {
                out.push(o);
            }
        }
        Ok(out)
    }

    /// The keys among `objects` (sha256, size, key) whose content the LFS storage lacks.
    async fn missing_objects(
        &self,
        hub: &Hub,
        token: &Token,
        objects: &[(String, u64, String)],
    ) -> Result<Vec<String>, RemoteError> {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let ask: Vec<(&str, u64)> = objects.iter().map(|(sha, size, _)| (sha.as_str(), *size)).collect();
        let answer = hub.lfs_batch(token, &ask).await?;
        Ok(answer
            .objects
            .iter()
            .filter(|o| o.actions.as_ref().is_some_and(|a| a.upload.is_some()))
            .filter_map(|o| objects.iter().find(|(sha, _, _)| *sha == o.oid).map(|(_, _, k)| k.clone()))
            .collect())
    }

    async fn pace(&self, ctx: &TransferCtx) -> Result<(), RemoteError> {
        while let Some(wait) = self.pacer.take() {
            tracing::info!(remote = %self.name, wait_s = wait.as_secs(), "pacing commits");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = ctx.cancel.cancelled() => return Err(RemoteError::new(ErrorKind::Cancelled, "cancelled")),
            }
        }
        Ok(())
    }

    /// The NDJSON body: a header naming the step and the host, then one line per file.
    /// Also returns the LFS objects it refers to (sha256, size, key).
    async fn commit_body(
        &self,
        hub: &Hub,
        token: &Token,
        group: &str,
        parent: &str,
        todo: &[(&StagedFile, String)],
    ) -> Result<(Vec<u8>, Vec<(String, u64, String)>), RemoteError> {
        let samples = {
            let mut v = Vec::new();
            for (f, path) in todo {
                v.push((path.clone(), f.size, Self::sample(&f.source).await?));
            }
            v
        };
        let modes = hub.preupload(token, &samples).await?;
        let name = group.rsplit('/').next().unwrap_or(group);
        let summary = match group_step(group) {
            Some(step) => format!("opsconsole: {name} (step {step}) from {}", self.host),
            None => format!("opsconsole: {name} from {}", self.host),
        };
        let total: u64 = todo.iter().map(|(f, _)| f.size).sum();
        let mut description = format!(
            "Checkpoint {group} ({} file{}, {}) stored by `opsconsole sync` on {}.\n\n",
            todo.len(),
            if todo.len() == 1 { "" } else { "s" },
            crate::util::bytes(total),
            self.host
        );
        for (f, path) in todo {
            description.push_str(&format!("- {path} ({}, sha256 {})\n", crate::util::bytes(f.size), f.sha256));
        }
        let mut lines = vec![serde_json::json!({
            "key": "header",
            "value": { "summary": summary, "description": description, "parentCommit": parent },
        })];
        let mut lfs_objects = Vec::new();
        for (f, path) in todo {
            let lfs = modes.iter().any(|m| &m.path == path && m.upload_mode == "lfs") && f.size > 0;
            if lfs {
                lfs_objects.push((f.sha256.clone(), f.size, f.key.clone()));
                lines.push(serde_json::json!({
                    "key": "lfsFile",
                    "value": { "path": path, "algo": "sha256", "oid": f.sha256, "size": f.size },
                }));
            } else {
                if f.size > INLINE_MAX {
                    return Err(RemoteError::new(
                        ErrorKind::NotFound,
                        format!(
                            "remote '{}': {path} would go inline in the commit and is over 10 MiB; refused",
                            self.name
                        ),
                    ));
                }
                let bytes = tokio::fs::read(&f.source).await.map_err(|e| {
                    RemoteError::new(ErrorKind::SourceGone, format!("{} could not be read: {e}", f.source.display()))
                })?;
                use sha2::Digest;
                let got = crate::sync::hash::hex(&sha2::Sha256::digest(&bytes));
                if got != f.sha256 || bytes.len() as u64 != f.size {
                    return Err(RemoteError::new(
                        ErrorKind::SourceChanged,
                        format!("{} changed before it was committed; it is hashed again", f.key),
                    ));
                }
                lines.push(serde_json::json!({
                    "key": "file",
                    "value": {
                        "content": base64::engine::general_purpose::STANDARD.encode(&bytes),
                        "path": path,
                        "encoding": "base64",
                    },
                }));
            }
        }
        Ok((ndjson(&lines), lfs_objects))
    }

    /// A commit deleting `key`'s path (no commit when it is absent).
    async fn delete_at(&self, key: &str) -> Result<(), RemoteError> {
        let hub = self.hub()?;
        let token = hub.token()?;
        let path = self.repo_path(key);
        for _ in 1..=COMMIT_ATTEMPTS {
            let (head, _) = match hub.head(&token).await {
                Ok(h) => h,
                Err(f) if f.repo_missing() => return Ok(()),
                Err(f) => return Err(f.err),
            };
            let entries =
                hub.paths_info(&token, &head, std::slice::from_ref(&path)).await.map_err(RemoteError::from)?;
            if !entries.iter().any(|e| e.is_file() && e.path == path) {
                return Ok(());
            }
            self.pace(&TransferCtx::default()).await?;
            let lines = [
                serde_json::json!({"key": "header", "value": {
                    "summary": format!("opsconsole: delete {path} from {}", self.host),
                    "description": "",
                    "parentCommit": head,
                }}),
                serde_json::json!({"key": "deletedFile", "value": {"path": path}}),
            ];
            match hub.commit(&token, ndjson(&lines)).await {
                Ok(_) => return Ok(()),
                Err(CommitRefused::Conflict(_)) => tokio::time::sleep(Duration::from_millis(300)).await,
                Err(CommitRefused::Other(e)) => return Err(e),
            }
        }
        Err(RemoteError::transient(format!("remote '{}': the branch kept moving while deleting {path}", self.name)))
    }

    async fn download_at(&self, key: &str, dest: &Path, ctx: &TransferCtx) -> Result<u64, RemoteError> {
        let hub = self.hub()?;
        let token = hub.token()?;
        let Some(obj) = self.stat_at(hub, &token, key).await? else {
            return Err(RemoteError::new(
                ErrorKind::NotFound,
                format!("'{key}' is not in Hub repo {} ({})", self.settings.repo_id, self.settings.revision),
            ));
        };
        let Some(sha) = obj.sha256.clone() else {
            return Err(RemoteError::new(
                ErrorKind::NotFound,
                format!("'{key}' in Hub repo {} has no checksum to verify a download by", self.settings.repo_id),
            ));
        };
        download::fetch(hub, &token, &self.settings.revision, &obj.id, obj.size, &sha, dest, ctx).await
    }

    /// `remote check`: the token (valid, may write), the repo (exists and private, or will
    /// be created private), and a probe file uploaded, listed, read back and deleted.
    async fn check_at(&self) -> Vec<CheckStep> {
        let mut steps = Vec::new();
        let hub = match self.hub() {
            Ok(h) => h,
            Err(e) => {
                steps.push(CheckStep::fail("HTTPS client", e.message.clone(), "check the system's CA certificates"));
                return steps;
            }
        };
        let token = match hub.token() {
            Ok(t) => t,
            Err(e) => {
                steps.push(CheckStep::fail("token", e.message.clone(), e.fix.unwrap_or_default()));
                return steps;
            }
        };
        let who = match hub.whoami(&token).await {
            Ok(w) => w,
            Err(e) => {
                steps.push(CheckStep::fail(
                    "token",
                    format!("from {}: {}", token.source, e.message),
                    e.fix.unwrap_or_else(|| "check the network and the endpoint".into()),
                ));
                return steps;
            }
        };
        let role = who.auth.as_ref().and_then(|a| a.access_token.as_ref()).map(|t| t.role.clone()).unwrap_or_default();
        let ns = self.settings.repo_id.split('/').next().unwrap_or_default();
        let member = ns == who.name || who.orgs.iter().any(|o| o.name == ns);
        match role.as_str() {
            "read" => {
                steps.push(CheckStep::fail(
                    "token",
                    format!("from {}: a read-only token of {}", token.source, who.name),
                    error::TOKEN_FIX,
                ));
                return steps;
            }
            _ if !member => {
                steps.push(CheckStep::fail(
                    "token",
                    format!("from {}: user {} is not '{ns}' nor one of its organizations", token.source, who.name),
                    format!("use a token of '{ns}', or change repo_id in [remotes.{}]", self.name),
                ));
                return steps;
            }
            r => steps.push(CheckStep::pass(
                "token",
                format!(
                    "from {}: user {}, {} token",
                    token.source,
                    who.name,
                    if r.is_empty() { "an unknown" } else { r }
                ),
            )),
        }
        let repo = &self.settings.repo_id;
        match hub.repo_info(&token).await {
            Ok(Some(info)) if !info.private && !self.settings.allow_public => {
                let e = self.public_refused();
                steps.push(CheckStep::fail("repo", e.message, e.fix.unwrap_or_default()));
                return steps;
            }
            Ok(Some(info)) => {
                steps.push(CheckStep::pass(
                    "repo",
                    format!("{repo} exists, {}", if info.private { "private" } else { "public (allow_public = true)" }),
                ));
            }
            Ok(None) => {
                let how = if self.settings.private || !self.settings.allow_public { "private" } else { "public" };
                steps.push(CheckStep::pass(
                    "repo",
                    format!("{repo} does not exist yet; the first upload (or `remote check --init`) creates it {how}"),
                ));
                return steps;
            }
            Err(e) => {
                steps.push(CheckStep::fail("repo", e.message.clone(), e.fix.unwrap_or_else(|| "check repo_id".into())));
                return steps;
            }
        }
        match hub.head(&token).await {
            Ok((sha, _)) => steps.push(CheckStep::pass(
                "revision",
                format!("'{}' at {}", self.settings.revision, &sha[..sha.len().min(12)]),
            )),
            Err(f) => {
                steps.push(CheckStep::fail("revision", f.err.message.clone(), f.err.fix.clone().unwrap_or_default()));
                return steps;
            }
        }
        steps.push(self.probe().await);
        steps
    }

    /// Upload a 4 KiB probe file through the normal path (one commit), list it, read it
    /// back, and delete it (a second commit).
    async fn probe(&self) -> CheckStep {
        let name = "probe file round-trips";
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => return CheckStep::fail(name, format!("no temporary folder: {e}"), "free space in /tmp"),
        };
        let mut rng = fastrand::Rng::new();
        let bytes: Vec<u8> = (0..4096).map(|_| rng.u8(..)).collect();
        let src = dir.path().join("probe.bin");
        if let Err(e) = std::fs::write(&src, &bytes) {
            return CheckStep::fail(name, format!("writing {}: {e}", src.display()), "free space in /tmp");
        }
        use sha2::Digest;
        let sha = crate::sync::hash::hex(&sha2::Sha256::digest(&bytes));
        let key = format!(".opsconsole-probe-{}.bin", &sha[..12]);
        let ctx = TransferCtx::default();
        let req = UploadRequest {
            key: &key,
            source: &src,
            size: bytes.len() as u64,
            sha256: &sha,
            md5: None,
            resume: ResumePoint { offset: 0, session: None },
        };
        let fail = |what: &str, e: RemoteError| {
            CheckStep::fail(name, format!("{what}: {}", e.message), e.fix.unwrap_or_else(|| "see the message".into()))
        };
        if let Err(e) = self.upload(req, &ctx).await {
            return fail("upload", e);
        }
        let staged =
            StagedFile { key: key.clone(), source: src.clone(), size: bytes.len() as u64, sha256: sha.clone() };
        match self.commit(&key, std::slice::from_ref(&staged), &ctx).await {
            Ok(listed) if listed.iter().any(|o| o.key == key && o.sha256.as_deref() == Some(sha.as_str())) => {}
            Ok(_) => {
                return CheckStep::fail(name, "the commit did not list the probe", "retry; report it if it persists");
            }
            Err(e) => return fail("commit", e),
        }
        let back = dir.path().join("back.bin");
        let read = self.download(&key, &back, &ctx).await;
        let deleted = self.delete(&key).await;
        match (read, deleted) {
            (Ok(_), Ok(())) if std::fs::read(&back).ok().as_deref() == Some(&bytes[..]) => CheckStep::pass(
                name,
                format!("{} uploaded, committed, read back and deleted (two commits)", self.repo_path(&key)),
            ),
            (Ok(_), Ok(())) => CheckStep::fail(name, "read back different bytes", "retry; report it if it persists"),
            (Err(e), _) => fail("read back", e),
            (_, Err(e)) => fail("delete", e),
        }
    }
}

fn ndjson(lines: &[serde_json::Value]) -> Vec<u8> {
    let mut body = Vec::new();
    for l in lines {
        body.extend(serde_json::to_vec(l).unwrap_or_default());
        body.push(b'\n');
    }
    body
}

/// The newest checkpoint group (by step) among listed objects.
pub fn newest_of(objects: Vec<RemoteObject>) -> Option<RemoteCheckpoint> {
    let mut groups: std::collections::BTreeMap<String, Vec<RemoteObject>> = Default::default();
    for o in objects {
        if !super::routing::is_weights(&o.key) {
            continue;
        }
        groups.entry(checkpoint_group(&o.key)).or_default().push(o);
    }
    groups
        .into_iter()
        .filter_map(|(group, files)| group_step(&group).map(|step| RemoteCheckpoint { group, step, files }))
        .max_by(|a, b| a.step.cmp(&b.step).then_with(|| a.group.cmp(&b.group)))
}

impl Remote for HfRemote {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let endpoint = self.hub.as_ref().map(|h| h.endpoint.clone()).unwrap_or_default();
        let mut s = format!("hf {}", self.settings.repo_id);
        if self.settings.revision != "main" {
            s.push_str(&format!("@{}", self.settings.revision));
        }
        if !self.prefix.is_empty() {
            s.push_str(&format!("/{}", self.prefix));
        }
        if endpoint != api::DEFAULT_ENDPOINT {
            s.push_str(&format!(" ({endpoint})"));
        }
        s
    }

    fn resume_point<'a>(
        &'a self,
        _key: &'a str,
        _sha256: &'a str,
        _session: Option<&'a str>,
    ) -> BoxFut<'a, Result<ResumePoint, RemoteError>> {
        // An object the Hub already holds is found by the batch call; a part-way multipart
        // upload is not resumable across processes (its signed URLs are not kept).
        Box::pin(async { Ok(ResumePoint { offset: 0, session: None }) })
    }

    fn upload<'a>(
        &'a self,
        req: UploadRequest<'a>,
        ctx: &'a TransferCtx,
    ) -> BoxFut<'a, Result<UploadReceipt, RemoteError>> {
        Box::pin(self.upload_at(req, ctx))
    }

    fn stat<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Option<RemoteObject>, RemoteError>> {
        Box::pin(async move {
            let hub = self.hub()?;
            let token = hub.token()?;
            self.stat_at(hub, &token, key).await
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Result<Vec<RemoteObject>, RemoteError>> {
        Box::pin(async move {
            let hub = self.hub()?;
            let token = hub.token()?;
            self.list_at(hub, &token, prefix).await
        })
    }

    fn download<'a>(
        &'a self,
        key: &'a str,
        dest: &'a Path,
        ctx: &'a TransferCtx,
    ) -> BoxFut<'a, Result<u64, RemoteError>> {
        Box::pin(self.download_at(key, dest, ctx))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<(), RemoteError>> {
        Box::pin(self.delete_at(key))
    }

    fn commit_group(&self, key: &str) -> Option<String> {
        Some(checkpoint_group(key))
    }

    fn commit<'a>(
        &'a self,
        group: &'a str,
        files: &'a [StagedFile],
        ctx: &'a TransferCtx,
    ) -> BoxFut<'a, Result<Vec<RemoteObject>, RemoteError>> {
        Box::pin(self.commit_at(group, files, ctx))
    }

    fn check<'a>(&'a self) -> BoxFut<'a, Vec<CheckStep>> {
        Box::pin(self.check_at())
    }

    /// `remote check --init`: create the repo (private unless the config allows public)
    /// when it does not exist; refuse a public one without `allow_public`.
    fn init<'a>(&'a self) -> BoxFut<'a, Vec<CheckStep>> {
        Box::pin(async move {
            let repo = &self.settings.repo_id;
            let name = "create the repo";
            match self.ensure_repo().await {
                Ok(true) => {
                    let how = if self.settings.private || !self.settings.allow_public { "private" } else { "public" };
                    vec![CheckStep::pass(name, format!("{repo} created, {how}"))]
                }
                Ok(false) => vec![CheckStep::pass(name, format!("{repo} exists already"))],
                Err(e) => vec![CheckStep::fail(
                    name,
                    e.message.clone(),
                    e.fix.clone().unwrap_or_else(|| "check repo_id and the token".into()),
                )],
            }
        })
    }
}

/// The settings of a `[remotes.NAME]` Hub section.
pub fn settings_of(cfg: &super::config::RemoteConfig) -> Option<HfSettings> {
    match cfg {
        super::config::RemoteConfig::Hf { repo_id, private, allow_public, revision, path_prefix, endpoint } => {
            Some(HfSettings {
                repo_id: repo_id.clone(),
                private: *private,
                allow_public: *allow_public,
                revision: revision.clone(),
                path_prefix: path_prefix.clone(),
                endpoint: endpoint.clone(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HfSettings {
        HfSettings {
            repo_id: "me/rsm-weights".into(),
            private: true,
            allow_public: false,
            revision: "main".into(),
            path_prefix: String::new(),
            endpoint: None,
        }
    }

    #[test]
    fn bad_settings_are_named_by_key() {
        assert!(validate("hf", &settings()).is_empty());
        let mut s = settings();
        s.repo_id = "no-slash".into();
        s.revision = "".into();
        s.path_prefix = "../up".into();
        s.endpoint = Some("ftp://x".into());
        s.private = false;
        let keys: Vec<String> = validate("hf", &s).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "remotes.hf.repo_id",
                "remotes.hf.revision",
                "remotes.hf.path_prefix",
                "remotes.hf.endpoint",
                "remotes.hf.private"
            ]
        );
        s = settings();
        s.private = false;
        s.allow_public = true;
        assert!(validate("hf", &s).is_empty());
        s.repo_id = "a/b--c".into();
        assert_eq!(validate("hf", &s).len(), 1);
    }

    #[test]
    fn checkpoints_group_by_folder_or_file() {
        assert_eq!(checkpoint_group("out/checkpoint-500/model.safetensors"), "out/checkpoint-500");
        assert_eq!(checkpoint_group("out/checkpoint-500/global_step500/mp_rank_00.pt"), "out/checkpoint-500");
        assert_eq!(checkpoint_group("checkpoints/v68_step_1200.pt"), "checkpoints/v68_step_1200.pt");
        assert_eq!(checkpoint_group("checkpoint-7"), "checkpoint-7");
        assert_eq!(group_step("out/checkpoint-500"), Some(500));
        assert_eq!(group_step("checkpoints/v68_step_1200.pt"), Some(1200));
    }

    #[test]
    fn newest_checkpoint_is_by_step_not_by_name() {
        let o =
            |k: &str| RemoteObject { key: k.into(), id: k.into(), size: 1, sha256: None, md5: None, modified_ms: None };
        let newest = newest_of(vec![
            o("out/checkpoint-900/model.safetensors"),
            o("out/checkpoint-1000/model.safetensors"),
            o("out/checkpoint-1000/optimizer.pt"),
            o("checkpoints/v1_step_950.pt"),
            o("README.md"),
        ])
        .unwrap();
        assert_eq!((newest.group.as_str(), newest.step, newest.files.len()), ("out/checkpoint-1000", 1000, 2));
    }

    #[test]
    fn the_pacer_grants_a_burst_then_spaces_commits() {
        let p = Pacer::new(2, Duration::from_secs(10));
        assert_eq!(p.take(), None);
        assert_eq!(p.take(), None);
        let wait = p.take().expect("third commit waits");
        assert!(wait > Duration::from_secs(9) && wait <= Duration::from_secs(10), "{wait:?}");
    }

    #[test]
    fn repo_paths_carry_the_prefix() {
        let mut s = settings();
        s.path_prefix = "/runs/v68/".into();
        let r = HfRemote::new("hf", s);
        assert_eq!(r.repo_path("checkpoints/a.pt"), "runs/v68/checkpoints/a.pt");
        assert_eq!(r.key_of("runs/v68/checkpoints/a.pt").as_deref(), Some("checkpoints/a.pt"));
        assert_eq!(r.key_of("other/a.pt"), None);
        assert_eq!(r.describe(), "hf me/rsm-weights/runs/v68");
    }
}

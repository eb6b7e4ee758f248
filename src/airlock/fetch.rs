//! Reading from a level's remote for import and resume: the remote a level stores into,
//! built as the sync engine builds it, and downloads through the `Remote` trait —
//! resumable (a `.part` left by an interrupted try is continued), verified by the remote's
//! checksum before the file is renamed into place, retried on transient failures, with
//! progress and cancellation.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::Config;
use crate::sync::remote::{ErrorKind, Remote, RemoteError, TransferCtx};

/// How many times a download is tried in one job (a cut connection resumes from the
/// bytes already in the `.part` file).
pub const ATTEMPTS: u32 = 5;

/// A level's remote.
#[derive(Clone)]
pub struct LevelRemote {
    /// `L2` or `L3`.
    pub level: &'static str,
    /// The `[remotes.NAME]` name.
    pub name: String,
    pub remote: Arc<dyn Remote>,
}

impl std::fmt::Debug for LevelRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LevelRemote").field("level", &self.level).field("name", &self.name).finish()
    }
}

/// The remote `level` (`L2`/`L3`) stores into, or why there is none, in words.
pub fn level_remote(workspace: &Path, cfg: &Config, level: &str) -> Result<LevelRemote, String> {
    let (name, l) = match level {
        "L2" => ("L2", &cfg.sync.l2),
        "L3" => ("L3", &cfg.sync.l3),
        other => return Err(format!("no level {other}")),
    };
    if !l.enabled {
        return Err(format!("{name} is disabled ([sync.{}] enabled = false)", name.to_ascii_lowercase()));
    }
    if !cfg.remotes.contains_key(&l.remote) {
        return Err(format!("{name}'s remote '{}' is not configured ([remotes.{}])", l.remote, l.remote));
    }
    let env = crate::sync::RemoteEnv::with_roots(workspace, &cfg.checkpoints.roots);
    let mut built = crate::sync::engine::build_remotes_in(&cfg.remotes, &env);
    let remote = built.remove(&l.remote).ok_or_else(|| format!("remote '{}' could not be built", l.remote))?;
    Ok(LevelRemote { level: name, name: l.remote.clone(), remote })
}

/// Downloads `key` from `remote` into `dest` (through `dest.part`), verified, retried on
/// transient failures. `progress(done, total)` is called about five times a second.
pub fn download(
    rt: &tokio::runtime::Runtime,
    remote: &dyn Remote,
    key: &str,
    dest: &Path,
    total: u64,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64, RemoteError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let ctx = TransferCtx::default();
        let result = rt.block_on(async {
            let fut = remote.download(key, dest, &ctx);
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    r = &mut fut => return r,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if cancel.load(Ordering::Relaxed) {
                            ctx.cancel.cancel();
                        }
                        progress(ctx.bytes_done.load(Ordering::Relaxed).min(total), total);
                    }
                }
            }
        });
        match result {
            Ok(n) => {
                progress(total, total);
                return Ok(n);
            }
            Err(e) if e.kind == ErrorKind::Transient && attempt < ATTEMPTS && !cancel.load(Ordering::Relaxed) => {
                let wait = e.retry_after.unwrap_or(Duration::from_millis(500 << attempt)).min(Duration::from_secs(30));
                tracing::info!("download of {key} failed ({}); trying again in {wait:?}", e.reason());
                std::thread::sleep(wait);
            }
            Err(e) => return Err(e),
        }
    }
}

/// `dest` with `suffix` appended to its file name.
pub fn with_suffix(dest: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(suffix);
    std::path::PathBuf::from(s)
}

/// `p`, or `p.1`, `p.2`, … : the first name nothing holds yet (a link counts as held).
pub fn unique(p: &Path) -> std::path::PathBuf {
    if std::fs::symlink_metadata(p).is_err() {
        return p.to_path_buf();
    }
    (1..)
        .map(|i| with_suffix(p, &format!(".{i}")))
        .find(|c| std::fs::symlink_metadata(c).is_err())
        .unwrap_or_else(|| p.to_path_buf())
}

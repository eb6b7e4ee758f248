//! Confirmations read from the sync ledger and verified on the remotes, for the prune
//! planner and executor.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoints::{ConfirmationSource, NotConfirmed};
use crate::config::Config;

/// Where confirmations come from: the workspace's sync ledger, when there is one, read
/// against the levels and remotes configured now. Without a ledger nothing is confirmed
/// anywhere, so only the explicit override deletes anything.
pub fn confirmation_source(workspace: &Path, cfg: &Config) -> Arc<dyn ConfirmationSource + Send + Sync> {
    if crate::sync::ledger::ledger_path(workspace).is_file() {
        // On a full disk the ledger is read from a copy: confirmations still count.
        match crate::sync::ledger::Ledger::open_for_reading(workspace) {
            Ok((ledger, read_only)) => {
                if let Some(why) = read_only {
                    tracing::warn!("{why}");
                }
                let level_remotes = cfg
                    .sync
                    .levels()
                    .iter()
                    .filter(|(_, _, l)| l.enabled && cfg.remotes.contains_key(&l.remote))
                    .map(|(n, _, l)| (n.to_string(), l.remote.clone()))
                    .collect();
                return Arc::new(LedgerConfirmations {
                    workspace: workspace.to_path_buf(),
                    ledger: std::sync::Mutex::new(ledger),
                    level_remotes,
                    remotes: cfg.remotes.clone(),
                    env: crate::sync::RemoteEnv::with_roots(workspace, &cfg.checkpoints.roots),
                });
            }
            Err(e) => tracing::warn!("the sync ledger cannot be read; treating every checkpoint as unconfirmed: {e}"),
        }
    }
    Arc::new(NotConfirmed)
}

/// Confirmations read from the sync ledger: a checkpoint is confirmed on a level when the
/// ledger holds a verified copy of exactly the bytes on disk now (every file of a folder),
/// recorded on the remote the level stores into now. Before a deletion each copy is
/// verified on that remote; a copy that fails is queued to be stored again.
struct LedgerConfirmations {
    workspace: PathBuf,
    ledger: std::sync::Mutex<crate::sync::ledger::Ledger>,
    /// (level, remote name) of each enabled level whose remote is configured.
    level_remotes: Vec<(String, String)>,
    remotes: crate::sync::RemotesConfig,
    env: crate::sync::RemoteEnv,
}

impl LedgerConfirmations {
    fn abs(&self, rel_path: &str) -> PathBuf {
        let p = Path::new(rel_path);
        if p.is_absolute() { p.to_path_buf() } else { self.workspace.join(p) }
    }

    /// Every file of the item, as ledger keys (workspace-relative).
    fn keys(&self, rel_path: &str) -> Result<Vec<String>, String> {
        let mut files = Vec::new();
        collect_files(&self.abs(rel_path), &mut files);
        if files.is_empty() {
            return Err("nothing to verify: no file found".into());
        }
        files
            .iter()
            .map(|f| {
                crate::sync::routing::relative_key(&self.workspace, f)
                    .ok_or_else(|| format!("{} is outside the workspace: no copy is recorded for it", f.display()))
            })
            .collect()
    }

    fn verify_files(&self, keys: &[String], level: &str) -> Result<(), String> {
        let Some((_, remote_name)) = self.level_remotes.iter().find(|(l, _)| l.eq_ignore_ascii_case(level)) else {
            return Err(format!("{level} has no configured remote"));
        };
        let mut ledger = self.ledger.lock().map_err(|_| "the ledger is unavailable".to_string())?;
        let mut entries = Vec::new();
        for key in keys {
            match ledger.entry(key, level).map_err(|e| e.to_string())? {
                Some(e) if e.state == crate::sync::ledger::UploadState::Confirmed && e.remote == *remote_name => {
                    entries.push(e)
                }
                Some(e) if e.state == crate::sync::ledger::UploadState::Confirmed => {
                    return Err(format!("{key} was stored on remote '{}', not on '{remote_name}'", e.remote));
                }
                _ => return Err(format!("{key} is not confirmed on {level}")),
            }
        }
        let remotes = crate::sync::engine::build_remotes_in(&self.remotes, &self.env);
        let Some(remote) = remotes.get(remote_name).cloned() else {
            return Err(format!("remote '{remote_name}' is not configured"));
        };
        // Remote calls are async: run them on a runtime of their own, on a thread of
        // their own (this may be called from a thread that is inside a runtime).
        let results: Vec<Result<Option<crate::sync::remote::RemoteObject>, String>> = std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the async runtime: {e}"))?;
                Ok::<_, String>(rt.block_on(async {
                    let mut out = Vec::new();
                    for e in &entries {
                        out.push(remote.stat(&e.path).await.map_err(|err| err.reason()));
                    }
                    out
                }))
            })
            .join()
            .unwrap_or_else(|_| Err("the verification stopped".into()))
        })?;
        let now = crate::unixtime::now_ms();
        let mut first_error = None;
        // A folder names the file that failed; a single file is the item itself.
        let copy = |key: &str| if keys.len() > 1 { format!("the copy of {key}") } else { "the copy".to_string() };
        for (e, got) in entries.iter().zip(results) {
            let why = match got {
                // The remote could not be asked (not mounted, no access): keep the file;
                // the copy may well be fine, so it is not queued again.
                Err(err) => {
                    Some((format!("{} on remote '{remote_name}' could not be verified: {err}", copy(&e.path)), false))
                }
                Ok(obj) => crate::sync::verify::check(obj.as_ref(), e).err().map(|why| {
                    (format!("{} on remote '{remote_name}' failed verification: {why}", copy(&e.path)), true)
                }),
            };
            if let Some((why, requeue)) = why {
                if requeue {
                    let reason = format!("{why}; it is stored again");
                    if let Err(err) = ledger.requeue_unverified(&e.path, &e.level, &e.sha256, &reason, now) {
                        tracing::warn!("could not queue {} again: {err}", e.path);
                    }
                }
                first_error.get_or_insert(if requeue { format!("{why} (queued to be stored again)") } else { why });
            }
        }
        match first_error {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return };
    if meta.is_file() {
        out.push(path.to_path_buf());
    } else if meta.is_dir()
        && let Ok(rd) = std::fs::read_dir(path)
    {
        for e in rd.flatten() {
            collect_files(&e.path(), out);
        }
    }
}

impl ConfirmationSource for LedgerConfirmations {
    fn confirmed_on(&self, rel_path: &str) -> Vec<String> {
        let Ok(ledger) = self.ledger.lock() else { return Vec::new() };
        let lr: Vec<(&str, &str)> = self.level_remotes.iter().map(|(l, r)| (l.as_str(), r.as_str())).collect();
        // Any error reading the ledger means "not confirmed": it can only keep more.
        ledger.confirmed_levels(&self.workspace, Path::new(rel_path), &lr).unwrap_or_default()
    }

    fn verify(&self, rel_path: &str, level: &str) -> Result<(), String> {
        let keys = self.keys(rel_path)?;
        self.verify_files(&keys, level)
    }

    fn note(&self, rel_path: &str) -> Option<String> {
        let keys = self.keys(rel_path).ok()?;
        let ledger = self.ledger.lock().ok()?;
        ledger.unconfirmed_note(&keys).ok().flatten()
    }
}

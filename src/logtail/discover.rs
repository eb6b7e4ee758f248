//! Which log to follow: `log.path`, the newest match of `log.glob`, or by default the
//! newest `*.log` under `experiments/*/logs/`, else the newest `*.log` in the workspace.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::config::LogConfig;

/// A log that could be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCandidate {
    pub path: PathBuf,
    /// Last modification (`UNIX_EPOCH` if the file does not exist yet).
    pub modified: SystemTime,
    pub size_bytes: u64,
    pub exists: bool,
}

/// Folders never searched for logs.
const SKIP_DIRS: &[&str] = &["node_modules", "target", "__pycache__", "venv", "wandb", "checkpoints"];
/// How deep the workspace-wide search goes, and how many entries it looks at.
const MAX_DEPTH: usize = 5;
const MAX_ENTRIES: usize = 50_000;

/// Candidate logs, newest first. With `log.path` the one configured file (even if it
/// does not exist yet: it is followed until it appears).
pub fn candidates(workspace: &Path, cfg: &LogConfig) -> Vec<LogCandidate> {
    if let Some(p) = &cfg.path {
        let path = if p.is_absolute() { p.clone() } else { workspace.join(p) };
        return vec![candidate(path)];
    }
    let mut found = Vec::new();
    if let Some(g) = &cfg.glob {
        let Ok(matcher) = crate::glob::Glob::path(g) else {
            return Vec::new();
        };
        walk(workspace, workspace, 0, &mut 0, &mut |rel, path| {
            if matcher.is_match(rel) {
                found.push(candidate(path.to_path_buf()));
            }
        });
    } else {
        // experiments/*/logs/*.log
        if let Ok(exps) = std::fs::read_dir(workspace.join("experiments")) {
            for exp in exps.flatten() {
                if let Ok(logs) = std::fs::read_dir(exp.path().join("logs")) {
                    for f in logs.flatten() {
                        let p = f.path();
                        if is_log(&p) && p.is_file() {
                            found.push(candidate(p));
                        }
                    }
                }
            }
        }
        if found.is_empty() {
            walk(workspace, workspace, 0, &mut 0, &mut |_, path| {
                if is_log(path) {
                    found.push(candidate(path.to_path_buf()));
                }
            });
        }
    }
    found.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| a.path.cmp(&b.path)));
    found
}

/// The log to follow: the newest candidate.
pub fn select(workspace: &Path, cfg: &LogConfig) -> Option<LogCandidate> {
    candidates(workspace, cfg).into_iter().next()
}

/// A candidate newer than the one followed (a new run started), if any.
pub fn newer_than(workspace: &Path, cfg: &LogConfig, current: &Path) -> Option<LogCandidate> {
    let newest = select(workspace, cfg)?;
    if newest.path == current {
        return None;
    }
    let current_mtime = std::fs::metadata(current).and_then(|m| m.modified()).ok();
    match current_mtime {
        Some(t) if newest.modified <= t => None,
        _ => Some(newest),
    }
}

fn is_log(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "log")
}

fn candidate(path: PathBuf) -> LogCandidate {
    match std::fs::metadata(&path) {
        Ok(m) => LogCandidate {
            modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            size_bytes: m.len(),
            exists: true,
            path,
        },
        Err(_) => LogCandidate { path, modified: SystemTime::UNIX_EPOCH, size_bytes: 0, exists: false },
    }
}

/// Files under `dir` (not following links, skipping hidden and bulky folders), with
/// their path relative to `root`.
fn walk(root: &Path, dir: &Path, depth: usize, seen: &mut usize, f: &mut dyn FnMut(&Path, &Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        *seen += 1;
        if *seen > MAX_ENTRIES {
            return;
        }
        let Ok(ft) = e.file_type() else { continue };
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if ft.is_dir() {
            if depth + 1 < MAX_DEPTH && !name.starts_with('.') && !SKIP_DIRS.contains(&name.as_ref()) {
                walk(root, &path, depth + 1, seen, f);
            }
        } else if ft.is_file()
            && let Ok(rel) = path.strip_prefix(root)
        {
            f(rel, &path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn touch(root: &Path, rel: &str, age_s: u64) -> PathBuf {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, b"x\n").expect("write");
        let t = SystemTime::now() - Duration::from_secs(age_s);
        let f = std::fs::File::options().write(true).open(&p).expect("open");
        f.set_modified(t).expect("mtime");
        p
    }

    #[test]
    fn default_prefers_experiment_logs_newest_first() {
        let ws = tempfile::tempdir().expect("tmp");
        let old = touch(ws.path(), "experiments/v67/logs/train.log", 500);
        let new = touch(ws.path(), "experiments/v68/logs/train.log", 10);
        touch(ws.path(), "other/newest.log", 1);
        let c = candidates(ws.path(), &LogConfig::default());
        assert_eq!(c.iter().map(|c| c.path.clone()).collect::<Vec<_>>(), vec![new.clone(), old.clone()]);
        assert_eq!(newer_than(ws.path(), &LogConfig::default(), &old).map(|c| c.path), Some(new.clone()));
        assert_eq!(newer_than(ws.path(), &LogConfig::default(), &new), None);
    }

    #[test]
    fn falls_back_to_any_log_skipping_hidden() {
        let ws = tempfile::tempdir().expect("tmp");
        touch(ws.path(), ".git/x.log", 1);
        let a = touch(ws.path(), "runs/a/out.log", 5);
        touch(ws.path(), "notes.txt", 1);
        assert_eq!(select(ws.path(), &LogConfig::default()).map(|c| c.path), Some(a));
    }

    #[test]
    fn glob_and_path() {
        let ws = tempfile::tempdir().expect("tmp");
        let a = touch(ws.path(), "logs/run1/train.log", 50);
        touch(ws.path(), "logs/run1/deep/x/train.log", 1);
        let cfg = LogConfig { glob: Some("logs/*/train.log".into()), ..Default::default() };
        assert_eq!(select(ws.path(), &cfg).map(|c| c.path), Some(a));
        let cfg = LogConfig { path: Some("later.log".into()), ..Default::default() };
        let c = select(ws.path(), &cfg).expect("configured");
        assert!(!c.exists);
        assert_eq!(c.path, ws.path().join("later.log"));
    }
}

//! Markers of jobs running on a workspace, seen from any process: a job holds an exclusive
//! `flock` on `.opsconsole/jobs/<kind>-<pid>-<n>.lock` for as long as it runs. The kernel
//! drops the lock when the process ends, even by `kill -9`, so a marker whose lock can be
//! taken is stale (and removed). The checklist's `jobs` item reads them; prune holds one
//! (console and CLI alike). Several jobs of one kind may run at once: each has its own file.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// `<workspace>/.opsconsole/jobs`.
pub fn jobs_dir(workspace: &Path) -> PathBuf {
    workspace.join(".opsconsole").join("jobs")
}

/// A held marker; dropping it ends it.
#[derive(Debug)]
pub struct JobMarker {
    _file: File,
    path: PathBuf,
}

impl Drop for JobMarker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Takes an exclusive `flock` on `file` without waiting: `false` when another open file
/// description holds it. The one `flock` in the console (the sync lock uses it too).
pub(crate) fn try_lock(file: &File) -> std::io::Result<bool> {
    match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Marks a job of `kind` (`prune`, `bundle`, …) as running until the marker is dropped.
pub fn hold(workspace: &Path, kind: &str) -> std::io::Result<JobMarker> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = jobs_dir(workspace);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{kind}-{}-{}.lock", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    if !try_lock(&file)? {
        return Err(std::io::Error::other(format!("{} is locked by another process", path.display())));
    }
    Ok(JobMarker { _file: file, path })
}

/// Jobs running now: (kind, pid). Stale markers are removed.
pub fn running(workspace: &Path) -> Vec<(String, u32)> {
    let Ok(rd) = std::fs::read_dir(jobs_dir(workspace)) else { return Vec::new() };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".lock") else { continue };
        let mut parts = stem.rsplitn(3, '-');
        let (Some(_n), Some(pid), Some(kind)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        let Ok(file) = OpenOptions::new().read(true).open(e.path()) else { continue };
        match try_lock(&file) {
            Ok(false) => out.push((kind.to_string(), pid)),
            Ok(true) => {
                let _ = std::fs::remove_file(e.path());
            }
            Err(_) => {}
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_markers_are_seen_and_stale_ones_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(running(dir.path()).is_empty());
        let a = hold(dir.path(), "prune").expect("hold");
        let b = hold(dir.path(), "prune").expect("a second one");
        let me = std::process::id();
        assert_eq!(running(dir.path()), vec![("prune".to_string(), me), ("prune".to_string(), me)]);
        drop(a);
        assert_eq!(running(dir.path()), vec![("prune".to_string(), me)]);
        drop(b);
        // A marker left by a process that died: nobody holds its lock.
        std::fs::write(jobs_dir(dir.path()).join("bundle-999999-0.lock"), "").expect("write");
        assert!(running(dir.path()).is_empty());
        assert!(!jobs_dir(dir.path()).join("bundle-999999-0.lock").exists(), "stale marker removed");
    }
}

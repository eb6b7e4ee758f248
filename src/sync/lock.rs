//! One engine per workspace: an exclusive `flock` on `.opsconsole/engine.lock`, held for
//! the engine's life and released by the kernel when the process ends, even by `kill -9`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// `<workspace>/.opsconsole/engine.lock`.
pub fn lock_path(workspace: &Path) -> PathBuf {
    workspace.join(".opsconsole").join("engine.lock")
}

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct EngineLock {
    file: File,
    path: PathBuf,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another engine holds it (its pid, when it wrote one).
    #[error("another sync engine{} is running on this workspace ({})", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), .path.display())]
    Held { pid: Option<u32>, path: PathBuf },
    #[error("cannot use the lock {}: {}", .1.display(), .0)]
    Io(io::Error, PathBuf),
}

fn open(path: &Path) -> Result<File, LockError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| LockError::Io(e, dir.to_path_buf()))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| LockError::Io(e, path.to_path_buf()))
}

fn try_flock(file: &File) -> io::Result<bool> {
    crate::joblock::try_lock(file)
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

impl EngineLock {
    /// Take the workspace's engine lock, or say who holds it.
    pub fn acquire(workspace: &Path) -> Result<Self, LockError> {
        let path = lock_path(workspace);
        let mut file = open(&path)?;
        match try_flock(&file) {
            Ok(true) => {
                // The pid only names the holder for others ("daemon pid N"): the flock is
                // the lock. On a full disk the pid cannot be written; the lock still holds.
                let pid = std::process::id();
                let _ = file
                    .set_len(0)
                    .and_then(|()| file.rewind())
                    .and_then(|()| writeln!(file, "{pid}"))
                    .and_then(|()| file.flush());
                Ok(Self { file, path })
            }
            Ok(false) => Err(LockError::Held { pid: read_pid(&mut file), path }),
            Err(e) => Err(LockError::Io(e, path)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for EngineLock {
    fn drop(&mut self) {
        // The kernel drops the flock with the descriptor; say nobody holds it.
        let _ = self.file.set_len(0);
    }
}

/// Is an engine running on this workspace? `Some(pid)` (0 when unknown) when the lock is
/// held by someone, `None` when free. Does not keep the lock.
pub fn holder(workspace: &Path) -> Option<u32> {
    let path = lock_path(workspace);
    if !path.exists() {
        return None;
    }
    let mut file = open(&path).ok()?;
    match try_flock(&file) {
        Ok(true) => None, // free; our descriptor closes (and unlocks) on return
        Ok(false) => Some(read_pid(&mut file).unwrap_or(0)),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(holder(dir.path()), None);
        let lock = EngineLock::acquire(dir.path()).expect("first");
        // flock locks belong to the open file description: a second open conflicts even
        // in the same process.
        match EngineLock::acquire(dir.path()) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        assert_eq!(holder(dir.path()), Some(std::process::id()));
        drop(lock);
        assert_eq!(holder(dir.path()), None);
        EngineLock::acquire(dir.path()).expect("free again");
    }
}

//! One engine per workspace: an exclusive `flock` on `.opsconsole/engine.lock`, held for
//! the engine's life and released by the kernel when the process ends, even by `kill -9`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// `<workspace>/.opsconsole/engine.lock`.
pub fn lock_path(workspace: &Path) -> PathBuf {
    workspace.join(".opsconsole").join("engine.lock")
}

/// What kind of process holds the lock, as the lock file records it after the pid
/// (`4242 console`): a console running its own engine is not a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `opsconsole sync --daemon` (or plain `sync`): runs until stopped.
    Daemon,
    /// `sync --once`: one pass everywhere, then exits.
    Once,
    /// A console that started the engine itself (it stops with the console).
    Console,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Daemon => "daemon",
            Role::Once => "once",
            Role::Console => "console",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "daemon" => Some(Role::Daemon),
            "once" => Some(Role::Once),
            "console" => Some(Role::Console),
            _ => None,
        }
    }
}

/// Who holds the lock: its pid (0 when it wrote none) and role (None for a lock written
/// before roles were recorded, or not written at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub role: Option<Role>,
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
    /// Another engine holds it (its pid and role, when it wrote them).
    #[error("another sync engine{} is running on this workspace ({})", held_by(*.pid, *.role), .path.display())]
    Held { pid: Option<u32>, role: Option<Role>, path: PathBuf },
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

fn held_by(pid: Option<u32>, role: Option<Role>) -> String {
    match (pid, role) {
        (Some(p), Some(Role::Console)) => format!(" (a console, pid {p})"),
        (Some(p), Some(r)) => format!(" ({}, pid {p})", r.as_str()),
        (Some(p), None) => format!(" (pid {p})"),
        (None, _) => String::new(),
    }
}

/// The pid and role the holder wrote (`4242 console`; a bare `4242` from older versions).
fn read_holder(file: &mut File) -> (Option<u32>, Option<Role>) {
    let mut s = String::new();
    if file.rewind().is_err() || file.read_to_string(&mut s).is_err() {
        return (None, None);
    }
    let mut words = s.split_whitespace();
    let pid = words.next().and_then(|w| w.parse().ok());
    (pid, words.next().and_then(Role::parse))
}

impl EngineLock {
    /// Take the workspace's engine lock as a daemon, or say who holds it.
    pub fn acquire(workspace: &Path) -> Result<Self, LockError> {
        Self::acquire_as(workspace, Role::Daemon)
    }

    /// Take the workspace's engine lock, recording this process's pid and role.
    pub fn acquire_as(workspace: &Path, role: Role) -> Result<Self, LockError> {
        let path = lock_path(workspace);
        let mut file = open(&path)?;
        match try_flock(&file) {
            Ok(true) => {
                // The pid and role only name the holder for others ("daemon pid N",
                // "console pid N"): the flock is the lock. On a full disk they cannot be
                // written; the lock still holds.
                let pid = std::process::id();
                let _ = file
                    .set_len(0)
                    .and_then(|()| file.rewind())
                    .and_then(|()| writeln!(file, "{pid} {}", role.as_str()))
                    .and_then(|()| file.flush());
                Ok(Self { file, path })
            }
            Ok(false) => {
                let (pid, role) = read_holder(&mut file);
                Err(LockError::Held { pid, role, path })
            }
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
    holder_info(workspace).map(|h| h.pid)
}

/// Who holds the lock (pid and role), or `None` when it is free. Does not keep the lock.
pub fn holder_info(workspace: &Path) -> Option<Holder> {
    let path = lock_path(workspace);
    if !path.exists() {
        return None;
    }
    let mut file = open(&path).ok()?;
    match try_flock(&file) {
        Ok(true) => None, // free; our descriptor closes (and unlocks) on return
        Ok(false) => {
            let (pid, role) = read_holder(&mut file);
            Some(Holder { pid: pid.unwrap_or(0), role })
        }
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
        assert_eq!(holder_info(dir.path()).and_then(|h| h.role), Some(Role::Daemon));
        drop(lock);
        assert_eq!(holder(dir.path()), None);
        EngineLock::acquire(dir.path()).expect("free again");
    }

    #[test]
    fn the_lock_records_a_console_as_a_console() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _lock = EngineLock::acquire_as(dir.path(), Role::Console).expect("first");
        let text = std::fs::read_to_string(lock_path(dir.path())).expect("lock file");
        assert_eq!(text, format!("{} console\n", std::process::id()));
        assert_eq!(holder_info(dir.path()), Some(Holder { pid: std::process::id(), role: Some(Role::Console) }));
        match EngineLock::acquire(dir.path()) {
            Err(e @ LockError::Held { role: Some(Role::Console), .. }) => {
                assert!(e.to_string().contains("(a console, pid "), "{e}")
            }
            other => panic!("expected Held by a console, got {other:?}"),
        }
    }

    #[test]
    fn a_lock_written_by_an_older_version_has_no_role() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _lock = EngineLock::acquire(dir.path()).expect("lock");
        std::fs::write(lock_path(dir.path()), "4242\n").expect("rewrite");
        assert_eq!(holder_info(dir.path()), Some(Holder { pid: 4242, role: None }));
    }
}

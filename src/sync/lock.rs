//! One engine per workspace: an exclusive `flock` on `.opsconsole/engine.lock`, held for
//! the engine's life and released by the kernel when the process ends, even by `kill -9`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// How long a lock found held is tried again before its holder counts as an engine. A
/// reader asking who holds it ([`holder_info`]: `status`, the checklist, a bundle, a
/// console deciding whether to start its own engine) takes it for an instant; an engine
/// starting, or another reader asking, in that instant must not take the reader for an
/// engine (a daemon would exit, a console would report a daemon that is not there and
/// start none, and nothing would be stored).
const READER_GRACE: Duration = Duration::from_millis(200);

/// [`try_flock`], trying again for [`READER_GRACE`] while it is held: a holder that lets
/// go by then was a reader. `Ok(true)`: taken.
fn try_flock_past_readers(file: &File) -> io::Result<bool> {
    let deadline = Instant::now() + READER_GRACE;
    loop {
        if try_flock(file)? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a process with this pid exists (as this process sees them).
fn alive(pid: u32) -> bool {
    pid != 0 && Path::new("/proc").join(pid.to_string()).exists()
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
        match try_flock_past_readers(&file) {
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
            if pid.is_some_and(alive) {
                return Some(Holder { pid: pid.unwrap_or(0), role });
            }
            // No live pid recorded: an engine in its first instant, or another reader
            // holding the lock for an instant (over a stale or empty record). Look again.
            match try_flock_past_readers(&file) {
                Ok(false) => {
                    let (pid, role) = read_holder(&mut file);
                    Some(Holder { pid: pid.unwrap_or(0), role })
                }
                Ok(true) | Err(_) => None,
            }
        }
        Err(_) => None,
    }
}

/// [`holder`] asked again and again (the Uploads panel asks every second): the lock file
/// stays open between asks and the holder's record is read again only when the file
/// changed (its size, modification or change time), so an ask while an engine holds the
/// lock is three system calls (the path's `stat`, the `flock` test, the holder's `/proc`
/// entry) instead of twelve (the folder made, the file opened, read twice and closed).
/// A lock file replaced is opened again; one removed means nobody holds it. The answers
/// are [`holder_info`]'s: the descriptor kept takes the lock only for the instant of the
/// test, as the one `holder_info` opens does, and lets go at once.
#[derive(Debug, Default)]
pub struct HolderProbe {
    /// The lock file open, and its (device, inode).
    open: Option<(File, (u64, u64))>,
    /// The holder's record, and the file's (size, mtime, ctime) it was read at.
    record: Option<(FileStamp, (Option<u32>, Option<Role>))>,
}

/// (size, mtime in ns, ctime in ns) of the lock file.
type FileStamp = (u64, i64, i64);

impl HolderProbe {
    /// Who holds the workspace's lock, as [`holder`] says.
    pub fn holder(&mut self, workspace: &Path) -> Option<u32> {
        self.holder_info(workspace).map(|h| h.pid)
    }

    /// Who holds the workspace's lock (pid and role), as [`holder_info`] says.
    pub fn holder_info(&mut self, workspace: &Path) -> Option<Holder> {
        use std::os::unix::fs::MetadataExt;
        let path = lock_path(workspace);
        let Ok(meta) = std::fs::metadata(&path) else {
            *self = Self::default();
            return None;
        };
        let id = (meta.dev(), meta.ino());
        if self.open.as_ref().is_none_or(|(_, open)| *open != id) {
            *self = Self::default();
            // Opened to be tested, never made: `holder_info` does not make it either.
            let file = OpenOptions::new().read(true).open(&path).ok()?;
            let opened = file.metadata().ok().map(|m| (m.dev(), m.ino()))?;
            self.open = Some((file, opened));
            if opened != id {
                // Replaced between the two: asked the long way now, kept at the next ask.
                *self = Self::default();
                return holder_info(workspace);
            }
        }
        let stamp = (
            meta.len(),
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        );
        let (file, _) = self.open.as_mut()?;
        match try_flock(file) {
            Ok(true) => {
                // Free: let go at once (closing the descriptor did that for `holder_info`).
                let _ = rustix::fs::flock(&*file, rustix::fs::FlockOperation::Unlock);
                self.record = None;
                None
            }
            Ok(false) => {
                let (pid, role) = match self.record {
                    Some((at, record)) if at == stamp => record,
                    _ => {
                        let record = read_holder(file);
                        self.record = Some((stamp, record));
                        record
                    }
                };
                if pid.is_some_and(alive) {
                    return Some(Holder { pid: pid.unwrap_or(0), role });
                }
                // No live pid recorded: as `holder_info`, look again past readers.
                self.record = None;
                match try_flock_past_readers(file) {
                    Ok(false) => {
                        let (pid, role) = read_holder(file);
                        Some(Holder { pid: pid.unwrap_or(0), role })
                    }
                    Ok(true) => {
                        let _ = rustix::fs::flock(&*file, rustix::fs::FlockOperation::Unlock);
                        None
                    }
                    Err(_) => None,
                }
            }
            Err(_) => {
                *self = Self::default();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_probe_answers_as_holder_info_and_never_keeps_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut probe = HolderProbe::default();
        assert_eq!(probe.holder_info(dir.path()), None, "no lock file");
        assert!(!lock_path(dir.path()).exists(), "the probe makes no lock file");
        let lock = EngineLock::acquire_as(dir.path(), Role::Console).expect("lock");
        let me = Holder { pid: std::process::id(), role: Some(Role::Console) };
        assert_eq!(probe.holder_info(dir.path()), Some(me));
        assert_eq!(probe.holder_info(dir.path()), holder_info(dir.path()));
        drop(lock);
        assert_eq!(probe.holder_info(dir.path()), None, "let go");
        // The probe's descriptor, kept open, let go of the lock after its test: an engine
        // takes it (twice in a row, the probe asking in between).
        let lock = EngineLock::acquire_as(dir.path(), Role::Daemon).expect("taken beside the probe");
        assert_eq!(probe.holder_info(dir.path()).and_then(|h| h.role), Some(Role::Daemon));
        drop(lock);
        assert_eq!(probe.holder_info(dir.path()), None);
        drop(EngineLock::acquire(dir.path()).expect("taken again"));
        // The lock file removed and made again by another engine: the new file is asked.
        std::fs::remove_file(lock_path(dir.path())).expect("rm");
        assert_eq!(probe.holder_info(dir.path()), None, "no lock file");
        let _lock = EngineLock::acquire_as(dir.path(), Role::Once).expect("new file");
        assert_eq!(probe.holder_info(dir.path()).and_then(|h| h.role), Some(Role::Once));
    }

    /// The record is read again when the file changed, even when its size and
    /// modification time are as they were (the change time moves).
    #[test]
    fn a_record_rewritten_with_its_size_and_mtime_kept_is_read_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _lock = EngineLock::acquire_as(dir.path(), Role::Console).expect("lock");
        let path = lock_path(dir.path());
        let mut probe = HolderProbe::default();
        assert_eq!(probe.holder_info(dir.path()).and_then(|h| h.role), Some(Role::Console));
        let before = std::fs::metadata(&path).expect("meta");
        // "console" and "daemon " are as long.
        std::fs::write(&path, format!("{} daemon \n", std::process::id())).expect("write");
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_modified(before.modified().expect("mtime")).expect("mtime back");
        let after = std::fs::metadata(&path).expect("meta");
        assert_eq!((after.len(), after.modified().ok()), (before.len(), before.modified().ok()));
        assert_eq!(probe.holder_info(dir.path()).and_then(|h| h.role), Some(Role::Daemon));
    }

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

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
fn read_holder(file: &mut File) -> Record {
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

/// Who holds the lock (pid and role), or `None` when it is free. Does not keep the lock:
/// a [`HolderProbe`] asked once.
pub fn holder_info(workspace: &Path) -> Option<Holder> {
    HolderProbe::default().holder_info(workspace)
}

/// Who holds the lock, asked again and again (the Uploads panel asks every second): the
/// lock file stays open between asks and the holder's record is read again only when the
/// file changed (its size, modification or change time), so an ask while an engine holds
/// the lock is three system calls (the path's `stat`, the `flock` test, the holder's
/// `/proc` entry) instead of twelve (the folder made, the file opened, read twice and
/// closed). A lock file replaced is opened again; one removed means nobody holds it. The
/// lock is taken only for the instant of the test and let go at once.
///
/// A lock found held with no live pid recorded is an engine in its first instant, or
/// another reader holding the lock for an instant (over a stale or empty record): it is
/// tried again for [`READER_GRACE`].
#[derive(Debug, Default)]
pub struct HolderProbe {
    /// The lock file open, and its (device, inode).
    open: Option<(File, (u64, u64))>,
    /// The holder's record, and the file's (size, mtime, ctime) it was read at.
    record: Option<(FileStamp, Record)>,
}

/// (size, mtime in ns, ctime in ns) of the lock file.
type FileStamp = (u64, i64, i64);

/// The pid and role a lock file records ([`read_holder`]).
type Record = (Option<u32>, Option<Role>);

impl HolderProbe {
    /// Who holds the workspace's lock, as [`holder`] says.
    pub fn holder(&mut self, workspace: &Path) -> Option<u32> {
        self.holder_info(workspace).map(|h| h.pid)
    }

    /// Who holds the workspace's lock (pid and role), or `None` when it is free.
    pub fn holder_info(&mut self, workspace: &Path) -> Option<Holder> {
        use std::os::unix::fs::MetadataExt;
        let path = lock_path(workspace);
        let Ok(mut meta) = std::fs::metadata(&path) else {
            *self = Self::default();
            return None;
        };
        if self.open.as_ref().is_none_or(|(_, open)| *open != (meta.dev(), meta.ino())) {
            *self = Self::default();
            // Read and write, as an engine opens it (a file we may not write answers
            // `None`; a FIFO opened so does not wait for a writer), but never made.
            let file = OpenOptions::new().read(true).write(true).open(&path).ok()?;
            // The file opened (replaced since the `stat`: the newer one).
            meta = file.metadata().ok()?;
            self.open = Some((file, (meta.dev(), meta.ino())));
        }
        let stamp = (
            meta.len(),
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        );
        let (file, _) = self.open.as_mut()?;
        match try_flock(file) {
            Ok(true) => {
                // Free: let go at once.
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
                // No live pid recorded: looked at again past readers.
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

    /// Found by an attacker review: the lock file turned into a FIFO. `holder_info` opens
    /// it read-write (such an open of a FIFO does not wait for a writer) and answers at
    /// once; the probe opened it read-only, which waits for a writer: the sync collector's
    /// thread, and the Uploads panel with it, hung for good.
    #[test]
    fn a_kept_probe_answers_at_once_when_the_lock_file_is_a_fifo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = lock_path(dir.path());
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::from_raw_mode(0o644)).expect("mkfifo");
        assert_eq!(holder_info(dir.path()), None, "holder_info answers at once: free");
        let (tx, rx) = std::sync::mpsc::channel();
        let ws = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let mut probe = HolderProbe::default();
            let _ = tx.send(probe.holder_info(&ws));
        });
        let answer = rx.recv_timeout(Duration::from_secs(2));
        if answer.is_err() {
            // Let the blocked open go (a writer comes), so the thread ends.
            let _ = OpenOptions::new().write(true).open(&path);
        }
        assert_eq!(answer.ok(), Some(None), "the probe answers within 2 s, as holder_info does");
    }

    /// Found by an attacker review: a lock file this process may read but not write (a
    /// daemon run by root made it 0644). `holder_info` cannot open it read-write and says
    /// nobody holds it; the probe opened it read-only and named the holder, so the Uploads
    /// panel and `status` disagreed. As root the mode stops nothing, so the file is made
    /// immutable too (`chattr +i`, e2fsprogs; the temporary folder must be on a filesystem
    /// that has the attribute, as ext4 does: otherwise the test fails, it is not skipped).
    #[test]
    fn a_kept_probe_answers_as_holder_info_when_the_lock_file_is_not_writable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = EngineLock::acquire_as(dir.path(), Role::Daemon).expect("lock");
        let path = lock_path(dir.path());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
        let root = rustix::process::geteuid().is_root();
        let chattr = |flag: &str| std::process::Command::new("chattr").arg(flag).arg(&path).status();
        if root {
            let ok = chattr("+i").is_ok_and(|s| s.success());
            assert!(ok, "chattr +i {} (needed as root to make the file unwritable)", path.display());
        }
        let writable = OpenOptions::new().read(true).write(true).open(&path).is_ok();
        let expected = holder_info(dir.path());
        let got = HolderProbe::default().holder_info(dir.path());
        if root {
            let _ = chattr("-i");
        }
        drop(lock);
        assert!(!writable, "the lock file could still be opened for writing");
        assert_eq!(expected, None, "holder_info cannot open it: nobody holds it, for it");
        assert_eq!(got, expected, "the probe answers what holder_info answers");
    }

    /// From an attacker review (held): probes asking in a loop, each taking the lock for an
    /// instant when it is free, never keep an engine taking and dropping it from starting.
    #[test]
    fn probes_asking_in_a_loop_never_keep_an_engine_from_starting() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let dir = tempfile::tempdir().expect("tempdir");
        drop(EngineLock::acquire(dir.path()).expect("made"));
        let stop = Arc::new(AtomicBool::new(false));
        let asks = Arc::new(AtomicUsize::new(0));
        let probes: Vec<_> = (0..4)
            .map(|i| {
                let (stop, asks, ws) = (stop.clone(), asks.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || {
                    let mut probe = HolderProbe::default();
                    while !stop.load(Ordering::Relaxed) {
                        let _ = probe.holder_info(&ws);
                        asks.fetch_add(1, Ordering::Relaxed);
                        if i % 2 == 0 {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(2);
        let (mut taken, mut refused) = (0, Vec::new());
        while Instant::now() < deadline {
            match EngineLock::acquire_as(dir.path(), Role::Daemon) {
                Ok(lock) => {
                    taken += 1;
                    std::thread::sleep(Duration::from_millis(2));
                    drop(lock);
                }
                Err(e) => refused.push(e.to_string()),
            }
        }
        stop.store(true, Ordering::Relaxed);
        for p in probes {
            p.join().expect("probe");
        }
        assert!(taken > 0 && asks.load(Ordering::Relaxed) > 100, "taken {taken}, asks {asks:?}");
        assert!(
            refused.is_empty(),
            "refused {} times of {}: {:?}",
            refused.len(),
            taken + refused.len(),
            refused.first()
        );
    }

    /// From an attacker review (held): a record rewritten with the same length right
    /// after the probe read it, within one clock tick, is read again (the change time
    /// moves), on the workspace's disk and on a tmpfs.
    #[test]
    fn a_record_rewritten_at_once_with_the_same_length_is_read_again() {
        for base in [std::env::temp_dir(), PathBuf::from("/dev/shm")] {
            if !base.is_dir() {
                continue;
            }
            let dir = tempfile::tempdir_in(&base).expect("tempdir");
            let path = lock_path(dir.path());
            let mut probe = HolderProbe::default();
            for i in 0..500 {
                let lock = EngineLock::acquire_as(dir.path(), Role::Console).expect("lock");
                assert_eq!(probe.holder_info(dir.path()).and_then(|h| h.role), Some(Role::Console));
                std::fs::write(&path, format!("{} daemon \n", std::process::id())).expect("write");
                assert_eq!(
                    probe.holder_info(dir.path()).and_then(|h| h.role),
                    Some(Role::Daemon),
                    "try {i} on {}",
                    base.display()
                );
                drop(lock);
            }
        }
    }

    /// From an attacker review (held): the probe answers as `holder_info` for a lock file
    /// that is a directory, a held lock over a dead pid's record, a very large record, one
    /// probe asked of two workspaces in turn, and an engine in another process killed
    /// with -9 before another takes the lock.
    #[test]
    fn a_kept_probe_answers_as_holder_info_in_odd_states() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let mut probe = HolderProbe::default();
        std::fs::create_dir_all(lock_path(a.path())).expect("dir");
        assert_eq!(probe.holder_info(a.path()), holder_info(a.path()), "a directory");
        std::fs::remove_dir(lock_path(a.path())).expect("rmdir");
        assert_eq!(probe.holder_info(a.path()), None);
        let lock = EngineLock::acquire_as(a.path(), Role::Console).expect("lock");
        std::fs::write(lock_path(a.path()), "4194300 daemon\n").expect("write");
        assert_eq!(probe.holder_info(a.path()), holder_info(a.path()), "a dead pid's record");
        assert_eq!(probe.holder_info(a.path()), Some(Holder { pid: 4194300, role: Some(Role::Daemon) }));
        let mut big = format!("{} once\n", std::process::id());
        big.push_str(&"x".repeat(8 << 20));
        std::fs::write(lock_path(a.path()), &big).expect("write");
        assert_eq!(probe.holder_info(a.path()), holder_info(a.path()), "a large record");
        drop(lock);
        let _held = EngineLock::acquire_as(b.path(), Role::Daemon).expect("lock b");
        for _ in 0..3 {
            assert_eq!(probe.holder_info(a.path()), holder_info(a.path()), "a");
            assert_eq!(probe.holder_info(b.path()), holder_info(b.path()), "b");
        }
        // Another process's engine (`flock -o`, from util-linux) killed with -9, then an
        // engine of this process takes the lock: the record is read again.
        let path = lock_path(a.path());
        let mut child = std::process::Command::new("flock")
            .arg("-o")
            .arg(&path)
            .args(["sh", "-c", "sleep 3"])
            .spawn()
            .expect("flock (util-linux)");
        let t0 = Instant::now();
        while holder_info(a.path()).is_none() && t0.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::write(&path, format!("{} daemon\n", child.id())).expect("record");
        assert_eq!(probe.holder_info(a.path()), Some(Holder { pid: child.id(), role: Some(Role::Daemon) }));
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
        let _lock = EngineLock::acquire_as(a.path(), Role::Once).expect("taken after the kill");
        assert_eq!(probe.holder_info(a.path()), holder_info(a.path()), "after the kill");
        assert_eq!(probe.holder_info(a.path()).and_then(|h| h.role), Some(Role::Once));
    }

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

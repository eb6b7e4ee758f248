//! Which files processes hold open for writing, from `/proc` (Linux; best effort). One
//! scanner serves both places that ask: the checkpoint inventory (never delete a file
//! being written) and the log panel (is a trainer still writing the log?).
//!
//! Files are matched by device and inode, never by path: a writer that reaches the file
//! through a bind mount, or from another mount namespace (a container), sees another
//! path for the same file. For every process we may look at, each `/proc/PID/fd/N` is
//! `stat`ed (which follows the descriptor to the open file itself, whatever its path);
//! for a regular file on a device asked about, `/proc/PID/fdinfo/N` gives the open flags,
//! and `O_WRONLY` or `O_RDWR` counts as open for writing. Processes of other users are
//! skipped without root (permission errors), so a file written by another user's process
//! is only caught by the settle period.
//!
//! One loop ([`each_open_file`]) walks a process's descriptors for both questions asked
//! here ("which files are open for writing, by anyone" and "what does this process have
//! open"). It is a hand loop rather than the `procfs` crate: what is needed is `fstatat`
//! through the descriptor link relative to the open `fd` folder plus the `flags:` line of
//! `fdinfo`, a dozen lines; `procfs` would read the same files with a larger dependency.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, OFlags};

/// A file (device, inode) some process holds open for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteHandle {
    pub pid: u32,
    pub dev: u64,
    pub ino: u64,
}

/// Parse the octal `flags:` line of an fdinfo file: is the access mode a write mode?
pub fn fdinfo_is_write(fdinfo: &str) -> bool {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .is_some_and(|flags| {
            let mode = flags & OFlags::RWMODE.bits();
            mode == OFlags::WRONLY.bits() || mode == OFlags::RDWR.bits()
        })
}

/// Every regular file on one of `devs` (any device when empty) that a process holds open
/// for writing, this process included.
pub fn write_handles(devs: &[u64]) -> Vec<WriteHandle> {
    write_handles_in(Path::new("/proc"), devs)
}

/// As [`write_handles`], reading a `/proc`-shaped tree at `proc_root`.
pub fn write_handles_in(proc_root: &Path, devs: &[u64]) -> Vec<WriteHandle> {
    let mut out: Vec<WriteHandle> = held_in(proc_root, |dev, _| devs.is_empty() || devs.contains(&dev))
        .into_iter()
        .map(|h| WriteHandle { pid: h.pid, dev: h.dev, ino: h.ino })
        .collect();
    out.sort_by_key(|h| (h.dev, h.ino, h.pid));
    out.dedup();
    out
}

/// Every regular file held open for writing in a `/proc`-shaped tree at `proc_root`
/// whose (device, inode) `wanted` accepts (only those get their `fdinfo` read), with the
/// descriptor that holds it: the one loop over processes the questions here share.
fn held_in(proc_root: &Path, wanted: impl Fn(u64, u64) -> bool) -> Vec<HeldFile> {
    let mut out = Vec::new();
    let Ok(procs) = fs::read_dir(proc_root) else { return out };
    for p in procs.filter_map(Result::ok) {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        each_open_file(&p.path(), usize::MAX, &wanted, |f| {
            if f.write
                && let Some(fd) = f.link.file_name().and_then(OsStr::to_str).and_then(|n| n.parse().ok())
            {
                out.push(HeldFile { pid, fd, dev: f.dev, ino: f.ino });
            }
        });
    }
    out
}

/// The (device, inode) pairs of [`write_handles`].
pub fn open_for_write(devs: &[u64]) -> HashSet<(u64, u64)> {
    write_handles(devs).into_iter().map(|h| (h.dev, h.ino)).collect()
}

/// How old a shared scan ([`recent_write_handles`]) may be when the console's collectors
/// ask: they ask every 30 s on one grid (the checkpoint inventory, the rules' run finder,
/// the log follower's writer watch), so one scan serves the three.
pub const SHARED_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3);

/// A regular file a process holds open for writing, with the descriptor it holds it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldFile {
    pub pid: u32,
    pub fd: u32,
    pub dev: u64,
    pub ino: u64,
}

/// A scan of `/proc` for every regular file held open for writing (any device, this
/// process included), and when it was taken.
#[derive(Debug)]
pub struct WriteScan {
    pub taken: std::time::Instant,
    pub held: Vec<HeldFile>,
}

impl WriteScan {
    /// Scans `/proc`-shaped tree at `proc_root` now.
    pub fn take(proc_root: &Path) -> Self {
        let taken = std::time::Instant::now();
        let mut held = held_in(proc_root, |_, _| true);
        held.sort_by_key(|h| (h.dev, h.ino, h.pid, h.fd));
        Self { taken, held }
    }

    /// (device, inode) of every file held open for writing.
    pub fn files(&self) -> HashSet<(u64, u64)> {
        self.held.iter().map(|h| (h.dev, h.ino)).collect()
    }

    /// (pid, descriptor) of every process other than this one holding `file` open for
    /// writing, in pid order.
    pub fn writers(&self, file: (u64, u64)) -> Vec<(u32, String)> {
        writers_among(&self.held, file)
    }
}

/// (pid, descriptor) of every process other than this one among `held` that holds `file`
/// (device, inode), in pid order.
fn writers_among(held: &[HeldFile], (dev, ino): (u64, u64)) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out: Vec<(u32, String)> = held
        .iter()
        .filter(|h| h.dev == dev && h.ino == ino && h.pid != me)
        .map(|h| (h.pid, h.fd.to_string()))
        .collect();
    out.sort();
    out
}

/// Scans shared by whoever asks through one cache: the first caller after the kept scan
/// grew too old scans, while later callers wait for that scan and take it.
#[derive(Debug, Default)]
pub struct ScanCache {
    kept: std::sync::Mutex<Option<std::sync::Arc<WriteScan>>>,
}

impl ScanCache {
    pub const fn new() -> Self {
        Self { kept: std::sync::Mutex::new(None) }
    }

    /// A scan of `/proc` at most `max_age` old.
    pub fn get(&self, max_age: std::time::Duration) -> std::sync::Arc<WriteScan> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = kept.as_ref().filter(|s| s.taken.elapsed() <= max_age) {
            return s.clone();
        }
        let scan = std::sync::Arc::new(WriteScan::take(Path::new("/proc")));
        *kept = Some(scan.clone());
        scan
    }
}

/// The process's cache ([`recent_write_handles`]).
static SHARED: ScanCache = ScanCache::new();

/// A scan of `/proc` at most `max_age` old, shared by whoever asks in this process
/// ([`ScanCache`]). For what is shown (the inventory's "being written", the run's
/// process, whether the trainer still writes its log); a decision that deletes asks
/// [`write_handles`], which always scans.
pub fn recent_write_handles(max_age: std::time::Duration) -> std::sync::Arc<WriteScan> {
    SHARED.get(max_age)
}

/// As [`writers_of`], from a scan at most `max_age` old ([`recent_write_handles`]).
pub fn recent_writers_of(path: &Path, max_age: std::time::Duration) -> std::io::Result<Vec<u32>> {
    let Some(file) = file_id(path)? else { return Ok(Vec::new()) };
    let mut pids: Vec<u32> = recent_write_handles(max_age).writers(file).into_iter().map(|(pid, _)| pid).collect();
    pids.dedup();
    Ok(pids)
}

/// Process ids, other than this one, holding the file at `path` open for writing
/// (by device and inode: whatever path they opened it by).
pub fn writers_of(path: &Path) -> std::io::Result<Vec<u32>> {
    let Some(file) = file_id(path)? else { return Ok(Vec::new()) };
    Ok(writers_in(Path::new("/proc"), file).into_iter().map(|(pid, _)| pid).collect())
}

/// The (device, inode) of the file at `path`; `None` when there is none.
fn file_id(path: &Path) -> std::io::Result<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    match fs::metadata(path) {
        Ok(m) => Ok(Some((m.dev(), m.ino()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// (pid, descriptor) of every process other than this one holding the file `(dev, ino)`
/// open for writing, in a `/proc`-shaped tree at `proc_root`, in pid order. Only that
/// file's descriptors get their `fdinfo` read.
fn writers_in(proc_root: &Path, file: (u64, u64)) -> Vec<(u32, String)> {
    writers_among(&held_in(proc_root, |dev, ino| (dev, ino) == file), file)
}

/// While the file grows, how often the writers known are re-checked through their
/// descriptors (see [`WriterWatch`]).
pub const HELD_WHILE_GROWING: std::time::Duration = std::time::Duration::from_secs(10);

/// Who writes one file, followed from sample to sample at a fraction of the cost of
/// asking [`writers_of`] each time (the console's log panel: is the trainer still
/// writing?).
///
/// A full scan of every process's descriptors runs at the first sample, whenever the file
/// is another file (new inode, or gone), at least every `full_every`, whenever a writer
/// known from the last scan no longer holds it (a successor may have opened it), and,
/// while no writer is known, when the caller says the file grew (at most every
/// `grew_every`: a writer we may not see, another user's process, would otherwise ask
/// at each growth). Between full scans, each writer found is re-checked through the one
/// descriptor it held the file by (`/proc/PID/fd/N` and its `fdinfo`): two system calls
/// a writer instead of a `stat` of every descriptor of every process, at each sample
/// where the file did not grow and at most every [`HELD_WHILE_GROWING`] while it grows
/// (someone is writing it then). So a writer that exits is noticed at the next sample
/// where the file does not grow (its own writes have stopped); a new one is found at
/// once when the file grows while none is known, and otherwise within `full_every`.
///
/// With [`WriterWatch::sharing`], the periodic full scans may take a recent scan shared
/// with the console's other collectors ([`recent_write_handles`]); the first is always
/// fresh (a shared scan up to its age old could predate a writer that just began).
///
/// Never use this for a decision that deletes: the prune executor's check stays a full,
/// fresh [`write_handles`] scan.
#[derive(Debug)]
pub struct WriterWatch {
    proc_root: std::path::PathBuf,
    full_every: std::time::Duration,
    grew_every: std::time::Duration,
    /// The file's (device, inode) at the last sample, and the writers seen holding it:
    /// (pid, descriptor number).
    file: Option<(u64, u64)>,
    holders: Vec<(u32, String)>,
    last_full: Option<std::time::Instant>,
    /// When the writers known were last seen holding the file (a full scan or the check
    /// through their descriptors).
    last_held: Option<std::time::Instant>,
    full_scans: u64,
    /// Periodic full scans may take a shared scan this old, from this cache.
    shared: Option<(std::time::Duration, &'static ScanCache)>,
}

impl WriterWatch {
    /// Reading `/proc`.
    pub fn new(full_every: std::time::Duration, grew_every: std::time::Duration) -> Self {
        Self::in_root(Path::new("/proc"), full_every, grew_every)
    }

    /// Reading a `/proc`-shaped tree at `proc_root`.
    pub fn in_root(proc_root: &Path, full_every: std::time::Duration, grew_every: std::time::Duration) -> Self {
        Self {
            proc_root: proc_root.to_path_buf(),
            full_every,
            grew_every,
            file: None,
            holders: Vec::new(),
            last_full: None,
            last_held: None,
            full_scans: 0,
            shared: None,
        }
    }

    /// The periodic full scans take a scan of `/proc` at most `max_age` old shared with
    /// the process's other collectors ([`recent_write_handles`]), and count the period from
    /// when it was taken, so they stay on the grid the others scan on. The first scan, a
    /// new file, a writer gone or a file grown with no writer known still scan at once.
    pub fn sharing(self, max_age: std::time::Duration) -> Self {
        self.sharing_in(max_age, &SHARED)
    }

    /// As [`WriterWatch::sharing`], through `cache`.
    pub fn sharing_in(mut self, max_age: std::time::Duration, cache: &'static ScanCache) -> Self {
        self.shared = Some((max_age, cache));
        self
    }

    /// How many full scans this watch has made (for tests and benchmarks).
    pub fn full_scans(&self) -> u64 {
        self.full_scans
    }

    /// [`WriterWatch::writers_of_file`] for the file `path` names now (its own `stat`; the
    /// console's follower passes the tailer's instead). For tests.
    #[cfg(test)]
    pub fn writers(&mut self, path: &Path, now: std::time::Instant, grew: bool) -> std::io::Result<Vec<u32>> {
        Ok(self.writers_of_file(file_id(path)?, now, grew))
    }

    /// Process ids, other than this one, holding the file `(device, inode)` open for
    /// writing at `now`, as described on the type, for the file the caller has just read
    /// from the path (`None`: the path is gone), without a `stat` of its own; `grew`: the
    /// file grew since the last sample.
    pub fn writers_of_file(&mut self, file: Option<(u64, u64)>, now: std::time::Instant, grew: bool) -> Vec<u32> {
        let Some(file) = file else {
            self.file = None;
            self.holders.clear();
            return Vec::new();
        };
        let since_full = self.last_full.map(|t| now.saturating_duration_since(t));
        // The periodic scans may be shared; the others (the first too: a shared scan could
        // predate a writer that just began) must see now.
        let first = self.last_full.is_none();
        let periodic = since_full.is_some_and(|d| d >= self.full_every);
        // While the file grows, someone is writing it: the writers known are re-checked
        // through their descriptors at most every `HELD_WHILE_GROWING`; a writer that
        // exits stops the growth, and the next sample checks at once.
        let recheck = !grew || self.last_held.is_none_or(|t| now.saturating_duration_since(t) >= HELD_WHILE_GROWING);
        let urgent = first
            || self.file != Some(file)
            || (self.holders.is_empty() && grew && since_full.is_none_or(|d| d >= self.grew_every))
            || (recheck && !self.holders.iter().all(|(pid, fd)| self.still_holds(*pid, fd, file)));
        if recheck && !urgent {
            self.last_held = Some(now);
        }
        if urgent {
            tracing::debug!(first, periodic, known = self.holders.len(), grew, "writer watch: full scan, now");
            self.full_scan(file, now);
        } else if periodic {
            tracing::debug!(first, periodic, shared = self.shared.is_some(), "writer watch: full scan, routine");
            match self.shared.filter(|_| self.proc_root == Path::new("/proc")) {
                Some((max_age, cache)) => {
                    let scan = cache.get(max_age);
                    self.record(file, scan.taken.min(now), scan.writers(file));
                }
                None => self.full_scan(file, now),
            }
        }
        let mut pids: Vec<u32> = self.holders.iter().map(|(pid, _)| *pid).collect();
        pids.dedup();
        pids
    }

    fn full_scan(&mut self, file: (u64, u64), now: std::time::Instant) {
        self.record(file, now, writers_in(&self.proc_root, file));
    }

    /// A full scan's answer for `file`, taken at `at`.
    fn record(&mut self, file: (u64, u64), at: std::time::Instant, holders: Vec<(u32, String)>) {
        self.full_scans += 1;
        self.last_full = Some(at);
        self.last_held = Some(at);
        self.file = Some(file);
        self.holders = holders;
    }

    /// Does `pid` still hold `file` for writing through descriptor `fd`?
    fn still_holds(&self, pid: u32, fd: &str, (dev, ino): (u64, u64)) -> bool {
        let pid_dir = self.proc_root.join(pid.to_string());
        let Ok(st) = rustix::fs::stat(pid_dir.join("fd").join(fd)) else { return false };
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_dev != dev || st.st_ino != ino {
            return false;
        }
        fdinfo_write(&pid_dir.join("fdinfo").join(fd)).unwrap_or(false)
    }
}

/// A regular file a process holds open: by what path, on which device, for writing or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFile {
    pub path: std::path::PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub write: bool,
}

/// The regular files process `pid` holds open (at most `cap` descriptors looked at), from
/// a `/proc`-shaped tree at `proc_root`. A process that ended or is not ours gives none.
pub fn open_files_in(proc_root: &Path, pid: u32, cap: usize) -> Vec<OpenFile> {
    let mut out = Vec::new();
    each_open_file(
        &proc_root.join(pid.to_string()),
        cap,
        |_, _| true,
        |f| {
            if let Ok(path) = fs::read_link(f.link) {
                out.push(OpenFile { path, dev: f.dev, ino: f.ino, write: f.write });
            }
        },
    );
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.dev == b.dev && a.ino == b.ino && a.write == b.write);
    out
}

/// One regular file a process holds open, as [`each_open_file`] finds it.
struct FdFile<'a> {
    /// `PID/fd/N`, the descriptor's link.
    link: &'a Path,
    dev: u64,
    ino: u64,
    write: bool,
}

/// The one walk over a process's descriptors (`pid_dir` is `/proc/PID` or a tree shaped
/// like it): for each of at most `cap` descriptors that is a regular file whose (device,
/// inode) `wanted` accepts, `each` gets its identity and whether it is open for writing.
/// The `fd` folder is opened once and listed with `getdents64` on that descriptor; each
/// `fd/N` is `fstatat`ed relative to it, following the link to the open file itself;
/// `fdinfo/N` is read only for the files kept. A process that ended, or whose
/// descriptors we may not read (the folder, or the first descriptor followed, refused),
/// gives nothing.
fn each_open_file(pid_dir: &Path, cap: usize, wanted: impl Fn(u64, u64) -> bool, mut each: impl FnMut(FdFile<'_>)) {
    use std::os::unix::ffi::OsStrExt;
    let fd_path = pid_dir.join("fd");
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let Ok(fd_dir) = rustix::fs::open(&fd_path, flags, rustix::fs::Mode::empty()) else { return };
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut entries = rustix::fs::RawDir::new(&fd_dir, buf.spare_capacity_mut());
    let mut seen = 0;
    while let Some(Ok(ent)) = entries.next() {
        let name = ent.file_name();
        if name.to_bytes().first() == Some(&b'.') {
            continue;
        }
        seen += 1;
        if seen > cap {
            break;
        }
        let st = match rustix::fs::statat(&fd_dir, name, AtFlags::empty()) {
            Ok(st) => st,
            // A process whose descriptors we may list but not follow (another namespace's
            // init, seen from a container: 253 refusals a scan) refuses them all alike.
            Err(e) if e == rustix::io::Errno::ACCESS || e == rustix::io::Errno::PERM => return,
            Err(_) => continue,
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || !wanted(st.st_dev, st.st_ino) {
            continue;
        }
        let n = OsStr::from_bytes(name.to_bytes());
        let write = fdinfo_write(&pid_dir.join("fdinfo").join(n)).unwrap_or(false);
        each(FdFile { link: &fd_path.join(n), dev: st.st_dev, ino: st.st_ino, write });
    }
}

/// Whether an `fdinfo` file says open for writing: one `read` of its start (the `flags:`
/// line is the second of a few short lines), without the `fstat` a whole-file read costs.
fn fdinfo_write(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut buf = [0u8; 512];
    let n = fs::File::open(path)?.read(&mut buf)?;
    Ok(fdinfo_is_write(&String::from_utf8_lossy(&buf[..n])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn fdinfo_flags_are_octal_access_modes() {
        assert!(!fdinfo_is_write("pos:\t0\nflags:\t0100000\nmnt_id:\t1\n"));
        assert!(fdinfo_is_write("pos:\t0\nflags:\t0100001\nmnt_id:\t1\n"));
        assert!(fdinfo_is_write("pos:\t0\nflags:\t02100002\n"));
        assert!(fdinfo_is_write("flags:\t02\n"));
        assert!(!fdinfo_is_write("garbage"));
    }

    #[test]
    fn sees_our_own_write_handle_but_not_a_read_handle() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("w.pt");
        let r = dir.path().join("r.pt");
        fs::write(&r, b"x").unwrap();
        let mut wf = fs::File::create(&w).unwrap();
        wf.write_all(b"partial").unwrap();
        let _rf = fs::File::open(&r).unwrap();
        let (wm, rm) = (fs::metadata(&w).unwrap(), fs::metadata(&r).unwrap());
        let open = open_for_write(&[wm.dev()]);
        assert!(open.contains(&(wm.dev(), wm.ino())), "{open:?}");
        assert!(!open.contains(&(rm.dev(), rm.ino())), "{open:?}");
        // Other devices are not looked at.
        assert!(!open_for_write(&[wm.dev() ^ 0xffff]).contains(&(wm.dev(), wm.ino())));
        drop(wf);
        assert!(!open_for_write(&[wm.dev()]).contains(&(wm.dev(), wm.ino())));
    }

    /// A child process holding `path` open for appending (its stdout), as a trainer's
    /// `tee` or `>>` would.
    fn writer_of(path: &Path) -> std::process::Child {
        let f = fs::OpenOptions::new().append(true).create(true).open(path).unwrap();
        std::process::Command::new("sleep").arg("60").stdout(f).spawn().expect("spawn sleep")
    }

    /// Waits (at most 5 s) until the child's descriptors are those of `sleep`, not of the
    /// forked test process, by asking the full scanner.
    fn wait_until_writing(path: &Path, pid: u32) {
        for _ in 0..500 {
            if writers_of(path).unwrap().contains(&pid) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("process {pid} never showed as writing {}", path.display());
    }

    #[test]
    fn a_new_writer_is_found_within_the_full_scan_period_or_when_the_file_grows() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("train.log");
        fs::write(&log, b"step 1\n").unwrap();
        let full = Duration::from_secs(30);
        let mut w = WriterWatch::new(full, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(w.writers(&log, t0, false).unwrap(), Vec::<u32>::new());
        assert_eq!(w.full_scans(), 1);

        let mut child = writer_of(&log);
        let pid = child.id();
        wait_until_writing(&log, pid);
        // Within the period, with the file not growing, nothing scans: the cache holds.
        assert_eq!(w.writers(&log, t0 + Duration::from_secs(1), false).unwrap(), Vec::<u32>::new());
        assert_eq!(w.full_scans(), 1, "no full scan between periods");
        // At the period, the full scan finds it.
        assert_eq!(w.writers(&log, t0 + full, false).unwrap(), vec![pid]);
        assert_eq!(w.full_scans(), 2);
        // While it writes, later samples re-check only it.
        assert_eq!(w.writers(&log, t0 + full + Duration::from_secs(1), true).unwrap(), vec![pid]);
        assert_eq!(w.full_scans(), 2);

        // A fresh watch: growth with no writer known finds it before the period ends.
        let mut w = WriterWatch::new(full, Duration::from_secs(10));
        let t0 = Instant::now();
        // (The first sample is a full scan and finds it at once.)
        assert_eq!(w.writers(&log, t0, false).unwrap(), vec![pid]);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(w.writers(&log, t0 + Duration::from_secs(1), false).unwrap(), Vec::<u32>::new());
        let mut again = writer_of(&log);
        let pid2 = again.id();
        wait_until_writing(&log, pid2);
        assert_eq!(
            w.writers(&log, t0 + Duration::from_secs(2), true).unwrap(),
            Vec::<u32>::new(),
            "growth asks at most every 10 s"
        );
        assert_eq!(w.writers(&log, t0 + Duration::from_secs(5), false).unwrap(), Vec::<u32>::new());
        assert_eq!(
            w.writers(&log, t0 + Duration::from_secs(11), true).unwrap(),
            vec![pid2],
            "found when the file grew"
        );
        again.kill().unwrap();
        again.wait().unwrap();
    }

    #[test]
    fn a_cached_writer_that_exits_is_noticed_at_the_next_sample() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("train.log");
        let mut a = writer_of(&log);
        let mut b = writer_of(&log);
        let (pa, pb) = (a.id(), b.id());
        wait_until_writing(&log, pa);
        wait_until_writing(&log, pb);
        let mut w = WriterWatch::new(Duration::from_secs(30), Duration::from_secs(10));
        let t0 = Instant::now();
        let mut both = vec![pa, pb];
        both.sort();
        assert_eq!(w.writers(&log, t0, false).unwrap(), both);
        assert_eq!(w.writers(&log, t0 + Duration::from_secs(1), false).unwrap(), both);
        assert_eq!(w.full_scans(), 1);
        // One of two exits: the next sample says so (and rescans, in case of a successor).
        a.kill().unwrap();
        a.wait().unwrap();
        assert_eq!(w.writers(&log, t0 + Duration::from_secs(2), false).unwrap(), vec![pb]);
        assert_eq!(w.full_scans(), 2);
        b.kill().unwrap();
        b.wait().unwrap();
        assert_eq!(w.writers(&log, t0 + Duration::from_secs(3), false).unwrap(), Vec::<u32>::new());
        // The log replaced by another file (rotated): a full scan, whatever the period.
        let mut c = writer_of(&dir.path().join("next.log"));
        wait_until_writing(&dir.path().join("next.log"), c.id());
        fs::rename(dir.path().join("next.log"), &log).unwrap();
        assert_eq!(w.writers(&log, t0 + Duration::from_secs(4), false).unwrap(), vec![c.id()]);
        c.kill().unwrap();
        c.wait().unwrap();
        // Gone: no writers, no error.
        fs::remove_file(&log).unwrap();
        assert_eq!(w.writers(&log, t0 + Duration::from_secs(5), false).unwrap(), Vec::<u32>::new());
    }

    /// While the file grows, the writers known are taken as still writing for up to
    /// `HELD_WHILE_GROWING` (no system call for them); the first sample where it does
    /// not grow checks them at once.
    #[test]
    fn while_the_file_grows_known_writers_are_rechecked_at_most_every_ten_seconds() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("train.log");
        let mut a = writer_of(&log);
        let pa = a.id();
        wait_until_writing(&log, pa);
        let file = file_id(&log).unwrap();
        let mut w = WriterWatch::new(Duration::from_secs(300), Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(w.writers_of_file(file, t0, true), vec![pa]);
        a.kill().unwrap();
        a.wait().unwrap();
        let s = Duration::from_secs;
        // Growing, within 10 s of the last check: the writer known is not asked again.
        assert_eq!(w.writers_of_file(file, t0 + s(1), true), vec![pa]);
        assert_eq!(w.writers_of_file(file, t0 + s(9), true), vec![pa]);
        assert_eq!(w.full_scans(), 1);
        // Growing, 10 s on: asked, gone, rescanned.
        assert_eq!(w.writers_of_file(file, t0 + s(10), true), Vec::<u32>::new());
        assert_eq!(w.full_scans(), 2);

        // Not growing: asked at once, whenever it was last asked.
        let mut b = writer_of(&log);
        let pb = b.id();
        wait_until_writing(&log, pb);
        let mut w = WriterWatch::new(Duration::from_secs(300), Duration::from_secs(10));
        assert_eq!(w.writers_of_file(file, t0, true), vec![pb]);
        assert_eq!(w.writers_of_file(file, t0 + s(1), true), vec![pb]);
        b.kill().unwrap();
        b.wait().unwrap();
        assert_eq!(w.writers_of_file(file, t0 + s(2), false), Vec::<u32>::new());
        // The path gone: no writers, without a scan.
        assert_eq!(w.writers_of_file(None, t0 + s(3), false), Vec::<u32>::new());
    }

    /// One scan serves every caller within `max_age`; a caller that needs now gets a new
    /// one. The scan holds every write handle (ours too), and `writers` leaves us out.
    #[test]
    fn a_recent_scan_is_shared_and_a_fresh_one_sees_what_came_after() {
        use std::sync::Arc;
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("train.log");
        let mut own = fs::File::create(dir.path().join("own.log")).unwrap();
        own.write_all(b"x").unwrap();
        let own_id = {
            let m = fs::metadata(dir.path().join("own.log")).unwrap();
            (m.dev(), m.ino())
        };
        let hour = Duration::from_secs(3600);
        let cache = ScanCache::new();
        let first = cache.get(Duration::ZERO);
        assert!(first.files().contains(&own_id), "our own write handle is in the scan");
        assert!(first.writers(own_id).is_empty(), "but we are not one of its writers");
        let mut child = writer_of(&log);
        let pid = child.id();
        wait_until_writing(&log, pid);
        let m = fs::metadata(&log).unwrap();
        // Within the age asked, the same scan: taken before the writer began.
        let again = cache.get(hour);
        assert!(Arc::ptr_eq(&first, &again));
        assert!(again.writers((m.dev(), m.ino())).is_empty());
        // Asked for now: a new scan, which finds it, by descriptor.
        let fresh = cache.get(Duration::ZERO);
        assert!(!Arc::ptr_eq(&first, &fresh) && fresh.taken > first.taken);
        let w = fresh.writers((m.dev(), m.ino()));
        assert_eq!(w.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![pid]);
        assert_eq!(w[0].1, "1", "sleep holds the log as its stdout");
        assert!(Arc::ptr_eq(&fresh, &cache.get(hour)), "and keeps it");
        // The process's own cache answers by path.
        assert_eq!(recent_writers_of(&log, Duration::ZERO).unwrap(), vec![pid]);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// A watch that shares scans afresh first (a writer that began after the shared scan
    /// was taken is seen), takes the shared scan for its periodic scans and counts the
    /// period from when that scan was taken; a new file behind the name (a rotation) is
    /// scanned afresh even while a shared scan is recent.
    #[test]
    fn a_sharing_watch_scans_afresh_for_a_new_file() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("train.log");
        fs::write(&log, b"step 1\n").unwrap();
        let hour = Duration::from_secs(3600);
        static CACHE: ScanCache = ScanCache::new();
        let shared = CACHE.get(Duration::ZERO);
        let mut first_writer = writer_of(&log);
        wait_until_writing(&log, first_writer.id());
        let mut w = WriterWatch::new(Duration::from_secs(30), Duration::from_secs(10)).sharing_in(hour, &CACHE);
        let t0 = Instant::now();
        assert_eq!(w.writers(&log, t0, false).unwrap(), vec![first_writer.id()], "the first scan is fresh");
        assert_eq!(w.full_scans(), 1);
        first_writer.kill().unwrap();
        first_writer.wait().unwrap();
        // The writer gone: a fresh scan at once.
        assert_eq!(w.writers(&log, t0 + Duration::from_secs(1), false).unwrap(), Vec::<u32>::new());
        assert_eq!(w.full_scans(), 2);
        // The period's scan takes the shared one and counts from it.
        assert_eq!(w.writers(&log, t0 + Duration::from_secs(31), false).unwrap(), Vec::<u32>::new());
        assert_eq!(w.full_scans(), 3);
        assert_eq!(w.last_full, Some(shared.taken), "the period counts from the shared scan");
        // The log replaced by a file a process writes: found at once, whatever is shared.
        let next = dir.path().join("next.log");
        let mut c = writer_of(&next);
        wait_until_writing(&next, c.id());
        fs::rename(&next, &log).unwrap();
        assert_eq!(w.writers(&log, t0 + Duration::from_secs(32), false).unwrap(), vec![c.id()]);
        assert_eq!(w.full_scans(), 4);
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

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
    let mut out = Vec::new();
    let Ok(procs) = fs::read_dir(proc_root) else {
        return out;
    };
    for p in procs.filter_map(Result::ok) {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let wanted = |dev| devs.is_empty() || devs.contains(&dev);
        each_open_file(&p.path(), usize::MAX, wanted, |f| {
            if f.write {
                out.push(WriteHandle { pid, dev: f.dev, ino: f.ino });
            }
        });
    }
    out.sort_by_key(|h| (h.dev, h.ino, h.pid));
    out.dedup();
    out
}

/// The (device, inode) pairs of [`write_handles`].
pub fn open_for_write(devs: &[u64]) -> HashSet<(u64, u64)> {
    write_handles(devs).into_iter().map(|h| (h.dev, h.ino)).collect()
}

/// Process ids, other than this one, holding the file at `path` open for writing
/// (by device and inode: whatever path they opened it by).
pub fn writers_of(path: &Path) -> std::io::Result<Vec<u32>> {
    use std::os::unix::fs::MetadataExt;
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let me = std::process::id();
    let mut pids: Vec<u32> = write_handles(&[meta.dev()])
        .into_iter()
        .filter(|h| h.ino == meta.ino() && h.pid != me)
        .map(|h| h.pid)
        .collect();
    pids.dedup();
    Ok(pids)
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
        |_| true,
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
/// like it): for each of at most `cap` descriptors that is a regular file on a device
/// `wanted` accepts, `each` gets its identity and whether it is open for writing. Each
/// `fd/N` is `fstatat`ed relative to the open `fd` folder, following the link to the open
/// file itself; `fdinfo/N` is read only for the files kept. A process that ended, or whose
/// descriptors we may not read, gives nothing.
fn each_open_file(pid_dir: &Path, cap: usize, wanted: impl Fn(u64) -> bool, mut each: impl FnMut(FdFile<'_>)) {
    let fd_path = pid_dir.join("fd");
    let Ok(fd_dir) = fs::File::open(&fd_path) else { return };
    let Ok(fds) = fs::read_dir(&fd_path) else { return };
    for fd in fds.filter_map(Result::ok).take(cap) {
        let name = fd.file_name();
        let Some(st) = stat_at(&fd_dir, &name) else { continue };
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || !wanted(st.st_dev) {
            continue;
        }
        let info = fs::read_to_string(pid_dir.join("fdinfo").join(&name)).unwrap_or_default();
        each(FdFile { link: &fd.path(), dev: st.st_dev, ino: st.st_ino, write: fdinfo_is_write(&info) });
    }
}

/// `fstatat` of `name` in an open folder, following the link (for `/proc/PID/fd/N`, to
/// the open file).
fn stat_at(dir: &fs::File, name: &OsStr) -> Option<rustix::fs::Stat> {
    rustix::fs::statat(dir, name, AtFlags::empty()).ok()
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
}

//! Workspace usage breakdown: what takes the space (checkpoints, logs, data, other), by one
//! fast walk that counts allocated blocks like `du` (links not followed, hard links once).
//!

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;

/// Which folders (paths relative to the workspace, `*` = one folder name) belong to which
/// category. A folder inherits its parent's category; the first match wins, in the order
/// checkpoints, logs, data. Files matching `log_files` outside those folders are logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSpec {
    pub checkpoints: Vec<String>,
    pub logs: Vec<String>,
    pub data: Vec<String>,
    pub log_files: Vec<String>,
}

impl Default for UsageSpec {
    fn default() -> Self {
        Self {
            checkpoints: vec!["checkpoints".into(), "experiments/*/checkpoints".into()],
            logs: vec!["logs".into(), "experiments/*/logs".into()],
            data: vec!["data".into(), "experiments/*/data".into()],
            log_files: vec!["*.log".into()],
        }
    }
}

/// Bytes on disk per category, for the disk panel and `status --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct UsageBreakdown {
    pub checkpoints_bytes: u64,
    pub logs_bytes: u64,
    pub data_bytes: u64,
    pub other_bytes: u64,
    pub total_bytes: u64,
    pub files: u64,
    pub dirs: u64,
    /// Folders or entries that could not be read.
    pub unreadable: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cat {
    Checkpoints,
    Logs,
    Data,
    Other,
}

fn set(patterns: &[String]) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        if let Ok(g) = GlobBuilder::new(p.trim_end_matches('/')).literal_separator(true).build() {
            b.add(g);
        }
    }
    b.build().unwrap_or_else(|_| GlobSet::empty())
}

impl UsageBreakdown {
    fn add(&mut self, cat: Cat, bytes: u64) {
        self.total_bytes += bytes;
        match cat {
            Cat::Checkpoints => self.checkpoints_bytes += bytes,
            Cat::Logs => self.logs_bytes += bytes,
            Cat::Data => self.data_bytes += bytes,
            Cat::Other => self.other_bytes += bytes,
        }
    }
}

/// Names in an open folder with their entry type (`None` when the filesystem does not say).
fn list_dir(dir: &OwnedFd) -> std::io::Result<Vec<(CString, Option<bool>)>> {
    // fdopendir takes ownership of the descriptor it gets, so hand it a duplicate.
    // SAFETY: valid descriptor.
    let dup = unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh descriptor of an open folder.
    let dp = unsafe { libc::fdopendir(dup) };
    if dp.is_null() {
        let e = std::io::Error::last_os_error();
        // SAFETY: still ours when fdopendir fails.
        unsafe { libc::close(dup) };
        return Err(e);
    }
    let mut out = Vec::new();
    loop {
        // SAFETY: `dp` is valid until closedir.
        let ent = unsafe { libc::readdir64(dp) };
        if ent.is_null() {
            break;
        }
        // SAFETY: a valid entry with a NUL-terminated name.
        let (name, ty) = unsafe { (CStr::from_ptr((*ent).d_name.as_ptr()), (*ent).d_type) };
        let b = name.to_bytes();
        if b == b"." || b == b".." {
            continue;
        }
        let kind = match ty {
            libc::DT_DIR => Some(true),
            libc::DT_UNKNOWN => None,
            _ => Some(false),
        };
        out.push((name.to_owned(), kind));
    }
    // SAFETY: closes `dp` and `dup`.
    unsafe { libc::closedir(dp) };
    Ok(out)
}

fn open_dir(parent: Option<&OwnedFd>, name: &CStr) -> std::io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // SAFETY: valid descriptor (or AT_FDCWD) and C string.
    let fd = unsafe { libc::openat(parent.map_or(libc::AT_FDCWD, |p| p.as_raw_fd()), name.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: freshly opened, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn lstat_at(dir: &OwnedFd, name: &CStr) -> Option<libc::stat64> {
    // SAFETY: a zeroed stat64 is a valid out-buffer.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and out-pointer.
    let r = unsafe { libc::fstatat64(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    (r == 0).then_some(st)
}

/// A folder waiting to be read: its parent's descriptor (kept open only while children
/// wait, so open descriptors stay bounded by the depth) and its name.
struct Pending {
    parent: Rc<OwnedFd>,
    name: CString,
    rel: PathBuf,
    cat: Cat,
}

/// Walk the workspace once and sum allocated bytes per category. Descriptor-relative
/// (`openat` + `fstatat`, like `du`'s fts), never following links.
pub fn scan_usage(workspace: &Path, spec: &UsageSpec) -> UsageBreakdown {
    scan_usage_with(workspace, spec, &mut |_, _| {})
}

/// One folder's entries: its path relative to the workspace, and each name with its `lstat`.
pub type FolderVisitor<'a> = dyn FnMut(&Path, &[(CString, libc::stat64)]) + 'a;

/// [`scan_usage`], handing each folder's entries (path relative to the workspace, names
/// with their `lstat`) to `visit`, so other scans can share the one walk.
pub fn scan_usage_with(workspace: &Path, spec: &UsageSpec, visit: &mut FolderVisitor<'_>) -> UsageBreakdown {
    let sets = [(Cat::Checkpoints, set(&spec.checkpoints)), (Cat::Logs, set(&spec.logs)), (Cat::Data, set(&spec.data))];
    let log_files = set(&spec.log_files);
    let mut out = UsageBreakdown::default();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let root = match (fs::symlink_metadata(workspace), CString::new(workspace.as_os_str().as_bytes())) {
        (Ok(md), Ok(c)) => {
            out.dirs += 1;
            out.add(Cat::Other, md.blocks() * 512);
            // The workspace itself may be reached through a link; below it nothing is.
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
            // SAFETY: valid C string.
            let fd = unsafe { libc::open(c.as_ptr(), flags) };
            if fd < 0 {
                out.unreadable += 1;
                return out;
            }
            // SAFETY: freshly opened.
            unsafe { OwnedFd::from_raw_fd(fd) }
        }
        _ => {
            out.unreadable += 1;
            return out;
        }
    };
    let mut stack: Vec<(Rc<OwnedFd>, PathBuf, Cat)> = vec![(Rc::new(root), PathBuf::new(), Cat::Other)];
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        let (dir, rel, cat) = match stack.pop() {
            Some(d) => d,
            None => match pending.pop() {
                Some(p) => match open_dir(Some(&p.parent), &p.name) {
                    Ok(fd) => (Rc::new(fd), p.rel, p.cat),
                    Err(_) => {
                        out.unreadable += 1;
                        continue;
                    }
                },
                None => break,
            },
        };
        let Ok(names) = list_dir(&dir) else {
            out.unreadable += 1;
            continue;
        };
        let mut entries = Vec::with_capacity(names.len());
        for (name, _) in names {
            match lstat_at(&dir, &name) {
                Some(st) => entries.push((name, st)),
                None => out.unreadable += 1,
            }
        }
        visit(&rel, &entries);
        for (name, st) in entries {
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if !is_dir && st.st_nlink > 1 && !seen.insert((st.st_dev, st.st_ino)) {
                continue;
            }
            let bytes = st.st_blocks as u64 * 512;
            if is_dir {
                out.dirs += 1;
                let child_rel = rel.join(OsStr::from_bytes(name.to_bytes()));
                let child_cat = if cat != Cat::Other {
                    cat
                } else {
                    sets.iter().find(|(_, s)| s.is_match(&child_rel)).map(|(c, _)| *c).unwrap_or(Cat::Other)
                };
                out.add(child_cat, bytes);
                pending.push(Pending { parent: dir.clone(), name, rel: child_rel, cat: child_cat });
            } else {
                out.files += 1;
                let c = if cat == Cat::Other && log_files.is_match(Path::new(OsStr::from_bytes(name.to_bytes()))) {
                    Cat::Logs
                } else {
                    cat
                };
                out.add(c, bytes);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(p: &Path) -> u64 {
        fs::symlink_metadata(p).unwrap().blocks() * 512
    }

    #[test]
    fn categories_add_up_and_links_are_not_followed() {
        let ws = tempfile::tempdir().unwrap();
        let w = ws.path();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("big"), vec![7u8; 1 << 20]).unwrap();
        for d in ["checkpoints", "experiments/v1/checkpoints", "experiments/v1/logs", "data/shard", "src"] {
            fs::create_dir_all(w.join(d)).unwrap();
        }
        fs::write(w.join("checkpoints/a.pt"), vec![1u8; 100_000]).unwrap();
        fs::write(w.join("experiments/v1/checkpoints/b.pt"), vec![1u8; 50_000]).unwrap();
        fs::write(w.join("experiments/v1/logs/train.log"), vec![1u8; 20_000]).unwrap();
        fs::write(w.join("stray.log"), vec![1u8; 9_000]).unwrap();
        fs::write(w.join("data/shard/x.bin"), vec![1u8; 70_000]).unwrap();
        fs::write(w.join("src/train.py"), vec![1u8; 3_000]).unwrap();
        fs::hard_link(w.join("src/train.py"), w.join("src/again.py")).unwrap();
        std::os::unix::fs::symlink(outside.path(), w.join("data/elsewhere")).unwrap();
        let u = scan_usage(w, &UsageSpec::default());
        let ck = alloc(&w.join("checkpoints"))
            + alloc(&w.join("checkpoints/a.pt"))
            + alloc(&w.join("experiments/v1/checkpoints"))
            + alloc(&w.join("experiments/v1/checkpoints/b.pt"));
        assert_eq!(u.checkpoints_bytes, ck);
        assert_eq!(
            u.logs_bytes,
            alloc(&w.join("experiments/v1/logs"))
                + alloc(&w.join("experiments/v1/logs/train.log"))
                + alloc(&w.join("stray.log"))
        );
        assert!(u.data_bytes < (1 << 20), "the link's target is not counted");
        assert_eq!(u.total_bytes, u.checkpoints_bytes + u.logs_bytes + u.data_bytes + u.other_bytes);
        // du -s counts the same blocks.
        let du = std::process::Command::new("du").arg("-s").arg("-B1").arg(w).output();
        if let Ok(o) = du {
            let text = String::from_utf8_lossy(&o.stdout);
            let n: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
            assert_eq!(u.total_bytes, n);
        }
        // six files, the link (counted as itself), the second hard link not again
        assert_eq!(u.files, 7);
    }
}

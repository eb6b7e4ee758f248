//! Workspace usage breakdown: what takes the space (checkpoints, logs, data, other), by one
//! fast walk that counts allocated blocks like `du` (links not followed, hard links once).
//!

use std::ffi::{CStr, CString, OsStr};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::glob::{GlobSet, Semantics};
/// The `lstat` of one entry, as the walks hand it to visitors.
pub use rustix::fs::Stat;
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

/// Path globs ([`Semantics::Path`]); a trailing `/` is ignored; invalid ones are dropped.
fn set(patterns: &[String]) -> GlobSet {
    let trimmed: Vec<&str> = patterns.iter().map(|p| p.trim_end_matches('/')).collect();
    GlobSet::lenient(&trimmed, Semantics::Path)
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

/// Names in an open folder (without `.` and `..`), each with whether it is a folder, from
/// the entry type (`None` when the filesystem does not say). Used by the usage walk and by
/// the safe delete. `getdents64` on `dir` itself into a 32 KiB buffer (glibc's `readdir`
/// size; no duplicate descriptor, no allocation per entry but the name kept), so it reads
/// from the descriptor's position: each caller lists a freshly opened folder once.
pub(crate) fn list_dir(dir: &OwnedFd) -> std::io::Result<Vec<(CString, Option<bool>)>> {
    use rustix::fs::FileType;
    let mut buf = Vec::with_capacity(32 * 1024);
    let mut entries = rustix::fs::RawDir::new(dir, buf.spare_capacity_mut());
    let mut out = Vec::new();
    while let Some(ent) = entries.next() {
        let ent = ent?;
        let name = ent.file_name();
        let b = name.to_bytes();
        if b == b"." || b == b".." {
            continue;
        }
        let kind = match ent.file_type() {
            FileType::Directory => Some(true),
            FileType::Unknown => None,
            _ => Some(false),
        };
        out.push((name.to_owned(), kind));
    }
    Ok(out)
}

/// Flags of every folder the walks open: never through a link.
const DIR_NOFOLLOW: rustix::fs::OFlags = rustix::fs::OFlags::RDONLY
    .union(rustix::fs::OFlags::DIRECTORY)
    .union(rustix::fs::OFlags::CLOEXEC)
    .union(rustix::fs::OFlags::NOFOLLOW);

fn open_dir(parent: &OwnedFd, name: &CStr) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(parent, name, DIR_NOFOLLOW, rustix::fs::Mode::empty())?)
}

fn lstat_at(dir: &OwnedFd, name: &CStr) -> Option<Stat> {
    rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok()
}

/// Whether an `lstat` is of this file type.
pub fn is_type(st: &Stat, t: rustix::fs::FileType) -> bool {
    rustix::fs::FileType::from_raw_mode(st.st_mode) == t
}

/// A folder waiting to be read: its parent's descriptor (kept open only while children
/// wait, so open descriptors stay bounded by the depth) and its name.
struct Pending {
    parent: Rc<OwnedFd>,
    name: CString,
    rel: PathBuf,
    cat: Cat,
}

/// One folder's entries: its path relative to the workspace, and each name with its `lstat`.
pub type FolderVisitor<'a> = dyn FnMut(&Path, &[(CString, Stat)]) + Send + 'a;

/// Files with more than one link: (dev, ino) -> (bytes, category).
type Links = std::collections::HashMap<(u64, u64), (u64, Cat)>;

/// The counting side of a walk (one per thread).
struct Walker<'a> {
    sets: &'a [(Cat, GlobSet)],
    log_files: &'a GlobSet,
    out: UsageBreakdown,
    /// Files with more than one link, counted once.
    links: Links,
}

impl<'a> Walker<'a> {
    fn new(sets: &'a [(Cat, GlobSet)], log_files: &'a GlobSet) -> Self {
        Self { sets, log_files, out: UsageBreakdown::default(), links: Default::default() }
    }

    /// Read one open folder: visit its entries, count them, return its sub-folders.
    fn folder(
        &mut self,
        dir: &OwnedFd,
        rel: &Path,
        cat: Cat,
        visit: &mut FolderVisitor<'_>,
    ) -> Vec<(CString, PathBuf, Cat)> {
        let Ok(names) = list_dir(dir) else {
            self.out.unreadable += 1;
            return Vec::new();
        };
        let mut entries = Vec::with_capacity(names.len());
        for (name, _) in names {
            match lstat_at(dir, &name) {
                Some(st) => entries.push((name, st)),
                None => self.out.unreadable += 1,
            }
        }
        visit(rel, &entries);
        let mut subdirs = Vec::new();
        for (name, st) in entries {
            let is_dir = is_type(&st, rustix::fs::FileType::Directory);
            let bytes = st.st_blocks as u64 * 512;
            if is_dir {
                self.out.dirs += 1;
                let child_rel = rel.join(OsStr::from_bytes(name.to_bytes()));
                let child_cat = if cat != Cat::Other {
                    cat
                } else {
                    self.sets.iter().find(|(_, s)| s.is_match(&child_rel)).map(|(c, _)| *c).unwrap_or(Cat::Other)
                };
                self.out.add(child_cat, bytes);
                subdirs.push((name, child_rel, child_cat));
                continue;
            }
            let c = if cat == Cat::Other && self.log_files.is_match(Path::new(OsStr::from_bytes(name.to_bytes()))) {
                Cat::Logs
            } else {
                cat
            };
            if st.st_nlink > 1 {
                if self.links.contains_key(&(st.st_dev, st.st_ino)) {
                    continue;
                }
                self.links.insert((st.st_dev, st.st_ino), (bytes, c));
            }
            self.out.files += 1;
            self.out.add(c, bytes);
        }
        subdirs
    }

    fn out_and_links(self) -> (UsageBreakdown, Links) {
        (self.out, self.links)
    }

    /// Read an open folder and everything below it.
    fn walk_dir(&mut self, fd: OwnedFd, rel: PathBuf, cat: Cat, visit: &mut FolderVisitor<'_>) {
        let dir = Rc::new(fd);
        let subs = self.folder(&dir, &rel, cat, visit);
        self.walk(dir, subs, visit);
    }

    /// Walk depth-first from the given folders under `base`.
    fn walk(&mut self, base: Rc<OwnedFd>, start: Vec<(CString, PathBuf, Cat)>, visit: &mut FolderVisitor<'_>) {
        let mut pending: Vec<Pending> =
            start.into_iter().rev().map(|(name, rel, cat)| Pending { parent: base.clone(), name, rel, cat }).collect();
        while let Some(p) = pending.pop() {
            let dir = match open_dir(&p.parent, &p.name) {
                Ok(fd) => Rc::new(fd),
                Err(_) => {
                    self.out.unreadable += 1;
                    continue;
                }
            };
            for (name, rel, cat) in self.folder(&dir, &p.rel, p.cat, visit).into_iter().rev() {
                pending.push(Pending { parent: dir.clone(), name, rel, cat });
            }
        }
    }
}

fn open_workspace(workspace: &Path) -> Option<OwnedFd> {
    use rustix::fs::OFlags;
    // The workspace itself may be reached through a link; below it nothing is.
    rustix::fs::open(workspace, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, rustix::fs::Mode::empty()).ok()
}

/// Open `rel` (a chain of real folders) under `base`, never following a link.
fn open_rel(base: &OwnedFd, rel: &Path) -> Option<OwnedFd> {
    let mut comps = rel.components();
    let first = CString::new(comps.next()?.as_os_str().as_bytes()).ok()?;
    let mut fd = open_dir(base, &first).ok()?;
    for c in comps {
        let name = CString::new(c.as_os_str().as_bytes()).ok()?;
        fd = open_dir(&fd, &name).ok()?;
    }
    Some(fd)
}

/// Walk the workspace once and sum allocated bytes per category. Descriptor-relative
/// (`openat` + `fstatat`, like `du`'s fts), never following links.
pub fn scan_usage(workspace: &Path, spec: &UsageSpec) -> UsageBreakdown {
    scan_usage_with(workspace, spec, &mut |_, _| {})
}

/// [`scan_usage`], handing each folder's entries (path relative to the workspace, names
/// with their `lstat`) to `visit`, so other scans can share the one walk.
pub fn scan_usage_with(workspace: &Path, spec: &UsageSpec, visit: &mut FolderVisitor<'_>) -> UsageBreakdown {
    scan_usage_split(workspace, spec, visit, None)
}

/// [`scan_usage_with`] on two threads when `second` is given: the top of the tree is read
/// here, breadth-first, until there are enough folders to share; then every other one is
/// walked by a second thread with the `second` visitor. A folder is always listed before
/// anything in it is visited. Totals are those of one walk (hard links still counted once).
pub fn scan_usage_split(
    workspace: &Path,
    spec: &UsageSpec,
    visit: &mut FolderVisitor<'_>,
    second: Option<&mut FolderVisitor<'_>>,
) -> UsageBreakdown {
    let sets = [(Cat::Checkpoints, set(&spec.checkpoints)), (Cat::Logs, set(&spec.logs)), (Cat::Data, set(&spec.data))];
    let log_files = set(&spec.log_files);
    let mut main = Walker::new(&sets, &log_files);
    let (Ok(md), Some(root)) = (fs::symlink_metadata(workspace), open_workspace(workspace)) else {
        main.out.unreadable += 1;
        return main.out;
    };
    main.out.dirs += 1;
    main.out.add(Cat::Other, md.blocks() * 512);
    let root = Rc::new(root);
    let first = main.folder(&root, Path::new(""), Cat::Other, visit);
    let Some(second) = second else {
        main.walk(root, first, visit);
        return main.out;
    };
    // Folders to share are named by their path below the workspace (every component a real
    // folder when listed) and opened again with O_NOFOLLOW by the thread that walks them.
    let mut frontier: std::collections::VecDeque<(PathBuf, Cat)> =
        first.into_iter().map(|(_, rel, cat)| (rel, cat)).collect();
    while frontier.len() < 16 {
        let Some((rel, cat)) = frontier.pop_front() else { break };
        let Some(fd) = open_rel(&root, &rel) else {
            main.out.unreadable += 1;
            continue;
        };
        for (_, child, c) in main.folder(&fd, &rel, cat, visit) {
            frontier.push_back((child, c));
        }
    }
    let (mine, theirs): (Vec<_>, Vec<_>) = frontier.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let other = std::thread::scope(|s| {
        let (sets, log_files) = (&sets, &log_files);
        let helper = s.spawn(move || {
            let mut w = Walker::new(sets, log_files);
            let Some(base) = open_workspace(workspace) else {
                w.out.unreadable += theirs.len() as u64;
                return w.out_and_links();
            };
            for (_, (rel, cat)) in theirs {
                match open_rel(&base, &rel) {
                    Some(fd) => w.walk_dir(fd, rel, cat, second),
                    None => w.out.unreadable += 1,
                }
            }
            w.out_and_links()
        });
        for (_, (rel, cat)) in mine {
            match open_rel(&root, &rel) {
                Some(fd) => main.walk_dir(fd, rel, cat, visit),
                None => main.out.unreadable += 1,
            }
        }
        helper.join()
    });
    let Ok((o, links)) = other else {
        main.out.unreadable += 1;
        return main.out;
    };
    let m = &mut main.out;
    m.checkpoints_bytes += o.checkpoints_bytes;
    m.logs_bytes += o.logs_bytes;
    m.data_bytes += o.data_bytes;
    m.other_bytes += o.other_bytes;
    m.total_bytes += o.total_bytes;
    m.files += o.files;
    m.dirs += o.dirs;
    m.unreadable += o.unreadable;
    // A file linked from both halves was counted by each: take one back.
    for (key, (bytes, cat)) in links {
        if main.links.contains_key(&key) {
            main.out.files -= 1;
            main.out.total_bytes -= bytes;
            match cat {
                Cat::Checkpoints => main.out.checkpoints_bytes -= bytes,
                Cat::Logs => main.out.logs_bytes -= bytes,
                Cat::Data => main.out.data_bytes -= bytes,
                Cat::Other => main.out.other_bytes -= bytes,
            }
        }
    }
    main.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(p: &Path) -> u64 {
        fs::symlink_metadata(p).unwrap().blocks() * 512
    }

    #[test]
    fn list_dir_reads_a_folder_larger_than_its_buffer_whole() {
        let dir = tempfile::tempdir().unwrap();
        // 2,000 names of ~70 bytes: well over the 32 KiB read buffer.
        let mut want: Vec<String> = (0..2000).map(|i| format!("{i:05}-{}", "n".repeat(60))).collect();
        for n in &want {
            fs::write(dir.path().join(n), b"").unwrap();
        }
        fs::create_dir(dir.path().join("sub")).unwrap();
        want.push("sub".into());
        want.sort();
        let fd = open_workspace(dir.path()).unwrap();
        let listed = list_dir(&fd).unwrap();
        let mut names: Vec<String> = listed.iter().map(|(n, _)| n.to_str().unwrap().to_string()).collect();
        names.sort();
        assert_eq!(names, want, "every name once, without . and ..");
        let kinds: Vec<_> = listed.iter().filter(|(n, _)| n.to_bytes() == b"sub").map(|(_, k)| *k).collect();
        assert!(matches!(kinds.as_slice(), [Some(true)] | [None]), "{kinds:?}");
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

    #[test]
    fn two_threads_count_what_one_counts_and_visit_every_folder_once() {
        let ws = tempfile::tempdir().unwrap();
        let w = ws.path();
        for e in 0..30 {
            for d in ["checkpoints", "logs", "data/a", "data/b/c"] {
                let dir = w.join(format!("experiments/v{e}/{d}"));
                fs::create_dir_all(&dir).unwrap();
                fs::write(dir.join("f.bin"), vec![1u8; 5000 + e * 10]).unwrap();
            }
        }
        // Hard links between far-apart folders (likely walked by different threads).
        for e in 0..30 {
            fs::hard_link(
                w.join(format!("experiments/v{e}/logs/f.bin")),
                w.join(format!("experiments/v{}/l.bin", 29 - e)),
            )
            .unwrap();
        }
        let spec = UsageSpec {
            checkpoints: vec!["experiments/*/checkpoints".into()],
            logs: vec!["experiments/*/logs".into()],
            data: vec!["experiments/*/data".into()],
            ..Default::default()
        };
        let one = scan_usage(w, &spec);
        let seen = std::sync::Mutex::new(Vec::new());
        let visit = |rel: &Path, _: &[(CString, Stat)]| seen.lock().unwrap().push(rel.to_path_buf());
        let (mut a, mut b) = (visit, visit);
        let two = scan_usage_split(w, &spec, &mut a, Some(&mut b));
        assert_eq!(one, two);
        let mut folders = seen.into_inner().unwrap();
        assert_eq!(folders.len() as u64, one.dirs);
        folders.sort();
        folders.dedup();
        assert_eq!(folders.len() as u64, one.dirs, "each folder visited once");
        let du = std::process::Command::new("du").arg("-s").arg("-B1").arg(w).output().unwrap();
        let n: u64 = String::from_utf8_lossy(&du.stdout).split_whitespace().next().unwrap().parse().unwrap();
        assert_eq!(two.total_bytes, n);
    }
}

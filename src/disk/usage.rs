//! Workspace usage breakdown: what takes the space (checkpoints, logs, data, other), by one
//! fast walk that counts allocated blocks like `du` (links not followed, hard links once).
//!

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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

/// Walk the workspace once and sum allocated bytes per category.
pub fn scan_usage(workspace: &Path, spec: &UsageSpec) -> UsageBreakdown {
    let sets = [(Cat::Checkpoints, set(&spec.checkpoints)), (Cat::Logs, set(&spec.logs)), (Cat::Data, set(&spec.data))];
    let log_files = set(&spec.log_files);
    let mut out = UsageBreakdown::default();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    match fs::symlink_metadata(workspace) {
        Ok(md) => {
            out.dirs += 1;
            out.add(Cat::Other, md.blocks() * 512);
        }
        Err(_) => {
            out.unreadable += 1;
            return out;
        }
    }
    let mut stack: Vec<(PathBuf, PathBuf, Cat)> = vec![(workspace.to_path_buf(), PathBuf::new(), Cat::Other)];
    while let Some((dir, rel, cat)) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else {
            out.unreadable += 1;
            continue;
        };
        for e in rd {
            let Ok(e) = e else {
                out.unreadable += 1;
                continue;
            };
            let Ok(md) = e.metadata() else {
                out.unreadable += 1;
                continue;
            };
            if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
                continue;
            }
            let bytes = md.blocks() * 512;
            let name = e.file_name();
            if md.is_dir() {
                out.dirs += 1;
                let child_rel = rel.join(&name);
                let child_cat = if cat != Cat::Other {
                    cat
                } else {
                    sets.iter().find(|(_, s)| s.is_match(&child_rel)).map(|(c, _)| *c).unwrap_or(Cat::Other)
                };
                out.add(child_cat, bytes);
                stack.push((e.path(), child_rel, child_cat));
            } else {
                out.files += 1;
                let c = if cat == Cat::Other && log_files.is_match(Path::new(&name)) { Cat::Logs } else { cat };
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

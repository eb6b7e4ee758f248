//! The files a log rotation left behind (`train.log.1`, `train.log.2.gz`,
//! `train.log.2026-11-30`), so the metrics a run last reported before the rotation (an
//! eval loss written once an hour) are still known after it, in `status` as in the console.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// At most this many rotated files are read before the log.
pub const MAX_PREDECESSORS: usize = 3;

/// A rotated file of the log: its path, whether it is gzip-compressed, its last write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub path: PathBuf,
    pub gzip: bool,
    pub modified: SystemTime,
}

/// The files a rotation left of `log`, oldest first, that continue into it: siblings named
/// `<log name>.<suffix>` where the suffix is a number or a date (digits, `-`, `_`, `.`),
/// optionally ending in `.gz` (logrotate's `compress`), newest last, at most
/// [`MAX_PREDECESSORS`]. A file counts only when it was still being written when it was
/// rotated: its last write no more than `max_gap` before its rename (its change time; a
/// gzipped one is judged by the file it follows) and before the next file began (its birth
/// time, where the file system records one). So the log of an earlier run, idle when a
/// rotator renamed it, is not taken for this run's past. A sibling that is not a regular
/// file (a link, a folder) is left out.
pub fn predecessors(log: &Path, max_gap: Duration) -> Vec<Rotated> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(current) = std::fs::metadata(log) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let prefix = format!("{name}.");
    let mut found: Vec<(Rotated, Option<SystemTime>, bool)> = entries
        .flatten()
        .filter_map(|e| {
            let file_name = e.file_name();
            let suffix = file_name.to_str()?.strip_prefix(&prefix)?.to_string();
            let (suffix, gzip) = match suffix.strip_suffix(".gz") {
                Some(s) => (s.to_string(), true),
                None => (suffix, false),
            };
            let dated = !suffix.is_empty()
                && suffix.bytes().any(|b| b.is_ascii_digit())
                && suffix.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
            if !dated {
                return None;
            }
            // Not followed: a link could point anywhere.
            let meta = e.metadata().ok().filter(|m| m.file_type().is_file())?;
            let modified = meta.modified().ok()?;
            // Written until it was renamed (or copied: copytruncate), or idle long before?
            let idle_when_rotated = !gzip && {
                use std::os::unix::fs::MetadataExt;
                let changed = SystemTime::UNIX_EPOCH + Duration::from_secs(meta.ctime().max(0) as u64);
                changed.duration_since(modified).is_ok_and(|idle| idle > max_gap)
            };
            Some((Rotated { path: e.path(), gzip, modified }, meta.created().ok(), idle_when_rotated))
        })
        .collect();
    // Newest first.
    found.sort_by(|a, b| b.0.modified.cmp(&a.0.modified).then_with(|| a.0.path.cmp(&b.0.path)));
    let mut boundary = current.created().ok();
    let mut out = Vec::new();
    for (r, born, idle_when_rotated) in found {
        if out.len() == MAX_PREDECESSORS || idle_when_rotated {
            break;
        }
        // A rotated file written after the log it would precede is not its past.
        if current.modified().is_ok_and(|m| r.modified > m + Duration::from_secs(1)) {
            continue;
        }
        if let Some(b) = boundary
            && b.duration_since(r.modified).is_ok_and(|gap| gap > max_gap)
        {
            break;
        }
        boundary = born;
        out.push(r);
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_mtime(p: &Path, t: SystemTime) {
        let f = std::fs::File::options().write(true).open(p).expect("open");
        f.set_modified(t).expect("set mtime");
    }

    #[test]
    fn numbered_dated_and_compressed_siblings_oldest_first() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("train.log");
        let now = SystemTime::now();
        for (name, ago) in [
            ("train.log.3", 400),
            ("train.log.2.gz", 300),
            ("train.log.1", 200),
            ("train.log.bak", 100),
            ("train.log.swp", 100),
            ("other.log.1", 100),
            ("train.log", 0),
        ] {
            std::fs::write(dir.path().join(name), "x\n").expect("write");
            set_mtime(&dir.path().join(name), now - Duration::from_secs(ago));
        }
        std::fs::create_dir(dir.path().join("train.log.4")).expect("dir");
        let p = predecessors(&log, Duration::from_secs(3600));
        let names: Vec<String> = p.iter().map(|r| r.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["train.log.3", "train.log.2.gz", "train.log.1"]);
        assert_eq!(p.iter().map(|r| r.gzip).collect::<Vec<_>>(), [false, true, false]);
        // Only three are read.
        std::fs::write(dir.path().join("train.log.2026-11-29"), "x\n").expect("write");
        set_mtime(&dir.path().join("train.log.2026-11-29"), now - Duration::from_secs(100));
        let names: Vec<String> = predecessors(&log, Duration::from_secs(3600))
            .iter()
            .map(|r| r.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["train.log.2.gz", "train.log.1", "train.log.2026-11-29"]);
    }

    #[test]
    fn a_rotated_file_older_than_the_gap_is_another_run() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("train.log");
        std::fs::write(&log, "step 1\n").expect("write");
        let old = dir.path().join("train.log.1");
        std::fs::write(&old, "step 900\n").expect("write");
        assert_eq!(predecessors(&log, Duration::from_secs(60)).len(), 1, "written until just now");
        // Last written two hours before it was renamed (setting the time changes its
        // change time, as the rename did): an ended run's log.
        set_mtime(&old, SystemTime::now() - Duration::from_secs(7200));
        assert!(predecessors(&log, Duration::from_secs(900)).is_empty(), "two hours before the log began");
        assert_eq!(predecessors(&log, Duration::from_secs(3 * 3600)).len(), 1);
        // A link named like a rotated file is not followed.
        std::fs::remove_file(&old).expect("rm");
        std::os::unix::fs::symlink("/etc/passwd", &old).expect("link");
        assert!(predecessors(&log, Duration::from_secs(3 * 3600)).is_empty());
    }

    #[test]
    fn no_log_no_predecessors() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("train.log.1"), "x\n").expect("write");
        assert!(predecessors(&dir.path().join("train.log"), Duration::from_secs(60)).is_empty());
    }
}

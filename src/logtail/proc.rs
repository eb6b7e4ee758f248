//! Is anything still writing the log? A process holding the log open for writing is the
//! training run (or the `tee` beside it). Linux `/proc` only; other processes' folders
//! that cannot be read (another user's, without root) are skipped.

use std::io;
use std::path::Path;

/// Process ids (other than this one) that have `path` open for writing.
pub fn writers_of(path: &Path) -> io::Result<Vec<u32>> {
    let target = match path.canonicalize() {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else { continue };
            if link != target {
                continue;
            }
            let info = entry.path().join("fdinfo").join(fd.file_name());
            if std::fs::read_to_string(info).is_ok_and(|t| opened_for_writing(&t)) {
                out.push(pid);
                break;
            }
        }
    }
    Ok(out)
}

/// `flags:` in `/proc/PID/fdinfo/FD` is octal; the access mode is its low two bits.
fn opened_for_writing(fdinfo: &str) -> bool {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .is_some_and(|flags| matches!(flags & 0o3, 1 | 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_mode_from_fdinfo() {
        assert!(opened_for_writing("pos:\t0\nflags:\t0102001\nmnt_id:\t1\n"));
        assert!(opened_for_writing("flags:\t02\n"));
        assert!(!opened_for_writing("pos:\t0\nflags:\t0100000\n"));
        assert!(!opened_for_writing("nothing"));
    }
}

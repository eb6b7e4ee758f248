//! Which files are held open for writing, from `/proc` (Linux only, best effort).
//!
//! For every process we may look at, each `/proc/PID/fd/N` link is read; when its target
//! lies under one of the folders asked about, `/proc/PID/fdinfo/N` gives the open flags,
//! and `O_WRONLY` or `O_RDWR` counts as "open for writing". Processes of other users are
//! invisible without root (permission errors are skipped), so a checkpoint written by
//! another user's process is only caught by the settle period.

use std::fs;
use std::path::{Path, PathBuf};

/// Parse the octal `flags:` line of an fdinfo file and tell whether it is a write mode.
pub fn fdinfo_is_write(fdinfo: &str) -> bool {
    for line in fdinfo.lines() {
        if let Some(rest) = line.strip_prefix("flags:")
            && let Ok(flags) = u32::from_str_radix(rest.trim(), 8)
        {
            let mode = flags & (libc::O_ACCMODE as u32);
            return mode == libc::O_WRONLY as u32 || mode == libc::O_RDWR as u32;
        }
    }
    false
}

/// Paths under any of `under` (canonical folders) that some process holds open for
/// writing. Returns the canonical paths of the open files.
pub fn open_for_write(under: &[PathBuf]) -> Vec<PathBuf> {
    open_for_write_in(Path::new("/proc"), under)
}

/// As [`open_for_write`], reading a `/proc`-shaped tree at `proc_root`.
pub fn open_for_write_in(proc_root: &Path, under: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if under.is_empty() {
        return out;
    }
    let Ok(procs) = fs::read_dir(proc_root) else {
        return out;
    };
    for p in procs.filter_map(Result::ok) {
        let name = p.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let pid_dir = p.path();
        let Ok(fd_dir) = fs::File::open(pid_dir.join("fd")) else {
            continue;
        };
        let Ok(fds) = fs::read_dir(pid_dir.join("fd")) else {
            continue;
        };
        for fd in fds.filter_map(Result::ok) {
            // readlinkat relative to the open fd folder: no path walk per descriptor.
            let Some(target) = readlink_at(&fd_dir, &fd.file_name()) else {
                continue;
            };
            let target = match target.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
                Some(s) => PathBuf::from(s),
                None => target,
            };
            if !under.iter().any(|u| target.starts_with(u)) {
                continue;
            }
            let info = fs::read_to_string(pid_dir.join("fdinfo").join(fd.file_name())).unwrap_or_default();
            if fdinfo_is_write(&info) {
                out.push(target);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn readlink_at(dir: &fs::File, name: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let c = std::ffi::CString::new(name.as_bytes()).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid descriptor, C string and buffer of the given length.
    let n = unsafe { libc::readlinkat(dir.as_raw_fd(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 || n as usize >= buf.len() {
        return None;
    }
    buf.truncate(n as usize);
    Some(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fdinfo_flags_are_octal_access_modes() {
        assert!(!fdinfo_is_write("pos:\t0\nflags:\t0100000\nmnt_id:\t1\n"));
        assert!(fdinfo_is_write("pos:\t0\nflags:\t0100001\nmnt_id:\t1\n"));
        assert!(fdinfo_is_write("pos:\t0\nflags:\t02100002\n"));
        assert!(!fdinfo_is_write("garbage"));
    }

    #[test]
    fn sees_our_own_write_handle_but_not_a_read_handle() {
        let dir = tempfile::tempdir().unwrap();
        let canon = fs::canonicalize(dir.path()).unwrap();
        let w = canon.join("w.pt");
        let r = canon.join("r.pt");
        fs::write(&r, b"x").unwrap();
        let mut wf = fs::File::create(&w).unwrap();
        wf.write_all(b"partial").unwrap();
        let _rf = fs::File::open(&r).unwrap();
        let open = open_for_write(std::slice::from_ref(&canon));
        assert!(open.contains(&w), "{open:?}");
        assert!(!open.contains(&r), "{open:?}");
        drop(wf);
        assert!(!open_for_write(&[canon]).contains(&w));
    }
}

//! Ending a GPU process (`K` in the panel): SIGTERM, only to a process the user owns,
//! and only to the very process that was chosen (not a later one that reused its pid).

use std::path::Path;

use super::procinfo::{parse_real_uid, read_start_ticks};

/// Why a process was not sent SIGTERM.
#[derive(Debug, thiserror::Error)]
pub enum TerminateError {
    /// The process is gone.
    #[error("process {pid} has already ended")]
    NoSuchProcess { pid: u32 },
    /// Owned by another user.
    #[error("process {pid} belongs to uid {owner_uid}, not to you (uid {my_uid}): not sent")]
    NotYours { pid: u32, owner_uid: u32, my_uid: u32 },
    /// The pid now names a different process than the one chosen.
    #[error("pid {pid} now names another process (the chosen one ended): not sent")]
    Replaced { pid: u32 },
    /// pid 0 or 1, or this console itself.
    #[error("process {pid} is protected (init or this console): not sent")]
    Protected { pid: u32 },
    /// The kernel refused.
    #[error("SIGTERM to {pid} failed: {error}")]
    Os { pid: u32, error: std::io::Error },
}

/// Checks that `pid` is still the chosen process (`expected_start_ticks`, when known) and
/// belongs to the current user; returns its owner uid. The panel calls this before asking.
pub fn check_terminable(pid: u32, expected_start_ticks: Option<u64>) -> Result<u32, TerminateError> {
    check_in(Path::new("/proc"), pid, expected_start_ticks)
}

fn check_in(proc_root: &Path, pid: u32, expected: Option<u64>) -> Result<u32, TerminateError> {
    if pid <= 1 || pid == std::process::id() {
        return Err(TerminateError::Protected { pid });
    }
    let dir = proc_root.join(pid.to_string());
    let status = std::fs::read_to_string(dir.join("status")).map_err(|_| TerminateError::NoSuchProcess { pid })?;
    let owner_uid = parse_real_uid(&status).ok_or(TerminateError::NoSuchProcess { pid })?;
    // SAFETY: getuid has no preconditions.
    let my_uid = unsafe { libc::getuid() };
    if owner_uid != my_uid {
        return Err(TerminateError::NotYours { pid, owner_uid, my_uid });
    }
    if let Some(want) = expected
        && read_start_ticks(&dir) != Some(want)
    {
        return Err(TerminateError::Replaced { pid });
    }
    Ok(owner_uid)
}

/// Send SIGTERM to `pid` if it is the chosen process and the current user owns it.
/// Where the kernel has pidfds (Linux 5.3+), the process is pinned before the checks, so
/// a pid reused between check and signal cannot be hit.
pub fn terminate(pid: u32, expected_start_ticks: Option<u64>) -> Result<(), TerminateError> {
    if pid <= 1 || pid == std::process::id() || pid > i32::MAX as u32 {
        return Err(TerminateError::Protected { pid });
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if pidfd < 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ESRCH) {
            return Err(TerminateError::NoSuchProcess { pid });
        }
        // No pidfds here: check, then kill by pid.
        check_terminable(pid, expected_start_ticks)?;
        // SAFETY: kill takes plain integers.
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        return os_result(pid, rc);
    }
    let pidfd = pidfd as libc::c_int;
    let result = check_terminable(pid, expected_start_ticks).and_then(|_| {
        // SAFETY: pidfd is an open pidfd; a null siginfo means "as kill(2) would".
        let rc = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, pidfd, libc::SIGTERM, std::ptr::null::<libc::siginfo_t>(), 0)
        };
        os_result(pid, rc as libc::c_int)
    });
    // SAFETY: pidfd was opened above and is closed once.
    unsafe { libc::close(pidfd) };
    result
}

fn os_result(pid: u32, rc: libc::c_int) -> Result<(), TerminateError> {
    if rc == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::ESRCH) {
        Err(TerminateError::NoSuchProcess { pid })
    } else {
        Err(TerminateError::Os { pid, error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    #[test]
    fn sigterm_reaches_own_child() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let pid = child.id();
        let ticks = read_start_ticks(&Path::new("/proc").join(pid.to_string()));
        assert!(ticks.is_some());
        terminate(pid, ticks).expect("terminate own child");
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn wrong_start_time_is_refused_and_the_process_lives() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let pid = child.id();
        let ticks = read_start_ticks(&Path::new("/proc").join(pid.to_string())).expect("ticks");
        let err = terminate(pid, Some(ticks + 1)).expect_err("must refuse");
        assert!(matches!(err, TerminateError::Replaced { .. }), "{err}");
        assert!(child.try_wait().expect("try_wait").is_none(), "child was hit");
        child.kill().expect("cleanup");
        child.wait().expect("reap");
    }

    #[test]
    fn protected_and_gone() {
        assert!(matches!(terminate(1, None), Err(TerminateError::Protected { pid: 1 })));
        assert!(matches!(terminate(std::process::id(), None), Err(TerminateError::Protected { .. })));
        let mut child = Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("reap");
        assert!(matches!(terminate(pid, None), Err(TerminateError::NoSuchProcess { .. })));
    }

    #[test]
    fn another_users_process_is_refused() {
        use std::os::unix::process::CommandExt;
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        if me == 0 {
            cmd.uid(65534).gid(65534); // as root: a process of "nobody"
        } else {
            // Not root: we cannot start another user's process; find one that exists.
            let other = std::fs::read_dir("/proc")
                .expect("/proc")
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&pid| pid > 1)
                .find(|&pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/status"))
                        .ok()
                        .and_then(|s| parse_real_uid(&s))
                        .is_some_and(|uid| uid != me)
                });
            let Some(pid) = other else {
                eprintln!("no process of another user is visible here; nothing to refuse");
                return;
            };
            let err = terminate(pid, None).expect_err("must refuse");
            assert!(matches!(err, TerminateError::NotYours { .. }), "{err}");
            return;
        }
        let mut child = cmd.spawn().expect("spawn as nobody");
        let pid = child.id();
        let err = terminate(pid, None).expect_err("must refuse");
        assert!(matches!(err, TerminateError::NotYours { owner_uid: 65534, .. }), "{err}");
        assert!(child.try_wait().expect("try_wait").is_none(), "child was hit");
        child.kill().expect("cleanup");
        child.wait().expect("reap");
    }
}

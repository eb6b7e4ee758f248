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
    let my_uid = rustix::process::getuid().as_raw();
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
    use rustix::process::{Pid, PidfdFlags, Signal};
    let Some(target) = Pid::from_raw(pid as i32) else { return Err(TerminateError::Protected { pid }) };
    match rustix::process::pidfd_open(target, PidfdFlags::empty()) {
        Err(rustix::io::Errno::SRCH) => Err(TerminateError::NoSuchProcess { pid }),
        Err(_) => {
            // No pidfds here: check, then kill by pid.
            check_terminable(pid, expected_start_ticks)?;
            os_result(pid, rustix::process::kill_process(target, Signal::TERM))
        }
        // The pidfd is closed when dropped.
        Ok(pidfd) => check_terminable(pid, expected_start_ticks)
            .and_then(|_| os_result(pid, rustix::process::pidfd_send_signal(&pidfd, Signal::TERM))),
    }
}

fn os_result(pid: u32, rc: rustix::io::Result<()>) -> Result<(), TerminateError> {
    match rc {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::SRCH) => Err(TerminateError::NoSuchProcess { pid }),
        Err(e) => Err(TerminateError::Os { pid, error: e.into() }),
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
        assert_eq!(status.signal(), Some(rustix::process::Signal::TERM.as_raw()));
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
        let me = rustix::process::getuid().as_raw();
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

//! Running a command with a deadline: in a process group of its own, so that a timeout stops
//! everything it started (`sh -c` and its children), with its output collected.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Why a command gave no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The program is not installed.
    NotFound,
    /// It ran past the deadline and was stopped.
    TimedOut(Duration),
    Other(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::NotFound => f.write_str("the program is not installed"),
            RunError::TimedOut(d) => write!(f, "timed out after {}", humantime::format_duration(*d)),
            RunError::Other(e) => f.write_str(e),
        }
    }
}

/// Runs `cmd` (stdin closed) until it exits or `timeout` passes; then its whole process
/// group is killed.
pub fn output(mut cmd: Command, timeout: Duration) -> Result<Output, RunError> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RunError::NotFound,
        _ => RunError::Other(format!("cannot start it: {e}")),
    })?;
    let pgid = child.id() as i32;
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                // At most 1 MiB kept; the rest is read and dropped so the child never blocks.
                let mut chunk = [0u8; 8192];
                while let Ok(n) = r.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    if buf.len() < 1 << 20 {
                        buf.extend_from_slice(&chunk[..n]);
                    }
                }
            }
            buf
        })
    };
    let out = reader(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let err = reader(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(pgid);
                let _ = child.wait();
                // The readers end when the last writer in the group is gone.
                let _ = out.join();
                let _ = err.join();
                return Err(RunError::TimedOut(timeout));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(RunError::Other(e.to_string())),
        }
    };
    // Children left behind holding the pipes open must not keep this waiting forever.
    kill_group(pgid);
    Ok(Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() })
}

/// SIGKILL to the process group this module created; the group may already be empty
/// (ESRCH is fine).
fn kill_group(pgid: i32) {
    if let Some(pgid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_exit_and_timeout() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let o = output(c, Duration::from_secs(10)).expect("runs");
        assert_eq!(o.status.code(), Some(3));
        assert_eq!((o.stdout.as_slice(), o.stderr.as_slice()), (&b"out\n"[..], &b"err\n"[..]));
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("child.pid");
        let mut c = Command::new("sh");
        // A child of the shell keeps the pipe open: it is stopped with the group.
        c.arg("-c").arg(format!("sleep 600 & echo $! > {}; wait", pidfile.display()));
        // Long enough for a loaded machine to start the shell and write the pid file.
        assert_eq!(output(c, Duration::from_secs(2)), Err(RunError::TimedOut(Duration::from_secs(2))));
        let pid: i32 = std::fs::read_to_string(&pidfile).expect("pid").trim().parse().expect("a pid");
        // Gone, or a zombie waiting to be reaped by whoever inherited it. SIGKILL is sent
        // before `output` returns, but a loaded machine may take a moment to carry it out.
        let alive = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with(['Z', 'X'])) && !stat.is_empty()
        };
        let mut tries = 0;
        while alive() && tries < 200 {
            std::thread::sleep(Duration::from_millis(25));
            tries += 1;
        }
        assert!(!alive(), "the shell's child was killed with its group");
        assert_eq!(output(Command::new("no-such-program-here"), Duration::from_secs(1)), Err(RunError::NotFound));
    }
}

//! Starting the training command from the chosen checkpoint (`[resume] command`), so that
//! it outlives the console and the SSH session:
//!
//! - `sh -c COMMAND` in the workspace root, `{checkpoint}` replaced by the checkpoint's
//!   absolute path and `{experiment}` by the experiment's name, each shell-quoted;
//! - in a session of its own (`setsid`): no controlling terminal, so the hang-up of a
//!   closed SSH session or tmux pane never reaches it, and the console's process group is
//!   not its own;
//! - stdin from `/dev/null`; stdout and stderr appended to the experiment's log (`[resume]
//!   log`), which the console's Log panel then follows; `PYTHONUNBUFFERED=1` unless set, so
//!   Python's output reaches the log line by line instead of in 8 kB blocks;
//! - recorded in `.opsconsole/resume-runs.jsonl` (time, pid, command, checkpoint, log).
//!
//! Refused while a training process runs: any compute process on a GPU, or a process
//! writing the log (each shown with its pid).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde::Serialize;

use crate::config::Config;

/// A process that makes a resume unsafe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Busy {
    pub pid: u32,
    /// In words: `python train.py on GPU 0 (16.9 GB)`, `writing experiments/v68/logs/train.log`.
    pub what: String,
}

/// A started run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Launch {
    pub pid: u32,
    /// The command as run (placeholders replaced).
    pub command: String,
    pub checkpoint: String,
    /// Workspace-relative path of the log its output goes to.
    pub log: String,
    /// The log's absolute path.
    pub log_path: String,
    pub started: String,
}

/// Why nothing was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "refused")]
pub enum Refused {
    /// No `[resume] command`.
    NoCommand,
    /// A training process is running.
    Busy { processes: Vec<Busy> },
    /// The command could not be started.
    Failed { why: String },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NoCommand => f.write_str(
                "no [resume] command in opsconsole.toml, e.g. command = \"python experiments/v01/train.py \
                 --resume_from_checkpoint {checkpoint}\"",
            ),
            Refused::Busy { processes } => {
                let list: Vec<String> = processes.iter().map(|b| format!("pid {} {}", b.pid, b.what)).collect();
                write!(f, "not started: a training process is running ({})", list.join("; "))
            }
            Refused::Failed { why } => write!(f, "not started: {why}"),
        }
    }
}

/// The log a resumed run of `experiment` writes to (absolute) and as shown.
pub fn log_path(workspace: &Path, cfg: &Config, experiment: &str) -> (std::path::PathBuf, String) {
    let rel = super::expand(&cfg.resume.log, &cfg.paths.experiments, experiment);
    let abs = super::in_workspace(workspace, &rel);
    (abs.clone(), super::shown(workspace, &abs))
}

/// Training processes now: every compute process on a GPU (from `gpu`, a sample taken
/// now), and every process writing `log`.
pub fn busy(gpu: Option<&crate::gpu::GpuSample>, log: &Path) -> Vec<Busy> {
    let me = std::process::id();
    let mut out: Vec<Busy> = Vec::new();
    if let Some(s) = gpu {
        for p in s.processes().filter(|p| p.pid != me) {
            let mem = p.used_bytes.map(|b| format!(" ({})", crate::util::bytes(b))).unwrap_or_default();
            let cmd = p.program().map(|n| crate::util::ellipsize(&n.head, 60)).unwrap_or_else(|| p.short_name());
            out.push(Busy { pid: p.pid, what: format!("{cmd} on GPU {}{mem}", p.gpu_index) });
        }
    }
    if let Ok(pids) = crate::logtail::proc::writers_of(log) {
        for pid in pids {
            if !out.iter().any(|b| b.pid == pid) {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string())
                    .filter(|c| !c.is_empty())
                    .map(|c| format!("{} ", crate::util::ellipsize(&c, 50)))
                    .unwrap_or_default();
                out.push(Busy { pid, what: format!("{cmd}writing {}", log.display()) });
            }
        }
    }
    out
}

/// `s` quoted for `sh`: `'…'` with each `'` written `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The command with its placeholders replaced.
pub fn command_for(template: &str, checkpoint: &Path, experiment: &str) -> String {
    template
        .replace("{checkpoint}", &shell_quote(&checkpoint.to_string_lossy()))
        .replace("{experiment}", &shell_quote(experiment))
}

/// Starts `[resume] command` from `checkpoint`, detached, unless a training process runs
/// (`gpu`: a GPU sample taken now; `None` when there is no GPU to ask). The child is
/// returned so a long-lived caller (the console) can reap it; a CLI may drop it.
pub fn start(
    workspace: &Path,
    cfg: &Config,
    experiment: &str,
    checkpoint: &Path,
    gpu: Option<&crate::gpu::GpuSample>,
) -> Result<(Launch, Child), Refused> {
    let template = cfg.resume.command.trim();
    if template.is_empty() {
        return Err(Refused::NoCommand);
    }
    let (log_abs, log_shown) = log_path(workspace, cfg, experiment);
    let processes = busy(gpu, &log_abs);
    if !processes.is_empty() {
        return Err(Refused::Busy { processes });
    }
    if !checkpoint.exists() {
        return Err(Refused::Failed { why: format!("{} is gone", checkpoint.display()) });
    }
    let fail = |why: String| Refused::Failed { why };
    if let Some(parent) = log_abs.parent() {
        std::fs::create_dir_all(parent).map_err(|e| fail(format!("creating {}: {e}", parent.display())))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_abs)
        .map_err(|e| fail(format!("opening {log_shown}: {e}")))?;
    let err = log.try_clone().map_err(|e| fail(format!("opening {log_shown}: {e}")))?;
    let command = command_for(template, checkpoint, experiment);
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(&command).current_dir(workspace).stdin(Stdio::null()).stdout(log).stderr(err);
    if std::env::var_os("PYTHONUNBUFFERED").is_none() {
        cmd.env("PYTHONUNBUFFERED", "1");
    }
    // SAFETY: the hook only makes the setsid(2) system call (rustix issues it directly:
    // no allocation, no locks), which is async-signal-safe between fork and exec.
    unsafe {
        cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(std::io::Error::from));
    }
    let child = cmd.spawn().map_err(|e| fail(format!("starting /bin/sh: {e}")))?;
    let launch = Launch {
        pid: child.id(),
        command,
        checkpoint: super::shown(workspace, checkpoint),
        log: log_shown,
        log_path: log_abs.to_string_lossy().into_owned(),
        started: super::rfc3339_utc(std::time::SystemTime::now()),
    };
    record(workspace, &launch);
    tracing::info!(pid = launch.pid, log = %launch.log, "resumed training started");
    Ok((launch, child))
}

/// One line in `.opsconsole/resume-runs.jsonl` (best effort).
fn record(workspace: &Path, launch: &Launch) {
    use std::io::Write;
    let dir = workspace.join(".opsconsole");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("resume-runs.jsonl"))
        && let Ok(line) = serde_json::to_string(launch)
    {
        let _ = writeln!(f, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_shell_quoted() {
        let c = command_for("python t.py --from {checkpoint} --exp {experiment}", Path::new("/w/it's here.pt"), "v1");
        assert_eq!(c, r"python t.py --from '/w/it'\''s here.pt' --exp 'v1'");
    }
}

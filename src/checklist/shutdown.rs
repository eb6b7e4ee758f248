//! The shutdown decision and the command. A shutdown is allowed only when every enabled
//! item passes, or each failing item was overridden by typing its name. The decision, each
//! override (with the reason the item failed) and a refusal go to the console's log and to
//! the ledger's history. The command runs with `sh -c` in a session of its own
//! (`setsid`), detached from the console's terminal, so that closing the console or the
//! SSH session does not stop it; its output goes to `.opsconsole/shutdown-command.log`.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{Report, Status};

/// What the checklist allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every enabled item passes, or each failing one was overridden: (name, why it failed).
    Allowed { overrides: Vec<(String, String)> },
    /// These items fail and were not overridden.
    Refused { failing: Vec<String> },
}

/// Judges a fresh report against the names the user typed.
pub fn decide(report: &Report, overrides: &BTreeSet<String>) -> Decision {
    let mut over = Vec::new();
    let mut failing = Vec::new();
    for i in report.items.iter().filter(|i| i.status == Status::Fail) {
        if overrides.contains(&i.name) {
            over.push((i.name.clone(), i.reason.clone()));
        } else {
            failing.push(i.name.clone());
        }
    }
    if failing.is_empty() { Decision::Allowed { overrides: over } } else { Decision::Refused { failing } }
}

/// `.opsconsole/shutdown-command.log`: what the command printed.
pub fn output_log(workspace: &Path) -> PathBuf {
    workspace.join(".opsconsole").join("shutdown-command.log")
}

/// The command as recorded: arguments that look like credentials are left out.
pub fn redacted(command: &str) -> String {
    command
        .split_whitespace()
        .map(|a| {
            let l = a.to_ascii_lowercase();
            let secretish = ["token", "secret", "password", "passwd", "apikey", "api_key", "api-key", "key="]
                .iter()
                .any(|w| l.contains(w));
            if secretish { "…" } else { a }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

use crate::unixtime::now_ms;

/// Writes the decision to the console's log and the ledger's history.
pub fn record(workspace: &Path, command: &str, decision: &Decision) -> Result<(), String> {
    let cmd = redacted(command);
    let mut ledger = crate::sync::ledger::Ledger::open(workspace).map_err(|e| e.to_string())?;
    let at = now_ms();
    match decision {
        Decision::Allowed { overrides } if overrides.is_empty() => {
            tracing::info!(command = %cmd, "shutdown: every checklist item passes; running the shutdown command");
            ledger
                .record_event("shutdown", None, None, &format!("every checklist item passed; ran `{cmd}`"), at)
                .map_err(|e| e.to_string())?;
        }
        Decision::Allowed { overrides } => {
            for (name, why) in overrides {
                tracing::warn!(item = %name, reason = %why, "shutdown: failing checklist item overridden by the user");
                ledger
                    .record_event("shutdown_override", None, None, &format!("{name} overridden: {why}"), at)
                    .map_err(|e| e.to_string())?;
            }
            let names: Vec<&str> = overrides.iter().map(|(n, _)| n.as_str()).collect();
            tracing::warn!(command = %cmd, overridden = %names.join(", "), "shutdown: running the shutdown command with overrides");
            ledger
                .record_event(
                    "shutdown",
                    None,
                    None,
                    &format!("ran `{cmd}` with {} overridden: {}", names.len(), names.join(", ")),
                    at,
                )
                .map_err(|e| e.to_string())?;
        }
        Decision::Refused { failing } => {
            tracing::info!(failing = %failing.join(", "), "shutdown refused: checklist items fail");
            ledger
                .record_event(
                    "shutdown_refused",
                    None,
                    None,
                    &format!("not shut down: {} still failing", failing.join(", ")),
                    at,
                )
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Starts the command in a session of its own, output appended to [`output_log`].
pub fn spawn(workspace: &Path, command: &str) -> std::io::Result<Child> {
    let log = output_log(workspace);
    if let Some(d) = log.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
    writeln!(out, "== {} {}", humantime::format_rfc3339_seconds(std::time::SystemTime::now()), redacted(command))?;
    let err = out.try_clone()?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command).current_dir(workspace).stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: the hook only makes the setsid(2) system call (rustix issues it directly:
    // no allocation, no locks), which is async-signal-safe between fork and exec.
    unsafe {
        cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(std::io::Error::from));
    }
    cmd.spawn()
}

/// What a shutdown request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command runs (pid); these items were overridden.
    Started { pid: u32, overridden: Vec<String> },
    /// Items fail that were not overridden.
    Refused { failing: Vec<String> },
    /// `[shutdown] command` is empty.
    NoCommand,
    /// The decision could not be recorded, or the command not started.
    Failed(String),
}

/// Decides on a fresh report, records the decision, and starts the command when allowed.
/// Returns the outcome and, when started, the child to wait for.
pub fn execute(
    workspace: &Path,
    command: &str,
    report: &Report,
    overrides: &BTreeSet<String>,
) -> (Outcome, Option<Child>) {
    if command.trim().is_empty() {
        return (Outcome::NoCommand, None);
    }
    let decision = decide(report, overrides);
    // No record, no shutdown: the history must say why the machine went down.
    if let Err(e) = record(workspace, command, &decision) {
        tracing::error!("shutdown not run: the decision could not be recorded: {e}");
        return (Outcome::Failed(format!("the decision could not be recorded in the ledger: {e}")), None);
    }
    match decision {
        Decision::Refused { failing } => (Outcome::Refused { failing }, None),
        Decision::Allowed { overrides } => match spawn(workspace, command) {
            Ok(child) => {
                tracing::info!(pid = child.id(), "shutdown command started");
                (
                    Outcome::Started { pid: child.id(), overridden: overrides.into_iter().map(|(n, _)| n).collect() },
                    Some(child),
                )
            }
            Err(e) => {
                tracing::error!("the shutdown command could not start: {e}");
                (Outcome::Failed(format!("the shutdown command could not start: {e}")), None)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checklist::{Fix, Item};

    #[test]
    fn decisions() {
        let r = Report::new(
            0,
            "w".into(),
            vec![
                Item::pass("a", "", "ok"),
                Item::fail("git", "", "2 commits not pushed", Fix::default()),
                Item::off("c", "", ""),
            ],
        );
        assert_eq!(decide(&r, &BTreeSet::new()), Decision::Refused { failing: vec!["git".into()] });
        let o = BTreeSet::from(["git".to_string(), "a".to_string()]);
        assert_eq!(
            decide(&r, &o),
            Decision::Allowed { overrides: vec![("git".into(), "2 commits not pushed".into())] }
        );
        assert_eq!(redacted("gcloud stop vm --access-token-file=/x --zone z"), "gcloud stop vm … --zone z");
    }
}

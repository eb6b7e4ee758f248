//! Each built-in item judged from facts already gathered (no I/O here), so that every
//! reason and fix can be tested from plain values.

use std::time::{Duration, SystemTime};

use super::git::{GitError, GitState};
use super::{Fix, Item};
use crate::disk::{DiskSample, Level};
use crate::gpu::{GpuSample, NvmlStatus};
use crate::sync::SyncStatus;
use crate::util;

pub const TITLES: [(&str, &str); 11] = [
    ("training", "no training process running"),
    ("uploads", "every upload level's queue empty, nothing failed"),
    ("weights", "newest checkpoint confirmed on L3"),
    ("logs", "newest log and journal confirmed on L2"),
    ("git", "work tree clean, nothing unpushed"),
    ("journal", "journal changed after the last run ended"),
    ("estimate", "training within 1.5x of its estimate, or the user told"),
    ("requirements", "frozen requirements present and current"),
    ("dependencies", "no pip install in scripts, every import required"),
    ("disks", "every disk below warn"),
    ("jobs", "no bundle, import, resume, prune or sync job"),
];

/// The title of a built-in item.
pub fn title(name: &str) -> &'static str {
    TITLES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).unwrap_or("")
}

/// A process that would die with the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    /// Short command line.
    pub command: String,
    /// "GPU 0 (16.9 GB)" and/or "writes train.log".
    pub doing: Vec<String>,
}

/// `training`: GPU compute processes (from the sample) and writers of the training log.
pub fn training(gpu: Option<&GpuSample>, log: Option<&str>, writers: Result<Vec<Proc>, String>) -> Item {
    let name = "training";
    let mut procs: Vec<Proc> = Vec::new();
    let mut unknown = Vec::new();
    let mut notes = Vec::new();
    match gpu {
        None => unknown.push("GPUs not sampled yet".to_string()),
        Some(s) => match &s.nvml {
            NvmlStatus::Ok { .. } => {
                for p in s.processes() {
                    let mem = p.used_bytes.map(|b| format!(" ({})", util::bytes(b))).unwrap_or_default();
                    procs.push(Proc {
                        pid: p.pid,
                        command: p.command.clone().unwrap_or_else(|| "(hidden)".into()),
                        doing: vec![format!("GPU {}{mem}", p.gpu_index)],
                    });
                }
            }
            // No NVIDIA driver here: nothing can be running on a GPU.
            NvmlStatus::LibraryMissing { .. } | NvmlStatus::DriverNotLoaded => {
                notes.push("no NVIDIA driver".to_string())
            }
            NvmlStatus::Disabled => notes.push("GPU sampling off".to_string()),
            other => unknown.push(format!("GPU processes unknown: {}", other.describe())),
        },
    }
    let log_name = log.map(|l| l.rsplit('/').next().unwrap_or(l).to_string());
    match writers {
        Ok(ws) => {
            for w in ws {
                let what = format!("writes {}", log_name.clone().unwrap_or_else(|| "the log".into()));
                match procs.iter_mut().find(|p| p.pid == w.pid) {
                    Some(p) => p.doing.push(what),
                    None => procs.push(Proc { doing: vec![what], ..w }),
                }
            }
        }
        Err(e) => unknown.push(format!("log writers unknown: {e}")),
    }
    if !procs.is_empty() {
        let list: Vec<String> = procs
            .iter()
            .map(|p| {
                // The program and its script first: a cut keeps what the process is.
                let name = crate::gpu::procinfo::program_name(&p.command).map_or_else(|| p.command.clone(), |n| n.head);
                format!("pid {} {} ({})", p.pid, util::ellipsize(&name, 40), p.doing.join(", "))
            })
            .collect();
        return Item::fail(
            name,
            title(name),
            format!("running: {}", list.join("; ")),
            Fix::words(format!(
                "wait for it to finish, or stop it (from the GPU panel); or type `{name}` to accept that it dies"
            )),
        );
    }
    if !unknown.is_empty() {
        return Item::fail(
            name,
            title(name),
            unknown.join("; "),
            Fix::words(format!("check with nvidia-smi and ps; or type `{name}` to accept what may be running")),
        );
    }
    let mut reason = "no GPU process".to_string();
    if !notes.is_empty() {
        reason = format!("no GPU process ({})", notes.join(", "));
    }
    match &log_name {
        Some(l) => reason.push_str(&format!("; nothing writes {l}")),
        None => reason.push_str("; no training log"),
    }
    Item::pass(name, title(name), reason)
}

/// `uploads`: every enabled level with a configured remote has nothing pending or failed.
pub fn uploads(status: Result<&SyncStatus, String>, now_unix: u64) -> Item {
    let name = "uploads";
    let s = match status {
        Ok(s) => s,
        Err(e) => {
            return Item::fail(
                name,
                title(name),
                format!("cannot read the sync ledger: {e}"),
                Fix::words("see `opsconsole status`").command("opsconsole status"),
            );
        }
    };
    if s.levels.iter().all(|l| !l.enabled) {
        return Item::off(name, title(name), "every upload level is off (sync.l2/l3.enabled = false)");
    }
    let mut parts = Vec::new();
    let (mut pending, mut failed) = (false, false);
    for l in &s.levels {
        let head = format!("{} {}", l.level, l.remote);
        if !l.enabled {
            parts.push(format!("{} off", l.level));
            continue;
        }
        if !l.remote_configured {
            parts.push(format!("{head}: remote not configured, nothing queued"));
            continue;
        }
        let mut bits = Vec::new();
        if l.pending_files > 0 {
            pending = true;
            let what = match (&l.in_flight, &l.interrupted) {
                (Some(f), _) => format!(", uploading {}", f.path),
                (None, Some(f)) => format!(", {} interrupted", f.path),
                _ => String::new(),
            };
            bits.push(format!("{} waiting ({}){what}", l.pending_files, util::bytes(l.pending_bytes)));
        }
        if l.failed > 0 {
            failed = true;
            let first = l.failures.first().map(|f| format!(": {}: {}", f.path, first_sentence(&f.reason)));
            bits.push(format!("{} failed{}", l.failed, first.unwrap_or_default()));
        }
        if bits.is_empty() {
            let last = l
                .last_success_unix
                .map(|t| {
                    format!(
                        ", last ok {} ago",
                        util::duration(Duration::from_secs(now_unix.saturating_sub(t.max(0) as u64)))
                    )
                })
                .unwrap_or_default();
            bits.push(format!("nothing waiting{last}"));
        }
        parts.push(format!("{head}: {}", bits.join(", ")));
    }
    let reason = parts.join(" · ");
    if !pending && !failed {
        return Item::pass(name, title(name), reason);
    }
    let engine = if s.engine_pid.is_none() && pending {
        "; no sync engine runs now: open the console or run `opsconsole sync --daemon`"
    } else {
        ""
    };
    let fix = if failed {
        Fix::words(format!("retry the failed uploads once their cause is fixed{engine}"))
            .action("retry_failed")
            .command("opsconsole sync --once")
    } else {
        Fix::words(format!("store them now{engine}")).action("sync_now").command("opsconsole sync --once")
    };
    Item::fail(name, title(name), reason, fix)
}

/// The first sentence of an engine error (its "Fix: …" part is long).
fn first_sentence(s: &str) -> String {
    let cut = s.find(". Fix:").map(|i| &s[..i]).unwrap_or(s);
    util::ellipsize(cut, 80)
}

/// Where one file (or folder) stands on a level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyState {
    /// Confirmed in the ledger, for the level's remote now; `verified`: also checked on the
    /// remote just now (`Err`: what the check found).
    Confirmed { at_unix: Option<u64>, verified: Option<Result<(), String>> },
    /// Not confirmed, and why (pending, failed: …, not routed to the level, …).
    NotConfirmed(String),
}

/// A level's place in an item: off, no remote, or the state of each file that must be there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelFacts {
    /// `sync.lN.enabled = false`.
    Disabled,
    /// Enabled, but `[remotes.NAME]` is missing.
    NoRemote { remote: String },
    /// (what, display path or "none" reason, its state).
    Files { remote: String, files: Vec<(String, Result<CopyState, String>)> },
}

/// `weights` / `logs`: every file listed is confirmed (and verified when checked live).
pub fn level_item(name: &str, level: &str, facts: LevelFacts, now_unix: u64) -> Item {
    let (remote, files) = match facts {
        LevelFacts::Disabled => {
            return Item::off(
                name,
                title(name),
                format!("{level} is off (sync.{}.enabled = false)", level.to_ascii_lowercase()),
            );
        }
        LevelFacts::NoRemote { remote } => {
            return Item::fail(
                name,
                title(name),
                format!("{level}'s remote '{remote}' is not configured: nothing is stored on {level}"),
                Fix::words(format!(
                    "add [remotes.{remote}] to opsconsole.toml, then `opsconsole remote check {remote} --init`"
                ))
                .command(format!("opsconsole remote check {remote} --init")),
            );
        }
        LevelFacts::Files { remote, files } => (remote, files),
    };
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (what, state) in files {
        match state {
            Err(none) => ok.push(none),
            Ok(CopyState::Confirmed { at_unix, verified }) => {
                let age = at_unix
                    .map(|t| format!(" {} ago", util::duration(Duration::from_secs(now_unix.saturating_sub(t)))))
                    .unwrap_or_default();
                match verified {
                    Some(Err(why)) => bad.push(format!("{what}: {why}")),
                    Some(Ok(())) => ok.push(format!("{what} confirmed{age}, copy verified")),
                    None => ok.push(format!("{what} confirmed{age}")),
                }
            }
            Ok(CopyState::NotConfirmed(why)) => bad.push(format!("{what} {why}")),
        }
    }
    if bad.is_empty() {
        return Item::pass(name, title(name), format!("{level} {remote}: {}", ok.join("; ")));
    }
    Item::fail(
        name,
        title(name),
        format!("{level} {remote}: {}", bad.join("; ")),
        Fix::words("store it now (a growing log is stored as a snapshot)")
            .action("sync_now")
            .command("opsconsole sync --once"),
    )
}

/// `git`.
pub fn git(state: Result<&GitState, &GitError>) -> Item {
    let name = "git";
    let st = match state {
        Ok(s) => s,
        Err(e @ GitError::NotARepository) => {
            return Item::fail(
                name,
                title(name),
                format!("{e}: the code is not under version control"),
                Fix::words("`git init` and push it somewhere, or set checklist.git = false").command("git init"),
            );
        }
        Err(e) => {
            return Item::fail(
                name,
                title(name),
                e.to_string(),
                Fix::words("run `git status` to see why").command("git status"),
            );
        }
    };
    let mut bad = Vec::new();
    let mut fixes = Vec::new();
    if st.changed + st.untracked > 0 {
        let mut t = Vec::new();
        if st.changed > 0 {
            t.push(format!("{} changed", st.changed));
        }
        if st.untracked > 0 {
            t.push(format!("{} untracked", st.untracked));
        }
        let ex = if st.examples.is_empty() { String::new() } else { format!(" ({})", st.examples.join(", ")) };
        bad.push(format!("{}{ex}", t.join(", ")));
        fixes.push("commit (or .gitignore) them".to_string());
    }
    let branch = st.branch.clone();
    match (&branch, &st.upstream) {
        (None, _) => {
            bad.push("HEAD is detached: its commits are on no branch".into());
            fixes.push("`git switch -c NAME` and push it".into());
        }
        (Some(b), None) => {
            bad.push(format!("branch {b} has no upstream: its commits are on no remote"));
            fixes.push(format!("`git push -u origin {b}`"));
        }
        (Some(b), Some(u)) if st.upstream_gone => {
            bad.push(format!("{b}'s upstream {u} is gone"));
            fixes.push(format!("`git push -u origin {b}`"));
        }
        (Some(_), Some(u)) if st.ahead > 0 => {
            bad.push(format!("{} not pushed to {u}", plural(st.ahead, "commit")));
            fixes.push("`git push`".into());
        }
        _ => {}
    }
    let others: Vec<&String> = st.unpushed_branches.iter().filter(|b| Some(*b) != branch.as_ref()).collect();
    if !others.is_empty() {
        let names: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
        bad.push(format!("commits on {} are on no remote", names.join(", ")));
        fixes.push("push those branches (or delete them)".into());
    }
    if bad.is_empty() {
        let up = st.upstream.as_deref().unwrap_or("?");
        let behind = if st.behind > 0 { format!(" ({} behind)", st.behind) } else { String::new() };
        return Item::pass(
            name,
            title(name),
            format!("clean; {} up to date with {up}{behind}", branch.as_deref().unwrap_or("HEAD")),
        );
    }
    let cmd = if fixes.iter().any(|f| f.contains("git push")) { "git push" } else { "git status" };
    Item::fail(name, title(name), bad.join("; "), Fix::words(fixes.join("; ")).command(cmd))
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

fn ago(now: SystemTime, t: SystemTime) -> String {
    util::duration(now.duration_since(t).unwrap_or_default())
}

/// The last training run, as far as files tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    /// When it last wrote (the newest of the training log and the newest checkpoint).
    pub ended: SystemTime,
    /// What that was ("train.log", "v68_step_7000.pt").
    pub what: String,
    /// Still running (a process writes the log or runs on a GPU).
    pub running: bool,
}

/// `journal`: the journal was written after the last run's last write.
pub fn journal(journal_name: &str, journal_mtime: Option<SystemTime>, run: Option<&LastRun>, now: SystemTime) -> Item {
    let name = "journal";
    let fix = || Fix::words(format!("write what the run did (and what comes next) in {journal_name}"));
    let Some(run) = run else {
        return match journal_mtime {
            Some(_) => Item::pass(name, title(name), format!("no training run found; {journal_name} exists")),
            None => Item::pass(name, title(name), "no training run found (and no journal yet)"),
        };
    };
    let Some(jt) = journal_mtime else {
        return Item::fail(name, title(name), format!("{journal_name} does not exist"), fix());
    };
    if run.running {
        return Item::fail(
            name,
            title(name),
            format!(
                "the run is still going ({} written {} ago): write the journal once it ends",
                run.what,
                ago(now, run.ended)
            ),
            fix(),
        );
    }
    if jt >= run.ended {
        return Item::pass(
            name,
            title(name),
            format!(
                "{journal_name} changed {} after the run's last write ({})",
                util::duration(jt.duration_since(run.ended).unwrap_or_default()),
                run.what
            ),
        );
    }
    Item::fail(
        name,
        title(name),
        format!(
            "{journal_name} last changed {} before the run's last write ({}, {} ago)",
            util::duration(run.ended.duration_since(jt).unwrap_or_default()),
            run.what,
            ago(now, run.ended)
        ),
        fix(),
    )
}

/// `requirements`: the frozen file exists and is not older than the requirements.
pub fn requirements(req: (&str, Option<SystemTime>), frozen: (&str, Option<SystemTime>)) -> Item {
    let name = "requirements";
    let fix = || Fix::words(format!("pip freeze > {}", frozen.0)).command(format!("pip freeze > {}", frozen.0));
    match (req.1, frozen.1) {
        (_, None) => Item::fail(name, title(name), format!("{} does not exist", frozen.0), fix()),
        (Some(r), Some(f)) if r > f => Item::fail(
            name,
            title(name),
            format!(
                "{} changed {} after {} was written",
                req.0,
                util::duration(r.duration_since(f).unwrap_or_default()),
                frozen.0
            ),
            fix(),
        ),
        (Some(_), Some(_)) => Item::pass(name, title(name), format!("{} is not older than {}", frozen.0, req.0)),
        (None, Some(_)) => Item::pass(name, title(name), format!("{} present (no {})", frozen.0, req.0)),
    }
}

/// `disks`: every disk below `warn`.
pub fn disks(sample: Option<&DiskSample>, warn_pct: f64) -> Item {
    let name = "disks";
    let Some(s) = sample else {
        return Item::fail(name, title(name), "disks not sampled yet", Fix::words("wait a moment").action("refresh"));
    };
    let over: Vec<String> = s
        .disks
        .iter()
        .filter(|d| d.level >= Level::Warn)
        .map(|d| format!("{} {}% ({})", d.mount, d.use_pct(), d.level.as_str()))
        .collect();
    let mut errors = s.errors.clone();
    errors.truncate(2);
    if !over.is_empty() {
        return Item::fail(
            name,
            title(name),
            format!("{} at or above warn ({warn_pct:.0}%): a full disk can keep the VM from booting", over.join(", ")),
            Fix::words("prune old checkpoints and logs").action("prune").command("opsconsole prune"),
        );
    }
    if s.disks.is_empty() {
        let why = if errors.is_empty() { "no disk could be read".to_string() } else { errors.join("; ") };
        return Item::fail(name, title(name), why, Fix::words("check `df -h`").command("df -h"));
    }
    let list: Vec<String> = s.disks.iter().map(|d| format!("{} {}%", d.mount, d.use_pct())).collect();
    Item::pass(name, title(name), format!("{} (warn at {warn_pct:.0}%)", list.join(", ")))
}

/// A job that would be cut off by a shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningJob {
    pub kind: String,
    pub pid: u32,
    pub detail: String,
}

/// `jobs`.
pub fn jobs(running: &[RunningJob], sync_idle_daemon: Option<u32>) -> Item {
    let name = "jobs";
    if running.is_empty() {
        let daemon = sync_idle_daemon.map(|p| format!(" (the sync engine, pid {p}, is idle)")).unwrap_or_default();
        return Item::pass(name, title(name), format!("none running{daemon}"));
    }
    let list: Vec<String> = running
        .iter()
        .map(|j| {
            if j.detail.is_empty() {
                format!("{} (pid {})", j.kind, j.pid)
            } else {
                format!("{} (pid {}): {}", j.kind, j.pid, j.detail)
            }
        })
        .collect();
    Item::fail(name, title(name), format!("running: {}", list.join("; ")), Fix::words("wait for it to finish"))
}

/// What an extra command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraOutcome {
    Exited { code: Option<i32>, last_line: String },
    TimedOut(Duration),
    CannotRun(String),
}

/// `[[checklist.extra]]`: passes when the command exits 0.
pub fn extra(e: &super::ExtraItem, outcome: &ExtraOutcome) -> Item {
    let title = format!("`{}` exits 0", util::ellipsize(&e.command, 40));
    let fix = || Fix::words(format!("run `{}` and fix what it says", e.command)).command(e.command.clone());
    match outcome {
        ExtraOutcome::Exited { code: Some(0), last_line } => {
            let r = if last_line.is_empty() { "exit 0".to_string() } else { format!("exit 0: {last_line}") };
            Item::pass(&e.name, &title, r)
        }
        ExtraOutcome::Exited { code, last_line } => {
            let c = code.map(|c| format!("exit {c}")).unwrap_or_else(|| "killed by a signal".into());
            let r = if last_line.is_empty() { c } else { format!("{c}: {last_line}") };
            Item::fail(&e.name, &title, r, fix())
        }
        ExtraOutcome::TimedOut(d) => Item::fail(
            &e.name,
            &title,
            format!("timed out after {} and was stopped", humantime::format_duration(*d)),
            fix(),
        ),
        ExtraOutcome::CannotRun(why) => Item::fail(&e.name, &title, format!("cannot run it: {why}"), fix()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checklist::Status;

    #[test]
    fn requirements_order() {
        let t = |s| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(requirements(("r", t(10)), ("f", None)).status, Status::Fail);
        assert_eq!(requirements(("r", t(10)), ("f", t(9))).status, Status::Fail);
        assert_eq!(requirements(("r", t(10)), ("f", t(10))).status, Status::Pass);
        assert_eq!(requirements(("r", None), ("f", t(1))).status, Status::Pass);
    }

    #[test]
    fn journal_against_the_run() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let run = LastRun { ended: t(1000), what: "train.log".into(), running: false };
        assert_eq!(journal("journal.md", Some(t(1001)), Some(&run), t(2000)).status, Status::Pass);
        let i = journal("journal.md", Some(t(400)), Some(&run), t(2000));
        assert_eq!(i.status, Status::Fail);
        assert!(i.reason.contains("10m00s before"), "{}", i.reason);
        assert_eq!(journal("journal.md", None, Some(&run), t(2000)).status, Status::Fail);
        assert_eq!(journal("journal.md", None, None, t(2000)).status, Status::Pass);
        let live = LastRun { running: true, ..run };
        assert_eq!(journal("journal.md", Some(t(1500)), Some(&live), t(2000)).status, Status::Fail);
    }
}

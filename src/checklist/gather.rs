//! Gathering the facts each item is judged on (the I/O side): the sync ledger, the newest
//! checkpoint and log, git, file times, `/proc`, job markers, extra commands. Runs off the
//! UI task (the console) or in the CLI.
//!
//! "Confirmed" means confirmed in the ledger, for the remote each level is configured with
//! now, for the version on disk now (same size and mtime). A live gather also checks each
//! such copy on its remote (present, same size and checksum; the check `prune` makes
//! before a deletion), and a copy that fails is queued to be stored again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::items::{self, CopyState, ExtraOutcome, LastRun, LevelFacts, Proc, RunningJob};
use super::{Item, Report, config::BUILTIN_ITEMS};
use crate::config::Config;
use crate::disk::DiskSample;
use crate::gpu::GpuSample;
use crate::sync::ledger::{Ledger, UploadState};

/// (level, path, size, newest mtime): one version of a file or folder on a level.
type VersionKey = (String, String, u64, i64);

/// Results kept between gathers of the open checklist screen: remote checks and extra
/// commands run only on a live gather; a quick one reuses them.
#[derive(Debug, Default)]
pub struct LiveCache {
    /// (level, path, size, mtime) -> the remote check and when it ran.
    verified: HashMap<VersionKey, (Result<(), String>, u64)>,
    /// Extra item name -> (its command, what it did, when).
    extras: HashMap<String, (String, ExtraOutcome, u64)>,
}

/// What the caller already has, and how much to do.
pub struct Sources<'a> {
    /// The newest GPU sample (the console's; the CLI samples one first).
    pub gpu: Option<&'a GpuSample>,
    /// The newest disk sample.
    pub disks: Option<&'a DiskSample>,
    /// Check confirmed copies on their remotes and run the extra commands now.
    pub live: bool,
    pub cache: Option<&'a Mutex<LiveCache>>,
}

use crate::unixtime::secs as unix;

fn resolve(ws: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() { path.to_path_buf() } else { ws.join(path) }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// A process's command line, spaces between the arguments (quoted where they hold one).
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    crate::gpu::procinfo::join_cmdline(&raw)
}

/// Builds the whole report.
pub fn gather(ws: &Path, cfg: &Config, now: SystemTime, src: Sources<'_>) -> Report {
    let c = &cfg.checklist;
    let now_unix = unix(now);
    let now_ms = crate::unixtime::millis_i64(now);
    let sync = crate::sync::read_status(ws, &cfg.sync, &cfg.remotes, now_ms).map_err(|e| e.to_string());
    let ledger = if crate::sync::ledger::ledger_path(ws).is_file() { Ledger::open(ws).ok() } else { None };
    let log = crate::logtail::discover::select(ws, &cfg.log).filter(|l| l.exists);
    let log_rel = log.as_ref().map(|l| crate::workspace::Workspace::at(ws).display(&l.path));
    let inv = crate::checkpoints::inventory::scan(
        ws,
        &cfg.checkpoints,
        now,
        crate::checkpoints::inventory::ScanOptions { previous: None, check_open_files: true },
    );
    let newest_ckpt = inv.checkpoints.iter().filter(|k| !k.writing).max_by_key(|k| k.mtime);
    let newest_any = inv.checkpoints.iter().max_by_key(|k| k.mtime);

    let writers: Result<Vec<Proc>, String> = match &log {
        None => Ok(Vec::new()),
        Some(l) => crate::logtail::proc::writers_of(&l.path).map_err(|e| e.to_string()).map(|pids| {
            pids.into_iter()
                .map(|pid| Proc { pid, command: cmdline(pid).unwrap_or_else(|| "(ended)".into()), doing: Vec::new() })
                .collect()
        }),
    };
    // GPU sampling off in config: say so rather than "not sampled yet".
    let off = (!cfg.gpu.enabled && src.gpu.is_none())
        .then(|| GpuSample::unavailable(crate::unixtime::millis(now), crate::gpu::NvmlStatus::Disabled));
    let gpu = src.gpu.or(off.as_ref());
    let training_running = writers.as_ref().is_ok_and(|w| !w.is_empty())
        || gpu.is_some_and(|g| g.nvml.is_ok() && g.processes().next().is_some());

    // The protocol's rules that belong on the checklist (their switches are in [rules]).
    let run = crate::rules::find_run(ws, cfg, gpu, &crate::rules::Probe::default());
    let mut out = Vec::new();
    for name in BUILTIN_ITEMS {
        if !c.enabled(name) {
            out.push(Item::off(name, items::title(name), format!("turned off (checklist.{name} = false)")));
            continue;
        }
        let item = match name {
            "training" => items::training(gpu, log_rel.as_deref(), writers.clone()),
            "uploads" => items::uploads(sync.as_ref().map_err(|e| e.clone()), now_unix),
            "weights" => {
                let facts = level_facts(ws, cfg, "L3", ledger.as_ref(), &src, now_unix, |_| match newest_ckpt {
                    Some(k) => vec![(k.rel_path.clone(), Some(k.rel_path.clone()))],
                    None => vec![("checkpoint".into(), None)],
                });
                items::level_item(name, "L3", facts, now_unix)
            }
            "logs" => {
                let journal_rel = cfg.paths.journal.clone();
                let facts = level_facts(ws, cfg, "L2", ledger.as_ref(), &src, now_unix, |ws| {
                    let mut v = vec![match &log_rel {
                        Some(l) => (l.clone(), Some(l.clone())),
                        None => ("log".into(), None),
                    }];
                    let j = resolve(ws, &journal_rel);
                    let jd = crate::workspace::Workspace::at(ws).display(&j);
                    v.push((jd.clone(), j.is_file().then_some(jd)));
                    v
                });
                items::level_item(name, "L2", facts, now_unix)
            }
            "git" => {
                let g = super::git::read(ws);
                items::git(g.as_ref())
            }
            "journal" => {
                let j = resolve(ws, &cfg.paths.journal);
                let mut run: Option<LastRun> = None;
                let mut consider = |t: SystemTime, what: String| {
                    if run.as_ref().is_none_or(|r| t > r.ended) {
                        run = Some(LastRun { ended: t, what, running: training_running });
                    }
                };
                if let Some(l) = &log {
                    consider(l.modified, file_name(&l.path));
                }
                if let Some(k) = newest_any {
                    consider(k.mtime, file_name(&k.path));
                }
                let jname = crate::workspace::Workspace::at(ws).display(&j);
                items::journal(&jname, mtime(&j).filter(|_| j.is_file()), run.as_ref(), now)
            }
            "requirements" => {
                let r = resolve(ws, &c.requirements_file);
                let f = resolve(ws, &c.frozen_requirements_file);
                items::requirements(
                    (&c.requirements_file, mtime(&r).filter(|_| r.is_file())),
                    (&c.frozen_requirements_file, mtime(&f).filter(|_| f.is_file())),
                )
            }
            "estimate" => crate::rules::checklist_item(
                name,
                items::title(name),
                &if cfg.rules.time_estimates {
                    crate::rules::estimate::check(ws, cfg, &run, now)
                } else {
                    crate::rules::estimate::EstimateRule::off()
                }
                .verdict,
            ),
            "dependencies" => crate::rules::checklist_item(
                name,
                items::title(name),
                &if cfg.rules.dependencies {
                    crate::rules::deps::check(ws, cfg, run.experiment.as_deref()).checklist_verdict()
                } else {
                    crate::rules::Verdict::off("dependencies")
                },
            ),
            "disks" => items::disks(src.disks, cfg.disk.warn_pct),
            "jobs" => {
                let (list, idle) = running_jobs(ws, sync.as_ref().ok());
                items::jobs(&list, idle)
            }
            _ => continue,
        };
        out.push(item);
    }
    for e in &c.extra {
        out.push(extra_item(ws, e, &src, now_unix));
    }
    Report::new(now_unix, ws.display().to_string(), out)
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
}

/// The facts of a level item: `files` lists (shown name, workspace-relative path or None
/// when there is nothing to store).
fn level_facts(
    ws: &Path,
    cfg: &Config,
    level: &str,
    ledger: Option<&Ledger>,
    src: &Sources<'_>,
    now_unix: u64,
    files: impl FnOnce(&Path) -> Vec<(String, Option<String>)>,
) -> LevelFacts {
    let lc = if level == "L2" { &cfg.sync.l2 } else { &cfg.sync.l3 };
    if !lc.enabled {
        return LevelFacts::Disabled;
    }
    if !cfg.remotes.contains_key(&lc.remote) {
        return LevelFacts::NoRemote { remote: lc.remote.clone() };
    }
    let list = files(ws)
        .into_iter()
        .map(|(what, rel)| match rel {
            None => (what.clone(), Err(format!("no {what} to store"))),
            Some(rel) => (what, Ok(copy_state(ws, cfg, level, &lc.remote, ledger, &rel, src, now_unix))),
        })
        .collect();
    LevelFacts::Files { remote: lc.remote.clone(), files: list }
}

fn all_files(p: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::symlink_metadata(p) else { return };
    if meta.is_file() {
        out.push(p.to_path_buf());
    } else if meta.is_dir()
        && let Ok(rd) = std::fs::read_dir(p)
    {
        let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        v.sort();
        for e in v {
            all_files(&e, out);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn copy_state(
    ws: &Path,
    cfg: &Config,
    level: &str,
    remote: &str,
    ledger: Option<&Ledger>,
    rel: &str,
    src: &Sources<'_>,
    now_unix: u64,
) -> CopyState {
    let abs = resolve(ws, rel);
    let mut files = Vec::new();
    all_files(&abs, &mut files);
    if files.is_empty() {
        return CopyState::NotConfirmed("is gone from disk".into());
    }
    let Some(ledger) = ledger else {
        return CopyState::NotConfirmed("is not stored: nothing was ever synced (no sync ledger)".into());
    };
    let confirmed = ledger.confirmed_levels(ws, &abs, &[(level, remote)]).unwrap_or_default();
    if !confirmed.iter().any(|l| l == level) {
        return CopyState::NotConfirmed(why_not(ws, cfg, level, remote, ledger, &files, now_unix));
    }
    let at_unix = files
        .iter()
        .filter_map(|f| crate::sync::routing::relative_key(ws, f))
        .filter_map(|k| ledger.entry(&k, level).ok().flatten().and_then(|e| e.confirmed_ms))
        .max()
        .map(|ms| (ms / 1000).max(0) as u64);
    // The identity of this version, for the cache of remote checks.
    let (size, newest) = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .fold((0u64, 0i64), |(s, m), meta| (s + meta.len(), m.max(crate::sync::ledger::mtime_ns(&meta))));
    let key = (level.to_string(), rel.to_string(), size, newest);
    let verified = if src.live {
        let r = crate::prune::confirmation_source(ws, cfg).verify(rel, level);
        if let Some(c) = src.cache
            && let Ok(mut c) = c.lock()
        {
            c.verified.insert(key, (r.clone(), now_unix));
        }
        Some(r)
    } else {
        src.cache.and_then(|c| c.lock().ok().and_then(|c| c.verified.get(&key).map(|(r, _)| r.clone())))
    };
    CopyState::Confirmed { at_unix, verified }
}

/// Why the first file of `files` that is not confirmed is not.
fn why_not(
    ws: &Path,
    cfg: &Config,
    level: &str,
    remote: &str,
    ledger: &Ledger,
    files: &[PathBuf],
    now_unix: u64,
) -> String {
    let many = files.len() > 1;
    for f in files {
        let Some(key) = crate::sync::routing::relative_key(ws, f) else {
            return "is outside the workspace: it is never stored".into();
        };
        let meta = std::fs::metadata(f).ok();
        if ledger.confirmed_levels(ws, f, &[(level, remote)]).unwrap_or_default().iter().any(|l| l == level) {
            continue;
        }
        let name = if many { format!(" ({key})") } else { String::new() };
        let entry = ledger.entry(&key, level).ok().flatten();
        return match entry {
            None => {
                let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
                let routed =
                    crate::sync::routing::Router::new(&cfg.sync).is_ok_and(|r| r.route(&key, size).contains(&level));
                if routed {
                    format!("is not in the sync ledger yet{name}: the sync engine has not seen it")
                } else {
                    let lc = if level == "L2" { "l2" } else { "l3" };
                    format!(
                        "is not stored on {level}{name}: sync.{lc} does not take it (include, exclude or max_file_mb)"
                    )
                }
            }
            Some(e) => match e.state {
                UploadState::Confirmed if e.remote != remote => {
                    format!("was stored on remote '{}'{name}, not on '{remote}' ({level}'s remote now)", e.remote)
                }
                _ if e.remote != remote => format!(
                    "is queued for remote '{}'{name}, not '{remote}' ({level}'s remote now): the sync engine moves it",
                    e.remote
                ),
                UploadState::Confirmed => {
                    let ago = e
                        .confirmed_ms
                        .map(|ms| {
                            format!(
                                " (its copy is {} old)",
                                crate::util::duration(Duration::from_secs(
                                    now_unix.saturating_sub((ms / 1000).max(0) as u64)
                                ))
                            )
                        })
                        .unwrap_or_default();
                    format!("changed since it was stored{name}{ago}")
                }
                UploadState::Failed => format!(
                    "failed to store{name}: {}",
                    crate::util::ellipsize(e.last_error.as_deref().unwrap_or("no reason recorded"), 120)
                ),
                UploadState::Uploading => format!(
                    "is being stored{name} ({}/{})",
                    crate::util::bytes(e.bytes_done),
                    crate::util::bytes(e.bytes_total)
                ),
                UploadState::Pending => match &e.last_error {
                    Some(err) => format!("is waiting to be stored again{name}: {}", crate::util::ellipsize(err, 120)),
                    None => format!("is waiting to be stored{name}"),
                },
            },
        };
    }
    "is not confirmed".into()
}

/// Jobs running now, and the pid of an idle sync daemon (not a job that a shutdown cuts).
pub fn running_jobs(ws: &Path, sync: Option<&crate::sync::SyncStatus>) -> (Vec<RunningJob>, Option<u32>) {
    let mut list: Vec<RunningJob> = crate::joblock::running(ws)
        .into_iter()
        .map(|(kind, pid)| RunningJob { kind, pid, detail: String::new() })
        .collect();
    let mut idle_daemon = None;
    if let Some(pid) = crate::sync::lock::holder(ws) {
        let uploading: Vec<String> = sync
            .map(|s| {
                s.levels
                    .iter()
                    .filter_map(|l| {
                        l.in_flight.as_ref().map(|f| {
                            format!(
                                "{} {} {}/{}",
                                l.level,
                                f.path,
                                crate::util::bytes(f.bytes_done),
                                crate::util::bytes(f.bytes_total)
                            )
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let pass = cmdline(pid).is_some_and(|c| c.split(' ').any(|a| a == "--once" || a == "--verify"));
        if !uploading.is_empty() {
            list.push(RunningJob { kind: "sync".into(), pid, detail: format!("uploading {}", uploading.join(", ")) });
        } else if pass {
            list.push(RunningJob { kind: "sync".into(), pid, detail: "a `sync --once` pass".into() });
        } else {
            idle_daemon = Some(pid);
        }
    }
    (list, idle_daemon)
}

fn extra_item(ws: &Path, e: &super::ExtraItem, src: &Sources<'_>, now_unix: u64) -> Item {
    if !src.live
        && let Some(c) = src.cache
        && let Ok(c) = c.lock()
        && let Some((cmd, outcome, at)) = c.extras.get(&e.name)
        && *cmd == e.command
    {
        let mut item = items::extra(e, outcome);
        item.checked_unix = Some(*at);
        return item;
    }
    let outcome = run_extra(ws, e);
    if let Some(c) = src.cache
        && let Ok(mut c) = c.lock()
    {
        c.extras.insert(e.name.clone(), (e.command.clone(), outcome.clone(), now_unix));
    }
    items::extra(e, &outcome)
}

/// Runs one extra command in the workspace.
pub fn run_extra(ws: &Path, e: &super::ExtraItem) -> ExtraOutcome {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(&e.command).current_dir(ws);
    match super::run::output(cmd, e.timeout) {
        Ok(o) => {
            let last = |b: &[u8]| {
                String::from_utf8_lossy(b).lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_string())
            };
            let line = last(&o.stderr).or_else(|| last(&o.stdout)).unwrap_or_default();
            ExtraOutcome::Exited { code: o.status.code(), last_line: crate::util::ellipsize(&line, 120) }
        }
        Err(super::run::RunError::TimedOut(d)) => ExtraOutcome::TimedOut(d),
        Err(e) => ExtraOutcome::CannotRun(e.to_string()),
    }
}

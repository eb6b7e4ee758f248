//! `opsconsole sync --daemon | --once | --verify`: the engine without a screen, with
//! progress on stderr.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::sync::engine::{self, Mode};
use crate::sync::{RemoteEnv, RemotesConfig, RunSummary, SyncConfig, SyncError, SyncEvent, ledger, run_once_in};

/// Run the engine until `shutdown` is cancelled (the CLI cancels it on SIGINT/SIGTERM).
/// Uploads in flight are left resumable. Progress lines go to stderr.
pub async fn run_daemon(
    env: &RemoteEnv,
    sync: &SyncConfig,
    remotes: &RemotesConfig,
    shutdown: CancellationToken,
) -> Result<RunSummary, SyncError> {
    let workspace = env.workspace.as_path();
    let built = engine::build_remotes_in(remotes, env);
    for (_, _, level) in sync.levels() {
        if level.enabled && !remotes.contains_key(&level.remote) {
            eprintln!(
                "sync: remote '{}' is not configured; add [remotes.{}] to opsconsole.toml",
                level.remote, level.remote
            );
        }
    }
    // A full disk at start: say so once and wait for space (a daemon should outlive it).
    let mut wait: Option<Duration> = None;
    let mut handle = loop {
        match engine::start(workspace, sync, built.clone(), Mode::Daemon) {
            Ok(h) => break h,
            Err(SyncError::Ledger(e)) if ledger::disk_full(workspace) => {
                let next = match wait {
                    None => {
                        eprintln!(
                            "sync: {}; the engine starts once there is space",
                            engine::ledger_trouble_words(workspace, &e)
                        );
                        Duration::from_secs(sync.retry_base_seconds.max(1))
                    }
                    Some(w) => (w * 2).min(Duration::from_secs(30)),
                };
                wait = Some(next);
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(RunSummary::default()),
                    _ = tokio::time::sleep(next) => {}
                }
            }
            Err(e) => return Err(e),
        }
    };
    eprintln!("sync: engine running on {} (pid {})", workspace.display(), std::process::id());
    let mut out = StderrReporter::new(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = handle.events.recv() => match ev {
                Some(ev) => out.event(&ev),
                None => break,
            },
        }
    }
    out.finish();
    let summary = handle.shutdown().await;
    eprintln!("sync: stopped; unfinished uploads resume next time");
    summary
}

/// Progress on stderr: on a terminal an `indicatif` bar per upload in flight, the other
/// events as lines above them; plain throttled lines otherwise (a log file, a pipe, a
/// systemd journal), where nothing is drawn.
struct StderrReporter {
    out: super::progress::StderrProgress,
    lines: ProgressLines,
}

impl StderrReporter {
    fn new(every: Duration) -> Self {
        Self::with(super::progress::StderrProgress::stderr(), every)
    }

    fn with(out: super::progress::StderrProgress, every: Duration) -> Self {
        // On a terminal the bar redraws in place (indicatif limits it to 20 times a
        // second), so its words follow every event.
        let every = if out.drawing() { Duration::ZERO } else { every };
        Self { out, lines: ProgressLines::new(every) }
    }

    fn event(&mut self, ev: &SyncEvent) {
        let line = self.lines.line(ev, Instant::now());
        // Paths are the world's: control characters in them are shown, never obeyed.
        let line = line.map(|l| crate::util::printable(&l).into_owned());
        if self.out.drawing() {
            if let SyncEvent::Progress { level, path, bytes_done, bytes_total, .. } = ev {
                self.out.bar(&format!("{level} {path}"), *bytes_done, *bytes_total, line);
                return;
            }
            for key in uploads_ended(ev) {
                self.out.end(&key);
            }
        }
        if let Some(line) = line {
            self.out.line(&line);
        }
    }

    fn finish(&mut self) {
        self.out.finish();
    }
}

/// The uploads (`"<level> <path>"`, the bar keys) an event ends or restarts.
fn uploads_ended(ev: &SyncEvent) -> Vec<String> {
    match ev {
        SyncEvent::Started { level, path, .. }
        | SyncEvent::Confirmed { level, path, .. }
        | SyncEvent::Failed { level, path, .. }
        | SyncEvent::Requeued { level, path, .. } => vec![format!("{level} {path}")],
        SyncEvent::Dropped { path, levels, .. } => levels.iter().map(|l| format!("{l} {path}")).collect(),
        _ => Vec::new(),
    }
}

/// `opsconsole sync --daemon` / `--once` / `--verify`: runs the engine on a workspace and
/// returns the process exit code (0 done: with `--once`, everything routed is confirmed;
/// 1 uploads left failed or unfinished, each listed with why; 2 another engine holds the
/// workspace or the config is unusable). `verify` hashes every stored copy again first.
pub fn cli_run(workspace: &Path, cfg: &crate::config::Config, daemon: bool, verify: bool) -> i32 {
    let (sync, remotes) = (&cfg.sync, &cfg.remotes);
    let mut env = RemoteEnv::with_roots(workspace, &cfg.checkpoints.roots);
    env.rehash = verify;
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    if !sync.levels().iter().any(|(_, _, l)| l.enabled && remotes.contains_key(&l.remote)) {
        eprintln!(
            "error: no level has a configured remote; add for example\n\n[remotes.{}]\nkind = \"local\"\npath = \"/mnt/backup\"\n\nto opsconsole.toml",
            sync.l2.remote
        );
        return 2;
    }
    let result = rt.block_on(async {
        if daemon {
            let token = CancellationToken::new();
            let t = token.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
                    (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
                else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {}
                }
                t.cancel();
            });
            run_daemon(&env, sync, remotes, token).await
        } else {
            let mut out = StderrReporter::new(Duration::from_secs(2));
            let summary = run_once_in(&env, sync, remotes, |ev| out.event(ev)).await;
            out.finish();
            summary
        }
    });
    match result {
        Ok(summary) => {
            if !daemon {
                eprintln!(
                    "sync: {} stored ({}), {} already there, {} verified, {} queued again, {} dropped, {} not stored",
                    summary.uploaded,
                    crate::util::bytes(summary.uploaded_bytes),
                    summary.already_there,
                    summary.verified,
                    summary.requeued,
                    summary.dropped,
                    summary.failed.len()
                );
                for (level, path, reason) in &summary.failed {
                    eprintln!("  {}", crate::util::printable(&format!("{level} {path}: {reason}")));
                }
                if !summary.withheld.is_empty() {
                    let n = summary.withheld.len();
                    eprintln!(
                        "sync: {n} {} withheld as secrets (never uploaded):",
                        if n == 1 { "file" } else { "files" }
                    );
                    for (path, why) in &summary.withheld {
                        eprintln!("  {}", crate::util::printable(&format!("{path}: {why}")));
                    }
                }
            }
            if summary.failed.is_empty() { 0 } else { 1 }
        }
        Err(e @ (SyncError::Locked(_) | SyncError::Config(_))) => {
            eprintln!("error: {e}");
            2
        }
        Err(SyncError::Ledger(e)) if ledger::disk_full(workspace) => {
            eprintln!(
                "error: disk full: the sync ledger cannot be written (0 B free on the workspace's disk; {e}); free \
                 space first (opsconsole prune), then run it again"
            );
            1
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Turns engine events into plain progress lines, at most one progress line per
/// `every` per upload.
#[derive(Debug)]
pub struct ProgressLines {
    every: Duration,
    last: std::collections::HashMap<(String, String), Instant>,
}

impl ProgressLines {
    pub fn new(every: Duration) -> Self {
        Self { every, last: Default::default() }
    }

    /// The line for an event, or `None` when throttled.
    pub fn line(&mut self, ev: &SyncEvent, now: Instant) -> Option<String> {
        Some(match ev {
            SyncEvent::Queued { level, path, bytes } => {
                format!("{level} queued {path} ({})", crate::util::bytes(*bytes))
            }
            SyncEvent::Started { level, path, offset, bytes_total } if *offset >= *bytes_total && *offset > 0 => {
                // Copied while it was hashed (a local remote), or sent whole before a restart.
                format!("{level} storing {path} ({}, every byte already there)", crate::util::bytes(*bytes_total))
            }
            SyncEvent::Started { level, path, offset, bytes_total } if *offset > 0 => {
                format!(
                    "{level} resuming {path} at {} of {}",
                    crate::util::bytes(*offset),
                    crate::util::bytes(*bytes_total)
                )
            }
            SyncEvent::Started { level, path, bytes_total, .. } => {
                format!("{level} uploading {path} ({})", crate::util::bytes(*bytes_total))
            }
            SyncEvent::Progress { level, path, bytes_done, bytes_total, rate_bytes_per_s } => {
                let key = (level.clone(), path.clone());
                if self.last.get(&key).is_some_and(|t| now.duration_since(*t) < self.every) {
                    return None;
                }
                self.last.insert(key, now);
                let pct = (*bytes_done as f64 * 100.0 / (*bytes_total).max(1) as f64) as u64;
                format!(
                    "{level} {path} {pct}% {}/{} {}/s",
                    crate::util::bytes(*bytes_done),
                    crate::util::bytes(*bytes_total),
                    crate::util::bytes(*rate_bytes_per_s)
                )
            }
            SyncEvent::Confirmed { level, path, already_there: true, .. } => {
                format!("{level} {path} already stored; confirmed")
            }
            SyncEvent::Confirmed { level, path, bytes, .. } => {
                self.last.remove(&(level.clone(), path.clone()));
                format!("{level} stored {path} ({}), checksum verified", crate::util::bytes(*bytes))
            }
            SyncEvent::Failed { level, path, reason, retry_in: Some(d), .. } => format!(
                "{level} {path} failed: {reason} (retrying in {})",
                humantime::format_duration(Duration::from_secs(d.as_secs().max(1)))
            ),
            SyncEvent::Failed { level, path, reason, .. } => {
                format!("{level} {path} FAILED: {reason}")
            }
            SyncEvent::Dropped { path, note, .. } => format!("{path}: {note}"),
            SyncEvent::Requeued { level, path, reason } => format!("{level} {path}: {reason}"),
            SyncEvent::PassDone { level, success: true, stored: 0, confirmed: 0 } => {
                format!("{level} nothing to store")
            }
            SyncEvent::PassDone { level, success: true, stored: 0, confirmed } => {
                format!("{level} up to date: nothing new to store ({confirmed} stored)")
            }
            SyncEvent::PassDone { level, success: true, stored, .. } => {
                format!("{level} up to date: {stored} stored")
            }
            SyncEvent::PassDone { level, success: false, .. } => {
                format!("{level} pass ended with uploads still waiting")
            }
            SyncEvent::Withheld { path, why } => format!("{path}: withheld from every level as a secret ({why})"),
            SyncEvent::LedgerTrouble { why, retry_in } => format!(
                "{why}; trying again in {}",
                humantime::format_duration(Duration::from_secs(retry_in.as_secs().max(1)))
            ),
            SyncEvent::LedgerOk => "the sync ledger is written again; uploads go on".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_throttled_and_plain() {
        let mut p = ProgressLines::new(Duration::from_secs(2));
        let t = Instant::now();
        let ev = |done| SyncEvent::Progress {
            level: "L3".into(),
            path: "a.pt".into(),
            bytes_done: done,
            bytes_total: 4_000_000_000,
            rate_bytes_per_s: 88_000_000,
        };
        assert_eq!(p.line(&ev(1_000_000_000), t).as_deref(), Some("L3 a.pt 25% 1.0 GB/4.0 GB 88.0 MB/s"));
        assert_eq!(p.line(&ev(1_100_000_000), t + Duration::from_secs(1)), None);
        assert!(p.line(&ev(1_200_000_000), t + Duration::from_secs(2)).is_some());
    }

    fn run(reporter: &mut StderrReporter) {
        let progress = |done| SyncEvent::Progress {
            level: "L2".into(),
            path: "ck/a.pt".into(),
            bytes_done: done,
            bytes_total: 1000,
            rate_bytes_per_s: 0,
        };
        reporter.event(&SyncEvent::Started {
            level: "L2".into(),
            path: "ck/a.pt".into(),
            offset: 0,
            bytes_total: 1000,
        });
        reporter.event(&progress(400));
        reporter.event(&progress(500));
        reporter.event(&SyncEvent::Confirmed {
            level: "L2".into(),
            path: "ck/a.pt".into(),
            bytes: 1000,
            already_there: false,
        });
        reporter.finish();
    }

    #[test]
    fn without_a_terminal_the_reporter_prints_the_same_plain_lines_and_draws_nothing() {
        use crate::cli::progress::{StderrProgress, tests::Plain};
        let plain = Plain::default();
        let out = StderrProgress::with_target(indicatif::ProgressDrawTarget::hidden(), Box::new(plain.clone()));
        let mut r = StderrReporter::with(out, Duration::from_secs(60));
        run(&mut r);
        // The second progress event is inside the throttle window: one progress line.
        assert_eq!(
            plain.text(),
            "L2 uploading ck/a.pt (1.0 kB)\nL2 ck/a.pt 40% 400 B/1.0 kB 0 B/s\nL2 stored ck/a.pt (1.0 kB), checksum verified\n"
        );
    }

    #[test]
    fn on_a_terminal_an_upload_gets_a_bar_that_its_confirmation_clears() {
        use crate::cli::progress::{StderrProgress, tests::Plain, tests::Screen};
        let (screen, plain) = (Screen::default(), Plain::default());
        let target = indicatif::ProgressDrawTarget::term_like_with_hz(Box::new(screen.clone()), 20);
        let mut r =
            StderrReporter::with(StderrProgress::with_target(target, Box::new(plain.clone())), Duration::from_secs(60));
        run(&mut r);
        let shown = screen.0.lock().unwrap().clone();
        assert!(shown.contains("L2 uploading ck/a.pt (1.0 kB)"), "{shown}");
        assert!(shown.contains("[########>-----------] L2 ck/a.pt 40% 400 B/1.0 kB 0 B/s"), "{shown}");
        assert!(
            !shown.contains("] \n") && !shown.contains("]  "),
            "a bar is drawn with its words from the start: {shown}"
        );
        assert!(shown.contains("L2 stored ck/a.pt (1.0 kB), checksum verified"), "{shown}");
        assert!(!r.out.has_bar("L2 ck/a.pt"), "the confirmation ends the bar");
        assert_eq!(plain.text(), "");
    }
}

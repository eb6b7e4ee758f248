//! `opsconsole log`: the Log panel's command-line twin.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use crate::logtail::backread::read_last_lines;
use crate::logtail::config::LogConfig;
use crate::logtail::discover;
use crate::logtail::tail::{FollowOptions, StartAt, Tailer, spawn_follow};

/// What `opsconsole log` was asked.
#[derive(Debug, Clone, Default)]
pub struct LogArgs {
    /// List the candidate logs instead.
    pub list: bool,
    /// Keep printing new lines (`tail -F`).
    pub follow: bool,
    /// Lines printed from the end.
    pub lines: usize,
    /// Print `{log, metrics}` as JSON.
    pub json: bool,
    /// Another log than the one the config picks.
    pub path: Option<PathBuf>,
}

/// Runs the command; returns the exit code.
pub fn run(workspace: &Path, cfg: &LogConfig, args: &LogArgs) -> io::Result<u8> {
    let mut out = io::stdout().lock();
    if args.list {
        let now = SystemTime::now();
        let list = discover::candidates(workspace, cfg);
        if list.is_empty() {
            writeln!(
                out,
                "no log found (looking for experiments/*/logs/*.log, else any *.log; set log.path or log.glob)"
            )?;
            return Ok(1);
        }
        for (i, c) in list.iter().enumerate() {
            let age = now.duration_since(c.modified).map(crate::util::duration).unwrap_or_else(|_| "now".into());
            let rel = c.path.strip_prefix(workspace).unwrap_or(&c.path);
            let mark = if i == 0 { "*" } else { " " };
            let size = if c.exists { crate::util::bytes(c.size_bytes) } else { "missing".into() };
            writeln!(out, "{mark} {:<60} {size:>9} {age:>8} ago", rel.display())?;
        }
        return Ok(0);
    }
    let path = match &args.path {
        Some(p) => p.clone(),
        None => match discover::select(workspace, cfg) {
            Some(c) => c.path,
            None => {
                say!("no log found (looking for experiments/*/logs/*.log, else any *.log; set log.path or log.glob)");
                return Ok(1);
            }
        },
    };
    if args.json {
        let mut c = cfg.clone();
        c.path = Some(path);
        c.glob = None;
        let (log, metrics) = crate::logtail::status::workspace_status(workspace, &c);
        let v = serde_json::json!({ "log": log, "metrics": metrics });
        writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
        return Ok(0);
    }
    let start = match read_last_lines(&path, args.lines, cfg.max_line_bytes) {
        Ok(last) => {
            for l in &last.lines {
                if writeln!(out, "{}", l.text).is_err() {
                    return Ok(0);
                }
            }
            StartAt::OffsetIn { offset: last.end_offset, file_id: last.file_id }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && args.follow => {
            say!("waiting for {} to appear…", path.display());
            StartAt::Beginning
        }
        Err(e) => {
            say!("error: reading {}: {e}", path.display());
            return Ok(1);
        }
    };
    if !args.follow {
        return Ok(0);
    }
    out.flush()?;
    drop(out);
    let (tx, rx) = mpsc::sync_channel::<Vec<String>>(64);
    let tailer = Tailer::new(path, start, cfg.max_line_bytes);
    let opts =
        FollowOptions { poll_interval: cfg.poll_interval, min_interval: Duration::from_millis(20), hot_at: None };
    let _handle = spawn_follow(tailer, opts, move |t, waker| match t.poll() {
        Ok(b) => {
            if b.more {
                waker.wake();
            }
            b.lines.is_empty() || tx.send(b.lines.into_iter().map(|l| l.text).collect()).is_ok()
        }
        Err(e) => {
            say!("error: {e}");
            true
        }
    })?;
    let mut out = io::stdout().lock();
    for batch in rx {
        for l in batch {
            if writeln!(out, "{l}").is_err() {
                return Ok(0);
            }
        }
        if out.flush().is_err() {
            return Ok(0);
        }
    }
    Ok(0)
}

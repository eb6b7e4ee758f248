//! Log files that `prune.logs` may delete.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::config::LogPruneConfig;
use super::inventory::{has_ledger_key, rel_key};
use super::ledger::ConfirmationSource;
use super::openfiles;
use super::roots::{self, Skipped, Unit, UnitMatcher};

/// One log file found under a log root.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFile {
    pub path: PathBuf,
    pub rel_path: String,
    pub bytes: u64,
    pub freeable_bytes: u64,
    pub mtime: SystemTime,
    pub writing: bool,
    pub confirmed_on: Vec<String>,
    pub unit: Unit,
}

/// Find log files (an empty list when `prune.logs` is off).
pub fn scan_logs(
    workspace: &Path,
    cfg: &LogPruneConfig,
    settle_secs: u64,
    now: SystemTime,
    check_open_files: bool,
    confirm: &dyn ConfirmationSource,
) -> (Vec<LogFile>, Vec<Skipped>) {
    if !cfg.enabled {
        return (Vec::new(), Vec::new());
    }
    let (rs, mut skipped) = roots::expand_roots(workspace, &cfg.roots);
    let files = roots::name_set(&cfg.patterns);
    let m = UnitMatcher { files: &files, folder_unit: None, max_depth: 2 };
    let mut units = Vec::new();
    for r in &rs {
        roots::scan_root(r, &m, &mut units, &mut skipped);
    }
    let open = if check_open_files {
        let paths: Vec<&Path> = rs.iter().map(|r| r.path.as_path()).collect();
        openfiles::open_for_write(&paths)
    } else {
        Default::default()
    };
    let settle = Duration::from_secs(settle_secs);
    let logs = units
        .into_iter()
        .map(|u| {
            let path = u.path();
            let recent = now.duration_since(u.mtime).map_or(true, |a| a < settle);
            let open_w = open.contains(&(u.dev, u.ino));
            let rel_path = rel_key(workspace, &path);
            LogFile {
                confirmed_on: if has_ledger_key(&path) { confirm.confirmed_on(&rel_path) } else { Vec::new() },
                rel_path,
                path,
                bytes: u.bytes,
                freeable_bytes: u.freeable_bytes,
                mtime: u.mtime,
                writing: recent || open_w,
                unit: u,
            }
        })
        .collect();
    (logs, skipped)
}

//! Rule 1, data on the local SSD: "Pre-fetch data from cloud to local SSD before
//! `train.py` starts. Never train directly off network mounts."
//!
//! For each training process, the regular files it holds open for reading
//! (`/proc/PID/fd`, at most [`MAX_FDS`] descriptors each) are matched to their filesystem
//! by device number in the process's own mount table; a data file on a network or FUSE
//! filesystem (nfs, cifs, fuse.gcsfuse, fuse.rclone, fuse.sshfs, 9p, drvfs, …) raises the
//! flag. Code and libraries (`.py`, `.pyc`, `.so`, files under `site-packages`) do not
//! count: they are read once at start. The filesystem of `paths.data` is reported too
//! (the Disk panel shows it), and a data folder on a network mount raises the flag even
//! while nothing runs.

use std::path::Path;

use serde::Serialize;

use super::mounts::{self, MountEntry};
use super::{Probe, RunFacts, Verdict};
use crate::config::Config;

/// Descriptors looked at per process (a data loader holds tens; a bound on a runaway).
pub const MAX_FDS: usize = 4096;

/// A data file read from a network mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkRead {
    pub pid: u32,
    pub path: String,
    pub fs_type: String,
    pub mount: String,
}

/// The filesystem of `paths.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataFs {
    pub path: String,
    pub mount: String,
    pub fs_type: String,
    pub network: bool,
}

/// `status --json` → `rules.data_local`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DataRule {
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The data folder's filesystem (null when no mount holds it).
    pub data_fs: Option<DataFs>,
    /// Data files the training run reads from network mounts (the first 20).
    pub network_reads: Vec<NetworkRead>,
}

impl DataRule {
    pub fn off() -> Self {
        Self { verdict: Verdict::off("data_local"), ..Default::default() }
    }
}

/// Whether an open file is code or a library rather than data.
fn is_code(path: &Path) -> bool {
    let s = path.to_string_lossy();
    if s.contains("/site-packages/")
        || s.contains("/dist-packages/")
        || s.starts_with("/usr/")
        || s.starts_with("/proc/")
    {
        return true;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.ends_with(".py") || name.ends_with(".pyc") || name.ends_with(".so") || name.contains(".so.")
}

/// Judges rule 1.
pub fn check(ws: &Path, cfg: &Config, run: &RunFacts, probe: &Probe) -> DataRule {
    let extra = &cfg.rules.network_fs;
    let data_path = crate::workspace::Workspace::at(ws).resolve(&cfg.paths.data);
    let own = probe.mounts(None);
    let data_fs = mounts::mount_of(&own, &data_path).map(|m| DataFs {
        path: cfg.paths.data.clone(),
        mount: m.point.display().to_string(),
        fs_type: m.fs_type.clone(),
        network: mounts::is_network(&m.fs_type, extra),
    });
    let mut reads = Vec::new();
    for pid in &run.pids {
        let table: Vec<MountEntry> = probe.mounts(Some(*pid));
        for f in crate::procfs::open_files_in(&probe.proc_root, *pid, MAX_FDS) {
            if f.write || is_code(&f.path) {
                continue;
            }
            let Some(m) = mounts::lookup(&table, &f.path, Some(f.dev)) else { continue };
            if mounts::is_network(&m.fs_type, extra) {
                reads.push(NetworkRead {
                    pid: *pid,
                    path: f.path.display().to_string(),
                    fs_type: m.fs_type.clone(),
                    mount: m.point.display().to_string(),
                });
            }
        }
    }
    let total = reads.len();
    reads.truncate(20);
    let target = &cfg.paths.data;
    let verdict = if let Some(r) = reads.first() {
        let kind = mounts::kind_name(&r.fs_type);
        let more = if total > 1 { format!(" ({total} files, e.g. {})", r.path) } else { format!(" ({})", r.path) };
        let header = format!("training reads data from a network mount ({kind}): pre-fetch it to {target}");
        Verdict::flag(format!("{header}{more}"), header, format!("data on {kind}"))
    } else if let Some(d) = data_fs.as_ref().filter(|d| d.network) {
        let kind = mounts::kind_name(&d.fs_type);
        Verdict::flag(
            format!(
                "the data folder {target} is on a network mount ({kind} at {}): pre-fetch the data to the local SSD",
                d.mount
            ),
            format!("{target} is on a network mount ({kind}): use the local SSD"),
            format!("data on {kind}"),
        )
    } else if run.pids.is_empty() {
        match &data_fs {
            Some(d) => Verdict::ok(format!("no training process; {target} is on {} ({})", d.mount, d.fs_type)),
            None => Verdict::ok("no training process"),
        }
    } else {
        let fs = data_fs.as_ref().map(|d| format!("; {target} is on {}", d.fs_type)).unwrap_or_default();
        Verdict::ok(format!("the training run reads no data from a network mount{fs}"))
    };
    DataRule { verdict, data_fs, network_reads: reads }
}

//! Filesystem fill against the crash-loop thresholds. No UI here: the collector produces a
//! whole [`DiskSample`], the console and `status --json` show it.

pub mod growth;
pub mod history;
pub mod usage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Config, DiskConfig};
use crate::workspace::Workspace;

/// How close a filesystem is to bricking the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Warn,
    Critical,
    Full,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Critical => "critical",
            Level::Full => "full",
        }
    }
}

/// The crash-loop thresholds in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub warn_pct: f64,
    pub critical_pct: f64,
    pub full_pct: f64,
}

impl From<&DiskConfig> for Thresholds {
    fn from(c: &DiskConfig) -> Self {
        Self { warn_pct: c.warn_pct, critical_pct: c.critical_pct, full_pct: c.full_pct }
    }
}

impl Thresholds {
    /// The level for a fill percentage.
    pub fn level(&self, fill_pct: f64) -> Level {
        if fill_pct >= self.full_pct {
            Level::Full
        } else if fill_pct >= self.critical_pct {
            Level::Critical
        } else if fill_pct >= self.warn_pct {
            Level::Warn
        } else {
            Level::Ok
        }
    }
}

/// One filesystem as `df` would show it, with the workspace roles it serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskInfo {
    pub mount: String,
    pub device: String,
    pub fs_type: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    /// `used / (used + available)`, as `df`'s Use% (reserved blocks count as unavailable).
    pub fill_pct: f64,
    pub level: Level,
    /// Why it is shown: `workspace`, `checkpoints`, `data`, `root`, `extra`.
    pub roles: Vec<String>,
}

/// Every watched filesystem at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct DiskSample {
    pub disks: Vec<DiskInfo>,
    /// Paths that could not be measured, with the reason.
    pub errors: Vec<String>,
}

impl DiskInfo {
    /// The fill as `df` prints Use%: a whole percent, rounded up (any use above 40% is 41%),
    /// in integers so that an exact 40% is never shown as 41%.
    pub fn use_pct(&self) -> u64 {
        let denom = u128::from(self.used_bytes) + u128::from(self.available_bytes);
        if denom == 0 { 0 } else { (u128::from(self.used_bytes) * 100).div_ceil(denom) as u64 }
    }
}

impl DiskSample {
    /// The worst level among the disks.
    pub fn worst(&self) -> Level {
        self.disks.iter().map(|d| d.level).max().unwrap_or(Level::Ok)
    }
}

/// The paths whose filesystems are watched, each with its role.
pub fn watched_paths(ws: &Workspace, cfg: &Config) -> Vec<(String, PathBuf)> {
    let mut v = vec![
        ("workspace".to_string(), ws.root.clone()),
        ("checkpoints".to_string(), ws.resolve(&cfg.paths.checkpoints)),
        ("data".to_string(), ws.resolve(&cfg.paths.data)),
        ("root".to_string(), PathBuf::from("/")),
    ];
    v.extend(cfg.disk.extra_paths.iter().map(|p| ("extra".to_string(), ws.resolve(p))));
    v
}

/// A mounted filesystem: where, which device, which type.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub point: PathBuf,
    pub device: String,
    pub fs_type: String,
}

/// The mounted filesystems, listed through sysinfo (no usage read here).
pub fn mounts() -> Vec<Mount> {
    let disks = sysinfo::Disks::new_with_refreshed_list_specifics(sysinfo::DiskRefreshKind::nothing());
    disks
        .list()
        .iter()
        .map(|d| Mount {
            point: d.mount_point().to_path_buf(),
            device: d.name().to_string_lossy().into_owned(),
            fs_type: d.file_system().to_string_lossy().into_owned(),
        })
        .collect()
}

/// The mount that holds `path`: the longest mount point that is a prefix of its canonical
/// form. A path that does not exist yet is looked up by its nearest existing ancestor.
pub fn mount_for<'a>(path: &Path, mounts: &'a [Mount]) -> Option<&'a Mount> {
    let mut p = path.to_path_buf();
    let canon = loop {
        if let Ok(c) = p.canonicalize() {
            break c;
        }
        if !p.pop() {
            return None;
        }
    };
    mounts.iter().filter(|m| canon.starts_with(&m.point)).max_by_key(|m| m.point.as_os_str().len())
}

/// Space on a filesystem in bytes: (total, used, available), as `df` computes them.
pub fn statvfs(path: &Path) -> std::io::Result<(u64, u64, u64)> {
    let st = rustix::fs::statvfs(path)?;
    let frsize = if st.f_frsize > 0 { st.f_frsize } else { st.f_bsize };
    let total = st.f_blocks * frsize;
    let free = st.f_bfree * frsize;
    let avail = st.f_bavail * frsize;
    Ok((total, total.saturating_sub(free), avail))
}

/// `df`'s Use%: used over what a user could ever have (used + available).
pub fn fill_pct(used: u64, avail: u64) -> f64 {
    let denom = used + avail;
    if denom == 0 { 0.0 } else { used as f64 * 100.0 / denom as f64 }
}

/// Measures every watched path's filesystem, deduplicated by mount point.
pub fn sample(paths: &[(String, PathBuf)], thresholds: Thresholds) -> DiskSample {
    sample_with(paths, thresholds, &mounts())
}

/// [`sample`] with a given mount table (tests pass their own).
pub fn sample_with(paths: &[(String, PathBuf)], thresholds: Thresholds, mounts: &[Mount]) -> DiskSample {
    let mut by_mount: BTreeMap<PathBuf, DiskInfo> = BTreeMap::new();
    let mut order: Vec<PathBuf> = Vec::new();
    let mut errors = Vec::new();
    for (role, path) in paths {
        let Some(m) = mount_for(path, mounts) else {
            errors.push(format!("{}: no mounted filesystem found for {}", role, path.display()));
            continue;
        };
        if let Some(d) = by_mount.get_mut(&m.point) {
            if !d.roles.contains(role) {
                d.roles.push(role.clone());
            }
            continue;
        }
        match statvfs(&m.point) {
            Ok((total, used, avail)) => {
                let fill = fill_pct(used, avail);
                order.push(m.point.clone());
                by_mount.insert(
                    m.point.clone(),
                    DiskInfo {
                        mount: m.point.display().to_string(),
                        device: m.device.clone(),
                        fs_type: m.fs_type.clone(),
                        total_bytes: total,
                        used_bytes: used,
                        available_bytes: avail,
                        fill_pct: fill,
                        level: thresholds.level(fill),
                        roles: vec![role.clone()],
                    },
                );
            }
            Err(e) => errors.push(format!("{}: cannot read {}: {e}", role, m.point.display())),
        }
    }
    let disks = order.into_iter().filter_map(|p| by_mount.remove(&p)).collect();
    DiskSample { disks, errors }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(used: u64, avail: u64) -> DiskInfo {
        DiskInfo {
            mount: "/".into(),
            device: "d".into(),
            fs_type: "ext4".into(),
            total_bytes: used + avail,
            used_bytes: used,
            available_bytes: avail,
            fill_pct: fill_pct(used, avail),
            level: Level::Ok,
            roles: vec![],
        }
    }

    #[test]
    fn use_pct_rounds_up_like_df() {
        assert_eq!(info(0, 0).use_pct(), 0);
        assert_eq!(info(0, 100).use_pct(), 0);
        assert_eq!(info(40, 60).use_pct(), 40, "an exact percent stays");
        assert_eq!(info(40_001, 59_999).use_pct(), 41, "anything above rounds up");
        assert_eq!(info(835, 165).use_pct(), 84);
        assert_eq!(info(999_999, 1).use_pct(), 100, "df shows 100% before the last byte goes");
        assert_eq!(info(u64::MAX / 2, u64::MAX / 2).use_pct(), 50, "no overflow");
    }
}

//! Finding the workspace: walk up from the current folder to `opsconsole.toml`; without one,
//! the current folder with defaults.

use std::path::{Path, PathBuf};

use crate::config::CONFIG_FILE;

/// The training project folder and where its config came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub root: PathBuf,
    pub config_path: Option<PathBuf>,
}

impl Workspace {
    /// Walks up from `start` to the first folder holding `opsconsole.toml`.
    pub fn discover(start: &Path) -> Self {
        let start = start.canonicalize().unwrap_or_else(|_| start.to_path_buf());
        let mut dir = Some(start.as_path());
        while let Some(d) = dir {
            let candidate = d.join(CONFIG_FILE);
            if candidate.is_file() {
                return Self { root: d.to_path_buf(), config_path: Some(candidate) };
            }
            dir = d.parent();
        }
        Self { root: start, config_path: None }
    }

    /// A workspace rooted at `root`, using its `opsconsole.toml` if there is one.
    pub fn at(root: &Path) -> Self {
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let candidate = root.join(CONFIG_FILE);
        let config_path = candidate.is_file().then_some(candidate);
        Self { root, config_path }
    }

    /// A config path relative to the workspace root, or absolute as written.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() { path.to_path_buf() } else { self.root.join(path) }
    }

    /// `.opsconsole/` at the workspace root: ledger, locks, job records.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".opsconsole")
    }

    /// A path shown relative to the workspace root when it lies inside it.
    pub fn display(&self, p: &Path) -> String {
        match p.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => p.display().to_string(),
        }
    }
}

/// Facts about the machine shown in the header: the seed's "am I on the VM?" check.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HostInfo {
    pub hostname: String,
    /// When the machine booted (seconds since the Unix epoch); uptime is computed from the
    /// state's clock so that tests and screens are deterministic.
    pub boot_time_unix: u64,
}

impl HostInfo {
    /// Reads the hostname and boot time of this machine.
    pub fn current() -> Self {
        Self {
            hostname: sysinfo::System::host_name().unwrap_or_else(|| "unknown-host".into()),
            boot_time_unix: sysinfo::System::boot_time(),
        }
    }
}

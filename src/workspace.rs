//! Finding the workspace: walk up from the current folder to `opsconsole.toml`; without one,
//! the current folder with defaults.

use std::path::{Path, PathBuf};

use crate::config::{CONFIG_FILE, ConfigError};

/// `Some(path)` when `candidate` is a config file, `None` when nothing is there, and an
/// error when something else carries the name.
fn config_in(candidate: &Path) -> Result<Option<PathBuf>, ConfigError> {
    match std::fs::metadata(candidate) {
        Ok(m) if m.is_file() => Ok(Some(candidate.to_path_buf())),
        Ok(m) => Err(ConfigError {
            file: candidate.to_path_buf(),
            line: None,
            key: None,
            message: format!(
                "is {}, not a config file; rename or remove it, or give a config with --config FILE",
                crate::util::file_kind(m.file_type())
            ),
        }),
        // A dangling link or an unreadable folder: nothing usable here; keep walking up.
        Err(_) if std::fs::symlink_metadata(candidate).is_err() => Ok(None),
        Err(e) => Err(ConfigError {
            file: candidate.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read the config file: {e}"),
        }),
    }
}

/// The training project folder and where its config came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub root: PathBuf,
    pub config_path: Option<PathBuf>,
}

impl Workspace {
    /// Walks up from `start` to the first folder holding `opsconsole.toml`. Something
    /// named `opsconsole.toml` that is not a regular file (a directory, a FIFO) is an
    /// error, not skipped: the walk must not silently go on to a config further up.
    pub fn discover(start: &Path) -> Result<Self, ConfigError> {
        let start = start.canonicalize().unwrap_or_else(|_| start.to_path_buf());
        let mut dir = Some(start.as_path());
        while let Some(d) = dir {
            let candidate = d.join(CONFIG_FILE);
            if let Some(found) = config_in(&candidate)? {
                return Ok(Self { root: d.to_path_buf(), config_path: Some(found) });
            }
            dir = d.parent();
        }
        Ok(Self { root: start, config_path: None })
    }

    /// The workspace given with `--workspace DIR`: it must be an existing folder; its
    /// `opsconsole.toml` is used when there is one.
    pub fn open(root: &Path) -> Result<Self, ConfigError> {
        let err = |message: String| ConfigError { file: root.to_path_buf(), line: None, key: None, message };
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => {}
            Ok(m) => {
                return Err(err(format!(
                    "the workspace must be a folder, and this is {}",
                    crate::util::file_kind(m.file_type())
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(err("no such folder: the workspace (--workspace) must exist".into()));
            }
            Err(e) => return Err(err(format!("cannot open the workspace folder: {e}"))),
        }
        let root = root.canonicalize().map_err(|e| err(format!("cannot open the workspace folder: {e}")))?;
        let config_path = config_in(&root.join(CONFIG_FILE))?;
        Ok(Self { root, config_path })
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

/// Who may have written a config file that opsconsole found by itself (walking up from the
/// current folder, or in `--workspace DIR`). The rule is git's after CVE-2022-24765: the
/// file and the folder holding it must be owned by you or by root and must not be
/// writable by others (nor by a group other than your own private group), unless the
/// folder is listed in your allow-list (see [`safe_list_path`]). A config named with
/// `--config FILE` is yours by choice and is not checked.
pub mod trust {
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    use crate::config::ConfigError;

    /// The allow-list: `$XDG_CONFIG_HOME/opsconsole/safe.toml` (default
    /// `~/.config/opsconsole/safe.toml`), holding `safe_directories = ["/path", …]`; `"*"`
    /// trusts every folder.
    pub fn safe_list_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("opsconsole").join("safe.toml"))
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SafeList {
        #[serde(default)]
        safe_directories: Vec<String>,
    }

    fn user_name(uid: u32) -> Option<String> {
        crate::gpu::procinfo::lookup_user(uid)
    }

    /// The name and members of a group. Raw libc: the group database goes through NSS,
    /// which rustix does not reach.
    fn group(gid: u32) -> Option<(String, Vec<String>)> {
        let mut buf = vec![0u8; 65536];
        // SAFETY: an all-zero group is a valid out-parameter for getgrgid_r.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        // SAFETY: valid pointers and the buffer's real length.
        let rc = unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
        if rc != 0 || out.is_null() {
            return None;
        }
        // SAFETY: getgrgid_r filled gr_name and the NULL-terminated gr_mem list in `buf`.
        unsafe {
            let name = std::ffi::CStr::from_ptr(gr.gr_name).to_string_lossy().into_owned();
            let mut members = Vec::new();
            let mut p = gr.gr_mem;
            while !p.is_null() && !(*p).is_null() {
                members.push(std::ffi::CStr::from_ptr(*p).to_string_lossy().into_owned());
                p = p.add(1);
            }
            Some((name, members))
        }
    }

    fn who(uid: u32) -> String {
        match user_name(uid) {
            Some(n) => format!("uid {uid} ({n})"),
            None => format!("uid {uid}"),
        }
    }

    /// A group only `uid` is in: named after the user, with no other members (the
    /// "user private group" most distributions give each user; umask 002 then makes files
    /// group-writable without letting anyone else write them).
    fn private_group_of(gid: u32, uid: u32) -> bool {
        let (Some(user), Some((name, members))) = (user_name(uid), group(gid)) else { return false };
        name == user && members.iter().all(|m| *m == user)
    }

    /// Why `meta` (of `what`) may have been written by someone else, or `None`.
    fn untrusted(meta: &std::fs::Metadata, euid: u32) -> Option<String> {
        let (uid, mode) = (meta.uid(), meta.mode());
        if uid != euid && uid != 0 {
            return Some(format!("is owned by {}, not by you ({}) or root", who(uid), who(euid)));
        }
        if mode & 0o002 != 0 {
            return Some(format!("is writable by everyone (mode {:04o})", mode & 0o7777));
        }
        if mode & 0o020 != 0 && !private_group_of(meta.gid(), euid) {
            let g = group(meta.gid()).map(|(n, _)| format!("{} ({n})", meta.gid())).unwrap_or(meta.gid().to_string());
            return Some(format!("is writable by group {g} (mode {:04o})", mode & 0o7777));
        }
        None
    }

    /// Is `folder` on the user's allow-list? An allow-list that someone else could have
    /// written is an error in itself.
    fn allowed(folder: &Path, euid: u32) -> Result<bool, ConfigError> {
        let Some(list) = safe_list_path() else { return Ok(false) };
        let Ok(meta) = std::fs::metadata(&list) else { return Ok(false) };
        if let Some(why) = untrusted(&meta, euid) {
            return Err(ConfigError {
                file: list,
                line: None,
                key: None,
                message: format!("this allow-list {why}, so it is not used; fix its owner or mode (chmod go-w)"),
            });
        }
        let text = crate::config::read_config_file(&list)?;
        let parsed: SafeList = toml::from_str(&text).map_err(|e| ConfigError {
            file: list.clone(),
            line: e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            key: Some("safe_directories".into()),
            message: e.message().trim().to_string(),
        })?;
        let canon = folder.canonicalize().unwrap_or_else(|_| folder.to_path_buf());
        Ok(parsed
            .safe_directories
            .iter()
            .any(|d| d == "*" || Path::new(d).canonicalize().is_ok_and(|c| c == canon) || Path::new(d) == canon))
    }

    /// Refuse a config (found, not named) that someone else could have written or planted:
    /// the error names the path, the owner or mode, and both fixes.
    pub fn check(config: &Path) -> Result<(), ConfigError> {
        let euid = rustix::process::geteuid().as_raw();
        let folder = config.parent().unwrap_or(Path::new("/"));
        let mut problems = Vec::new();
        match std::fs::metadata(config) {
            Ok(m) => problems.extend(untrusted(&m, euid).map(|w| format!("the file {w}"))),
            Err(e) => problems.push(format!("the file cannot be checked: {e}")),
        }
        match std::fs::metadata(folder) {
            Ok(m) => problems.extend(untrusted(&m, euid).map(|w| format!("its folder {} {w}", folder.display()))),
            Err(e) => problems.push(format!("its folder cannot be checked: {e}")),
        }
        if problems.is_empty() || allowed(folder, euid)? {
            return Ok(());
        }
        let list = safe_list_path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.config/opsconsole/safe.toml".into());
        Err(ConfigError {
            file: config.to_path_buf(),
            line: None,
            key: None,
            message: format!(
                "refusing to use this config: {}. Someone else could have planted or changed it, and a config \
                 decides what opsconsole runs and deletes. If you trust it, name it explicitly \
                 (opsconsole --config {}), or add its folder to your allow-list {list}: \
                 safe_directories = [\"{}\"]",
                problems.join("; "),
                config.display(),
                folder.display()
            ),
        })
    }
}

//! Sync configuration: the two redundancy levels (L2, L3), their routing and schedules,
//! engine tuning, and the remotes the levels store into.
//!
//! ```toml
//! [sync]
//! settle_seconds = 5
//!
//! [sync.l2]
//! remote = "drive"
//! include = ["**/*.log", "journal.md", "*.json", "frozen_requirements.txt"]
//! max_file_mb = 200
//! interval_minutes = 90
//!
//! [remotes.drive]
//! kind = "local"
//! path = "/content/drive/MyDrive/rsm_project"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a level may hold. Enforced by the router, whatever the globs say: an `assets`
/// level never receives a weights file, a `weights` level receives nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holds {
    /// Logs, journals, small files; never weights.
    Assets,
    /// Weights only (`*.pt`, `*.pth`, `*.ckpt`, `*.safetensors`, `*.bin`, `checkpoint-N/`).
    Weights,
}

/// One redundancy level (L2 or L3): where it stores, what it takes, how often it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LevelConfig {
    /// Off: the level is shown but nothing is queued for it.
    pub enabled: bool,
    /// Name of a `[remotes.NAME]` section.
    pub remote: String,
    /// Globs of workspace-relative paths this level takes. A glob without `/` matches the
    /// file name anywhere; a glob with `/` matches the whole relative path (`**` crosses
    /// folders).
    pub include: Vec<String>,
    /// Globs (same rules) this level never takes, checked after `include`.
    pub exclude: Vec<String>,
    /// Files larger than this are not routed to the level; 0 means no limit.
    pub max_file_mb: u64,
    /// A pass uploads everything pending this often; 0 uploads each file as soon as it is
    /// complete. A level whose last success is older than 1.25 x this is overdue.
    pub interval_minutes: u64,
}

impl Default for LevelConfig {
    fn default() -> Self {
        Self::l2()
    }
}

impl LevelConfig {
    /// The seed's L2: Drive, logs, journals and small assets, every 1-2 h.
    pub fn l2() -> Self {
        Self {
            enabled: true,
            remote: "drive".into(),
            include: vec![
                "**/*.log".into(),
                "*.log.[0-9]*".into(),
                "journal.md".into(),
                "*.json".into(),
                "frozen_requirements.txt".into(),
            ],
            exclude: Vec::new(),
            max_file_mb: 200,
            interval_minutes: 90,
        }
    }

    /// The seed's L3: the Hub, weights only, every 2-4 h.
    pub fn l3() -> Self {
        Self {
            enabled: true,
            remote: "hf".into(),
            include: vec![
                "*.pt".into(),
                "*.pth".into(),
                "*.ckpt".into(),
                "*.safetensors".into(),
                "*.bin".into(),
                "**/checkpoint-*/**".into(),
            ],
            exclude: Vec::new(),
            max_file_mb: 0,
            interval_minutes: 180,
        }
    }
}

/// A level table as written: keys left out fall back to that level's own defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelPatch {
    enabled: Option<bool>,
    remote: Option<String>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    max_file_mb: Option<u64>,
    interval_minutes: Option<u64>,
}

impl LevelPatch {
    fn over(self, base: LevelConfig) -> LevelConfig {
        LevelConfig {
            enabled: self.enabled.unwrap_or(base.enabled),
            remote: self.remote.unwrap_or(base.remote),
            include: self.include.unwrap_or(base.include),
            exclude: self.exclude.unwrap_or(base.exclude),
            max_file_mb: self.max_file_mb.unwrap_or(base.max_file_mb),
            interval_minutes: self.interval_minutes.unwrap_or(base.interval_minutes),
        }
    }
}

fn de_l2<'de, D: serde::Deserializer<'de>>(d: D) -> Result<LevelConfig, D::Error> {
    Ok(LevelPatch::deserialize(d)?.over(LevelConfig::l2()))
}

fn de_l3<'de, D: serde::Deserializer<'de>>(d: D) -> Result<LevelConfig, D::Error> {
    Ok(LevelPatch::deserialize(d)?.over(LevelConfig::l3()))
}

/// The `[sync]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// L2: logs, journals, small assets (never weights). Keys left out keep L2's defaults.
    #[serde(deserialize_with = "de_l2")]
    pub l2: LevelConfig,
    /// L3: weights only. Keys left out keep L3's defaults.
    #[serde(deserialize_with = "de_l3")]
    pub l3: LevelConfig,
    /// A written file must keep the same size this long (after its writer closed it or
    /// renamed it into place) before it is queued.
    pub settle_seconds: u64,
    /// Full rescan of the workspace this often, for filesystems that send no events.
    pub poll_seconds: u64,
    /// Uploads running at once on one remote.
    pub workers_per_remote: usize,
    /// Upload bandwidth cap over all uploads in KiB/s; 0 means no cap.
    pub bandwidth_limit_kib_s: u64,
    /// First retry delay after a transient failure; doubles each attempt, with jitter.
    pub retry_base_seconds: u64,
    /// Longest delay between retries.
    pub retry_max_seconds: u64,
    /// A log (or any file but weights) that keeps growing is stored as a snapshot of what
    /// it holds at least this often, whatever its write rate (`s` and `sync --once` take
    /// one at once). Fractions are allowed (0.5 is 30 s).
    pub snapshot_minutes: f64,
    /// Globs (rules as in a level) never synced to any level.
    pub exclude: Vec<String>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            l2: LevelConfig::l2(),
            l3: LevelConfig::l3(),
            settle_seconds: 5,
            poll_seconds: 300,
            workers_per_remote: 2,
            bandwidth_limit_kib_s: 0,
            retry_base_seconds: 5,
            retry_max_seconds: 900,
            snapshot_minutes: 10.0,
            exclude: vec![
                ".git/**".into(),
                ".opsconsole/**".into(),
                "**/__pycache__/**".into(),
                "**/node_modules/**".into(),
                "**/.ipynb_checkpoints/**".into(),
                "**/tmp-checkpoint-*/**".into(),
                "*.tmp".into(),
                "*.part".into(),
                "*.partial".into(),
                "*.swp".into(),
                "*~".into(),
            ],
        }
    }
}

/// A `[remotes.NAME]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RemoteConfig {
    /// A mounted folder: a second disk, a Colab Drive mount, a gcsfuse bucket.
    Local {
        /// The folder files are stored under. It must exist and carry this remote's
        /// identity marker (`opsconsole remote check NAME --init` creates it inside an
        /// existing folder and writes the marker); sync never creates it.
        path: PathBuf,
        /// Allow a folder on the same filesystem as the workspace or a checkpoint root
        /// (a demo, a test). Such a copy is not a backup, and is shown as such.
        #[serde(default)]
        same_disk: bool,
    },
    /// Google Drive through the API, with a service account (no interactive login).
    Drive {
        /// The Drive folder files are stored under (the id in its URL). For a service account
        /// it must be inside a Shared Drive the account is a member of.
        folder_id: String,
        /// The service account's JSON key. Unset: `GOOGLE_APPLICATION_CREDENTIALS`, else
        /// `~/.secrets/colab-service-account.json`. `~` expands.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_file: Option<PathBuf>,
        /// `drive.file` (only files this account created) or `drive` (everything the
        /// account can see).
        #[serde(default = "default_drive_scope")]
        scope: String,
        /// Resumable-upload chunk in MiB, a multiple of 0.25 (Drive's 256 KiB rule). An
        /// interrupted upload re-sends at most one chunk; memory use is about one chunk.
        #[serde(default = "default_chunk_mib")]
        chunk_mib: f64,
        /// The API root; only tests point it elsewhere. https, or http on loopback.
        #[serde(default = "default_drive_endpoint")]
        endpoint: String,
        /// Act as this user (domain-wide delegation) instead of as the service account
        /// itself, so files count against the user's storage.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
    },
    /// A Hugging Face Hub model repo (weights only): one commit per checkpoint.
    Hf {
        /// `namespace/name` of the model repo.
        repo_id: String,
        /// A missing repo is created private when true (the default).
        #[serde(default = "default_true")]
        private: bool,
        /// Weights are pushed to a public repo only when this is true.
        #[serde(default)]
        allow_public: bool,
        /// The branch commits go to.
        #[serde(default = "default_revision")]
        revision: String,
        /// Folder in the repo the workspace-relative paths go under ("" = the repo root).
        #[serde(default)]
        path_prefix: String,
        /// The Hub's address; `None` uses `HF_ENDPOINT`, else `https://huggingface.co`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
    },
}

/// The Drive scopes `scope` may name.
pub const DRIVE_SCOPES: [&str; 2] = ["drive.file", "drive"];

/// Largest `chunk_mib`: a chunk is held in memory while it is sent.
pub const MAX_CHUNK_MIB: f64 = 1024.0;

fn default_drive_scope() -> String {
    "drive.file".into()
}

fn default_chunk_mib() -> f64 {
    8.0
}

fn default_drive_endpoint() -> String {
    "https://www.googleapis.com".into()
}

fn default_true() -> bool {
    true
}

fn default_revision() -> String {
    "main".into()
}

/// All `[remotes.*]` sections by name.
pub type RemotesConfig = BTreeMap<String, RemoteConfig>;

impl SyncConfig {
    /// The two levels with their display names, in order.
    pub fn levels(&self) -> [(&'static str, Holds, &LevelConfig); 2] {
        [("L2", Holds::Assets, &self.l2), ("L3", Holds::Weights, &self.l3)]
    }

    /// (dotted key, problem) for every bad value; empty when the section is usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (key, level) in [("l2", &self.l2), ("l3", &self.l3)] {
            if level.enabled && level.remote.trim().is_empty() {
                problems.push((format!("sync.{key}.remote"), "must name a [remotes.NAME] section".into()));
            }
            if level.enabled && level.include.is_empty() {
                problems
                    .push((format!("sync.{key}.include"), "is empty, so the level would never receive a file".into()));
            }
            for (field, globs) in [("include", &level.include), ("exclude", &level.exclude)] {
                for (i, g) in globs.iter().enumerate() {
                    if let Err(e) = super::routing::check_glob(g) {
                        problems.push((format!("sync.{key}.{field}[{i}]"), e));
                    }
                }
            }
        }
        for (i, g) in self.exclude.iter().enumerate() {
            if let Err(e) = super::routing::check_glob(g) {
                problems.push((format!("sync.exclude[{i}]"), e));
            }
        }
        if self.settle_seconds == 0 {
            problems.push((
                "sync.settle_seconds".into(),
                "must be at least 1, or half-written files could be uploaded".into(),
            ));
        }
        if self.poll_seconds == 0 {
            problems.push(("sync.poll_seconds".into(), "must be at least 1".into()));
        }
        if self.workers_per_remote == 0 || self.workers_per_remote > 16 {
            problems.push(("sync.workers_per_remote".into(), "must be between 1 and 16".into()));
        }
        if self.retry_base_seconds == 0 {
            problems.push(("sync.retry_base_seconds".into(), "must be at least 1".into()));
        }
        if !(self.snapshot_minutes.is_finite() && self.snapshot_minutes > 0.0) {
            problems.push((
                "sync.snapshot_minutes".into(),
                format!("must be above 0 (minutes between snapshots of a growing log), got {}", self.snapshot_minutes),
            ));
        }
        if self.retry_max_seconds < self.retry_base_seconds {
            problems.push(("sync.retry_max_seconds".into(), "must not be smaller than sync.retry_base_seconds".into()));
        }
        problems
    }
}

/// The folder a local remote's `path` names, for a workspace (relative paths are relative
/// to it).
pub fn local_root(path: &std::path::Path, workspace: &std::path::Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { workspace.join(path) }
}

/// `path` with symbolic links and `..` resolved as far as it exists (the rest appended
/// as written), so a folder that does not exist yet can still be compared.
fn resolve(path: &std::path::Path) -> PathBuf {
    use std::path::Component;
    let mut normal = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            c => normal.push(c),
        }
    }
    let mut existing = normal.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            let mut out = real;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return normal,
        }
    }
}

/// (dotted key, problem) for each local remote whose folder is the workspace or a
/// checkpoint root, holds one, or is inside one: a copy there is no copy at all (pruning
/// would delete the only one). `checkpoint_roots` are the configured root patterns; a
/// pattern's part before its first glob is what is compared.
pub fn validate_places(
    remotes: &RemotesConfig,
    workspace: &std::path::Path,
    checkpoint_roots: &[String],
) -> Vec<(String, String)> {
    let ws = resolve(&if workspace.as_os_str().is_empty() { PathBuf::from(".") } else { workspace.to_path_buf() });
    let ws = if ws.is_absolute() { ws } else { std::env::current_dir().map(|d| resolve(&d.join(&ws))).unwrap_or(ws) };
    let mut places: Vec<(String, PathBuf)> = vec![("the workspace".into(), ws.clone())];
    for pat in checkpoint_roots {
        let fixed: PathBuf = std::path::Path::new(pat)
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[', '{']))
            .collect();
        if !fixed.as_os_str().is_empty() {
            places.push((format!("the checkpoint root {pat}"), resolve(&local_root(&fixed, &ws))));
        }
    }
    let mut problems = Vec::new();
    for (name, remote) in remotes {
        #[allow(irrefutable_let_patterns)] // other kinds of remote are not folders
        let RemoteConfig::Local { path, .. } = remote else { continue };
        if path.as_os_str().is_empty() {
            continue;
        }
        let root = resolve(&local_root(path, &ws));
        for (what, place) in &places {
            let why = if root == *place {
                "is"
            } else if root.starts_with(place) {
                "is inside"
            } else if place.starts_with(&root) {
                "holds"
            } else {
                continue;
            };
            problems.push((
                format!("remotes.{name}.path"),
                format!(
                    "{} {why} {what} ({}): a copy there is not a copy, and pruning would delete the only one; \
                     point it at another disk",
                    root.display(),
                    place.display()
                ),
            ));
            break;
        }
    }
    problems
}

/// (dotted key, problem) for every bad remote, plus levels naming a remote that is missing
/// when at least one remote is configured.
pub fn validate_remotes(remotes: &RemotesConfig) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (name, remote) in remotes {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            problems
                .push((format!("remotes.{name}"), "a remote name may use only letters, digits, '-' and '_'".into()));
        }
        match remote {
            RemoteConfig::Local { path, .. } => {
                if path.as_os_str().is_empty() {
                    problems.push((format!("remotes.{name}.path"), "must not be empty".into()));
                }
            }
            RemoteConfig::Drive { folder_id, key_file, scope, chunk_mib, endpoint, subject } => {
                let key = |k: &str| format!("remotes.{name}.{k}");
                if folder_id.trim().is_empty() {
                    problems
                        .push((key("folder_id"), "must be the id of a Drive folder (the last part of its URL)".into()));
                } else if !folder_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    problems.push((
                        key("folder_id"),
                        format!(
                            "'{folder_id}' is not a Drive id: use the part after /folders/ in the folder's URL, \
                             not its name or the whole URL"
                        ),
                    ));
                }
                if key_file.as_ref().is_some_and(|k| k.as_os_str().is_empty()) {
                    problems
                        .push((key("key_file"), "must not be empty (leave it out to use the default places)".into()));
                }
                if !DRIVE_SCOPES.contains(&scope.as_str()) {
                    problems.push((key("scope"), format!("must be \"drive.file\" or \"drive\", got \"{scope}\"")));
                }
                let quarters = chunk_mib * 4.0;
                if !(chunk_mib.is_finite() && *chunk_mib > 0.0 && *chunk_mib <= MAX_CHUNK_MIB) {
                    problems.push((
                        key("chunk_mib"),
                        format!("must be above 0 and at most {MAX_CHUNK_MIB}, got {chunk_mib}"),
                    ));
                } else if quarters.fract() != 0.0 {
                    problems.push((
                        key("chunk_mib"),
                        format!(
                            "must be a multiple of 0.25 (Drive takes chunks of 256 KiB multiples), got {chunk_mib}"
                        ),
                    ));
                }
                if let Err(e) = check_endpoint(endpoint) {
                    problems.push((key("endpoint"), e));
                }
                if subject.as_ref().is_some_and(|s| !s.contains('@')) {
                    problems.push((key("subject"), "must be the email address of the user to act as".into()));
                }
            }
            RemoteConfig::Hf { .. } => {
                if let Some(settings) = super::hf::settings_of(remote) {
                    problems.extend(super::hf::validate(name, &settings));
                }
            }
        }
    }
    problems
}

/// An API root opsconsole may send credentials to: `https://HOST[:PORT]`, or plain http on
/// the loopback interface (a test stand-in). No path, query or user info.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let (scheme, rest) =
        endpoint.split_once("://").ok_or_else(|| format!("'{endpoint}' is not a URL: write it as https://HOST"))?;
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    if hostport.is_empty() || hostport.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!("'{endpoint}' must be just https://HOST[:PORT], without a path"));
    }
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => hostport.split(':').next().unwrap_or(""),
    };
    match scheme {
        "https" => Ok(()),
        "http" if matches!(host, "127.0.0.1" | "localhost" | "::1") => Ok(()),
        "http" => {
            Err(format!("'{endpoint}' is plain http: credentials would cross the network unencrypted; use https"))
        }
        _ => Err(format!("'{endpoint}' must start with https://")),
    }
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_follow_the_seed() {
        let c = SyncConfig::default();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.l2.interval_minutes, 90);
        assert_eq!(c.l3.interval_minutes, 180);
        assert_eq!(c.l2.max_file_mb, 200);
        assert!(c.l3.include.iter().any(|g| g == "*.safetensors"));
    }

    #[test]
    fn partial_toml_keeps_other_defaults_and_unknown_keys_fail() {
        let c: SyncConfig = toml::from_str("settle_seconds = 9\n[l3]\nremote = \"bucket\"\n").expect("parses");
        assert_eq!(c.settle_seconds, 9);
        assert_eq!(c.l3.remote, "bucket");
        assert_eq!(c.l3.include, LevelConfig::l3().include);
        assert_eq!(c.l3.interval_minutes, 180);
        assert_eq!(c.l2, LevelConfig::l2());
        let err = toml::from_str::<SyncConfig>("[l2]\nremot = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("remot"), "{err}");
        // The defaults written out read back equal.
        let text = toml::to_string(&SyncConfig::default()).expect("ser");
        assert_eq!(toml::from_str::<SyncConfig>(&text).expect("de"), SyncConfig::default());
        let err = toml::from_str::<SyncConfig>("setle_seconds = 9\n").unwrap_err();
        assert!(err.to_string().contains("setle_seconds"), "{err}");
    }

    #[test]
    fn remote_sections_parse_and_reject_unknown_keys() {
        let r: RemotesConfig = toml::from_str("[a]\nkind = \"local\"\npath = \"/mnt/x\"\n").expect("parses");
        assert_eq!(r["a"], RemoteConfig::Local { path: "/mnt/x".into(), same_disk: false });
        let r: RemotesConfig =
            toml::from_str("[a]\nkind = \"local\"\npath = \"/mnt/x\"\nsame_disk = true\n").expect("parses");
        assert_eq!(r["a"], RemoteConfig::Local { path: "/mnt/x".into(), same_disk: true });
        assert!(validate_remotes(&r).is_empty());
        assert!(toml::from_str::<RemotesConfig>("[a]\nkind = \"local\"\npath = \"/x\"\nfoo = 1\n").is_err());
        assert!(toml::from_str::<RemotesConfig>("[a]\nkind = \"ftp\"\n").is_err());
    }

    #[test]
    fn drive_sections_take_defaults_and_check_every_key() {
        let r: RemotesConfig = toml::from_str("[d]\nkind = \"drive\"\nfolder_id = \"1AbC-x_9\"\n").expect("parses");
        assert_eq!(
            r["d"],
            RemoteConfig::Drive {
                folder_id: "1AbC-x_9".into(),
                key_file: None,
                scope: "drive.file".into(),
                chunk_mib: 8.0,
                endpoint: "https://www.googleapis.com".into(),
                subject: None,
            }
        );
        assert!(validate_remotes(&r).is_empty(), "{:?}", validate_remotes(&r));
        let full = "[d]\nkind = \"drive\"\nfolder_id = \"f\"\nkey_file = \"~/k.json\"\nscope = \"drive\"\n\
                    chunk_mib = 0.75\nendpoint = \"http://127.0.0.1:9\"\nsubject = \"a@b.c\"\n";
        let r: RemotesConfig = toml::from_str(full).expect("parses");
        assert!(validate_remotes(&r).is_empty(), "{:?}", validate_remotes(&r));
        assert!(toml::from_str::<RemotesConfig>("[d]\nkind = \"drive\"\n").is_err(), "folder_id is required");
        assert!(toml::from_str::<RemotesConfig>("[d]\nkind = \"drive\"\nfolder_id = \"f\"\npath = \"/x\"\n").is_err());
        let bad = |line: &str| {
            let r: RemotesConfig =
                toml::from_str(&format!("[d]\nkind = \"drive\"\nfolder_id = \"f\"\n{line}\n")).expect("parses");
            validate_remotes(&r)
        };
        for (line, key, words) in [
            ("chunk_mib = 1.1", "remotes.d.chunk_mib", "multiple of 0.25"),
            ("chunk_mib = 0", "remotes.d.chunk_mib", "above 0"),
            ("chunk_mib = 4096", "remotes.d.chunk_mib", "at most"),
            ("scope = \"drive.readonly\"", "remotes.d.scope", "\"drive.file\" or \"drive\""),
            ("endpoint = \"http://example.com\"", "remotes.d.endpoint", "plain http"),
            ("endpoint = \"https://x/drive/v3\"", "remotes.d.endpoint", "without a path"),
            ("endpoint = \"googleapis.com\"", "remotes.d.endpoint", "not a URL"),
            ("key_file = \"\"", "remotes.d.key_file", "must not be empty"),
            ("subject = \"alice\"", "remotes.d.subject", "email"),
        ] {
            let p = bad(line);
            assert_eq!(p.len(), 1, "{line}: {p:?}");
            assert_eq!(p[0].0, key, "{line}");
            assert!(p[0].1.contains(words), "{line}: {}", p[0].1);
        }
        let r: RemotesConfig =
            toml::from_str("[d]\nkind = \"drive\"\nfolder_id = \"https://drive.google.com/x\"\n").expect("parses");
        assert!(validate_remotes(&r)[0].1.contains("not a Drive id"));
        assert!(check_endpoint("http://localhost:8080/").is_ok());
        assert!(check_endpoint("http://[::1]:8080").is_ok());
    }

    #[test]
    fn bad_values_are_named() {
        let mut c = SyncConfig::default();
        c.settle_seconds = 0;
        c.l3.include = vec!["[".into()];
        c.retry_max_seconds = 1;
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert!(keys.contains(&"sync.settle_seconds".to_string()));
        assert!(keys.contains(&"sync.l3.include[0]".to_string()));
        assert!(keys.contains(&"sync.retry_max_seconds".to_string()));
    }

    #[test]
    fn a_remote_in_or_around_the_workspace_or_a_checkpoint_root_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("data/ckpt")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("elsewhere")).expect("mkdir");
        std::os::unix::fs::symlink(&ws, dir.path().join("link-to-ws")).expect("symlink");
        let roots = vec!["checkpoints".to_string(), format!("{}/data/ckpt/*", dir.path().display())];
        let check = |path: PathBuf| {
            let mut r = RemotesConfig::new();
            r.insert("bk".into(), RemoteConfig::Local { path, same_disk: false });
            validate_places(&r, &ws, &roots)
        };
        for (path, why) in [
            (PathBuf::from("."), "is the workspace"),
            (ws.clone(), "is the workspace"),
            (PathBuf::from("remote-hf"), "is inside the workspace"),
            (PathBuf::from("checkpoints/../backup/new"), "is inside the workspace"),
            (dir.path().to_path_buf(), "holds the workspace"),
            (dir.path().join("link-to-ws/backup"), "is inside the workspace"),
            (dir.path().join("data"), "holds the checkpoint root"),
            (dir.path().join("data/ckpt/x/y"), "is inside the checkpoint root"),
        ] {
            let p = check(path.clone());
            assert_eq!(p.len(), 1, "{path:?}: {p:?}");
            assert_eq!(p[0].0, "remotes.bk.path");
            assert!(p[0].1.contains(why), "{path:?}: {}", p[0].1);
        }
        assert!(check(dir.path().join("elsewhere/backup")).is_empty());
        assert!(check(PathBuf::from("../elsewhere")).is_empty());
    }
}

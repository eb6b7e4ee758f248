//! Configuration: the embedded defaults (`assets/default-config.toml`, which documents every
//! key) overlaid by the workspace's `opsconsole.toml`. Unknown keys and bad values are errors
//! that name the file, the line and the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::keys::KeysConfig;

/// The shipped default configuration; every key is documented there.
pub const DEFAULT_CONFIG: &str = include_str!("../assets/default-config.toml");

/// The name of the per-workspace config file.
pub const CONFIG_FILE: &str = "opsconsole.toml";

/// The whole resolved configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub general: GeneralConfig,
    pub paths: PathsConfig,
    pub disk: DiskConfig,
    pub gpu: crate::gpu::GpuConfig,
    pub log: crate::logtail::LogConfig,
    pub sync: crate::sync::SyncConfig,
    pub remotes: crate::sync::RemotesConfig,
    pub checkpoints: crate::checkpoints::CheckpointsConfig,
    pub prune: crate::checkpoints::PruneConfig,
    pub checklist: crate::checklist::ChecklistConfig,
    pub idle: crate::checklist::IdleConfig,
    pub shutdown: crate::checklist::ShutdownConfig,
    pub external_ip: crate::checklist::ExternalIpConfig,
    pub bundle: crate::airlock::BundleConfig,
    pub import: crate::airlock::ImportConfig,
    pub resume: crate::airlock::ResumeConfig,
    pub freeze: crate::airlock::FreezeConfig,
    pub rules: crate::rules::RulesConfig,
    pub tiers: crate::rules::tier::TiersConfig,
    pub metrics: crate::metrics::MetricsConfig,
    pub alerts: AlertsConfig,
    pub keys: KeysConfig,
}

/// `[alerts]`: how the console calls attention to a new problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Ring the terminal bell (BEL) once when a CUDA OOM (or a `Killed`), a NaN loss, a
    /// stall or a disk crossing critical first appears; tmux turns it into its window alert.
    pub bell: bool,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self { bell: true }
    }
}

/// `[general]`: how often the screen refreshes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneralConfig {
    /// Milliseconds between ticks (clock, uptime, redraw of time-based text).
    pub refresh_ms: u64,
}

impl Default for GeneralConfig {
    fn default() -> Self {
        Self { refresh_ms: 1000 }
    }
}

/// `[paths]`: the workspace's folders, relative to the workspace root or absolute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathsConfig {
    pub experiments: String,
    pub checkpoints: String,
    pub data: String,
    pub journal: String,
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self {
            experiments: "experiments".into(),
            checkpoints: "checkpoints".into(),
            data: "/data".into(),
            journal: "journal.md".into(),
        }
    }
}

/// `[disk]`: crash-loop thresholds and sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiskConfig {
    pub warn_pct: f64,
    pub critical_pct: f64,
    pub full_pct: f64,
    pub sample_ms: u64,
    pub extra_paths: Vec<String>,
}

impl Default for DiskConfig {
    fn default() -> Self {
        Self { warn_pct: 80.0, critical_pct: 90.0, full_pct: 100.0, sample_ms: 5000, extra_paths: Vec::new() }
    }
}

impl DiskConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (k, v) in [("warn_pct", self.warn_pct), ("critical_pct", self.critical_pct), ("full_pct", self.full_pct)] {
            if !(v > 0.0 && v <= 100.0) {
                out.push((format!("disk.{k}"), format!("must be a percentage above 0 and at most 100, got {v}")));
            }
        }
        if self.warn_pct >= self.critical_pct {
            out.push((
                "disk.warn_pct".into(),
                format!("must be below disk.critical_pct ({} >= {})", self.warn_pct, self.critical_pct),
            ));
        }
        if self.critical_pct >= self.full_pct {
            out.push((
                "disk.critical_pct".into(),
                format!("must be below disk.full_pct ({} >= {})", self.critical_pct, self.full_pct),
            ));
        }
        if self.sample_ms < 100 {
            out.push(("disk.sample_ms".into(), format!("must be at least 100, got {}", self.sample_ms)));
        }
        out
    }
}

/// A configuration problem, with where it is.
/// Shown as `file[:line][: key `key`]: message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{}{}{}: {message}",
    .file.display(),
    .line.map(|l| format!(":{l}")).unwrap_or_default(),
    .key.as_ref().map(|k| format!(": key `{k}`")).unwrap_or_default()
)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl Config {
    /// Parses a config file's text. `file` is used in error messages only.
    pub fn from_toml(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| toml_error(&e, text, file, None))?;
        // A config that reads is read directly; only one that does not is read again through
        // serde_path_to_error, which names the key (the same error either way). Tracking the
        // path wraps every value of every section in another layer of generic code, which
        // every start would otherwise run: 216 KB of code kept resident (docs/performance.md).
        let cfg = match Config::deserialize(de) {
            Ok(cfg) => cfg,
            Err(_) => {
                let de = toml::Deserializer::parse(text).map_err(|e| toml_error(&e, text, file, None))?;
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let key = e.path().to_string();
                    let key = if key == "." || key.is_empty() { None } else { Some(key) };
                    toml_error(e.inner(), text, file, key)
                })?
            }
        };
        cfg.validate_in(text, file)?;
        // The file's folder is the workspace: a remote there (or around it, or in a
        // checkpoint root) is no copy at all.
        let workspace = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let places = crate::sync::config::validate_places(&cfg.remotes, workspace, &cfg.checkpoints.roots);
        if let Some((key, message)) = places.into_iter().next() {
            return Err(ConfigError {
                file: file.to_path_buf(),
                line: find_key_line(text, &key),
                key: Some(key),
                message,
            });
        }
        Ok(cfg)
    }

    /// Checks values that types alone cannot (threshold order, key bindings).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.general.refresh_ms < 50 {
            out.push(("general.refresh_ms".into(), format!("must be at least 50, got {}", self.general.refresh_ms)));
        }
        out.extend(self.disk.validate());
        out.extend(self.gpu.validate());
        out.extend(self.log.validate());
        out.extend(self.sync.validate());
        out.extend(crate::sync::config::validate_remotes(&self.remotes));
        out.extend(self.checkpoints.validate());
        out.extend(self.prune.validate());
        out.extend(self.checklist.validate());
        out.extend(self.idle.validate(&self.gpu.tiers));
        out.extend(self.external_ip.validate());
        out.extend(self.bundle.validate());
        out.extend(self.import.validate());
        out.extend(self.resume.validate());
        out.extend(self.freeze.validate());
        out.extend(self.rules.validate());
        out.extend(self.tiers.validate(&self.gpu.tiers));
        out.extend(self.metrics.validate());
        if let Err(p) = crate::keys::chord::bindings(&self.keys) {
            out.extend(p);
        }
        out
    }

    fn validate_in(&self, text: &str, file: &Path) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            None => Ok(()),
            Some((key, message)) => {
                Err(ConfigError { file: file.to_path_buf(), line: find_key_line(text, &key), key: Some(key), message })
            }
        }
    }

    /// The built-in defaults as a TOML document (what `opsconsole config` prints for them).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# could not render config: {e}\n"))
    }
}

fn toml_error(e: &toml::de::Error, text: &str, file: &Path, key: Option<String>) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
        .or_else(|| key.as_deref().and_then(|k| find_key_line(text, k)));
    let message = e.message().trim().to_string();
    let unknown = unknown_field(&message);
    let key = match (key, unknown.clone()) {
        (Some(path), Some(field)) if path == field || path.ends_with(&format!(".{field}")) => Some(path),
        (Some(parent), Some(field)) => Some(format!("{parent}.{field}")),
        (None, Some(field)) => Some(field),
        (key, None) => key,
    };
    // Tables read as a whole (a remote's section, tagged by `kind`) report their header's
    // span: an unknown key is found on its own line instead.
    let line = match (&unknown, &key) {
        (Some(_), Some(k)) => find_key_line(text, k).or(line),
        _ => line,
    };
    ConfigError { file: file.to_path_buf(), line, key, message }
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// Finds the line (1-based) where a dotted key such as `disk.warn_pct` is set, looking at
/// `[section]` headers and `key =` lines. Used for errors found after parsing.
pub fn find_key_line(text: &str, dotted: &str) -> Option<usize> {
    let (section, leaf) = match dotted.rsplit_once('.') {
        Some((s, l)) => (s, l),
        None => ("", dotted),
    };
    let mut current = String::new();
    let mut section_line = None;
    // `[[a.b]]` tables are counted, so `a.b[1].key` finds the second one.
    let mut arrays: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            current = line.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            if line.starts_with("[[") {
                let n = arrays.entry(current.clone()).or_insert(0);
                current = format!("{current}[{n}]");
                *n += 1;
            }
            if current == section {
                section_line = Some(i + 1);
            }
            continue;
        }
        let Some((k, _)) = line.split_once('=') else { continue };
        let k = k.trim().trim_matches('"');
        let full = if current.is_empty() { k.to_string() } else { format!("{current}.{k}") };
        if full == dotted || (current == section && k == leaf) {
            return Some(i + 1);
        }
    }
    section_line
}

/// Where the config came from.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigSource {
    File(PathBuf),
    Defaults,
}

/// The largest config file read; anything bigger is refused (a config is a few kB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Loads the config file at `path`, or the defaults when `path` is `None`.
pub fn load(path: Option<&Path>) -> Result<(Config, ConfigSource), ConfigError> {
    match path {
        None => Ok((Config::default(), ConfigSource::Defaults)),
        Some(p) => {
            let text = read_config_file(p)?;
            Ok((Config::from_toml(&text, p)?, ConfigSource::File(p.to_path_buf())))
        }
    }
}

/// Reads a config file: a regular file of at most [`MAX_CONFIG_BYTES`], in UTF-8. A
/// directory, a FIFO or a device (`--config /dev/zero`) is refused in words, without
/// blocking on it or reading it without end.
pub fn read_config_file(p: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let err = |message: String| ConfigError { file: p.to_path_buf(), line: None, key: None, message };
    let meta = std::fs::metadata(p).map_err(|e| err(format!("cannot read the config file: {e}")))?;
    if !meta.is_file() {
        return Err(err(format!(
            "is {}, not a config file; a config is a regular TOML file",
            crate::util::file_kind(meta.file_type())
        )));
    }
    let file = crate::util::open_regular(p).map_err(|e| err(format!("cannot read the config file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!("cannot read the config file: {e}")))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(err(format!(
            "is larger than {} kB; a config file is a few kB of TOML (is this the right file?)",
            MAX_CONFIG_BYTES / 1024
        )));
    }
    String::from_utf8(bytes)
        .map_err(|e| err(format!("is not UTF-8 text (invalid byte at {})", e.utf8_error().valid_up_to())))
}

/// Writes the commented default config as `opsconsole.toml` in `dir`; refuses to overwrite.
pub fn write_default(dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join(CONFIG_FILE);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
    std::io::Write::write_all(&mut f, DEFAULT_CONFIG.as_bytes())?;
    Ok(path)
}

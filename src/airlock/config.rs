//! `[bundle]`, `[import]`, `[resume]` and `[freeze]`.

use serde::{Deserialize, Serialize};

/// `[bundle]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BundleConfig {
    /// Files or folders (relative to the workspace) added to every bundle besides the
    /// experiment's `models/` and `train.py`, the requirements files; committed and clean
    /// like the rest. `{experiment}` is the experiment's name.
    pub extra_paths: Vec<String>,
}

/// `[import]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportConfig {
    /// Which files on L2's remote are the cluster's logs: a glob over remote keys
    /// (workspace-relative paths). `{experiments}` is `paths.experiments`, `{experiment}`
    /// the experiment. The newest match (by the remote's modification time) is imported.
    pub pattern: String,
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self { pattern: "{experiments}/{experiment}/**/*.log".into() }
    }
}

/// `[resume]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResumeConfig {
    /// The training command started from the chosen checkpoint (`sh -c`, in the workspace
    /// root, in a session of its own). `{checkpoint}` is the checkpoint's absolute path,
    /// shell-quoted; `{experiment}` the experiment's name. Empty: nothing is started.
    pub command: String,
    /// The log the started run's output (stdout and stderr) is appended to, relative to
    /// the workspace; `{experiments}` and `{experiment}` as in `[import] pattern`.
    pub log: String,
}

impl Default for ResumeConfig {
    fn default() -> Self {
        Self { command: String::new(), log: "{experiments}/{experiment}/logs/train.log".into() }
    }
}

/// `[freeze]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FreezeConfig {
    /// The Python interpreter whose packages are recorded (`<python> -m pip freeze`):
    /// a name on PATH or a path (`./venv/bin/python`, relative to the workspace).
    pub python: String,
}

impl Default for FreezeConfig {
    fn default() -> Self {
        Self { python: "python3".into() }
    }
}

/// Placeholders in `text` other than `allowed`, as `{name}`: a `{` directly followed by a
/// lower-case name and `}`, not preceded by `$` (so the shell's `${HOME}`, `${x#*/}` and
/// `{a,b}` are left to the shell).
fn unknown_placeholders(text: &str, allowed: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let b = text.as_bytes();
    for (i, _) in text.match_indices('{') {
        if i > 0 && b[i - 1] == b'$' {
            continue;
        }
        let rest = &text[i + 1..];
        let Some(j) = rest.find('}') else { continue };
        let name = &rest[..j];
        let ident = !name.is_empty() && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
        if ident && !allowed.contains(&name) {
            let p = format!("{{{name}}}");
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

fn relative_path_problem(p: &str) -> Option<String> {
    let path = std::path::Path::new(p);
    if p.trim().is_empty() {
        return Some("must not be empty".into());
    }
    if path.is_absolute() {
        return Some(format!("must be relative to the workspace, got {p:?}"));
    }
    if path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Some(format!("must stay inside the workspace (no `..`), got {p:?}"));
    }
    None
}

impl BundleConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in &self.extra_paths {
            if let Some(why) = relative_path_problem(p) {
                out.push(("bundle.extra_paths".into(), why));
            }
            let bad = unknown_placeholders(p, &["experiment"]);
            if !bad.is_empty() {
                out.push(("bundle.extra_paths".into(), format!("unknown placeholder {} in {p:?}", bad.join(", "))));
            }
        }
        out
    }
}

impl ImportConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let bad = unknown_placeholders(&self.pattern, &["experiments", "experiment"]);
        if !bad.is_empty() {
            out.push((
                "import.pattern".into(),
                format!("unknown placeholder {} (known: {{experiments}}, {{experiment}})", bad.join(", ")),
            ));
            return out;
        }
        let probe = super::expand(&self.pattern, "experiments", "v1");
        if self.pattern.trim().is_empty() {
            out.push(("import.pattern".into(), "must not be empty".into()));
        } else if let Err(e) = crate::sync::routing::check_glob(&probe) {
            out.push(("import.pattern".into(), e));
        }
        out
    }
}

impl ResumeConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.command.trim().is_empty() {
            let bad = unknown_placeholders(&self.command, &["checkpoint", "experiment"]);
            if !bad.is_empty() {
                out.push((
                    "resume.command".into(),
                    format!("unknown placeholder {} (known: {{checkpoint}}, {{experiment}})", bad.join(", ")),
                ));
            } else if !self.command.contains("{checkpoint}") {
                out.push((
                    "resume.command".into(),
                    "must contain {checkpoint} (where the checkpoint's path goes), e.g. \
                     \"python train.py --resume_from_checkpoint {checkpoint}\""
                        .into(),
                ));
            }
        }
        let bad = unknown_placeholders(&self.log, &["experiments", "experiment"]);
        if !bad.is_empty() {
            out.push(("resume.log".into(), format!("unknown placeholder {}", bad.join(", "))));
        } else if let Some(why) = relative_path_problem(&self.log) {
            out.push(("resume.log".into(), why));
        }
        out
    }
}

impl FreezeConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        if self.python.trim().is_empty() {
            return vec![("freeze.python".into(), "must name a Python interpreter, e.g. \"python3\"".into())];
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_mistakes_are_named() {
        assert!(BundleConfig::default().validate().is_empty());
        assert!(ImportConfig::default().validate().is_empty());
        assert!(ResumeConfig::default().validate().is_empty());
        assert!(FreezeConfig::default().validate().is_empty());
        let r = ResumeConfig { command: "python train.py".into(), ..Default::default() };
        assert!(r.validate()[0].1.contains("must contain {checkpoint}"));
        let r = ResumeConfig { command: "python train.py {ckpt}".into(), ..Default::default() };
        assert!(r.validate()[0].1.contains("unknown placeholder {ckpt}"));
        let r = ResumeConfig { command: "x={checkpoint}; echo ${HOME} ${x#*/} {a,b}".into(), ..Default::default() };
        assert!(r.validate().is_empty(), "{:?}", r.validate());
        let b = BundleConfig { extra_paths: vec!["../secrets".into(), "/etc".into()] };
        assert_eq!(b.validate().len(), 2);
        let i = ImportConfig { pattern: "logs/[".into() };
        assert_eq!(i.validate()[0].0, "import.pattern");
    }
}

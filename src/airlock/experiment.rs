//! Which experiment: the one named, or the newest folder under `paths.experiments`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// An experiment folder (`experiments/v68_lane_unification`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Experiment {
    /// The folder's name.
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
    /// Workspace-relative path of the folder, `/`-separated (`experiments/v68`).
    pub rel: String,
}

/// The leading version number of an experiment's name: `v68_lane` -> 68, `12-big` -> 12.
pub fn version_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(['v', 'V']).unwrap_or(name);
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The `vNN` tag an experiment's files carry (`v68` for `v68_lane_unification`), lower case.
pub fn tag_of(name: &str) -> Option<String> {
    let rest = name.strip_prefix(['v', 'V'])?;
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    (end > 0).then(|| format!("v{}", &rest[..end]))
}

fn experiments_dir(workspace: &Path, experiments: &str) -> PathBuf {
    super::in_workspace(workspace, experiments)
}

fn rel_of(workspace: &Path, dir: &Path) -> String {
    dir.strip_prefix(workspace).unwrap_or(dir).to_string_lossy().replace('\\', "/")
}

/// Every experiment folder (not hidden), sorted by name.
pub fn list(workspace: &Path, experiments: &str) -> Vec<Experiment> {
    let root = experiments_dir(workspace, experiments);
    let Ok(rd) = std::fs::read_dir(&root) else { return Vec::new() };
    let mut out: Vec<Experiment> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            (!name.starts_with('.')).then(|| Experiment { dir: e.path(), rel: rel_of(workspace, &e.path()), name })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The newest experiment: the highest version number in its name (`v68_…` before `v9`);
/// among names without one, or equal ones, the most recently modified folder.
pub fn newest(workspace: &Path, experiments: &str) -> Option<Experiment> {
    let mtime = |e: &Experiment| std::fs::metadata(&e.dir).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    list(workspace, experiments).into_iter().max_by(|a, b| {
        let (va, vb) = (version_of(&a.name), version_of(&b.name));
        va.is_some()
            .cmp(&vb.is_some())
            .then(va.cmp(&vb))
            .then_with(|| mtime(a).cmp(&mtime(b)))
            .then(a.name.cmp(&b.name))
    })
}

/// The experiment named `name`, or the newest when `None`; an error in words otherwise.
pub fn resolve(workspace: &Path, experiments: &str, name: Option<&str>) -> Result<Experiment, String> {
    let root = experiments_dir(workspace, experiments);
    match name {
        Some(n) => {
            let n = n.trim_end_matches('/');
            // `experiments/v68` is accepted for `v68`.
            let n = n.strip_prefix(&format!("{}/", experiments.trim_end_matches('/'))).unwrap_or(n);
            if n.is_empty() || n.contains('/') || n == "." || n == ".." {
                return Err(format!("{n:?} is not an experiment name (a folder directly under {experiments}/)"));
            }
            let dir = root.join(n);
            if dir.is_dir() {
                return Ok(Experiment { name: n.to_string(), rel: rel_of(workspace, &dir), dir });
            }
            let known: Vec<String> = list(workspace, experiments).into_iter().map(|e| e.name).collect();
            Err(if known.is_empty() {
                format!("no experiment {n:?}: {} has no experiment folders", super::shown(workspace, &root))
            } else {
                format!("no experiment {n:?} in {} (found: {})", super::shown(workspace, &root), known.join(", "))
            })
        }
        None => newest(workspace, experiments).ok_or_else(|| {
            format!(
                "no experiment found: {} has no folders (the seed's layout is experiments/vXX/train.py)",
                super::shown(workspace, &root)
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_is_by_version_number_not_by_name() {
        let ws = tempfile::tempdir().expect("tmp");
        for n in ["v9_small", "v68_lane_unification", "baseline", ".hidden"] {
            std::fs::create_dir_all(ws.path().join("experiments").join(n)).expect("mkdir");
        }
        assert_eq!(newest(ws.path(), "experiments").expect("one").name, "v68_lane_unification");
        assert_eq!(resolve(ws.path(), "experiments", Some("v9_small")).expect("ok").rel, "experiments/v9_small");
        assert_eq!(resolve(ws.path(), "experiments", Some("experiments/v9_small/")).expect("ok").name, "v9_small");
        let e = resolve(ws.path(), "experiments", Some("v7")).expect_err("missing");
        assert!(e.contains("found: baseline, v68_lane_unification, v9_small"), "{e}");
        assert!(resolve(ws.path(), "experiments", Some("../x")).is_err());
        assert_eq!(tag_of("v68_lane").as_deref(), Some("v68"));
        assert_eq!(tag_of("baseline"), None);
        assert_eq!(version_of("12-big"), Some(12));
    }
}

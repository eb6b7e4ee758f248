//! The checkpoint inventory: what is in the roots, its step, size, age, whether it is still
//! being written, and where it is confirmed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use regex::Regex;
use serde::Serialize;

use super::config::CheckpointsConfig;
use super::ledger::ConfirmationSource;
use super::openfiles;
use super::roots::{self, RootDir, Skipped, Unit, UnitKind, UnitMatcher};
use super::{ser_path, unix_secs};

/// How deep below a root checkpoints are looked for.
pub const MAX_DEPTH: usize = 4;

static STEP_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?:^|[^a-z])(?:global_step|step|iter|it)[_=\-]?(\d+)").expect("static regex"));
static CKPT_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?:^|[^a-z])checkpoint[_\-](\d+)").expect("static regex"));
static EPOCH_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)epoch[_=\-]?(\d+)").expect("static regex"));
/// Hugging Face Trainer checkpoint folders.
pub static HF_FOLDER_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^checkpoint-\d+$").expect("static regex"));

/// The step in a checkpoint's name and the byte range of its digits.
fn step_span(name: &str) -> Option<(u64, std::ops::Range<usize>)> {
    let from = |re: &Regex| {
        re.captures_iter(name).last().and_then(|c| {
            let m = c.get(1)?;
            Some((m.as_str().parse().ok()?, m.range()))
        })
    };
    from(&STEP_RE).or_else(|| from(&CKPT_RE))
}

/// The training step in a checkpoint name: `v68_step_1200.pt` -> 1200,
/// `checkpoint-500` -> 500, `epoch=3-step=900.ckpt` -> 900; `None` when there is none.
pub fn parse_step(name: &str) -> Option<u64> {
    step_span(name).map(|(s, _)| s)
}

/// The series a checkpoint belongs to: its folder and its name with the step and epoch
/// digits blanked, so `v67_step_*` and `v68_step_*` are separate runs. Names without a
/// step form one series per folder, ordered by modification time.
pub fn series_key(rel_dir: &Path, name: &str) -> String {
    let dir = rel_dir.to_string_lossy();
    match step_span(name) {
        Some((_, r)) => {
            let mut blanked = String::with_capacity(name.len());
            blanked.push_str(&name[..r.start]);
            blanked.push('#');
            blanked.push_str(&name[r.end..]);
            let blanked = EPOCH_RE.replace_all(&blanked, "epoch#");
            format!("{dir}/{blanked}")
        }
        None => format!("{dir}/*"),
    }
}

/// Why a checkpoint counts as still being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WritingWhy {
    /// Modified within the settle period (or dated in the future).
    RecentlyModified,
    /// Its size differs from the previous scan.
    SizeChanged,
    /// A process holds it (or a file in it) open for writing.
    OpenForWrite,
}

/// One checkpoint: a file, or a `checkpoint-N/` folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checkpoint {
    #[serde(serialize_with = "ser_path")]
    pub path: PathBuf,
    /// Path relative to the workspace (`/`-separated), the key the ledger uses.
    pub rel_path: String,
    pub kind: UnitKind,
    pub step: Option<u64>,
    pub series: String,
    pub bytes: u64,
    /// Bytes deleting it gives back to the filesystem.
    pub freeable_bytes: u64,
    #[serde(serialize_with = "ser_time")]
    pub mtime: SystemTime,
    pub age_secs: u64,
    pub writing: bool,
    pub writing_why: Option<WritingWhy>,
    pub confirmed_on: Vec<String>,
    #[serde(skip)]
    pub unit: Unit,
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(unix_secs(*t))
}

/// Everything found in the checkpoint roots at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Inventory {
    pub roots: Vec<RootDir>,
    /// Oldest first within each series; series in path order.
    pub checkpoints: Vec<Checkpoint>,
    pub skipped: Vec<Skipped>,
    pub total_bytes: u64,
}

impl Inventory {
    /// Build an inventory from checkpoints in any order (sorted by series, oldest first).
    pub fn new(roots: Vec<RootDir>, mut checkpoints: Vec<Checkpoint>, skipped: Vec<Skipped>) -> Self {
        checkpoints.sort_by(|a, b| a.series.cmp(&b.series).then_with(|| order(a, b)));
        let total_bytes = checkpoints.iter().map(|c| c.bytes).sum();
        Inventory { roots, checkpoints, skipped, total_bytes }
    }

    /// The checkpoints of one series, oldest first.
    pub fn series(&self) -> Vec<(&str, Vec<&Checkpoint>)> {
        let mut out: Vec<(&str, Vec<&Checkpoint>)> = Vec::new();
        for c in &self.checkpoints {
            match out.iter_mut().find(|(k, _)| *k == c.series) {
                Some((_, v)) => v.push(c),
                None => out.push((&c.series, vec![c])),
            }
        }
        out
    }

    /// Fill `confirmed_on` from a ledger.
    pub fn apply_confirmations(&mut self, src: &dyn ConfirmationSource) {
        for c in &mut self.checkpoints {
            c.confirmed_on = src.confirmed_on(&c.rel_path);
        }
    }
}

/// Options for a scan.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanOptions<'a> {
    /// The previous scan, to notice sizes that changed.
    pub previous: Option<&'a Inventory>,
    /// Look in `/proc` for write handles (best effort).
    pub check_open_files: bool,
}

/// The workspace-relative key of a path (absolute when outside the workspace).
pub fn rel_key(workspace: &Path, path: &Path) -> String {
    let p = path.strip_prefix(workspace).unwrap_or(path);
    p.to_string_lossy().replace('\\', "/")
}

/// Scan every configured root.
pub fn scan(workspace: &Path, cfg: &CheckpointsConfig, now: SystemTime, opts: ScanOptions<'_>) -> Inventory {
    let (roots, skipped) = roots::expand_roots(workspace, &cfg.roots);
    scan_roots(workspace, cfg, roots, skipped, now, opts)
}

/// Scan the given concrete roots (the executor re-scans one root before each deletion).
pub fn scan_roots(
    workspace: &Path,
    cfg: &CheckpointsConfig,
    roots: Vec<RootDir>,
    mut skipped: Vec<Skipped>,
    now: SystemTime,
    opts: ScanOptions<'_>,
) -> Inventory {
    let files = roots::name_set(&cfg.patterns);
    let matcher =
        UnitMatcher { files: &files, folder_unit: cfg.hf_folders.then_some(&*HF_FOLDER_RE), max_depth: MAX_DEPTH };
    let mut units = Vec::new();
    for r in &roots {
        roots::scan_root(r, &matcher, &mut units, &mut skipped);
    }
    let open = if opts.check_open_files {
        let canon: Vec<PathBuf> = roots.iter().filter_map(|r| std::fs::canonicalize(&r.path).ok()).collect();
        let open = openfiles::open_for_write(&canon);
        let canon_of: HashMap<PathBuf, PathBuf> =
            roots.iter().filter_map(|r| Some((r.path.clone(), std::fs::canonicalize(&r.path).ok()?))).collect();
        Some((open, canon_of))
    } else {
        None
    };
    let prev: HashMap<&Path, u64> =
        opts.previous.map(|p| p.checkpoints.iter().map(|c| (c.path.as_path(), c.bytes)).collect()).unwrap_or_default();
    let settle = Duration::from_secs(cfg.settle_secs);
    let checkpoints: Vec<Checkpoint> = units
        .into_iter()
        .map(|u| {
            let path = u.path();
            let name = u.rel_in_root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let rel_dir =
                path.parent().map(|p| p.strip_prefix(workspace).unwrap_or(p).to_path_buf()).unwrap_or_default();
            let age = now.duration_since(u.mtime);
            let mut why = match age {
                Ok(a) if a >= settle => None,
                _ => Some(WritingWhy::RecentlyModified),
            };
            if why.is_none() && prev.get(path.as_path()).is_some_and(|b| *b != u.bytes) {
                why = Some(WritingWhy::SizeChanged);
            }
            if why.is_none()
                && let Some((open, canon_of)) = &open
                && let Some(cr) = canon_of.get(&u.root.path)
            {
                let cp = cr.join(&u.rel_in_root);
                if open.iter().any(|o| o.starts_with(&cp)) {
                    why = Some(WritingWhy::OpenForWrite);
                }
            }
            Checkpoint {
                rel_path: rel_key(workspace, &path),
                path,
                kind: u.kind,
                step: parse_step(&name),
                series: series_key(&rel_dir, &name),
                bytes: u.bytes,
                freeable_bytes: u.freeable_bytes,
                mtime: u.mtime,
                age_secs: age.map(|d| d.as_secs()).unwrap_or(0),
                writing: why.is_some(),
                writing_why: why,
                confirmed_on: Vec::new(),
                unit: u,
            }
        })
        .collect();
    Inventory::new(roots, checkpoints, skipped)
}

/// Order within a series: by step when both have one, else by modification time; ties by
/// name. (Within a series either every name has a step or none has.)
pub fn order(a: &Checkpoint, b: &Checkpoint) -> std::cmp::Ordering {
    match (a.step, b.step) {
        (Some(x), Some(y)) => x.cmp(&y).then(a.mtime.cmp(&b.mtime)),
        _ => a.mtime.cmp(&b.mtime),
    }
    .then_with(|| a.path.cmp(&b.path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn steps_from_names() {
        assert_eq!(parse_step("v68_step_1200.pt"), Some(1200));
        assert_eq!(parse_step("checkpoint-500"), Some(500));
        assert_eq!(parse_step("epoch=3-step=900.ckpt"), Some(900));
        assert_eq!(parse_step("global_step4000.pt"), Some(4000));
        assert_eq!(parse_step("model_iter_70.pth"), Some(70));
        assert_eq!(parse_step("v68_latest.pt"), None);
        assert_eq!(parse_step("last.ckpt"), None);
        assert_eq!(parse_step("model-00001-of-00002.safetensors"), None);
        assert_eq!(parse_step("split_3.pt"), None);
    }

    #[test]
    fn series_separate_runs_and_epochs_share() {
        let d = Path::new("checkpoints");
        assert_eq!(series_key(d, "v68_step_1200.pt"), "checkpoints/v68_step_#.pt");
        assert_ne!(series_key(d, "v67_step_1.pt"), series_key(d, "v68_step_1.pt"));
        assert_eq!(series_key(d, "epoch=3-step=900.ckpt"), series_key(d, "epoch=4-step=1200.ckpt"));
        assert_eq!(series_key(d, "last.ckpt"), "checkpoints/*");
    }

    fn set_mtime(p: &Path, t: SystemTime) {
        let f = fs::File::options().write(true).open(p).unwrap();
        f.set_modified(t).unwrap();
    }

    #[test]
    fn scans_roots_files_folders_and_skips_links() {
        let ws = tempfile::tempdir().unwrap();
        let w = ws.path();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("victim.pt"), b"precious").unwrap();
        fs::create_dir_all(w.join("checkpoints")).unwrap();
        fs::create_dir_all(w.join("experiments/v68/checkpoints/checkpoint-500")).unwrap();
        fs::create_dir_all(w.join("experiments/v69")).unwrap();
        std::os::unix::fs::symlink(outside.path(), w.join("experiments/v69/checkpoints")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("victim.pt"), w.join("checkpoints/v1_step_9.pt")).unwrap();
        fs::write(w.join("checkpoints/v1_step_100.pt"), vec![0u8; 1000]).unwrap();
        fs::write(w.join("checkpoints/notes.txt"), b"x").unwrap();
        fs::write(w.join("experiments/v68/checkpoints/checkpoint-500/model.safetensors"), vec![1u8; 300]).unwrap();
        fs::write(w.join("experiments/v68/checkpoints/checkpoint-500/optimizer.pt"), vec![1u8; 200]).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        set_mtime(&w.join("checkpoints/v1_step_100.pt"), old);
        let now = SystemTime::now();
        let inv = scan(w, &CheckpointsConfig::default(), now, ScanOptions::default());
        let rels: Vec<&str> = inv.checkpoints.iter().map(|c| c.rel_path.as_str()).collect();
        assert_eq!(rels, vec!["checkpoints/v1_step_100.pt", "experiments/v68/checkpoints/checkpoint-500"]);
        let folder = &inv.checkpoints[1];
        assert_eq!(folder.kind, UnitKind::Folder);
        assert_eq!(folder.bytes, 500);
        assert_eq!(folder.step, Some(500));
        assert!(folder.writing, "just written");
        let file = &inv.checkpoints[0];
        assert_eq!(file.step, Some(100));
        assert!(!file.writing);
        assert!(file.age_secs >= 3599);
        let skipped: Vec<String> = inv.skipped.iter().map(|s| rel_key(w, &s.path)).collect();
        assert!(skipped.contains(&"checkpoints/v1_step_9.pt".to_string()), "{skipped:?}");
        assert!(skipped.contains(&"experiments/v69/checkpoints".to_string()), "{skipped:?}");
        // A size change since the previous scan counts as writing.
        fs::write(w.join("checkpoints/v1_step_100.pt"), vec![0u8; 2000]).unwrap();
        set_mtime(&w.join("checkpoints/v1_step_100.pt"), old);
        let again =
            scan(w, &CheckpointsConfig::default(), now, ScanOptions { previous: Some(&inv), check_open_files: false });
        assert_eq!(again.checkpoints[0].writing_why, Some(WritingWhy::SizeChanged));
    }
}

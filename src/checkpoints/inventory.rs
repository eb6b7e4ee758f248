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
use super::ser_path;
use crate::disk::usage::Stat;
use crate::unixtime::secs as unix_secs;
use rustix::fs::FileType;
use std::ffi::CString;

/// How deep below a root checkpoints are looked for.
pub const MAX_DEPTH: usize = 4;

/// Hugging Face Trainer checkpoint folders.
pub static HF_FOLDER_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)^checkpoint-[0-9]+$").expect("static regex"));

/// ASCII case-insensitive `token` at `b[i..]`.
fn token_at(b: &[u8], i: usize, token: &[u8]) -> bool {
    b.len() >= i + token.len() && b[i..i + token.len()].eq_ignore_ascii_case(token)
}

/// Digits after `token` at `i` and an optional `_`, `=` or `-`: (value text range).
fn digits_after(b: &[u8], mut j: usize, seps: &[u8], sep_required: bool) -> Option<std::ops::Range<usize>> {
    if j < b.len() && seps.contains(&b[j]) && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
        j += 1;
    } else if sep_required {
        return None;
    }
    let start = j;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    (j > start).then_some(start..j)
}

/// The last `<token><sep?><digits>` in `name` where the token starts the name or follows a
/// non-letter not used by the previous match (the regex
/// `(?i)(?:^|[^a-z])(?:TOKENS)[SEPS]?(\d+)` with ASCII digits), as the digits' range.
fn last_tagged_number(name: &str, tokens: &[&[u8]], seps: &[u8], sep_required: bool) -> Option<std::ops::Range<usize>> {
    let b = name.as_bytes();
    let (mut i, mut last_end, mut found) = (0, 0, None);
    while i < b.len() {
        let boundary = i == 0 || (i > last_end && !b[i - 1].is_ascii_alphabetic());
        if boundary
            && let Some(r) = tokens
                .iter()
                .find_map(|t| token_at(b, i, t).then(|| digits_after(b, i + t.len(), seps, sep_required)).flatten())
        {
            last_end = r.end;
            i = r.end;
            found = Some(r);
            continue;
        }
        i += 1;
    }
    found
}

/// The step in a checkpoint's name and the byte range of its digits.
fn step_span(name: &str) -> Option<(u64, std::ops::Range<usize>)> {
    let parse = |r: std::ops::Range<usize>| Some((name[r.clone()].parse().ok()?, r));
    match last_tagged_number(name, &[b"global_step", b"step", b"iter", b"it"], b"_=-", false) {
        Some(r) => parse(r),
        // `checkpoint` needs its separator (`checkpoint-500`).
        None => last_tagged_number(name, &[b"checkpoint"], b"_-", true).and_then(parse),
    }
}

/// The training step in a checkpoint name: `v68_step_1200.pt` -> 1200,
/// `checkpoint-500` -> 500, `epoch=3-step=900.ckpt` -> 900; `None` when there is none.
pub fn parse_step(name: &str) -> Option<u64> {
    step_span(name).map(|(s, _)| s)
}

/// `name` with every `epoch<sep?><digits>` written `epoch#`.
fn blank_epochs(name: &str) -> String {
    let b = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        if token_at(b, i, b"epoch")
            && let Some(r) = digits_after(b, i + 5, b"_=-", false)
        {
            out.push_str(&name[copied..i]);
            out.push_str("epoch#");
            i = r.end;
            copied = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&name[copied..]);
    out
}

/// The series a checkpoint belongs to: its folder and its name with the step and epoch
/// digits blanked, so `v67_step_*` and `v68_step_*` are separate runs. Names without a
/// step form one series per folder, ordered by modification time.
pub fn series_key(rel_dir: &Path, name: &str) -> String {
    series_of(rel_dir, name, step_span(name).map(|(_, r)| r))
}

fn series_of(rel_dir: &Path, name: &str, span: Option<std::ops::Range<usize>>) -> String {
    let dir = exact_text(rel_dir.as_os_str());
    match span {
        Some(r) => {
            let mut blanked = String::with_capacity(name.len());
            blanked.push_str(&name[..r.start]);
            blanked.push('#');
            blanked.push_str(&name[r.end..]);
            format!("{dir}/{}", blank_epochs(&blanked))
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
            c.confirmed_on = if has_ledger_key(&c.path) { src.confirmed_on(&c.rel_path) } else { Vec::new() };
        }
    }
}

/// Options for a scan.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanOptions<'a> {
    /// The previous scan, to notice sizes that changed.
    pub previous: Option<&'a [Checkpoint]>,
    /// Look in `/proc` for write handles (best effort).
    pub check_open_files: bool,
}

/// The workspace-relative key of a path (absolute when outside the workspace), as the
/// ledger spells it: `/` between folders, and a `\` in a name left as it is (it is part
/// of the name, not a separator). For a path that is not UTF-8 this is only a lossy
/// spelling, which may be another file's key: see [`has_ledger_key`].
pub fn rel_key(workspace: &Path, path: &Path) -> String {
    let p = path.strip_prefix(workspace).unwrap_or(path);
    p.to_string_lossy().into_owned()
}

/// Whether `path` can have copies recorded in the ledger: its key is its exact spelling
/// only when it is UTF-8 (sync stores no other). The lossy spelling of a name that is
/// not UTF-8 (`v\u{FFFD}_step_1.pt` for `v\xff_step_1.pt`) may be another file's key, and
/// that file's confirmations are not this one's.
pub fn has_ledger_key(path: &Path) -> bool {
    path.to_str().is_some()
}

/// `s` as text, exactly: each byte that is not UTF-8 is written as NUL and its three
/// decimal digits (NUL is the one character no file name holds), so two names that differ
/// only in such bytes never read the same, as their lossy spellings (U+FFFD) do.
fn exact_text(s: &std::ffi::OsStr) -> std::borrow::Cow<'_, str> {
    use std::os::unix::ffi::OsStrExt;
    if let Some(t) = s.to_str() {
        return t.into();
    }
    let mut out = String::new();
    for chunk in s.as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\0{b:03}"));
        }
    }
    out.into()
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
    let open = opts.check_open_files.then(|| open_under_roots(&roots));
    finish(workspace, cfg, roots, units, skipped, now, opts, open)
}

/// Files held open for writing on the filesystems of the roots, by device and inode
/// (from `/proc`).
pub fn open_under_roots(roots: &[RootDir]) -> openfiles::OpenFiles {
    let paths: Vec<&Path> = roots.iter().map(|r| r.path.as_path()).collect();
    openfiles::open_for_write(&paths)
}

/// Turn units found under the roots into an inventory: step, run, age, writing.
#[allow(clippy::too_many_arguments)]
pub fn finish(
    workspace: &Path,
    cfg: &CheckpointsConfig,
    roots: Vec<RootDir>,
    units: Vec<Unit>,
    skipped: Vec<Skipped>,
    now: SystemTime,
    opts: ScanOptions<'_>,
    open_files: Option<openfiles::OpenFiles>,
) -> Inventory {
    // `open_files`: what [`open_under_roots`] found (taken beside the walk by the caller).
    let open = open_files.filter(|_| opts.check_open_files);
    let prev: HashMap<&Path, u64> =
        opts.previous.map(|p| p.iter().map(|c| (c.path.as_path(), c.bytes)).collect()).unwrap_or_default();
    let settle = Duration::from_secs(cfg.settle_secs);
    let checkpoints: Vec<Checkpoint> = units
        .into_iter()
        .map(|u| {
            let path = u.path();
            // Exact, not lossy: two runs whose names differ only in bytes that are not
            // UTF-8 stay two runs, each keeping its newest.
            let name = u.rel_in_root.file_name().map(|n| exact_text(n).into_owned()).unwrap_or_default();
            let span = step_span(&name);
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
                && let Some(open) = &open
                && openfiles::holds_open(open, &path, u.dev, u.ino)
            {
                why = Some(WritingWhy::OpenForWrite);
            }
            Checkpoint {
                rel_path: rel_key(workspace, &path),
                path,
                kind: u.kind,
                step: span.as_ref().map(|(s, _)| *s),
                series: series_of(&rel_dir, &name, span.map(|(_, r)| r)),
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

/// Builds the inventory's units from a workspace walk done elsewhere (the usage scan), so
/// the workspace is read once. Sees what [`roots::scan_root`] sees: files matching the
/// patterns and `checkpoint-N` folders (summed) up to [`MAX_DEPTH`] below a root, links
/// reported and never entered.
pub struct WalkCollector {
    roots: Vec<RootDir>,
    by_rel: HashMap<PathBuf, usize>,
    files: crate::glob::GlobSet,
    hf: bool,
    pub units: Vec<Unit>,
    folders: HashMap<PathBuf, usize>,
    pub skipped: Vec<Skipped>,
}

fn st_time(sec: i64, nsec: i64) -> SystemTime {
    let n = nsec.clamp(0, 999_999_999) as u32;
    if sec >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(sec as u64, n)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::new(0, n)
    }
}

impl WalkCollector {
    /// `roots` must all be anchored at the walked workspace.
    pub fn new(cfg: &CheckpointsConfig, roots: Vec<RootDir>) -> Self {
        let by_rel = roots.iter().enumerate().map(|(i, r)| (r.rel.clone(), i)).collect();
        Self {
            roots,
            by_rel,
            files: roots::name_set(&cfg.patterns),
            hf: cfg.hf_folders,
            units: Vec::new(),
            folders: HashMap::new(),
            skipped: Vec::new(),
        }
    }

    pub fn into_parts(self) -> (Vec<RootDir>, Vec<Unit>, Vec<Skipped>) {
        (self.roots, self.units, self.skipped)
    }

    /// One folder's entries (`rel_dir` relative to the workspace).
    pub fn visit(&mut self, rel_dir: &Path, entries: &[(CString, Stat)]) {
        use std::os::unix::ffi::OsStrExt;
        let is = crate::disk::usage::is_type;
        // A workspace's state folder (this one's, or another workspace's below a root) is
        // never a place checkpoints are taken from.
        if roots::in_state_dir(rel_dir) {
            return;
        }
        // Inside a folder checkpoint: add to its totals.
        if let Some(&u) = rel_dir.ancestors().find_map(|a| self.folders.get(a)) {
            let unit = &mut self.units[u];
            for (_, st) in entries {
                unit.mtime = unit.mtime.max(st_time(st.st_mtime, st.st_mtime_nsec as i64));
                if is(st, FileType::Symlink) || is(st, FileType::Directory) {
                    continue;
                }
                unit.bytes += st.st_size as u64;
                if st.st_nlink <= 1 {
                    unit.freeable_bytes += st.st_blocks as u64 * 512;
                }
            }
            return;
        }
        let Some(&r) = rel_dir.ancestors().find_map(|a| self.by_rel.get(a)) else {
            return;
        };
        let root = &self.roots[r];
        let Ok(below) = rel_dir.strip_prefix(&root.rel) else { return };
        if below.components().count() >= MAX_DEPTH {
            return;
        }
        for (name, st) in entries {
            let name_os = std::ffi::OsStr::from_bytes(name.to_bytes());
            let rel_in_root = below.join(name_os);
            if is(st, FileType::Symlink) {
                self.skipped.push(Skipped {
                    path: root.path.join(&rel_in_root),
                    why: "symbolic link; never followed or deleted through".into(),
                });
            } else if is(st, FileType::Directory) {
                if name_os == roots::STATE_DIR {
                    self.skipped.push(Skipped {
                        path: root.path.join(&rel_in_root),
                        why: "opsconsole's own state (ledger, locks); never pruned".into(),
                    });
                } else if self.hf && HF_FOLDER_RE.is_match(&name_os.to_string_lossy()) {
                    self.folders.insert(rel_dir.join(name_os), self.units.len());
                    self.units.push(Unit {
                        root: root.clone(),
                        rel_in_root,
                        kind: UnitKind::Folder,
                        bytes: 0,
                        freeable_bytes: 0,
                        mtime: st_time(st.st_mtime, st.st_mtime_nsec as i64),
                        dev: st.st_dev,
                        ino: st.st_ino,
                    });
                }
            } else if is(st, FileType::RegularFile) && self.files.is_match(Path::new(name_os)) {
                self.units.push(Unit {
                    root: root.clone(),
                    rel_in_root,
                    kind: UnitKind::File,
                    bytes: st.st_size as u64,
                    freeable_bytes: if st.st_nlink > 1 { 0 } else { st.st_blocks as u64 * 512 },
                    mtime: st_time(st.st_mtime, st.st_mtime_nsec as i64),
                    dev: st.st_dev,
                    ino: st.st_ino,
                });
            }
        }
    }
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

    /// The regex the hand-written parser implements (ASCII names).
    fn oracle_step(name: &str) -> Option<u64> {
        let step = Regex::new(r"(?i)(?:^|[^a-z])(?:global_step|step|iter|it)[_=\-]?([0-9]+)").unwrap();
        let ckpt = Regex::new(r"(?i)(?:^|[^a-z])checkpoint[_\-]([0-9]+)").unwrap();
        let from = |re: &Regex| re.captures_iter(name).last().map(|c| c[1].parse::<u64>().ok());
        match from(&step) {
            Some(v) => v,
            None => from(&ckpt).flatten(),
        }
    }

    fn oracle_series(name: &str) -> String {
        let epoch = Regex::new(r"(?i)epoch[_=\-]?([0-9]+)").unwrap();
        match step_span(name) {
            Some((_, r)) => {
                let blanked = format!("{}#{}", &name[..r.start], &name[r.end..]);
                format!("d/{}", epoch.replace_all(&blanked, "epoch#"))
            }
            None => "d/*".into(),
        }
    }

    proptest::proptest! {
        #[test]
        fn the_step_parser_matches_its_regex(parts in proptest::collection::vec(proptest::sample::select(vec![
            "step", "STEP", "Step", "global_step", "iter", "it", "checkpoint", "epoch", "EPOCH", "_", "-", "=", ".",
            "pt", "v68", "1", "23", "900", "x", "a", "split", "99999999999999999999999",
        ]), 0..8)) {
            let name: String = parts.concat();
            proptest::prop_assert_eq!(parse_step(&name), oracle_step(&name), "{}", name);
            proptest::prop_assert_eq!(series_key(Path::new("d"), &name), oracle_series(&name), "{}", name);
        }
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
        let again = scan(
            w,
            &CheckpointsConfig::default(),
            now,
            ScanOptions { previous: Some(&inv.checkpoints), check_open_files: false },
        );
        assert_eq!(again.checkpoints[0].writing_why, Some(WritingWhy::SizeChanged));
    }
}

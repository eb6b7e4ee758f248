//! `r` / `opsconsole resume`: the checkpoint to resume training from, in the seed's order
//! — local disk (L1) first, then L2 (the seed's Drive), then L3 (the Hub) — newest step
//! first on each level, and only one that verifies.
//!
//! - **L1**: the checkpoints in the configured roots that belong to the experiment, newest
//!   step first. Each is verified in turn until one passes: every file's size and SHA-256
//!   against the sync ledger (when the ledger has it) and its structure (a `torch.save`
//!   zip must have its directory, a safetensors file must be as long as its header says;
//!   [`super::weights`]). One a process holds open for writing is skipped.
//! - A **corrupt** newest local checkpoint is restored from the first remote level that
//!   holds the same step (downloaded and verified), else the next step that verifies wins.
//! - **Nothing usable locally**: the newest checkpoint on L2, else on L3 (the seed's
//!   `vXX_latest.pt` counts: it ranks first on its level when it is newer than every
//!   stepped checkpoint there).
//!
//! A remote winner is downloaded into the checkpoint folder before it is offered
//! (resumable: an interrupted download continues its `.part`; verified by the remote's
//! checksum and by its structure). A corrupt local file in its way is kept aside as
//! `<name>.corrupt` (`.corrupt.1`, … when that exists), never overwritten; sync never
//! uploads such a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use serde::Serialize;

use super::experiment::Experiment;
use super::fetch::LevelRemote;
use super::weights::Format;
use super::{Progress, ProgressFn};
use crate::config::Config;
use crate::sync::remote::RemoteObject;

/// Options of a resume.
#[derive(Debug, Clone, Default)]
pub struct ResumeOptions {
    pub experiment: Option<String>,
}

/// Where one candidate stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Status {
    /// Verified: how.
    Verified { how: String },
    /// Failed verification (corrupt, truncated, a download that did not verify).
    Failed { why: String },
    /// Not a candidate (no step in its name, being written).
    Skipped { why: String },
    /// Not needed: a candidate before it won.
    NotChecked,
    /// Listed on a remote; not downloaded (not needed).
    Listed,
}

/// One checkpoint on one level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// `L1`, `L2`, `L3`.
    pub level: String,
    /// Workspace-relative path (absolute for a root outside the workspace); on a remote,
    /// its key (a file, or a `checkpoint-N` folder).
    pub key: String,
    pub step: Option<u64>,
    /// Named `…latest…` (the seed's `vXX_latest.pt`).
    pub latest: bool,
    pub files: usize,
    pub bytes: u64,
    pub modified_unix: Option<u64>,
    pub status: Status,
}

impl Candidate {
    /// `step 1200`, `latest`, or `no step`.
    pub fn step_text(&self) -> String {
        match (self.step, self.latest) {
            (Some(s), _) => format!("step {s}"),
            (None, true) => "latest".into(),
            (None, false) => "no step".into(),
        }
    }
}

/// One level's candidates, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LevelReport {
    pub level: String,
    /// Where it is (`local`, or the remote's description).
    pub place: String,
    /// Why the level could not be read (no remote configured, a listing that failed).
    pub error: Option<String>,
    pub candidates: Vec<Candidate>,
}

/// The checkpoint chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Winner {
    pub level: String,
    pub step: Option<u64>,
    /// The local path to resume from (absolute).
    pub path: String,
    /// The same, as shown (workspace-relative when inside it).
    pub shown: String,
    /// Downloaded from this level now.
    pub downloaded_from: Option<String>,
    /// Corrupt local files kept aside on the way (as shown).
    pub kept_aside: Vec<String>,
    /// Why this one, in words.
    pub why: String,
}

/// What resume found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResumeReport {
    pub experiment: String,
    pub levels: Vec<LevelReport>,
    pub winner: Option<Winner>,
    /// Worth knowing (a later level holds a newer step; untagged checkpoints counted).
    pub notes: Vec<String>,
}

impl ResumeReport {
    /// One line: the winner and why, or why there is none.
    pub fn headline(&self) -> String {
        match &self.winner {
            Some(w) => format!("resume {} from {} ({}): {}", self.experiment, w.shown, w.level, w.why),
            None => format!("no checkpoint of {} to resume from on L1, L2 or L3", self.experiment),
        }
    }
}

/// A checkpoint found on a level, with what is needed to check or fetch it.
#[derive(Debug, Clone)]
struct Found {
    cand: Candidate,
    /// Local files (L1), or remote objects (L2/L3).
    local_files: Vec<PathBuf>,
    objects: Vec<RemoteObject>,
    /// L1: held open for writing by a process.
    open_for_write: bool,
}

/// Is `name` the seed's `…latest` checkpoint (`v68_latest.pt`, `latest.ckpt`)?
fn is_latest(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).to_ascii_lowercase();
    stem == "latest" || stem.ends_with("_latest") || stem.ends_with("-latest")
}

/// Does the checkpoint at `rel` belong to the experiment? Under `experiments/<other>/` no;
/// a path component tagged with another `vNN` no; tagged with this experiment's, or not
/// tagged at all (a shared `checkpoints/checkpoint-500`), yes.
fn belongs(rel: &str, exp: &Experiment, experiments: &str) -> bool {
    let experiments = experiments.trim_end_matches('/');
    if let Some(rest) = rel.strip_prefix(&format!("{experiments}/")) {
        return rest.split('/').next() == Some(exp.name.as_str());
    }
    let mine = super::experiment::tag_of(&exp.name);
    for part in rel.split('/') {
        if let Some(tag) = super::experiment::tag_of(part) {
            // `v68_step_1200.pt`, `v68/`, `v68-latest.pt`: a tag is followed by a separator.
            let after = &part[tag.len()..];
            if after.is_empty() || after.starts_with(['_', '-', '.', '/']) {
                return mine.as_deref() == Some(tag.as_str());
            }
        }
    }
    true
}

/// Orders a level's candidates: stepped ones by step (newest first); a `latest` file first
/// when it is at least as new as the newest stepped one (or there is none), else after
/// them; files with no step last (skipped).
fn order(found: &mut [Found]) {
    let newest_stepped =
        found.iter().filter(|f| f.cand.step.is_some()).max_by_key(|f| f.cand.step).map(|f| f.cand.modified_unix);
    let rank = |f: &Found| -> (u8, u64, u64) {
        let m = f.cand.modified_unix.unwrap_or(0);
        match (f.cand.step, f.cand.latest) {
            (Some(s), _) => (1, s, m),
            (None, true) => {
                let first = match newest_stepped {
                    None => true,
                    Some(newest) => f.cand.modified_unix.is_some() && f.cand.modified_unix >= newest,
                };
                if first { (2, 0, m) } else { (0, 1, m) }
            }
            (None, false) => (0, 0, m),
        }
    };
    found.sort_by(|a, b| rank(b).cmp(&rank(a)).then_with(|| a.cand.key.cmp(&b.cand.key)));
    for f in found.iter_mut() {
        if f.cand.step.is_none() && !f.cand.latest {
            f.cand.status = Status::Skipped { why: "no step in its name: not a resume candidate".into() };
        }
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return };
    if meta.is_file() {
        out.push(path.to_path_buf());
    } else if meta.is_dir()
        && let Ok(rd) = std::fs::read_dir(path)
    {
        let mut v: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        v.sort();
        for p in v {
            collect_files(&p, out);
        }
    }
}

fn local_candidates(workspace: &Path, cfg: &Config, exp: &Experiment) -> Vec<Found> {
    let inv = crate::checkpoints::inventory::scan(
        workspace,
        &cfg.checkpoints,
        SystemTime::now(),
        crate::checkpoints::ScanOptions { previous: None, check_open_files: true },
    );
    let mut out: Vec<Found> = inv
        .checkpoints
        .into_iter()
        .filter(|c| belongs(&c.rel_path, exp, &cfg.paths.experiments))
        .map(|c| {
            let mut files = Vec::new();
            collect_files(&c.path, &mut files);
            files.retain(|f| !crate::sync::routing::is_kept_aside(&f.to_string_lossy()));
            let name = c.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Found {
                cand: Candidate {
                    level: "L1".into(),
                    key: c.rel_path.clone(),
                    step: c.step,
                    latest: c.step.is_none() && is_latest(&name),
                    files: files.len(),
                    bytes: c.bytes,
                    modified_unix: Some(crate::unixtime::secs(c.mtime)),
                    status: Status::NotChecked,
                },
                local_files: files,
                objects: Vec::new(),
                open_for_write: c.writing_why == Some(crate::checkpoints::WritingWhy::OpenForWrite),
            }
        })
        .collect();
    order(&mut out);
    out
}

fn remote_candidates(objects: Vec<RemoteObject>, level: &str, exp: &Experiment, cfg: &Config) -> Vec<Found> {
    let mut groups: BTreeMap<String, Vec<RemoteObject>> = BTreeMap::new();
    for o in objects {
        if crate::sync::routing::is_weights(&o.key) && !crate::sync::routing::is_kept_aside(&o.key) {
            groups.entry(crate::sync::hf::checkpoint_group(&o.key)).or_default().push(o);
        }
    }
    let mut out: Vec<Found> = groups
        .into_iter()
        .filter(|(g, _)| belongs(g, exp, &cfg.paths.experiments))
        .map(|(group, objs)| {
            let name = group.rsplit('/').next().unwrap_or(&group).to_string();
            let step = crate::sync::hf::group_step(&group);
            Found {
                cand: Candidate {
                    level: level.into(),
                    step,
                    latest: step.is_none() && is_latest(&name),
                    files: objs.len(),
                    bytes: objs.iter().map(|o| o.size).sum(),
                    modified_unix: objs.iter().filter_map(|o| o.modified_ms).max().map(|ms| (ms.max(0) / 1000) as u64),
                    status: Status::Listed,
                    key: group,
                },
                local_files: Vec::new(),
                objects: objs,
                open_for_write: false,
            }
        })
        .collect();
    order(&mut out);
    out
}

/// A size that differs from the ledger's, in words a person reads at a glance.
fn size_words(have: u64, want: u64) -> String {
    let b = crate::util::bytes;
    if have < want {
        let short = want - have;
        if short * 1000 < want {
            format!("truncated: {short} bytes short of the {} the sync ledger recorded", b(want))
        } else {
            format!("truncated: {} of the {} the sync ledger recorded", b(have), b(want))
        }
    } else {
        format!("{} bytes longer than the {} the sync ledger recorded", have - want, b(want))
    }
}

/// Verifies a local checkpoint: every file against the ledger (size, then SHA-256) when
/// the ledger has it, and the structure of every weights file.
fn verify_local(
    workspace: &Path,
    f: &Found,
    ledger: Option<&crate::sync::ledger::Ledger>,
    cancel: &AtomicBool,
    progress: ProgressFn<'_>,
) -> Result<String, String> {
    if f.local_files.is_empty() {
        return Err("no file in it".into());
    }
    let total: u64 = f.local_files.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let mut done = 0u64;
    let (mut in_ledger, mut structure, mut unknown) = (0usize, 0usize, 0usize);
    let many = f.local_files.len() > 1;
    for path in &f.local_files {
        let rel = crate::sync::routing::relative_key(workspace, path);
        let name = rel.clone().unwrap_or_else(|| path.display().to_string());
        let what = |w: String| if many { format!("{name}: {w}") } else { w };
        let meta = std::fs::metadata(path).map_err(|e| what(format!("cannot be read: {e}")))?;
        if let (Some(l), Some(rel)) = (ledger, &rel)
            && let Ok(Some(rec)) = l.file(rel)
        {
            if meta.len() != rec.size {
                return Err(what(size_words(meta.len(), rec.size)));
            }
            let (_, sha) = super::sha256_with_progress(path, cancel, &mut |n| {
                done += n;
                progress(Progress::Bytes { done, total, what: format!("verifying {name}") });
            })
            .map_err(|e| what(format!("cannot be read: {e}")))?;
            if sha != rec.sha256 {
                return Err(what(
                    "its SHA-256 differs from the sync ledger's: changed or damaged since it was hashed".into(),
                ));
            }
            in_ledger += 1;
        } else {
            done += meta.len();
        }
        if crate::sync::routing::is_weights(&name) {
            match super::weights::check(path) {
                Format::Whole(_) => structure += 1,
                Format::Broken(why) => return Err(what(why)),
                Format::Unknown => unknown += 1,
            }
        }
    }
    let n = f.local_files.len();
    Ok(match (in_ledger, structure, unknown) {
        (l, _, _) if l == n => "SHA-256 matches the sync ledger".to_string(),
        (0, s, 0) if s > 0 => "not in the sync ledger yet: its structure checked whole".to_string(),
        (0, 0, _) => "not in the sync ledger yet and of a format that cannot be checked: unverified".to_string(),
        (0, _, _) => "not in the sync ledger yet: structure checked where the format allows".to_string(),
        (l, _, _) => format!("{l} of {n} files match the sync ledger; the rest structure-checked"),
    })
}

/// Where a remote checkpoint goes on disk: where it was (its key) when that is inside a
/// checkpoint root, else into `paths.checkpoints` under its own name.
fn local_dest(workspace: &Path, cfg: &Config, key: &str) -> PathBuf {
    let (roots, _) = crate::checkpoints::roots::expand_roots(workspace, &cfg.checkpoints.roots);
    let at = workspace.join(key);
    let inside = roots.iter().any(|r| at.starts_with(&r.path));
    let under_configured = cfg
        .checkpoints
        .roots
        .iter()
        .filter(|r| !r.contains(['*', '?', '[']))
        .any(|r| at.starts_with(super::in_workspace(workspace, r)));
    if inside || under_configured {
        return at;
    }
    let name = key.rsplit('/').next().unwrap_or(key);
    super::in_workspace(workspace, &cfg.paths.checkpoints).join(name)
}

/// Downloads a remote checkpoint into place. Every file goes to `<dest>.resume.part`
/// first (its own `.part` beside it while it arrives, so an interrupted download
/// resumes), is verified, and only then moved into place; a different file in the way is
/// kept aside as `.corrupt`. Returns the local path and what was kept aside.
#[allow(clippy::too_many_arguments)]
fn fetch(
    rt: &tokio::runtime::Runtime,
    workspace: &Path,
    cfg: &Config,
    lr: &LevelRemote,
    f: &Found,
    cancel: &AtomicBool,
    progress: ProgressFn<'_>,
) -> Result<(PathBuf, Vec<String>), String> {
    let root = local_dest(workspace, cfg, &f.cand.key);
    let total: u64 = f.objects.iter().map(|o| o.size).sum();
    let mut base = 0u64;
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    for o in &f.objects {
        let inner = o.key.strip_prefix(&format!("{}/", f.cand.key)).unwrap_or("");
        let dest = if inner.is_empty() { root.clone() } else { root.join(inner) };
        let part = super::fetch::with_suffix(&dest, ".resume.part");
        if let Some(parent) = part.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        progress(Progress::Step(format!("downloading {} from {} ({})", o.key, lr.level, crate::util::bytes(o.size))));
        super::fetch::download(rt, lr.remote.as_ref(), &o.key, &part, o.size, cancel, &mut |done, _| {
            progress(Progress::Bytes { done: base + done, total, what: format!("downloading {}", o.key) })
        })
        .map_err(|e| format!("downloading {}: {}", o.key, e.reason()))?;
        base += o.size;
        if crate::sync::routing::is_weights(&o.key)
            && let Format::Broken(why) = super::weights::check(&part)
        {
            let _ = std::fs::remove_file(&part);
            return Err(format!("{} arrived with the remote's checksum but is {why}", o.key));
        }
        staged.push((part, dest));
    }
    let mut kept = Vec::new();
    for (part, dest) in staged {
        if std::fs::symlink_metadata(&dest).is_ok() {
            let same = match (crate::sync::hash::sha256_file(&part), crate::sync::hash::sha256_file(&dest)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            if same {
                let _ = std::fs::remove_file(&part);
                continue;
            }
            let aside = super::fetch::unique(&super::fetch::with_suffix(&dest, ".corrupt"));
            std::fs::rename(&dest, &aside).map_err(|e| format!("keeping {} aside: {e}", dest.display()))?;
            kept.push(super::shown(workspace, &aside));
        }
        std::fs::rename(&part, &dest).map_err(|e| format!("moving {} into place: {e}", dest.display()))?;
    }
    if let Some(parent) = root.parent()
        && let Ok(d) = std::fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok((root, kept))
}

/// Finds the checkpoint to resume from (downloading a remote winner into place). `Err`
/// only when the experiment cannot be found or the job cannot start.
pub fn plan(
    workspace: &Path,
    cfg: &Config,
    opts: &ResumeOptions,
    progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<ResumeReport, String> {
    let _marker = crate::joblock::hold(workspace, "resume").map_err(|e| format!("marking the resume job: {e}"))?;
    let exp = super::experiment::resolve(workspace, &cfg.paths.experiments, opts.experiment.as_deref())?;
    let mut notes = Vec::new();

    // L1: newest first, verified until one passes.
    progress(Progress::Step(format!("resume {}: local checkpoints", exp.name)));
    let mut local = local_candidates(workspace, cfg, &exp);
    let ledger = crate::sync::ledger::Ledger::open_for_reading(workspace).ok().map(|(l, _)| l);
    let mut best_local: Option<usize> = None;
    let mut corrupt: Vec<usize> = Vec::new();
    for (i, f) in local.iter_mut().enumerate() {
        if !matches!(f.cand.status, Status::NotChecked) {
            continue;
        }
        if f.open_for_write {
            f.cand.status = Status::Skipped { why: "a process holds it open for writing".into() };
            continue;
        }
        match verify_local(workspace, f, ledger.as_ref(), cancel, progress) {
            Ok(how) => {
                f.cand.status = Status::Verified { how };
                best_local = Some(i);
                break;
            }
            Err(why) => {
                f.cand.status = Status::Failed { why };
                corrupt.push(i);
            }
        }
    }
    drop(ledger);

    // L2, L3: listed.
    let rt = super::runtime()?;
    let mut remotes: Vec<(Option<LevelRemote>, LevelReport, Vec<Found>)> = Vec::new();
    for level in ["L2", "L3"] {
        match super::fetch::level_remote(workspace, cfg, level) {
            Ok(lr) => {
                progress(Progress::Step(format!("resume {}: listing {level} ({})", exp.name, lr.remote.describe())));
                let report =
                    LevelReport { level: level.into(), place: lr.remote.describe(), error: None, candidates: vec![] };
                match rt.block_on(lr.remote.list("")) {
                    Ok(objs) => {
                        let found = remote_candidates(objs, level, &exp, cfg);
                        remotes.push((Some(lr), report, found));
                    }
                    Err(e) => {
                        let report =
                            LevelReport { error: Some(format!("could not be listed: {}", e.reason())), ..report };
                        remotes.push((Some(lr), report, Vec::new()));
                    }
                }
            }
            Err(why) => remotes.push((
                None,
                LevelReport {
                    level: level.into(),
                    place: "not configured".into(),
                    error: Some(why),
                    candidates: vec![],
                },
                Vec::new(),
            )),
        }
    }

    let mut winner: Option<Winner> = None;
    let best_step = best_local.and_then(|i| local[i].cand.step);
    // A corrupt local checkpoint newer than the best local one: the same step from a remote.
    'restore: for &ci in &corrupt {
        let step = local[ci].cand.step;
        if step.is_none() || (best_local.is_some() && step <= best_step) {
            continue;
        }
        for (lr, _, found) in remotes.iter_mut() {
            let Some(lr) = lr.as_ref() else { continue };
            for f in found.iter_mut().filter(|f| f.cand.step == step) {
                match fetch(&rt, workspace, cfg, lr, f, cancel, progress) {
                    Ok((path, kept)) => {
                        f.cand.status =
                            Status::Verified { how: format!("downloaded from {}, checksum verified", lr.level) };
                        let why_local = match &local[ci].cand.status {
                            Status::Failed { why } => why.clone(),
                            _ => String::new(),
                        };
                        winner = Some(Winner {
                            level: lr.level.into(),
                            step,
                            shown: super::shown(workspace, &path),
                            path: path.to_string_lossy().into_owned(),
                            downloaded_from: Some(lr.level.into()),
                            kept_aside: kept,
                            why: format!(
                                "the local copy of step {} failed verification ({why_local}); restored from {} and verified",
                                step.unwrap_or(0),
                                lr.level
                            ),
                        });
                        break 'restore;
                    }
                    Err(why) => f.cand.status = Status::Failed { why },
                }
            }
        }
    }
    if winner.is_none()
        && let Some(i) = best_local
    {
        let c = &local[i].cand;
        let newer_corrupt = corrupt.iter().filter(|&&ci| local[ci].cand.step > c.step).count();
        let why = if newer_corrupt > 0 {
            format!(
                "the newest local checkpoint that verifies; {newer_corrupt} newer failed verification and no remote holds their step"
            )
        } else {
            "the newest local checkpoint (local disk comes first)".to_string()
        };
        let path = if Path::new(&c.key).is_absolute() { PathBuf::from(&c.key) } else { workspace.join(&c.key) };
        winner = Some(Winner {
            level: "L1".into(),
            step: c.step,
            shown: super::shown(workspace, &path),
            path: path.to_string_lossy().into_owned(),
            downloaded_from: None,
            kept_aside: Vec::new(),
            why,
        });
    }
    // Nothing usable locally: L2's newest, else L3's.
    if winner.is_none() {
        'levels: for (lr, _, found) in remotes.iter_mut() {
            let Some(lr) = lr.as_ref() else { continue };
            for f in found.iter_mut().filter(|f| matches!(f.cand.status, Status::Listed)) {
                match fetch(&rt, workspace, cfg, lr, f, cancel, progress) {
                    Ok((path, kept)) => {
                        f.cand.status =
                            Status::Verified { how: format!("downloaded from {}, checksum verified", lr.level) };
                        let why = if local.is_empty() {
                            format!("no local checkpoint; the newest on {}", lr.level)
                        } else {
                            format!("no local checkpoint verifies; the newest on {} that does", lr.level)
                        };
                        winner = Some(Winner {
                            level: lr.level.into(),
                            step: f.cand.step,
                            shown: super::shown(workspace, &path),
                            path: path.to_string_lossy().into_owned(),
                            downloaded_from: Some(lr.level.into()),
                            kept_aside: kept,
                            why,
                        });
                        break 'levels;
                    }
                    Err(why) => f.cand.status = Status::Failed { why },
                }
            }
        }
    }
    // A later level holding a newer step than the winner is worth a word.
    if let Some(w) = &winner
        && let Some(ws) = w.step
    {
        for (_, report, found) in &remotes {
            if let Some(newer) = found.iter().filter_map(|f| f.cand.step).filter(|s| *s > ws).max()
                && report.level != w.level
            {
                notes.push(format!(
                    "{} holds step {newer}, newer than the winner (step {ws}); the seed's order puts {} first",
                    report.level, w.level
                ));
            }
        }
    }
    let untagged = local
        .iter()
        .filter(|f| super::experiment::tag_of(f.cand.key.rsplit('/').next().unwrap_or("")).is_none())
        .count();
    if untagged > 0 && super::experiment::tag_of(&exp.name).is_some() {
        notes.push(format!(
            "{untagged} local checkpoint{} carry no experiment tag (vNN) and were counted for {}",
            if untagged == 1 { "" } else { "s" },
            exp.name
        ));
    }
    let mut levels = vec![LevelReport {
        level: "L1".into(),
        place: "local disk".into(),
        error: None,
        candidates: local.into_iter().map(|f| f.cand).collect(),
    }];
    for (_, mut report, found) in remotes {
        report.candidates = found.into_iter().map(|f| f.cand).collect();
        levels.push(report);
    }
    Ok(ResumeReport { experiment: exp.name, levels, winner, notes })
}

/// The text `opsconsole resume` prints.
pub fn to_text(r: &ResumeReport) -> String {
    let mut out = String::new();
    for l in &r.levels {
        out.push_str(&format!("{} {}\n", l.level, l.place));
        if let Some(e) = &l.error {
            out.push_str(&format!("  ({e})\n"));
        } else if l.candidates.is_empty() {
            out.push_str("  (no checkpoint of this experiment)\n");
        }
        for c in &l.candidates {
            let state = match &c.status {
                Status::Verified { how } => format!("✓ {how}"),
                Status::Failed { why } => format!("✗ {why}"),
                Status::Skipped { why } => format!("- {why}"),
                Status::NotChecked => "  not checked (a newer one won)".into(),
                Status::Listed => "  listed".into(),
            };
            out.push_str(&format!(
                "  {:<11} {:>9}  {}  {}\n",
                c.step_text(),
                crate::util::bytes(c.bytes),
                crate::util::printable(&c.key),
                state
            ));
        }
    }
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    match &r.winner {
        Some(w) => {
            for k in &w.kept_aside {
                out.push_str(&format!("kept the damaged copy aside as {k}\n"));
            }
            out.push_str(&format!("winner: {} ({}, {})\n  {}\n", w.shown, w.level, w.why, w.path));
        }
        None => out.push_str(&format!("{}\n", r.headline())),
    }
    out
}

/// Flags of `opsconsole resume`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResumeFlags {
    pub print_path: bool,
    pub json: bool,
    pub run: bool,
}

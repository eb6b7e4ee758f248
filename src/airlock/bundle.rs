//! `b` / `opsconsole bundle`: export exactly the committed code of an experiment as
//! `bundles/bundle-<exp>-<shortsha>.zip`, so the cluster never runs code that differs from
//! the repository.
//!
//! Refused, with every offending file listed, when `experiments/<exp>/`, the requirements
//! file or an extra path has uncommitted changes (modified, staged, untracked, deleted),
//! when HEAD is not a commit, when a file to bundle is missing, a link or a submodule, and
//! when any file to bundle is a secret (`crate::secrets`, name and whole contents).
//!
//! The archive holds the files HEAD holds under `experiments/<exp>/models/` and
//! `experiments/<exp>/train.py`, the requirements file, `frozen_requirements.txt` when
//! present, the configured extra paths, and `MANIFEST.json` (commit, branch, clean, host,
//! each file's size and SHA-256). Entries are sorted, dated 1980-01-01 00:00:00, with
//! permissions 0644 (0755 for files git records as executable) and no other metadata, so
//! the same commit gives the same bytes; the build time lives only in the sidecar
//! `bundles/bundle-<exp>-<shortsha>.json`. The zip is written to a hidden `.partial` name
//! and renamed when complete and checked, so an interrupted bundle never leaves a file
//! under the final name. Then it is queued on L2 (it shows in the Uploads panel).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::git::{self, Change, GitError};
use super::{Progress, ProgressFn};
use crate::config::Config;
use crate::secrets::SecretKind;

/// The folder bundles are written to, under the workspace.
pub const BUNDLES_DIR: &str = "bundles";

/// What to bundle.
#[derive(Debug, Clone, Default)]
pub struct BundleOptions {
    /// The experiment's name; `None`: the newest.
    pub experiment: Option<String>,
    /// Queue the finished bundle on L2.
    pub upload: bool,
}

/// One file of a bundle, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// `MANIFEST.json` inside the zip. Nothing in it changes between two builds of the same
/// commit on the same host (the build time is in the sidecar only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// The manifest's format version.
    pub format: u32,
    pub experiment: String,
    pub commit: String,
    pub branch: Option<String>,
    /// Always true: a bundle is only built from a clean tree.
    pub clean: bool,
    pub host: String,
    pub files: Vec<ManifestFile>,
}

/// What is wrong, for one path (or for the whole bundle when `path` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: Option<String>,
    pub kind: ProblemKind,
    /// In words, never a secret's value.
    pub why: String,
}

/// The kind of a [`Problem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "detail")]
pub enum ProblemKind {
    /// The experiment, the repository or HEAD.
    Setup,
    /// Uncommitted changes.
    Uncommitted(Change),
    /// A secret by name or contents.
    Secret(SecretKind),
    /// A path the bundle needs is not in the commit, or not checked out.
    Missing,
    /// A link or a submodule: a bundle holds files only.
    NotAFile,
}

/// A bundle that was not built, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub experiment: Option<String>,
    pub commit: Option<String>,
    pub problems: Vec<Problem>,
}

impl Refusal {
    fn setup(experiment: Option<String>, why: impl Into<String>) -> Self {
        Self {
            experiment,
            commit: None,
            problems: vec![Problem { path: None, kind: ProblemKind::Setup, why: why.into() }],
        }
    }

    /// One line: what to do first.
    pub fn headline(&self) -> String {
        let n = self.problems.len();
        let first = &self.problems[0];
        let files = self.problems.iter().filter(|p| p.path.is_some()).count();
        match first.kind {
            ProblemKind::Setup => first.why.clone(),
            ProblemKind::Uncommitted(_) => format!(
                "not bundled: {files} file{} with uncommitted changes (commit or stash them first)",
                if files == 1 { "" } else { "s" }
            ),
            ProblemKind::Secret(_) if n == 1 => format!(
                "not bundled: {} is a secret ({}); remove it from the commit",
                first.path.as_deref().unwrap_or("a file"),
                first.why
            ),
            ProblemKind::Secret(_) => format!("not bundled: {n} secrets among the files; remove them from the commit"),
            _ => format!("not bundled: {n} problem{} (listed)", if n == 1 { "" } else { "s" }),
        }
    }
}

/// Where the finished bundle went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Upload {
    /// Queued on L2 in the ledger; `engine`: the pid of the sync engine that takes it now
    /// (a daemon, or the console's own: then `own`), none when no engine runs.
    Queued { level: String, remote: String, engine: Option<u32>, own: bool },
    /// `--no-upload`.
    NotRequested,
    /// Could not be queued, in words.
    NotQueued { why: String },
}

/// A built bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Built {
    pub experiment: String,
    /// Workspace-relative path of the zip.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Workspace-relative path of the sidecar (the manifest with `created`).
    pub sidecar: String,
    pub created: String,
    pub manifest: Manifest,
    pub warnings: Vec<String>,
    pub upload: Upload,
}

/// The answer of [`build`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    Built(Box<Built>),
    Refused(Refusal),
}

/// The sidecar next to the zip: the manifest plus the build time and the zip's own hash.
#[derive(Serialize)]
struct Sidecar<'a> {
    #[serde(flatten)]
    manifest: &'a Manifest,
    created: &'a str,
    bundle: SidecarBundle<'a>,
    tool: String,
}

#[derive(Serialize)]
struct SidecarBundle<'a> {
    path: &'a str,
    size: u64,
    sha256: &'a str,
}

/// One file to put in the zip.
struct Entry {
    rel: String,
    abs: PathBuf,
    executable: bool,
}

/// Removes a temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn git_refusal(experiment: &str, e: GitError) -> Refusal {
    Refusal::setup(Some(experiment.to_string()), e.to_string())
}

/// Builds the bundle of an experiment (and queues it on L2 when asked). `Err` is an I/O
/// failure while writing; everything the user can fix is a [`Refusal`]. The job marker
/// `bundle` is held while it runs.
pub fn build(
    workspace: &Path,
    cfg: &Config,
    opts: &BundleOptions,
    progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<Outcome, String> {
    let _marker = crate::joblock::hold(workspace, "bundle").map_err(|e| format!("marking the bundle job: {e}"))?;
    let exp = match super::experiment::resolve(workspace, &cfg.paths.experiments, opts.experiment.as_deref()) {
        Ok(e) => e,
        Err(why) => return Ok(Outcome::Refused(Refusal::setup(opts.experiment.clone(), why))),
    };
    progress(Progress::Step(format!("bundle {}: checking git", exp.name)));
    let head = match git::head(workspace) {
        Ok(h) => h,
        Err(e) => return Ok(Outcome::Refused(git_refusal(&exp.name, e))),
    };
    let requirements = cfg.checklist.requirements_file.clone();
    let frozen = cfg.checklist.frozen_requirements_file.clone();
    let extras: Vec<String> = cfg
        .bundle
        .extra_paths
        .iter()
        .map(|p| super::expand(p, &cfg.paths.experiments, &exp.name).trim_end_matches('/').to_string())
        .collect();
    let frozen_tracked = git::tracked(workspace, &frozen).unwrap_or(false);
    // Clean: the whole experiment folder, the requirements, the extras (and the frozen
    // requirements when git tracks them: then they are part of the commit too).
    let mut clean_paths = vec![format!("{}/", exp.rel), requirements.clone()];
    clean_paths.extend(extras.iter().cloned());
    if frozen_tracked {
        clean_paths.push(frozen.clone());
    }
    let dirty = match git::changes(workspace, &clean_paths) {
        Ok(d) => d,
        Err(e) => return Ok(Outcome::Refused(git_refusal(&exp.name, e))),
    };
    if !dirty.is_empty() {
        let problems = dirty
            .into_iter()
            .map(|d| Problem {
                why: d.change.words().to_string(),
                path: Some(d.path),
                kind: ProblemKind::Uncommitted(d.change),
            })
            .collect();
        return Ok(Outcome::Refused(Refusal { experiment: Some(exp.name), commit: Some(head.commit), problems }));
    }

    // What HEAD holds under the bundled paths.
    let models = format!("{}/models", exp.rel);
    let train = format!("{}/train.py", exp.rel);
    let mut wanted = vec![models.clone(), train.clone(), requirements.clone()];
    wanted.extend(extras.iter().cloned());
    if frozen_tracked {
        wanted.push(frozen.clone());
    }
    let tree = match git::tree_files(workspace, &wanted) {
        Ok(t) => t,
        Err(e) => return Ok(Outcome::Refused(git_refusal(&exp.name, e))),
    };
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let under = |p: &str, root: &str| p == root || p.starts_with(&format!("{root}/"));
    for (want, required) in [(&train, true), (&requirements, true), (&models, false)] {
        if !tree.iter().any(|f| under(&f.path, want)) {
            if required {
                problems.push(Problem {
                    path: Some(want.clone()),
                    kind: ProblemKind::Missing,
                    why: format!("not in commit {} (the cluster needs it)", head.short),
                });
            } else {
                warnings.push(format!("{want}/ is not in commit {}: the bundle has no models folder", head.short));
            }
        }
    }
    for x in &extras {
        if !tree.iter().any(|f| under(&f.path, x)) {
            problems.push(Problem {
                path: Some(x.clone()),
                kind: ProblemKind::Missing,
                why: format!("bundle.extra_paths names it, and it is not in commit {}", head.short),
            });
        }
    }
    let mut entries: Vec<Entry> = Vec::new();
    for f in &tree {
        match f.mode.as_str() {
            "120000" => problems.push(Problem {
                path: Some(f.path.clone()),
                kind: ProblemKind::NotAFile,
                why: "a symbolic link: a bundle holds files only (commit the file itself)".into(),
            }),
            "160000" => problems.push(Problem {
                path: Some(f.path.clone()),
                kind: ProblemKind::NotAFile,
                why: "a git submodule: a bundle holds files only".into(),
            }),
            mode => {
                let abs = workspace.join(&f.path);
                match std::fs::symlink_metadata(&abs) {
                    Ok(m) if m.is_file() => {
                        entries.push(Entry { rel: f.path.clone(), abs, executable: mode == "100755" })
                    }
                    _ => problems.push(Problem {
                        path: Some(f.path.clone()),
                        kind: ProblemKind::Missing,
                        why: "in the commit but not in the work tree (a sparse checkout?)".into(),
                    }),
                }
            }
        }
    }
    // The frozen requirements: from the work tree when git does not track them.
    let frozen_abs = super::in_workspace(workspace, &frozen);
    let req_abs = super::in_workspace(workspace, &requirements);
    match std::fs::symlink_metadata(&frozen_abs) {
        Ok(m) if m.is_file() => {
            if !frozen_tracked {
                entries.push(Entry { rel: frozen.clone(), abs: frozen_abs.clone(), executable: false });
            }
            let older = match (m.modified(), std::fs::metadata(&req_abs).and_then(|r| r.modified())) {
                (Ok(f), Ok(r)) => f < r,
                _ => false,
            };
            if older {
                warnings.push(format!(
                    "{frozen} is older than {requirements}: run `opsconsole freeze` so it lists what is installed now"
                ));
            }
        }
        _ => warnings.push(format!(
            "no {frozen}: run `opsconsole freeze` so the cluster can install the exact versions used here"
        )),
    }
    entries.sort_by(|a, b| a.rel.cmp(&b.rel));
    entries.dedup_by(|a, b| a.rel == b.rel);
    // A bundle goes to tier 2: was it tried on tier 1 first?
    warnings.extend(crate::rules::tier::bundle_warning(workspace, cfg, &exp.name));

    // Secrets never leave the machine: name and whole contents of every file.
    progress(Progress::Step(format!("bundle {}: scanning {} files for secrets", exp.name, entries.len())));
    for e in &entries {
        if let Some(f) = crate::secrets::check_name(&e.rel).or_else(|| crate::secrets::check_whole_file(&e.abs)) {
            problems.push(Problem { path: Some(e.rel.clone()), kind: ProblemKind::Secret(f.kind), why: f.why });
        }
    }
    if !problems.is_empty() {
        return Ok(Outcome::Refused(Refusal { experiment: Some(exp.name), commit: Some(head.commit), problems }));
    }

    // Hash pass: the manifest comes first in the archive.
    let total: u64 = entries.iter().filter_map(|e| std::fs::metadata(&e.abs).ok()).map(|m| m.len()).sum();
    let mut files = Vec::new();
    let mut done = 0u64;
    for e in &entries {
        let (size, sha) = super::sha256_with_progress(&e.abs, cancel, &mut |n| {
            done += n;
            progress(Progress::Bytes { done, total, what: format!("hashing {}", e.rel) });
        })
        .map_err(|err| format!("reading {}: {err}", e.rel))?;
        files.push(ManifestFile { path: e.rel.clone(), size, sha256: sha });
    }
    let host = crate::workspace::HostInfo::current().hostname;
    let manifest = Manifest {
        format: 1,
        experiment: exp.name.clone(),
        commit: head.commit.clone(),
        branch: head.branch.clone(),
        clean: true,
        host,
        files,
    };

    // Write beside, then rename.
    let dir = workspace.join(BUNDLES_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {BUNDLES_DIR}/: {e}"))?;
    clean_stale_partials(workspace, &dir);
    let name = format!("bundle-{}-{}", exp.name, head.short);
    let final_path = dir.join(format!("{name}.zip"));
    let temp = dir.join(format!(".{name}.zip.partial"));
    let guard = TempGuard(Some(temp.clone()));
    progress(Progress::Step(format!("bundle {}: writing {BUNDLES_DIR}/{name}.zip", exp.name)));
    let mut written = 0u64;
    write_zip(&temp, &manifest, &entries, cancel, &mut |n, what| {
        written += n;
        progress(Progress::Bytes { done: written, total, what: format!("writing {what}") });
    })?;

    // Nothing may have changed meanwhile: the same commit, still clean.
    progress(Progress::Step(format!("bundle {}: checking git again", exp.name)));
    let again = git::head(workspace).map_err(|e| e.to_string())?;
    let dirty = git::changes(workspace, &clean_paths).map_err(|e| e.to_string())?;
    if again.commit != head.commit || !dirty.is_empty() {
        let mut problems: Vec<Problem> = dirty
            .into_iter()
            .map(|d| Problem {
                why: format!("{} (changed while the bundle was written)", d.change.words()),
                path: Some(d.path),
                kind: ProblemKind::Uncommitted(d.change),
            })
            .collect();
        if again.commit != head.commit {
            problems.insert(
                0,
                Problem {
                    path: None,
                    kind: ProblemKind::Setup,
                    why: format!(
                        "HEAD moved from {} to {} while the bundle was written; bundle again",
                        head.short, again.short
                    ),
                },
            );
        }
        return Ok(Outcome::Refused(Refusal { experiment: Some(exp.name), commit: Some(head.commit), problems }));
    }
    std::fs::rename(&temp, &final_path).map_err(|e| format!("renaming the bundle into place: {e}"))?;
    let mut guard = guard;
    guard.0 = None;
    sync_dir(&dir);

    let digests = crate::sync::hash::digest_prefix(
        &final_path,
        std::fs::metadata(&final_path).map_err(|e| format!("reading the bundle: {e}"))?.len(),
        true, // L2 may be Drive, which verifies by MD5; a bundle is small
    )
    .map_err(|e| format!("hashing the bundle: {e}"))?;
    let meta = std::fs::metadata(&final_path).map_err(|e| format!("reading the bundle: {e}"))?;
    let rel = format!("{BUNDLES_DIR}/{name}.zip");
    let created = super::rfc3339_utc(SystemTime::now());
    let sidecar_rel = format!("{BUNDLES_DIR}/{name}.json");
    let sidecar = Sidecar {
        manifest: &manifest,
        created: &created,
        bundle: SidecarBundle { path: &rel, size: meta.len(), sha256: &digests.sha256 },
        tool: format!("opsconsole {}", env!("CARGO_PKG_VERSION")),
    };
    let text = serde_json::to_string_pretty(&sidecar).map_err(|e| e.to_string())? + "\n";
    write_atomic(&workspace.join(&sidecar_rel), text.as_bytes()).map_err(|e| format!("writing {sidecar_rel}: {e}"))?;

    let upload = if opts.upload {
        progress(Progress::Step(format!("bundle {}: queueing on L2", exp.name)));
        queue_on_l2(workspace, cfg, &rel, &meta, &digests)
    } else {
        Upload::NotRequested
    };
    Ok(Outcome::Built(Box::new(Built {
        experiment: exp.name,
        path: rel,
        size: meta.len(),
        sha256: digests.sha256,
        sidecar: sidecar_rel,
        created,
        manifest,
        warnings,
        upload,
    })))
}

/// Removes `.partial` files a killed bundle left, unless another bundle job runs now.
fn clean_stale_partials(workspace: &Path, dir: &Path) {
    let me = std::process::id();
    let others = crate::joblock::running(workspace).into_iter().filter(|(k, pid)| k == "bundle" && *pid != me).count();
    let mine = crate::joblock::running(workspace).into_iter().filter(|(k, pid)| k == "bundle" && *pid == me).count();
    if others > 0 || mine > 1 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(".bundle-") && n.ends_with(".zip.partial") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".opsconsole-").suffix(".tmp").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
}

const CHUNK: usize = 1 << 20;

/// The options of every entry: deflate, the DOS epoch, fixed permissions, Unix.
fn entry_options(executable: bool, size: u64) -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(zip::DateTime::default())
        .system(zip::System::Unix)
        .unix_permissions(if executable { 0o755 } else { 0o644 })
        .large_file(size >= u32::MAX as u64)
}

/// The manifest as it is stored in the zip (pretty JSON, files sorted).
pub fn manifest_json(m: &Manifest) -> String {
    serde_json::to_string_pretty(m).unwrap_or_default() + "\n"
}

fn write_zip(
    temp: &Path,
    manifest: &Manifest,
    entries: &[Entry],
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(u64, &str),
) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .create(true)
        .truncate(true)
        .open(temp)
        .map_err(|e| format!("creating {}: {e}", temp.display()))?;
    let mut zw = zip::ZipWriter::new(file);
    let zerr = |e: zip::result::ZipError| format!("writing the bundle: {e}");
    let manifest_text = manifest_json(manifest);
    // Sorted by name, the manifest with the rest ("MANIFEST.json" sorts first).
    let mut names: Vec<(&str, Option<&Entry>)> = entries.iter().map(|e| (e.rel.as_str(), Some(e))).collect();
    names.push(("MANIFEST.json", None));
    names.sort_by(|a, b| a.0.cmp(b.0));
    let mut buf = vec![0u8; CHUNK];
    for (name, entry) in names {
        match entry {
            None => {
                zw.start_file(name, entry_options(false, manifest_text.len() as u64)).map_err(zerr)?;
                zw.write_all(manifest_text.as_bytes()).map_err(|e| format!("writing the bundle: {e}"))?;
            }
            Some(e) => {
                let want = manifest.files.iter().find(|f| f.path == e.rel).ok_or("a file left the manifest")?;
                zw.start_file(name, entry_options(e.executable, want.size)).map_err(zerr)?;
                let mut f = crate::util::open_regular(&e.abs).map_err(|err| format!("reading {}: {err}", e.rel))?;
                let mut sha = Sha256::new();
                let mut size = 0u64;
                loop {
                    if cancel.load(Ordering::Relaxed) {
                        return Err("cancelled".into());
                    }
                    let n = match f.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(err) => return Err(format!("reading {}: {err}", e.rel)),
                    };
                    sha.update(&buf[..n]);
                    size += n as u64;
                    zw.write_all(&buf[..n]).map_err(|err| format!("writing the bundle: {err}"))?;
                    progress(n as u64, &e.rel);
                }
                if size != want.size || crate::sync::hash::hex(&sha.finalize()) != want.sha256 {
                    return Err(format!("{} changed while the bundle was written; bundle again", e.rel));
                }
            }
        }
    }
    let file = zw.finish().map_err(zerr)?;
    file.sync_all().map_err(|e| format!("writing the bundle: {e}"))?;
    Ok(())
}

/// Queues the bundle on L2 in the ledger (explicitly: bundles are not routed by globs, so
/// `--no-upload` really uploads nothing) and asks the running engine for an L2 pass.
fn queue_on_l2(
    workspace: &Path,
    cfg: &Config,
    rel: &str,
    meta: &std::fs::Metadata,
    digests: &crate::sync::hash::Digests,
) -> Upload {
    let level = &cfg.sync.l2;
    if !level.enabled {
        return Upload::NotQueued { why: "L2 is disabled ([sync.l2] enabled = false)".into() };
    }
    if !cfg.remotes.contains_key(&level.remote) {
        return Upload::NotQueued {
            why: format!(
                "L2's remote '{}' is not configured: add [remotes.{}] to opsconsole.toml",
                level.remote, level.remote
            ),
        };
    }
    let max = level.max_file_mb * 1024 * 1024;
    if level.max_file_mb > 0 && meta.len() > max {
        return Upload::NotQueued {
            why: format!(
                "{} is larger than L2's max_file_mb ({} MB): raise [sync.l2] max_file_mb to upload it",
                crate::util::bytes(meta.len()),
                level.max_file_mb
            ),
        };
    }
    let mut ledger = match crate::sync::ledger::Ledger::open(workspace) {
        Ok(l) => l,
        Err(e) => return Upload::NotQueued { why: format!("the sync ledger cannot be written: {e}") },
    };
    let now = crate::unixtime::now_ms();
    let mtime = crate::sync::ledger::mtime_ns(meta);
    if let Err(e) = ledger.track(
        rel,
        meta.len(),
        mtime,
        &digests.sha256,
        digests.md5.as_deref(),
        &[("L2", level.remote.as_str())],
        now,
    ) {
        return Upload::NotQueued { why: format!("the sync ledger cannot be written: {e}") };
    }
    drop(ledger);
    // An engine running now (the console's or a daemon) takes the request within a
    // quarter second; without one the bundle waits in the queue for the next sync.
    let engine = crate::sync::lock::holder(workspace);
    if engine.is_some()
        && let Err(e) = crate::sync::Command::SyncNow(Some("L2".into())).request(workspace)
    {
        tracing::warn!("asking the sync engine for an L2 pass: {e}");
    }
    let own = engine == Some(std::process::id());
    Upload::Queued { level: "L2".into(), remote: level.remote.clone(), engine, own }
}

/// The text `opsconsole bundle` prints.
pub fn to_text(outcome: &Outcome) -> String {
    let mut out = String::new();
    match outcome {
        Outcome::Refused(r) => {
            out.push_str(&format!("{}\n", r.headline()));
            for p in &r.problems {
                match &p.path {
                    Some(path) => out.push_str(&format!("  {:<44} {}\n", crate::util::printable(path), p.why)),
                    None if r.problems.len() > 1 => out.push_str(&format!("  {}\n", p.why)),
                    None => {}
                }
            }
        }
        Outcome::Built(b) => {
            out.push_str(&format!(
                "bundled {} at {} ({} files): {} {}\n",
                b.experiment,
                &b.manifest.commit[..b.manifest.commit.len().min(12)],
                b.manifest.files.len(),
                b.path,
                crate::util::bytes(b.size)
            ));
            out.push_str(&format!("  sha256 {}\n  manifest {}\n", b.sha256, b.sidecar));
            for w in &b.warnings {
                out.push_str(&format!("  warning: {w}\n"));
            }
            match &b.upload {
                Upload::Queued { remote, engine: Some(pid), .. } => out.push_str(&format!(
                    "  queued on L2 (remote '{remote}'); the sync daemon (pid {pid}) uploads it now\n"
                )),
                Upload::Queued { remote, engine: None, .. } => out.push_str(&format!(
                    "  queued on L2 (remote '{remote}'); no sync engine runs: `opsconsole sync --once` uploads it\n"
                )),
                Upload::NotRequested => out.push_str("  not uploaded (--no-upload)\n"),
                Upload::NotQueued { why } => out.push_str(&format!("  NOT queued for upload: {why}\n")),
            }
        }
    }
    out
}

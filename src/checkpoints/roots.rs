//! Turning configured root patterns into concrete folders, and walking them without ever
//! following a symbolic link.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use crate::glob::{Glob, GlobSet, Semantics};
use serde::Serialize;

use super::ser_path;

/// A concrete folder matched by a configured root pattern.
///
/// `anchor` is trusted as configured (the workspace for relative roots); every component of
/// `rel` was a real folder, not a link, when found, and is opened with `O_NOFOLLOW` again
/// before anything under it is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootDir {
    #[serde(serialize_with = "ser_path")]
    pub path: PathBuf,
    #[serde(skip)]
    pub anchor: PathBuf,
    #[serde(skip)]
    pub rel: PathBuf,
    /// The configured pattern this folder came from.
    pub pattern: String,
}

/// Something found under a root and left alone, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    #[serde(serialize_with = "ser_path")]
    pub path: PathBuf,
    pub why: String,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Expand root patterns into existing folders. Missing roots are silently absent (an
/// `experiments/*/checkpoints` that matches nothing is normal); a root that is a link is
/// reported in the second list and not used.
pub fn expand_roots(workspace: &Path, patterns: &[String]) -> (Vec<RootDir>, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = HashSet::new();
    for pat in patterns {
        let p = Path::new(pat);
        if p.components().any(|c| matches!(c, Component::ParentDir)) {
            continue;
        }
        let comps: Vec<String> = p
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        if comps.is_empty() {
            continue;
        }
        let (anchor, rest): (PathBuf, Vec<String>) = if p.is_absolute() {
            let first_glob = comps.iter().position(|c| has_glob(c));
            let split = first_glob.unwrap_or(comps.len() - 1);
            let mut a = PathBuf::from("/");
            for c in &comps[..split] {
                a.push(c);
            }
            (a, comps[split..].to_vec())
        } else {
            (workspace.to_path_buf(), comps)
        };
        let mut found = Vec::new();
        walk_pattern(&anchor, PathBuf::new(), &rest, &mut found, &mut skipped);
        for rel in found {
            let path = anchor.join(&rel);
            if seen.insert(path.clone()) {
                out.push(RootDir { path, anchor: anchor.clone(), rel, pattern: pat.clone() });
            }
        }
    }
    // A root nested inside another root would be scanned twice; keep the outer one.
    let all: Vec<PathBuf> = out.iter().map(|r| r.path.clone()).collect();
    out.retain(|r| !all.iter().any(|o| o != &r.path && r.path.starts_with(o)));
    (out, skipped)
}

fn walk_pattern(anchor: &Path, rel: PathBuf, rest: &[String], found: &mut Vec<PathBuf>, skipped: &mut Vec<Skipped>) {
    let Some((head, tail)) = rest.split_first() else {
        found.push(rel);
        return;
    };
    let here = anchor.join(&rel);
    let mut step = |name: OsString| {
        let next = rel.join(&name);
        let full = anchor.join(&next);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => skipped.push(Skipped {
                path: full,
                why: "is a symbolic link; not followed (configure its target as a root)".into(),
            }),
            Ok(m) if m.is_dir() => walk_pattern(anchor, next, tail, found, skipped),
            _ => {}
        }
    };
    if has_glob(head) {
        let Ok(m) = Glob::name(head) else { return };
        let Ok(rd) = fs::read_dir(&here) else { return };
        let mut names: Vec<OsString> =
            rd.filter_map(Result::ok).map(|e| e.file_name()).filter(|n| m.is_match(Path::new(n))).collect();
        names.sort();
        for n in names {
            step(n);
        }
    } else {
        step(OsString::from(head));
    }
}

/// Compile file-name patterns into one set of checkpoint-name globs
/// ([`Semantics::Name`]; invalid ones are dropped: `validate` names them).
pub fn name_set(patterns: &[String]) -> GlobSet {
    GlobSet::lenient(patterns, Semantics::Name)
}

/// Whether a unit is one file or a folder deleted as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    File,
    Folder,
}

/// A file or folder found under a root, with what deleting it means.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub root: RootDir,
    /// Path below the root.
    pub rel_in_root: PathBuf,
    pub kind: UnitKind,
    /// Apparent size in bytes (folders: sum of their files).
    pub bytes: u64,
    /// Bytes that deleting it gives back to the filesystem (allocated blocks of files with
    /// no other hard link).
    pub freeable_bytes: u64,
    /// Newest modification time of it or anything in it.
    pub mtime: SystemTime,
    pub dev: u64,
    pub ino: u64,
}

impl Unit {
    pub fn path(&self) -> PathBuf {
        self.root.path.join(&self.rel_in_root)
    }
}

/// What to collect while walking a root.
pub struct UnitMatcher<'a> {
    pub files: &'a GlobSet,
    /// Folders that are one unit each (Hugging Face `checkpoint-N`).
    pub folder_unit: Option<&'a regex::Regex>,
    pub max_depth: usize,
}

/// Walk one root for units, never following links. Links found are reported as skipped.
pub fn scan_root(root: &RootDir, m: &UnitMatcher<'_>, out: &mut Vec<Unit>, skipped: &mut Vec<Skipped>) {
    // The root itself must still be a real folder.
    match fs::symlink_metadata(&root.path) {
        Ok(md) if md.is_dir() && !md.file_type().is_symlink() => {}
        _ => return,
    }
    walk_units(root, PathBuf::new(), 0, m, out, skipped);
}

fn walk_units(
    root: &RootDir,
    rel: PathBuf,
    depth: usize,
    m: &UnitMatcher<'_>,
    out: &mut Vec<Unit>,
    skipped: &mut Vec<Skipped>,
) {
    let dir = root.path.join(&rel);
    let Ok(rd) = fs::read_dir(&dir) else { return };
    for e in rd.filter_map(Result::ok) {
        let Ok(ft) = e.file_type() else { continue };
        let name = e.file_name();
        let rel_child = rel.join(&name);
        if ft.is_symlink() {
            skipped.push(Skipped { path: e.path(), why: "symbolic link; never followed or deleted through".into() });
            continue;
        }
        if ft.is_dir() {
            let name_s = name.to_string_lossy();
            if m.folder_unit.is_some_and(|re| re.is_match(&name_s)) {
                let Ok(md) = e.metadata() else { continue };
                let mut t = Totals { bytes: 0, freeable: 0, mtime: md.modified().unwrap_or(SystemTime::UNIX_EPOCH) };
                sum_tree(&e.path(), &mut t);
                out.push(Unit {
                    root: root.clone(),
                    rel_in_root: rel_child,
                    kind: UnitKind::Folder,
                    bytes: t.bytes,
                    freeable_bytes: t.freeable,
                    mtime: t.mtime,
                    dev: md.dev(),
                    ino: md.ino(),
                });
            } else if depth + 1 < m.max_depth {
                walk_units(root, rel_child, depth + 1, m, out, skipped);
            }
        } else if ft.is_file() && m.files.is_match(Path::new(&name)) {
            let Ok(md) = e.metadata() else { continue };
            out.push(Unit {
                root: root.clone(),
                rel_in_root: rel_child,
                kind: UnitKind::File,
                bytes: md.len(),
                freeable_bytes: freeable(&md),
                mtime: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                dev: md.dev(),
                ino: md.ino(),
            });
        }
    }
}

fn freeable(md: &fs::Metadata) -> u64 {
    if md.nlink() > 1 { 0 } else { md.blocks() * 512 }
}

struct Totals {
    bytes: u64,
    freeable: u64,
    mtime: SystemTime,
}

fn sum_tree(dir: &Path, t: &mut Totals) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.filter_map(Result::ok) {
        let Ok(md) = e.metadata() else { continue };
        if let Ok(mt) = md.modified() {
            t.mtime = t.mtime.max(mt);
        }
        if md.file_type().is_symlink() {
            continue;
        }
        if md.is_dir() {
            sum_tree(&e.path(), t);
        } else {
            t.bytes += md.len();
            t.freeable += freeable(&md);
        }
    }
}

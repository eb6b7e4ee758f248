//! What a bundle needs from git, read through the `git` binary (as the checklist does):
//! HEAD's commit and branch, the state of the bundled paths (`git status --porcelain=v2`,
//! the format git keeps stable for scripts) and the files HEAD holds under them (`git
//! ls-tree`). The binary, not a library such as `gix`, so that "clean" means exactly what
//! `git status` tells the user: their config, `.gitignore` and `info/exclude`, clean and
//! smudge filters (Git LFS, line endings), worktrees and sparse checkouts, with no second
//! implementation to drift from it and no large crate to build.
//! `GIT_OPTIONAL_LOCKS=0` keeps it from taking the index lock while the user commits
//! beside it; `GIT_LITERAL_PATHSPECS=1` makes every path a path, never a pattern.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

const TIMEOUT: Duration = Duration::from_secs(60);

/// What is wrong with one path of the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Changed in the work tree, not staged.
    Modified,
    /// Staged but not committed.
    Staged,
    /// Staged, then changed again.
    StagedAndModified,
    /// Deleted (in the work tree or staged).
    Deleted,
    /// Not tracked by git (and not ignored).
    Untracked,
    /// A merge conflict.
    Conflict,
    /// Renamed or copied (staged).
    Renamed,
}

impl Change {
    /// A word or two, for narrow screens.
    pub fn short(self) -> &'static str {
        match self {
            Change::Modified => "modified",
            Change::Staged => "staged",
            Change::StagedAndModified => "staged, modified",
            Change::Deleted => "deleted",
            Change::Untracked => "untracked",
            Change::Conflict => "conflict",
            Change::Renamed => "renamed",
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Change::Modified => "modified, not committed",
            Change::Staged => "staged, not committed",
            Change::StagedAndModified => "staged and modified again, not committed",
            Change::Deleted => "deleted, not committed",
            Change::Untracked => "untracked (not in git)",
            Change::Conflict => "unresolved merge conflict",
            Change::Renamed => "renamed, not committed",
        }
    }
}

/// A path with uncommitted changes (workspace-relative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dirty {
    pub path: String,
    pub change: Change,
}

/// HEAD: the commit a bundle is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    /// Full object name.
    pub commit: String,
    /// `git rev-parse --short`.
    pub short: String,
    /// `None` when HEAD is detached.
    pub branch: Option<String>,
}

/// A file HEAD holds (workspace-relative path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    pub path: String,
    /// Git's mode: `100644`, `100755`, `120000` (a link), `160000` (a submodule).
    pub mode: String,
}

/// Why git could not answer, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitError {
    NotInstalled,
    NotARepository,
    /// HEAD names no commit (a branch with no commit yet).
    NoCommit,
    Failed(String),
}

impl std::fmt::Display for GitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitError::NotInstalled => {
                f.write_str("git is not installed (no `git` on PATH): a bundle is built from a commit")
            }
            GitError::NotARepository => f.write_str(
                "the workspace is not in a git repository: a bundle is built from a commit (git init, commit)",
            ),
            GitError::NoCommit => f.write_str("HEAD is not a commit (no commit on this branch yet): commit first"),
            GitError::Failed(e) => write!(f, "git failed: {e}"),
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_LITERAL_PATHSPECS", "1")
        .env("LC_ALL", "C")
        .env("GIT_TERMINAL_PROMPT", "0");
    let out = match crate::checklist::run::output(cmd, TIMEOUT) {
        Ok(o) => o,
        Err(crate::checklist::run::RunError::NotFound) => return Err(GitError::NotInstalled),
        Err(e) => return Err(GitError::Failed(e.to_string())),
    };
    if out.status.success() {
        return Ok(out.stdout);
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if err.contains("not a git repository") {
        return Err(GitError::NotARepository);
    }
    let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message").to_string();
    Err(GitError::Failed(first))
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).trim().to_string()
}

/// The workspace's folder inside the repository (`""` at its root, else `sub/dir/`).
pub fn prefix(workspace: &Path) -> Result<String, GitError> {
    Ok(text(git(workspace, &["rev-parse", "--show-prefix"])?))
}

/// HEAD's commit and branch.
pub fn head(workspace: &Path) -> Result<Head, GitError> {
    // `--verify -q` exits 1 without a word when HEAD names nothing (an unborn branch).
    let commit = match git(workspace, &["rev-parse", "--verify", "-q", "HEAD^{commit}"]) {
        Ok(b) => text(b),
        Err(GitError::Failed(_)) => {
            // Tell "not a repository" apart from "no commit yet".
            git(workspace, &["rev-parse", "--git-dir"])?;
            return Err(GitError::NoCommit);
        }
        Err(e) => return Err(e),
    };
    if commit.is_empty() {
        return Err(GitError::NoCommit);
    }
    let short = text(git(workspace, &["rev-parse", "--short", &commit])?);
    let branch = git(workspace, &["symbolic-ref", "--short", "-q", "HEAD"]).ok().map(text).filter(|b| !b.is_empty());
    Ok(Head { commit, short, branch })
}

/// Uncommitted changes under `paths` (workspace-relative), as `git status` sees them
/// (untracked files one by one; ignored files are not changes).
pub fn changes(workspace: &Path, paths: &[String]) -> Result<Vec<Dirty>, GitError> {
    let prefix = prefix(workspace)?;
    let mut args = vec!["status", "--porcelain=v2", "-z", "--untracked-files=all", "--"];
    args.extend(paths.iter().map(String::as_str));
    let raw = git(workspace, &args)?;
    Ok(parse_changes(&raw, &prefix))
}

/// Parses `git status --porcelain=v2 -z` (paths relative to the repository root; the
/// workspace's `prefix` is taken off).
pub fn parse_changes(raw: &[u8], prefix: &str) -> Vec<Dirty> {
    let strip = |p: &str| p.strip_prefix(prefix).unwrap_or(p).to_string();
    let mut out = Vec::new();
    let mut records = raw.split(|b| *b == 0).filter(|r| !r.is_empty());
    while let Some(rec) = records.next() {
        let t = String::from_utf8_lossy(rec);
        let kind = t.chars().next().unwrap_or(' ');
        match kind {
            '1' | '2' => {
                let xy: Vec<char> = t.get(2..4).unwrap_or("..").chars().collect();
                let (x, y) = (xy.first().copied().unwrap_or('.'), xy.get(1).copied().unwrap_or('.'));
                let path = if kind == '1' { t.splitn(9, ' ').nth(8) } else { t.splitn(10, ' ').nth(9) };
                if kind == '2' {
                    records.next(); // the original path
                }
                let change = if kind == '2' {
                    Change::Renamed
                } else if x == 'D' || y == 'D' {
                    Change::Deleted
                } else if x != '.' && y != '.' {
                    Change::StagedAndModified
                } else if x != '.' {
                    Change::Staged
                } else {
                    Change::Modified
                };
                if let Some(p) = path {
                    out.push(Dirty { path: strip(p), change });
                }
            }
            'u' => {
                if let Some(p) = t.splitn(11, ' ').nth(10) {
                    out.push(Dirty { path: strip(p), change: Change::Conflict });
                }
            }
            '?' => out.push(Dirty { path: strip(&t[2..]), change: Change::Untracked }),
            _ => {}
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The files HEAD holds under `paths` (workspace-relative), sorted.
pub fn tree_files(workspace: &Path, paths: &[String]) -> Result<Vec<TreeFile>, GitError> {
    let prefix = prefix(workspace)?;
    let mut args = vec!["ls-tree", "-r", "-z", "--full-name", "HEAD", "--"];
    args.extend(paths.iter().map(String::as_str));
    let raw = git(workspace, &args)?;
    let mut out = Vec::new();
    for rec in raw.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let t = String::from_utf8_lossy(rec);
        // `<mode> SP <type> SP <object> TAB <path>`
        let Some((meta, path)) = t.split_once('\t') else { continue };
        let mode = meta.split(' ').next().unwrap_or("").to_string();
        let path = path.strip_prefix(prefix.as_str()).unwrap_or(path).to_string();
        out.push(TreeFile { path, mode });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Is `path` (workspace-relative) tracked at HEAD?
pub fn tracked(workspace: &Path, path: &str) -> Result<bool, GitError> {
    Ok(!tree_files(workspace, &[path.to_string()])?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_v2_records_become_changes() {
        let raw = b"1 .M N... 100644 100644 100644 a a experiments/v1/train.py\0\
1 M. N... 100644 100644 100644 a b sub/requirements.txt\0\
1 MM N... 100644 100644 100644 a b sub/x.py\0\
1 .D N... 100644 100644 000000 a a sub/gone.py\0\
2 R. N... 100644 100644 100644 a a R100 sub/new.py\0sub/old.py\0\
u UU N... 100644 100644 100644 100644 a b c sub/conflict.py\0\
? sub/experiments/v1/notes.txt\0";
        let got = parse_changes(raw, "sub/");
        let by: Vec<(&str, Change)> = got.iter().map(|d| (d.path.as_str(), d.change)).collect();
        assert!(by.contains(&("experiments/v1/train.py", Change::Modified)));
        assert!(by.contains(&("requirements.txt", Change::Staged)));
        assert!(by.contains(&("x.py", Change::StagedAndModified)));
        assert!(by.contains(&("gone.py", Change::Deleted)));
        assert!(by.contains(&("new.py", Change::Renamed)));
        assert!(by.contains(&("conflict.py", Change::Conflict)));
        assert!(by.contains(&("experiments/v1/notes.txt", Change::Untracked)));
        assert_eq!(got.len(), 7);
    }
}

//! The git state of the workspace, read through the `git` binary: `git status
//! --porcelain=v2 --branch -z` (the format git keeps stable for scripts) for the work tree,
//! the branch and its upstream, and `git rev-list --branches --not --remotes` for commits
//! that are on no remote at all. The binary, not a library, so that the answer is exactly
//! what `git status` says to the user: their config (`safe.directory`, `core.fsmonitor`,
//! `status.showUntrackedFiles`, includes), worktrees, sparse checkouts and index formats,
//! with no second implementation to drift from it. `GIT_OPTIONAL_LOCKS=0` keeps the
//! status from taking the index lock while the user commits beside the console.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

/// What git says about the workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GitState {
    /// The checked-out branch; `None` when HEAD is detached.
    pub branch: Option<String>,
    /// `origin/main`, when the branch has one.
    pub upstream: Option<String>,
    /// The upstream is configured but its remote-tracking branch is gone.
    pub upstream_gone: bool,
    /// Commits on the branch that its upstream (as last fetched) does not have.
    pub ahead: u64,
    pub behind: u64,
    /// Tracked files changed (staged or not), and conflicts.
    pub changed: u64,
    pub untracked: u64,
    /// A few of the changed or untracked paths, to show.
    pub examples: Vec<String>,
    /// Commits on local branches that no remote-tracking branch contains (every branch).
    pub unpushed_anywhere: u64,
    /// Local branches holding such commits (at most 10 named).
    pub unpushed_branches: Vec<String>,
    /// The branch has no commit yet.
    pub unborn: bool,
}

/// Why git could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitError {
    NotInstalled,
    NotARepository,
    /// What git said (for example about `safe.directory`).
    Failed(String),
}

impl std::fmt::Display for GitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitError::NotInstalled => f.write_str("git is not installed (no `git` on PATH)"),
            GitError::NotARepository => f.write_str("the workspace is not in a git repository"),
            GitError::Failed(e) => write!(f, "git failed: {e}"),
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(20);

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).args(args).env("GIT_OPTIONAL_LOCKS", "0").env("LC_ALL", "C").env("GIT_TERMINAL_PROMPT", "0");
    let out = match super::run::output(cmd, TIMEOUT) {
        Ok(o) => o,
        Err(super::run::RunError::NotFound) => return Err(GitError::NotInstalled),
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

/// Reads the state of the repository holding `dir`.
pub fn read(dir: &Path) -> Result<GitState, GitError> {
    let raw = git(dir, &["status", "--porcelain=v2", "--branch", "-z"])?;
    let mut st = parse_status(&raw);
    let count = git(dir, &["rev-list", "--count", "--branches", "--not", "--remotes"])?;
    st.unpushed_anywhere = String::from_utf8_lossy(&count).trim().parse().unwrap_or(0);
    if st.unpushed_anywhere > 0 {
        let refs = git(dir, &["for-each-ref", "--format=%(refname:short)", "refs/heads"])?;
        for b in String::from_utf8_lossy(&refs).lines().filter(|l| !l.is_empty()).take(50) {
            let n = git(dir, &["rev-list", "--count", b, "--not", "--remotes", "--"])?;
            if String::from_utf8_lossy(&n).trim().parse::<u64>().unwrap_or(0) > 0 {
                st.unpushed_branches.push(b.to_string());
                if st.unpushed_branches.len() == 10 {
                    break;
                }
            }
        }
    }
    Ok(st)
}

/// Parses `git status --porcelain=v2 --branch -z`.
pub fn parse_status(raw: &[u8]) -> GitState {
    let mut st = GitState::default();
    let mut ab_seen = false;
    let mut records = raw.split(|b| *b == 0).filter(|r| !r.is_empty());
    while let Some(rec) = records.next() {
        let text = String::from_utf8_lossy(rec);
        if let Some(h) = text.strip_prefix("# ") {
            let (key, val) = h.split_once(' ').unwrap_or((h, ""));
            match key {
                "branch.oid" => st.unborn = val == "(initial)",
                "branch.head" => st.branch = (val != "(detached)").then(|| val.to_string()),
                "branch.upstream" => st.upstream = Some(val.to_string()),
                "branch.ab" => {
                    ab_seen = true;
                    for part in val.split_whitespace() {
                        if let Some(n) = part.strip_prefix('+') {
                            st.ahead = n.parse().unwrap_or(0);
                        } else if let Some(n) = part.strip_prefix('-') {
                            st.behind = n.parse().unwrap_or(0);
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        let kind = text.chars().next().unwrap_or(' ');
        let path = match kind {
            // `1 XY sub mH mI mW hH hI path`
            '1' => text.splitn(9, ' ').nth(8).map(str::to_string),
            // `2 XY sub mH mI mW hH hI Xscore path` then the original path as its own record.
            '2' => {
                let p = text.splitn(10, ' ').nth(9).map(str::to_string);
                records.next();
                p
            }
            // `u XY sub m1 m2 m3 mW h1 h2 h3 path`
            'u' => text.splitn(11, ' ').nth(10).map(str::to_string),
            '?' => {
                st.untracked += 1;
                if st.examples.len() < 3 {
                    st.examples.push(text[2..].to_string());
                }
                continue;
            }
            _ => continue,
        };
        st.changed += 1;
        if let Some(p) = path
            && st.examples.len() < 3
        {
            st.examples.push(p);
        }
    }
    st.upstream_gone = st.upstream.is_some() && !ab_seen && !st.unborn;
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_v2() {
        let raw = b"# branch.oid 1234\0# branch.head main\0# branch.upstream origin/main\0# branch.ab +2 -1\0\
1 .M N... 100644 100644 100644 aaa bbb train.py\0\
2 R. N... 100644 100644 100644 aaa bbb R100 new name.py\0old.py\0\
u UU N... 100644 100644 100644 100644 a b c conflict.py\0? notes.txt\0? data/x\0";
        let st = parse_status(raw);
        assert_eq!(st.branch.as_deref(), Some("main"));
        assert_eq!(st.upstream.as_deref(), Some("origin/main"));
        assert_eq!((st.ahead, st.behind, st.changed, st.untracked), (2, 1, 3, 2));
        assert_eq!(st.examples, ["train.py", "new name.py", "conflict.py"]);
        assert!(!st.upstream_gone);
        let gone = parse_status(b"# branch.oid 12\0# branch.head f\0# branch.upstream origin/f\0");
        assert!(gone.upstream_gone);
        let detached = parse_status(b"# branch.oid 12\0# branch.head (detached)\0");
        assert_eq!(detached.branch, None);
        let unborn = parse_status(b"# branch.oid (initial)\0# branch.head main\0");
        assert!(unborn.unborn && !unborn.upstream_gone);
    }
}

//! `opsconsole remote check [NAME] [--init] [--json]`: for each configured remote (or
//! NAME), every step needed to store a file there and read it back, each with what was seen
//! and, when it failed, the fix. `--init` sets the remote up first ([`Remote::init`]).

use std::path::Path;

use serde::Serialize;

use super::engine::{RemoteEnv, build_remotes_in};
use super::remote::{CheckStep, Remote};

/// One remote's result.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteReport {
    pub name: String,
    /// "local /mnt/backup", …
    pub describe: String,
    /// The levels that store into it (`["L3"]`).
    pub levels: Vec<String>,
    pub ok: bool,
    pub steps: Vec<CheckStep>,
}

/// What `remote check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub remotes: Vec<RemoteReport>,
}

/// Set up (when `init`) and check one remote.
pub async fn check_remote(remote: &dyn Remote, init: bool) -> Vec<CheckStep> {
    let mut steps = Vec::new();
    if init {
        steps.extend(remote.init().await);
        if steps.iter().any(|s| !s.ok) {
            return steps;
        }
    }
    steps.extend(remote.check().await);
    steps
}

/// Check the remotes of a config (all, or `only`). `Err` names a remote that is not
/// configured.
pub async fn run(
    workspace: &Path,
    cfg: &crate::config::Config,
    only: Option<&str>,
    init: bool,
) -> Result<CheckReport, String> {
    if let Some(name) = only
        && !cfg.remotes.contains_key(name)
    {
        let known: Vec<&str> = cfg.remotes.keys().map(String::as_str).collect();
        return Err(if known.is_empty() {
            format!("no remote is configured; add [remotes.{name}] to opsconsole.toml")
        } else {
            format!("there is no [remotes.{name}] in the config (configured: {})", known.join(", "))
        });
    }
    if cfg.remotes.is_empty() {
        return Err(format!(
            "no remote is configured; add for example\n\n[remotes.{}]\nkind = \"local\"\npath = \"/mnt/backup\"\n\nto \
             opsconsole.toml, then run `opsconsole remote check {} --init`",
            cfg.sync.l3.remote, cfg.sync.l3.remote
        ));
    }
    let env = RemoteEnv::with_roots(workspace, &cfg.checkpoints.roots);
    let built = build_remotes_in(&cfg.remotes, &env);
    let mut out = CheckReport { ok: true, remotes: Vec::new() };
    for (name, remote) in &built {
        if only.is_some_and(|n| n != name) {
            continue;
        }
        let steps = check_remote(remote.as_ref(), init).await;
        let ok = !steps.is_empty() && steps.iter().all(|s| s.ok);
        out.ok &= ok;
        let levels = cfg
            .sync
            .levels()
            .iter()
            .filter(|(_, _, l)| l.enabled && l.remote == *name)
            .map(|(n, _, _)| n.to_string())
            .collect();
        out.remotes.push(RemoteReport { name: name.clone(), describe: remote.describe(), levels, ok, steps });
    }
    Ok(out)
}

/// The report as text: a header per remote, then one line per step (✓ or ✗), the fix
/// under a failed step.
pub fn to_text(report: &CheckReport) -> String {
    let mut s = String::new();
    for r in &report.remotes {
        let used = if r.levels.is_empty() { "not used by a level".to_string() } else { r.levels.join(", ") };
        s.push_str(&format!("remote {} ({}) · {used}\n", r.name, r.describe));
        for step in &r.steps {
            let mark = if step.ok { "✓" } else { "✗" };
            if step.detail.is_empty() {
                s.push_str(&format!("  {mark} {}\n", step.name));
            } else {
                s.push_str(&format!("  {mark} {}: {}\n", step.name, step.detail));
            }
            if let Some(fix) = step.fix.as_deref().filter(|f| !f.is_empty() && !step.ok) {
                s.push_str(&format!("      fix: {fix}\n"));
            }
        }
        s.push_str(if r.ok { "  ok\n" } else { "  FAILED\n" });
    }
    s
}

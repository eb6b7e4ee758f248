//! `opsconsole freeze`: `<python> -m pip freeze` (`[freeze] python`, default `python3`)
//! into `frozen_requirements.txt` (`checklist.frozen_requirements_file`), written through a
//! temporary file and a rename, so a failed run never leaves half a file. Credentials in
//! requirement URLs (`git+https://user:token@host/…`) are taken out before writing: the
//! file goes into bundles and to L2.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;

/// A written freeze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frozen {
    /// Workspace-relative path written.
    pub path: String,
    pub python: String,
    /// Requirement lines (not comments or blanks).
    pub packages: usize,
    /// Lines whose URL credentials were taken out.
    pub redacted: usize,
    /// The file held exactly this before.
    pub unchanged: bool,
}

/// `scheme://user:secret@host` -> `scheme://host`, per line; how many lines changed.
pub fn redact_urls(text: &str) -> (String, usize) {
    static USERINFO: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@]+@").expect("static regex")
    });
    let mut n = 0;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let r = USERINFO.replace_all(l, "$1");
            if r != l {
                n += 1;
            }
            r.into_owned()
        })
        .collect();
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    (joined, n)
}

/// Runs the freeze. `Err` in words (no interpreter, pip failed and what it said).
pub fn run(workspace: &Path, cfg: &Config) -> Result<Frozen, String> {
    let python = cfg.freeze.python.trim();
    let program = if python.contains('/') { super::in_workspace(workspace, python) } else { python.into() };
    let mut cmd = Command::new(&program);
    cmd.args(["-m", "pip", "freeze"]).current_dir(workspace).env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    let out = crate::checklist::run::output(cmd, Duration::from_secs(120)).map_err(|e| match e {
        crate::checklist::run::RunError::NotFound => {
            format!(
                "no Python interpreter {python:?} ([freeze] python): install it or name one, e.g. \"./venv/bin/python\""
            )
        }
        e => format!("`{python} -m pip freeze`: {e}"),
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(format!(
            "`{python} -m pip freeze` failed ({}): {}",
            out.status.code().map_or("killed".to_string(), |c| format!("exit {c}")),
            crate::util::printable(first.trim())
        ));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| format!("`{python} -m pip freeze` printed something that is not UTF-8"))?;
    let (text, redacted) = redact_urls(&text);
    let packages = text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).count();
    let rel = cfg.checklist.frozen_requirements_file.clone();
    let path = super::in_workspace(workspace, &rel);
    let unchanged = std::fs::read(&path).is_ok_and(|old| old == text.as_bytes());
    if !unchanged {
        super::bundle::write_atomic(&path, text.as_bytes()).map_err(|e| format!("writing {rel}: {e}"))?;
    } else {
        // Touch it: it is now known to be current (bundle compares its age).
        let _ = std::fs::File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    }
    Ok(Frozen { path: super::shown(workspace, &path), python: python.to_string(), packages, redacted, unchanged })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_are_taken_out() {
        let (t, n) =
            redact_urls("torch==2.3.0\nmylib @ git+https://user:ghp_x@github.com/o/r.git@abc\nx @ file:///tmp/x\n");
        assert_eq!(t, "torch==2.3.0\nmylib @ git+https://github.com/o/r.git@abc\nx @ file:///tmp/x\n");
        assert_eq!(n, 1);
    }
}

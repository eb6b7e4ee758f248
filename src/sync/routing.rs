//! Which level takes which file. The globs come from the config; the split between
//! weights and everything else is enforced here whatever the globs say, and secrets are
//! never routed anywhere.

use std::path::Path;

use crate::glob::Glob;

use super::config::{Holds, SyncConfig};

/// File extensions that mark weights (compared without case).
pub const WEIGHT_EXTENSIONS: [&str; 5] = ["pt", "pth", "ckpt", "safetensors", "bin"];

/// A compiled path glob ([`crate::glob::Semantics::Path`]: `*` stops at `/`): one without
/// `/` matches the file name, one with `/` the whole workspace-relative path (a leading `/`
/// anchors it at the workspace root).
#[derive(Debug, Clone)]
pub struct PathGlob {
    matcher: Glob,
    whole_path: bool,
}

impl PathGlob {
    /// Does this glob match the workspace-relative path `rel` (`/`-separated)?
    pub fn is_match(&self, rel: &str) -> bool {
        if self.whole_path { self.matcher.is_match(rel) } else { self.matcher.is_match(file_name(rel)) }
    }
}

/// Compile one glob, or say in words (naming the pattern) why it is not one.
pub fn compile_glob(pattern: &str) -> Result<PathGlob, String> {
    let (text, whole_path) = glob_text(pattern)?;
    let matcher = Glob::path(text).map_err(|e| e.to_string())?;
    Ok(PathGlob { matcher, whole_path })
}

/// Why `pattern` is not a glob, in [`compile_glob`]'s words, without compiling it (for
/// config validation, which only needs the answer).
pub fn check_glob(pattern: &str) -> Result<(), String> {
    let (text, _) = glob_text(pattern)?;
    crate::glob::check(text, crate::glob::Semantics::Path).map_err(|e| e.to_string())
}

/// The glob's text (a leading `/` anchors it to the workspace, so it goes), and whether it
/// matches whole paths (it contains `/`) or file names.
fn glob_text(pattern: &str) -> Result<(&str, bool), String> {
    let trimmed = pattern.trim();
    if trimmed.is_empty() {
        return Err("an empty glob matches nothing".into());
    }
    Ok((trimmed.strip_prefix('/').unwrap_or(trimmed), trimmed.contains('/')))
}

fn file_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// A weights file: a weights extension, or anything inside a `checkpoint-N/` folder
/// (logs excepted: they never count as weights).
pub fn is_weights(rel: &str) -> bool {
    if is_log(rel) {
        return false;
    }
    let name = file_name(rel);
    if let Some((_, ext)) = name.rsplit_once('.')
        && WEIGHT_EXTENSIONS.iter().any(|w| ext.eq_ignore_ascii_case(w))
    {
        return true;
    }
    let mut parts: Vec<&str> = rel.split('/').collect();
    parts.pop();
    parts.iter().any(|p| is_checkpoint_dir_name(p))
}

/// `checkpoint-<digits>`, the folder name trainers such as HF Trainer write.
pub fn is_checkpoint_dir_name(name: &str) -> bool {
    name.strip_prefix("checkpoint-").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A file `resume` kept aside because it failed verification (`model.pt.corrupt`,
/// `model.pt.corrupt.1`): never uploaded anywhere, whatever the globs say, so a damaged
/// copy never replaces a good one on a remote.
pub fn is_kept_aside(rel: &str) -> bool {
    let name = file_name(rel);
    match name.rfind(".corrupt") {
        Some(i) => {
            let rest = &name[i + ".corrupt".len()..];
            rest.is_empty()
                || rest.strip_prefix('.').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        }
        None => false,
    }
}

/// A log file (`*.log`, also rotated `*.log.1` and compressed `*.log.1.gz`).
pub fn is_log(rel: &str) -> bool {
    let name = file_name(rel).to_ascii_lowercase();
    name.ends_with(".log")
        || name.rsplit_once(".log.").is_some_and(|(_, n)| {
            let n = n.strip_suffix(".gz").unwrap_or(n);
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        })
}

struct LevelRoute {
    name: &'static str,
    holds: Holds,
    enabled: bool,
    include: Vec<PathGlob>,
    exclude: Vec<PathGlob>,
    max_bytes: Option<u64>,
}

/// The compiled routing table.
pub struct Router {
    levels: Vec<LevelRoute>,
    exclude: Vec<PathGlob>,
}

fn compile_all(globs: &[String], key: &str) -> Result<Vec<PathGlob>, String> {
    globs.iter().map(|g| compile_glob(g).map_err(|e| format!("{key}: {e}"))).collect()
}

impl Router {
    /// Compile the routing table of a config.
    pub fn new(config: &SyncConfig) -> Result<Self, String> {
        let mut levels = Vec::new();
        for (name, holds, level) in config.levels() {
            let key = format!("sync.{}", name.to_ascii_lowercase());
            levels.push(LevelRoute {
                name,
                holds,
                enabled: level.enabled,
                include: compile_all(&level.include, &format!("{key}.include"))?,
                exclude: compile_all(&level.exclude, &format!("{key}.exclude"))?,
                max_bytes: (level.max_file_mb > 0).then(|| level.max_file_mb * 1024 * 1024),
            });
        }
        Ok(Self { levels, exclude: compile_all(&config.exclude, "sync.exclude")? })
    }

    /// Add globs never synced (e.g. a remote folder inside the workspace).
    pub fn exclude_also(&mut self, glob: PathGlob) {
        self.exclude.push(glob);
    }

    /// Is the path excluded from every level by `sync.exclude` (before size is known), or
    /// a damaged file `resume` kept aside ([`is_kept_aside`])? Secrets are not "ignored":
    /// they are looked at, and withheld (see [`Router::withheld`]).
    pub fn ignored(&self, rel: &str) -> bool {
        is_kept_aside(rel) || self.exclude.iter().any(|g| g.is_match(rel))
    }

    /// The levels (`"L2"`, `"L3"`) a file of this size goes to. A file named like a secret
    /// goes nowhere, whatever the globs say (its contents are checked before upload too).
    pub fn route(&self, rel: &str, size: u64) -> Vec<&'static str> {
        if crate::secrets::check_name(rel).is_some() {
            return Vec::new();
        }
        self.route_by_globs(rel, size)
    }

    /// A file some level would take, withheld because its name says it is a secret.
    pub fn withheld(&self, rel: &str, size: u64) -> Option<crate::secrets::Finding> {
        let finding = crate::secrets::check_name(rel)?;
        (!self.route_by_globs(rel, size).is_empty()).then_some(finding)
    }

    /// Does the file concern sync at all: routed somewhere, or withheld as a secret?
    pub fn considered(&self, rel: &str, size: u64) -> bool {
        !self.route_by_globs(rel, size).is_empty()
    }

    fn route_by_globs(&self, rel: &str, size: u64) -> Vec<&'static str> {
        if self.ignored(rel) {
            return Vec::new();
        }
        let weights = is_weights(rel);
        self.levels
            .iter()
            .filter(|l| l.enabled)
            .filter(|l| match l.holds {
                Holds::Assets => !weights,
                Holds::Weights => weights && !is_log(rel),
            })
            .filter(|l| l.include.iter().any(|g| g.is_match(rel)))
            .filter(|l| !l.exclude.iter().any(|g| g.is_match(rel)))
            .filter(|l| l.max_bytes.is_none_or(|m| size <= m))
            .map(|l| l.name)
            .collect()
    }
}

/// A workspace-relative path with `/` separators, or `None` for a path outside `root`
/// or one that is not valid UTF-8.
pub fn relative_key(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut out = String::new();
    for comp in rel.components() {
        match comp {
            std::path::Component::Normal(s) => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(s.to_str()?);
            }
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new(&SyncConfig::default()).expect("defaults compile")
    }

    #[test]
    fn path_globs_stop_at_slash_and_bad_ones_are_named() {
        let g = compile_glob("experiments/*.log").expect("glob");
        assert!(g.is_match("experiments/train.log") && !g.is_match("experiments/v1/train.log"));
        let g = compile_glob("*.pt").expect("glob");
        assert!(g.is_match("a/b/model.pt"), "no `/`: matched against the file name");
        let e = compile_glob("ck/[x").unwrap_err();
        assert!(e.contains("`ck/[x` is not a valid glob"), "{e}");
    }

    #[test]
    fn seed_routing() {
        let r = router();
        let mb = 1024 * 1024;
        assert_eq!(r.route("experiments/v68/logs/train.log", 10), vec!["L2"]);
        assert_eq!(r.route("journal.md", 10), vec!["L2"]);
        assert_eq!(r.route("experiments/v68/journal.md", 10), vec!["L2"]);
        assert_eq!(r.route("frozen_requirements.txt", 10), vec!["L2"]);
        assert_eq!(r.route("metrics/eval.json", 10), vec!["L2"]);
        assert_eq!(r.route("metrics/eval.json", 201 * mb), Vec::<&str>::new());
        assert_eq!(r.route("checkpoints/v68_step_12000.pt", 7000 * mb), vec!["L3"]);
        assert_eq!(r.route("out/model.safetensors", 10), vec!["L3"]);
        assert_eq!(r.route("out/checkpoint-500/trainer_state.json", 10), vec!["L3"]);
        assert_eq!(r.route("train.py", 10), Vec::<&str>::new());
        assert_eq!(r.route("README.md", 10), Vec::<&str>::new());
        // Rotated logs (what [prune.logs] deletes once on L2) go to L2 too.
        for rotated in ["experiments/v68/logs/train.log.1", "logs/train.log.12", "train.log.3.gz"] {
            assert_eq!(r.route(rotated, 10), vec!["L2"], "{rotated}");
            assert!(is_log(rotated), "{rotated}");
        }
        assert_eq!(r.route("notes.logbook", 10), Vec::<&str>::new());
    }

    #[test]
    fn copies_kept_aside_as_corrupt_go_nowhere() {
        let mut c = SyncConfig::default();
        c.l2.include = vec!["**".into()];
        let r = Router::new(&c).expect("compiles");
        for p in ["checkpoints/v68_step_1200.pt.corrupt", "out/checkpoint-5/model.safetensors.corrupt.2"] {
            assert!(r.route(p, 10).is_empty(), "{p}");
        }
        assert_eq!(r.route("out/checkpoint-5/model.safetensors", 10), vec!["L3"]);
        assert!(!is_kept_aside("notes/corruption.md"));
        assert!(!is_kept_aside("a.corrupted"));
    }

    #[test]
    fn weights_never_reach_l2_and_logs_never_reach_l3_even_when_globs_say_so() {
        let mut c = SyncConfig::default();
        c.l2.include = vec!["**".into()];
        c.l3.include = vec!["**".into()];
        let r = Router::new(&c).expect("compiles");
        assert_eq!(r.route("ckpt/model.pt", 10), vec!["L3"]);
        assert_eq!(r.route("logs/train.log", 10), vec!["L2"]);
        assert_eq!(r.route("checkpoint-7/trainer.log", 10), vec!["L2"]);
        assert_eq!(r.route("checkpoint-7/config.json", 10), vec!["L3"]);
    }

    #[test]
    fn secrets_and_excluded_paths_are_never_routed() {
        let r = router();
        for p in [
            ".secrets/colab-service-account.json",
            "colab-service-account.json",
            "gcp_credentials.json",
            ".env",
            "keys/id_rsa",
            ".git/logs/HEAD.log",
            ".opsconsole/ledger.log",
            "logs/train.log.tmp",
        ] {
            assert!(r.route(p, 10).is_empty(), "{p} must not be routed");
        }
        // Withheld: a level would take it, but it is a secret. Excluded: not considered.
        assert!(r.withheld("colab-service-account.json", 10).is_some());
        assert!(r.withheld("keys/id_rsa", 10).is_none(), "no level takes it anyway");
        assert!(!r.considered(".git/logs/HEAD.log", 10));
    }

    #[test]
    fn globs_without_slash_match_names_and_with_slash_whole_paths() {
        let g = compile_glob("/journal.md").expect("glob");
        assert!(g.is_match("journal.md"));
        assert!(!g.is_match("x/journal.md"));
        let g = compile_glob("logs/*.log").expect("glob");
        assert!(g.is_match("logs/a.log"));
        assert!(!g.is_match("logs/deep/a.log"));
        assert!(compile_glob("a[").is_err());
    }

    #[test]
    fn classification() {
        assert!(is_checkpoint_dir_name("checkpoint-12"));
        assert!(!is_checkpoint_dir_name("checkpoint-"));
        assert!(!is_checkpoint_dir_name("checkpoint-final"));
        assert!(is_log("a/b/train.log.3"));
        assert!(is_weights("A/MODEL.PT"));
        assert!(!is_weights("a/b.ptx"));
        assert_eq!(relative_key(Path::new("/w"), Path::new("/w/a/b.pt")).as_deref(), Some("a/b.pt"));
        assert_eq!(relative_key(Path::new("/w"), Path::new("/x/a")), None);
    }
}

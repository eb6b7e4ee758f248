//! Rule 4, dependency hygiene: "DO NOT use `pip install` inside training scripts"; every
//! package added goes to `requirements.txt`, then `pip freeze > frozen_requirements.txt`.
//!
//! Listed: `pip install` in the experiment's Python files (`train.py` and the `.py` files
//! beside it and under it, two levels, at most [`MAX_PY_FILES`]), each package imported by
//! `train.py` but missing from `checklist.requirements_file` (import names mapped to
//! distributions with the installed metadata — `top_level.txt`, else `RECORD` — of the
//! site-packages folders found, and a table of well-known names), and a requirements
//! file newer than `checklist.frozen_requirements_file`. Every read is bounded (1 MiB a
//! file, 8 MiB of scripts a check); the installed metadata is read again only when a
//! site-packages folder changes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use regex::Regex;
use serde::Serialize;

use super::Verdict;
use crate::config::Config;

/// Python files scanned for `pip install`.
pub const MAX_PY_FILES: usize = 200;
/// The most read of one file.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// The most read of all the scripts together, per check.
const MAX_SCRIPTS_BYTES: u64 = 8 << 20;
/// Distributions read from one site-packages folder.
const MAX_DISTS: usize = 5000;

/// A `pip install` in a script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PipInstall {
    pub file: String,
    pub line: usize,
    pub text: String,
}

/// A package `train.py` imports that the requirements do not list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingImport {
    pub module: String,
    pub line: usize,
    /// The distribution that provides it (installed metadata, else well-known, else the
    /// module's own name).
    pub distribution: String,
}

/// `status --json` → `rules.dependencies`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DepsRule {
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The `train.py` read (workspace-relative), null when there is none.
    pub train_py: Option<String>,
    pub pip_installs: Vec<PipInstall>,
    pub missing: Vec<MissingImport>,
    /// The requirements file changed after the frozen one was written (or no frozen one).
    pub requirements_newer: bool,
    /// The site-packages folders whose metadata mapped imports to distributions.
    pub site_packages: Vec<String>,
}

impl DepsRule {
    pub fn off() -> Self {
        Self { verdict: Verdict::off("dependencies"), ..Default::default() }
    }

    /// The checklist's verdict: `pip install` and missing imports (the frozen file has its
    /// own item, `requirements`).
    pub fn checklist_verdict(&self) -> Verdict {
        if self.verdict.state != super::RuleState::Flag {
            return self.verdict.clone();
        }
        match problems(self, false) {
            Some(words) => {
                Verdict::flag(format!("{words}: add them to the requirements, install outside the script"), "", "")
            }
            None => Verdict::ok("no pip install in the scripts; every import of train.py is in the requirements"),
        }
    }
}

/// Python's standard library (3.10 to 3.13, `sys.stdlib_module_names`), and `__future__`.
const STDLIB: &str = "\
    __future__ _thread abc aifc argparse array ast asynchat asyncio asyncore atexit audioop base64 bdb \
    binascii bisect builtins bz2 calendar cgi cgitb chunk cmath cmd code codecs codeop collections \
    colorsys compileall concurrent configparser contextlib contextvars copy copyreg cProfile crypt csv \
    ctypes curses dataclasses datetime dbm decimal difflib dis distutils doctest email encodings \
    ensurepip enum errno faulthandler fcntl filecmp fileinput fnmatch fractions ftplib functools gc \
    getopt getpass gettext glob graphlib grp gzip hashlib heapq hmac html http idlelib imaplib imghdr \
    imp importlib inspect io ipaddress itertools json keyword lib2to3 linecache locale logging lzma \
    mailbox mailcap marshal math mimetypes mmap modulefinder msilib msvcrt multiprocessing netrc nis \
    nntplib numbers operator optparse os ossaudiodev pathlib pdb pickle pickletools pipes pkgutil \
    platform plistlib poplib posix posixpath pprint profile pstats pty pwd py_compile pyclbr pydoc queue \
    quopri random re readline reprlib resource rlcompleter runpy sched secrets select selectors shelve \
    shlex shutil signal site smtpd smtplib sndhdr socket socketserver spwd sqlite3 sre_compile \
    sre_constants sre_parse ssl stat statistics string stringprep struct subprocess sunau symtable sys \
    sysconfig syslog tabnanny tarfile telnetlib tempfile termios textwrap threading time timeit tkinter \
    token tokenize tomllib trace traceback tracemalloc tty turtle turtledemo types typing unicodedata \
    unittest urllib uu uuid venv warnings wave weakref webbrowser winreg winsound wsgiref xdrlib xml \
    xmlrpc zipapp zipfile zipimport zlib zoneinfo";

/// Import names whose distribution has another name, for when no metadata is installed.
const WELL_KNOWN: &[(&str, &str)] = &[
    ("sklearn", "scikit-learn"),
    ("skimage", "scikit-image"),
    ("cv2", "opencv-python"),
    ("PIL", "pillow"),
    ("yaml", "pyyaml"),
    ("bs4", "beautifulsoup4"),
    ("attr", "attrs"),
    ("dateutil", "python-dateutil"),
    ("dotenv", "python-dotenv"),
    ("jwt", "pyjwt"),
    ("serial", "pyserial"),
    ("OpenSSL", "pyopenssl"),
    ("Crypto", "pycryptodome"),
    ("fitz", "pymupdf"),
    ("docx", "python-docx"),
    ("magic", "python-magic"),
    ("zmq", "pyzmq"),
    ("gi", "pygobject"),
    ("google", "protobuf"),
    ("pytorch_lightning", "pytorch-lightning"),
    ("sentencepiece", "sentencepiece"),
    ("huggingface_hub", "huggingface-hub"),
    ("flash_attn", "flash-attn"),
    ("wandb", "wandb"),
    ("tensorboard", "tensorboard"),
    ("torchvision", "torchvision"),
    ("googleapiclient", "google-api-python-client"),
    ("gdown", "gdown"),
];

/// PEP 503 normalised name: lower case, runs of `-_.` as one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn read_bounded(p: &Path, cap: u64) -> Option<String> {
    let f = crate::util::open_regular(p).ok()?;
    let mut b = Vec::new();
    f.take(cap).read_to_end(&mut b).ok()?;
    Some(String::from_utf8_lossy(&b).into_owned())
}

static PIP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i-u)(\bpip3?(\.exe)?["']?\s*,?\s*["']?\s*install\b|["']-m["']\s*,\s*["']pip["']\s*,\s*["']install["'])"#,
    )
    .expect("pip regex")
});

/// The `pip install` lines of a script (comments skipped).
pub fn pip_installs(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with('#') && PIP.is_match(l))
        .map(|(i, l)| (i + 1, crate::util::ellipsize(l.trim(), 120)))
        .collect()
}

/// The top-level modules `text` imports, with their line: `import a.b as c, d`,
/// `from a.b import x`; relative imports, imports inside strings and optional ones (the
/// body of a `try:` whose `except` names `ImportError` or `ModuleNotFoundError`) left out.
pub fn imports(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut in_string: Option<&str> = None;
    let indent = |l: &str| l.len() - l.trim_start().len();
    for (i, raw) in lines.iter().enumerate() {
        let l = raw.trim();
        if let Some(q) = in_string {
            if l.contains(q) {
                in_string = None;
            }
            continue;
        }
        for q in ["\"\"\"", "'''"] {
            if l.matches(q).count() % 2 == 1 {
                in_string = Some(q);
            }
        }
        if in_string.is_some() {
            continue;
        }
        let names: Vec<String> = if let Some(rest) = l.strip_prefix("import ") {
            rest.split('#')
                .next()
                .unwrap_or("")
                .split(',')
                .filter_map(|p| p.split_whitespace().next())
                .map(String::from)
                .collect()
        } else if let Some(rest) = l.strip_prefix("from ") {
            match rest.split_whitespace().next() {
                Some(m) if !m.starts_with('.') && rest.contains(" import") => vec![m.to_string()],
                _ => vec![],
            }
        } else {
            continue;
        };
        // Optional: inside a `try:` answered by `except ImportError`.
        let me = indent(raw);
        let opened_by_try = me > 0
            && lines[..i]
                .iter()
                .rev()
                .find(|p| !p.trim().is_empty() && indent(p) < me)
                .is_some_and(|p| p.trim() == "try:");
        let optional = opened_by_try
            && lines[i + 1..].iter().find(|p| !p.trim().is_empty() && indent(p) < me).is_some_and(|p| {
                p.contains("ImportError") || p.contains("ModuleNotFoundError") || p.trim() == "except:"
            });
        if optional {
            continue;
        }
        for n in names {
            let top = n.split('.').next().unwrap_or("").to_string();
            if !top.is_empty()
                && top.chars().all(|c| c.is_alphanumeric() || c == '_')
                && !out.iter().any(|(m, _)| *m == top)
            {
                out.push((top, i + 1));
            }
        }
    }
    out
}

/// The distributions a requirements file lists (normalised), following `-r` (two levels).
pub fn requirements(path: &Path, depth: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(text) = read_bounded(path, MAX_FILE_BYTES) else { return out };
    for line in text.lines() {
        let l = line.split(" #").next().unwrap_or("").trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(inc) = l.strip_prefix("-r ").or_else(|| l.strip_prefix("--requirement ")) {
            if depth < 2 {
                out.extend(requirements(&path.parent().unwrap_or(Path::new(".")).join(inc.trim()), depth + 1));
            }
            continue;
        }
        if let Some(egg) = l.split("#egg=").nth(1) {
            out.insert(normalize(egg.split(['&', ' ', '[']).next().unwrap_or("")));
            continue;
        }
        if l.starts_with('-') {
            continue;
        }
        let end = l.find(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))).unwrap_or(l.len());
        if end > 0 {
            out.insert(normalize(&l[..end]));
        }
    }
    out
}

/// site-packages folders: `rules.site_packages`, else the usual places (the active
/// virtualenv, `.venv`/`venv`/`env` in the workspace, the user's, the system's, conda's).
fn site_dirs(ws: &Path, cfg: &Config) -> Vec<PathBuf> {
    if !cfg.rules.site_packages.is_empty() {
        return cfg.rules.site_packages.iter().map(|p| crate::workspace::Workspace::at(ws).resolve(p)).collect();
    }
    let mut prefixes: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        prefixes.push(PathBuf::from(v));
    }
    for v in [".venv", "venv", "env"] {
        prefixes.push(ws.join(v));
    }
    if let Some(h) = std::env::var_os("HOME") {
        prefixes.push(PathBuf::from(h).join(".local"));
    }
    for p in ["/usr/local", "/usr", "/opt/conda"] {
        prefixes.push(PathBuf::from(p));
    }
    let mut out = Vec::new();
    for prefix in prefixes {
        let lib = prefix.join("lib");
        let Ok(rd) = std::fs::read_dir(&lib) else { continue };
        let mut pys: Vec<PathBuf> =
            rd.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("python3")).map(|e| e.path()).collect();
        pys.sort();
        pys.push(lib.join("python3"));
        for py in pys {
            for sub in ["site-packages", "dist-packages"] {
                let d = py.join(sub);
                if d.is_dir() && !out.contains(&d) {
                    out.push(d);
                }
            }
        }
    }
    out
}

/// import name -> distributions, from one site-packages folder's metadata.
fn read_site(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return map };
    for e in rd.flatten().take(MAX_DISTS * 4) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".dist-info").or_else(|| name.strip_suffix(".egg-info")) else { continue };
        let meta = e.path();
        let dist = read_bounded(&meta.join("METADATA"), 8192)
            .or_else(|| read_bounded(&meta.join("PKG-INFO"), 8192))
            .and_then(|m| m.lines().find_map(|l| l.strip_prefix("Name:").map(|n| n.trim().to_string())))
            .unwrap_or_else(|| stem.split('-').next().unwrap_or(stem).to_string());
        let dist = normalize(&dist);
        let mut tops: BTreeSet<String> = read_bounded(&meta.join("top_level.txt"), 65536)
            .map(|t| t.lines().map(|l| l.trim().replace('/', ".")).filter(|l| !l.is_empty()).collect())
            .unwrap_or_default();
        if tops.is_empty()
            && let Some(record) = read_bounded(&meta.join("RECORD"), MAX_FILE_BYTES)
        {
            for l in record.lines() {
                let path = l.split(',').next().unwrap_or("");
                let first = path.split('/').next().unwrap_or("");
                let has_dir = path.contains('/');
                let top = if has_dir { first.to_string() } else { first.strip_suffix(".py").unwrap_or("").to_string() };
                if !top.is_empty()
                    && !top.ends_with(".dist-info")
                    && !top.ends_with(".data")
                    && top != "__pycache__"
                    && top != ".."
                    && top.chars().all(|c| c.is_alphanumeric() || c == '_')
                {
                    tops.insert(top);
                }
            }
        }
        for t in tops {
            map.entry(t.split('.').next().unwrap_or("").to_string()).or_default().insert(dist.clone());
        }
    }
    map
}

type SiteKey = Vec<(PathBuf, Option<std::time::SystemTime>)>;
type SiteMap = BTreeMap<String, BTreeSet<String>>;

/// The metadata map, read again only when a site-packages folder changed (installing a
/// package changes its folder's modification time).
static SITE_CACHE: LazyLock<Mutex<Option<(SiteKey, SiteMap)>>> = LazyLock::new(|| Mutex::new(None));

fn installed(dirs: &[PathBuf]) -> BTreeMap<String, BTreeSet<String>> {
    let key: SiteKey = dirs.iter().map(|d| (d.clone(), std::fs::metadata(d).and_then(|m| m.modified()).ok())).collect();
    if let Ok(c) = SITE_CACHE.lock()
        && let Some((k, m)) = c.as_ref()
        && *k == key
    {
        return m.clone();
    }
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in dirs {
        for (k, v) in read_site(d) {
            map.entry(k).or_default().extend(v);
        }
    }
    if let Ok(mut c) = SITE_CACHE.lock() {
        *c = Some((key, map.clone()));
    }
    map
}

/// The Python files of an experiment folder (two levels of folders below it, hidden ones
/// and `__pycache__` skipped, symlinks not followed; sorted depth first; at most
/// [`MAX_PY_FILES`]).
fn py_files(dir: &Path) -> Vec<PathBuf> {
    let visible = |e: &walkdir::DirEntry| {
        let name = e.file_name().to_string_lossy();
        !e.file_type().is_dir() || !(name.starts_with('.') || name == "__pycache__")
    };
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .max_depth(3)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(visible)
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name().to_string_lossy().ends_with(".py"))
        .map(walkdir::DirEntry::into_path)
        .take(MAX_PY_FILES)
        .collect()
}

/// Whether `module` is the experiment's or the workspace's own code.
fn is_local(module: &str, dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| d.join(format!("{module}.py")).is_file() || d.join(module).is_dir())
}

/// The problems in words (`with_frozen`: the requirements newer than the frozen file too).
fn problems(r: &DepsRule, with_frozen: bool) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(p) = r.pip_installs.first() {
        let more =
            if r.pip_installs.len() > 1 { format!(" (and {} more)", r.pip_installs.len() - 1) } else { String::new() };
        parts.push(format!("`pip install` in {} line {}{more}", p.file, p.line));
    }
    if !r.missing.is_empty() {
        let list: Vec<String> = r
            .missing
            .iter()
            .take(6)
            .map(|m| {
                if normalize(&m.module) == m.distribution {
                    m.module.clone()
                } else {
                    format!("{} ({})", m.module, m.distribution)
                }
            })
            .collect();
        let more = if r.missing.len() > 6 { format!(" and {} more", r.missing.len() - 6) } else { String::new() };
        parts.push(format!("imported by train.py but not in the requirements: {}{more}", list.join(", ")));
    }
    if with_frozen && r.requirements_newer {
        parts.push("the requirements changed after the frozen requirements: run `opsconsole freeze`".into());
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Judges rule 4 for `experiment`.
pub fn check(ws: &Path, cfg: &Config, experiment: Option<&str>) -> DepsRule {
    let mut rule = DepsRule::default();
    let Some(exp) = experiment else {
        rule.verdict = Verdict::unknown("no experiment found");
        return rule;
    };
    let shown = |p: &Path| crate::workspace::Workspace::at(ws).display(p);
    let dir = crate::airlock::in_workspace(ws, &cfg.paths.experiments).join(exp);
    let files = py_files(&dir);
    let mut budget = MAX_SCRIPTS_BYTES;
    for f in &files {
        if budget == 0 {
            break;
        }
        if let Some(text) = read_bounded(f, MAX_FILE_BYTES.min(budget)) {
            budget = budget.saturating_sub(text.len() as u64);
            rule.pip_installs.extend(pip_installs(&text).into_iter().map(|(line, text)| PipInstall {
                file: shown(f),
                line,
                text,
            }));
        }
    }
    let req_path = crate::workspace::Workspace::at(ws).resolve(&cfg.checklist.requirements_file);
    let frozen_path = crate::workspace::Workspace::at(ws).resolve(&cfg.checklist.frozen_requirements_file);
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    rule.requirements_newer = match (mtime(&req_path), mtime(&frozen_path)) {
        (Some(r), Some(f)) => r > f,
        (Some(_), None) => true,
        _ => false,
    };
    let train = dir.join("train.py");
    if let Some(text) = read_bounded(&train, MAX_FILE_BYTES) {
        rule.train_py = Some(shown(&train));
        let listed = requirements(&req_path, 0);
        let sites = site_dirs(ws, cfg);
        let map = installed(&sites);
        rule.site_packages = sites.iter().map(|d| d.display().to_string()).collect();
        let local = [dir.clone(), ws.to_path_buf(), dir.join("src"), ws.join("src")];
        for (module, line) in imports(&text) {
            if STDLIB.split_whitespace().any(|n| n == module) || is_local(&module, &local) {
                continue;
            }
            let mut cands: Vec<String> = map.get(&module).map(|s| s.iter().cloned().collect()).unwrap_or_default();
            cands.extend(WELL_KNOWN.iter().filter(|(m, _)| *m == module).map(|(_, d)| d.to_string()));
            cands.push(normalize(&module));
            if !cands.iter().any(|c| listed.contains(c)) {
                rule.missing.push(MissingImport { module, line, distribution: cands[0].clone() });
            }
        }
    }
    let req_name = &cfg.checklist.requirements_file;
    rule.verdict = match problems(&rule, true) {
        Some(words) => {
            let n = rule.pip_installs.len() + rule.missing.len() + usize::from(rule.requirements_newer);
            let mut what = Vec::new();
            if !rule.pip_installs.is_empty() {
                what.push("pip install in a script".to_string());
            }
            if !rule.missing.is_empty() {
                what.push(format!("{} missing from {req_name}", rule.missing.len()));
            }
            if rule.requirements_newer {
                what.push("frozen requirements old".into());
            }
            Verdict::flag(format!("{exp}: {words}"), format!("dependencies: {}", what.join(", ")), format!("deps: {n}"))
        }
        None if rule.train_py.is_none() => {
            Verdict::ok(format!("no {}/{exp}/train.py; no pip install found", cfg.paths.experiments))
        }
        None => Verdict::ok(format!(
            "{exp}: no pip install in its scripts; every import of train.py is in {req_name}; the frozen requirements are current"
        )),
    };
    rule
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_files_two_folder_levels_down_sorted_without_hidden_or_cache_folders() {
        let d = tempfile::tempdir().unwrap();
        for f in ["z.py", "a/b/c.py", "a/b/c/too_deep.py", "a/notes.txt", ".venv/x.py", "__pycache__/y.py", ".top.py"] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "").unwrap();
        }
        std::os::unix::fs::symlink(d.path().join("a"), d.path().join("link")).unwrap();
        let got: Vec<String> =
            py_files(d.path()).iter().map(|p| p.strip_prefix(d.path()).unwrap().display().to_string()).collect();
        assert_eq!(got, [".top.py", "a/b/c.py", "z.py"]);
    }

    #[test]
    fn imports_of_a_script() {
        let py = "import os, sys\nimport numpy as np\nfrom transformers import AutoModel\nfrom . import local\n\
                  from .models import x\nimport torch.nn.functional as F\n\"\"\"\nimport not_code\n\"\"\"\n\
                  try:\n    import wandb\nexcept ImportError:\n    wandb = None\n# import commented\n\
                  def f():\n    import sklearn.metrics\n";
        let got: Vec<String> = imports(py).into_iter().map(|(m, _)| m).collect();
        assert_eq!(got, ["os", "sys", "numpy", "transformers", "torch", "sklearn"]);
    }

    #[test]
    fn pip_install_forms() {
        let py = "os.system('pip install wandb')\nsubprocess.run([sys.executable, '-m', 'pip', 'install', 'x'])\n\
                  subprocess.check_call(['pip3', 'install', 'y'])\n# pip install in a comment\n!pip install -q z\n\
                  print('pipeline installed')\n";
        let lines: Vec<usize> = pip_installs(py).into_iter().map(|(l, _)| l).collect();
        assert_eq!(lines, [1, 2, 3, 5]);
    }

    #[test]
    fn requirement_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.txt"), "numpy>=1.26\n").unwrap();
        std::fs::write(
            dir.path().join("requirements.txt"),
            "# comment\n-r base.txt\nTorch==2.3.0\nscikit_learn[alldeps]>=1.4 ; python_version>'3.9'\n\
             -e git+https://example.invalid/x.git#egg=my_pkg\nhuggingface.hub @ https://x.invalid/y.whl\n--index-url x\n",
        )
        .unwrap();
        let got = requirements(&dir.path().join("requirements.txt"), 0);
        let want: BTreeSet<String> =
            ["numpy", "torch", "scikit-learn", "my-pkg", "huggingface-hub"].into_iter().map(String::from).collect();
        assert_eq!(got, want);
    }
}

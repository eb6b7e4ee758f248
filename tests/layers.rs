//! Layers point one way. The domain (everything under `src/` but the console's own layers)
//! never names the app, the screen, the terminal loop, the executor, the collectors or the
//! commands, nor a terminal library; the app never names the screen or anything that does
//! I/O for it. Read from the source, so a new file is checked the day it is added.

use std::path::{Path, PathBuf};

/// The console's layers, relative to `src/`: they may use the domain, not the other way.
const CONSOLE: &[&str] = &["app", "ui", "tui.rs", "exec", "collectors", "cli", "main.rs", "lib.rs"];

/// What no domain file may name.
const NOT_IN_DOMAIN: &[&str] = &[
    "crate::app",
    "crate::ui",
    "crate::tui",
    "crate::exec",
    "crate::collectors",
    "crate::cli",
    "ratatui",
    "crossterm",
];

/// What `app` (state and `update`, no I/O) may not name.
const NOT_IN_APP: &[&str] = &["crate::ui", "crate::tui", "crate::exec", "crate::collectors", "crate::cli"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Lines of code (comments left out) that name one of `words`, as `file:line: text`.
fn offences(file: &Path, rel: &str, words: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("read");
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        if let Some(w) = words.iter().find(|w| names(code, w)) {
            out.push(format!("src/{rel}:{}: names {w}: {}", n + 1, line.trim()));
        }
    }
    out
}

/// Whether `code` names `word` as a path (not as part of a longer name: `crate::apple`).
fn names(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn the_domain_never_names_the_console_or_a_terminal_library() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "the source was found: {} files", files.len());
    let mut found = Vec::new();
    let mut domain = 0;
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src").to_string_lossy().replace('\\', "/");
        let top = rel.split('/').next().unwrap_or_default();
        if top == "app" {
            found.extend(offences(f, &rel, NOT_IN_APP));
        } else if !CONSOLE.contains(&top) {
            domain += 1;
            found.extend(offences(f, &rel, NOT_IN_DOMAIN));
        }
    }
    assert!(domain > 30, "domain files checked: {domain}");
    assert!(found.is_empty(), "layers point the wrong way:\n{}", found.join("\n"));
}

#[test]
fn the_check_sees_what_it_is_meant_to_see() {
    assert!(names("use crate::app::Msg;", "crate::app"));
    assert!(names("    ratatui::crossterm::event::KeyEvent", "ratatui"));
    assert!(names("fn f(x: crossterm::event::KeyCode)", "crossterm"));
    assert!(!names("use crate::apple;", "crate::app"));
    assert!(!names("let my_ratatui_like = 1;", "ratatui"));
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("x.rs");
    std::fs::write(&f, "// crate::app in a comment is fine\nuse crate::ui::render; // but not in code\n").expect("w");
    let o = offences(&f, "disk/x.rs", NOT_IN_DOMAIN);
    assert_eq!(o.len(), 1, "{o:?}");
    assert!(o[0].starts_with("src/disk/x.rs:2: names crate::ui"), "{o:?}");
}

//! Running the real binary on a workspace, for the tests that drive the CLI from outside:
//! its state (`XDG_STATE_HOME`) kept inside the workspace's `.state`, output as one text.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `opsconsole -w WS ARGS…`, waited for.
pub fn run(ws: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("-w")
        .arg(ws)
        .args(args)
        .env("XDG_STATE_HOME", ws.join(".state"))
        .output()
        .expect("run opsconsole")
}

/// Stdout then stderr, as text.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs and asserts it succeeded; its text.
pub fn ok(ws: &Path, args: &[&str]) -> String {
    let o = run(ws, args);
    assert!(o.status.success(), "opsconsole {args:?} failed:\n{}", text(&o));
    text(&o)
}

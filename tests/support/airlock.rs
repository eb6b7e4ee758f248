//! Test support for the airlock: workspaces with real git repositories, torch-like
//! checkpoints (zip archives, as `torch.save` writes them), local remotes, configs.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use opsconsole::config::Config;

/// Runs git in `dir` with a fixed identity and no user or system config.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Writes `text` to `ws/rel`, creating folders.
pub fn write(ws: &Path, rel: &str, text: &[u8]) {
    let p = ws.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// A workspace in a git repository holding experiment `exp` (models/, train.py),
/// requirements.txt and a .gitignore, all committed.
pub fn repo(ws: &Path, exp: &str) {
    std::fs::create_dir_all(ws).expect("mkdir");
    git(ws, &["init", "-q", "-b", "main"]);
    write(ws, &format!("experiments/{exp}/train.py"), b"import models\nprint('train')\n");
    write(ws, &format!("experiments/{exp}/models/__init__.py"), b"");
    write(ws, &format!("experiments/{exp}/models/attn.py"), b"def attention(q, k, v):\n    return q\n");
    write(ws, "requirements.txt", b"torch==2.3.0\n");
    write(ws, ".gitignore", b".opsconsole/\nbundles/\ncheckpoints/\n__pycache__/\n*.log\n");
    git(ws, &["add", "-A"]);
    git(ws, &["commit", "-q", "-m", "first"]);
}

/// Obviously fake key material assembled at run time (no file in this repository looks
/// like a real secret).
pub fn fake(prefix: &str, n: usize) -> String {
    format!("{prefix}{}", "X1".repeat(n / 2 + 1).chars().take(n).collect::<String>())
}

/// A file shaped like `torch.save` output: a zip with `archive/data.pkl` and one tensor
/// blob of `len` bytes (seeded), modified `age` ago.
pub fn checkpoint(path: &Path, len: usize, seed: u64, age: Duration) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let f = std::fs::File::create(path).expect("create");
    let mut z = zip::ZipWriter::new(f);
    let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", o).expect("start");
    z.write_all(&[0x80, 2, b'}', b'q', 0, b'.']).expect("write");
    z.start_file("archive/data/0", o).expect("start");
    let mut block = vec![0u8; len];
    fastrand::Rng::with_seed(seed).fill(&mut block);
    z.write_all(&block).expect("write");
    z.finish().expect("finish");
    set_age(path, age);
}

/// Sets a file's modification time to `age` ago.
pub fn set_age(path: &Path, age: Duration) {
    let f = std::fs::File::options().append(true).open(path).expect("open");
    f.set_modified(SystemTime::now() - age).expect("set mtime");
}

/// A folder for a local remote, set up as `remote check --init` would (marker for `ws`).
pub fn local_remote(ws: &Path, name: &str, root: &Path) {
    std::fs::create_dir_all(root.parent().expect("parent")).expect("mkdir");
    let r = opsconsole::sync::local::LocalRemote::with_options(
        name,
        root,
        opsconsole::sync::local::LocalOptions {
            workspace_id: Some(opsconsole::sync::marker::workspace_id(ws).expect("workspace id")),
            workspace: Some(ws.to_path_buf()),
            same_disk: true,
            protected: vec![ws.to_path_buf()],
            sums: None,
            rehash: false,
        },
    );
    let steps = r.init_blocking();
    assert!(steps.iter().all(|s| s.ok), "init failed: {steps:?}");
}

/// A config from TOML text, as if it were `ws/opsconsole.toml` (written there too).
pub fn config(ws: &Path, toml: &str) -> Config {
    let p = ws.join("opsconsole.toml");
    std::fs::write(&p, toml).expect("write config");
    Config::from_toml(toml, &p).unwrap_or_else(|e| panic!("config: {e}"))
}

/// TOML for a local remote section.
pub fn local_remote_toml(name: &str, root: &Path) -> String {
    format!("[remotes.{name}]\nkind = \"local\"\npath = \"{}\"\nsame_disk = true\n\n", root.display())
}

/// Runs the binary in `ws` with `args`.
pub fn opsconsole(ws: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("--workspace")
        .arg(ws)
        .args(args)
        .env("XDG_STATE_HOME", ws.join(".state"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("run opsconsole")
}

pub fn sha256(path: &Path) -> String {
    opsconsole::sync::hash::sha256_file(path).expect("hash")
}

pub fn abs(ws: &Path, rel: &str) -> PathBuf {
    ws.join(rel)
}

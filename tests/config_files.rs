//! Config and log files that are not what they claim, through the real binary: a device
//! (`--config /dev/zero`), a FIFO, a directory named `opsconsole.toml`, a huge file, a
//! workspace that does not exist, a FIFO log — each refused in words, at once, never hung
//! on. And a config planted by someone else (git's safe.directory rule, as root): another
//! owner, writable by everyone, in a folder writable by everyone, writable by a shared
//! group — refused with the path, the owner and the fixes; `--config` and the allow-list
//! let a trusted one through.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary with a guard: a run that hangs is killed after 60 s and fails the test
/// (a hang is the defect being tested, not a timing figure).
fn run(args: &[&str], cwd: &Path, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opsconsole"));
    cmd.args(args).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.env("XDG_STATE_HOME", std::env::temp_dir());
    cmd.env("XDG_CONFIG_HOME", cwd.join("no-such-xdg-config"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("opsconsole {args:?} hung; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mkfifo(p: &Path) {
    rustix::fs::mkfifoat(rustix::fs::CWD, p, rustix::fs::Mode::from_raw_mode(0o600)).expect("mkfifo");
}

#[test]
fn a_device_or_a_fifo_as_config_is_refused_in_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(&["--config", "/dev/zero", "config"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("/dev/zero: is a character device, not a config file"), "{}", stderr(&out));
    let fifo = dir.path().join("opsconsole.toml");
    mkfifo(&fifo);
    let out = run(&["--config", fifo.to_str().expect("utf8"), "config"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a FIFO (named pipe), not a config file"), "{}", stderr(&out));
    // Found by walking up, too.
    let out = run(&["config"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a FIFO (named pipe), not a config file"), "{}", stderr(&out));
}

#[test]
fn a_directory_named_opsconsole_toml_is_an_error_not_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A real config further up must not be picked silently.
    std::fs::write(dir.path().join("opsconsole.toml"), "[disk]\nwarn_pct = 65.0\n").expect("config");
    let inner = dir.path().join("project");
    std::fs::create_dir_all(inner.join("opsconsole.toml")).expect("dir");
    let out = run(&["config"], &inner, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}: is a directory, not a config file", inner.join("opsconsole.toml").display())),
        "{err}"
    );
    assert!(err.contains("--config"), "says the way out: {err}");
}

#[test]
fn a_huge_config_is_refused_by_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.toml");
    std::fs::write(&big, format!("# {}\n", "x".repeat(2 << 20))).expect("write");
    let out = run(&["--config", big.to_str().expect("utf8"), "config"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is larger than 1024 kB"), "{}", stderr(&out));
}

/// `--config` makes its folder the workspace: a `--workspace` naming another folder is an
/// error that names both, not silently ignored; naming the same folder is fine.
#[test]
fn a_workspace_other_than_the_config_files_folder_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let other = dir.path().join("other");
    std::fs::create_dir_all(&ws).expect("mkdir");
    std::fs::create_dir_all(&other).expect("mkdir");
    let cfg = ws.join("alt.toml");
    std::fs::write(&cfg, "").expect("config");
    let cfg_arg = cfg.to_str().expect("utf8");
    let out = run(&["-w", other.to_str().expect("utf8"), "-c", cfg_arg, "status"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let (ws_real, other_real) = (ws.canonicalize().expect("ws"), other.canonicalize().expect("other"));
    assert!(err.contains("--workspace names another"), "{err}");
    assert!(err.contains(&ws_real.display().to_string()), "names the config's folder: {err}");
    assert!(err.contains(&other_real.display().to_string()), "names the other folder: {err}");
    assert!(out.stdout.is_empty());
    // The same folder, by another spelling: fine.
    let same = dir.path().join("ws/../ws");
    let out = run(&["-w", same.to_str().expect("utf8"), "-c", cfg_arg, "status"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_workspace_that_does_not_exist_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nonexistent");
    let out = run(&["--workspace", missing.to_str().expect("utf8"), "status"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no such folder: the workspace (--workspace) must exist"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let file = dir.path().join("file");
    std::fs::write(&file, "x").expect("write");
    let out = run(&["-w", file.to_str().expect("utf8"), "status"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("the workspace must be a folder, and this is a regular file"), "{}", stderr(&out));
}

#[test]
fn a_fifo_log_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("train.log");
    mkfifo(&fifo);
    let out = run(&["log", "--path", fifo.to_str().expect("utf8"), "-n", "5"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a FIFO (named pipe), not a regular file"), "{}", stderr(&out));
    // status (which reads the log it finds) answers too, naming the log.
    std::fs::write(dir.path().join("opsconsole.toml"), "[log]\npath = \"train.log\"\n").expect("config");
    let out = run(&["status", "--json"], dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["log"]["path"].as_str().is_some_and(|p| p.ends_with("train.log")), "{:#}", v["log"]);
}

// ---------------------------------------------------------------- planted configs (root)

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// These tests chown files to other users, which needs root: they are
/// `#[ignore = "needs root"]`, and fail rather than pass when run without it.
fn require_root(what: &str) {
    assert!(is_root(), "{what} needs root (chown)");
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A workspace `ws/` with a config, and a subfolder to run from (found by walking up).
fn planted() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let sub = ws.join("experiments/v1");
    std::fs::create_dir_all(&sub).expect("mkdir");
    chmod(&ws, 0o755);
    std::fs::write(ws.join("opsconsole.toml"), "[disk]\nwarn_pct = 42.0\n").expect("config");
    chmod(&ws.join("opsconsole.toml"), 0o644);
    (dir, ws, sub)
}

#[test]
#[ignore = "needs root"]
fn a_config_owned_by_someone_else_is_refused_with_the_owner_and_the_fixes() {
    require_root("planted-config test");
    let (dir, ws, sub) = planted();
    let cfg = ws.join("opsconsole.toml");
    chown(&cfg, 4242, 4242);
    let out = run(&["config"], &sub, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for want in [
        format!("{}: refusing to use this config", cfg.display()),
        "the file is owned by uid 4242, not by you (uid 0 (root)) or root".into(),
        format!("opsconsole --config {}", cfg.display()),
        "opsconsole/safe.toml".into(),
        format!("safe_directories = [\"{}\"]", ws.display()),
    ] {
        assert!(err.contains(&want), "missing {want:?} in {err}");
    }
    assert!(out.stdout.is_empty(), "nothing was run");
    // The same through --workspace.
    let out = run(&["-w", ws.to_str().expect("utf8"), "config"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // Named explicitly: the user's choice.
    let out = run(&["--config", cfg.to_str().expect("utf8"), "config"], &sub, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("warn_pct = 42.0"));
    // On the allow-list: trusted.
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("opsconsole")).expect("mkdir");
    std::fs::write(xdg.join("opsconsole/safe.toml"), format!("safe_directories = [\"{}\"]\n", ws.display()))
        .expect("safe");
    let out = run(&["config"], &sub, &[("XDG_CONFIG_HOME", &xdg)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("warn_pct = 42.0"));
    // An allow-list someone else could write is not believed.
    chmod(&xdg.join("opsconsole/safe.toml"), 0o666);
    let out = run(&["config"], &sub, &[("XDG_CONFIG_HOME", &xdg)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("this allow-list is writable by everyone (mode 0666), so it is not used"));
}

#[test]
#[ignore = "needs root"]
fn a_world_writable_config_or_folder_or_a_shared_group_is_refused() {
    require_root("planted-config test");
    let (_dir, ws, sub) = planted();
    let cfg = ws.join("opsconsole.toml");
    chmod(&cfg, 0o666);
    let out = run(&["status"], &sub, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("the file is writable by everyone (mode 0666)"), "{}", stderr(&out));

    chmod(&cfg, 0o644);
    chmod(&ws, 0o1777);
    let out = run(&["status"], &sub, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("its folder {} is writable by everyone (mode 1777)", ws.display())),
        "{}",
        stderr(&out)
    );

    // Writable by a group that is not the user's own private group.
    chmod(&ws, 0o755);
    chown(&cfg, 0, 4343);
    chmod(&cfg, 0o664);
    let out = run(&["status"], &sub, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("the file is writable by group 4343 (mode 0664)"), "{}", stderr(&out));

    // Owned by the user (root), not writable by others: loaded.
    chown(&cfg, 0, 0);
    chmod(&cfg, 0o644);
    let out = run(&["config"], &sub, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

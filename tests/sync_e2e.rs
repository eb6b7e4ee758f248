//! The real binary in tmux with the sync engine: a console beside `opsconsole sync
//! --daemon` shows the daemon's queue and sends `c` (cancel) and `R` (retry) through the
//! ledger; a console with no daemon runs its own engine.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/tmux.rs"]
mod tmux;
use tmux::Tmux;

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn workspace(base: &Path, cap_kib: u64, big_mb: usize) -> std::path::PathBuf {
    let ws = base.join("ws");
    std::fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!(
            "[sync]\nsettle_seconds = 1\nbandwidth_limit_kib_s = {cap_kib}\n\n[sync.l3]\nremote = \"r3\"\n\
             interval_minutes = 0\n\n[remotes.r3]\nkind = \"local\"\npath = \"{}\"\nsame_disk = true\n",
            base.join("r3").display()
        ),
    )
    .expect("config");
    let init = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("-w")
        .arg(&ws)
        .args(["remote", "check", "--init"])
        .output()
        .expect("remote check --init");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stdout));
    let mut rng = fastrand::Rng::with_seed(7);
    let mut data = vec![0u8; big_mb << 20];
    rng.fill(&mut data);
    std::fs::write(ws.join("checkpoints/v1_step_100.pt"), data).expect("weights");
    ws
}

#[test]
#[ignore = "needs tmux"]
fn a_console_beside_a_daemon_shows_its_queue_and_cancels_and_retries_through_the_ledger() {
    Tmux::require();
    let bin = env!("CARGO_BIN_EXE_opsconsole");
    let dir = tempfile::tempdir().expect("tempdir");
    // 64 MB at 4 MiB/s: the upload lasts long enough to be seen, cancelled and resumed.
    let ws = workspace(dir.path(), 4096, 64);
    let state = dir.path().join("state");
    let daemon = Daemon(
        Command::new(bin)
            .arg("-w")
            .arg(&ws)
            .args(["sync", "--daemon"])
            .env("XDG_STATE_HOME", &state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("daemon"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while opsconsole::sync::lock::holder(&ws).is_none() {
        assert!(Instant::now() < deadline, "the daemon never took the workspace lock");
        std::thread::sleep(Duration::from_millis(50));
    }
    let t =
        Tmux::new("sync-daemon", 120, 36, &format!("env XDG_STATE_HOME={} {bin} -w {}", state.display(), ws.display()));
    let pid = daemon.0.id();
    t.wait_for("the daemon's upload in flight", |s| {
        s.contains(&format!("Uploads · daemon pid {pid}")) && s.contains("v1_step_100.pt") && s.contains('%')
    });
    for _ in 0..3 {
        t.send(&["Tab"]);
    }
    t.send(&["c"]);
    // The level line points below, where the failure has its own line with its reason.
    t.wait_for("the cancelled upload", |s| {
        s.contains("✗ 1 failed (below)") && s.contains("✗ L3 checkpoints/v1_step_100.pt: cancelled by you")
    });
    t.send(&["R"]);
    t.wait_for("the upload stored after the retry", |s| {
        s.contains("L3 r3      same disk: not a backup · nothing pending") && !s.contains("✗") && s.contains("last ok")
    });
    assert_eq!(
        opsconsole::sync::hash::sha256_file(&dir.path().join("r3/checkpoints/v1_step_100.pt")).expect("stored"),
        opsconsole::sync::hash::sha256_file(&ws.join("checkpoints/v1_step_100.pt")).expect("source"),
    );
    // The console never started an engine of its own: the daemon still holds the lock.
    assert_eq!(opsconsole::sync::lock::holder(&ws), Some(pid));
    t.send(&["q"]);
}

#[test]
#[ignore = "needs tmux"]
fn a_console_without_a_daemon_runs_its_own_engine() {
    Tmux::require();
    let bin = env!("CARGO_BIN_EXE_opsconsole");
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = workspace(dir.path(), 0, 8);
    let state = dir.path().join("state");
    let t =
        Tmux::new("sync-own", 120, 36, &format!("env XDG_STATE_HOME={} {bin} -w {}", state.display(), ws.display()));
    t.wait_for("the upload stored by the console's engine", |s| {
        s.contains("Uploads · engine in this console")
            && s.contains("L3 r3      same disk: not a backup · nothing pending")
            && s.contains("last ok")
    });
    assert_eq!(
        opsconsole::sync::hash::sha256_file(&dir.path().join("r3/checkpoints/v1_step_100.pt")).expect("stored"),
        opsconsole::sync::hash::sha256_file(&ws.join("checkpoints/v1_step_100.pt")).expect("source"),
    );
    assert!(opsconsole::sync::lock::holder(&ws).is_some(), "the console holds the engine lock");
    t.send(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while opsconsole::sync::lock::holder(&ws).is_some() {
        assert!(Instant::now() < deadline, "the lock was not released after quitting");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A daemon outlives the terminal or pipe it was started from: with its stderr closed (an
/// SSH session gone, `| head` done) its progress lines have nowhere to go, and it keeps
/// uploading instead of dying on the first line it cannot write.
#[test]
fn a_daemon_whose_stderr_is_closed_keeps_uploading_and_stops_cleanly() {
    let bin = env!("CARGO_BIN_EXE_opsconsole");
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = workspace(dir.path(), 0, 2);
    let mut child = Command::new(bin)
        .arg("-w")
        .arg(&ws)
        .args(["sync", "--daemon"])
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("daemon");
    // The reading end goes away at once: every later write to stderr fails with EPIPE.
    drop(child.stderr.take());
    let stored = |name: &str| dir.path().join("r3/checkpoints").join(name);
    let wait_stored = |name: &str, child: &mut Child| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stored(name).exists() {
            assert!(child.try_wait().expect("try_wait").is_none(), "the daemon died with its stderr closed");
            assert!(Instant::now() < deadline, "{name} was never stored");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_stored("v1_step_100.pt", &mut child);
    // A second checkpoint, after the first lines failed to print: still stored.
    std::fs::write(ws.join("checkpoints/v1_step_200.pt"), vec![7u8; 1 << 20]).expect("second");
    wait_stored("v1_step_200.pt", &mut child);
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM)
        .expect("SIGTERM");
    let status = child.wait().expect("wait");
    assert!(status.success(), "a clean stop after SIGTERM, not a panic: {status:?}");
}

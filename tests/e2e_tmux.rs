//! The real binary in tmux: `opsconsole demo`, wait for the panels, `?`, `q`, and the shell
//! is back (alternate screen left, cursor shown).

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn available() -> bool {
        Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
    }

    fn new(name: &str, w: u16, h: u16, cmd: &str) -> Self {
        let socket = format!("opsconsole-test-{name}-{}", std::process::id());
        let t = Tmux { socket };
        let ok = t
            .cmd(&["new-session", "-d", "-s", "main", "-x", &w.to_string(), "-y", &h.to_string(), cmd])
            .status
            .success();
        assert!(ok, "tmux new-session failed");
        t
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs")
    }

    fn capture(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "main"]).stdout).into_owned()
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "main"];
        args.extend_from_slice(keys);
        self.cmd(&args);
    }

    fn display(&self, fmt: &str) -> String {
        String::from_utf8_lossy(&self.cmd(&["display-message", "-p", "-t", "main", fmt]).stdout).trim().to_string()
    }

    /// Polls the pane until `pred` holds; the deadline is generous and is not the assertion.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.capture();
            if pred(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-L").arg(&self.socket).arg("kill-server").output();
    }
}

#[test]
fn demo_runs_shows_the_panels_help_and_quits_back_to_the_shell() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed (CI installs it through .ci/run)");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_opsconsole");
    let dir = tempfile::tempdir().expect("tempdir");
    let demo_dir = dir.path().join("demo");
    let t = Tmux::new("demo", 100, 30, "env PS1='READY$ ' bash --norc --noprofile");
    t.wait_for("the shell prompt", |s| s.contains("READY$"));
    let state = dir.path().join("state");
    t.send(&[&format!("XDG_STATE_HOME={} {bin} demo --dir {}", state.display(), demo_dir.display()), "Enter"]);
    let screen = t.wait_for("all four panels", |s| {
        ["GPU", "Disk", "Log", "Uploads", "host ", "DEMO"].iter().all(|w| s.contains(w)) && s.contains('%')
    });
    assert!(screen.contains("q  quit"), "footer shows keys:\n{screen}");
    assert_eq!(t.display("#{alternate_on}"), "1", "the console runs on the alternate screen");

    // The simulated trainer is really running beside the console.
    let log = demo_dir.join("experiments/v01/logs/train.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("'loss'")) {
        assert!(Instant::now() < deadline, "the demo trainer wrote no loss line");
        std::thread::sleep(Duration::from_millis(200));
    }

    t.send(&["?"]);
    t.wait_for("the help overlay", |s| s.contains("show or hide this help") && s.contains("esc or ? closes"));
    t.send(&["q"]);
    let screen = t.wait_for("the shell to come back", |s| s.contains("demo workspace kept at"));
    assert!(!screen.contains("show or hide this help"), "the console's screen is gone:\n{screen}");
    t.wait_for("a fresh prompt", |s| s.trim_end().ends_with("READY$"));
    assert_eq!(t.display("#{alternate_on}"), "0", "alternate screen left");
    assert_eq!(t.display("#{cursor_flag}"), "1", "cursor shown");
    assert!(demo_dir.join("journal.md").is_file(), "--dir keeps the workspace");
    assert!(std::fs::read_dir(demo_dir.join("checkpoints")).is_ok());
}

#[test]
fn sigterm_restores_the_terminal() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed (CI installs it through .ci/run)");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_opsconsole");
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tmux::new("term", 80, 24, "env PS1='READY$ ' bash --norc --noprofile");
    t.wait_for("the shell prompt", |s| s.contains("READY$"));
    t.send(&[
        &format!("cd {} && XDG_STATE_HOME={}/state {bin}; echo EXIT=$?", dir.path().display(), dir.path().display()),
        "Enter",
    ]);
    t.wait_for("the console", |s| s.contains("Uploads") && s.contains("host "));
    let pid = t.display("#{pane_pid}");
    // The console is the shell's child; signal it, not the shell.
    let out = Command::new("pkill").args(["-TERM", "-P", &pid, "-x", "opsconsole"]).status().expect("pkill");
    assert!(out.success(), "pkill found the console");
    t.wait_for("the shell after SIGTERM", |s| s.contains("EXIT=0"));
    assert_eq!(t.display("#{alternate_on}"), "0", "alternate screen left");
    assert_eq!(t.display("#{cursor_flag}"), "1", "cursor shown");
}

//! A tmux server of its own per test: the real binary in a real terminal, driven by
//! `send-keys` and read back with `capture-pane`. Killed on drop.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Fails the test when tmux is not installed. Tests that use tmux are
    /// `#[ignore = "needs tmux"]`: `cargo test -- --include-ignored` runs them, and
    /// `.ci/run` installs tmux first, so a missing tmux is a failure, never a quiet pass.
    pub fn require() {
        let ok = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
        assert!(ok, "this test needs tmux, which is not installed (.ci/run installs it)");
    }

    /// A session named `main`, `w` x `h`, running `cmd`.
    pub fn new(name: &str, w: u16, h: u16, cmd: &str) -> Self {
        let t = Tmux { socket: format!("opsconsole-test-{name}-{}", std::process::id()) };
        let out = t.cmd(&["new-session", "-d", "-s", "main", "-x", &w.to_string(), "-y", &h.to_string(), cmd]);
        assert!(out.status.success(), "tmux new-session failed: {}", String::from_utf8_lossy(&out.stderr));
        t
    }

    /// A bash with the prompt `READY$ `, once the prompt is on screen.
    pub fn shell(name: &str, w: u16, h: u16) -> Self {
        let t = Self::new(name, w, h, "env PS1='READY$ ' bash --norc --noprofile");
        t.wait_for("the shell prompt", |s| s.contains("READY$"));
        t
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs")
    }

    /// The visible pane.
    pub fn capture(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "main"]).stdout).into_owned()
    }

    /// The pane with its scrollback.
    pub fn history(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-S", "-500", "-t", "main"]).stdout).into_owned()
    }

    /// Types `keys` (tmux key names such as `Enter`, `Escape`, `C-c`, or literal text).
    pub fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "main"];
        args.extend_from_slice(keys);
        self.cmd(&args);
    }

    /// A tmux format expanded for the pane, such as `#{pane_pid}` or `#{alternate_on}`.
    pub fn display(&self, fmt: &str) -> String {
        String::from_utf8_lossy(&self.cmd(&["display-message", "-p", "-t", "main", fmt]).stdout).trim().to_string()
    }

    /// Presses `q` and waits until `done` holds, answering `y` when the console asks first
    /// (an upload of its own engine is in flight, as in the demo).
    pub fn quit(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        self.send(&["q"]);
        let mut answered = false;
        self.wait_for(what, |s| {
            if !answered && s.contains("Quit? ") && s.contains("quit anyway") {
                answered = true;
                self.send(&["y"]);
            }
            done(s)
        })
    }

    /// Polls the pane until `pred` holds. The deadline is generous (a loaded 2-core CI
    /// machine) and is not the assertion: the predicate is.
    pub fn wait_for(&self, what: &str, mut pred: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let screen = self.capture();
            if pred(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-L").arg(&self.socket).arg("kill-server").output();
    }
}

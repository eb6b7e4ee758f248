//! The real binary in tmux: `opsconsole demo`, wait for the panels, `?`, `q`, and the shell
//! is back (alternate screen left, cursor shown).

use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/procstat.rs"]
mod procstat;
#[path = "support/tmux.rs"]
mod tmux;
use tmux::Tmux;

#[test]
#[ignore = "needs tmux"]
fn demo_runs_shows_the_panels_help_and_quits_back_to_the_shell() {
    Tmux::require();
    let bin = env!("CARGO_BIN_EXE_opsconsole");
    let dir = tempfile::tempdir().expect("tempdir");
    let demo_dir = dir.path().join("demo");
    let t = Tmux::shell("demo", 100, 30);
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
    let screen = t.quit("the shell to come back", |s| s.contains("demo workspace kept at"));
    assert!(!screen.contains("show or hide this help"), "the console's screen is gone:\n{screen}");
    t.wait_for("a fresh prompt", |s| s.trim_end().ends_with("READY$"));
    assert_eq!(t.display("#{alternate_on}"), "0", "alternate screen left");
    assert_eq!(t.display("#{cursor_flag}"), "1", "cursor shown");
    assert!(demo_dir.join("journal.md").is_file(), "--dir keeps the workspace");
    let log = std::fs::read_to_string(state.join("opsconsole/opsconsole.log")).expect("the console's log file");
    assert!(log.contains("demo workspace created"), "{log}");
    assert!(std::fs::read_dir(demo_dir.join("checkpoints")).is_ok());
}

#[test]
#[ignore = "needs tmux"]
fn sigterm_sighup_and_sigint_restore_the_terminal() {
    Tmux::require();
    let bin = env!("CARGO_BIN_EXE_opsconsole");
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tmux::shell("term", 80, 24);
    // SIGINT: `kill -INT` from outside (in raw mode ctrl-c is a key, not a signal).
    for sig in ["TERM", "HUP", "INT"] {
        t.send(&["clear", "Enter"]);
        let cmd = format!(
            "cd {} && XDG_STATE_HOME={}/state {bin}; echo EXIT-{sig}=$?",
            dir.path().display(),
            dir.path().display()
        );
        t.send(&[&cmd, "Enter"]);
        t.wait_for("the console", |s| s.contains("Uploads") && s.contains("host "));
        let pid = t.display("#{pane_pid}");
        // The console is the shell's child; signal it, not the shell.
        let out = Command::new("pkill").args([&format!("-{sig}"), "-P", &pid, "-x", "opsconsole"]).status();
        assert!(out.expect("pkill").success(), "pkill found the console");
        t.wait_for("the shell after the signal", |s| s.contains(&format!("EXIT-{sig}=0")));
        assert_eq!(t.display("#{alternate_on}"), "0", "alternate screen left after SIG{sig}");
        assert_eq!(t.display("#{cursor_flag}"), "1", "cursor shown after SIG{sig}");
    }
}

#[test]
#[ignore = "needs tmux"]
fn a_panic_restores_the_terminal_and_reports() {
    Tmux::require();
    let bin = env!("CARGO_BIN_EXE_opsconsole");
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tmux::shell("panic", 100, 30);
    let cmd = format!(
        "cd {} && XDG_STATE_HOME={}/state RUST_BACKTRACE=0 {bin} --panic-after-first-frame; echo EXIT=$?",
        dir.path().display(),
        dir.path().display()
    );
    t.send(&[&cmd, "Enter"]);
    t.wait_for("the shell after the panic", |s| s.lines().any(|l| l.starts_with("EXIT=")));
    let screen = t.history();
    assert!(screen.contains("EXIT=101"), "a panic exits with 101:\n{screen}");
    assert!(screen.contains("panic requested by --panic-after-first-frame"), "the report is readable:\n{screen}");
    assert_eq!(t.display("#{alternate_on}"), "0", "alternate screen left");
    assert_eq!(t.display("#{cursor_flag}"), "1", "cursor shown");
}

/// The step shown in the Log panel's values row.
fn shown_step(screen: &str) -> Option<u64> {
    let at = screen.find("step ")?;
    screen[at + 5..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[test]
#[ignore = "needs tmux"]
fn demo_log_panel_follows_the_trainer_through_rotation() {
    Tmux::require();
    let bin = env!("CARGO_BIN_EXE_opsconsole");
    let dir = tempfile::tempdir().expect("tempdir");
    let demo_dir = dir.path().join("demo");
    let t = Tmux::shell("demolog", 160, 48);
    let state = dir.path().join("state");
    // Speed 4: 80 steps a second, so the log rotates (step 600) within seconds.
    t.send(&[
        &format!("XDG_STATE_HOME={} {bin} demo --speed 4 --dir {}", state.display(), demo_dir.display()),
        "Enter",
    ]);
    let screen = t.wait_for("the log panel with metrics and a chart", |s| {
        s.contains("Log experiments/v01/logs/train.log") && s.contains("loss vs step") && s.contains("lr ")
    });
    assert!(screen.contains("{'loss'"), "log lines are shown:\n{screen}");
    let rotated = demo_dir.join("experiments/v01/logs/train.log.1");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !rotated.exists() {
        assert!(Instant::now() < deadline, "the demo trainer never rotated its log");
        std::thread::sleep(Duration::from_millis(100));
    }
    // After the rotation the panel keeps following the new file.
    let screen = t.wait_for("steps past the rotation", |s| shown_step(s).is_some_and(|n| n > 800));
    assert!(screen.contains("eval "), "an eval loss was parsed:\n{screen}");

    // The CLI twins read the same log.
    let out = Command::new(bin).args(["status", "--json", "-w"]).arg(&demo_dir).output().expect("status runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert!(v["log"]["path"].as_str().is_some_and(|p| p.ends_with("experiments/v01/logs/train.log")), "{v}");
    assert!(v["metrics"]["step"].as_u64().is_some_and(|s| s > 600), "{v}");
    assert!(v["metrics"]["loss"].is_f64(), "{v}");
    assert_eq!(v["log"]["stalled"], false);
    let out = Command::new(bin).args(["log", "-n", "3", "-w"]).arg(&demo_dir).output().expect("log runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);

    t.send(&["f"]);
    t.wait_for("paused", |s| s.contains("· paused"));
    t.quit("the shell to come back", |s| s.contains("demo workspace kept at"));
}

#[test]
#[ignore = "needs tmux"]
fn a_closed_terminal_ends_the_console() {
    Tmux::require();
    let dir = tempfile::tempdir().expect("tempdir");
    let cmd = console_cmd(dir.path(), dir.path());
    let t = Tmux::new("hup", 80, 24, &cmd);
    t.wait_for("the console", |s| s.contains("Uploads") && s.contains("host "));
    let pid: i32 = t.display("#{pane_pid}").parse().expect("pane pid");
    // The pane goes away as when an SSH session drops.
    t.cmd(&["kill-server"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Ended: gone, or a zombie. The console's parent was the tmux server, so once that is
    // killed the console belongs to the PID namespace's first process, which in a container
    // may be one that never reaps (cargo itself, under `unshare --pid --fork`): the exited
    // console then stays a zombie, which signal 0 still finds.
    let ended = || procstat::fields(&pid.to_string()).is_none_or(|f| f[0] == "Z");
    while !ended() {
        assert!(Instant::now() < deadline, "the console outlived its terminal");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the console detached from any terminal (a new session, no controlling terminal),
/// with `stdout` as given and no input.
fn without_terminal(stdout: std::process::Stdio) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opsconsole"));
    cmd.arg("-w").arg(dir.path()).env("XDG_STATE_HOME", dir.path().join("state"));
    cmd.stdin(std::process::Stdio::null()).stdout(stdout).stderr(std::process::Stdio::piped());
    // SAFETY: the hook only makes the setsid(2) system call (no allocation, no locks),
    // which is async-signal-safe between fork and exec.
    unsafe {
        cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(std::io::Error::from));
    }
    cmd.output().expect("run")
}

#[test]
fn without_a_terminal_the_console_says_so_in_words() {
    // Output into a pipe.
    let out = without_terminal(std::process::Stdio::piped());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the console needs a terminal, and its output is not one"), "{err}");
    assert!(err.contains("opsconsole status --json"), "says what scripts use: {err}");
    assert!(!err.contains("os error"), "{err}");
    // Output on a terminal (a pty nobody controls), but no terminal to read keys from.
    let (mut master, mut slave) = (0, 0);
    // SAFETY: valid out-pointers; no name, termios or window size asked for.
    let rc =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: `slave` is an open descriptor this test owns; Stdio takes it over.
    let stdout = unsafe { <std::process::Stdio as std::os::fd::FromRawFd>::from_raw_fd(slave) };
    let out = without_terminal(stdout);
    // SAFETY: `master` is open and ours.
    unsafe { libc::close(master) };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the console needs a terminal to read keys from"), "{err}");
    assert!(err.contains("/dev/tty: No such device or address"), "names what was tried: {err}");
}

#[test]
#[ignore = "needs tmux"]
fn x_opens_the_checklist_and_a_typed_override_runs_the_shutdown_command() {
    Tmux::require();
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).expect("mkdir");
    let marker = dir.path().join("shutdown-ran");
    // A metadata server stand-in on 127.0.0.1 gives the external address.
    let md = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let md_port = md.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in md.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let reply = if req.contains("Metadata-Flavor: Google") {
                "HTTP/1.1 200 OK\r\nMetadata-Flavor: Google\r\nContent-Length: 12\r\n\r\n34.123.45.67"
            } else {
                "HTTP/1.1 403 Forbidden\r\nMetadata-Flavor: Google\r\nContent-Length: 0\r\n\r\n"
            };
            let _ = s.write_all(reply.as_bytes());
        }
    });
    // Uploads off, git off; the requirements item fails (nothing frozen).
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!(
            "[gpu]\nenabled = false\n\n[disk]\nwarn_pct = 99.0\ncritical_pct = 99.5\n\n[sync.l2]\nenabled = false\n\n\
             [sync.l3]\nenabled = false\n\n[checklist]\ngit = false\n\n[shutdown]\ncommand = \"echo down > '{}'\"\n\n\
             [external_ip]\nlookup = \"on\"\nurl = \"http://127.0.0.1:{md_port}/computeMetadata/v1/x\"\n",
            marker.display()
        ),
    )
    .expect("config");
    let cmd = console_cmd(dir.path(), &ws);
    let t = Tmux::new("checklist", 100, 30, &cmd);
    t.wait_for("the console with the external address", |s| s.contains("Uploads") && s.contains("· 34.123.45.67"));
    t.send(&["x"]);
    let screen = t.wait_for("the checklist", |s| s.contains("Pre-shutdown checklist") && s.contains("✗ requirements"));
    assert!(screen.contains("external address 34.123.45.67"), "{screen}");
    assert!(screen.contains("1 of 7 failing: requirements"), "{screen}");
    assert!(screen.contains("- git") && screen.contains("checklist.git = false"), "{screen}");
    assert!(screen.contains("frozen_requirements.txt does not exist"), "{screen}");
    t.send(&["S"]);
    t.wait_for("the override prompt", |s| s.contains("Override (requirements), enter:"));
    assert!(!marker.exists(), "nothing runs before the override");
    t.send(&["-l", "requirements"]);
    t.send(&["Enter"]);
    t.wait_for("the last question", |s| s.contains("Shut down now with requirements overridden?"));
    t.send(&["y"]);
    t.wait_for("the command's end", |s| s.contains("the shutdown command finished (exit 0)"));
    assert_eq!(std::fs::read_to_string(&marker).expect("the command ran"), "down\n");
    // The decision and the override are in the ledger's history and the console's log.
    let ledger = opsconsole::sync::ledger::Ledger::open(&ws).expect("ledger");
    let ev: Vec<(String, String)> =
        ledger.recent_events(10).expect("events").into_iter().map(|e| (e.kind, e.detail)).collect();
    assert_eq!(ev[0].0, "shutdown", "{ev:?}");
    assert!(ev[1].0 == "shutdown_override" && ev[1].1.starts_with("requirements overridden"), "{ev:?}");
    let log =
        std::fs::read_to_string(dir.path().join("state").join("opsconsole/opsconsole.log")).expect("the console's log");
    assert!(log.contains("overridden by the user") && log.contains("requirements"), "{log}");
    // Esc closes it; the console is still there.
    t.send(&["Escape"]);
    t.wait_for("the panels again", |s| !s.contains("Pre-shutdown checklist") && s.contains("Uploads"));
}

/// Issue 15 item 1: a fake trainer writes its log beside the console; the Log panel says
/// it is running with its pid, rate and ETA. Killed, the run-state line says it exited
/// (SIGKILL, from the shell's `Killed` line) and the rate and ETA are gone.
#[test]
#[ignore = "needs tmux"]
fn a_killed_trainer_shows_as_exited_and_its_eta_and_rate_disappear() {
    Tmux::require();
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, log) = log_only_workspace(dir.path());
    // The fake trainer: a progress line with rate and ETA every 200 ms, appended to the log.
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut trainer = Reaped(
        Command::new("sh")
            .arg("-c")
            .arg(
                "i=1000; while :; do i=$((i+1)); \
             echo \"{'loss': 3.6108, 'grad_norm': 0.8123, 'learning_rate': 0.0003, 'epoch': 0.15}\"; \
             echo \"  5%|5         | $i/24000 [01:00<19:05, 19.90it/s]\"; sleep 0.2; done >> \"$0\"",
            )
            .arg(&log)
            .spawn()
            .expect("the fake trainer"),
    );
    let pid = trainer.0.id();
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("it/s")) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let cmd = console_cmd(dir.path(), &ws);
    let t = Tmux::new("runstate", 100, 30, &cmd);
    let screen = t.wait_for("the running trainer", |s| s.contains(&format!("▶ running · pid {pid}")));
    assert!(screen.contains("it/s 19.90") && screen.contains("eta 19m05s"), "{screen}");

    trainer.0.kill().expect("kill");
    trainer.0.wait().expect("reap");
    std::thread::sleep(Duration::from_millis(500)); // the loop's last `sleep 0.2` ends
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).expect("open");
    std::io::Write::write_all(&mut f, format!("./train.sh: line 3: {pid} Killed    python train.py\n").as_bytes())
        .expect("append");
    drop(f);
    let screen = t.wait_for("the exited run", |s| s.contains("■ exited · killed (SIGKILL) · last line"));
    assert!(!screen.contains("it/s 19.90"), "no rate once exited:\n{screen}");
    assert!(!screen.contains("eta "), "no ETA once exited:\n{screen}");
    assert!(screen.contains("step 10") && screen.contains("loss 3.611"), "the last values stay:\n{screen}");
}

/// Issue 15: a CUDA OOM appended to the followed log rings the terminal bell once, which
/// tmux turns into the alert flag of the console's window while the user is in another.
#[test]
#[ignore = "needs tmux"]
fn an_oom_rings_the_bell_and_tmux_flags_the_consoles_window() {
    Tmux::require();
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, log) = log_only_workspace(dir.path());
    std::fs::write(&log, "{'loss': 3.6108, 'grad_norm': 0.8123, 'learning_rate': 0.0003, 'epoch': 0.15}\n")
        .expect("log");
    let cmd = console_cmd(dir.path(), &ws);
    let t = Tmux::new("bell", 100, 30, &cmd);
    t.wait_for("the log", |s| s.contains("loss 3.611"));
    let flag = |t: &Tmux| {
        let out = t.cmd(&["display-message", "-p", "-t", "main:0", "#{window_bell_flag}"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // The user goes to another window; the console's stays quiet while nothing is new.
    let out = t.cmd(&["new-window", "-t", "main", "sleep 600"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(flag(&t), "0", "no bell before the OOM");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).expect("open");
    std::io::Write::write_all(
        &mut f,
        b"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 22.05 GiB\n",
    )
    .expect("append");
    drop(f);
    let deadline = Instant::now() + Duration::from_secs(60);
    while flag(&t) != "1" {
        assert!(Instant::now() < deadline, "tmux never flagged the console's window");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A workspace under `dir` with one experiment's (empty) log folder and a config with the GPU
/// and both upload levels off: nothing but the log to watch. Returns the workspace and the
/// path of its log (not created).
fn log_only_workspace(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let ws = dir.join("ws");
    let logs = ws.join("experiments/v1/logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    std::fs::write(
        ws.join("opsconsole.toml"),
        "[gpu]\nenabled = false\n\n[sync.l2]\nenabled = false\n\n[sync.l3]\nenabled = false\n",
    )
    .expect("config");
    (ws, logs.join("train.log"))
}

/// A tmux pane's command: the console on `ws`, its own log files under `dir/state`.
fn console_cmd(dir: &std::path::Path, ws: &std::path::Path) -> String {
    format!(
        "XDG_STATE_HOME={} exec {} -w {}",
        dir.join("state").display(),
        env!("CARGO_BIN_EXE_opsconsole"),
        ws.display()
    )
}

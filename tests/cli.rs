//! The CLI's text outputs, through the binary: `status` (what its JSON has, in words),
//! shell completions and the man pages.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn opsconsole(ws: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("-w")
        .arg(ws)
        .args(args)
        .env("XDG_STATE_HOME", ws.join(".state"))
        .env_remove("OPSCONSOLE_CONFIG")
        .output()
        .expect("run opsconsole")
}

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).expect("utf8")
}

/// Issue 15 item 8: `status` in words has what `status --json` has: the checkpoints
/// (count, size, newest, confirmations), what takes the space, each disk's growth and
/// time to each level, and each upload level's counts and last success.
#[test]
fn status_text_has_checkpoints_growth_and_each_levels_last_success() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = &dir.path().join("ws");
    std::fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
    for step in [100, 200] {
        std::fs::write(ws.join(format!("checkpoints/v1_step_{step}.pt")), vec![7u8; 3_000_000]).expect("write");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&opsconsole(ws, &["status", "--json"]).stdout).expect("status --json");
    let disk = json["disks"]
        .as_array()
        .expect("disks")
        .iter()
        .filter(|d| ws.starts_with(d["mount"].as_str().expect("mount")))
        .max_by_key(|d| d["mount"].as_str().map(str::len))
        .cloned()
        .expect("the workspace's disk");
    let mount = disk["mount"].as_str().expect("mount").to_string();
    let used = disk["used_bytes"].as_u64().expect("used");
    // Fifty minutes of history growing 20 GB an hour, ending at the disk's use now.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let mut hist = String::new();
    for i in 0..=10u64 {
        let ago = 3000 - i * 300;
        let at_used = used.saturating_sub(ago * 20_000_000_000 / 3600);
        hist.push_str(&format!("{{\"mount\":{mount:?},\"at_unix\":{},\"used_bytes\":{at_used}}}\n", now - ago - 1));
    }
    std::fs::write(ws.join(".opsconsole/disk-history.jsonl"), hist).expect("history");

    let text = stdout(&opsconsole(ws, &["status"]));
    let json: serde_json::Value =
        serde_json::from_slice(&opsconsole(ws, &["status", "--json"]).stdout).expect("status --json");
    // Without NVML its message is said once (the GPU line), not again on the idle line.
    let nvml = json["nvml"]["message"].as_str().expect("nvml message");
    if json["gpus"].as_array().is_some_and(|g| g.is_empty()) && nvml.len() > 20 {
        assert_eq!(text.matches(nvml).count(), 1, "{text}");
    }
    // Checkpoints: count and size (as the JSON lists them), the newest, none confirmed.
    assert_eq!(json["checkpoints"].as_array().map(Vec::len), Some(2));
    assert!(text.contains("checkpoints: 2 (6.0 MB) · newest step 200, "), "{text}");
    assert!(text.contains(" · on no remote 2\n"), "{text}");
    assert!(text.contains("space: checkpoints 6.0 MB · logs 0 B"), "{text}");
    // The disk's growth and time to full, under its line.
    let line = text.lines().position(|l| l.trim_start().starts_with(&mount)).expect("the disk's line");
    let growth = text.lines().nth(line + 1).expect("a line under it");
    assert!(growth.trim_start().starts_with("growing +"), "{text}");
    assert!(growth.contains("/h") && growth.contains("full in "), "{growth}");
    assert!(
        json["disks"]
            .as_array()
            .expect("disks")
            .iter()
            .any(|d| d["growth_bytes_per_hour"].as_f64().is_some_and(|g| g > 1e9))
    );
    // Upload levels: counts and the last success (never, here), and the engine.
    assert!(text.contains("uploads (no sync engine running: `opsconsole sync --daemon`):"), "{text}");
    assert!(text.contains("L2 drive    remote 'drive' not configured"), "{text}");
    assert_eq!(json["sync"]["levels"][0]["last_success_unix"], serde_json::Value::Null);

    // A configured level after a pass: its counts and its last success.
    let remote = dir.path().join("remote-drive");
    std::fs::create_dir(&remote).expect("mkdir");
    std::fs::create_dir_all(ws.join("experiments/v1/logs")).expect("mkdir");
    std::fs::write(ws.join("experiments/v1/logs/train.log"), "step 1 | loss 2\n").expect("log");
    let remote_toml = toml::Value::String(remote.display().to_string());
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!("[remotes.drive]\nkind = \"local\"\npath = {remote_toml}\nsame_disk = true\n"),
    )
    .expect("config");
    stdout(&opsconsole(ws, &["remote", "check", "drive", "--init"]));
    stdout(&opsconsole(ws, &["sync", "--once"]));
    let text = stdout(&opsconsole(ws, &["status"]));
    let l2 = text.lines().find(|l| l.trim_start().starts_with("L2 drive")).expect("the L2 line");
    let json: serde_json::Value =
        serde_json::from_slice(&opsconsole(ws, &["status", "--json"]).stdout).expect("status --json");
    let confirmed = json["sync"]["levels"][0]["confirmed_files"].as_u64().expect("confirmed_files");
    assert!(confirmed >= 1, "the log at least");
    assert!(json["sync"]["levels"][0]["last_success_unix"].as_u64().is_some());
    assert!(l2.contains(&format!("0 pending (0 B), 0 failed, {confirmed} confirmed, last ok ")), "{l2}");
    assert!(l2.ends_with(" ago, same disk: not a backup"), "{l2}");
}

/// The subcommands a user sees (`--help` lists them): every completion and man page names
/// each of them.
fn visible_subcommands() -> Vec<String> {
    use clap::CommandFactory;
    opsconsole::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

fn run_plain(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_opsconsole")).args(args).output().expect("run opsconsole")
}

/// A tool this test needs: present, or the test fails when `CI` is set (a pass that
/// skipped is no pass) and says so otherwise.
fn have(tool: &str) -> bool {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "{tool} is needed for this test");
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

/// Issue 15: `opsconsole completions bash` is a script bash loads, and completing with it
/// offers the subcommands and their flags.
#[test]
fn bash_completion_completes_subcommands_and_flags() {
    let out = run_plain(&["completions", "bash"]);
    let script = stdout(&out);
    let subs = visible_subcommands();
    assert!(subs.len() >= 15, "{subs:?}");
    for sub in &subs {
        assert!(script.contains(sub.as_str()), "{sub} missing from the bash script");
    }
    assert!(!script.contains("demo-trainer"), "hidden subcommands are not offered");
    if !have("bash") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("opsconsole.bash");
    std::fs::write(&file, &script).expect("write");
    // What bash offers at the cursor: the function the script registers, called as
    // bash's programmable completion calls it.
    let complete = |words: &[&str]| -> Vec<String> {
        let line = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ");
        let cmd = format!(
            "source '{}' || exit 9; f=$(complete -p opsconsole | sed -E 's/.*-F ([^ ]+).*/\\1/'); \
             COMP_WORDS=({line}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); COMP_LINE=\"${{COMP_WORDS[*]}}\"; \
             COMP_POINT=${{#COMP_LINE}}; \"$f\" opsconsole \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        );
        let out = Command::new("bash").arg("--norc").arg("-c").arg(cmd).output().expect("bash");
        assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(complete(&["opsconsole", "sta"]), ["status"]);
    let all = complete(&["opsconsole", ""]);
    for sub in &subs {
        assert!(all.contains(sub), "{sub} not offered: {all:?}");
    }
    let sync = complete(&["opsconsole", "sync", "--"]);
    for flag in ["--daemon", "--once", "--verify", "--workspace"] {
        assert!(sync.iter().any(|f| f == flag), "{flag} not offered after sync: {sync:?}");
    }
    assert_eq!(complete(&["opsconsole", "completions", "fi"]), ["fish"]);
}

#[test]
fn zsh_and_fish_completions_name_every_subcommand() {
    let zsh = stdout(&run_plain(&["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef opsconsole"), "{}", &zsh[..80.min(zsh.len())]);
    let fish = stdout(&run_plain(&["completions", "fish"]));
    assert!(fish.contains("complete -c opsconsole"), "{fish}");
    for sub in visible_subcommands() {
        assert!(zsh.contains(&format!("'{sub}:")), "{sub} missing from zsh");
        assert!(fish.contains(&format!("-a \"{sub}\"")), "{sub} missing from fish");
    }
    // An unknown shell is refused with the list of known ones, exit 2.
    let out = run_plain(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bash, elvish, fish, powershell, zsh"));
}

/// Issue 15: `opsconsole man` is roff that man renders, naming every subcommand; `--dir`
/// writes a page per subcommand.
#[test]
fn man_pages_render() {
    let page = stdout(&run_plain(&["man"]));
    assert!(page.contains(".TH opsconsole 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH SUBCOMMANDS", ".SH VERSION"] {
        assert!(page.contains(section), "{section} missing");
    }
    for sub in visible_subcommands() {
        assert!(page.contains(&format!("opsconsole\\-{}(1)", sub.replace('-', "\\-"))), "{sub} missing:\n{page}");
    }
    let dir = tempfile::tempdir().expect("tmp");
    let listed = stdout(&run_plain(&["man", "--dir", &dir.path().display().to_string()]));
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(listed.lines().count(), files.len(), "{listed}");
    for want in
        ["opsconsole.1", "opsconsole-status.1", "opsconsole-sync.1", "opsconsole-remote-check.1", "opsconsole-man.1"]
    {
        assert!(files.iter().any(|f| f == want), "{want} not written: {files:?}");
    }
    assert!(!files.iter().any(|f| f.contains("demo-trainer")), "{files:?}");
    // A folder that does not exist: an error naming it, nothing written anywhere else.
    let missing = dir.path().join("nope");
    let out = run_plain(&["man", "--dir", &missing.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"), "{}", String::from_utf8_lossy(&out.stderr));
    if !have("man") {
        return;
    }
    for f in ["opsconsole.1", "opsconsole-sync.1"] {
        let out = Command::new("man")
            .arg("-l")
            .arg(dir.path().join(f))
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .expect("man");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "man -l {f}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{f}:\n{text}");
        if f == "opsconsole-sync.1" {
            assert!(text.contains("--daemon") || text.contains("−−daemon"), "{text}");
        }
    }
}

/// A stand-in for `systemctl` / `loginctl`: appends its arguments to `log` and answers
/// as told (`show-environment` fails with `fail_manager`, `enable-linger` with
/// `fail_linger`; `show-user … Linger` says `no`). Never a real systemd.
fn stand_in(dir: &Path, name: &str, log: &Path, fail_manager: bool, fail_linger: bool) -> std::path::PathBuf {
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n\
         case \"$*\" in\n\
           *show-environment*) {};;\n\
           *enable-linger*) {};;\n\
           *show-user*) echo no;;\n\
         esac\nexit 0\n",
        log.display(),
        if fail_manager {
            "echo 'Failed to connect to bus: No medium found' >&2; exit 1"
        } else {
            "echo PATH=/usr/bin"
        },
        if fail_linger { "echo 'Could not enable linger: Access denied' >&2; exit 1" } else { ":" },
    );
    std::fs::write(&path, script).expect("write stand-in");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

struct ServiceRig {
    dir: tempfile::TempDir,
    ws: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl ServiceRig {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let ws = dir.path().join("my ws");
        std::fs::create_dir_all(&ws).expect("mkdir");
        let log = dir.path().join("calls.log");
        Self { dir, ws, log }
    }

    fn config_home(&self) -> std::path::PathBuf {
        self.dir.path().join("config")
    }

    fn run(&self, args: &[&str], systemctl: &Path, loginctl: &Path) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_opsconsole"))
            .arg("-w")
            .arg(&self.ws)
            .args(args)
            .env("XDG_CONFIG_HOME", self.config_home())
            .env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("USER", "tester")
            .env("OPSCONSOLE_SYSTEMCTL", systemctl)
            .env("OPSCONSOLE_LOGINCTL", loginctl)
            .output()
            .expect("run opsconsole")
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn units(&self) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(self.config_home().join("systemd/user"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

/// Issue 15: `sync --install-service` writes a user unit (Restart=on-failure, WantedBy=
/// default.target, journal), reloads, enables and starts it, enables lingering, says what
/// it ran; the unit passes `systemd-analyze verify`; `--uninstall-service` stops, disables
/// and removes it. Against stand-ins for systemctl and loginctl, in a temporary
/// XDG_CONFIG_HOME: the real user's systemd is never touched.
#[test]
fn install_and_uninstall_the_sync_service() {
    let rig = ServiceRig::new();
    let systemctl = stand_in(rig.dir.path(), "systemctl", &rig.log, false, false);
    let loginctl = stand_in(rig.dir.path(), "loginctl", &rig.log, false, false);
    let out = rig.run(&["sync", "--install-service"], &systemctl, &loginctl);
    let text = stdout(&out);
    let units = rig.units();
    assert_eq!(units.len(), 1, "{units:?}\n{text}");
    let unit = &units[0];
    let name = unit.file_name().expect("name").to_string_lossy().into_owned();
    assert!(name.starts_with("opsconsole-sync-my_ws-") && name.ends_with(".service"), "{name}");
    let body = std::fs::read_to_string(unit).expect("unit");
    let ws = rig.ws.canonicalize().expect("ws");
    let exe = Path::new(env!("CARGO_BIN_EXE_opsconsole")).canonicalize().expect("exe");
    assert!(
        body.contains(&format!(
            "ExecStart=\"{}\" \"--workspace\" \"{}\" \"sync\" \"--daemon\"\n",
            exe.display(),
            ws.display()
        )),
        "{body}"
    );
    for line in
        ["Restart=on-failure\n", "WantedBy=default.target\n", "StandardOutput=journal\n", "StandardError=journal\n"]
    {
        assert!(body.contains(line), "{line} missing:\n{body}");
    }
    assert_eq!(
        rig.calls(),
        [
            "--user show-environment".to_string(),
            "--user daemon-reload".to_string(),
            format!("--user enable --now {name}"),
            "show-user tester --property=Linger --value".to_string(),
            "enable-linger tester".to_string(),
        ]
    );
    // What ran is said, with the logs' command.
    assert!(text.contains(&format!("✓ ran: {} --user enable --now {name}", systemctl.display())), "{text}");
    assert!(text.contains(&format!("✓ ran: {} enable-linger tester", loginctl.display())), "{text}");
    assert!(text.contains(&format!("logs:   journalctl --user -u {name} -f")), "{text}");

    // The unit as systemd reads it: no warning, no error.
    if have("systemd-analyze") {
        let v = Command::new("systemd-analyze").arg("verify").arg(unit).output().expect("systemd-analyze");
        let err = String::from_utf8_lossy(&v.stderr);
        assert!(v.status.success() && err.trim().is_empty(), "systemd-analyze verify: {err}");
        // It does catch a broken unit: a bad restart setting is a warning.
        let broken = rig.dir.path().join("broken.service");
        std::fs::write(&broken, body.replace("Restart=on-failure", "Restart=when-it-feels-like-it")).expect("write");
        let v = Command::new("systemd-analyze").arg("verify").arg(&broken).output().expect("systemd-analyze");
        assert!(String::from_utf8_lossy(&v.stderr).contains("restart specifier"), "the check can fail");
    }

    // Installed again: the same unit, rewritten.
    stdout(&rig.run(&["sync", "--install-service"], &systemctl, &loginctl));
    assert_eq!(rig.units(), units);

    std::fs::write(&rig.log, "").expect("clear");
    let text = stdout(&rig.run(&["sync", "--uninstall-service"], &systemctl, &loginctl));
    assert!(rig.units().is_empty(), "{text}");
    assert_eq!(
        rig.calls(),
        [
            "--user show-environment".to_string(),
            format!("--user disable --now {name}"),
            "--user daemon-reload".to_string()
        ]
    );
    assert!(text.contains(&format!("✓ removed {}", unit.display())), "{text}");
    assert!(text.contains("Lingering is left as it was"), "{text}");
    // Nothing left: says so, exit 0.
    let text = stdout(&rig.run(&["sync", "--uninstall-service"], &systemctl, &loginctl));
    assert!(text.contains("nothing to remove"), "{text}");
    // Not with another mode.
    let out = rig.run(&["sync", "--install-service", "--daemon"], &systemctl, &loginctl);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Without a systemd user manager (a container, WSL without systemd, or no systemctl at
/// all): nothing is written, and the lines that keep the daemon running are printed.
#[test]
fn without_systemd_the_tmux_and_nohup_lines_are_printed() {
    let rig = ServiceRig::new();
    let loginctl = stand_in(rig.dir.path(), "loginctl", &rig.log, false, false);
    let no_bus = stand_in(rig.dir.path(), "systemctl", &rig.log, true, false);
    for systemctl in [no_bus, rig.dir.path().join("no-such-systemctl")] {
        let out = rig.run(&["sync", "--install-service"], &systemctl, &loginctl);
        assert_eq!(out.status.code(), Some(1));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("No systemd user manager here"), "{text}");
        assert!(text.contains("nothing installed"), "{text}");
        assert!(text.contains("tmux new-session -d -s opsconsole-sync '"), "{text}");
        assert!(text.contains("nohup ") && text.contains(" sync --daemon >> "), "{text}");
        assert!(text.contains("@reboot "), "{text}");
        // The workspace path holds a space: quoted in each line.
        assert!(text.contains("--workspace '"), "{text}");
        assert!(rig.units().is_empty());
    }
    assert!(!rig.calls().iter().any(|c| c.contains("enable")), "{:?}", rig.calls());
}

/// Lingering refused (no polkit rule, not root): the service is installed and running,
/// the exit is 1, and the command to run as root is given.
#[test]
fn lingering_refused_says_how_to_enable_it() {
    let rig = ServiceRig::new();
    let systemctl = stand_in(rig.dir.path(), "systemctl", &rig.log, false, false);
    let loginctl = stand_in(rig.dir.path(), "loginctl", &rig.log, false, true);
    let out = rig.run(&["sync", "--install-service"], &systemctl, &loginctl);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("✗ ran: ") && text.contains("enable-linger tester: Could not enable linger: Access denied"),
        "{text}"
    );
    assert!(text.contains("as root run: loginctl enable-linger tester"), "{text}");
    assert_eq!(rig.units().len(), 1);
    assert!(rig.calls().iter().any(|c| c.starts_with("--user enable --now ")));
}

/// Issue 15 item 1: `status` says whether the run is going. While a process holds the
/// log open for writing it is `running` with that pid and the rate and ETA are given;
/// once the process is killed it is `exited` (how, when the log says), and neither the
/// rate nor the ETA is given any more, in the JSON or in words.
#[test]
fn status_gives_the_run_state_and_drops_eta_and_rate_once_the_trainer_exited() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = &dir.path().join("ws");
    let logs = ws.join("experiments/v1/logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let log = logs.join("train.log");
    std::fs::write(
        &log,
        "{'loss': 3.6108, 'grad_norm': 0.8123, 'learning_rate': 0.0003, 'epoch': 0.15}\n\
         \x20 5%|▌         | 1210/24000 [01:00<19:05, 19.90it/s]\n",
    )
    .expect("log");
    // A stand-in trainer: a process holding the log open for appending.
    let mut trainer = Command::new("sh")
        .arg("-c")
        .arg("exec sleep 120 3>>\"$0\"")
        .arg(&log)
        .spawn()
        .expect("spawn the stand-in trainer");
    let pid = trainer.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let running = loop {
        let json: serde_json::Value =
            serde_json::from_slice(&opsconsole(ws, &["status", "--json"]).stdout).expect("status --json");
        if json["log"]["run"]["state"] == "running" {
            break json;
        }
        assert!(std::time::Instant::now() < deadline, "never seen running: {}", json["log"]["run"]);
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(running["log"]["run"]["pids"], serde_json::json!([pid]), "{}", running["log"]);
    assert_eq!(running["log"]["run"]["exit"], serde_json::Value::Null);
    assert_eq!(running["metrics"]["eta_seconds"], 1145.0, "{}", running["metrics"]);
    let text = stdout(&opsconsole(ws, &["status"]));
    assert!(text.contains(&format!("run: running · pid {pid} · last line ")), "{text}");
    assert!(text.contains("eta 19m05s"), "{text}");

    trainer.kill().expect("kill");
    trainer.wait().expect("reap");
    // What the shell running the trainer prints when it is SIGKILLed.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).expect("open");
    std::io::Write::write_all(&mut f, format!("./train.sh: line 3: {pid} Killed    python train.py\n").as_bytes())
        .expect("append");
    drop(f);
    let json: serde_json::Value =
        serde_json::from_slice(&opsconsole(ws, &["status", "--json"]).stdout).expect("status --json");
    let run = &json["log"]["run"];
    assert_eq!(run["state"], "exited", "{run}");
    assert_eq!(run["pids"], serde_json::json!([]), "{run}");
    assert_eq!(run["exit"], serde_json::json!({"signal": 9}), "{run}");
    assert!(run["seconds_since_last_line"].as_u64().is_some_and(|s| s < 3600), "{run}");
    for k in ["eta_seconds", "tokens_per_second"] {
        assert_eq!(json["metrics"][k], serde_json::Value::Null, "{k} after the run ended: {}", json["metrics"]);
        assert_eq!(json["log"]["metrics"][k], serde_json::Value::Null, "{k}: {}", json["log"]["metrics"]);
    }
    assert_eq!(json["metrics"]["loss"], 3.6108, "the last values stay");
    let text = stdout(&opsconsole(ws, &["status"]));
    assert!(text.contains("run: exited · killed (SIGKILL) · last line "), "{text}");
    assert!(!text.contains("eta ") && !text.contains("it/s"), "{text}");
}

/// Issue 15: `status` and `status --json` carry the host's CPU, RAM and swap (as the
/// console's header does): the JSON fields agree with /proc/meminfo and with each other,
/// and the text says the same figures.
#[test]
fn status_has_host_cpu_ram_and_swap() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = &dir.path().join("ws");
    std::fs::create_dir_all(ws).expect("mkdir");
    let json: serde_json::Value =
        serde_json::from_slice(&opsconsole(ws, &["status", "--json"]).stdout).expect("status --json");
    let h = &json["host"];
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let kib = |key: &str| -> u64 {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("meminfo field")
    };
    let total = h["memory_total_bytes"].as_u64().expect("memory_total_bytes");
    assert_eq!(total, kib("MemTotal:") * 1024);
    let avail = h["memory_available_bytes"].as_u64().expect("memory_available_bytes");
    assert_eq!(h["memory_used_bytes"].as_u64(), Some(total - avail));
    assert_eq!(h["swap_total_bytes"].as_u64(), Some(kib("SwapTotal:") * 1024));
    assert!(h["swap_used_bytes"].as_u64().is_some_and(|u| u <= kib("SwapTotal:") * 1024), "{h}");
    let cpus = std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1);
    assert!(h["cpus"].as_u64().is_some_and(|n| n >= cpus), "{h}");
    // Two readings apart: a CPU figure, not null.
    let cpu = h["cpu_pct"].as_f64().expect("cpu_pct measured between two readings");
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");
    assert!(["ok", "warn", "critical"].contains(&h["memory_level"].as_str().unwrap_or("")), "{h}");

    // The counters are kept for the next call, which measures since this one.
    let kept = ws.join(".opsconsole/hostcpu");
    let first = std::fs::read_to_string(&kept).expect("the CPU counters kept");
    assert!(first.starts_with("opsconsole-hostcpu 2\n"), "{first}");
    std::thread::sleep(std::time::Duration::from_millis(250));

    let text = stdout(&opsconsole(ws, &["status"]));
    assert_ne!(std::fs::read_to_string(&kept).expect("kept again"), first, "the second call keeps its own counters");
    let line = text.lines().find(|l| l.starts_with("cpu ")).unwrap_or_else(|| panic!("a host line:\n{text}"));
    assert!(!line.starts_with("cpu n/a"), "measured since the first call: {line}");
    let gib = total as f64 / (1u64 << 30) as f64;
    assert!(line.contains(&format!("/{gib:.1} GiB")), "{line}");
    assert!(line.contains(" cpus · ram ") && line.contains(" · swap "), "{line}");
}

/// `opsconsole status --json | head -1`: the reader closes the pipe before the JSON is
/// written. The command ends as `cat` would (SIGPIPE), not with a panic and a backtrace on
/// the terminal; the console's daemons keep SIGPIPE ignored (their EPIPE is an error).
#[test]
fn a_closed_stdout_ends_printing_commands_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().canonicalize().unwrap();
    std::fs::write(ws.join("opsconsole.toml"), "[gpu]\nenabled = false\n").unwrap();
    for args in [&["status", "--json"][..], &["config"], &["man"], &["completions", "bash"]] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
            .arg("--workspace")
            .arg(&ws)
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run opsconsole");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}: nothing on stderr");
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{args:?}: {:?}", out.status);
    }
}

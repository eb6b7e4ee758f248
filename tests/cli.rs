//! The CLI's text outputs, through the binary: `status` (what its JSON has, in words).

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

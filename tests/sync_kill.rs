//! The kill test: a daemon on a workspace of 20 files is killed with SIGKILL at random
//! moments, ten times, and restarted each time. At the end every routed file is on its
//! remote exactly once with a matching SHA-256, nothing unrouted is, no partial upload
//! is left behind, and the ledger opens clean.
//!
//! The daemon is the real binary, `opsconsole sync --daemon`, with an `opsconsole.toml` in
//! the workspace (a 21st file, not routed). The large files are 64 MB by default
//! (OPSCONSOLE_KILL_BIG_MB=200 for the issue's full size).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use opsconsole::sync::hash;
use opsconsole::sync::ledger::{Ledger, UploadState};

fn config_toml(base: &Path) -> String {
    format!(
        r#"[sync]
settle_seconds = 1
poll_seconds = 5
retry_base_seconds = 1
retry_max_seconds = 2
# Slow enough that kills land in the middle of uploads.
bandwidth_limit_kib_s = 30720

[sync.l2]
remote = "r2"
interval_minutes = 0

[sync.l3]
remote = "r3"
interval_minutes = 0

# Beside the workspace, on its disk: allowed (and shown) by same_disk.
[remotes.r2]
kind = "local"
path = "{}"
same_disk = true

[remotes.r3]
kind = "local"
path = "{}"
same_disk = true
"#,
        base.join("r2").display(),
        base.join("r3").display()
    )
}

/// `opsconsole sync --daemon` on the workspace, stderr to a log file per round.
fn spawn_child(base: &Path, round: usize) -> Child {
    let log = std::fs::File::create(base.join(format!("daemon-{round}.log"))).expect("log");
    Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("--workspace")
        .arg(base.join("ws"))
        .args(["sync", "--daemon"])
        .env("XDG_STATE_HOME", base.join("state"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn opsconsole sync --daemon")
}

fn kill9(child: &mut Child) {
    // `Child::kill` is SIGKILL: no chance to clean up, as with `kill -9`.
    let _ = child.kill();
    let _ = child.wait();
}

fn write_pattern(path: &Path, len: usize, seed: u64) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut block = vec![0u8; 1 << 20];
    rng.fill(&mut block);
    let mut f = std::fs::File::create(path).expect("create");
    let mut left = len;
    let mut i = 0u8;
    use std::io::Write;
    while left > 0 {
        let n = left.min(block.len());
        block[0] = i;
        i = i.wrapping_add(1);
        f.write_all(&block[..n]).expect("write");
        left -= n;
    }
}

fn files_under(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_type().expect("ft").is_dir() {
                stack.push(e.path());
            } else if e.file_name() != opsconsole::sync::marker::MARKER_FILE {
                let rel = e.path().strip_prefix(root).expect("prefix").display().to_string();
                out.insert(rel, e.path());
            }
        }
    }
    out
}

#[test]
fn kill_nine_ten_times_then_everything_is_stored_exactly_once() {
    let big_mb: usize = std::env::var("OPSCONSOLE_KILL_BIG_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path();
    let ws = base.join("ws");
    let mb = 1 << 20;
    // 20 files: 14 routed (6 to L2, 8 to L3), 6 not routed.
    let l2_files = [
        ("journal.md", 4_000),
        ("frozen_requirements.txt", 3_000),
        ("experiments/v68/logs/train.log", 3 * mb),
        ("experiments/v68/logs/eval.log", 200_000),
        ("experiments/v68/metrics.json", 50_000),
        ("experiments/v68/config.json", 2_000),
    ];
    let l3_files = [
        ("checkpoints/v68_step_1000.pt", big_mb * mb),
        ("checkpoints/v68_step_2000.pt", big_mb * mb),
        ("checkpoints/v68_step_3000.pt", big_mb * mb),
        ("checkpoints/v68_best.safetensors", 24 * mb),
        ("out/checkpoint-500/model.safetensors", 16 * mb),
        ("out/checkpoint-500/optimizer.pt", 12 * mb),
        ("out/checkpoint-500/trainer_state.json", 10_000),
        ("out/adapter.bin", 5 * mb),
    ];
    let unrouted = [
        ("experiments/v68/train.py", 5_000),
        ("README.md", 1_000),
        ("data/train.csv", 2 * mb),
        (".secrets/colab-service-account.json", 2_000),
        ("experiments/v68/huge.json", 201 * mb),
        ("notes.txt", 1_000),
    ];
    std::fs::create_dir_all(&ws).expect("mkdir");
    std::fs::write(ws.join("opsconsole.toml"), config_toml(base)).expect("config");
    for (seed, (p, n)) in (1..).zip(l2_files.iter().chain(&l3_files).chain(&unrouted)) {
        write_pattern(&ws.join(p), *n, seed);
    }
    let init = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("--workspace")
        .arg(&ws)
        .args(["remote", "check", "--init"])
        .env("XDG_STATE_HOME", base.join("state"))
        .output()
        .expect("remote check --init");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stdout));

    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut mid_upload = 0;
    for round in 0..10 {
        let mut child = spawn_child(base, round);
        // Wait (up to 4 s) until the remote has received some bytes, then kill at a
        // random moment after that.
        let partials = || {
            files_under(&base.join("r3/.opsconsole-partial")).len()
                + files_under(&base.join("r2/.opsconsole-partial")).len()
        };
        let until = std::time::Instant::now() + Duration::from_secs(4);
        while partials() == 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..700)));
        if partials() > 0 {
            mid_upload += 1;
        }
        kill9(&mut child);
        // The ledger opens after every kill.
        let l = Ledger::open(&ws).expect("ledger opens after kill -9");
        assert!(l.integrity_ok().expect("integrity check"), "round {round}");
    }
    eprintln!("kill test: {mid_upload} of 10 kills landed with a partial upload on disk");

    // Final run: wait until the ledger says every routed file is confirmed.
    let mut child = spawn_child(base, 10);
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let expected = l2_files.len() + l3_files.len();
    loop {
        let done = Ledger::open(&ws)
            .and_then(|l| l.entries(None))
            .map(|e| e.iter().filter(|e| e.state == UploadState::Confirmed).count())
            .unwrap_or(0);
        if done == expected {
            break;
        }
        if std::time::Instant::now() > deadline {
            kill9(&mut child);
            let log = std::fs::read_to_string(base.join("daemon-10.log")).unwrap_or_default();
            panic!("only {done} of {expected} confirmed; daemon said:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    kill9(&mut child);
    let resumed = (0..=10)
        .filter_map(|i| std::fs::read_to_string(base.join(format!("daemon-{i}.log"))).ok())
        .filter(|log| log.contains(" resuming "))
        .count();
    eprintln!("kill test: {resumed} restarts resumed a partial upload");
    assert!(mid_upload == 0 || resumed > 0, "partial uploads were left but never resumed");

    let check = |remote: &str, want: &[(&str, usize)]| {
        let root = base.join(remote);
        let stored = files_under(&root);
        let names: Vec<&String> = stored.keys().collect();
        let mut want_names: Vec<String> = want.iter().map(|(p, _)| p.to_string()).collect();
        want_names.sort();
        assert_eq!(names, want_names.iter().collect::<Vec<_>>(), "{remote} holds exactly the routed files");
        for (p, _) in want {
            assert_eq!(
                hash::sha256_file(&root.join(p)).expect("stored hash"),
                hash::sha256_file(&ws.join(p)).expect("source hash"),
                "{remote}/{p}"
            );
        }
    };
    check("r2", &l2_files);
    check("r3", &l3_files);
    let l = Ledger::open(&ws).expect("ledger opens");
    assert!(l.integrity_ok().expect("integrity"));
    let entries = l.entries(None).expect("entries");
    assert_eq!(entries.len(), expected, "one ledger row per routed file and level");
    for e in &entries {
        assert_eq!(e.state, UploadState::Confirmed, "{}", e.path);
        assert_eq!(e.remote_checksum.as_deref(), Some(e.sha256.as_str()), "{}", e.path);
    }
}

//! The real daemon, `opsconsole sync --daemon`, storing L3 on the Hub stand-in, killed with
//! SIGKILL mid-upload five times and restarted: at the end every weights file is on the Hub
//! byte for byte, each checkpoint arrived in exactly one commit (a `checkpoint-N/` folder
//! too), no path was committed twice, no byte of an object the Hub already held was sent
//! again, and the ledger confirms each file with the LFS oid.
//!
//! Big files are 48 MB by default (OPSCONSOLE_KILL_BIG_MB=200 for larger ones).

#[path = "support/hf_hub.rs"]
mod hf_hub;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hf_hub::{HubStandIn, Transfer, WRITE_TOKEN};
use opsconsole::sync::hash;
use opsconsole::sync::ledger::{Ledger, UploadState};

const REPO: &str = "tester/rsm-weights";

fn config_toml(endpoint: &str) -> String {
    format!(
        r#"[sync]
settle_seconds = 1
poll_seconds = 5
retry_base_seconds = 1
retry_max_seconds = 2
# Slow enough that kills land in the middle of uploads.
bandwidth_limit_kib_s = 40960

[sync.l2]
enabled = false

[sync.l3]
interval_minutes = 0

[remotes.hf]
kind = "hf"
repo_id = "{REPO}"
endpoint = "{endpoint}"
"#
    )
}

fn spawn_child(base: &Path, round: usize) -> Child {
    let log = std::fs::File::create(base.join(format!("daemon-{round}.log"))).expect("log");
    Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("--workspace")
        .arg(base.join("ws"))
        .args(["sync", "--daemon"])
        .env("XDG_STATE_HOME", base.join("state"))
        .env("HOME", base.join("home"))
        .env("HF_TOKEN", WRITE_TOKEN)
        .env_remove("HF_ENDPOINT")
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
    let mut i = 0u32;
    use std::io::Write;
    while left > 0 {
        let n = left.min(block.len());
        block[..4].copy_from_slice(&i.to_le_bytes());
        i += 1;
        f.write_all(&block[..n]).expect("write");
        left -= n;
    }
}

#[test]
fn kill_nine_mid_upload_five_times_then_finished_without_a_duplicate_commit_or_resend() {
    let big_mb: usize = std::env::var("OPSCONSOLE_KILL_BIG_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(48);
    let hub = HubStandIn::start();
    // Objects over 8 MiB go multipart (4 MiB parts), smaller ones basic.
    hub.set_transfer(Transfer::Auto { above: 8 << 20, chunk_size: 4 << 20 });
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path();
    let ws = base.join("ws");
    let mb = 1 << 20;
    let weights = [
        ("checkpoints/v68_step_1000.pt", big_mb * mb),
        ("checkpoints/v68_step_2000.pt", big_mb * mb),
        ("checkpoints/v68_step_3000.pt", big_mb * mb),
        ("out/checkpoint-500/model.safetensors", 16 * mb),
        ("out/checkpoint-500/optimizer.pt", 12 * mb),
        ("out/checkpoint-500/scheduler.pt", 1_100),
        ("out/checkpoint-500/rng_state.pth", 14_500),
    ];
    let unrouted = [("train.py", 5_000), ("journal.md", 2_000), ("data/train.csv", 2 * mb)];
    std::fs::create_dir_all(&ws).expect("mkdir");
    std::fs::write(ws.join("opsconsole.toml"), config_toml(&hub.endpoint())).expect("config");
    for (seed, (p, n)) in (1..).zip(weights.iter().chain(&unrouted)) {
        write_pattern(&ws.join(p), *n, seed);
    }
    std::fs::write(ws.join("out/checkpoint-500/trainer_state.json"), br#"{"global_step": 500, "log_history": []}"#)
        .expect("trainer state");
    let routed: Vec<&str> = weights.iter().map(|(p, _)| *p).chain(["out/checkpoint-500/trainer_state.json"]).collect();

    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut mid_upload = 0;
    for round in 0..5 {
        let before = hub.counters().bytes_received;
        let mut child = spawn_child(base, round);
        // Wait (up to 8 s) until the Hub has received some bytes of this round, then kill
        // at a random moment after that.
        let until = Instant::now() + Duration::from_secs(8);
        while hub.counters().bytes_received == before && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..500)));
        let c = hub.counters();
        if c.bytes_received > before && c.objects_stored < routed.len() as u64 - 1 {
            mid_upload += 1;
        }
        kill9(&mut child);
        let l = Ledger::open(&ws).expect("ledger opens after kill -9");
        assert!(l.integrity_ok().expect("integrity check"), "round {round}");
    }
    eprintln!("hub kill test: {mid_upload} of 5 kills landed while objects were still being sent");
    assert!(mid_upload >= 3, "most kills must land mid-upload to test anything ({mid_upload} of 5)");

    let mut child = spawn_child(base, 5);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = Ledger::open(&ws)
            .and_then(|l| l.entries(None))
            .map(|e| e.iter().filter(|e| e.state == UploadState::Confirmed).count())
            .unwrap_or(0);
        if done == routed.len() {
            break;
        }
        if Instant::now() > deadline {
            kill9(&mut child);
            let log = std::fs::read_to_string(base.join("daemon-5.log")).unwrap_or_default();
            panic!("only {done} of {} confirmed; daemon said:\n{log}", routed.len());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    kill9(&mut child);

    // Byte for byte on the Hub, and nothing else but the initial .gitattributes.
    let tree = hub.tree(REPO, "main");
    let mut names: Vec<&str> = tree.keys().map(String::as_str).filter(|k| *k != ".gitattributes").collect();
    names.sort();
    let mut want = routed.clone();
    want.sort();
    assert_eq!(names, want, "the Hub holds exactly the weights");
    for p in &routed {
        let stored = hub.file(REPO, "main", p).expect("stored");
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut h, &stored);
        let stored_sha: String = sha2::Digest::finalize(h).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(stored_sha, hash::sha256_file(&ws.join(p)).expect("hash"), "{p}");
    }

    // One commit per checkpoint, each path committed exactly once.
    let commits = hub.commits(REPO, "main");
    let mut added: BTreeMap<&str, usize> = BTreeMap::new();
    for c in commits.iter().skip(1) {
        for p in &c.added {
            *added.entry(p.as_str()).or_default() += 1;
        }
    }
    assert!(added.values().all(|n| *n == 1), "a path was committed twice: {added:?}");
    assert_eq!(
        commits.len() - 1,
        4,
        "three .pt files and one folder: {:#?}",
        commits.iter().map(|c| &c.summary).collect::<Vec<_>>()
    );
    let folder = commits.iter().find(|c| c.summary.contains("checkpoint-500")).expect("folder commit");
    assert_eq!(folder.added.len(), 5, "the folder in one commit: {:?}", folder.added);
    let c = hub.counters();
    assert_eq!(c.bytes_resent, 0, "no byte of an object the Hub held was sent again");
    eprintln!(
        "hub kill test: {} bytes received for {} bytes of weights; {} batch calls, {} commits",
        c.bytes_received,
        weights.iter().map(|(_, n)| *n as u64).sum::<u64>(),
        c.batch_calls,
        c.commits
    );

    let l = Ledger::open(&ws).expect("ledger opens");
    assert!(l.integrity_ok().expect("integrity"));
    let entries = l.entries(None).expect("entries");
    assert_eq!(entries.len(), routed.len());
    for e in &entries {
        assert_eq!(e.state, UploadState::Confirmed, "{}", e.path);
        assert_eq!(e.remote_checksum.as_deref(), Some(e.sha256.as_str()), "{}", e.path);
    }
    for i in 0..=5 {
        let log = std::fs::read_to_string(base.join(format!("daemon-{i}.log"))).unwrap_or_default();
        assert!(!log.contains(WRITE_TOKEN), "the token never reaches a log line");
    }
    // Nor the console's own log, the ledger, or anything else the daemon wrote.
    let mut stack = vec![base.join("state"), ws.join(".opsconsole")];
    let mut scanned = 0;
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else if let Ok(bytes) = std::fs::read(e.path()) {
                scanned += 1;
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(WRITE_TOKEN),
                    "the token is in {}",
                    e.path().display()
                );
            }
        }
    }
    assert!(scanned >= 2, "the ledger and the log were scanned ({scanned} files)");
}

//! The sync engine storing L3 on the Hub stand-in: a `checkpoint-N/` folder becomes exactly
//! one commit, files are confirmed only after their commit (remote checksum = the LFS oid),
//! a checkpoint whose commit fails stays unconfirmed as a whole, a 429 window holds every
//! worker instead of letting them storm, and prune deletes what the Hub confirmed and keeps
//! what it did not (the real binary, `sync --once` then `prune`).

#[path = "support/hf_hub.rs"]
mod hf_hub;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use hf_hub::{HubStandIn, Transfer, WRITE_TOKEN};
use opsconsole::sync::engine::{self, Mode, SyncEvent};
use opsconsole::sync::hf::token::Env;
use opsconsole::sync::hf::{HfRemote, HfSettings};
use opsconsole::sync::ledger::{Ledger, UploadState};
use opsconsole::sync::remote::Remote;
use opsconsole::sync::{SyncConfig, hash};

struct FakeEnv(HashMap<String, String>);

impl Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
    fn home(&self) -> Option<PathBuf> {
        None
    }
}

fn hf(hub: &HubStandIn, repo: &str) -> Arc<dyn Remote> {
    let mut vars = HashMap::new();
    vars.insert("HF_TOKEN".to_string(), WRITE_TOKEN.to_string());
    let s = HfSettings {
        repo_id: repo.into(),
        private: true,
        allow_public: false,
        revision: "main".into(),
        path_prefix: String::new(),
        endpoint: Some(hub.endpoint()),
    };
    Arc::new(HfRemote::with_env("hf", s, Arc::new(FakeEnv(vars))))
}

fn config() -> SyncConfig {
    let mut c = SyncConfig {
        settle_seconds: 1,
        poll_seconds: 3,
        retry_base_seconds: 1,
        retry_max_seconds: 2,
        ..SyncConfig::default()
    };
    c.l2.enabled = false;
    c.l3.remote = "hf".into();
    c
}

fn write(path: &Path, len: usize, seed: u8) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut rng = fastrand::Rng::with_seed(seed as u64);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    std::fs::write(path, v).expect("write");
}

async fn run_once(ws: &Path, sync: &SyncConfig, remote: Arc<dyn Remote>) -> (engine::RunSummary, Vec<SyncEvent>) {
    let mut remotes = BTreeMap::new();
    remotes.insert("hf".to_string(), remote);
    let mut h = engine::start(ws, sync, remotes, Mode::Once).expect("engine starts");
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, h.events.recv()).await {
        if std::env::var_os("HF_SYNC_TRACE").is_some() {
            eprintln!("{ev:?}");
        }
        events.push(ev);
    }
    (h.wait().await.expect("engine ends"), events)
}

const FOLDER: [&str; 5] = ["model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_folder_of_five_files_is_exactly_one_commit() {
    let hub = HubStandIn::start();
    hub.set_transfer(Transfer::Auto { above: 3 << 20, chunk_size: 1 << 20 });
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    for (i, name) in FOLDER.iter().enumerate() {
        let len = if *name == "trainer_state.json" { 0 } else { (i + 1) * 1_300_000 };
        if len == 0 {
            std::fs::create_dir_all(ws.join("out/checkpoint-500")).expect("mkdir");
            std::fs::write(ws.join("out/checkpoint-500").join(name), br#"{"global_step": 500}"#).expect("write");
        } else {
            write(&ws.join("out/checkpoint-500").join(name), len, i as u8);
        }
    }
    write(&ws.join("checkpoints/v1_step_100.pt"), 700_000, 9);
    write(&ws.join("logs/train.log"), 1000, 10);

    let (summary, events) = run_once(&ws, &config(), hf(&hub, "tester/rsm-weights")).await;
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    assert_eq!(summary.uploaded, 6, "{summary:?}");

    let commits = hub.commits("tester/rsm-weights", "main");
    assert_eq!(hub.counters().commits, 2, "one commit per checkpoint: {commits:#?}");
    let folder = commits.iter().find(|c| c.summary.contains("checkpoint-500")).expect("folder commit");
    let mut added = folder.added.clone();
    added.sort();
    let mut want: Vec<String> = FOLDER.iter().map(|n| format!("out/checkpoint-500/{n}")).collect();
    want.sort();
    assert_eq!(added, want, "the whole folder in one commit");
    assert!(folder.summary.contains("(step 500) from "), "{}", folder.summary);
    assert!(commits.iter().any(|c| c.added == ["checkpoints/v1_step_100.pt"]));
    assert!(!hub.tree("tester/rsm-weights", "main").contains_key("logs/train.log"), "weights only");

    // Each file confirmed only after its commit, with the LFS oid as its remote checksum.
    let ledger = Ledger::open(&ws).expect("ledger");
    let rows = ledger.entries(Some("L3")).expect("rows");
    assert_eq!(rows.len(), 6);
    for e in &rows {
        assert_eq!(e.state, UploadState::Confirmed, "{}", e.path);
        assert_eq!(e.remote_checksum.as_deref(), Some(e.sha256.as_str()), "{}", e.path);
        assert_eq!(e.sha256, hash::sha256_file(&ws.join(&e.path)).expect("hash"));
        let stored = hub.file("tester/rsm-weights", "main", &e.path).expect("stored");
        assert_eq!(stored, std::fs::read(ws.join(&e.path)).expect("read"), "{}", e.path);
    }
    let confirmed_at: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, SyncEvent::Confirmed { path, .. } if path.contains("checkpoint-500")))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(confirmed_at.len(), 5, "{events:#?}");

    // A second run finds everything on the Hub: nothing sent, nothing committed.
    let before = hub.counters();
    let (summary, _) = run_once(&ws, &config(), hf(&hub, "tester/rsm-weights")).await;
    assert_eq!(summary.uploaded, 0);
    let after = hub.counters();
    assert_eq!((after.commits, after.bytes_received), (before.commits, before.bytes_received));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_whose_commit_fails_stays_unconfirmed_as_a_whole() {
    let hub = HubStandIn::start();
    hub.create_repo("tester/w", true);
    hub.refuse_commits_touching("checkpoint-200/", 500);
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    for (i, name) in FOLDER.iter().enumerate().take(3) {
        write(&ws.join("out/checkpoint-100").join(name), 50_000 + i, i as u8);
        write(&ws.join("out/checkpoint-200").join(name), 60_000 + i, 10 + i as u8);
    }
    let (summary, _) = run_once(&ws, &config(), hf(&hub, "tester/w")).await;
    assert_eq!(summary.failed.len(), 3, "the three files of checkpoint-200: {:?}", summary.failed);
    assert!(summary.failed.iter().all(|(_, p, r)| p.contains("checkpoint-200") && r.contains("500")), "{summary:?}");
    let ledger = Ledger::open(&ws).expect("ledger");
    for e in ledger.entries(Some("L3")).expect("rows") {
        let want = if e.path.contains("checkpoint-100") { UploadState::Confirmed } else { UploadState::Failed };
        assert_eq!(e.state, want, "{}", e.path);
    }
    assert_eq!(hub.counters().commits, 1);
    assert!(hub.tree("tester/w", "main").keys().all(|k| !k.contains("checkpoint-200")));
    // Its objects were stored once, and the retries of the commit sent no byte again.
    assert_eq!(hub.counters().bytes_resent, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_window_holds_every_worker_instead_of_a_retry_storm() {
    let hub = HubStandIn::start();
    hub.create_repo("tester/w", true);
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    for i in 0..6u8 {
        write(&ws.join(format!("checkpoints/r_step_{i}00.pt")), 30_000 + i as usize, i);
    }
    let remote = hf(&hub, "tester/w");
    let mut sync = config();
    sync.workers_per_remote = 2;
    // Everything the engine sends in the next 5 s is answered 429 (Retry-After: what is left).
    hub.rate_limit_for(Duration::from_secs(5));
    let (summary, events) = run_once(&ws, &sync, remote).await;
    assert!(summary.failed.is_empty(), "all stored after the window: {:?}", summary.failed);
    assert_eq!(summary.uploaded, 6);
    let limited = hub.counters().rate_limited;
    // Only requests already in flight when the first 429 came back can meet the window:
    // one per worker. Without the shared gate, each of the six files would meet it too.
    assert!((1..=2).contains(&limited), "{limited} requests were answered 429");
    assert!(
        events.iter().any(|e| matches!(e, SyncEvent::Failed { reason, .. } if reason.contains("429"))),
        "the wait is reported in words"
    );
}

fn opsconsole(ws: &Path, args: &[&str], _hub: &HubStandIn) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .args(args)
        .current_dir(ws)
        .env("XDG_STATE_HOME", ws.join(".state"))
        .env("HOME", ws.join(".home"))
        .env("HF_TOKEN", WRITE_TOKEN)
        .env_remove("HF_ENDPOINT")
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .expect("run opsconsole")
}

fn plan(ws: &Path, hub: &HubStandIn) -> Vec<(String, String, String)> {
    let out = opsconsole(ws, &["prune", "--dry-run", "--json"], hub);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan json");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let path = i["path"].as_str().expect("path").to_string();
            let name = Path::new(&path).file_name().expect("name").to_string_lossy().into_owned();
            (name, i["action"].as_str().expect("a").to_string(), i["reason"].as_str().expect("r").to_string())
        })
        .collect()
}

#[test]
fn prune_deletes_what_the_hub_confirmed_and_keeps_a_checkpoint_whose_commit_failed() {
    let hub = HubStandIn::start();
    hub.refuse_commits_touching("v01_step_200.pt", 500);
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path();
    std::fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!(
            "[sync]\nsettle_seconds = 1\nretry_base_seconds = 1\nretry_max_seconds = 1\n\n[sync.l2]\nenabled = false\n\n\
             [remotes.hf]\nkind = \"hf\"\nrepo_id = \"tester/rsm-weights\"\nendpoint = \"{}\"\n",
            hub.endpoint()
        ),
    )
    .expect("config");
    for step in [100, 200, 300, 400, 500] {
        let p = ws.join(format!("checkpoints/v01_step_{step}.pt"));
        std::fs::write(&p, vec![(step / 100) as u8; 64 * 1024]).expect("write");
        let ok = Command::new("touch").args(["-d", "2 hours ago"]).arg(&p).status().expect("touch").success();
        assert!(ok);
    }
    let sync = opsconsole(ws, &["sync", "--once"], &hub);
    let err = String::from_utf8_lossy(&sync.stderr);
    assert_eq!(sync.status.code(), Some(1), "one checkpoint left failed: {err}");
    assert!(err.contains("v01_step_200.pt") && err.contains("500"), "{err}");
    assert!(!err.contains(WRITE_TOKEN), "the token never reaches the screen");
    assert_eq!(hub.counters().commits, 4, "one commit per .pt, the refused one excepted");
    assert_eq!(hub.repo_private("tester/rsm-weights"), Some(true), "created private");

    let after = plan(ws, &hub);
    let action = |name: &str| after.iter().find(|(n, _, _)| n == name).map(|(_, a, r)| (a.clone(), r.clone()));
    assert_eq!(action("v01_step_100.pt"), Some(("delete".into(), "beyond_keep_last".into())), "{after:?}");
    assert_eq!(action("v01_step_200.pt"), Some(("keep".into(), "unconfirmed".into())), "{after:?}");
    assert_eq!(action("v01_step_500.pt").map(|a| a.0), Some("keep".into()), "the newest is kept");

    let run = opsconsole(ws, &["prune", "--yes"], &hub);
    assert!(run.status.success(), "prune --yes: {}", String::from_utf8_lossy(&run.stderr));
    assert!(!ws.join("checkpoints/v01_step_100.pt").exists(), "deleted without any override");
    assert!(ws.join("checkpoints/v01_step_200.pt").exists(), "its commit failed: kept");
    assert_eq!(
        hub.file("tester/rsm-weights", "main", "checkpoints/v01_step_100.pt"),
        Some(vec![1u8; 64 * 1024]),
        "the deleted checkpoint is safe on the Hub, byte for byte"
    );
    let ledger = std::fs::read(ws.join(".opsconsole/ledger.sqlite")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&ledger).contains(WRITE_TOKEN), "the token is never stored");
}

#[test]
fn remote_check_init_creates_the_repo_private_and_walks_every_step() {
    let hub = HubStandIn::start();
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path();
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!("[remotes.hf]\nkind = \"hf\"\nrepo_id = \"tester/rsm-weights\"\nendpoint = \"{}\"\n", hub.endpoint()),
    )
    .expect("config");
    // Without --init: the repo does not exist yet, which is fine, and nothing is created.
    let out = opsconsole(ws, &["remote", "check", "hf", "--json"], &hub);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let steps: Vec<(String, bool)> = v["remotes"][0]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["name"].as_str().expect("name").to_string(), s["ok"].as_bool().expect("ok")))
        .collect();
    assert_eq!(steps, [("token".to_string(), true), ("repo".to_string(), true)], "{v}");
    assert!(!hub.repo_exists("tester/rsm-weights"));

    let out = opsconsole(ws, &["remote", "check", "hf", "--init"], &hub);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    for step in
        ["create the repo", "tester/rsm-weights created, private", "token", "revision", "probe file round-trips"]
    {
        assert!(text.contains(step), "{step} in:\n{text}");
    }
    assert!(!text.contains(WRITE_TOKEN), "the token is never shown");
    assert_eq!(hub.repo_private("tester/rsm-weights"), Some(true));
    assert_eq!(hub.counters().commits, 2, "the probe: added, then deleted");

    // A read-only token: the check fails at the token step, exit 1, the fix in words.
    let out = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .args(["remote", "check", "hf"])
        .current_dir(ws)
        .env("XDG_STATE_HOME", ws.join(".state"))
        .env("HOME", ws.join(".home"))
        .env("HF_TOKEN", hf_hub::READ_TOKEN)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("read-only") && text.contains("write access"), "{text}");
    assert!(!text.contains(hf_hub::READ_TOKEN), "{text}");
}

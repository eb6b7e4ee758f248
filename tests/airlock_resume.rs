//! `resume` on real files and remotes: the newest local checkpoint wins; a corrupt newest
//! one (truncated, or not the bytes the ledger hashed) is restored from a remote holding
//! the same step, else the next step that verifies wins; an empty disk pulls from L2 (a
//! local folder, and the Drive stand-in with a cut download that resumes), then from L3
//! (the Hub stand-in) when L2 lacks it; the seed's `vXX_latest.pt` is honoured; `--run`
//! starts the configured command in a session of its own, its output appended to the
//! experiment's log, and refuses while a training process writes that log or holds a GPU.

#[path = "support/airlock.rs"]
mod airlock;
#[path = "support/drive.rs"]
mod drive;
#[path = "support/hf_hub.rs"]
mod hf_hub;
#[path = "support/nvml.rs"]
mod nvml;
#[path = "support/procstat.rs"]
mod procstat;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use airlock::{checkpoint, config, local_remote, local_remote_toml, opsconsole, sha256};
use opsconsole::airlock::resume::{self, ResumeOptions, ResumeReport, Status};
use opsconsole::config::Config;

const HOUR: Duration = Duration::from_secs(3600);

fn plan(ws: &Path, cfg: &Config) -> ResumeReport {
    resume::plan(ws, cfg, &ResumeOptions::default(), &mut |_| {}, &AtomicBool::new(false)).expect("plan")
}

fn workspace(dir: &Path) -> PathBuf {
    let ws = dir.join("ws");
    std::fs::create_dir_all(ws.join("experiments/v68_lane/logs")).expect("mkdir");
    ws
}

fn status_of<'a>(r: &'a ResumeReport, level: &str, key: &str) -> &'a Status {
    let l = r.levels.iter().find(|l| l.level == level).expect("level");
    &l.candidates.iter().find(|c| c.key == key).unwrap_or_else(|| panic!("{key} not on {level}: {r:#?}")).status
}

fn truncate(path: &Path, by: u64) {
    let len = std::fs::metadata(path).expect("meta").len();
    let f = std::fs::OpenOptions::new().write(true).open(path).expect("open");
    f.set_len(len - by).expect("truncate");
    airlock::set_age(path, HOUR);
}

#[test]
fn the_newest_local_checkpoint_of_the_experiment_wins() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = workspace(dir.path());
    checkpoint(&ws.join("checkpoints/v68_step_100.pt"), 4096, 1, 2 * HOUR);
    checkpoint(&ws.join("checkpoints/v68_step_200.pt"), 4096, 2, HOUR);
    // Another experiment's (newer, higher step) and one without a step.
    checkpoint(&ws.join("checkpoints/v67_step_900.pt"), 4096, 3, Duration::from_secs(60));
    checkpoint(&ws.join("checkpoints/model_final.pt"), 4096, 4, Duration::from_secs(60));
    let cfg = config(&ws, "");
    let r = plan(&ws, &cfg);
    let w = r.winner.as_ref().expect("winner");
    assert_eq!((w.level.as_str(), w.step, w.shown.as_str()), ("L1", Some(200), "checkpoints/v68_step_200.pt"));
    assert_eq!(w.path, ws.join("checkpoints/v68_step_200.pt").to_string_lossy());
    assert!(w.why.contains("newest local"), "{}", w.why);
    assert!(
        matches!(status_of(&r, "L1", "checkpoints/v68_step_200.pt"), Status::Verified { how } if how.contains("structure"))
    );
    assert_eq!(status_of(&r, "L1", "checkpoints/v68_step_100.pt"), &Status::NotChecked);
    assert!(matches!(status_of(&r, "L1", "checkpoints/model_final.pt"), Status::Skipped { .. }));
    let keys: Vec<&str> = r.levels[0].candidates.iter().map(|c| c.key.as_str()).collect();
    assert!(!keys.contains(&"checkpoints/v67_step_900.pt"), "another experiment's: {keys:?}");
    assert_eq!(r.levels[1].error.as_deref(), Some("L2's remote 'drive' is not configured ([remotes.drive])"));

    // `--print-path` prints only the path.
    let out = opsconsole(&ws, &["resume", "--print-path"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{}\n", ws.join("checkpoints/v68_step_200.pt").display()));
}

#[test]
fn a_corrupt_newest_local_is_restored_from_a_remote_with_the_same_step_else_the_next_step_wins() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = workspace(dir.path());
    checkpoint(&ws.join("checkpoints/v68_step_100.pt"), 4096, 1, 3 * HOUR);
    checkpoint(&ws.join("checkpoints/v68_step_200.pt"), 64 << 10, 2, 2 * HOUR);
    let remote = dir.path().join("l2");
    local_remote(&ws, "drive", &remote);
    // L2 holds a good copy of step 200 (the cluster saved it there).
    checkpoint(&remote.join("checkpoints/v68_step_200.pt"), 64 << 10, 2, 2 * HOUR);
    let good = sha256(&remote.join("checkpoints/v68_step_200.pt"));
    truncate(&ws.join("checkpoints/v68_step_200.pt"), 300);
    let damaged = std::fs::read(ws.join("checkpoints/v68_step_200.pt")).expect("read");
    let cfg = config(&ws, &format!("[sync.l2]\nremote = \"drive\"\n\n{}", local_remote_toml("drive", &remote)));
    let r = plan(&ws, &cfg);
    let w = r.winner.as_ref().expect("winner");
    assert_eq!((w.level.as_str(), w.step), ("L2", Some(200)), "{r:#?}");
    assert_eq!(w.shown, "checkpoints/v68_step_200.pt", "restored in place");
    assert!(w.why.contains("failed verification") && w.why.contains("restored from L2"), "{}", w.why);
    assert!(
        matches!(status_of(&r, "L1", "checkpoints/v68_step_200.pt"), Status::Failed { why } if why.contains("truncated"))
    );
    assert_eq!(sha256(&ws.join("checkpoints/v68_step_200.pt")), good);
    assert_eq!(w.kept_aside, vec!["checkpoints/v68_step_200.pt.corrupt".to_string()]);
    assert_eq!(
        std::fs::read(ws.join("checkpoints/v68_step_200.pt.corrupt")).expect("kept"),
        damaged,
        "never overwritten"
    );

    // Damaged again, and no remote holds step 200: the next step that verifies wins, and
    // the earlier .corrupt copy stays as it was.
    truncate(&ws.join("checkpoints/v68_step_200.pt"), 500);
    std::fs::remove_file(remote.join("checkpoints/v68_step_200.pt")).expect("rm");
    let r = plan(&ws, &cfg);
    let w = r.winner.as_ref().expect("winner");
    assert_eq!((w.level.as_str(), w.step), ("L1", Some(100)), "{r:#?}");
    assert!(w.why.contains("1 newer failed verification and no remote holds their step"), "{}", w.why);
    assert_eq!(std::fs::read(ws.join("checkpoints/v68_step_200.pt.corrupt")).expect("kept"), damaged);
    assert!(ws.join("checkpoints/v68_step_200.pt").exists(), "a damaged file not in the way is left where it is");
}

#[test]
fn a_checkpoint_whose_bytes_differ_from_the_ledger_is_skipped_with_the_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = workspace(dir.path());
    checkpoint(&ws.join("checkpoints/v68_step_100.pt"), 4096, 1, 3 * HOUR);
    let p = ws.join("checkpoints/v68_step_200.pt");
    checkpoint(&p, 4096, 2, 2 * HOUR);
    // The ledger hashed step 200 as sync saw it; then one byte inside changed (same
    // size, a structure that still reads).
    let meta = std::fs::metadata(&p).expect("meta");
    let mut ledger = opsconsole::sync::ledger::Ledger::open(&ws).expect("ledger");
    let mtime = opsconsole::sync::ledger::mtime_ns(&meta);
    ledger.track("checkpoints/v68_step_200.pt", meta.len(), mtime, &sha256(&p), None, &[], 1).expect("track");
    let p100 = ws.join("checkpoints/v68_step_100.pt");
    let m100 = std::fs::metadata(&p100).expect("meta");
    ledger
        .track(
            "checkpoints/v68_step_100.pt",
            m100.len(),
            opsconsole::sync::ledger::mtime_ns(&m100),
            &sha256(&p100),
            None,
            &[],
            1,
        )
        .expect("track");
    drop(ledger);
    let mut bytes = std::fs::read(&p).expect("read");
    bytes[2000] ^= 0xff;
    std::fs::write(&p, &bytes).expect("write");
    let cfg = config(&ws, "");
    let r = plan(&ws, &cfg);
    assert!(
        matches!(status_of(&r, "L1", "checkpoints/v68_step_200.pt"), Status::Failed { why } if why.contains("SHA-256 differs from the sync ledger")),
        "{r:#?}"
    );
    let w = r.winner.as_ref().expect("winner");
    assert_eq!(w.step, Some(100));
    assert!(
        matches!(status_of(&r, "L1", "checkpoints/v68_step_100.pt"), Status::Verified { how } if how == "SHA-256 matches the sync ledger")
    );
}

#[test]
fn an_empty_disk_pulls_from_l2_and_the_seeds_latest_file_counts() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = workspace(dir.path());
    let remote = dir.path().join("l2");
    local_remote(&ws, "drive", &remote);
    checkpoint(&remote.join("checkpoints/v68_step_300.pt"), 8192, 3, 2 * HOUR);
    let cfg = config(&ws, &format!("[sync.l2]\nremote = \"drive\"\n\n{}", local_remote_toml("drive", &remote)));
    let r = plan(&ws, &cfg);
    let w = r.winner.as_ref().expect("winner");
    assert_eq!((w.level.as_str(), w.step, w.shown.as_str()), ("L2", Some(300), "checkpoints/v68_step_300.pt"));
    assert!(w.why.contains("no local checkpoint; the newest on L2"), "{}", w.why);
    assert_eq!(sha256(&ws.join("checkpoints/v68_step_300.pt")), sha256(&remote.join("checkpoints/v68_step_300.pt")));

    // The seed's v68_latest.pt, newer than every stepped checkpoint on L2, comes first.
    std::fs::remove_file(ws.join("checkpoints/v68_step_300.pt")).expect("rm");
    checkpoint(&remote.join("checkpoints/v68_latest.pt"), 8192, 4, HOUR);
    let r = plan(&ws, &cfg);
    let w = r.winner.as_ref().expect("winner");
    assert_eq!((w.level.as_str(), w.step, w.shown.as_str()), ("L2", None, "checkpoints/v68_latest.pt"), "{r:#?}");
    assert_eq!(r.levels[2].level, "L3");
    assert_eq!(status_of(&r, "L2", "checkpoints/v68_step_300.pt"), &Status::Listed);
}

fn drive_rig(dir: &Path, ckpt_len: usize) -> (drive::DriveStandIn, String, PathBuf, Vec<u8>) {
    let d = drive::DriveStandIn::start(drive::Options { redirect_downloads: true, ..drive::Options::default() });
    let team = d.add_shared_drive("Team", &[(drive::SA_EMAIL, drive::Role::Writer)]);
    let root = d.add_folder(&team, "rsm_project");
    let ck = d.add_folder(&root, "checkpoints");
    let tmp = dir.join("v68_step_500.pt");
    checkpoint(&tmp, ckpt_len, 5, HOUR);
    let bytes = std::fs::read(&tmp).expect("read");
    d.add_file(&ck, "v68_step_500.pt", &bytes, &[]);
    let key = dir.join("secrets/sa.json");
    d.write_key(&key);
    (d, root, key, bytes)
}

fn drive_toml(d: &drive::DriveStandIn, root: &str, key: &Path) -> String {
    format!(
        "[sync.l2]\nremote = \"gdrive\"\n\n[remotes.gdrive]\nkind = \"drive\"\nfolder_id = \"{root}\"\n\
         key_file = \"{}\"\nendpoint = \"{}\"\nscope = \"drive\"\n",
        key.display(),
        d.endpoint()
    )
}

#[test]
fn l2_on_the_drive_stand_in_with_an_interrupted_download_that_resumes() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = workspace(dir.path());
    let (d, root, key, bytes) = drive_rig(dir.path(), 6 << 20);
    let cfg = config(&ws, &drive_toml(&d, &root, &key));
    // The first try is cut after 2 MiB; the job resumes it with Range.
    d.push_fault(drive::Fault::new(drive::Op::Download, drive::Action::Cut(2 << 20)));
    let before = d.counters();
    let r = plan(&ws, &cfg);
    let w = r.winner.as_ref().expect("winner");
    assert_eq!((w.level.as_str(), w.step), ("L2", Some(500)), "{r:#?}");
    assert_eq!(std::fs::read(&w.path).expect("read"), bytes);
    let fetched = d.counters().download_bytes - before.download_bytes;
    assert_eq!(d.faults_left(), 0);
    assert!(fetched < bytes.len() as u64 + (256 << 10), "resumed, not fetched again: {fetched}");

    // A job stopped part-way leaves its .part; the next one continues it.
    std::fs::remove_file(&w.path).expect("rm");
    let part = ws.join("checkpoints/v68_step_500.pt.resume.part.part");
    std::fs::write(&part, &bytes[..4 << 20]).expect("part");
    let before = d.counters();
    let r = plan(&ws, &cfg);
    assert_eq!(std::fs::read(&r.winner.as_ref().expect("winner").path).expect("read"), bytes);
    let fetched = d.counters().download_bytes - before.download_bytes;
    assert!(fetched <= (bytes.len() - (4 << 20)) as u64 + (64 << 10), "only the rest was fetched: {fetched}");
    assert!(!part.exists());
}

struct FakeEnv(HashMap<String, String>);

impl opsconsole::sync::hf::token::Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
    fn home(&self) -> Option<PathBuf> {
        self.0.get("HOME").map(PathBuf::from)
    }
}

#[test]
fn l3_on_the_hub_stand_in_when_l2_lacks_the_checkpoint() {
    use opsconsole::sync::remote::{Remote, ResumePoint, StagedFile, TransferCtx, UploadRequest};
    let dir = tempfile::tempdir().expect("tmp");
    let ws = workspace(dir.path());
    let hub = hf_hub::HubStandIn::start();
    hub.create_repo("tester/rsm-weights", true);
    // The Hub holds step 400 (and another experiment's step 900), each as one commit.
    let settings = opsconsole::sync::hf::HfSettings {
        repo_id: "tester/rsm-weights".into(),
        private: true,
        allow_public: false,
        revision: "main".into(),
        path_prefix: String::new(),
        endpoint: Some(hub.endpoint()),
    };
    let env = FakeEnv(HashMap::from([
        ("HF_TOKEN".to_string(), hf_hub::WRITE_TOKEN.to_string()),
        ("HOME".to_string(), dir.path().display().to_string()),
    ]));
    let hf = opsconsole::sync::hf::HfRemote::with_env("hf", settings, Arc::new(env));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let mut wanted = String::new();
    for (key, seed) in [("checkpoints/v68_step_400.pt", 40u64), ("checkpoints/v67_step_900.pt", 90)] {
        let src = dir.path().join("seed").join(key);
        checkpoint(&src, 100_000, seed, HOUR);
        let sha = sha256(&src);
        let size = std::fs::metadata(&src).expect("meta").len();
        let ctx = TransferCtx::default();
        let req = UploadRequest {
            key,
            source: &src,
            size,
            sha256: &sha,
            md5: None,
            resume: ResumePoint { offset: 0, session: None },
        };
        rt.block_on(hf.upload(req, &ctx)).expect("stage");
        let staged = StagedFile { key: key.into(), source: src.clone(), size, sha256: sha.clone() };
        rt.block_on(hf.commit(key, &[staged], &ctx)).expect("commit");
        if key.contains("v68") {
            wanted = sha;
        }
    }
    // L2 is an empty folder.
    let remote = dir.path().join("l2");
    local_remote(&ws, "drive", &remote);
    config(
        &ws,
        &format!(
            "[sync.l2]\nremote = \"drive\"\n\n[sync.l3]\nremote = \"hf\"\n\n{}[remotes.hf]\nkind = \"hf\"\n\
             repo_id = \"tester/rsm-weights\"\nendpoint = \"{}\"\n",
            local_remote_toml("drive", &remote),
            hub.endpoint()
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("--workspace")
        .arg(&ws)
        .args(["resume", "--json"])
        .env("HF_TOKEN", hf_hub::WRITE_TOKEN)
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let w = &v["report"]["winner"];
    assert_eq!(w["level"], "L3", "{v:#}");
    assert_eq!(w["step"], 400);
    assert!(w["why"].as_str().unwrap_or("").contains("the newest on L3"), "{w}");
    assert_eq!(v["report"]["levels"][1]["candidates"].as_array().map(Vec::len), Some(0), "L2 lacks it");
    assert_eq!(sha256(&ws.join("checkpoints/v68_step_400.pt")), wanted);
    assert!(!ws.join("checkpoints/v67_step_900.pt").exists(), "another experiment's is not fetched");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(hf_hub::WRITE_TOKEN), "no token in the output");
}

/// A workspace whose newest checkpoint verifies, with `[resume] command` set to `cmd`.
fn run_rig(dir: &Path, cmd: &str, extra: &str) -> PathBuf {
    let ws = workspace(dir);
    checkpoint(&ws.join("checkpoints/v68_step_100.pt"), 4096, 1, HOUR);
    let toml = format!("[resume]\ncommand = '''{cmd}'''\n\n{extra}");
    config(&ws, &toml);
    ws
}

fn wait_for(path: &Path, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(t) = std::fs::read_to_string(path)
            && t.ends_with('\n')
        {
            return t;
        }
        assert!(Instant::now() < deadline, "{what} never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_starts_the_command_detached_in_its_own_session_appending_to_the_log() {
    let dir = tempfile::tempdir().expect("tmp");
    let marker = dir.path().join("marker.txt");
    // The command waits for its starter to leave, then writes who it is.
    let cmd = format!(
        "echo resumed from {{checkpoint}}; sleep 1; s=$(cat /proc/$$/stat); set -- ${{s#*) }}; \
         echo \"pid=$$ ppid=$2 sid=$4\" ckpt={{checkpoint}} > {}",
        marker.display()
    );
    let ws = run_rig(dir.path(), &cmd, "");
    let log = ws.join("experiments/v68_lane/logs/train.log");
    std::fs::write(&log, "step 1 | loss 3.0\n").expect("log");
    let out = opsconsole(&ws, &["resume", "--run"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("its own session") && err.contains("experiments/v68_lane/logs/train.log"), "{err}");
    let text = wait_for(&marker, "the marker");
    let field = |k: &str| -> i64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {text}"))
    };
    let (pid, ppid, sid) = (field("pid"), field("ppid"), field("sid"));
    assert_eq!(sid, pid, "a session of its own (setsid): {text}");
    // From /proc, not getsid(2): in a container whose session leader lives outside the PID
    // namespace the kernel answers 0, which rustix's getsid refuses with a panic.
    let my_sid: i64 = procstat::fields("self").and_then(|f| f[3].parse().ok()).expect("the session in /proc/self/stat");
    assert_ne!(sid, my_sid, "not in the starter's session");
    assert_ne!(ppid, std::process::id() as i64);
    assert!(text.contains(&format!("ckpt={}", ws.join("checkpoints/v68_step_100.pt").display())), "{text}");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.starts_with("step 1 | loss 3.0\nresumed from "), "appended after what was there: {logged}");
    let runs = std::fs::read_to_string(ws.join(".opsconsole/resume-runs.jsonl")).expect("recorded");
    assert!(runs.contains(&format!("\"pid\":{pid}")), "{runs}");
}

#[test]
fn run_refuses_while_a_process_writes_the_log_or_holds_a_gpu() {
    let dir = tempfile::tempdir().expect("tmp");
    let marker = dir.path().join("started.txt");
    let cmd = format!("echo started > {} # {{checkpoint}}", marker.display());
    let ws = run_rig(dir.path(), &cmd, "");
    let log = ws.join("experiments/v68_lane/logs/train.log");
    // A training run still writing the log.
    let mut writer = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec 3>>'{}'; echo ready; exec sleep 30", log.display()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("writer");
    let mut ready = [0u8; 6];
    std::io::Read::read_exact(writer.stdout.as_mut().expect("stdout"), &mut ready).expect("ready");
    let out = opsconsole(&ws, &["resume", "--run"]);
    let _ = writer.kill();
    let _ = writer.wait();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a training process is running") && err.contains(&format!("pid {}", writer.id())), "{err}");
    assert!(err.contains("writing"), "{err}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!marker.exists(), "nothing was started");

    // A compute process on a GPU (NVML through the stand-in library).
    let stub = nvml::StubNvml::build();
    let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().expect("sleep");
    stub.write(&format!(
        "{}{}",
        nvml::gpu_line(
            "NVIDIA L4",
            nvml::L4_TOTAL,
            17 * nvml::GIB,
            "util=98 memutil=40 temp=70 power=72000 limit=72000"
        ),
        nvml::proc_line(0, sleeper.id(), 16 * nvml::GIB)
    ));
    let ws2 = run_rig(&dir.path().join("b"), &cmd, &format!("[gpu]\nlib_path = \"{}\"\n", stub.lib.display()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("--workspace")
        .arg(&ws2)
        .args(["resume", "--run", "--json"])
        .env("NVML_STUB_FIXTURE", &stub.fixture)
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .output()
        .expect("run");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let why = v["refused"]["why"].as_str().unwrap_or_default();
    assert!(why.contains(&format!("pid {}", sleeper.id())) && why.contains("on GPU 0"), "{v:#}");
    assert_eq!(v["launch"], serde_json::Value::Null);
    assert!(!marker.exists(), "nothing was started");
}

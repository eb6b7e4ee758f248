//! The real binary with a Drive remote against the stand-in (`tests/support/drive.rs`):
//! `opsconsole sync --daemon` killed with SIGKILL mid-upload resumes the same session;
//! `status --json` and the console (in tmux) show a Drive level's progress, a quota error
//! with its fix and a retrying state; and nothing written anywhere holds a token, the
//! private key or an `Authorization` header.

#[path = "support/drive.rs"]
mod standin;
#[path = "support/tmux.rs"]
mod tmux;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opsconsole::sync::ledger::{Ledger, UploadState};
use standin::{DriveStandIn, Fault, Op, Options, Role, SA_EMAIL};
use tmux::Tmux;

const MIB: u64 = 1 << 20;

/// A child process killed (SIGKILL) and reaped when dropped.
struct Proc(Child);

impl Proc {
    fn kill9(&mut self) {
        // `Child::kill` is SIGKILL: no chance to clean up, as with `kill -9`.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A workspace whose L2 and L3 store into Drive remotes of the stand-in.
struct Rig {
    d: DriveStandIn,
    dir: tempfile::TempDir,
    ws: PathBuf,
    team_folder: String,
    my_drive_folder: String,
}

impl Rig {
    fn new(opts: Options, l3_remote: &str, cap_kib: u64) -> Self {
        let d = DriveStandIn::start(opts);
        let team = d.add_shared_drive("Team", &[(SA_EMAIL, Role::Writer)]);
        let team_folder = d.add_folder(&team, "rsm_project");
        let my_drive_folder = d.add_my_drive_folder("alice@example.com", "colab_workspace", Some(Role::Writer));
        let dir = tempfile::tempdir().expect("tmp");
        let key = dir.path().join("secrets/colab-service-account.json");
        d.write_key(&key);
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
        let remote = |name: &str, folder: &str| {
            format!(
                "[remotes.{name}]\nkind = \"drive\"\nfolder_id = \"{folder}\"\nkey_file = \"{}\"\n\
                 endpoint = \"{}\"\nchunk_mib = 1\n\n",
                key.display(),
                d.endpoint()
            )
        };
        let config = format!(
            "[sync]\nsettle_seconds = 1\npoll_seconds = 5\nretry_base_seconds = 1\nretry_max_seconds = 2\n\
             bandwidth_limit_kib_s = {cap_kib}\n\n[sync.l2]\nremote = \"gdrive\"\ninterval_minutes = 0\n\n\
             [sync.l3]\nremote = \"{l3_remote}\"\ninterval_minutes = 0\n\n{}{}",
            remote("gdrive", &team_folder),
            remote("mine", &my_drive_folder)
        );
        std::fs::write(ws.join("opsconsole.toml"), config).expect("config");
        Self { d, dir, ws, team_folder, my_drive_folder }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `opsconsole sync --daemon`, stderr into `name`.log.
    fn daemon(&self, name: &str, extra: &[&str]) -> Proc {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log");
        Proc(
            Command::new(env!("CARGO_BIN_EXE_opsconsole"))
                .arg("--workspace")
                .arg(&self.ws)
                .args(extra)
                .args(["sync", "--daemon"])
                .env("XDG_STATE_HOME", self.state_dir())
                .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn opsconsole sync --daemon"),
        )
    }

    fn status_json(&self) -> (serde_json::Value, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
            .arg("--workspace")
            .arg(&self.ws)
            .args(["status", "--json"])
            .env("XDG_STATE_HOME", self.state_dir())
            .output()
            .expect("status --json");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (serde_json::from_str(&text).unwrap_or_default(), text + &String::from_utf8_lossy(&out.stderr))
    }
}

fn write_pattern(path: &Path, len: u64, seed: u64) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut block = vec![0u8; MIB as usize];
    fastrand::Rng::with_seed(seed).fill(&mut block);
    let mut f = std::fs::File::create(path).expect("create");
    let mut left = len;
    let mut i = 0u32;
    while left > 0 {
        block[..4].copy_from_slice(&i.to_le_bytes());
        let n = left.min(MIB) as usize;
        f.write_all(&block[..n]).expect("write");
        left -= n as u64;
        i += 1;
    }
}

/// A training log of about `len` bytes.
fn write_log(path: &Path, len: u64) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let (mut n, mut step) = (0u64, 0u64);
    while n < len {
        let line = format!(
            "{{'loss': {:.4}, 'grad_norm': 0.81, 'learning_rate': 0.0003, 'epoch': {:.2}, 'step': {step}}}\n",
            3.0 - step as f64 * 1e-5,
            step as f64 / 1e4
        );
        f.write_all(line.as_bytes()).expect("write");
        n += line.len() as u64;
        step += 1;
    }
}

fn md5_file(p: &Path) -> String {
    use md5::Digest;
    let mut h = md5::Md5::new();
    std::io::copy(&mut std::fs::File::open(p).expect("open"), &mut h).expect("md5");
    opsconsole::sync::hash::hex(&h.finalize())
}

/// Poll `f` until it gives `Some`, for at most `secs` (generous: a loaded 2-core machine).
fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_daemon_killed_mid_upload_resumes_the_same_session_resending_at_most_a_chunk_each_time() {
    // A slow uplink (8 MiB/s, 1 MiB chunks): the kills land inside chunks.
    let rig = Rig::new(Options { throttle: Some(8 * MIB), ..Options::default() }, "gdrive", 0);
    let size = 40 * MIB + 12_345;
    let rel = "checkpoints/v68_step_1000.pt";
    write_pattern(&rig.ws.join(rel), size, 68);
    let mut rng = fastrand::Rng::with_seed(0x9111);
    let kills = 4;
    for round in 0..kills {
        let mut child = rig.daemon(&format!("daemon-{round}"), &[]);
        let before = rig.d.counters().upload_bytes;
        // Some bytes of this run arrived (so its session is in the ledger), then a random
        // moment later: SIGKILL.
        let more = rng.u64(MIB / 2..3 * MIB);
        wait_for("the daemon to send bytes", 120, || (rig.d.counters().upload_bytes > before + more).then_some(()));
        child.kill9();
        let l = Ledger::open(&rig.ws).expect("ledger opens after kill -9");
        assert!(l.integrity_ok().expect("integrity"), "round {round}");
        let e = l.entry(rel, "L3").expect("entry").expect("row");
        assert!(e.session.as_deref().is_some_and(|s| s.contains("upload_id=")), "the session is in the ledger");
    }
    let sessions_mid = rig.d.sessions();
    assert_eq!(sessions_mid.len(), 1, "one session so far: {sessions_mid:?}");
    let _child = rig.daemon("daemon-final", &[]);
    wait_for("the upload to be confirmed", 300, || {
        let l = Ledger::open(&rig.ws).ok()?;
        let e = l.entry(rel, "L3").ok()??;
        (e.state == UploadState::Confirmed).then_some(())
    });
    let c = rig.d.counters();
    assert_eq!(c.sessions_started, 1, "every restart resumed the same session");
    let sessions = rig.d.sessions();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].2, "and it finished");
    let resent = c.upload_bytes - size;
    assert!(resent <= kills * MIB, "at most one 1 MiB chunk re-sent per kill: {resent} bytes re-sent");
    eprintln!("kill -9 x{kills}: {resent} bytes re-sent in all, {} status queries", c.status_queries);
    let files = rig.d.files_under(&rig.team_folder);
    let (id, stored, md5, props) = files.get(rel).cloned().expect("stored under its path");
    assert_eq!(stored, size);
    assert_eq!(md5, md5_file(&rig.ws.join(rel)));
    let sha = opsconsole::sync::hash::sha256_file(&rig.ws.join(rel)).expect("sha");
    assert_eq!(props.get("opsconsole_sha256"), Some(&sha));
    let l = Ledger::open(&rig.ws).expect("ledger");
    let e = l.entry(rel, "L3").expect("entry").expect("row");
    assert_eq!(e.remote_id.as_deref(), Some(id.as_str()));
    // This file goes to Drive: the hash pass took its MD5 (a local remote's file has none).
    assert_eq!(e.md5.as_deref(), Some(md5.as_str()), "the ledger holds the hash pass's MD5");
    let resumed = (1..kills)
        .chain([kills])
        .filter_map(|i| {
            let name = if i == kills { "daemon-final".to_string() } else { format!("daemon-{i}") };
            std::fs::read_to_string(rig.dir.path().join(format!("{name}.log"))).ok()
        })
        // A restart after the last chunk went says every byte is there already.
        .filter(|log| log.contains(" resuming ") || log.contains("every byte already there"))
        .count();
    assert_eq!(resumed as u64, kills, "every restart said it resumed");
}

/// Every token the stand-in issued, the private key's lines, a bearer header and a JWT
/// head must be absent from `text`.
fn assert_no_secret(rig: &Rig, what: &str, text: &str) {
    for t in rig.d.issued_tokens() {
        assert!(!text.contains(&t), "{what} holds an access token");
    }
    for line in rig.d.private_key_lines() {
        assert!(!text.contains(&line), "{what} holds a line of the private key");
    }
    let lower = text.to_ascii_lowercase();
    assert!(!lower.contains("bearer "), "{what} holds a bearer token");
    assert!(!lower.contains("authorization:"), "{what} holds an Authorization header");
    // The head of an RS256 JWT (the signed assertion), base64url.
    assert!(!text.contains("eyJhbGciOiJSUzI1NiIs"), "{what} holds a signed JWT");
}

/// Everything under `dir`, as text (binary files lossily).
fn all_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, String::from_utf8_lossy(&b).into_owned()));
            }
        }
    }
    out
}

#[test]
fn status_json_shows_drive_progress_a_quota_error_with_its_fix_and_a_retrying_state_and_no_secret() {
    // L2 into the Shared Drive (slowly: 1 MiB/s), L3 into a My Drive folder (refused).
    let rig = Rig::new(Options::default(), "mine", 1024);
    write_log(&rig.ws.join("experiments/v68/logs/train.log"), 12 * MIB);
    write_pattern(&rig.ws.join("checkpoints/v68_step_2000.pt"), 3 * MIB, 2);
    let _daemon = rig.daemon("daemon", &["--log-level", "trace"]);

    // Progress of the Drive level.
    let (json, _) = wait_for("L2 progress in status --json", 120, || {
        let (j, t) = rig.status_json();
        let f = &j["sync"]["levels"][0]["in_flight"];
        (f["bytes_done"].as_u64().unwrap_or(0) > 0).then_some((j, t))
    });
    let l2 = &json["sync"]["levels"][0];
    assert_eq!(l2["remote"], "gdrive");
    assert_eq!(l2["in_flight"]["path"], "experiments/v68/logs/train.log");
    let log_len = std::fs::metadata(rig.ws.join("experiments/v68/logs/train.log")).expect("log").len();
    assert_eq!(l2["in_flight"]["bytes_total"], log_len);

    // The quota error with its fix, permanent.
    let (json, _) = wait_for("the L3 quota failure", 120, || {
        let (j, t) = rig.status_json();
        (j["sync"]["levels"][1]["failed"].as_u64() == Some(1)).then_some((j, t))
    });
    let f = &json["sync"]["levels"][1]["failures"][0];
    assert_eq!(f["path"], "checkpoints/v68_step_2000.pt");
    assert_eq!(f["permanent"], true);
    assert_eq!(f["retry_at_unix"], serde_json::Value::Null);
    let reason = f["reason"].as_str().unwrap_or("");
    assert!(reason.contains("no storage quota: a service account has none of its own"), "{reason}");
    assert!(reason.contains(". Fix: put folder_id in a Shared Drive with"), "{reason}");
    assert!(reason.contains(SA_EMAIL), "{reason}");

    // A rate limit with a long Retry-After on the L2 upload: retrying, with its time.
    rig.d.push_fault(Fault::status(Op::Chunk, 429, "rateLimitExceeded", Some(600)));
    let (json, text) = wait_for("the L2 retrying state", 120, || {
        let (j, t) = rig.status_json();
        (j["sync"]["levels"][0]["failed"].as_u64() == Some(1)).then_some((j, t))
    });
    let f = &json["sync"]["levels"][0]["failures"][0];
    assert_eq!(f["permanent"], false, "{text}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs() as i64;
    let at = f["retry_at_unix"].as_i64().expect("a retry time");
    assert!(at > now + 500 && at <= now + 601, "retried after Retry-After: at {at}, now {now}");
    assert!(f["reason"].as_str().unwrap_or("").contains("Drive asks to slow down"), "{text}");
    assert_eq!(rig.d.faults_left(), 0);
    assert!(!rig.d.issued_tokens().is_empty());

    // Nothing written holds a secret: the trace-level log, the ledger (and its WAL), the
    // daemon's stderr, status --json.
    drop(_daemon);
    assert_no_secret(&rig, "status --json", &text);
    let written: Vec<(PathBuf, String)> = all_files(&rig.state_dir())
        .into_iter()
        .chain(all_files(&rig.ws.join(".opsconsole")))
        .chain(all_files(rig.dir.path()).into_iter().filter(|(p, _)| p.extension().is_some_and(|e| e == "log")))
        .collect();
    assert!(written.iter().any(|(p, _)| p.ends_with("opsconsole.log")), "the trace log was written");
    let log = written.iter().find(|(p, _)| p.ends_with("opsconsole.log")).map(|(_, t)| t.clone()).unwrap_or_default();
    assert!(log.lines().count() > 50, "trace logging was on: {} lines", log.lines().count());
    for (p, t) in &written {
        assert_no_secret(&rig, &p.display().to_string(), t);
    }
    let _ = rig.my_drive_folder;
}

#[test]
#[ignore = "needs tmux"]
fn the_console_shows_drive_progress_a_quota_error_and_a_retrying_state() {
    Tmux::require();
    let rig = Rig::new(Options::default(), "mine", 512);
    write_log(&rig.ws.join("experiments/v68/logs/train.log"), 16 * MIB);
    write_pattern(&rig.ws.join("checkpoints/v68_step_2000.pt"), 2 * MIB, 2);
    let cmd = format!(
        "env XDG_STATE_HOME={} {} --log-level debug --workspace {}",
        rig.state_dir().display(),
        env!("CARGO_BIN_EXE_opsconsole"),
        rig.ws.display()
    );
    let t = Tmux::shell("drive-console", 100, 30);
    t.send(&[&cmd, "Enter"]);
    let mut screens = Vec::new();
    screens.push(
        t.wait_for("L2 drive progress", |s| s.contains("train.log") && s.contains('%') && s.contains("L2 gdrive")),
    );
    screens.push(t.wait_for("the L3 quota failure", |s| s.contains("✗ 1 failed: no storage quota")));
    rig.d.push_fault(Fault::status(Op::Chunk, 429, "rateLimitExceeded", Some(600)));
    screens
        .push(t.wait_for("the L2 retrying state", |s| s.contains("↻ retrying in") && s.contains("Drive asks to slow")));
    // The whole quota reason and fix in the queue: focus the Uploads panel, Enter, select
    // the failed row.
    let quota_row = |s: &str| s.contains("Fix: put folder_id in a Shared Drive");
    for _ in 0..4 {
        if t.capture().contains("Upload queue") {
            break;
        }
        t.send(&["Tab"]);
        std::thread::sleep(Duration::from_millis(200));
        t.send(&["Enter"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut found = None;
    for _ in 0..6 {
        let s = t.capture();
        if quota_row(&s) {
            found = Some(s);
            break;
        }
        t.send(&["j"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    let queue = found.unwrap_or_else(|| panic!("the quota fix in the queue; screen:\n{}", t.capture()));
    assert!(queue.contains("Content manager"), "{queue}");
    screens.push(queue);
    t.send(&["Escape"]);
    t.send(&["q"]);
    t.wait_for("the shell prompt back", |s| s.trim_end().ends_with("READY$"));
    screens.push(t.history());
    for (i, s) in screens.iter().enumerate() {
        assert_no_secret(&rig, &format!("screen {i}"), s);
    }
    for (p, text) in all_files(&rig.state_dir()).into_iter().chain(all_files(&rig.ws.join(".opsconsole"))) {
        assert_no_secret(&rig, &p.display().to_string(), &text);
    }
}

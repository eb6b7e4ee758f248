//! The pre-shutdown checklist on prepared workspaces: every item passing and failing with
//! real git repositories (a local bare repository as the upstream), real ledgers filled by
//! `sync --once` and by the ledger API (pending, failed, confirmed rows), a real process
//! holding the training log open, disk samples above warn, job markers, extra commands;
//! `shutdown-check` exit codes and `--json`; the shutdown command run only when allowed,
//! and every override recorded; the external address from a metadata server stand-in on
//! 127.0.0.1.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use opsconsole::checklist::gather::{LiveCache, Sources, gather};
use opsconsole::checklist::shutdown::{self, Outcome};
use opsconsole::checklist::{Report, Status};
use opsconsole::config::Config;
use opsconsole::disk::{DiskInfo, DiskSample, Level};
use opsconsole::gpu::{GpuDevice, GpuProcess, GpuSample, NvmlStatus};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_opsconsole")
}

fn run(ws: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("-w")
        .arg(ws)
        .args(args)
        .env("XDG_STATE_HOME", ws.parent().expect("parent").join("state"))
        .output()
        .expect("run opsconsole")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ok(ws: &Path, args: &[&str]) -> String {
    let o = run(ws, args);
    assert!(o.status.success(), "opsconsole {args:?} failed:\n{}", text(&o));
    text(&o)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn touch_ago(p: &Path, ago: &str) {
    assert!(Command::new("touch").args(["-d", ago]).arg(p).status().expect("touch").success());
}

const BASE_CONFIG: &str = r#"
[gpu]
enabled = false

[disk]
warn_pct = 99.0
critical_pct = 99.5

[sync]
settle_seconds = 1

[sync.l2]
remote = "r2"

[sync.l3]
remote = "r3"

[remotes.r2]
kind = "local"
path = "REMOTE2"
same_disk = true

[remotes.r3]
kind = "local"
path = "REMOTE3"
same_disk = true
"#;

/// A workspace where every item passes: code committed and pushed to a bare upstream,
/// one checkpoint and one log stored on L3 and L2 (`sync --once`), the journal written
/// after the run, requirements frozen after they changed.
struct Ws {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ws: PathBuf,
}

impl Ws {
    fn new(extra_config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let ws = root.join("ws");
        for d in ["ws/checkpoints", "ws/experiments/v01/logs", "r2", "r3"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        let cfg = BASE_CONFIG
            .replace("REMOTE2", &root.join("r2/store").display().to_string())
            .replace("REMOTE3", &root.join("r3/store").display().to_string());
        std::fs::write(ws.join("opsconsole.toml"), format!("{cfg}\n{extra_config}")).expect("config");
        std::fs::write(ws.join(".gitignore"), "checkpoints/\n*.log\n.opsconsole/\n").expect("gitignore");
        std::fs::write(ws.join("train.py"), "print('train')\n").expect("train.py");
        let ck = ws.join("checkpoints/v01_step_100.pt");
        std::fs::write(&ck, vec![7u8; 32 * 1024]).expect("ckpt");
        touch_ago(&ck, "3 hours ago");
        let log = ws.join("experiments/v01/logs/train.log");
        std::fs::write(&log, "step 100 loss 2.5\n").expect("log");
        touch_ago(&log, "2 hours ago");
        std::fs::write(ws.join("requirements.txt"), "torch==2.3.0\n").expect("req");
        touch_ago(&ws.join("requirements.txt"), "5 hours ago");
        std::fs::write(ws.join("frozen_requirements.txt"), "torch==2.3.0\nnumpy==1.26.4\n").expect("frozen");
        touch_ago(&ws.join("frozen_requirements.txt"), "4 hours ago");
        std::fs::write(ws.join("journal.md"), "## v01\nloss 2.5 after 100 steps\n").expect("journal");
        touch_ago(&ws.join("journal.md"), "1 hour ago");
        // Git: a bare repository beside it is the upstream.
        git(&root, &["init", "-q", "--bare", "-b", "main", "upstream.git"]);
        git(&ws, &["init", "-q", "-b", "main"]);
        git(&ws, &["remote", "add", "origin", &root.join("upstream.git").display().to_string()]);
        git(&ws, &["add", "-A"]);
        git(&ws, &["commit", "-q", "-m", "v01"]);
        git(&ws, &["push", "-q", "-u", "origin", "main"]);
        ok(&ws, &["remote", "check", "--init"]);
        ok(&ws, &["sync", "--once"]);
        Ws { _dir: dir, root, ws }
    }

    fn config(&self) -> Config {
        opsconsole::config::load(Some(&self.ws.join("opsconsole.toml"))).expect("config").0
    }

    /// The report through the library, with these samples.
    fn gather(&self, gpu: Option<&GpuSample>, disks: Option<&DiskSample>) -> Report {
        let cfg = self.config();
        let disks_default = disk_sample(40.0);
        let disks = disks.or(Some(&disks_default));
        gather(&self.ws, &cfg, SystemTime::now(), Sources { gpu, disks, live: true, cache: None })
    }

    /// The report through the binary: exit code and JSON.
    fn check(&self) -> (i32, serde_json::Value) {
        let o = run(&self.ws, &["shutdown-check", "--json"]);
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("JSON: {e}\n{}", text(&o)));
        (o.status.code().unwrap_or(-1), v)
    }
}

fn item<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["items"].as_array().expect("items").iter().find(|i| i["name"] == name).unwrap_or_else(|| panic!("{name}: {v}"))
}

fn status_of(v: &serde_json::Value, name: &str) -> String {
    item(v, name)["status"].as_str().expect("status").to_string()
}

fn reason_of(v: &serde_json::Value, name: &str) -> String {
    item(v, name)["reason"].as_str().expect("reason").to_string()
}

fn rep_item<'a>(r: &'a Report, name: &str) -> &'a opsconsole::checklist::Item {
    r.item(name).unwrap_or_else(|| panic!("no {name} in {r:?}"))
}

fn disk_sample(pct: f64) -> DiskSample {
    let total = 100_000_000_000u64;
    let used = (total as f64 * pct / 100.0) as u64;
    let level = if pct >= 80.0 { Level::Warn } else { Level::Ok };
    DiskSample {
        disks: vec![DiskInfo {
            mount: "/".into(),
            device: "/dev/sda1".into(),
            fs_type: "ext4".into(),
            total_bytes: total,
            used_bytes: used,
            available_bytes: total - used,
            fill_pct: pct,
            level,
            roles: vec!["workspace".into(), "root".into()],
        }],
        errors: vec![],
    }
}

fn gpu_with_process(pid: u32) -> GpuSample {
    let proc_info =
        opsconsole::gpu::procinfo::ProcInfo { command: Some("python train.py --lr 3e-4".into()), ..Default::default() };
    GpuSample {
        taken_at_unix_ms: 0,
        nvml: NvmlStatus::Ok { driver_version: "550.54".into() },
        gpus: vec![GpuDevice {
            index: 0,
            name: "NVIDIA L4".into(),
            uuid: None,
            memory_used_bytes: Some(17_000_000_000),
            memory_total_bytes: Some(23_000_000_000),
            utilization_pct: Some(98),
            memory_utilization_pct: Some(60),
            temperature_c: Some(71),
            power_draw_mw: Some(72_000),
            power_limit_mw: Some(72_000),
            processes: vec![GpuProcess::new(pid, 0, Some(16_900_000_000), proc_info)],
            processes_error: None,
            error: None,
        }],
    }
}

#[test]
fn a_ready_workspace_passes_every_item_and_exits_0_as_text_and_json() {
    let w = Ws::new("");
    let (code, v) = w.check();
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["failing"].as_array().map(Vec::len), Some(0));
    for name in ["training", "uploads", "weights", "logs", "git", "journal", "requirements", "disks", "jobs"] {
        assert_eq!(status_of(&v, name), "pass", "{name}: {}", reason_of(&v, name));
    }
    assert!(reason_of(&v, "weights").contains("checkpoints/v01_step_100.pt confirmed"), "{v:#}");
    assert!(reason_of(&v, "weights").contains("copy verified"), "checked on the remote: {v:#}");
    assert!(reason_of(&v, "logs").contains("experiments/v01/logs/train.log confirmed"), "{v:#}");
    assert!(reason_of(&v, "logs").contains("journal.md confirmed"), "{v:#}");
    assert!(reason_of(&v, "git").contains("up to date with origin/main"), "{v:#}");
    let o = run(&w.ws, &["shutdown-check"]);
    assert_eq!(o.status.code(), Some(0));
    let t = text(&o);
    assert!(t.contains("✓ git") && t.contains("every item passes"), "{t}");
}

#[test]
fn git_fails_on_changes_unpushed_commits_no_upstream_and_other_branches() {
    let w = Ws::new("");
    std::fs::write(w.ws.join("train.py"), "print('changed')\n").expect("edit");
    std::fs::write(w.ws.join("notes.txt"), "x\n").expect("new");
    let (code, v) = w.check();
    assert_eq!(code, 1);
    assert_eq!(status_of(&v, "git"), "fail");
    let r = reason_of(&v, "git");
    assert!(r.contains("1 changed, 1 untracked") && r.contains("train.py"), "{r}");
    assert_eq!(v["failing"], serde_json::json!(["git"]), "only git fails: {v:#}");

    git(&w.ws, &["add", "-A"]);
    git(&w.ws, &["commit", "-q", "-m", "more"]);
    let (_, v) = w.check();
    assert!(reason_of(&v, "git").contains("1 commit not pushed to origin/main"), "{v:#}");
    assert!(item(&v, "git")["fix"]["words"].as_str().expect("fix").contains("git push"), "{v:#}");
    git(&w.ws, &["push", "-q"]);
    let (code, v) = w.check();
    assert_eq!((code, status_of(&v, "git")), (0, "pass".to_string()), "{v:#}");

    // A branch of its own with no upstream.
    git(&w.ws, &["switch", "-q", "-c", "experiment"]);
    let (code, v) = w.check();
    assert_eq!(code, 1);
    let r = reason_of(&v, "git");
    assert!(r.contains("branch experiment has no upstream"), "{r}");
    assert!(item(&v, "git")["fix"]["words"].as_str().expect("fix").contains("git push -u origin experiment"), "{v:#}");

    // Back on main (pushed): a commit left on the other branch is on no remote.
    std::fs::write(w.ws.join("exp.py"), "1\n").expect("write");
    git(&w.ws, &["add", "-A"]);
    git(&w.ws, &["commit", "-q", "-m", "exp"]);
    git(&w.ws, &["switch", "-q", "main"]);
    let (_, v) = w.check();
    assert!(reason_of(&v, "git").contains("commits on experiment are on no remote"), "{v:#}");
    git(&w.ws, &["push", "-q", "-u", "origin", "experiment"]);
    let (code, v) = w.check();
    assert_eq!(code, 0, "{v:#}");

    // Not a repository at all.
    std::fs::rename(w.ws.join(".git"), w.root.join("moved.git")).expect("move");
    let (_, v) = w.check();
    assert!(reason_of(&v, "git").contains("not in a git repository"), "{v:#}");
}

#[test]
fn level_items_follow_the_ledger_and_the_remote_copy() {
    let w = Ws::new("");
    // A newer checkpoint the engine has not stored yet.
    let newer = w.ws.join("checkpoints/v01_step_200.pt");
    std::fs::write(&newer, vec![8u8; 32 * 1024]).expect("ckpt");
    touch_ago(&newer, "90 minutes ago");
    let (code, v) = w.check();
    assert_eq!(code, 1);
    assert_eq!(status_of(&v, "weights"), "fail");
    assert!(reason_of(&v, "weights").contains("v01_step_200.pt is not in the sync ledger yet"), "{v:#}");
    assert_eq!(item(&v, "weights")["fix"]["action"], "sync_now");
    ok(&w.ws, &["sync", "--once"]);
    let (code, v) = w.check();
    assert_eq!(code, 0, "{v:#}");

    // The log grew after its copy.
    let log = w.ws.join("experiments/v01/logs/train.log");
    std::fs::OpenOptions::new().append(true).open(&log).expect("log").write_all(b"step 200\n").expect("append");
    touch_ago(&log, "80 minutes ago");
    let (_, v) = w.check();
    assert_eq!(status_of(&v, "logs"), "fail");
    assert!(reason_of(&v, "logs").contains("train.log changed since it was stored"), "{v:#}");
    ok(&w.ws, &["sync", "--once"]);
    let (_, v) = w.check();
    assert_eq!(status_of(&v, "logs"), "pass", "{v:#}");

    // The copy on the remote deleted behind the ledger's back: the live check finds it,
    // and it is queued to be stored again.
    let stored = w.root.join("r3/store/checkpoints/v01_step_200.pt");
    assert!(stored.is_file(), "stored at {}", stored.display());
    std::fs::remove_file(&stored).expect("rm");
    let (code, v) = w.check();
    assert_eq!(code, 1);
    let r = reason_of(&v, "weights");
    assert!(r.contains("failed verification") && r.contains("missing"), "{r}");
    let (_, v) = w.check();
    assert!(reason_of(&v, "weights").contains("waiting to be stored again"), "requeued: {v:#}");
    assert_eq!(status_of(&v, "uploads"), "fail", "the requeued copy waits: {v:#}");

    // L3 repointed to a remote that never stored anything.
    let cfg = std::fs::read_to_string(w.ws.join("opsconsole.toml")).expect("cfg");
    let fresh = w.root.join("r3/fresh");
    std::fs::write(
        w.ws.join("opsconsole.toml"),
        format!(
            "{}\n[remotes.r3b]\nkind = \"local\"\npath = \"{}\"\nsame_disk = true\n",
            cfg.replace("remote = \"r3\"", "remote = \"r3b\""),
            fresh.display()
        ),
    )
    .expect("cfg");
    let (_, v) = w.check();
    let r = reason_of(&v, "weights");
    assert!(r.contains("remote 'r3', not 'r3b'") || r.contains("remote 'r3', not on 'r3b'"), "{r}");

    // L3 off: the item is off and does not fail; an unconfigured remote fails.
    std::fs::write(
        w.ws.join("opsconsole.toml"),
        format!("{cfg}\n[checklist]\nlogs = false\n").replace("[sync.l3]\n", "[sync.l3]\nenabled = false\n"),
    )
    .expect("cfg");
    let (_, v) = w.check();
    assert_eq!(status_of(&v, "weights"), "off", "{v:#}");
    assert_eq!(status_of(&v, "logs"), "off", "{v:#}");
    assert!(reason_of(&v, "logs").contains("checklist.logs = false"), "{v:#}");
    assert!(!v["failing"].as_array().expect("failing").iter().any(|f| f == "weights" || f == "logs"), "{v:#}");
    std::fs::write(w.ws.join("opsconsole.toml"), cfg.replace("remote = \"r3\"", "remote = \"nowhere\"")).expect("cfg");
    let (_, v) = w.check();
    assert!(reason_of(&v, "weights").contains("remote 'nowhere' is not configured"), "{v:#}");
}

#[test]
fn uploads_item_reads_pending_failed_and_confirmed_rows() {
    let w = Ws::new("");
    let cfg = w.config();
    let r = w.gather(None, None);
    assert_eq!(rep_item(&r, "uploads").status, Status::Pass, "{r:?}");
    assert!(rep_item(&r, "uploads").reason.contains("L3 r3: nothing waiting, last ok"), "{r:?}");
    let now = opsconsole::unixtime::now_ms();
    let mut ledger = opsconsole::sync::ledger::Ledger::open(&w.ws).expect("ledger");
    ledger.track("notes/a.json", 3_100_000, 1, "aa", None, &[("L2", "r2")], now).expect("track");
    drop(ledger);
    let r = w.gather(None, None);
    let i = rep_item(&r, "uploads");
    assert_eq!(i.status, Status::Fail);
    assert!(i.reason.contains("L2 r2: 1 waiting (3.1 MB)"), "{}", i.reason);
    assert_eq!(i.fix.as_ref().and_then(|f| f.action.as_deref()), Some("sync_now"));
    let mut ledger = opsconsole::sync::ledger::Ledger::open(&w.ws).expect("ledger");
    ledger
        .set_failed("notes/a.json", "L2", "aa", "no space left on remote 'r2'. Fix: free space", true, 0, now)
        .expect("fail");
    drop(ledger);
    let r = w.gather(None, None);
    let i = rep_item(&r, "uploads");
    assert!(i.reason.contains("1 failed: notes/a.json: no space left on remote 'r2'"), "{}", i.reason);
    assert!(!i.reason.contains("Fix:"), "the engine's long fix is not repeated: {}", i.reason);
    assert_eq!(i.fix.as_ref().and_then(|f| f.action.as_deref()), Some("retry_failed"));
    // Confirmed again: passes.
    let mut ledger = opsconsole::sync::ledger::Ledger::open(&w.ws).expect("ledger");
    ledger.set_confirmed("notes/a.json", "L2", "aa", "id", "aa", now).expect("confirm");
    drop(ledger);
    assert_eq!(rep_item(&w.gather(None, None), "uploads").status, Status::Pass);
    // Both levels off: the item is off.
    let mut off = cfg.clone();
    off.sync.l2.enabled = false;
    off.sync.l3.enabled = false;
    let r = gather(&w.ws, &off, SystemTime::now(), Sources { gpu: None, disks: None, live: false, cache: None });
    assert_eq!(rep_item(&r, "uploads").status, Status::Off);
    assert_eq!(rep_item(&r, "weights").status, Status::Off);
}

#[test]
fn training_fails_for_a_gpu_process_and_for_a_real_writer_of_the_log() {
    let w = Ws::new("");
    let r = w.gather(Some(&gpu_with_process(4121)), None);
    let i = rep_item(&r, "training");
    assert_eq!(i.status, Status::Fail);
    assert!(i.reason.contains("pid 4121 python train.py --lr 3e-4 (GPU 0 (16.9 GB))"), "{}", i.reason);
    assert!(i.fix.as_ref().expect("fix").words.contains("type `training`"), "{i:?}");
    // NVML that answered with an error: nothing can be said, so it fails.
    let mut bad = gpu_with_process(1);
    bad.nvml = NvmlStatus::NoPermission;
    assert_eq!(rep_item(&w.gather(Some(&bad), None), "training").status, Status::Fail);

    // A real process holding the log open for writing (found through /proc).
    let log = w.ws.join("experiments/v01/logs/train.log");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 3>>'{}'; echo ready; exec sleep 600", log.display()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("writer");
    let mut buf = [0u8; 6];
    child.stdout.as_mut().expect("stdout").read_exact(&mut buf).expect("ready");
    let r = w.gather(None, None);
    let i = rep_item(&r, "training");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(i.status, Status::Fail, "{i:?}");
    assert!(i.reason.contains(&format!("pid {}", child.id())) && i.reason.contains("writes train.log"), "{}", i.reason);
    assert_eq!(rep_item(&r, "journal").status, Status::Fail, "the run is still going: {r:?}");
    let r = w.gather(None, None);
    assert_eq!(rep_item(&r, "training").status, Status::Pass, "{r:?}");
}

#[test]
fn journal_requirements_disks_jobs_and_extras() {
    let w = Ws::new(
        "[[checklist.extra]]\nname = \"smoke\"\ncommand = \"test -f ok.flag || { echo 'ok.flag missing' >&2; exit 3; }\"\n\n\
         [[checklist.extra]]\nname = \"slow\"\ncommand = \"sleep 30\"\ntimeout = \"1s\"\n",
    );
    let r = w.gather(None, None);
    let smoke = rep_item(&r, "smoke");
    assert_eq!((smoke.status, smoke.reason.as_str()), (Status::Fail, "exit 3: ok.flag missing"));
    assert!(rep_item(&r, "slow").reason.contains("timed out after 1s"), "{r:?}");
    std::fs::write(w.ws.join("ok.flag"), "").expect("flag");
    assert_eq!(rep_item(&w.gather(None, None), "smoke").status, Status::Pass);

    // The journal older than the run's last write.
    touch_ago(&w.ws.join("journal.md"), "3 hours ago");
    let i = rep_item(&w.gather(None, None), "journal").clone();
    assert_eq!(i.status, Status::Fail);
    assert!(i.reason.contains("before the run's last write (train.log"), "{}", i.reason);
    std::fs::remove_file(w.ws.join("journal.md")).expect("rm");
    assert!(rep_item(&w.gather(None, None), "journal").reason.contains("journal.md does not exist"));

    // Requirements changed after the freeze; then no frozen file at all.
    touch_ago(&w.ws.join("requirements.txt"), "1 minute ago");
    let i = rep_item(&w.gather(None, None), "requirements").clone();
    assert_eq!(i.status, Status::Fail);
    assert!(
        i.reason.contains("requirements.txt changed") && i.reason.contains("after frozen_requirements.txt"),
        "{i:?}"
    );
    assert_eq!(i.fix.as_ref().and_then(|f| f.command.as_deref()), Some("pip freeze > frozen_requirements.txt"));
    std::fs::remove_file(w.ws.join("frozen_requirements.txt")).expect("rm");
    assert!(rep_item(&w.gather(None, None), "requirements").reason.contains("does not exist"));

    // A disk above warn, from a fixture sample.
    let i = rep_item(&w.gather(None, Some(&disk_sample(84.0))), "disks").clone();
    assert_eq!(i.status, Status::Fail);
    assert!(i.reason.starts_with("/ 84% (warn) at or above warn (99%)"), "{}", i.reason);
    assert_eq!(i.fix.as_ref().and_then(|f| f.action.as_deref()), Some("prune"));
    assert_eq!(rep_item(&w.gather(None, Some(&disk_sample(40.0))), "disks").status, Status::Pass);

    // A prune (or any job) holding its marker.
    let marker = opsconsole::joblock::hold(&w.ws, "prune").expect("marker");
    let i = rep_item(&w.gather(None, None), "jobs").clone();
    assert_eq!(i.status, Status::Fail);
    assert!(i.reason.contains(&format!("prune (pid {})", std::process::id())), "{}", i.reason);
    drop(marker);
    assert_eq!(rep_item(&w.gather(None, None), "jobs").status, Status::Pass);
}

#[test]
fn shutdown_check_exits_2_on_a_config_error_naming_file_line_and_key() {
    let w = Ws::new("");
    std::fs::write(w.ws.join("opsconsole.toml"), "[checklist]\ngit = true\nbogus = 1\n").expect("cfg");
    let o = run(&w.ws, &["shutdown-check", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(t.contains("opsconsole.toml:3") && t.contains("checklist.bogus"), "{t}");
    std::fs::write(w.ws.join("opsconsole.toml"), "[[checklist.extra]]\nname = \"git\"\ncommand = \"true\"\n")
        .expect("cfg");
    let o = run(&w.ws, &["shutdown-check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("checklist.extra[0].name"), "{}", text(&o));
}

fn events(ws: &Path) -> Vec<(String, String)> {
    let l = opsconsole::sync::ledger::Ledger::open(ws).expect("ledger");
    l.recent_events(50).expect("events").into_iter().map(|e| (e.kind, e.detail)).collect()
}

#[test]
fn the_shutdown_command_runs_only_when_allowed_and_overrides_are_recorded() {
    let w = Ws::new("");
    let marker = w.root.join("shutdown-ran");
    let command = format!("echo down > '{}'", marker.display());
    // One item failing.
    std::fs::write(w.ws.join("train.py"), "print('changed')\n").expect("edit");
    let report = w.gather(None, None);
    assert_eq!(report.failing, ["git"], "{report:#?}");

    let (out, child) = shutdown::execute(&w.ws, &command, &report, &BTreeSet::new());
    assert_eq!(out, Outcome::Refused { failing: vec!["git".into()] });
    assert!(child.is_none());
    // An override of an item that passes does not count for one that fails.
    let (out, _) = shutdown::execute(&w.ws, &command, &report, &BTreeSet::from(["journal".to_string()]));
    assert!(matches!(out, Outcome::Refused { .. }), "{out:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!marker.exists(), "refused: the command did not run");
    let ev = events(&w.ws);
    assert_eq!(ev[0].0, "shutdown_refused", "{ev:?}");
    assert!(ev[0].1.contains("git still failing"), "{ev:?}");

    // No command configured: nothing runs, nothing is decided.
    assert_eq!(shutdown::execute(&w.ws, "  ", &report, &BTreeSet::from(["git".to_string()])).0, Outcome::NoCommand);

    // Overridden by name: the decision and the override are recorded, then it runs.
    let (out, child) = shutdown::execute(&w.ws, &command, &report, &BTreeSet::from(["git".to_string()]));
    let Outcome::Started { pid, overridden } = out else { panic!("{out:?}") };
    assert_eq!(overridden, ["git"]);
    let status = child.expect("child").wait().expect("wait");
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&marker).expect("marker"), "down\n");
    assert!(pid > 0);
    let ev = events(&w.ws);
    assert_eq!(ev[0].0, "shutdown", "{ev:?}");
    assert!(ev[0].1.contains("with 1 overridden: git"), "{ev:?}");
    assert_eq!(ev[1].0, "shutdown_override");
    assert!(ev[1].1.starts_with("git overridden: 1 changed (train.py)"), "{ev:?}");
    let out_log = std::fs::read_to_string(shutdown::output_log(&w.ws)).expect("output log");
    assert!(out_log.contains("echo down"), "{out_log}");

    // Every item passing: it runs with no override, and says so.
    git(&w.ws, &["commit", "-q", "-am", "x"]);
    git(&w.ws, &["push", "-q"]);
    std::fs::remove_file(&marker).expect("rm");
    let report = w.gather(None, None);
    assert!(report.ok, "{report:?}");
    let (out, child) = shutdown::execute(&w.ws, &command, &report, &BTreeSet::new());
    assert!(matches!(out, Outcome::Started { ref overridden, .. } if overridden.is_empty()), "{out:?}");
    child.expect("child").wait().expect("wait");
    assert!(marker.exists());
    assert!(events(&w.ws)[0].1.starts_with("every checklist item passed; ran `echo down"), "{:?}", events(&w.ws));
}

#[test]
fn a_live_cache_keeps_extra_results_between_quick_gathers() {
    let w = Ws::new("[[checklist.extra]]\nname = \"count\"\ncommand = \"echo x >> runs.txt\"\n");
    let cfg = w.config();
    let cache = std::sync::Mutex::new(LiveCache::default());
    let d = disk_sample(10.0);
    let g = |live| {
        gather(&w.ws, &cfg, SystemTime::now(), Sources { gpu: None, disks: Some(&d), live, cache: Some(&cache) })
    };
    let first = g(true);
    assert_eq!(rep_item(&first, "count").status, Status::Pass);
    let quick = g(false);
    assert_eq!(rep_item(&quick, "count").status, Status::Pass);
    assert!(rep_item(&quick, "count").checked_unix.is_some(), "a kept result says when it ran");
    assert_eq!(std::fs::read_to_string(w.ws.join("runs.txt")).expect("runs").lines().count(), 1, "not run again");
    g(true);
    assert_eq!(std::fs::read_to_string(w.ws.join("runs.txt")).expect("runs").lines().count(), 2, "live runs it");
}

/// A stand-in for the GCE metadata server on 127.0.0.1: it answers 403 without the
/// `Metadata-Flavor: Google` header (as the real one does), else `answer`.
fn metadata_server(answer: &'static str) -> (String, std::thread::JoinHandle<Vec<String>>) {
    metadata_server_n(answer, 1)
}

/// The stand-in answering `connections` requests (the last one's request lines returned).
fn metadata_server_n(answer: &'static str, connections: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://127.0.0.1:{}/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip",
        l.local_addr().expect("addr").port()
    );
    let h = std::thread::spawn(move || {
        let mut last = Vec::new();
        for _ in 0..connections {
            last = serve_one(&l, answer);
        }
        last
    });
    (url, h)
}

fn serve_one(l: &TcpListener, answer: &'static str) -> Vec<String> {
    {
        let (mut s, _) = l.accept().expect("accept");
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&req).into_owned();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if answer == "hang" {
            std::thread::sleep(Duration::from_secs(2));
            return lines;
        }
        let reply = if !lines.iter().any(|l| l.eq_ignore_ascii_case("Metadata-Flavor: Google")) {
            "HTTP/1.1 403 Forbidden\r\nMetadata-Flavor: Google\r\nContent-Length: 38\r\n\r\nMissing Metadata-Flavor:Google header.".to_string()
        } else {
            answer.to_string()
        };
        let _ = s.write_all(reply.as_bytes());
        lines
    }
}

/// The stand-in checked once against Google's own client (google-auth 2.63.0, Python
/// 3.11): `_metadata.ping` accepts it as a metadata server and `_metadata.get` reads the
/// address from it; a request without the header gets 403 as from the real server.
#[test]
#[ignore = "needs python3 with google-auth and requests (run once to check the stand-in)"]
fn the_metadata_stand_in_answers_googles_python_client() {
    let (url, h) = metadata_server_n(
        "HTTP/1.1 200 OK\r\nMetadata-Flavor: Google\r\nContent-Type: application/text\r\nContent-Length: 12\r\n\r\n34.123.45.67",
        3,
    );
    let host = url.trim_start_matches("http://").split('/').next().expect("host").to_string();
    let py = r#"
import requests
import google.auth.transport.requests as tr
from google.auth.compute_engine import _metadata
req = tr.Request()
print("ping", _metadata.ping(req))
print("ip", _metadata.get(req, "instance/network-interfaces/0/access-configs/0/external-ip"))
import os
r = requests.get("http://" + os.environ["GCE_METADATA_HOST"] + "/computeMetadata/v1/x")
print("noheader", r.status_code)
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(py)
        .env("GCE_METADATA_HOST", &host)
        .env("GCE_METADATA_IP", &host)
        .output()
        .expect("python3");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("ping True") && out.contains("ip 34.123.45.67") && out.contains("noheader 403"), "{out}");
    h.join().expect("server");
}

#[test]
fn external_ip_from_a_metadata_server_stand_in() {
    use opsconsole::checklist::config::{ExternalIpConfig, LookupMode};
    use opsconsole::checklist::metadata::lookup;
    let cfg = |url: String| ExternalIpConfig { lookup: LookupMode::On, url, timeout: Duration::from_millis(500) };

    let (url, h) = metadata_server(
        "HTTP/1.1 200 OK\r\nMetadata-Flavor: Google\r\nContent-Type: application/text\r\nContent-Length: 12\r\n\r\n34.123.45.67",
    );
    assert_eq!(lookup(&cfg(url)).expect("address").to_string(), "34.123.45.67");
    let req = h.join().expect("server");
    assert!(req[0].starts_with("GET /computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip "));
    assert!(req.iter().any(|l| l == "Metadata-Flavor: Google"), "{req:?}");

    let (url, _h) = metadata_server("HTTP/1.1 404 Not Found\r\nMetadata-Flavor: Google\r\nContent-Length: 0\r\n\r\n");
    assert!(lookup(&cfg(url)).expect_err("404").contains("no external address"));
    // A proxy answering for it is not believed.
    let (url, _h) = metadata_server("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n1.2.3.4");
    assert!(lookup(&cfg(url)).expect_err("no flavor").contains("did not come from a metadata server"));
    let (url, _h) = metadata_server("HTTP/1.1 200 OK\r\nMetadata-Flavor: Google\r\nContent-Length: 9\r\n\r\n<html>hi");
    assert!(lookup(&cfg(url)).is_err());
    // Cut before the end of what it announced.
    let (url, _h) = metadata_server("HTTP/1.1 200 OK\r\nMetadata-Flavor: Google\r\nContent-Length: 12\r\n\r\n34.1");
    assert!(lookup(&cfg(url)).expect_err("cut").contains("closed before"));
    // No answer within the timeout.
    let (url, h) = metadata_server("hang");
    assert!(lookup(&cfg(url)).expect_err("hang").contains("no answer within 500ms"));
    h.join().expect("server");
    // Nobody listening.
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    assert!(lookup(&cfg(format!("http://127.0.0.1:{port}/x"))).expect_err("refused").contains("cannot reach"));
}

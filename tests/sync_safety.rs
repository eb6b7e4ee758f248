//! The safety interlock attacked from outside, through the real binary: a confirmed copy
//! deleted or changed behind the ledger's back, a level repointed to another remote, an
//! unmounted mount point (a real tmpfs, as root), a remote on the workspace's own disk,
//! two workspaces on one remote folder, SIGTERMed daemons, and a pass with nothing to do.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_opsconsole")
}

#[path = "support/cli.rs"]
mod cli;
use cli::{ok, run, text};

fn json(ws: &Path, args: &[&str]) -> serde_json::Value {
    let o = run(ws, args);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}\n{}", text(&o)))
}

fn touch_ago(p: &Path, ago: &str) {
    assert!(Command::new("touch").args(["-d", ago]).arg(p).status().expect("touch").success());
}

/// Overwrite a few bytes in the middle of a file, keeping its size, then put its mtime
/// back as it was (`touch -r`): only the ctime tells.
fn flip_bytes_keeping_mtime(p: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let reference = p.with_extension("mtime-ref");
    std::fs::write(&reference, b"").expect("ref");
    assert!(Command::new("touch").arg("-r").arg(p).arg(&reference).status().expect("touch").success());
    let len = std::fs::metadata(p).expect("meta").len();
    std::thread::sleep(Duration::from_millis(30));
    let mut f = std::fs::OpenOptions::new().write(true).open(p).expect("open");
    f.seek(SeekFrom::Start(len / 2)).expect("seek");
    f.write_all(b"\xde\xad\xbe\xef").expect("write");
    drop(f);
    assert!(Command::new("touch").arg("-r").arg(&reference).arg(p).status().expect("touch").success());
    std::fs::remove_file(&reference).expect("rm");
}

/// A workspace with five checkpoints saved long ago (steps 100..500, 64 KiB each), L3 on
/// a local remote at `remote` (beside the workspace, so `same_disk = true`).
fn workspace(base: &Path, remote: &Path, extra: &str) -> PathBuf {
    let ws = base.join("ws");
    std::fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
    write_config(&ws, remote, extra);
    for step in [100u32, 200, 300, 400, 500] {
        let p = ws.join(format!("checkpoints/v01_step_{step}.pt"));
        std::fs::write(&p, vec![(step / 100) as u8; 64 * 1024]).expect("write");
        touch_ago(&p, "2 hours ago");
    }
    ws
}

fn write_config(ws: &Path, remote: &Path, extra: &str) {
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!(
            "[sync]\nsettle_seconds = 1\n\n[sync.l3]\nremote = \"r3\"\n\n[remotes.r3]\nkind = \"local\"\npath = \"{}\"\n\
             same_disk = true\n{extra}",
            remote.display()
        ),
    )
    .expect("config");
}

fn plan(ws: &Path) -> Vec<(String, String, String, Option<String>)> {
    let v = json(ws, &["prune", "--dry-run", "--json"]);
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let path = i["path"].as_str().expect("path");
            let name = Path::new(path).file_name().expect("name").to_string_lossy().into_owned();
            (
                name,
                i["action"].as_str().expect("action").to_string(),
                i["reason"].as_str().expect("reason").to_string(),
                i["note"].as_str().map(String::from),
            )
        })
        .collect()
}

fn action(plan: &[(String, String, String, Option<String>)], name: &str) -> (String, String) {
    let i = plan.iter().find(|i| i.0 == name).unwrap_or_else(|| panic!("{name} not in {plan:?}"));
    (i.1.clone(), i.2.clone())
}

fn ck(ws: &Path, step: u32) -> PathBuf {
    ws.join(format!("checkpoints/v01_step_{step}.pt"))
}

#[test]
fn prune_verifies_each_copy_on_its_remote_right_before_deleting_and_queues_bad_copies_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r3 = dir.path().join("r3");
    let ws = workspace(dir.path(), &r3, "");
    ok(&ws, &["remote", "check", "r3", "--init"]);
    ok(&ws, &["sync", "--once"]);

    // Behind the ledger's back: one copy deleted, another changed in place (same size,
    // mtime put back).
    std::fs::remove_file(r3.join("checkpoints/v01_step_100.pt")).expect("rm copy");
    flip_bytes_keeping_mtime(&r3.join("checkpoints/v01_step_200.pt"));

    let out = run(&ws, &["prune", "--yes", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let items = v["report"]["items"].as_array().expect("report items");
    let outcome = |name: &str| {
        items.iter().find(|i| i["path"].as_str().is_some_and(|p| p.ends_with(name))).expect("in the report").clone()
    };
    let a = outcome("v01_step_100.pt")["outcome"].clone();
    assert_eq!(a["outcome"], "skipped", "{a}");
    assert!(a["detail"].as_str().is_some_and(|d| d.contains("failed verification: it is missing")), "{a}");
    let b = outcome("v01_step_200.pt")["outcome"].clone();
    assert_eq!(b["outcome"], "skipped", "{b}");
    assert!(b["detail"].as_str().is_some_and(|d| d.contains("SHA-256 differs")), "{b}");
    assert!(ck(&ws, 100).exists() && ck(&ws, 200).exists(), "the only good copies were kept");
    assert_eq!(v["report"]["deleted"], 0);

    // Both are queued to be stored again, and the plan says why they are kept.
    let p = plan(&ws);
    for name in ["v01_step_100.pt", "v01_step_200.pt"] {
        assert_eq!(action(&p, name), ("keep".into(), "unconfirmed".into()), "{p:?}");
        let note = p.iter().find(|i| i.0 == name).and_then(|i| i.3.clone()).unwrap_or_default();
        assert!(note.contains("failed verification"), "{name}: {note:?}");
    }
    let dry = ok(&ws, &["prune", "--dry-run"]);
    assert!(dry.contains("↳ the copy on remote 'r3' failed verification: it is missing; it is stored again"), "{dry}");
    {
        let l = opsconsole::sync::ledger::Ledger::open(&ws).expect("ledger");
        let e = l.entry("checkpoints/v01_step_100.pt", "L3").expect("q").expect("row");
        assert_eq!(e.state, opsconsole::sync::ledger::UploadState::Pending);
        assert!(l.recent_events(20).expect("ev").iter().any(|e| e.kind == "verify_failed"));
    }

    // The next sync stores them again; then they verify and go.
    let s = ok(&ws, &["sync", "--once"]);
    assert!(s.contains("sync: 2 stored"), "{s}");
    assert_eq!(std::fs::read(r3.join("checkpoints/v01_step_200.pt")).expect("copy"), vec![2u8; 64 * 1024]);
    let out = ok(&ws, &["prune", "--yes"]);
    assert!(out.contains("deleted 2 · skipped 0 · failed 0"), "{out}");
    assert!(!ck(&ws, 100).exists() && !ck(&ws, 200).exists());
    assert_eq!(std::fs::read(r3.join("checkpoints/v01_step_100.pt")).expect("copy"), vec![1u8; 64 * 1024]);
}

#[test]
fn a_level_repointed_to_another_remote_or_an_unconfigured_name_confirms_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r3 = dir.path().join("r3");
    let ws = workspace(dir.path(), &r3, "");
    ok(&ws, &["remote", "check", "--init"]);
    ok(&ws, &["sync", "--once"]);
    assert_eq!(action(&plan(&ws), "v01_step_100.pt").0, "delete", "confirmed on r3");

    // L3 now stores into a new, empty remote: nothing is confirmed there.
    let fresh = dir.path().join("fresh");
    let cfg = std::fs::read_to_string(ws.join("opsconsole.toml")).expect("cfg").replace(
        "[sync.l3]\nremote = \"r3\"",
        &format!(
            "[sync.l3]\nremote = \"fresh\"\n\n[remotes.fresh]\nkind = \"local\"\npath = \"{}\"\nsame_disk = true",
            fresh.display()
        ),
    );
    std::fs::write(ws.join("opsconsole.toml"), cfg).expect("cfg");
    ok(&ws, &["remote", "check", "fresh", "--init"]);
    let p = plan(&ws);
    for name in ["v01_step_100.pt", "v01_step_200.pt"] {
        assert_eq!(action(&p, name), ("keep".into(), "unconfirmed".into()), "{p:?}");
    }
    let out = ok(&ws, &["prune", "--yes"]);
    assert!(!out.contains("deleted 1") && ck(&ws, 100).exists() && ck(&ws, 200).exists(), "{out}");

    // L3 names a remote that is not configured at all.
    let cfg = std::fs::read_to_string(ws.join("opsconsole.toml"))
        .expect("cfg")
        .replace("remote = \"fresh\"", "remote = \"nope\"");
    std::fs::write(ws.join("opsconsole.toml"), cfg).expect("cfg");
    let p = plan(&ws);
    assert_eq!(action(&p, "v01_step_100.pt"), ("keep".into(), "unconfirmed".into()), "{p:?}");
    ok(&ws, &["prune", "--yes"]);
    assert!(ck(&ws, 100).exists());

    // Back to the remote's name, but its path now an empty folder set up afresh: the
    // ledger still says confirmed, the remote says missing, the file stays.
    write_config(&ws, &dir.path().join("r3-new"), "");
    ok(&ws, &["remote", "check", "r3", "--init"]);
    assert_eq!(action(&plan(&ws), "v01_step_100.pt").0, "delete", "the ledger alone would delete it");
    let out = ok(&ws, &["prune", "--yes"]);
    // The summary says why they were kept (the first reason, and how many more).
    assert!(
        out.contains("deleted 0 · skipped 2 (v01_step_100.pt: ") && out.contains("1 more in prune-events.jsonl)"),
        "{out}"
    );
    assert!(ck(&ws, 100).exists() && ck(&ws, 200).exists());
}

#[test]
fn a_sync_pass_finds_copies_deleted_or_changed_behind_its_back_and_verify_rehashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r3 = dir.path().join("r3");
    let ws = workspace(dir.path(), &r3, "");
    ok(&ws, &["remote", "check", "--init"]);
    ok(&ws, &["sync", "--once"]);
    std::fs::remove_file(r3.join("checkpoints/v01_step_300.pt")).expect("rm");
    flip_bytes_keeping_mtime(&r3.join("checkpoints/v01_step_400.pt"));
    let out = ok(&ws, &["sync", "--once"]);
    assert!(
        out.contains("L3 checkpoints/v01_step_300.pt: the copy on remote 'r3' failed verification: it is missing"),
        "{out}"
    );
    assert!(
        out.contains("checkpoints/v01_step_400.pt: the copy on remote 'r3' failed verification: its SHA-256 differs"),
        "{out}"
    );
    assert!(out.contains("sync: 2 stored") && out.contains("2 queued again"), "{out}");
    for step in [300u32, 400] {
        let copy = std::fs::read(r3.join(format!("checkpoints/v01_step_{step}.pt"))).expect("copy");
        assert_eq!(copy, vec![(step / 100) as u8; 64 * 1024], "step {step} stored again");
    }

    // A remembered checksum that lies (as if the cache were fooled): a normal pass trusts
    // it, `sync --verify` hashes every copy again and finds the change.
    let victim = r3.join("checkpoints/v01_step_500.pt");
    flip_bytes_keeping_mtime(&victim);
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&victim).expect("meta");
        let c = rusqlite::Connection::open(ws.join(".opsconsole/remote-sums.sqlite")).expect("sums");
        let n = c
            .execute(
                "UPDATE sums SET dev = ?1, ino = ?2, size = ?3, mtime_ns = ?4, ctime_ns = ?5 WHERE path = ?6",
                rusqlite::params![
                    m.dev() as i64,
                    m.ino() as i64,
                    m.len() as i64,
                    m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                    m.ctime() * 1_000_000_000 + m.ctime_nsec(),
                    victim.display().to_string()
                ],
            )
            .expect("poison");
        assert_eq!(n, 1, "the stored copy's checksum was remembered");
    }
    let trusting = ok(&ws, &["sync", "--once"]);
    assert!(trusting.contains("0 queued again"), "{trusting}");
    let out = ok(&ws, &["sync", "--verify"]);
    assert!(out.contains("v01_step_500.pt: the copy on remote 'r3' failed verification"), "{out}");
    assert!(out.contains("sync: 1 stored") && out.contains("4 verified"), "{out}");
    assert_eq!(std::fs::read(&victim).expect("copy"), vec![5u8; 64 * 1024]);
}

/// Unmounts in drop.
struct Mounted(PathBuf, bool);

impl Mounted {
    /// Mounts a tmpfs (needs root: the test is `#[ignore = "needs root"]` and fails,
    /// rather than passes, when the mount is refused).
    fn tmpfs(at: &Path) -> Self {
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"]).arg(at).output();
        match out {
            Ok(o) if o.status.success() => Self(at.to_path_buf(), true),
            Ok(o) => panic!("mounting a tmpfs (needs root): {}", String::from_utf8_lossy(&o.stderr).trim()),
            Err(e) => panic!("cannot run mount: {e}"),
        }
    }

    fn unmount(&mut self) {
        if self.1 {
            let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
            assert!(ok, "umount {}", self.0.display());
            self.1 = false;
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.1 {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
}

#[test]
#[ignore = "needs root"]
fn an_empty_unmounted_mount_point_is_never_taken_for_the_remote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mut mount = Mounted::tmpfs(&mnt);
    let root = mnt.join("backup");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
    // A real other disk: no same_disk needed.
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!(
            "[sync]\nsettle_seconds = 1\n\n[sync.l3]\nremote = \"r3\"\n\n[remotes.r3]\nkind = \"local\"\npath = \"{}\"\n",
            root.display()
        ),
    )
    .expect("config");
    for step in [100u32, 200, 300, 400, 500] {
        let p = ck(&ws, step);
        std::fs::write(&p, vec![step as u8; 32 * 1024]).expect("write");
        touch_ago(&p, "2 hours ago");
    }
    // Before it is set up, sync refuses and creates nothing.
    let o = run(&ws, &["sync", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("is missing: not mounted?"), "{}", text(&o));
    assert!(!root.exists(), "sync created the remote's folder");
    let init = ok(&ws, &["remote", "check", "r3", "--init"]);
    assert!(init.contains("✓ create the root") && init.contains("✓ another disk"), "{init}");
    ok(&ws, &["sync", "--once"]);
    assert_eq!(action(&plan(&ws), "v01_step_100.pt").0, "delete");

    // The disk goes away: its mount point is an empty folder on the workspace's disk.
    mount.unmount();
    assert_eq!(std::fs::read_dir(&mnt).expect("rd").count(), 0, "an empty mount point");
    let o = run(&ws, &["sync", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not mounted?"), "{}", text(&o));
    assert!(!root.exists(), "sync created the remote's folder on the local disk");
    let out = run(&ws, &["prune", "--yes"]);
    assert!(text(&out).contains("deleted 0 · skipped 2 (") && text(&out).contains("not mounted?"), "{}", text(&out));
    assert!(ck(&ws, 100).exists() && ck(&ws, 200).exists());

    // Someone makes the folder by hand: still not the remote.
    std::fs::create_dir(&root).expect("mkdir");
    let o = run(&ws, &["sync", "--once"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("has no identity marker"), "{}", text(&o));
    assert_eq!(std::fs::read_dir(&root).expect("rd").count(), 0, "nothing stored into the impostor");
    let check = run(&ws, &["remote", "check", "r3"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(text(&check).contains("✗ identity marker"), "{}", text(&check));
    assert!(ck(&ws, 100).exists());
}

#[test]
fn a_remote_on_the_workspace_disk_is_refused_unless_same_disk_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("backup");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
    std::fs::write(ck(&ws, 100), b"weights").expect("write");
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!("[sync]\nsettle_seconds = 1\n\n[sync.l3]\nremote = \"r3\"\n\n[remotes.r3]\nkind = \"local\"\npath = \"{}\"\n", root.display()),
    )
    .expect("config");
    let check = run(&ws, &["remote", "check", "--init", "--json"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    let v: serde_json::Value = serde_json::from_slice(&check.stdout).expect("json");
    let steps = v["remotes"][0]["steps"].as_array().expect("steps");
    let disk = steps.iter().find(|s| s["name"] == "another disk").expect("disk step");
    assert_eq!(disk["ok"], false);
    assert!(disk["fix"].as_str().is_some_and(|f| f.contains("same_disk = true")), "{disk}");
    let o = run(&ws, &["sync", "--once"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("same filesystem") && text(&o).contains("not a backup"), "{}", text(&o));
    assert!(!root.join("checkpoints").exists());
    let cfg = std::fs::read_to_string(ws.join("opsconsole.toml")).expect("cfg") + "same_disk = true\n";
    std::fs::write(ws.join("opsconsole.toml"), cfg).expect("cfg");
    ok(&ws, &["remote", "check"]);
    ok(&ws, &["sync", "--once"]);
    let v = json(&ws, &["status", "--json"]);
    assert_eq!(v["sync"]["levels"][1]["same_disk"], true, "{}", v["sync"]);
    // A remote that is the workspace is a config error naming the key and line.
    std::fs::write(ws.join("opsconsole.toml"), "[remotes.hf]\nkind = \"local\"\npath = \".\"\nsame_disk = true\n")
        .expect("cfg");
    let o = run(&ws, &["sync", "--once"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("opsconsole.toml:3: key `remotes.hf.path`") && text(&o).contains("is the workspace"),
        "{}",
        text(&o)
    );
}

#[test]
fn two_workspaces_on_one_remote_folder_never_overwrite_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = dir.path().join("shared");
    let mk = |name: &str, byte: u8| {
        let ws = dir.path().join(name);
        std::fs::create_dir_all(ws.join("checkpoints/checkpoint-100")).expect("mkdir");
        std::fs::write(ws.join("checkpoints/checkpoint-100/model.safetensors"), vec![byte; 10_000]).expect("w");
        write_config(&ws, &shared, "");
        ws
    };
    let a = mk("a", 0xaa);
    let b = mk("b", 0xbb);
    ok(&a, &["remote", "check", "--init"]);
    ok(&a, &["sync", "--once"]);
    let stored = shared.join("checkpoints/checkpoint-100/model.safetensors");
    assert_eq!(std::fs::read(&stored).expect("a's copy"), vec![0xaa; 10_000]);

    let init = run(&b, &["remote", "check", "--init"]);
    assert_eq!(init.status.code(), Some(1));
    assert!(text(&init).contains("belongs to another workspace"), "{}", text(&init));
    let o = run(&b, &["sync", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("belongs to another workspace"), "{}", text(&o));
    assert_eq!(std::fs::read(&stored).expect("a's copy"), vec![0xaa; 10_000], "A's confirmed copy was overwritten");
    // A's copy still verifies: A's next pass stores nothing again.
    let again = ok(&a, &["sync", "--once"]);
    assert!(again.contains("sync: 0 stored") && again.contains("1 verified"), "{again}");
}

#[test]
fn sigtermed_daemons_are_not_attempts_and_once_fails_unless_everything_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r3 = dir.path().join("r3");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
    let mut rng = fastrand::Rng::with_seed(3);
    let mut data = vec![0u8; 48 << 20];
    rng.fill(&mut data);
    std::fs::write(ck(&ws, 100), &data).expect("write");
    // 48 MB at 8 MiB/s: each daemon is stopped mid-upload.
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!(
            "[sync]\nsettle_seconds = 1\nbandwidth_limit_kib_s = 8192\n\n[sync.l3]\nremote = \"r3\"\n\
             interval_minutes = 0\n\n[remotes.r3]\nkind = \"local\"\npath = \"{}\"\nsame_disk = true\n",
            r3.display()
        ),
    )
    .expect("config");
    ok(&ws, &["remote", "check", "--init"]);
    let partial = || {
        std::fs::read_dir(r3.join(".opsconsole-partial"))
            .map(|d| d.flatten().map(|e| e.metadata().map(|m| m.len()).unwrap_or(0)).sum::<u64>())
            .unwrap_or(0)
    };
    for round in 0..3 {
        let before = partial();
        let mut child = Command::new(bin())
            .arg("-w")
            .arg(&ws)
            .args(["sync", "--daemon"])
            .env("XDG_STATE_HOME", ws.join(".state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("daemon");
        let deadline = Instant::now() + Duration::from_secs(60);
        while partial() <= before + (1 << 20) {
            assert!(Instant::now() < deadline, "round {round}: no bytes reached the remote");
            std::thread::sleep(Duration::from_millis(50));
        }
        let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let status = child.wait().expect("wait");
        assert!(status.success(), "round {round}: the daemon ended with {status}");
    }
    {
        let l = opsconsole::sync::ledger::Ledger::open(&ws).expect("ledger");
        let e = l.entry("checkpoints/v01_step_100.pt", "L3").expect("q").expect("row");
        assert_eq!(e.attempts, 0, "a resume after SIGTERM is not an attempt: {e:?}");
    }
    // No engine runs: the ledger's `uploading` row is not shown as uploading.
    let v = json(&ws, &["status", "--json"]);
    let l3 = &v["sync"]["levels"][1];
    assert!(l3["in_flight"].is_null(), "{l3}");
    assert!(l3["interrupted"]["bytes_done"].as_u64().is_some_and(|b| b > 0), "{l3}");
    let t = ok(&ws, &["status"]);
    assert!(t.contains("interrupted at") && !t.contains("uploading checkpoints"), "{t}");

    let out = ok(&ws, &["sync", "--once"]);
    assert!(out.contains("resuming checkpoints/v01_step_100.pt") && out.contains("sync: 1 stored"), "{out}");
    assert!(std::fs::read(r3.join("checkpoints/v01_step_100.pt")).expect("copy") == data);

    // A remote that fails for good: `--once` says so and exits 1.
    std::fs::write(ck(&ws, 200), b"new weights").expect("write");
    std::fs::rename(&r3, dir.path().join("r3-gone")).expect("mv");
    let o = run(&ws, &["sync", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("L3 checkpoints/v01_step_200.pt: the folder of remote 'r3'"), "{}", text(&o));
}

#[test]
fn a_pass_with_nothing_to_do_is_nothing_to_store_never_ok() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r3 = dir.path().join("r3");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).expect("mkdir");
    write_config(&ws, &r3, "");
    ok(&ws, &["remote", "check", "--init"]);
    let out = ok(&ws, &["sync", "--once"]);
    assert!(out.contains("L3 nothing to store"), "{out}");
    assert!(!out.contains("up to date"), "{out}");
    let v = json(&ws, &["status", "--json"]);
    let l3 = &v["sync"]["levels"][1];
    assert!(l3["last_success_unix"].is_null(), "nothing was stored: {l3}");
    assert_eq!(l3["nothing_to_store"], true, "{l3}");
    assert!(l3["last_pass_unix"].as_i64().is_some(), "{l3}");
    let t = ok(&ws, &["status"]);
    assert!(t.contains("nothing to store") && !t.contains("last ok"), "{t}");

    std::fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
    std::fs::write(ck(&ws, 100), b"weights").expect("write");
    let out = ok(&ws, &["sync", "--once"]);
    assert!(out.contains("L3 up to date: 1 stored"), "{out}");
    let v = json(&ws, &["status", "--json"]);
    assert!(v["sync"]["levels"][1]["last_success_unix"].as_i64().is_some());
    assert_eq!(v["sync"]["levels"][1]["nothing_to_store"], false);
}

#[test]
fn remote_check_reports_steps_as_text_and_json_with_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r3 = dir.path().join("r3");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).expect("mkdir");
    write_config(
        &ws,
        &r3,
        &format!(
            "\n[remotes.drive]\nkind = \"local\"\npath = \"{}\"\nsame_disk = true\n",
            dir.path().join("no/such/mount").display()
        ),
    );
    let o = run(&ws, &["remote", "check", "r3"]);
    assert_eq!(o.status.code(), Some(1), "not set up yet");
    assert!(text(&o).contains("✗ root exists") && text(&o).contains("--init"), "{}", text(&o));
    let o = run(&ws, &["remote", "check", "r3", "--init"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for step in [
        "✓ create the root",
        "✓ write the marker",
        "✓ root exists",
        "✓ identity marker",
        "✓ another disk",
        "✓ writable",
        "✓ probe reads back",
        "✓ probe deleted",
    ] {
        assert!(text(&o).contains(step), "{step}: {}", text(&o));
    }
    let marker: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r3.join(".opsconsole-remote")).expect("marker")).expect("json");
    assert_eq!(marker["remote"], "r3");
    assert_eq!(marker["id"].as_str().map(str::len), Some(32));
    assert_eq!(
        marker["workspace_id"].as_str(),
        std::fs::read_to_string(ws.join(".opsconsole/workspace-id")).ok().as_deref().map(str::trim)
    );
    // All remotes: drive's mount is missing, so the whole check fails, and --init does not
    // create a folder whose parent is missing.
    let o = run(&ws, &["remote", "check", "--init", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], false);
    let drive = v["remotes"].as_array().expect("remotes").iter().find(|r| r["name"] == "drive").expect("drive");
    assert_eq!(drive["ok"], false);
    assert_eq!(drive["levels"][0], "L2");
    assert!(drive["steps"][0]["fix"].as_str().is_some_and(|f| f.contains("mount")), "{drive}");
    assert!(!dir.path().join("no").exists());
    let r = v["remotes"].as_array().expect("remotes").iter().find(|r| r["name"] == "r3").expect("r3");
    assert_eq!(r["ok"], true);
    let o = run(&ws, &["remote", "check", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("there is no [remotes.nope]"), "{}", text(&o));
}

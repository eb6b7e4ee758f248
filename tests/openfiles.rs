//! A writer the console cannot see by path is still seen (as root): a checkpoint or a log
//! held open for writing through a bind mount, or from another mount namespace (as in a
//! container), is matched by device and inode. Prune keeps such a checkpoint, and the log
//! counts as written by a live process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use opsconsole::checkpoints::config::CheckpointsConfig;
use opsconsole::checkpoints::inventory::{self, ScanOptions, WritingWhy};

/// Bind mounts and mount namespaces need root: these tests are `#[ignore = "needs root"]`
/// and fail, rather than pass, when run without it.
fn require_root() {
    assert!(rustix::process::geteuid().is_root(), "these tests need root (mount)");
}

#[path = "support/holder.rs"]
mod holder;
use holder::{Holder, Unmount};

/// A workspace with two checkpoints an hour old and a log.
fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
    std::fs::create_dir_all(ws.join("logs")).expect("mkdir");
    let old = SystemTime::now() - Duration::from_secs(3600);
    for step in [100, 200, 300] {
        let p = ws.join(format!("checkpoints/v1_step_{step}.pt"));
        std::fs::write(&p, vec![1u8; 4096]).expect("write");
        std::fs::File::options().write(true).open(&p).expect("open").set_modified(old).expect("mtime");
    }
    std::fs::write(ws.join("logs/train.log"), "step 1 loss 2.0\n").expect("log");
    (dir, ws)
}

fn writing(ws: &Path) -> Vec<(String, Option<WritingWhy>)> {
    let inv = inventory::scan(
        ws,
        &CheckpointsConfig::default(),
        SystemTime::now(),
        ScanOptions { previous: None, check_open_files: true },
    );
    inv.checkpoints.iter().map(|c| (c.rel_path.clone(), c.writing_why)).collect()
}

#[test]
#[ignore = "needs root"]
fn a_writer_through_a_bind_mount_is_seen() {
    require_root();
    let (dir, ws) = workspace();
    let bind = dir.path().join("bind");
    std::fs::create_dir_all(&bind).expect("mkdir");
    let st = Command::new("mount").arg("--bind").arg(ws.join("checkpoints")).arg(&bind).status().expect("mount");
    assert!(st.success());
    let _unmount = Unmount(bind.clone());
    let _ck = Holder::start(&[], "", &bind.join("v1_step_100.pt"));
    let w = writing(&ws);
    assert!(
        w.contains(&("checkpoints/v1_step_100.pt".into(), Some(WritingWhy::OpenForWrite))),
        "a checkpoint written through {} is being written: {w:?}",
        bind.display()
    );
    assert!(w.contains(&("checkpoints/v1_step_200.pt".into(), None)), "{w:?}");
    // The log, through another bind mount.
    let logs = dir.path().join("logs-bind");
    std::fs::create_dir_all(&logs).expect("mkdir");
    assert!(Command::new("mount").arg("--bind").arg(ws.join("logs")).arg(&logs).status().expect("mount").success());
    let _unmount_logs = Unmount(logs.clone());
    let log = Holder::start(&[], "", &logs.join("train.log"));
    let pids = opsconsole::logtail::proc::writers_of(&ws.join("logs/train.log")).expect("scan");
    assert!(pids.contains(&log.0.id()), "{pids:?}");
    // And prune keeps the checkpoint being written.
    let out = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("-w")
        .arg(&ws)
        .args(["prune", "--dry-run", "--json", "--allow-unsynced"])
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .output()
        .expect("prune");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let item = plan["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["rel_path"] == "checkpoints/v1_step_100.pt")
        .expect("listed")
        .clone();
    assert_eq!((item["action"].as_str(), item["reason"].as_str()), (Some("keep"), Some("writing")), "{item:#}");
}

#[test]
#[ignore = "needs root"]
fn a_writer_in_another_mount_namespace_is_seen() {
    require_root();
    assert!(Command::new("unshare").arg("--help").output().is_ok(), "unshare (util-linux) is missing");
    let (dir, ws) = workspace();
    // Inside its own mount namespace the writer mounts the checkpoints at a path that, in
    // ours, is an empty folder: its /proc link names a path that means nothing here.
    let inner = dir.path().join("container-view");
    std::fs::create_dir_all(&inner).expect("mkdir");
    let script = format!(
        "mount --make-rprivate / && mount --bind '{}' '{}' || exit 1",
        ws.join("checkpoints").display(),
        inner.display()
    );
    let _ck = Holder::start(&["unshare", "--mount"], &script, &inner.join("v1_step_200.pt"));
    assert!(!inner.join("v1_step_200.pt").exists(), "the mount is not visible here");
    let w = writing(&ws);
    assert!(w.contains(&("checkpoints/v1_step_200.pt".into(), Some(WritingWhy::OpenForWrite))), "{w:?}");
    assert!(w.contains(&("checkpoints/v1_step_100.pt".into(), None)), "{w:?}");
}

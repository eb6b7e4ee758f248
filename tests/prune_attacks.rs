//! Pruning attacked from outside, through the real binary, where the earlier safety tests
//! do not reach: file names that only look like another file's ledger key (a `\` in a
//! name, bytes that are not UTF-8), and a trainer writing on a filesystem mounted below a
//! checkpoint root (as root).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const FIVE: [u32; 5] = [100, 200, 300, 400, 500];

#[path = "support/cli.rs"]
mod cli;
use cli::{ok, run, text};

fn touch_ago(p: &Path, ago: &str) {
    assert!(Command::new("touch").args(["-d", ago]).arg(p).status().expect("touch").success());
}

/// A workspace whose L3 is a local remote beside it (`same_disk = true`).
fn workspace(base: &Path) -> (PathBuf, PathBuf) {
    let ws = base.join("ws");
    let r3 = base.join("r3");
    std::fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!(
            "[sync]\nsettle_seconds = 1\n\n[sync.l3]\nremote = \"r3\"\n\n[remotes.r3]\nkind = \"local\"\npath = \"{}\"\n\
             same_disk = true\n",
            r3.display()
        ),
    )
    .expect("config");
    (ws, r3)
}

/// Checkpoints at `steps` named by `name(step)` in `dir`, saved long ago, each with its
/// own bytes (`fill`).
fn saved(dir: &Path, steps: &[u32], name: impl Fn(u32) -> PathBuf, fill: u8) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    steps
        .iter()
        .copied()
        .map(|step| {
            let p = dir.join(name(step));
            std::fs::write(&p, vec![fill.wrapping_add((step / 100) as u8); 32 * 1024]).expect("write");
            touch_ago(&p, "2 hours ago");
            p
        })
        .collect()
}

/// `prune --yes` with confirmations only (no override), then: the files never stored
/// must all still be there, with their bytes.
fn prune_keeps_every_file_never_stored(ws: &Path, never_stored: &[PathBuf]) {
    let before: Vec<Vec<u8>> = never_stored.iter().map(|p| std::fs::read(p).expect("read")).collect();
    let out = ok(ws, &["prune", "--yes"]);
    for (p, bytes) in never_stored.iter().zip(before) {
        assert!(p.exists(), "{} was never stored anywhere, yet prune deleted it:\n{out}", p.display());
        assert_eq!(std::fs::read(p).expect("read"), bytes);
    }
}

#[test]
fn a_backslash_in_a_name_never_borrows_the_confirmation_of_the_path_it_resembles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, _r3) = workspace(dir.path());
    // `checkpoints/a/v01_step_{100,200}.pt`, stored and confirmed on L3 (and kept: their
    // run is shorter than keep_last).
    let stored = saved(&ws.join("checkpoints/a"), &[100, 200], |s| PathBuf::from(format!("v01_step_{s}.pt")), 0);
    ok(&ws, &["remote", "check", "r3", "--init"]);
    let s = ok(&ws, &["sync", "--once"]);
    assert!(s.contains("sync: 2 stored"), "{s}");
    // Then a trainer saves `checkpoints/a\v01_step_N.pt`: one file each, in `checkpoints/`,
    // whose names contain a backslash. Nothing has stored them anywhere.
    let fresh = saved(&ws.join("checkpoints"), &FIVE, |s| PathBuf::from(format!("a\\v01_step_{s}.pt")), 100);
    prune_keeps_every_file_never_stored(&ws, &fresh);
    assert!(stored.iter().all(|p| p.exists()));
}

#[test]
fn a_name_that_is_not_utf8_never_borrows_the_confirmation_of_its_lossy_spelling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, _r3) = workspace(dir.path());
    // `v\u{FFFD}_step_N.pt` (valid UTF-8, the replacement character), stored on L3.
    let stored = saved(&ws.join("checkpoints"), &FIVE, |s| PathBuf::from(format!("v\u{FFFD}_step_{s}.pt")), 0);
    ok(&ws, &["remote", "check", "r3", "--init"]);
    let s = ok(&ws, &["sync", "--once"]);
    assert!(s.contains("sync: 5 stored"), "{s}");
    // Then `v\xff_step_N.pt`: the byte 0xff is not UTF-8, so no sync stores it, and its
    // lossy spelling is the stored file's name.
    let fresh = saved(
        &ws.join("checkpoints"),
        &[100, 200],
        |s| {
            let mut b = b"v\xff".to_vec();
            b.extend_from_slice(format!("_step_{s}.pt").as_bytes());
            PathBuf::from(OsStr::from_bytes(&b))
        },
        100,
    );
    // Saved before the stored ones: each sorts just before the stored file of its step.
    for p in &fresh {
        touch_ago(p, "3 hours ago");
    }
    prune_keeps_every_file_never_stored(&ws, &fresh);
    assert!(!stored[0].exists() && stored[4].exists(), "the stored run is pruned as usual");
    // They are a run of their own, not the stored run's older half: with the override,
    // its newest (and, keep_last = 3, both) are kept.
    let out = ok(&ws, &["prune", "--yes", "--allow-unsynced"]);
    assert!(fresh.iter().all(|p| p.exists()), "the newest of the `v\\xff` run was deleted:\n{out}");
}

#[path = "support/holder.rs"]
mod holder;
use holder::{Holder, Unmount};

/// A trainer writes its checkpoints on a disk mounted *below* the checkpoint root
/// (`checkpoints/big` is a tmpfs): the root's own filesystem is not the file's. A file it
/// holds open for writing (and has not touched for hours, so the settle period does not
/// protect it) is still being written, and prune keeps it even with the override.
#[test]
#[ignore = "needs root"]
fn a_writer_on_a_filesystem_mounted_below_a_root_is_seen() {
    assert!(rustix::process::geteuid().is_root(), "this test needs root (mount)");
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, _r3) = workspace(dir.path());
    let big = ws.join("checkpoints/big");
    std::fs::create_dir_all(&big).expect("mkdir");
    let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"]).arg(&big).status().expect("mount");
    assert!(st.success(), "mount tmpfs");
    let _unmount = Unmount(big.clone());
    let cks = saved(&big, &FIVE, |s| PathBuf::from(format!("v01_step_{s}.pt")), 0);
    let _writer = Holder::start(&[], "", &cks[0]);
    touch_ago(&cks[0], "3 hours ago");

    let out = run(&ws, &["prune", "--dry-run", "--json", "--allow-unsynced"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let item = |name: &str| {
        plan["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["rel_path"] == format!("checkpoints/big/{name}"))
            .unwrap_or_else(|| panic!("{name} listed: {plan:#}"))
            .clone()
    };
    let w = item("v01_step_100.pt");
    assert_eq!((w["action"].as_str(), w["reason"].as_str()), (Some("keep"), Some("writing")), "{w:#}");
    let other = item("v01_step_200.pt");
    assert_eq!(other["action"], "delete", "the one nobody writes is still pruned: {other:#}");

    let out = ok(&ws, &["prune", "--yes", "--allow-unsynced"]);
    assert!(cks[0].exists(), "the checkpoint being written was deleted:\n{out}");
    assert!(!cks[1].exists(), "{out}");
}

/// A root that reaches opsconsole's own state: `*` matches `.opsconsole`, and an absolute
/// root holding another workspace holds its `.opsconsole` too. With patterns broad
/// enough to match the ledger and the override given, nothing there is ever planned or
/// deleted.
#[test]
fn no_root_reaches_into_opsconsoles_own_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, _r3) = workspace(dir.path());
    let other = dir.path().join("data/ws2");
    std::fs::create_dir_all(other.join(".opsconsole")).expect("mkdir");
    // A workspace kept inside this one, under a relative root (read by the console's
    // one walk of the workspace, not the prune scan).
    let nested = ws.join("runs/ws3");
    std::fs::create_dir_all(nested.join(".opsconsole")).expect("mkdir");
    let mut cfg = std::fs::read_to_string(ws.join("opsconsole.toml")).expect("config");
    cfg.push_str(&format!(
        "\n[checkpoints]\nroots = [\"*\", \"runs\", \"{}\"]\npatterns = [\"*.pt\", \"*.sqlite\", \"*.jsonl\"]\n",
        dir.path().join("data").display()
    ));
    std::fs::write(ws.join("opsconsole.toml"), cfg).expect("config");
    saved(&ws.join("checkpoints"), &FIVE, |s| PathBuf::from(format!("v01_step_{s}.pt")), 0);
    ok(&ws, &["remote", "check", "r3", "--init"]);
    ok(&ws, &["sync", "--once"]);
    let state: Vec<PathBuf> = ["ledger.sqlite", "remote-sums.sqlite", "prune-events.jsonl", "disk-history.jsonl"]
        .iter()
        .map(|n| ws.join(".opsconsole").join(n))
        .chain(["ledger.sqlite", "remote-sums.sqlite"].iter().map(|n| other.join(".opsconsole").join(n)))
        .chain(["ledger.sqlite", "remote-sums.sqlite"].iter().map(|n| nested.join(".opsconsole").join(n)))
        .collect();
    for p in &state {
        if !p.exists() {
            std::fs::write(p, b"state").expect("write");
        }
        touch_ago(p, "3 hours ago");
    }
    let out = run(&ws, &["prune", "--dry-run", "--json", "--allow-unsynced"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let listed: Vec<&str> =
        plan["items"].as_array().expect("items").iter().filter_map(|i| i["path"].as_str()).collect();
    assert!(listed.iter().all(|p| !p.contains("/.opsconsole/")), "opsconsole's state is planned: {listed:#?}");
    assert!(listed.iter().any(|p| p.ends_with("checkpoints/v01_step_100.pt")), "{listed:#?}");
    let status = run(&ws, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    let inventory = status["checkpoints"].to_string();
    assert!(inventory.contains("v01_step_100.pt"), "{inventory}");
    assert!(!inventory.contains(".opsconsole/"), "the console's inventory lists opsconsole's state: {inventory}");
    let out = ok(&ws, &["prune", "--yes", "--allow-unsynced"]);
    for p in &state {
        assert!(p.exists(), "{} was deleted:\n{out}", p.display());
    }
}

/// `/*` is the filesystem root spelled as a pattern: refused like `/`, as is any pattern in
/// the first folder below `/` (`/h*` matches `/home`).
#[test]
fn a_root_pattern_at_the_top_of_the_filesystem_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, _r3) = workspace(dir.path());
    for root in ["/*", "/h*", "/{usr,data}/ckpt", "/?ar"] {
        std::fs::write(ws.join("opsconsole.toml"), format!("[checkpoints]\nroots = [\"{root}\"]\n")).expect("config");
        let out = run(&ws, &["prune", "--dry-run"]);
        assert!(!out.status.success(), "root `{root}` was accepted:\n{}", text(&out));
        assert!(text(&out).contains("key `checkpoints.roots`"), "{root}: {}", text(&out));
        assert!(text(&out).contains(root), "{root}: {}", text(&out));
    }
}

/// After the copies are confirmed, the world makes the remote's folder show the local
/// files themselves: `r3/checkpoints` replaced by a link to `ws/checkpoints`, or a
/// dedupe tool hard-linking each copy to its original. The "copy" verifies byte for byte,
/// because it is the file prune is about to delete: it must not count.
#[test]
fn a_remote_copy_that_is_the_local_file_itself_does_not_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, r3) = workspace(dir.path());
    let cks = saved(&ws.join("checkpoints"), &FIVE, |s| PathBuf::from(format!("v01_step_{s}.pt")), 0);
    ok(&ws, &["remote", "check", "r3", "--init"]);
    ok(&ws, &["sync", "--once"]);
    // A link on the way: the stored folder is now the workspace's own.
    std::fs::remove_dir_all(r3.join("checkpoints")).expect("rm copies");
    std::os::unix::fs::symlink(ws.join("checkpoints"), r3.join("checkpoints")).expect("link");
    let out = ok(&ws, &["prune", "--yes"]);
    assert!(cks[0].exists() && cks[1].exists(), "the only copies were deleted:\n{out}");
    assert!(out.contains("deleted 0"), "{out}");
    // A hard link: the same inode under the remote's name.
    std::fs::remove_file(r3.join("checkpoints")).expect("rm link");
    std::fs::create_dir_all(r3.join("checkpoints")).expect("mkdir");
    for p in &cks {
        std::fs::hard_link(p, r3.join("checkpoints").join(p.file_name().expect("name"))).expect("link");
    }
    let out = ok(&ws, &["prune", "--yes"]);
    assert!(out.contains("deleted 0"), "a hard link to the file is not a copy of it:\n{out}");
    assert!(cks[0].exists() && cks[1].exists());
    // Nor is anything stored through a link out of the remote's folder: with
    // `r3/checkpoints` a link to `ws/checkpoints` again, a new checkpoint is not written
    // over itself.
    std::fs::remove_dir_all(r3.join("checkpoints")).expect("rm links");
    std::os::unix::fs::symlink(ws.join("checkpoints"), r3.join("checkpoints")).expect("link");
    let new = saved(&ws.join("checkpoints"), &[600], |s| PathBuf::from(format!("v01_step_{s}.pt")), 0).remove(0);
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&new).expect("meta"));
    let o = run(&ws, &["sync", "--once"]);
    let said = text(&o);
    assert!(said.lines().any(|l| l.contains("v01_step_600.pt") && l.contains("a link on the way")), "{said}");
    assert_eq!(std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&new).expect("meta")), ino, "{}", text(&o));
    // Or to any folder outside the remote's: nothing is written there.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    std::fs::remove_file(r3.join("checkpoints")).expect("rm link");
    std::os::unix::fs::symlink(&elsewhere, r3.join("checkpoints")).expect("link");
    let o = run(&ws, &["sync", "--once"]);
    assert!(text(&o).contains("not storing into"), "{}", text(&o));
    let written: Vec<_> = std::fs::read_dir(&elsewhere).expect("read").flatten().map(|e| e.path()).collect();
    assert!(written.is_empty(), "stored through a link out of the remote: {written:?}\n{}", text(&o));
}

/// The same through a bind mount (as root): `r3/checkpoints` shows `ws/checkpoints`.
#[test]
#[ignore = "needs root"]
fn a_remote_folder_bind_mounted_onto_the_checkpoints_does_not_count() {
    assert!(rustix::process::geteuid().is_root(), "this test needs root (mount)");
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, r3) = workspace(dir.path());
    let cks = saved(&ws.join("checkpoints"), &FIVE, |s| PathBuf::from(format!("v01_step_{s}.pt")), 0);
    ok(&ws, &["remote", "check", "r3", "--init"]);
    ok(&ws, &["sync", "--once"]);
    let st = Command::new("mount").arg("--bind").arg(ws.join("checkpoints")).arg(r3.join("checkpoints")).status();
    assert!(st.expect("mount").success(), "bind mount");
    let _unmount = Unmount(r3.join("checkpoints"));
    let out = ok(&ws, &["prune", "--yes"]);
    assert!(cks[0].exists() && cks[1].exists(), "the only copies were deleted:\n{out}");
    assert!(out.contains("deleted 0"), "{out}");
}

/// Between the check of a folder checkpoint's identity and the opening of it, another
/// process swaps it with a folder from outside the roots (`renameat2(RENAME_EXCHANGE)`,
/// over and over). Whatever the timing, nothing of the outside folder is deleted: the
/// folder opened is the one checked.
#[test]
fn a_folder_swapped_with_an_outside_one_during_deletion_is_never_emptied() {
    use opsconsole::checkpoints::{CheckpointsConfig, inventory, safedelete};
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let ck = ws.join("checkpoints/checkpoint-100");
    let victim = ws.join("victim");
    let victim_files = |ws: &Path| {
        [ws.join("victim"), ws.join("checkpoints/checkpoint-100")]
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|rd| rd.flatten())
            .filter(|e| e.file_name().to_string_lossy().starts_with("precious"))
            .count()
    };
    for round in 0..150 {
        let _ = std::fs::remove_dir_all(&ws);
        std::fs::create_dir_all(&ck).expect("mkdir");
        std::fs::create_dir_all(&victim).expect("mkdir");
        std::fs::write(ck.join("model.safetensors"), b"weights").expect("write");
        std::fs::write(victim.join("precious-1"), b"not a checkpoint").expect("write");
        std::fs::write(victim.join("precious-2"), b"not a checkpoint").expect("write");
        let inv = inventory::scan(
            &ws,
            &CheckpointsConfig::default(),
            std::time::SystemTime::now(),
            inventory::ScanOptions::default(),
        );
        let unit = inv.checkpoints.iter().find(|c| c.path == ck).expect("planned").unit.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let swapper = {
            let (stop, swaps, a, b) = (stop.clone(), swaps.clone(), ck.clone(), victim.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE);
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        while swaps.load(Ordering::Relaxed) < 20 {
            std::thread::yield_now();
        }
        // Tried until the deletion gets past the identity check, as a prune retried would.
        while safedelete::delete_unit(&unit).is_err() && swaps.load(Ordering::Relaxed) < 200_000 {}
        stop.store(true, Ordering::Relaxed);
        swapper.join().expect("swapper");
        assert_eq!(victim_files(&ws), 2, "round {round}: a file of the outside folder was deleted");
    }
}

/// `save_pretrained` writes a large model as shards in one folder
/// (`model-00001-of-00004.safetensors` … `-00004-of-00004`), one after the other. Their
/// names carry no step, so they are one run ordered by time, and keep_last = 3 left the
/// first shard to delete: the newest checkpoint, broken. A shard set is kept whole.
#[test]
fn the_shards_of_one_checkpoint_are_never_pruned_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, _r3) = workspace(dir.path());
    let folder = ws.join("checkpoints/final");
    let shards = saved(&folder, &[1, 2, 3, 4], |i| PathBuf::from(format!("model-0000{i}-of-00004.safetensors")), 0);
    for (i, p) in shards.iter().enumerate() {
        touch_ago(p, &format!("{} minutes ago", 10 - i));
    }
    ok(&ws, &["remote", "check", "r3", "--init"]);
    let s = ok(&ws, &["sync", "--once"]);
    assert!(s.contains("sync: 4 stored"), "{s}");
    let out = ok(&ws, &["prune", "--yes"]);
    for p in &shards {
        assert!(p.exists(), "{} (a shard of the newest checkpoint) was deleted:\n{out}", p.display());
    }
}

/// A training loop that saves each checkpoint as a folder of parts named without a step
/// (`epoch_3/model.pt`, `optimizer.pt`, `scheduler.pt`, `rng_state.pth`; DeepSpeed's
/// `global_step500/` with one file per rank): the parts were one run ordered by time, and
/// keep_last = 3 deleted the part written first, leaving the newest checkpoint broken.
/// Parts of one folder are kept whole; versions of one name (`model_epoch_N.pt`) are still
/// pruned.
#[test]
fn the_parts_of_a_checkpoint_folder_are_never_pruned_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, _r3) = workspace(dir.path());
    let mut parts = Vec::new();
    for (folder, names) in [
        ("checkpoints/epoch_3", vec!["model.pt", "optimizer.pt", "scheduler.pt", "rng_state.pth"]),
        (
            "checkpoints/global_step500",
            vec![
                "mp_rank_00_model_states.pt",
                "zero_pp_rank_0_mp_rank_00_optim_states.pt",
                "zero_pp_rank_1_mp_rank_00_optim_states.pt",
                "zero_pp_rank_2_mp_rank_00_optim_states.pt",
            ],
        ),
    ] {
        for (i, name) in names.iter().enumerate() {
            let p = saved(&ws.join(folder), &[0], |_| PathBuf::from(name), i as u8).remove(0);
            touch_ago(&p, &format!("{} minutes ago", 30 - i));
            parts.push(p);
        }
    }
    let versions =
        saved(&ws.join("checkpoints/run1"), &[1, 2, 3, 4, 5], |e| PathBuf::from(format!("model_epoch_{e}.pt")), 9);
    for (i, p) in versions.iter().enumerate() {
        touch_ago(p, &format!("{} minutes ago", 60 - i));
    }
    ok(&ws, &["remote", "check", "r3", "--init"]);
    let s = ok(&ws, &["sync", "--once"]);
    assert!(s.contains("sync: 13 stored"), "{s}");
    let out = ok(&ws, &["prune", "--yes"]);
    for p in &parts {
        assert!(p.exists(), "{} (a part of the newest checkpoint) was deleted:\n{out}", p.display());
    }
    assert!(!versions[0].exists() && !versions[1].exists(), "older versions of one name are still pruned:\n{out}");
    assert!(versions[2..].iter().all(|p| p.exists()));
}

/// `prune.logs` pointed at the checkpoints (`roots = ["checkpoints"]`, `patterns =
/// ["*.pt"]`): its rules (age, size, the newest file per folder) are not the checkpoint
/// rules, and it deleted the newest checkpoint of a run and ones within keep_last. A
/// checkpoint is only ever pruned by the checkpoint rules.
#[test]
fn log_pruning_never_deletes_a_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ws, _r3) = workspace(dir.path());
    let mut cfg = std::fs::read_to_string(ws.join("opsconsole.toml")).expect("config");
    cfg.push_str(
        "\n[prune.logs]\nenabled = true\nroots = [\"checkpoints\"]\npatterns = [\"*.pt\"]\nmax_age_days = 1\n\
         require_confirmed_on = [\"L3\"]\n",
    );
    std::fs::write(ws.join("opsconsole.toml"), cfg).expect("config");
    let v67 = saved(&ws.join("checkpoints"), &[100, 200, 300], |s| PathBuf::from(format!("v67_step_{s}.pt")), 0);
    let v68 = saved(&ws.join("checkpoints"), &FIVE, |s| PathBuf::from(format!("v68_step_{s}.pt")), 50);
    for p in v67.iter().chain(&v68) {
        touch_ago(p, "2 days ago");
    }
    // v68 saved last: its newest is the newest file of the folder.
    touch_ago(&v68[4], "47 hours ago");
    ok(&ws, &["remote", "check", "r3", "--init"]);
    let s = ok(&ws, &["sync", "--once"]);
    assert!(s.contains("sync: 8 stored"), "{s}");
    let out = ok(&ws, &["prune", "--yes"]);
    for p in v67.iter().chain(&v68[2..]) {
        assert!(p.exists(), "{} is kept by the checkpoint rules, yet was deleted:\n{out}", p.display());
    }
    assert!(!v68[0].exists() && !v68[1].exists(), "{out}");
}

//! `import` against a local remote (through the real binary) and against the Drive
//! stand-in (`tests/support/drive.rs`, through the real Drive client): the cluster's log
//! is found (the newest one this workspace did not upload itself), downloaded — a cut
//! download resumes from its `.part` — saved as `train_external.log`, and one journal entry
//! is appended with the run's length, final and best metrics with their steps and the
//! errors it saw (an OOM here), keeping every byte of the journal above it; importing the
//! same log again adds nothing.

#[path = "support/airlock.rs"]
mod airlock;
#[path = "support/drive.rs"]
mod standin;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use airlock::{config, opsconsole, write};
use standin::{Action, DriveStandIn, Fault, Op, Options, Role, SA_EMAIL};

/// A cluster's log: timestamps, losses with steps, evaluations, then a CUDA OOM.
fn cluster_log(pad_lines: usize) -> String {
    let mut s = String::new();
    s.push_str("2025-01-01 10:00:00 step 100 | loss 2.5000 | lr 3e-4\n");
    for i in 0..pad_lines {
        s.push_str(&format!("2025-01-01 10:05:00 data worker {i} ready, nothing to report here at all\n"));
    }
    s.push_str("2025-01-01 10:10:00 step 200 | loss 2.2000 | lr 3e-4\n");
    s.push_str("{\"step\": 200, \"eval_loss\": 2.3}\n");
    s.push_str("2025-01-01 10:20:00 step 300 | loss 2.2500 | lr 3e-4\n");
    s.push_str("{\"step\": 300, \"eval_loss\": 2.35}\n");
    s.push_str("Traceback (most recent call last):\n  File \"train.py\", line 10, in <module>\n");
    s.push_str("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n");
    s
}

fn check_entry(entry: &str) {
    for want in [
        "## Import: v1 — ",
        "- **Saved as**: `experiments/v1/logs/train_external.log`",
        "steps 100–300",
        "20m00s (timestamps)",
        "- **Final**: loss 2.2500 at step 300 · eval_loss 2.3500 at step 300",
        "- **Best**: loss 2.2000 at step 200 · eval_loss 2.3000 at step 200",
        "- **Errors**: 1 CUDA OOM — last: `torch.OutOfMemoryError: CUDA out of memory.",
    ] {
        assert!(entry.contains(want), "missing {want:?} in:\n{entry}");
    }
}

#[test]
fn a_local_remote_log_is_imported_once_and_the_journal_above_is_kept_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("experiments/v1/logs")).expect("mkdir");
    let remote = dir.path().join("drive");
    airlock::local_remote(&ws, "drive", &remote);
    config(
        &ws,
        &format!(
            "[sync]\nsettle_seconds = 1\n\n[sync.l2]\nremote = \"drive\"\n\n{}",
            airlock::local_remote_toml("drive", &remote)
        ),
    );
    // The cluster's log, written to the remote folder by the cluster.
    let log = cluster_log(3);
    write(&remote, "experiments/v1/logs/colab-run.log", log.as_bytes());
    airlock::set_age(&remote.join("experiments/v1/logs/colab-run.log"), std::time::Duration::from_secs(7200));
    // This workspace's own log, uploaded by sync: newer, but not the cluster's.
    write(&ws, "experiments/v1/logs/train.log", b"step 1 | loss 9.0\n");
    airlock::set_age(&ws.join("experiments/v1/logs/train.log"), std::time::Duration::from_secs(60));
    let out = opsconsole(&ws, &["sync", "--once"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(remote.join("experiments/v1/logs/train.log").exists());
    // A journal with history, no newline at its end.
    let before = "# Journal\n\n## Data\n- **Dataset**: PG-19 v1.0\n- **Downloaded**: 2024-12-22";
    std::fs::write(ws.join("journal.md"), before).expect("journal");

    let out = opsconsole(&ws, &["import", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["source"], "experiments/v1/logs/colab-run.log");
    assert_eq!(v["appended"], true);
    assert_eq!(v["summary"]["errors"]["cuda_oom"], 1);
    assert_eq!(std::fs::read_to_string(ws.join("experiments/v1/logs/train_external.log")).expect("saved"), log);
    let journal = std::fs::read_to_string(ws.join("journal.md")).expect("journal");
    assert!(journal.starts_with(before), "the journal above is kept:\n{journal}");
    assert_eq!(&journal[before.len()..before.len() + 2], "\n\n");
    let entry = &journal[before.len() + 2..];
    check_entry(entry);
    assert!(entry.contains("- **Source**: L2 (remote `drive`) `experiments/v1/logs/colab-run.log`"), "{entry}");

    // The same log again: nothing appended, the journal unchanged byte for byte.
    let out = opsconsole(&ws, &["import"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is already in journal.md: nothing appended"));
    assert_eq!(std::fs::read_to_string(ws.join("journal.md")).expect("journal"), journal);

    // A newer cluster log replaces the saved copy; the earlier import is kept aside.
    write(&remote, "experiments/v1/logs/colab-run-2.log", cluster_log(1).as_bytes());
    let out = opsconsole(&ws, &["import", "--from", "experiments/v1/logs/colab-run-2.log"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("kept the earlier import as experiments/v1/logs/train_external."), "{text}");
    let kept: Vec<_> = std::fs::read_dir(ws.join("experiments/v1/logs"))
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("train_external.2"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read_to_string(kept[0].path()).expect("kept"), log);
    let journal2 = std::fs::read_to_string(ws.join("journal.md")).expect("journal");
    assert!(journal2.starts_with(&journal));
    assert_eq!(journal2.matches("## Import: v1").count(), 2);
}

#[test]
fn nothing_on_l2_is_said_in_words() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("experiments/v1")).expect("mkdir");
    let remote = dir.path().join("drive");
    airlock::local_remote(&ws, "drive", &remote);
    config(&ws, &format!("[sync.l2]\nremote = \"drive\"\n\n{}", airlock::local_remote_toml("drive", &remote)));
    let out = opsconsole(&ws, &["import"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no log on L2") && err.contains("experiments/v1/**/*.log"), "{err}");
    // Without an L2 remote at all.
    config(&ws, "");
    let out = opsconsole(&ws, &["import"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("L2's remote 'drive' is not configured"));
}

#[test]
fn the_drive_stand_in_serves_the_log_and_a_cut_download_resumes() {
    let d = DriveStandIn::start(Options { redirect_downloads: true, ..Options::default() });
    let team = d.add_shared_drive("Team", &[(SA_EMAIL, Role::Writer)]);
    let root = d.add_folder(&team, "rsm_project");
    let exps = d.add_folder(&root, "experiments");
    let v1 = d.add_folder(&exps, "v1");
    let logs = d.add_folder(&v1, "logs");
    let log = cluster_log(40_000); // about 3 MB
    d.add_file(&logs, "old-run.log", b"step 1 | loss 9.0\n", &[]);
    d.add_file(&logs, "cluster.log", log.as_bytes(), &[]);
    let dir = tempfile::tempdir().expect("tmp");
    let key = dir.path().join("secrets/sa.json");
    d.write_key(&key);
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("experiments/v1")).expect("mkdir");
    let cfg = config(
        &ws,
        &format!(
            "[sync.l2]\nremote = \"gdrive\"\n\n[remotes.gdrive]\nkind = \"drive\"\nfolder_id = \"{root}\"\n\
             key_file = \"{}\"\nendpoint = \"{}\"\nscope = \"drive\"\n",
            key.display(),
            d.endpoint()
        ),
    );
    // The connection drops after 1 MB of the download: the import resumes with Range.
    d.push_fault(Fault::new(Op::Download, Action::Cut(1 << 20)));
    let before = d.counters();
    let imp = opsconsole::airlock::import::run(
        &ws,
        &cfg,
        &opsconsole::airlock::import::ImportOptions::default(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .expect("imported");
    let after = d.counters();
    assert_eq!(imp.source, "experiments/v1/logs/cluster.log", "the newest log");
    assert_eq!(std::fs::read_to_string(ws.join(&imp.saved_as)).expect("saved"), log);
    assert_eq!(d.faults_left(), 0, "the cut happened");
    let fetched = after.download_bytes - before.download_bytes;
    assert!(fetched < log.len() as u64 + (64 << 10), "resumed, not fetched again: {fetched} of {}", log.len());
    assert!(after.downloads - before.downloads >= 2, "a second, ranged request");
    assert!(imp.appended);
    check_entry(&imp.entry);
    let journal = std::fs::read_to_string(ws.join("journal.md")).expect("journal");
    assert_eq!(journal, imp.entry, "a new journal holds the entry alone");
    assert!(!Path::new(&ws.join("experiments/v1/logs/.train_external.log.download.part")).exists());
}

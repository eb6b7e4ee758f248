//! Pruning reads confirmations from the sync ledger: a checkpoint becomes deletable only
//! after `opsconsole sync --once` has put a verified copy on L3, and the remote keeps it.

use std::path::Path;
use std::process::{Command, Output};

fn opsconsole(ws: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .args(args)
        .current_dir(ws)
        .env("XDG_STATE_HOME", ws.join(".state"))
        .output()
        .expect("run opsconsole")
}

fn plan(ws: &Path) -> Vec<(String, String, String)> {
    let out = opsconsole(ws, &["prune", "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan json");
    let items = v["items"].as_array().expect("items");
    items
        .iter()
        .map(|i| {
            let path = i["path"].as_str().unwrap().to_string();
            let name = Path::new(&path).file_name().unwrap().to_string_lossy().into_owned();
            (name, i["action"].as_str().unwrap().to_string(), i["reason"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn checkpoints_confirmed_on_l3_by_the_ledger_are_pruned_and_stay_on_the_remote() {
    let dir = tempfile::tempdir().unwrap();
    let ws = &dir.path().join("ws");
    std::fs::create_dir_all(ws.join("checkpoints")).unwrap();
    std::fs::write(
        ws.join("opsconsole.toml"),
        "[remotes.hf]\nkind = \"local\"\npath = \"../remote-hf\"\nsame_disk = true\n\n[sync]\nsettle_seconds = 1\n",
    )
    .unwrap();
    let init = opsconsole(ws, &["remote", "check", "hf", "--init"]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stdout));
    for step in [100, 200, 300, 400, 500] {
        let p = ws.join(format!("checkpoints/v01_step_{step}.pt"));
        std::fs::write(&p, vec![step as u8; 64 * 1024]).unwrap();
        // Saved long ago: settled for the inventory and the watcher alike.
        let ok = Command::new("touch").args(["-d", "2 hours ago"]).arg(&p).status().unwrap().success();
        assert!(ok);
    }

    // Before any upload nothing is confirmed: the two oldest are kept as unconfirmed.
    let before = plan(ws);
    assert!(before.iter().all(|(_, action, _)| action == "keep"), "{before:?}");
    for old in ["v01_step_100.pt", "v01_step_200.pt"] {
        let item = before.iter().find(|(n, _, _)| n == old).expect("listed");
        assert_eq!(item.2, "unconfirmed", "{item:?}");
    }

    let sync = opsconsole(ws, &["sync", "--once"]);
    assert!(sync.status.success(), "sync --once: {}", String::from_utf8_lossy(&sync.stderr));
    for step in [100, 200, 300, 400, 500] {
        assert!(ws.join(format!("../remote-hf/checkpoints/v01_step_{step}.pt")).is_file(), "step {step} on L3");
    }

    let after = plan(ws);
    let action = |name: &str| after.iter().find(|(n, _, _)| n == name).map(|(_, a, r)| (a.clone(), r.clone()));
    assert_eq!(action("v01_step_100.pt"), Some(("delete".into(), "beyond_keep_last".into())), "{after:?}");
    assert_eq!(action("v01_step_200.pt"), Some(("delete".into(), "beyond_keep_last".into())), "{after:?}");
    assert_eq!(action("v01_step_500.pt").map(|a| a.0), Some("keep".into()), "the newest is kept");

    let run = opsconsole(ws, &["prune", "--yes"]);
    assert!(run.status.success(), "prune --yes: {}", String::from_utf8_lossy(&run.stderr));
    assert!(!ws.join("checkpoints/v01_step_100.pt").exists());
    assert!(!ws.join("checkpoints/v01_step_200.pt").exists());
    for step in [300, 400, 500] {
        assert_eq!(
            std::fs::read(ws.join(format!("checkpoints/v01_step_{step}.pt"))).unwrap(),
            vec![step as u8; 64 * 1024]
        );
    }
    // The deleted ones are still safe elsewhere, byte for byte.
    assert_eq!(std::fs::read(ws.join("../remote-hf/checkpoints/v01_step_100.pt")).unwrap(), vec![100u8; 64 * 1024]);

    // A rewritten checkpoint no longer matches its confirmed copy: it is not deletable.
    std::fs::write(ws.join("checkpoints/v01_step_300.pt"), b"rewritten").unwrap();
    let ok = Command::new("touch").args(["-d", "2 hours ago"]).arg(ws.join("checkpoints/v01_step_300.pt")).status();
    assert!(ok.unwrap().success());
    std::fs::write(ws.join("checkpoints/v01_step_600.pt"), vec![6u8; 1024]).unwrap();
    Command::new("touch").args(["-d", "1 hour ago"]).arg(ws.join("checkpoints/v01_step_600.pt")).status().unwrap();
    let later = plan(ws);
    let item = later.iter().find(|(n, _, _)| n == "v01_step_300.pt").expect("listed");
    assert_eq!((item.1.as_str(), item.2.as_str()), ("keep", "unconfirmed"), "{later:?}");
}

#[test]
fn an_override_deletion_is_recorded_in_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    std::fs::create_dir_all(ws.join("checkpoints")).unwrap();
    std::fs::write(ws.join("opsconsole.toml"), "[checkpoints]\nkeep_last = 1\n").unwrap();
    for step in [1, 2] {
        let p = ws.join(format!("checkpoints/run_step_{step}.pt"));
        std::fs::write(&p, [step as u8; 10]).unwrap();
        Command::new("touch").args(["-d", "2 hours ago"]).arg(&p).status().unwrap();
    }
    let run = opsconsole(ws, &["prune", "--yes", "--allow-unsynced"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(!ws.join("checkpoints/run_step_1.pt").exists());
    assert!(ws.join("checkpoints/run_step_2.pt").exists(), "the newest is never deleted");
    let ledger = opsconsole::sync::ledger::Ledger::open(ws).expect("ledger opens");
    let events = ledger.recent_events(20).expect("events");
    let ev = events.iter().find(|e| e.kind == "override_delete").expect("override recorded in the ledger");
    assert!(ev.path.as_deref().is_some_and(|p| p.ends_with("run_step_1.pt")), "{ev:?}");
    assert!(ev.detail.contains("not yet on L2, L3"), "{ev:?}");
}

#[test]
fn keep_best_ranks_checkpoints_by_the_metric_in_the_training_log() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    std::fs::create_dir_all(ws.join("checkpoints")).unwrap();
    std::fs::create_dir_all(ws.join("experiments/v01/logs")).unwrap();
    std::fs::write(
        ws.join("opsconsole.toml"),
        "[checkpoints]\nkeep_last = 1\nkeep_best_metric = \"eval_loss\"\nkeep_best_mode = \"min\"\nkeep_best_count = 1\n",
    )
    .unwrap();
    // HF Trainer eval lines carry no step: the step is the one the progress bar last showed.
    let mut log = String::new();
    for (step, eval) in [(100, 2.9), (200, 2.1), (300, 2.4), (400, 2.6)] {
        log.push_str(&format!("\r 10%|█         | {step}/1000 [00:10<01:30, 10.00it/s]\n"));
        log.push_str(&format!("{{'eval_loss': {eval}, 'eval_runtime': 1.0, 'epoch': 0.{step}}}\n"));
    }
    std::fs::write(ws.join("experiments/v01/logs/train.log"), log).unwrap();
    for step in [100, 200, 300, 400] {
        let p = ws.join(format!("checkpoints/v01_step_{step}.pt"));
        std::fs::write(&p, [1u8; 100]).unwrap();
        Command::new("touch").args(["-d", "2 hours ago"]).arg(&p).status().unwrap();
    }
    let out = opsconsole(ws, &["prune", "--dry-run", "--json", "--allow-unsynced"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let get = |name: &str| {
        let item = v["items"].as_array().unwrap().iter().find(|i| i["path"].as_str().unwrap().ends_with(name)).unwrap();
        (item["action"].as_str().unwrap().to_string(), item["reason"].as_str().unwrap().to_string())
    };
    assert_eq!(get("v01_step_200.pt"), ("keep".into(), "best".into()), "lowest eval_loss");
    assert_eq!(get("v01_step_400.pt").0, "keep", "newest");
    assert_eq!(get("v01_step_100.pt").0, "delete");
    assert_eq!(get("v01_step_300.pt").0, "delete");
}

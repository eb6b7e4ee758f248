//! File names are the world's: a checkpoint named with terminal escape sequences is
//! listed and reported by `opsconsole prune` with them shown, never sent raw to the
//! terminal.

use std::process::Command;
use std::time::{Duration, SystemTime};

#[test]
fn prune_escapes_control_characters_in_file_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path();
    std::fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
    let old = SystemTime::now() - Duration::from_secs(3600);
    // ESC [2J clears the screen, BEL rings, CR rewrites the line: one run of four.
    let evil = |step: u32| format!("v1\u{1b}[2J\u{1b}[31mRED\u{7}\r_step_{step}.pt");
    for (i, step) in [100, 200, 300, 400].into_iter().enumerate() {
        let p = ws.join("checkpoints").join(evil(step));
        std::fs::write(&p, vec![1u8; 1000]).expect("write");
        let f = std::fs::File::options().write(true).open(&p).expect("open");
        f.set_modified(old + Duration::from_secs(i as u64)).expect("mtime");
    }
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
            .arg("-w")
            .arg(ws)
            .args(args)
            .env("XDG_STATE_HOME", ws.join("state"))
            .output()
            .expect("run");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (plan, _) = run(&["prune", "--dry-run", "--allow-unsynced"]);
    assert!(plan.contains("checkpoints/v1\\x1b[2J\\x1b[31mRED\\x07\\r_step_100.pt"), "{plan}");
    let (_, progress) = run(&["prune", "--yes", "--allow-unsynced"]);
    assert!(progress.contains("deleted: ") && progress.contains("\\x1b[2J"), "{progress}");
    for text in [&plan, &progress] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\r'),
            "raw control characters: {text:?}"
        );
    }
}

//! The real binary in tmux: `b` bundles the committed experiment (shown built and queued
//! on L2), `r` finds the checkpoint to resume from, enter and `y` start the configured
//! command from it (it writes a marker), and the console quits back to the shell.

#[path = "support/airlock.rs"]
mod airlock;
#[path = "support/tmux.rs"]
mod tmux;

use std::time::{Duration, Instant};

use tmux::Tmux;

#[test]
#[ignore = "needs tmux"]
fn b_bundles_and_r_resumes_in_the_real_console() {
    Tmux::require();
    let bin = env!("CARGO_BIN_EXE_opsconsole");
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    airlock::repo(&ws, "v1");
    airlock::checkpoint(&ws.join("checkpoints/v1_step_100.pt"), 4096, 1, Duration::from_secs(3600));
    let remote = dir.path().join("l2");
    airlock::local_remote(&ws, "drive", &remote);
    let marker = dir.path().join("resumed.txt");
    let toml = format!(
        "[sync.l2]\nremote = \"drive\"\n\n{}[resume]\ncommand = \"echo resumed from {{checkpoint}} > '{}'\"\n",
        airlock::local_remote_toml("drive", &remote),
        marker.display()
    );
    std::fs::write(ws.join("opsconsole.toml"), toml).expect("config");
    let short = airlock::git(&ws, &["rev-parse", "--short", "HEAD"]);

    let t = Tmux::shell("airlock", 120, 40);
    let state = dir.path().join("state");
    t.send(&[&format!("cd {} && XDG_STATE_HOME={} {bin}", ws.display(), state.display()), "Enter"]);
    t.wait_for("the console", |s| s.contains("Uploads") && s.contains("host "));

    t.send(&["b"]);
    let screen = t.wait_for("the bundle built", |s| s.contains(&format!("✓ bundle-v1-{short}.zip")));
    assert!(screen.contains("queued on L2 (drive): this console's sync engine sends it now"), "{screen}");
    assert!(ws.join(format!("bundles/bundle-v1-{short}.zip")).is_file());
    t.send(&["Escape"]);
    t.wait_for("the bundle screen closed", |s| !s.contains("bundle again"));

    t.send(&["r"]);
    let screen =
        t.wait_for("the resume candidates", |s| s.contains("Resume v1") && s.contains("✓ checkpoints/v1_step_100.pt"));
    assert!(screen.contains("L1 local disk") && screen.contains("L2 local"), "{screen}");
    t.send(&["Enter"]);
    t.wait_for("the question", |s| s.contains("Start it now from"));
    t.send(&["y"]);
    t.wait_for("the run started", |s| s.contains("✓ started pid"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(&marker)
            && !t.is_empty()
        {
            break t;
        }
        assert!(Instant::now() < deadline, "the command wrote no marker");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(text.trim(), format!("resumed from {}", ws.join("checkpoints/v1_step_100.pt").display()));
    // The bundle goes to L2 through the console's own sync engine, while the console runs
    // (a loaded machine may take a while: wait before quitting, bounded).
    let stored = remote.join(format!("bundles/bundle-v1-{short}.zip"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stored.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(stored.exists(), "the queued bundle was uploaded by the console's engine");
    t.send(&["Escape"]);
    t.quit("the shell to come back", |s| s.trim_end().ends_with("READY$"));
    assert_eq!(t.display("#{alternate_on}"), "0", "alternate screen left");
}

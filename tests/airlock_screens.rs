//! The airlock screens through `update` (no terminal, a fake clock) and whole-screen
//! snapshots at 80x24 and 160x48: the bundle refusal list (and a bundle built), the
//! import's journal entry, and the resume candidates of every level with the winner and
//! why; `b`, `i`, `r` start their jobs; confirming on the resume screen starts the command
//! and the Log panel follows it.

mod support;

use opsconsole::airlock::bundle::{self, Manifest, ManifestFile, Outcome, Problem, ProblemKind, Refusal, Upload};
use opsconsole::airlock::git::Change;
use opsconsole::airlock::launch::{Launch, Refused};
use opsconsole::airlock::resume::{Candidate, LevelReport, ResumeReport, Status, Winner};
use opsconsole::app::airlock::{AirlockEffect, AirlockJob, AirlockMsg};
use opsconsole::app::{AppState, Effect, Msg, Overlay, update};
use opsconsole::config::Config;
use ratatui::crossterm::event::KeyCode;
use support::fixtures::{self as fx, code, key};

fn started(s: &mut AppState, c: char, job: AirlockJob) -> u64 {
    let fx = update(s, key(c));
    match fx.as_slice() {
        [Effect::Airlock(AirlockEffect::Run { job: j, id })] if *j == job => *id,
        other => panic!("{c}: {other:?}"),
    }
}

fn refusal() -> Outcome {
    let p = |path: &str, change: Change| Problem {
        path: Some(path.into()),
        kind: ProblemKind::Uncommitted(change),
        why: change.words().into(),
    };
    Outcome::Refused(Refusal {
        experiment: Some("v68_lane_unification".into()),
        commit: Some("3f2a1b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a".into()),
        problems: vec![
            p("experiments/v68_lane_unification/models/lane_attention.py", Change::Modified),
            p("experiments/v68_lane_unification/notes/scratch_ideas_for_tomorrow.txt", Change::Untracked),
            p("experiments/v68_lane_unification/train.py", Change::StagedAndModified),
            p("requirements.txt", Change::Staged),
        ],
    })
}

fn built() -> Outcome {
    let f = |path: &str, size: u64| ManifestFile { path: path.into(), size, sha256: "ab".repeat(32) };
    Outcome::Built(Box::new(bundle::Built {
        experiment: "v68_lane_unification".into(),
        path: "bundles/bundle-v68_lane_unification-3f2a1b9.zip".into(),
        size: 48_213,
        sha256: "7d69b8b5c4d65f4d38cf958d26dcf9b62a30f385faff2df05088814521edfa42".into(),
        sidecar: "bundles/bundle-v68_lane_unification-3f2a1b9.json".into(),
        created: "2026-11-28T11:59:58Z".into(),
        manifest: Manifest {
            format: 1,
            experiment: "v68_lane_unification".into(),
            commit: "3f2a1b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a".into(),
            branch: Some("main".into()),
            clean: true,
            host: "l4-box".into(),
            files: vec![
                f("experiments/v68_lane_unification/models/__init__.py", 0),
                f("experiments/v68_lane_unification/models/lane_attention.py", 12_104),
                f("experiments/v68_lane_unification/models/rope.py", 3_220),
                f("experiments/v68_lane_unification/train.py", 9_871),
                f("frozen_requirements.txt", 4_410),
                f("requirements.txt", 212),
            ],
        },
        warnings: vec!["frozen_requirements.txt is older than requirements.txt: run `opsconsole freeze` so it lists what is installed now".into()],
        upload: Upload::Queued { level: "L2".into(), remote: "drive".into(), engine: Some(4242), own: false },
    }))
}

#[test]
fn bundle_screens() {
    let mut s = fx::state();
    update(&mut s, fx::typical_disks());
    let id = started(&mut s, 'b', AirlockJob::Bundle);
    assert_eq!(s.overlay, Overlay::Bundle);
    assert!(s.jobs.running().any(|j| j.name == "bundle"), "in the job list while it runs");
    // Progress while it runs.
    update(
        &mut s,
        Msg::Airlock(AirlockMsg::Progress {
            job: AirlockJob::Bundle,
            id,
            text: "writing experiments/v68_lane_unification/models/lane_attention.py".into(),
            done: 30_000,
            total: 48_000,
        }),
    );
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("⟳ writing experiments/v68_lane_unification/models/lane_attention.py"), "{text}");
    assert!(text.contains("62%"), "{text}");
    // Pressing `b` again while it runs starts nothing.
    update(&mut s, code(KeyCode::Esc));
    assert!(update(&mut s, key('b')).is_empty());
    // Refused: every file listed, with the fix.
    update(&mut s, Msg::Airlock(AirlockMsg::Bundle { id, result: Ok(Box::new(refusal())) }));
    assert!(s.jobs.running().next().is_none());
    for (w, h) in [(80, 24), (160, 48)] {
        insta::assert_snapshot!(format!("bundle_refused_{w}x{h}"), fx::render(&s, w, h).backend());
    }
    // ctrl-r bundles again; then built and queued.
    let fx2 = update(&mut s, fx::ctrl('r'));
    let Some(Effect::Airlock(AirlockEffect::Run { id, .. })) = fx2.first() else { panic!("{fx2:?}") };
    let id = *id;
    update(&mut s, Msg::Airlock(AirlockMsg::Bundle { id, result: Ok(Box::new(built())) }));
    insta::assert_snapshot!("bundle_built_80x24", fx::render(&s, 80, 24).backend());
    // `b` on the open screen closes it.
    update(&mut s, key('b'));
    assert_eq!(s.overlay, Overlay::None);
}

fn cand(level: &str, key: &str, step: Option<u64>, bytes: u64, status: Status) -> Candidate {
    Candidate {
        level: level.into(),
        key: key.into(),
        step,
        latest: step.is_none() && key.contains("latest"),
        files: 1,
        bytes,
        modified_unix: Some(fx::NOW - 3600),
        status,
    }
}

fn resume_report() -> ResumeReport {
    ResumeReport {
        experiment: "v68_lane".into(),
        levels: vec![
            LevelReport {
                level: "L1".into(),
                place: "local disk".into(),
                error: None,
                candidates: vec![
                    cand(
                        "L1",
                        "checkpoints/v68_lane_step_1400.pt",
                        Some(1400),
                        3_100_000_000,
                        Status::Failed { why: "truncated: 3.1 GB of the 6.7 GB the sync ledger recorded".into() },
                    ),
                    cand("L1", "checkpoints/v68_lane_step_1200.pt", Some(1200), 6_700_000_000, Status::NotChecked),
                    cand(
                        "L1",
                        "checkpoints/model_final.pt",
                        None,
                        6_700_000_000,
                        Status::Skipped { why: "no step in its name: not a resume candidate".into() },
                    ),
                ],
            },
            LevelReport {
                level: "L2".into(),
                place: "drive 1AbCdEfGhIjKlMnOpQrStUvWxYz012345 (Team)".into(),
                error: None,
                candidates: vec![cand(
                    "L2",
                    "checkpoints/v68_lane_step_1400.pt",
                    Some(1400),
                    6_700_000_000,
                    Status::Verified { how: "downloaded from L2, checksum verified".into() },
                )],
            },
            LevelReport {
                level: "L3".into(),
                place: "hf user/rsm-weights".into(),
                error: None,
                candidates: vec![
                    cand("L3", "checkpoints/v68_lane_step_1200.pt", Some(1200), 6_700_000_000, Status::Listed),
                    cand("L3", "out/checkpoint-1000", Some(1000), 13_400_000_000, Status::Listed),
                ],
            },
        ],
        winner: Some(Winner {
            level: "L2".into(),
            step: Some(1400),
            path: "/home/me/rsm/checkpoints/v68_lane_step_1400.pt".into(),
            shown: "checkpoints/v68_lane_step_1400.pt".into(),
            downloaded_from: Some("L2".into()),
            kept_aside: vec!["checkpoints/v68_lane_step_1400.pt.corrupt".into()],
            why: "the local copy of step 1400 failed verification (truncated: 3.1 GB of the 6.7 GB the sync ledger recorded); restored from L2 and verified".into(),
        }),
        notes: vec![],
    }
}

#[test]
fn resume_screens_and_starting_the_command() {
    let mut cfg = Config::default();
    cfg.resume.command = "python experiments/v68_lane/train.py --resume_from_checkpoint {checkpoint}".into();
    let mut s = fx::state_with(cfg);
    update(&mut s, fx::typical_disks());
    let id = started(&mut s, 'r', AirlockJob::Resume);
    assert_eq!(s.overlay, Overlay::Resume);
    update(&mut s, Msg::Airlock(AirlockMsg::Resume { id, result: Ok(Box::new(resume_report())) }));
    for (w, h) in [(80, 24), (160, 48)] {
        insta::assert_snapshot!(format!("resume_candidates_{w}x{h}"), fx::render(&s, w, h).backend());
    }
    // Enter asks; y starts it with the winner.
    assert!(update(&mut s, code(KeyCode::Enter)).is_empty());
    assert!(s.airlock.resume.confirming);
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("Start it now from /home/me/rsm/checkpoints/v68_lane_step_1400.pt, detached"), "{text}");
    let fx2 = update(&mut s, key('y'));
    assert_eq!(
        fx2,
        vec![Effect::Airlock(AirlockEffect::Launch {
            experiment: "v68_lane".into(),
            checkpoint: "/home/me/rsm/checkpoints/v68_lane_step_1400.pt".into(),
        })]
    );
    // Started: the Log panel follows the run's log.
    let launch = Launch {
        pid: 5123,
        command: "python experiments/v68_lane/train.py --resume_from_checkpoint '/home/me/rsm/checkpoints/v68_lane_step_1400.pt'".into(),
        checkpoint: "checkpoints/v68_lane_step_1400.pt".into(),
        log: "experiments/v68_lane/logs/train.log".into(),
        log_path: "/home/me/rsm/experiments/v68_lane/logs/train.log".into(),
        started: "2026-11-28T12:00:00Z".into(),
    };
    let fx3 = update(&mut s, Msg::Airlock(AirlockMsg::Launched(Ok(launch))));
    assert_eq!(fx3, vec![Effect::SwitchLog("/home/me/rsm/experiments/v68_lane/logs/train.log".into())]);
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("✓ started pid 5123 in its own session"), "{text}");
    // Refused while training runs: said in words.
    update(&mut s, key('y'));
    update(&mut s, code(KeyCode::Enter));
    update(&mut s, key('y'));
    let busy = Refused::Busy {
        processes: vec![opsconsole::airlock::launch::Busy {
            pid: 4121,
            what: "python train.py on GPU 0 (16.9 GB)".into(),
        }],
    };
    assert!(update(&mut s, Msg::Airlock(AirlockMsg::Launched(Err(busy)))).is_empty());
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("not started: a training process is running (pid 4121 python train.py on GPU 0"), "{text}");
}

#[test]
fn without_a_command_the_screen_gives_the_path_and_says_what_to_set() {
    let mut s = fx::state();
    let id = started(&mut s, 'r', AirlockJob::Resume);
    update(&mut s, Msg::Airlock(AirlockMsg::Resume { id, result: Ok(Box::new(resume_report())) }));
    assert!(update(&mut s, code(KeyCode::Enter)).is_empty());
    assert!(!s.airlock.resume.confirming, "nothing to confirm");
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("no [resume] command"), "{text}");
}

#[test]
fn import_screen_shows_the_entry() {
    let mut s = fx::state();
    let id = started(&mut s, 'i', AirlockJob::Import);
    let summary = opsconsole::airlock::import::LogSummary {
        lines: 48_213,
        first_step: Some(1),
        last_step: Some(12_000),
        total_steps: Some(20_000),
        run_seconds: Some(22_200.0),
        run_length_from: Some("train_runtime".into()),
        final_loss: None,
        best_loss: None,
        final_eval_loss: None,
        best_eval_loss: None,
        errors: Default::default(),
        last_error: None,
    };
    let mut imp = opsconsole::airlock::import::Imported {
        experiment: "v68_lane".into(),
        level: "L2".into(),
        remote: "drive".into(),
        source: "experiments/v68_lane/logs/colab-run.log".into(),
        size: 12_300_000,
        sha256: "97fc4d346e19e64eee4b8882de170e4ebe908cb439fdd07467040e31c2b0d5ae".into(),
        saved_as: "experiments/v68_lane/logs/train_external.log".into(),
        kept_previous: None,
        journal: "journal.md".into(),
        appended: true,
        entry: String::new(),
        summary,
    };
    imp.summary.final_loss = Some(opsconsole::airlock::import::Seen { value: 2.3102, step: Some(12_000) });
    imp.summary.best_loss = Some(opsconsole::airlock::import::Seen { value: 2.2501, step: Some(11_400) });
    imp.summary.errors.cuda_oom = 1;
    imp.summary.last_error = Some("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB".into());
    imp.entry = opsconsole::airlock::import::entry_text(&imp, fx::at(fx::NOW));
    update(&mut s, Msg::Airlock(AirlockMsg::Import { id, result: Ok(Box::new(imp)) }));
    insta::assert_snapshot!("import_done_80x24", fx::render(&s, 80, 24).backend());
}

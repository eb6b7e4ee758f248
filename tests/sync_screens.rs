//! The Uploads panel: `update` with fixture samples and events, and whole-screen snapshots
//! (idle, uploading, overdue, failed, the queue overlay; a Drive level uploading, refused
//! for quota, and retrying after a rate limit) at 80x24 and 160x48.

mod support;

use opsconsole::app::{Effect, Msg, Overlay, Panel, update};
use opsconsole::config::{Config, DEFAULT_CONFIG};
use opsconsole::sync::ledger::{LedgerEntry, UploadState};
use opsconsole::sync::status::{FailureStatus, InFlightStatus, LevelStatus, SyncStatus, WithheldStatus};
use opsconsole::sync::{Command, EngineSource, SyncEvent, SyncSample};
use ratatui::crossterm::event::KeyCode;
use support::fixtures::{self as fx, key};

const MB: u64 = 1_000_000;
const GB: u64 = 1_000_000_000;

fn level(name: &str, remote: &str, interval: u64) -> LevelStatus {
    LevelStatus {
        level: name.into(),
        remote: remote.into(),
        remote_configured: true,
        enabled: true,
        interval_minutes: interval,
        pending_files: 0,
        pending_bytes: 0,
        confirmed_files: 12,
        last_success_unix: Some(fx::NOW as i64 - 41 * 60),
        last_pass_unix: Some(fx::NOW as i64 - 41 * 60),
        up_to_date_unix: Some(fx::NOW as i64 - 41 * 60),
        nothing_to_store: false,
        same_disk: false,
        overdue: false,
        failed: 0,
        failures: vec![],
        in_flight: None,
        interrupted: None,
    }
}

fn entry(level: &str, path: &str, state: UploadState, done: u64, total: u64) -> LedgerEntry {
    LedgerEntry {
        path: path.into(),
        level: level.into(),
        remote: if level == "L2" { "drive".into() } else { "hf".into() },
        state,
        sha256: "00".into(),
        md5: None,
        mtime_ns: 0,
        bytes_done: done,
        bytes_total: total,
        remote_id: None,
        remote_checksum: None,
        attempts: if state == UploadState::Failed { 1 } else { 0 },
        last_error: (state == UploadState::Failed).then(|| {
            "no space left on remote 'hf' (/mnt/backup). Fix: free space there or point the remote at a \
             larger disk, then retry failed uploads (R, or restart the sync)"
                .to_string()
        }),
        permanent: state == UploadState::Failed,
        next_attempt_ms: 0,
        session: None,
        queued_ms: 0,
        updated_ms: 0,
        confirmed_ms: None,
    }
}

fn sample(levels: Vec<LevelStatus>, queue: Vec<LedgerEntry>) -> Msg {
    Msg::Sync(Box::new(SyncSample {
        source: EngineSource::Daemon { pid: 4242 },
        status: SyncStatus { engine_pid: Some(4242), levels, ..SyncStatus::default() },
        queue,
    }))
}

fn idle() -> Msg {
    sample(vec![level("L2", "drive", 90), level("L3", "hf", 180)], vec![])
}

fn uploading() -> (Msg, Vec<LedgerEntry>) {
    let mut l2 = level("L2", "drive", 90);
    l2.pending_files = 2;
    l2.pending_bytes = 3 * MB;
    let mut l3 = level("L3", "hf", 180);
    l3.pending_files = 2;
    l3.pending_bytes = 9 * GB;
    l3.in_flight = Some(InFlightStatus {
        path: "checkpoints/v68_step_12000.pt".into(),
        bytes_done: 4_100 * MB,
        bytes_total: 6_700 * MB,
        updated_ms: fx::NOW as i64 * 1000,
    });
    let queue = vec![
        entry("L2", "experiments/v68/logs/train.log", UploadState::Pending, 0, 2 * MB),
        entry("L2", "journal.md", UploadState::Pending, 0, MB),
        entry("L3", "checkpoints/v68_step_12000.pt", UploadState::Uploading, 4_100 * MB, 6_700 * MB),
        entry("L3", "checkpoints/v68_step_11000.pt", UploadState::Pending, 0, 6_700 * MB),
    ];
    (sample(vec![l2, l3], queue.clone()), queue)
}

fn with_uploads(msgs: Vec<Msg>) -> opsconsole::app::AppState {
    let mut s = fx::state();
    update(&mut s, fx::typical_disks());
    for m in msgs {
        update(&mut s, m);
    }
    s
}

fn both(name: &str, state: &opsconsole::app::AppState) {
    insta::assert_snapshot!(format!("{name}_80x24"), fx::render(state, 80, 24).backend());
    insta::assert_snapshot!(format!("{name}_110x32"), fx::render(state, 110, 32).backend());
    insta::assert_snapshot!(format!("{name}_160x48"), fx::render(state, 160, 48).backend());
}

#[test]
fn uploads_idle() {
    let s = with_uploads(vec![idle()]);
    both("uploads_idle", &s);
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("L2 drive   nothing pending"), "{text}");
    assert!(text.contains("last ok 41m00s ago (every 1h30m)"), "{text}");
}

#[test]
fn uploads_nothing_to_store_and_same_disk() {
    // L2: a pass ran and found nothing to do; nothing was ever stored. L3: files stored,
    // on a remote that shares the workspace's disk (same_disk = true).
    let mut l2 = level("L2", "drive", 90);
    l2.confirmed_files = 0;
    l2.last_success_unix = None;
    l2.nothing_to_store = true;
    let mut l3 = level("L3", "hf", 180);
    l3.same_disk = true;
    let mut s = with_uploads(vec![sample(vec![l2, l3], vec![])]);
    both("uploads_nothing_to_store_same_disk", &s);
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("L2 drive   nothing pending  nothing to store (every 1h30m)"), "{text}");
    assert!(!text.contains("L2 drive   nothing pending  last ok"), "{text}");
    assert!(text.contains("L3 hf      same disk: not a backup · nothing pending  last ok 41m00s ago"), "{text}");
    // Never run: "never stored", not "ok".
    let mut l2 = level("L2", "drive", 90);
    l2.last_success_unix = None;
    l2.last_pass_unix = None;
    update(&mut s, sample(vec![l2, level("L3", "hf", 180)], vec![]));
    assert!(fx::screen_text(&s, 160, 48).contains("L2 drive   nothing pending  never stored (every 1h30m)"));
}

#[test]
fn an_upload_left_by_a_stopped_engine_is_not_shown_as_uploading() {
    // The ledger row says `uploading`, but no engine holds the lock: the status carries it
    // as interrupted, and the panel shows no progress bar.
    let mut l3 = level("L3", "hf", 180);
    l3.pending_files = 1;
    l3.pending_bytes = 50 * MB;
    l3.interrupted = Some(InFlightStatus {
        path: "checkpoints/a.pt".into(),
        bytes_done: 54 * MB,
        bytes_total: 105 * MB,
        updated_ms: 0,
    });
    let msg = Msg::Sync(Box::new(SyncSample {
        source: EngineSource::Off { reason: "not started".into() },
        status: SyncStatus {
            engine_pid: None,
            levels: vec![level("L2", "drive", 90), l3],
            recent: vec![],
            ..SyncStatus::default()
        },
        queue: vec![],
    }));
    let s = with_uploads(vec![msg]);
    assert!(s.uploads.in_flight("L3").is_none());
    let text = fx::screen_text(&s, 160, 48);
    assert!(!text.contains('%') || !text.contains("a.pt"), "{text}");
    assert!(text.contains("L3 hf      1 pending 50.0 MB  last ok"), "{text}");
}

#[test]
fn uploads_in_flight_with_rate_and_eta_from_successive_samples() {
    let (first, queue) = uploading();
    let mut s = with_uploads(vec![first]);
    // The daemon writes its progress to the ledger; each reading is timed by when the
    // daemon wrote it (`updated_ms`), not by when this console read it.
    let reading = |s: &mut opsconsole::app::AppState, read_at: u64, written_at: u64, done_mb: u64| {
        update(s, Msg::Tick(fx::at(read_at)));
        let mut l3 = level("L3", "hf", 180);
        l3.pending_files = 2;
        l3.pending_bytes = 9 * GB;
        l3.in_flight = Some(InFlightStatus {
            path: "checkpoints/v68_step_12000.pt".into(),
            bytes_done: done_mb * MB,
            bytes_total: 6_700 * MB,
            updated_ms: written_at as i64 * 1000,
        });
        let mut l2 = level("L2", "drive", 90);
        l2.pending_files = 2;
        l2.pending_bytes = 3 * MB;
        update(s, sample(vec![l2, l3], queue.clone()));
    };
    // Two seconds in, 176 MB more: too short a span to say a rate (a first burst would
    // read as a pace), so no rate and no ETA yet.
    reading(&mut s, fx::NOW + 2, fx::NOW + 2, 4_276);
    let up = s.uploads.in_flight("L3").expect("in flight");
    assert_eq!((up.rate_bytes_per_s, up.eta()), (0, None));
    assert!(!fx::screen_text(&s, 80, 24).contains("/s"), "no rate yet");
    // Four seconds in: 88 MB/s over the window.
    reading(&mut s, fx::NOW + 4, fx::NOW + 4, 4_452);
    let up = s.uploads.in_flight("L3").expect("in flight");
    assert_eq!(up.rate_bytes_per_s, 88 * MB);
    assert_eq!(up.eta().map(|d| d.as_secs()), Some((6_700 - 4_452) / 88));
    // The same ledger read again later (the daemon wrote nothing new): the same rate, not
    // a slower one measured from the console's own clock.
    reading(&mut s, fx::NOW + 7, fx::NOW + 4, 4_452);
    assert_eq!(s.uploads.in_flight("L3").map(|u| u.rate_bytes_per_s), Some(88 * MB));
    both("uploads_uploading", &s);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("v68_step_12000.pt  66%"), "{text}");
    assert!(text.contains("88.0 MB/s eta 25s"), "{text}");
}

/// Issue 15 item 6: after a resume, the rate counts only the bytes this attempt sent. The
/// daemon resumed at 4 100 MB of 6 700 (a new attempt: its first reading is the offset)
/// and sends 10.5 MB/s under a 10 MiB/s cap.
#[test]
fn a_resumed_upload_under_a_cap_reads_the_cap() {
    let mut s = with_uploads(vec![]);
    let path = "checkpoints/v68_step_12000.pt";
    for i in 0..=8u64 {
        let mut l3 = level("L3", "hf", 180);
        l3.pending_files = 1;
        l3.pending_bytes = 6_700 * MB;
        // The first attempt had reached 4 000 MB; this one resumes at 4 100 MB.
        let done = 4_100 * MB + i * 10_485_760;
        l3.in_flight = Some(InFlightStatus {
            path: path.into(),
            bytes_done: done,
            bytes_total: 6_700 * MB,
            updated_ms: (fx::NOW + i) as i64 * 1000,
        });
        update(&mut s, Msg::Tick(fx::at(fx::NOW + i)));
        update(&mut s, sample(vec![level("L2", "drive", 90), l3], vec![]));
    }
    let up = s.uploads.in_flight("L3").expect("in flight");
    assert_eq!(up.rate_bytes_per_s, 10_485_760);
    let left = 6_700 * MB - (4_100 * MB + 8 * 10_485_760);
    assert_eq!(up.eta().map(|d| d.as_secs()), Some(left / 10_485_760));
    let text = fx::screen_text(&s, 110, 32);
    assert!(text.contains("10.5 MB/s eta 3m59s"), "{text}");
}

/// Issue 15 item 6: a failed upload retried (R) and under way again no longer shows its
/// old failure beside its progress, though the ledger sample read before the retry still
/// lists it.
#[test]
fn a_retrying_upload_does_not_keep_the_old_failure_text() {
    let path = "checkpoints/v68_step_13000.pt";
    let mut l3 = level("L3", "hf", 180);
    l3.pending_files = 1;
    l3.pending_bytes = 6_700 * MB;
    l3.failed = 1;
    l3.failures = vec![FailureStatus {
        path: path.into(),
        reason: "cancelled by you; retry failed uploads to queue it again".into(),
        permanent: true,
        attempts: 1,
        retry_at_unix: None,
    }];
    let mut s = with_uploads(vec![sample(vec![level("L2", "drive", 90), l3], vec![])]);
    let text = fx::screen_text(&s, 110, 32);
    // With room below, the reason is on the failure's own line, and said once.
    assert!(
        text.contains("✗ 1 failed (below)") && text.contains("✗ L3 checkpoints/v68_step_13000.pt: cancelled by you"),
        "{text}"
    );
    assert_eq!(text.matches("cancelled by you").count(), 1, "{text}");
    // In the two rows of 80x24 the level line carries it.
    assert!(fx::screen_text(&s, 80, 24).contains("✗ 1 failed: cancelled by you"));
    // The retry starts: this console's engine says so before the next ledger sample.
    update(
        &mut s,
        Msg::SyncEvent(SyncEvent::Started {
            level: "L3".into(),
            path: path.into(),
            offset: 0,
            bytes_total: 6_700 * MB,
        }),
    );
    update(
        &mut s,
        Msg::SyncEvent(SyncEvent::Progress {
            level: "L3".into(),
            path: path.into(),
            bytes_done: 670 * MB,
            bytes_total: 6_700 * MB,
            rate_bytes_per_s: 0,
        }),
    );
    for (w, h) in [(80, 24), (110, 32), (160, 48)] {
        let text = fx::screen_text(&s, w, h);
        assert!(!text.contains("cancelled"), "{w}x{h}:\n{text}");
        assert!(!text.contains("failed"), "{w}x{h}:\n{text}");
        assert!(text.contains("v68_step_13000.pt  10%"), "{w}x{h}:\n{text}");
    }
    insta::assert_snapshot!("uploads_retrying_110x32", fx::render(&s, 110, 32).backend());
}
#[test]
fn uploads_overdue_is_flagged() {
    let mut l2 = level("L2", "drive", 90);
    l2.pending_files = 4;
    l2.pending_bytes = 12 * MB;
    l2.last_success_unix = Some(fx::NOW as i64 - 3 * 3600);
    l2.overdue = true;
    let s = with_uploads(vec![sample(vec![l2, level("L3", "hf", 180)], vec![])]);
    both("uploads_overdue", &s);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("OVERDUE last ok 3h00m ago"), "{text}");
}

#[test]
fn uploads_name_the_files_withheld_as_secrets() {
    let withheld = vec![
        WithheldStatus {
            path: "my-project-3f2a1b9c0d.json".into(),
            kind: "service_account_key".into(),
            why: "by content: a Google service-account key".into(),
        },
        WithheldStatus {
            path: "notes/run.json".into(),
            kind: "hf_token".into(),
            why: "by content: a Hugging Face token (hf_…)".into(),
        },
    ];
    let status = SyncStatus {
        engine_pid: Some(4242),
        levels: vec![level("L2", "drive", 90), level("L3", "hf", 180)],
        withheld_files: 2,
        withheld,
        ..SyncStatus::default()
    };
    let msg = Msg::Sync(Box::new(SyncSample { source: EngineSource::Daemon { pid: 4242 }, status, queue: vec![] }));
    let s = with_uploads(vec![msg]);
    both("uploads_withheld", &s);
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("2 files withheld as secrets: my-project-3f2a1b9c0d.json, notes/run.json"), "{text}");
    let small = fx::screen_text(&s, 80, 24);
    assert!(small.contains("Uploads · daemon pid 4242 · 2 withheld as secrets"), "{small}");
}

#[test]
fn uploads_say_disk_full_in_words() {
    // Read from a copy on a full disk: the levels as last recorded, and why.
    let status = SyncStatus {
        engine_pid: None,
        levels: vec![level("L2", "drive", 90), level("L3", "hf", 180)],
        ledger_read_only: Some(
            "disk full: the sync ledger is read-only until space is freed (0 B free on the workspace's disk); \
             shown as last recorded"
                .into(),
        ),
        ..SyncStatus::default()
    };
    let source = EngineSource::Off {
        reason: "disk full: the sync engine cannot start (0 B free on the workspace's disk); it starts again once \
                 space is freed"
            .into(),
    };
    let s = with_uploads(vec![Msg::Sync(Box::new(SyncSample { source, status, queue: vec![] }))]);
    both("uploads_disk_full", &s);
    let small = fx::screen_text(&s, 80, 24);
    assert!(small.contains("Uploads · sync off · DISK FULL: ledger read-only"), "{small}");
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("disk full: the sync ledger is read-only until space is freed"), "{text}");
    assert!(!text.contains("reading the sync ledger"), "{text}");

    // Not readable at all: said instead of "reading the sync ledger…".
    let mut s = with_uploads(vec![]);
    update(&mut s, Msg::SyncUnreadable("disk full: the sync ledger cannot be read (0 B free): disk I/O error".into()));
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("disk full: the sync ledger cannot be read"), "{text}");
    assert!(!text.contains("reading the sync ledger"), "{text}");
}

#[test]
fn uploads_failed_shows_the_reason_and_the_fix() {
    let mut l3 = level("L3", "hf", 180);
    l3.failed = 1;
    l3.pending_files = 1;
    l3.pending_bytes = 6_700 * MB;
    l3.failures = vec![FailureStatus {
        path: "checkpoints/v68_step_13000.pt".into(),
        reason: "no space left on remote 'hf' (/mnt/backup). Fix: free space there or point the remote at \
                 a larger disk, then retry failed uploads (R, or restart the sync)"
            .into(),
        permanent: true,
        attempts: 1,
        retry_at_unix: None,
    }];
    let mut l2 = level("L2", "drive", 90);
    l2.remote_configured = false;
    let queue = vec![entry("L3", "checkpoints/v68_step_13000.pt", UploadState::Failed, 0, 6_700 * MB)];
    let s = with_uploads(vec![sample(vec![l2, l3], queue)]);
    both("uploads_failed", &s);
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("✗ 1 failed"), "{text}");
    assert!(text.contains("not configured: add [remotes.drive] to opsconsole.toml"), "{text}");
    assert!(text.contains("✗ L3 checkpoints/v68_step_13000.pt: no space left on remote 'hf'"), "{text}");
}

#[test]
fn queue_overlay_cancel_retry_and_sync_now_become_engine_commands() {
    let (msg, _) = uploading();
    let mut s = with_uploads(vec![msg]);
    // Enter does nothing until the Uploads panel has focus.
    update(&mut s, fx::code(KeyCode::Enter));
    assert_eq!(s.overlay, Overlay::None);
    assert!(update(&mut s, key('c')).is_empty(), "cancel needs the Uploads panel");
    while s.focus != Panel::Uploads {
        update(&mut s, fx::code(KeyCode::Tab));
    }
    update(&mut s, fx::code(KeyCode::Enter));
    assert_eq!(s.overlay, Overlay::UploadQueue);
    both("uploads_queue", &s);
    // Select the row uploading and cancel it.
    update(&mut s, key('j'));
    update(&mut s, key('j'));
    assert_eq!(
        update(&mut s, key('c')),
        vec![Effect::Sync(Command::Cancel { path: "checkpoints/v68_step_12000.pt".into(), level: "L3".into() })]
    );
    // Nothing has failed: `R` says so, and sends nothing.
    assert_eq!(update(&mut s, key('R')), vec![]);
    assert_eq!(s.status_line().map(|l| l.text.as_str()), Some("no failed uploads to retry"));
    assert_eq!(update(&mut s, key('s')), vec![Effect::Sync(Command::SyncNow(None))]);
    update(&mut s, fx::code(KeyCode::Esc));
    assert_eq!(s.overlay, Overlay::None);
}

#[test]
fn engine_events_drive_the_in_flight_line_and_notes() {
    let mut s = with_uploads(vec![idle()]);
    update(
        &mut s,
        Msg::SyncEvent(SyncEvent::Progress {
            level: "L3".into(),
            path: "ck/a.pt".into(),
            bytes_done: 50,
            bytes_total: 100,
            rate_bytes_per_s: 10,
        }),
    );
    // A ledger sample a moment later (no in-flight row yet) keeps the fresher event.
    update(&mut s, idle());
    assert_eq!(s.uploads.in_flight("L3").map(|u| u.bytes_done), Some(50));
    update(
        &mut s,
        Msg::SyncEvent(SyncEvent::Confirmed {
            level: "L3".into(),
            path: "ck/a.pt".into(),
            bytes: 100,
            already_there: false,
        }),
    );
    assert!(s.uploads.in_flight("L3").is_none());
    update(
        &mut s,
        Msg::SyncEvent(SyncEvent::Dropped {
            path: "ck/b.pt".into(),
            levels: vec!["L3".into()],
            note: "deleted before it was stored; dropped from the queue".into(),
        }),
    );
    assert_eq!(s.uploads.note.as_deref(), Some("ck/b.pt: deleted before it was stored; dropped from the queue"));
}

#[test]
fn the_demo_config_uses_two_local_remotes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("demo");
    std::fs::create_dir(&ws).expect("mkdir");
    let text = opsconsole::demo::demo_sync_config(DEFAULT_CONFIG, &opsconsole::demo::remotes_dir(&ws));
    let cfg = Config::from_toml(&text, &ws.join("opsconsole.toml")).expect("demo config loads");
    assert_eq!(cfg.remotes.len(), 2);
    for r in cfg.remotes.values() {
        let opsconsole::sync::RemoteConfig::Local { path, same_disk } = r else {
            panic!("the demo's remotes are local folders: {r:?}");
        };
        assert!(*same_disk, "the demo's remotes share the workspace's disk, and say so");
        assert!(path.starts_with(dir.path().join("demo-remotes")), "outside the workspace: {path:?}");
    }
    // The same remotes inside the workspace are a config error naming the key.
    let inside = opsconsole::demo::demo_sync_config(DEFAULT_CONFIG, &ws.join("remotes"));
    let err = Config::from_toml(&inside, &ws.join("opsconsole.toml")).unwrap_err().to_string();
    assert!(err.contains("key `remotes.drive.path`") && err.contains("inside the workspace"), "{err}");
    assert_eq!(cfg.sync.l3.interval_minutes, 0);
    assert_eq!(cfg.sync.l2.interval_minutes, 2);
    assert!(cfg.sync.bandwidth_limit_kib_s > 0);
}

#[test]
fn a_copy_found_missing_is_shown_beside_a_daemon_for_an_hour() {
    let ev = |ago: i64, path: &str| opsconsole::sync::ledger::LedgerEvent {
        at_ms: (fx::NOW as i64 - ago) * 1000,
        kind: "verify_failed".into(),
        path: Some(path.into()),
        level: Some("L3".into()),
        detail: "the copy on remote 'hf' failed verification: it is missing; it is stored again".into(),
    };
    let mut l3 = level("L3", "hf", 180);
    l3.pending_files = 2;
    l3.pending_bytes = 13 * GB;
    let msg = Msg::Sync(Box::new(SyncSample {
        source: EngineSource::Daemon { pid: 4242 },
        status: SyncStatus {
            engine_pid: Some(4242),
            levels: vec![level("L2", "drive", 90), l3],
            recent: vec![ev(60, "checkpoints/v68_step_11000.pt"), ev(7200, "checkpoints/v68_step_9000.pt")],
            ..SyncStatus::default()
        },
        queue: vec![],
    }));
    let s = with_uploads(vec![msg]);
    let text = fx::screen_text(&s, 160, 48);
    assert!(
        text.contains("⚠ L3 checkpoints/v68_step_11000.pt: the copy on remote 'hf' failed verification: it is missing"),
        "{text}"
    );
    assert!(!text.contains("v68_step_9000.pt"), "two hours old: not shown\n{text}");
}

#[test]
fn q_asks_before_stopping_an_upload_of_this_consoles_engine() {
    let own = |source: EngineSource| {
        let mut s = with_uploads(vec![Msg::Sync(Box::new(SyncSample {
            source,
            status: SyncStatus {
                engine_pid: Some(4242),
                levels: vec![level("L2", "drive", 90), level("L3", "hf", 180)],
                ..SyncStatus::default()
            },
            queue: vec![],
        }))]);
        update(
            &mut s,
            Msg::SyncEvent(SyncEvent::Progress {
                level: "L3".into(),
                path: "checkpoints/v68_step_12000.pt".into(),
                bytes_done: 4_100 * MB,
                bytes_total: 6_700 * MB,
                rate_bytes_per_s: 88 * MB,
            }),
        );
        s
    };
    // This console's engine is uploading: q asks, n keeps it running, y quits.
    let mut s = own(EngineSource::Console);
    assert!(update(&mut s, key('q')).is_empty());
    assert_eq!(s.overlay, Overlay::ConfirmQuit);
    both("confirm_quit_upload", &s);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("An upload is in flight. Quitting stops it."), "{text}");
    assert!(text.contains("L3 v68_step_12000.pt 61%"), "{text}");
    assert!(text.contains("It resumes where it stopped next time."), "{text}");
    update(&mut s, key('n'));
    assert_eq!(s.overlay, Overlay::None);
    assert!(!s.should_quit);
    update(&mut s, key('q'));
    assert_eq!(update(&mut s, key('y')), vec![Effect::Quit]);
    // A daemon's upload goes on without the console: q quits at once.
    let mut s = own(EngineSource::Daemon { pid: 4242 });
    assert_eq!(update(&mut s, key('q')), vec![Effect::Quit]);
}

/// Who a Drive remote runs as, for the reasons its errors give.
fn drive_who() -> opsconsole::sync::drive::api::Who {
    opsconsole::sync::drive::api::Who {
        remote: "drive".into(),
        folder_id: "1AbCdEfGhIjKlMnOpQrStUvWxYz012345".into(),
        client_email: "colab-automation@rsm-project.iam.gserviceaccount.com".into(),
        scope: "drive.file".into(),
        subject: None,
    }
}

/// The reason the engine records for a Drive answer (the Drive remote's own words).
fn drive_reason(status: u16, reason: &str, message: &str, key: &str) -> String {
    use opsconsole::sync::drive::api::{ApiFailure, Ctx, classify};
    let f = ApiFailure { status, reason: reason.into(), message: message.into(), retry_after: None };
    classify(&f, Ctx::Upload(key), &drive_who()).reason()
}

#[test]
fn drive_level_uploading_shows_progress_rate_and_eta() {
    let mut l2 = level("L2", "drive", 90);
    l2.pending_files = 3;
    l2.pending_bytes = 180 * MB;
    let log = "experiments/v68/logs/train.log";
    l2.in_flight = Some(InFlightStatus {
        path: log.into(),
        bytes_done: 60 * MB,
        bytes_total: 150 * MB,
        updated_ms: fx::NOW as i64 * 1000,
    });
    let queue = vec![
        entry("L2", log, UploadState::Uploading, 60 * MB, 150 * MB),
        entry("L2", "experiments/v68/metrics.json", UploadState::Pending, 0, 20 * MB),
        entry("L2", "journal.md", UploadState::Pending, 0, 10 * MB),
    ];
    let mut s = with_uploads(vec![sample(vec![l2.clone(), level("L3", "hf", 180)], queue.clone())]);
    update(&mut s, Msg::Tick(fx::at(fx::NOW + 4)));
    l2.in_flight = Some(InFlightStatus {
        path: log.into(),
        bytes_done: 92 * MB,
        bytes_total: 150 * MB,
        updated_ms: (fx::NOW + 4) as i64 * 1000,
    });
    update(&mut s, sample(vec![l2, level("L3", "hf", 180)], queue));
    both("uploads_drive_uploading", &s);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("L2 drive   train.log  61%"), "{text}");
    assert!(text.contains("92.0 MB/150 MB 8.0 MB/s eta 7s"), "{text}");
}

#[test]
fn drive_quota_error_shows_its_fix() {
    let path = "experiments/v68/logs/train.log";
    let reason = drive_reason(
        403,
        "storageQuotaExceeded",
        "Service Accounts do not have storage quota. Leverage shared drives, or use OAuth delegation instead.",
        path,
    );
    assert!(reason.contains("no storage quota: a service account has none of its own"), "{reason}");
    let mut l2 = level("L2", "drive", 90);
    l2.pending_files = 1;
    l2.pending_bytes = 2 * MB;
    l2.failed = 1;
    l2.failures = vec![FailureStatus {
        path: path.into(),
        reason: reason.clone(),
        permanent: true,
        attempts: 1,
        retry_at_unix: None,
    }];
    let mut row = entry("L2", path, UploadState::Failed, 0, 2 * MB);
    row.last_error = Some(reason.clone());
    let mut s = with_uploads(vec![sample(vec![l2, level("L3", "hf", 180)], vec![row])]);
    both("uploads_drive_quota", &s);
    let wide = fx::screen_text(&s, 160, 48);
    assert!(wide.contains("✗ 1 failed (below)"), "{wide}");
    assert!(wide.contains("✗ L2 experiments/v68/logs/train.log: no storage quota"), "{wide}");
    assert_eq!(wide.matches("no storage quota").count(), 1, "the reason once at 160:\n{wide}");
    // At 80x24 the panel has room for the start; the queue shows the whole reason and fix.
    while s.focus != Panel::Uploads {
        update(&mut s, fx::code(KeyCode::Tab));
    }
    update(&mut s, fx::code(KeyCode::Enter));
    insta::assert_snapshot!("uploads_drive_quota_queue_80x24", fx::render(&s, 80, 24).backend());
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("Shared Drive"), "{text}");
    assert!(text.contains("Content manager"), "{text}");
}

#[test]
fn drive_rate_limit_is_a_retrying_state_with_its_time() {
    let path = "experiments/v68/metrics.json";
    let reason = drive_reason(429, "rateLimitExceeded", "Rate Limit Exceeded", path);
    let mut l2 = level("L2", "drive", 90);
    l2.pending_files = 2;
    l2.pending_bytes = 4 * MB;
    l2.failed = 1;
    l2.failures = vec![FailureStatus {
        path: path.into(),
        reason,
        permanent: false,
        attempts: 2,
        retry_at_unix: Some(fx::NOW as i64 + 100),
    }];
    let mut row = entry("L2", path, UploadState::Failed, 0, 2 * MB);
    row.permanent = false;
    row.attempts = 2;
    let s = with_uploads(vec![sample(vec![l2, level("L3", "hf", 180)], vec![row])]);
    both("uploads_drive_retrying", &s);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("↻ retrying in 1m40s: Drive asks to slow down"), "{text}");
    assert!(!text.contains("✗"), "a retrying upload is not shown as failed: {text}");
}

/// Issue 15 item 3: answers to keys go to one place every size shows — the footer's row —
/// say what happened (one failure queued again, or nothing to retry), and expire after
/// `STATUS_TTL` (6 s of the state's clock), when the key hints come back. The Uploads
/// panel does not repeat them.
#[test]
fn key_answers_go_to_the_status_line_and_expire() {
    let mut l3 = level("L3", "hf", 180);
    l3.failed = 1;
    l3.failures = vec![FailureStatus {
        path: "checkpoints/v68_step_13000.pt".into(),
        reason: "the remote refused: 403".into(),
        permanent: true,
        attempts: 3,
        retry_at_unix: None,
    }];
    let mut s = with_uploads(vec![sample(vec![level("L2", "drive", 90), l3], vec![])]);
    assert_eq!(update(&mut s, key('R')), vec![Effect::Sync(Command::RetryFailed(None))]);
    both("status_line_retry", &s);
    for (w, h) in [(80, 24), (110, 32), (160, 48)] {
        let text = fx::screen_text(&s, w, h);
        let last = text.lines().last().unwrap_or_default();
        assert!(last.contains("› 1 failed upload queued again"), "{w}x{h}: the footer row says it:\n{text}");
        assert_eq!(text.matches("queued again").count(), 1, "{w}x{h}: said once:\n{text}");
    }
    update(&mut s, Msg::Tick(fx::at(fx::NOW + 5)));
    assert!(s.status_line().is_some(), "still there after 5 s");
    update(&mut s, Msg::Tick(fx::at(fx::NOW + 6)));
    assert!(s.status_line().is_none() && s.status.is_none(), "gone after 6 s");
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.lines().last().unwrap_or_default().contains("?  help"), "the key hints are back:\n{text}");
    assert!(!text.contains("queued again"), "{text}");

    // A refusal says why, in the same place; a newer answer replaces the older one.
    assert!(update(&mut s, key('c')).is_empty());
    assert_eq!(
        s.status_line().map(|l| (l.text.as_str(), l.error)),
        Some(("focus the Uploads panel (4) to cancel an upload", true))
    );
    update(&mut s, key('s'));
    assert_eq!(
        s.status_line().map(|l| (l.text.as_str(), l.error)),
        Some(("sync requested on every level: the answer comes when each pass ends", false))
    );
}

/// `s` and `R` are answered again when the ledger shows the passes they asked for: what
/// each level did, a failure with its whole reason (the panel at 80x24 cuts it).
#[test]
fn sync_and_retry_are_answered_with_what_the_passes_did() {
    let mut s = with_uploads(vec![idle()]);
    let asked = fx::NOW as i64;
    update(&mut s, key('s'));
    // A sample from before either pass ended answers nothing.
    update(&mut s, idle());
    assert!(s.uploads.asked.is_some());
    let reason =
        "the folder of remote 'drive' (/nonexistent/drive) does not exist: create it or fix [remotes.drive] path";
    let mut l2 = level("L2", "drive", 90);
    l2.last_pass_unix = Some(asked + 3);
    l2.failed = 1;
    l2.failures = vec![FailureStatus {
        path: "experiments/v68/logs/train.log".into(),
        reason: reason.into(),
        permanent: true,
        attempts: 1,
        retry_at_unix: None,
    }];
    update(&mut s, Msg::Tick(fx::at(fx::NOW + 3)));
    update(&mut s, sample(vec![l2.clone(), level("L3", "hf", 180)], vec![]));
    assert!(s.uploads.asked.is_some(), "L3 has not ended a pass yet");
    let mut l3 = level("L3", "hf", 180);
    l3.last_pass_unix = Some(asked + 4);
    l3.last_success_unix = Some(asked + 4);
    update(&mut s, Msg::Tick(fx::at(fx::NOW + 4)));
    update(&mut s, sample(vec![l2.clone(), l3.clone()], vec![]));
    let st = s.status_line().expect("answered");
    assert!(st.error);
    assert_eq!(st.text, format!("sync: L2 1 failed: {reason} · L3 stored, up to date"));
    let narrow = fx::screen_text(&s, 80, 24);
    assert!(
        narrow.lines().last().unwrap_or_default().contains("✗ sync: L2 1 failed: the folder of remote 'drive'"),
        "{narrow}"
    );
    assert!(s.uploads.asked.is_none(), "answered once");

    // `R` waits for the levels with failures only, and says when they still fail.
    update(&mut s, Msg::Tick(fx::at(fx::NOW + 20)));
    update(&mut s, key('R'));
    assert_eq!(s.uploads.asked.as_ref().map(|a| a.waiting.clone()), Some(vec!["L2".to_string()]));
    l2.failed = 0;
    l2.failures.clear();
    l2.last_pass_unix = Some(asked + 25);
    update(&mut s, Msg::Tick(fx::at(fx::NOW + 25)));
    update(&mut s, sample(vec![l2, l3], vec![]));
    assert_eq!(
        s.status_line().map(|l| (l.text.as_str(), l.error)),
        Some(("retry: L2 up to date, nothing new to store", false))
    );

    // An answer no pass brings is dropped after a while, not said late.
    update(&mut s, key('s'));
    update(&mut s, Msg::Tick(fx::at(fx::NOW + 25 + 16 * 60)));
    update(&mut s, idle());
    assert!(s.uploads.asked.is_none() && s.status_line().is_none());
}

/// `^r` is answered in the status line.
#[test]
fn refresh_is_answered() {
    let mut s = with_uploads(vec![idle()]);
    assert_eq!(update(&mut s, fx::ctrl('r')), vec![Effect::RefreshNow]);
    let st = s.status_line().expect("answered");
    assert!(st.text.starts_with("sampling every collector now"), "{st:?}");
    assert!(fx::screen_text(&s, 80, 24).lines().last().unwrap_or_default().contains("› sampling every collector"));
}

/// Beside another console's engine the panel says whose it is: a console, not a daemon.
#[test]
fn another_consoles_engine_is_named_a_console() {
    let msg = Msg::Sync(Box::new(SyncSample {
        source: EngineSource::OtherConsole { pid: 4242 },
        status: SyncStatus { engine_pid: Some(4242), levels: vec![level("L2", "drive", 90)], ..SyncStatus::default() },
        queue: vec![],
    }));
    let s = with_uploads(vec![msg]);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("Uploads · console pid 4242"), "{text}");
    assert!(!text.contains("daemon"), "{text}");
}

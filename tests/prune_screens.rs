//! The prune plan screen, the typed override, the prune job's progress, the disk guard
//! banner and automatic pruning: `update` with fixture messages, and whole screens.

mod support;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use opsconsole::app::prune::CopyMark;
use opsconsole::app::{Effect, Msg, Overlay, update};
use opsconsole::checkpoints::executor::{ItemResult, PruneReport};
use opsconsole::checkpoints::plan::{ItemKind, PlanAction, PlanInputs, PlanItem, Reason, summarize};
use opsconsole::checkpoints::roots::{RootDir, Unit, UnitKind};
use opsconsole::checkpoints::{Checkpoint, CheckpointsSample, DiskSpace, ItemOutcome, PrunePlan, PruneProgress};
use opsconsole::config::Config;
use opsconsole::disk::usage::UsageBreakdown;
use ratatui::crossterm::event::KeyCode;
use support::fixtures::{self as fx, at, code, key};

const MB: u64 = 1_000_000;

fn item(name: &str, step: u64, bytes: u64, action: PlanAction, reason: Reason, over: bool) -> PlanItem {
    let root = RootDir {
        path: PathBuf::from("/home/me/rsm/checkpoints"),
        anchor: PathBuf::from("/home/me/rsm"),
        rel: PathBuf::from("checkpoints"),
        pattern: "checkpoints".into(),
    };
    PlanItem {
        path: root.path.join(name),
        rel_path: format!("checkpoints/{name}"),
        kind: ItemKind::Checkpoint,
        unit_kind: UnitKind::File,
        step: Some(step),
        bytes,
        freeable_bytes: bytes,
        action,
        reason,
        confirmed_on: if over || reason == Reason::Unconfirmed { vec![] } else { vec!["L3".into()] },
        unconfirmed_override: over,
        note: None,
        unit: Unit {
            root,
            rel_in_root: PathBuf::from(name),
            kind: UnitKind::File,
            bytes,
            freeable_bytes: bytes,
            mtime: at(fx::NOW - 3600),
            dev: 1,
            ino: step,
        },
    }
}

/// A plan over v68's checkpoints on a 100 GB disk at 93%.
fn plan(allow: bool) -> PrunePlan {
    use PlanAction::*;
    let g = 6_700 * MB;
    let mut items = vec![
        item("v68_step_1000.pt", 1000, g, Delete, Reason::BeyondKeepLast, false),
        item("v68_step_2000.pt", 2000, g, Keep, Reason::Milestone, false),
        item("v68_step_3000.pt", 3000, g, Delete, Reason::BeyondKeepLast, false),
    ];
    items.push(if allow {
        item("v68_step_4000.pt", 4000, g, Delete, Reason::BeyondKeepLast, true)
    } else {
        item("v68_step_4000.pt", 4000, g, Keep, Reason::Unconfirmed, false)
    });
    items.extend([
        item("v68_step_5000.pt", 5000, g, Keep, Reason::WithinKeepLast, false),
        item("v68_step_6000.pt", 6000, g, Keep, Reason::WithinKeepLast, false),
        item("v68_step_7000.pt", 7000, g, Keep, Reason::Newest, false),
        item("v68_step_7100.pt", 7100, 2_100 * MB, Keep, Reason::Writing, false),
    ]);
    let inputs = PlanInputs {
        metric_by_step: Default::default(),
        allow_unconfirmed: allow,
        disks: vec![DiskSpace {
            path: PathBuf::from("/home/me/rsm/checkpoints"),
            dev: 1,
            used_bytes: 93_000 * MB,
            available_bytes: 7_000 * MB,
        }],
    };
    summarize(items, &inputs, at(fx::NOW))
}

fn both(name: &str, state: &opsconsole::app::AppState) {
    insta::assert_snapshot!(format!("{name}_80x24"), fx::render(state, 80, 24).backend());
    insta::assert_snapshot!(format!("{name}_110x32"), fx::render(state, 110, 32).backend());
    insta::assert_snapshot!(format!("{name}_160x48"), fx::render(state, 160, 48).backend());
}

#[test]
fn each_filesystem_is_projected_with_what_is_freed_on_it() {
    use PlanAction::*;
    let g = 1_000 * MB;
    let mut on_data = item("v68_step_1000.pt", 1000, 3 * g, Delete, Reason::BeyondKeepLast, false);
    on_data.unit.dev = 2;
    let items = vec![
        item("v68_step_2000.pt", 2000, g, Delete, Reason::BeyondKeepLast, false),
        item("v68_step_3000.pt", 3000, g, Keep, Reason::Newest, false),
        on_data,
    ];
    let disk = |path: &str, dev, used, avail| DiskSpace {
        path: PathBuf::from(path),
        dev,
        used_bytes: used * g,
        available_bytes: avail * g,
    };
    let inputs = PlanInputs {
        disks: vec![
            disk("/home/me/rsm/checkpoints", 1, 80, 20),
            disk("/data/ckpt", 2, 95, 5),
            disk("/mnt/x", 3, 10, 90),
        ],
        ..Default::default()
    };
    let plan = summarize(items, &inputs, at(fx::NOW));
    let fs: Vec<(&str, u64)> =
        plan.filesystems.iter().map(|f| (f.disk.path.to_str().unwrap(), f.bytes_to_free / g)).collect();
    assert_eq!(fs, [("/data/ckpt", 3), ("/home/me/rsm/checkpoints", 1), ("/mnt/x", 0)], "fullest first");
    assert_eq!(plan.fill_before, Some(0.95), "the headline is the fullest filesystem");
    assert_eq!(plan.fill_after, Some(0.92));
    assert_eq!(
        plan.fill_text(std::path::Path::new("/home/me/rsm"), "->").as_deref(),
        Some("/data/ckpt 95.0% -> 92.0%, checkpoints 80.0% -> 79.0%, /mnt/x 10.0% -> 10.0%")
    );
    let one = summarize(vec![], &PlanInputs { disks: vec![disk("/d", 1, 50, 50)], ..Default::default() }, at(fx::NOW));
    assert_eq!(one.fill_text(std::path::Path::new("/"), "->").as_deref(), Some("disk 50.0% -> 50.0%"));
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["filesystems"][0]["disk"]["path"], "/data/ckpt");
    assert_eq!(json["filesystems"][0]["bytes_to_free"], 3 * g);
}

#[test]
fn reason_keys_match_the_json() {
    for r in [
        Reason::Newest,
        Reason::Writing,
        Reason::WithinKeepLast,
        Reason::Milestone,
        Reason::Best,
        Reason::MetricUnknown,
        Reason::Unconfirmed,
        Reason::BeyondKeepLast,
        Reason::LogTooOld,
        Reason::LogTooLarge,
    ] {
        assert_eq!(serde_json::to_value(r).unwrap(), r.key());
    }
}

#[test]
fn p_opens_the_plan_screen_and_y_runs_it_as_a_job() {
    let mut s = fx::state();
    update(&mut s, fx::disks(vec![fx::disk("/", 93.0, &["workspace", "checkpoints", "root"])]));
    assert_eq!(update(&mut s, key('p')), vec![Effect::PlanPrune { allow_unconfirmed: false }]);
    assert_eq!(s.overlay, Overlay::Prune);
    assert!(fx::screen_text(&s, 80, 24).contains("planning…"));
    // `y` before the plan arrives does nothing.
    assert_eq!(update(&mut s, key('y')), vec![]);
    update(&mut s, Msg::PrunePlan(Box::new(plan(false))));
    both("prune_plan", &s);
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("delete 2 of 8 · free 13.4 GB · disk 93.0% → 79.6%"), "{text}");
    assert!(text.contains("1 kept: not confirmed on another level"), "{text}");

    assert_eq!(update(&mut s, key('y')), vec![Effect::RunPrune]);
    assert!(s.prune.job.as_ref().is_some_and(|j| j.running));
    assert_eq!(update(&mut s, key('y')), vec![], "no second job while one runs");
    update(&mut s, Msg::Prune(PruneProgress::Started { items: 2, bytes_to_free: 13_400 * MB }));
    let fx1 = update(
        &mut s,
        Msg::Prune(PruneProgress::Progress {
            done: 1,
            total: 2,
            freed_bytes: 6_700 * MB,
            item: ItemResult {
                path: PathBuf::from("/home/me/rsm/checkpoints/v68_step_1000.pt"),
                bytes: 6_700 * MB,
                outcome: ItemOutcome::Deleted,
            },
        }),
    );
    assert_eq!(fx1, vec![Effect::RefreshNow], "space returns as the job goes");
    both("prune_running", &s);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("running 1/2 · freed 6.7 GB"), "{text}");
    let done = update(
        &mut s,
        Msg::Prune(PruneProgress::Done {
            report: PruneReport { deleted: 2, freed_bytes: 13_400 * MB, ..Default::default() },
        }),
    );
    assert_eq!(done, vec![Effect::RefreshNow, Effect::PlanPrune { allow_unconfirmed: false }]);
    assert!(!s.prune.job.as_ref().unwrap().running);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("freed 13.4 GB · deleted 2"), "{text}");
    update(&mut s, code(KeyCode::Esc));
    assert_eq!(s.overlay, Overlay::None);
}

#[test]
fn the_u_override_ends_with_the_run_it_was_given_to() {
    let mut s = fx::state();
    update(&mut s, fx::typical_disks());
    update(&mut s, key('p'));
    update(&mut s, Msg::PrunePlan(Box::new(plan(false))));
    assert_eq!(update(&mut s, key('u')), vec![Effect::PlanPrune { allow_unconfirmed: true }]);
    update(&mut s, Msg::PrunePlan(Box::new(plan(false))));
    assert!(s.prune.screen.allow_unconfirmed);
    // Nothing in this plan depends on the override: it says so, without capitals.
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("unconfirmed copies included: none in this plan · u to turn off"), "{text}");
    assert!(!text.contains("INCLUDING"), "{text}");
    assert_eq!(update(&mut s, key('y')), vec![Effect::RunPrune]);
    let done = update(
        &mut s,
        Msg::Prune(PruneProgress::Done {
            report: PruneReport { deleted: 2, freed_bytes: 13_400 * MB, ..Default::default() },
        }),
    );
    assert_eq!(
        done,
        vec![Effect::RefreshNow, Effect::PlanPrune { allow_unconfirmed: false }],
        "the next plan is the safe one"
    );
    assert!(!s.prune.screen.allow_unconfirmed);
    // Closed and opened again: still off.
    update(&mut s, code(KeyCode::Esc));
    assert_eq!(update(&mut s, key('p')), vec![Effect::PlanPrune { allow_unconfirmed: false }]);
}

#[test]
fn shift_c_stops_a_running_prune_and_the_summary_says_it_stopped() {
    let mut s = fx::state();
    update(&mut s, fx::typical_disks());
    // Nothing runs: the key says so and asks the executor for nothing.
    assert_eq!(update(&mut s, key('C')), vec![]);
    assert_eq!(s.status_line().map(|l| l.text.as_str()), Some("no prune is running"));
    update(&mut s, key('p'));
    update(&mut s, Msg::PrunePlan(Box::new(plan(false))));
    assert_eq!(update(&mut s, key('y')), vec![Effect::RunPrune]);
    update(&mut s, Msg::Prune(PruneProgress::Started { items: 2, bytes_to_free: 13_400 * MB }));
    // The answer to the first `C` has expired: the footer shows the keys again.
    update(&mut s, Msg::Tick(at(fx::NOW + 7)));
    assert!(fx::screen_text(&s, 80, 24).contains(" C  stop   u  include unconfirmed"), "the key is offered");
    assert_eq!(update(&mut s, key('C')), vec![Effect::CancelPrune]);
    assert!(fx::screen_text(&s, 80, 24).contains("stopping the prune after the item in hand"));
    update(
        &mut s,
        Msg::Prune(PruneProgress::Done {
            report: PruneReport { deleted: 1, freed_bytes: 6_700 * MB, cancelled: true, ..Default::default() },
        }),
    );
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("stopped: freed 6.7 GB · deleted 1"), "{text}");
    // From the main screen too.
    update(&mut s, code(KeyCode::Esc));
    update(&mut s, key('y'));
    assert_eq!(update(&mut s, key('C')), vec![], "nothing runs any more");
}

#[test]
fn a_copy_that_failed_verification_is_kept_and_the_screen_says_why() {
    let mut s = fx::state();
    update(&mut s, fx::typical_disks());
    update(&mut s, key('p'));
    update(&mut s, Msg::PrunePlan(Box::new(plan(false))));
    update(&mut s, key('y'));
    update(&mut s, Msg::Prune(PruneProgress::Started { items: 2, bytes_to_free: 13_400 * MB }));
    let why = "kept: L3 the copy on remote 'hf' failed verification: it is missing (queued to be stored again)";
    let kept = ItemResult {
        path: PathBuf::from("/home/me/rsm/checkpoints/v68_step_1000.pt"),
        bytes: 6_700 * MB,
        outcome: ItemOutcome::Skipped(why.into()),
    };
    update(&mut s, Msg::Prune(PruneProgress::Progress { done: 1, total: 2, freed_bytes: 0, item: kept.clone() }));
    update(
        &mut s,
        Msg::Prune(PruneProgress::Done {
            report: PruneReport {
                deleted: 1,
                skipped: 1,
                freed_bytes: 6_700 * MB,
                items: vec![kept],
                ..Default::default()
            },
        }),
    );
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("freed 6.7 GB · deleted 1 · skipped 1 (v68_step_1000.pt: kept: L3 the copy"), "{text}");
    let narrow = fx::screen_text(&s, 80, 24);
    assert!(narrow.contains("skipped 1 (v68_step_1000.pt: kept: L3 the copy on"), "{narrow}");
    assert!(narrow.contains("remote 'hf' failed verification: it is missing"), "wrapped, not cut: {narrow}");
    // The status line (the footer's row) carries the result with its reason too, and
    // in red: something was kept after all.
    let st = s.status_line().expect("the prune result is answered");
    assert!(
        st.error && st.text.starts_with("prune: freed 6.7 GB") && st.text.contains("failed verification"),
        "{st:?}"
    );
    // The next plan keeps it as unconfirmed and says why beside it.
    let mut p = plan(false);
    p.items[0].action = PlanAction::Keep;
    p.items[0].reason = Reason::Unconfirmed;
    p.items[0].note = Some("the copy on remote 'hf' failed verification: it is missing; it is stored again".into());
    update(&mut s, Msg::PrunePlan(Box::new(p)));
    both("prune_plan_verification_failed", &s);
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("v68_step_1000.pt · the copy on remote 'hf' failed verification: it is missing"), "{text}");
    assert!(fx::screen_text(&s, 80, 24).contains("not confirmed on another level (1 failed verification)"));
}

#[test]
fn unconfirmed_deletion_needs_the_word_typed() {
    let mut s = fx::state();
    update(&mut s, fx::typical_disks());
    update(&mut s, key('p'));
    update(&mut s, Msg::PrunePlan(Box::new(plan(false))));
    assert_eq!(update(&mut s, key('u')), vec![Effect::PlanPrune { allow_unconfirmed: true }]);
    update(&mut s, Msg::PrunePlan(Box::new(plan(true))));
    // `y` asks for the word instead of running.
    assert_eq!(update(&mut s, key('y')), vec![]);
    assert_eq!(s.prune.screen.typing.as_deref(), Some(""));
    for c in "delet".chars() {
        assert_eq!(update(&mut s, key(c)), vec![], "typing never triggers an action");
    }
    assert_eq!(update(&mut s, code(KeyCode::Enter)), vec![], "a wrong word does not run");
    assert!(s.prune.job.is_none());
    for c in "yes".chars() {
        update(&mut s, key(c));
    }
    update(&mut s, code(KeyCode::Backspace));
    update(&mut s, code(KeyCode::Backspace));
    update(&mut s, code(KeyCode::Backspace));
    for c in "delete".chars() {
        update(&mut s, key(c));
    }
    both("prune_override", &s);
    // The footer names what the prompt reads, not the plan's keys it is not reading.
    let footer = fx::screen_text(&s, 80, 24).lines().last().unwrap_or_default().to_string();
    assert!(footer.contains("enter  delete 1 unconfirmed") && footer.contains("esc  back to the plan"), "{footer}");
    assert!(!footer.contains("run") && !footer.contains("include"), "no plan keys while typing: {footer}");
    assert_eq!(update(&mut s, code(KeyCode::Enter)), vec![Effect::RunPrune]);
    assert!(s.prune.job.as_ref().is_some_and(|j| j.running));
}

#[test]
fn escape_leaves_typing_first_then_the_screen() {
    let mut s = fx::state();
    update(&mut s, key('p'));
    update(&mut s, key('u'));
    update(&mut s, Msg::PrunePlan(Box::new(plan(true))));
    update(&mut s, key('y'));
    update(&mut s, key('q'));
    assert!(!s.should_quit, "q is text while typing");
    update(&mut s, code(KeyCode::Esc));
    assert_eq!(s.prune.screen.typing, None);
    assert_eq!(s.overlay, Overlay::Prune);
    update(&mut s, code(KeyCode::Esc));
    assert_eq!(s.overlay, Overlay::None);
}

/// Six checkpoints of 6.4 GB, the newest still being written, and a usage breakdown.
fn sample() -> CheckpointsSample {
    let checkpoints: Vec<Checkpoint> = plan(false)
        .items
        .iter()
        .skip(2)
        .map(|i| Checkpoint {
            path: i.path.clone(),
            rel_path: i.rel_path.clone(),
            kind: UnitKind::File,
            step: i.step,
            series: "checkpoints/v68_step_#.pt".into(),
            bytes: 6_400 * MB,
            freeable_bytes: 6_400 * MB,
            mtime: at(fx::NOW - 600),
            age_secs: 600,
            writing: i.reason == Reason::Writing,
            writing_why: None,
            confirmed_on: i.confirmed_on.clone(),
            unit: i.unit.clone(),
        })
        .collect();
    CheckpointsSample {
        taken_unix: fx::NOW,
        total_bytes: checkpoints.iter().map(|c| c.bytes).sum(),
        checkpoints,
        skipped: vec![],
        usage: UsageBreakdown {
            checkpoints_bytes: 38_400 * MB,
            logs_bytes: 1_200 * MB,
            data_bytes: 20_000 * MB,
            other_bytes: 12_400 * MB,
            total_bytes: 72_000 * MB,
            files: 1200,
            dirs: 80,
            unreadable: 0,
        },
    }
}

fn disk_at(used_gb: f64) -> Msg {
    let total = 100_000 * MB;
    let used = (used_gb * 1000.0) as u64 * MB;
    let mut d = fx::disk("/", used as f64 * 100.0 / total as f64, &["workspace", "checkpoints", "root"]);
    d.used_bytes = used;
    d.available_bytes = total - used;
    fx::disks(vec![d])
}

#[test]
fn the_banner_shows_time_to_full_under_an_hour() {
    let mut s = fx::state();
    // 60 GB -> 72 GB over 20 minutes: 36 GB/h, 28 GB left: full in ~47 min.
    for i in 0..=20u64 {
        update(&mut s, Msg::Tick(at(fx::NOW + i * 60)));
        update(&mut s, disk_at(60.0 + 0.6 * i as f64));
    }
    let f = s.prune.forecast("/").copied().unwrap();
    let rate = f.growth_bytes_per_hour.unwrap();
    assert!((rate - 36_000.0 * MB as f64).abs() < 1e6, "{rate}");
    assert_eq!(f.seconds_to_full, Some(2800));
    update(&mut s, Msg::Checkpoints(Box::new(sample())));
    both("time_to_full_banner", &s);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("⚠ / will be full in 46m40s — p prune"), "{text}");
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("6 checkpoints 38.4 GB (1 writing)"), "{text}");
    assert!(text.contains("ok       full 46m40s · "), "{text}");
    // A prune that drops usage does not hide the growth: no banner only when it slows.
    update(&mut s, Msg::Tick(at(fx::NOW + 21 * 60)));
    update(&mut s, disk_at(30.0));
    assert!(s.prune.forecast("/").unwrap().growth_bytes_per_hour.unwrap() > 30_000.0 * MB as f64);
    assert!(!fx::screen_text(&s, 80, 24).contains("will be full in 4"), "70 GB free now: more than an hour");
}

#[test]
fn auto_prune_runs_once_when_a_disk_crosses_critical() {
    let mut cfg = Config::default();
    let mut s = fx::state_with(cfg.clone());
    assert_eq!(update(&mut s, disk_at(95.0)), vec![], "prune.auto is off by default");
    cfg.prune.auto = true;
    let mut s = fx::state_with(cfg);
    assert_eq!(update(&mut s, disk_at(85.0)), vec![]);
    assert_eq!(update(&mut s, disk_at(91.0)), vec![Effect::AutoPrune]);
    assert!(s.prune.job.as_ref().is_some_and(|j| j.auto && j.running));
    assert_eq!(update(&mut s, disk_at(92.0)), vec![], "not while it runs");
    update(&mut s, Msg::Prune(PruneProgress::Started { items: 3, bytes_to_free: 20_000 * MB }));
    assert!(s.status_line().is_some_and(|n| n.text.contains("auto-prune started")));
    update(&mut s, Msg::Prune(PruneProgress::Done { report: PruneReport { deleted: 3, ..Default::default() } }));
    let st = s.status_line().expect("the auto-prune result is said");
    assert_eq!(st.text, "auto-prune: freed 0 B · deleted 3 · skipped 0 · failed 0");
    assert!(!st.error);
    // It expires like every answer.
    update(&mut s, Msg::Tick(at(fx::NOW + 7)));
    assert!(s.status_line().is_none() && s.status.is_none());
    assert_eq!(update(&mut s, disk_at(92.0)), vec![], "cooldown");
    update(&mut s, Msg::Tick(at(fx::NOW + 601)));
    assert_eq!(update(&mut s, disk_at(92.0)), vec![Effect::AutoPrune], "after the cooldown, still critical");
    let _ = SystemTime::now() + Duration::from_secs(1);
}

#[test]
fn history_kept_on_disk_gives_a_rate_from_the_first_sample() {
    use opsconsole::disk::growth::UsageSample;
    let mut s = fx::state();
    let mut seed = std::collections::BTreeMap::new();
    seed.insert(
        "/".to_string(),
        (0..=10u64)
            .map(|i| UsageSample { at: at(fx::NOW - 600 + i * 60), used_bytes: 50_000 * MB + i * 100 * MB })
            .collect::<Vec<_>>(),
    );
    s.prune.seed_history(seed);
    update(&mut s, disk_at(51.0));
    let rate = s.prune.forecast("/").and_then(|f| f.growth_bytes_per_hour).unwrap();
    assert!((rate - 6_000.0 * MB as f64).abs() < 1e7, "{rate}");
}

/// Issue 15 item 4: the time to full has priority over the roles at every width (80, 110
/// and 160 columns): a disk growing 10 GB/h with 60 GB left says `full 6h00m` in the Disk
/// panel (no banner: more than an hour) beside the free space, then the growth where it
/// fits (110 columns and wider), and the roles take what is left.
#[test]
fn time_to_full_wins_over_the_roles_at_every_width() {
    let mut s = fx::state();
    // 30 GB -> 40 GB over an hour: 10 GB/h, 60 GB left: full in 6h.
    for i in 0..=60u64 {
        update(&mut s, Msg::Tick(at(fx::NOW + i * 60)));
        update(&mut s, disk_at(30.0 + i as f64 / 6.0));
    }
    assert_eq!(s.prune.forecast("/").and_then(|f| f.seconds_to_full), Some(6 * 3600));
    for (w, h) in [(80, 24), (110, 32), (160, 48)] {
        let text = fx::screen_text(&s, w, h);
        let row = text.lines().find(|l| l.contains("full 6h00m")).unwrap_or_else(|| panic!("{w}x{h}:\n{text}"));
        assert!(row.contains("60.0 GB free") || w >= 160, "{w}x{h}: free space stays: {row}");
        assert!(row.contains("+10.0 GB/h") || w < 110, "{w}x{h}: the growth fits too: {row}");
        assert!(!text.contains("will be full"), "no banner beyond an hour");
    }
    let wide = fx::screen_text(&s, 160, 48);
    assert!(wide.contains("ok       full 6h00m · +10.0 GB/h│"), "{wide}");
    both("time_to_full_over_roles", &s);
    insta::assert_snapshot!("time_to_full_over_roles_110x32", fx::render(&s, 110, 32).backend());
}

/// A config with both levels' remotes configured (Drive for L2, the Hub for L3).
fn config_with_remotes() -> Config {
    let text = "[remotes.drive]\nkind = \"drive\"\nfolder_id = \"1AbCdEfGhIjKlMnOpQrStUvWxYz012345\"\n\n\
                [remotes.hf]\nkind = \"hf\"\nrepo_id = \"me/rsm-weights\"\n";
    Config::from_toml(text, std::path::Path::new("/home/me/rsm/opsconsole.toml")).expect("config")
}

/// The plan shows each item's copies per level: `✓` confirmed (L3 for the kept and
/// deleted checkpoints), `✗` where the level takes it and has no copy (the unconfirmed
/// one), `·` where the level does not take such files (L2 holds no weights), `—` for a
/// level that is not configured.
#[test]
fn the_plan_shows_each_items_confirmations_per_level() {
    let mut s = fx::state_with(config_with_remotes());
    update(&mut s, fx::typical_disks());
    update(&mut s, key('p'));
    update(&mut s, Msg::PrunePlan(Box::new(plan(false))));
    use opsconsole::app::prune::CopyMark::*;
    let marks: Vec<[CopyMark; 2]> = s.prune.screen.copies.iter().map(|c| [c[0].1, c[1].1]).collect();
    assert_eq!(marks[0], [NotTaken, Confirmed], "v68_step_1000.pt: on L3");
    assert_eq!(marks[3], [NotTaken, Missing], "v68_step_4000.pt: unconfirmed");
    both("prune_copies", &s);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("step L2 L3 path"), "{text}");
    assert!(text.contains("1000 ·  ✓  checkpoints/v68_step_1000.pt"), "{text}");
    assert!(text.contains("4000 ·  ✗  checkpoints/v68_step_4000.pt"), "{text}");

    // Without remotes an unconfirmed item's levels are `—` (not configured), not `✗`.
    let mut s = fx::state();
    update(&mut s, key('p'));
    update(&mut s, Msg::PrunePlan(Box::new(plan(false))));
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("4000 —  —  checkpoints/v68_step_4000.pt"), "{text}");
}

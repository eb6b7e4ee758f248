//! The checklist screen and the idle banner through `update` (no terminal, a fake clock)
//! and whole-screen snapshots at 80x24 and 160x48: every item passing, several failing
//! (one overridden), the idle banner with its cost.

mod support;

use std::collections::BTreeSet;

use opsconsole::app::checklist::{ShutdownEvent, ShutdownProgress};
use opsconsole::app::{AppState, Effect, Msg, Overlay, update};
use opsconsole::checklist::shutdown::Outcome;
use opsconsole::checklist::{Fix, Item, Report};
use opsconsole::config::Config;
use opsconsole::gpu::{GpuDevice, GpuProcess, GpuSample, NvmlStatus};
use ratatui::crossterm::event::KeyCode;
use support::fixtures::{self as fx, NOW, code, key};

const GIB: u64 = 1 << 30;

fn items_all_pass() -> Vec<Item> {
    vec![
        Item::pass(
            "training",
            "no training process running",
            "no GPU process; nothing writes experiments/v68/logs/train.log",
        ),
        Item::pass(
            "uploads",
            "",
            "L2 drive: nothing waiting, last ok 41m ago · L3 hf: nothing waiting, last ok 12m ago",
        ),
        Item::pass("weights", "", "L3 hf: checkpoints/v68_step_12000.pt confirmed 12m ago, copy verified"),
        Item::pass(
            "logs",
            "",
            "L2 drive: experiments/v68/logs/train.log confirmed 41m ago, copy verified; journal.md confirmed 41m ago, copy verified",
        ),
        Item::pass("git", "", "clean; main up to date with origin/main"),
        Item::pass("journal", "", "journal.md changed 18m after the run's last write (train.log)"),
        Item::pass("requirements", "", "frozen_requirements.txt is not older than requirements.txt"),
        Item::pass("disks", "", "/ 71%, /data 40% (warn at 80%)"),
        Item::pass("jobs", "", "none running (the sync engine, pid 4242, is idle)"),
    ]
}

fn report(mut items: Vec<Item>) -> Report {
    for i in &mut items {
        if i.title.is_empty() {
            i.title = opsconsole::checklist::items::title(&i.name).into();
        }
    }
    Report::new(NOW - 2, "/home/me/rsm".into(), items)
}

fn several_fail() -> Report {
    let mut items = items_all_pass();
    items[0] = Item::fail(
        "training",
        "",
        "running: pid 4121 python train.py --config v68.yaml (GPU 0 (16.9 GB), writes train.log)",
        Fix::words("wait for it to finish, or stop it (from the GPU panel); or type `training` to accept that it dies"),
    );
    items[1] = Item::fail(
        "uploads",
        "",
        "L2 drive: nothing waiting, last ok 41m ago · L3 hf: 1 waiting (6.7 GB), uploading checkpoints/v68_step_12400.pt",
        Fix::words("store them now").action("sync_now").command("opsconsole sync --once"),
    );
    items[2] = Item::fail(
        "weights",
        "",
        "L3 hf: checkpoints/v68_step_12400.pt is being stored (4.1 GB/6.7 GB)",
        Fix::words("store it now (a growing log is stored as a snapshot)")
            .action("sync_now")
            .command("opsconsole sync --once"),
    );
    items[4] = Item::fail(
        "git",
        "",
        "2 changed (train.py, models/lane.py); 3 commits not pushed to origin/main",
        Fix::words("commit (or .gitignore) them; `git push`").command("git push"),
    );
    items[6] = Item::off("requirements", "", "turned off (checklist.requirements = false)");
    items.push(Item::fail(
        "smoke",
        "`pytest -q tests/smoke` exits 0",
        "exit 1: FAILED tests/smoke/test_shapes.py::test_lane - AssertionError",
        Fix::words("run `pytest -q tests/smoke` and fix what it says").command("pytest -q tests/smoke"),
    ));
    report(items)
}

fn with_command() -> AppState {
    let mut cfg = Config::default();
    cfg.shutdown.command = "sudo shutdown -h now".into();
    let mut s = fx::state_with(cfg);
    update(&mut s, fx::typical_disks());
    s
}

fn open(s: &mut AppState, r: Report) {
    let fx_ = update(s, key('x'));
    assert_eq!(fx_, vec![Effect::Checklist { live: true }]);
    assert_eq!(s.overlay, Overlay::Checklist);
    update(s, Msg::Checklist(Box::new(r)));
}

fn type_text(s: &mut AppState, t: &str) -> Vec<Effect> {
    let mut out = Vec::new();
    for c in t.chars() {
        out.extend(update(s, key(c)));
    }
    out
}

#[test]
fn the_open_screen_checks_again_on_the_clock_and_ctrl_r_checks_live() {
    let mut s = with_command();
    open(&mut s, report(items_all_pass()));
    assert!(!s.checklist.gathering);
    assert_eq!(update(&mut s, Msg::Tick(fx::at(NOW + 4))), vec![], "not yet: checklist.refresh is 5s");
    assert_eq!(update(&mut s, Msg::Tick(fx::at(NOW + 5))), vec![Effect::Checklist { live: false }]);
    assert_eq!(update(&mut s, Msg::Tick(fx::at(NOW + 11))), vec![], "one gather at a time");
    update(&mut s, Msg::Checklist(Box::new(report(items_all_pass()))));
    assert_eq!(update(&mut s, Msg::Tick(fx::at(NOW + 11))), vec![Effect::Checklist { live: false }]);
    update(&mut s, Msg::Checklist(Box::new(report(items_all_pass()))));
    assert_eq!(update(&mut s, fx::ctrl('r')), vec![Effect::Checklist { live: true }]);
    // Closed: no more gathers.
    update(&mut s, Msg::Checklist(Box::new(report(items_all_pass()))));
    update(&mut s, code(KeyCode::Esc));
    assert_eq!(s.overlay, Overlay::None);
    assert_eq!(update(&mut s, Msg::Tick(fx::at(NOW + 60))), vec![]);
}

#[test]
fn shutdown_needs_every_failing_item_typed_then_a_yes() {
    let mut s = with_command();
    open(&mut s, several_fail());
    // `S` with failures: it asks for their names, nothing runs.
    assert_eq!(update(&mut s, key('S')), vec![]);
    assert_eq!(s.checklist.typing.as_deref(), Some(""));
    assert!(s.checklist.message.as_deref().unwrap_or("").contains("training, uploads, weights, git, smoke"));
    // A name that does not fail and a name that does not exist are refused.
    type_text(&mut s, "journal nosuch git");
    assert_eq!(update(&mut s, code(KeyCode::Enter)), vec![]);
    assert_eq!(s.checklist.overrides, BTreeSet::from(["git".to_string()]));
    let m = s.checklist.message.clone().unwrap_or_default();
    assert!(
        m.contains("overridden: git")
            && m.contains("`journal` does not fail")
            && m.contains("no item is named `nosuch`"),
        "{m}"
    );
    assert!(m.contains("still failing: training, uploads, weights, smoke"), "{m}");
    assert!(!s.checklist.confirming);
    // `y` outside the dialog does nothing; ctrl-c leaves a prompt without typing `c`.
    assert_eq!(update(&mut s, key('y')), vec![]);
    update(&mut s, key('o'));
    update(&mut s, fx::ctrl('c'));
    assert_eq!(s.checklist.typing, None);
    // `o` to type the rest.
    update(&mut s, key('o'));
    type_text(&mut s, "training uploads,weights smoke");
    update(&mut s, code(KeyCode::Enter));
    assert!(s.checklist.unresolved().is_empty());
    assert!(!s.checklist.confirming, "typing with `o` does not ask to shut down");
    assert_eq!(update(&mut s, key('S')), vec![]);
    assert!(s.checklist.confirming);
    // `n` backs out; `S` then `y` asks the runner, with the overrides.
    update(&mut s, key('n'));
    assert!(!s.checklist.confirming);
    update(&mut s, key('S'));
    let want: BTreeSet<String> =
        ["git", "smoke", "training", "uploads", "weights"].iter().map(|x| x.to_string()).collect();
    assert_eq!(update(&mut s, key('y')), vec![Effect::Shutdown { overrides: want.clone() }]);
    assert_eq!(s.checklist.shutdown, Some(ShutdownProgress::Checking));
    // A second request while one is under way is refused.
    update(&mut s, key('S'));
    assert_eq!(update(&mut s, key('y')), vec![]);

    // The runner found a new failure on its fresh check: not shut down.
    let mut fresh = several_fail();
    fresh.items[5] =
        Item::fail("journal", "", "journal.md last changed 2h before the run's last write", Fix::words("write"));
    let fresh = Report::new(fresh.taken_unix, fresh.workspace.clone(), fresh.items);
    update(
        &mut s,
        Msg::Shutdown(ShutdownEvent::Decided {
            report: Box::new(fresh),
            outcome: Outcome::Refused { failing: vec!["journal".into()] },
        }),
    );
    assert_eq!(s.checklist.shutdown, None);
    assert!(s.checklist.message.as_deref().unwrap_or("").contains("not shut down: journal failing"));
    assert_eq!(s.checklist.unresolved(), ["journal"]);

    // Started, then the command ended.
    let report_ok = several_fail();
    update(
        &mut s,
        Msg::Shutdown(ShutdownEvent::Decided {
            report: Box::new(report_ok),
            outcome: Outcome::Started { pid: 5151, overridden: want.iter().cloned().collect() },
        }),
    );
    assert!(matches!(s.checklist.shutdown, Some(ShutdownProgress::Started { pid: 5151, .. })));
    assert!(s.notice.as_deref().unwrap_or("").contains("shutting down with git, smoke"), "{:?}", s.notice);
    update(&mut s, Msg::Shutdown(ShutdownEvent::Exited { pid: 5151, code: Some(1) }));
    assert!(s.checklist.message.as_deref().unwrap_or("").contains("FAILED (exit 1)"));
}

#[test]
fn without_a_command_the_screen_says_what_to_set_and_runs_nothing() {
    let mut s = fx::state();
    open(&mut s, report(items_all_pass()));
    assert_eq!(update(&mut s, key('S')), vec![]);
    assert!(!s.checklist.confirming);
    assert!(s.checklist.message.as_deref().unwrap_or("").contains("set [shutdown] command in opsconsole.toml"));
    assert_eq!(update(&mut s, key('y')), vec![]);
    // Every item passing: `S` asks once, `y` runs with no override.
    let mut s = with_command();
    open(&mut s, report(items_all_pass()));
    update(&mut s, key('S'));
    assert!(s.checklist.confirming);
    assert_eq!(update(&mut s, code(KeyCode::Enter)), vec![Effect::Shutdown { overrides: BTreeSet::new() }]);
}

#[test]
fn fixes_work_from_the_screen() {
    let mut s = with_command();
    open(&mut s, several_fail());
    let e = update(&mut s, key('s'));
    assert!(e.contains(&Effect::Sync(opsconsole::sync::Command::SyncNow(None))), "{e:?}");
    assert!(e.contains(&Effect::Checklist { live: false }), "{e:?}");
    update(&mut s, Msg::Checklist(Box::new(several_fail())));
    let e = update(&mut s, key('p'));
    assert_eq!(s.overlay, Overlay::Prune);
    assert_eq!(e, vec![Effect::PlanPrune { allow_unconfirmed: false }]);
}

fn gpu(t: u64, util: u32, procs: Vec<GpuProcess>) -> Msg {
    Msg::Gpu(GpuSample {
        taken_at_unix_ms: t * 1000,
        nvml: NvmlStatus::Ok { driver_version: "550.54.15".into() },
        gpus: vec![GpuDevice {
            index: 0,
            name: "NVIDIA L4".into(),
            uuid: None,
            memory_used_bytes: Some(if procs.is_empty() { 0 } else { 17 * GIB }),
            memory_total_bytes: Some(23034 * 1024 * 1024),
            utilization_pct: Some(util),
            memory_utilization_pct: Some(util / 2),
            temperature_c: Some(40),
            power_draw_mw: Some(16_000),
            power_limit_mw: Some(72_000),
            processes: procs,
            processes_error: None,
            error: None,
        }],
    })
}

fn trainer() -> GpuProcess {
    GpuProcess {
        pid: 4121,
        gpu_index: 0,
        used_bytes: Some(17 * GIB),
        command: Some("python train.py".into()),
        user: Some("me".into()),
        uid: Some(1000),
        start_time_unix_s: Some(NOW - 3600),
        start_ticks: Some(1),
        cwd: None,
        sm_util_pct: None,
    }
}

/// An L4 machine busy until NOW, idle from then on.
fn idle_machine() -> AppState {
    let mut s = fx::state();
    update(&mut s, fx::typical_disks());
    update(&mut s, gpu(NOW - 10, 97, vec![trainer()]));
    update(&mut s, gpu(NOW, 0, vec![]));
    s
}

#[test]
fn idle_banner_and_cost_from_samples_and_a_fake_clock() {
    let mut s = idle_machine();
    let st = opsconsole::app::checklist::idle_status(&s);
    assert_eq!(st.state, opsconsole::checklist::idle::IdleState::Idle);
    assert!(!st.banner);
    // 19 minutes: still under idle.after (20m).
    update(&mut s, gpu(NOW + 19 * 60, 2, vec![]));
    update(&mut s, Msg::Tick(fx::at(NOW + 19 * 60)));
    assert!(!fx::screen_text(&s, 160, 48).contains("idle 19m"));
    // 1h05m: the banner, its cost at the tier's price (tier1: $0.85/h), and the key.
    update(&mut s, gpu(NOW + 65 * 60, 1, vec![]));
    update(&mut s, Msg::Tick(fx::at(NOW + 65 * 60)));
    let st = opsconsole::app::checklist::idle_status(&s);
    assert!(st.banner && !st.estimated);
    assert_eq!(st.idle_seconds, 65 * 60);
    let cost = st.cost_since.expect("priced");
    assert!((cost - 0.85 * 65.0 / 60.0).abs() < 1e-9, "{cost}");
    let screen = fx::screen_text(&s, 160, 48);
    assert!(screen.lines().next().unwrap_or("").contains("idle 1h05m · $0.92 spent · x checklist"), "{screen}");
    // A GPU busy again ends it; a process alone (at 0%) ends it too.
    update(&mut s, gpu(NOW + 66 * 60, 40, vec![]));
    assert!(!opsconsole::app::checklist::idle_status(&s).banner);
    update(&mut s, gpu(NOW + 67 * 60, 0, vec![]));
    update(&mut s, gpu(NOW + 67 * 60 + 1, 0, vec![trainer()]));
    update(&mut s, Msg::Tick(fx::at(NOW + 200 * 60)));
    assert!(!opsconsole::app::checklist::idle_status(&s).banner);
    // No NVML: idleness is unknown, never a banner.
    update(&mut s, Msg::Gpu(GpuSample::unavailable((NOW + 201 * 60) * 1000, NvmlStatus::DriverNotLoaded)));
    update(&mut s, Msg::Tick(fx::at(NOW + 400 * 60)));
    assert_eq!(opsconsole::app::checklist::idle_status(&s).state, opsconsole::checklist::idle::IdleState::Unknown);
    // A tier without a price shows no money.
    let mut cfg = Config::default();
    cfg.idle.hourly_price.clear();
    let mut s = fx::state_with(cfg);
    update(&mut s, gpu(NOW, 0, vec![]));
    update(&mut s, Msg::Tick(fx::at(NOW + 3600)));
    let screen = fx::screen_text(&s, 160, 48);
    let head = screen.lines().next().unwrap_or("");
    assert!(head.contains("idle 1h00m · x checklist") && !head.contains('$'), "{head}");
}

#[test]
fn checklist_snapshots() {
    // Every item passing, the machine idle for 1h05m on an L4 with a known address.
    let mut s = with_command();
    update(&mut s, gpu(NOW - 65 * 60 - 10, 97, vec![trainer()]));
    update(&mut s, gpu(NOW - 65 * 60, 0, vec![]));
    update(&mut s, gpu(NOW, 0, vec![]));
    update(&mut s, Msg::ExternalIp(Ok("34.123.45.67".into())));
    open(&mut s, report(items_all_pass()));
    update(&mut s, key('S'));
    for (w, h) in [(80, 24), (160, 48)] {
        insta::assert_snapshot!(format!("checklist_all_pass_{w}x{h}"), fx::render(&s, w, h).backend());
    }
    // Several failing, one overridden, the override prompt open.
    let mut s = with_command();
    update(&mut s, gpu(NOW, 98, vec![trainer()]));
    open(&mut s, several_fail());
    update(&mut s, key('o'));
    type_text(&mut s, "git");
    update(&mut s, code(KeyCode::Enter));
    update(&mut s, key('S'));
    type_text(&mut s, "train");
    for (w, h) in [(80, 24), (160, 48)] {
        insta::assert_snapshot!(format!("checklist_several_fail_{w}x{h}"), fx::render(&s, w, h).backend());
    }
}

#[test]
fn idle_banner_snapshots() {
    let mut s = idle_machine();
    update(&mut s, Msg::ExternalIp(Ok("34.123.45.67".into())));
    update(&mut s, gpu(NOW + 65 * 60, 0, vec![]));
    update(&mut s, Msg::Tick(fx::at(NOW + 65 * 60)));
    for (w, h) in [(80, 24), (160, 48)] {
        insta::assert_snapshot!(format!("idle_banner_{w}x{h}"), fx::render(&s, w, h).backend());
    }
}

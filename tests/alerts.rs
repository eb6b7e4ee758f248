//! The bell (`app::alerts`): `update` asks for it once when an OOM, a NaN loss, a stall or
//! a disk crossing critical first appears, and again only after it cleared and came back.

mod support;

use std::time::Duration;

use opsconsole::app::{Msg, update};
use opsconsole::config::Config;
use support::fixtures::{self as fx, at};
use support::log_fixtures as lf;

/// A log sample that continues the log (not its first sample, not history).
fn more(lines: &[String], t: u64) -> Msg {
    let mut m = lf::log_sample(lines, at(t), true, None);
    if let Msg::Log(s) = &mut m {
        s.reset = false;
    }
    m
}

fn disk(pct: f64) -> Msg {
    fx::disks(vec![fx::disk("/", pct, &["workspace", "checkpoints", "root"])])
}

#[test]
fn an_oom_rings_once_and_history_does_not() {
    let mut s = fx::state();
    // The log as found at start, with an OOM already in it: history, no bell.
    update(&mut s, lf::log_sample(&lf::oom_lines(), at(fx::NOW), true, None));
    assert_eq!(s.alerts.bells, 0, "an OOM already in the log when the console starts is not news");
    assert!(s.alerts.active.contains("oom"));

    // A fresh log without one, then an OOM appended: one bell.
    let mut s = fx::state();
    update(&mut s, lf::log_sample(&lf::hf_lines(1200), at(fx::NOW), true, None));
    assert_eq!(s.alerts.bells, 0);
    update(&mut s, more(&lf::oom_lines(), fx::NOW + 1));
    assert_eq!(s.alerts.bells, 1);
    assert_eq!(s.alerts.last, vec!["oom".to_string()]);
    // Later samples and ticks with the OOM still there: no more bells.
    for i in 2..10 {
        update(&mut s, more(&lf::oom_lines(), fx::NOW + i));
        update(&mut s, Msg::Tick(at(fx::NOW + i)));
    }
    assert_eq!(s.alerts.bells, 1, "not every frame");
}

#[test]
fn a_nan_loss_rings() {
    let mut s = fx::state();
    update(&mut s, lf::log_sample(&lf::hf_lines(100), at(fx::NOW), true, None));
    let mut lines = lf::hf_lines(100);
    lines.push("{'loss': nan, 'grad_norm': nan, 'learning_rate': 0.0003, 'epoch': 0.2}".into());
    update(&mut s, more(&lines, fx::NOW + 1));
    assert!(s.alerts.active.contains("nan"), "{:?}", s.alerts.active);
    assert_eq!(s.alerts.bells, 1);
}

#[test]
fn a_stall_rings_once_until_lines_come_again() {
    let mut s = fx::state();
    let stall = s.config.log.stall_after;
    update(&mut s, lf::log_sample(&lf::hf_lines(100), at(fx::NOW), true, None));
    update(&mut s, Msg::Tick(at(fx::NOW + stall.as_secs() + 5)));
    assert!(s.alerts.active.contains("stall"), "{:?}", s.alerts.active);
    assert_eq!(s.alerts.bells, 1);
    update(&mut s, Msg::Tick(at(fx::NOW + stall.as_secs() + 60)));
    assert_eq!(s.alerts.bells, 1);
    // Lines again: it clears; a second stall rings again.
    let t = fx::NOW + stall.as_secs() + 61;
    update(&mut s, more(&lf::hf_lines(110), t));
    s.log.health.last_line_at = Some(at(t));
    update(&mut s, Msg::Tick(at(t + 1)));
    assert!(!s.alerts.active.contains("stall"), "{:?}", s.alerts.active);
    update(&mut s, Msg::Tick(at(t + stall.as_secs() + 5) + Duration::from_secs(1)));
    assert_eq!(s.alerts.bells, 2);
}

#[test]
fn a_disk_crossing_critical_rings_once_per_crossing() {
    let mut s = fx::state();
    update(&mut s, disk(95.0));
    assert_eq!(s.alerts.bells, 0, "already critical at start: shown, not rung");
    update(&mut s, disk(50.0));
    update(&mut s, disk(91.0));
    assert_eq!(s.alerts.bells, 1);
    update(&mut s, disk(92.0));
    update(&mut s, disk(99.0));
    assert_eq!(s.alerts.bells, 1, "still critical: no new bell");
    update(&mut s, disk(70.0));
    update(&mut s, disk(93.0));
    assert_eq!(s.alerts.bells, 2);
}

#[test]
fn bell_false_never_rings() {
    let mut cfg = Config::default();
    cfg.alerts.bell = false;
    let mut s = fx::state_with(cfg);
    update(&mut s, disk(50.0));
    update(&mut s, disk(95.0));
    assert_eq!(s.alerts.bells, 0);
    assert!(s.alerts.active.contains("disk:/"), "the condition is still tracked");
}

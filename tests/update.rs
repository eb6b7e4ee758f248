//! `update` driven by fixture messages: no terminal, no I/O.

mod support;

use crossterm::event::KeyCode;
use opsconsole::app::{Effect, JobEvent, Msg, Overlay, Panel, update};
use opsconsole::config::Config;
use opsconsole::disk::Level;
use support::fixtures::{self as fx, at, code, ctrl, key};

#[test]
fn q_quits_at_once_when_no_job_runs() {
    let mut s = fx::state();
    assert_eq!(update(&mut s, key('q')), vec![Effect::Quit]);
    assert!(s.should_quit);
}

#[test]
fn ctrl_c_quits_too() {
    let mut s = fx::state();
    assert_eq!(update(&mut s, ctrl('c')), vec![Effect::Quit]);
}

#[test]
fn q_asks_first_while_a_job_runs_and_n_keeps_running() {
    let mut s = fx::state();
    update(&mut s, Msg::Job(JobEvent::Started { id: 1, name: "prune".into() }));
    assert!(update(&mut s, key('q')).is_empty());
    assert_eq!(s.overlay, Overlay::ConfirmQuit);
    assert!(!s.should_quit);
    update(&mut s, key('n'));
    assert_eq!(s.overlay, Overlay::None);
    assert!(!s.should_quit);
    update(&mut s, key('q'));
    assert_eq!(update(&mut s, key('y')), vec![Effect::Quit]);
    assert!(s.should_quit);
}

#[test]
fn a_finished_job_no_longer_blocks_quit() {
    let mut s = fx::state();
    update(&mut s, Msg::Job(JobEvent::Started { id: 7, name: "sync".into() }));
    update(&mut s, Msg::Job(JobEvent::Progress { id: 7, done: 5, total: 10, text: "5 of 10 files".into() }));
    update(&mut s, Msg::Job(JobEvent::Done { id: 7, summary: "10 files".into() }));
    assert_eq!(s.jobs.running().count(), 0);
    assert_eq!(update(&mut s, key('q')), vec![Effect::Quit]);
}

#[test]
fn help_toggles_and_escape_closes_it() {
    let mut s = fx::state();
    update(&mut s, key('?'));
    assert_eq!(s.overlay, Overlay::Help);
    update(&mut s, key('?'));
    assert_eq!(s.overlay, Overlay::None);
    update(&mut s, key('?'));
    update(&mut s, code(KeyCode::Esc));
    assert_eq!(s.overlay, Overlay::None);
}

#[test]
fn tab_and_backtab_cycle_the_focus() {
    let mut s = fx::state();
    assert_eq!(s.focus, Panel::Gpu);
    update(&mut s, code(KeyCode::Tab));
    assert_eq!(s.focus, Panel::Disk);
    update(&mut s, code(KeyCode::Tab));
    update(&mut s, code(KeyCode::Tab));
    update(&mut s, code(KeyCode::Tab));
    assert_eq!(s.focus, Panel::Gpu);
    update(&mut s, code(KeyCode::BackTab));
    assert_eq!(s.focus, Panel::Uploads);
}

#[test]
fn disk_samples_are_folded_and_the_worst_level_is_known() {
    let mut s = fx::state();
    assert!(s.disk.sample.is_none());
    update(&mut s, fx::disks(vec![fx::disk("/", 50.0, &["root"]), fx::disk("/data", 93.0, &["data"])]));
    let sample = s.disk.sample.as_ref().expect("sample kept");
    assert_eq!(sample.disks.len(), 2);
    assert_eq!(sample.worst(), Level::Critical);
    assert_eq!(s.disk.sampled_at, Some(at(fx::NOW)));
}

#[test]
fn disk_scroll_stays_within_the_list() {
    let mut s = fx::state();
    update(&mut s, fx::typical_disks());
    update(&mut s, code(KeyCode::Tab)); // focus Disk
    for _ in 0..5 {
        update(&mut s, key('j'));
    }
    assert_eq!(s.disk.scroll, 1, "two disks: the last one can be the first shown, no further");
    update(&mut s, code(KeyCode::PageUp));
    assert_eq!(s.disk.scroll, 0);
}

#[test]
fn ticks_move_the_clock_and_uptime() {
    let mut s = fx::state();
    let before = s.uptime();
    update(&mut s, Msg::Tick(at(fx::NOW + 90)));
    assert_eq!(s.uptime().as_secs(), before.as_secs() + 90);
}

#[test]
fn sigterm_quits_cleanly_with_a_notice() {
    let mut s = fx::state();
    update(&mut s, Msg::Job(JobEvent::Started { id: 1, name: "prune".into() }));
    assert_eq!(update(&mut s, Msg::Terminate("SIGTERM".into())), vec![Effect::Quit]);
    assert!(s.should_quit);
    assert_eq!(s.notice.as_deref(), Some("stopping: SIGTERM"));
}

#[test]
fn refresh_asks_the_collectors() {
    let mut s = fx::state();
    assert_eq!(update(&mut s, ctrl('r')), vec![Effect::RefreshNow]);
}

#[test]
fn rebound_keys_follow_the_config() {
    let mut cfg = Config::default();
    cfg.keys.help = vec!["h".into()];
    let mut s = fx::state_with(cfg);
    update(&mut s, key('?'));
    assert_eq!(s.overlay, Overlay::None, "? is no longer bound");
    update(&mut s, key('h'));
    assert_eq!(s.overlay, Overlay::Help);
}

#[test]
fn unbound_keys_change_nothing() {
    let mut s = fx::state();
    assert!(update(&mut s, key('Z')).is_empty());
    assert_eq!(s.overlay, Overlay::None);
    assert!(!s.should_quit);
}

//! Whole-screen snapshots through ratatui's TestBackend at 80x24 and 160x48.

mod support;

use opsconsole::app::{JobEvent, Msg, update};
use support::fixtures::{self as fx, key};

fn both(name: &str, state: &opsconsole::app::AppState) {
    insta::assert_snapshot!(format!("{name}_80x24"), fx::render(state, 80, 24).backend());
    insta::assert_snapshot!(format!("{name}_160x48"), fx::render(state, 160, 48).backend());
}

#[test]
fn main_screen_typical_disks() {
    let mut s = fx::state();
    update(&mut s, fx::typical_disks());
    both("main", &s);
}

#[test]
fn main_screen_before_the_first_sample() {
    let s = fx::state();
    both("no_sample", &s);
}

#[test]
fn disk_at_each_level() {
    for (level, pct) in [("ok", 42.0), ("warn", 83.5), ("critical", 94.2), ("full", 100.0)] {
        let mut s = fx::state();
        update(&mut s, fx::disks(vec![fx::disk("/", pct, &["workspace", "root"])]));
        both(&format!("disk_{level}"), &s);
        let text = fx::screen_text(&s, 80, 24);
        assert!(text.contains(level), "the {level} disk says {level}:\n{text}");
    }
}

#[test]
fn many_disks_narrow_and_wide() {
    let mut s = fx::state();
    update(
        &mut s,
        fx::disks(vec![
            fx::disk("/", 71.0, &["workspace", "root"]),
            fx::disk("/mnt/checkpoints-ssd", 88.0, &["checkpoints"]),
            fx::disk("/data", 40.0, &["data"]),
            fx::disk("/mnt/scratch", 99.0, &["extra"]),
        ]),
    );
    both("four_disks", &s);
}

#[test]
fn help_overlay() {
    let mut s = fx::state();
    update(&mut s, fx::typical_disks());
    update(&mut s, key('?'));
    both("help", &s);
    let text = fx::screen_text(&s, 80, 24);
    for action in opsconsole::app::Action::ALL {
        assert!(text.contains(action.help()), "help lists {:?}:\n{text}", action);
    }
}

#[test]
fn quit_confirmation_while_a_job_runs() {
    let mut s = fx::state();
    update(&mut s, fx::typical_disks());
    update(&mut s, Msg::Job(JobEvent::Started { id: 1, name: "prune 4 checkpoints".into() }));
    update(&mut s, Msg::Job(JobEvent::Progress { id: 1, done: 1, total: 4, text: "v01_step_100.pt".into() }));
    update(&mut s, key('q'));
    both("confirm_quit", &s);
}

#[test]
fn tiny_terminal_does_not_panic_and_keeps_the_header() {
    let mut s = fx::state();
    update(&mut s, fx::typical_disks());
    for (w, h) in [(20, 5), (40, 10), (1, 1), (79, 23)] {
        let text = fx::screen_text(&s, w, h);
        assert!(text.starts_with(" host") || w < 6, "{w}x{h}:\n{text}");
    }
}

//! Whole-screen snapshots through ratatui's TestBackend at 80x24 and 160x48.

mod support;

use opsconsole::app::JobEvent;
use support::fixtures::{self as fx, key};

fn both(name: &str, state: &opsconsole::app::AppState) {
    insta::assert_snapshot!(format!("{name}_80x24"), fx::render(state, 80, 24).backend());
    insta::assert_snapshot!(format!("{name}_110x32"), fx::render(state, 110, 32).backend());
    insta::assert_snapshot!(format!("{name}_160x48"), fx::render(state, 160, 48).backend());
}

#[test]
fn main_screen_typical_disks() {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
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
        fx::fold(&mut s, fx::disks(vec![fx::disk("/", pct, &["workspace", "root"])]));
        both(&format!("disk_{level}"), &s);
        let text = fx::screen_text(&s, 80, 24);
        assert!(text.contains(level), "the {level} disk says {level}:\n{text}");
    }
}

#[test]
fn many_disks_narrow_and_wide() {
    let mut s = fx::state();
    fx::fold(
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
    fx::fold(&mut s, fx::typical_disks());
    fx::fold(&mut s, key('?'));
    both("help", &s);
    // Every action's whole description is on the large screen.
    let text = fx::screen_text(&s, 160, 48);
    for action in opsconsole::app::Action::ALL {
        assert!(text.contains(action.help()), "help lists {:?}:\n{text}", action);
    }
}

#[test]
fn help_overlay_scrolls_through_every_key_on_a_small_screen() {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
    fx::fold(&mut s, key('?'));
    let mut seen = String::new();
    for _ in 0..opsconsole::app::Action::ALL.len() {
        seen.push_str(&fx::screen_text(&s, 80, 24));
        fx::fold(&mut s, key('j'));
    }
    for action in opsconsole::app::Action::ALL {
        assert!(seen.contains(action.help()), "scrolling the 80x24 help reaches {:?}", action);
    }
    assert_eq!(s.overlay, opsconsole::app::Overlay::Help, "j scrolls the help, it does not close it");
    insta::assert_snapshot!("help_scrolled_80x24", fx::render(&s, 80, 24).backend());
}

#[test]
fn quit_confirmation_while_a_job_runs() {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
    s.jobs.apply(JobEvent::Started { id: 1, name: "prune 4 checkpoints".into() }, s.now);
    s.jobs.apply(JobEvent::Progress { id: 1, done: 1, total: 4, text: "v01_step_100.pt".into() }, s.now);
    fx::fold(&mut s, key('q'));
    both("confirm_quit", &s);
}

#[test]
fn tiny_terminal_does_not_panic_and_keeps_the_header() {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
    for (w, h) in [(20, 5), (40, 10), (1, 1), (79, 23)] {
        let text = fx::screen_text(&s, w, h);
        assert!(text.starts_with(" host") || w < 6, "{w}x{h}:\n{text}");
    }
}

// ---- Log panel (logtail) ----

use std::time::Duration;
use support::log_fixtures as lf;

#[test]
fn log_panel_empty_log() {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
    fx::fold(&mut s, lf::log_sample(&[], fx::at(fx::NOW), true, None));
    both("log_empty", &s);
    assert!(fx::screen_text(&s, 80, 24).contains("waiting for lines"));
}

#[test]
fn log_panel_streaming() {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
    let bar = "  5%|▌         | 1210/24000 [01:00<19:05, 19.90it/s]";
    fx::fold(&mut s, lf::log_sample(&lf::hf_lines(1200), fx::at(fx::NOW), true, Some(bar)));
    both("log_streaming", &s);
    let wide = fx::screen_text(&s, 160, 48);
    assert!(wide.contains("step 1210/24000"), "{wide}");
    assert!(wide.contains("loss vs step"), "the chart is drawn:\n{wide}");
    assert!(wide.contains("1210/24000 [01:00<19:05"), "the bar's latest state is the last row:\n{wide}");
    assert!(!wide.contains("stalled"));
}

#[test]
fn log_panel_stalled() {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
    let last_line = fx::at(fx::NOW - 20 * 60);
    fx::fold(&mut s, lf::log_sample(&lf::hf_lines(1200), last_line, true, None));
    both("log_stalled", &s);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.lines().next().is_some_and(|h| h.contains("log stalled 20m00s")), "{text}");
    // The same quiet log with nothing writing it is a finished run, not a stall.
    let mut done = fx::state();
    fx::fold(&mut done, lf::log_sample(&lf::hf_lines(1200), last_line, false, None));
    assert!(!fx::screen_text(&done, 80, 24).contains("stalled"));
    // Under the threshold: not yet.
    let mut fresh = fx::state();
    fx::fold(
        &mut fresh,
        lf::log_sample(&lf::hf_lines(1200), fx::at(fx::NOW) - Duration::from_secs(14 * 60), true, None),
    );
    assert!(!fx::screen_text(&fresh, 80, 24).contains("stalled"));
}

#[test]
fn log_panel_with_cuda_oom() {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
    fx::fold(&mut s, lf::log_sample(&lf::oom_lines(), fx::at(fx::NOW), false, None));
    both("log_oom", &s);
    let wide = fx::screen_text(&s, 160, 48);
    assert!(wide.contains("1 error · CUDA OOM"), "{wide}");
    assert!(wide.contains("see tier fit"), "{wide}");
}

#[test]
fn log_panel_search_and_errors_only() {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
    fx::fold(&mut s, lf::log_sample(&lf::oom_lines(), fx::at(fx::NOW), false, None));
    fx::fold(&mut s, key('/'));
    for c in "eval_loss".chars() {
        fx::fold(&mut s, key(c));
    }
    both("log_search_prompt", &s);
    fx::fold(&mut s, fx::code(ratatui::crossterm::event::KeyCode::Enter));
    fx::fold(&mut s, key('N'));
    both("log_search", &s);
    fx::fold(&mut s, key('e'));
    both("log_errors_only", &s);
}

/// `3` then `z`: the Log panel fills the screen between the header and the footer, its
/// title says how to go back; the other panels are not drawn.
#[test]
fn zoomed_log_panel() {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
    let bar = "  5%|▌         | 1210/24000 [01:00<19:05, 19.90it/s]";
    fx::fold(&mut s, lf::log_sample(&lf::hf_lines(1200), fx::at(fx::NOW), true, Some(bar)));
    fx::fold(&mut s, fx::key('3'));
    fx::fold(&mut s, fx::key('z'));
    both("log_zoomed", &s);
    for (w, h) in [(80, 24), (160, 48)] {
        let text = fx::screen_text(&s, w, h);
        assert!(text.contains("zoomed, z back"), "{w}x{h}:\n{text}");
        assert!(!text.contains("┌ Disk") && !text.contains("Uploads") && !text.contains("GPU ━"), "{w}x{h}:\n{text}");
        assert!(text.contains("host ") && text.contains("?  help"), "header and footer stay:\n{text}");
    }
    fx::fold(&mut s, fx::key('z'));
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("Disk") && text.contains("Uploads") && !text.contains("zoomed"), "{text}");
}

/// The loss chart is a function of its series and its area. The cells drawn last are
/// reused for the same series (`ui::log` keeps them per thread): a frame with the same
/// series shows the same chart, a new point shows the new chart, and each equals the
/// chart drawn from nothing on a thread that kept none.
#[test]
fn the_loss_chart_follows_its_series_from_frame_to_frame() {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
    let at = fx::at(fx::NOW);
    fx::fold(&mut s, lf::log_sample(&lf::hf_lines(2000), at, true, None));
    let fresh = |s: &opsconsole::app::AppState| {
        let s = s.clone();
        std::thread::spawn(move || fx::screen_text(&s, 160, 48)).join().expect("draws")
    };
    let first = fx::screen_text(&s, 160, 48);
    assert!(first.contains("loss vs step"), "{first}");
    assert_eq!(fx::screen_text(&s, 160, 48), first, "the same series: the same chart");
    assert_eq!(fresh(&s), first, "as drawn from nothing");
    fx::fold(&mut s, lf::log_sample(&lf::hf_lines(4000), at, true, None));
    let second = fx::screen_text(&s, 160, 48);
    assert_ne!(second, first);
    assert_eq!(fresh(&s), second, "a new point: the chart drawn from nothing");
    assert!(second.contains("4000"), "the x axis ends at the new step:\n{second}");
}

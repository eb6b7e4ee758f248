//! The footer follows focus (lazygit): the focused panel's keys first, then the global
//! ones as room allows; an open dialog's keys while it is open. Keys come from the keymap.

mod support;

use opsconsole::app::hints::footer_hints;
use opsconsole::app::{Overlay, Panel, update};
use opsconsole::config::Config;
use ratatui::crossterm::event::KeyCode;
use support::fixtures::{self as fx, code, key};
use support::log_fixtures as lf;

fn footer(s: &opsconsole::app::AppState, w: u16, h: u16) -> String {
    fx::screen_text(s, w, h).lines().last().unwrap_or_default().to_string()
}

fn labels(s: &opsconsole::app::AppState) -> Vec<String> {
    footer_hints(s).all().map(|h| format!("{} {}", h.keys, h.label)).collect()
}

fn log_state() -> opsconsole::app::AppState {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
    fx::fold(&mut s, lf::log_sample(&lf::hf_lines(1200), fx::at(fx::NOW), true, None));
    s
}

#[test]
fn each_panel_puts_its_own_keys_first() {
    let mut s = log_state();
    for (k, panel, first) in [
        ('1', Panel::Gpu, "↓/↑ select"),
        ('2', Panel::Disk, "p prune plan"),
        ('3', Panel::Log, "/ search"),
        ('4', Panel::Uploads, "s sync now"),
    ] {
        update(&mut s, key(k));
        assert_eq!(s.focus, panel);
        let l = labels(&s);
        assert_eq!(l[0], first, "{panel:?}: {l:?}");
        let hints = footer_hints(&s);
        assert!(!hints.dialog);
        // The global keys come after the panel's, and the help key is always there.
        assert_eq!(hints.global[0].label, "help");
        assert!(footer(&s, 80, 24).contains("?  help"), "{panel:?} at 80: {}", footer(&s, 80, 24));
    }
    update(&mut s, key('4'));
    let l = labels(&s);
    assert!(l.contains(&"R retry failed".to_string()) && l.contains(&"c cancel upload".to_string()), "{l:?}");
    assert!(!l.contains(&"s sync".to_string()), "sync is not named twice on the Uploads panel: {l:?}");
}

#[test]
fn the_log_keys_say_what_they_would_do_now() {
    let mut s = log_state();
    update(&mut s, key('3'));
    assert!(labels(&s).contains(&"e errors only".into()) && labels(&s).contains(&"f pause".into()));
    assert!(!labels(&s).iter().any(|l| l.contains("next/prev")), "no match keys before a search");
    update(&mut s, key('f'));
    assert!(labels(&s).contains(&"f follow".into()), "{:?}", labels(&s));
    update(&mut s, key('e'));
    assert!(labels(&s).contains(&"e all lines".into()), "{:?}", labels(&s));
    update(&mut s, key('/'));
    assert_eq!(labels(&s), vec!["enter find", "esc cancel", "backspace erase"]);
    for c in "loss".chars() {
        update(&mut s, key(c));
    }
    update(&mut s, code(KeyCode::Enter));
    assert!(labels(&s).contains(&"n/N next/prev match".into()), "{:?}", labels(&s));
}

#[test]
fn rebound_keys_show_as_bound() {
    let mut config = Config::default();
    config.keys.log_search = vec!["ctrl-f".into()];
    config.keys.sync_now = vec!["S".into()];
    config.keys.shutdown = vec!["ctrl-x".into()];
    let mut s = fx::state_with(config);
    update(&mut s, key('3'));
    let f = footer(&s, 160, 48);
    assert!(f.starts_with(" ^f  search"), "{f}");
    assert!(!f.contains(" /  "), "{f}");
    update(&mut s, key('4'));
    assert!(footer(&s, 160, 48).starts_with(" S  sync now"), "{}", footer(&s, 160, 48));
}

#[test]
fn a_dialog_shows_its_own_keys_and_none_of_the_main_screen() {
    let mut s = log_state();
    update(&mut s, key('?'));
    assert!(footer_hints(&s).dialog);
    assert_eq!(labels(&s), vec!["↓/↑ scroll", "esc close", "q quit"]);
    update(&mut s, code(KeyCode::Esc));
    update(&mut s, key('x'));
    assert_eq!(s.overlay, Overlay::Checklist);
    let l = labels(&s);
    assert_eq!(l[0], "S shut down", "{l:?}");
    assert!(!l.iter().any(|x| x.contains("help")), "{l:?}");
    update(&mut s, key('o'));
    if s.checklist.typing.is_some() {
        assert_eq!(labels(&s)[0], "enter override these");
    }
    update(&mut s, code(KeyCode::Esc));
    update(&mut s, code(KeyCode::Esc));
    update(&mut s, key('p'));
    assert_eq!(labels(&s)[0], "y run");
    assert!(labels(&s).contains(&"u include unconfirmed".into()));
}

#[test]
fn snapshots_of_the_footer_following_focus() {
    let mut s = log_state();
    update(&mut s, key('3'));
    insta::assert_snapshot!("footer_log_80x24", fx::render(&s, 80, 24).backend());
    insta::assert_snapshot!("footer_log_110x32", fx::render(&s, 110, 32).backend());
    insta::assert_snapshot!("footer_log_160x48", fx::render(&s, 160, 48).backend());
    update(&mut s, key('4'));
    insta::assert_snapshot!("footer_uploads_80x24", fx::render(&s, 80, 24).backend());
    insta::assert_snapshot!("footer_uploads_110x32", fx::render(&s, 110, 32).backend());
    insta::assert_snapshot!("footer_uploads_160x48", fx::render(&s, 160, 48).backend());
}

//! `update` driven by fixture messages: no terminal, no I/O.

mod support;

use opsconsole::app::{Effect, JobEvent, Msg, Overlay, Panel, update};
use opsconsole::config::Config;
use opsconsole::disk::Level;
use ratatui::crossterm::event::KeyCode;
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
    s.jobs.apply(JobEvent::Started { id: 1, name: "prune".into() }, s.now);
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
    s.jobs.apply(JobEvent::Started { id: 7, name: "sync".into() }, s.now);
    s.jobs.apply(JobEvent::Progress { id: 7, done: 5, total: 10, text: "5 of 10 files".into() }, s.now);
    s.jobs.apply(JobEvent::Done { id: 7, summary: "10 files".into() }, s.now);
    assert_eq!(s.jobs.running().count(), 0);
    assert_eq!(update(&mut s, key('q')), vec![Effect::Quit]);
}

#[test]
fn esc_and_a_key_read_together_as_alt_key_act_as_esc_then_the_key() {
    use ratatui::crossterm::event::{KeyEvent, KeyModifiers};
    let alt = |c| Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT));
    let mut s = fx::state();
    update(&mut s, key('?'));
    assert_eq!(s.overlay, Overlay::Help);
    // Esc closes the help, then `?` opens it again.
    assert!(update(&mut s, alt('?')).is_empty());
    assert_eq!(s.overlay, Overlay::Help);
    // Esc closes the help, then `q` quits.
    assert_eq!(update(&mut s, alt('q')), vec![Effect::Quit]);
    assert_eq!(s.overlay, Overlay::None);
}

#[test]
fn a_bound_alt_chord_is_not_split() {
    use ratatui::crossterm::event::{KeyEvent, KeyModifiers};
    let mut cfg = Config::default();
    cfg.keys.help = vec!["alt-h".into()];
    let mut s = fx::state_with(cfg);
    update(&mut s, Msg::Key(KeyEvent::new(KeyCode::Char('h'), KeyModifiers::ALT)));
    assert_eq!(s.overlay, Overlay::Help);
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
    s.jobs.apply(JobEvent::Started { id: 1, name: "prune".into() }, s.now);
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

// ---- Log panel (logtail) ----

use std::path::PathBuf;

use opsconsole::logtail::discover::LogCandidate;
use support::log_fixtures as lf;

fn log_state() -> opsconsole::app::AppState {
    let mut s = fx::state();
    update(&mut s, lf::log_sample(&lf::oom_lines(), at(fx::NOW), true, None));
    s
}

#[test]
fn f_pauses_and_resumes_following() {
    let mut s = log_state();
    assert!(s.log.view.following());
    update(&mut s, key('f'));
    assert!(!s.log.view.following());
    update(&mut s, key('f'));
    assert!(s.log.view.following());
    update(&mut s, key('g'));
    assert!(!s.log.view.following());
    update(&mut s, key('G'));
    assert!(s.log.view.following());
}

#[test]
fn slash_search_types_a_query_then_n_and_shift_n_move_between_matches() {
    let mut s = log_state();
    update(&mut s, key('/'));
    for c in "eval_loss".chars() {
        update(&mut s, key(c));
    }
    // While typing, keys are text: `q` does not quit.
    update(&mut s, key('q'));
    update(&mut s, code(KeyCode::Backspace));
    assert_eq!(s.log_search_input(), Some("eval_loss"));
    assert!(!s.should_quit);
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.log_search_input(), None);
    assert_eq!(s.log.view.query(), Some("eval_loss"));
    let last = s.log.view.current_match().expect("a match");
    update(&mut s, key('N'));
    let prev = s.log.view.current_match().expect("a match");
    assert!(prev < last);
    update(&mut s, key('n'));
    assert_eq!(s.log.view.current_match(), Some(last));
    assert!(!s.log.view.following(), "a match pauses following");
    // Esc leaves the prompt without searching.
    update(&mut s, key('/'));
    update(&mut s, key('x'));
    update(&mut s, code(KeyCode::Esc));
    assert_eq!(s.log.view.query(), Some("eval_loss"));
}

#[test]
fn e_shows_only_error_lines() {
    let mut s = log_state();
    update(&mut s, key('e'));
    assert!(s.log.view.errors_only);
    let shown = s.log.view.visible(100);
    assert_eq!(shown.len(), 6, "the traceback: header, frames, exception");
    assert!(shown.iter().all(|l| l.line.error.is_some()));
    update(&mut s, key('e'));
    assert!(!s.log.view.errors_only);
}

#[test]
fn arrows_scroll_the_log_only_when_it_has_focus() {
    let mut s = log_state();
    update(&mut s, key('k'));
    assert!(s.log.view.following(), "the GPU panel has focus");
    while s.focus != Panel::Log {
        update(&mut s, code(KeyCode::Tab));
    }
    update(&mut s, key('k'));
    assert!(!s.log.view.following());
    update(&mut s, code(KeyCode::PageDown));
    assert!(s.log.view.following(), "paging down to the end follows again");
}

fn candidate(path: &str) -> LogCandidate {
    LogCandidate { path: PathBuf::from(path), modified: at(fx::NOW - 60), size_bytes: 1000, exists: true }
}

#[test]
fn l_lists_logs_and_enter_switches() {
    let mut s = log_state();
    update(
        &mut s,
        Msg::LogCandidates(vec![candidate("/home/me/rsm/experiments/v69/logs/train.log"), candidate(lf::LOG_PATH)]),
    );
    assert_eq!(update(&mut s, key('L')), vec![Effect::RefreshNow]);
    assert_eq!(s.log_switcher(), Some(1), "the followed log is selected");
    update(&mut s, key('k'));
    assert_eq!(s.log_switcher(), Some(0));
    let effects = update(&mut s, code(KeyCode::Enter));
    assert_eq!(effects, vec![Effect::SwitchLog(PathBuf::from("/home/me/rsm/experiments/v69/logs/train.log"))]);
    assert_eq!(s.log_switcher(), None);
    update(&mut s, key('L'));
    update(&mut s, code(KeyCode::Esc));
    assert_eq!(s.log_switcher(), None);
}

#[test]
fn a_sample_of_another_log_replaces_the_lines() {
    let mut s = log_state();
    assert!(s.log.view.len() > 10);
    let Msg::Log(mut sample) = lf::log_sample(&["hello".to_string()], at(fx::NOW), true, None) else { unreachable!() };
    sample.path = PathBuf::from("/home/me/rsm/experiments/v69/logs/train.log");
    sample.reset = false;
    update(&mut s, Msg::Log(sample));
    assert_eq!(s.log.view.len(), 1);
    assert_eq!(s.log.path.as_deref(), Some(std::path::Path::new("/home/me/rsm/experiments/v69/logs/train.log")));
}

#[test]
fn stall_needs_a_writer_and_moves_with_the_clock() {
    let mut s = fx::state();
    update(&mut s, lf::log_sample(&lf::hf_lines(200), at(fx::NOW), true, None));
    assert!(!s.log.stalled(s.now));
    update(&mut s, Msg::Tick(at(fx::NOW + 15 * 60 - 1)));
    assert!(!s.log.stalled(s.now));
    update(&mut s, Msg::Tick(at(fx::NOW + 15 * 60)));
    assert!(s.log.stalled(s.now));
    let status = serde_json::to_value(s.log.status(s.now)).expect("json");
    assert_eq!(status["stalled"], true);
    assert_eq!(status["path"], lf::LOG_PATH);
    let mut quiet = fx::state();
    update(&mut quiet, lf::log_sample(&lf::hf_lines(200), at(fx::NOW), false, None));
    update(&mut quiet, Msg::Tick(at(fx::NOW + 3600)));
    assert!(!quiet.log.stalled(quiet.now), "no process writes the log: a finished run");
}

/// Issue 15 item 1: the run-state follows the log's writers. While the trainer writes,
/// it is running (its pid) with rate and ETA; a sample saying no process writes any more
/// turns it into exited, with the shell's `Killed` read as SIGKILL, and the rate and ETA
/// gone from the panel's `status` (the last values stay). The time since the last line
/// moves with the clock.
#[test]
fn a_trainer_that_stops_writing_the_log_is_exited_without_eta_or_rate() {
    use opsconsole::logtail::RunState;
    let mut s = fx::state();
    let lines = lf::hf_lines(200);
    update(&mut s, lf::log_sample(&lines, at(fx::NOW), true, Some("  5%|▌ | 1210/24000 [01:00<19:05, 19.90it/s]")));
    let run = s.log.run(s.now);
    assert_eq!((run.state, run.pids.clone(), run.exit), (RunState::Running, vec![4242], None));
    assert_eq!(run.text(), "running · pid 4242 · last line 0s ago");
    let st = s.log.status(s.now);
    assert!(st.metrics.eta_seconds.is_some() && s.log.metrics.latest.iterations_per_second.is_some());

    // The trainer is killed: the shell says so, and nothing holds the log open.
    let mut killed = lines.clone();
    killed.push("./train.sh: line 3:  4242 Killed    python train.py".into());
    update(&mut s, lf::log_sample(&killed, at(fx::NOW + 5), false, None));
    update(&mut s, Msg::Tick(at(fx::NOW + 5 + 250)));
    let run = s.log.run(s.now);
    assert_eq!(run.state, RunState::Exited);
    assert!(run.pids.is_empty());
    assert_eq!(run.text(), "exited · killed (SIGKILL) · last line 4m10s ago");
    let st = s.log.status(s.now);
    assert_eq!((st.metrics.eta_seconds, st.metrics.tokens_per_second), (None, None), "{:?}", st.metrics);
    assert_eq!(st.metrics.step, s.log.metrics.latest.step, "the last step stays");
    let json = serde_json::to_value(&st).expect("json");
    assert_eq!(json["run"]["state"], "exited");
    assert_eq!(json["run"]["exit"]["signal"], 9);
    assert_eq!(json["run"]["seconds_since_last_line"], 250);
}

/// Zoom and number keys (btop style): `1`–`4` focus the GPU, Disk, Log and Uploads panel;
/// `z` zooms the focused panel and back; the focus keys move the zoom; `esc` leaves it
/// (and only closes an open overlay when there is one). The Log panel's page grows with
/// the zoom, so paging keys move by what is shown.
#[test]
fn number_keys_focus_a_panel_and_z_zooms_it_and_back() {
    let mut s = fx::state();
    s.size = (80, 24);
    update(&mut s, lf::log_sample(&lf::hf_lines(200), at(fx::NOW), true, None));
    for (c, p) in [('3', Panel::Log), ('1', Panel::Gpu), ('4', Panel::Uploads), ('2', Panel::Disk)] {
        assert!(update(&mut s, key(c)).is_empty());
        assert_eq!(s.focus, p, "key {c}");
        assert!(!s.zoomed);
    }
    update(&mut s, key('3'));
    let page = opsconsole::ui::viewport(&s).log_rows;
    update(&mut s, key('z'));
    assert!(s.zoomed && s.focus == Panel::Log);
    let zoomed_page = opsconsole::ui::viewport(&s).log_rows;
    assert_eq!((page, zoomed_page), (6, 11), "at 80x24 the zoomed log shows 11 rows (and its chart), was 6");
    // The focus keys move the zoom to another panel.
    update(&mut s, key('1'));
    assert!(s.zoomed && s.focus == Panel::Gpu);
    update(&mut s, code(KeyCode::Tab));
    assert!(s.zoomed && s.focus == Panel::Disk);
    update(&mut s, key('z'));
    assert!(!s.zoomed && s.focus == Panel::Disk, "z again: back to the four panels");
    // Esc closes the help first, then leaves the zoom.
    update(&mut s, key('z'));
    update(&mut s, key('?'));
    assert_eq!(s.overlay, Overlay::Help);
    update(&mut s, code(KeyCode::Esc));
    assert_eq!(s.overlay, Overlay::None);
    assert!(s.zoomed, "esc closed the help, not the zoom");
    update(&mut s, code(KeyCode::Esc));
    assert!(!s.zoomed);
    // Digits typed in the search prompt are the query, not focus keys.
    update(&mut s, key('3'));
    update(&mut s, key('/'));
    update(&mut s, key('2'));
    assert_eq!(s.focus, Panel::Log);
    assert_eq!(s.overlay, Overlay::LogSearch { query: "2".into() });
}

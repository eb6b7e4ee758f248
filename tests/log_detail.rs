//! Reading whole lines (issue 15, item 2): a line cut at the Log panel's edge ends with
//! `…`; `w` wraps, `←`/`→` scroll sideways; Enter opens the whole text of a log line, the
//! last error or an upload row; the search says `match 2/5` on the panel's border.
//! `update` through fixture messages and whole-screen snapshots at 80x24, 110x32, 160x48.

mod support;

use opsconsole::app::{Msg, Overlay, Panel, update};
use opsconsole::sync::ledger::{LedgerEntry, UploadState};
use opsconsole::sync::status::{FailureStatus, LevelStatus, SyncStatus};
use opsconsole::sync::{EngineSource, SyncSample};
use ratatui::crossterm::event::KeyCode;
use support::fixtures::{self as fx, code, key};
use support::log_fixtures as lf;

const LR_LINE: &str =
    "{'loss': 3.2100, 'grad_norm': 0.8123, 'learning_rate': 2.6999999999999995e-4, 'epoch': 0.50, 'step': 1210}";
const OOM: &str = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 22.05 GiB of which 1.12 GiB is free.";

/// A run that logged a long metrics line and then died of a CUDA OOM, the Log panel
/// focused, at `w`x`h`.
fn oom_state(w: u16, h: u16) -> opsconsole::app::AppState {
    let mut s = fx::state();
    fx::fold(&mut s, Msg::Resize(w, h));
    fx::fold(&mut s, fx::typical_disks());
    let mut lines = lf::hf_lines(1200);
    lines.push(LR_LINE.to_string());
    lines.extend(lf::oom_lines().into_iter().skip(lf::hf_lines(1200).len()));
    fx::fold(&mut s, lf::log_sample(&lines, fx::at(fx::NOW), false, None));
    fx::fold(&mut s, key('3'));
    assert_eq!(s.focus, Panel::Log);
    s
}

fn three(name: &str, s: &opsconsole::app::AppState) {
    for (w, h) in [(80, 24), (110, 32), (160, 48)] {
        let mut s = s.clone();
        fx::fold(&mut s, Msg::Resize(w, h));
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), fx::render(&s, w, h).backend());
    }
}

/// The rows of the Log panel's lines, as drawn at `w`x`h`.
fn screen(s: &opsconsole::app::AppState, w: u16, h: u16) -> String {
    let mut s = s.clone();
    fx::fold(&mut s, Msg::Resize(w, h));
    fx::screen_text(&s, w, h)
}

fn detail(s: &opsconsole::app::AppState) -> &opsconsole::app::detail::Detail {
    match &s.overlay {
        Overlay::Detail(d) => d,
        other => panic!("no detail view open: {other:?}"),
    }
}

#[test]
fn a_line_wider_than_the_panel_ends_with_an_ellipsis() {
    let s = oom_state(80, 24);
    let text = screen(&s, 80, 24);
    // The OOM line, the last row: cut, and saying so.
    let row = text.lines().find(|l| l.starts_with("┃torch.OutOfMemoryError")).expect("the OOM line is shown");
    assert!(row.ends_with("…┃"), "{row:?}");
    assert!(!text.contains("allocate 2.┃"), "never cut silently mid-number:\n{text}");
    // Scrolled up to the metrics line: `2.6999999999999995e-4` is never shown as `2.69999`.
    let mut up = s.clone();
    for _ in 0..7 {
        fx::fold(&mut up, key('k'));
    }
    let text = screen(&up, 80, 24);
    let row = text.lines().find(|l| l.contains("'learning_rate': 2.69")).expect("the lr line is shown");
    assert!(row.ends_with("…┃"), "{row:?}");
}

#[test]
fn w_wraps_long_lines_and_scrolling_stays_in_lines() {
    let mut s = oom_state(80, 24);
    fx::fold(&mut s, key('w'));
    assert!(s.log.view.wrap);
    assert_eq!(s.status_line().map(|l| l.text.as_str()), Some("log: long lines wrap"));
    three("log_wrapped", &s);
    let text = screen(&s, 80, 24);
    assert!(text.contains("1.12 GiB is free."), "following, the whole last line shows:\n{text}");
    assert!(text.contains("Log experiments/v68/logs/train.log") && text.contains("· wrap"), "{text}");
    // The window holds as many rows as fit, made of whole lines.
    let page = s.viewport.log_page();
    let rows: usize = s.log.view.visible(page).iter().map(|l| s.log.view.rows_of(l, page)).sum();
    assert!(rows <= page.rows, "{rows} rows in a window of {}", page.rows);
    // Scroll is in lines: a page up and a page down come back to the end, following.
    fx::fold(&mut s, code(KeyCode::PageUp));
    assert!(!s.log.view.following());
    let first = s.log.view.visible(s.viewport.log_page())[0].seq;
    fx::fold(&mut s, code(KeyCode::PageUp));
    assert!(s.log.view.visible(s.viewport.log_page())[0].seq < first);
    fx::fold(&mut s, code(KeyCode::PageDown));
    fx::fold(&mut s, code(KeyCode::PageDown));
    fx::fold(&mut s, code(KeyCode::PageDown));
    assert!(s.log.view.following(), "paging down to the end follows again");
    // Errors only and the search still work while wrapping.
    fx::fold(&mut s, key('e'));
    let text = screen(&s, 80, 24);
    assert!(text.contains("1.12 GiB is free.") && !text.contains("'eval_loss'"), "{text}");
    fx::fold(&mut s, key('w'));
    assert!(!s.log.view.wrap);
    assert_eq!(s.status_line().map(|l| l.text.as_str()), Some("log: long lines are cut with …"));
}

#[test]
fn arrows_scroll_sideways_within_the_widest_line() {
    let mut s = oom_state(80, 24);
    assert_eq!(s.log.view.hscroll(), 0);
    fx::fold(&mut s, code(KeyCode::Left));
    assert_eq!(s.log.view.hscroll(), 0, "not left of the first column");
    fx::fold(&mut s, code(KeyCode::Right));
    assert_eq!(s.log.view.hscroll(), 8);
    let text = screen(&s, 80, 24);
    let row = text.lines().find(|l| l.contains("CUDA out of memory") && !l.contains('✖')).expect("the OOM line");
    // `torch.Ou` is scrolled off (eight cells); the text goes on from column 9.
    assert!(row.starts_with("┃…tOfMemoryError: CUDA"), "a shifted line shows … at the left: {row:?}");
    assert!(text.contains("from column 9"), "{text}");
    // Far right: the end of the widest line reaches the right edge, and no further.
    for _ in 0..40 {
        fx::fold(&mut s, code(KeyCode::Right));
    }
    let page = s.viewport.log_page();
    let max = s.log.view.max_hscroll(page);
    assert_eq!(s.log.view.hscroll(), max);
    assert!(max > 0 && max < OOM.len(), "{max}");
    let text = screen(&s, 80, 24);
    let row = text.lines().find(|l| l.contains("1.12 GiB is free.")).expect("the end of the OOM line");
    assert!(row.ends_with("is free.┃"), "{row:?}");
    for _ in 0..40 {
        fx::fold(&mut s, code(KeyCode::Left));
    }
    assert_eq!(s.log.view.hscroll(), 0);
    // Unfocused, the arrows leave the log alone.
    fx::fold(&mut s, key('1'));
    fx::fold(&mut s, code(KeyCode::Right));
    assert_eq!(s.log.view.hscroll(), 0);
    // Wrapping, there is nothing to scroll sideways, and the key says so.
    fx::fold(&mut s, key('3'));
    fx::fold(&mut s, key('w'));
    fx::fold(&mut s, code(KeyCode::Right));
    assert_eq!(s.log.view.hscroll(), 0);
    assert!(s.status_line().is_some_and(|l| l.text.contains("nothing to scroll sideways")), "{:?}", s.status);
}

#[test]
fn enter_while_following_opens_the_last_error_whole() {
    let mut s = oom_state(80, 24);
    let summary = screen(&s, 80, 24);
    assert!(summary.contains("✖ 1 error · CUDA OOM:") && !summary.contains("is free."), "{summary}");
    fx::fold(&mut s, code(KeyCode::Enter));
    let d = detail(&s);
    assert!(d.title.starts_with("Last error in experiments/v68/logs/train.log: CUDA OOM"), "{}", d.title);
    assert!(d.text.starts_with(OOM), "the whole line: {}", d.text);
    assert!(d.text.contains("hint: the job needs more VRAM"), "{}", d.text);
    three("detail_last_error", &s);
    fx::fold(&mut s, code(KeyCode::Esc));
    assert_eq!(s.overlay, Overlay::None);
    // Enter and q close it too; q does not quit from it.
    fx::fold(&mut s, code(KeyCode::Enter));
    fx::fold(&mut s, code(KeyCode::Enter));
    assert_eq!(s.overlay, Overlay::None);
    fx::fold(&mut s, code(KeyCode::Enter));
    fx::fold(&mut s, key('q'));
    assert_eq!(s.overlay, Overlay::None);
    assert!(!s.should_quit);
}

#[test]
fn up_puts_a_cursor_on_a_line_and_enter_opens_it() {
    let mut s = oom_state(80, 24);
    fx::fold(&mut s, key('k'));
    assert!(!s.log.view.following(), "↑ pauses");
    let newest = s.log.view.len() as u64 - 1;
    assert_eq!(s.log.view.cursor(), Some(newest), "on the newest line first");
    for _ in 0..6 {
        fx::fold(&mut s, key('k'));
    }
    assert_eq!(s.log.view.cursor(), Some(newest - 6));
    fx::fold(&mut s, code(KeyCode::Enter));
    let d = detail(&s);
    assert_eq!(d.text, LR_LINE);
    assert_eq!(d.title, format!("Line {} read from experiments/v68/logs/train.log", newest - 5));
    fx::fold(&mut s, code(KeyCode::Esc));
    // ↓ back down past the last line follows again.
    for _ in 0..7 {
        fx::fold(&mut s, key('j'));
    }
    assert!(s.log.view.following());
    assert_eq!(s.log.view.cursor(), None);
}

#[test]
fn in_errors_only_enter_opens_the_error_line_under_the_cursor() {
    let mut s = oom_state(80, 24);
    fx::fold(&mut s, key('e'));
    fx::fold(&mut s, key('k'));
    fx::fold(&mut s, key('k'));
    fx::fold(&mut s, code(KeyCode::Enter));
    let d = detail(&s);
    assert_eq!(d.text, "    loss.backward()");
    assert!(d.title.ends_with("· traceback"), "{}", d.title);
}

#[test]
fn a_long_detail_scrolls_within_its_text() {
    let mut s = fx::state();
    fx::fold(&mut s, lf::log_sample(&["x".repeat(3000)], fx::at(fx::NOW), true, None));
    fx::fold(&mut s, key('3'));
    fx::fold(&mut s, code(KeyCode::Enter));
    let max = s.viewport.detail_max_scroll;
    assert!(max > 0, "3000 characters do not fit in one 80x24 screen");
    for _ in 0..3 {
        fx::fold(&mut s, code(KeyCode::PageDown));
    }
    assert_eq!(detail(&s).scroll, max, "not past the end");
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("rows ") && text.contains(" scroll · esc, enter or q close"), "{text}");
    fx::fold(&mut s, key('g'));
    assert_eq!(detail(&s).scroll, 0);
    fx::fold(&mut s, key('G'));
    assert_eq!(detail(&s).scroll, max);
}

#[test]
fn search_says_which_match_on_the_border() {
    let mut s = oom_state(80, 24);
    fx::fold(&mut s, key('/'));
    for c in "eval_loss".chars() {
        fx::fold(&mut s, key(c));
    }
    fx::fold(&mut s, code(KeyCode::Enter));
    let bottom = |s: &opsconsole::app::AppState| {
        let text = fx::screen_text(s, 80, 24);
        text.lines().find(|l| l.starts_with("┗ /")).map(str::to_string).unwrap_or_else(|| panic!("{text}"))
    };
    // The search starts at the last match, as a pager reading upwards does.
    assert!(bottom(&s).contains("/eval_loss · match 2/2 · n/N"), "{}", bottom(&s));
    fx::fold(&mut s, key('N'));
    assert!(bottom(&s).contains("match 1/2"), "{}", bottom(&s));
    fx::fold(&mut s, key('n'));
    assert!(bottom(&s).contains("match 2/2"), "{}", bottom(&s));
    // Enter opens the match (the cursor is on it).
    fx::fold(&mut s, code(KeyCode::Enter));
    assert!(detail(&s).text.starts_with("{'eval_loss': "), "{}", detail(&s).text);
    fx::fold(&mut s, code(KeyCode::Esc));
    fx::fold(&mut s, key('/'));
    for c in "zzz".chars() {
        fx::fold(&mut s, key(c));
    }
    fx::fold(&mut s, code(KeyCode::Enter));
    assert!(bottom(&s).contains("/zzz · no match"), "{}", bottom(&s));
}

// ---- Uploads: Enter on a failed row ----

fn failed_sample() -> Msg {
    let reason = "the folder of remote 'drive' (/nonexistent/folder-id-1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms) \
                  was not found or is not shared with colab-automation@rsm-project.iam.gserviceaccount.com. Fix: share \
                  the folder with that address as Content manager, then R retries";
    let level = LevelStatus {
        level: "L2".into(),
        remote: "drive".into(),
        remote_configured: true,
        enabled: true,
        interval_minutes: 90,
        pending_files: 1,
        pending_bytes: 2_000_000,
        confirmed_files: 3,
        last_success_unix: Some(fx::NOW as i64 - 600),
        last_pass_unix: Some(fx::NOW as i64 - 600),
        up_to_date_unix: None,
        nothing_to_store: false,
        same_disk: false,
        overdue: false,
        failed: 1,
        failures: vec![FailureStatus {
            path: "experiments/v68/logs/train.log".into(),
            reason: reason.into(),
            permanent: true,
            attempts: 3,
            retry_at_unix: None,
        }],
        in_flight: None,
        interrupted: None,
    };
    let row = |path: &str, state: UploadState, err: Option<&str>| LedgerEntry {
        path: path.into(),
        level: "L2".into(),
        remote: "drive".into(),
        state,
        sha256: "00".into(),
        md5: None,
        mtime_ns: 0,
        bytes_done: 0,
        bytes_total: 2_000_000,
        remote_id: None,
        remote_checksum: None,
        attempts: if err.is_some() { 3 } else { 0 },
        last_error: err.map(str::to_string),
        permanent: err.is_some(),
        next_attempt_ms: 0,
        session: None,
        queued_ms: 0,
        updated_ms: 0,
        confirmed_ms: None,
    };
    Msg::Sync(Box::new(SyncSample {
        source: EngineSource::Daemon { pid: 4242 },
        status: SyncStatus { engine_pid: Some(4242), levels: vec![level], ..SyncStatus::default() },
        queue: vec![
            row("journal.md", UploadState::Pending, None),
            row("experiments/v68/logs/train.log", UploadState::Failed, Some(reason)),
        ],
    }))
}

#[test]
fn enter_on_a_failed_upload_shows_its_reason_and_esc_closes_the_queue() {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
    fx::fold(&mut s, failed_sample());
    fx::fold(&mut s, key('4'));
    // Enter on the panel: the queue, with the failure selected.
    fx::fold(&mut s, code(KeyCode::Enter));
    assert_eq!(s.overlay, Overlay::UploadQueue);
    assert_eq!(s.uploads.queue_scroll, 1, "the first failed row is selected");
    // Enter on the failed row: its whole reason, not the queue closing.
    update(&mut s, code(KeyCode::Enter));
    let d = detail(&s);
    assert_eq!(d.title, "Upload L2 experiments/v68/logs/train.log → drive");
    assert!(d.text.contains("state: failed after 3 attempts"), "{}", d.text);
    assert!(d.text.contains("as Content manager, then R retries"), "the whole reason: {}", d.text);
    for (w, h) in [(80, 24), (110, 32), (160, 48)] {
        let mut s = s.clone();
        fx::fold(&mut s, Msg::Resize(w, h));
        insta::assert_snapshot!(format!("detail_failed_upload_{w}x{h}"), fx::render(&s, w, h).backend());
    }
    // Esc goes back to the queue, and Esc again closes it.
    fx::fold(&mut s, code(KeyCode::Esc));
    assert_eq!(s.overlay, Overlay::UploadQueue);
    fx::fold(&mut s, code(KeyCode::Esc));
    assert_eq!(s.overlay, Overlay::None);
    // A pending row opens too (where it goes, how big).
    fx::fold(&mut s, code(KeyCode::Enter));
    fx::fold(&mut s, key('k'));
    fx::fold(&mut s, code(KeyCode::Enter));
    assert!(detail(&s).text.contains("state: pending"), "{}", detail(&s).text);
}

#[test]
fn a_long_uploads_title_ends_with_an_ellipsis_on_a_narrow_terminal() {
    let mut s = fx::state();
    fx::fold(&mut s, fx::typical_disks());
    let Msg::Sync(mut sample) = failed_sample() else { unreachable!() };
    sample.status.ledger_read_only = Some("disk full: the ledger cannot be written".into());
    fx::fold(&mut s, Msg::Sync(sample));
    let text = screen(&s, 50, 24);
    let top = text.lines().find(|l| l.contains("Uploads · daemon pid 4242")).expect("the Uploads panel");
    assert!(top.contains("DISK FULL") && top.ends_with("…┐"), "{top:?}");
    let wide = screen(&s, 80, 24);
    assert!(wide.contains("Uploads · daemon pid 4242 · DISK FULL: ledger read-only "), "{wide}");
}

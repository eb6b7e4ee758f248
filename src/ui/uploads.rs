//! The Uploads panel: per level its remote, what is pending, the upload in flight with a
//! bar, rate and ETA, the last success against the schedule (overdue in red) and failures
//! with their reason; and the queue overlay (Enter).

use std::time::Duration;

use super::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use crate::app::{Action, AppState, Panel};
use crate::sync::ledger::UploadState;
use crate::sync::status::LevelStatus;
use crate::sync::{EngineSource, SyncSample};
use crate::util;

fn red() -> Style {
    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
}

fn title(state: &AppState, sample: Option<&SyncSample>) -> String {
    let source = match sample.map(|s| &s.source) {
        None => " Uploads ".into(),
        Some(EngineSource::Console) => " Uploads · engine in this console ".into(),
        Some(EngineSource::Daemon { pid }) => format!(" Uploads · daemon pid {pid} "),
        Some(EngineSource::OtherConsole { pid }) => format!(" Uploads · console pid {pid} "),
        Some(EngineSource::Off { .. }) => " Uploads · sync off ".into(),
    };
    // A ledger that cannot be written, and withheld secrets, are explained in the panel
    // when there is room; the short form is always up here.
    let mut t = source;
    if ledger_problem(state, sample).is_some() {
        let full = sample
            .is_some_and(|s| s.status.ledger_read_only.as_deref().is_some_and(|w| w.starts_with("disk full")))
            || state.uploads.ledger_trouble.as_deref().is_some_and(|w| w.starts_with("disk full"));
        t.push_str(if full { "· DISK FULL: ledger read-only " } else { "· ledger read-only " });
    }
    match sample.map(|s| s.status.withheld_files).unwrap_or(0) {
        0 => {}
        n => t.push_str(&format!("· {n} withheld as {} ", if n == 1 { "a secret" } else { "secrets" })),
    }
    t
}

/// Why uploads cannot be recorded now: this console's engine cannot write the ledger, or
/// the ledger could only be read from a copy.
fn ledger_problem<'a>(state: &'a AppState, sample: Option<&'a SyncSample>) -> Option<&'a str> {
    state.uploads.ledger_trouble.as_deref().or_else(|| sample.and_then(|s| s.status.ledger_read_only.as_deref()))
}

pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    let sample = state.uploads.sample.as_ref();
    // A title wider than the border (a daemon pid, DISK FULL, withheld files at 60
    // columns) ends with `…` rather than being clipped at the corner.
    let zoom = if state.zoomed && state.focus == Panel::Uploads { 20 } else { 0 };
    let title = util::ellipsize(&title(state, sample), (area.width as usize).saturating_sub(2 + zoom));
    let block = super::panel_block(state, Panel::Uploads, title);
    let inner = block.inner(area);
    let width = inner.width as usize;
    let Some(sample) = sample else {
        let p = match &state.uploads.unreadable {
            Some(why) => Paragraph::new(why.as_str()).style(red()).wrap(ratatui::widgets::Wrap { trim: true }),
            None => Paragraph::new("reading the sync ledger…").style(super::dim()),
        };
        frame.render_widget(p.block(block.to_block()), area);
        return;
    };
    let levels = sample.status.levels.len();
    let mut room = (inner.height as usize).saturating_sub(levels);
    let mut extra: Vec<Line> = Vec::new();
    if let EngineSource::Off { reason } = &sample.source {
        extra.push(Line::styled(util::ellipsize(&format!("sync off: {reason}"), width), super::dim()));
    }
    if let Some(why) = ledger_problem(state, Some(sample)) {
        extra.push(Line::styled(util::ellipsize(why, width), red()));
    }
    if let Some(w) = sample.status.withheld_line() {
        extra.push(Line::styled(util::ellipsize(&w.clone(), width), Style::new().fg(Color::Yellow)));
    }
    let failures: Vec<_> = sample
        .status
        .levels
        .iter()
        .flat_map(|l| state.uploads.current_failures(l).1.into_iter().map(move |f| (l, f)))
        .collect();
    let note_room = usize::from(state.uploads.note.is_some());
    // Each failure has a line of its own below when there is room: the level line then
    // gives the count, not the reason a second time.
    let below = room >= extra.len() + failures.len();
    let mut lines: Vec<Line> = sample.status.levels.iter().map(|l| level_line(state, l, width, below)).collect();
    for (i, (level, f)) in failures.iter().enumerate() {
        let (mark, color) = if f.permanent { ("✗", Color::Red) } else { ("↻", Color::Yellow) };
        let text = format!("{mark} {} {}: {}", level.level, f.path, f.reason);
        // Each failure gets one line, and the lines left over let the first ones show
        // their whole reason and fix.
        let left = room.saturating_sub(extra.len() + note_room + (failures.len() - i - 1)).max(1);
        for (j, l) in wrap(&text, width.saturating_sub(4), left).into_iter().enumerate() {
            let indent = if j == 0 { "  " } else { "    " };
            extra.push(Line::styled(format!("{indent}{l}"), Style::new().fg(color)));
        }
    }
    // Copies found missing or changed, and remotes that could not be verified, in the last
    // hour (also beside a daemon: they are read from the ledger's history).
    let hour_ago_ms = (state.now_unix() as i64 - 3600) * 1000;
    for ev in sample
        .status
        .recent
        .iter()
        .filter(|e| matches!(e.kind.as_str(), "verify_failed" | "check_failed") && e.at_ms >= hour_ago_ms)
    {
        // Shown for an hour: the line goes when the hour is up.
        super::clock::at(
            state.now,
            std::time::UNIX_EPOCH + Duration::from_secs((ev.at_ms.max(0) / 1000) as u64 + 3601),
        );
        let what = match (&ev.level, &ev.path) {
            (Some(l), Some(p)) => format!("  ⚠ {l} {p}: {}", ev.detail),
            (Some(l), None) => format!("  ⚠ {l}: {}", ev.detail),
            _ => format!("  ⚠ {}", ev.detail),
        };
        extra.push(Line::styled(util::ellipsize(&what, width), Style::new().fg(Color::Yellow)));
    }
    if let Some(note) = &state.uploads.note {
        extra.push(Line::styled(util::ellipsize(note, width), super::dim()));
    }
    room = room.min(extra.len());
    lines.extend(extra.into_iter().take(room));
    super::text::put_block_lines(frame.buffer_mut(), area, &block, &lines);
}

fn level_line(state: &AppState, l: &LevelStatus, width: usize, reasons_below: bool) -> Line<'static> {
    let wide = width >= 100;
    let head = format!("{:<3}{:<8}", l.level, util::ellipsize(&l.remote, 7));
    let mut spans = vec![Span::styled(head, Style::new().add_modifier(Modifier::BOLD))];
    if !l.enabled {
        spans.push(Span::styled("off (sync.enabled = false for this level)", super::dim()));
        return Line::from(spans);
    }
    if !l.remote_configured {
        let text = format!("not configured: add [remotes.{}] to opsconsole.toml", l.remote);
        spans.push(Span::styled(util::ellipsize(&text, width.saturating_sub(11)), super::dim()));
        return Line::from(spans);
    }
    let mut used = 11;
    if l.same_disk {
        // Said first: whatever else the line says, this level is no backup.
        let t = "same disk: not a backup · ";
        used += t.chars().count();
        spans.push(Span::styled(t, Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)));
    }
    if let Some(up) = state.uploads.in_flight(&l.level) {
        let pct = up.bytes_done as f64 * 100.0 / up.bytes_total.max(1) as f64;
        let name = up.path.rsplit('/').next().unwrap_or(&up.path);
        let rate =
            if up.rate_bytes_per_s > 0 { format!(" {}/s", util::bytes(up.rate_bytes_per_s)) } else { String::new() };
        let eta = up.eta().map(|d| format!(" eta {}", util::duration(d))).unwrap_or_default();
        let numbers = format!(" {}/{}{rate}{eta}", util::bytes(up.bytes_done), util::bytes(up.bytes_total));
        let bar_w = if wide { 20 } else { 10 };
        let name_w = width.saturating_sub(used + 5 + bar_w + 1 + numbers.chars().count()).clamp(8, 40);
        let name = util::ellipsize(name, name_w);
        used += name.chars().count() + 5 + bar_w + 1 + numbers.chars().count();
        spans.push(Span::raw(format!("{name} {:>3.0}% ", pct.floor())));
        spans.push(Span::styled(util::bar(pct, bar_w), Style::new().fg(Color::Cyan)));
        spans.push(Span::raw(numbers));
        let others = l.pending_files.saturating_sub(1);
        if others > 0 && used + 14 < width {
            let t = format!("  +{others} pending");
            used += t.chars().count();
            spans.push(Span::styled(t, super::dim()));
        }
    } else {
        let t = if l.pending_files == 0 {
            "nothing pending".to_string()
        } else {
            format!("{} pending {}", l.pending_files, util::bytes(l.pending_bytes))
        };
        used += t.chars().count();
        spans.push(Span::raw(t));
    }
    // A file being uploaded again is no longer failed (its progress is on this line).
    let (failed, failures) = state.uploads.current_failures(l);
    if failed > 0 {
        // The reason matters more than the schedule: it takes the rest of the line. A
        // permanent failure waits for the user (red); one that is retried by itself says
        // when (yellow).
        let room = width.saturating_sub(used);
        let t = match failures.iter().find(|f| f.permanent) {
            Some(_) if reasons_below => {
                Span::styled(util::ellipsize(&format!("  ✗ {failed} failed (below)"), room), red())
            }
            Some(f) => Span::styled(util::ellipsize(&format!("  ✗ {failed} failed: {}", f.reason), room), red()),
            None => {
                let f = failures.first();
                let when = f
                    .and_then(|f| f.retry_at_unix)
                    .map(|t| super::clock::until_unix(state.now, t))
                    .filter(|s| *s > 0)
                    .map(|s| format!(" in {}", util::duration(Duration::from_secs(s as u64))))
                    .unwrap_or_else(|| " now".to_string());
                let reason = f.filter(|_| !reasons_below).map(|f| format!(": {}", f.reason)).unwrap_or_default();
                let t = format!("  ↻ retrying{when}{reason}");
                Span::styled(util::ellipsize(&t, room), Style::new().fg(Color::Yellow))
            }
        };
        spans.push(t);
        return Line::from(spans);
    }
    let every = if l.interval_minutes == 0 {
        "continuous".to_string()
    } else {
        format!("every {}", util::duration(Duration::from_secs(l.interval_minutes * 60)))
    };
    // "ok" only when a file was stored: a pass that found nothing to do is not a backup.
    let last = match l.last_success_unix {
        Some(t) => {
            let ago = util::duration(super::clock::since_unix(state.now, t.max(0) as u64));
            format!("last ok {ago} ago ({every})")
        }
        None if l.nothing_to_store => format!("nothing to store ({every})"),
        None => format!("never stored ({every})"),
    };
    let room = width.saturating_sub(used + 2);
    if l.overdue {
        let t = util::ellipsize(&format!("OVERDUE {last}"), room);
        spans.push(Span::raw("  "));
        spans.push(Span::styled(t, red()));
    } else if room >= 12 {
        spans.push(Span::styled(format!("  {}", util::ellipsize(&last, room)), super::dim()));
    }
    Line::from(spans)
}

/// The queue overlay: every row not yet stored, in upload order.
pub fn queue(state: &AppState, frame: &mut Frame, area: Rect) {
    let rows = state.uploads.sample.as_ref().map(|s| s.queue.as_slice()).unwrap_or(&[]);
    let rows_n = rows.len().max(1);
    let popup_w = area.width.saturating_sub(4).min(120);
    // The selected failure's whole reason and fix, wrapped under the rows.
    let detail: Vec<String> = rows
        .get(state.uploads.queue_scroll)
        .filter(|e| e.state == UploadState::Failed)
        .and_then(|e| e.last_error.as_deref())
        .map(|err| wrap(err, popup_w.saturating_sub(4) as usize, 6))
        .unwrap_or_default();
    let extra = if detail.is_empty() { 0 } else { detail.len() as u16 + 1 };
    let popup = super::centered(area, popup_w, (rows_n as u16 + 3 + extra).min(area.height.saturating_sub(2)));
    let block = Block::bordered().title(" Upload queue ").border_style(Style::new().fg(Color::Cyan));
    let inner = block.inner(popup);
    let width = inner.width as usize;
    let mut lines: Vec<Line> = Vec::new();
    if rows.is_empty() {
        lines.push(Line::styled("nothing waiting: every routed file is stored", super::dim()));
    }
    let height = (inner.height as usize).saturating_sub(extra as usize);
    for (i, e) in rows.iter().enumerate().skip(state.uploads.queue_scroll).take(height.saturating_sub(1)) {
        let (what, style) = match e.state {
            UploadState::Uploading => (
                format!("uploading {:>3}%", (e.bytes_done as f64 * 100.0 / e.bytes_total.max(1) as f64).floor()),
                Style::new().fg(Color::Cyan),
            ),
            UploadState::Pending => ("pending".to_string(), Style::new()),
            UploadState::Failed if e.permanent => ("failed".to_string(), red()),
            UploadState::Failed => (format!("retrying #{}", e.attempts), Style::new().fg(Color::Yellow)),
            UploadState::Confirmed => ("stored".to_string(), super::dim()),
        };
        let marker = if i == state.uploads.queue_scroll { "›" } else { " " };
        let head = format!("{marker}{:<3}{what:<15}{:>9}  ", e.level, util::bytes(e.bytes_total));
        let rest = match &e.last_error {
            Some(err) if e.state == UploadState::Failed => format!("{}: {err}", e.path),
            _ => e.path.clone(),
        };
        let rest = util::ellipsize(&rest, width.saturating_sub(head.chars().count()));
        lines.push(Line::from(vec![Span::styled(head, style), Span::raw(rest)]));
    }
    if !detail.is_empty() {
        lines.push(Line::raw(""));
        for d in &detail {
            lines.push(Line::styled(format!(" {d}"), Style::new().fg(Color::Yellow)));
        }
    }
    let k = |a: Action| state.keymap.first_key(a).unwrap_or_default();
    lines.push(Line::styled(
        util::ellipsize(
            &format!(
                "{}/{} move · {} cancel upload · {} retry failed · {} sync now · esc closes",
                k(Action::Up),
                k(Action::Down),
                k(Action::CancelUpload),
                k(Action::RetryFailed),
                k(Action::SyncNow)
            ),
            width,
        ),
        super::dim(),
    ));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}

/// Words of `text` in lines of at most `width` characters, at most `max` lines (the last
/// one ends with … when cut).
fn wrap(text: &str, width: usize, max: usize) -> Vec<String> {
    let width = width.max(10);
    let out: Vec<String> = super::wrap_words(text.split_whitespace(), width, width)
        .into_iter()
        .map(|l| util::ellipsize(&l, width))
        .collect();
    if out.len() > max {
        let mut v = out[..max].to_vec();
        v[max - 1] = util::ellipsize(&format!("{} …", v[max - 1]), width);
        v
    } else {
        out
    }
}

//! The Log panel: the latest values, a loss-vs-step chart with eval loss, and the log's
//! lines with errors and search matches highlighted. Reads the state only.

use std::time::SystemTime;

use super::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Clear, Dataset, GraphType, Paragraph, Wrap};

use crate::app::logview::{CUT_MARK, Page, ViewLine, printable};
use crate::app::{Action, AppState, LogPanel, Panel};
use crate::logtail::{MetricsSnapshot, RunState, RunStatus, TailNote};
use crate::util;

/// Where the Log panel's parts go inside its border: the rows above the lines (values,
/// run state, stall, last error), the lines, the chart (beside them when wide, above when
/// tall), and the row below. `render` draws this, and `log_page` sizes the paging keys
/// from it, so the two cannot disagree.
struct LogLayout {
    top: Rect,
    lines: Rect,
    chart: Option<Rect>,
    bottom: Rect,
}

fn log_layout(state: &AppState, inner: Rect, top_rows: usize, bottom_rows: usize) -> LogLayout {
    let n_top = (top_rows as u16).min(inner.height);
    let n_bottom = (bottom_rows as u16).min(inner.height.saturating_sub(n_top));
    let [top, body, bottom] =
        Layout::vertical([Constraint::Length(n_top), Constraint::Min(0), Constraint::Length(n_bottom)]).areas(inner);
    let has_chart = has_chart(&state.log);
    let (lines, chart) = if has_chart && body.width >= 100 && body.height >= 6 {
        let [l, _gap, c] =
            Layout::horizontal([Constraint::Min(0), Constraint::Length(1), Constraint::Percentage(40)]).areas(body);
        (l, Some(c))
    } else if has_chart && body.height >= 14 {
        let chart_h = body.height * 2 / 5;
        let [c, l] = Layout::vertical([Constraint::Length(chart_h), Constraint::Min(0)]).areas(body);
        (l, Some(c))
    } else {
        (body, None)
    };
    LogLayout { top, lines, chart, bottom }
}

/// The window of log text the Log panel shows on the state's terminal (rows for paging
/// keys and centring a search match, columns for wrapping and sideways scrolling): the
/// same layout `render` draws.
pub(super) fn log_page(state: &AppState) -> Page {
    let (w, h) = state.size;
    let body = Rect { x: 0, y: 0, width: w, height: h.saturating_sub(2) };
    let area = super::panel_areas(state, body).log;
    let inner = Block::bordered().inner(area);
    let width = inner.width as usize;
    let lines = log_layout(state, inner, top_lines(state, width).len(), bottom_lines(state, width).len()).lines;
    Page { rows: (lines.height as usize).max(1), cols: (lines.width as usize).max(1) }
}

fn has_chart(log: &LogPanel) -> bool {
    log.metrics.loss.points_len() >= 2
}

fn short_path(state: &AppState, p: &std::path::Path) -> String {
    p.strip_prefix(&state.workspace_root).unwrap_or(p).display().to_string()
}

pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    let log = &state.log;
    let mut title = String::from(" Log ");
    if let Some(p) = &log.path {
        let mut tail = String::new();
        if let Some(size) = log.size_bytes {
            tail.push_str(&format!(" · {}", util::bytes(size)));
        }
        if !log.view.following() {
            tail.push_str(" · paused");
        }
        if log.view.errors_only {
            tail.push_str(" · errors only");
        }
        if log.view.wrap {
            tail.push_str(" · wrap");
        }
        // The path gives way first, keeping its end (the file's name); the border's
        // corners, the spaces and a zoom note take the rest.
        let zoom = if state.zoomed && state.focus == Panel::Log { 20 } else { 0 };
        let room = (area.width as usize).saturating_sub(title.len() + tail.chars().count() + 3 + zoom);
        title.push_str(&util::ellipsize_start(&short_path(state, p), room));
        title.push_str(&tail);
        title.push(' ');
    }
    let mut block = super::panel_block(state, Panel::Log, title);
    if let Some(line) = search_status(state, area.width as usize) {
        block = block.title_bottom(line);
    }
    if let Some(line) = sideways_status(state) {
        block = block.title_bottom(line.right_aligned());
    }
    let inner = block.inner(area);
    block.render(area, frame.buffer_mut());
    if log.path.is_none() {
        forget_drawn();
        let text = "No training log found yet: looking for the newest *.log under experiments/*/logs/, \
                    else anywhere in the workspace (set log.path or log.glob in opsconsole.toml).";
        frame.render_widget(Paragraph::new(text).style(super::dim()).wrap(Wrap { trim: true }), inner);
        return;
    }
    if inner.height == 0 || inner.width == 0 {
        forget_drawn();
        return;
    }
    let width = inner.width as usize;
    let (top, bottom) = (top_lines(state, width), bottom_lines(state, width));
    let layout = log_layout(state, inner, top.len(), bottom.len());
    super::text::put_lines_kept(frame.buffer_mut(), layout.top, &top);
    super::text::put_lines_kept(frame.buffer_mut(), layout.bottom, &bottom);
    render_lines(state, frame, layout.lines);
    match layout.chart {
        Some(c) => render_chart(log, frame, c),
        None => CHART.with_borrow_mut(|k| *k = None),
    }
}

/// Nothing the panel drew last is known to be on screen any more: its chart is drawn
/// afresh next time (its rows are `super::drawn`'s, which knows by itself).
fn forget_drawn() {
    CHART.with_borrow_mut(|k| *k = None);
}

/// The search's state on the panel's bottom border: the query and which match is shown
/// (`/eval_loss · match 2/5 · n/N`), or that nothing matches.
fn search_status(state: &AppState, width: usize) -> Option<Line<'static>> {
    if state.log_search_input().is_some() {
        return None;
    }
    let view = &state.log.view;
    let q = view.query()?;
    let (at, total) = view.match_position();
    let (what, style) = match (at, total) {
        (_, 0) => {
            let what = if view.errors_only { "no match among the error lines" } else { "no match" };
            (what.to_string(), Style::new().fg(Color::Red).add_modifier(Modifier::BOLD))
        }
        (Some(i), n) => (format!("match {i}/{n}"), Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)),
        (None, n) => (format!("{n} match{}", if n == 1 { "" } else { "es" }), Style::new().fg(Color::Yellow)),
    };
    let k = |a: Action| state.keymap.first_key(a).unwrap_or_default();
    let keys = format!(" · {}/{} ", k(Action::LogNextMatch), k(Action::LogPrevMatch));
    let fixed = 2 + 3 + what.chars().count() + 1;
    let room = width.saturating_sub(fixed + keys.chars().count() + 16);
    let q = util::ellipsize(&printable(q), room.max(4));
    let mut spans = vec![Span::styled(format!(" /{q} · "), Style::new().fg(Color::Cyan)), Span::styled(what, style)];
    if width >= fixed + q.chars().count() + keys.chars().count() + 16 {
        spans.push(Span::styled(keys, super::dim()));
    } else {
        spans.push(Span::raw(" "));
    }
    Some(Line::from(spans))
}

/// How far the lines are scrolled sideways, on the bottom border's right.
fn sideways_status(state: &AppState) -> Option<Line<'static>> {
    let h = state.log.view.hscroll();
    (h > 0).then(|| Line::styled(format!(" from column {} ", h + 1), super::dim()))
}

/// How long the followed log has been quiet, as drawn, while it counts as stalled (no new
/// line for `log.stall_after` while a process still writes it); records when that text
/// changes, or when the stall begins.
pub(super) fn stalled_for(state: &AppState) -> Option<String> {
    let log = &state.log;
    let now = state.now;
    if log.stalled(now) {
        let quiet = log.health.last_line_at.or(log.since).map(|t| super::clock::since(now, t));
        return Some(quiet.map(util::duration).unwrap_or_default());
    }
    if let (Some(since), Some(true)) = (log.since, log.writer_alive) {
        super::clock::at(now, log.health.last_line_at.unwrap_or(since) + log.config.stall_after);
    }
    None
}

/// The rows above the log text: latest values, a stall warning, the last error.
fn top_lines(state: &AppState, width: usize) -> Vec<Line<'static>> {
    let log = &state.log;
    let now = state.now;
    let run = log.run(now);
    if let Some(t) = log.health.last_line_at {
        // "last line 3s ago" on the run-state line.
        super::clock::since(now, t);
    }
    let mut top: Vec<Line> = vec![values_line(log, &run, width)];
    if let Some(l) = run_line(&run, width) {
        top.push(l);
    }
    if let Some(quiet) = stalled_for(state) {
        top.push(Line::styled(
            util::ellipsize(
                &format!("⚠ stalled: no new line for {quiet} while the log is still open for writing"),
                width,
            ),
            Style::new().fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    if let Some(e) = &log.health.last_error {
        let count = log.health.error_count();
        let text = format!("✖ {count} error{} · {}: {}", if count == 1 { "" } else { "s" }, e.kind.label(), e.message);
        let red = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
        top.push(Line::styled(util::ellipsize(&text, width), red));
        if let Some(h) = &e.hint {
            top.push(Line::styled(util::ellipsize(&format!("  hint: {h}"), width), Style::new().fg(Color::Red)));
        }
    }
    top
}

/// The row below the log text: the search prompt, a newer log, a read error, a rotation.
fn bottom_lines(state: &AppState, width: usize) -> Vec<Line<'static>> {
    let log = &state.log;
    let now = state.now;
    let mut bottom: Vec<Line> = Vec::new();
    if let Some(q) = state.log_search_input() {
        // A long query keeps its end, where the typing is; the hint goes first.
        let hint = "  enter find · esc cancel";
        let q = printable(q);
        let room = width.saturating_sub(2);
        let hint = if q.chars().count() + hint.chars().count() <= room { hint } else { "" };
        let q = util::ellipsize_start(&q, room.saturating_sub(hint.chars().count()));
        bottom.push(Line::from(vec![
            Span::styled("/", Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)),
            Span::raw(q),
            Span::styled("▏", Style::new().fg(Color::Cyan)),
            Span::styled(hint, super::dim()),
        ]));
    } else if let Some(newer) = &log.newer_log {
        let key = state.keymap.first_key(Action::LogSwitch).unwrap_or_default();
        bottom.push(Line::styled(
            util::ellipsize(&format!("newer log: {} — {key} to switch", short_path(state, newer)), width),
            Style::new().fg(Color::Yellow),
        ));
    } else if let Some(err) = &log.error {
        bottom.push(Line::styled(util::ellipsize(err, width), Style::new().fg(Color::Red)));
    } else if let (Some((note, at)), Some(path)) = (&log.last_event, &log.path)
        && now.duration_since(*at).is_ok_and(|d| d.as_secs() < 60)
    {
        super::clock::at(now, *at + std::time::Duration::from_secs(60));
        let what = if *note == TailNote::Truncated { "truncated" } else { "rotated" };
        let text = format!("log {what}; following {}", short_path(state, path));
        bottom.push(Line::styled(util::ellipsize(&text, width), super::dim()));
    }
    bottom
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

fn fmt_rate(v: f64) -> String {
    if v >= 1000.0 { format!("{:.1}k", v / 1000.0) } else { format!("{v:.0}") }
}

/// The run-state line: the trainer running (its pid) or stopped (how, when the log
/// says), and the time since the last line.
fn run_line(run: &RunStatus, width: usize) -> Option<Line<'static>> {
    let (mark, style) = match run.state {
        RunState::Running => ("▶ ", Style::new().fg(Color::Green)),
        RunState::Exited => ("■ ", Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)),
        RunState::Unknown if run.seconds_since_last_line.is_some() => ("? ", super::dim()),
        RunState::Unknown => return None,
    };
    Some(Line::styled(util::ellipsize(&format!("{mark}{}", run.text()), width), style))
}

fn values_line(log: &LogPanel, run: &RunStatus, width: usize) -> Line<'static> {
    let shown = run.shown_metrics(&log.metrics.latest);
    let m: &MetricsSnapshot = &shown;
    let label = super::dim();
    let value = Style::new().add_modifier(Modifier::BOLD);
    let mut spans: Vec<Span> = Vec::new();
    let mut push = |name: &str, v: String, style: Style| {
        if !spans.is_empty() {
            spans.push(Span::styled("  ", label));
        }
        spans.push(Span::styled(format!("{name} "), label));
        spans.push(Span::styled(v, style));
    };
    if let Some(step) = m.step {
        let v = match m.total_steps {
            Some(t) if t >= step => format!("{step}/{t}"),
            _ => step.to_string(),
        };
        push("step", v, value);
    }
    let bad = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
    if let Some(v) = m.loss {
        push("loss", fmt_value(v), if v.is_finite() { value.fg(Color::Cyan) } else { bad });
    }
    if let Some(v) = m.eval_loss {
        push("eval", fmt_value(v), if v.is_finite() { value.fg(Color::Yellow) } else { bad });
    }
    if let Some(v) = m.learning_rate {
        push("lr", format!("{v:.1e}"), value);
    }
    if let Some(v) = m.tokens_per_second {
        push("tok/s", fmt_rate(v), value);
    } else if let Some(v) = m.iterations_per_second {
        push("it/s", format!("{v:.2}"), value);
    }
    if let Some(v) = m.eta_seconds {
        let eta = if v <= 0.0 { "done".to_string() } else { util::duration(std::time::Duration::from_secs_f64(v)) };
        push("eta", eta, value);
    }
    if let Some(v) = m.grad_norm {
        push("gnorm", fmt_value(v), value);
    }
    if let Some(v) = m.epoch {
        push("epoch", format!("{v:.2}"), value);
    }
    if spans.is_empty() {
        spans.push(Span::styled("no metrics parsed yet", label));
    }
    if !log.backfill.done && log.backfill.total_bytes > 0 {
        let pct = log.backfill.read_bytes * 100 / log.backfill.total_bytes.max(1);
        spans.push(Span::styled(format!("  reading history {pct}%"), label));
    }
    let mut used = 0;
    let mut out = Vec::new();
    for s in spans {
        let w = s.width();
        if used + w > width {
            break;
        }
        used += w;
        out.push(s);
    }
    Line::from(out)
}

/// A line as styled pieces: the text with search matches marked, and the cut mark.
fn line_segments(log: &LogPanel, l: &ViewLine) -> Vec<(String, Style)> {
    let text = printable(&l.line.text);
    let base = match l.line.error {
        Some(_) => Style::new().fg(Color::Red),
        None => Style::new(),
    };
    let mark = Style::new().fg(Color::Black).bg(Color::Yellow);
    let current = Style::new().fg(Color::Black).bg(Color::LightYellow).add_modifier(Modifier::BOLD);
    let is_current = log.view.current_match() == Some(l.seq);
    let mut segs = Vec::new();
    let mut at = 0;
    for r in log.view.match_ranges(&text) {
        if r.start > at {
            segs.push((text[at..r.start].to_string(), base));
        }
        segs.push((text[r.clone()].to_string(), if is_current { current } else { mark }));
        at = r.end;
    }
    if at < text.len() {
        segs.push((text[at..].to_string(), base));
    }
    if l.line.truncated {
        segs.push((CUT_MARK.to_string(), super::dim()));
    }
    segs
}

/// The pieces' text between two byte offsets of their concatenation, keeping styles.
fn slice(segs: &[(String, Style)], range: std::ops::Range<usize>) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    let mut at = 0;
    for (text, style) in segs {
        let (s, e) = (at, at + text.len());
        at = e;
        let (from, to) = (range.start.max(s), range.end.min(e));
        if from < to {
            out.push(Span::styled(text[from - s..to - s].to_string(), *style));
        }
    }
    out
}

/// One row of `cols` cells from the pieces, scrolled `skip` cells sideways: a `…` at the
/// left when scrolled (then cell `skip` follows it), and at the right when the rest does
/// not fit. Never wider than
/// `cols`, so nothing is clipped silently at the panel's edge.
fn clip_row(segs: &[(String, Style)], skip: usize, cols: usize) -> Vec<Span<'static>> {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    let full: String = segs.iter().map(|(t, _)| t.as_str()).collect();
    let mut out = Vec::new();
    if cols == 0 {
        return out;
    }
    let mut room = cols;
    let mut start = 0;
    if skip > 0 {
        // The mark takes the first column; the text goes on from cell `skip`.
        let (rest, pad) = util::skip_cells(&full, skip);
        start = full.len() - rest.len();
        out.push(Span::styled("…", super::dim()));
        room -= 1;
        if pad > 0 && room > 0 {
            out.push(Span::raw(" "));
            room -= 1;
        }
    }
    let rest = &full[start..];
    if rest.width() <= room {
        out.extend(slice(segs, start..full.len()));
        return out;
    }
    let mut used = 0;
    let mut end = start;
    for (i, c) in rest.char_indices() {
        let w = c.width().unwrap_or(0);
        if used + w > room.saturating_sub(1) {
            break;
        }
        used += w;
        end = start + i + c.len_utf8();
    }
    out.extend(slice(segs, start..end));
    if room > 0 {
        out.push(Span::styled("…", super::dim()));
    }
    out
}

fn render_lines(state: &AppState, frame: &mut Frame, area: Rect) {
    let log = &state.log;
    if area.height == 0 || area.width == 0 {
        return;
    }
    let height = area.height as usize;
    let cols = area.width as usize;
    let show_partial = log.view.following() && log.view.partial.is_some() && !log.view.errors_only;
    let rows = if show_partial { height.saturating_sub(1).max(1) } else { height };
    let page = Page { rows, cols };
    let visible = log.view.visible(page);
    let mut lines: Vec<Line> = Vec::with_capacity(height);
    if visible.is_empty() {
        let text = if log.view.errors_only { "no error lines" } else { "waiting for lines…" };
        lines.push(Line::styled(text, super::dim()));
    }
    let skip = log.view.hscroll();
    // The cursor (paused) is drawn reversed, so it shows in any terminal, colours or not.
    let cursor = log.view.cursor().filter(|_| !log.view.following() && state.focus == Panel::Log);
    for l in visible {
        let segs = line_segments(log, l);
        let mut rows_of_line: Vec<Line> = Vec::new();
        if log.view.wrap {
            let full: String = segs.iter().map(|(t, _)| t.as_str()).collect();
            let wrapped = util::wrap_cells(&full, cols);
            let mut at = 0;
            for (i, row) in wrapped.iter().enumerate() {
                let start = at;
                at += row.len();
                if lines.len() + rows_of_line.len() + 1 >= rows && i + 1 < wrapped.len() {
                    // The window ends inside this line: its last row says it goes on.
                    rows_of_line.push(Line::from(clip_row(&restyle(&segs, start), 0, cols)));
                    break;
                }
                rows_of_line.push(Line::from(slice(&segs, start..at)));
            }
        } else {
            rows_of_line.push(Line::from(clip_row(&segs, skip, cols)));
        }
        if cursor == Some(l.seq) {
            for r in &mut rows_of_line {
                *r = std::mem::take(r).patch_style(Style::new().add_modifier(Modifier::REVERSED));
            }
        }
        lines.extend(rows_of_line);
        if lines.len() >= rows {
            break;
        }
    }
    if show_partial && let Some(p) = &log.view.partial {
        lines.push(Line::from(clip_row(&[(printable(p), super::dim())], skip, cols)));
    }
    lines.truncate(height);
    // Beside a run most rows are the lines the terminal shows already (only the progress
    // bar moved): in a frame drawn in parts those rows are kept, not drawn and compared again.
    super::text::put_lines_kept(frame.buffer_mut(), area, &lines);
}

/// The pieces from byte `from` of their concatenation on.
fn restyle(segs: &[(String, Style)], from: usize) -> Vec<(String, Style)> {
    let mut out = Vec::new();
    let mut at = 0;
    for (text, style) in segs {
        let (s, e) = (at, at + text.len());
        at = e;
        if e > from {
            out.push((text[from.max(s) - s..].to_string(), *style));
        }
    }
    out
}

/// The chart [`render_chart`] drew last: where, from which series, and its cells.
struct DrawnChart {
    area: Rect,
    loss: crate::logtail::Series,
    eval: crate::logtail::Series,
    cells: Vec<ratatui::buffer::Cell>,
}

thread_local! {
    static CHART: std::cell::RefCell<Option<DrawnChart>> = const { std::cell::RefCell::new(None) };
}

/// The loss chart on `area`, which must be blank (as a frame's buffer is before anything is
/// drawn there). It is a function of the two series and the area only, and it changes when
/// a point is added (an eval or logging step), not at every frame as the text beside it
/// does: the cells drawn are kept, and the same series on the same area are copied from
/// them instead of drawn again (drawing it was a quarter of the Log panel's cost beside a
/// run; docs/performance.md).
fn render_chart(log: &LogPanel, frame: &mut Frame, area: Rect) {
    let area = area.intersection(frame.area());
    let (loss, eval) = (&log.metrics.loss, &log.metrics.eval_loss);
    CHART.with_borrow_mut(|kept| {
        if let Some(k) = kept.as_ref().filter(|k| k.area == area && k.loss == *loss && k.eval == *eval) {
            // In a frame drawn in parts the terminal shows this chart already.
            if super::screen::keeping() {
                super::screen::keep(area);
                return;
            }
            super::text::put_cells(frame.buffer_mut(), area, &k.cells);
            return;
        }
        draw_chart(log, frame, area);
        let cells = super::text::cells_of(frame.buffer_mut(), area);
        *kept = Some(DrawnChart { area, loss: loss.clone(), eval: eval.clone(), cells });
    });
}

fn draw_chart(log: &LogPanel, frame: &mut Frame, area: Rect) {
    let loss = log.metrics.loss.points();
    let eval = log.metrics.eval_loss.points();
    let all = loss.iter().chain(eval.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let mut sets = vec![
        Dataset::default()
            .name("loss")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Cyan))
            .data(&loss),
    ];
    if !eval.is_empty() {
        sets.push(
            Dataset::default()
                .name("eval")
                .marker(Marker::Braille)
                .graph_type(if eval.len() > 1 { GraphType::Line } else { GraphType::Scatter })
                .style(Style::new().fg(Color::Yellow))
                .data(&eval),
        );
    }
    let label = super::dim();
    let chart = Chart::new(sets)
        .block(Block::new().title(Span::styled(" loss vs step", label)))
        .x_axis(
            Axis::default()
                .bounds([x0, x1])
                .style(label)
                .labels([Span::styled(format!("{x0:.0}"), label), Span::styled(format!("{x1:.0}"), label)]),
        )
        .y_axis(
            Axis::default()
                .bounds([y0, y1])
                .style(label)
                .labels([Span::styled(format!("{y0:.2}"), label), Span::styled(format!("{y1:.2}"), label)]),
        );
    frame.render_widget(chart, area);
}

/// The log switcher: candidate logs, newest first.
pub fn render_switcher(state: &AppState, frame: &mut Frame, area: Rect) {
    let Some(selected) = state.log_switcher() else { return };
    let now: SystemTime = state.now;
    let mut lines: Vec<Line> = Vec::new();
    let width = (area.width as usize).saturating_sub(6).min(110);
    for (i, c) in state.log.candidates.iter().enumerate() {
        let age = if c.modified <= now { util::duration(super::clock::since(now, c.modified)) } else { "now".into() };
        let mut tags = Vec::new();
        if state.log.path.as_ref() == Some(&c.path) {
            tags.push("following");
        }
        if state.log.newer_log.as_ref() == Some(&c.path) {
            tags.push("newer");
        }
        let tags = if tags.is_empty() { String::new() } else { format!(" ({})", tags.join(", ")) };
        let right = format!("{:>9}  {:>7} ago{tags}", util::bytes(c.size_bytes), age);
        let name = util::ellipsize(&short_path(state, &c.path), width.saturating_sub(right.chars().count() + 3));
        let text = format!(
            "{} {name:<w$} {right}",
            if i == selected { "›" } else { " " },
            w = width.saturating_sub(right.chars().count() + 3)
        );
        let style = if i == selected { Style::new().fg(Color::Black).bg(Color::Cyan) } else { Style::new() };
        lines.push(Line::styled(text, style));
    }
    if lines.is_empty() {
        lines.push(Line::styled("no log found in this workspace", super::dim()));
    }
    lines.push(Line::styled("↑/↓ choose · enter follow · esc close", super::dim()));
    let h = (lines.len() as u16 + 2).min(area.height);
    let popup = super::centered(area, (width as u16 + 4).min(area.width), h);
    let block = Block::bordered().title(" Logs in this workspace ").border_style(Style::new().fg(Color::Cyan));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}

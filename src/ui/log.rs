//! The Log panel: the latest values, a loss-vs-step chart with eval loss, and the log's
//! lines with errors and search matches highlighted. Reads the state only.

use std::time::SystemTime;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Clear, Dataset, GraphType, Paragraph, Wrap};

use crate::app::{Action, AppState, LogPanel, Panel};
use crate::logtail::{MetricsSnapshot, RunState, RunStatus, TailNote};
use crate::util;

/// Rows of log text the Log panel shows on the state's terminal (for paging keys and
/// centring a search match): the same layout `render` draws.
pub(super) fn log_page(state: &AppState) -> usize {
    let (w, h) = state.size;
    let body = Rect { x: 0, y: 0, width: w, height: h.saturating_sub(2) };
    let area = super::panel_areas(state, body).log;
    let inner = Block::bordered().inner(area);
    let (top, bottom) = (top_lines(state, inner.width as usize).len(), bottom_lines(state, inner.width as usize).len());
    let body_h = (inner.height as usize).saturating_sub(top + bottom);
    let chart_on_top = has_chart(&state.log) && inner.width < 100 && body_h >= 14;
    let rows = if chart_on_top { body_h - body_h * 2 / 5 } else { body_h };
    rows.max(1)
}

fn has_chart(log: &LogPanel) -> bool {
    log.metrics.loss.points().len() >= 2
}

fn short_path(state: &AppState, p: &std::path::Path) -> String {
    p.strip_prefix(&state.workspace_root).unwrap_or(p).display().to_string()
}

pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    let log = &state.log;
    let mut title = String::from(" Log ");
    if let Some(p) = &log.path {
        title.push_str(&short_path(state, p));
        if let Some(size) = log.size_bytes {
            title.push_str(&format!(" · {}", util::bytes(size)));
        }
        if !log.view.following() {
            title.push_str(" · paused");
        }
        if log.view.errors_only {
            title.push_str(" · errors only");
        }
        title.push(' ');
    }
    let block = super::panel_block(state, Panel::Log, title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if log.path.is_none() {
        let text = "No training log found yet: looking for the newest *.log under experiments/*/logs/, \
                    else anywhere in the workspace (set log.path or log.glob in opsconsole.toml).";
        frame.render_widget(Paragraph::new(text).style(super::dim()).wrap(Wrap { trim: true }), inner);
        return;
    }
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    let width = inner.width as usize;
    let top = top_lines(state, width);
    let bottom = bottom_lines(state, width);
    let n_top = (top.len() as u16).min(inner.height);
    let n_bottom = (bottom.len() as u16).min(inner.height.saturating_sub(n_top));
    let [top_area, body, bottom_area] =
        Layout::vertical([Constraint::Length(n_top), Constraint::Min(0), Constraint::Length(n_bottom)]).areas(inner);
    frame.render_widget(Paragraph::new(top), top_area);
    frame.render_widget(Paragraph::new(bottom), bottom_area);

    let has_chart = has_chart(log);
    let (lines_area, chart_area) = if has_chart && body.width >= 100 && body.height >= 6 {
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
    render_lines(log, frame, lines_area);
    if let Some(c) = chart_area {
        render_chart(log, frame, c);
    }
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
        bottom.push(Line::from(vec![
            Span::styled("/", Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)),
            Span::raw(q.to_string()),
            Span::styled("▏", Style::new().fg(Color::Cyan)),
            Span::styled("  enter find · esc cancel", super::dim()),
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
        bottom.push(Line::styled(format!("log {what}; following {}", short_path(state, path)), super::dim()));
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

/// Control characters shown as spaces, one byte for one byte (search ranges stay valid).
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() && c.is_ascii() { ' ' } else { c }).collect()
}

fn render_lines(log: &LogPanel, frame: &mut Frame, area: Rect) {
    if area.height == 0 {
        return;
    }
    let height = area.height as usize;
    let show_partial = log.view.following() && log.view.partial.is_some() && !log.view.errors_only;
    let rows = if show_partial { height.saturating_sub(1).max(1) } else { height };
    let visible = log.view.visible(rows);
    let mut lines: Vec<Line> = Vec::with_capacity(height);
    if visible.is_empty() {
        let text = if log.view.errors_only { "no error lines" } else { "waiting for lines…" };
        lines.push(Line::styled(text, super::dim()));
    }
    let mark = Style::new().fg(Color::Black).bg(Color::Yellow);
    let current = Style::new().fg(Color::Black).bg(Color::LightYellow).add_modifier(Modifier::BOLD);
    for l in visible {
        let text = printable(&l.line.text);
        let base = match l.line.error {
            Some(_) => Style::new().fg(Color::Red),
            None => Style::new(),
        };
        let ranges = log.view.match_ranges(&text);
        let is_current = log.view.current_match() == Some(l.seq);
        let mut spans = Vec::new();
        let mut at = 0;
        for r in ranges {
            if r.start > at {
                spans.push(Span::styled(text[at..r.start].to_string(), base));
            }
            spans.push(Span::styled(text[r.clone()].to_string(), if is_current { current } else { mark }));
            at = r.end;
        }
        if at < text.len() {
            spans.push(Span::styled(text[at..].to_string(), base));
        }
        if l.line.truncated {
            spans.push(Span::styled(" …(cut)", super::dim()));
        }
        lines.push(Line::from(spans));
    }
    if show_partial && let Some(p) = &log.view.partial {
        lines.push(Line::styled(printable(p), super::dim()));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

fn render_chart(log: &LogPanel, frame: &mut Frame, area: Rect) {
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

//! The pre-shutdown checklist screen (`x`), and the header's idle banner and address.

use std::time::Duration;

use super::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use crate::app::checklist::{ShutdownProgress, idle_status};
use crate::app::{Action, AppState};
use crate::checklist::idle::IdleState;
use crate::checklist::{Item, Status};
use crate::util;

fn key(state: &AppState, a: Action, fallback: &str) -> String {
    state.keymap.first_key(a).unwrap_or_else(|| fallback.into())
}

/// The key of an action named in a fix (`sync_now`), as the keymap has it.
fn action_key(state: &AppState, name: &str) -> Option<String> {
    Action::ALL.iter().find(|a| a.name() == name).and_then(|a| state.keymap.first_key(*a))
}

/// The header's idle span, when idle for `idle.after` or longer: a full and a short form.
pub fn idle_banner(state: &AppState) -> Option<(String, String)> {
    let s = idle_status(state);
    if let Some(since) = state.idle.since().filter(|_| s.state == IdleState::Idle) {
        if !s.banner {
            super::clock::at(state.now, since + state.config.idle.after);
        } else if s.cost_since.is_some() {
            // The cost counts up in cents, at no fixed step.
            super::clock::every_tick(state.now);
        } else {
            super::clock::since(state.now, since);
        }
    }
    let k = key(state, Action::Checklist, "x");
    let short = match s.cost_since {
        Some(c) => format!("idle {} {}{c:.2} · {k}", util::duration(Duration::from_secs(s.idle_seconds)), s.currency),
        None => format!("idle {} · {k}", util::duration(Duration::from_secs(s.idle_seconds))),
    };
    s.banner.then(|| (format!("{} · {k} checklist", s.banner_text()), short))
}

/// Words cut to lines of `width`, at most `max` lines (the last one ellipsized).
fn wrap(text: &str, width: usize, max: usize) -> Vec<String> {
    let width = width.max(8);
    let mut lines = super::wrap_words(text.split(' '), width, width);
    if lines.len() > max {
        let rest = lines[max - 1..].join(" ");
        lines.truncate(max - 1);
        lines.push(util::ellipsize(&rest, width));
    }
    lines.into_iter().map(|l| util::ellipsize(&l, width)).collect()
}

fn item_lines(state: &AppState, item: &Item, width: usize, reason_lines: usize, titles: bool) -> Vec<Line<'static>> {
    let overridden = item.status == Status::Fail && state.checklist.overrides.contains(&item.name);
    let (mark, style) = match item.status {
        Status::Pass => ("✓", Style::new().fg(Color::Green)),
        Status::Fail if overridden => ("!", Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)),
        Status::Fail => ("✗", Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
        Status::Off => ("-", super::dim()),
    };
    let name_w = 13;
    let text_w = width.saturating_sub(name_w + 3);
    let mut reason = item.reason.clone();
    if overridden {
        reason = format!("OVERRIDDEN: {reason}");
    }
    if item.status == Status::Off {
        reason = format!("off: {reason}");
    }
    if let Some(at) = item.checked_unix {
        let age = state.now_unix().saturating_sub(at);
        reason.push_str(&format!(" (ran {} ago)", util::duration(Duration::from_secs(age))));
    }
    let reason_style = match item.status {
        Status::Off => super::dim(),
        _ => Style::new(),
    };
    let mut out = Vec::new();
    if titles && !item.title.is_empty() {
        out.push(Line::from(vec![
            Span::styled(format!("{mark} "), style),
            Span::styled(format!("{:<name_w$}", util::ellipsize(&item.name, name_w - 1)), style),
            Span::raw(" "),
            Span::styled(util::ellipsize(&item.title, text_w), Style::new().add_modifier(Modifier::BOLD)),
        ]));
    }
    for (i, l) in wrap(&reason, text_w, reason_lines).into_iter().enumerate() {
        let titled = titles && !item.title.is_empty();
        let head = if i == 0 && !titled {
            vec![
                Span::styled(format!("{mark} "), style),
                Span::styled(format!("{:<name_w$}", util::ellipsize(&item.name, name_w - 1)), style),
                Span::raw(" "),
            ]
        } else {
            vec![Span::raw(" ".repeat(name_w + 3))]
        };
        let mut spans = head;
        spans.push(Span::styled(l, reason_style));
        out.push(Line::from(spans));
    }
    if item.status == Status::Fail
        && !overridden
        && let Some(fix) = &item.fix
    {
        let mut spans = vec![Span::raw(" ".repeat(name_w + 3)), Span::styled("fix: ", super::dim())];
        let mut used = name_w + 3 + 5;
        if let Some(k) = fix.action.as_deref().and_then(|a| action_key(state, a)) {
            spans.push(Span::styled(format!(" {k} "), Style::new().fg(Color::Black).bg(Color::Cyan)));
            spans.push(Span::raw(" "));
            used += k.chars().count() + 3;
        }
        let mut words = fix.words.clone();
        if let Some(c) = &fix.command
            && !words.contains(c.as_str())
        {
            words.push_str(&format!(" · `{c}`"));
        }
        spans.push(Span::styled(util::ellipsize(&words, width.saturating_sub(used)), Style::new().fg(Color::Cyan)));
        out.push(Line::from(spans));
    }
    out
}

/// The checklist screen over the panels.
pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    let c = &state.checklist;
    let block = Block::bordered().title(" Pre-shutdown checklist ").border_style(Style::new().fg(Color::Cyan));
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let [head, list, foot] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(3)]).areas(inner);

    // What it comes to.
    let summary = match &c.report {
        None => Line::styled("checking…", super::dim()),
        Some(r) => {
            let age = util::duration(Duration::from_secs(state.now_unix().saturating_sub(r.taken_unix)));
            let again = if c.gathering { " · checking again…" } else { "" };
            let unresolved = c.unresolved();
            let enabled = r.items.iter().filter(|i| i.status != Status::Off).count();
            if r.ok {
                Line::styled(
                    util::ellipsize(
                        &format!("every item passes: nothing is lost by shutting down · checked {age} ago{again}"),
                        width,
                    ),
                    Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
                )
            } else if unresolved.is_empty() {
                Line::styled(
                    util::ellipsize(
                        &format!(
                            "{} of {enabled} failing, each overridden: {} · checked {age} ago{again}",
                            r.failing.len(),
                            r.failing.join(", ")
                        ),
                        width,
                    ),
                    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                )
            } else {
                Line::styled(
                    util::ellipsize(
                        &format!(
                            "{} of {enabled} failing: {} · checked {age} ago{again}",
                            r.failing.len(),
                            r.failing.join(", ")
                        ),
                        width,
                    ),
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                )
            }
        }
    };
    frame.render_widget(Paragraph::new(summary), head);

    // The items: reasons get more lines on a tall screen.
    if let Some(r) = &c.report {
        let reason_lines = if list.height >= 30 { 3 } else { 1 };
        // Each item's question above its answer, where the screen has room for both.
        let fixes = r.items.iter().filter(|i| i.status == Status::Fail).count();
        let titles = list.height as usize >= 2 * r.items.len() + fixes + 2;
        let mut lines: Vec<Line> = Vec::new();
        for item in r.items.iter().skip(c.scroll) {
            lines.extend(item_lines(state, item, width, reason_lines, titles));
        }
        let rows = list.height as usize;
        let more = lines.len() > rows;
        lines.truncate(rows);
        if more && let Some(last) = lines.last_mut() {
            *last = Line::styled(
                format!("↓ more ({}/{} scroll)", key(state, Action::Down, "j"), key(state, Action::Up, "k")),
                super::dim(),
            );
        }
        frame.render_widget(Paragraph::new(lines), list);
    }

    // Idle and cost, the command, the prompt or message (the footer names the keys).
    let mut foot_lines = Vec::new();
    let idle = idle_status(state);
    let price = idle
        .hourly_price
        .map(|p| format!(" at {}{p:.2}/h ({})", idle.currency, idle.tier.clone().unwrap_or_default()))
        .unwrap_or_else(|| match &idle.tier {
            Some(t) => format!(" (no price for {t}: set idle.hourly_price.{t})"),
            None => String::new(),
        });
    let idle_text = match idle.state {
        IdleState::Idle => {
            let est = if idle.estimated { " (since the last log or checkpoint write)" } else { "" };
            format!("{}{price}{est}", idle.banner_text())
        }
        IdleState::Busy => {
            let cost = idle.hourly_price.map(|p| format!(" · {}{p:.2}/h", idle.currency)).unwrap_or_default();
            format!("in use ({}){cost}", idle.reason)
        }
        IdleState::Unknown => format!("idle: unknown ({})", idle.reason),
    };
    let ip = state.external_ip.as_ref().map(|a| format!(" · external address {a}")).unwrap_or_default();
    foot_lines.push(Line::styled(util::ellipsize(&format!("{idle_text}{ip}"), width), super::dim()));
    let command = state.config.shutdown.command.trim();
    let cmd_line = if command.is_empty() {
        Line::styled(
            util::ellipsize("shutdown: no command set ([shutdown] command in opsconsole.toml)", width),
            Style::new().fg(Color::Yellow),
        )
    } else {
        let status = match &c.shutdown {
            Some(ShutdownProgress::Checking) => " · checking before shutting down…".to_string(),
            Some(ShutdownProgress::Started { pid, .. }) => format!(" · RUNNING (pid {pid})"),
            Some(ShutdownProgress::Exited { code: Some(0), .. }) => " · done".to_string(),
            Some(ShutdownProgress::Exited { .. }) => " · FAILED".to_string(),
            None => String::new(),
        };
        Line::styled(util::ellipsize(&format!("shutdown: `{command}`{status}"), width), super::dim())
    };
    foot_lines.push(cmd_line);
    let prompt = if let Some(typed) = &c.typing {
        let failing = c.unresolved();
        Line::from(vec![
            Span::styled(
                util::ellipsize(&format!("Override ({}), enter: ", failing.join(" ")), width.saturating_sub(12)),
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("{typed}_")),
        ])
    } else if c.confirming {
        let over = if c.overrides.is_empty() {
            String::new()
        } else {
            format!(" with {} overridden", c.overrides.iter().cloned().collect::<Vec<_>>().join(", "))
        };
        Line::styled(
            util::ellipsize(
                &format!(
                    "Shut down now{over}? {} yes · {} no (every item is checked again first)",
                    key(state, Action::Confirm, "y"),
                    key(state, Action::Deny, "n")
                ),
                width,
            ),
            Style::new().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
        )
    } else if let Some(m) = &c.message {
        Line::styled(util::ellipsize(m, width), Style::new().fg(Color::Yellow))
    } else {
        Line::raw("")
    };
    foot_lines.push(prompt);
    frame.render_widget(Paragraph::new(foot_lines), foot);
}

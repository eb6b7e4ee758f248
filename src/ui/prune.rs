//! The prune plan screen, the disk guard banner, and the disk panel's checkpoint lines.

use super::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use crate::app::prune::{CopyMark, OVERRIDE_WORD, banner};
use crate::app::{Action, AppState};
use crate::checkpoints::{PlanAction, PlanItem};
use crate::util;

fn key(state: &AppState, a: Action, fallback: &str) -> String {
    state.keymap.first_key(a).unwrap_or_else(|| fallback.into())
}

/// The banner line, when a disk is critical or will be full within the hour.
pub fn banner_line(state: &AppState, width: usize) -> Option<Line<'static>> {
    let b = banner(state)?;
    Some(Line::styled(util::ellipsize(&b.text, width), super::level_style(b.level)))
}

/// The checkpoint and usage lines under the disks.
pub fn disk_extras(state: &AppState, width: usize) -> Vec<Line<'static>> {
    let Some(s) = &state.prune.sample else {
        return vec![];
    };
    let mut out = Vec::new();
    let p = key(state, Action::Prune, "p");
    let mut ck = format!("{} {}", plural(s.checkpoints.len(), "checkpoint"), util::bytes(s.total_bytes));
    let writing = s.writing();
    if writing > 0 {
        ck.push_str(&format!(" ({writing} writing)"));
    }
    let hint = format!("  [{p}] prune");
    let mut spans = vec![Span::raw(util::ellipsize(&ck, width.saturating_sub(hint.chars().count())))];
    spans.push(Span::styled(hint, Style::new().fg(Color::Cyan)));
    out.push(Line::from(spans));
    let u = &s.usage;
    let usage = format!(
        "ckpt {} logs {} data {} other {}",
        util::bytes(u.checkpoints_bytes),
        util::bytes(u.logs_bytes),
        util::bytes(u.data_bytes),
        util::bytes(u.other_bytes)
    );
    out.push(Line::styled(util::ellipsize(&usage, width), super::dim()));
    if let Some(job) = state.prune.job.as_ref().filter(|j| j.running) {
        let t = format!("pruning {}/{} · freed {}", job.done, job.total, util::bytes(job.freed_bytes));
        out.push(Line::styled(util::ellipsize(&t, width), Style::new().fg(Color::Yellow)));
    }
    out
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// The confirmations column: `✓` confirmed there, `✗` not (the level takes such files),
/// `·` the level does not take it, `—` the level is not configured.
fn copies_spans(marks: Option<&[(&'static str, CopyMark); 2]>) -> Vec<Span<'static>> {
    let Some(marks) = marks else { return vec![Span::raw(" ".repeat(COPIES_W))] };
    let mut out = Vec::new();
    for (_, m) in marks {
        let (t, style) = match m {
            CopyMark::Confirmed => ("✓", Style::new().fg(Color::Green)),
            CopyMark::Missing => ("✗", Style::new().fg(Color::Red)),
            CopyMark::NotTaken => ("·", super::dim()),
            CopyMark::NotConfigured => ("—", super::dim()),
        };
        out.push(Span::styled(format!("{t:<3}"), style));
    }
    out
}

/// `L2 L3 `: two levels of three columns each.
const COPIES_W: usize = 6;

fn row(
    item: &PlanItem,
    marks: Option<&[(&'static str, CopyMark); 2]>,
    root: &std::path::Path,
    width: usize,
) -> Line<'static> {
    let (label, style) = match item.action {
        PlanAction::Delete if item.unconfirmed_override => {
            ("DELETE", Style::new().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD))
        }
        PlanAction::Delete => ("delete", Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
        PlanAction::Keep => ("keep", Style::new().fg(Color::Green)),
    };
    let mut path = item.path.strip_prefix(root).unwrap_or(&item.path).display().to_string();
    if let Some(note) = &item.note {
        path.push_str(&format!(" · {note}"));
    }
    let step = item.step.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    let fixed = 7 + 18 + 10 + 9 + COPIES_W;
    let mut spans = vec![
        Span::styled(format!("{label:<6}"), style),
        Span::raw(" "),
        Span::styled(format!("{:<17}", item.reason.as_str()), super::dim()),
        Span::raw(" "),
        Span::raw(format!("{:>9}", util::bytes(item.bytes))),
        Span::raw(" "),
        Span::styled(format!("{step:>8}"), super::dim()),
        Span::raw(" "),
    ];
    spans.extend(copies_spans(marks));
    spans.push(Span::raw(util::ellipsize(&path, width.saturating_sub(fixed))));
    Line::from(spans)
}

/// The prune plan screen: every checkpoint with keep/delete and why, bytes to free and the
/// fill after; `y` runs it; unconfirmed deletions need the word typed.
pub fn render_plan(state: &AppState, frame: &mut Frame, area: Rect) {
    let s = &state.prune.screen;
    let block = Block::bordered().title(" Prune plan ").border_style(Style::new().fg(Color::Cyan));
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let [head, table, foot] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(1), Constraint::Length(2)]).areas(inner);

    let mut head_lines = Vec::new();
    match (&s.plan, s.planning) {
        (None, true) => head_lines.push(Line::styled("planning…", super::dim())),
        (Some(p), planning) => {
            let mut t =
                format!("delete {} of {} · free {}", p.delete_count, p.items.len(), util::bytes(p.bytes_to_free));
            if let Some(fill) = p.fill_text(&state.workspace_root, "→") {
                t.push_str(&format!(" · {fill}"));
            }
            if planning {
                t.push_str(" · re-planning…");
            }
            head_lines.push(Line::styled(util::ellipsize(&t, width), Style::new().add_modifier(Modifier::BOLD)));
            let u = key(state, Action::IncludeUnsynced, "u");
            let second = if s.allow_unconfirmed && p.unconfirmed_deletes == 0 {
                // On, but nothing in this plan depends on it: no alarm, only the state.
                Line::styled(
                    util::ellipsize(
                        &format!("unconfirmed copies included: none in this plan · {u} to turn off"),
                        width,
                    ),
                    Style::new().fg(Color::Yellow),
                )
            } else if s.allow_unconfirmed {
                Line::styled(
                    util::ellipsize(
                        &format!("INCLUDING {} unconfirmed (only copy) · {u} to keep them", p.unconfirmed_deletes),
                        width,
                    ),
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                )
            } else if p.kept_unconfirmed > 0 {
                let failed = p.items.iter().filter(|i| i.note.is_some()).count();
                let failed = if failed > 0 { format!(" ({failed} failed verification)") } else { String::new() };
                Line::styled(
                    util::ellipsize(
                        &format!(
                            "{} kept: not confirmed on another level{failed} · {u} to delete them too",
                            p.kept_unconfirmed
                        ),
                        width,
                    ),
                    Style::new().fg(Color::Yellow),
                )
            } else {
                Line::styled("every candidate is confirmed elsewhere", super::dim())
            };
            head_lines.push(second);
        }
        (None, false) => head_lines.push(Line::styled("no plan", super::dim())),
    }
    frame.render_widget(Paragraph::new(head_lines), head);

    if let Some(p) = &s.plan {
        let rows = table.height as usize;
        let mut lines = vec![Line::styled(
            util::ellipsize(&format!("{:<6} {:<17} {:>9} {:>8} L2 L3 path", "action", "reason", "size", "step"), width),
            super::dim().add_modifier(Modifier::UNDERLINED),
        )];
        if p.items.is_empty() {
            lines.push(Line::styled("no checkpoints found in the configured roots", super::dim()));
        }
        let visible = rows.saturating_sub(1);
        let start = s.scroll.min(p.items.len().saturating_sub(visible.max(1)));
        for (i, item) in p.items.iter().enumerate().skip(start).take(visible) {
            lines.push(row(item, s.copies.get(i), &state.workspace_root, width));
        }
        // What the confirmations column's marks mean, below the rows when they leave room.
        if !p.items.is_empty() && rows >= lines.len() + 2 {
            lines.push(Line::raw(""));
            lines.push(Line::styled(
                util::ellipsize("L2 L3: ✓ confirmed · ✗ missing · · not taken by the level · — no such level", width),
                super::dim(),
            ));
        }
        frame.render_widget(Paragraph::new(lines), table);
    }

    let mut foot_lines = Vec::new();
    if let Some(job) = &state.prune.job
        && job.running
    {
        let t = format!(
            "running {}/{} · freed {} · {}",
            job.done,
            job.total,
            util::bytes(job.freed_bytes),
            job.last_item.clone().unwrap_or_default()
        );
        foot_lines.push(Line::styled(util::ellipsize(&t, width), Style::new().fg(Color::Yellow)));
    }
    if let Some(m) = &s.message {
        // Wrapped, not cut: a prune result's reasons come after its counts.
        for line in m.lines() {
            for part in super::wrap_words(line.split(' '), width, width) {
                foot_lines.push(Line::styled(util::ellipsize(&part, width), Style::new().fg(Color::Yellow)));
            }
        }
    }
    if let Some(typed) = &s.typing {
        let n = s.plan.as_ref().map_or(0, |p| p.unconfirmed_deletes);
        foot_lines.push(Line::from(vec![
            Span::styled(
                format!("Type `{OVERRIDE_WORD}` and enter to delete {n} unconfirmed: "),
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("{typed}_")),
        ]));
    }
    // The keys are in the footer (`app::hints`), which follows the prompt.
    foot_lines.truncate(2);
    frame.render_widget(Paragraph::new(foot_lines), foot);
}

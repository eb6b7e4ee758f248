use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::{AppState, Panel};
use crate::disk::DiskInfo;
use crate::util;

/// The disk panel: every filesystem holding the workspace, its checkpoints, its data and
/// `/`, with fill against the crash-loop thresholds.
pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    let t = state.disk.thresholds;
    let title = format!(" Disk · warn {:.0}% crit {:.0}% ", t.warn_pct, t.critical_pct);
    let block = super::panel_block(state, Panel::Disk, title);
    let inner = block.inner(area);
    let Some(sample) = &state.disk.sample else {
        frame.render_widget(Paragraph::new("sampling filesystems…").style(super::dim()).block(block), area);
        return;
    };
    let width = inner.width as usize;
    let wide = width >= 64;
    // The most urgent filesystem first, so a critical one is never scrolled out of sight.
    let mut disks: Vec<&DiskInfo> = sample.disks.iter().collect();
    disks.sort_by_key(|d| std::cmp::Reverse(d.level));
    let per_disk = if wide { 1 } else { 2 };
    let banner = super::prune::banner_line(state, width);
    let extras = super::prune::disk_extras(state, width);
    let height = (inner.height as usize).saturating_sub(extras.len() + usize::from(banner.is_some()));
    let shown = disks.len().saturating_sub(state.disk.scroll);
    let fits = if shown * per_disk <= height { shown } else { height.saturating_sub(1) / per_disk };
    let mut lines: Vec<Line> = banner.into_iter().collect();
    let rows: Vec<(&DiskInfo, Option<String>)> =
        disks.iter().skip(state.disk.scroll).take(fits).map(|d| (*d, state.prune.growth_text(&d.mount))).collect();
    let columns = Columns::new(&rows, width);
    for (d, growth) in rows {
        if wide {
            lines.push(wide_line(d, &columns, growth));
        } else {
            lines.extend(narrow_lines(d, width, growth));
        }
    }
    if fits < shown {
        lines.push(Line::styled(format!("↓ {} more (focus with tab, then j/k)", shown - fits), super::dim()));
    }
    for e in &sample.errors {
        lines.push(Line::styled(util::ellipsize(e, width), super::dim()));
    }
    if sample.disks.is_empty() && sample.errors.is_empty() {
        lines.push(Line::styled("no filesystem found", super::dim()));
    }
    lines.extend(extras);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn pair(d: &DiskInfo) -> String {
    format!("{} / {}", util::bytes(d.used_bytes), util::bytes(d.total_bytes))
}

/// The wide layout's columns, the same for every row shown: mount, pct, bar, used/total,
/// level, then roles (or growth and time to full when growing) in what is left.
struct Columns {
    width: usize,
    mount_w: usize,
    pair_w: usize,
    bar_w: usize,
}

impl Columns {
    fn new(rows: &[(&DiskInfo, Option<String>)], width: usize) -> Self {
        let mount_w = 14.min(width / 4);
        let pair_w = rows.iter().map(|(d, _)| pair(d).chars().count()).max().unwrap_or(0);
        let tail_w =
            rows.iter().map(|(d, g)| g.clone().unwrap_or_else(|| d.roles.join(",")).chars().count()).max().unwrap_or(0);
        let fixed = mount_w + 1 + 5 + 1 + pair_w + 2 + 8;
        // The bar takes what the longest role text leaves, but at least 6 cells: the roles
        // are cut (with …) before the bar becomes unreadable.
        let bar_w = width.saturating_sub(fixed + tail_w + 2).clamp(6, 30);
        Self { width, mount_w, pair_w, bar_w }
    }
}

fn wide_line(d: &DiskInfo, c: &Columns, growth: Option<String>) -> Line<'static> {
    let style = super::level_style(d.level);
    let (mount_w, pair_w, bar_w) = (c.mount_w, c.pair_w, c.bar_w);
    let pair = format!("{:<pair_w$}", pair(d));
    let used = mount_w + 1 + 5 + 1 + bar_w + 1 + pair_w + 2 + 8;
    let roles = growth.unwrap_or_else(|| d.roles.join(","));
    let roles = util::ellipsize(&roles, c.width.saturating_sub(used + 1));
    Line::from(vec![
        Span::styled(
            format!("{:<mount_w$}", util::ellipsize(&d.mount, mount_w)),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(" "),
        Span::styled(format!("{:>4}%", d.use_pct()), style),
        Span::raw(" "),
        Span::styled(util::bar(d.fill_pct, bar_w), style),
        Span::raw(format!(" {pair}  ")),
        Span::styled(format!("{:<8}", d.level.as_str()), style),
        Span::styled(format!(" {roles}"), super::dim()),
    ])
}

fn narrow_lines(d: &DiskInfo, width: usize, growth: Option<String>) -> Vec<Line<'static>> {
    let style = super::level_style(d.level);
    let mount_w = 10.min(width / 3);
    let bar_w = width.saturating_sub(mount_w + 1 + 5 + 1 + 1 + 8).clamp(3, 20);
    let first = Line::from(vec![
        Span::styled(
            format!("{:<mount_w$}", util::ellipsize(&d.mount, mount_w)),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(" "),
        Span::styled(format!("{:>4}%", d.use_pct()), style),
        Span::raw(" "),
        Span::styled(util::bar(d.fill_pct, bar_w), style),
        Span::raw(" "),
        Span::styled(d.level.as_str().to_string(), style),
    ]);
    let tail = growth.unwrap_or_else(|| d.roles.join(","));
    let second = format!("  {} · {} free · {tail}", pair(d), util::bytes(d.available_bytes));
    vec![first, Line::styled(util::ellipsize(&second, width), super::dim())]
}

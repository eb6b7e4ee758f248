use super::Frame;
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
        frame.render_widget(Paragraph::new("sampling filesystems…").style(super::dim()).block(block.to_block()), area);
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
    let rows: Vec<(&DiskInfo, Tail)> =
        disks.iter().skip(state.disk.scroll).take(fits).map(|d| (*d, tail(state, d))).collect();
    let columns = Columns::new(&rows, width);
    for (d, tail) in rows {
        if wide {
            lines.push(wide_line(d, &columns, &tail));
        } else {
            lines.extend(narrow_lines(d, width, &tail));
        }
    }
    // The data folder on a mount the disk list leaves out (a FUSE mount), from the rules.
    if let Some(fs) = data_fs(state).filter(|f| !sample.disks.iter().any(|d| d.mount == f.mount)) {
        let style = if fs.network { super::level_style(crate::disk::Level::Critical) } else { super::dim() };
        let on = if fs.mount == fs.path { String::new() } else { format!(" on {}", fs.mount) };
        let net = if fs.network { " (network)" } else { "" };
        let text = format!("data {}{on}: {}{net}", fs.path, fs.fs_type);
        lines.push(Line::styled(util::ellipsize(&text, width), style));
    }
    if fits < shown {
        let more = format!("↓ {} more (focus with tab, then j/k)", shown - fits);
        lines.push(Line::styled(util::ellipsize(&more, width), super::dim()));
    }
    for e in &sample.errors {
        lines.push(Line::styled(util::ellipsize(e, width), super::dim()));
    }
    if sample.disks.is_empty() && sample.errors.is_empty() {
        lines.push(Line::styled("no filesystem found", super::dim()));
    }
    lines.extend(extras);
    super::text::put_block_lines(frame.buffer_mut(), area, &block, &lines);
}

/// The data folder's filesystem, as the rules collector found it.
fn data_fs(state: &AppState) -> Option<&crate::rules::data::DataFs> {
    state.rules.as_ref().and_then(|r| r.data_local.data_fs.as_ref())
}

/// The roles of a disk; the data role names its filesystem kind (`data ext4`), so a data
/// folder on a network mount is seen at a glance.
fn roles_text(state: &AppState, d: &DiskInfo) -> String {
    d.roles
        .iter()
        .map(|r| match r.as_str() {
            "data" => {
                let kind = data_fs(state).filter(|f| f.mount == d.mount).map_or(d.fs_type.as_str(), |f| &f.fs_type);
                format!("data {kind}")
            }
            r => r.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What follows a disk's fill, in order of importance: the time to full (the number the
/// crash-loop rule is about), the growth rate, then the roles.
struct Tail {
    full: Option<String>,
    growth: Option<String>,
    roles: String,
}

impl Tail {
    /// `full 6h00m · +10.0 GB/h · workspace,checkpoints`: cut from the end, so the time to
    /// full is the last thing to go.
    fn joined(&self) -> String {
        let mut parts: Vec<&str> = self.full.iter().chain(self.growth.iter()).map(String::as_str).collect();
        if !self.roles.is_empty() {
            parts.push(&self.roles);
        }
        parts.join(" · ")
    }
}

fn tail(state: &AppState, d: &DiskInfo) -> Tail {
    let f = state.prune.forecast(&d.mount).filter(|f| f.growth_bytes_per_hour.is_some_and(|r| r > 0.0));
    Tail {
        full: f
            .and_then(|f| f.seconds_to_full)
            .filter(|t| *t > 0)
            .map(|t| format!("full {}", util::duration(std::time::Duration::from_secs(t)))),
        growth: f.and_then(|f| f.growth_bytes_per_hour).map(|r| format!("+{}/h", util::bytes(r as u64))),
        roles: roles_text(state, d),
    }
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
    fn new(rows: &[(&DiskInfo, Tail)], width: usize) -> Self {
        let mount_w = 14.min(width / 4);
        let pair_w = rows.iter().map(|(d, _)| pair(d).chars().count()).max().unwrap_or(0);
        let tail_w = rows.iter().map(|(_, t)| t.joined().chars().count()).max().unwrap_or(0);
        let fixed = mount_w + 1 + 5 + 1 + pair_w + 2 + 8;
        // The bar takes what the longest role text leaves, but at least 6 cells: the roles
        // are cut (with …) before the bar becomes unreadable.
        let bar_w = width.saturating_sub(fixed + tail_w + 2).clamp(6, 30);
        Self { width, mount_w, pair_w, bar_w }
    }
}

fn wide_line(d: &DiskInfo, c: &Columns, tail: &Tail) -> Line<'static> {
    let style = super::level_style(d.level);
    let (mount_w, pair_w, bar_w) = (c.mount_w, c.pair_w, c.bar_w);
    let pair = format!("{:<pair_w$}", pair(d));
    let used = mount_w + 1 + 5 + 1 + bar_w + 1 + pair_w + 2 + 8;
    let parts: Vec<(usize, &str)> =
        tail.full.as_deref().map(|f| (0, f)).into_iter().chain(tail.growth.as_deref().map(|g| (1, g))).collect();
    let roles = fit(parts, &tail.roles, c.width.saturating_sub(used + 1));
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

fn narrow_lines(d: &DiskInfo, width: usize, tail: &Tail) -> Vec<Line<'static>> {
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
    vec![first, Line::styled(narrow_second(d, width, tail), super::dim())]
}

/// The second row of a narrow disk: used / total, free, time to full, growth, roles, in
/// that order, but chosen by importance (free, time to full, growth, used / total) where
/// they do not all fit, each whole; the roles take what is left (cut with …).
fn narrow_second(d: &DiskInfo, width: usize, tail: &Tail) -> String {
    let pair = pair(d);
    let free = format!("{} free", util::bytes(d.available_bytes));
    // (position in the row, text), by importance.
    let mut by_importance: Vec<(usize, &str)> = vec![(1, &free)];
    by_importance.extend(tail.full.as_deref().map(|f| (2, f)));
    by_importance.extend(tail.growth.as_deref().map(|g| (3, g)));
    by_importance.push((0, &pair));
    format!("  {}", fit(by_importance, &tail.roles, width.saturating_sub(2)))
}

/// `parts` (position in the row, text), most important first, each whole where it fits in
/// `room`, in row order, joined with ` · `; then the roles in what is left (cut with …,
/// when at least 4 cells are left).
fn fit(by_importance: Vec<(usize, &str)>, roles: &str, room: usize) -> String {
    let sep = 3; // " · "
    let mut chosen: Vec<(usize, &str)> = Vec::new();
    let mut used = 0;
    for (pos, text) in by_importance {
        let w = text.chars().count() + if chosen.is_empty() { 0 } else { sep };
        if used + w <= room {
            used += w;
            chosen.push((pos, text));
        }
    }
    chosen.sort_by_key(|(pos, _)| *pos);
    let mut out = chosen.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(" · ");
    let gap = if chosen.is_empty() { 0 } else { sep };
    let left = room.saturating_sub(used + gap);
    if !roles.is_empty() && left >= 4 {
        if !chosen.is_empty() {
            out.push_str(" · ");
        }
        out.push_str(&util::ellipsize(roles, left));
    }
    out
}

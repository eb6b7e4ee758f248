//! The GPU panel, its process details popup and the confirmation before SIGTERM.

use std::time::{Duration, UNIX_EPOCH};

use super::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use crate::app::{Action, AppState, Overlay, Panel};
use crate::gpu::tier::{JobScope, fmt_gib};
use crate::gpu::{GpuDevice, GpuProcess, GpuSample, NvmlStatus, TierFit, Verdict};
use crate::util;

/// Eight levels of a sparkline cell.
const SPARK: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The GPU panel: each GPU's VRAM, utilization, temperature and power with history
/// sparklines, its compute processes (selectable), and the live tier fit.
pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    let g = &state.gpu;
    let title = match &g.sample {
        Some(s) if !s.gpus.is_empty() => {
            // A sample older than three intervals (a hung driver call, say) is marked stale.
            let age_ms = crate::unixtime::millis(state.now).saturating_sub(s.taken_at_unix_ms);
            let limit_ms = 3 * state.config.gpu.sample_ms.max(1000);
            let taken = UNIX_EPOCH + Duration::from_millis(s.taken_at_unix_ms);
            if age_ms > limit_ms {
                super::clock::since(state.now, taken);
                format!(
                    " GPU · {} · {} · stale {} ",
                    s.gpus.len(),
                    g.sort.label(),
                    util::duration(Duration::from_millis(age_ms))
                )
            } else {
                // Marked stale once no newer sample came for three intervals.
                super::clock::at(state.now, taken + Duration::from_millis(limit_ms + 1));
                format!(" GPU · {} · {} ", s.gpus.len(), g.sort.label())
            }
        }
        _ => " GPU ".to_string(),
    };
    // The demo's GPU is simulated: say so where the numbers are.
    let title = if state.demo { format!("{}· simulated ", title) } else { title };
    let block = super::panel_block(state, Panel::Gpu, title);
    let inner = block.inner(area);
    let Some(sample) = &g.sample else {
        let text = if state.config.gpu.enabled { "sampling GPUs…" } else { "GPU sampling is off (gpu.enabled)" };
        frame.render_widget(Paragraph::new(text).style(super::dim()).block(block.to_block()), area);
        return;
    };
    let width = inner.width as usize;
    let height = inner.height as usize;
    // The host's CPU, RAM and swap: the last row above the tier fit (kept whatever the GPUs).
    let host = host_line(state, width);
    if !sample.nvml.is_ok() || sample.gpus.is_empty() {
        // Drawn on every frame of a machine without a GPU (or driver): the border without a
        // `Block` (whose style patch over the whole panel cost more than the text), the
        // wrapped text in what is inside it. The same cells as the paragraph with the block.
        block.render(area, frame.buffer_mut());
        // The host's line, which changes, on its own row when it fits there (wrapping
        // leaves a line that fits as it is); the explanation under it, which does not
        // change, wrapped once and kept.
        match host {
            Some(h) if h.width() <= width && inner.height > 0 => {
                super::text::put_lines(frame.buffer_mut(), Rect { height: 1, ..inner }, std::slice::from_ref(&h));
                let below = Rect { y: inner.y + 1, height: inner.height - 1, ..inner };
                super::text::put_wrapped(frame.buffer_mut(), below, &no_gpu_lines(sample, None));
            }
            host => super::text::put_wrapped(frame.buffer_mut(), inner, &no_gpu_lines(sample, host)),
        }
        return;
    }

    let fit_lines = fit_lines(state, width);
    let room = height.saturating_sub(fit_lines.len() + usize::from(host.is_some() && height > fit_lines.len() + 2));
    let host = host.filter(|_| height > fit_lines.len() + 2);
    let procs: Vec<&GpuProcess> = g.processes().collect();
    let full_rows: usize =
        sample.gpus.iter().map(|d| 2 + d.processes.len() + usize::from(d.processes_error.is_some())).sum();
    let mut lines: Vec<Line> = Vec::new();
    let selected = g.selected_index();
    let focused = state.focus == Panel::Gpu;
    if full_rows <= room {
        // Each GPU with its stats line, a line of history sparklines when every GPU has
        // room for one (else the sparklines share the stats line), and its processes.
        let history_line = full_rows + sample.gpus.len() <= room;
        let mut k = 0;
        for d in &sample.gpus {
            lines.push(gpu_line(d, width, false));
            lines.push(stats_line(state, d, width, !history_line));
            if history_line {
                lines.push(history_line_for(state, d, width));
            }
            if let Some(e) = &d.processes_error {
                lines.push(Line::styled(util::ellipsize(&format!("  {e}"), width), super::dim()));
            }
            for p in g.sorted(d) {
                lines.push(process_line(p, width, focused && selected == Some(k)));
                k += 1;
            }
        }
    } else {
        // Compact: one line per GPU, then as many processes as fit around the selection;
        // a third of the rows (at least one) is kept for processes so the selection shows.
        let proc_keep = if procs.is_empty() { 0 } else { (room / 3).max(1).min(procs.len()) };
        // A GPU line comes before any process (at 60x18 the only GPU was hidden behind
        // `… 1 more GPUs`); a `… N more` line stands for two GPUs or more, never one.
        let total = sample.gpus.len();
        let mut gpu_rows = total.min(room.saturating_sub(proc_keep)).max(total.min(room).min(1));
        let mut more = 0;
        if gpu_rows < total {
            if gpu_rows >= 2 {
                gpu_rows -= 1;
                more = total - gpu_rows;
            } else if room > 1 + proc_keep.min(1) || procs.is_empty() && room > 1 {
                more = total - gpu_rows;
            }
        }
        for d in sample.gpus.iter().take(gpu_rows) {
            lines.push(gpu_line(d, width, true));
        }
        if more > 0 {
            lines.push(Line::styled(format!("… {more} more GPU{}", if more == 1 { "" } else { "s" }), super::dim()));
        }
        let proc_room = room.saturating_sub(lines.len());
        if proc_room > 0 && !procs.is_empty() {
            let sel = selected.unwrap_or(0);
            let start = (sel + 1).saturating_sub(proc_room);
            for (k, p) in procs.iter().enumerate().skip(start).take(proc_room) {
                lines.push(process_line(p, width, focused && selected == Some(k)));
            }
        }
    }
    lines.truncate(room);
    while lines.len() < room {
        lines.push(Line::raw(""));
    }
    lines.extend(host);
    lines.extend(fit_lines);
    super::text::put_block_lines(frame.buffer_mut(), area, &block, &lines);
}

/// "host cpu 34% · ram 41.2/62.8 GiB 66% · swap 0.1/8.0 GiB", shorter when narrow
/// ("cpu 34% ram 41/63G swap 0.1/8G"); RAM and swap in yellow, then red, as they fill
/// (a dataloader out of host RAM gets the trainer `Killed`). `None` before the first
/// reading.
fn host_line(state: &AppState, width: usize) -> Option<Line<'static>> {
    let h = state.host_usage.as_ref()?;
    let cpu = h.cpu_pct.map_or_else(|| "…".to_string(), |c| format!("{:.0}%", c));
    let g = |b: u64| b as f64 / (1u64 << 30) as f64;
    let long = format!(
        "host cpu {cpu} · ram {:.1}/{:.1} GiB {:.0}% · swap {:.1}/{:.1} GiB",
        g(h.memory_used_bytes()),
        g(h.memory_total_bytes),
        h.memory_pct(),
        g(h.swap_used_bytes),
        g(h.swap_total_bytes)
    );
    let short = format!(
        "cpu {cpu} ram {:.0}/{:.0}G swap {:.1}/{:.0}G",
        g(h.memory_used_bytes()),
        g(h.memory_total_bytes),
        g(h.swap_used_bytes),
        g(h.swap_total_bytes)
    );
    let text = if long.chars().count() <= width { long } else { util::ellipsize(&short, width) };
    let style = match h.memory_level() {
        crate::disk::Level::Ok => super::dim(),
        level => super::level_style(level),
    };
    Some(Line::styled(text, style))
}

/// Why there is no GPU to show, under the host's line.
fn no_gpu_lines(sample: &GpuSample, host: Option<Line<'static>>) -> Vec<Line<'static>> {
    let mut lines = if sample.nvml.is_ok() {
        vec![Line::styled("NVML is open but lists no GPU", Style::new().fg(Color::Yellow))]
    } else {
        vec![
            Line::styled(nvml_headline(&sample.nvml), Style::new().fg(Color::Yellow)),
            Line::styled(sample.nvml.describe(), super::dim()),
        ]
    };
    if let Some(h) = host {
        lines.insert(0, h);
    }
    lines
}

fn nvml_headline(status: &NvmlStatus) -> String {
    match status {
        NvmlStatus::LibraryMissing { .. } => "No NVIDIA library: no GPU to show".into(),
        NvmlStatus::DriverNotLoaded => "NVIDIA driver not loaded: no GPU to show".into(),
        NvmlStatus::NoPermission => "No permission to read the GPUs".into(),
        NvmlStatus::Disabled => "GPU sampling is off".into(),
        NvmlStatus::NotOpened => "NVML not opened yet".into(),
        _ => "NVML failed: no GPU to show".into(),
    }
}

fn pct(used: Option<u64>, total: Option<u64>) -> Option<f64> {
    match (used, total) {
        (Some(u), Some(t)) if t > 0 => Some(u as f64 * 100.0 / t as f64),
        _ => None,
    }
}

fn gib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1u64 << 30) as f64)
}

/// "0 NVIDIA L4  17.2/22.5 GiB ████████░░" — in compact mode with utilization at the end.
fn gpu_line(d: &GpuDevice, width: usize, compact: bool) -> Line<'static> {
    let name = if compact { d.name.trim_start_matches("NVIDIA ").to_string() } else { d.name.clone() };
    let mem = match (d.memory_used_bytes, d.memory_total_bytes) {
        (Some(u), Some(t)) => format!("{}/{} GiB", gib(u), gib(t)),
        _ => "VRAM n/a".into(),
    };
    let util = if compact {
        format!(" {:>4}", d.utilization_pct.map_or("n/a".into(), |u| format!("{u}%")))
    } else {
        String::new()
    };
    let name_w = (width / 3).clamp(4, 24);
    let head = format!("{} {:<name_w$} ", d.index, util::ellipsize(&name, name_w));
    let fill = pct(d.memory_used_bytes, d.memory_total_bytes);
    let bar_w = width.saturating_sub(head.chars().count() + mem.chars().count() + 1 + util.chars().count()).min(24);
    let style = fill.map_or(super::dim(), vram_style);
    let mut spans = vec![Span::styled(head, Style::new().add_modifier(Modifier::BOLD)), Span::raw(mem)];
    if bar_w >= 3 {
        spans.push(Span::raw(" "));
        spans.push(Span::styled(util::bar(fill.unwrap_or(0.0), bar_w), style));
    }
    spans.push(Span::raw(util));
    if let Some(e) = &d.error {
        spans = vec![Span::styled(util::ellipsize(&format!("{} {e}", d.index), width), Style::new().fg(Color::Red))];
    }
    Line::from(spans)
}

fn vram_style(pct: f64) -> Style {
    if pct >= 95.0 {
        Style::new().fg(Color::Red)
    } else if pct >= 85.0 {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new().fg(Color::Green)
    }
}

/// "  util 98% mem 61% 71°C 72/72 W  vram ▁▂▅▇ util ▁▃▇█"
fn stats_line(state: &AppState, d: &GpuDevice, width: usize, sparklines: bool) -> Line<'static> {
    let na = || "n/a".to_string();
    let util = d.utilization_pct.map_or_else(na, |u| format!("{u}%"));
    let memu = d.memory_utilization_pct.map_or_else(na, |u| format!("{u}%"));
    let temp = d.temperature_c.map_or_else(na, |t| format!("{t}°C"));
    let power = match (d.power_draw_mw, d.power_limit_mw) {
        (Some(p), Some(l)) => format!("{}/{} W", p / 1000, l / 1000),
        (Some(p), None) => format!("{} W", p / 1000),
        _ => "power n/a".into(),
    };
    let text = format!("  util {util} mem {memu} {temp} {power}");
    let mut spans = vec![Span::raw(text.clone())];
    let left = width.saturating_sub(text.chars().count() + 2);
    let hist = &state.gpu.history;
    let vram = hist.vram_series(d.index);
    if sparklines && left >= 6 && vram.len() > 1 {
        let utils = hist.utilization_series(d.index);
        let (label_v, label_u) = ("vram ", " util ");
        let two = left >= 2 * 8 + label_v.len() + label_u.len();
        let w = if two { (left - label_v.len() - label_u.len()) / 2 } else { left - label_v.len() };
        let total = d.memory_total_bytes.unwrap_or_else(|| vram.iter().copied().max().unwrap_or(1));
        spans.push(Span::styled(format!("  {label_v}"), super::dim()));
        spans.push(Span::styled(sparkline(&vram, w, total), Style::new().fg(Color::Magenta)));
        if two {
            spans.push(Span::styled(label_u.to_string(), super::dim()));
            spans.push(Span::styled(sparkline(&utils, w, 100), Style::new().fg(Color::Cyan)));
        }
    }
    Line::from(spans)
}

/// "  15m  vram ▁▂▅▇  util ▁▃▇█  power ▃▅▆▆": the history rings, each in a third of the line
/// (power left out when the GPU never reported it).
fn history_line_for(state: &AppState, d: &GpuDevice, width: usize) -> Line<'static> {
    let hist = &state.gpu.history;
    let vram = hist.vram_series(d.index);
    if vram.len() < 2 {
        return Line::styled("  history: collecting…", super::dim());
    }
    let span_ms = hist
        .gpu(d.index)
        .next()
        .map_or(0, |first| hist.gpu(d.index).last().map_or(0, |last| last.at_unix_ms.saturating_sub(first.at_unix_ms)));
    let head = format!("  {:<5}", util::duration(Duration::from_millis(span_ms)));
    let power = hist.power_series(d.index);
    let total = d.memory_total_bytes.unwrap_or_else(|| vram.iter().copied().max().unwrap_or(1));
    let limit = d.power_limit_mw.map(u64::from).unwrap_or_else(|| power.iter().copied().max().unwrap_or(1));
    let mut series: Vec<(&str, Vec<u64>, u64, Color)> =
        vec![(" vram ", vram, total, Color::Magenta), (" util ", hist.utilization_series(d.index), 100, Color::Cyan)];
    if !power.is_empty() {
        series.push((" power ", power, limit, Color::Yellow));
    }
    let labels: usize = series.iter().map(|(l, ..)| l.len()).sum();
    let w = width.saturating_sub(head.chars().count() + labels) / series.len();
    let mut spans = vec![Span::styled(head, super::dim())];
    for (label, data, max, color) in series {
        spans.push(Span::styled(label.to_string(), super::dim()));
        spans.push(Span::styled(format!("{:<w$}", sparkline(&data, w, max)), Style::new().fg(color)));
    }
    Line::from(spans)
}

/// The series squeezed into `width` cells (each cell the highest value of its share of the
/// window), scaled to `max`.
pub fn sparkline(series: &[u64], width: usize, max: u64) -> String {
    if series.is_empty() || width == 0 {
        return String::new();
    }
    let max = max.max(1) as f64;
    let cells = width.min(series.len());
    (0..cells)
        .map(|c| {
            let a = c * series.len() / cells;
            let b = ((c + 1) * series.len() / cells).max(a + 1);
            let v = series[a..b].iter().copied().max().unwrap_or(0) as f64;
            let level = ((v / max) * 7.0).round().clamp(0.0, 7.0) as usize;
            SPARK[level]
        })
        .collect()
}

/// "› 4121 python train.py --lr 3e-4  …/proj/.venv/bin/   18.9 GiB": the program and its
/// script first, then (dim, cut from its start, left out first) the folder of the script,
/// or of the program when the script had none. The details popup has the whole command.
fn process_line(p: &GpuProcess, width: usize, selected: bool) -> Line<'static> {
    let mem = p.used_bytes.map_or("n/a".into(), |b| format!("{} GiB", gib(b)));
    // The process's SM share where NVML gives it; nothing (not 0%) where it does not.
    let mem = match p.sm_util_pct {
        Some(u) => format!("{u:>3}% {mem}"),
        None => mem,
    };
    let marker = if selected { "›" } else { " " };
    let head = format!("{marker} {:>6} ", p.pid);
    let cmd_w = width.saturating_sub(head.chars().count() + mem.chars().count() + 1);
    let (name, dirs) = match p.program() {
        // The script's folder when it had one (where the job lives), else the program's.
        Some(n) => (n.head, n.dirs.last().cloned().unwrap_or_default()),
        None => ("(ended or hidden)".to_string(), String::new()),
    };
    let name = util::ellipsize(&name, cmd_w);
    let room = cmd_w.saturating_sub(name.chars().count() + 2);
    // A folder cut to fewer than 10 characters says little.
    let dirs =
        if dirs.is_empty() || room < 10 { String::new() } else { format!("  {}", util::ellipsize_start(&dirs, room)) };
    let pad = cmd_w.saturating_sub(name.chars().count() + dirs.chars().count());
    let (base, dim) = if selected {
        (Style::new().add_modifier(Modifier::REVERSED), super::dim().add_modifier(Modifier::REVERSED))
    } else {
        (Style::new(), super::dim())
    };
    Line::from(vec![
        Span::styled(format!("{head}{name}"), base),
        Span::styled(dirs, dim),
        Span::styled(format!("{:pad$} {mem}", ""), base),
    ])
}

fn verdict_style(v: Verdict) -> Style {
    match v {
        Verdict::Fits => Style::new().fg(Color::Green),
        Verdict::Near => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        Verdict::Exceeds => Style::new().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
    }
}

/// The tier-fit line, and the advice under it when the job is over its tier.
fn fit_lines(state: &AppState, width: usize) -> Vec<Line<'static>> {
    let g = &state.gpu;
    let Some(fit) = &g.fit else {
        let name = g.sample.as_ref().and_then(|s| s.gpus.first()).map(|d| d.name.clone()).unwrap_or_default();
        return vec![Line::styled(
            util::ellipsize(&format!("tier: {name} matches no tier (gpu.tiers)"), width),
            super::dim(),
        )];
    };
    let mut out = vec![fit_line(fit, width)];
    if let Some(note) = fit.device_note() {
        // Narrow: the figures only ("whole GPU: 0.5 of 21.0 GiB listed").
        let note = match (note.chars().count() > width, fit.listed_bytes, fit.device_used_bytes) {
            (true, Some(l), Some(u)) => format!("whole GPU: {} of {} GiB listed", gib(l), gib(u)),
            _ => note,
        };
        out.push(Line::styled(util::ellipsize(&note, width), Style::new().fg(Color::Yellow)));
    }
    if let Some(advice) = &fit.advice {
        out.push(Line::styled(util::ellipsize(&format!("→ {advice}"), width), Style::new().fg(Color::Red)));
    }
    out
}

fn fit_line(fit: &TierFit, width: usize) -> Line<'static> {
    if fit.scope == JobScope::NoProcesses && fit.peak_bytes == 0 {
        return Line::styled(
            util::ellipsize(&format!("{} fit: no GPU job · budget {}", fit.tier, fmt_gib(fit.budget_bytes)), width),
            super::dim(),
        );
    }
    let scope = match fit.scope {
        JobScope::Workspace => "",
        JobScope::AllProcesses => " (all)",
        JobScope::NoProcesses => " (ended)",
        JobScope::Device => " (device)",
    };
    let room = width.saturating_sub(fit.verdict.as_str().len() + 2);
    let long = format!(
        "{} fit{scope}: now {} · peak {} / budget {} GiB ",
        fit.tier,
        gib(fit.used_bytes),
        gib(fit.peak_bytes),
        gib(fit.budget_bytes)
    );
    let short = format!("{}{scope}: peak {}/{} GiB ", fit.tier, gib(fit.peak_bytes), gib(fit.budget_bytes));
    let shorter = format!("{}{scope}: {}/{} GiB", fit.tier, gib(fit.peak_bytes), gib(fit.budget_bytes));
    let text = [long, short]
        .into_iter()
        .find(|t| t.chars().count() <= room)
        .unwrap_or_else(|| util::ellipsize(&shorter, room));
    Line::from(vec![Span::raw(text), Span::styled(format!(" {} ", fit.verdict), verdict_style(fit.verdict))])
}

/// The header's tier text: " · tier1 L4 home base (budget 20.0 GiB)", or why there is none.
pub fn header_tier(state: &AppState) -> (String, Style) {
    let g = &state.gpu;
    match (&g.machine_tier, &g.sample) {
        (Some(t), _) => {
            let style = match g.fit.as_ref().map(|f| f.verdict) {
                Some(Verdict::Exceeds) => verdict_style(Verdict::Exceeds),
                Some(Verdict::Near) => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                _ => Style::new(),
            };
            (format!(" · {} {} (budget {})", t.name, t.display_label(), fmt_gib(t.budget_bytes)), style)
        }
        (None, Some(s)) if !s.nvml.is_ok() => (" · no GPU".into(), Style::new()),
        (None, Some(s)) if !s.gpus.is_empty() => (" · tier ?".into(), Style::new()),
        _ => (" · tier n/a".into(), Style::new()),
    }
}

fn utc(unix_s: u64) -> String {
    let t = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_s)).to_string();
    t.trim_end_matches('Z').replace('T', " ")
}

/// Enter on a process: its full command, owner, start time, folder and VRAM history.
pub fn details(state: &AppState, frame: &mut Frame, area: Rect, gpu: u32, pid: u32) {
    let width = 76.min(area.width);
    let block =
        Block::bordered().title(format!(" Process {pid} · GPU {gpu} ")).border_style(Style::new().fg(Color::Cyan));
    let inner_w = width.saturating_sub(2) as usize;
    let label = Style::new().fg(Color::Cyan);
    let mut lines: Vec<Line> = Vec::new();
    match state.gpu.process(gpu, pid) {
        None => lines.push(Line::styled("This process has ended (it is no longer on the GPU).", super::dim())),
        Some(p) => {
            let row = |k: &str, v: String| Line::from(vec![Span::styled(format!("{k:<9}"), label), Span::raw(v)]);
            lines.push(row("command", p.command.clone().unwrap_or_else(|| "(ended or hidden)".into())));
            let owner = match (&p.user, p.uid) {
                (Some(u), Some(id)) => format!("{u} (uid {id})"),
                (None, Some(id)) => format!("uid {id}"),
                _ => "n/a".into(),
            };
            lines.push(row("user", owner));
            let started = match p.start_time_unix_s {
                Some(t) => format!("{} UTC · {} ago", utc(t), util::duration(super::clock::since_unix(state.now, t))),
                None => "n/a".into(),
            };
            lines.push(row("started", started));
            lines.push(row("folder", p.cwd.as_ref().map_or("n/a".into(), |c| c.display().to_string())));
            let series: Vec<u64> = state.gpu.history.process(gpu, pid).map(|(_, b)| *b).collect();
            let peak = series.iter().copied().max().unwrap_or(0);
            // The peak's span on the same clock as `started … ago` (the state's), from the
            // first reading kept: "since it started" when the readings go back that far.
            let first_s = state.gpu.history.process(gpu, pid).next().map(|(t, _)| t / 1000);
            let span = match (first_s, p.start_time_unix_s) {
                (None, _) => String::new(),
                (Some(first), Some(start)) if first <= start + (2 * state.config.gpu.sample_ms).div_ceil(1000) => {
                    " since it started".to_string()
                }
                (Some(first), _) => {
                    format!(" over the last {}", util::duration(super::clock::since_unix(state.now, first)))
                }
            };
            lines.push(row(
                "VRAM",
                format!("{} now · peak {}{span}", p.used_bytes.map_or("n/a".into(), fmt_gib), fmt_gib(peak)),
            ));
            if let Some(u) = p.sm_util_pct {
                let every =
                    humantime::format_duration(std::time::Duration::from_millis(state.config.gpu.process_util_ms));
                lines.push(row(
                    "SM util",
                    format!("{u}% of the GPU's compute time (NVML's newest sample, read every {every})"),
                ));
            }
            let total = state
                .gpu
                .sample
                .as_ref()
                .and_then(|s| s.gpus.iter().find(|d| d.index == gpu))
                .and_then(|d| d.memory_total_bytes)
                .unwrap_or(peak.max(1));
            lines.push(Line::from(vec![
                Span::styled(format!("{:<9}", "history"), label),
                Span::styled(sparkline(&series, inner_w.saturating_sub(9), total), Style::new().fg(Color::Magenta)),
            ]));
            if state.gpu.fit.as_ref().is_some_and(|f| f.pids.contains(&pid)) {
                lines.push(Line::styled("counted as the training job in the tier fit", super::dim()));
            }
        }
    }
    lines.push(Line::raw(""));
    let close = state.keymap.first_key(Action::Cancel).unwrap_or_else(|| "esc".into());
    let kill = state.keymap.first_key(Action::KillProcess).unwrap_or_else(|| "K".into());
    lines.push(Line::styled(
        format!("{kill} stop it (SIGTERM, asks first) · {close} close"),
        Style::new().fg(Color::Yellow),
    ));
    let popup = super::centered(area, width, wrapped_rows(&lines, inner_w) + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block), popup);
}

/// "Send SIGTERM to process 4121 (python)?"
pub fn confirm_kill(state: &AppState, frame: &mut Frame, area: Rect) {
    let Overlay::ConfirmKill { pid, name, .. } = &state.overlay else { return };
    let holds = state
        .gpu
        .processes()
        .filter(|p| p.pid == *pid)
        .map(|p| format!("GPU {}: {}", p.gpu_index, p.used_bytes.map_or("n/a".into(), fmt_gib)))
        .collect::<Vec<_>>()
        .join(", ");
    let yes = state.keymap.first_key(Action::Confirm).unwrap_or_else(|| "y".into());
    let no = state.keymap.first_key(Action::Deny).unwrap_or_else(|| "n".into());
    let mut lines = vec![Line::styled(
        format!("Send SIGTERM to process {pid} ({name})?"),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if !holds.is_empty() {
        lines.push(Line::raw(format!("It holds {holds}.")));
    }
    lines.push(Line::raw("A run that does not handle SIGTERM saves nothing more."));
    lines.push(Line::raw(""));
    lines.push(Line::styled(format!("{yes} send SIGTERM · {no} keep it running"), Style::new().fg(Color::Yellow)));
    let width = 60.min(area.width);
    let popup = super::centered(area, width, wrapped_rows(&lines, width.saturating_sub(2) as usize) + 2);
    let block = Block::bordered().title(" Stop process? ").border_style(Style::new().fg(Color::Red));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(block), popup);
}

/// Rows the lines take when wrapped at `width` (word wrapping can take a little more than
/// this; one spare row is added for it).
fn wrapped_rows(lines: &[Line], width: usize) -> u16 {
    let width = width.max(1);
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(width).max(1)).sum();
    let spare = usize::from(lines.iter().any(|l| l.width() > width));
    (rows + spare).min(u16::MAX as usize) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The panel of a machine without an NVIDIA library draws, styles included, the cells
    /// the bordered, wrapped paragraph drew before the border was drawn on its own.
    #[test]
    fn the_no_gpu_panel_draws_what_the_bordered_paragraph_drew() {
        use ratatui::{Terminal, backend::TestBackend};
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let host = crate::workspace::HostInfo { hostname: "vm".into(), boot_time_unix: 1_699_990_000 };
        let mut state = AppState::new(crate::config::Config::default(), host, "/w".into(), now);
        let sample = GpuSample::unavailable(
            1_700_000_000_000,
            NvmlStatus::LibraryMissing {
                library: "libnvidia-ml.so.1".into(),
                detail: "libnvidia-ml.so.1: cannot open shared object file: No such file or directory".into(),
            },
        );
        crate::app::update(&mut state, crate::app::Msg::Gpu(sample.clone()));
        let host = |cpu: f32| crate::host::HostSample {
            taken_at_unix_ms: 1_700_000_000_000,
            cpu_pct: Some(cpu),
            cpus: 8,
            memory_total_bytes: 64 << 30,
            memory_available_bytes: 20 << 30,
            swap_total_bytes: 0,
            swap_used_bytes: 0,
        };
        // Without the host's line, with it (on its own row where it fits, wrapped with the
        // rest where it does not), and each size twice with the host's figure changed
        // between (the second frame copies the explanation kept from the first).
        let sizes = [(80, 12, false), (41, 9, true), (22, 6, false), (12, 3, false)];
        let cases = sizes.iter().map(|&s| (s, None)).chain(
            [
                (80, 12, false),
                (80, 12, false),
                (41, 9, true),
                (41, 9, true),
                (22, 6, false),
                (12, 3, false),
                (80, 12, false),
            ]
            .into_iter()
            .zip([3.0, 97.0, 5.0, 5.0, 40.0, 1.0, 12.0])
            .map(|(s, cpu)| (s, Some(host(cpu)))),
        );
        for ((w, h, focused), usage) in cases {
            state.host_usage = usage;
            state.focus = if focused { Panel::Gpu } else { Panel::Log };
            let area = Rect::new(0, 0, w, h);
            let mut now_drawn = Terminal::new(TestBackend::new(w, h)).unwrap();
            now_drawn.draw(|f| render(&state, &mut f.into(), area)).unwrap();
            let block = super::super::panel_block(&state, Panel::Gpu, " GPU ".to_string());
            let inner = block.inner(area);
            let lines = no_gpu_lines(&sample, host_line(&state, inner.width as usize));
            let mut before = Terminal::new(TestBackend::new(w, h)).unwrap();
            before
                .draw(|f| {
                    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(block.to_block()), area)
                })
                .unwrap();
            assert_eq!(now_drawn.backend().buffer(), before.backend().buffer(), "{w}x{h}, host {:?}", state.host_usage);
        }
    }

    #[test]
    fn sparkline_squeezes_and_scales() {
        assert_eq!(sparkline(&[0, 50, 100], 3, 100), "▁▅█");
        // Six points into three cells: each cell the highest of its pair.
        assert_eq!(sparkline(&[0, 100, 0, 0, 50, 0], 3, 100), "█▁▅");
        assert_eq!(sparkline(&[], 5, 1), "");
    }
}

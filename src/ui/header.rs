use super::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use crate::app::{Action, AppState};
use crate::disk::Level;
use crate::util;

pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    let base = Style::new().bg(Color::Blue).fg(Color::White);
    let mut spans = vec![
        Span::styled(" host ", base),
        Span::styled(state.host.hostname.clone(), base.add_modifier(Modifier::BOLD)),
        {
            let (tier, style) = super::gpu::header_tier(state);
            Span::styled(tier, base.patch(style))
        },
        Span::styled(
            format!(" · up {}", util::duration(super::clock::since_unix(state.now, state.host.boot_time_unix))),
            base,
        ),
    ];
    if state.demo {
        spans.push(Span::styled(" · DEMO", base.fg(Color::Yellow).add_modifier(Modifier::BOLD)));
    }
    if let Some(s) = &state.disk.sample {
        let worst = s.worst();
        if worst >= Level::Warn {
            spans.push(Span::styled(
                format!(" · disk {}", worst.as_str()),
                super::level_style(worst).add_modifier(Modifier::REVERSED),
            ));
        }
    }
    if let Some(quiet) = super::log::stalled_for(state) {
        spans.push(Span::styled(
            format!(" · log stalled {quiet}"),
            Style::new().fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    let mut help = state.keymap.first_key(Action::Help).map(|k| format!("{k} help ")).unwrap_or_default();
    if let Some((full, short)) = super::checklist::idle_banner(state) {
        // The banner matters more than the uptime and the help hint on a narrow terminal.
        let width = |spans: &[Span]| spans.iter().map(|s| s.width()).sum::<usize>();
        let room = area.width as usize;
        let mut text = format!(" · {full}");
        if width(&spans) + text.chars().count() + help.chars().count() > room {
            text = format!(" · {short}");
        }
        if width(&spans) + text.chars().count() + help.chars().count() > room && spans.len() > 3 {
            spans.remove(3);
        }
        if width(&spans) + text.chars().count() + help.chars().count() > room {
            help.clear();
        }
        spans.push(Span::styled(text, Style::new().fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD)));
    }
    // The rules' flags in what is left (the help hint gives way: the footer has it too).
    {
        let room = |spans: &[Span]| (area.width as usize).saturating_sub(spans.iter().map(|s| s.width()).sum());
        let (mut flags, shown) = super::rules::header_spans(state, room(&spans));
        // A rule's flag matters more than the uptime on a narrow terminal: it gives way
        // when that shows more flags (or "+2 rules" for "+2").
        if shown.0 < shown.1
            && let Some(i) = spans.iter().position(|s| s.content.starts_with(" · up "))
        {
            let up = spans.remove(i);
            let (without, more) = super::rules::header_spans(state, room(&spans));
            let width = |f: &[Span]| f.iter().map(|s| s.width()).sum::<usize>();
            if (more.0, width(&without)) > (shown.0, width(&flags)) {
                flags = without;
            } else {
                spans.insert(i, up);
            }
        }
        let used: usize = spans.iter().map(|s| s.width()).sum();
        let w: usize = flags.iter().map(|s| s.width()).sum();
        if used + w + help.chars().count() + 2 > area.width as usize {
            help.clear();
        }
        spans.extend(flags);
    }
    // The external address where it fits (after the uptime): the SSH config needs it.
    if let Some(ip) = &state.external_ip {
        let used: usize = spans.iter().map(|s| s.width()).sum();
        let text = format!(" · {ip}");
        if used + text.chars().count() + help.chars().count() < area.width as usize {
            let at = spans.iter().position(|s| s.content.starts_with(" · up ")).map_or(spans.len().min(3), |i| i + 1);
            spans.insert(at, Span::styled(text, base));
        }
    }
    let used: usize = spans.iter().map(|s| s.width()).sum();
    let pad = (area.width as usize).saturating_sub(used + help.chars().count());
    spans.push(Span::styled(" ".repeat(pad), base));
    spans.push(Span::styled(help, base));
    let line = Line::from(spans);
    // Kept as shown when it is the line drawn there last (`super::drawn`).
    if super::drawn::row(area, &line) {
        frame.buffer_mut().set_style(area, base);
        super::text::put_lines(frame.buffer_mut(), area, &[line]);
    }
}

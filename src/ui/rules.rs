//! The rules' header flags, fitted into what the header has left.
//!
//! Priority (docs/rules.md): the disk level, a stalled log and the idle banner come first
//! and are never pushed out; then the rules' flags, most urgent first (data on a network
//! mount, an estimate overrun, tier purpose, dependencies); then the external address and
//! the help hint (the footer shows the help key too). Each flag is shown in full when it
//! fits, else in its short form; flags that fit in neither are counted in `+N rules`
//! (`status` and the checklist list them).

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;

use crate::app::AppState;

fn style() -> Style {
    Style::new().fg(Color::Black).bg(Color::LightMagenta).add_modifier(Modifier::BOLD)
}

/// The flags' spans within `room` columns, and (flags shown in full or short, flags).
pub fn header_spans(state: &AppState, room: usize) -> (Vec<Span<'static>>, (usize, usize)) {
    let flags = state.rules.as_ref().map(|r| r.flags()).unwrap_or_default();
    let mut out = Vec::new();
    let mut used = 0usize;
    let w = |s: &str| s.chars().count();
    for (i, f) in flags.iter().enumerate() {
        let left = flags.len() - i - 1;
        // Room for "+N rules" when flags are left after this one.
        let tail = if left > 0 { w(&format!(" · +{left}")) } else { 0 };
        let full = format!(" · {}", f.full);
        let short = format!(" · {}", f.short);
        let text = if used + w(&full) + tail <= room {
            full
        } else if used + w(&short) + tail <= room {
            short
        } else {
            let left = flags.len() - i;
            let rules = if left == 1 { "rule" } else { "rules" };
            let more = [format!(" · +{left} {rules}"), format!(" · +{left}")].into_iter().find(|t| used + w(t) <= room);
            if let Some(m) = more {
                out.push(Span::styled(m, style()));
            }
            return (out, (i, flags.len()));
        };
        used += w(&text);
        out.push(Span::styled(text, style()));
    }
    (out, (flags.len(), flags.len()))
}

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::{AppState, Panel};

/// The GPU panel. The NVML collector is not part of this build yet, so the panel says what
/// it will show instead of inventing numbers.
pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    let block = super::panel_block(state, Panel::Gpu, " GPU ".into());
    let text = "Not collected yet. This panel will show each GPU's VRAM, utilization, \
                temperature and power, the processes using it, and whether the job fits \
                this machine's tier.";
    frame.render_widget(Paragraph::new(text).style(super::dim()).wrap(Wrap { trim: true }).block(block), area);
}

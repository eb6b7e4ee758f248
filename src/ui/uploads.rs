use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::{AppState, Panel};

/// The upload-queue panel. The sync engine is not part of this build yet, so the panel says
/// what it will show instead of inventing queues.
pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    let block = super::panel_block(state, Panel::Uploads, " Uploads ".into());
    let text = "Not collected yet. This panel will show the L2 (Drive) and L3 (Hub) upload \
                queues: pending files, the upload in flight, and the last success against \
                its schedule.";
    frame.render_widget(Paragraph::new(text).style(super::dim()).wrap(Wrap { trim: true }).block(block), area);
}

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::{AppState, Panel};

/// The training-log panel. The log tailer is not part of this build yet, so the panel says
/// what it will show instead of inventing lines.
pub fn render(state: &AppState, frame: &mut Frame, area: Rect) {
    let block = super::panel_block(state, Panel::Log, " Log ".into());
    let text = "Not collected yet. This panel will follow the training log through rotation, \
                show step, loss, learning rate and throughput with a loss chart, and flag \
                stalls and errors.";
    frame.render_widget(Paragraph::new(text).style(super::dim()).wrap(Wrap { trim: true }).block(block), area);
}

//! Comparing two frames: ratatui's `Buffer::diff` (what `Terminal::draw` runs every frame)
//! against the console's `ui::screen::changes`, on 160x48 frames as the console draws them
//! beside a run: bordered panels, a static one and a log whose lines moved up by one.
//!
//! Run: cargo bench --bench screen
//! Figures and how to read them: docs/performance.md ("The frame diff").

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opsconsole::ui::screen::changes;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Widget};

/// A frame: a static panel on the top left, a log panel below showing lines `first..`.
fn frame(first: usize) -> Buffer {
    let area = Rect::new(0, 0, 160, 48);
    let mut buf = Buffer::empty(area);
    let top = Rect::new(0, 0, 80, 14);
    Paragraph::new(vec![
        Line::from("host cpu 1% · ram 0.6/23.5 GiB 3% · swap 0.0/0.0 GiB"),
        Line::styled("No NVIDIA library: no GPU to show", Style::new().fg(Color::Yellow)),
    ])
    .block(Block::bordered().title(" GPU "))
    .render(top, &mut buf);
    let log = Rect::new(0, 14, 160, 34);
    let lines: Vec<Line> = (first..first + 32)
        .map(|i| {
            Line::from(format!(
                "{{'loss': 3.{i:04}, 'grad_norm': 0.9052, 'learning_rate': 3e-5, 'epoch': 0.01}} step {i}"
            ))
        })
        .collect();
    Paragraph::new(lines).block(Block::bordered().title(" Log ")).render(log, &mut buf);
    buf
}

fn bench_diff(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_diff_160x48");
    let (a, b) = (frame(0), frame(1));
    assert_eq!(a.diff(&b).len(), changes(&a, &b).count(), "both find the same cells");
    for (name, next) in [("unchanged", &a), ("log_moved", &b)] {
        group.bench_function(format!("ratatui_{name}"), |bch| bch.iter(|| black_box(&a).diff(black_box(next)).len()));
        group.bench_function(format!("console_{name}"), |bch| {
            bch.iter(|| changes(black_box(&a), black_box(next)).count())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_diff);
criterion_main!(benches);

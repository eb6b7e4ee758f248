//! Log panel fixtures: collector samples built from real-shaped lines, folded the way the
//! collector folds them (metrics parsed, errors classified, time stamped).

use std::path::PathBuf;
use std::time::SystemTime;

use opsconsole::app::Msg;
use opsconsole::logtail::collector::BackfillProgress;
use opsconsole::logtail::{LiveFold, LogLine, LogSample, MetricParser, TailNote};

pub const LOG_PATH: &str = "/home/me/rsm/experiments/v68/logs/train.log";

/// A demo-trainer-shaped log up to `last_step`: a tqdm bar line, a metrics dict every 50
/// steps, an eval dict every 500.
pub fn hf_lines(last_step: u64) -> Vec<String> {
    let total = 24_000u64;
    let mut out = vec![
        "***** Running training *****".to_string(),
        "  Num examples = 192,000".to_string(),
        format!("  Total optimization steps = {total}"),
    ];
    for step in (50..=last_step).step_by(50) {
        let pct = step * 100 / total;
        out.push(format!(
            "{pct:3}%|▍         | {step}/{total} [{:02}:{:02}<1:58:00, 19.90it/s]",
            step / 20 / 60,
            (step / 20) % 60
        ));
        let loss = 2.8 * (-(step as f64) / 8000.0).exp() + 1.2 + (step as f64 / 130.0).sin() * 0.004;
        out.push(format!(
            "{{'loss': {loss:.4}, 'grad_norm': 0.8123, 'learning_rate': 0.0003, 'epoch': {:.2}}}",
            3.0 * step as f64 / total as f64
        ));
        if step % 500 == 0 {
            out.push(format!(
                "{{'eval_loss': {:.4}, 'eval_runtime': 12.31, 'epoch': {:.2}}}",
                loss + 0.06,
                3.0 * step as f64 / total as f64
            ));
        }
    }
    out
}

/// A first (reset) sample of [`LOG_PATH`] holding `lines`, read at `at`.
pub fn log_sample(lines: &[String], at: SystemTime, writer_alive: bool, partial: Option<&str>) -> Msg {
    let mut fold = LiveFold::new(MetricParser::default(), 2000);
    let mut new_lines: Vec<LogLine> = lines.iter().map(|l| LogLine::new(l.clone())).collect();
    fold.lines(&mut new_lines, at);
    if let Some(p) = partial {
        fold.partial(p);
    }
    let size: usize = lines.iter().map(|l| l.len() + 1).sum();
    Msg::Log(Box::new(LogSample {
        path: PathBuf::from(LOG_PATH),
        reset: true,
        new_lines,
        partial: partial.map(str::to_string),
        size_bytes: Some(size as u64),
        notes: vec![TailNote::Opened],
        metrics: fold.metrics,
        health: fold.health,
        backfill: BackfillProgress { read_bytes: size as u64, total_bytes: size as u64, done: true },
        newer_log: None,
        writer_alive: Some(writer_alive),
        writers: Some(if writer_alive { vec![4242] } else { Vec::new() }),
        error: None,
        at,
    }))
}

/// The end of a run killed by a CUDA out-of-memory error.
pub fn oom_lines() -> Vec<String> {
    let mut l = hf_lines(1200);
    l.extend(
        [
            "Traceback (most recent call last):",
            "  File \"/content/experiments/v68/train.py\", line 212, in <module>",
            "    main()",
            "  File \"/content/experiments/v68/train.py\", line 180, in main",
            "    loss.backward()",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 22.05 GiB of which 1.12 GiB is free.",
        ]
        .map(str::to_string),
    );
    l
}

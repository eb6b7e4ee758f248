//! Metric parsers and health on real-shaped logs (tests/fixtures/logs/), and a
//! malformed-line corpus plus random input that must never panic.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use opsconsole::logtail::backfill::{BackfillResult, backfill};
use opsconsole::logtail::{ErrorKind, MetricParser, MetricsState};
use proptest::prelude::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs").join(name)
}

fn read_history(name: &str) -> BackfillResult {
    let path = fixture(name);
    let len = std::fs::metadata(&path).expect("fixture").len();
    backfill(&path, len, &MetricParser::default(), 2000, 4096, &AtomicBool::new(false), |_| {}).expect("backfill")
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn hf_trainer_log() {
    let r = read_history("hf_trainer.log");
    let m = &r.metrics;
    let want_loss = [
        (50.0, 3.2631),
        (100.0, 2.9123),
        (150.0, 2.5997),
        (200.0, 2.3199),
        (250.0, 2.0984),
        (300.0, 1.9129),
        (350.0, 1.7689),
        (400.0, 1.623),
    ];
    assert_eq!(m.loss.points(), want_loss);
    assert_eq!(m.eval_loss.points(), [(200.0, 2.3699), (400.0, 1.673)]);
    let l = m.latest;
    assert_eq!(l.step, Some(400));
    assert_eq!(l.total_steps, Some(400));
    assert!(close(l.loss, 1.623));
    assert!(close(l.eval_loss, 1.673));
    assert!(close(l.learning_rate, 0.0));
    assert!(close(l.grad_norm, 0.7232));
    assert!(close(l.epoch, 2.0));
    assert!(close(l.iterations_per_second, 2.0));
    assert!(close(l.train_runtime, 201.5));
    assert!(close(l.final_train_loss, 1.6123));
    assert!(close(l.eta_seconds, 0.0));
    assert_eq!(l.tokens_per_second, None);
    assert_eq!(r.health.error_count(), 0);
}

#[test]
fn hf_eta_while_running_comes_from_the_training_bar() {
    let p = MetricParser::default();
    let mut m = MetricsState::new(100);
    for line in [
        " 12%|█▏        | 50/400 [00:25<02:55, 2.00it/s]",
        "{'loss': 3.2631, 'grad_norm': 0.6508, 'learning_rate': 4.375e-05, 'epoch': 0.25}",
        " 50%|█████     | 8/16 [00:01<00:01, 7.98it/s]",
    ] {
        if let Some(u) = p.parse(line.as_bytes()) {
            m.apply(&u);
        }
    }
    assert_eq!(m.latest.step, Some(50));
    assert_eq!(m.latest.eta_seconds, Some(175.0));
}

#[test]
fn lightning_log() {
    let r = read_history("lightning.log");
    let m = &r.metrics;
    assert_eq!(m.loss.points(), [(50.0, 2.6), (100.0, 2.2), (150.0, 1.9), (200.0, 1.8)]);
    assert_eq!(m.eval_loss.points(), [(100.0, 2.3), (200.0, 1.95)]);
    assert_eq!(m.latest.step, Some(200));
    assert!(close(m.latest.epoch, 1.0));
    assert!(close(m.latest.iterations_per_second, 8.9));
}

#[test]
fn json_lines_log() {
    let r = read_history("jsonl.log");
    let l = r.metrics.latest;
    assert_eq!(r.metrics.loss.points().len(), 5, "the nested checkpoint event is no loss");
    assert_eq!(l.step, Some(500));
    assert!(close(l.loss, 1.5));
    assert!(close(l.eval_loss, 1.61));
    assert!(close(l.learning_rate, 1e-4));
    assert!(close(l.grad_norm, 1.0));
    assert!(close(l.tokens_per_second, 1900.0));
    assert!(close(l.epoch, 1.0));
}

#[test]
fn key_value_log() {
    let r = read_history("keyvalue.log");
    let m = &r.metrics;
    assert_eq!(m.loss.points(), [(100.0, 3.12), (200.0, 2.71), (300.0, 2.51), (400.0, 2.33), (500.0, 2.3102)]);
    assert_eq!(m.eval_loss.points(), [(400.0, 2.41)]);
    let l = m.latest;
    assert_eq!((l.step, l.total_steps), (Some(500), Some(1000)));
    assert!(close(l.learning_rate, 3e-4));
    assert!(close(l.grad_norm, 0.9));
    assert!(close(l.tokens_per_second, 2000.0));
    assert!(close(l.epoch, 0.4));
    assert!(close(l.eta_seconds, 1800.0));
}

#[test]
fn key_value_eta_forms() {
    let p = MetricParser::default();
    let eta = |s: &str| p.parse(s.as_bytes()).and_then(|u| u.eta_seconds);
    assert_eq!(eta("step 100 | eta 2h10m"), Some(7800.0));
    assert_eq!(eta("step 100 eta=90s"), Some(90.0));
    assert_eq!(eta("step 100 ETA: 1:02:03"), Some(3723.0));
}

#[test]
fn user_regex_adds_and_overrides() {
    let p = MetricParser::new(&[
        r"ppl=(?P<eval_loss>[0-9.]+)".to_string(),
        r"S(?P<step>\d+) L(?P<loss>[0-9.]+)".to_string(),
    ])
    .expect("patterns");
    let u = p.parse(b"S42 L0.75 loss=9.9 ppl=3.5").expect("match");
    assert_eq!((u.step, u.loss, u.eval_loss), (Some(42), Some(0.75), Some(3.5)));
}

#[test]
fn cuda_oom_log() {
    let r = read_history("oom.log");
    assert_eq!(r.health.error_count(), 1);
    assert_eq!(r.health.counts.cuda_oom, 1);
    let e = r.health.last_error.expect("error");
    assert_eq!(e.kind, ErrorKind::CudaOom);
    assert!(e.message.starts_with("torch.OutOfMemoryError: CUDA out of memory."));
    assert!(e.hint.expect("hint").contains("tier fit"));
    assert_eq!(r.metrics.latest.step, Some(1200));
}

#[test]
fn nan_loss_and_killed_log() {
    let r = read_history("nan_killed.log");
    assert_eq!(r.health.counts.nan_loss, 2);
    assert_eq!(r.health.counts.killed, 1);
    assert_eq!(r.health.error_count(), 3);
    assert_eq!(r.health.last_error.map(|e| e.kind), Some(ErrorKind::Killed));
    assert!(r.metrics.latest.loss.is_some_and(f64::is_infinite));
    assert_eq!(r.metrics.loss.points(), [(10.0, 2.0)]);
    let json = serde_json::to_value(r.metrics.latest).expect("json");
    assert!(json["loss"].is_null(), "NaN/inf are null in JSON: {json}");
}

#[test]
fn malformed_corpus_never_panics() {
    let data = std::fs::read(fixture("malformed.txt")).expect("corpus");
    let p = MetricParser::new(&[r"(?P<loss>[0-9.]+)x".to_string()]).expect("pattern");
    let mut m = MetricsState::new(16);
    let mut parsed = 0;
    for line in data.split(|&b| b == b'\n') {
        // Every prefix too: cut-off lines are what a tailer sees mid-write.
        for end in 0..=line.len() {
            if let Some(u) = p.parse(&line[..end]) {
                m.apply(&u);
                parsed += 1;
            }
        }
    }
    assert!(parsed > 0);
    let r = read_history("malformed.txt");
    assert!(r.lines > 40);
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("'loss'".to_string()),
        Just("\"lr\"".to_string()),
        Just(": ".to_string()),
        Just(", ".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("<".to_string()),
        Just("it/s".to_string()),
        Just("s/it".to_string()),
        Just("step".to_string()),
        Just("eta".to_string()),
        Just("tok/s".to_string()),
        Just("=".to_string()),
        Just("/".to_string()),
        Just("|".to_string()),
        Just("tensor(".to_string()),
        Just("nan".to_string()),
        Just(" ".to_string()),
        "[0-9]{1,25}",
        "[0-9]{1,3}\\.[0-9]{0,3}(e-?[0-9]{1,4})?",
        "[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?",
        "\\PC{0,4}",
    ]
}

proptest! {
    #[test]
    fn parsers_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let p = MetricParser::default();
        let mut m = MetricsState::new(16);
        if let Some(u) = p.parse(&bytes) {
            m.apply(&u);
        }
    }

    #[test]
    fn parsers_never_panic_on_metric_like_text(tokens in proptest::collection::vec(token(), 0..40)) {
        let line = tokens.concat();
        let p = MetricParser::default();
        let mut m = MetricsState::new(16);
        let mut h = opsconsole::logtail::Health::default();
        let u = p.parse(line.as_bytes());
        if let Some(u) = &u {
            m.apply(u);
        }
        h.classify(line.as_bytes(), u.is_some_and(|u| u.has_bad_loss()));
    }
}

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

// ---------------------------------------------------------------------------------------
// Widely used trainers. Each fixture follows the line formats of the project's own source
// (named in tests/fixtures/logs/README.md); the expected values are what the lines say.

fn parse(line: &str) -> opsconsole::logtail::MetricUpdate {
    MetricParser::default().parse(line.as_bytes()).unwrap_or_default()
}

fn points(s: &opsconsole::logtail::metrics::Series) -> Vec<(f64, f64)> {
    s.points()
}

/// nanoGPT (train.py): `step N: train loss X, val loss Y` at each evaluation and `iter N:
/// loss X, time ...ms, mfu ...%` between. The val loss was read as the loss.
#[test]
fn nanogpt_log() {
    let u = parse("step 250: train loss 4.1234, val loss 4.3456");
    assert_eq!((u.step, u.loss, u.eval_loss), (Some(250), Some(4.1234), Some(4.3456)));
    let r = read_history("nanogpt.log");
    let m = &r.metrics;
    assert_eq!(
        points(&m.loss),
        [
            (0.0, 10.9876),
            (0.0, 10.9857),
            (10.0, 9.6543),
            (20.0, 8.1234),
            (250.0, 4.1234),
            (250.0, 4.1012),
            (260.0, 4.0561)
        ]
    );
    assert_eq!(points(&m.eval_loss), [(0.0, 10.9901), (250.0, 4.3456)]);
    let l = m.latest;
    assert_eq!((l.step, l.total_steps, l.loss, l.eval_loss), (Some(260), None, Some(4.0561), Some(4.3456)));
    assert_eq!((l.learning_rate, l.tokens_per_second, l.eta_seconds), (None, None, None));
}

/// Megatron-LM (training.py `training_log`, `evaluate_and_print_results`): keys of several
/// words (`learning rate`, `lm loss`, `grad norm`), `iteration      100/  500000`; the
/// validation block's `lm loss value` is the evaluation loss; the test set's is neither.
#[test]
fn megatron_log() {
    let u = parse(
        " iteration      100/  500000 | consumed samples:        51200 | elapsed time per iteration (ms): 1234.5 | \
         learning rate: 1.500E-04 | global batch size:   512 | lm loss: 7.123456E+00 | loss scale: 1.0 | \
         grad norm: 1.234 | number of skipped iterations:   0 | number of nan iterations:   0 |",
    );
    assert_eq!((u.step, u.total_steps), (Some(100), Some(500_000)));
    assert_eq!((u.learning_rate, u.loss, u.grad_norm), (Some(1.5e-4), Some(7.123456), Some(1.234)));
    let r = read_history("megatron.log");
    let m = &r.metrics;
    assert_eq!(points(&m.loss), [(100.0, 7.123456), (200.0, 6.5), (1000.0, 6.01234), (1100.0, 5.98)]);
    assert_eq!(points(&m.eval_loss), [(1000.0, 6.123456), (1100.0, 5.9)], "the test set's 5.95 is no validation loss");
    let l = m.latest;
    assert_eq!((l.step, l.total_steps), (Some(1100), Some(500_000)));
    assert_eq!((l.loss, l.eval_loss, l.learning_rate, l.grad_norm), (Some(5.98), Some(5.9), Some(2.95e-4), Some(0.8)));
    assert_eq!(l.tokens_per_second, None, "TFLOP/s per GPU is not a token rate");
    assert_eq!(r.health.error_count(), 0);
}

/// DeepSpeed: the engine's `step=N, skipped=0, lr=[...]` through `log_dist`, the pipeline
/// engine's `steps: N loss: X`, ThroughputTimer's `global_step=N`. A list of different
/// learning rates (one per parameter group) is left out, not one of them picked.
#[test]
fn deepspeed_log() {
    assert_eq!(parse("steps: 100 loss: 2.3456 iter time (s): 0.510 samples/sec: 62.745").step, Some(100));
    let mixed = parse("[Rank 0] step=100, skipped=1, lr=[0.0003, 0.00015], mom=[(0.9, 0.999), (0.9, 0.999)]");
    assert_eq!((mixed.step, mixed.learning_rate), (Some(100), None));
    let r = read_history("deepspeed.log");
    let m = &r.metrics;
    assert_eq!(points(&m.loss), [(10.0, 2.9876), (100.0, 2.3456)]);
    let l = m.latest;
    assert_eq!((l.step, l.loss, l.learning_rate, l.epoch), (Some(100), Some(2.3456), Some(0.00015), Some(0.0)));
    assert_eq!((l.tokens_per_second, l.grad_norm), (None, None), "samples/sec is no token rate");
}

/// torchtune (recipes' `pbar.set_description(f"{epoch + 1}|{global_step}|Loss: {loss}")`,
/// StdoutLogger's `Step N | name:value `): the loss was lost. The bar counts one epoch, so
/// its total and time left are not the run's: left out.
#[test]
fn torchtune_log() {
    let u = parse("1|100|Loss: 2.345: 10%|█         | 100/1000 [01:40<15:00,  1.00it/s]");
    assert_eq!((u.step, u.loss, u.epoch), (Some(100), Some(2.345), Some(1.0)));
    assert_eq!((u.total_steps, u.eta_seconds, u.iterations_per_second), (None, None, Some(1.0)));
    let r = read_history("torchtune.log");
    let m = &r.metrics;
    assert_eq!(
        points(&m.loss),
        [(1.0, 1.8953418731689453), (2.0, 1.7712043523788452), (200.0, 1.2034), (201.0, 1.1876), (250.0, 1.1502)]
    );
    let l = m.latest;
    assert_eq!((l.step, l.total_steps, l.eta_seconds, l.epoch), (Some(250), None, None, Some(2.0)));
    assert_eq!((l.learning_rate, l.grad_norm, l.tokens_per_second), (Some(2.5e-5), Some(0.6541), Some(1901.7)));
    assert!(close(l.iterations_per_second, 1.0 / 1.66));

    // Live, every state of the bar arrives, the new epoch's first draw (`0/200`, no
    // description yet) too: it neither moves the step back nor brings the epoch's total.
    let p = MetricParser::default();
    let mut live = MetricsState::new(100);
    let text = std::fs::read(fixture("torchtune.log")).expect("fixture");
    for state in text.split(|&b| b == b'\n' || b == b'\r') {
        if let Some(u) = p.parse(state) {
            live.apply(&u);
        }
    }
    assert_eq!((live.latest.step, live.latest.total_steps, live.latest.eta_seconds), (Some(250), None, None));
}

/// fairseq, `--log-format simple`: `num_updates=N` is the step (it was lost); the
/// validation line's `loss` is the evaluation loss (`valid on 'valid' subset` says so);
/// `wps` (target tokens per second) is the token rate; `nll_loss`, `best_loss`,
/// `loss_scale` are not the loss.
#[test]
fn fairseq_log() {
    assert_eq!(parse("epoch 001 | loss 9.012 | num_updates 500 | lr 0.0005").step, Some(500));
    let r = read_history("fairseq.log");
    let m = &r.metrics;
    assert_eq!(points(&m.loss), [(100.0, 9.512), (200.0, 8.801), (1563.0, 9.012)]);
    assert_eq!(points(&m.eval_loss), [(1563.0, 8.123)]);
    let l = m.latest;
    assert_eq!((l.step, l.loss, l.eval_loss, l.epoch), (Some(1563), Some(9.012), Some(8.123), Some(1.0)));
    assert_eq!((l.learning_rate, l.grad_norm, l.tokens_per_second), (Some(0.000195375), Some(1.1), Some(12000.0)));
}

/// fairseq, `--log-format json`: values are strings; end-of-epoch keys carry the tag
/// (`valid_loss`, `train_num_updates`).
#[test]
fn fairseq_json_log() {
    let r = read_history("fairseq_json.log");
    let m = &r.metrics;
    assert_eq!(points(&m.loss), [(100.0, 9.512), (1563.0, 9.012)]);
    assert_eq!(points(&m.eval_loss), [(1563.0, 8.123)]);
    let l = m.latest;
    assert_eq!(
        (l.step, l.learning_rate, l.grad_norm, l.tokens_per_second),
        (Some(1563), Some(0.000195375), Some(1.1), Some(12000.0))
    );
}

/// torchtitan (components/metrics.py): coloured (`\x1b[31mstep: ...`, read from the raw
/// file), `tps: 2,345` with a thousands separator (read as 2.0 before), the validator's
/// `validate step: N  loss: X` (an evaluation: its loss and throughput are not the
/// training's), the total from `Trainer is initialized with ... total steps 1000`.
#[test]
fn torchtitan_log() {
    assert_eq!(
        parse("step: 10  loss:  9.87210  grad_norm:  2.5012  tps: 2,345  tflops: 135.79").tokens_per_second,
        Some(2345.0)
    );
    let r = read_history("torchtitan.log");
    let m = &r.metrics;
    assert_eq!(points(&m.loss), [(1.0, 12.2365), (10.0, 9.8721), (100.0, 4.1234), (110.0, 4.0567)]);
    assert_eq!(points(&m.eval_loss), [(100.0, 4.321)]);
    let l = m.latest;
    assert_eq!((l.step, l.total_steps, l.grad_norm), (Some(110), Some(1000), Some(0.9512)));
    assert_eq!(l.tokens_per_second, Some(12401.0), "the validation's 23,456 tps is not the training's");
}

/// Keras 3, `verbose=1` (utils/progbar.py: `\b`s, `\r`, bold counter, `━` bar) and
/// `verbose=2`: `loss` and `val_loss`; the counter and time left are the epoch's, so no
/// step, total or ETA is taken from them; `Epoch 2/2` gives the epoch.
#[test]
fn keras_logs() {
    let r = read_history("keras.log");
    let m = &r.metrics;
    assert_eq!(points(&m.loss), [(1.0, 0.8123), (2.0, 0.4512), (3.0, 0.2187), (4.0, 0.1654)]);
    assert_eq!(points(&m.eval_loss), [(2.0, 0.1789), (4.0, 0.1301)]);
    let l = m.latest;
    assert_eq!((l.step, l.total_steps, l.eta_seconds, l.epoch), (None, None, None, Some(2.0)));
    let r = read_history("keras_verbose2.log");
    assert_eq!(points(&r.metrics.loss), [(1.0, 0.4512), (2.0, 0.1654)]);
    assert_eq!(points(&r.metrics.eval_loss), [(1.0, 0.1789), (2.0, 0.1301)]);
    // Keras 2's bar names its (epoch's) time left `ETA`.
    let u = parse(" 100/1875 [==>...........................] - ETA: 3:04 - loss: 2.3456 - accuracy: 0.1234");
    assert_eq!((u.loss, u.eta_seconds, u.step), (Some(2.3456), None, None));
}

/// TRL through transformers' Trainer: dict lines under the bar; `aux_loss`, `rewards/*`,
/// `logps/*`, `mean_token_accuracy` are not the loss; `eval_*` keys are the evaluation's.
#[test]
fn trl_log() {
    let r = read_history("trl.log");
    let m = &r.metrics;
    assert_eq!(points(&m.loss), [(10.0, 1.7363), (20.0, 1.5121), (30.0, 0.6927)]);
    assert_eq!(points(&m.eval_loss), [(20.0, 1.4987)]);
    let l = m.latest;
    assert_eq!((l.step, l.total_steps, l.eta_seconds), (Some(30), Some(125), Some(190.0)));
    assert_eq!((l.learning_rate, l.grad_norm, l.epoch), (Some(1.4e-5), Some(4.1025), Some(0.24)));
}

/// accelerate's examples: the `Running training` banner's total, the tqdm bar's step, and
/// `epoch 0: perplexity: ... eval_loss: tensor(3.3642, device='cuda:0')` logged onto the
/// bar's line.
#[test]
fn accelerate_log() {
    let r = read_history("accelerate.log");
    let m = &r.metrics;
    assert!(m.loss.is_empty());
    assert_eq!(points(&m.eval_loss), [(290.0, 3.3642), (580.0, 3.223)]);
    let l = m.latest;
    assert_eq!((l.step, l.total_steps, l.eta_seconds, l.epoch), (Some(580), Some(870), Some(72.0), Some(2.0)));
}

/// What the parser cannot be sure of is left out, never guessed.
#[test]
fn unsure_values_are_left_out() {
    let none = |line: &str| {
        let u = parse(line);
        assert_eq!((u.loss, u.eval_loss, u.step, u.learning_rate), (None, None, None, None), "{line}: {u:?}");
    };
    none("loss 2,3"); // a decimal comma, or two values
    none("loss 0,345");
    none("lr=[0.0003, 0.00015]");
    none("sop loss: 1.2");
    none("nll_loss 3.0 | best_loss 2.9 | loss_scale 128");
    none("aux_loss: 0.01");
    none("value_loss 0.3 | loss/value_avg 0.2 | policy_loss 0.1");
    none("eval_steps=500 warmup_steps=100 save_steps=1000 logging_steps=10");
    none("test loss 2.0");
    let test_set =
        parse(" validation loss at iteration 1100 on test set | lm loss value: 5.950000E+00 | lm loss PPL: 3.8E+02 |");
    assert_eq!((test_set.loss, test_set.eval_loss, test_set.step), (None, None, Some(1100)));
    none("loss scale: 1.0 | number of nan iterations:   0");
    none("Saving best model with val loss 2.3");
    // An evaluation bar moves nothing.
    let u = parse("Validation DataLoader 0:  40%|████      | 8/20 [00:00<00:01,  9.50it/s]");
    assert_eq!((u.step, u.total_steps, u.eta_seconds, u.iterations_per_second), (None, None, None, None));
    // Qualifiers on either side, any case.
    assert_eq!(parse("loss/val: 1.5").eval_loss, Some(1.5));
    assert_eq!(parse("Validation Loss: 1.25").eval_loss, Some(1.25));
    assert_eq!(parse("Train Loss: 1.75, Eval Loss: 1.5").loss, Some(1.75));
    assert_eq!(parse("tokens_per_second_per_gpu:1843.2").tokens_per_second, Some(1843.2));
    assert_eq!(parse("throughput 1,234,567.5 tok/s 12,345").tokens_per_second, Some(12345.0));
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

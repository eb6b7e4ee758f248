//! GPU collector through the real nvml-wrapper loading path, against a C stand-in for
//! libnvidia-ml.so.1; tier fit on live samples; the VRAM estimator against published
//! figures.

#[path = "support/nvml.rs"]
mod nvml_support;
#[path = "support/tmux.rs"]
mod tmux;
use tmux::Tmux;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, SystemTime};

use nvml_support::{A100_80_TOTAL, GIB, L4_TOTAL, StubNvml, gpu_line, proc_line};
use opsconsole::gpu::estimate::{
    Dtype, EstimateInput, Mode, Optimizer, config_json_info, estimate, parse_params, read_model,
};
use opsconsole::gpu::procinfo::lookup_user;
use opsconsole::gpu::tier::{JobScope, machine_tier};
use opsconsole::gpu::{FitTracker, GpuCollector, GpuConfig, GpuHistory, NvmlStatus, Verdict};

/// A child process that lives in `cwd` until dropped.
struct Sleeper(Child);

impl Sleeper {
    fn start(cwd: &Path) -> Self {
        let child = Command::new("sleep").arg("300").current_dir(cwd).spawn().expect("spawn sleep");
        // spawn() returns while exec is still setting up the new command line; wait for it
        // (generous deadline; this is not what the tests measure).
        let cmdline = format!("/proc/{}/cmdline", child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read(&cmdline).map(|b| b.is_empty()).unwrap_or(true) {
            assert!(std::time::Instant::now() < deadline, "sleep never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        Self(child)
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000 + secs)
}

fn gib_f(x: f64) -> u64 {
    (x * GIB as f64) as u64
}

/// The two-GPU rig: an L4 whose workspace job uses `job_bytes`, and an A100 80GB that does
/// not report power, holding this test process (not in the workspace) and a vanished pid.
fn two_gpu_fixture(job_pid: u32, job_bytes: u64) -> String {
    let mut f = String::from("# two GPUs\ninit 0\ndriver 550.54.15\n");
    f += &gpu_line(
        "NVIDIA L4",
        L4_TOTAL,
        job_bytes + 300 * 1024 * 1024,
        "util=97 memutil=61 temp=71 power=72000 limit=72000",
    );
    f += &gpu_line("NVIDIA A100-SXM4-80GB", A100_80_TOTAL, 31 * GIB, "util=12 memutil=3 temp=40 power=NS limit=NS");
    f += &proc_line(0, job_pid, job_bytes);
    f += &proc_line(1, std::process::id(), 30 * GIB);
    f += &proc_line(1, 4_000_000, GIB); // above pid_max: never a live process
    f
}

fn stub_config(stub: &StubNvml) -> GpuConfig {
    GpuConfig { lib_path: Some(stub.lib.clone()), ..GpuConfig::default() }
}

#[test]
fn two_gpus_processes_and_not_supported_power_through_the_real_wrapper() {
    let stub = StubNvml::build();
    let workspace = tempfile::tempdir().expect("workspace");
    let ws = workspace.path().canonicalize().expect("canonical workspace");
    let job = Sleeper::start(&ws);
    stub.write(&two_gpu_fixture(job.pid(), gib_f(18.9)));

    let cfg = stub_config(&stub);
    let mut collector = GpuCollector::new(&cfg);
    assert_eq!(collector.status(), &NvmlStatus::NotOpened, "opened lazily");
    let s = stub.with_env(|| collector.sample(t(0)));

    assert_eq!(s.nvml, NvmlStatus::Ok { driver_version: "550.54.15".into() });
    assert_eq!(s.taken_at_unix_ms, 1_764_000_000_000);
    assert_eq!(s.gpus.len(), 2);
    let (l4, a100) = (&s.gpus[0], &s.gpus[1]);
    assert_eq!(l4.name, "NVIDIA L4");
    assert_eq!(l4.memory_total_bytes, Some(L4_TOTAL));
    assert_eq!(l4.memory_used_bytes, Some(gib_f(18.9) + 300 * 1024 * 1024));
    assert_eq!(l4.utilization_pct, Some(97));
    assert_eq!(l4.memory_utilization_pct, Some(61));
    assert_eq!(l4.temperature_c, Some(71));
    assert_eq!(l4.power_draw_mw, Some(72_000));
    assert_eq!(l4.power_limit_mw, Some(72_000));
    assert_eq!(a100.name, "NVIDIA A100-SXM4-80GB");
    assert_eq!(a100.memory_total_bytes, Some(A100_80_TOTAL));
    assert_eq!(a100.power_draw_mw, None, "NOT_SUPPORTED is n/a, not an error");
    assert_eq!(a100.power_limit_mw, None);
    assert_eq!(a100.error, None);

    // The job on the L4: its command line, owner, start time and folder come from /proc.
    assert_eq!(l4.processes.len(), 1);
    let p = &l4.processes[0];
    assert_eq!(p.pid, job.pid());
    assert_eq!(p.gpu_index, 0);
    assert_eq!(p.used_bytes, Some(gib_f(18.9)));
    assert_eq!(p.command.as_deref(), Some("sleep 300"));
    assert_eq!(p.short_name(), "sleep");
    let me = rustix::process::getuid().as_raw();
    assert_eq!(p.uid, Some(me));
    assert_eq!(p.user, lookup_user(me));
    assert_eq!(p.cwd.as_deref(), Some(ws.as_path()));
    let started = p.start_time_unix_s.expect("start time");
    let wall = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_secs();
    assert!(started + 600 > wall && started <= wall + 1, "{started} vs {wall}");
    // The A100: this test process, and a pid that no longer exists (no /proc facts).
    assert_eq!(a100.processes.len(), 2);
    assert_eq!(a100.processes[0].pid, std::process::id());
    assert!(a100.processes[0].command.is_some());
    assert_eq!(a100.processes[1].pid, 4_000_000);
    assert_eq!(a100.processes[1].command, None);
    assert_eq!(a100.processes[1].used_bytes, Some(GIB));

    // Tiers: the machine is tier 1 (GPU 0 is an L4); the workspace job is near its budget.
    assert_eq!(machine_tier(&cfg, &s).map(|t| t.name.as_str()), Some("tier1"));
    let mut fit = FitTracker::new();
    let f = fit.update(&cfg, &s, Some(&ws)).expect("tier fit");
    assert_eq!(f.scope, JobScope::Workspace);
    assert_eq!(f.pids, vec![job.pid()]);
    assert_eq!(f.tier, "tier1");
    assert_eq!(f.budget_bytes, 20 * GIB);
    assert_eq!(f.used_bytes, gib_f(18.9));
    assert_eq!(f.verdict, Verdict::Near);
    assert_eq!(f.advice, None);

    // `status --json` fields.
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(json["nvml"]["state"], "ok");
    assert_eq!(json["gpus"][1]["power_draw_mw"], serde_json::Value::Null);
    assert_eq!(json["gpus"][0]["processes"][0]["command"], "sleep 300");
    let fj = serde_json::to_value(&f).expect("json");
    for key in ["tier", "budget_bytes", "used_bytes", "peak_bytes", "verdict"] {
        assert!(fj.get(key).is_some(), "tier_fit.{key} missing: {fj}");
    }
    assert_eq!(fj["verdict"], "near");

    // The job grows past the budget: the next sample sees the new fixture.
    let mut history = GpuHistory::from_config(&cfg);
    history.push(&s);
    stub.write(&two_gpu_fixture(job.pid(), gib_f(21.0)));
    let s2 = collector.sample(t(1));
    history.push(&s2);
    let f2 = fit.update(&cfg, &s2, Some(&ws)).expect("tier fit");
    assert_eq!(f2.verdict, Verdict::Exceeds);
    let advice = f2.advice.expect("advice on exceeds");
    assert!(advice.contains("tier2") && advice.contains("airlock bundle"), "{advice}");
    // And shrinks again: the peak since the job started stays.
    stub.write(&two_gpu_fixture(job.pid(), gib_f(10.0)));
    let s3 = collector.sample(t(2));
    history.push(&s3);
    let f3 = fit.update(&cfg, &s3, Some(&ws)).expect("tier fit");
    assert_eq!(f3.used_bytes, gib_f(10.0));
    assert_eq!(f3.peak_bytes, gib_f(21.0));
    assert_eq!(f3.verdict, Verdict::Exceeds);

    // History rings hold the three samples, per GPU and per process.
    assert_eq!(
        history.vram_series(0),
        vec![gib_f(18.9) + 300 * 1024 * 1024, gib_f(21.0) + 300 * 1024 * 1024, gib_f(10.0) + 300 * 1024 * 1024]
    );
    assert_eq!(history.utilization_series(0), vec![97, 97, 97]);
    assert!(history.power_series(1).is_empty(), "A100 never reported power");
    let job_vram: Vec<u64> = history.process(0, job.pid()).map(|(_, b)| *b).collect();
    assert_eq!(job_vram, vec![gib_f(18.9), gib_f(21.0), gib_f(10.0)]);
}

#[test]
fn without_a_workspace_match_every_compute_process_is_the_job() {
    let stub = StubNvml::build();
    let elsewhere = tempfile::tempdir().expect("dir");
    let job = Sleeper::start(elsewhere.path());
    stub.write(&two_gpu_fixture(job.pid(), gib_f(18.9)));
    let cfg = stub_config(&stub);
    let mut collector = GpuCollector::new(&cfg);
    let s = stub.with_env(|| collector.sample(t(0)));
    let unrelated = tempfile::tempdir().expect("ws");
    let f = FitTracker::new().update(&cfg, &s, Some(unrelated.path())).expect("fit");
    assert_eq!(f.scope, JobScope::AllProcesses);
    // Largest share is the A100's 31 GiB (30 + 1): judged against tier 2.
    assert_eq!(f.gpu_index, Some(1));
    assert_eq!(f.used_bytes, 31 * GIB);
    assert_eq!(f.tier, "tier2");
    assert_eq!(f.verdict, Verdict::Fits);
}

/// Per-process SM utilization through nvml-wrapper's `process_utilization_stats` against
/// the stub's `nvmlDeviceGetProcessUtilization` (count first with a NULL buffer, as NVML
/// answers: INSUFFICIENT_SIZE; NOT_FOUND with no sample; NOT_SUPPORTED on a device without
/// it): a sampled process has its share, a supported process without a sample is 0%, and a
/// device that does not report it gives nothing, never 0%.
#[test]
fn per_process_sm_utilization_where_nvml_gives_it() {
    let stub = StubNvml::build();
    let me = std::process::id();
    let mut f = String::from("init 0\ndriver 550.54.15\n");
    f += &gpu_line("NVIDIA L4", L4_TOTAL, 10 * GIB, "util=97 memutil=61 temp=71 power=72000 limit=72000");
    f += &gpu_line("NVIDIA A100-SXM4-80GB", A100_80_TOTAL, 31 * GIB, "util=12 procutil=NS");
    f += &format!("proc gpu=0 pid={me} used={} sm=57\n", 8 * GIB);
    f += &format!("proc gpu=0 pid=4000000 used={}\n", GIB);
    f += &format!("proc gpu=1 pid={me} used={} sm=40\n", 30 * GIB);
    stub.write(&f);
    let mut collector = GpuCollector::new(&stub_config(&stub));
    let s = stub.with_env(|| collector.sample(t(0)));
    let (l4, a100) = (&s.gpus[0], &s.gpus[1]);
    assert_eq!(l4.processes[0].sm_util_pct, Some(57));
    assert_eq!(l4.processes[1].sm_util_pct, Some(0), "supported, no non-zero sample: idle");
    assert_eq!(a100.processes[0].sm_util_pct, None, "NOT_SUPPORTED: nothing, not 0%");
    // Samples since the last read: a new fixture value is read on the next read, which is
    // gpu.process_util_ms (5 s) after the last one.
    f = f.replace("sm=57", "sm=12");
    stub.write(&f);
    let s = stub.with_env(|| collector.sample(t(5)));
    assert_eq!(s.gpus[0].processes[0].sm_util_pct, Some(12));
    // No sample at all on a supported device (NOT_FOUND): every process is 0%.
    stub.write(&f.replace(" sm=12", ""));
    let s = stub.with_env(|| collector.sample(t(10)));
    assert_eq!(s.gpus[0].processes[0].sm_util_pct, Some(0));
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(json["gpus"][0]["processes"][0]["sm_util_pct"], 0);
    assert_eq!(json["gpus"][1]["processes"][0]["sm_util_pct"], serde_json::Value::Null);
}

/// NVML's per-process utilization costs milliseconds of CPU on a real driver (1.5-2.3 ms on
/// an H200, driver 580; the rest of a sample under 0.1 ms), so it is read every
/// `gpu.process_util_ms`, at once for a process not seen before, and never at 0. Between
/// reads each process keeps its last figure.
#[test]
fn per_process_utilization_is_read_every_process_util_ms_and_for_new_processes() {
    let stub = StubNvml::build();
    let me = std::process::id();
    let fixture = |sm: u32, second: bool| {
        let mut f = String::from("init 0\ndriver 550.54.15\n");
        f += &gpu_line("NVIDIA L4", L4_TOTAL, 10 * GIB, "util=97 memutil=61 temp=71 power=72000 limit=72000");
        f += &format!("proc gpu=0 pid={me} used={} sm={sm}\n", 8 * GIB);
        if second {
            f += &format!("proc gpu=0 pid=1 used={} sm=33\n", GIB);
        }
        f
    };
    let cfg = GpuConfig { process_util_ms: 3000, ..stub_config(&stub) };
    let mut collector = GpuCollector::new(&cfg);
    let share = |s: &opsconsole::gpu::GpuSample, pid: u32| {
        s.gpus[0].processes.iter().find(|p| p.pid == pid).and_then(|p| p.sm_util_pct)
    };
    stub.write(&fixture(57, false));
    assert_eq!(share(&stub.with_env(|| collector.sample(t(0))), me), Some(57));
    // Within 3 s the figure is the last read's, whatever the driver would say now.
    stub.write(&fixture(12, false));
    assert_eq!(share(&stub.with_env(|| collector.sample(t(1))), me), Some(57));
    assert_eq!(share(&stub.with_env(|| collector.sample(t(2))), me), Some(57));
    // 3 s after the last read: read again.
    assert_eq!(share(&stub.with_env(|| collector.sample(t(3))), me), Some(12));
    // A process that appears is read at once, not up to 3 s later.
    stub.write(&fixture(20, true));
    let s = stub.with_env(|| collector.sample(t(4)));
    assert_eq!(share(&s, 1), Some(33));
    assert_eq!(share(&s, me), Some(20), "the same read brings every process's figure");

    // 0: never read; no figure rather than 0%.
    let off = GpuConfig { process_util_ms: 0, ..stub_config(&stub) };
    let mut collector = GpuCollector::new(&off);
    let s = stub.with_env(|| collector.sample(t(0)));
    assert_eq!(s.gpus[0].processes.len(), 2);
    assert!(s.gpus[0].processes.iter().all(|p| p.sm_util_pct.is_none()), "{:?}", s.gpus[0].processes);
}

#[test]
fn driver_not_loaded_is_a_plain_status() {
    let stub = StubNvml::build();
    stub.write("init 9\n"); // NVML_ERROR_DRIVER_NOT_LOADED from nvmlInit_v2
    let mut collector = GpuCollector::new(&stub_config(&stub));
    let s = stub.with_env(|| collector.sample(t(0)));
    assert_eq!(s.nvml, NvmlStatus::DriverNotLoaded);
    assert!(s.gpus.is_empty());
    assert!(s.nvml.describe().contains("not loaded"), "{}", s.nvml.describe());
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(json["nvml"]["state"], "driver_not_loaded");
    // The driver gets loaded; after the retry delay the collector opens NVML.
    stub.write(&two_gpu_fixture(std::process::id(), GIB));
    let s2 = stub.with_env(|| collector.sample(t(10)));
    assert_eq!(s2.nvml, NvmlStatus::DriverNotLoaded, "not retried within a minute");
    let s3 = stub.with_env(|| collector.sample(t(61)));
    assert!(s3.nvml.is_ok(), "{:?}", s3.nvml);
    assert_eq!(s3.gpus.len(), 2);
}

#[test]
fn no_permission_is_a_plain_status() {
    let stub = StubNvml::build();
    stub.write("init 4\n"); // NVML_ERROR_NO_PERMISSION
    let mut collector = GpuCollector::new(&stub_config(&stub));
    let s = stub.with_env(|| collector.sample(t(0)));
    assert_eq!(s.nvml, NvmlStatus::NoPermission);
    assert!(s.nvml.describe().contains("permission"));
}

#[test]
fn no_library_is_a_plain_status() {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = GpuConfig { lib_path: Some(dir.path().join("libnvidia-ml.so.1")), ..GpuConfig::default() };
    let s = GpuCollector::new(&cfg).sample(t(0));
    match &s.nvml {
        NvmlStatus::LibraryMissing { library, .. } => {
            assert!(library.ends_with("libnvidia-ml.so.1"))
        }
        other => panic!("expected LibraryMissing, got {other:?}"),
    }
    assert!(s.gpus.is_empty());
    assert_eq!(serde_json::to_value(&s).expect("json")["nvml"]["state"], "library_missing");
}

#[test]
fn an_nvml_without_the_v3_process_call_says_so() {
    let stub = StubNvml::build_with(&["-DSTUB_NO_PROCESSES_V3"]);
    stub.write(&two_gpu_fixture(std::process::id(), GIB));
    let mut collector = GpuCollector::new(&stub_config(&stub));
    let s = stub.with_env(|| collector.sample(t(0)));
    assert!(s.nvml.is_ok(), "{:?}", s.nvml);
    let g = &s.gpus[0];
    assert!(g.processes.is_empty());
    assert_eq!(g.memory_total_bytes, Some(L4_TOTAL), "the rest of the GPU is still read");
    let e = g.processes_error.as_deref().expect("processes_error");
    assert!(e.contains("nvmlDeviceGetComputeRunningProcesses_v3"), "{e}");
}

#[test]
fn memory_not_supported_is_none() {
    let stub = StubNvml::build();
    stub.write(&format!(
        "init 0\ndriver 1\n{}",
        gpu_line("NVIDIA L4", 0, 0, "util=NS memutil=NS temp=NS power=NS limit=NS")
            .replace("total=0 used=0", "total=NS used=NS")
    ));
    let mut collector = GpuCollector::new(&stub_config(&stub));
    let s = stub.with_env(|| collector.sample(t(0)));
    let g = &s.gpus[0];
    assert_eq!(g.name, "NVIDIA L4");
    assert_eq!((g.memory_total_bytes, g.utilization_pct, g.temperature_c), (None, None, None));
    assert!(g.processes.is_empty());
    assert_eq!(g.processes_error, None, "an empty list is not an error");
}

// ---------------------------------------------------------------------------------------
// Estimator against published figures.

fn tiers() -> Vec<opsconsole::gpu::TierConfig> {
    GpuConfig::default().tiers
}

fn no_overhead(params: u64, dtype: Dtype, mode: Mode) -> EstimateInput {
    EstimateInput { overhead_bytes: 0, ..EstimateInput::new(params, dtype, mode) }
}

/// Published: Hugging Face Transformers docs, "Model training anatomy"
/// (huggingface.co/docs/transformers/model_memory_anatomy): fp32 training keeps weights
/// (4 bytes/param), gradients (4) and AdamW state (8): 16 bytes per parameter before
/// activations. For a 7B model: 112 GB, which fits no default tier.
#[test]
fn published_fp32_adamw_is_16_bytes_per_param_and_7b_needs_112_gb() {
    let full = Mode::Full { optimizer: Optimizer::Adamw };
    let e = estimate(&no_overhead(7_000_000_000, Dtype::Fp32, full), &tiers()).expect("estimate");
    let b = e.breakdown;
    assert_eq!(b.weights_bytes, 28_000_000_000);
    assert_eq!(b.gradients_bytes, 28_000_000_000);
    assert_eq!(b.optimizer_bytes, 56_000_000_000);
    assert_eq!(b.total_bytes, 112_000_000_000);
    assert!(e.tiers.iter().all(|t| t.verdict == Verdict::Exceeds), "{:?}", e.tiers);
}

/// Published: same HF page: mixed precision keeps an fp32 and a 16-bit copy of the weights
/// (6 bytes/param), fp32 gradients (4) and AdamW state (8): 18 bytes per parameter; 8-bit
/// AdamW (bitsandbytes) needs 2 bytes/param of state and SGD with momentum 4.
#[test]
fn published_mixed_precision_adamw_is_18_bytes_per_param_and_other_optimizers() {
    let n = 1_000_000_000;
    let per_param = |opt: Optimizer| {
        let e = estimate(&no_overhead(n, Dtype::Bf16, Mode::Full { optimizer: opt }), &tiers()).expect("estimate");
        (
            e.breakdown.weights_bytes / n,
            e.breakdown.gradients_bytes / n,
            e.breakdown.optimizer_bytes / n,
            e.breakdown.total_bytes / n,
        )
    };
    assert_eq!(per_param(Optimizer::Adamw), (6, 4, 8, 18));
    assert_eq!(per_param(Optimizer::Adamw8bit), (6, 4, 2, 12));
    assert_eq!(per_param(Optimizer::Sgd), (6, 4, 4, 14));
}

/// Published: HF Transformers docs, "Optimizing LLMs for Speed and Memory"
/// (huggingface.co/docs/transformers/llm_tutorial_optimization): loading X billion
/// parameters takes about 2·X GB in bfloat16 (Llama-2-70b: 2 · 70 = 140 GB) and 4·X GB
/// in float32.
#[test]
fn published_inference_weights_2_bytes_per_param_bf16() {
    let e = estimate(&no_overhead(70_000_000_000, Dtype::Bf16, Mode::Inference), &tiers()).expect("estimate");
    assert_eq!(e.breakdown.weights_bytes, 140_000_000_000);
    assert_eq!(e.breakdown.gradients_bytes + e.breakdown.optimizer_bytes, 0);
    let e32 = estimate(&no_overhead(7_000_000_000, Dtype::Fp32, Mode::Inference), &tiers()).expect("estimate");
    assert_eq!(e32.breakdown.weights_bytes, 28_000_000_000);
    let e4 = estimate(&no_overhead(7_000_000_000, Dtype::Int4, Mode::Inference), &tiers()).expect("estimate");
    assert_eq!(e4.breakdown.weights_bytes, 3_500_000_000);
    // A 7B model in bf16 (14 GB + 1 GiB runtime overhead) fits tier 1's 20 GiB budget.
    let e7 = estimate(&EstimateInput::new(7_000_000_000, Dtype::Bf16, Mode::Inference), &tiers()).expect("estimate");
    assert_eq!(e7.tiers[0].verdict, Verdict::Fits);
}

/// Published: Dive into Deep Learning, §5.2 "Parameters, State, and Memory"
/// (d2l.ai/chapter_builders-guide/parameters-state-memory.html): an 8B model takes 32 GB
/// in fp32, and training it with Adam four times as much, 128 GB, before any example —
/// more than an 80 GB GPU holds.
#[test]
fn published_8b_fp32_adam_needs_128_gb_more_than_an_a100() {
    let e = estimate(&no_overhead(8_000_000_000, Dtype::Fp32, Mode::Full { optimizer: Optimizer::Adamw }), &tiers())
        .expect("estimate");
    assert_eq!(e.breakdown.weights_bytes, 32_000_000_000);
    assert_eq!(e.breakdown.total_bytes, 128_000_000_000);
    assert_eq!(e.tiers[1].verdict, Verdict::Exceeds);
}

/// Published parameter counts, computed from config.json alone: GPT-2 (124M;
/// 124,439,808 as `model.num_parameters()` reports for openai-community/gpt2) and
/// Llama-2-7b (6.74B; 6,738,415,616 for meta-llama/Llama-2-7b-hf).
#[test]
fn published_parameter_counts_from_config_json() {
    let gpt2 = r#"{"model_type":"gpt2","n_embd":768,"n_layer":12,"n_head":12,
        "n_positions":1024,"n_ctx":1024,"vocab_size":50257,"n_inner":null}"#;
    let info = config_json_info(gpt2).expect("gpt2");
    assert_eq!(info.params, 124_439_808);
    assert_eq!((info.hidden, info.layers, info.heads), (Some(768), Some(12), Some(12)));

    let llama = r#"{"model_type":"llama","hidden_size":4096,"intermediate_size":11008,
        "num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":32,
        "vocab_size":32000,"hidden_act":"silu","tie_word_embeddings":false,
        "torch_dtype":"float16"}"#;
    let info = config_json_info(llama).expect("llama");
    assert_eq!(info.params, 6_738_415_616);
    assert_eq!(info.dtype, Some(Dtype::Fp16));
}

/// Formula check: Korthikanti et al. 2022, eq. 1, activations per layer
/// s·b·h·(34 + 5·a·s/h) bytes. With GPT-3 175B's shape (h=12288, a=96, L=96) at s=2048,
/// b=1: 2048·12288·(34 + 80) bytes per layer.
#[test]
fn activation_term_follows_korthikanti_eq1() {
    let mut input = no_overhead(175_000_000_000, Dtype::Bf16, Mode::Full { optimizer: Optimizer::Adamw });
    input.batch = Some(1);
    input.seq = Some(2048);
    input.hidden = Some(12288);
    input.layers = Some(96);
    input.heads = Some(96);
    let e = estimate(&input, &tiers()).expect("estimate");
    assert_eq!(e.breakdown.activations_bytes, 96 * 2048 * 12288 * (34 + 80));
    assert!(e.activation_formula.expect("formula").contains("Korthikanti"));
    // FlashAttention keeps no s×s scores: only the 34·sbh term remains.
    input.flash_attention = true;
    let e = estimate(&input, &tiers()).expect("estimate");
    assert_eq!(e.breakdown.activations_bytes, 96 * 2048 * 12288 * 34);
}

#[test]
fn lora_and_inference_kv_cache() {
    // QLoRA-style: 7B in int4, 1% trainable adapters with AdamW.
    let mut input = no_overhead(7_000_000_000, Dtype::Int4, Mode::Lora { optimizer: Optimizer::Adamw, fraction: 0.01 });
    let e = estimate(&input, &tiers()).expect("estimate");
    assert_eq!(e.trainable_params, 70_000_000);
    assert_eq!(e.breakdown.weights_bytes, 3_500_000_000 + 280_000_000);
    assert_eq!(e.breakdown.gradients_bytes, 280_000_000);
    assert_eq!(e.breakdown.optimizer_bytes, 560_000_000);
    input.mode = Mode::Lora { optimizer: Optimizer::Adamw, fraction: 0.0 };
    assert!(estimate(&input, &tiers()).is_err());
    // Full fine-tuning of int4 weights is refused with a way out.
    input.mode = Mode::Full { optimizer: Optimizer::Adamw };
    let err = estimate(&input, &tiers()).expect_err("int4 full");
    assert!(err.to_string().contains("lora"), "{err}");

    // Inference KV cache with grouped-query attention: 2·L·b·s·h·kv/a·2 bytes.
    let mut inf = no_overhead(8_000_000_000, Dtype::Bf16, Mode::Inference);
    inf.batch = Some(1);
    inf.seq = Some(8192);
    inf.hidden = Some(4096);
    inf.layers = Some(32);
    inf.heads = Some(32);
    inf.kv_heads = Some(8);
    let e = estimate(&inf, &tiers()).expect("estimate");
    assert_eq!(e.breakdown.activations_bytes, 2 * 32 * 8192 * 1024 * 2);
}

/// Korthikanti et al. 2022, section 4: with full activation recomputation only each
/// layer's input is kept, 2·s·b·h bytes per layer; the backward pass recomputes one layer
/// at a time, so one layer's s·b·h·(34 + 5·a·s/h) comes on top.
#[test]
fn gradient_checkpointing_keeps_layer_inputs_and_one_layer() {
    let mut input = no_overhead(7_000_000_000, Dtype::Bf16, Mode::Lora { optimizer: Optimizer::Adamw, fraction: 0.01 });
    input.batch = Some(2);
    input.seq = Some(4096);
    input.hidden = Some(4096);
    input.layers = Some(32);
    input.heads = Some(32);
    let full = estimate(&input, &tiers()).expect("estimate").breakdown.activations_bytes;
    let (s, b, h, a, l) = (4096u64, 2u64, 4096u64, 32u64, 32u64);
    let one_layer = s * b * h * 34 + 5 * a * s * s * b;
    assert_eq!(full, l * one_layer);
    input.gradient_checkpointing = true;
    let e = estimate(&input, &tiers()).expect("estimate");
    assert_eq!(e.breakdown.activations_bytes, l * 2 * s * b * h + one_layer);
    assert!(e.activation_formula.expect("formula").contains("gradient checkpointing"));
    // Inference has no backward pass: the flag is refused in words.
    input.mode = Mode::Inference;
    let err = estimate(&input, &tiers()).expect_err("inference");
    assert!(err.to_string().contains("--gradient-checkpointing"), "{err}");
}

/// Applies advice flags (`--dtype int4 --batch 1`) to a request, as a user retyping them
/// would.
fn with_flags(mut req: opsconsole::gpu::fit::FitRequest, flags: &str) -> opsconsole::gpu::fit::FitRequest {
    let mut words = flags.split_whitespace();
    while let Some(flag) = words.next() {
        match flag {
            "--gradient-checkpointing" => req.gradient_checkpointing = true,
            "--flash-attention" => req.flash_attention = true,
            "--mode" => req.mode = words.next().map(str::to_string),
            "--dtype" => req.dtype = words.next().map(str::to_string),
            "--optimizer" => req.optimizer = words.next().map(str::to_string),
            "--batch" => req.batch = words.next().map(|b| b.parse().expect("batch")),
            other => panic!("advice names a flag fit does not have: {other} in {flags:?}"),
        }
    }
    req
}

/// The issue's case: 70B with LoRA exceeds both tiers. The advice must not offer LoRA
/// (it is LoRA already) nor a smaller batch (batch is not in this estimate); it offers
/// QLoRA with the estimate QLoRA gives, and fit exits 1.
#[test]
fn lora_advice_names_qlora_with_its_estimate_and_nothing_that_does_not_change_it() {
    use opsconsole::gpu::fit::{FitRequest, exit_code, run, to_text};
    let req = FitRequest {
        params: Some("70e9".into()),
        mode: Some("lora".into()),
        optimizer: Some("adamw".into()),
        ..FitRequest::default()
    };
    let e = run(&req, &tiers()).expect("estimate");
    assert!(e.tiers.iter().all(|t| t.verdict == Verdict::Exceeds));
    assert_eq!(exit_code(&e), 1);
    let flags: Vec<&str> = e.advice.iter().map(|a| a.flags.as_str()).collect();
    assert!(!flags.iter().any(|f| f.contains("--mode") || f.contains("--batch")), "{flags:?}");
    assert!(!flags.iter().any(|f| f.contains("checkpointing") || f.contains("flash")), "{flags:?}");
    let qlora = e.advice.iter().find(|a| a.flags == "--dtype int4").expect("QLoRA offered");
    // 70e9 · 0.5 (int4 base) + 7e8 · (4 adapters + 4 gradients + 8 AdamW) + 1 GiB.
    assert_eq!(qlora.total_bytes, 35_000_000_000 + 700_000_000 * 16 + GIB);
    assert_eq!((qlora.tier.as_deref(), qlora.verdict), (Some("tier2"), Some(Verdict::Fits)));
    let int8 = e.advice.iter().find(|a| a.flags == "--dtype int8").expect("8-bit base offered");
    assert_eq!(int8.total_bytes, 70_000_000_000 + 700_000_000 * 16 + GIB);
    assert_eq!(int8.verdict, Some(Verdict::Near));
    let text = to_text(&e);
    assert!(text.contains("no configured tier runs it"), "{text}");
    assert!(text.contains("--dtype int4") && text.contains("44.0 GiB") && text.contains("fits tier2"), "{text}");
    assert!(!text.contains("smaller batch") && !text.contains("shrink"), "{text}");

    // The QLoRA job itself runs on tier 2: exit 0, and no change brings it to tier 1
    // (activations are not counted, and 35 GB of int4 weights alone exceed 20 GiB).
    let q = run(&with_flags(req, "--dtype int4"), &tiers()).expect("estimate");
    assert_eq!(q.breakdown.total_bytes, qlora.total_bytes);
    assert_eq!(exit_code(&q), 0);
    assert!(q.advice.is_empty(), "{:?}", q.advice);
}

/// A job on tier 2 that no single change brings to tier 1: the changes that lower it, and
/// the fewest of them together that do (biggest savings first).
#[test]
fn advice_combines_changes_when_none_alone_reaches_a_smaller_tier() {
    use opsconsole::gpu::fit::{FitRequest, run};
    let req = FitRequest {
        params: Some("13e9".into()),
        mode: Some("lora".into()),
        batch: Some(4),
        seq: Some(4096),
        hidden: Some(5120),
        layers: Some(40),
        heads: Some(40),
        gradient_checkpointing: true,
        ..FitRequest::default()
    };
    let e = run(&req, &tiers()).expect("estimate");
    assert_eq!(e.smallest_tier().map(|t| t.tier.as_str()), Some("tier2"));
    let (last, singles) = e.advice.split_last().expect("advice");
    assert!(singles.iter().all(|a| a.tier.as_deref() == Some("tier2")), "{singles:?}");
    assert_eq!(last.change, "these together");
    assert_eq!(last.flags, "--dtype int4 --batch 1");
    assert_eq!(last.tier.as_deref(), Some("tier1"));
    let again = run(&with_flags(req, &last.flags), &tiers()).expect("estimate");
    assert_eq!(again.breakdown.total_bytes, last.total_bytes);
}

fn fit_request() -> impl proptest::strategy::Strategy<Value = opsconsole::gpu::fit::FitRequest> {
    use proptest::prelude::*;
    (
        1u64..2_000,
        prop_oneof![Just("inference"), Just("full"), Just("lora")],
        prop_oneof![Just("fp32"), Just("bf16"), Just("int8"), Just("int4")],
        prop_oneof![Just("adamw"), Just("adamw8bit"), Just("sgd"), Just("adafactor")],
        proptest::option::of((1u64..16, 256u64..16_384, any::<bool>(), any::<bool>())),
    )
        .prop_map(|(p, mode, dtype, opt, shape)| {
            let mode = if mode == "full" && dtype.starts_with("int") { "lora" } else { mode };
            let mut req = opsconsole::gpu::fit::FitRequest {
                params: Some(format!("{p}00M")),
                mode: Some(mode.into()),
                dtype: Some(dtype.into()),
                optimizer: Some(opt.into()),
                ..Default::default()
            };
            if let Some((batch, seq, flash, gc)) = shape {
                req.batch = Some(batch);
                req.seq = Some(seq);
                req.hidden = Some(4096);
                req.layers = Some(32);
                req.heads = Some(32);
                req.flash_attention = flash;
                req.gradient_checkpointing = gc && mode != "inference";
            }
            req
        })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// Every piece of advice, typed back as flags, gives exactly the estimate it promised,
    /// lower than now; a single change reaches a smaller tier than now; nothing is
    /// advised when the smallest tier runs the job; the exit code follows the tiers.
    #[test]
    fn advice_flags_reproduce_their_estimates(req in fit_request()) {
        use opsconsole::gpu::fit::{exit_code, run};
        let e = run(&req, &tiers()).expect("estimate");
        let rank = |e: &opsconsole::gpu::FitEstimate| e.tiers.iter().position(|t| t.verdict != Verdict::Exceeds);
        let now = rank(&e);
        proptest::prop_assert_eq!(exit_code(&e) == 1, now.is_none());
        if now == Some(0) {
            proptest::prop_assert!(e.advice.is_empty());
        }
        let any_single_helps = e.advice.iter().any(|a| a.change != "these together" && rank_of(a) < now.unwrap_or(usize::MAX));
        for a in &e.advice {
            let changed = run(&with_flags(req.clone(), &a.flags), &tiers()).expect("advised job");
            proptest::prop_assert_eq!(changed.breakdown.total_bytes, a.total_bytes, "{}", a.flags);
            proptest::prop_assert!(a.total_bytes < e.breakdown.total_bytes, "{} does not lower it", a.flags);
            proptest::prop_assert_eq!(rank(&changed), rank_of_opt(a));
            if e.breakdown.activations_bytes == 0 {
                proptest::prop_assert!(!a.flags.contains("--batch") && !a.flags.contains("checkpointing") && !a.flags.contains("flash"), "{}", a.flags);
            }
            if any_single_helps {
                proptest::prop_assert!(rank_of(a) < now.unwrap_or(usize::MAX), "{} does not help", a.flags);
            }
        }
    }
}

fn rank_of_opt(a: &opsconsole::gpu::estimate::Advice) -> Option<usize> {
    a.tier.as_deref().map(|t| tiers().iter().position(|c| c.name == t).expect("tier"))
}

fn rank_of(a: &opsconsole::gpu::estimate::Advice) -> usize {
    rank_of_opt(a).unwrap_or(usize::MAX)
}

#[test]
fn parameter_counts_parse() {
    assert_eq!(parse_params("7e9"), Ok(7_000_000_000));
    assert_eq!(parse_params("1.3B"), Ok(1_300_000_000));
    assert_eq!(parse_params("350m"), Ok(350_000_000));
    assert_eq!(parse_params("125k"), Ok(125_000));
    assert_eq!(parse_params("6_738_415_616"), Ok(6_738_415_616));
    for bad in ["", "seven", "-7B", "0", "1e30", "nanB"] {
        assert!(parse_params(bad).is_err(), "{bad} accepted");
    }
}

/// A safetensors file whose header describes 3 tensors, followed by 8 GiB of (sparse)
/// data: only the header is read.
#[test]
fn safetensors_headers_are_read_never_the_weights() {
    let dir = tempfile::tempdir().expect("dir");
    let header = serde_json::json!({
        "__metadata__": {"format": "pt"},
        "embed.weight": {"dtype": "BF16", "shape": [32000, 4096], "data_offsets": [0, 262144000]},
        "layer.0.w": {"dtype": "BF16", "shape": [4096, 4096], "data_offsets": [262144000, 295698432]},
        "norm.weight": {"dtype": "F32", "shape": [4096], "data_offsets": [295698432, 295714816]}
    })
    .to_string();
    let write = |name: &str, header: &str, data_len: u64| {
        let path = dir.path().join(name);
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        std::fs::write(&path, &bytes).expect("write");
        let f = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len(bytes.len() as u64 + data_len).expect("sparse data");
        path
    };
    let file = write("model-00001-of-00002.safetensors", &header, 8 * GIB);
    let info = read_model(&file).expect("one file");
    assert_eq!(info.params, 32000 * 4096 + 4096 * 4096 + 4096);
    assert_eq!(info.dtype, Some(Dtype::Bf16));

    // A folder: both shards summed, config.json gives the shape.
    write("model-00002-of-00002.safetensors", &header, 0);
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"hidden_size":4096,"num_hidden_layers":2,"num_attention_heads":32,"vocab_size":32000}"#,
    )
    .expect("config");
    let info = read_model(dir.path()).expect("folder");
    assert_eq!(info.params, 2 * (32000 * 4096 + 4096 * 4096 + 4096));
    assert_eq!(info.source, "2 safetensors headers");
    assert_eq!((info.hidden, info.layers, info.heads), (Some(4096), Some(2), Some(32)));

    // A header length beyond the file is refused, not allocated.
    let bad = dir.path().join("bad.safetensors");
    let mut bytes = (u64::MAX / 2).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&bad, bytes).expect("write");
    assert!(read_model(&bad).is_err());
}

// ---------------------------------------------------------------------------------------
// The real binary: `status --json` against the stand-in, `fit`.

#[test]
fn status_json_through_the_binary_reports_gpus_nvml_and_tier_fit() {
    let stub = StubNvml::build();
    let workspace = tempfile::tempdir().expect("workspace");
    let ws = workspace.path().canonicalize().expect("canonical");
    let job = Sleeper::start(&ws);
    stub.write(&two_gpu_fixture(job.pid(), gib_f(21.0)));
    std::fs::write(ws.join("opsconsole.toml"), format!("[gpu]\nlib_path = \"{}\"\n", stub.lib.display()))
        .expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .args(["--workspace"])
        .arg(&ws)
        .args(["status", "--json"])
        .env("NVML_STUB_FIXTURE", &stub.fixture)
        .output()
        .expect("run opsconsole");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["nvml"]["state"], "ok");
    assert_eq!(v["nvml"]["driver_version"], "550.54.15");
    assert_eq!(v["gpus"].as_array().map(|a| a.len()), Some(2));
    assert_eq!(v["gpus"][0]["name"], "NVIDIA L4");
    assert_eq!(v["gpus"][1]["power_draw_mw"], serde_json::Value::Null);
    assert_eq!(v["gpus"][0]["processes"][0]["pid"], job.pid());
    assert_eq!(v["tier"], "tier1");
    let fit = &v["tier_fit"];
    assert_eq!(fit["tier"], "tier1");
    assert_eq!(fit["budget_bytes"], 20 * GIB);
    assert_eq!(fit["used_bytes"], gib_f(21.0));
    assert_eq!(fit["peak_bytes"], gib_f(21.0));
    assert_eq!(fit["verdict"], "exceeds");
    assert_eq!(fit["scope"], "workspace");
    assert!(fit["advice"].as_str().is_some_and(|a| a.contains("tier2")), "{fit}");

    // Without the variable the stand-in refuses to start: a plain status, exit code 0.
    let out = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .args(["--workspace"])
        .arg(&ws)
        .arg("status")
        .env_remove("NVML_STUB_FIXTURE")
        .output()
        .expect("run opsconsole");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("gpus: NVML failed"), "{text}");
}

#[test]
fn memory_hidden_from_the_process_list_is_judged_by_the_device() {
    // A container's view: 21 GiB used on the L4, one visible 512 MiB process (the
    // workspace's), the rest held by processes NVML does not list here.
    let stub = StubNvml::build();
    let workspace = tempfile::tempdir().expect("workspace");
    let ws = workspace.path().canonicalize().expect("canonical");
    let job = Sleeper::start(&ws);
    let mut f = String::from("init 0\ndriver 550.54.15\n");
    f += &gpu_line("NVIDIA L4", L4_TOTAL, gib_f(21.0), "util=97 memutil=61 temp=71 power=72000 limit=72000");
    f += &proc_line(0, job.pid(), 512 * 1024 * 1024);
    stub.write(&f);
    std::fs::write(ws.join("opsconsole.toml"), format!("[gpu]\nlib_path = \"{}\"\n", stub.lib.display()))
        .expect("config");
    let run = |json: bool| {
        let out = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
            .arg("--workspace")
            .arg(&ws)
            .arg("status")
            .args(json.then_some("--json"))
            .env("NVML_STUB_FIXTURE", &stub.fixture)
            .output()
            .expect("run opsconsole");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let v: serde_json::Value = serde_json::from_slice(&run(true)).expect("json");
    let fit = &v["tier_fit"];
    assert_eq!(fit["scope"], "device", "{fit:#}");
    assert_eq!(fit["used_bytes"], gib_f(21.0));
    assert_eq!(fit["verdict"], "exceeds", "21 GiB used must not say fits for a 20 GiB budget: {fit:#}");
    assert_eq!(fit["device_used_bytes"], gib_f(21.0));
    assert_eq!(fit["listed_bytes"], 512 * 1024 * 1024);
    let text = String::from_utf8_lossy(&run(false)).into_owned();
    assert!(text.contains("tier fit (the whole device)"), "{text}");
    assert!(text.contains("NVML lists 0.5 of 21.0 GiB used (processes hidden here): whole GPU judged"), "{text}");
}

#[test]
fn fit_through_the_binary() {
    let run = |args: &[&str]| {
        let dir = tempfile::tempdir().expect("dir");
        let out = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
            .current_dir(dir.path())
            .arg("fit")
            .args(args)
            .output()
            .expect("run opsconsole");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Exceeds every tier: exit 1, JSON still printed, with advice.
    let (code, out, _) = run(&["--params", "7e9", "--dtype", "fp32", "--optimizer", "adamw", "--json"]);
    assert_eq!(code, Some(1));
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["params"], 7_000_000_000u64);
    assert_eq!(v["breakdown"]["weights_bytes"], 28_000_000_000u64);
    assert_eq!(v["breakdown"]["optimizer_bytes"], 56_000_000_000u64);
    assert_eq!(v["tiers"][0]["verdict"], "exceeds");
    assert_eq!(v["tiers"][1]["verdict"], "exceeds");
    let qlora = v["advice"].as_array().expect("advice").iter().find(|a| a["flags"] == "--mode lora --dtype int4");
    assert_eq!(qlora.map(|a| &a["tier"]), Some(&serde_json::json!("tier1")), "{v:#}");

    let (code, out, _) = run(&["--params", "70e9", "--mode", "lora"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no configured tier runs it"), "{out}");
    assert!(out.contains("--dtype int4") && out.contains("QLoRA"), "{out}");
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Exit status:") && out.contains("1  no configured tier runs it"), "{out}");
    assert!(out.contains("--gradient-checkpointing"), "{out}");

    let (code, out, _) = run(&["--params", "1.3B", "--mode", "lora", "--dtype", "int4"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("smallest tier that runs it: tier1 (L4 home base)"), "{out}");

    let (code, _, err) = run(&["--params", "7B", "--mode", "full", "--dtype", "int4"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--mode lora"), "{err}");
    let (code, _, err) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--params"), "{err}");
}

// ---------------------------------------------------------------------------------------
// The real console in tmux against the stand-in: the collector task, the panel, Enter, K.

#[test]
#[ignore = "needs tmux"]
fn the_console_shows_the_gpus_and_k_stops_the_job() {
    Tmux::require();
    let stub = StubNvml::build();
    let workspace = tempfile::tempdir().expect("workspace");
    let ws = workspace.path().canonicalize().expect("canonical");
    let mut job = Sleeper::start(&ws);
    let pid = job.pid();
    stub.write(&two_gpu_fixture(pid, gib_f(18.9)));
    std::fs::write(ws.join("opsconsole.toml"), format!("[gpu]\nlib_path = \"{}\"\n", stub.lib.display()))
        .expect("config");
    let cmd = format!(
        "env NVML_STUB_FIXTURE='{}' '{}' --workspace '{}'; echo EXIT=$?; sleep 30",
        stub.fixture.display(),
        env!("CARGO_BIN_EXE_opsconsole"),
        ws.display()
    );
    let t = Tmux::new("gpu", 160, 48, &cmd);
    let screen = t.wait_for("the GPU panel", |s| {
        s.contains("NVIDIA L4") && s.contains("NVIDIA A100-SXM4-80GB") && s.contains("near")
    });
    assert!(screen.contains("tier1 L4 home base (budget 20.0 GiB)"), "header tier:\n{screen}");
    assert!(screen.contains(&pid.to_string()), "the job's pid:\n{screen}");

    t.send(&["Enter"]);
    t.wait_for("the details popup", |s| s.contains(&format!("Process {pid} · GPU 0")) && s.contains("sleep 300"));
    t.send(&["Escape"]);
    t.wait_for("the popup to close", |s| !s.contains(&format!("Process {pid} · GPU 0")));
    t.send(&["K"]);
    t.wait_for("the confirmation", |s| s.contains(&format!("Send SIGTERM to process {pid} (sleep)?")));
    t.send(&["y"]);
    t.wait_for("the notice", |s| s.contains(&format!("sent SIGTERM to process {pid}")));
    let status = job.0.wait().expect("wait for the job");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(rustix::process::Signal::TERM.as_raw()));
    t.send(&["q"]);
    t.wait_for("the shell", |s| s.contains("EXIT=0"));
}
